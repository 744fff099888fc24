#include "engine/state.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crashpoint.h"
#include "util/fsutil.h"
#include "util/jsonw.h"
#include "util/keyfile.h"

#include <xxhash.h>

/* Version 1 files (no key check, no checksum) are still read; the next fold
 * writes version 2. Base v2 header (64 bytes): magic | generation | count |
 * key check | XXH3-128 of the records | zero. Journal v2: the keyfile
 * header, aux = generation, committed = records fully written and synced. */
#define BASE_MAGIC_V1    "BFSTATE1"
#define BASE_MAGIC       "BFSTATE2"
#define JOURNAL_MAGIC_V1 "BFJRNL01"
#define JOURNAL_MAGIC    "BFJRNL02"
#define HEADER_SIZE      32
#define BASE_HEADER_V2   64
#define RECORD_SIZE      32

enum journal_op { OP_PENDING = 1, OP_ACK = 2, OP_DELETED = 3 };

struct bf_state {
  char *dir;
  bool writable;
  const struct bf_prf *prf; /* NULL: key checks skipped (doctor without a secret) */
  int lock_fd;
  int journal_fd;
  uint64_t generation;
  /* Entries are stored densely: the base file's, mapped as they are on
   * disk, then those added since, in order. An open-addressing index maps
   * keys to entry numbers; growing it moves 8-byte slots, never entries. */
  struct bf_state_entry *base; /* the base file's records, mapped copy-on-write */
  size_t n_base;               /* entries 0 .. n_base-1 */
  size_t base_map_bytes;
  size_t base_header;  /* bytes before the first record in the mapping */
  uint64_t *base_seen; /* BF_ST_SEEN of base entries, one bit each: never a write to base */
  struct bf_state_entry *entries; /* entries n_base .. added since the load */
  size_t n_entries, entries_cap;
  uint64_t *index;               /* 0 = empty, else tag << 32 | (entry number + 1) */
  size_t cap;                    /* index slots */
  struct bf_buf pending_records; /* journal records not yet written */
  size_t journal_records;        /* in journal.bin and pending_records */
  size_t journal_written;        /* in journal.bin */
  bool journal_v1;               /* an old journal is being appended to */
};

_Static_assert(sizeof(struct bf_state_entry) == RECORD_SIZE &&
                   offsetof(struct bf_state_entry, fp) == 16 &&
                   offsetof(struct bf_state_entry, flags) == 24,
               "a state record on disk is a struct bf_state_entry");

static void crash_point(const char *point) { bf_crashpoint(point); }

static uint32_t check_word(const unsigned char *rec, uint64_t generation) {
  uint32_t h = 2166136261u ^ (uint32_t)generation;
  for (int i = 0; i < 28; i++) h = (h ^ rec[i]) * 16777619u;
  return h ? h : 1; /* a zeroed (preallocated) record never checks out */
}

/* The key's top 32 bits (it is already uniformly random). An index slot keeps
 * them, so most mismatches are settled without reading the entry and the
 * index can be rebuilt from its own slots. */
static uint32_t tag_of(const unsigned char key[16]) {
  uint64_t h;
  memcpy(&h, key, 8);
  return (uint32_t)(h >> 32);
}

/* Maps a tag onto [0, cap) without a power-of-two table (Lemire's fast range
 * reduction), so the index is sized to the state at a 70% load instead of up
 * to twice that. Monotone in the tag: walking the index in order visits keys
 * in tag order. */
static size_t slot_of(uint32_t tag, size_t cap) {
  return (size_t)(((unsigned __int128)tag * cap) >> 32);
}

static size_t next_slot(size_t i, size_t cap) { return i + 1 == cap ? 0 : i + 1; }

static struct bf_state_entry *entry_at(const struct bf_state *st, uint64_t slot) {
  size_t n = (uint32_t)slot - 1;
  return n < st->n_base ? &st->base[n] : &st->entries[n - st->n_base];
}

static bool in_base(const struct bf_state *st, const struct bf_state_entry *e) {
  return st->n_base && e >= st->base && e < st->base + st->n_base;
}

/* Arrays probed at random: with 4 KiB pages nearly every probe is also a TLB
 * miss, so large ones ask for transparent huge pages (mmap'd memory is
 * already zeroed) and grow with mremap, without a copy. */
#define HUGE_BYTES (4u << 20)

static size_t big_size(size_t bytes) { return (bytes + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES; }

static void *big_alloc(size_t bytes) {
  if (bytes < HUGE_BYTES) return bf_xcalloc(1, bytes ? bytes : 1);
  void *p = mmap(NULL, big_size(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) BF_BUG("cannot map %zu bytes for the state", bytes);
#ifdef MADV_HUGEPAGE
  madvise(p, big_size(bytes), MADV_HUGEPAGE);
#endif
  return p;
}

static void big_free(void *p, size_t bytes) {
  if (!p) return;
  if (bytes < HUGE_BYTES)
    free(p);
  else
    munmap(p, big_size(bytes));
}

/* Grows an array from big_alloc; the new bytes are zero. */
static void *big_grow(void *p, size_t old_bytes, size_t new_bytes) {
  if (old_bytes >= HUGE_BYTES) {
    void *q = mremap(p, big_size(old_bytes), big_size(new_bytes), MREMAP_MAYMOVE);
    if (q == MAP_FAILED) BF_BUG("cannot grow the state to %zu bytes", new_bytes);
    return q;
  }
  void *q = big_alloc(new_bytes);
  if (p) memcpy(q, p, old_bytes);
  big_free(p, old_bytes);
  return q;
}

static void index_init(struct bf_state *st, size_t expected) {
  st->cap = expected + expected / 2 + 1024; /* ~67% full once loaded */
  st->index = big_alloc(st->cap * sizeof *st->index);
}

/* Puts a slot value in the first free slot from its tag's home. */
static void index_put(uint64_t *index, size_t cap, uint64_t slot) {
  size_t i = slot_of((uint32_t)(slot >> 32), cap);
  while (index[i]) i = next_slot(i, cap);
  index[i] = slot;
}

static void index_grow(struct bf_state *st) {
  uint64_t *old = st->index;
  size_t old_cap = st->cap;
  st->cap *= st->cap < (1u << 20) ? 4 : 2; /* fewer rebuilds while a first run fills it */
  st->index = big_alloc(st->cap * sizeof *st->index);
  /* Old slots in order are in tag order, so the new ones fill nearly in
   * sequence. */
  for (size_t i = 0; i < old_cap; i++)
    if (old[i]) index_put(st->index, st->cap, old[i]);
  big_free(old, old_cap * sizeof *old);
}

static void entries_reserve(struct bf_state *st, size_t n) {
  if (n <= st->entries_cap) return;
  size_t cap = st->entries_cap ? st->entries_cap : 1024;
  while (cap < n) cap *= 2;
  if (st->n_base + cap > UINT32_MAX - 1)
    BF_BUG("more than %u keys in one sync's state", UINT32_MAX - 1);
  st->entries =
      big_grow(st->entries, st->entries_cap * sizeof *st->entries, cap * sizeof *st->entries);
  st->entries_cap = cap;
}

/* Adds an entry the caller knows is absent; zeroed but for the key. */
static struct bf_state_entry *add_entry(struct bf_state *st, const unsigned char key[16]) {
  if ((st->n_base + st->n_entries + 1) * 10 > st->cap * 7) index_grow(st);
  entries_reserve(st, st->n_entries + 1);
  struct bf_state_entry *e = &st->entries[st->n_entries];
  memset(e, 0, sizeof *e);
  memcpy(e->key, key, 16);
  st->n_entries++;
  index_put(st->index, st->cap, (uint64_t)tag_of(key) << 32 | (st->n_base + st->n_entries));
  return e;
}

struct bf_state_entry *bf_state_find(struct bf_state *st, const unsigned char key[16]) {
  uint32_t tag = tag_of(key);
  for (size_t i = slot_of(tag, st->cap);; i = next_slot(i, st->cap)) {
    uint64_t slot = st->index[i];
    if (!slot) return NULL;
    if ((uint32_t)(slot >> 32) != tag) continue;
    struct bf_state_entry *e = entry_at(st, slot);
    if (memcmp(e->key, key, 16) == 0) return e;
  }
}

struct bf_state_entry *bf_state_upsert(struct bf_state *st, const unsigned char key[16]) {
  struct bf_state_entry *e = bf_state_find(st, key);
  return e ? e : add_entry(st, key);
}

void bf_state_prefetch(const struct bf_state *st, const unsigned char key[16]) {
  __builtin_prefetch(&st->index[slot_of(tag_of(key), st->cap)], 0, 1);
}

void bf_state_prefetch_entry(const struct bf_state *st, const unsigned char key[16]) {
  uint32_t tag = tag_of(key);
  for (size_t i = slot_of(tag, st->cap);; i = next_slot(i, st->cap)) {
    uint64_t slot = st->index[i];
    if (!slot) return;
    if ((uint32_t)(slot >> 32) == tag) {
      __builtin_prefetch(entry_at(st, slot), 0, 1);
      return;
    }
  }
}

bool bf_state_see(struct bf_state *st, struct bf_state_entry *e) {
  if (in_base(st, e)) {
    size_t n = (size_t)(e - st->base);
    uint64_t bit = 1ull << (n % 64);
    bool seen = st->base_seen[n / 64] & bit;
    st->base_seen[n / 64] |= bit;
    return seen;
  }
  bool seen = e->flags & BF_ST_SEEN;
  e->flags |= BF_ST_SEEN;
  return seen;
}

bool bf_state_seen(const struct bf_state *st, const struct bf_state_entry *e) {
  if (in_base(st, e)) {
    size_t n = (size_t)(e - st->base);
    return st->base_seen[n / 64] & (1ull << (n % 64));
  }
  return e->flags & BF_ST_SEEN;
}

void bf_state_unsee(struct bf_state *st, struct bf_state_entry *e) {
  if (in_base(st, e)) {
    size_t n = (size_t)(e - st->base);
    st->base_seen[n / 64] &= ~(1ull << (n % 64));
    return;
  }
  e->flags &= ~BF_ST_SEEN;
}

struct bf_state_entry *bf_state_next(struct bf_state *st, size_t *cursor) {
  size_t n = (*cursor)++;
  if (n < st->n_base) return &st->base[n];
  return n - st->n_base < st->n_entries ? &st->entries[n - st->n_base] : NULL;
}

size_t bf_state_count(const struct bf_state *st) {
  size_t n = 0;
  for (size_t i = 0; i < st->n_base; i++)
    if (st->base[i].flags & BF_ST_PERSISTED) n++;
  for (size_t i = 0; i < st->n_entries; i++)
    if (st->entries[i].flags & BF_ST_PERSISTED) n++;
  return n;
}

static void apply(struct bf_state *st, int op, const unsigned char key[16], uint64_t fp) {
  struct bf_state_entry *e = bf_state_upsert(st, key);
  switch (op) {
  case OP_PENDING: e->flags |= BF_ST_PENDING; break;
  case OP_ACK:
    e->flags = (e->flags & ~BF_ST_PERSISTED) | BF_ST_PRESENT;
    e->fp = fp;
    break;
  case OP_DELETED:
    e->flags &= ~BF_ST_PERSISTED;
    e->fp = 0;
    break;
  }
}

static void journal_add(struct bf_state *st, int op, const unsigned char key[16], uint64_t fp) {
  apply(st, op, key, fp);
  unsigned char rec[RECORD_SIZE] = {0};
  memcpy(rec, key, 16);
  memcpy(rec + 16, &fp, 8);
  rec[24] = (unsigned char)op;
  uint32_t check = check_word(rec, st->generation);
  memcpy(rec + 28, &check, 4);
  bf_buf_append(&st->pending_records, rec, sizeof rec);
  st->journal_records++;
}

size_t bf_state_journal_records(const struct bf_state *st) { return st->journal_records; }

void bf_state_mark_pending(struct bf_state *st, const unsigned char key[16]) {
  journal_add(st, OP_PENDING, key, 0);
}
void bf_state_mark_acked(struct bf_state *st, const unsigned char key[16], uint64_t fp) {
  journal_add(st, OP_ACK, key, fp);
}
void bf_state_mark_deleted(struct bf_state *st, const unsigned char key[16]) {
  journal_add(st, OP_DELETED, key, 0);
}

static void journal_header(const struct bf_state *st, unsigned char h[HEADER_SIZE]) {
  struct bf_keyfile_header kh = {.committed = 0, .aux = st->generation};
  memcpy(kh.magic, JOURNAL_MAGIC, 8);
  if (st->prf) memcpy(kh.key_check, st->prf->key_check, BF_KEY_CHECK_BYTES);
  bf_keyfile_header_encode(h, &kh);
}

/* bf_atomic_commit with the state's error message. */
static int commit(struct bf_atomic_file *f, struct bf_error *err) {
  char *failed_at = NULL;
  if (bf_atomic_commit(f, &failed_at) == 0) return 0;
  int rc = bf_error_set(err, BF_E_STATE, "%s: cannot write: %s", failed_at, strerror(errno));
  free(failed_at);
  return rc;
}

static int open_journal(struct bf_state *st, struct bf_error *err) {
  char *path = bf_xasprintf("%s/journal.bin", st->dir);
  if (st->journal_fd >= 0) close(st->journal_fd);
  /* Not O_APPEND: Linux's pwrite would append the header update too. */
  st->journal_fd = open(path, O_WRONLY | O_CLOEXEC);
  if (st->journal_fd >= 0 && lseek(st->journal_fd, 0, SEEK_END) < 0) {
    close(st->journal_fd);
    st->journal_fd = -1;
  }
  int rc = 0;
  if (st->journal_fd < 0)
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot open: %s", path, strerror(errno));
  free(path);
  return rc;
}

static int reset_journal(struct bf_state *st, struct bf_error *err) {
  unsigned char header[HEADER_SIZE];
  journal_header(st, header);
  char *path = bf_xasprintf("%s/journal.bin", st->dir);
  struct bf_atomic_file f;
  bf_atomic_begin(&f, path);
  free(path);
  bf_atomic_write(&f, header, HEADER_SIZE, 0);
  int rc = commit(&f, err);
  if (rc == 0) rc = open_journal(st, err);
  if (rc == 0) {
    st->journal_records = st->journal_written = 0;
    st->journal_v1 = false;
  }
  return rc;
}

/* Part of the index build: base entries [from, to) whose home slot is in
 * [lo, hi) are placed there, probing no further than hi; the others are
 * listed in deferred, for a serial pass once every part is done. */
struct index_part {
  struct bf_state *st;
  size_t from, to, lo, hi;
  size_t *deferred, n_deferred, cap_deferred;
};

static void *index_part_build(void *arg) {
  struct index_part *part = arg;
  struct bf_state *st = part->st;
  for (size_t i = part->from; i < part->to; i++) {
    uint32_t tag = tag_of(st->base[i].key);
    size_t j = slot_of(tag, st->cap);
    bool placed = false;
    if (j >= part->lo && j < part->hi) {
      while (j < part->hi && st->index[j]) j++;
      if (j < part->hi) {
        st->index[j] = (uint64_t)tag << 32 | (i + 1);
        placed = true;
      }
    }
    if (!placed) {
      if (part->n_deferred == part->cap_deferred) {
        part->cap_deferred = part->cap_deferred ? 2 * part->cap_deferred : 1024;
        part->deferred = bf_xrealloc(part->deferred, part->cap_deferred * sizeof *part->deferred);
      }
      part->deferred[part->n_deferred++] = i;
    }
  }
  return NULL;
}

/* Indexes the base entries. A fold writes them in index order (tag order),
 * so the first half of the file fills the first part of the index: a large
 * base is indexed by two threads, one per half, each writing only its own
 * slots. (The reader thread has little to do meanwhile: it can run only so
 * far ahead of the diff.) Entries that would cross into the other half are
 * placed afterwards; any order of insertion gives a valid probe sequence. */
#define PARALLEL_INDEX_MIN (512u * 1024)

static void index_base(struct bf_state *st) {
  size_t n = st->n_base;
  struct index_part parts[2] = {{.st = st, .from = 0, .to = n, .lo = 0, .hi = st->cap}};
  int nparts = 1;
  pthread_t helper;
  bool helped = false;
  if (n >= PARALLEL_INDEX_MIN) {
    size_t m = n / 2, mid = slot_of(tag_of(st->base[m].key), st->cap);
    parts[0].to = m;
    parts[0].hi = mid;
    parts[1] = (struct index_part){.st = st, .from = m, .to = n, .lo = mid, .hi = st->cap};
    nparts = 2;
    helped = pthread_create(&helper, NULL, index_part_build, &parts[1]) == 0;
  }
  index_part_build(&parts[0]);
  if (nparts == 2) {
    if (helped)
      pthread_join(helper, NULL);
    else
      index_part_build(&parts[1]);
  }
  for (int k = 0; k < nparts; k++) {
    for (size_t d = 0; d < parts[k].n_deferred; d++) {
      size_t i = parts[k].deferred[d];
      index_put(st->index, st->cap, (uint64_t)tag_of(st->base[i].key) << 32 | (i + 1));
    }
    free(parts[k].deferred);
  }
}

/* Loads the base file: its records are mapped as they are (copy-on-write:
 * only the few entries a run changes are ever copied) and indexed. Its key
 * check and checksum are verified first: a damaged or foreign state would
 * re-send rows or delete keys that match nothing. */
static int load_base(struct bf_state *st, const char *path, struct bf_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT)
      return bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", path, strerror(errno));
    index_init(st, 0);
    return 0;
  }
  struct stat sb;
  unsigned char header[BASE_HEADER_V2] = {0};
  uint64_t count = 0;
  int rc = 0;
  ssize_t got = fstat(fd, &sb) < 0 ? -1 : read(fd, header, sizeof header);
  bool v1 = got >= HEADER_SIZE && memcmp(header, BASE_MAGIC_V1, 8) == 0;
  bool v2 = got == BASE_HEADER_V2 && memcmp(header, BASE_MAGIC, 8) == 0;
  if (!v1 && !v2) {
    rc =
        bf_keyfile_damaged(err, path, sb.st_size == 0 ? "empty file" : "not a Backflow state file");
    goto out;
  }
  if (v2 && st->prf && (rc = bf_keyfile_check_key(path, header + 24, st->prf, err))) goto out;
  st->base_header = v2 ? BASE_HEADER_V2 : HEADER_SIZE;
  memcpy(&st->generation, header + 8, 8);
  memcpy(&count, header + 16, 8);
  if (count > ((uint64_t)sb.st_size - st->base_header) / RECORD_SIZE ||
      (uint64_t)sb.st_size != st->base_header + count * RECORD_SIZE || count > UINT32_MAX / 2) {
    char what[128];
    snprintf(what, sizeof what, "%llu entries announced, %lld bytes present",
             (unsigned long long)count, (long long)sb.st_size);
    rc = bf_keyfile_damaged(err, path, what);
    goto out;
  }
  index_init(st, count);
  if (count == 0) goto out;
  st->base_map_bytes = st->base_header + (size_t)count * RECORD_SIZE;
  /* Not MAP_POPULATE: faulting the pages in as the index is built (the
   * kernel maps a few neighbours per fault) measured ~40% faster. */
  void *map = mmap(NULL, st->base_map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) {
    st->base_map_bytes = 0;
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot map: %s", path, strerror(errno));
    goto out;
  }
  st->base = (struct bf_state_entry *)((char *)map + st->base_header);
  st->n_base = count;
  if (v2) {
    unsigned char sum[16];
    bf_keyfile_checksum(st->base, (size_t)count * RECORD_SIZE, sum);
    if (memcmp(sum, header + 32, 16) != 0) {
      rc = bf_keyfile_damaged(err, path, "checksum mismatch: a record was changed on disk");
      goto out;
    }
  }
  st->base_seen = bf_xcalloc((count + 63) / 64, sizeof *st->base_seen);
  /* Flags other than the persisted ones are never read from a base entry
   * (BF_ST_SEEN lives in base_seen). */
  index_base(st);
out:
  close(fd);
  return rc;
}

/* Replays journal records [HEADER_SIZE, len). Records up to the header's
 * committed count were written and synced whole: one that fails its check
 * is damage. After them, the first bad record starts a torn tail (a crash
 * mid-append), which is cut. Returns the end of the valid records, or 0
 * with err set. */
static size_t replay_journal(struct bf_state *st, const char *path, const unsigned char *journal,
                             size_t len, uint64_t committed, struct bf_error *err) {
  if (committed > (len - HEADER_SIZE) / RECORD_SIZE) {
    char what[128];
    snprintf(what, sizeof what, "%llu records written, %zu present", (unsigned long long)committed,
             (len - HEADER_SIZE) / RECORD_SIZE);
    bf_keyfile_damaged(err, path, what);
    return 0;
  }
  size_t valid = HEADER_SIZE;
  for (size_t off = HEADER_SIZE, n = 0; off + RECORD_SIZE <= len; off += RECORD_SIZE, n++) {
    const unsigned char *rec = journal + off;
    uint32_t check;
    memcpy(&check, rec + 28, 4);
    if (check != check_word(rec, st->generation) || rec[24] < OP_PENDING || rec[24] > OP_DELETED) {
      if (n < committed) {
        char what[96];
        snprintf(what, sizeof what, "record %zu of %llu fails its check", n + 1,
                 (unsigned long long)committed);
        bf_keyfile_damaged(err, path, what);
        return 0;
      }
      break; /* torn tail: everything after it was never acknowledged */
    }
    uint64_t fp;
    memcpy(&fp, rec + 16, 8);
    apply(st, rec[24], rec, fp);
    st->journal_records++;
    valid = off + RECORD_SIZE;
  }
  st->journal_written = st->journal_records;
  return valid;
}

static int load(struct bf_state *st, struct bf_error *err) {
  char *base_path = bf_xasprintf("%s/state.bin", st->dir);
  char *journal_path = bf_xasprintf("%s/journal.bin", st->dir);
  unsigned char *journal = NULL;
  size_t journal_len = 0;
  int rc = load_base(st, base_path, err);
  if (rc) goto out;

  if (bf_read_file(journal_path, &journal, &journal_len) == 0) {
    struct bf_keyfile_header kh;
    bool v2 = bf_keyfile_header_decode(journal, journal_len, &kh) &&
              memcmp(kh.magic, JOURNAL_MAGIC, 8) == 0;
    bool v1 = !v2 && journal_len >= HEADER_SIZE && memcmp(journal, JOURNAL_MAGIC_V1, 8) == 0;
    uint64_t jgen = 0, committed = 0;
    if (v2) {
      if (st->prf && (rc = bf_keyfile_check_key(journal_path, kh.key_check, st->prf, err)))
        goto out;
      jgen = kh.aux;
      committed = kh.committed;
    } else if (v1) {
      memcpy(&jgen, journal + 8, 8);
    } else if (journal_len > 0) {
      /* A journal is created with its header atomically: anything else
       * here was damaged after the fact. */
      rc = bf_keyfile_damaged(err, journal_path, "not a Backflow journal");
      goto out;
    }
    size_t valid = HEADER_SIZE;
    if ((v1 || v2) && jgen == st->generation) {
      valid = replay_journal(st, journal_path, journal, journal_len, committed, err);
      if (valid == 0) {
        rc = err->code;
        goto out;
      }
    }
    st->journal_v1 = v1;
    if (st->writable) {
      if (jgen != st->generation || journal_len < HEADER_SIZE) {
        rc = reset_journal(st, err); /* already folded, or empty */
      } else {
        if (valid != journal_len && truncate(journal_path, (off_t)valid) < 0) {
          rc =
              bf_error_set(err, BF_E_STATE, "%s: cannot repair: %s", journal_path, strerror(errno));
          goto out;
        }
        rc = open_journal(st, err);
      }
    }
  } else if (errno != ENOENT) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", journal_path, strerror(errno));
  } else if (st->writable) {
    rc = reset_journal(st, err);
  }
out:
  free(journal);
  free(base_path);
  free(journal_path);
  return rc;
}

int bf_state_open(const char *dir, bool writable, const struct bf_prf *prf, struct bf_state **out,
                  struct bf_error *err) {
  struct bf_state *st = bf_xcalloc(1, sizeof *st);
  st->dir = bf_xstrdup(dir);
  st->writable = writable;
  st->prf = prf;
  st->lock_fd = -1;
  st->journal_fd = -1;
  int rc = 0;
  BF_ASSERT(prf || !writable); /* what is written carries the key check */
  if (writable) {
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
      rc = bf_error_set(err, BF_E_STATE, "%s: cannot create: %s", dir, strerror(errno));
      goto fail;
    }
    char *lock_path = bf_xasprintf("%s/lock", dir);
    st->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lock_path);
    if (st->lock_fd < 0) {
      rc = bf_error_set(err, BF_E_STATE, "%s/lock: cannot open: %s", dir, strerror(errno));
      goto fail;
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
      rc = bf_error_set(err, BF_E_LOCKED, "%s: another run of this sync holds the lock", dir);
      goto fail;
    }
  }
  rc = load(st, err);
  if (rc) goto fail;
  *out = st;
  return 0;
fail:
  bf_state_free(st);
  return rc;
}

void bf_state_free(struct bf_state *st) {
  if (!st) return;
  if (st->journal_fd >= 0) close(st->journal_fd);
  if (st->lock_fd >= 0) close(st->lock_fd); /* releases the flock */
  bf_buf_release(&st->pending_records);
  big_free(st->index, st->cap * sizeof *st->index);
  if (st->base) munmap((char *)st->base - st->base_header, st->base_map_bytes);
  free(st->base_seen);
  big_free(st->entries, st->entries_cap * sizeof *st->entries);
  free(st->dir);
  free(st);
}

int bf_state_flush(struct bf_state *st, bool sync, struct bf_error *err) {
  BF_ASSERT(st->writable);
  if (st->pending_records.len > 0) {
    crash_point("journal-write");
    if (bf_write_all(st->journal_fd, st->pending_records.data, st->pending_records.len) < 0)
      return bf_error_set(err, BF_E_STATE, "%s/journal.bin: cannot append: %s", st->dir,
                          strerror(errno));
    st->journal_written += st->pending_records.len / RECORD_SIZE;
    bf_buf_reset(&st->pending_records);
  }
  if (sync && fdatasync(st->journal_fd) < 0)
    return bf_error_set(err, BF_E_STATE, "%s/journal.bin: cannot sync: %s", st->dir,
                        strerror(errno));
  /* Only synced records count as committed: after a power loss the header
   * must never announce records the disk does not hold. The header reaches
   * the disk with the next sync (or stays behind, which is safe). */
  if (sync && !st->journal_v1 && bf_keyfile_set_committed(st->journal_fd, st->journal_written) < 0)
    return bf_error_set(err, BF_E_STATE, "%s/journal.bin: cannot update its header: %s", st->dir,
                        strerror(errno));
  return 0;
}

int bf_state_fold(struct bf_state *st, struct bf_error *err) {
  int rc = bf_state_flush(st, true, err);
  if (rc) return rc;
  /* Streamed through a small buffer: a fold never holds a second copy of
   * the state in memory. The header, which carries the count, goes last. */
  enum { FOLD_BUFFER = 1u << 20 };
  unsigned char *buf = bf_xmalloc(FOLD_BUFFER);
  size_t used = 0;
  off_t at = BASE_HEADER_V2;
  uint64_t count = 0;
  XXH3_state_t *sum = XXH3_createState();
  if (!sum) BF_BUG("out of memory");
  XXH3_128bits_reset(sum);
  char *path = bf_xasprintf("%s/state.bin", st->dir);
  struct bf_atomic_file f;
  bf_atomic_begin(&f, path);
  free(path);
  /* In index order, which is tag order: the next load indexes it in
   * sequence. */
  for (size_t i = 0; i < st->cap && !f.saved_errno; i++) {
    if (!st->index[i]) continue;
    const struct bf_state_entry *e = entry_at(st, st->index[i]);
    if (!(e->flags & BF_ST_PERSISTED)) continue;
    unsigned char *rec = buf + used;
    memset(rec, 0, RECORD_SIZE);
    memcpy(rec, e->key, 16);
    memcpy(rec + 16, &e->fp, 8);
    uint32_t flags = e->flags & BF_ST_PERSISTED;
    memcpy(rec + 24, &flags, 4);
    used += RECORD_SIZE;
    count++;
    if (used == FOLD_BUFFER) {
      XXH3_128bits_update(sum, buf, used);
      bf_atomic_write(&f, buf, used, at);
      at += (off_t)used;
      used = 0;
    }
  }
  XXH3_128bits_update(sum, buf, used);
  bf_atomic_write(&f, buf, used, at);
  free(buf);
  unsigned char header[BASE_HEADER_V2] = {0};
  uint64_t generation = st->generation + 1;
  memcpy(header, BASE_MAGIC, 8);
  memcpy(header + 8, &generation, 8);
  memcpy(header + 16, &count, 8);
  memcpy(header + 24, st->prf->key_check, BF_KEY_CHECK_BYTES);
  XXH128_canonical_t digest;
  XXH128_canonicalFromHash(&digest, XXH3_128bits_digest(sum));
  XXH3_freeState(sum);
  memcpy(header + 32, digest.digest, 16);
  bf_atomic_write(&f, header, BASE_HEADER_V2, 0);
  crash_point("fold-base");
  rc = commit(&f, err);
  if (rc) return rc;
  st->generation++;
  crash_point("fold-journal");
  return reset_journal(st, err);
}

int bf_state_clear(struct bf_state *st, struct bf_error *err) {
  for (size_t i = 0; i < st->n_base; i++) st->base[i].flags &= ~BF_ST_PERSISTED;
  for (size_t i = 0; i < st->n_entries; i++) st->entries[i].flags &= ~BF_ST_PERSISTED;
  bf_buf_reset(&st->pending_records);
  return bf_state_fold(st, err);
}

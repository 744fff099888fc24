#include "core/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crashpoint.h"
#include "core/fsutil.h"
#include "core/jsonw.h"

#define BASE_MAGIC    "BFSTATE1"
#define JOURNAL_MAGIC "BFJRNL01"
#define HEADER_SIZE   32
#define RECORD_SIZE   32

enum journal_op { OP_PENDING = 1, OP_ACK = 2, OP_DELETED = 3 };

struct bf_state {
  char *dir;
  bool writable;
  int lock_fd;
  int journal_fd;
  uint64_t generation;
  struct bf_state_entry *slots;
  size_t cap;                    /* slots */
  size_t used;                   /* occupied slots */
  struct bf_buf pending_records; /* journal records not yet written */
};

static void crash_point(const char *point) { bf_crashpoint(point); }

static uint32_t check_word(const unsigned char *rec, uint64_t generation) {
  uint32_t h = 2166136261u ^ (uint32_t)generation;
  for (int i = 0; i < 28; i++) h = (h ^ rec[i]) * 16777619u;
  return h ? h : 1; /* a zeroed (preallocated) record never checks out */
}

/* Maps the key's first 64 bits onto [0, cap) without a power-of-two table
 * (Lemire's fast range reduction), so the table is sized to the state at a
 * 70% load instead of up to twice that. */
static size_t slot_of(const unsigned char key[16], size_t cap) {
  uint64_t h;
  memcpy(&h, key, 8);
  return (size_t)(((unsigned __int128)h * cap) >> 64);
}

static size_t next_slot(size_t i, size_t cap) { return i + 1 == cap ? 0 : i + 1; }

/* The table is probed at random, one slot per row: with 4 KiB pages nearly
 * every probe is also a TLB miss. Large tables ask for transparent huge
 * pages (mmap'd memory is already zeroed). */
#define HUGE_TABLE_BYTES (4u << 20)

static struct bf_state_entry *slots_alloc(size_t cap) {
  size_t bytes = cap * sizeof(struct bf_state_entry);
  if (bytes < HUGE_TABLE_BYTES) return bf_xcalloc(cap, sizeof(struct bf_state_entry));
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) BF_BUG("cannot map %zu bytes for the state table", bytes);
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

static void slots_free(struct bf_state_entry *slots, size_t cap) {
  if (!slots) return;
  size_t bytes = cap * sizeof(struct bf_state_entry);
  if (bytes < HUGE_TABLE_BYTES)
    free(slots);
  else
    munmap(slots, bytes);
}

static void table_init(struct bf_state *st, size_t expected) {
  size_t cap = expected + expected / 2 + 1024; /* ~67% full once loaded */
  st->slots = slots_alloc(cap);
  st->cap = cap;
  st->used = 0;
}

static struct bf_state_entry *table_insert_new(struct bf_state *st, const unsigned char key[16]);

static void table_grow(struct bf_state *st) {
  struct bf_state_entry *old = st->slots;
  size_t old_cap = st->cap;
  st->cap *= st->cap < (1u << 20) ? 4 : 2; /* fewer rehashes while a first run fills it */
  st->slots = slots_alloc(st->cap);
  st->used = 0;
  for (size_t i = 0; i < old_cap; i++) {
    if (!(old[i].flags & BF_ST_USED)) continue;
    *table_insert_new(st, old[i].key) = old[i];
  }
  slots_free(old, old_cap);
}

/* Caller knows key is absent. */
static struct bf_state_entry *table_insert_new(struct bf_state *st, const unsigned char key[16]) {
  size_t i = slot_of(key, st->cap);
  while (st->slots[i].flags & BF_ST_USED) i = next_slot(i, st->cap);
  struct bf_state_entry *e = &st->slots[i];
  memcpy(e->key, key, 16);
  e->fp = 0;
  e->flags = BF_ST_USED;
  e->aux = 0;
  st->used++;
  return e;
}

struct bf_state_entry *bf_state_find(struct bf_state *st, const unsigned char key[16]) {
  size_t i = slot_of(key, st->cap);
  for (;;) {
    struct bf_state_entry *e = &st->slots[i];
    if (!(e->flags & BF_ST_USED)) return NULL;
    if (memcmp(e->key, key, 16) == 0) return e;
    i = next_slot(i, st->cap);
  }
}

struct bf_state_entry *bf_state_upsert(struct bf_state *st, const unsigned char key[16]) {
  if ((st->used + 1) * 10 > st->cap * 7) table_grow(st);
  /* One probe sequence finds the key or the empty slot it belongs in. */
  size_t i = slot_of(key, st->cap);
  for (;;) {
    struct bf_state_entry *e = &st->slots[i];
    if (!(e->flags & BF_ST_USED)) break;
    if (memcmp(e->key, key, 16) == 0) return e;
    i = next_slot(i, st->cap);
  }
  struct bf_state_entry *e = &st->slots[i];
  memcpy(e->key, key, 16);
  e->fp = 0;
  e->flags = BF_ST_USED;
  e->aux = 0;
  st->used++;
  return e;
}

void bf_state_prefetch(const struct bf_state *st, const unsigned char key[16]) {
  __builtin_prefetch(&st->slots[slot_of(key, st->cap)], 1, 1);
}

struct bf_state_entry *bf_state_next(struct bf_state *st, size_t *cursor) {
  while (*cursor < st->cap) {
    struct bf_state_entry *e = &st->slots[(*cursor)++];
    if (e->flags & BF_ST_USED) return e;
  }
  return NULL;
}

size_t bf_state_count(const struct bf_state *st) {
  size_t n = 0;
  for (size_t i = 0; i < st->cap; i++)
    if (st->slots[i].flags & BF_ST_PERSISTED) n++;
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
}

void bf_state_mark_pending(struct bf_state *st, const unsigned char key[16]) {
  journal_add(st, OP_PENDING, key, 0);
}
void bf_state_mark_acked(struct bf_state *st, const unsigned char key[16], uint64_t fp) {
  journal_add(st, OP_ACK, key, fp);
}
void bf_state_mark_deleted(struct bf_state *st, const unsigned char key[16]) {
  journal_add(st, OP_DELETED, key, 0);
}

static void make_header(unsigned char h[HEADER_SIZE], const char *magic, uint64_t gen,
                        uint64_t count) {
  memset(h, 0, HEADER_SIZE);
  memcpy(h, magic, 8);
  memcpy(h + 8, &gen, 8);
  memcpy(h + 16, &count, 8);
}

/* Writes path atomically: tmp file, fsync, rename, fsync of the folder. */
static int write_atomic(struct bf_state *st, const char *name, const unsigned char *header,
                        const struct bf_buf *body, struct bf_error *err) {
  char *path = bf_xasprintf("%s/%s", st->dir, name);
  char *tmp = bf_xasprintf("%s.tmp", path);
  int rc = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || bf_write_all(fd, header, HEADER_SIZE) < 0 ||
      (body && bf_write_all(fd, body->data, body->len) < 0) || fsync(fd) < 0) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot write: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
    goto out;
  }
  close(fd);
  if (rename(tmp, path) < 0 || bf_fsync_dir(st->dir) < 0) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot replace: %s", path, strerror(errno));
    unlink(tmp);
  }
out:
  free(tmp);
  free(path);
  return rc;
}

static int open_journal(struct bf_state *st, struct bf_error *err) {
  char *path = bf_xasprintf("%s/journal.bin", st->dir);
  if (st->journal_fd >= 0) close(st->journal_fd);
  st->journal_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  int rc = 0;
  if (st->journal_fd < 0)
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot open: %s", path, strerror(errno));
  free(path);
  return rc;
}

static int reset_journal(struct bf_state *st, struct bf_error *err) {
  unsigned char header[HEADER_SIZE];
  make_header(header, JOURNAL_MAGIC, st->generation, 0);
  int rc = write_atomic(st, "journal.bin", header, NULL, err);
  if (rc == 0) rc = open_journal(st, err);
  return rc;
}

/* Loads the base file into the table. */
static int load_base(struct bf_state *st, const char *path, struct bf_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT)
      return bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", path, strerror(errno));
    table_init(st, 0);
    return 0;
  }
  struct stat sb;
  unsigned char header[HEADER_SIZE];
  uint64_t count = 0;
  int rc = 0;
  if (fstat(fd, &sb) < 0 || read(fd, header, HEADER_SIZE) != HEADER_SIZE ||
      memcmp(header, BASE_MAGIC, 8) != 0) {
    rc = bf_error_set(err, BF_E_STATE, "%s: not a Backflow state file", path);
    goto out;
  }
  memcpy(&st->generation, header + 8, 8);
  memcpy(&count, header + 16, 8);
  if (count > ((uint64_t)sb.st_size - HEADER_SIZE) / RECORD_SIZE ||
      (uint64_t)sb.st_size != HEADER_SIZE + count * RECORD_SIZE) {
    rc = bf_error_set(err, BF_E_STATE, "%s: damaged: %llu entries announced, %lld bytes present",
                      path, (unsigned long long)count, (long long)sb.st_size);
    goto out;
  }
  table_init(st, count);
  if (count == 0) goto out;
  /* Mapped, not read: the entries go from the page cache into the table
   * without a copy through a buffer. Window by window, so the file's pages
   * never all count in the resident size at once. Records are 32 bytes and
   * windows a multiple of 32, so none straddles two windows. */
  size_t bytes = HEADER_SIZE + (size_t)count * RECORD_SIZE;
  enum { WINDOW = 4u << 20 };
  for (size_t off = 0; off < bytes; off += WINDOW) {
    size_t len = bytes - off < WINDOW ? bytes - off : WINDOW;
    unsigned char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, (off_t)off);
    if (map == MAP_FAILED) {
      rc = bf_error_set(err, BF_E_STATE, "%s: cannot map: %s", path, strerror(errno));
      goto out;
    }
    for (size_t at = off < HEADER_SIZE ? HEADER_SIZE : off; at + RECORD_SIZE <= off + len;
         at += RECORD_SIZE) {
      const unsigned char *rec = map + (at - off);
      struct bf_state_entry *e = table_insert_new(st, rec);
      memcpy(&e->fp, rec + 16, 8);
      uint32_t flags;
      memcpy(&flags, rec + 24, 4);
      e->flags = BF_ST_USED | (flags & BF_ST_PERSISTED);
    }
    munmap(map, len);
  }
out:
  close(fd);
  return rc;
}

static int load(struct bf_state *st, struct bf_error *err) {
  char *base_path = bf_xasprintf("%s/state.bin", st->dir);
  char *journal_path = bf_xasprintf("%s/journal.bin", st->dir);
  unsigned char *journal = NULL;
  size_t journal_len = 0;
  int rc = load_base(st, base_path, err);
  if (rc) goto out;

  if (bf_read_file(journal_path, &journal, &journal_len) == 0) {
    uint64_t jgen = 0;
    if (journal_len >= HEADER_SIZE && memcmp(journal, JOURNAL_MAGIC, 8) == 0)
      memcpy(&jgen, journal + 8, 8);
    size_t valid = HEADER_SIZE;
    if (journal_len >= HEADER_SIZE && jgen == st->generation) {
      for (size_t off = HEADER_SIZE; off + RECORD_SIZE <= journal_len; off += RECORD_SIZE) {
        const unsigned char *rec = journal + off;
        uint32_t check;
        memcpy(&check, rec + 28, 4);
        if (check != check_word(rec, st->generation) || rec[24] < OP_PENDING ||
            rec[24] > OP_DELETED)
          break; /* torn tail: everything after it was never acknowledged */
        uint64_t fp;
        memcpy(&fp, rec + 16, 8);
        apply(st, rec[24], rec, fp);
        valid = off + RECORD_SIZE;
      }
    }
    if (st->writable) {
      if (jgen != st->generation || journal_len < HEADER_SIZE) {
        rc = reset_journal(st, err); /* already folded, or unreadable header */
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

int bf_state_open(const char *dir, bool writable, struct bf_state **out, struct bf_error *err) {
  struct bf_state *st = bf_xcalloc(1, sizeof *st);
  st->dir = bf_xstrdup(dir);
  st->writable = writable;
  st->lock_fd = -1;
  st->journal_fd = -1;
  int rc = 0;
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
  slots_free(st->slots, st->cap);
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
    bf_buf_reset(&st->pending_records);
  }
  if (sync && fdatasync(st->journal_fd) < 0)
    return bf_error_set(err, BF_E_STATE, "%s/journal.bin: cannot sync: %s", st->dir,
                        strerror(errno));
  return 0;
}

int bf_state_fold(struct bf_state *st, struct bf_error *err) {
  int rc = bf_state_flush(st, true, err);
  if (rc) return rc;
  struct bf_buf body = {0};
  uint64_t count = 0;
  for (size_t i = 0; i < st->cap; i++) {
    const struct bf_state_entry *e = &st->slots[i];
    if (!(e->flags & BF_ST_PERSISTED)) continue;
    unsigned char rec[RECORD_SIZE] = {0};
    memcpy(rec, e->key, 16);
    memcpy(rec + 16, &e->fp, 8);
    uint32_t flags = e->flags & BF_ST_PERSISTED;
    memcpy(rec + 24, &flags, 4);
    bf_buf_append(&body, rec, sizeof rec);
    count++;
  }
  unsigned char header[HEADER_SIZE];
  make_header(header, BASE_MAGIC, st->generation + 1, count);
  crash_point("fold-base");
  rc = write_atomic(st, "state.bin", header, &body, err);
  bf_buf_release(&body);
  if (rc) return rc;
  st->generation++;
  crash_point("fold-journal");
  return reset_journal(st, err);
}

int bf_state_clear(struct bf_state *st, struct bf_error *err) {
  for (size_t i = 0; i < st->cap; i++) st->slots[i].flags &= ~BF_ST_PERSISTED;
  bf_buf_reset(&st->pending_records);
  return bf_state_fold(st, err);
}

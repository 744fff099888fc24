/* The identifier index; format and rules in idindex.h. */
#include "engine/idindex.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "util/fsutil.h"
#include "util/jsonw.h"
#include "util/keyfile.h"

#define MAGIC        "BFIDIX01"
#define COMPLETE_BIT 1ull
#define RECORD       BF_IDINDEX_RECORD

struct bf_idindex {
  char *path;
  int fd;
  bool durable;
  const struct bf_prf *prf;
  uint64_t columns_fp;
  bool complete;
  uint64_t records;       /* written whole (known once loaded) */
  bool loaded;            /* the pairs were read and checked (load) */
  bool no_dedupe;         /* a new index: pairs are not looked up before they are added */
  struct bf_error failed; /* a load that failed while adding, for the next commit */
  struct bf_buf pending;  /* records not yet written */
  /* Check words of the pairs in the file and queued (0 = empty slot): a
   * pair's check word identifies it (64 bits of XXH3 of the pair). */
  uint64_t *set;
  size_t cap, used;
};

static uint64_t check_word(const unsigned char *pair) {
  uint64_t h = XXH3_64bits(pair, 32);
  return h ? h : 1;
}

uint64_t bf_idindex_columns_fp(char *const *names, const int *kinds, size_t n) {
  XXH3_state_t *st = XXH3_createState();
  XXH3_64bits_reset(st);
  for (size_t i = 0; i < n; i++) {
    char kind[16];
    int len = snprintf(kind, sizeof kind, ":%d;", kinds[i]);
    XXH3_64bits_update(st, names[i], strlen(names[i]));
    XXH3_64bits_update(st, kind, (size_t)len);
  }
  uint64_t fp = XXH3_64bits_digest(st) & ~COMPLETE_BIT;
  XXH3_freeState(st);
  return fp;
}

static int io_error(const char *path, const char *what, struct bf_error *err) {
  return bf_error_set(err, BF_E_STATE, "%s: cannot %s: %s", path, what, strerror(errno));
}

/* Header and number of valid records of a file's bytes. */
static int parse(const char *path, const unsigned char *data, size_t len, const struct bf_prf *prf,
                 struct bf_keyfile_header *kh, uint64_t *valid, struct bf_error *err) {
  if (!bf_keyfile_header_decode(data, len, kh) || memcmp(kh->magic, MAGIC, 8) != 0)
    return bf_keyfile_damaged(err, path,
                              len == 0 ? "empty file" : "not a Backflow identifier index");
  int rc = prf ? bf_keyfile_check_key(path, kh->key_check, prf, err) : 0;
  if (rc) return rc;
  uint64_t n = 0;
  for (size_t off = BF_KEYFILE_HEADER; off + RECORD <= len; off += RECORD, n++) {
    uint64_t check;
    memcpy(&check, data + off + 32, 8);
    if (check != check_word(data + off)) break;
  }
  if (kh->committed > n) {
    char what[96];
    snprintf(what, sizeof what, "record %llu of %llu written is bad", (unsigned long long)n + 1,
             (unsigned long long)kh->committed);
    return bf_keyfile_damaged(err, path, what);
  }
  *valid = n;
  return 0;
}

static void set_grow(struct bf_idindex *ix);

static bool set_insert(struct bf_idindex *ix, uint64_t h) {
  if ((ix->used + 1) * 10 > ix->cap * 7) set_grow(ix);
  size_t mask = ix->cap - 1, i = (size_t)h & mask;
  while (ix->set[i]) {
    if (ix->set[i] == h) return false;
    i = (i + 1) & mask;
  }
  ix->set[i] = h;
  ix->used++;
  return true;
}

static void set_grow(struct bf_idindex *ix) {
  uint64_t *old = ix->set;
  size_t old_cap = ix->cap;
  ix->cap = ix->cap ? ix->cap * 2 : 1024;
  ix->set = bf_xcalloc(ix->cap, sizeof *ix->set);
  ix->used = 0;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i]) set_insert(ix, old[i]);
  free(old);
}

static void header_of(const struct bf_idindex *ix, uint64_t records, bool complete,
                      unsigned char out[BF_KEYFILE_HEADER]) {
  struct bf_keyfile_header kh = {.committed = records,
                                 .aux = ix->columns_fp | (complete ? COMPLETE_BIT : 0)};
  memcpy(kh.magic, MAGIC, 8);
  memcpy(kh.key_check, ix->prf->key_check, BF_KEY_CHECK_BYTES);
  bf_keyfile_header_encode(out, &kh);
}

static int write_header(struct bf_idindex *ix, struct bf_error *err) {
  unsigned char header[BF_KEYFILE_HEADER];
  header_of(ix, ix->records, ix->complete, header);
  if (pwrite(ix->fd, header, sizeof header, 0) != (ssize_t)sizeof header)
    return io_error(ix->path, "write the header of", err);
  return 0;
}

int bf_idindex_open(const char *sync_dir, const struct bf_prf *prf, bool durable,
                    uint64_t columns_fp, bool *complete, struct bf_idindex **out,
                    struct bf_error *err) {
  *out = NULL;
  *complete = false;
  struct bf_idindex *ix = bf_xcalloc(1, sizeof *ix);
  ix->path = bf_xasprintf("%s/%s", sync_dir, BF_IDINDEX_FILE);
  ix->prf = prf;
  ix->durable = durable;
  ix->columns_fp = columns_fp & ~COMPLETE_BIT;
  ix->fd = open(ix->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  int rc = 0;
  if (ix->fd < 0) {
    rc = io_error(ix->path, "open", err);
    goto fail;
  }
  struct stat sb;
  if (fstat(ix->fd, &sb) < 0) {
    rc = io_error(ix->path, "stat", err);
    goto fail;
  }
  bool fresh = sb.st_size == 0;
  if (!fresh) {
    /* Only the header now: a run that sends nothing never reads the pairs
     * (they are read, and checked, before the first pair is added). */
    unsigned char head[BF_KEYFILE_HEADER];
    ssize_t got = pread(ix->fd, head, sizeof head, 0);
    struct bf_keyfile_header kh;
    if (got < 0) {
      rc = io_error(ix->path, "read", err);
      goto fail;
    }
    if (!bf_keyfile_header_decode(head, (size_t)got, &kh) || memcmp(kh.magic, MAGIC, 8) != 0) {
      rc = bf_keyfile_damaged(err, ix->path, "not a Backflow identifier index");
      goto fail;
    }
    if ((rc = bf_keyfile_check_key(ix->path, kh.key_check, prf, err))) goto fail;
    if ((kh.aux & ~COMPLETE_BIT) != ix->columns_fp)
      fresh = true; /* other columns: what the old pairs say is not what is asked now */
    else
      ix->complete = kh.aux & COMPLETE_BIT;
  }
  if (fresh) {
    ix->records = 0;
    ix->complete = false;
    ix->loaded = true;
    /* Nothing to repeat: a run sends each record once, so a new index needs
     * no set of the pairs it holds (a full load's memory and time). */
    ix->no_dedupe = true;
    if (ftruncate(ix->fd, BF_KEYFILE_HEADER) < 0) {
      rc = io_error(ix->path, "repair", err);
      goto fail;
    }
    if ((rc = write_header(ix, err))) goto fail;
  }
  *complete = ix->complete;
  *out = ix;
  return 0;
fail:
  bf_idindex_close(ix);
  return rc;
}

/* Reads and checks the pairs (once): damage is an error, a torn tail is
 * cut so appends follow valid records. */
static int load(struct bf_idindex *ix, struct bf_error *err) {
  if (ix->loaded) return 0;
  unsigned char *data = NULL;
  size_t len = 0;
  if (bf_read_file(ix->path, &data, &len) < 0) return io_error(ix->path, "read", err);
  struct bf_keyfile_header kh;
  uint64_t valid;
  int rc = parse(ix->path, data, len, ix->prf, &kh, &valid, err);
  if (rc == 0) {
    ix->records = valid;
    for (uint64_t i = 0; i < valid; i++) {
      uint64_t check;
      memcpy(&check, data + BF_KEYFILE_HEADER + i * RECORD + 32, 8);
      set_insert(ix, check);
    }
    size_t end = BF_KEYFILE_HEADER + (size_t)valid * RECORD;
    if (end != len && ftruncate(ix->fd, (off_t)end) < 0) rc = io_error(ix->path, "repair", err);
  }
  free(data);
  if (rc == 0) ix->loaded = true;
  return rc;
}

void bf_idindex_add(struct bf_idindex *ix, const unsigned char ident[16],
                    const unsigned char key[16]) {
  if (ix->failed.code) return;
  if (!ix->loaded && load(ix, &ix->failed)) return; /* reported by the next commit */
  unsigned char rec[RECORD];
  memcpy(rec, ident, 16);
  memcpy(rec + 16, key, 16);
  uint64_t check = check_word(rec);
  if (ix->no_dedupe) {
    /* The pairs of one record come together (its email and phone columns):
     * the same pair twice is among the last ones queued. */
    size_t n = ix->pending.len / RECORD;
    for (size_t back = 0; back < 8 && back < n; back++) {
      const unsigned char *prev = (const unsigned char *)ix->pending.data + (n - 1 - back) * RECORD;
      if (memcmp(prev + 16, key, 16)) break;
      if (!memcmp(prev, ident, 16)) return;
    }
  } else if (!set_insert(ix, check)) {
    return;
  }
  memcpy(rec + 32, &check, 8);
  bf_buf_append(&ix->pending, rec, RECORD);
}

size_t bf_idindex_queued(const struct bf_idindex *ix) { return ix->pending.len / RECORD; }

int bf_idindex_commit(struct bf_idindex *ix, bool complete, struct bf_error *err) {
  if (ix->failed.code) {
    *err = ix->failed;
    return ix->failed.code;
  }
  complete = complete || ix->complete;
  if (ix->pending.len == 0 && complete == ix->complete) return 0;
  int lrc = load(ix, err); /* the header's count must be the file's */
  if (lrc) return lrc;
  off_t at = (off_t)(BF_KEYFILE_HEADER + ix->records * RECORD);
  if (ix->pending.len &&
      pwrite(ix->fd, ix->pending.data, ix->pending.len, at) != (ssize_t)ix->pending.len)
    return io_error(ix->path, "append to", err);
  if (ix->durable && fdatasync(ix->fd) < 0) return io_error(ix->path, "sync", err);
  ix->records += ix->pending.len / RECORD;
  ix->complete = complete;
  bf_buf_reset(&ix->pending);
  /* Without durability the header may reach the disk before the records
   * after a power loss, and the index would then read as damaged: it moves
   * only after a sync (here, or when the index closes). */
  return ix->durable ? write_header(ix, err) : 0;
}

void bf_idindex_close(struct bf_idindex *ix) {
  if (!ix) return;
  if (ix->fd >= 0) {
    struct bf_error ignored = {0};
    if (!ix->durable && ix->loaded && fdatasync(ix->fd) == 0) write_header(ix, &ignored);
    close(ix->fd);
  }
  bf_buf_release(&ix->pending);
  free(ix->set);
  free(ix->path);
  free(ix);
}

struct bf_idindex_snapshot {
  unsigned char *pairs; /* 32-byte pairs sorted by identifier */
  size_t n;
  bool complete;
};

static int cmp_pair(const void *a, const void *b) { return memcmp(a, b, 32); }

int bf_idindex_snapshot(const char *sync_dir, const struct bf_prf *prf,
                        struct bf_idindex_snapshot **out, struct bf_error *err) {
  struct bf_idindex_snapshot *snap = bf_xcalloc(1, sizeof *snap);
  *out = snap;
  char *path = bf_xasprintf("%s/%s", sync_dir, BF_IDINDEX_FILE);
  unsigned char *data = NULL;
  size_t len = 0;
  int rc = 0;
  if (bf_read_file(path, &data, &len) < 0) {
    if (errno != ENOENT) rc = io_error(path, "read", err);
    free(path);
    return rc;
  }
  struct bf_keyfile_header kh;
  uint64_t valid;
  if ((rc = parse(path, data, len, prf, &kh, &valid, err)) == 0) {
    snap->complete = kh.aux & COMPLETE_BIT;
    snap->pairs = bf_xcalloc(valid ? valid : 1, 32);
    for (uint64_t i = 0; i < valid; i++)
      memcpy(snap->pairs + i * 32, data + BF_KEYFILE_HEADER + i * RECORD, 32);
    snap->n = (size_t)valid;
    qsort(snap->pairs, snap->n, 32, cmp_pair);
  }
  free(data);
  free(path);
  return rc;
}

void bf_idindex_snapshot_lookup(const struct bf_idindex_snapshot *snap,
                                const unsigned char (*idents)[16], size_t n,
                                unsigned char (**keys)[16], size_t *n_keys, bool *indexed) {
  *keys = NULL;
  *n_keys = 0;
  *indexed = snap->complete;
  size_t cap = 0;
  for (size_t k = 0; k < n; k++) {
    size_t lo = 0, hi = snap->n; /* first pair whose identifier is >= idents[k] */
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (memcmp(snap->pairs + mid * 32, idents[k], 16) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
    for (size_t i = lo; i < snap->n && !memcmp(snap->pairs + i * 32, idents[k], 16); i++) {
      const unsigned char *key = snap->pairs + i * 32 + 16;
      bool seen = false;
      for (size_t j = 0; j < *n_keys && !seen; j++) seen = !memcmp((*keys)[j], key, 16);
      if (seen) continue;
      if (*n_keys == cap) {
        cap = cap ? cap * 2 : 4;
        *keys = bf_xrealloc(*keys, cap * 16);
      }
      memcpy((*keys)[(*n_keys)++], key, 16);
    }
  }
}

void bf_idindex_snapshot_free(struct bf_idindex_snapshot *snap) {
  if (!snap) return;
  free(snap->pairs);
  free(snap);
}

int bf_idindex_lookup(const char *sync_dir, const struct bf_prf *prf,
                      const unsigned char (*idents)[16], size_t n, unsigned char (**keys)[16],
                      size_t *n_keys, bool *indexed, struct bf_error *err) {
  struct bf_idindex_snapshot *snap = NULL;
  int rc = bf_idindex_snapshot(sync_dir, prf, &snap, err);
  if (rc == 0)
    bf_idindex_snapshot_lookup(snap, idents, n, keys, n_keys, indexed);
  else
    *keys = NULL, *n_keys = 0, *indexed = false;
  bf_idindex_snapshot_free(snap);
  return rc;
}

int bf_idindex_check(const char *sync_dir, const struct bf_prf *prf, long long *records,
                     bool *complete, struct bf_error *err) {
  if (records) *records = -1;
  if (complete) *complete = false;
  char *path = bf_xasprintf("%s/%s", sync_dir, BF_IDINDEX_FILE);
  unsigned char *data = NULL;
  size_t len = 0;
  int rc = 0;
  if (bf_read_file(path, &data, &len) < 0) {
    if (errno != ENOENT) rc = io_error(path, "read", err);
  } else {
    struct bf_keyfile_header kh;
    uint64_t valid;
    rc = parse(path, data, len, prf, &kh, &valid, err);
    if (rc == 0 && records) *records = (long long)valid;
    if (rc == 0 && complete) *complete = kh.aux & COMPLETE_BIT;
  }
  free(data);
  free(path);
  return rc;
}

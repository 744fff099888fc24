/* The vault is an append-only log, vault.bin:
 *   header: keyfile.h's (magic "BFVAULT2", key check, committed = end of
 *   the records written whole), or "BFVAULT1" alone (older projects; the
 *   next compaction or first append rewrites it)
 *   records: u32 payload_len | u8 op (1 put, 2 delete) | key[16] | payload | u32 check
 * A put's payload is the sealed identifier. Appends are one write() per batch
 * (random-key B-tree inserts cost thousands of page writes per batch; a log
 * costs one). The index (key -> latest record) is built only when a run needs
 * to read identifiers back, i.e. when it has deletes to send; the log is then
 * compacted if most of it is dead. A torn tail (crash mid-write) fails its
 * check word and is cut off. */
#include "engine/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/jsonw.h"
#include "util/keyfile.h"

#define MAGIC_V1    "BFVAULT1"
#define MAGIC       "BFVAULT2"
#define REC_HEADER  21 /* len + op + key */
#define MAX_PAYLOAD 65536
enum { OP_PUT = 1, OP_DELETE = 2 };

struct slot {
  unsigned char key[16];
  uint64_t off; /* of the record in data; 0 = empty slot */
};

struct bf_vault {
  char *path;
  char *dir;
  int fd;
  bool durable;
  bool v1;       /* an older log: rewritten in the current format on open */
  size_t header; /* bytes before the first record */
  size_t end;    /* of the records written */
  const struct bf_prf *prf;
  struct bf_buf pending; /* records not yet written */
  /* Index, built on first get. */
  unsigned char *data;
  size_t data_len, data_cap; /* data_cap 0: as read (data_len bytes) */
  struct slot *slots;
  size_t cap, live, dead;
};

static uint32_t check_word(const unsigned char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h ? h : 1;
}

/* End of the valid records from off, stopping at the first bad one. */
static size_t valid_from(const unsigned char *data, size_t len, size_t off) {
  while (off + REC_HEADER + 4 <= len) {
    uint32_t plen;
    memcpy(&plen, data + off, 4);
    if (plen > MAX_PAYLOAD || off + REC_HEADER + plen + 4 > len) break;
    uint32_t check;
    memcpy(&check, data + off + REC_HEADER + plen, 4);
    unsigned char op = data[off + 4];
    if ((op != OP_PUT && op != OP_DELETE) || check != check_word(data + off, REC_HEADER + plen))
      break;
    off += REC_HEADER + plen + 4;
  }
  return off;
}

/* Reads the header and finds the end of the valid records. Records up to
 * the committed end were written whole: a bad one there is damage, not a
 * torn tail. */
static int parse(const char *path, const unsigned char *data, size_t len, const struct bf_prf *prf,
                 size_t *header, size_t *end, bool *v1, struct bf_error *err) {
  struct bf_keyfile_header kh;
  *v1 = false;
  if (bf_keyfile_header_decode(data, len, &kh) && memcmp(kh.magic, MAGIC, 8) == 0) {
    int rc = bf_keyfile_check_key(path, kh.key_check, prf, err);
    if (rc) return rc;
    *header = BF_KEYFILE_HEADER;
    *end = valid_from(data, len, BF_KEYFILE_HEADER);
    if (kh.committed > *end || kh.committed < BF_KEYFILE_HEADER) {
      char what[96];
      snprintf(what, sizeof what, "records end at byte %zu, %llu were written", *end,
               (unsigned long long)kh.committed);
      return bf_keyfile_damaged(err, path, what);
    }
    return 0;
  }
  if (len >= 8 && memcmp(data, MAGIC_V1, 8) == 0) {
    *v1 = true;
    *header = 8;
    *end = valid_from(data, len, 8);
    return 0;
  }
  return bf_keyfile_damaged(err, path, len == 0 ? "empty file" : "not a Backflow vault");
}

static void header_of(const struct bf_vault *v, uint64_t committed,
                      unsigned char out[BF_KEYFILE_HEADER]) {
  struct bf_keyfile_header kh = {.committed = committed};
  memcpy(kh.magic, MAGIC, 8);
  memcpy(kh.key_check, v->prf->key_check, BF_KEY_CHECK_BYTES);
  bf_keyfile_header_encode(out, &kh);
}

static int vault_io_error(struct bf_vault *v, const char *what, struct bf_error *err) {
  return bf_error_set(err, BF_E_STATE, "%s: cannot %s: %s", v->path, what, strerror(errno));
}

int bf_vault_open(const char *sync_dir, const struct bf_prf *prf, bool durable,
                  struct bf_vault **out, struct bf_error *err) {
  struct bf_vault *v = bf_xcalloc(1, sizeof *v);
  v->dir = bf_xstrdup(sync_dir);
  v->path = bf_xasprintf("%s/vault.bin", sync_dir);
  v->prf = prf;
  v->durable = durable;
  v->fd = open(v->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  int rc = 0;
  if (v->fd < 0) {
    rc = vault_io_error(v, "open", err);
    goto fail;
  }
  struct stat sb;
  if (fstat(v->fd, &sb) < 0) {
    rc = vault_io_error(v, "stat", err);
    goto fail;
  }
  if (sb.st_size == 0) {
    unsigned char header[BF_KEYFILE_HEADER];
    header_of(v, BF_KEYFILE_HEADER, header);
    if (write(v->fd, header, sizeof header) != (ssize_t)sizeof header) {
      rc = vault_io_error(v, "write", err);
      goto fail;
    }
    v->header = v->end = BF_KEYFILE_HEADER;
  } else {
    unsigned char *data;
    size_t len;
    if (bf_read_file(v->path, &data, &len) < 0) {
      rc = vault_io_error(v, "read", err);
      goto fail;
    }
    rc = parse(v->path, data, len, prf, &v->header, &v->end, &v->v1, err);
    if (rc == 0 && v->v1) {
      /* Rewritten whole in the current format, records unchanged. */
      unsigned char header[BF_KEYFILE_HEADER];
      size_t records = v->end - v->header;
      header_of(v, BF_KEYFILE_HEADER + records, header);
      char *failed_at = NULL;
      if (bf_write_file_atomic(v->path, header, sizeof header, data + v->header, records,
                               &failed_at) < 0) {
        rc = bf_error_set(err, BF_E_STATE, "%s: cannot write: %s", failed_at, strerror(errno));
        free(failed_at);
      } else {
        close(v->fd);
        v->fd = open(v->path, O_RDWR | O_CLOEXEC);
        if (v->fd < 0) rc = vault_io_error(v, "open", err);
        v->header = BF_KEYFILE_HEADER;
        v->end = BF_KEYFILE_HEADER + records;
        v->v1 = false;
        len = v->end;
      }
    }
    free(data);
    if (rc) goto fail;
    /* Cut a torn tail so appends follow valid records. */
    if (v->end != len && ftruncate(v->fd, (off_t)v->end) < 0) {
      rc = vault_io_error(v, "repair", err);
      goto fail;
    }
  }
  if (lseek(v->fd, 0, SEEK_END) < 0) {
    rc = vault_io_error(v, "seek", err);
    goto fail;
  }
  *out = v;
  return 0;
fail:
  bf_vault_close(v);
  return rc;
}

static void append(struct bf_vault *v, int op, const unsigned char key[16], const void *payload,
                   uint32_t len) {
  size_t start = v->pending.len;
  bf_buf_append(&v->pending, &len, 4);
  unsigned char opb = (unsigned char)op;
  bf_buf_append(&v->pending, &opb, 1);
  bf_buf_append(&v->pending, key, 16);
  if (len) bf_buf_append(&v->pending, payload, len);
  uint32_t check = check_word((unsigned char *)v->pending.data + start, REC_HEADER + len);
  bf_buf_append(&v->pending, &check, 4);
}

static struct slot *index_find(struct bf_vault *v, const unsigned char key[16], bool *found) {
  uint64_t h;
  memcpy(&h, key, 8);
  size_t mask = v->cap - 1, i = (size_t)h & mask;
  while (v->slots[i].off) {
    if (memcmp(v->slots[i].key, key, 16) == 0) {
      *found = true;
      return &v->slots[i];
    }
    i = (i + 1) & mask;
  }
  *found = false;
  return &v->slots[i];
}

static void build_index(struct bf_vault *v) {
  v->data_cap = 0;
  if (bf_read_file(v->path, &v->data, &v->data_len) < 0) {
    v->data = NULL;
    v->data_len = 0;
  }
  size_t end =
      v->data && v->data_len >= v->header ? valid_from(v->data, v->data_len, v->header) : 0;
  size_t records = 0;
  for (size_t off = v->header; off < end;) {
    uint32_t plen;
    memcpy(&plen, v->data + off, 4);
    off += REC_HEADER + plen + 4;
    records++;
  }
  v->cap = 1024;
  while (v->cap < records * 2) v->cap *= 2;
  v->slots = bf_xcalloc(v->cap, sizeof *v->slots);
  v->live = v->dead = 0;
  for (size_t off = v->header; off < end;) {
    uint32_t plen;
    memcpy(&plen, v->data + off, 4);
    const unsigned char *key = v->data + off + 5;
    bool found;
    struct slot *s = index_find(v, key, &found);
    if (!found) {
      memcpy(s->key, key, 16);
      v->live++;
    } else {
      v->dead++;
    }
    s->off = off;
    off += REC_HEADER + plen + 4;
  }
}

/* Adds the records just written (v->pending) to a loaded index. */
static void index_append(struct bf_vault *v) {
  if ((v->live + v->dead + v->pending.len / (REC_HEADER + 4)) * 10 > v->cap * 7) {
    free(v->data); /* rare: rebuild from the file, which now holds them */
    free(v->slots);
    v->data = NULL;
    v->slots = NULL;
    build_index(v);
    return;
  }
  size_t base = v->data_len;
  if (v->data_len + v->pending.len + 1 > v->data_cap) {
    /* Grown geometrically: a batch of erasures commits once per person. */
    size_t cap = v->data_cap ? v->data_cap : v->data_len + 1;
    while (cap < v->data_len + v->pending.len + 1) cap *= 2;
    v->data = bf_xrealloc(v->data, cap);
    v->data_cap = cap;
  }
  if (v->pending.len) memcpy(v->data + base, v->pending.data, v->pending.len);
  v->data_len += v->pending.len;
  for (size_t off = base; off < v->data_len;) {
    uint32_t plen;
    memcpy(&plen, v->data + off, 4);
    bool found;
    struct slot *s = index_find(v, v->data + off + 5, &found);
    if (!found) {
      memcpy(s->key, v->data + off + 5, 16);
      v->live++;
    } else {
      v->dead++;
    }
    s->off = off;
    off += REC_HEADER + plen + 4;
  }
}

int bf_vault_begin(struct bf_vault *v, struct bf_error *err) {
  bf_buf_reset(&v->pending);
  return 0;
}

int bf_vault_put(struct bf_vault *v, const unsigned char key[16], const char *plain, size_t len,
                 struct bf_error *err) {
  if (len > MAX_PAYLOAD - 64)
    return bf_error_set(err, BF_E_STATE, "%s: identifier of %zu bytes is too long to keep", v->path,
                        len);
  size_t sealed_len;
  unsigned char *sealed = bf_prf_seal(v->prf, plain, len, &sealed_len);
  append(v, OP_PUT, key, sealed, (uint32_t)sealed_len);
  free(sealed);
  return 0;
}

int bf_vault_delete(struct bf_vault *v, const unsigned char key[16], struct bf_error *err) {
  append(v, OP_DELETE, key, NULL, 0);
  return 0;
}

int bf_vault_commit(struct bf_vault *v, struct bf_error *err) {
  if (bf_write_all(v->fd, v->pending.data, v->pending.len) < 0)
    return vault_io_error(v, "append", err);
  if (v->durable && fdatasync(v->fd) < 0) return vault_io_error(v, "sync", err);
  v->end += v->pending.len;
  /* Without durability the header may reach the disk before the records
   * after a power loss, and the log would then read as damaged: it moves
   * only with a sync. */
  if (v->durable && bf_keyfile_set_committed(v->fd, v->end) < 0)
    return vault_io_error(v, "update the header of", err);
  if (v->slots) index_append(v);
  bf_buf_reset(&v->pending);
  return 0;
}

char *bf_vault_get(struct bf_vault *v, const unsigned char key[16], size_t *len) {
  if (!v->slots) build_index(v);
  bool found;
  struct slot *s = index_find(v, key, &found);
  if (!found || v->data[s->off + 4] != OP_PUT) return NULL;
  uint32_t plen;
  memcpy(&plen, v->data + s->off, 4);
  return bf_prf_open(v->prf, v->data + s->off + REC_HEADER, plen, len);
}

/* Rewrites the log with only the latest put of each key, when most of it is
 * dead. Crash-safe: tmp file, fsync, rename. */
static void compact(struct bf_vault *v) {
  if (!v->slots || v->dead < v->live || v->data_len < (1u << 20)) return;
  struct bf_buf out = {0};
  unsigned char header[BF_KEYFILE_HEADER];
  bf_buf_append(&out, header, sizeof header);
  for (size_t i = 0; i < v->cap; i++) {
    if (!v->slots[i].off || v->data[v->slots[i].off + 4] != OP_PUT) continue;
    uint32_t plen;
    memcpy(&plen, v->data + v->slots[i].off, 4);
    bf_buf_append(&out, v->data + v->slots[i].off, REC_HEADER + plen + 4);
  }
  header_of(v, out.len, header);
  memcpy(out.data, header, sizeof header);
  char *failed_at = NULL; /* compaction is an optimisation: a failure keeps the old log */
  bf_write_file_atomic(v->path, out.data, out.len, NULL, 0, &failed_at);
  free(failed_at);
  bf_buf_release(&out);
}

void bf_vault_close(struct bf_vault *v) {
  if (!v) return;
  if (v->fd >= 0) {
    /* A log appended without syncs is committed once, when it closes. */
    if (!v->durable && v->end > BF_KEYFILE_HEADER && fdatasync(v->fd) == 0)
      bf_keyfile_set_committed(v->fd, v->end);
    compact(v);
    close(v->fd);
  }
  bf_buf_release(&v->pending);
  free(v->data);
  free(v->slots);
  free(v->path);
  free(v->dir);
  free(v);
}

long long bf_vault_live_entries(const char *path) {
  unsigned char *data;
  size_t len;
  if (bf_read_file(path, &data, &len) < 0) return -1;
  size_t header = len >= 8 && memcmp(data, MAGIC_V1, 8) == 0                ? 8
                  : len >= BF_KEYFILE_HEADER && memcmp(data, MAGIC, 8) == 0 ? BF_KEYFILE_HEADER
                                                                            : 0;
  if (!header) {
    free(data);
    return -1;
  }
  size_t end = valid_from(data, len, header), records = 0;
  for (size_t off = header; off < end; records++) {
    uint32_t plen;
    memcpy(&plen, data + off, 4);
    off += REC_HEADER + plen + 4;
  }
  struct bf_vault v = {.cap = 1024};
  while (v.cap < records * 2) v.cap *= 2;
  v.slots = bf_xcalloc(v.cap, sizeof *v.slots);
  long long live = 0;
  for (size_t off = header; off < end;) {
    uint32_t plen;
    memcpy(&plen, data + off, 4);
    bool found;
    struct slot *sl = index_find(&v, data + off + 5, &found);
    bool was_live = found && data[sl->off + 4] == OP_PUT;
    memcpy(sl->key, data + off + 5, 16);
    sl->off = off;
    if (data[off + 4] == OP_PUT && !was_live) live++;
    if (data[off + 4] == OP_DELETE && was_live) live--;
    off += REC_HEADER + plen + 4;
  }
  free(v.slots);
  free(data);
  return live;
}

int bf_vault_check(const char *sync_dir, const struct bf_prf *prf, struct bf_error *err) {
  char *path = bf_xasprintf("%s/vault.bin", sync_dir);
  unsigned char *data = NULL;
  size_t len = 0, header, end;
  bool v1;
  int rc = 0;
  if (bf_read_file(path, &data, &len) < 0) {
    if (errno != ENOENT)
      rc = bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", path, strerror(errno));
  } else {
    rc = parse(path, data, len, prf, &header, &end, &v1, err);
  }
  free(data);
  free(path);
  return rc;
}

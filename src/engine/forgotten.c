/* The suppression list of erased people; format in forgotten.h. */
#include "engine/forgotten.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/fsutil.h"
#include "util/jsonw.h"
#include "util/keyfile.h"
#include "util/pii_normalize.h"

#define MAGIC_V1  "BFFORGT1"
#define HEADER_V1 8
#define MAGIC     "BFFORGT2"
#define RECORD    48

void bf_forgotten_identifier_hash(const struct bf_prf *prf, int kind, const char *norm, size_t n,
                                  unsigned char out[16]) {
  /* SipHash-2-4-128 under the first half of the PII subkey (runs hash every
   * email of every row once someone was erased by email: it must be cheap),
   * domain-separated: an email and a phone with the same text differ. */
  unsigned char buf[2 + BF_PII_MAX];
  if (n > BF_PII_MAX) n = BF_PII_MAX;
  buf[0] = 'i';
  buf[1] = (unsigned char)kind;
  memcpy(buf + 2, norm, n);
  crypto_shorthash_siphashx24(out, buf, n + 2, prf->pii_hash_key);
}

uint64_t bf_forgotten_model_scope(const char *model) {
  unsigned char h[8];
  crypto_generichash(h, sizeof h, (const unsigned char *)model, strlen(model),
                     (const unsigned char *)"bf-forgotten-scope", 18);
  uint64_t v;
  memcpy(&v, h, 8);
  return v ? v : 1;
}

static uint64_t check_word(const unsigned char *rec) {
  unsigned char h[8];
  crypto_generichash(h, sizeof h, rec, RECORD - 8, NULL, 0);
  uint64_t v;
  memcpy(&v, h, 8);
  return v;
}

static void encode(const struct bf_forgotten_entry *e, unsigned char rec[RECORD]) {
  memset(rec, 0, RECORD);
  rec[0] = e->kind;
  memcpy(rec + 8, &e->scope, 8);
  memcpy(rec + 16, e->hash, 16);
  memcpy(rec + 32, &e->request, 8);
  uint64_t check = check_word(rec);
  memcpy(rec + 40, &check, 8);
}

static bool decode(const unsigned char *rec, struct bf_forgotten_entry *e) {
  uint64_t check;
  memcpy(&check, rec + 40, 8);
  if (check != check_word(rec)) return false;
  if (rec[0] < BF_FORGOTTEN_KEY || rec[0] > BF_FORGOTTEN_PHONE) return false;
  e->kind = rec[0];
  memcpy(&e->scope, rec + 8, 8);
  memcpy(e->hash, rec + 16, 16);
  memcpy(&e->request, rec + 32, 8);
  return true;
}

/* The file as read: its format, and its entries up to the last valid one.
 * Version 2 (keyfile header, committed = entries written and synced): an
 * entry before the committed count that fails its check, or fewer entries
 * than committed, is damage (an erased person must never quietly drop off
 * the list); after it, only a torn tail. Version 1 (8-byte magic) keeps its
 * old reading: damaged entries are skipped. */
struct parsed {
  bool v2;
  size_t header, end; /* end: of the last valid entry */
  struct bf_keyfile_header kh;
};

static int parse(const char *path, const unsigned char *data, size_t len, struct parsed *out,
                 struct bf_error *err) {
  memset(out, 0, sizeof *out);
  struct bf_forgotten_entry e;
  if (bf_keyfile_header_decode(data, len, &out->kh) && memcmp(out->kh.magic, MAGIC, 8) == 0) {
    out->v2 = true;
    out->header = out->end = BF_KEYFILE_HEADER;
    uint64_t present = (len - BF_KEYFILE_HEADER) / RECORD;
    if (out->kh.committed > present) {
      char what[96];
      snprintf(what, sizeof what, "%llu entries written, %llu present",
               (unsigned long long)out->kh.committed, (unsigned long long)present);
      return bf_keyfile_damaged(err, path, what);
    }
    for (uint64_t i = 0; i < present; i++) {
      if (decode(data + out->header + i * RECORD, &e)) {
        out->end = out->header + (i + 1) * RECORD;
        continue;
      }
      if (i < out->kh.committed) {
        char what[96];
        snprintf(what, sizeof what, "entry %llu of %llu fails its check", (unsigned long long)i + 1,
                 (unsigned long long)out->kh.committed);
        return bf_keyfile_damaged(err, path, what);
      }
      break;
    }
    return 0;
  }
  if (len >= HEADER_V1 && memcmp(data, MAGIC_V1, HEADER_V1) == 0) {
    out->header = out->end = HEADER_V1;
    for (size_t off = HEADER_V1; off + RECORD <= len; off += RECORD)
      if (decode(data + off, &e)) out->end = off + RECORD;
    return 0;
  }
  return bf_keyfile_damaged(err, path, len == 0 ? "empty file" : "not a Backflow suppression list");
}

static char *list_path(const char *state_dir) {
  return bf_xasprintf("%s/%s", state_dir, BF_FORGOTTEN_FILE);
}

static void encode_all(const struct parsed *ps, const unsigned char *data,
                       const struct bf_forgotten_entry *entries, size_t n, struct bf_buf *out) {
  struct bf_forgotten_entry e;
  for (size_t off = ps->header; off + RECORD <= ps->end; off += RECORD)
    if (decode(data + off, &e)) bf_buf_append(out, data + off, RECORD);
  unsigned char rec[RECORD];
  for (size_t i = 0; i < n; i++) {
    encode(&entries[i], rec);
    bf_buf_append(out, rec, RECORD);
  }
}

int bf_forgotten_append(const char *state_dir, const struct bf_prf *prf,
                        const struct bf_forgotten_entry *entries, size_t n, struct bf_error *err) {
  if (n == 0) return 0;
  char *path = list_path(state_dir);
  int rc = 0;
  if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot create: %s", state_dir, strerror(errno));
    free(path);
    return rc;
  }
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  unsigned char *data = NULL;
  size_t len = 0;
  struct bf_buf recs = {0};
  struct parsed ps = {0};
  if (fd < 0 || flock(fd, LOCK_EX) < 0) goto io_error;
  struct stat sb;
  if (fstat(fd, &sb) < 0) goto io_error;
  if (sb.st_size > 0) {
    if (bf_read_file(path, &data, &len) < 0) goto io_error;
    if ((rc = parse(path, data, len, &ps, err))) goto out;
    if (ps.v2 && (rc = bf_keyfile_check_key(path, ps.kh.key_check, prf, err))) goto out;
  }
  if (!ps.v2) {
    /* New, or the old format: written whole, atomically, in the new one. */
    struct bf_keyfile_header kh = {.committed = 0};
    memcpy(kh.magic, MAGIC, 8);
    memcpy(kh.key_check, prf->key_check, BF_KEY_CHECK_BYTES);
    unsigned char header[BF_KEYFILE_HEADER];
    encode_all(&ps, data, entries, n, &recs);
    kh.committed = recs.len / RECORD;
    bf_keyfile_header_encode(header, &kh);
    char *failed_at = NULL;
    if (bf_write_file_atomic(path, header, sizeof header, recs.data, recs.len, &failed_at) < 0) {
      rc = bf_error_set(err, BF_E_STATE, "%s: cannot write: %s", failed_at, strerror(errno));
      free(failed_at);
    }
    goto out;
  }
  if (ps.end != len && ftruncate(fd, (off_t)ps.end) < 0) goto io_error; /* a torn tail */
  if (lseek(fd, (off_t)ps.end, SEEK_SET) < 0) goto io_error;
  encode_all(&(struct parsed){.header = ps.end, .end = ps.end}, NULL, entries, n, &recs);
  if (bf_write_all(fd, recs.data, recs.len) < 0 || fdatasync(fd) < 0) goto io_error;
  /* Synced entries only, so the count never runs ahead of the disk. */
  if (bf_keyfile_set_committed(fd, (ps.end - ps.header) / RECORD + n) < 0 || fdatasync(fd) < 0)
    goto io_error;
  goto out;
io_error:
  rc = bf_error_set(err, BF_E_STATE, "%s: cannot append: %s", path, strerror(errno));
out:
  if (fd >= 0) close(fd); /* releases the flock */
  bf_buf_release(&recs);
  free(data);
  free(path);
  return rc;
}

int bf_forgotten_lift(const char *state_dir, const struct bf_prf *prf, uint64_t request,
                      size_t *removed, struct bf_error *err) {
  *removed = 0;
  char *path = list_path(state_dir);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  unsigned char *data = NULL;
  size_t len = 0;
  struct bf_buf recs = {0};
  struct parsed ps = {0};
  int rc = 0;
  if (fd < 0 && errno == ENOENT) goto out; /* nobody was ever erased */
  if (fd < 0 || flock(fd, LOCK_EX) < 0 || bf_read_file(path, &data, &len) < 0) goto io_error;
  if ((rc = parse(path, data, len, &ps, err))) goto out;
  if (ps.v2 && (rc = bf_keyfile_check_key(path, ps.kh.key_check, prf, err))) goto out;
  struct bf_forgotten_entry e;
  for (size_t off = ps.header; off + RECORD <= ps.end; off += RECORD) {
    if (!decode(data + off, &e)) continue; /* a damaged record goes with the rewrite */
    if ((e.request ? e.request : 1) == request)
      (*removed)++;
    else
      bf_buf_append(&recs, data + off, RECORD);
  }
  if (*removed == 0) goto out;
  struct bf_keyfile_header kh = {.committed = recs.len / RECORD};
  memcpy(kh.magic, MAGIC, 8);
  memcpy(kh.key_check, prf->key_check, BF_KEY_CHECK_BYTES);
  unsigned char header[BF_KEYFILE_HEADER];
  bf_keyfile_header_encode(header, &kh);
  char *failed_at = NULL;
  if (bf_write_file_atomic(path, header, sizeof header, recs.data, recs.len, &failed_at) < 0) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot write: %s", failed_at, strerror(errno));
    free(failed_at);
  }
  goto out;
io_error:
  rc = bf_error_set(err, BF_E_STATE, "%s: cannot rewrite: %s", path, strerror(errno));
out:
  if (fd >= 0) close(fd);
  bf_buf_release(&recs);
  free(data);
  free(path);
  return rc;
}

int bf_forgotten_read(const char *state_dir, const struct bf_prf *prf,
                      struct bf_forgotten_entry **out, size_t *n, struct bf_error *err) {
  *out = NULL;
  *n = 0;
  char *path = list_path(state_dir);
  unsigned char *data = NULL;
  size_t len = 0;
  if (bf_read_file(path, &data, &len) < 0) {
    int rc = errno == ENOENT
                 ? 0
                 : bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", path, strerror(errno));
    free(path);
    return rc;
  }
  struct parsed ps;
  int rc = parse(path, data, len, &ps, err);
  if (rc == 0 && ps.v2 && prf) rc = bf_keyfile_check_key(path, ps.kh.key_check, prf, err);
  if (rc == 0 && ps.end > ps.header) {
    *out = bf_xcalloc((ps.end - ps.header) / RECORD, sizeof **out);
    for (size_t off = ps.header; off < ps.end; off += RECORD)
      if (decode(data + off, &(*out)[*n])) (*n)++;
  }
  free(data);
  free(path);
  return rc;
}

size_t bf_forgotten_count(const char *state_dir) {
  struct bf_forgotten_entry *e;
  size_t n = 0;
  struct bf_error err = {0};
  bf_forgotten_read(state_dir, NULL, &e, &n, &err);
  free(e);
  return n;
}

int bf_forgotten_max_request(const char *state_dir, uint64_t *out, struct bf_error *err) {
  struct bf_forgotten_entry *e;
  size_t n;
  *out = 0;
  int rc = bf_forgotten_read(state_dir, NULL, &e, &n, err);
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (e[i].request > *out) *out = e[i].request;
  free(e);
  return rc;
}

/* ---- the runner's filter ----------------------------------------------- */

struct slot {
  unsigned char hash[16];
  uint64_t request; /* 0 = empty */
  uint8_t kind;
};

struct bf_forgotten_filter {
  const struct bf_prf *prf;
  struct slot *slots;
  size_t mask;
  size_t n_keys, n_emails, n_phones;
  size_t *email_cols, n_email_cols;
  size_t *phone_cols, n_phone_cols;
  char reason[64];
};

static struct slot *slot_for(struct bf_forgotten_filter *f, uint8_t kind,
                             const unsigned char *hash) {
  uint64_t h;
  memcpy(&h, hash, 8);
  size_t i = (size_t)(h ^ kind) & f->mask;
  while (f->slots[i].request && !(f->slots[i].kind == kind && !memcmp(f->slots[i].hash, hash, 16)))
    i = (i + 1) & f->mask;
  return &f->slots[i];
}

static void cols_of_kind(const struct bf_model_config *model, const char *kind,
                         char *const *columns, size_t ncols, size_t **out, size_t *n) {
  *out = bf_xcalloc(model->pii.n ? model->pii.n : 1, sizeof **out);
  *n = 0;
  for (size_t i = 0; i < model->pii.n; i++) {
    if (strcmp(model->pii.items[i].value, kind)) continue;
    for (size_t c = 0; c < ncols; c++) {
      if (!strcmp(columns[c], model->pii.items[i].key)) {
        (*out)[(*n)++] = c;
        break;
      }
    }
  }
}

int bf_forgotten_filter_open(const char *state_dir, const struct bf_prf *prf,
                             const struct bf_model_config *model, char *const *columns,
                             size_t ncols, struct bf_forgotten_filter **out, struct bf_error *err) {
  *out = NULL;
  struct bf_forgotten_entry *e;
  size_t n;
  /* prf may not hold the secret yet: its key check was verified when the
   * secret was loaded (bf_project_secret). */
  int rc = bf_forgotten_read(state_dir, NULL, &e, &n, err);
  if (rc || n == 0) return rc;
  struct bf_forgotten_filter *f = bf_xcalloc(1, sizeof *f);
  f->prf = prf;
  cols_of_kind(model, "email", columns, ncols, &f->email_cols, &f->n_email_cols);
  cols_of_kind(model, "phone", columns, ncols, &f->phone_cols, &f->n_phone_cols);
  uint64_t scope = bf_forgotten_model_scope(model->name);
  size_t cap = 16;
  while (cap < n * 2) cap *= 2;
  f->slots = bf_xcalloc(cap, sizeof *f->slots);
  f->mask = cap - 1;
  for (size_t i = 0; i < n; i++) {
    const struct bf_forgotten_entry *x = &e[i];
    if (x->kind == BF_FORGOTTEN_KEY && x->scope != scope) continue;
    if (x->kind == BF_FORGOTTEN_EMAIL && !f->n_email_cols) continue;
    if (x->kind == BF_FORGOTTEN_PHONE && !f->n_phone_cols) continue;
    struct slot *s = slot_for(f, x->kind, x->hash);
    if (s->request) continue; /* the earliest request names it */
    memcpy(s->hash, x->hash, 16);
    s->kind = x->kind;
    s->request = x->request ? x->request : 1;
    if (x->kind == BF_FORGOTTEN_KEY)
      f->n_keys++;
    else if (x->kind == BF_FORGOTTEN_EMAIL)
      f->n_emails++;
    else
      f->n_phones++;
  }
  free(e);
  if (f->n_keys + f->n_emails + f->n_phones == 0) {
    bf_forgotten_filter_free(f);
    return 0;
  }
  *out = f;
  return 0;
}

static bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Hot path (every email of every row, once someone was erased by email).
 * For pure ASCII, bf_pii_meta_email is trim + lower case plus checks that
 * only say whether the value is an email at all; an erased email passed
 * them, so a value that trims and lowers to it is one too. Anything else
 * (Unicode spaces, non-ASCII letters) takes the full normaliser, so a value
 * erased as "José@x" still matches "JOSÉ@x\u00a0". */
static int email_norm(const char *s, size_t n, char out[BF_PII_MAX]) {
  while (n && is_space((unsigned char)*s)) s++, n--;
  while (n && is_space((unsigned char)s[n - 1])) n--;
  if (n == 0 || n > 254) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) {
      const char *why;
      return bf_pii_meta_email(s, n, out, &why);
    }
    out[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
  }
  return (int)n;
}

bool bf_forgotten_value_hash(const struct bf_prf *prf, int kind, const struct bf_value *v,
                             unsigned char out[16]) {
  char num[48], norm[BF_PII_MAX];
  const char *s, *why;
  size_t n;
  if (!bf_pii_value_text(v, num, sizeof num, &s, &n)) return false;
  int len =
      kind == BF_FORGOTTEN_EMAIL ? email_norm(s, n, norm) : bf_pii_meta_phone(s, n, norm, &why);
  if (len < 0) return false;
  bf_forgotten_identifier_hash(prf, kind, norm, (size_t)len, out);
  return true;
}

static uint64_t match_identifier(struct bf_forgotten_filter *f, int kind, const size_t *cols,
                                 size_t ncols, const struct bf_value *row) {
  for (size_t i = 0; i < ncols; i++) {
    unsigned char h[16];
    if (!bf_forgotten_value_hash(f->prf, kind, &row[cols[i]], h)) continue;
    struct slot *sl = slot_for(f, (uint8_t)kind, h);
    if (sl->request) return sl->request;
  }
  return 0;
}

const char *bf_forgotten_filter_match(struct bf_forgotten_filter *f, const struct bf_value *row,
                                      const unsigned char key[16]) {
  uint64_t req = 0;
  if (f->n_keys) req = slot_for(f, BF_FORGOTTEN_KEY, key)->request;
  if (!req && f->n_emails)
    req = match_identifier(f, BF_FORGOTTEN_EMAIL, f->email_cols, f->n_email_cols, row);
  if (!req && f->n_phones)
    req = match_identifier(f, BF_FORGOTTEN_PHONE, f->phone_cols, f->n_phone_cols, row);
  if (!req) return NULL;
  snprintf(f->reason, sizeof f->reason, "forgotten (erasure request %llu)",
           (unsigned long long)req);
  return f->reason;
}

void bf_forgotten_filter_free(struct bf_forgotten_filter *f) {
  if (!f) return;
  free(f->slots);
  free(f->email_cols);
  free(f->phone_cols);
  free(f);
}

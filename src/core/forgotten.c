/* The suppression list of erased people; format in forgotten.h. */
#include "core/forgotten.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/fsutil.h"
#include "core/pii_normalize.h"

#define MAGIC  "BFFORGT1"
#define HEADER 8
#define RECORD 48

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

/* End of the last valid record (HEADER when there is none), or 0 when the
 * file is not a suppression list. Records are fixed-size, so one damaged
 * record (a bad check word) does not hide the ones after it; only what
 * follows the last valid record is a torn tail. */
static size_t valid_end(const unsigned char *data, size_t len) {
  if (len < HEADER || memcmp(data, MAGIC, HEADER) != 0) return 0;
  size_t end = HEADER;
  struct bf_forgotten_entry e;
  for (size_t off = HEADER; off + RECORD <= len; off += RECORD)
    if (decode(data + off, &e)) end = off + RECORD;
  return end;
}

static char *list_path(const char *state_dir) {
  return bf_xasprintf("%s/%s", state_dir, BF_FORGOTTEN_FILE);
}

int bf_forgotten_append(const char *state_dir, const struct bf_forgotten_entry *entries, size_t n,
                        struct bf_error *err) {
  if (n == 0) return 0;
  char *path = list_path(state_dir);
  int rc = 0;
  if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot create: %s", state_dir, strerror(errno));
    free(path);
    return rc;
  }
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  unsigned char *data = NULL, *recs = NULL;
  size_t len = 0;
  bool created = false;
  if (fd < 0 || flock(fd, LOCK_EX) < 0) goto io_error;
  struct stat sb;
  if (fstat(fd, &sb) < 0) goto io_error;
  if (sb.st_size == 0) {
    created = true;
    if (bf_write_all(fd, MAGIC, HEADER) < 0) goto io_error;
    len = HEADER;
  } else {
    if (bf_read_file(path, &data, &len) < 0) goto io_error;
    size_t valid = valid_end(data, len);
    if (valid == 0) {
      rc = bf_error_set(err, BF_E_STATE, "%s: not a Backflow suppression list", path);
      goto out;
    }
    if (valid != len && ftruncate(fd, (off_t)valid) < 0) goto io_error; /* a torn tail */
    len = valid;
  }
  if (lseek(fd, (off_t)len, SEEK_SET) < 0) goto io_error;
  recs = bf_xmalloc(n * RECORD);
  for (size_t i = 0; i < n; i++) encode(&entries[i], recs + i * RECORD);
  if (bf_write_all(fd, recs, n * RECORD) < 0 || fdatasync(fd) < 0) goto io_error;
  if (created && bf_fsync_dir(state_dir) < 0) goto io_error;
  goto out;
io_error:
  rc = bf_error_set(err, BF_E_STATE, "%s: cannot append: %s", path, strerror(errno));
out:
  if (fd >= 0) close(fd); /* releases the flock */
  free(recs);
  free(data);
  free(path);
  return rc;
}

int bf_forgotten_read(const char *state_dir, struct bf_forgotten_entry **out, size_t *n,
                      struct bf_error *err) {
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
  int rc = 0;
  size_t valid = len == 0 ? 0 : valid_end(data, len);
  if (len > 0 && valid == 0) {
    rc = bf_error_set(err, BF_E_STATE, "%s: not a Backflow suppression list", path);
  } else if (valid > HEADER) {
    *out = bf_xcalloc((valid - HEADER) / RECORD, sizeof **out);
    for (size_t off = HEADER; off < valid; off += RECORD)
      if (decode(data + off, &(*out)[*n])) (*n)++;
  }
  free(data);
  free(path);
  return rc;
}

int bf_forgotten_max_request(const char *state_dir, uint64_t *out, struct bf_error *err) {
  struct bf_forgotten_entry *e;
  size_t n;
  *out = 0;
  int rc = bf_forgotten_read(state_dir, &e, &n, err);
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
  int rc = bf_forgotten_read(state_dir, &e, &n, err);
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

/* Hot path (every email of every row, once someone was erased by email):
 * bf_pii_meta_email is trim + ASCII lower case, plus checks that only say
 * whether the value is an email at all. An erased email passed them, so a
 * value that trims and lowers to it is one too: the checks are skipped. */
static int email_fast(const char *s, size_t n, char out[BF_PII_MAX]) {
  while (n && is_space((unsigned char)*s)) s++, n--;
  while (n && is_space((unsigned char)s[n - 1])) n--;
  if (n == 0 || n > 254) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    out[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
  }
  return (int)n;
}

static uint64_t match_identifier(struct bf_forgotten_filter *f, int kind, const size_t *cols,
                                 size_t ncols, const struct bf_value *row) {
  for (size_t i = 0; i < ncols; i++) {
    char num[48], out[BF_PII_MAX];
    const char *s, *why;
    size_t n;
    if (!bf_pii_value_text(&row[cols[i]], num, sizeof num, &s, &n)) continue;
    int len =
        kind == BF_FORGOTTEN_EMAIL ? email_fast(s, n, out) : bf_pii_meta_phone(s, n, out, &why);
    if (len < 0) continue;
    unsigned char h[16];
    bf_forgotten_identifier_hash(f->prf, kind, out, (size_t)len, h);
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

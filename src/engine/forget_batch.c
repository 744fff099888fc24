/* A batch of erasure requests (`forget --from`): syncs kept open from one
 * request to the next, and each model read once for all the batch's
 * people. See forget_internal.h. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "engine/forget_internal.h"
#include "engine/forgotten.h"
#include "util/pii_normalize.h"

struct ident {
  int kind; /* BF_FORGOTTEN_EMAIL | BF_FORGOTTEN_PHONE */
  unsigned char hash[16];
};

struct bf_forget_batch {
  struct bf_forget_held *held;
  size_t n_held;
  struct ident *idents; /* open addressing; kind 0 = empty */
  size_t cap, n_idents;
  struct bf_forget_rows *models;
  size_t n_models;
  bool audit_verified; /* the audit log was verified by the batch's first request */
  int lock_fd;         /* the erasure lock, held from the first request on; -1 before */
};

int *bf_forget_batch_lock(struct bf_forget_batch *b) { return b ? &b->lock_fd : NULL; }

bool bf_forget_batch_verify_audit(struct bf_forget_batch *b) {
  if (!b) return true;
  bool first = !b->audit_verified;
  b->audit_verified = true;
  return first;
}

struct bf_forget_batch *bf_forget_batch_new(void) {
  struct bf_forget_batch *b = bf_xcalloc(1, sizeof *b);
  b->lock_fd = -1;
  return b;
}

static struct ident *ident_slot(struct bf_forget_batch *b, int kind, const unsigned char *hash) {
  uint64_t h;
  memcpy(&h, hash, 8);
  size_t mask = b->cap - 1, i = (size_t)(h ^ (uint64_t)kind) & mask;
  while (b->idents[i].kind && !(b->idents[i].kind == kind && !memcmp(b->idents[i].hash, hash, 16)))
    i = (i + 1) & mask;
  return &b->idents[i];
}

static void ident_insert(struct bf_forget_batch *b, int kind, const unsigned char *hash) {
  if ((b->n_idents + 1) * 2 > b->cap) {
    struct ident *old = b->idents;
    size_t old_cap = b->cap;
    b->cap = b->cap ? b->cap * 2 : 256;
    b->idents = bf_xcalloc(b->cap, sizeof *b->idents);
    b->n_idents = 0;
    for (size_t i = 0; i < old_cap; i++)
      if (old[i].kind) ident_insert(b, old[i].kind, old[i].hash);
    free(old);
  }
  struct ident *s = ident_slot(b, kind, hash);
  if (s->kind) return;
  s->kind = kind;
  memcpy(s->hash, hash, 16);
  b->n_idents++;
}

bool bf_forget_batch_add(struct bf_forget_batch *b, struct bf_project *p, int kind,
                         const char *value) {
  char norm[BF_PII_MAX];
  const char *why;
  bool email = kind == BF_FORGET_EMAIL;
  if (!email && kind != BF_FORGET_PHONE) return false;
  int len = email ? bf_pii_meta_email(value, strlen(value), norm, &why)
                  : bf_pii_meta_phone(value, strlen(value), norm, &why);
  if (len < 0 || bf_project_secret(p, true, NULL) < 0) return false;
  unsigned char hash[16];
  int fkind = email ? BF_FORGOTTEN_EMAIL : BF_FORGOTTEN_PHONE;
  bf_forgotten_identifier_hash(&p->prf, fkind, norm, (size_t)len, hash);
  sodium_memzero(norm, sizeof norm);
  ident_insert(b, fkind, hash);
  return true;
}

struct bf_forget_held *bf_forget_batch_held(struct bf_forget_batch *b, const char *sync) {
  if (!b) return NULL;
  for (size_t i = 0; i < b->n_held; i++)
    if (!strcmp(b->held[i].sync, sync)) return &b->held[i];
  b->held = bf_xrealloc(b->held, (b->n_held + 1) * sizeof *b->held);
  struct bf_forget_held *h = &b->held[b->n_held++];
  memset(h, 0, sizeof *h);
  h->sync = bf_xstrdup(sync);
  return h;
}

/* Copies row into the growing store rows->rb. */
static void keep_row(struct bf_forget_rows *rows, const struct bf_value *row) {
  struct bf_rowbuf *rb = &rows->rb;
  if (rb->nrows == rb->cap_rows) {
    rb->cap_rows *= 2;
    rb->values = bf_xrealloc(rb->values, rb->cap_rows * rb->ncols * sizeof *rb->values);
  }
  struct bf_value *dst = rb->values + rb->nrows * rb->ncols;
  for (size_t c = 0; c < rb->ncols; c++) {
    dst[c] = row[c];
    if (bf_value_has_bytes(row[c].type))
      dst[c].u.s = bf_rowbuf_put_bytes(rb, row[c].u.s, row[c].len);
  }
  rb->nrows++;
}

static int load_rows(struct bf_forget_batch *b, struct bf_project *p,
                     const struct bf_model_config *m, struct bf_forget_rows *rows,
                     struct bf_error *err) {
  const struct bf_warehouse_config *wh = bf_config_warehouse(p->cfg, m->warehouse);
  struct bf_source *src = NULL;
  struct bf_cursor *cur = NULL;
  int rc = bf_source_open(wh, p->cfg, &src, err);
  if (rc == 0) rc = bf_source_query(src, m->sql, &cur, err);
  if (rc) {
    bf_source_close(src);
    return bf_error_prefix(err, "%s:%d:%d: model '%s': looking the batch's people up",
                           m->sql_loc.file, m->sql_loc.line, m->sql_loc.col, m->name);
  }
  int *kinds = bf_xcalloc(cur->ncols, sizeof *kinds);
  for (size_t c = 0; c < cur->ncols; c++) {
    const char *kind = bf_pairs_get(&m->pii, cur->column_names[c]);
    kinds[c] = !kind                    ? 0
               : !strcmp(kind, "email") ? BF_FORGOTTEN_EMAIL
               : !strcmp(kind, "phone") ? BF_FORGOTTEN_PHONE
                                        : 0;
  }
  rows->ncols = cur->ncols;
  rows->cols = bf_xcalloc(cur->ncols, sizeof *rows->cols);
  for (size_t c = 0; c < cur->ncols; c++) rows->cols[c] = bf_xstrdup(cur->column_names[c]);
  bf_rowbuf_init(&rows->rb, cur->ncols, 64);
  struct bf_rowbuf chunk;
  bf_rowbuf_init(&chunk, cur->ncols, 1024);
  for (;;) {
    bf_rowbuf_clear(&chunk);
    int got = cur->ops->next_chunk(cur, &chunk, err);
    if (got < 0) {
      rc = bf_error_prefix(err, "model '%s': looking the batch's people up", m->name);
      break;
    }
    if (got == 0) break;
    for (size_t r = 0; r < chunk.nrows; r++) {
      const struct bf_value *row = bf_rowbuf_row(&chunk, r);
      for (size_t c = 0; c < cur->ncols; c++) {
        unsigned char h[16];
        if (!kinds[c] || !bf_forgotten_value_hash(&p->prf, kinds[c], &row[c], h)) continue;
        if (ident_slot(b, kinds[c], h)->kind) {
          keep_row(rows, row);
          break;
        }
      }
    }
  }
  bf_rowbuf_release(&chunk);
  free(kinds);
  bf_cursor_free(cur);
  bf_source_close(src);
  rows->loaded = rc == 0;
  return rc;
}

static void rows_release(struct bf_forget_rows *rows) {
  for (size_t c = 0; c < rows->ncols; c++) free(rows->cols[c]);
  free(rows->cols);
  if (rows->rb.values) bf_rowbuf_release(&rows->rb);
  free(rows->model);
  memset(rows, 0, sizeof *rows);
}

int bf_forget_batch_rows(struct bf_forget_batch *b, struct bf_project *p,
                         const struct bf_model_config *m, const struct bf_forget_rows **out,
                         struct bf_error *err) {
  *out = NULL;
  if (!b || b->n_idents == 0) return 0;
  struct bf_forget_rows *rows = NULL;
  for (size_t i = 0; i < b->n_models && !rows; i++)
    if (!strcmp(b->models[i].model, m->name)) rows = &b->models[i];
  if (!rows) {
    b->models = bf_xrealloc(b->models, (b->n_models + 1) * sizeof *b->models);
    rows = &b->models[b->n_models++];
    memset(rows, 0, sizeof *rows);
    rows->model = bf_xstrdup(m->name);
  }
  if (!rows->loaded) {
    char *name = rows->model;
    rows->model = NULL;
    rows_release(rows); /* an earlier attempt that failed */
    rows->model = name;
    int rc = load_rows(b, p, m, rows, err);
    if (rc) return rc;
  }
  *out = rows;
  return 0;
}

int bf_forget_batch_free(struct bf_forget_batch *b, struct bf_error *err) {
  if (!b) return 0;
  int rc = 0;
  for (size_t i = 0; i < b->n_held; i++) {
    struct bf_forget_held *h = &b->held[i];
    struct bf_error ferr = {0};
    if (h->changed && h->st && bf_state_fold(h->st, &ferr) && rc == 0) {
      *err = ferr;
      rc = ferr.code;
    }
    bf_destination_close(h->dest);
    bf_idindex_snapshot_free(h->index);
    bf_vault_close(h->vault);
    bf_state_free(h->st);
    free(h->sync);
  }
  for (size_t i = 0; i < b->n_models; i++) {
    struct bf_forget_rows *rows = &b->models[i];
    /* Rows of people being erased: wiped, not only freed. */
    for (struct bf_rowbuf_block *blk = rows->rb.first; blk; blk = blk->next)
      sodium_memzero(blk->bytes, blk->cap);
    rows_release(rows);
  }
  free(b->models);
  sodium_memzero(b->idents, b->cap * sizeof *b->idents);
  free(b->idents);
  free(b->held);
  if (b->lock_fd >= 0) close(b->lock_fd); /* releases the erasure lock */
  free(b);
  return rc;
}

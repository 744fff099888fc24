/* Finding an erased person: in each model on its warehouse, and in each
 * sync's identifier index (forget.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "destinations/destination.h"
#include "engine/audit_log.h"
#include "engine/forget.h"
#include "engine/forget_internal.h"
#include "engine/forgotten.h"
#include "engine/idindex.h"
#include "engine/runlog.h"
#include "engine/state.h"
#include "engine/vault.h"
#include "sources/source.h"
#include "spec/mapping.h"
#include "util/crashpoint.h"
#include "util/fsutil.h"
#include "util/keyfile.h"
#include "util/pii_normalize.h"

/* ---- looking the person up in the warehouse ----------------------------- */

static void quote_ident(struct bf_buf *b, const char *name) {
  bf_buf_putc(b, '"');
  for (const char *c = name; *c; c++) {
    if (*c == '"') bf_buf_putc(b, '"');
    bf_buf_putc(b, *c);
  }
  bf_buf_putc(b, '"');
}

static void col_text(struct bf_buf *b, const char *col) {
  bf_buf_puts(b, "CAST(bf_m.");
  quote_ident(b, col);
  bf_buf_puts(b, " AS TEXT)");
}

/* chr(n) / char(n): the control characters the normalisers trim. */
static void ctrl(struct bf_buf *b, bool pg, int c) {
  bf_buf_printf(b, pg ? "chr(%d)" : "char(%d)", c);
}

/* Email: trimmed of whitespace and lower-cased on both sides, as
 * bf_pii_meta_email does (the rows found are checked again in C with the
 * normaliser itself). */
static void email_cond(struct bf_buf *b, bool pg, const char *col, size_t param) {
  bf_buf_puts(b, pg ? "LOWER(BTRIM(" : "LOWER(TRIM(");
  col_text(b, col);
  bf_buf_puts(b, ", ' '");
  for (int c = 9; c <= 13; c++) {
    bf_buf_puts(b, "||");
    ctrl(b, pg, c);
  }
  bf_buf_printf(b, ")) = LOWER(CAST($%zu AS TEXT))", param);
}

/* Phone: the separators bf_pii_meta_phone accepts are removed; the
 * normalised number (no leading zeros or 00) then ends the digits. */
static void phone_cond(struct bf_buf *b, bool pg, const char *col, size_t param) {
  static const char *const seps[] = {"' '", "'-'", "'.'", "'('", "')'", "'/'", "'+'"};
  size_t nrep = sizeof seps / sizeof seps[0] + 5;
  for (size_t i = 0; i < nrep; i++) bf_buf_puts(b, "REPLACE(");
  col_text(b, col);
  for (size_t i = 0; i < sizeof seps / sizeof seps[0]; i++) bf_buf_printf(b, ", %s, '')", seps[i]);
  for (int c = 9; c <= 13; c++) {
    bf_buf_puts(b, ", ");
    ctrl(b, pg, c);
    bf_buf_puts(b, ", '')");
  }
  bf_buf_printf(b, " LIKE '%%' || CAST($%zu AS TEXT)", param);
}

struct lookup {
  struct bf_buf sql;
  const char **params;
  size_t nparams;
};

static void lookup_add_param(struct lookup *lk, const char *v) {
  lk->params = bf_xrealloc(lk->params, (lk->nparams + 1) * sizeof *lk->params);
  lk->params[lk->nparams++] = v;
}

static bool has_column(char *const *cols, size_t ncols, const char *name) {
  for (size_t i = 0; i < ncols; i++)
    if (!strcmp(cols[i], name)) return true;
  return cols == NULL; /* columns not known yet: assume it is there */
}

/* Builds SELECT * FROM (<model sql>) AS bf_m WHERE ...; false when the model
 * cannot hold the person (no column to search). cols: the query's columns
 * (a pii column the query does not return is not searched), or NULL. */
static bool lookup_build(const struct bf_model_config *m, const struct person *ps, bool pg,
                         bool key_only, char *const *cols, size_t ncols, struct lookup *lk) {
  struct bf_buf cond = {0};
  bool key = ps->key_model && ps->key_value && !strcmp(ps->key_model, m->name);
  if (key) {
    col_text(&cond, m->primary_key);
    lookup_add_param(lk, ps->key_value);
    bf_buf_printf(&cond, " = CAST($%zu AS TEXT)", lk->nparams);
  }
  for (size_t i = 0; !key_only && i < m->pii.n; i++) {
    const struct bf_pair *c = &m->pii.items[i];
    bool email = !strcmp(c->value, "email"), phone = !strcmp(c->value, "phone");
    size_t n = email ? ps->n_emails : phone ? ps->n_phones : 0;
    if (n && !has_column(cols, ncols, c->key)) continue;
    for (size_t k = 0; k < n; k++) {
      if (cond.len) bf_buf_puts(&cond, " OR ");
      lookup_add_param(lk, email ? ps->emails[k] : ps->phones[k]);
      if (email)
        email_cond(&cond, pg, c->key, lk->nparams);
      else
        phone_cond(&cond, pg, c->key, lk->nparams);
    }
  }
  if (!cond.len) {
    bf_buf_release(&cond);
    return false;
  }
  size_t n = strlen(m->sql);
  while (n && (m->sql[n - 1] == ';' || m->sql[n - 1] == ' ' || m->sql[n - 1] == '\n' ||
               m->sql[n - 1] == '\t' || m->sql[n - 1] == '\r'))
    n--;
  /* Newlines: a trailing -- comment in the model cannot swallow the rest. */
  bf_buf_printf(&lk->sql, "SELECT * FROM (\n%.*s\n) AS bf_m WHERE ", (int)n, m->sql);
  bf_buf_append(&lk->sql, cond.data, cond.len);
  bf_buf_release(&cond);
  return true;
}

static void lookup_release(struct lookup *lk) {
  bf_buf_release(&lk->sql);
  free(lk->params);
}

/* Does this row belong to the person? Checked with the normalisers: the SQL
 * only narrows the search. */
static bool row_matches(const struct bf_model_config *m, const struct person *ps, char *const *cols,
                        size_t ncols, size_t pk_col, const struct bf_value *row,
                        struct bf_buf *tmp) {
  if (ps->key_model && ps->key_value && !strcmp(ps->key_model, m->name) &&
      bf_mapping_key_bytes(&row[pk_col], tmp) && tmp->len == strlen(ps->key_value) &&
      !memcmp(tmp->data, ps->key_value, tmp->len))
    return true;
  for (size_t c = 0; c < ncols; c++) {
    const char *kind = bf_forget_pii_kind(m, cols[c]);
    if (!kind) continue;
    bool email = !strcmp(kind, "email"), phone = !strcmp(kind, "phone");
    if (!email && !phone) continue;
    char num[48], out[BF_PII_MAX];
    const char *s, *why;
    size_t n;
    if (!bf_pii_value_text(&row[c], num, sizeof num, &s, &n)) continue;
    int len = email ? bf_pii_meta_email(s, n, out, &why) : bf_pii_meta_phone(s, n, out, &why);
    if (len < 0) continue;
    char **list = email ? ps->emails : ps->phones;
    size_t nl = email ? ps->n_emails : ps->n_phones;
    for (size_t k = 0; k < nl; k++)
      if (!strcmp(list[k], out)) return true;
  }
  return false;
}

/* What a lookup does with the query's columns (once) and each matching row. */
struct row_sink {
  int (*begin)(void *ctx, char *const *cols, size_t ncols, struct bf_error *err);
  void (*row)(void *ctx, char *const *cols, size_t ncols, const struct bf_value *row);
  void *ctx;
};

/* Runs the person's lookup on model m (key_only: by the primary key alone)
 * and hands every matching row to sink. Returns 1 when the model has
 * nothing to search by, 0, or a bf_code. */
/* A batch's person: the rows the batch read from the model in one pass. */
static int lookup_cached(struct bf_project *p, const struct bf_model_config *m,
                         const struct person *ps, const struct bf_forget_rows *rows,
                         const struct row_sink *sink, struct bf_error *err) {
  size_t pk_col = 0;
  while (pk_col < rows->ncols && strcmp(rows->cols[pk_col], m->primary_key)) pk_col++;
  if (pk_col == rows->ncols)
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: primary key '%s' is not a column of model '%s'",
                        m->primary_key_loc.file, m->primary_key_loc.line, m->primary_key_loc.col,
                        m->primary_key, m->name);
  int rc = sink->begin ? sink->begin(sink->ctx, rows->cols, rows->ncols, err) : 0;
  struct bf_buf tmp = {0};
  for (size_t r = 0; rc == 0 && r < rows->rb.nrows; r++) {
    const struct bf_value *row = bf_rowbuf_row(&rows->rb, r);
    if (row_matches(m, ps, rows->cols, rows->ncols, pk_col, row, &tmp))
      sink->row(sink->ctx, rows->cols, rows->ncols, row);
  }
  bf_buf_release(&tmp);
  (void)p;
  return rc;
}

static int lookup_rows(struct bf_project *p, const struct bf_model_config *m,
                       const struct person *ps, bool key_only, struct bf_forget_batch *batch,
                       const struct row_sink *sink, struct bf_error *err) {
  const struct bf_warehouse_config *wh = bf_config_warehouse(p->cfg, m->warehouse);
  struct lookup lk = {0};
  bool pg = wh && !strcmp(wh->type, "postgres");
  bool searchable = lookup_build(m, ps, pg, key_only, NULL, 0, &lk);
  lookup_release(&lk);
  memset(&lk, 0, sizeof lk);
  if (!searchable) return 1; /* known without asking the warehouse */
  if (batch && !key_only && !ps->key_model) {
    const struct bf_forget_rows *rows = NULL;
    int rc = bf_forget_batch_rows(batch, p, m, &rows, err);
    if (rc) return rc;
    if (rows) return lookup_cached(p, m, ps, rows, sink, err);
  }
  struct bf_source *src = NULL;
  struct bf_cursor *cur = NULL;
  struct bf_rowbuf rb = {0};
  struct bf_buf tmp = {0};
  int rc = bf_source_open(wh, p->cfg, &src, err);
  /* The model's columns first (prepared, not run): only pii columns the
   * query returns are searched. */
  if (rc == 0 && (rc = bf_source_query(src, m->sql, &cur, err)) == 0) {
    if (!has_column(cur->column_names, cur->ncols, m->primary_key))
      rc =
          bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: primary key '%s' is not a column of model '%s'",
                       m->primary_key_loc.file, m->primary_key_loc.line, m->primary_key_loc.col,
                       m->primary_key, m->name);
    searchable = lookup_build(m, ps, pg, key_only, cur->column_names, cur->ncols, &lk);
    bf_cursor_free(cur);
    cur = NULL;
    if (rc == 0 && !searchable) {
      bf_source_close(src);
      lookup_release(&lk);
      return 1;
    }
  }
  if (rc == 0)
    rc = bf_source_query_params(src, bf_buf_cstr(&lk.sql), lk.params, lk.nparams, &cur, err);
  if (rc && src && err->code != BF_E_CONFIG)
    bf_error_prefix(err, "%s:%d:%d: model '%s': looking the person up", m->sql_loc.file,
                    m->sql_loc.line, m->sql_loc.col, m->name);
  size_t pk_col = 0;
  if (rc == 0) {
    while (pk_col < cur->ncols && strcmp(cur->column_names[pk_col], m->primary_key)) pk_col++;
    if (pk_col == cur->ncols)
      rc = bf_error_set(err, BF_E_CONFIG, "model '%s': no primary key column", m->name);
  }
  if (rc == 0 && sink->begin) rc = sink->begin(sink->ctx, cur->column_names, cur->ncols, err);
  if (rc == 0) {
    bf_rowbuf_init(&rb, cur->ncols, 256);
    for (;;) {
      bf_rowbuf_clear(&rb);
      int got = cur->ops->next_chunk(cur, &rb, err);
      if (got < 0) {
        rc = got;
        bf_error_prefix(err, "model '%s': looking the person up", m->name);
        break;
      }
      if (got == 0) break;
      for (size_t r = 0; r < rb.nrows; r++) {
        const struct bf_value *row = bf_rowbuf_row(&rb, r);
        if (row_matches(m, ps, cur->column_names, cur->ncols, pk_col, row, &tmp))
          sink->row(sink->ctx, cur->column_names, cur->ncols, row);
      }
    }
  }
  bf_rowbuf_release(&rb);
  bf_buf_release(&tmp);
  bf_cursor_free(cur);
  bf_source_close(src);
  lookup_release(&lk);
  return rc;
}

/* KEY: the emails and phones of the key's row find the person in the other
 * models. */
struct chain_ctx {
  const struct bf_model_config *m;
  struct person *ps;
};

static void chain_row(void *ctx_, char *const *cols, size_t ncols, const struct bf_value *row) {
  struct chain_ctx *ctx = ctx_;
  for (size_t c = 0; c < ncols; c++) {
    const char *kind = bf_forget_pii_kind(ctx->m, cols[c]);
    if (!kind || (strcmp(kind, "email") && strcmp(kind, "phone"))) continue;
    bool email = !strcmp(kind, "email");
    char num[48], out[BF_PII_MAX];
    const char *s, *why;
    size_t n;
    if (!bf_pii_value_text(&row[c], num, sizeof num, &s, &n)) continue;
    int len = email ? bf_pii_meta_email(s, n, out, &why) : bf_pii_meta_phone(s, n, out, &why);
    if (len < 0) continue;
    if (email)
      bf_forget_add_unique(&ctx->ps->emails, &ctx->ps->n_emails, out);
    else
      bf_forget_add_unique(&ctx->ps->phones, &ctx->ps->n_phones, out);
    sodium_memzero(out, sizeof out);
  }
}

struct found_ctx {
  struct bf_project *p;
  const struct bf_sync_config *s;
  const struct bf_model_config *m;
  struct item *it;
  struct bf_mapping map;
  bool built;
  struct bf_buf keybuf, json;
};

static int found_begin(void *ctx_, char *const *cols, size_t ncols, struct bf_error *err) {
  struct found_ctx *ctx = ctx_;
  int rc = bf_mapping_build(ctx->p->cfg, ctx->s, ctx->m, cols, ncols, &ctx->map, err);
  ctx->built = rc == 0;
  return rc;
}

static void found_row(void *ctx_, char *const *cols, size_t ncols, const struct bf_value *row) {
  struct found_ctx *ctx = ctx_;
  if (!bf_mapping_key_bytes(&row[ctx->map.pk_col], &ctx->keybuf)) return; /* never sent */
  unsigned char key[16];
  bf_prf_key(&ctx->p->prf, ctx->keybuf.data, ctx->keybuf.len, key);
  bf_mapping_match_json(&ctx->map, row, &ctx->json);
  bf_forget_add_target(ctx->it, key, bf_xstrndup(ctx->json.data, ctx->json.len));
}

/* A sync's mapping from the names its config uses (no warehouse needed):
 * what a destination's remove reads is the match part. */
int bf_forget_config_mapping(const struct bf_config *cfg, const struct bf_sync_config *s,
                             const struct bf_model_config *m, struct bf_mapping *map,
                             struct bf_error *err) {
  size_t n = 1 + s->match.n + s->fields.n;
  char **cols = bf_xcalloc(n, sizeof *cols);
  size_t k = 0;
  cols[k++] = m->primary_key;
  for (size_t i = 0; i < s->match.n; i++) cols[k++] = s->match.items[i].value;
  for (size_t i = 0; i < s->fields.n; i++) cols[k++] = s->fields.items[i].value;
  int rc = bf_mapping_build(cfg, s, m, cols, n, map, err);
  free(cols);
  return rc;
}

/* The only match column of sync s, or NULL. */
static const char *single_match_column(const struct bf_sync_config *s) {
  return s->match.n == 1 ? s->match.items[0].value : NULL;
}

/* {"user_id":7} from a value typed on the command line. numeric: a plain
 * integer is written as a number (a key), else everything is a string. */
static char *match_from_text(const char *field, const char *value, bool numeric) {
  struct bf_buf b = {0};
  bf_buf_putc(&b, '{');
  bf_json_cstr(&b, field);
  bf_buf_putc(&b, ':');
  const char *d = value + (value[0] == '-');
  size_t nd = strspn(d, "0123456789");
  bool integer = numeric && nd > 0 && nd <= 18 && d[nd] == '\0' && (d[0] != '0' || nd == 1);
  if (integer)
    bf_buf_puts(&b, value);
  else
    bf_json_cstr(&b, value);
  bf_buf_putc(&b, '}');
  char *out = bf_xstrndup(b.data, b.len);
  bf_buf_release(&b);
  return out;
}

/* match_from_text for sync s's only match column: under `pii_policy: hash`
 * the destination holds the hash of the normalised value, so the delete
 * names that. NULL when the value cannot be normalised. */
static char *match_for_sync(const struct bf_sync_config *s, const struct bf_model_config *m,
                            const char *value, bool numeric) {
  const char *column = s->match.items[0].value;
  const char *policy = bf_pairs_get(&s->pii_policy, column);
  if (!policy || strcmp(policy, "hash"))
    return match_from_text(s->match.items[0].key, value, numeric);
  const char *kind = bf_pairs_get(&m->pii, column);
  char hex[BF_PII_SHA256_HEX];
  const char *why;
  if (bf_pii_normalize_hash(bf_pii_fn_for_kind(kind ? kind : "other"), value, strlen(value), hex,
                            &why))
    return NULL;
  return match_from_text(s->match.items[0].key, hex, false);
}

void bf_forget_item_pending(struct item *it, int exit, const char *reason) {
  it->status = "pending";
  it->exit = exit;
  bf_forget_set_reason(it, reason);
}

void bf_forget_item_done(struct item *it, const char *status, int exit, const char *reason) {
  it->phase = PH_DONE;
  it->status = status;
  it->exit = exit;
  bf_forget_set_reason(it, reason);
}

/* The records the sync sent for the person's emails and phones, by its
 * identifier index (idindex.h): found whether or not the rows are still in
 * the warehouse. Their match values come from the vault at delivery. */
static int index_targets(struct bf_project *p, const struct person *ps, struct item *it,
                         struct bf_forget_batch *batch, struct bf_error *err) {
  size_t n = ps->n_emails + ps->n_phones;
  if (n == 0) return 0;
  unsigned char(*idents)[16] = bf_xcalloc(n, 16);
  for (size_t i = 0; i < ps->n_emails; i++)
    bf_forgotten_identifier_hash(&p->prf, BF_FORGOTTEN_EMAIL, ps->emails[i], strlen(ps->emails[i]),
                                 idents[i]);
  for (size_t i = 0; i < ps->n_phones; i++)
    bf_forgotten_identifier_hash(&p->prf, BF_FORGOTTEN_PHONE, ps->phones[i], strlen(ps->phones[i]),
                                 idents[ps->n_emails + i]);
  char *dir = bf_project_sync_dir(p, it->sync->name);
  unsigned char(*keys)[16] = NULL;
  size_t n_keys = 0;
  bool indexed;
  struct bf_forget_held *kept = bf_forget_batch_held(batch, it->sync->name);
  int rc = 0;
  if (kept && !kept->index && (rc = bf_idindex_snapshot(dir, &p->prf, &kept->index, err))) {
    bf_idindex_snapshot_free(kept->index);
    kept->index = NULL;
  }
  if (rc == 0 && kept)
    bf_idindex_snapshot_lookup(kept->index, (const unsigned char(*)[16])idents, n, &keys, &n_keys,
                               &indexed);
  else if (rc == 0)
    rc = bf_idindex_lookup(dir, &p->prf, (const unsigned char(*)[16])idents, n, &keys, &n_keys,
                           &indexed, err);
  for (size_t i = 0; rc == 0 && i < n_keys; i++) bf_forget_add_target(it, keys[i], NULL);
  it->indexed = indexed || access(dir, F_OK) != 0; /* a sync that never ran holds nothing */
  free(keys);
  free(idents);
  free(dir);
  return rc;
}

void bf_forget_lookup_item(struct bf_project *p, struct request *rq, struct item *it,
                           struct bf_forget_batch *batch) {
  const struct bf_sync_config *s = it->sync;
  const struct bf_model_config *m = bf_config_model(p->cfg, s->model);
  const struct person *ps = rq->person;
  struct bf_error err = {0};
  struct found_ctx ctx = {.p = p, .s = s, .m = m, .it = it};
  struct row_sink sink = {found_begin, found_row, &ctx};
  bf_forget_targets_free(it);
  int rc = lookup_rows(p, m, ps, false, batch, &sink, &err);
  bool key_model = ps->key_model && ps->key_value && !strcmp(ps->key_model, m->name);
  if (rc < 0) {
    bf_forget_targets_free(it);
    bf_forget_item_pending(it, bf_code_exit_status(rc),
                           err.msg); /* the lookup is done again by --retry */
    goto out;
  }
  if (rc == 1) {
    bool has_email = false, has_phone = false;
    for (size_t i = 0; i < m->pii.n; i++) {
      has_email |= !strcmp(m->pii.items[i].value, "email");
      has_phone |= !strcmp(m->pii.items[i].value, "phone");
    }
    char *why;
    if (rq->kind == BF_FORGET_KEY && (has_email || has_phone))
      why = bf_xasprintf("the key's row (model '%s') gave no email or phone to find the person by "
                         "in model '%s'",
                         ps->key_model, m->name);
    else
      why = bf_xasprintf("model '%s' has no pii column of kind %s", m->name,
                         rq->kind == BF_FORGET_PHONE   ? "phone"
                         : rq->kind == BF_FORGET_EMAIL ? "email"
                                                       : "email or phone");
    bf_forget_item_done(it, "not_found", 0, why);
    free(why);
    goto out;
  }
  const char *only = single_match_column(s);
  if (key_model) {
    /* The key's row may have left the warehouse: the key still names the
     * record (its identifier comes from the vault, or from the key itself
     * when the sync matches by the primary key). */
    unsigned char key[16];
    bf_prf_key(&p->prf, ps->key_value, strlen(ps->key_value), key);
    struct target *t = bf_forget_add_target(it, key, NULL);
    if (!t->match && only && !strcmp(only, m->primary_key))
      t->guess = match_for_sync(s, m, ps->key_value, true);
  }
  if ((rc = index_targets(p, ps, it, batch, &err)) < 0) {
    bf_forget_targets_free(it);
    bf_forget_item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  if (it->nt == 0 && ps->typed && only) {
    /* Not in the warehouse (any more), but the sync matches by the erased
     * identifier itself: the delete can name it. */
    const char *kind = bf_forget_pii_kind(m, only);
    if (kind && !strcmp(kind, bf_forget_kind_name(rq->kind))) {
      char *match = match_for_sync(s, m, ps->typed, false);
      if (match) bf_forget_add_target(it, NULL, match);
    }
  }
  it->found = (long long)it->nt;
  if (it->nt == 0 && !it->indexed && rq->kind != BF_FORGET_KEY)
    bf_forget_item_done(
        it, "not_found", 0,
        "not in the warehouse; the sync's identifier index is not complete yet (its next "
        "run completes it), so a record it sent before for someone no longer in the "
        "warehouse cannot be found");
  else if (it->nt == 0)
    bf_forget_item_done(it, "not_found", 0, NULL);
  else
    it->phase = PH_DELETE;
out:
  if (ctx.built) bf_mapping_release(&ctx.map);
  bf_buf_release(&ctx.keybuf);
  bf_buf_release(&ctx.json);
}

int bf_forget_chain_lookup(struct bf_project *p, struct request *rq, struct bf_error *err) {
  struct person *ps = rq->person;
  const struct bf_model_config *m = bf_config_model(p->cfg, ps->key_model);
  if (!m)
    return bf_error_set(err, BF_E_CONFIG, "model '%s' is no longer in the configuration",
                        ps->key_model);
  struct chain_ctx ctx = {m, ps};
  struct row_sink sink = {NULL, chain_row, &ctx};
  int rc = lookup_rows(p, m, ps, true, NULL, &sink, err);
  if (rc < 0) return rc;
  ps->chained = true;
  return 0;
}

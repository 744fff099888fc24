/* A run of a `state: warehouse` sync (wstate.h): the runner's path with the
 * model replaced by the plan statement, whose rows are only what changed.
 *
 * The rows go through the runner's own diff (bf_run_process_row), against a
 * scratch state in memory that holds only the keys the plan returned, each
 * primed from the warehouse state's row: duplicates, pending resends, mode
 * and PII checks behave exactly as with local state, and memory grows with
 * the number of changed rows, never with the model. The warehouse table is
 * the truth; the scratch folder is emptied at the start of every run. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "engine/runner_internal.h"
#include "engine/wstate.h"
#include "util/log.h"

enum { X_KEY, X_FP, X_STATE_FP, X_STATE_FLAGS, X_IN_MODEL, X_COUNT, X_IDENT };

int bf_wstate_run_begin(struct run *r, struct bf_error *err) {
  struct bf_project *p = r->p;
  const struct bf_warehouse_config *wh = bf_config_warehouse(p->cfg, r->model->warehouse);
  const struct bf_destination_config *dc = bf_config_destination(p->cfg, r->sync->destination);
  const struct bf_destination_type *dtype = bf_destination_find(dc->type);
  int secret_rc = bf_project_secret(p, !r->opts->plan_only, err);
  if (secret_rc < 0) return secret_rc;
  bool no_secret = secret_rc == 1;
  if (no_secret) {
    unsigned char ephemeral[32];
    randombytes_buf(ephemeral, sizeof ephemeral);
    bf_prf_init(&r->prf, ephemeral, sizeof ephemeral, err);
  } else {
    r->prf = p->prf;
  }
  bool keep_ident = r->sync->mode == BF_MODE_MIRROR && dtype && dtype->needs_identifier_for_delete;
  unsigned flags = (r->opts->plan_only ? 0 : BF_WSTATE_WRITABLE) |
                   (keep_ident ? BF_WSTATE_KEEP_IDENT : 0) | (no_secret ? BF_WSTATE_NO_CHECK : 0);
  int rc = bf_wstate_open(wh, r->sync->name, &r->prf, flags, &r->wstate, err);
  if (rc) return rc;
  if (no_secret) bf_wstate_ignore_table(r->wstate);

  /* The first query only named the columns; the plan replaces it. */
  size_t ncols = r->cur->ncols;
  size_t n_mapped = r->map.n_match + r->map.n_fields;
  size_t *mapped = bf_xcalloc(n_mapped ? n_mapped : 1, sizeof *mapped);
  for (size_t i = 0; i < r->map.n_match; i++) mapped[i] = r->map.match_cols[i];
  for (size_t i = 0; i < r->map.n_fields; i++) mapped[r->map.n_match + i] = r->map.field_cols[i];
  char *sql = bf_wstate_plan_sql(r->wstate, r->model->sql, r->cur->column_names, ncols,
                                 r->map.pk_col, mapped, n_mapped, r->map.signature,
                                 r->opts->full_resync, r->sync->mode == BF_MODE_MIRROR);
  free(mapped);
  bf_cursor_free(r->cur);
  r->cur = NULL;
  rc = bf_source_query(r->src, sql, &r->cur, err);
  free(sql);
  if (rc)
    return bf_error_prefix(err, "%s:%d:%d: model '%s': plan statement (state: warehouse)",
                           r->model->sql_loc.file, r->model->sql_loc.line, r->model->sql_loc.col,
                           r->model->name);
  if (r->cur->ncols != ncols + BF_WSTATE_EXTRA_COLS)
    return bf_error_set(err, BF_E_WAREHOUSE,
                        "model '%s': the plan statement returned %zu columns, expected %zu",
                        r->model->name, r->cur->ncols, ncols + BF_WSTATE_EXTRA_COLS);
  r->wanted = bf_xrealloc(r->wanted, r->cur->ncols * sizeof *r->wanted);
  for (size_t i = ncols; i < r->cur->ncols; i++) r->wanted[i] = true;
  r->cur->wanted = r->wanted;
  return 0;
}

int bf_wstate_run_open_state(struct run *r, struct bf_error *err) {
  bool writable = !r->opts->plan_only;
  char *dir = bf_xasprintf("%s/wscratch", r->sync_dir);
  int rc = 0;
  if (writable && mkdir(r->sync_dir, 0700) < 0 && errno != EEXIST)
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot create: %s", r->sync_dir, strerror(errno));
  if (rc == 0) rc = bf_state_open(dir, writable, &r->prf, &r->state, err);
  if ((rc == BF_E_SECRET || rc == BF_E_STATE) && writable) {
    /* The scratch is disposable (the warehouse holds the state): one left by
     * another secret (after a reset to a new one) or damaged starts empty. */
    const char *files[] = {"state.bin", "journal.bin"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
      char *path = bf_xasprintf("%s/%s", dir, files[i]);
      unlink(path);
      free(path);
    }
    *err = (struct bf_error){0};
    rc = bf_state_open(dir, writable, &r->prf, &r->state, err);
  }
  if (rc == 0 && writable) rc = bf_state_clear(r->state, err);
  free(dir);
  return rc;
}

static const char *text_of(const struct bf_value *v, size_t *len) {
  if (v->type != BF_TEXT) return NULL;
  *len = v->len;
  return v->u.s;
}

/* One plan row: a removed key is set aside, a model row is diffed. */
static int plan_row(struct run *r, const struct bf_value *row, size_t base, struct bf_error *err) {
  const struct bf_value *x = row + base;
  size_t klen = 0, flen = 0, slen = 0, ilen = 0;
  const char *khex = text_of(&x[X_KEY], &klen), *fhex = text_of(&x[X_FP], &flen);
  const char *shex = text_of(&x[X_STATE_FP], &slen), *ihex = text_of(&x[X_IDENT], &ilen);
  unsigned char key[16];
  bool has_key = khex && bf_wstate_unhex(khex, klen, key, 16);
  if (x[X_IN_MODEL].type == BF_NULL) {
    if (has_key) bf_wstate_add_removed(r->wstate, key, ihex, ilen);
    return 0;
  }
  if (!has_key) return bf_run_process_row(r, row, NULL, false, 0, err);
  uint64_t fp = 0, state_fp = 0;
  unsigned char b[8];
  if (fhex && bf_wstate_unhex(fhex, flen, b, 8)) memcpy(&fp, b, 8);
  if (shex && bf_wstate_unhex(shex, slen, b, 8)) memcpy(&state_fp, b, 8);
  struct bf_state_entry *e = bf_state_upsert(r->state, key);
  if (!bf_state_seen(r->state, e)) {
    /* First sight of the key in this run: the warehouse's state is its truth. */
    e->flags =
        x[X_STATE_FLAGS].type == BF_INT ? (uint32_t)x[X_STATE_FLAGS].u.i & BF_ST_PERSISTED : 0;
    e->fp = state_fp;
  }
  size_t bad_field;
  const char *why;
  bool row_ok = bf_mapping_check_row(&r->map, row, &bad_field, &why) == 0;
  return bf_run_process_row(r, row, key, row_ok, fp, err);
}

int bf_wstate_run_scan(struct run *r, struct bf_error *err) {
  struct bf_rowbuf *rb;
  bool failed = false;
  int rc = 0;
  struct bf_error read_err = {0};
  while (rc == 0 && (rb = bf_prefetch_next(r->pf, &failed, &read_err))) {
    size_t base = rb->ncols - BF_WSTATE_EXTRA_COLS;
    for (size_t i = 0; i < rb->nrows && rc == 0; i++)
      rc = plan_row(r, bf_rowbuf_row(rb, i), base, err);
    if (rc == 0 && bf_stop_requested)
      rc = bf_error_set(err, BF_E_INTERRUPTED,
                        "interrupted; the run stopped after the batch in flight");
  }
  if (rc == 0 && failed) {
    *err = read_err;
    rc = bf_error_prefix(err, "%s:%d:%d: model '%s'", r->model->sql_loc.file,
                         r->model->sql_loc.line, r->model->sql_loc.col, r->model->name);
  }
  if (rc == 0 && !r->opts->plan_only) {
    r->resync_last = true;
    rc = bf_run_flush_batch(r, err);
    r->resync_last = false;
  }
  return rc;
}

/* Keys the plan found in the state but not in the model (mirror). */
int bf_wstate_run_removals(struct run *r, struct bf_error *err) {
  size_t n = bf_wstate_n_removed(r->wstate);
  unsigned char(*keys)[16] = bf_xcalloc(n ? n : 1, sizeof *keys);
  for (size_t i = 0; i < n; i++) memcpy(keys[i], bf_wstate_removed_key(r->wstate, i), 16);
  int rc = bf_run_remove_keys(r, (const unsigned char(*)[16])keys, n, err);
  free(keys);
  return rc;
}

int bf_wstate_validate(struct bf_project *p, const struct bf_sync_config *s, struct bf_error *err) {
  const struct bf_model_config *m = bf_config_model(p->cfg, s->model);
  const struct bf_warehouse_config *wh = m ? bf_config_warehouse(p->cfg, m->warehouse) : NULL;
  if (!wh || wh->unset) return 0; /* the model's own check reports it */
  if (strcmp(wh->type, "postgres") != 0)
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: sync '%s': 'state: warehouse' needs a postgres warehouse; "
                        "model '%s' reads warehouse '%s' (%s). Use 'state: local'",
                        s->state_loc.file, s->state_loc.line, s->state_loc.col, s->name, m->name,
                        wh->name, wh->type);
  /* Reaches the warehouse and, once the sync has state there, checks that it
   * was written under this project's secret. Creates nothing. */
  struct bf_error secret_err = {0};
  bool have_secret = bf_project_secret(p, false, &secret_err) == 0;
  struct bf_prf throwaway;
  if (!have_secret) {
    unsigned char bytes[32];
    randombytes_buf(bytes, sizeof bytes);
    bf_prf_init(&throwaway, bytes, sizeof bytes, &secret_err);
  }
  struct bf_wstate *ws = NULL;
  int rc = bf_wstate_open(wh, s->name, have_secret ? &p->prf : &throwaway,
                          have_secret ? 0 : BF_WSTATE_NO_CHECK, &ws, err);
  bf_wstate_free(ws);
  return rc;
}

int bf_wstate_reset(struct bf_project *p, const struct bf_sync_config *s, struct bf_error *err) {
  const struct bf_model_config *m = bf_config_model(p->cfg, s->model);
  const struct bf_warehouse_config *wh = bf_config_warehouse(p->cfg, m->warehouse);
  struct bf_wstate *ws = NULL;
  /* No key check: a reset is how a sync starts over under a new secret. */
  int rc = bf_wstate_open(wh, s->name, &p->prf, BF_WSTATE_WRITABLE | BF_WSTATE_NO_CHECK, &ws, err);
  if (rc == 0) rc = bf_wstate_clear(ws, err);
  bf_wstate_free(ws);
  return rc;
}

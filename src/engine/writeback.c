/* Write-back of run results into a warehouse (see writeback.h).
 *
 * Each run row's key is (sync, run_id, started_at): inserting with "do
 * nothing on conflict" makes write-back idempotent, so every write-back also
 * offers the few latest runs again. A run whose write-back failed (the
 * warehouse was down: the very run that failed because of it, say) lands
 * with the next one, and its errors with it. */
#include "engine/writeback.h"

#include <stdio.h>
#include <string.h>

#include "util/jsonw.h"
#include "util/log.h"
#include "sources/source.h"

#define RECENT_RUNS 20

enum {
  RUN_ID,
  RUN_SYNC,
  RUN_MODEL,
  RUN_DEST,
  RUN_STATUS,
  RUN_STARTED,
  RUN_FINISHED,
  RUN_DURATION,
  RUN_COUNTS, /* rows_read .. failed: 8 columns */
  RUN_ERROR = RUN_COUNTS + 8,
  RUN_WRITTEN,
  RUN_NCOLS
};
static const struct bf_wcol run_cols[RUN_NCOLS] = {
    {"run_id", BF_WCOL_INT, true},        {"sync", BF_WCOL_TEXT, true},
    {"model", BF_WCOL_TEXT, false},       {"destination", BF_WCOL_TEXT, false},
    {"status", BF_WCOL_TEXT, true},       {"started_at", BF_WCOL_TIME, true},
    {"finished_at", BF_WCOL_TIME, false}, {"duration_ms", BF_WCOL_INT, false},
    {"rows_read", BF_WCOL_INT, false},    {"added", BF_WCOL_INT, false},
    {"changed", BF_WCOL_INT, false},      {"removed", BF_WCOL_INT, false},
    {"unchanged", BF_WCOL_INT, false},    {"skipped", BF_WCOL_INT, false},
    {"rejected", BF_WCOL_INT, false},     {"failed", BF_WCOL_INT, false},
    {"error", BF_WCOL_TEXT, false},       {"written_at", BF_WCOL_TIME, true},
};
static const size_t run_key[] = {RUN_SYNC, RUN_ID, RUN_STARTED};
static const struct bf_wcol error_cols[] = {
    {"run_id", BF_WCOL_INT, true},    {"sync", BF_WCOL_TEXT, true},
    {"key_hash", BF_WCOL_TEXT, true}, {"column_name", BF_WCOL_TEXT, false},
    {"reason", BF_WCOL_TEXT, true},
};

void bf_writeback_tables(const char *schema, struct bf_wtable *runs, struct bf_wtable *errors) {
  *runs = (struct bf_wtable){schema, "sync_runs", run_cols, RUN_NCOLS, run_key, 3, false};
  *errors = (struct bf_wtable){schema, "sync_errors", error_cols, 5, NULL, 0, false};
}

/* Runs (newest first in runs) go in oldest first, so ids grow in insertion
 * order; the errors of the rows that were new go in the same transaction. */
static int write_runs(struct bf_writer *w, const struct bf_writeback_target *t,
                      struct bf_runlog *log, const struct bf_run_info *runs, size_t n,
                      struct bf_error *err) {
  struct bf_wtable rt, et;
  bf_writeback_tables(t->schema, &rt, &et);
  struct bf_value *rows = bf_xcalloc((n ? n : 1) * RUN_NCOLS, sizeof *rows);
  bool *fresh = bf_xcalloc(n ? n : 1, sizeof *fresh);
  long long now = bf_now_ms();
  for (size_t k = 0; k < n; k++) {
    const struct bf_run_info *r = &runs[n - 1 - k];
    struct bf_value *v = rows + k * RUN_NCOLS;
    v[RUN_ID] = bf_wint(r->id);
    v[RUN_SYNC] = bf_wtext(r->sync);
    v[RUN_MODEL] = bf_wtext(t->sync->model);
    v[RUN_DEST] = bf_wtext(t->sync->destination);
    v[RUN_STATUS] = bf_wtext(r->status);
    v[RUN_STARTED] = bf_wint(r->started_ms);
    v[RUN_FINISHED] = r->finished_ms > 0 ? bf_wint(r->finished_ms) : bf_wtext(NULL);
    v[RUN_DURATION] = bf_wint(r->finished_ms ? r->finished_ms - r->started_ms : 0);
    const long long *c = &r->counts.rows_read;
    for (int i = 0; i < 8; i++) v[RUN_COUNTS + i] = bf_wint(c[i]);
    v[RUN_ERROR] = bf_wtext(r->error);
    v[RUN_WRITTEN] = bf_wint(now);
  }
  int rc = w->ops->ensure(w, &rt, err);
  if (rc == 0) rc = w->ops->ensure(w, &et, err);
  if (rc == 0) rc = w->ops->begin(w, err);
  if (rc == 0) rc = w->ops->insert(w, &rt, rows, n, fresh, err);
  for (size_t k = 0; k < n && rc == 0; k++) {
    if (!fresh[k]) continue; /* written before, with its errors */
    const struct bf_run_info *r = &runs[n - 1 - k];
    struct bf_run_error *errs = NULL;
    size_t ne = 0;
    long long resolved = 0;
    struct bf_error lerr = {0};
    if (bf_runlog_errors(log, r->sync, r->id, &resolved, &errs, &ne, &lerr)) continue;
    if (ne == 0) {
      bf_run_errors_free(errs, ne);
      continue;
    }
    struct bf_value *ev = bf_xcalloc(ne * 5, sizeof *ev);
    for (size_t i = 0; i < ne; i++) {
      ev[i * 5 + 0] = bf_wint(r->id);
      ev[i * 5 + 1] = bf_wtext(r->sync);
      ev[i * 5 + 2] = bf_wtext(errs[i].key_hash ? errs[i].key_hash : "");
      ev[i * 5 + 3] = bf_wtext(errs[i].column);
      ev[i * 5 + 4] = bf_wtext(errs[i].reason ? errs[i].reason : "");
    }
    rc = w->ops->insert(w, &et, ev, ne, NULL, err);
    free(ev);
    bf_run_errors_free(errs, ne);
  }
  if (rc == 0) rc = w->ops->commit(w, err);
  if (rc) w->ops->rollback(w);
  free(rows);
  free(fresh);
  return rc;
}

bool bf_writeback_target(const struct bf_config *cfg, const char *sync,
                         struct bf_writeback_target *out) {
  memset(out, 0, sizeof *out);
  const struct bf_sync_config *sc = bf_config_sync(cfg, sync);
  const struct bf_node *wb = NULL;
  if (sc) wb = bf_node_get(bf_node_get(bf_node_get(cfg->root, "syncs"), sync), "write_back");
  if (!wb) wb = bf_node_get(cfg->root, "write_back");
  if (!wb) return false;
  /* `write_back: false` (or empty) on a sync turns a project-wide one off. */
  if (wb->kind == BF_NODE_SCALAR &&
      (!wb->scalar || !*wb->scalar || !strcmp(wb->scalar, "false") || !strcmp(wb->scalar, "off") ||
       !strcmp(wb->scalar, "~") || !strcmp(wb->scalar, "null")))
    return false;
  if (wb->kind != BF_NODE_MAP) {
    bf_log_warn("%s:%d:%d: write_back must be a mapping like {warehouse: NAME, schema: backflow}; "
                "nothing written back",
                wb->loc.file, wb->loc.line, wb->loc.col);
    return false;
  }
  static const char *const keys[] = {"warehouse", "schema", NULL};
  struct bf_error err = {0};
  if (bf_node_check_keys(wb, "write_back", keys, &err)) {
    bf_log_warn("%s; nothing written back", err.msg);
    return false;
  }
  const char *wh_name = bf_node_get_str(wb, "warehouse");
  if (!wh_name) {
    bf_log_warn("%s:%d:%d: write_back needs 'warehouse'; nothing written back", wb->loc.file,
                wb->loc.line, wb->loc.col);
    return false;
  }
  const struct bf_warehouse_config *wh = bf_config_warehouse(cfg, wh_name);
  if (!wh) {
    bf_log_warn("%s:%d:%d: write_back: no warehouse named '%s'; nothing written back", wb->loc.file,
                wb->loc.line, wb->loc.col, wh_name);
    return false;
  }
  const char *schema = bf_node_get_str(wb, "schema");
  out->cfg = cfg;
  out->sync = sc;
  out->wh = wh;
  out->schema = schema && *schema ? schema : "backflow";
  return true;
}

/* ---- entry point -------------------------------------------------------- */

void bf_writeback_run(struct bf_project *p, const char *sync) {
  if (!p) return;
  struct bf_writeback_target t;
  if (!bf_config_sync(p->cfg, sync) || !bf_writeback_target(p->cfg, sync, &t)) return;
  struct bf_error err = {0};
  struct bf_runlog *log = NULL;
  struct bf_run_info *runs = NULL;
  size_t n = 0;
  if (bf_runlog_open(p->state_dir, &log, &err) ||
      bf_runlog_list(log, sync, RECENT_RUNS, &runs, &n, &err)) {
    bf_log_warn("[sync %s] write-back: %s", sync, err.msg);
    bf_runlog_close(log);
    return;
  }
  /* A run still going (another process) is written back when it ends. */
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(runs[i].status, "running")) continue;
    if (kept != i) {
      struct bf_run_info tmp = runs[kept];
      runs[kept] = runs[i];
      runs[i] = tmp;
    }
    kept++;
  }
  struct bf_writer *w = NULL;
  int rc = bf_writer_open(t.wh, p->cfg, &w, &err);
  if (rc == 0) rc = write_runs(w, &t, log, runs, kept, &err);
  bf_writer_close(w);
  if (rc)
    bf_log_warn(
        "[sync %s] write-back to warehouse '%s' failed (the run itself is unaffected; the next run "
        "writes it back): %s",
        sync, t.wh->name, err.msg);
  bf_run_infos_free(runs, n);
  bf_runlog_close(log);
}

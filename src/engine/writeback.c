/* Write-back of run results into a warehouse (see writeback.h).
 *
 * Each run row's key is (sync, run_id, started_at): inserting with "do
 * nothing on conflict" makes write-back idempotent, so every write-back also
 * offers the few latest runs again. A run whose write-back failed (the
 * warehouse was down: the very run that failed because of it, say) lands
 * with the next one, and its errors with it. */
#include "clients/pg.h"
#include "engine/writeback.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "util/jsonw.h"
#include "util/log.h"

#define RECENT_RUNS 20

struct wb_target {
  const struct bf_config *cfg;
  const struct bf_sync_config *sync;
  const struct bf_warehouse_config *wh;
  const char *schema;
};

static void iso_time(long long ms, char *out, size_t cap) {
  if (ms <= 0) {
    out[0] = '\0';
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, cap, "%s.%03lldZ", base, ms % 1000);
}

static void copy_text(struct bf_buf *b, const char *s) {
  if (!s) {
    bf_buf_append(b, "\\N", 2);
    return;
  }
  for (; *s; s++) {
    switch (*s) {
    case '\\': bf_buf_append(b, "\\\\", 2); break;
    case '\n': bf_buf_append(b, "\\n", 2); break;
    case '\r': bf_buf_append(b, "\\r", 2); break;
    case '\t': bf_buf_append(b, "\\t", 2); break;
    default: bf_buf_putc(b, *s);
    }
  }
}

/* ---- PostgreSQL --------------------------------------------------------- */

static int pg_exec(PGconn *conn, const char *sql, const char *dsn, char *msg, size_t cap) {
  PGresult *res = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  int rc = 0;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    bf_pg_error_text(conn, res, dsn, msg, cap);
    rc = -1;
  }
  PQclear(res);
  return rc;
}

static int pg_copy_errors(PGconn *conn, const char *table_errors, const char *sync,
                          long long run_id, const struct bf_run_error *errs, size_t n,
                          const char *dsn, char *msg, size_t cap) {
  if (n == 0) return 0;
  char *sql = bf_xasprintf("COPY %s (run_id, sync, key_hash, column_name, reason) FROM STDIN",
                           table_errors);
  PGresult *res = PQexec(conn, sql);
  free(sql);
  if (PQresultStatus(res) != PGRES_COPY_IN) {
    bf_pg_error_text(conn, res, dsn, msg, cap);
    PQclear(res);
    return -1;
  }
  PQclear(res);
  struct bf_buf b = {0};
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    bf_buf_printf(&b, "%lld\t", run_id);
    copy_text(&b, sync);
    bf_buf_putc(&b, '\t');
    copy_text(&b, errs[i].key_hash ? errs[i].key_hash : "");
    bf_buf_putc(&b, '\t');
    copy_text(&b, errs[i].column);
    bf_buf_putc(&b, '\t');
    copy_text(&b, errs[i].reason ? errs[i].reason : "");
    bf_buf_putc(&b, '\n');
    if (b.len > (1u << 20) || i + 1 == n) {
      if (PQputCopyData(conn, b.data, (int)b.len) != 1) rc = -1;
      bf_buf_reset(&b);
    }
  }
  bf_buf_release(&b);
  if (PQputCopyEnd(conn, rc ? "aborted" : NULL) != 1) rc = -1;
  while ((res = PQgetResult(conn))) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) rc = -1;
    if (rc) bf_pg_error_text(conn, res, dsn, msg, cap);
    PQclear(res);
  }
  return rc;
}

static int wb_postgres(const struct wb_target *t, struct bf_runlog *log,
                       const struct bf_run_info *runs, size_t n, char *msg, size_t cap) {
  const char *dsn = bf_node_get_str(t->wh->params, "dsn");
  char *what = bf_xasprintf("write-back warehouse '%s'", t->wh->name);
  struct bf_error err = {0};
  PGconn *conn = bf_pg_connect(t->wh->params, what, BF_E_WAREHOUSE, &err);
  free(what);
  if (!conn) {
    snprintf(msg, cap, "%s", err.msg);
    return -1;
  }
  char *schema_q = PQescapeIdentifier(conn, t->schema, strlen(t->schema));
  if (!schema_q) {
    bf_pg_error_text(conn, NULL, dsn, msg, cap);
    PQfinish(conn);
    return -1;
  }
  char *runs_table = bf_xasprintf("%s.sync_runs", schema_q);
  char *errors_table = bf_xasprintf("%s.sync_errors", schema_q);
  char *ddl = bf_xasprintf(
      "CREATE SCHEMA IF NOT EXISTS %s;"
      "CREATE TABLE IF NOT EXISTS %s (run_id bigint NOT NULL, sync text NOT NULL, model text,"
      " destination text, status text NOT NULL, started_at timestamptz NOT NULL, finished_at "
      "timestamptz,"
      " duration_ms bigint, rows_read bigint, added bigint, changed bigint, removed bigint,"
      " unchanged bigint, skipped bigint, rejected bigint, failed bigint, error text,"
      " written_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sync, run_id, started_at));"
      "CREATE TABLE IF NOT EXISTS %s (run_id bigint NOT NULL, sync text NOT NULL, key_hash text "
      "NOT NULL,"
      " column_name text, reason text NOT NULL);",
      schema_q, runs_table, errors_table);
  PQfreemem(schema_q);
  int rc = pg_exec(conn, ddl, dsn, msg, cap);
  free(ddl);
  char *insert = bf_xasprintf(
      "INSERT INTO %s (run_id, sync, model, destination, status, started_at, finished_at, "
      "duration_ms,"
      " rows_read, added, changed, removed, unchanged, skipped, rejected, failed, error)"
      " VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint / 1000.0),"
      " CASE WHEN $7::bigint > 0 THEN to_timestamp($7::bigint / 1000.0) END, $8, $9, $10, $11, "
      "$12, $13,"
      " $14, $15, $16, $17) ON CONFLICT DO NOTHING RETURNING run_id",
      runs_table);
  if (rc == 0) rc = pg_exec(conn, "BEGIN", dsn, msg, cap);
  /* Oldest first, so ids grow in insertion order. */
  for (size_t k = n; rc == 0 && k-- > 0;) {
    const struct bf_run_info *r = &runs[k];
    char nums[14][32];
    const char *vals[17];
    long long v[] = {r->id,
                     r->started_ms,
                     r->finished_ms,
                     r->finished_ms ? r->finished_ms - r->started_ms : 0,
                     r->counts.rows_read,
                     r->counts.added,
                     r->counts.changed,
                     r->counts.removed,
                     r->counts.unchanged,
                     r->counts.skipped,
                     r->counts.rejected,
                     r->counts.failed};
    for (size_t i = 0; i < 12; i++) snprintf(nums[i], sizeof nums[i], "%lld", v[i]);
    vals[0] = nums[0];
    vals[1] = r->sync;
    vals[2] = t->sync->model;
    vals[3] = t->sync->destination;
    vals[4] = r->status;
    vals[5] = nums[1];
    vals[6] = nums[2];
    vals[7] = nums[3];
    for (size_t i = 0; i < 8; i++) vals[8 + i] = nums[4 + i];
    vals[16] = r->error;
    PGresult *res = PQexecParams(conn, insert, 17, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      bf_pg_error_text(conn, res, dsn, msg, cap);
      rc = -1;
    } else if (PQntuples(res) == 1) {
      /* A new row: its errors go with it. */
      struct bf_run_error *errs = NULL;
      size_t ne = 0;
      long long resolved = 0;
      struct bf_error lerr = {0};
      if (bf_runlog_errors(log, r->sync, r->id, &resolved, &errs, &ne, &lerr) == 0) {
        rc = pg_copy_errors(conn, errors_table, r->sync, r->id, errs, ne, dsn, msg, cap);
        bf_run_errors_free(errs, ne);
      }
    }
    PQclear(res);
  }
  if (rc == 0) rc = pg_exec(conn, "COMMIT", dsn, msg, cap);
  free(insert);
  free(runs_table);
  free(errors_table);
  PQfinish(conn);
  return rc;
}

/* ---- SQLite ------------------------------------------------------------- */

static int wb_sqlite(const struct wb_target *t, struct bf_runlog *log,
                     const struct bf_run_info *runs, size_t n, char *msg, size_t cap) {
  const char *rel = bf_node_get_str(t->wh->params, "path");
  if (!rel) {
    snprintf(msg, cap, "warehouse '%s' has no path", t->wh->name);
    return -1;
  }
  char *path = bf_config_path(t->cfg, rel);
  sqlite3 *db = NULL;
  sqlite3_stmt *ins = NULL, *ins_err = NULL;
  char *runs_table = NULL, *errors_table = NULL, *sql = NULL;
  int rc = 0;
  /* Read-write for this only; never create a warehouse that is not there. */
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    snprintf(msg, cap, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
    rc = -1;
    goto out;
  }
  sqlite3_busy_timeout(db, 10000);
  runs_table = sqlite3_mprintf("\"%w_sync_runs\"", t->schema);
  errors_table = sqlite3_mprintf("\"%w_sync_errors\"", t->schema);
  sql = sqlite3_mprintf(
      "CREATE TABLE IF NOT EXISTS %s (run_id INTEGER NOT NULL, sync TEXT NOT NULL, model TEXT,"
      " destination TEXT, status TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,"
      " duration_ms INTEGER, rows_read INTEGER, added INTEGER, changed INTEGER, removed INTEGER,"
      " unchanged INTEGER, skipped INTEGER, rejected INTEGER, failed INTEGER, error TEXT,"
      " written_at TEXT NOT NULL DEFAULT (strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now')),"
      " PRIMARY KEY (sync, run_id, started_at));"
      "CREATE TABLE IF NOT EXISTS %s (run_id INTEGER NOT NULL, sync TEXT NOT NULL, key_hash TEXT "
      "NOT NULL,"
      " column_name TEXT, reason TEXT NOT NULL);"
      "BEGIN IMMEDIATE;",
      runs_table, errors_table);
  char *emsg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &emsg) != SQLITE_OK) {
    snprintf(msg, cap, "%s: %s", path, emsg ? emsg : sqlite3_errmsg(db));
    sqlite3_free(emsg);
    rc = -1;
    goto out;
  }
  sqlite3_free(sql);
  sql = sqlite3_mprintf(
      "INSERT OR IGNORE INTO %s (run_id, sync, model, destination, status, started_at, finished_at,"
      " duration_ms, rows_read, added, changed, removed, unchanged, skipped, rejected, failed, "
      "error)"
      " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
      runs_table);
  if (sqlite3_prepare_v2(db, sql, -1, &ins, NULL) != SQLITE_OK) {
    snprintf(msg, cap, "%s: %s", path, sqlite3_errmsg(db));
    rc = -1;
    goto out;
  }
  sqlite3_free(sql);
  sql = sqlite3_mprintf(
      "INSERT INTO %s (run_id, sync, key_hash, column_name, reason) VALUES (?,?,?,?,?)",
      errors_table);
  if (sqlite3_prepare_v2(db, sql, -1, &ins_err, NULL) != SQLITE_OK) {
    snprintf(msg, cap, "%s: %s", path, sqlite3_errmsg(db));
    rc = -1;
    goto out;
  }
  for (size_t k = n; rc == 0 && k-- > 0;) {
    const struct bf_run_info *r = &runs[k];
    char started[40], finished[40];
    iso_time(r->started_ms, started, sizeof started);
    iso_time(r->finished_ms, finished, sizeof finished);
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, r->id);
    sqlite3_bind_text(ins, 2, r->sync, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, t->sync->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, t->sync->destination, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 6, started, -1, SQLITE_STATIC);
    if (finished[0])
      sqlite3_bind_text(ins, 7, finished, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(ins, 7);
    sqlite3_bind_int64(ins, 8, r->finished_ms ? r->finished_ms - r->started_ms : 0);
    const long long *c = &r->counts.rows_read;
    for (int i = 0; i < 8; i++) sqlite3_bind_int64(ins, 9 + i, c[i]);
    sqlite3_bind_text(ins, 17, r->error, -1, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) {
      snprintf(msg, cap, "%s: %s", path, sqlite3_errmsg(db));
      rc = -1;
      break;
    }
    if (sqlite3_changes(db) != 1) continue; /* written before */
    struct bf_run_error *errs = NULL;
    size_t ne = 0;
    long long resolved = 0;
    struct bf_error lerr = {0};
    if (bf_runlog_errors(log, r->sync, r->id, &resolved, &errs, &ne, &lerr)) continue;
    for (size_t i = 0; i < ne && rc == 0; i++) {
      sqlite3_reset(ins_err);
      sqlite3_bind_int64(ins_err, 1, r->id);
      sqlite3_bind_text(ins_err, 2, r->sync, -1, SQLITE_STATIC);
      sqlite3_bind_text(ins_err, 3, errs[i].key_hash ? errs[i].key_hash : "", -1, SQLITE_STATIC);
      sqlite3_bind_text(ins_err, 4, errs[i].column, -1, SQLITE_STATIC);
      sqlite3_bind_text(ins_err, 5, errs[i].reason ? errs[i].reason : "", -1, SQLITE_STATIC);
      if (sqlite3_step(ins_err) != SQLITE_DONE) {
        snprintf(msg, cap, "%s: %s", path, sqlite3_errmsg(db));
        rc = -1;
      }
    }
    bf_run_errors_free(errs, ne);
  }
  if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    snprintf(msg, cap, "%s: %s", path, sqlite3_errmsg(db));
    rc = -1;
  }
out:
  if (rc && db) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_finalize(ins);
  sqlite3_finalize(ins_err);
  sqlite3_free(sql);
  sqlite3_free(runs_table);
  sqlite3_free(errors_table);
  sqlite3_close(db);
  free(path);
  return rc;
}

/* ---- entry point -------------------------------------------------------- */

void bf_writeback_run(struct bf_project *p, const char *sync) {
  if (!p) return;
  const struct bf_config *cfg = p->cfg;
  const struct bf_sync_config *sc = bf_config_sync(cfg, sync);
  if (!sc) return;
  const struct bf_node *wb =
      bf_node_get(bf_node_get(bf_node_get(cfg->root, "syncs"), sync), "write_back");
  if (!wb) wb = bf_node_get(cfg->root, "write_back");
  if (!wb) return;
  /* `write_back: false` (or empty) on a sync turns a project-wide one off. */
  if (wb->kind == BF_NODE_SCALAR &&
      (!wb->scalar || !*wb->scalar || !strcmp(wb->scalar, "false") || !strcmp(wb->scalar, "off") ||
       !strcmp(wb->scalar, "~") || !strcmp(wb->scalar, "null")))
    return;
  if (wb->kind != BF_NODE_MAP) {
    bf_log_warn("%s:%d:%d: write_back must be a mapping like {warehouse: NAME, schema: backflow}; "
                "nothing written back",
                wb->loc.file, wb->loc.line, wb->loc.col);
    return;
  }
  static const char *const keys[] = {"warehouse", "schema", NULL};
  struct bf_error err = {0};
  if (bf_node_check_keys(wb, "write_back", keys, &err)) {
    bf_log_warn("%s; nothing written back", err.msg);
    return;
  }
  const char *wh_name = bf_node_get_str(wb, "warehouse");
  if (!wh_name) {
    bf_log_warn("%s:%d:%d: write_back needs 'warehouse'; nothing written back", wb->loc.file,
                wb->loc.line, wb->loc.col);
    return;
  }
  const struct bf_warehouse_config *wh = bf_config_warehouse(cfg, wh_name);
  if (!wh) {
    bf_log_warn("%s:%d:%d: write_back: no warehouse named '%s'; nothing written back", wb->loc.file,
                wb->loc.line, wb->loc.col, wh_name);
    return;
  }
  const char *schema = bf_node_get_str(wb, "schema");
  struct wb_target t = {cfg, sc, wh, schema && *schema ? schema : "backflow"};

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
  char msg[BF_ERROR_MSG_MAX] = "";
  int rc;
  if (!strcmp(wh->type, "postgres"))
    rc = wb_postgres(&t, log, runs, kept, msg, sizeof msg);
  else if (!strcmp(wh->type, "sqlite"))
    rc = wb_sqlite(&t, log, runs, kept, msg, sizeof msg);
  else {
    snprintf(msg, sizeof msg, "warehouse type '%s' does not support write-back", wh->type);
    rc = -1;
  }
  if (rc)
    bf_log_warn(
        "[sync %s] write-back to warehouse '%s' failed (the run itself is unaffected; the next run "
        "writes it back): %s",
        sync, wh->name, msg);
  bf_run_infos_free(runs, n);
  bf_runlog_close(log);
}

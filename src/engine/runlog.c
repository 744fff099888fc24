#include "engine/runlog.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "util/jsonw.h"

#define MAX_ERRORS_PER_RUN 100000

struct pending_error {
  long long run_id;
  char *key_hash, *column, *reason;
  bool failed;
};

struct bf_runlog {
  sqlite3 *db;
  char *path;
  struct pending_error *pending;
  size_t n_pending, cap_pending;
  long long stored_for_run, stored_run_id;
};

static int db_error(struct bf_runlog *log, struct bf_error *err) {
  return bf_error_set(err, BF_E_STATE, "%s: %s", log->path, sqlite3_errmsg(log->db));
}

static bool has_failed_column(struct bf_runlog *log) {
  sqlite3_stmt *probe = NULL;
  bool has = sqlite3_prepare_v2(log->db, "SELECT failed FROM run_errors LIMIT 0", -1, &probe,
                                NULL) == SQLITE_OK;
  sqlite3_finalize(probe);
  return has;
}

int bf_runlog_open(const char *state_dir, struct bf_runlog **out, struct bf_error *err) {
  struct bf_runlog *log = bf_xcalloc(1, sizeof *log);
  mkdir(state_dir, 0700);
  log->path = bf_xasprintf("%s/runs.db", state_dir);
  int rc = 0;
  if (sqlite3_open_v2(log->path, &log->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK) {
    rc = db_error(log, err);
    goto fail;
  }
  chmod(log->path, 0600);
  sqlite3_busy_timeout(log->db, 10000);
  const char *schema =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, sync TEXT NOT NULL,"
      " status TEXT NOT NULL, started_ms INTEGER NOT NULL, finished_ms INTEGER,"
      " rows_read INTEGER DEFAULT 0, added INTEGER DEFAULT 0, changed INTEGER DEFAULT 0,"
      " removed INTEGER DEFAULT 0, unchanged INTEGER DEFAULT 0, skipped INTEGER DEFAULT 0,"
      " rejected INTEGER DEFAULT 0, failed INTEGER DEFAULT 0, error TEXT);"
      "CREATE INDEX IF NOT EXISTS runs_by_sync ON runs(sync, id);"
      "CREATE TABLE IF NOT EXISTS run_errors (run_id INTEGER NOT NULL, key_hash TEXT NOT NULL,"
      " column_name TEXT, reason TEXT NOT NULL, failed INTEGER NOT NULL DEFAULT 0);"
      "CREATE INDEX IF NOT EXISTS run_errors_by_run ON run_errors(run_id);";
  if (sqlite3_exec(log->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
    rc = db_error(log, err);
    goto fail;
  }
  /* `failed` came later: a run log from before gets the column; its older
   * rows told failures apart only by the runner's words. */
  if (!has_failed_column(log) &&
      sqlite3_exec(log->db,
                   "BEGIN IMMEDIATE;"
                   "ALTER TABLE run_errors ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;"
                   "UPDATE run_errors SET failed = 1 WHERE reason LIKE 'not accepted after %';"
                   "COMMIT;",
                   NULL, NULL, NULL) != SQLITE_OK) {
    rc = db_error(log, err);
    sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
    if (!has_failed_column(log)) goto fail; /* else another process migrated it first */
    rc = 0;
    memset(err, 0, sizeof *err);
  }
  *out = log;
  return 0;
fail:
  bf_runlog_close(log);
  return rc;
}

int bf_runlog_open_readonly(const char *state_dir, struct bf_runlog **out, struct bf_error *err) {
  *out = NULL;
  struct bf_runlog *log = bf_xcalloc(1, sizeof *log);
  log->path = bf_xasprintf("%s/runs.db", state_dir);
  struct stat sb;
  if (stat(log->path, &sb) != 0) {
    bf_runlog_close(log);
    return 0;
  }
  int rc = 0;
  /* Without a -wal file every run is in runs.db itself, and an ordinary
   * read-only open would create the WAL files a reader leaves behind (it may
   * not delete them): read the file as it is. With one, a run may be writing:
   * read through the WAL, which needs its index (-shm). */
  char *wal = bf_xasprintf("%s-wal", log->path);
  bool has_wal = stat(wal, &sb) == 0;
  free(wal);
  if (has_wal && sqlite3_open_v2(log->path, &log->db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_busy_timeout(log->db, 10000);
    if (sqlite3_exec(log->db, "SELECT count(*) FROM runs", NULL, NULL, NULL) == SQLITE_OK) {
      *out = log;
      return 0;
    }
  }
  /* No WAL, or a reader who may not open its index (runs.db-shm belongs to
   * the user who runs the syncs): the file as last checkpointed, which is
   * every run but one still in progress. immutable=1 takes no locks and
   * writes nothing. */
  sqlite3_close(log->db);
  log->db = NULL;
  struct bf_buf uri = {0};
  bf_buf_puts(&uri, "file:");
  for (const char *c = log->path; *c; c++) {
    if (*c == '%' || *c == '?' || *c == '#')
      bf_buf_printf(&uri, "%%%02X", (unsigned char)*c);
    else
      bf_buf_putc(&uri, *c);
  }
  bf_buf_puts(&uri, "?immutable=1");
  if (sqlite3_open_v2(bf_buf_cstr(&uri), &log->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) !=
          SQLITE_OK ||
      sqlite3_exec(log->db, "SELECT count(*) FROM runs", NULL, NULL, NULL) != SQLITE_OK)
    rc = db_error(log, err);
  bf_buf_release(&uri);
  if (rc) {
    bf_runlog_close(log);
    return rc;
  }
  *out = log;
  return 0;
}

static void free_pending(struct bf_runlog *log) {
  for (size_t i = 0; i < log->n_pending; i++) {
    free(log->pending[i].key_hash);
    free(log->pending[i].column);
    free(log->pending[i].reason);
  }
  log->n_pending = 0;
}

void bf_runlog_close(struct bf_runlog *log) {
  if (!log) return;
  free_pending(log);
  free(log->pending);
  sqlite3_close(log->db);
  free(log->path);
  free(log);
}

int bf_runlog_begin(struct bf_runlog *log, const char *sync, long long *run_id,
                    struct bf_error *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(log->db,
                         "INSERT INTO runs(sync, status, started_ms) VALUES (?, 'running', ?)", -1,
                         &st, NULL) != SQLITE_OK)
    return db_error(log, err);
  sqlite3_bind_text(st, 1, sync, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, bf_now_ms());
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_error(log, err);
  sqlite3_finalize(st);
  if (rc == 0) *run_id = sqlite3_last_insert_rowid(log->db);
  return rc;
}

static void add(struct bf_runlog *log, long long run_id, const char *key_hash, const char *column,
                const char *reason, bool failed) {
  if (log->stored_run_id != run_id) {
    log->stored_run_id = run_id;
    log->stored_for_run = 0;
  }
  if (log->stored_for_run >= MAX_ERRORS_PER_RUN) return;
  log->stored_for_run++;
  if (log->n_pending == log->cap_pending) {
    log->cap_pending = log->cap_pending ? log->cap_pending * 2 : 64;
    log->pending = bf_xrealloc(log->pending, log->cap_pending * sizeof *log->pending);
  }
  log->pending[log->n_pending++] = (struct pending_error){
      run_id, bf_xstrdup(key_hash), column ? bf_xstrdup(column) : NULL, bf_xstrdup(reason), failed};
}

void bf_runlog_add_error(struct bf_runlog *log, long long run_id, const char *key_hash,
                         const char *column, const char *reason) {
  add(log, run_id, key_hash, column, reason, false);
}

void bf_runlog_add_failure(struct bf_runlog *log, long long run_id, const char *key_hash,
                           const char *reason) {
  add(log, run_id, key_hash, NULL, reason, true);
}

void bf_runlog_progress(struct bf_runlog *log, long long run_id, const struct bf_run_counts *c) {
  sqlite3_stmt *st;
  if (!log || sqlite3_prepare_v2(log->db,
                                 "UPDATE runs SET rows_read=?, added=?, changed=?, removed=?,"
                                 " unchanged=?, skipped=?, rejected=?, failed=?"
                                 " WHERE id=? AND status='running'",
                                 -1, &st, NULL) != SQLITE_OK)
    return;
  long long vals[] = {c->rows_read, c->added,   c->changed,  c->removed,
                      c->unchanged, c->skipped, c->rejected, c->failed};
  for (int i = 0; i < 8; i++) sqlite3_bind_int64(st, 1 + i, vals[i]);
  sqlite3_bind_int64(st, 9, run_id);
  /* A reader holding the database must not stall the run for the busy
   * timeout: the next update, 250 ms later, carries newer counts anyway. */
  sqlite3_busy_timeout(log->db, 0);
  sqlite3_step(st);
  sqlite3_busy_timeout(log->db, 10000);
  sqlite3_finalize(st);
}

int bf_runlog_flush(struct bf_runlog *log, struct bf_error *err) {
  if (log->n_pending == 0) return 0;
  sqlite3_stmt *st = NULL;
  int rc = 0;
  sqlite3_exec(log->db, "BEGIN", NULL, NULL, NULL);
  if (sqlite3_prepare_v2(log->db,
                         "INSERT INTO run_errors(run_id, key_hash, column_name, reason, failed)"
                         " VALUES (?, ?, ?, ?, ?)",
                         -1, &st, NULL) != SQLITE_OK) {
    rc = db_error(log, err);
    goto out;
  }
  for (size_t i = 0; i < log->n_pending; i++) {
    struct pending_error *e = &log->pending[i];
    sqlite3_bind_int64(st, 1, e->run_id);
    sqlite3_bind_text(st, 2, e->key_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, e->column, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, e->failed);
    if (sqlite3_step(st) != SQLITE_DONE) {
      rc = db_error(log, err);
      goto out;
    }
    sqlite3_reset(st);
  }
out:
  sqlite3_finalize(st);
  sqlite3_exec(log->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
  free_pending(log);
  return rc;
}

int bf_runlog_finish(struct bf_runlog *log, long long run_id, const char *status,
                     const struct bf_run_counts *c, const char *error, struct bf_error *err) {
  int rc = bf_runlog_flush(log, err);
  if (rc) return rc;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(
          log->db,
          "UPDATE runs SET status=?, finished_ms=?, rows_read=?, added=?, changed=?,"
          " removed=?, unchanged=?, skipped=?, rejected=?, failed=?, error=? WHERE id=?",
          -1, &st, NULL) != SQLITE_OK)
    return db_error(log, err);
  sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, bf_now_ms());
  long long vals[] = {c->rows_read, c->added,   c->changed,  c->removed,
                      c->unchanged, c->skipped, c->rejected, c->failed};
  for (int i = 0; i < 8; i++) sqlite3_bind_int64(st, 3 + i, vals[i]);
  sqlite3_bind_text(st, 11, error, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 12, run_id);
  rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_error(log, err);
  sqlite3_finalize(st);
  return rc;
}

void bf_runlog_mark_crashed(struct bf_runlog *log, const char *sync) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(
          log->db,
          "UPDATE runs SET status='crashed', error='the process stopped before the run "
          "finished; the next run resent what was not acknowledged'"
          " WHERE sync=? AND status='running'",
          -1, &st, NULL) != SQLITE_OK)
    return;
  sqlite3_bind_text(st, 1, sync, -1, SQLITE_STATIC);
  sqlite3_step(st);
  sqlite3_finalize(st);
}

static char *col_text(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? bf_xstrdup((const char *)t) : NULL;
}

int bf_runlog_list(struct bf_runlog *log, const char *sync, int limit, struct bf_run_info **out,
                   size_t *n, struct bf_error *err) {
  *out = NULL;
  *n = 0;
  if (!log) return 0; /* no run log yet (bf_runlog_open_readonly) */
  sqlite3_stmt *st;
  const char *sql =
      "SELECT id, sync, status, started_ms, coalesce(finished_ms, 0), rows_read, added, changed,"
      " removed, unchanged, skipped, rejected, failed, error FROM runs"
      " WHERE (?1 IS NULL OR sync = ?1) ORDER BY id DESC LIMIT ?2";
  if (sqlite3_prepare_v2(log->db, sql, -1, &st, NULL) != SQLITE_OK) return db_error(log, err);
  sqlite3_bind_text(st, 1, sync, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, limit);
  size_t cap = 16, count = 0;
  struct bf_run_info *runs = bf_xcalloc(cap, sizeof *runs);
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (count == cap) {
      cap *= 2;
      runs = bf_xrealloc(runs, cap * sizeof *runs);
    }
    struct bf_run_info *r = &runs[count++];
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->sync = col_text(st, 1);
    r->status = col_text(st, 2);
    r->started_ms = sqlite3_column_int64(st, 3);
    r->finished_ms = sqlite3_column_int64(st, 4);
    long long *c = &r->counts.rows_read;
    for (int i = 0; i < 8; i++) c[i] = sqlite3_column_int64(st, 5 + i);
    r->error = col_text(st, 13);
  }
  sqlite3_finalize(st);
  *out = runs;
  *n = count;
  return 0;
}

void bf_run_infos_free(struct bf_run_info *runs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(runs[i].sync);
    free(runs[i].status);
    free(runs[i].error);
  }
  free(runs);
}

int bf_runlog_errors(struct bf_runlog *log, const char *sync, long long run_id, long long *resolved,
                     struct bf_run_error **out, size_t *n, struct bf_error *err) {
  sqlite3_stmt *st;
  *out = NULL;
  *n = 0;
  if (!log) return bf_error_set(err, BF_E_USAGE, "sync '%s' has no runs yet", sync);
  if (run_id <= 0) {
    if (sqlite3_prepare_v2(log->db,
                           "SELECT max(id) FROM runs WHERE sync = ? AND status != 'running'", -1,
                           &st, NULL) != SQLITE_OK)
      return db_error(log, err);
    sqlite3_bind_text(st, 1, sync, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (run_id <= 0) return bf_error_set(err, BF_E_USAGE, "sync '%s' has no runs yet", sync);
  } else {
    if (sqlite3_prepare_v2(log->db, "SELECT 1 FROM runs WHERE id = ? AND sync = ?", -1, &st,
                           NULL) != SQLITE_OK)
      return db_error(log, err);
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, sync, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!found) return bf_error_set(err, BF_E_USAGE, "sync '%s' has no run %lld", sync, run_id);
  }
  *resolved = run_id;
  /* A run log opened read-only may predate the failed column: such a log
   * told failures apart only by the runner's words. */
  if (sqlite3_prepare_v2(log->db,
                         "SELECT key_hash, column_name, reason, failed FROM run_errors"
                         " WHERE run_id = ? ORDER BY rowid",
                         -1, &st, NULL) != SQLITE_OK &&
      sqlite3_prepare_v2(log->db,
                         "SELECT key_hash, column_name, reason,"
                         " reason LIKE 'not accepted after %' FROM run_errors"
                         " WHERE run_id = ? ORDER BY rowid",
                         -1, &st, NULL) != SQLITE_OK)
    return db_error(log, err);
  sqlite3_bind_int64(st, 1, run_id);
  size_t cap = 16, count = 0;
  struct bf_run_error *errs = bf_xcalloc(cap, sizeof *errs);
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (count == cap) {
      cap *= 2;
      errs = bf_xrealloc(errs, cap * sizeof *errs);
    }
    errs[count].key_hash = col_text(st, 0);
    errs[count].column = col_text(st, 1);
    errs[count].reason = col_text(st, 2);
    errs[count].failed = sqlite3_column_int(st, 3) != 0;
    count++;
  }
  sqlite3_finalize(st);
  *out = errs;
  *n = count;
  return 0;
}

void bf_run_errors_free(struct bf_run_error *errs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(errs[i].key_hash);
    free(errs[i].column);
    free(errs[i].reason);
  }
  free(errs);
}

/* The write path of the SQLite warehouse (source.h, bf_writer_ops): a
 * second, read-write connection, used for Backflow's own tables only. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "util/jsonw.h"
#include "sources/source.h"

struct sqlite_writer {
  struct bf_writer base;
  sqlite3 *db;
  char *path;
  char *ensured; /* "\n"-separated tables this connection already created */
};

static int fail(struct sqlite_writer *w, const char *doing, struct bf_error *err) {
  return bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s' (%s): %s: %s", w->base.name, w->path,
                      doing, sqlite3_errmsg(w->db));
}

static int exec(struct sqlite_writer *w, const char *sql, const char *doing, struct bf_error *err) {
  return sqlite3_exec(w->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(w, doing, err);
}

/* "schema_name", quoted. Caller frees with sqlite3_free. */
static char *table_name(const struct bf_wtable *t) {
  return sqlite3_mprintf("\"%w_%w\"", t->schema, t->name);
}

static int sw_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                   struct bf_writer **out, struct bf_error *err) {
  const char *rel = bf_node_get_str(wh->params, "path");
  if (!rel)
    return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: warehouse '%s' (sqlite) needs 'path'",
                        wh->loc.file, wh->loc.line, wh->loc.col, wh->name);
  struct sqlite_writer *w = bf_xcalloc(1, sizeof *w);
  w->path = bf_config_path(cfg, rel);
  /* Never create a warehouse that is not there: a typo in path must not
   * leave events in a new, empty file nobody reads. */
  int rc = sqlite3_open_v2(w->path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s': cannot open %s for writing: %s", wh->name,
                 w->path, w->db ? sqlite3_errmsg(w->db) : sqlite3_errstr(rc));
    sqlite3_close(w->db);
    free(w->path);
    free(w);
    return BF_E_WAREHOUSE;
  }
  sqlite3_busy_timeout(w->db, 5000);
  *out = &w->base;
  return 0;
}

static int sw_ensure(struct bf_writer *w_, const struct bf_wtable *t, struct bf_error *err) {
  struct sqlite_writer *w = (struct sqlite_writer *)w_;
  char *name = table_name(t);
  if (w->ensured && strstr(w->ensured, name)) {
    sqlite3_free(name);
    return 0;
  }
  struct bf_buf b = {0};
  bf_buf_printf(&b, "CREATE TABLE IF NOT EXISTS %s (", name);
  if (t->serial_id) bf_buf_printf(&b, "id INTEGER PRIMARY KEY AUTOINCREMENT, ");
  for (size_t i = 0; i < t->ncols; i++) {
    const struct bf_wcol *c = &t->cols[i];
    char *col = sqlite3_mprintf("\"%w\" %s%s", c->name, c->type == BF_WCOL_INT ? "INTEGER" : "TEXT",
                                c->not_null ? " NOT NULL" : "");
    bf_buf_printf(&b, "%s%s", i ? ", " : "", col);
    sqlite3_free(col);
  }
  if (t->n_unique) {
    bf_buf_printf(&b, ", UNIQUE (");
    for (size_t i = 0; i < t->n_unique; i++) {
      char *col = sqlite3_mprintf("\"%w\"", t->cols[t->unique[i]].name);
      bf_buf_printf(&b, "%s%s", i ? ", " : "", col);
      sqlite3_free(col);
    }
    bf_buf_putc(&b, ')');
  }
  bf_buf_putc(&b, ')');
  char *doing = bf_xasprintf("creating %s", name);
  int rc = exec(w, bf_buf_cstr(&b), doing, err);
  free(doing);
  bf_buf_release(&b);
  if (rc == 0) {
    char *more = bf_xasprintf("%s%s\n", w->ensured ? w->ensured : "", name);
    free(w->ensured);
    w->ensured = more;
  }
  sqlite3_free(name);
  return rc;
}

static int sw_begin(struct bf_writer *w_, struct bf_error *err) {
  struct sqlite_writer *w = (struct sqlite_writer *)w_;
  /* IMMEDIATE: wait for the write lock now (busy timeout) rather than fail
   * half-way when a reader upgrades. */
  return exec(w, "BEGIN IMMEDIATE", "starting a transaction", err);
}

static void iso_ms(long long ms, char out[32]) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  size_t k = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + k, 32 - k, ".%03lldZ", ms % 1000);
}

static int sw_insert(struct bf_writer *w_, const struct bf_wtable *t, const struct bf_value *rows,
                     size_t n, bool *inserted, struct bf_error *err) {
  struct sqlite_writer *w = (struct sqlite_writer *)w_;
  if (n == 0) return 0;
  char *name = table_name(t);
  struct bf_buf b = {0};
  bf_buf_printf(&b, "INSERT OR IGNORE INTO %s (", name);
  for (size_t i = 0; i < t->ncols; i++) {
    char *col = sqlite3_mprintf("\"%w\"", t->cols[i].name);
    bf_buf_printf(&b, "%s%s", i ? ", " : "", col);
    sqlite3_free(col);
  }
  bf_buf_printf(&b, ") VALUES (");
  for (size_t i = 0; i < t->ncols; i++) bf_buf_printf(&b, "%s?", i ? ", " : "");
  bf_buf_putc(&b, ')');
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_prepare_v2(w->db, bf_buf_cstr(&b), -1, &st, NULL) != SQLITE_OK) {
    rc = fail(w, "preparing an insert", err);
    goto out;
  }
  for (size_t r = 0; r < n && rc == 0; r++) {
    sqlite3_reset(st);
    for (size_t c = 0; c < t->ncols; c++) {
      const struct bf_value *v = &rows[r * t->ncols + c];
      int col = (int)c + 1;
      if (v->type == BF_NULL) {
        sqlite3_bind_null(st, col);
      } else if (t->cols[c].type == BF_WCOL_TIME) {
        char iso[32];
        iso_ms(v->u.i, iso);
        sqlite3_bind_text(st, col, iso, -1, SQLITE_TRANSIENT);
      } else if (v->type == BF_INT || v->type == BF_BOOL) {
        sqlite3_bind_int64(st, col, v->u.i);
      } else {
        sqlite3_bind_text(st, col, v->u.s, (int)v->len, SQLITE_STATIC);
      }
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
      char *doing = bf_xasprintf("inserting into %s", name);
      rc = fail(w, doing, err);
      free(doing);
      break;
    }
    if (inserted) inserted[r] = sqlite3_changes(w->db) == 1;
  }
out:
  sqlite3_finalize(st);
  bf_buf_release(&b);
  sqlite3_free(name);
  return rc;
}

static int sw_commit(struct bf_writer *w_, struct bf_error *err) {
  return exec((struct sqlite_writer *)w_, "COMMIT", "committing", err);
}

static void sw_rollback(struct bf_writer *w_) {
  struct sqlite_writer *w = (struct sqlite_writer *)w_;
  if (!sqlite3_get_autocommit(w->db)) sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
}

static void sw_close(struct bf_writer *w_) {
  struct sqlite_writer *w = (struct sqlite_writer *)w_;
  sqlite3_close(w->db);
  free(w->path);
  free(w->ensured);
  free(w);
}

const struct bf_writer_ops bf_writer_sqlite = {sw_open,   sw_ensure,   sw_begin, sw_insert,
                                               sw_commit, sw_rollback, sw_close};

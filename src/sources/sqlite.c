/* SQLite warehouse: the embedded one for laptops and the demo. Rows are
 * stepped one at a time from a prepared statement, never materialised. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "util/jsonw.h"
#include "sources/source.h"

struct sqlite_source {
  struct bf_source base;
  sqlite3 *db;
  char *path;
};

struct sqlite_cursor {
  struct bf_cursor base;
  sqlite3_stmt *stmt;
  struct sqlite_source *src;
  bool done;
  char *sql;         /* the model's statement alone, no trailing ';' (NULL: unknown) */
  int *cols;         /* row indexes of the columns read, set on the first chunk */
  int *stmt_cols;    /* their indexes in stmt (differ once the statement is narrowed) */
  size_t ncols_read; /* entries in cols and stmt_cols */
};

/* True when the model's SQL may be tried as a subquery: its columns can be
 * named without ambiguity and it does not order its rows (narrow_statement
 * then checks that SQLite's plan, hence the row order, stays the same). */
static bool narrowing_safe(const struct sqlite_cursor *cur) {
  if (!cur->sql || sqlite3_bind_parameter_count(cur->stmt) > 0) return false;
  /* Row order decides which of two duplicate keys is kept: never risk it. */
  for (const char *p = cur->sql; *p; p++)
    if (strncasecmp(p, "order", 5) == 0) return false;
  for (size_t a = 0; a < cur->base.ncols; a++)
    for (size_t b = a + 1; b < cur->base.ncols; b++)
      if (strcasecmp(cur->base.column_names[a], cur->base.column_names[b]) == 0) return false;
  return true;
}

/* Appends the steps of sql's query plan (EXPLAIN QUERY PLAN details) to out,
 * one per line; false when it cannot be had. */
static bool plan_text(sqlite3 *db, const char *sql, struct bf_buf *out) {
  char *explain = bf_xasprintf("EXPLAIN QUERY PLAN %s", sql);
  sqlite3_stmt *st = NULL;
  bool ok = sqlite3_prepare_v2(db, explain, -1, &st, NULL) == SQLITE_OK && st;
  int rc = SQLITE_DONE;
  while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *detail = sqlite3_column_text(st, 3);
    bf_buf_puts(out, detail ? (const char *)detail : "");
    bf_buf_putc(out, '\n');
  }
  ok = ok && rc == SQLITE_DONE;
  sqlite3_finalize(st);
  free(explain);
  return ok;
}

static bool same_plan(sqlite3 *db, const char *a, const char *b) {
  struct bf_buf pa = {0}, pb = {0};
  bool same = plan_text(db, a, &pa) && plan_text(db, b, &pb) && pa.len == pb.len &&
              memcmp(pa.data, pb.data, pa.len) == 0;
  bf_buf_release(&pa);
  bf_buf_release(&pb);
  return same;
}

/* Projection pushdown: when only some columns are wanted, runs
 *   SELECT "a", "b" FROM (<model SQL>)
 * instead, so SQLite never decodes the others (the flattener merges the two
 * queries). Falls back to the model's own statement when the rewrite does not
 * prepare, does not return the expected columns or would read the rows in
 * another order. */
static void narrow_statement(struct sqlite_cursor *cur) {
  if (!narrowing_safe(cur)) return;
  struct bf_buf q = {0};
  bf_buf_puts(&q, "SELECT ");
  for (size_t k = 0; k < cur->ncols_read; k++) {
    if (k) bf_buf_puts(&q, ", ");
    bf_buf_putc(&q, '"');
    for (const char *c = cur->base.column_names[cur->cols[k]]; *c; c++) {
      if (*c == '"') bf_buf_putc(&q, '"');
      bf_buf_putc(&q, *c);
    }
    bf_buf_putc(&q, '"');
  }
  bf_buf_puts(&q, " FROM (\n"); /* newlines: a trailing -- comment ends before the ')' */
  bf_buf_puts(&q, cur->sql);
  bf_buf_puts(&q, "\n)");
  bf_buf_putc(&q, '\0');
  sqlite3_stmt *narrow = NULL;
  bool ok = sqlite3_prepare_v2(cur->src->db, q.data, -1, &narrow, NULL) == SQLITE_OK && narrow &&
            sqlite3_column_count(narrow) == (int)cur->ncols_read;
  for (size_t k = 0; ok && k < cur->ncols_read; k++)
    ok = strcmp(sqlite3_column_name(narrow, (int)k), cur->base.column_names[cur->cols[k]]) == 0;
  bf_buf_release(&q);
  /* Without ORDER BY, rows come in the order of SQLite's plan, and that
   * order decides which of two duplicate keys is kept (and, with LIMIT,
   * which rows are read at all). A narrower query may get another plan (a
   * covering index, say): then the model's own statement runs. */
  if (ok) ok = same_plan(cur->src->db, cur->sql, sqlite3_sql(narrow));
  if (!ok) {
    sqlite3_finalize(narrow);
    return;
  }
  sqlite3_finalize(cur->stmt);
  cur->stmt = narrow;
  for (size_t k = 0; k < cur->ncols_read; k++) cur->stmt_cols[k] = (int)k;
}

/* The columns to read, in order: every column unless the caller said which
 * it wants. Values of the other columns stay BF_NULL (the chunk's values
 * start zeroed, and nothing ever writes them). */
static void sqlite_plan_columns(struct sqlite_cursor *cur) {
  cur->cols = bf_xcalloc(cur->base.ncols, sizeof *cur->cols);
  cur->stmt_cols = bf_xcalloc(cur->base.ncols, sizeof *cur->stmt_cols);
  for (size_t c = 0; c < cur->base.ncols; c++)
    if (!cur->base.wanted || cur->base.wanted[c]) {
      cur->stmt_cols[cur->ncols_read] = (int)c;
      cur->cols[cur->ncols_read++] = (int)c;
    }
  if (cur->ncols_read < cur->base.ncols) narrow_statement(cur);
}

static int sqlite_next_chunk(struct bf_cursor *cur_, struct bf_rowbuf *rb, struct bf_error *err) {
  struct sqlite_cursor *cur = (struct sqlite_cursor *)cur_;
  if (cur->done) return 0;
  if (!cur->cols) sqlite_plan_columns(cur);
  sqlite3_stmt *stmt = cur->stmt;
  const size_t ncols = rb->ncols, nread = cur->ncols_read;
  const int *cols = cur->cols, *stmt_cols = cur->stmt_cols;
  while (rb->nrows < rb->cap_rows) {
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
      cur->done = true;
      break;
    }
    if (rc != SQLITE_ROW)
      return bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s' (%s): reading rows failed: %s",
                          cur->src->base.name, cur->src->path, sqlite3_errmsg(cur->src->db));
    struct bf_value *row = rb->values + rb->nrows * ncols;
    for (size_t k = 0; k < nread; k++) {
      /* One lookup per column instead of one per call (type, bytes, text):
       * the reader thread is the critical path of a plan. The value is
       * "unprotected" (no mutex held), which is safe here: the connection is
       * opened NOMUTEX and only this thread uses it while rows stream. */
      sqlite3_value *val = sqlite3_column_value(stmt, stmt_cols[k]);
      struct bf_value *v = &row[cols[k]];
      switch (sqlite3_value_type(val)) {
      case SQLITE_INTEGER:
        v->type = BF_INT;
        v->u.i = sqlite3_value_int64(val);
        break;
      case SQLITE_FLOAT:
        v->type = BF_FLOAT;
        v->u.f = sqlite3_value_double(val);
        break;
      case SQLITE_TEXT: {
        const unsigned char *t = sqlite3_value_text(val);
        int n = sqlite3_value_bytes(val);
        v->type = BF_TEXT;
        v->len = (uint32_t)n;
        v->u.s = bf_rowbuf_put_bytes(rb, t, (size_t)n);
        break;
      }
      case SQLITE_BLOB: {
        const void *b = sqlite3_value_blob(val);
        int n = sqlite3_value_bytes(val);
        v->type = BF_BLOB;
        v->len = (uint32_t)n;
        v->u.s = bf_rowbuf_put_bytes(rb, b, (size_t)n);
        break;
      }
      default: v->type = BF_NULL; break;
      }
    }
    rb->nrows++;
  }
  return (int)rb->nrows;
}

static void sqlite_cursor_free(struct bf_cursor *cur_) {
  struct sqlite_cursor *cur = (struct sqlite_cursor *)cur_;
  sqlite3_finalize(cur->stmt);
  free(cur->cols);
  free(cur->stmt_cols);
  free(cur->sql);
  bf_cursor_release_names(&cur->base);
  free(cur);
}

static const struct bf_cursor_ops sqlite_cursor_ops = {sqlite_next_chunk, sqlite_cursor_free};

static int sqlite_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                       struct bf_source **out, struct bf_error *err) {
  const struct bf_node *path_node = bf_node_get(wh->params, "path");
  if (!path_node || path_node->kind != BF_NODE_SCALAR)
    return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: warehouse '%s' (sqlite) needs 'path'",
                        wh->loc.file, wh->loc.line, wh->loc.col, wh->name);
  struct sqlite_source *src = bf_xcalloc(1, sizeof *src);
  src->base.type = &bf_source_sqlite;
  src->path = bf_config_path(cfg, path_node->scalar);
  /* Read-only: a model is a query, and Backflow must never write to the
   * warehouse through it. A missing file is an error, not a new database. */
  int rc = sqlite3_open_v2(src->path, &src->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    bf_error_set(err, BF_E_WAREHOUSE, "%s:%d:%d: warehouse '%s': cannot open %s: %s",
                 path_node->loc.file, path_node->loc.line, path_node->loc.col, wh->name, src->path,
                 src->db ? sqlite3_errmsg(src->db) : sqlite3_errstr(rc));
    sqlite3_close(src->db);
    free(src->path);
    free(src);
    return BF_E_WAREHOUSE;
  }
  sqlite3_busy_timeout(src->db, 10000);
  *out = &src->base;
  return 0;
}

static int sqlite_query(struct bf_source *src_, const char *sql, struct bf_cursor **out,
                        struct bf_error *err) {
  struct sqlite_source *src = (struct sqlite_source *)src_;
  sqlite3_stmt *stmt = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v2(src->db, sql, -1, &stmt, &tail);
  if (rc != SQLITE_OK) return bf_error_set(err, BF_E_WAREHOUSE, "%s", sqlite3_errmsg(src->db));
  if (!stmt) return bf_error_set(err, BF_E_WAREHOUSE, "the SQL is empty");
  while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == ';' || *tail == '\r'))
    tail++;
  if (tail && *tail) {
    sqlite3_finalize(stmt);
    return bf_error_set(err, BF_E_WAREHOUSE, "the SQL holds more than one statement");
  }
  if (!sqlite3_stmt_readonly(stmt)) {
    sqlite3_finalize(stmt);
    return bf_error_set(err, BF_E_WAREHOUSE, "the SQL must be a read-only query (SELECT)");
  }
  int ncols = sqlite3_column_count(stmt);
  if (ncols == 0) {
    sqlite3_finalize(stmt);
    return bf_error_set(err, BF_E_WAREHOUSE, "the SQL returns no columns");
  }
  struct sqlite_cursor *cur = bf_xcalloc(1, sizeof *cur);
  cur->base.ops = &sqlite_cursor_ops;
  cur->base.ncols = (size_t)ncols;
  cur->base.column_names = bf_xcalloc((size_t)ncols, sizeof(char *));
  for (int i = 0; i < ncols; i++)
    cur->base.column_names[i] = bf_xstrdup(sqlite3_column_name(stmt, i));
  cur->stmt = stmt;
  cur->src = src;
  size_t len = (size_t)(tail - sql);
  while (len && (sql[len - 1] == ';' || sql[len - 1] == ' ' || sql[len - 1] == '\n' ||
                 sql[len - 1] == '\t' || sql[len - 1] == '\r'))
    len--;
  cur->sql = bf_xstrndup(sql, len);
  *out = &cur->base;
  return 0;
}

/* The query of sqlite_query, with params bound to $1..$n. */
static int sqlite_query_params(struct bf_source *src_, const char *sql, const char *const *params,
                               size_t nparams, struct bf_cursor **out, struct bf_error *err) {
  struct sqlite_source *src = (struct sqlite_source *)src_;
  int rc = sqlite_query(src_, sql, out, err);
  if (rc) return rc;
  struct sqlite_cursor *cur = (struct sqlite_cursor *)*out;
  for (size_t i = 0; i < nparams; i++) {
    char name[24];
    snprintf(name, sizeof name, "$%zu", i + 1);
    int idx = sqlite3_bind_parameter_index(cur->stmt, name);
    if (idx == 0 ||
        sqlite3_bind_text(cur->stmt, idx, params[i], -1, SQLITE_TRANSIENT) != SQLITE_OK) {
      rc = bf_error_set(err, BF_E_WAREHOUSE, "binding parameter %s: %s", name,
                        idx ? sqlite3_errmsg(src->db) : "not in the SQL");
      bf_cursor_free(*out);
      *out = NULL;
      return rc;
    }
  }
  return 0;
}

/* Keys in one query_keys call. The caller splits larger sets (live_pass.c
 * asks 500 at a time); more is a bug. Far below SQLite's parameter limit
 * (32766 since 3.32), so the statement always prepares. */
#define SQLITE_MAX_KEYS 10000

/* The model's rows for a live sync's changed keys, each key bound with its
 * own type: a model whose key is an expression (no column affinity) would
 * not match an integer bound as text. */
static int sqlite_query_keys(struct bf_source *src_, const char *sql, const char *key_column,
                             const struct bf_value *keys, size_t n, struct bf_cursor **out,
                             struct bf_error *err) {
  struct sqlite_source *src = (struct sqlite_source *)src_;
  if (n == 0 || n > SQLITE_MAX_KEYS) BF_BUG("sqlite_query_keys: %zu keys", n);
  size_t len = strlen(sql);
  while (len && (sql[len - 1] == ';' || sql[len - 1] == ' ' || sql[len - 1] == '\n' ||
                 sql[len - 1] == '\t' || sql[len - 1] == '\r'))
    len--;
  struct bf_buf q = {0};
  /* newlines: a trailing -- comment in the model ends before the ')' */
  bf_buf_printf(&q, "SELECT * FROM (\n%.*s\n) WHERE \"", (int)len, sql);
  for (const char *c = key_column; *c; c++) {
    if (*c == '"') bf_buf_putc(&q, '"');
    bf_buf_putc(&q, *c);
  }
  bf_buf_puts(&q, "\" IN (");
  for (size_t i = 0; i < n; i++) bf_buf_printf(&q, "%s?%zu", i ? "," : "", i + 1);
  bf_buf_putc(&q, ')');
  int rc = sqlite_query(src_, bf_buf_cstr(&q), out, err);
  bf_buf_release(&q);
  if (rc) return rc;
  /* Binding to this statement is enough: narrow_statement never replaces
   * one that has parameters (narrowing_safe), so it is the one that runs. */
  struct sqlite_cursor *cur = (struct sqlite_cursor *)*out;
  for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
    const struct bf_value *k = &keys[i];
    int idx = (int)i + 1;
    switch (k->type) {
    case BF_INT:
    case BF_BOOL: rc = sqlite3_bind_int64(cur->stmt, idx, k->u.i); break;
    case BF_FLOAT: rc = sqlite3_bind_double(cur->stmt, idx, k->u.f); break;
    case BF_TEXT:
    case BF_JSON:
      rc = sqlite3_bind_text(cur->stmt, idx, k->u.s, (int)k->len, SQLITE_TRANSIENT);
      break;
    case BF_BLOB:
      rc = sqlite3_bind_blob(cur->stmt, idx, k->u.s, (int)k->len, SQLITE_TRANSIENT);
      break;
    case BF_NULL: rc = sqlite3_bind_null(cur->stmt, idx); break;
    }
  }
  if (rc != SQLITE_OK) {
    rc = bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s': binding changed keys: %s",
                      src->base.name, sqlite3_errmsg(src->db));
    bf_cursor_free(*out);
    *out = NULL;
    return rc;
  }
  return 0;
}

static void sqlite_close(struct bf_source *src_) {
  struct sqlite_source *src = (struct sqlite_source *)src_;
  sqlite3_close(src->db);
  free(src->path);
  free(src);
}

static const struct bf_param_spec sqlite_params[] = {
    {"path", BF_PARAM_STRING, NULL, true, false,
     "SQLite database file (opened read-only), relative to the project"},
    {NULL, 0, NULL, false, false, NULL},
};

const struct bf_source_type bf_source_sqlite = {
    .name = "sqlite",
    .params = sqlite_params,
    .open = sqlite_open,
    .query = sqlite_query,
    .close = sqlite_close,
    .query_params = sqlite_query_params,
    .query_keys = sqlite_query_keys,
    .feed = &bf_feed_sqlite,
    .write = &bf_writer_sqlite,
};

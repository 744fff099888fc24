/* The write path of the PostgreSQL warehouse (source.h, bf_writer_ops).
 *
 * Rows go in by COPY, one round trip per batch whatever its size: straight
 * into the table when it has no idempotency key, else into a temporary
 * stage from which one INSERT ... ON CONFLICT DO NOTHING moves them and
 * reports which were new (COPY itself cannot skip duplicates). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/jsonw.h"
#include "clients/pg.h"
#include "sources/source.h"

struct pg_writer {
  struct bf_writer base;
  PGconn *conn;
  char *dsn;
  char *ensured; /* "\n"-separated tables (and their stages) already created */
};

static int fail(struct pg_writer *w, const PGresult *res, const char *doing, struct bf_error *err) {
  char msg[768];
  bf_pg_error_text(w->conn, res, w->dsn, msg, sizeof msg);
  return bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s': %s: %s", w->base.name, doing, msg);
}

static int command(struct pg_writer *w, const char *sql, const char *doing, struct bf_error *err) {
  PGresult *res = PQexec(w->conn, sql);
  int rc = 0;
  if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
    rc = fail(w, res, doing, err);
  PQclear(res);
  return rc;
}

/* Quoted identifier; caller frees with PQfreemem (NULL on failure). */
static char *ident(struct pg_writer *w, const char *s) {
  return PQescapeIdentifier(w->conn, s, strlen(s));
}

/* "schema"."name" and the stage's name. Caller frees. */
static char *qualified(struct pg_writer *w, const struct bf_wtable *t) {
  char *s = ident(w, t->schema), *n = ident(w, t->name);
  char *q = s && n ? bf_xasprintf("%s.%s", s, n) : NULL;
  PQfreemem(s);
  PQfreemem(n);
  return q;
}
static char *stage_name(struct pg_writer *w, const struct bf_wtable *t) {
  char *raw = bf_xasprintf("bf_stage_%s_%s", t->schema, t->name);
  char *q = ident(w, raw);
  char *out = q ? bf_xstrdup(q) : NULL;
  PQfreemem(q);
  free(raw);
  return out;
}

static int pw_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                   struct bf_writer **out, struct bf_error *err) {
  (void)cfg;
  char *what = bf_xasprintf("warehouse '%s'", wh->name);
  PGconn *conn = bf_pg_connect(wh->params, what, BF_E_WAREHOUSE, err);
  free(what);
  if (!conn) return err ? err->code : BF_E_WAREHOUSE;
  struct pg_writer *w = bf_xcalloc(1, sizeof *w);
  w->conn = conn;
  const char *dsn = bf_node_get_str(wh->params, "dsn");
  w->dsn = bf_xstrdup(dsn ? dsn : "");
  *out = &w->base;
  return 0;
}

static const char *pg_type(enum bf_wcol_type t) {
  return t == BF_WCOL_INT ? "bigint" : t == BF_WCOL_TIME ? "timestamptz" : "text";
}

static void column_list(struct pg_writer *w, const struct bf_wtable *t, struct bf_buf *b) {
  for (size_t i = 0; i < t->ncols; i++) {
    char *c = ident(w, t->cols[i].name);
    bf_buf_printf(b, "%s%s", i ? ", " : "", c ? c : "?");
    PQfreemem(c);
  }
}

static void unique_list(struct pg_writer *w, const struct bf_wtable *t, struct bf_buf *b) {
  for (size_t i = 0; i < t->n_unique; i++) {
    char *c = ident(w, t->cols[t->unique[i]].name);
    bf_buf_printf(b, "%s%s", i ? ", " : "", c ? c : "?");
    PQfreemem(c);
  }
}

static int pw_ensure(struct bf_writer *w_, const struct bf_wtable *t, struct bf_error *err) {
  struct pg_writer *w = (struct pg_writer *)w_;
  char *table = qualified(w, t), *stage = stage_name(w, t), *schema = ident(w, t->schema);
  int rc = 0;
  if (!table || !stage || !schema) {
    rc = fail(w, NULL, "quoting a table name", err);
    goto out;
  }
  if (w->ensured && strstr(w->ensured, table)) goto out;
  struct bf_buf b = {0};
  bf_buf_printf(&b, "CREATE SCHEMA IF NOT EXISTS %s; CREATE TABLE IF NOT EXISTS %s (", schema,
                table);
  if (t->serial_id) bf_buf_printf(&b, "id bigserial PRIMARY KEY, ");
  for (size_t i = 0; i < t->ncols; i++) {
    char *c = ident(w, t->cols[i].name);
    bf_buf_printf(&b, "%s%s %s%s", i ? ", " : "", c, pg_type(t->cols[i].type),
                  t->cols[i].not_null ? " NOT NULL" : "");
    PQfreemem(c);
  }
  if (t->n_unique) {
    bf_buf_printf(&b, ", UNIQUE (");
    unique_list(w, t, &b);
    bf_buf_putc(&b, ')');
  }
  bf_buf_printf(&b, ");");
  if (t->n_unique) {
    /* The stage lives as long as the connection and is emptied by a
     * DELETE in the statement that reads it: TRUNCATE (or ON COMMIT
     * DELETE ROWS) replaces its file on every commit, which costs more
     * than a small batch itself. */
    bf_buf_printf(&b, "CREATE TEMP TABLE IF NOT EXISTS %s (bf_ord integer NOT NULL", stage);
    for (size_t i = 0; i < t->ncols; i++) {
      char *c = ident(w, t->cols[i].name);
      bf_buf_printf(&b, ", %s %s", c, pg_type(t->cols[i].type));
      PQfreemem(c);
    }
    bf_buf_printf(&b, ");");
  }
  char *doing = bf_xasprintf("creating %s", table);
  rc = command(w, bf_buf_cstr(&b), doing, err);
  free(doing);
  bf_buf_release(&b);
  if (rc == 0) {
    char *more = bf_xasprintf("%s%s\n", w->ensured ? w->ensured : "", table);
    free(w->ensured);
    w->ensured = more;
  }
out:
  free(table);
  free(stage);
  PQfreemem(schema);
  return rc;
}

static int pw_begin(struct bf_writer *w_, struct bf_error *err) {
  return command((struct pg_writer *)w_, "BEGIN", "starting a transaction", err);
}

/* COPY text format: \N for NULL, backslash escapes; NUL bytes cannot be
 * sent at all and are dropped. */
static void copy_value(struct bf_buf *b, const struct bf_value *v, enum bf_wcol_type t) {
  if (v->type == BF_NULL) {
    bf_buf_append(b, "\\N", 2);
    return;
  }
  if (t == BF_WCOL_TIME) {
    time_t s = (time_t)(v->u.i / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char iso[40];
    size_t k = strftime(iso, sizeof iso, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(iso + k, sizeof iso - k, ".%03lld+00", (long long)(v->u.i % 1000));
    bf_buf_printf(b, "%s", iso);
    return;
  }
  if (v->type == BF_INT || v->type == BF_BOOL) {
    bf_buf_printf(b, "%lld", (long long)v->u.i);
    return;
  }
  for (uint32_t i = 0; i < v->len; i++) {
    char c = v->u.s[i];
    switch (c) {
    case '\0': break;
    case '\\': bf_buf_append(b, "\\\\", 2); break;
    case '\n': bf_buf_append(b, "\\n", 2); break;
    case '\r': bf_buf_append(b, "\\r", 2); break;
    case '\t': bf_buf_append(b, "\\t", 2); break;
    default: bf_buf_putc(b, c);
    }
  }
}

static int copy_rows(struct pg_writer *w, const char *target, const struct bf_wtable *t,
                     const struct bf_value *rows, size_t n, bool with_ord, struct bf_error *err) {
  struct bf_buf b = {0};
  bf_buf_printf(&b, "COPY %s (%s", target, with_ord ? "bf_ord, " : "");
  column_list(w, t, &b);
  bf_buf_printf(&b, ") FROM STDIN");
  PGresult *res = PQexec(w->conn, bf_buf_cstr(&b));
  int rc = 0;
  if (PQresultStatus(res) != PGRES_COPY_IN) rc = fail(w, res, "starting COPY", err);
  PQclear(res);
  if (rc) {
    bf_buf_release(&b);
    return rc;
  }
  bf_buf_reset(&b);
  bool sent = true;
  for (size_t r = 0; r < n && sent; r++) {
    if (with_ord) bf_buf_printf(&b, "%zu\t", r);
    for (size_t c = 0; c < t->ncols; c++) {
      if (c) bf_buf_putc(&b, '\t');
      copy_value(&b, &rows[r * t->ncols + c], t->cols[c].type);
    }
    bf_buf_putc(&b, '\n');
    if (b.len > (1u << 20) || r + 1 == n) {
      sent = PQputCopyData(w->conn, b.data, (int)b.len) == 1;
      bf_buf_reset(&b);
    }
  }
  bf_buf_release(&b);
  if (PQputCopyEnd(w->conn, sent ? NULL : "aborted") != 1) sent = false;
  while ((res = PQgetResult(w->conn))) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) rc = fail(w, res, "COPY", err);
    PQclear(res);
  }
  if (!sent && rc == 0) rc = fail(w, NULL, "COPY", err);
  return rc;
}

static int pw_insert(struct bf_writer *w_, const struct bf_wtable *t, const struct bf_value *rows,
                     size_t n, bool *inserted, struct bf_error *err) {
  struct pg_writer *w = (struct pg_writer *)w_;
  if (n == 0) return 0;
  char *table = qualified(w, t);
  if (!table) return fail(w, NULL, "quoting a table name", err);
  int rc;
  if (!t->n_unique) {
    rc = copy_rows(w, table, t, rows, n, false, err);
    if (rc == 0 && inserted)
      for (size_t i = 0; i < n; i++) inserted[i] = true;
    free(table);
    return rc;
  }
  char *stage = stage_name(w, t);
  struct bf_buf b = {0};
  rc = copy_rows(w, stage, t, rows, n, true, err);
  if (rc == 0) {
    /* The first of equal keys in the batch wins, as it would row by row. */
    bf_buf_reset(&b);
    bf_buf_printf(&b, "WITH ins AS (INSERT INTO %s (", table);
    column_list(w, t, &b);
    bf_buf_printf(&b, ") SELECT ");
    column_list(w, t, &b);
    bf_buf_printf(&b, " FROM %s ORDER BY bf_ord ON CONFLICT DO NOTHING RETURNING ", stage);
    unique_list(w, t, &b);
    /* The stage is emptied by the same statement: every part of a WITH
     * sees the snapshot from before it, so the SELECT still reads the rows
     * the DELETE removes (one round trip less per commit). */
    bf_buf_printf(&b, "), gone AS (DELETE FROM %s) SELECT min(s.bf_ord) FROM %s s JOIN ins USING (",
                  stage, stage);
    unique_list(w, t, &b);
    bf_buf_printf(&b, ") GROUP BY ");
    for (size_t i = 0; i < t->n_unique; i++) {
      char *c = ident(w, t->cols[t->unique[i]].name);
      bf_buf_printf(&b, "%ss.%s", i ? ", " : "", c);
      PQfreemem(c);
    }
    PGresult *res = PQexec(w->conn, bf_buf_cstr(&b));
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      char *doing = bf_xasprintf("inserting into %s", table);
      rc = fail(w, res, doing, err);
      free(doing);
    } else if (inserted) {
      memset(inserted, 0, n * sizeof *inserted);
      for (int i = 0; i < PQntuples(res); i++) {
        long long ord = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (ord >= 0 && (size_t)ord < n) inserted[ord] = true;
      }
    }
    PQclear(res);
  }
  bf_buf_release(&b);
  free(stage);
  free(table);
  return rc;
}

static int pw_commit(struct bf_writer *w_, struct bf_error *err) {
  return command((struct pg_writer *)w_, "COMMIT", "committing", err);
}

static void pw_rollback(struct bf_writer *w_) {
  struct pg_writer *w = (struct pg_writer *)w_;
  if (PQstatus(w->conn) == CONNECTION_OK && PQtransactionStatus(w->conn) != PQTRANS_IDLE)
    PQclear(PQexec(w->conn, "ROLLBACK"));
}

static void pw_close(struct bf_writer *w_) {
  struct pg_writer *w = (struct pg_writer *)w_;
  PQfinish(w->conn);
  free(w->dsn);
  free(w->ensured);
  free(w);
}

const struct bf_writer_ops bf_writer_postgres = {pw_open,   pw_ensure,   pw_begin, pw_insert,
                                                 pw_commit, pw_rollback, pw_close};

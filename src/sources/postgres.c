/* PostgreSQL warehouse (libpq). Also Redshift and other servers speaking
 * the PostgreSQL protocol, with `read: cursor`.
 *
 * The model's SQL is prepared first (so a bad query, an unknown table or a
 * missing privilege is reported before anything runs, with the column types
 * known), then streamed inside one read-only REPEATABLE READ transaction:
 *   read: copy   (default) COPY (sql) TO STDOUT in text format: the fastest
 *                way out of PostgreSQL; one row in memory at a time.
 *   read: cursor DECLARE ... NO SCROLL CURSOR, FETCH FORWARD <chunk>: for
 *                servers without COPY TO STDOUT (Redshift).
 * Values arrive as text and are typed by column OID (pg_values.h: json and
 * arrays as JSON, numeric as text keeping its scale; sessions run in UTC).
 * The password of a DSN never appears in any message. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "clients/pg.h"
#include "sources/pg_values.h"
#include "util/jsonw.h"
#include "spec/params.h"
#include "sources/source.h"

static const struct bf_param_spec pg_params[] = {
    {"dsn", BF_PARAM_STRING, NULL, true, true,
     "libpq connection string or URI, e.g. postgresql://user:pass@host:5432/db"},
    {"sslmode", BF_PARAM_STRING, NULL, false, false,
     "disable | allow | prefer | require | verify-ca | verify-full (overrides the DSN)"},
    {"sslrootcert", BF_PARAM_STRING, NULL, false, false,
     "CA certificate file for verify-ca/verify-full"},
    {"sslcert", BF_PARAM_STRING, NULL, false, false, "client certificate file"},
    {"sslkey", BF_PARAM_STRING, NULL, false, true, "client key file"},
    {"connect_timeout", BF_PARAM_DURATION, "10s", false, false, "time allowed to connect"},
    {"statement_timeout", BF_PARAM_DURATION, "0s", false, false,
     "longest time the model's query may run (0: the server's setting)"},
    {"read", BF_PARAM_STRING, "copy", false, false,
     "copy (COPY ... TO STDOUT, fastest) | cursor (DECLARE/FETCH, for Redshift)"},
    {NULL, 0, NULL, false, false, NULL},
};

/* ---- the source -------------------------------------------------------- */

struct pg_source {
  struct bf_source base;
  PGconn *conn;
  char *dsn;
  char *dsn_shown;
  long long statement_timeout_ms;
  bool use_cursor;
  bool busy; /* a cursor is open */
};

struct pg_cursor {
  struct bf_cursor base;
  struct pg_source *src;
  char *sql;
  bf_pg_kind *kinds;
  struct bf_pg_scratch scratch;
  bool started, done, in_copy;
  long long rows;
};

static int pg_fail(struct pg_source *src, const PGresult *res, const char *doing,
                   struct bf_error *err) {
  char msg[768];
  bf_pg_error_text(src->conn, res, src->dsn, msg, sizeof msg);
  if (bf_pg_connection_lost(src->conn, res))
    return bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s' (%s): connection lost %s: %s",
                        src->base.name, src->dsn_shown, doing, msg);
  return bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s': %s", src->base.name, msg);
}

/* Runs a command expecting no rows. */
static int pg_command(struct pg_source *src, const char *sql, const char *doing,
                      struct bf_error *err) {
  PGresult *res = PQexec(src->conn, sql);
  int rc = 0;
  if (PQresultStatus(res) != PGRES_COMMAND_OK) rc = pg_fail(src, res, doing, err);
  PQclear(res);
  return rc;
}

static void rollback(struct pg_source *src) {
  if (PQstatus(src->conn) == CONNECTION_OK && PQtransactionStatus(src->conn) != PQTRANS_IDLE)
    PQclear(PQexec(src->conn, "ROLLBACK"));
}

/* Decodes COPY text-format escapes in place; returns the new length. */
static size_t copy_unescape(char *s, size_t n) {
  char *w = s;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c != '\\' || i + 1 == n) {
      *w++ = c;
      continue;
    }
    c = s[++i];
    switch (c) {
    case 'b': *w++ = '\b'; break;
    case 'f': *w++ = '\f'; break;
    case 'n': *w++ = '\n'; break;
    case 'r': *w++ = '\r'; break;
    case 't': *w++ = '\t'; break;
    case 'v': *w++ = '\v'; break;
    case 'x':
      if (i + 1 < n && bf_pg_hexval(s[i + 1]) >= 0) {
        int v = bf_pg_hexval(s[++i]);
        if (i + 1 < n && bf_pg_hexval(s[i + 1]) >= 0) v = v * 16 + bf_pg_hexval(s[++i]);
        *w++ = (char)v;
      } else {
        *w++ = 'x';
      }
      break;
    default:
      if (c >= '0' && c <= '7') {
        int v = c - '0';
        for (int k = 0; k < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; k++)
          v = v * 8 + (s[++i] - '0');
        *w++ = (char)v;
      } else {
        *w++ = c;
      }
    }
  }
  return (size_t)(w - s);
}

/* One COPY line (with its '\n') into the next row of rb. */
static int parse_copy_line(struct pg_cursor *cur, struct bf_rowbuf *rb, char *line, size_t len,
                           struct bf_error *err) {
  if (len && line[len - 1] == '\n') len--;
  char *end = line + len;
  struct bf_value *row = rb->values + rb->nrows * rb->ncols;
  char *p = line;
  for (size_t c = 0; c < rb->ncols; c++) {
    if (p > end)
      return bf_error_set(err, BF_E_WAREHOUSE,
                          "warehouse '%s': malformed COPY row (too few columns)",
                          cur->src->base.name);
    char *tab = memchr(p, '\t', (size_t)(end - p));
    char *fend = tab ? tab : end;
    size_t n = (size_t)(fend - p);
    struct bf_value *v = &row[c];
    if (n == 2 && p[0] == '\\' && p[1] == 'N') {
      v->type = BF_NULL;
    } else {
      if (memchr(p, '\\', n)) n = copy_unescape(p, n);
      bf_pg_put_value(rb, v, cur->kinds[c], p, n, &cur->scratch);
    }
    p = fend + 1;
  }
  rb->nrows++;
  return 0;
}

static int start_copy(struct pg_cursor *cur, struct bf_error *err) {
  struct pg_source *src = cur->src;
  char *q = src->use_cursor
                ? bf_xasprintf("DECLARE backflow_model NO SCROLL CURSOR FOR\n%s\n", cur->sql)
                : bf_xasprintf("COPY (\n%s\n) TO STDOUT", cur->sql);
  PGresult *res = PQexec(src->conn, q);
  free(q);
  int rc = 0;
  ExecStatusType want = src->use_cursor ? PGRES_COMMAND_OK : PGRES_COPY_OUT;
  if (PQresultStatus(res) != want) rc = pg_fail(src, res, "starting the query", err);
  PQclear(res);
  if (rc == 0) cur->in_copy = !src->use_cursor;
  cur->started = true;
  return rc;
}

static int finish_read(struct pg_cursor *cur, struct bf_error *err) {
  struct pg_source *src = cur->src;
  int rc = 0;
  if (cur->in_copy) {
    PGresult *res;
    while ((res = PQgetResult(src->conn))) {
      if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK) {
        char doing[96];
        snprintf(doing, sizeof doing, "after %lld rows", cur->rows);
        rc = pg_fail(src, res, doing, err);
      }
      PQclear(res);
    }
    cur->in_copy = false;
  } else if (src->use_cursor) {
    rc = pg_command(src, "CLOSE backflow_model", "closing the cursor", err);
  }
  if (rc == 0) rc = pg_command(src, "COMMIT", "ending the read transaction", err);
  cur->done = true;
  return rc;
}

static int pg_next_copy(struct pg_cursor *cur, struct bf_rowbuf *rb, struct bf_error *err) {
  struct pg_source *src = cur->src;
  while (rb->nrows < rb->cap_rows) {
    char *line = NULL;
    int n = PQgetCopyData(src->conn, &line, 0);
    if (n == -1) return finish_read(cur, err);
    if (n < 0) {
      char doing[96];
      snprintf(doing, sizeof doing, "after %lld rows", cur->rows);
      cur->done = true;
      return pg_fail(src, NULL, doing, err);
    }
    int rc = parse_copy_line(cur, rb, line, (size_t)n, err);
    PQfreemem(line);
    if (rc) {
      cur->done = true;
      return rc;
    }
    cur->rows++;
  }
  return 0;
}

static int pg_next_fetch(struct pg_cursor *cur, struct bf_rowbuf *rb, struct bf_error *err) {
  struct pg_source *src = cur->src;
  char q[64];
  snprintf(q, sizeof q, "FETCH FORWARD %zu FROM backflow_model", rb->cap_rows);
  PGresult *res = PQexec(src->conn, q);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    char doing[96];
    snprintf(doing, sizeof doing, "after %lld rows", cur->rows);
    int rc = pg_fail(src, res, doing, err);
    PQclear(res);
    cur->done = true;
    return rc;
  }
  int nt = PQntuples(res);
  for (int r = 0; r < nt && rb->nrows < rb->cap_rows; r++) {
    struct bf_value *row = rb->values + rb->nrows * rb->ncols;
    for (size_t c = 0; c < rb->ncols; c++) {
      if (PQgetisnull(res, r, (int)c)) {
        row[c].type = BF_NULL;
        continue;
      }
      /* libpq's values are writable and NUL-terminated. */
      bf_pg_put_value(rb, &row[c], cur->kinds[c], PQgetvalue(res, r, (int)c),
                      (size_t)PQgetlength(res, r, (int)c), &cur->scratch);
    }
    rb->nrows++;
    cur->rows++;
  }
  PQclear(res);
  if (nt == 0) return finish_read(cur, err);
  return 0;
}

static int pg_next_chunk(struct bf_cursor *cur_, struct bf_rowbuf *rb, struct bf_error *err) {
  struct pg_cursor *cur = (struct pg_cursor *)cur_;
  if (cur->done) return 0;
  if (!cur->started) {
    int rc = start_copy(cur, err);
    if (rc) {
      cur->done = true;
      return rc;
    }
  }
  int rc = cur->src->use_cursor ? pg_next_fetch(cur, rb, err) : pg_next_copy(cur, rb, err);
  if (rc) {
    rollback(cur->src);
    return rc;
  }
  return (int)rb->nrows;
}

static void pg_cursor_free(struct bf_cursor *cur_) {
  struct pg_cursor *cur = (struct pg_cursor *)cur_;
  struct pg_source *src = cur->src;
  if (cur->in_copy && PQstatus(src->conn) == CONNECTION_OK) {
    /* Stopped early (an error elsewhere, or validate): cancel the COPY
     * rather than read the rest of the model. */
    PGcancel *cancel = PQgetCancel(src->conn);
    char buf[256];
    if (cancel) PQcancel(cancel, buf, sizeof buf);
    PQfreeCancel(cancel);
    char *line;
    int n;
    while ((n = PQgetCopyData(src->conn, &line, 0)) >= 0) PQfreemem(line);
    PGresult *res;
    while ((res = PQgetResult(src->conn))) PQclear(res);
  }
  rollback(src);
  src->busy = false;
  bf_cursor_release_names(&cur->base);
  free(cur->kinds);
  bf_buf_release(&cur->scratch.copy);
  bf_buf_release(&cur->scratch.json);
  free(cur->sql);
  free(cur);
}

static const struct bf_cursor_ops pg_cursor_ops = {pg_next_chunk, pg_cursor_free};

static int pg_query(struct bf_source *src_, const char *sql, struct bf_cursor **out,
                    struct bf_error *err) {
  struct pg_source *src = (struct pg_source *)src_;
  if (src->busy) BF_BUG("postgres source: one query at a time");
  /* COPY (...) and DECLARE take one bare query: no trailing semicolon. */
  size_t n = strlen(sql);
  while (n && (isspace((unsigned char)sql[n - 1]) || sql[n - 1] == ';')) n--;
  if (n == 0) return bf_error_set(err, BF_E_WAREHOUSE, "the SQL is empty");
  char *body = bf_xstrndup(sql, n);
  PGresult *res = NULL;
  struct pg_cursor *cur = NULL;
  int rc = pg_command(src, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                      "starting a transaction", err);
  if (rc) goto fail;
  if (src->statement_timeout_ms > 0) {
    char q[64];
    snprintf(q, sizeof q, "SET LOCAL statement_timeout = %lld", src->statement_timeout_ms);
    if ((rc = pg_command(src, q, "setting statement_timeout", err))) goto fail;
  }
  /* Preparing checks the SQL, the tables and the privileges without running
   * anything, and gives the column types. It also refuses several statements. */
  res = PQprepare(src->conn, "", body, 0, NULL);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    rc = pg_fail(src, res, "preparing the query", err);
    goto fail;
  }
  PQclear(res);
  res = PQdescribePrepared(src->conn, "");
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    rc = pg_fail(src, res, "describing the query", err);
    goto fail;
  }
  int ncols = PQnfields(res);
  if (ncols == 0) {
    rc = bf_error_set(err, BF_E_WAREHOUSE,
                      "warehouse '%s': the SQL returns no columns (a SELECT is needed)",
                      src->base.name);
    goto fail;
  }
  cur = bf_xcalloc(1, sizeof *cur);
  cur->base.ops = &pg_cursor_ops;
  cur->base.ncols = (size_t)ncols;
  cur->base.column_names = bf_xcalloc((size_t)ncols, sizeof(char *));
  cur->kinds = bf_xcalloc((size_t)ncols, sizeof *cur->kinds);
  for (int i = 0; i < ncols; i++) {
    cur->base.column_names[i] = bf_xstrdup(PQfname(res, i));
    cur->kinds[i] = bf_pg_kind_of(PQftype(res, i));
  }
  PQclear(res);
  cur->src = src;
  cur->sql = body;
  src->busy = true;
  *out = &cur->base;
  return 0;
fail:
  PQclear(res);
  rollback(src);
  free(body);
  return rc;
}

/* ---- parameterised lookups (`backflow forget`): the result at once ----- */

struct pg_result_cursor {
  struct bf_cursor base;
  struct pg_source *src;
  PGresult *res;
  bf_pg_kind *kinds;
  struct bf_pg_scratch scratch;
  int row;
};

static int pg_result_next(struct bf_cursor *cur_, struct bf_rowbuf *rb, struct bf_error *err) {
  struct pg_result_cursor *cur = (struct pg_result_cursor *)cur_;
  int nt = PQntuples(cur->res);
  while (cur->row < nt && rb->nrows < rb->cap_rows) {
    struct bf_value *row = rb->values + rb->nrows * rb->ncols;
    for (size_t c = 0; c < rb->ncols; c++) {
      if (PQgetisnull(cur->res, cur->row, (int)c)) {
        row[c].type = BF_NULL;
        continue;
      }
      bf_pg_put_value(rb, &row[c], cur->kinds[c], PQgetvalue(cur->res, cur->row, (int)c),
                      (size_t)PQgetlength(cur->res, cur->row, (int)c), &cur->scratch);
    }
    rb->nrows++;
    cur->row++;
  }
  return (int)rb->nrows;
}

static void pg_result_free(struct bf_cursor *cur_) {
  struct pg_result_cursor *cur = (struct pg_result_cursor *)cur_;
  PQclear(cur->res);
  rollback(cur->src); /* ends the read-only transaction */
  cur->src->busy = false;
  bf_cursor_release_names(&cur->base);
  free(cur->kinds);
  bf_buf_release(&cur->scratch.copy);
  bf_buf_release(&cur->scratch.json);
  free(cur);
}

static const struct bf_cursor_ops pg_result_ops = {pg_result_next, pg_result_free};

static int pg_query_params(struct bf_source *src_, const char *sql, const char *const *params,
                           size_t nparams, struct bf_cursor **out, struct bf_error *err) {
  struct pg_source *src = (struct pg_source *)src_;
  if (src->busy) BF_BUG("postgres source: one query at a time");
  size_t n = strlen(sql);
  while (n && (isspace((unsigned char)sql[n - 1]) || sql[n - 1] == ';')) n--;
  if (n == 0) return bf_error_set(err, BF_E_WAREHOUSE, "the SQL is empty");
  char *body = bf_xstrndup(sql, n);
  PGresult *res = NULL;
  int rc = pg_command(src, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                      "starting a transaction", err);
  if (rc) goto fail;
  if (src->statement_timeout_ms > 0) {
    char q[64];
    snprintf(q, sizeof q, "SET LOCAL statement_timeout = %lld", src->statement_timeout_ms);
    if ((rc = pg_command(src, q, "setting statement_timeout", err))) goto fail;
  }
  res = PQexecParams(src->conn, body, (int)nparams, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = pg_fail(src, res, "running the query", err);
    goto fail;
  }
  int ncols = PQnfields(res);
  if (ncols == 0) {
    rc = bf_error_set(err, BF_E_WAREHOUSE,
                      "warehouse '%s': the SQL returns no columns (a SELECT is needed)",
                      src->base.name);
    goto fail;
  }
  struct pg_result_cursor *cur = bf_xcalloc(1, sizeof *cur);
  cur->base.ops = &pg_result_ops;
  cur->base.ncols = (size_t)ncols;
  cur->base.column_names = bf_xcalloc((size_t)ncols, sizeof(char *));
  cur->kinds = bf_xcalloc((size_t)ncols, sizeof *cur->kinds);
  for (int i = 0; i < ncols; i++) {
    cur->base.column_names[i] = bf_xstrdup(PQfname(res, i));
    cur->kinds[i] = bf_pg_kind_of(PQftype(res, i));
  }
  cur->src = src;
  cur->res = res;
  src->busy = true;
  free(body);
  *out = &cur->base;
  return 0;
fail:
  PQclear(res);
  rollback(src);
  free(body);
  return rc;
}

/* A key as PostgreSQL reads a text parameter of the key's type. Caller frees. */
static char *key_text(const struct bf_value *v) {
  switch (v->type) {
  case BF_INT: return bf_xasprintf("%lld", (long long)v->u.i);
  case BF_BOOL: return bf_xstrdup(v->u.i ? "true" : "false");
  case BF_FLOAT: return bf_xasprintf("%.17g", v->u.f);
  case BF_TEXT:
  case BF_JSON: return bf_xstrndup(v->u.s, v->len);
  case BF_BLOB: {
    char *out = bf_xmalloc(3 + 2 * (size_t)v->len);
    static const char hex[] = "0123456789abcdef";
    out[0] = '\\', out[1] = 'x';
    for (uint32_t i = 0; i < v->len; i++) {
      out[2 + 2 * i] = hex[(unsigned char)v->u.s[i] >> 4];
      out[3 + 2 * i] = hex[(unsigned char)v->u.s[i] & 15];
    }
    out[2 + 2 * (size_t)v->len] = 0;
    return out;
  }
  case BF_NULL: break;
  }
  return NULL;
}

/* The parameters take the key column's type from the comparison, so the
 * model's own index on it can serve the lookup. */
static int pg_query_keys(struct bf_source *src_, const char *sql, const char *key_column,
                         const struct bf_value *keys, size_t n, struct bf_cursor **out,
                         struct bf_error *err) {
  if (n == 0 || n > 65535) BF_BUG("pg_query_keys: %zu keys", n);
  size_t len = strlen(sql);
  while (len && (isspace((unsigned char)sql[len - 1]) || sql[len - 1] == ';')) len--;
  struct bf_buf q = {0};
  bf_buf_printf(&q, "SELECT * FROM (%.*s) AS bf_model WHERE bf_model.\"", (int)len, sql);
  for (const char *c = key_column; *c; c++) {
    if (*c == '"') bf_buf_putc(&q, '"');
    bf_buf_putc(&q, *c);
  }
  bf_buf_puts(&q, "\" IN (");
  char **texts = bf_xcalloc(n, sizeof *texts);
  for (size_t i = 0; i < n; i++) {
    bf_buf_printf(&q, "%s$%zu", i ? "," : "", i + 1);
    texts[i] = key_text(&keys[i]);
  }
  bf_buf_putc(&q, ')');
  int rc = pg_query_params(src_, bf_buf_cstr(&q), (const char *const *)texts, n, out, err);
  for (size_t i = 0; i < n; i++) free(texts[i]);
  free(texts);
  bf_buf_release(&q);
  return rc;
}

static void pg_close(struct bf_source *src_) {
  struct pg_source *src = (struct pg_source *)src_;
  PQfinish(src->conn);
  free(src->dsn);
  free(src->dsn_shown);
  free(src);
}

static int pg_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                   struct bf_source **out, struct bf_error *err) {
  char *what = bf_xasprintf("warehouse '%s' (postgres)", wh->name);
  int rc = bf_params_check(wh->params, pg_params, what, err);
  if (rc) {
    free(what);
    return rc;
  }
  const char *mode = bf_params_str(wh->params, pg_params, "read");
  if (strcmp(mode, "copy") && strcmp(mode, "cursor")) {
    const struct bf_node *mn = bf_node_get(wh->params, "read");
    rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: read must be 'copy' or 'cursor', not '%s'",
                      mn->loc.file, mn->loc.line, mn->loc.col, what, mode);
    free(what);
    return rc;
  }
  char *named = bf_xasprintf("warehouse '%s'", wh->name);
  PGconn *conn = bf_pg_connect(wh->params, named, BF_E_WAREHOUSE, err);
  free(named);
  free(what);
  if (!conn) return err ? err->code : BF_E_WAREHOUSE;
  struct pg_source *src = bf_xcalloc(1, sizeof *src);
  src->base.type = &bf_source_postgres;
  src->conn = conn;
  src->dsn = bf_xstrdup(bf_params_str(wh->params, pg_params, "dsn"));
  src->dsn_shown = bf_pg_redact_dsn(src->dsn);
  src->statement_timeout_ms = bf_params_duration_ms(wh->params, pg_params, "statement_timeout");
  src->use_cursor = !strcmp(mode, "cursor");
  *out = &src->base;
  return 0;
}

const struct bf_source_type bf_source_postgres = {
    .name = "postgres",
    .params = pg_params,
    .open = pg_open,
    .query = pg_query,
    .close = pg_close,
    .query_params = pg_query_params,
    .query_keys = pg_query_keys,
    .feed = &bf_feed_postgres,
    .write = &bf_writer_postgres,
};

/* postgres: upserts records into a PostgreSQL table.
 *
 *   {type: postgres, dsn: ..., table: schema.name, create_table: true}
 *
 * Columns are the sync's match and fields keys (and constants). Each batch is
 * one transaction: the records are COPYed into a temporary stage table, then
 * applied with one statement:
 *   upsert  INSERT ... SELECT FROM stage ON CONFLICT (match) DO UPDATE
 *   insert  INSERT ... SELECT FROM stage ON CONFLICT (match) DO NOTHING
 *   update  UPDATE ... FROM stage ... RETURNING (rows with no match: rejected)
 *   delete  DELETE ... USING stage WHERE match columns are equal
 * COPY + one set-based statement is several times faster than multi-row
 * INSERT ... VALUES with parameters (bench/pg_bench.py measures it).
 *
 * Outcomes: a batch that the server refuses for a row's data (constraint,
 * type, duplicate match in the batch) is bisected under savepoints until the
 * bad rows stand alone: they are rejected with the server's message, the
 * others are written. Serialization failures and deadlocks retry the batch;
 * a lost connection reconnects with backoff and, after max_retries, stops the
 * run (destination unavailable; nothing is lost). Schema problems (no such
 * column, no unique index on the match columns, no privilege) stop the run
 * with the server's message rather than rejecting every record.
 *
 * create_table: true creates the table when absent, typed from the first
 * batch (int -> bigint, float -> double precision, bool -> boolean, blob ->
 * bytea, text and anything else -> text) with the match columns as primary
 * key. Write to an existing table to get other types: values are sent as
 * text and PostgreSQL converts them to the column's type. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "clients/pg.h"
#include "util/log.h"
#include "destinations/destination.h"

#define STAGE   "backflow_stage"
#define ROW_COL "backflow_row"

static const struct bf_param_spec pgdest_params[] = {
    {"dsn", BF_PARAM_STRING, NULL, true, true,
     "libpq connection string or URI, e.g. postgresql://user:pass@host:5432/db"},
    {"table", BF_PARAM_STRING, NULL, false, false,
     "table to write, schema.name or name (default: the sync's object)"},
    {"create_table", BF_PARAM_BOOL, "false", false, false,
     "create the table when absent, with the match columns as primary key"},
    {"sslmode", BF_PARAM_STRING, NULL, false, false,
     "disable | allow | prefer | require | verify-ca | verify-full (overrides the DSN)"},
    {"sslrootcert", BF_PARAM_STRING, NULL, false, false, "CA certificate file"},
    {"sslcert", BF_PARAM_STRING, NULL, false, false, "client certificate file"},
    {"sslkey", BF_PARAM_STRING, NULL, false, true, "client key file"},
    {"connect_timeout", BF_PARAM_DURATION, "10s", false, false, "time allowed to connect"},
    {"statement_timeout", BF_PARAM_DURATION, "60s", false, false,
     "longest time one batch may take"},
    {"max_retries", BF_PARAM_INT, "5", false, false,
     "reconnects/retries of a batch on connection loss, serialization failure or deadlock"},
    {"retry_base", BF_PARAM_DURATION, "500ms", false, false, "first backoff; doubles each retry"},
    {NULL, 0, NULL, false, false, NULL},
};

enum apply_result { A_OK, A_DATA, A_RETRY, A_LOST, A_FATAL };

struct pgdest {
  struct bf_destination base;
  char *name;
  const struct bf_node *params; /* borrowed from the config */
  PGconn *conn;
  char *dsn, *dsn_shown;
  char *table_param;
  bool create_table;
  long long statement_timeout_ms, max_retries, retry_base_ms;

  /* Set up on the first batch of a connection. */
  const struct bf_mapping *mapping;
  bool ready;        /* stage table exists in this session */
  bool table_exists; /* the target table exists */
  char *table_sql;   /* "schema"."name" */
  char *table_shown; /* schema.name */
  size_t ncols;      /* n_match + n_fields + n_constants */
  char **cols_sql;   /* quoted column names */
  char *col_list;    /* "a","b","c" */
  char *sql_upsert, *sql_insert, *sql_update, *sql_delete;
  char *sql_upsert_dedup; /* keeps the last record of each match value */
  bool dedup;             /* this batch repeats a match value */
  char last_state[6];     /* SQLSTATE of the last failure */
  char *copy_all, *copy_match;
  bool stage_dirty; /* rows in the stage from an earlier apply of this transaction */

  struct bf_buf copy, tmp;
  char msg[BF_ERROR_MSG_MAX];
};

static void sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static char *quote_ident(PGconn *conn, const char *s) {
  char *q = PQescapeIdentifier(conn, s, strlen(s));
  if (!q) BF_BUG("PQescapeIdentifier failed");
  char *out = bf_xstrdup(q);
  PQfreemem(q);
  return out;
}

static void reset_setup(struct pgdest *d) {
  for (size_t i = 0; d->cols_sql && i < d->ncols; i++) free(d->cols_sql[i]);
  free(d->cols_sql);
  d->cols_sql = NULL;
  free(d->col_list);
  free(d->table_sql);
  free(d->table_shown);
  free(d->sql_upsert);
  free(d->sql_insert);
  free(d->sql_update);
  free(d->sql_delete);
  free(d->sql_upsert_dedup);
  free(d->copy_all);
  free(d->copy_match);
  d->col_list = d->table_sql = d->table_shown = NULL;
  d->sql_upsert = d->sql_insert = d->sql_update = d->sql_delete = d->sql_upsert_dedup = NULL;
  d->copy_all = d->copy_match = NULL;
  d->mapping = NULL;
  d->ready = false;
}

/* Classifies a failed result. */
static enum apply_result classify(struct pgdest *d, const PGresult *res) {
  bf_pg_error_text(d->conn, res, d->dsn, d->msg, sizeof d->msg);
  if (bf_pg_connection_lost(d->conn, res)) return A_LOST;
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  snprintf(d->last_state, sizeof d->last_state, "%s", state ? state : "");
  if (!state) return A_LOST;
  if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strncmp(state, "53", 2) ||
      !strcmp(state, "57014") || !strcmp(state, "55P03"))
    return A_RETRY;
  if (!strncmp(state, "22", 2) || !strncmp(state, "23", 2) || !strncmp(state, "21", 2) ||
      !strncmp(state, "54", 2))
    return A_DATA;
  return A_FATAL;
}

static enum apply_result exec_ok(struct pgdest *d, const char *sql) {
  PGresult *res = PQexec(d->conn, sql);
  enum apply_result r = A_OK;
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) r = classify(d, res);
  PQclear(res);
  return r;
}

static void rollback(struct pgdest *d) {
  if (d->conn && PQstatus(d->conn) == CONNECTION_OK && PQtransactionStatus(d->conn) != PQTRANS_IDLE)
    PQclear(PQexec(d->conn, "ROLLBACK"));
  d->stage_dirty = false;
}

/* ---- values as COPY text ---------------------------------------------- */

static void copy_text(struct bf_buf *b, const char *s, size_t n) {
  bf_buf_reserve(b, n + 8);
  const char *run = s;
  for (size_t i = 0; i < n; i++) {
    char c = s[i], e = 0;
    switch (c) {
    case '\\': e = '\\'; break;
    case '\n': e = 'n'; break;
    case '\r': e = 'r'; break;
    case '\t': e = 't'; break;
    default: continue;
    }
    bf_buf_append(b, run, (size_t)(s + i - run));
    bf_buf_putc(b, '\\');
    bf_buf_putc(b, e);
    run = s + i + 1;
  }
  bf_buf_append(b, run, (size_t)(s + n - run));
}

static void copy_value(struct bf_buf *b, const struct bf_value *v) {
  char num[40];
  switch (v->type) {
  case BF_NULL: bf_buf_append(b, "\\N", 2); break;
  case BF_INT:
    bf_buf_append(b, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v->u.i));
    break;
  case BF_BOOL: bf_buf_puts(b, v->u.i ? "true" : "false"); break;
  case BF_FLOAT:
    if (isnan(v->u.f))
      bf_buf_puts(b, "NaN");
    else if (isinf(v->u.f))
      bf_buf_puts(b, v->u.f > 0 ? "Infinity" : "-Infinity");
    else
      bf_buf_append(b, num, bf_double_text(num, v->u.f));
    break;
  case BF_TEXT:
  case BF_JSON: copy_text(b, v->u.s, v->len); break;
  case BF_BLOB: {
    static const char hex[] = "0123456789abcdef";
    bf_buf_reserve(b, 3 + 2 * (size_t)v->len);
    bf_buf_append(b, "\\\\x", 3);
    const unsigned char *p = (const unsigned char *)v->u.s;
    for (uint32_t i = 0; i < v->len; i++) {
      b->data[b->len++] = hex[p[i] >> 4];
      b->data[b->len++] = hex[p[i] & 15];
    }
    break;
  }
  }
}

/* The value of column c (match, field, constant) of a record with values. */
static struct bf_value column_value(struct pgdest *d, const struct bf_mapping *m,
                                    const struct bf_record *rec, size_t c) {
  if (c < m->n_match) return rec->values[c];
  if (c < m->n_match + m->n_fields)
    return bf_mapping_field_value(m, c - m->n_match, &rec->values[c], &d->tmp);
  return m->constant_values[c - m->n_match - m->n_fields];
}

static void copy_json_scalar(struct bf_buf *b, const json_t *v) {
  char num[40];
  if (!v || json_is_null(v))
    bf_buf_append(b, "\\N", 2);
  else if (json_is_string(v))
    copy_text(b, json_string_value(v), json_string_length(v));
  else if (json_is_integer(v))
    bf_buf_append(b, num,
                  (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)));
  else if (json_is_real(v))
    bf_buf_append(b, num, bf_double_text(num, json_real_value(v)));
  else if (json_is_true(v))
    bf_buf_puts(b, "true");
  else if (json_is_false(v))
    bf_buf_puts(b, "false");
  else
    bf_buf_append(b, "\\N", 2);
}

/* COPY rows for records idx[0..n): all columns, or only the match columns
 * (deletes: taken from the record's match JSON). Returns -1 when a delete's
 * match JSON cannot be read (then *bad is its index). */
static int build_copy(struct pgdest *d, const struct bf_batch *b, const size_t *idx, size_t n,
                      bool deletes, size_t *bad) {
  const struct bf_mapping *m = b->mapping;
  bf_buf_reset(&d->copy);
  for (size_t k = 0; k < n; k++) {
    const struct bf_record *rec = &b->records[idx[k]];
    if (deletes) {
      json_t *obj = json_loadb(rec->match_json, rec->match_json_len, 0, NULL);
      if (!json_is_object(obj)) {
        json_decref(obj);
        *bad = idx[k];
        return -1;
      }
      for (size_t c = 0; c < m->n_match; c++) {
        copy_json_scalar(&d->copy, json_object_get(obj, m->match_names[c]));
        bf_buf_putc(&d->copy, '\t');
      }
      json_decref(obj);
    } else {
      for (size_t c = 0; c < d->ncols; c++) {
        struct bf_value v = column_value(d, m, rec, c);
        copy_value(&d->copy, &v);
        bf_buf_putc(&d->copy, '\t');
      }
    }
    bf_buf_printf(&d->copy, "%zu\n", idx[k]);
  }
  return 0;
}

/* ---- connection and setup --------------------------------------------- */

static int connect_db(struct pgdest *d, struct bf_error *err) {
  char *what = bf_xasprintf("destination '%s' (postgres)", d->name);
  d->conn = bf_pg_connect(d->params, what, BF_E_DESTINATION, err);
  free(what);
  if (!d->conn) return err ? err->code : BF_E_DESTINATION;
  if (d->statement_timeout_ms > 0) {
    char q[64];
    snprintf(q, sizeof q, "SET statement_timeout = %lld", d->statement_timeout_ms);
    PQclear(PQexec(d->conn, q));
  }
  d->ready = false;
  return 0;
}

static const char *pg_type_for(enum bf_type t) {
  switch (t) {
  case BF_INT: return "bigint";
  case BF_FLOAT: return "double precision";
  case BF_BOOL: return "boolean";
  case BF_BLOB: return "bytea";
  case BF_JSON: return "jsonb";
  default: return "text";
  }
}

static int fatal(struct pgdest *d, const char *doing, struct bf_error *err) {
  return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (postgres, table %s): %s: %s",
                      d->name, d->table_shown ? d->table_shown : "?", doing, d->msg);
}

/* Resolves the table, creates it if asked, and creates the session's stage
 * table and statements. Returns A_OK, or A_LOST/A_RETRY/A_FATAL (d->msg). */
static enum apply_result setup(struct pgdest *d, const struct bf_batch *b, bool *missing_ok) {
  const struct bf_mapping *m = b->mapping;
  if (d->ready && d->mapping == m) return A_OK;
  reset_setup(d);
  *missing_ok = false;
  const char *table = d->table_param ? d->table_param : b->object;
  if (!table || !*table) {
    snprintf(d->msg, sizeof d->msg,
             "no table: set 'table' on the destination or 'object' on the sync");
    return A_FATAL;
  }
  const char *dot = strchr(table, '.');
  char *schema_q = NULL;
  if (dot) {
    char *schema = bf_xstrndup(table, (size_t)(dot - table));
    schema_q = quote_ident(d->conn, schema);
    char *name_q = quote_ident(d->conn, dot + 1);
    d->table_sql = bf_xasprintf("%s.%s", schema_q, name_q);
    free(schema);
    free(name_q);
  } else {
    d->table_sql = quote_ident(d->conn, table);
  }
  d->table_shown = bf_xstrdup(table);
  d->mapping = m;
  d->ncols = m->n_match + m->n_fields + m->n_constants;
  d->cols_sql = bf_xcalloc(d->ncols, sizeof *d->cols_sql);
  struct bf_buf sql = {0};
  for (size_t c = 0; c < d->ncols; c++) {
    const char *name = c < m->n_match ? m->match_names[c]
                       : c < m->n_match + m->n_fields
                           ? m->field_names[c - m->n_match]
                           : m->constant_names[c - m->n_match - m->n_fields];
    d->cols_sql[c] = quote_ident(d->conn, name);
    if (c) bf_buf_putc(&sql, ',');
    bf_buf_puts(&sql, d->cols_sql[c]);
  }
  d->col_list = bf_xstrdup(bf_buf_cstr(&sql));

  enum apply_result r = A_OK;
  const char *params[1] = {d->table_sql};
  PGresult *res =
      PQexecParams(d->conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    r = classify(d, res);
    PQclear(res);
    goto out;
  }
  d->table_exists = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  if (!d->table_exists && !d->create_table) {
    snprintf(d->msg, sizeof d->msg,
             "the table does not exist (create it, or set create_table: true on the destination)");
    r = A_FATAL;
    goto out;
  }
  if (!d->table_exists) {
    bool any_values = false;
    for (size_t i = 0; i < b->n; i++) any_values |= b->records[i].values != NULL;
    if (!any_values) {
      /* Only deletes and no table: there is nothing to delete. */
      *missing_ok = true;
      d->mapping = NULL;
      goto out;
    }
    bf_buf_reset(&sql);
    if (schema_q) bf_buf_printf(&sql, "CREATE SCHEMA IF NOT EXISTS %s; ", schema_q);
    bf_buf_printf(&sql, "CREATE TABLE IF NOT EXISTS %s (", d->table_sql);
    for (size_t c = 0; c < d->ncols; c++) {
      enum bf_type t = BF_NULL;
      for (size_t i = 0; i < b->n && t == BF_NULL; i++) {
        if (!b->records[i].values) continue;
        struct bf_value v = column_value(d, m, &b->records[i], c);
        t = v.type;
      }
      bf_buf_printf(&sql, "%s %s%s, ", d->cols_sql[c], pg_type_for(t),
                    c < m->n_match ? " NOT NULL" : "");
    }
    bf_buf_puts(&sql, "PRIMARY KEY (");
    for (size_t c = 0; c < m->n_match; c++)
      bf_buf_printf(&sql, "%s%s", c ? "," : "", d->cols_sql[c]);
    bf_buf_puts(&sql, "))");
    if ((r = exec_ok(d, bf_buf_cstr(&sql))) != A_OK) goto out;
    d->table_exists = true;
  }
  /* The stage takes the target's column types (no constraints), so PostgreSQL
   * converts the text we send exactly as it would for the table. */
  bf_buf_reset(&sql);
  bf_buf_printf(&sql,
                "DROP TABLE IF EXISTS pg_temp." STAGE "; CREATE TEMP TABLE " STAGE
                " ON COMMIT DELETE ROWS AS SELECT %s FROM %s WITH NO DATA; ALTER TABLE " STAGE
                " ADD COLUMN " ROW_COL " integer",
                d->col_list, d->table_sql);
  if ((r = exec_ok(d, bf_buf_cstr(&sql))) != A_OK) goto out;

  struct bf_buf s = {0};
  /* upsert / insert */
  bf_buf_printf(
      &s, "INSERT INTO %s AS t (%s) SELECT %s FROM " STAGE " ORDER BY " ROW_COL " ON CONFLICT (",
      d->table_sql, d->col_list, d->col_list);
  for (size_t c = 0; c < m->n_match; c++) bf_buf_printf(&s, "%s%s", c ? "," : "", d->cols_sql[c]);
  bf_buf_puts(&s, ") DO ");
  d->sql_insert = bf_xasprintf("%sNOTHING", bf_buf_cstr(&s));
  if (d->ncols > m->n_match) {
    bf_buf_puts(&s, "UPDATE SET ");
    for (size_t c = m->n_match; c < d->ncols; c++)
      bf_buf_printf(&s, "%s%s = EXCLUDED.%s", c > m->n_match ? "," : "", d->cols_sql[c],
                    d->cols_sql[c]);
  } else {
    bf_buf_puts(&s, "NOTHING");
  }
  d->sql_upsert = bf_xstrdup(bf_buf_cstr(&s));
  /* Same, when the batch repeats a match value (match columns that are not
   * the model's key): ON CONFLICT cannot touch a row twice in one statement,
   * so only the last record of each match value is applied, as if the
   * records had been written one after the other. */
  {
    struct bf_buf mcols = {0};
    for (size_t c = 0; c < m->n_match; c++)
      bf_buf_printf(&mcols, "%s%s", c ? "," : "", d->cols_sql[c]);
    const char *on_conflict = strstr(d->sql_upsert, " ON CONFLICT");
    d->sql_upsert_dedup = bf_xasprintf(
        "INSERT INTO %s AS t (%s) SELECT %s FROM (SELECT DISTINCT ON (%s) * FROM " STAGE
        " ORDER BY %s, " ROW_COL " DESC) AS last%s",
        d->table_sql, d->col_list, d->col_list, bf_buf_cstr(&mcols), bf_buf_cstr(&mcols),
        on_conflict);
    bf_buf_release(&mcols);
  }
  /* update */
  bf_buf_reset(&s);
  bf_buf_printf(&s, "UPDATE %s AS t SET ", d->table_sql);
  if (d->ncols > m->n_match) {
    for (size_t c = m->n_match; c < d->ncols; c++)
      bf_buf_printf(&s, "%s%s = s.%s", c > m->n_match ? "," : "", d->cols_sql[c], d->cols_sql[c]);
  } else {
    bf_buf_printf(&s, "%s = s.%s", d->cols_sql[0], d->cols_sql[0]);
  }
  bf_buf_puts(&s, " FROM " STAGE " AS s WHERE ");
  for (size_t c = 0; c < m->n_match; c++)
    bf_buf_printf(&s, "%st.%s = s.%s", c ? " AND " : "", d->cols_sql[c], d->cols_sql[c]);
  bf_buf_puts(&s, " RETURNING s." ROW_COL);
  d->sql_update = bf_xstrdup(bf_buf_cstr(&s));
  /* delete */
  bf_buf_reset(&s);
  bf_buf_printf(&s, "DELETE FROM %s AS t USING " STAGE " AS s WHERE ", d->table_sql);
  for (size_t c = 0; c < m->n_match; c++)
    bf_buf_printf(&s, "%st.%s = s.%s", c ? " AND " : "", d->cols_sql[c], d->cols_sql[c]);
  d->sql_delete = bf_xstrdup(bf_buf_cstr(&s));
  /* COPY statements */
  bf_buf_reset(&s);
  bf_buf_printf(&s, "COPY " STAGE " (%s," ROW_COL ") FROM STDIN", d->col_list);
  d->copy_all = bf_xstrdup(bf_buf_cstr(&s));
  bf_buf_reset(&s);
  bf_buf_puts(&s, "COPY " STAGE " (");
  for (size_t c = 0; c < m->n_match; c++) bf_buf_printf(&s, "%s,", d->cols_sql[c]);
  bf_buf_puts(&s, ROW_COL ") FROM STDIN");
  d->copy_match = bf_xstrdup(bf_buf_cstr(&s));
  bf_buf_release(&s);
  d->ready = true;
out:
  free(schema_q);
  bf_buf_release(&sql);
  return r;
}

/* ---- applying records -------------------------------------------------- */

/* Stages records idx[0..n) and applies them, inside the open transaction.
 * For updates, records that matched no row are rejected in outcomes. */
static enum apply_result apply(struct pgdest *d, const struct bf_batch *b, const size_t *idx,
                               size_t n, bool deletes, struct bf_outcome *outcomes) {
  enum apply_result r;
  if (d->stage_dirty && (r = exec_ok(d, "TRUNCATE " STAGE)) != A_OK) return r;
  size_t bad = 0;
  if (build_copy(d, b, idx, n, deletes, &bad) < 0) {
    snprintf(d->msg, sizeof d->msg, "cannot read the record's match values");
    return A_DATA;
  }
  d->stage_dirty = true;
  PGresult *res = PQexec(d->conn, deletes ? d->copy_match : d->copy_all);
  if (PQresultStatus(res) != PGRES_COPY_IN) {
    r = classify(d, res);
    PQclear(res);
    return r;
  }
  PQclear(res);
  if (PQputCopyData(d->conn, d->copy.data, (int)d->copy.len) != 1 ||
      PQputCopyEnd(d->conn, NULL) != 1)
    return classify(d, NULL);
  r = A_OK;
  while ((res = PQgetResult(d->conn))) {
    if (r == A_OK && PQresultStatus(res) != PGRES_COMMAND_OK) r = classify(d, res);
    PQclear(res);
  }
  if (r != A_OK) return r;
  enum bf_op op = deletes ? BF_OP_DELETE : b->records[idx[0]].op;
  const char *sql = op == BF_OP_DELETE   ? d->sql_delete
                    : op == BF_OP_INSERT ? d->sql_insert
                    : op == BF_OP_UPDATE ? d->sql_update
                    : d->dedup           ? d->sql_upsert_dedup
                                         : d->sql_upsert;
  res = PQexec(d->conn, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    r = classify(d, res);
    PQclear(res);
    return r;
  }
  if (op == BF_OP_UPDATE) {
    /* Rows RETURNING names were updated; the others had no row to update. */
    size_t nt = (size_t)PQntuples(res);
    for (size_t k = 0; k < n; k++) outcomes[idx[k]].status = BF_OUT_REJECT;
    for (size_t t = 0; t < nt; t++) {
      size_t i = (size_t)strtoull(PQgetvalue(res, (int)t, 0), NULL, 10);
      if (i < b->n) outcomes[i].status = BF_OUT_OK;
    }
    for (size_t k = 0; k < n; k++)
      if (outcomes[idx[k]].status == BF_OUT_REJECT && !outcomes[idx[k]].reason)
        outcomes[idx[k]].reason = bf_xasprintf(
            "no row in %s has these match values (mode update only changes existing rows)",
            d->table_shown);
  } else {
    for (size_t k = 0; k < n; k++) outcomes[idx[k]].status = BF_OUT_OK;
  }
  PQclear(res);
  return A_OK;
}

/* Applies idx[0..n) under a savepoint; on a data error, splits the range
 * until the bad records stand alone and rejects them with the server's
 * message. */
static enum apply_result bisect(struct pgdest *d, const struct bf_batch *b, const size_t *idx,
                                size_t n, bool deletes, struct bf_outcome *outcomes) {
  enum apply_result r = exec_ok(d, "SAVEPOINT backflow_sp");
  if (r != A_OK) return r;
  r = apply(d, b, idx, n, deletes, outcomes);
  if (r == A_OK) return exec_ok(d, "RELEASE SAVEPOINT backflow_sp");
  if (r != A_DATA) return r;
  enum apply_result rr = exec_ok(d, "ROLLBACK TO SAVEPOINT backflow_sp");
  if (rr != A_OK) return rr;
  exec_ok(d, "RELEASE SAVEPOINT backflow_sp");
  d->stage_dirty = false; /* the rollback emptied it */
  if (n == 1) {
    outcomes[idx[0]].status = BF_OUT_REJECT;
    free(outcomes[idx[0]].reason);
    outcomes[idx[0]].reason = bf_xstrdup(d->msg);
    return A_OK;
  }
  size_t half = n / 2;
  if ((r = bisect(d, b, idx, half, deletes, outcomes)) != A_OK) return r;
  return bisect(d, b, idx + half, n - half, deletes, outcomes);
}

static void clear_outcomes(const struct bf_batch *b, struct bf_outcome *outcomes) {
  for (size_t i = 0; i < b->n; i++) {
    free(outcomes[i].reason);
    outcomes[i].reason = NULL;
    outcomes[i].status = BF_OUT_RETRY;
  }
}

static int pgdest_write(struct pgdest *d, const struct bf_batch *b, struct bf_outcome *outcomes,
                        bool deletes, struct bf_error *err) {
  size_t *idx = bf_xcalloc(b->n ? b->n : 1, sizeof *idx);
  for (size_t i = 0; i < b->n; i++) idx[i] = i;
  d->dedup = false;
  int rc = 0;
  enum apply_result r = A_OK;
  for (long long attempt = 0;; attempt++) {
    if (attempt > 0) {
      long long wait = d->retry_base_ms << (attempt - 1 < 5 ? attempt - 1 : 5);
      bf_log_warn("[sync %s → postgres:%s] %s; retrying in %lld ms (%lld of %lld)", b->sync_name,
                  d->name, d->msg, wait, attempt, d->max_retries);
      sleep_ms(wait);
    }
    clear_outcomes(b, outcomes);
    if (!d->conn || PQstatus(d->conn) != CONNECTION_OK) {
      PQfinish(d->conn);
      d->conn = NULL;
      d->ready = false;
      struct bf_error cerr = {0};
      if (connect_db(d, &cerr)) {
        snprintf(d->msg, sizeof d->msg, "%s", cerr.msg);
        r = A_LOST;
        if (attempt < d->max_retries) continue;
        break;
      }
    }
    bool missing_ok = false;
    r = setup(d, b, &missing_ok);
    if (r == A_OK && missing_ok) {
      for (size_t i = 0; i < b->n; i++) outcomes[i].status = BF_OUT_OK;
      break;
    }
    if (r == A_OK) {
      r = exec_ok(d, "BEGIN");
      d->stage_dirty = false;
      if (r == A_OK) r = apply(d, b, idx, b->n, deletes, outcomes);
      if (r == A_DATA && !strcmp(d->last_state, "21000") && !d->dedup) {
        rollback(d);
        clear_outcomes(b, outcomes);
        d->dedup = true;
        r = exec_ok(d, "BEGIN");
        if (r == A_OK) r = apply(d, b, idx, b->n, deletes, outcomes);
      }
      if (r == A_DATA) {
        /* Find the bad records; the rest of the batch goes in. */
        rollback(d);
        clear_outcomes(b, outcomes);
        r = exec_ok(d, "BEGIN");
        if (r == A_OK) r = bisect(d, b, idx, b->n, deletes, outcomes);
      }
      if (r == A_OK) r = exec_ok(d, "COMMIT");
      if (r != A_OK) rollback(d);
    }
    if (r == A_OK) break;
    if (r == A_FATAL || r == A_DATA) break;
    if (r == A_LOST) d->ready = false;
    if (attempt >= d->max_retries) break;
  }
  if (r == A_FATAL || r == A_DATA) {
    rc = fatal(d, deletes ? "deleting" : "writing", err);
  } else if (r == A_LOST) {
    rc = bf_error_set(err, BF_E_DESTINATION,
                      "destination '%s' (postgres, %s): unavailable after %lld retries: %s",
                      d->name, d->dsn_shown, d->max_retries, d->msg);
  } else if (r == A_RETRY) {
    /* Still conflicting after our retries: the runner retries the records. */
    clear_outcomes(b, outcomes);
    for (size_t i = 0; i < b->n; i++) outcomes[i].reason = bf_xstrdup(d->msg);
  }
  free(idx);
  return rc;
}

static int pgdest_push(struct bf_destination *d_, const struct bf_batch *b,
                       struct bf_outcome *outcomes, struct bf_error *err) {
  return pgdest_write((struct pgdest *)d_, b, outcomes, false, err);
}

static int pgdest_remove(struct bf_destination *d_, const struct bf_batch *b,
                         struct bf_outcome *outcomes, struct bf_error *err) {
  return pgdest_write((struct pgdest *)d_, b, outcomes, true, err);
}

static int pgdest_check(struct bf_destination *d_, struct bf_error *err) {
  struct pgdest *d = (struct pgdest *)d_;
  if (!d->table_param) return 0;
  const char *params[1] = {d->table_param};
  char *quoted = NULL;
  const char *dot = strchr(d->table_param, '.');
  if (dot) {
    char *schema = bf_xstrndup(d->table_param, (size_t)(dot - d->table_param));
    char *a = quote_ident(d->conn, schema), *bq = quote_ident(d->conn, dot + 1);
    quoted = bf_xasprintf("%s.%s", a, bq);
    free(schema);
    free(a);
    free(bq);
  } else {
    quoted = quote_ident(d->conn, d->table_param);
  }
  params[0] = quoted;
  PGresult *res =
      PQexecParams(d->conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, params, NULL, NULL, 0);
  int rc = 0;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    bf_pg_error_text(d->conn, res, d->dsn, d->msg, sizeof d->msg);
    rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s' (postgres): %s", d->name, d->msg);
  } else if (PQgetvalue(res, 0, 0)[0] != 't' && !d->create_table) {
    rc = bf_error_set(err, BF_E_DESTINATION,
                      "destination '%s' (postgres): table %s does not exist (create it, or set "
                      "create_table: true)",
                      d->name, d->table_param);
  }
  PQclear(res);
  free(quoted);
  return rc;
}

static void pgdest_close(struct bf_destination *d_) {
  struct pgdest *d = (struct pgdest *)d_;
  if (!d) return;
  reset_setup(d);
  PQfinish(d->conn);
  free(d->name);
  free(d->dsn);
  free(d->dsn_shown);
  free(d->table_param);
  bf_buf_release(&d->copy);
  bf_buf_release(&d->tmp);
  free(d);
}

static int pgdest_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                       struct bf_destination **out, struct bf_error *err) {
  struct pgdest *d = bf_xcalloc(1, sizeof *d);
  d->name = bf_xstrdup(dc->name);
  d->params = dc->params;
  d->dsn = bf_xstrdup(bf_params_str(dc->params, pgdest_params, "dsn"));
  d->dsn_shown = bf_pg_redact_dsn(d->dsn);
  const char *table = bf_params_str(dc->params, pgdest_params, "table");
  d->table_param = table && *table ? bf_xstrdup(table) : NULL;
  d->create_table = bf_params_bool(dc->params, pgdest_params, "create_table");
  d->statement_timeout_ms = bf_params_duration_ms(dc->params, pgdest_params, "statement_timeout");
  d->max_retries = bf_params_int(dc->params, pgdest_params, "max_retries");
  d->retry_base_ms = bf_params_duration_ms(dc->params, pgdest_params, "retry_base");
  int rc = connect_db(d, err);
  if (rc) {
    pgdest_close(&d->base);
    return rc;
  }
  *out = &d->base;
  return 0;
}

const struct bf_destination_type bf_destination_postgres = {
    .name = "postgres",
    .params = pgdest_params,
    .max_batch = 50000,
    .default_batch = 5000,
    .needs_identifier_for_delete = true,
    .open = pgdest_open,
    .check = pgdest_check,
    .push = pgdest_push,
    .remove = pgdest_remove,
    .close = pgdest_close,
};

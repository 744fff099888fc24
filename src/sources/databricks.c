/* Databricks SQL warehouse over the SQL Statement Execution API 2.0.
 *
 * A query is submitted (POST /api/2.0/sql/statements with warehouse_id,
 * wait_timeout, on_wait_timeout CONTINUE, format JSON_ARRAY and the
 * disposition), polled while PENDING or RUNNING (GET .../statements/<id>),
 * then read chunk by chunk: the first comes with the SUCCEEDED answer, each
 * further one from .../result/chunks/<next_chunk_index>, so memory holds one
 * chunk. With EXTERNAL_LINKS a chunk is a short-lived presigned URL that is
 * fetched WITHOUT the workspace token (the documentation forbids sending
 * it there) but with the link's http_headers; an expired link is asked for
 * again. Stopping (Ctrl-C, SIGTERM) or statement_timeout cancels the
 * statement (POST .../cancel). Errors carry the vendor's message, error code
 * and SQL state and exit 3.
 *
 * Authentication: a personal access token (Bearer), or OAuth M2M: a
 * service principal's client_id and client_secret exchanged at
 * <host>/oidc/v1/token (client credentials, scope all-apis), renewed before
 * it expires and once on a 401 (clients/oauth_token.c).
 * (https://docs.databricks.com/api/workspace/statementexecution,
 *  https://docs.databricks.com/en/dev-tools/sql-execution-tutorial.html,
 *  https://docs.databricks.com/en/dev-tools/auth/oauth-m2m.html) */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "clients/http_transport.h"
#include "clients/oauth_token.h"
#include "sources/cells.h"
#include "sources/databricks.h"
#include "sources/wh_poll.h"

#define DBX_PATH     "/api/2.0/sql/statements"
#define DBX_MAX_BODY (512u << 20)

static const struct bf_param_spec dbx_params[] = {
    {"host", BF_PARAM_STRING, NULL, true, false,
     "workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net"},
    {"base_url", BF_PARAM_STRING, NULL, false, false,
     "API root to use instead of host (a proxy); the token endpoint moves with it"},
    {"warehouse_id", BF_PARAM_STRING, NULL, true, false, "SQL warehouse that runs the query"},
    {"token", BF_PARAM_STRING, NULL, false, true, "personal access token (or client_id/secret)"},
    {"client_id", BF_PARAM_STRING, NULL, false, false, "OAuth M2M: the service principal's id"},
    {"client_secret", BF_PARAM_STRING, NULL, false, true, "OAuth M2M: its OAuth secret"},
    {"catalog", BF_PARAM_STRING, NULL, false, false, "default catalog"},
    {"schema", BF_PARAM_STRING, NULL, false, false, "default schema"},
    {"disposition", BF_PARAM_STRING, "EXTERNAL_LINKS", false, false,
     "EXTERNAL_LINKS (any size) or INLINE (results up to 25 MiB)"},
    {"wait_timeout", BF_PARAM_DURATION, "10s", false, false,
     "how long the submitting request waits for the result (0s, or 5s to 50s)"},
    {"timeout", BF_PARAM_DURATION, "60s", false, false, "time allowed for one HTTP request"},
    {"statement_timeout", BF_PARAM_DURATION, "0s", false, false,
     "longest time the query may run, then it is cancelled (0: no limit)"},
    {"max_retries", BF_PARAM_INT, "6", false, false, "retries of a request on 429/5xx/timeouts"},
    {"retry_base", BF_PARAM_DURATION, "500ms", false, false, "first backoff; doubles each retry"},
    {"retry_max_wait", BF_PARAM_DURATION, "60s", false, false, "longest wait between retries"},
    {NULL, 0, NULL, false, false, NULL},
};

struct dbx_source {
  struct bf_source base;
  char *what;            /* "warehouse 'dbx' (databricks)" */
  struct bf_http *http;  /* the workspace API */
  struct bf_http *links; /* presigned result URLs: no workspace credentials */
  struct bf_oauth *auth;
  const char *warehouse_id, *catalog, *schema, *disposition; /* borrowed from the config */
  long long wait_timeout_s, statement_timeout_ms;
};

struct dbx_cursor {
  struct bf_cursor base;
  struct dbx_source *src;
  char *id;
  enum bf_dbx_kind *kinds;
  json_t *chunk; /* the JSON holding the rows being read */
  json_t *rows;  /* its data array (borrowed) */
  size_t row_at;
  long long chunk_index, next_chunk; /* next_chunk < 0: none */
  long long rows_read;               /* rows of the chunks before this one */
};

/* ---- requests -------------------------------------------------------------- */

static int dbx_send(struct dbx_source *src, const char *method, const char *path, const char *body,
                    struct bf_http_response *resp, struct bf_error *err) {
  struct bf_http_request req = {
      .method = method, .path = path, .body = body, .body_len = body ? strlen(body) : 0};
  int rc = bf_oauth_send(src->auth, src->http, &req, resp, err);
  return rc ? bf_error_prefix(err, "%s", src->what) : 0;
}

/* The vendor's error: "<doing>: <message> (error_code BAD_REQUEST, SQL state
 * 42P01, HTTP 400)". error is {"error_code", "message"} or status.error. */
static int dbx_error(struct dbx_source *src, const json_t *e, const char *sql_state, long status,
                     const char *fallback, const char *doing, struct bf_error *err) {
  const char *message = json_string_value(json_object_get(e, "message"));
  const char *code = json_string_value(json_object_get(e, "error_code"));
  char detail[160] = "";
  int at = 0;
  if (code) at = snprintf(detail, sizeof detail, "error_code %s", code);
  if (sql_state && at >= 0 && (size_t)at < sizeof detail)
    at += snprintf(detail + at, sizeof detail - (size_t)at, "%sSQL state %s", at ? ", " : "",
                   sql_state);
  if (status && at >= 0 && (size_t)at < sizeof detail)
    snprintf(detail + at, sizeof detail - (size_t)at, "%sHTTP %ld", at ? ", " : "", status);
  const char *hint = status == 401 || status == 403
                         ? "; check token (or client_id and client_secret) and that the principal "
                           "may use the warehouse"
                         : "";
  bf_error_set(err, BF_E_WAREHOUSE, "%s: %s: %s%s%s%s%s", src->what, doing,
               message ? message : fallback, detail[0] ? " (" : "", detail, detail[0] ? ")" : "",
               hint);
  for (char *c = err->msg; *c; c++)
    if (*c == '\n' || *c == '\r') *c = ' ';
  bf_http_scrub(src->http, err->msg);
  return BF_E_WAREHOUSE;
}

/* The 200 answer as a JSON object, else the vendor's error (the answer is
 * released either way). */
static int dbx_answer(struct dbx_source *src, struct bf_http_response *resp, const char *doing,
                      json_t **out, struct bf_error *err) {
  *out = NULL;
  json_error_t je;
  json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &je);
  int rc = 0;
  if (resp->status != 200)
    rc = dbx_error(src, j, NULL, resp->status, resp->error[0] ? resp->error : "unexpected answer",
                   doing, err);
  else if (!json_is_object(j))
    rc = bf_error_set(err, BF_E_WAREHOUSE, "%s: %s: the answer is not a JSON object", src->what,
                      doing);
  if (rc)
    json_decref(j);
  else
    *out = j;
  bf_http_response_release(resp);
  return rc;
}

/* Statement ids go into URL paths: only the characters Databricks uses. */
static bool id_ok(const char *s) {
  if (!s || !*s || strlen(s) > 128) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_') return false;
  return true;
}

struct cancel_arg {
  struct dbx_source *src;
  const char *id;
};

static void dbx_cancel(void *arg_) {
  struct cancel_arg *arg = arg_;
  char *path = bf_xasprintf(DBX_PATH "/%s/cancel", arg->id);
  struct bf_http_response resp;
  struct bf_error ignored = {0};
  if (dbx_send(arg->src, "POST", path, "{}", &resp, &ignored) == 0) bf_http_response_release(&resp);
  free(path);
}

static json_t *statement_body(struct dbx_source *src, const char *sql) {
  char wait[16];
  snprintf(wait, sizeof wait, "%llds", src->wait_timeout_s);
  json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "statement", sql, "warehouse_id",
                           src->warehouse_id, "wait_timeout", wait, "on_wait_timeout", "CONTINUE",
                           "disposition", src->disposition, "format", "JSON_ARRAY");
  if (src->catalog) json_object_set_new(body, "catalog", json_string(src->catalog));
  if (src->schema) json_object_set_new(body, "schema", json_string(src->schema));
  return body;
}

/* Runs sql until it has SUCCEEDED: *out is that answer (manifest and the
 * first chunk). Caller frees it with json_decref. */
static int dbx_execute(struct dbx_source *src, const char *sql, json_t **out,
                       struct bf_error *err) {
  *out = NULL;
  json_t *body = statement_body(src, sql);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  struct bf_http_response resp;
  int rc = dbx_send(src, "POST", DBX_PATH, text, &resp, err);
  free(text);
  if (rc) return rc;
  json_t *j = NULL;
  if ((rc = dbx_answer(src, &resp, "submitting the query", &j, err))) return rc;
  const char *id = json_string_value(json_object_get(j, "statement_id"));
  if (!id_ok(id)) {
    json_decref(j);
    return bf_error_set(err, BF_E_WAREHOUSE, "%s: the answer has no valid statement_id", src->what);
  }
  char *sid = bf_xstrdup(id);
  struct cancel_arg ca = {src, sid};
  struct bf_wh_poll waiter;
  bf_wh_poll_start(&waiter, src->what, src->statement_timeout_ms);
  for (;;) {
    json_t *status = json_object_get(j, "status");
    const char *state = json_string_value(json_object_get(status, "state"));
    if (state && !strcmp(state, "SUCCEEDED")) break;
    if (!state || (strcmp(state, "PENDING") != 0 && strcmp(state, "RUNNING") != 0)) {
      json_t *e = json_object_get(status, "error");
      const char *sql_state = json_string_value(json_object_get(status, "sql_state"));
      if (!sql_state) sql_state = json_string_value(json_object_get(e, "sql_state"));
      char fallback[64];
      snprintf(fallback, sizeof fallback, "the statement is %s", state ? state : "in no state");
      rc = dbx_error(src, e, sql_state, 0, fallback, "the query failed", err);
      break;
    }
    json_decref(j);
    j = NULL;
    if ((rc = bf_wh_poll_wait(&waiter, dbx_cancel, &ca, "the query", err))) break;
    char *path = bf_xasprintf(DBX_PATH "/%s", sid);
    rc = dbx_send(src, "GET", path, NULL, &resp, err);
    free(path);
    if (rc || (rc = dbx_answer(src, &resp, "reading the query status", &j, err))) break;
  }
  free(sid);
  if (rc) {
    json_decref(j);
    return rc;
  }
  *out = j;
  return 0;
}

/* ---- chunks ------------------------------------------------------------------ */

/* "2023-01-30T22:23:23.140Z" as unix seconds, or -1. */
static long long iso_seconds(const char *s) {
  struct tm tm = {0};
  if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec) != 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (long long)timegm(&tm);
}

/* GETs .../result/chunks/<index>: the chunk's result object. */
static int get_chunk(struct dbx_cursor *cur, long long index, json_t **out, struct bf_error *err) {
  char *path = bf_xasprintf(DBX_PATH "/%s/result/chunks/%lld", cur->id, index);
  struct bf_http_response resp;
  int rc = dbx_send(cur->src, "GET", path, NULL, &resp, err);
  free(path);
  if (rc) return rc;
  char doing[64];
  snprintf(doing, sizeof doing, "reading result chunk %lld", index);
  return dbx_answer(cur->src, &resp, doing, out, err);
}

/* Downloads the rows of an external link (without the workspace token).
 * Returns 0 with *rows, 1 when the link has expired (ask for a new one),
 * else an error. */
static int download(struct dbx_cursor *cur, const json_t *link, json_t **rows,
                    struct bf_error *err) {
  struct dbx_source *src = cur->src;
  const char *url = json_string_value(json_object_get(link, "external_link"));
  if (!url || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
    return bf_error_set(err, BF_E_WAREHOUSE, "%s: chunk %lld has no valid external_link", src->what,
                        cur->chunk_index);
  long long expires = iso_seconds(json_string_value(json_object_get(link, "expiration")));
  if (expires >= 0 && expires <= (long long)time(NULL)) return 1;
  bf_http_add_secret(src->links, url); /* the URL holds a temporary credential */
  json_t *hh = json_object_get(link, "http_headers");
  size_t nh = json_object_size(hh), i = 0;
  char **lines = bf_xcalloc(nh + 1, sizeof *lines);
  const char *k;
  json_t *v;
  json_object_foreach(hh, k, v) {
    if (!json_is_string(v)) continue;
    lines[i] = bf_xasprintf("%s: %s", k, json_string_value(v));
    bf_http_add_secret(src->links, json_string_value(v));
    i++;
  }
  struct bf_http_request req = {.method = "GET", .path = url, .headers = (const char **)lines};
  struct bf_http_response resp;
  int rc = bf_http_perform_one(src->links, &req, &resp, err);
  for (size_t n = 0; n < i; n++) free(lines[n]);
  free(lines);
  if (rc)
    return bf_error_prefix(err, "%s: downloading result chunk %lld", src->what, cur->chunk_index);
  /* Cloud storage refuses an expired presigned URL with 403 (S3, GCS) or
   * 403 AuthenticationFailed (Azure). */
  if (resp.status == 403) {
    bf_http_response_release(&resp);
    return 1;
  }
  if (resp.status != 200) {
    rc = bf_error_set(err, BF_E_WAREHOUSE, "%s: downloading result chunk %lld: %s", src->what,
                      cur->chunk_index, resp.error[0] ? resp.error : "unexpected answer");
    bf_http_scrub(src->links, err->msg);
    bf_http_response_release(&resp);
    return rc;
  }
  json_error_t je;
  *rows = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, &je);
  bf_http_response_release(&resp);
  if (!json_is_array(*rows)) {
    json_decref(*rows);
    *rows = NULL;
    return bf_error_set(err, BF_E_WAREHOUSE, "%s: result chunk %lld is not a JSON array", src->what,
                        cur->chunk_index);
  }
  return 0;
}

/* Makes result (a chunk's result object; taken) the chunk being read. */
static int take_chunk(struct dbx_cursor *cur, json_t *result, long long want,
                      struct bf_error *err) {
  struct dbx_source *src = cur->src;
  json_decref(cur->chunk);
  cur->chunk = NULL;
  cur->rows = NULL;
  cur->row_at = 0;
  cur->chunk_index = want;
  json_t *idx = json_object_get(result, "chunk_index");
  json_t *off = json_object_get(result, "row_offset");
  int rc = 0;
  if ((idx && json_integer_value(idx) != want) ||
      (off && json_integer_value(off) != cur->rows_read)) {
    rc = bf_error_set(err, BF_E_WAREHOUSE,
                      "%s: asked for chunk %lld at row %lld, got chunk %lld at row %lld", src->what,
                      want, cur->rows_read, (long long)json_integer_value(idx),
                      (long long)json_integer_value(off));
    goto out;
  }
  json_t *next = json_object_get(result, "next_chunk_index");
  json_t *links = json_object_get(result, "external_links");
  if (json_is_array(links) && json_array_size(links)) {
    json_t *link = json_array_get(links, 0);
    if (!next) next = json_object_get(link, "next_chunk_index");
    json_t *rows = NULL;
    rc = download(cur, link, &rows, err);
    for (int again = 0; rc == 1 && again < 2; again++) {
      /* Expired: the chunk endpoint hands out a fresh link. */
      json_t *fresh = NULL;
      if ((rc = get_chunk(cur, want, &fresh, err))) break;
      rc = download(cur, json_array_get(json_object_get(fresh, "external_links"), 0), &rows, err);
      json_decref(fresh);
    }
    if (rc == 1)
      rc = bf_error_set(err, BF_E_WAREHOUSE, "%s: the link of result chunk %lld keeps expiring",
                        src->what, want);
    if (rc) goto out;
    cur->chunk = rows;
    cur->rows = rows;
  } else {
    json_t *data = json_object_get(result, "data_array");
    cur->chunk = json_incref(result);
    cur->rows = json_is_array(data) ? data : NULL; /* none: an empty result */
  }
  cur->next_chunk = json_is_integer(next) ? (long long)json_integer_value(next) : -1;
out:
  json_decref(result);
  return rc;
}

static int dbx_next_chunk(struct bf_cursor *cur_, struct bf_rowbuf *rb, struct bf_error *err) {
  struct dbx_cursor *cur = (struct dbx_cursor *)cur_;
  const size_t ncols = cur->base.ncols;
  while (rb->nrows < rb->cap_rows) {
    if (cur->row_at >= json_array_size(cur->rows)) {
      if (cur->next_chunk < 0) break;
      cur->rows_read += (long long)json_array_size(cur->rows);
      json_decref(cur->chunk); /* one chunk in memory at a time */
      cur->chunk = cur->rows = NULL;
      json_t *result = NULL;
      long long want = cur->next_chunk;
      int rc = get_chunk(cur, want, &result, err);
      if (rc || (rc = take_chunk(cur, result, want, err))) return rc;
      continue;
    }
    json_t *row = json_array_get(cur->rows, cur->row_at);
    if (!json_is_array(row) || json_array_size(row) != ncols)
      return bf_error_set(err, BF_E_WAREHOUSE, "%s: a row of chunk %lld has not %zu values",
                          cur->src->what, cur->chunk_index, ncols);
    struct bf_value *vals = rb->values + rb->nrows * ncols;
    for (size_t c = 0; c < ncols; c++) {
      vals[c].type = BF_NULL;
      if (cur->base.wanted && !cur->base.wanted[c]) continue;
      json_t *cell = json_array_get(row, c);
      if (json_is_null(cell)) continue;
      if (!json_is_string(cell) || bf_dbx_cell(cur->kinds[c], json_string_value(cell),
                                               json_string_length(cell), rb, &vals[c]))
        return bf_error_set(err, BF_E_WAREHOUSE,
                            "%s: column '%s' holds a value its type does not allow", cur->src->what,
                            cur->base.column_names[c]);
    }
    rb->nrows++;
    cur->row_at++;
  }
  return (int)rb->nrows;
}

static void dbx_cursor_free(struct bf_cursor *cur_) {
  struct dbx_cursor *cur = (struct dbx_cursor *)cur_;
  if (!cur) return;
  json_decref(cur->chunk);
  free(cur->kinds);
  free(cur->id);
  bf_cursor_release_names(&cur->base);
  free(cur);
}

static const struct bf_cursor_ops dbx_cursor_ops = {dbx_next_chunk, dbx_cursor_free};

static int dbx_query(struct bf_source *src_, const char *sql, struct bf_cursor **out,
                     struct bf_error *err) {
  struct dbx_source *src = (struct dbx_source *)src_;
  *out = NULL;
  if (!bf_sql_single_query(sql))
    return bf_error_set(err, BF_E_WAREHOUSE,
                        "%s: the SQL must be one query (SELECT or WITH), not a script or a "
                        "statement that changes data",
                        src->what);
  json_t *answer = NULL;
  int rc = dbx_execute(src, sql, &answer, err);
  if (rc) return rc;
  json_t *cols =
      json_object_get(json_object_get(json_object_get(answer, "manifest"), "schema"), "columns");
  size_t ncols = json_array_size(cols);
  if (ncols == 0) {
    json_decref(answer);
    return bf_error_set(err, BF_E_WAREHOUSE, "%s: the result has no columns (manifest.schema)",
                        src->what);
  }
  struct dbx_cursor *cur = bf_xcalloc(1, sizeof *cur);
  cur->base.ops = &dbx_cursor_ops;
  cur->base.ncols = ncols;
  cur->base.column_names = bf_xcalloc(ncols, sizeof(char *));
  cur->kinds = bf_xcalloc(ncols, sizeof *cur->kinds);
  cur->src = src;
  cur->id = bf_xstrdup(json_string_value(json_object_get(answer, "statement_id")));
  for (size_t c = 0; c < ncols; c++) {
    json_t *col = json_array_get(cols, c);
    const char *name = json_string_value(json_object_get(col, "name"));
    cur->base.column_names[c] = bf_xstrdup(name ? name : "");
    cur->kinds[c] = bf_dbx_kind_of(json_string_value(json_object_get(col, "type_name")));
  }
  json_t *result = json_object_get(answer, "result");
  rc = result ? take_chunk(cur, json_incref(result), 0, err) : 0;
  if (!result) cur->next_chunk = -1;
  json_decref(answer);
  if (rc) {
    dbx_cursor_free(&cur->base);
    return rc;
  }
  *out = &cur->base;
  return 0;
}

/* ---- open / close -------------------------------------------------------- */

static void dbx_close(struct bf_source *src_) {
  struct dbx_source *src = (struct dbx_source *)src_;
  if (!src) return;
  bf_http_free(src->http);
  bf_http_free(src->links);
  bf_oauth_free(src->auth);
  free(src->what);
  free(src);
}

static int config_error(const struct bf_warehouse_config *wh, const char *key, const char *what,
                        const char *msg, struct bf_error *err) {
  const struct bf_node *n = key ? bf_node_get(wh->params, key) : NULL;
  const struct bf_loc *loc = n ? &n->loc : &wh->loc;
  return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: %s", loc->file, loc->line, loc->col, what,
                      msg);
}

static int dbx_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                    struct bf_source **out, struct bf_error *err) {
  (void)cfg;
  const struct bf_node *p = wh->params;
  struct dbx_source *src = bf_xcalloc(1, sizeof *src);
  src->base.type = &bf_source_databricks;
  src->what = bf_xasprintf("warehouse '%s' (databricks)", wh->name);
  const char *host = bf_params_str(p, dbx_params, "host");
  const char *token = bf_params_str(p, dbx_params, "token");
  const char *client_id = bf_params_str(p, dbx_params, "client_id");
  const char *client_secret = bf_params_str(p, dbx_params, "client_secret");
  src->warehouse_id = bf_params_str(p, dbx_params, "warehouse_id");
  src->catalog = bf_params_str(p, dbx_params, "catalog");
  src->schema = bf_params_str(p, dbx_params, "schema");
  src->disposition = bf_params_str(p, dbx_params, "disposition");
  src->wait_timeout_s = bf_params_duration_ms(p, dbx_params, "wait_timeout") / 1000;
  src->statement_timeout_ms = bf_params_duration_ms(p, dbx_params, "statement_timeout");
  int rc = 0;
  if (strcmp(src->disposition, "EXTERNAL_LINKS") != 0 && strcmp(src->disposition, "INLINE") != 0)
    rc = config_error(wh, "disposition", src->what, "disposition must be EXTERNAL_LINKS or INLINE",
                      err);
  else if (src->wait_timeout_s != 0 && (src->wait_timeout_s < 5 || src->wait_timeout_s > 50))
    rc = config_error(wh, "wait_timeout", src->what, "wait_timeout must be 0s or from 5s to 50s",
                      err);
  else if (strncmp(host, "https://", 8) != 0 && strncmp(host, "http://", 7) != 0)
    rc = config_error(wh, "host", src->what, "host must be an https:// URL", err);
  else if (!token == !(client_id && client_secret))
    rc = config_error(wh, NULL, src->what,
                      "needs either token (a personal access token) or client_id and "
                      "client_secret (OAuth M2M), not both",
                      err);
  if (rc) goto fail;
  struct bf_http_options o;
  char *name = bf_xasprintf("databricks:%s", wh->name);
  bf_http_options_defaults(&o, name, host, 0, 1, 1);
  o.timeout_ms = 60000;
  o.max_response_bytes = DBX_MAX_BODY;
  rc = bf_http_options_from_params(&o, p, dbx_params, src->what, err);
  if (rc == 0 && !(src->http = bf_http_new(&o, err))) rc = BF_E_WAREHOUSE;
  if (rc == 0) host = o.base_url; /* base_url, when set, replaces host */
  if (rc == 0) {
    /* A separate transport, so no default header of the workspace's ever
     * reaches the storage service. */
    o.name = "databricks:links";
    o.base_url = NULL;
    if (!(src->links = bf_http_new(&o, err))) rc = BF_E_WAREHOUSE;
  }
  if (rc == 0 && token) {
    src->auth = bf_oauth_new_fixed(token, src->what);
  } else if (rc == 0) {
    size_t n = strlen(host);
    while (n && host[n - 1] == '/') n--;
    char *url = bf_xasprintf("%.*s/oidc/v1/token", (int)n, host);
    struct bf_oauth_grant g = {.token_url = url,
                               .grant_type = "client_credentials",
                               .client_id = client_id,
                               .client_secret = client_secret,
                               .scope = "all-apis",
                               .client_auth = BF_OAUTH_BASIC};
    rc = bf_oauth_new(&g, &o, src->what, &src->auth, err);
    free(url);
  }
  free(name);
  if (rc) goto fail;
  bf_http_add_header(src->http, "Accept: application/json", false);
  bf_http_add_header(src->http, "User-Agent: Backflow", false);
  if (token) bf_http_add_secret(src->http, token);
  if (client_secret) bf_http_add_secret(src->http, client_secret);
  *out = &src->base;
  return 0;
fail:
  dbx_close(&src->base);
  return rc;
}

const struct bf_source_type bf_source_databricks = {
    .name = "databricks",
    .params = dbx_params,
    .open = dbx_open,
    .query = dbx_query,
    .close = dbx_close,
};

/* BigQuery warehouse over the REST API v2 with a service-account key.
 *
 * A query runs as jobs.query (POST /bigquery/v2/projects/<p>/queries, with
 * a requestId so a retried POST does not start a second job, the location,
 * and maxResults = page_size). While jobComplete is false the job is polled
 * with jobs.getQueryResults (GET .../queries/<jobId>); once complete the
 * schema and the first page are there, and every further page is fetched
 * with its pageToken, so memory holds one page. Stopping (Ctrl-C, SIGTERM)
 * or statement_timeout cancels the job (POST .../jobs/<jobId>/cancel).
 * Errors carry BigQuery's error.message and reason and exit 3.
 *
 * Access tokens come from the key file's token_uri by the JWT bearer grant
 * (sources/google_auth.c), are refreshed before they expire and once on a
 * 401, and never appear in a message.
 * (https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/query,
 *  https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/getQueryResults,
 *  https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/cancel,
 *  https://developers.google.com/identity/protocols/oauth2/service-account) */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "clients/http_transport.h"
#include "sources/bigquery.h"
#include "sources/cells.h"
#include "sources/wh_poll.h"
#include "clients/google_auth.h"

#define BQ_SCOPE    "https://www.googleapis.com/auth/bigquery"
#define BQ_MAX_BODY (512u << 20)
#define BQ_WAIT_MS  10000 /* timeoutMs: how long one poll may wait server-side */

static const struct bf_param_spec bq_params[] = {
    {"project", BF_PARAM_STRING, NULL, false, false,
     "project that runs (and pays for) the query; default: the key file's project_id"},
    {"credentials_file", BF_PARAM_STRING, NULL, true, false,
     "service-account key file (JSON), relative to the project"},
    {"location", BF_PARAM_STRING, NULL, false, false,
     "location of the datasets and the job, e.g. EU, US, europe-west1"},
    {"dataset", BF_PARAM_STRING, NULL, false, false,
     "default dataset for unqualified table names (dataset or project.dataset)"},
    {"base_url", BF_PARAM_STRING, "https://bigquery.googleapis.com", false, false,
     "API root (proxies, tests)"},
    {"page_size", BF_PARAM_INT, "10000", false, false, "rows per result page (maxResults)"},
    {"timeout", BF_PARAM_DURATION, "60s", false, false, "time allowed for one HTTP request"},
    {"statement_timeout", BF_PARAM_DURATION, "0s", false, false,
     "longest time the query may run, then the job is cancelled (0: no limit)"},
    {"max_retries", BF_PARAM_INT, "6", false, false, "retries of a request on 429/5xx/timeouts"},
    {"retry_base", BF_PARAM_DURATION, "500ms", false, false, "first backoff; doubles each retry"},
    {"retry_max_wait", BF_PARAM_DURATION, "60s", false, false, "longest wait between retries"},
    {NULL, 0, NULL, false, false, NULL},
};

struct bq_source {
  struct bf_source base;
  char *what; /* "warehouse 'bq' (bigquery)" */
  struct bf_http *http;
  struct bf_google_auth *auth;
  char *project; /* owned */
  const char *location, *dataset;
  long long page_size, statement_timeout_ms;
};

struct bq_cursor {
  struct bf_cursor base;
  struct bq_source *src;
  char *job_id, *location; /* from the jobReference */
  json_t *schema;          /* the fields array (a reference) */
  enum bf_bq_kind *kinds;
  json_t *page;     /* the answer whose rows are being read */
  json_t *rows;     /* its "rows" (borrowed) */
  char *page_token; /* of the next page, or NULL after the last */
  size_t row_at, pages;
};

/* ---- requests -------------------------------------------------------------- */

/* 403 with reason rateLimitExceeded is BigQuery's "slow down" besides 429
 * (https://cloud.google.com/bigquery/docs/error-messages). */
static bool bq_retryable(const struct bf_http_response *r, void *arg) {
  if (r->status == 0 || r->status == 429 || r->status >= 500) return true;
  return r->status == 403 && r->body.data &&
         memmem(r->body.data, r->body.len, "\"rateLimitExceeded\"", 19) != NULL;
}

static void url_escape(struct bf_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
      bf_buf_putc(b, (char)*p);
    } else {
      bf_buf_putc(b, '%');
      bf_buf_putc(b, hex[*p >> 4]);
      bf_buf_putc(b, hex[*p & 15]);
    }
  }
}

/* One API request with a current access token; a 401 gets a new token and
 * one more try. Returns 0 with resp filled whatever its status. */
static int bq_send(struct bq_source *src, const char *method, const char *path, const char *body,
                   struct bf_http_response *resp, struct bf_error *err) {
  for (int attempt = 0;; attempt++) {
    const char *token = NULL;
    int rc = bf_google_auth_token(src->auth, src->http, attempt > 0, &token, err);
    if (rc) return rc;
    char *auth = bf_xasprintf("Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    struct bf_http_request req = {.method = method,
                                  .path = path,
                                  .body = body,
                                  .body_len = body ? strlen(body) : 0,
                                  .headers = headers};
    memset(resp, 0, sizeof *resp);
    rc = bf_http_perform_one(src->http, &req, resp, err);
    sodium_memzero(auth, strlen(auth));
    free(auth);
    if (rc) return bf_error_prefix(err, "%s", src->what);
    if (resp->status != 401 || attempt > 0) return 0;
    bf_http_response_release(resp);
  }
}

/* BigQuery's error as a message: "<doing>: <message> (reason invalidQuery)". */
static int bq_fail(struct bq_source *src, struct bf_http_response *resp, const char *doing,
                   struct bf_error *err) {
  json_t *j = resp->body.len ? json_loadb(resp->body.data, resp->body.len, 0, NULL) : NULL;
  json_t *e = json_object_get(j, "error");
  const char *message = json_string_value(json_object_get(e, "message"));
  const char *reason =
      json_string_value(json_object_get(json_array_get(json_object_get(e, "errors"), 0), "reason"));
  const char *status = json_string_value(json_object_get(e, "status"));
  if (message)
    bf_error_set(err, BF_E_WAREHOUSE, "%s: %s: %s (%s %s, HTTP %ld)", src->what, doing, message,
                 reason ? "reason" : "status",
                 reason   ? reason
                 : status ? status
                          : "unknown",
                 resp->status);
  else
    bf_error_set(err, BF_E_WAREHOUSE, "%s: %s: %s", src->what, doing,
                 resp->error[0] ? resp->error : "unexpected answer");
  for (char *c = err->msg; *c; c++)
    if (*c == '\n' || *c == '\r') *c = ' ';
  bf_http_scrub(src->http, err->msg);
  json_decref(j);
  return BF_E_WAREHOUSE;
}

/* The 200 answer as a JSON object, else an error (the answer is released). */
static int bq_answer(struct bq_source *src, struct bf_http_response *resp, const char *doing,
                     json_t **out, struct bf_error *err) {
  *out = NULL;
  int rc = 0;
  if (resp->status != 200) {
    rc = bq_fail(src, resp, doing, err);
  } else {
    json_error_t je;
    json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &je);
    if (!json_is_object(j)) {
      json_decref(j);
      rc = bf_error_set(err, BF_E_WAREHOUSE, "%s: %s: the answer is not a JSON object", src->what,
                        doing);
    } else {
      *out = j;
    }
  }
  bf_http_response_release(resp);
  return rc;
}

static bool job_id_ok(const char *s) {
  if (!s || !*s || strlen(s) > 1024) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_') return false;
  return true;
}

/* The getQueryResults path of a job (a poll when timeout_ms > 0, a page
 * when page_token is set). Caller frees. */
static char *results_path(struct bq_source *src, const char *job_id, const char *location,
                          const char *page_token, long long timeout_ms) {
  struct bf_buf p = {0};
  bf_buf_puts(&p, "/bigquery/v2/projects/");
  url_escape(&p, src->project);
  bf_buf_printf(&p, "/queries/%s?maxResults=%lld&formatOptions.useInt64Timestamp=true", job_id,
                src->page_size);
  if (location) {
    bf_buf_puts(&p, "&location=");
    url_escape(&p, location);
  }
  if (timeout_ms > 0) bf_buf_printf(&p, "&timeoutMs=%lld", timeout_ms);
  if (page_token) {
    bf_buf_puts(&p, "&pageToken=");
    url_escape(&p, page_token);
  }
  char *out = bf_xstrdup(bf_buf_cstr(&p));
  bf_buf_release(&p);
  return out;
}

static void bq_cancel(struct bq_source *src, const char *job_id, const char *location) {
  struct bf_buf p = {0};
  bf_buf_puts(&p, "/bigquery/v2/projects/");
  url_escape(&p, src->project);
  bf_buf_printf(&p, "/jobs/%s/cancel", job_id);
  if (location) {
    bf_buf_puts(&p, "?location=");
    url_escape(&p, location);
  }
  struct bf_http_response resp;
  struct bf_error ignored = {0};
  if (bq_send(src, "POST", bf_buf_cstr(&p), "{}", &resp, &ignored) == 0)
    bf_http_response_release(&resp);
  bf_buf_release(&p);
}

struct bq_job {
  struct bq_source *src;
  const char *id, *location;
};

static void bq_cancel_cb(void *arg) {
  struct bq_job *job = arg;
  bq_cancel(job->src, job->id, job->location);
}

/* The jobs.query request for sql. Caller owns the reference. */
static json_t *query_body(struct bq_source *src, const char *sql) {
  char *rid = bf_wh_request_id();
  json_t *body =
      json_pack("{s:s,s:b,s:I,s:I,s:s,s:{s:b}}", "query", sql, "useLegacySql", 0, "maxResults",
                (json_int_t)src->page_size, "timeoutMs", (json_int_t)BQ_WAIT_MS, "requestId", rid,
                "formatOptions", "useInt64Timestamp", 1);
  free(rid);
  if (src->location) json_object_set_new(body, "location", json_string(src->location));
  if (src->statement_timeout_ms > 0)
    json_object_set_new(body, "jobTimeoutMs",
                        json_sprintf("%lld", src->statement_timeout_ms)); /* int64 as string */
  if (src->dataset) {
    const char *dot = strchr(src->dataset, '.');
    json_t *ds = dot ? json_pack("{s:s%,s:s}", "projectId", src->dataset,
                                 (size_t)(dot - src->dataset), "datasetId", dot + 1)
                     : json_pack("{s:s,s:s}", "projectId", src->project, "datasetId", src->dataset);
    json_object_set_new(body, "defaultDataset", ds);
  }
  return body;
}

/* Runs sql until its job is complete: *out is the answer holding the schema
 * and the first page; *job_id and *location name the job (location may be
 * NULL). Caller frees all three (json_decref, free). */
static int bq_execute(struct bq_source *src, const char *sql, json_t **out, char **job_id,
                      char **location, struct bf_error *err) {
  *out = NULL;
  *job_id = *location = NULL;
  json_t *body = query_body(src, sql);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  struct bf_buf path = {0};
  bf_buf_puts(&path, "/bigquery/v2/projects/");
  url_escape(&path, src->project);
  bf_buf_puts(&path, "/queries");
  struct bf_http_response resp;
  int rc = bq_send(src, "POST", bf_buf_cstr(&path), text, &resp, err);
  free(text);
  bf_buf_release(&path);
  if (rc) return rc;
  json_t *j = NULL;
  if ((rc = bq_answer(src, &resp, "the query failed", &j, err))) return rc;
  json_t *ref = json_object_get(j, "jobReference");
  const char *id = json_string_value(json_object_get(ref, "jobId"));
  if (!job_id_ok(id)) {
    json_decref(j);
    return bf_error_set(err, BF_E_WAREHOUSE, "%s: the answer has no valid jobReference.jobId",
                        src->what);
  }
  *job_id = bf_xstrdup(id);
  const char *loc = json_string_value(json_object_get(ref, "location"));
  *location = loc ? bf_xstrdup(loc) : src->location ? bf_xstrdup(src->location) : NULL;
  struct bq_job job = {src, *job_id, *location};
  char subject[1100];
  snprintf(subject, sizeof subject, "job %s", *job_id);
  struct bf_wh_poll waiter;
  bf_wh_poll_start(&waiter, src->what, src->statement_timeout_ms);
  while (!json_is_true(json_object_get(j, "jobComplete"))) {
    json_decref(j);
    j = NULL;
    if ((rc = bf_wh_poll_wait(&waiter, bq_cancel_cb, &job, subject, err))) break;
    char *poll = results_path(src, *job_id, *location, NULL, BQ_WAIT_MS);
    rc = bq_send(src, "GET", poll, NULL, &resp, err);
    free(poll);
    if (rc || (rc = bq_answer(src, &resp, "the query failed", &j, err))) break;
  }
  if (rc) {
    json_decref(j);
    free(*job_id);
    free(*location);
    *job_id = *location = NULL;
    return rc;
  }
  *out = j;
  return 0;
}

/* ---- the cursor ------------------------------------------------------------ */

/* Takes answer as the page being read. */
static void take_page(struct bq_cursor *cur, json_t *answer) {
  json_decref(cur->page);
  cur->page = answer;
  cur->rows = json_object_get(answer, "rows");
  cur->row_at = 0;
  cur->pages++;
  free(cur->page_token);
  const char *t = json_string_value(json_object_get(answer, "pageToken"));
  cur->page_token = t && *t ? bf_xstrdup(t) : NULL;
}

static int fetch_page(struct bq_cursor *cur, struct bf_error *err) {
  struct bq_source *src = cur->src;
  json_decref(cur->page); /* one page in memory at a time */
  cur->page = NULL;
  cur->rows = NULL;
  char *path = results_path(src, cur->job_id, cur->location, cur->page_token, 0);
  struct bf_http_response resp;
  int rc = bq_send(src, "GET", path, NULL, &resp, err);
  free(path);
  if (rc) return rc;
  char doing[64];
  snprintf(doing, sizeof doing, "reading result page %zu", cur->pages + 1);
  json_t *j = NULL;
  if ((rc = bq_answer(src, &resp, doing, &j, err))) return rc;
  take_page(cur, j);
  return 0;
}

static int bq_next_chunk(struct bf_cursor *cur_, struct bf_rowbuf *rb, struct bf_error *err) {
  struct bq_cursor *cur = (struct bq_cursor *)cur_;
  const size_t ncols = cur->base.ncols;
  while (rb->nrows < rb->cap_rows) {
    if (cur->row_at >= json_array_size(cur->rows)) {
      if (!cur->page_token) break;
      int rc = fetch_page(cur, err);
      if (rc) return rc;
      continue;
    }
    json_t *f = json_object_get(json_array_get(cur->rows, cur->row_at), "f");
    if (!json_is_array(f) || json_array_size(f) != ncols)
      return bf_error_set(err, BF_E_WAREHOUSE, "%s: a row of page %zu has not %zu values",
                          cur->src->what, cur->pages, ncols);
    struct bf_value *vals = rb->values + rb->nrows * ncols;
    for (size_t c = 0; c < ncols; c++) {
      vals[c].type = BF_NULL;
      if (cur->base.wanted && !cur->base.wanted[c]) continue;
      json_t *cell = json_object_get(json_array_get(f, c), "v");
      if (bf_bq_cell(json_array_get(cur->schema, c), cur->kinds[c], cell, rb, &vals[c]))
        return bf_error_set(err, BF_E_WAREHOUSE,
                            "%s: column '%s' holds a value its type does not allow", cur->src->what,
                            cur->base.column_names[c]);
    }
    rb->nrows++;
    cur->row_at++;
  }
  return (int)rb->nrows;
}

static void bq_cursor_free(struct bf_cursor *cur_) {
  struct bq_cursor *cur = (struct bq_cursor *)cur_;
  if (!cur) return;
  json_decref(cur->page);
  json_decref(cur->schema);
  free(cur->kinds);
  free(cur->job_id);
  free(cur->location);
  free(cur->page_token);
  bf_cursor_release_names(&cur->base);
  free(cur);
}

static const struct bf_cursor_ops bq_cursor_ops = {bq_next_chunk, bq_cursor_free};

static int bq_query(struct bf_source *src_, const char *sql, struct bf_cursor **out,
                    struct bf_error *err) {
  struct bq_source *src = (struct bq_source *)src_;
  *out = NULL;
  if (!bf_sql_single_query(sql))
    return bf_error_set(err, BF_E_WAREHOUSE,
                        "%s: the SQL must be one query (SELECT or WITH), not a script or a "
                        "statement that changes data",
                        src->what);
  json_t *answer = NULL;
  char *job_id = NULL, *location = NULL;
  int rc = bq_execute(src, sql, &answer, &job_id, &location, err);
  if (rc) return rc;
  json_t *fields = json_object_get(json_object_get(answer, "schema"), "fields");
  size_t ncols = json_array_size(fields);
  if (ncols == 0) {
    json_decref(answer);
    free(job_id);
    free(location);
    return bf_error_set(err, BF_E_WAREHOUSE, "%s: the result has no columns (schema)", src->what);
  }
  struct bq_cursor *cur = bf_xcalloc(1, sizeof *cur);
  cur->base.ops = &bq_cursor_ops;
  cur->base.ncols = ncols;
  cur->base.column_names = bf_xcalloc(ncols, sizeof(char *));
  cur->kinds = bf_xcalloc(ncols, sizeof *cur->kinds);
  cur->src = src;
  cur->job_id = job_id;
  cur->location = location;
  cur->schema = json_incref(fields); /* outlives the first page */
  for (size_t c = 0; c < ncols; c++) {
    json_t *fld = json_array_get(fields, c);
    const char *name = json_string_value(json_object_get(fld, "name"));
    cur->base.column_names[c] = bf_xstrdup(name ? name : "");
    cur->kinds[c] = bf_bq_kind_of(fld);
  }
  take_page(cur, answer);
  *out = &cur->base;
  return 0;
}

/* ---- open / close -------------------------------------------------------- */

static void bq_close(struct bf_source *src_) {
  struct bq_source *src = (struct bq_source *)src_;
  if (!src) return;
  bf_http_free(src->http);
  bf_google_auth_free(src->auth);
  free(src->project);
  free(src->what);
  free(src);
}

static int bq_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                   struct bf_source **out, struct bf_error *err) {
  const struct bf_node *p = wh->params;
  struct bq_source *src = bf_xcalloc(1, sizeof *src);
  src->base.type = &bf_source_bigquery;
  src->what = bf_xasprintf("warehouse '%s' (bigquery)", wh->name);
  src->location = bf_params_str(p, bq_params, "location");
  src->dataset = bf_params_str(p, bq_params, "dataset");
  src->page_size = bf_params_int(p, bq_params, "page_size");
  src->statement_timeout_ms = bf_params_duration_ms(p, bq_params, "statement_timeout");
  int rc = 0;
  if (src->page_size < 1 || src->page_size > 100000) {
    const struct bf_node *n = bf_node_get(p, "page_size");
    rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: page_size must be from 1 to 100000",
                      n->loc.file, n->loc.line, n->loc.col, src->what);
    goto fail;
  }
  char *key_path = bf_config_path(cfg, bf_params_str(p, bq_params, "credentials_file"));
  rc = bf_google_auth_new(key_path, BQ_SCOPE, src->what, &src->auth, err);
  free(key_path);
  if (rc) goto fail;
  const char *project = bf_params_str(p, bq_params, "project");
  if (!project) project = bf_google_auth_project(src->auth);
  if (!project) {
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: %s needs 'project' (the key file names no project_id)",
                      wh->loc.file, wh->loc.line, wh->loc.col, src->what);
    goto fail;
  }
  src->project = bf_xstrdup(project);
  struct bf_http_options o;
  char *name = bf_xasprintf("bigquery:%s", wh->name);
  bf_http_options_defaults(&o, name, NULL, 0, 1, 1);
  o.timeout_ms = 60000;
  o.max_response_bytes = BQ_MAX_BODY;
  o.retryable = bq_retryable;
  rc = bf_http_options_from_params(&o, p, bq_params, src->what, err);
  if (rc == 0 && !(src->http = bf_http_new(&o, err))) rc = BF_E_WAREHOUSE;
  free(name);
  if (rc) goto fail;
  bf_http_add_header(src->http, "Accept: application/json", false);
  bf_http_add_header(src->http, "User-Agent: Backflow", false);
  *out = &src->base;
  return 0;
fail:
  bq_close(&src->base);
  return rc;
}

const struct bf_source_type bf_source_bigquery = {
    .name = "bigquery",
    .params = bq_params,
    .open = bq_open,
    .query = bq_query,
    .close = bq_close,
};

/* Snowflake warehouse over the SQL API v2 with key-pair authentication.
 *
 * A query is submitted asynchronously (POST /api/v2/statements?async=true:
 * 202 and a statement handle), polled (GET /api/v2/statements/<handle>: 202
 * while it runs; 200 with the metadata and partition 0; 422 with the
 * vendor's code, message and SQL state when it fails), then read partition
 * by partition (GET ...?partition=N, gzip-encoded: libcurl decompresses), so
 * memory holds one partition at a time. Stopping (Ctrl-C, SIGTERM) or the
 * statement_timeout cancels the statement (POST .../cancel).
 *
 * Every request carries a JWT signed with the user's RSA key (RS256):
 *   iss = ACCOUNT.USER.SHA256:<base64 SHA-256 of the public key DER>,
 *   sub = ACCOUNT.USER, iat, exp <= iat + 1 h,
 * with X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT. A token is minted
 * again before it expires (each attempt checks), and once more on a 401.
 * The private key and its passphrase never appear in a message.
 * (https://docs.snowflake.com/en/developer-guide/sql-api/authenticating,
 *  https://docs.snowflake.com/en/developer-guide/sql-api/reference) */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "util/jwt.h"
#include "clients/http_transport.h"
#include "sources/cells.h"
#include "sources/snowflake.h"
#include "sources/wh_poll.h"

#define SF_PATH      "/api/v2/statements"
#define SF_MAX_JWT_S 3600 /* Snowflake refuses a longer-lived JWT */
#define SF_MAX_BODY  (512u << 20)

static const struct bf_param_spec sf_params[] = {
    {"account", BF_PARAM_STRING, NULL, true, false,
     "account identifier, e.g. myorg-myaccount or xy12345.eu-west-1"},
    {"user", BF_PARAM_STRING, NULL, true, false, "Snowflake user the public key is assigned to"},
    {"private_key_file", BF_PARAM_STRING, NULL, true, false,
     "PEM PKCS#8 RSA private key (rsa_key.p8), relative to the project"},
    {"private_key_passphrase", BF_PARAM_STRING, NULL, false, true,
     "passphrase of an encrypted private key"},
    {"warehouse", BF_PARAM_STRING, NULL, false, false, "virtual warehouse that runs the query"},
    {"database", BF_PARAM_STRING, NULL, false, false, "default database"},
    {"schema", BF_PARAM_STRING, NULL, false, false, "default schema"},
    {"role", BF_PARAM_STRING, NULL, false, false, "role the query runs as"},
    {"base_url", BF_PARAM_STRING, NULL, false, false,
     "API root (default https://<account>.snowflakecomputing.com; proxies, tests)"},
    {"timeout", BF_PARAM_DURATION, "60s", false, false,
     "time allowed for one HTTP request (a poll, a partition)"},
    {"statement_timeout", BF_PARAM_DURATION, "0s", false, false,
     "longest time the model's query may run, then it is cancelled (0: the server's setting)"},
    {"jwt_lifetime", BF_PARAM_DURATION, "59m", false, false,
     "lifetime of each signed JWT (at most 1h); renewed before it ends"},
    {"max_retries", BF_PARAM_INT, "6", false, false, "retries of a request on 429/5xx/timeouts"},
    {"retry_base", BF_PARAM_DURATION, "500ms", false, false, "first backoff; doubles each retry"},
    {"retry_max_wait", BF_PARAM_DURATION, "60s", false, false, "longest wait between retries"},
    {NULL, 0, NULL, false, false, NULL},
};

struct sf_source {
  struct bf_source base;
  char *what; /* "warehouse 'snow' (snowflake)" */
  struct bf_http *http;
  struct bf_rsa_key *key;
  char *qualified_user; /* ACCOUNT.USER */
  char *fingerprint;    /* SHA256:... */
  char *jwt;            /* current token; never printed */
  long long jwt_exp;    /* its exp (unix seconds) */
  long long jwt_lifetime_s;
  const char *warehouse, *database, *schema, *role; /* borrowed from the config */
  long long statement_timeout_ms;
};

struct sf_cursor {
  struct bf_cursor base;
  struct sf_source *src;
  char *handle;
  enum bf_sf_kind *kinds;
  size_t npartitions, next_partition;
  json_t *partition; /* the response holding the rows being read */
  json_t *rows;      /* its "data" array (borrowed from partition) */
  size_t row_at;
};

/* ---- authentication ------------------------------------------------------ */

/* The account as a JWT names it: upper case, without the region or cloud
 * of an account locator ("xy12345.us-east-1" -> "XY12345"). Caller frees. */
static char *jwt_account(const char *account) {
  size_t n = strcspn(account, ".");
  char *a = bf_xstrndup(account, n);
  for (char *p = a; *p; p++) *p = (char)toupper((unsigned char)*p);
  return a;
}

static int mint_jwt(struct sf_source *src, struct bf_error *err) {
  long long now = (long long)time(NULL);
  char *iss = bf_xasprintf("%s.%s", src->qualified_user, src->fingerprint);
  json_t *claims = json_pack("{s:s,s:s,s:I,s:I}", "iss", iss, "sub", src->qualified_user, "iat",
                             (json_int_t)now, "exp", (json_int_t)(now + src->jwt_lifetime_s));
  free(iss);
  char *text = json_dumps(claims, JSON_COMPACT);
  json_decref(claims);
  char *jwt = NULL;
  int rc = bf_jwt_rs256(src->key, NULL, text, &jwt, err);
  free(text);
  if (rc) return bf_error_prefix(err, "%s", src->what);
  free(src->jwt);
  src->jwt = jwt;
  src->jwt_exp = now + src->jwt_lifetime_s;
  return 0;
}

/* Renews the token when less than a fifth of its life (at most 5 minutes)
 * is left, so no request goes out with one that expires in flight. */
static void fresh_jwt(struct sf_source *src) {
  long long margin = src->jwt_lifetime_s / 5 > 300 ? 300 : src->jwt_lifetime_s / 5;
  if (margin < 1) margin = 1;
  if ((long long)time(NULL) + margin >= src->jwt_exp) {
    struct bf_error ignored = {0};
    mint_jwt(src, &ignored); /* the key signed before: failing now keeps the old token */
  }
}

static void attempt_headers(const struct bf_http_request *req, unsigned attempt,
                            struct bf_buf *out) {
  struct sf_source *src = req->user;
  fresh_jwt(src);
  bf_buf_printf(out, "Authorization: Bearer %s\n", src->jwt);
  bf_buf_puts(out, "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT\n");
}

/* ---- requests -------------------------------------------------------------- */

/* 408 is final here: the SQL API answers it when a statement ran past its
 * timeout, and sending it again would run it again. */
static bool sf_retryable(const struct bf_http_response *r, void *arg) {
  return r->status == 0 || r->status == 429 || r->status >= 500;
}

/* One request; on a 401 the token is minted again and the request sent once
 * more (a clock step or a server that saw the token as expired). Returns 0
 * with resp filled whatever its status, or a negative code when the
 * transport broke. */
static int sf_send(struct sf_source *src, const char *method, const char *path, const char *body,
                   struct bf_http_response *resp, struct bf_error *err) {
  for (int attempt = 0;; attempt++) {
    struct bf_http_request req = {.method = method,
                                  .path = path,
                                  .body = body,
                                  .body_len = body ? strlen(body) : 0,
                                  .user = src,
                                  .attempt_headers = attempt_headers};
    memset(resp, 0, sizeof *resp);
    int rc = bf_http_perform_one(src->http, &req, resp, err);
    if (rc) return bf_error_prefix(err, "%s", src->what);
    if (resp->status != 401 || attempt > 0) return 0;
    bf_http_response_release(resp);
    if ((rc = mint_jwt(src, err))) return rc;
  }
}

/* The vendor's error as a message: "<doing>: <message> (code 002003, SQL
 * state 42S02)". Returns BF_E_WAREHOUSE. */
static int sf_fail(struct sf_source *src, struct bf_http_response *resp, const char *doing,
                   struct bf_error *err) {
  json_t *j = resp->body.len ? json_loadb(resp->body.data, resp->body.len, 0, NULL) : NULL;
  /* Compilation errors come as "SQL compilation error:\n<detail>": one line. */
  char *message = json_string_value(json_object_get(j, "message"))
                      ? bf_xstrdup(json_string_value(json_object_get(j, "message")))
                      : NULL;
  for (char *c = message; c && *c; c++)
    if (*c == '\n' || *c == '\r') *c = ' ';
  const char *code = json_string_value(json_object_get(j, "code"));
  const char *state = json_string_value(json_object_get(j, "sqlState"));
  char detail[96] = "";
  if (code && state)
    snprintf(detail, sizeof detail, " (code %s, SQL state %s)", code, state);
  else if (code)
    snprintf(detail, sizeof detail, " (code %s)", code);
  const char *hint = "";
  if (resp->status == 401 || resp->status == 403)
    hint = "; check account, user and that the public key assigned to the user "
           "(ALTER USER ... SET RSA_PUBLIC_KEY) matches private_key_file";
  if (message)
    bf_error_set(err, BF_E_WAREHOUSE, "%s: %s: %s%s%s%s%s", src->what, doing, message, detail, hint,
                 resp->status == 401 || resp->status == 403 ? ", fingerprint " : "",
                 resp->status == 401 || resp->status == 403 ? src->fingerprint : "");
  else
    bf_error_set(err, BF_E_WAREHOUSE, "%s: %s: %s%s", src->what, doing,
                 resp->error[0] ? resp->error : "unexpected answer", hint);
  bf_http_scrub(src->http, err->msg);
  free(message);
  json_decref(j);
  return BF_E_WAREHOUSE;
}

/* The answer's body as JSON, or an error naming what was being done. */
static json_t *sf_json(struct sf_source *src, struct bf_http_response *resp, const char *doing,
                       struct bf_error *err) {
  json_error_t je;
  json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &je);
  if (!j || !json_is_object(j)) {
    json_decref(j);
    bf_error_set(err, BF_E_WAREHOUSE, "%s: %s: the answer is not a JSON object (%s)", src->what,
                 doing, j ? "wrong type" : je.text);
    return NULL;
  }
  return j;
}

static void sf_cancel(struct sf_source *src, const char *handle) {
  char *path = bf_xasprintf(SF_PATH "/%s/cancel", handle);
  struct bf_http_response resp;
  struct bf_error ignored = {0};
  if (sf_send(src, "POST", path, "{}", &resp, &ignored) == 0) bf_http_response_release(&resp);
  free(path);
}

struct sf_statement {
  struct sf_source *src;
  const char *handle;
};

static void sf_cancel_cb(void *arg) {
  struct sf_statement *st = arg;
  sf_cancel(st->src, st->handle);
}

/* A handle goes into a URL path: only the characters Snowflake uses. */
static bool handle_ok(const char *h) {
  if (!h || !*h || strlen(h) > 128) return false;
  for (; *h; h++)
    if (!isalnum((unsigned char)*h) && *h != '-' && *h != '_') return false;
  return true;
}

/* Submits sql and waits until it has run: *out is the 200 answer (metadata
 * and partition 0). Caller frees *out with json_decref. */
static int sf_execute(struct sf_source *src, const char *sql, json_t **out, struct bf_error *err) {
  *out = NULL;
  json_t *body = json_pack("{s:s}", "statement", sql);
  if (src->warehouse) json_object_set_new(body, "warehouse", json_string(src->warehouse));
  if (src->database) json_object_set_new(body, "database", json_string(src->database));
  if (src->schema) json_object_set_new(body, "schema", json_string(src->schema));
  if (src->role) json_object_set_new(body, "role", json_string(src->role));
  if (src->statement_timeout_ms > 0)
    json_object_set_new(body, "timeout",
                        json_integer((json_int_t)((src->statement_timeout_ms + 999) / 1000)));
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  /* requestId + retry=true: a POST the transport sends again after a lost
   * answer returns the statement already submitted instead of a second run. */
  char *rid = bf_wh_request_id();
  char *path = bf_xasprintf(SF_PATH "?async=true&requestId=%s&retry=true", rid);
  free(rid);
  struct bf_http_response resp;
  int rc = sf_send(src, "POST", path, text, &resp, err);
  free(text);
  free(path);
  if (rc) return rc;
  char *handle = NULL;
  json_t *j = NULL;
  struct bf_wh_poll waiter;
  bf_wh_poll_start(&waiter, src->what, src->statement_timeout_ms);
  for (;;) {
    if (resp.status != 200 && resp.status != 202) {
      rc = sf_fail(src, &resp, handle ? "the query failed" : "submitting the query", err);
      if (handle && resp.status == 408) sf_cancel(src, handle);
      goto out;
    }
    if (!(j = sf_json(src, &resp, "reading the query status", err))) {
      rc = BF_E_WAREHOUSE;
      goto out;
    }
    if (!handle) {
      const char *h = json_string_value(json_object_get(j, "statementHandle"));
      if (!handle_ok(h)) {
        rc = bf_error_set(err, BF_E_WAREHOUSE, "%s: the answer has no valid statementHandle",
                          src->what);
        goto out;
      }
      handle = bf_xstrdup(h);
    }
    if (resp.status == 200) break;
    json_decref(j);
    j = NULL;
    bf_http_response_release(&resp);
    struct sf_statement st = {src, handle};
    if ((rc = bf_wh_poll_wait(&waiter, sf_cancel_cb, &st, "the query", err))) goto out_released;
    char *poll = bf_xasprintf(SF_PATH "/%s", handle);
    rc = sf_send(src, "GET", poll, NULL, &resp, err);
    free(poll);
    if (rc) goto out_released;
  }
  *out = j;
  j = NULL;
out:
  bf_http_response_release(&resp);
out_released:
  json_decref(j);
  free(handle);
  return rc;
}

/* ---- the cursor ------------------------------------------------------------ */

static int take_partition(struct sf_cursor *cur, json_t *answer, struct bf_error *err) {
  json_t *rows = json_object_get(answer, "data");
  if (!json_is_array(rows)) {
    json_decref(answer);
    return bf_error_set(err, BF_E_WAREHOUSE, "%s: partition %zu has no data array", cur->src->what,
                        cur->next_partition);
  }
  json_decref(cur->partition);
  cur->partition = answer;
  cur->rows = rows;
  cur->row_at = 0;
  cur->next_partition++;
  return 0;
}

static int fetch_partition(struct sf_cursor *cur, struct bf_error *err) {
  struct sf_source *src = cur->src;
  /* The previous partition goes first: memory holds one at a time. */
  json_decref(cur->partition);
  cur->partition = NULL;
  cur->rows = NULL;
  char *path = bf_xasprintf(SF_PATH "/%s?partition=%zu", cur->handle, cur->next_partition);
  struct bf_http_response resp;
  int rc = sf_send(src, "GET", path, NULL, &resp, err);
  free(path);
  if (rc) return rc;
  char doing[64];
  snprintf(doing, sizeof doing, "reading result partition %zu", cur->next_partition);
  json_t *j = NULL;
  if (resp.status != 200)
    rc = sf_fail(src, &resp, doing, err);
  else if (!(j = sf_json(src, &resp, doing, err)))
    rc = BF_E_WAREHOUSE;
  bf_http_response_release(&resp);
  return rc ? rc : take_partition(cur, j, err);
}

static int sf_next_chunk(struct bf_cursor *cur_, struct bf_rowbuf *rb, struct bf_error *err) {
  struct sf_cursor *cur = (struct sf_cursor *)cur_;
  const size_t ncols = cur->base.ncols;
  while (rb->nrows < rb->cap_rows) {
    if (!cur->rows || cur->row_at >= json_array_size(cur->rows)) {
      if (cur->next_partition >= cur->npartitions) break;
      int rc = fetch_partition(cur, err);
      if (rc) return rc;
      continue;
    }
    json_t *row = json_array_get(cur->rows, cur->row_at);
    if (!json_is_array(row) || json_array_size(row) != ncols)
      return bf_error_set(err, BF_E_WAREHOUSE, "%s: a row of partition %zu has not %zu values",
                          cur->src->what, cur->next_partition - 1, ncols);
    struct bf_value *vals = rb->values + rb->nrows * ncols;
    for (size_t c = 0; c < ncols; c++) {
      if (cur->base.wanted && !cur->base.wanted[c]) continue;
      json_t *cell = json_array_get(row, c);
      vals[c].type = BF_NULL;
      if (json_is_null(cell)) continue;
      if (!json_is_string(cell) || bf_sf_cell(cur->kinds[c], json_string_value(cell),
                                              json_string_length(cell), rb, &vals[c]))
        return bf_error_set(err, BF_E_WAREHOUSE,
                            "%s: column '%s' holds a value its type does not allow", cur->src->what,
                            cur->base.column_names[c]);
    }
    rb->nrows++;
    cur->row_at++;
  }
  /* A partition used up is freed now rather than with the next fetch. */
  if (cur->rows && cur->row_at >= json_array_size(cur->rows)) {
    json_decref(cur->partition);
    cur->partition = NULL;
    cur->rows = NULL;
  }
  return (int)rb->nrows;
}

static void sf_cursor_free(struct bf_cursor *cur_) {
  struct sf_cursor *cur = (struct sf_cursor *)cur_;
  if (!cur) return;
  json_decref(cur->partition);
  free(cur->kinds);
  free(cur->handle);
  bf_cursor_release_names(&cur->base);
  free(cur);
}

static const struct bf_cursor_ops sf_cursor_ops = {sf_next_chunk, sf_cursor_free};

static int sf_query(struct bf_source *src_, const char *sql, struct bf_cursor **out,
                    struct bf_error *err) {
  struct sf_source *src = (struct sf_source *)src_;
  *out = NULL;
  if (!bf_sql_single_query(sql))
    return bf_error_set(err, BF_E_WAREHOUSE,
                        "%s: the SQL must be one query (SELECT or WITH), not a script or a "
                        "statement that changes data",
                        src->what);
  json_t *answer = NULL;
  int rc = sf_execute(src, sql, &answer, err);
  if (rc) return rc;
  json_t *meta = json_object_get(answer, "resultSetMetaData");
  json_t *row_type = json_object_get(meta, "rowType");
  json_t *parts = json_object_get(meta, "partitionInfo");
  size_t ncols = json_array_size(row_type);
  if (!json_is_array(row_type) || ncols == 0) {
    json_decref(answer);
    return bf_error_set(err, BF_E_WAREHOUSE, "%s: the result has no columns (rowType)", src->what);
  }
  struct sf_cursor *cur = bf_xcalloc(1, sizeof *cur);
  cur->base.ops = &sf_cursor_ops;
  cur->base.ncols = ncols;
  cur->base.column_names = bf_xcalloc(ncols, sizeof(char *));
  cur->kinds = bf_xcalloc(ncols, sizeof *cur->kinds);
  cur->src = src;
  cur->handle = bf_xstrdup(json_string_value(json_object_get(answer, "statementHandle")));
  for (size_t c = 0; c < ncols; c++) {
    json_t *col = json_array_get(row_type, c);
    const char *name = json_string_value(json_object_get(col, "name"));
    cur->base.column_names[c] = bf_xstrdup(name ? name : "");
    cur->kinds[c] = bf_sf_kind_of(json_string_value(json_object_get(col, "type")),
                                  (long long)json_integer_value(json_object_get(col, "scale")));
  }
  /* No partitionInfo: the rows of the answer are the whole result. */
  cur->npartitions = json_is_array(parts) && json_array_size(parts) ? json_array_size(parts) : 1;
  if ((rc = take_partition(cur, answer, err))) {
    sf_cursor_free(&cur->base);
    return rc;
  }
  *out = &cur->base;
  return 0;
}

/* ---- open / close -------------------------------------------------------- */

static void sf_close(struct bf_source *src_) {
  struct sf_source *src = (struct sf_source *)src_;
  if (!src) return;
  bf_http_free(src->http);
  bf_rsa_key_free(src->key);
  if (src->jwt) sodium_memzero(src->jwt, strlen(src->jwt));
  free(src->jwt);
  free(src->qualified_user);
  free(src->fingerprint);
  free(src->what);
  free(src);
}

static int sf_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                   struct bf_source **out, struct bf_error *err) {
  const struct bf_node *p = wh->params;
  struct sf_source *src = bf_xcalloc(1, sizeof *src);
  src->base.type = &bf_source_snowflake;
  src->what = bf_xasprintf("warehouse '%s' (snowflake)", wh->name);
  const char *account = bf_params_str(p, sf_params, "account");
  const char *user = bf_params_str(p, sf_params, "user");
  src->warehouse = bf_params_str(p, sf_params, "warehouse");
  src->database = bf_params_str(p, sf_params, "database");
  src->schema = bf_params_str(p, sf_params, "schema");
  src->role = bf_params_str(p, sf_params, "role");
  src->statement_timeout_ms = bf_params_duration_ms(p, sf_params, "statement_timeout");
  long long life_ms = bf_params_duration_ms(p, sf_params, "jwt_lifetime");
  int rc = 0;
  if (life_ms < 2000 || life_ms > SF_MAX_JWT_S * 1000LL) {
    const struct bf_node *n = bf_node_get(p, "jwt_lifetime");
    rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: jwt_lifetime must be from 2s to 1h",
                      n->loc.file, n->loc.line, n->loc.col, src->what);
    goto fail;
  }
  src->jwt_lifetime_s = life_ms / 1000;
  char *acct = jwt_account(account);
  src->qualified_user = bf_xasprintf("%s.%s", acct, user);
  free(acct);
  for (char *c = src->qualified_user; *c; c++) *c = (char)toupper((unsigned char)*c);
  char *key_path = bf_config_path(cfg, bf_params_str(p, sf_params, "private_key_file"));
  rc = bf_rsa_key_load(key_path, bf_params_str(p, sf_params, "private_key_passphrase"), src->what,
                       &src->key, err);
  free(key_path);
  if (rc) goto fail;
  src->fingerprint = bf_rsa_key_fingerprint(src->key);
  if ((rc = mint_jwt(src, err))) goto fail;

  char *host = bf_xasprintf("https://%s.snowflakecomputing.com", account);
  for (char *c = host + 8; *c; c++) *c = (char)tolower((unsigned char)*c);
  struct bf_http_options o;
  char *name = bf_xasprintf("snowflake:%s", wh->name);
  bf_http_options_defaults(&o, name, host, 0, 1, 1);
  o.timeout_ms = 60000;
  o.max_response_bytes = SF_MAX_BODY;
  o.retryable = sf_retryable;
  rc = bf_http_options_from_params(&o, p, sf_params, src->what, err);
  if (rc == 0 && !(src->http = bf_http_new(&o, err))) rc = BF_E_WAREHOUSE;
  free(host);
  free(name);
  if (rc) goto fail;
  bf_http_add_header(src->http, "Accept: application/json", false);
  bf_http_add_header(src->http, "User-Agent: Backflow", false);
  const char *pass = bf_params_str(p, sf_params, "private_key_passphrase");
  if (pass) bf_http_add_secret(src->http, pass);
  *out = &src->base;
  return 0;
fail:
  sf_close(&src->base);
  return rc;
}

const struct bf_source_type bf_source_snowflake = {
    .name = "snowflake",
    .params = sf_params,
    .open = sf_open,
    .query = sf_query,
    .close = sf_close,
};

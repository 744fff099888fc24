/* OAuth 2.0 tokens by client credentials or a refresh token. */
#include "clients/oauth_token.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

struct bf_oauth {
  char *what;
  char *token_url, *grant_type, *client_id, *client_secret, *refresh_token, *scope;
  enum bf_oauth_client_auth client_auth;
  long long default_lifetime_s;
  int error_code;
  bool fixed;
  struct bf_http *api;  /* the transport of the bf_oauth_perform under way */
  struct bf_http *http; /* the token endpoint's own transport */
  char *token;          /* current access token, never printed */
  double expires_ms;    /* monotonic time it ends */
  double lifetime_ms;
  json_t *answer; /* the last token answer */
  unsigned grants;
};

static void wipe_free(char *s) {
  if (s) sodium_memzero(s, strlen(s));
  free(s);
}

void bf_oauth_free(struct bf_oauth *a) {
  if (!a) return;
  wipe_free(a->token);
  wipe_free(a->client_secret);
  wipe_free(a->refresh_token);
  free(a->what);
  free(a->token_url);
  free(a->grant_type);
  free(a->client_id);
  free(a->scope);
  json_decref(a->answer);
  bf_http_free(a->http);
  free(a);
}

static char *dup_or_null(const char *s) { return s ? bf_xstrdup(s) : NULL; }

int bf_oauth_new(const struct bf_oauth_grant *g, const struct bf_http_options *like,
                 const char *what, struct bf_oauth **out, struct bf_error *err) {
  *out = NULL;
  if (!g->token_url ||
      (strncmp(g->token_url, "https://", 8) != 0 && strncmp(g->token_url, "http://", 7) != 0))
    return bf_error_set(err, BF_E_CONFIG, "%s: the token endpoint must be an http(s) URL", what);
  struct bf_oauth *a = bf_xcalloc(1, sizeof *a);
  a->what = bf_xstrdup(what);
  a->token_url = bf_xstrdup(g->token_url);
  a->grant_type = bf_xstrdup(g->grant_type);
  a->client_id = dup_or_null(g->client_id);
  a->client_secret = dup_or_null(g->client_secret);
  a->refresh_token = dup_or_null(g->refresh_token);
  a->scope = dup_or_null(g->scope);
  a->client_auth = g->client_auth;
  a->default_lifetime_s = g->default_lifetime_s > 0 ? g->default_lifetime_s : 3600;
  a->error_code = g->error_code ? g->error_code : BF_E_WAREHOUSE;
  struct bf_http_options o;
  char *name = bf_xasprintf("oauth:%s", what);
  bf_http_options_defaults(&o, name, NULL, 0, 1, 1);
  if (like) {
    o.timeout_ms = like->timeout_ms;
    o.connect_timeout_ms = like->connect_timeout_ms;
    o.max_retries = like->max_retries;
    o.retry_base_ms = like->retry_base_ms;
    o.retry_max_wait_ms = like->retry_max_wait_ms;
    o.insecure = like->insecure;
  }
  o.max_response_bytes = 1u << 20;
  a->http = bf_http_new(&o, err);
  free(name);
  if (!a->http) {
    bf_oauth_free(a);
    return BF_E_CONFIG;
  }
  bf_http_add_header(a->http, "Accept: application/json", false);
  bf_http_add_header(a->http, "User-Agent: Backflow", false);
  if (a->client_secret) bf_http_add_secret(a->http, a->client_secret);
  if (a->refresh_token) bf_http_add_secret(a->http, a->refresh_token);
  *out = a;
  return 0;
}

struct bf_oauth *bf_oauth_new_fixed(const char *token, const char *what) {
  struct bf_oauth *a = bf_xcalloc(1, sizeof *a);
  a->what = bf_xstrdup(what);
  a->fixed = true;
  a->token = bf_xstrdup(token);
  return a;
}

/* Appends s form-urlencoded (RFC 3986 unreserved kept). */
static void form_escape(struct bf_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '.' || *p == '_' || *p == '~') {
      bf_buf_putc(b, (char)*p);
    } else {
      bf_buf_putc(b, '%');
      bf_buf_putc(b, hex[*p >> 4]);
      bf_buf_putc(b, hex[*p & 15]);
    }
  }
}

static void form_field(struct bf_buf *b, const char *name, const char *value) {
  if (!value) return;
  if (b->len) bf_buf_putc(b, '&');
  bf_buf_puts(b, name);
  bf_buf_putc(b, '=');
  form_escape(b, value);
}

/* "Authorization: Basic base64(id:secret)" (RFC 6749 §2.3.1: both parts
 * form-urlencoded first). Caller wipes and frees. */
static char *basic_header(const struct bf_oauth *a) {
  struct bf_buf pair = {0};
  form_escape(&pair, a->client_id);
  bf_buf_putc(&pair, ':');
  form_escape(&pair, a->client_secret);
  size_t cap = sodium_base64_encoded_len(pair.len, sodium_base64_VARIANT_ORIGINAL);
  char *b64 = bf_xcalloc(1, cap);
  sodium_bin2base64(b64, cap, (const unsigned char *)pair.data, pair.len,
                    sodium_base64_VARIANT_ORIGINAL);
  sodium_memzero(pair.data, pair.len);
  bf_buf_release(&pair);
  char *h = bf_xasprintf("Authorization: Basic %s", b64);
  wipe_free(b64);
  return h;
}

static int grant(struct bf_oauth *a, struct bf_http *api, struct bf_error *err) {
  struct bf_buf body = {0};
  form_field(&body, "grant_type", a->grant_type);
  form_field(&body, "refresh_token", a->refresh_token);
  form_field(&body, "scope", a->scope);
  char *basic = NULL;
  if (a->client_auth == BF_OAUTH_BASIC) {
    basic = basic_header(a);
  } else {
    form_field(&body, "client_id", a->client_id);
    form_field(&body, "client_secret", a->client_secret);
  }
  const char *headers[] = {basic, NULL};
  struct bf_http_request req = {.method = "POST",
                                .path = a->token_url,
                                .content_type = "application/x-www-form-urlencoded",
                                .body = body.data,
                                .body_len = body.len,
                                .headers = basic ? headers : NULL};
  struct bf_http_response resp;
  double asked = bf_http_now_ms();
  int rc = bf_http_perform_one(a->http, &req, &resp, err);
  sodium_memzero(body.data, body.len);
  bf_buf_release(&body);
  wipe_free(basic);
  if (rc) return bf_error_prefix(err, "%s: obtaining an access token", a->what);
  json_t *j = resp.body.len ? json_loadb(resp.body.data, resp.body.len, 0, NULL) : NULL;
  const char *token = json_string_value(json_object_get(j, "access_token"));
  char *shown = bf_http_redact_url(a->token_url);
  if (!bf_http_ok(&resp) || !token || !*token) {
    const char *e = json_string_value(json_object_get(j, "error"));
    const char *d = json_string_value(json_object_get(j, "error_description"));
    if (!e) e = json_string_value(json_object_get(j, "status")); /* HubSpot: status + message */
    if (!d) d = json_string_value(json_object_get(j, "message"));
    rc = bf_error_set(err, a->error_code,
                      "%s: the token endpoint %s refused the %s grant: %s%s%s (HTTP %ld)", a->what,
                      shown, a->grant_type,
                      e               ? e
                      : resp.error[0] ? resp.error
                                      : "no access_token",
                      d ? ": " : "", d ? d : "", resp.status);
    for (char *c = err->msg; *c; c++)
      if (*c == '\n' || *c == '\r') *c = ' ';
    bf_http_scrub(a->http, err->msg);
    json_decref(j);
  } else {
    wipe_free(a->token);
    a->token = bf_xstrdup(token);
    bf_http_add_secret(a->http, a->token);
    if (api) bf_http_add_secret(api, a->token);
    /* A rotated refresh token replaces the old one (RFC 6749 §6). */
    const char *rt = json_string_value(json_object_get(j, "refresh_token"));
    if (rt && *rt && a->refresh_token && strcmp(rt, a->refresh_token) != 0) {
      wipe_free(a->refresh_token);
      a->refresh_token = bf_xstrdup(rt);
      bf_http_add_secret(a->http, a->refresh_token);
      if (api) bf_http_add_secret(api, a->refresh_token);
    }
    json_int_t expires_in = json_integer_value(json_object_get(j, "expires_in"));
    if (expires_in <= 0) expires_in = a->default_lifetime_s;
    a->lifetime_ms = (double)expires_in * 1000;
    a->expires_ms = asked + a->lifetime_ms;
    a->grants++;
    json_decref(a->answer);
    a->answer = j;
  }
  free(shown);
  bf_http_response_release(&resp);
  return rc;
}

int bf_oauth_token(struct bf_oauth *a, struct bf_http *api, bool force, const char **token,
                   struct bf_error *err) {
  if (a->fixed) {
    if (api) bf_http_add_secret(api, a->token);
    *token = a->token;
    return 0;
  }
  double margin = a->lifetime_ms / 5;
  if (margin > 300000) margin = 300000;
  if (margin < 1000) margin = 1000;
  if (force || !a->token || bf_http_now_ms() + margin >= a->expires_ms) {
    int rc = grant(a, api, err);
    if (rc) return rc;
  }
  *token = a->token;
  return 0;
}

int bf_oauth_send(struct bf_oauth *a, struct bf_http *api, const struct bf_http_request *req,
                  struct bf_http_response *resp, struct bf_error *err) {
  size_t n = 0;
  while (req->headers && req->headers[n]) n++;
  const char **headers = bf_xcalloc(n + 2, sizeof *headers);
  for (size_t i = 0; i < n; i++) headers[i] = req->headers[i];
  int rc = 0;
  for (int attempt = 0;; attempt++) {
    const char *token = NULL;
    if ((rc = bf_oauth_token(a, api, attempt > 0, &token, err))) break;
    char *auth = bf_xasprintf("Authorization: Bearer %s", token);
    headers[n] = auth;
    struct bf_http_request r = *req;
    r.headers = headers;
    memset(resp, 0, sizeof *resp);
    rc = bf_http_perform_one(api, &r, resp, err);
    wipe_free(auth);
    headers[n] = NULL;
    if (rc || resp->status != 401 || attempt > 0 || a->fixed) break;
    bf_http_response_release(resp);
  }
  free(headers);
  return rc;
}

/* Runs before every attempt inside bf_http_perform: the token is renewed
 * through the provider's own transport, so the API's requests in flight are
 * not disturbed. A failed renewal keeps the old token; the 401 it then gets
 * leads to a grant whose error is reported. */
static void attempt_auth(const struct bf_http_request *req, unsigned attempt, struct bf_buf *out) {
  struct bf_oauth *a = req->user;
  const char *token = a->token;
  struct bf_error ignored = {0};
  if (bf_oauth_token(a, a->api, false, &token, &ignored) != 0) token = a->token;
  if (token) bf_buf_printf(out, "Authorization: Bearer %s\n", token);
}

int bf_oauth_perform(struct bf_oauth *a, struct bf_http *api, const struct bf_http_request *reqs,
                     struct bf_http_response *resps, size_t n, struct bf_error *err) {
  const char *token = NULL;
  int rc = bf_oauth_token(a, api, false, &token, err);
  if (rc) {
    memset(resps, 0, n * sizeof *resps);
    return rc;
  }
  a->api = api;
  struct bf_http_request *mine = bf_xcalloc(n ? n : 1, sizeof *mine);
  for (size_t i = 0; i < n; i++) {
    mine[i] = reqs[i];
    mine[i].user = a;
    mine[i].attempt_headers = attempt_auth;
  }
  rc = bf_http_perform(api, mine, resps, n, NULL, NULL, err);
  size_t n401 = 0;
  for (size_t i = 0; rc == 0 && !a->fixed && i < n; i++) n401 += resps[i].status == 401;
  if (n401 && (rc = bf_oauth_token(a, api, true, &token, err)) != 0) {
    /* The grant's error says more than the 401s: they go. */
    bf_http_responses_release(resps, n);
    memset(resps, 0, n * sizeof *resps);
  } else if (n401) {
    /* One new token for all of them: they were sent with the same one. */
    struct bf_http_request *again = bf_xcalloc(n401, sizeof *again);
    struct bf_http_response *fresh = bf_xcalloc(n401, sizeof *fresh);
    size_t *at = bf_xcalloc(n401, sizeof *at), k = 0;
    for (size_t i = 0; i < n; i++)
      if (resps[i].status == 401) {
        at[k] = i;
        again[k++] = mine[i];
      }
    rc = bf_http_perform(api, again, fresh, n401, NULL, NULL, err);
    for (k = 0; k < n401; k++) {
      bf_http_response_release(&resps[at[k]]);
      resps[at[k]] = fresh[k];
    }
    free(again);
    free(fresh);
    free(at);
  }
  a->api = NULL;
  free(mine);
  return rc;
}

int bf_oauth_from_config(const struct bf_node *params, const char *token_key,
                         const char *default_token_url, long long default_lifetime_s,
                         const struct bf_http_options *like, const char *what,
                         struct bf_oauth **out, struct bf_error *err) {
  static const char *const keys[] = {"refresh_token", "client_id", "client_secret", "token_url",
                                     NULL};
  *out = NULL;
  const struct bf_node *auth = bf_node_get(params, "auth");
  const struct bf_node *fixed = bf_node_get(params, token_key);
  const struct bf_loc *loc = auth ? &auth->loc : fixed ? &fixed->loc : &params->loc;
  if (!auth == !fixed)
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: %s needs either %s (an access token) or auth: "
                        "{refresh_token, client_id, client_secret}, not both",
                        loc->file, loc->line, loc->col, what, token_key);
  if (fixed) {
    if (fixed->kind != BF_NODE_SCALAR || !fixed->scalar || !*fixed->scalar)
      return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: %s is empty", loc->file, loc->line,
                          loc->col, what, token_key);
    *out = bf_oauth_new_fixed(fixed->scalar, what);
    return 0;
  }
  char *place = bf_xasprintf("auth of %s", what);
  int rc = auth->kind == BF_NODE_MAP
               ? bf_node_check_keys(auth, place, keys, err)
               : bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s must be a mapping", loc->file,
                              loc->line, loc->col, place);
  const char *v[3] = {NULL, NULL, NULL};
  for (int i = 0; rc == 0 && i < 3; i++) {
    const struct bf_node *n = bf_node_get(auth, keys[i]);
    v[i] = n && n->kind == BF_NODE_SCALAR ? n->scalar : NULL;
    if (!v[i] || !*v[i])
      rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s needs %s", loc->file, loc->line, loc->col,
                        place, keys[i]);
  }
  free(place);
  if (rc) return rc;
  const char *url = bf_node_get_str(auth, "token_url");
  struct bf_oauth_grant g = {.token_url = url ? url : default_token_url,
                             .grant_type = "refresh_token",
                             .client_id = v[1],
                             .client_secret = v[2],
                             .refresh_token = v[0],
                             .client_auth = BF_OAUTH_FORM,
                             .default_lifetime_s = default_lifetime_s,
                             .error_code = BF_E_DESTINATION};
  return bf_oauth_new(&g, like, what, out, err);
}

const char *bf_oauth_field(const struct bf_oauth *a, const char *name) {
  return json_string_value(json_object_get(a->answer, name));
}

unsigned bf_oauth_grants(const struct bf_oauth *a) { return a->grants; }

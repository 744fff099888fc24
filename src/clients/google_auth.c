/* Service-account tokens by the JWT bearer grant. */
#include "clients/google_auth.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "util/jwt.h"

#define GRANT_TYPE "urn:ietf:params:oauth:grant-type:jwt-bearer"

struct bf_google_auth {
  char *what;
  char *client_email, *key_id, *token_uri, *project_id, *scope;
  struct bf_rsa_key *key;
  char *token;       /* current access token, never printed */
  double expires_ms; /* monotonic time it ends */
  double lifetime_ms;
  unsigned grants;
};

void bf_google_auth_free(struct bf_google_auth *a) {
  if (!a) return;
  if (a->token) sodium_memzero(a->token, strlen(a->token));
  free(a->token);
  bf_rsa_key_free(a->key);
  free(a->what);
  free(a->client_email);
  free(a->key_id);
  free(a->token_uri);
  free(a->project_id);
  free(a->scope);
  free(a);
}

static char *dup_field(json_t *j, const char *name) {
  const char *s = json_string_value(json_object_get(j, name));
  return s && *s ? bf_xstrdup(s) : NULL;
}

int bf_google_auth_new(const char *key_path, const char *scope, const char *what,
                       struct bf_google_auth **out, struct bf_error *err) {
  *out = NULL;
  json_error_t je;
  json_t *j = json_load_file(key_path, 0, &je);
  if (!j) /* je.text may quote the file, and the file holds the key: say where only. */
    return bf_error_set(err, BF_E_CONFIG, "%s: cannot read the service-account key file %s%s", what,
                        key_path, je.line > 0 ? " (not valid JSON)" : " (missing or unreadable)");
  struct bf_google_auth *a = bf_xcalloc(1, sizeof *a);
  a->what = bf_xstrdup(what);
  a->scope = bf_xstrdup(scope);
  a->client_email = dup_field(j, "client_email");
  a->key_id = dup_field(j, "private_key_id");
  a->token_uri = dup_field(j, "token_uri");
  a->project_id = dup_field(j, "project_id");
  const char *type = json_string_value(json_object_get(j, "type"));
  const char *pem = json_string_value(json_object_get(j, "private_key"));
  int rc = 0;
  if (!type || strcmp(type, "service_account") != 0 || !a->client_email || !pem) {
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s: %s is not a service-account key file (needs type "
                      "\"service_account\", client_email and private_key)",
                      what, key_path);
    goto out;
  }
  if (!a->token_uri) a->token_uri = bf_xstrdup("https://oauth2.googleapis.com/token");
  if (strncmp(a->token_uri, "https://", 8) != 0 && strncmp(a->token_uri, "http://", 7) != 0) {
    rc = bf_error_set(err, BF_E_CONFIG, "%s: token_uri in %s must be an http(s) URL", what,
                      key_path);
    goto out;
  }
  rc = bf_rsa_key_from_pem(pem, strlen(pem), what, &a->key, err);
out:
  json_decref(j);
  if (rc) {
    bf_google_auth_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

const char *bf_google_auth_project(const struct bf_google_auth *a) { return a->project_id; }

unsigned bf_google_auth_grants(const struct bf_google_auth *a) { return a->grants; }

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

static int grant(struct bf_google_auth *a, struct bf_http *http, struct bf_error *err) {
  long long now = (long long)time(NULL);
  json_t *claims =
      json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", a->client_email, "scope", a->scope, "aud",
                a->token_uri, "iat", (json_int_t)now, "exp", (json_int_t)(now + 3600));
  char *text = json_dumps(claims, JSON_COMPACT);
  json_decref(claims);
  char *assertion = NULL;
  int rc = bf_jwt_rs256(a->key, a->key_id, text, &assertion, err);
  free(text);
  if (rc) return bf_error_prefix(err, "%s", a->what);
  struct bf_buf body = {0};
  bf_buf_puts(&body, "grant_type=");
  form_escape(&body, GRANT_TYPE);
  bf_buf_puts(&body, "&assertion=");
  form_escape(&body, assertion);
  free(assertion);
  struct bf_http_request req = {.method = "POST",
                                .path = a->token_uri,
                                .content_type = "application/x-www-form-urlencoded",
                                .body = body.data,
                                .body_len = body.len};
  struct bf_http_response resp;
  double asked = bf_http_now_ms();
  rc = bf_http_perform_one(http, &req, &resp, err);
  bf_buf_release(&body);
  if (rc) return bf_error_prefix(err, "%s: obtaining an access token", a->what);
  json_t *j = resp.body.len ? json_loadb(resp.body.data, resp.body.len, 0, NULL) : NULL;
  const char *token = json_string_value(json_object_get(j, "access_token"));
  json_int_t expires_in = json_integer_value(json_object_get(j, "expires_in"));
  char *shown = bf_http_redact_url(a->token_uri);
  if (!bf_http_ok(&resp) || !token || !*token) {
    const char *e = json_string_value(json_object_get(j, "error"));
    const char *d = json_string_value(json_object_get(j, "error_description"));
    rc = bf_error_set(err, BF_E_WAREHOUSE,
                      "%s: the token endpoint %s refused the service account %s: %s%s%s", a->what,
                      shown, a->client_email,
                      e               ? e
                      : resp.error[0] ? resp.error
                                      : "no token",
                      d ? ": " : "", d ? d : "");
    bf_http_scrub(http, err->msg);
  } else {
    if (a->token) sodium_memzero(a->token, strlen(a->token));
    free(a->token);
    a->token = bf_xstrdup(token);
    bf_http_add_secret(http, a->token);
    if (expires_in <= 0) expires_in = 3600;
    a->lifetime_ms = (double)expires_in * 1000;
    a->expires_ms = asked + a->lifetime_ms;
    a->grants++;
  }
  free(shown);
  json_decref(j);
  bf_http_response_release(&resp);
  return rc;
}

int bf_google_auth_token(struct bf_google_auth *a, struct bf_http *http, bool force,
                         const char **token, struct bf_error *err) {
  double margin = a->lifetime_ms / 5;
  if (margin > 300000) margin = 300000;
  if (margin < 1000) margin = 1000;
  if (force || !a->token || bf_http_now_ms() + margin >= a->expires_ms) {
    int rc = grant(a, http, err);
    if (rc) return rc;
  }
  *token = a->token;
  return 0;
}

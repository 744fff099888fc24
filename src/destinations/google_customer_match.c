/* google_customer_match: members of a Google Ads Customer Match user list,
 * through the OfflineUserDataJobService (REST). A model row entering the
 * segment is a `create` operation, one leaving it (mode: mirror) a
 * `remove`.
 *
 *   destinations:
 *     gads: {type: google_customer_match, developer_token: "${GADS_DEV_TOKEN}",
 *            access_token: "${GADS_ACCESS_TOKEN}", customer_id: "1234567890",
 *            user_list_id: "987654"}
 *   syncs:
 *     vip_to_gads: {model: vip, destination: gads, mode: mirror,
 *                   match: {email: email}, fields: {phone: phone, first_name: fn,
 *                   last_name: ln, country_code: country, postal_code: zip}}
 *
 * Keys: email, phone (hashed), first_name + last_name + country_code +
 * postal_code (one addressInfo, sent only when all four are there; names
 * hashed, country and postal code in clear, as Google asks), crm_id
 * (thirdPartyUserId) and mobile_id (mobileId), in clear. Normalisation per
 * Google's rules (src/core/pii_normalize.c): E.164 phones with '+', Gmail
 * dots and +tags removed; an invalid value rejects its row.
 *
 * Each push is one job: offlineUserDataJobs:create -> :addOperations (up to
 * 100,000 operations a call, enablePartialFailure: the operations Google
 * refuses are rejected with its message, by operation index) -> :run ->
 * poll the job's status with GAQL for up to `wait_for_job`. A job that
 * FAILED makes its records retry; one still running when the wait ends
 * counts as accepted (Google applies it within hours). */
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "util/log.h"
#include "util/pii_normalize.h"
#include "destinations/ads_internal.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

#define GADS_MAX_OPS_PER_CALL 100000
#define GADS_MAX_BATCH        100000

enum gads_key { K_EMAIL, K_PHONE, K_FIRST, K_LAST, K_COUNTRY, K_POSTAL, K_CRM, K_MOBILE, N_KEYS };
_Static_assert(N_KEYS == BF_GCM_N_KEYS, "BF_GCM_N_KEYS counts the Customer Match keys");
static const char *const key_names[N_KEYS] = {"email",     "phone",        "first_name",
                                              "last_name", "country_code", "postal_code",
                                              "crm_id",    "mobile_id"};

static const struct bf_param_spec gads_params[] = {
    BF_HTTP_PARAMS("https://googleads.googleapis.com"),
    {"developer_token", BF_PARAM_STRING, NULL, true, true, "Google Ads API developer token"},
    {"access_token", BF_PARAM_STRING, NULL, true, true, "OAuth2 access token (scope adwords)"},
    {"customer_id", BF_PARAM_STRING, NULL, true, false, "Google Ads customer id, digits only"},
    {"login_customer_id", BF_PARAM_STRING, NULL, false, false,
     "manager account id, when acting through one"},
    {"user_list_id", BF_PARAM_STRING, NULL, true, false,
     "id of the CRM-based (Customer Match) user list"},
    {"api_version", BF_PARAM_STRING, "v21", false, false, "Google Ads API version in the path"},
    {"consent_ad_user_data", BF_PARAM_STRING, NULL, false, false, "GRANTED | DENIED (EEA users)"},
    {"consent_ad_personalization", BF_PARAM_STRING, NULL, false, false,
     "GRANTED | DENIED (EEA users)"},
    {"wait_for_job", BF_PARAM_DURATION, "60s", false, false,
     "how long a push polls its job's status"},
    {"poll_interval", BF_PARAM_DURATION, "2s", false, false, "pause between two polls"},
    {NULL, 0, NULL, false, false, NULL},
};

struct gads_destination {
  struct bf_destination base;
  struct bf_http *http;
  char *version;   /* /v21 */
  char *api;       /* /v21/customers/<cid> */
  char *user_list; /* customers/<cid>/userLists/<id> */
  char *consent;   /* ,"consent":{...} or "" */
  long long wait_ms, poll_ms;
  int col[N_KEYS]; /* per batch: value index of each key, -1 absent */
  struct bf_buf body;
  bool warned_constants;
};

static bool digits_only(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return false;
  return true;
}

static void gads_close(struct bf_destination *d_) {
  struct gads_destination *d = (struct gads_destination *)d_;
  if (!d) return;
  bf_http_free(d->http);
  free(d->version);
  free(d->api);
  free(d->user_list);
  free(d->consent);
  bf_buf_release(&d->body);
  free(d);
}

/* Google error answer: {"error":{"code","message","status","details":[...]}}. */
void bf_gcm_google_error(const struct bf_http_response *r, char *msg, size_t cap, char *status,
                         size_t status_cap) {
  msg[0] = status[0] = '\0';
  json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
  json_t *e = json_object_get(root, "error");
  if (json_is_object(e)) {
    const char *m = json_string_value(json_object_get(e, "message"));
    const char *s = json_string_value(json_object_get(e, "status"));
    if (m) snprintf(msg, cap, "%s", m);
    if (s) snprintf(status, status_cap, "%s", s);
    /* The first GoogleAdsFailure error says more than the generic message. */
    json_t *details = json_object_get(e, "details");
    size_t i;
    json_t *det;
    json_array_foreach(details, i, det) {
      json_t *errs = json_object_get(det, "errors");
      json_t *first = json_array_get(errs, 0);
      const char *fm = json_string_value(json_object_get(first, "message"));
      if (fm) {
        snprintf(msg, cap, "%s", fm);
        break;
      }
    }
  }
  json_decref(root);
}

bool bf_gcm_retryable(const struct bf_http_response *r, void *arg) {
  if (bf_http_default_retryable(r, arg)) return true;
  if (r->status != 409 && r->status != 400) return false;
  char msg[8], status[48];
  bf_gcm_google_error(r, msg, sizeof msg, status, sizeof status);
  /* CONCURRENT_MODIFICATION (another job on the list) comes back ABORTED. */
  return !strcmp(status, "ABORTED") || !strcmp(status, "RESOURCE_EXHAUSTED") ||
         !strcmp(status, "UNAVAILABLE");
}

static int gads_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                     struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  struct gads_destination *d = bf_xcalloc(1, sizeof *d);
  char *what = bf_xasprintf("destination '%s' (google_customer_match)", dc->name);
  char *name = bf_xasprintf("google_customer_match:%s", dc->name);
  int rc = 0;
  const char *ids[] = {"customer_id", "login_customer_id", "user_list_id"};
  for (size_t i = 0; i < 3; i++) {
    const char *v = bf_params_str(p, gads_params, ids[i]);
    if (v && !digits_only(v)) {
      const struct bf_node *n = bf_node_get(p, ids[i]);
      rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: %s must be digits only (no dashes)",
                        n->loc.file, n->loc.line, n->loc.col, what, ids[i]);
      goto out;
    }
  }
  const char *consent_keys[] = {"consent_ad_user_data", "consent_ad_personalization"};
  const char *consent[2];
  for (size_t i = 0; i < 2; i++) {
    consent[i] = bf_params_str(p, gads_params, consent_keys[i]);
    if (consent[i] && strcmp(consent[i], "GRANTED") && strcmp(consent[i], "DENIED")) {
      const struct bf_node *n = bf_node_get(p, consent_keys[i]);
      rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: %s must be GRANTED or DENIED", n->loc.file,
                        n->loc.line, n->loc.col, what, consent_keys[i]);
      goto out;
    }
  }
  struct bf_http_options o;
  /* Google throttles per developer token with RESOURCE_EXHAUSTED; a few
   * job calls a second is far below it. */
  bf_http_options_defaults(&o, name, "https://googleads.googleapis.com", 5, 5, 1);
  o.retryable = bf_gcm_retryable;
  if ((rc = bf_http_options_from_params(&o, p, gads_params, what, err))) goto out;
  if (!(d->http = bf_http_new(&o, err))) {
    rc = err->code ? err->code : BF_E_DESTINATION;
    goto out;
  }
  char *h = bf_xasprintf("Authorization: Bearer %s", bf_params_str(p, gads_params, "access_token"));
  bf_http_add_header(d->http, h, true);
  sodium_memzero(h, strlen(h));
  free(h);
  h = bf_xasprintf("developer-token: %s", bf_params_str(p, gads_params, "developer_token"));
  bf_http_add_header(d->http, h, true);
  sodium_memzero(h, strlen(h));
  free(h);
  const char *login = bf_params_str(p, gads_params, "login_customer_id");
  if (login) {
    h = bf_xasprintf("login-customer-id: %s", login);
    bf_http_add_header(d->http, h, false);
    free(h);
  }
  const char *cid = bf_params_str(p, gads_params, "customer_id");
  d->version = bf_xasprintf("/%s", bf_params_str(p, gads_params, "api_version"));
  d->api = bf_xasprintf("%s/customers/%s", d->version, cid);
  d->user_list =
      bf_xasprintf("customers/%s/userLists/%s", cid, bf_params_str(p, gads_params, "user_list_id"));
  if (consent[0] || consent[1]) {
    d->consent = bf_xasprintf(",\"consent\":{%s%s%s%s%s%s%s}",
                              consent[0] ? "\"adUserData\":\"" : "", consent[0] ? consent[0] : "",
                              consent[0] ? "\"" : "", consent[0] && consent[1] ? "," : "",
                              consent[1] ? "\"adPersonalization\":\"" : "",
                              consent[1] ? consent[1] : "", consent[1] ? "\"" : "");
  } else {
    d->consent = bf_xstrdup("");
  }
  d->wait_ms = bf_params_duration_ms(p, gads_params, "wait_for_job");
  d->poll_ms = bf_params_duration_ms(p, gads_params, "poll_interval");
  *out = &d->base;
out:
  free(what);
  free(name);
  if (rc) gads_close(&d->base);
  return rc;
}

/* Turns a non-2xx answer into a destination error, or returns 0 when the
 * answer is a refusal of the data (the caller rejects the records). */
static int unavailable(struct gads_destination *d, struct bf_http_response *r, const char *step,
                       struct bf_error *err) {
  char msg[240], status[48];
  bf_gcm_google_error(r, msg, sizeof msg, status, sizeof status);
  bf_http_scrub(d->http, msg);
  const char *hint;
  if (r->status == 401 || !strcmp(status, "UNAUTHENTICATED"))
    hint = ": the access token is invalid or expired";
  else if (r->status == 403 || !strcmp(status, "PERMISSION_DENIED"))
    hint = ": the developer token or account has no access to this customer";
  else if (r->status == 404 || !strcmp(status, "NOT_FOUND"))
    hint = ": no such customer or user list";
  else if (bf_http_retryable(d->http, r) || r->status == 0)
    hint = ": still failing after retries";
  else if (r->status >= 400 && r->status < 500 && strcmp(step, "addOperations") == 0)
    return 0;
  else
    hint = "";
  return bf_error_set(err, BF_E_DESTINATION,
                      "destination '%s' (google_customer_match %s): %s: %s%s%s%s", d->base.name,
                      bf_http_base_url_shown(d->http), step, r->error[0] ? r->error : "failed",
                      msg[0] ? ": " : "", msg, hint);
}

/* POSTs body to path; on 2xx returns the parsed JSON in *out. */
static int call(struct gads_destination *d, const char *step, const char *path, const char *body,
                size_t len, json_t **out, struct bf_http_response *keep, struct bf_error *err) {
  struct bf_http_request req = {.method = "POST", .path = path, .body = body, .body_len = len};
  struct bf_http_response resp;
  int rc = bf_http_perform_one(d->http, &req, &resp, err);
  if (rc) return rc;
  if (bf_http_ok(&resp)) {
    *out = json_loadb(resp.body.data ? resp.body.data : "{}", resp.body.len ? resp.body.len : 2, 0,
                      NULL);
    if (!*out)
      rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s': %s: malformed JSON answer",
                        d->base.name, step);
  } else if (!(rc = unavailable(d, &resp, step, err)) && keep) {
    *keep = resp; /* the caller reads the refusal */
    return 0;
  } else if (!rc) {
    rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s': %s: %s", d->base.name, step,
                      resp.error);
  }
  bf_http_response_release(&resp);
  return rc;
}

static int gads_check(struct bf_destination *d_, struct bf_error *err) {
  struct gads_destination *d = (struct gads_destination *)d_;
  struct bf_buf q = {0};
  bf_buf_printf(&q,
                "{\"query\":\"SELECT user_list.id, user_list.name FROM user_list WHERE "
                "user_list.resource_name = '%s'\"}",
                d->user_list);
  char *path = bf_xasprintf("%s/googleAds:search", d->api);
  json_t *res = NULL;
  int rc = call(d, "search", path, q.data, q.len, &res, NULL, err);
  if (!rc && json_array_size(json_object_get(res, "results")) != 1)
    rc = bf_error_set(err, BF_E_DESTINATION,
                      "destination '%s' (google_customer_match): user list %s not found",
                      d->base.name, d->user_list);
  json_decref(res);
  free(path);
  bf_buf_release(&q);
  return rc;
}

/* ---- operations ------------------------------------------------------- */

int bf_gcm_resolve_keys(const struct bf_batch *batch, bool adds, int col[BF_GCM_N_KEYS],
                        struct bf_error *err) {
  const struct bf_mapping *m = batch->mapping;
  for (int k = 0; k < N_KEYS; k++) col[k] = -1;
  size_t n = m->n_match + (adds ? m->n_fields : 0);
  for (size_t i = 0; i < n; i++) {
    const char *name = i < m->n_match ? m->match_names[i] : m->field_names[i - m->n_match];
    int k = 0;
    while (k < N_KEYS && strcmp(key_names[k], name)) k++;
    if (k == N_KEYS)
      return bf_error_set(
          err, BF_E_CONFIG,
          "sync '%s': '%s' is not a Customer Match key (known: email, phone, first_name, "
          "last_name, country_code, postal_code, crm_id, mobile_id)",
          batch->sync_name, name);
    if (col[k] != -1)
      return bf_error_set(err, BF_E_CONFIG, "sync '%s': '%s' is mapped twice", batch->sync_name,
                          name);
    col[k] = (int)i;
  }
  return 0;
}

/* Appends {"create"|"remove":{"userIdentifiers":[...]}} for rec, or
 * returns a malloc'd rejection reason (and appends nothing). */
char *bf_gcm_write_operation(const int col[BF_GCM_N_KEYS], const struct bf_batch *batch,
                             const struct bf_record *rec, bool adds, struct bf_buf *b) {
  const struct bf_mapping *m = batch->mapping;
  static const bf_pii_fn fns[N_KEYS] = {
      bf_pii_google_email,   bf_pii_google_phone,       bf_pii_google_name, bf_pii_google_name,
      bf_pii_google_country, bf_pii_google_postal_code, bf_pii_external_id, bf_pii_external_id};
  static const bool hashed[N_KEYS] = {true, true, true, true, false, false, false, false};
  char val[N_KEYS][BF_PII_MAX];
  bool have[N_KEYS] = {false};
  json_t *match = rec->values ? NULL : json_loadb(rec->match_json, rec->match_json_len, 0, NULL);
  char *reason = NULL;
  for (int k = 0; k < N_KEYS && !reason; k++) {
    int c = col[k];
    if (c < 0) continue;
    char num[48];
    const char *s = NULL;
    size_t n = 0;
    bool present =
        rec->values ? bf_pii_value_text(&rec->values[c], num, sizeof num, &s, &n)
        : (size_t)c < m->n_match
            ? bf_ads_json_text(json_object_get(match, m->match_names[c]), num, sizeof num, &s, &n)
            : false;
    if (!present || bf_ads_blank(s, n)) continue;
    const char *why = NULL;
    int rc = hashed[k] ? bf_pii_normalize_hash(fns[k], s, n, val[k], &why)
                       : (fns[k](s, n, val[k], &why) < 0 ? -1 : 0);
    if (rc)
      reason = bf_xasprintf("%s: %s", key_names[k], why);
    else
      have[k] = true;
  }
  json_decref(match);
  if (reason) return reason;
  bool address = have[K_FIRST] && have[K_LAST] && have[K_COUNTRY] && have[K_POSTAL];
  if (!have[K_EMAIL] && !have[K_PHONE] && !address && !have[K_CRM] && !have[K_MOBILE])
    return bf_xstrdup("no identifier: needs email, phone, crm_id, mobile_id, or first_name + "
                      "last_name + country_code + postal_code");
  bf_buf_puts(b,
              adds ? "{\"create\":{\"userIdentifiers\":[" : "{\"remove\":{\"userIdentifiers\":[");
  bool first = true;
#define SEP() (first ? (void)(first = false) : bf_buf_putc(b, ','))
  if (have[K_EMAIL]) SEP(), bf_buf_printf(b, "{\"hashedEmail\":\"%s\"}", val[K_EMAIL]);
  if (have[K_PHONE]) SEP(), bf_buf_printf(b, "{\"hashedPhoneNumber\":\"%s\"}", val[K_PHONE]);
  if (address) {
    SEP();
    bf_buf_printf(
        b,
        "{\"addressInfo\":{\"hashedFirstName\":\"%s\",\"hashedLastName\":\"%s\",\"countryCode\":",
        val[K_FIRST], val[K_LAST]);
    bf_json_cstr(b, val[K_COUNTRY]);
    bf_buf_puts(b, ",\"postalCode\":");
    bf_json_cstr(b, val[K_POSTAL]);
    bf_buf_puts(b, "}}");
  }
  if (have[K_CRM])
    SEP(), bf_buf_puts(b, "{\"thirdPartyUserId\":"), bf_json_cstr(b, val[K_CRM]),
        bf_buf_putc(b, '}');
  if (have[K_MOBILE])
    SEP(), bf_buf_puts(b, "{\"mobileId\":"), bf_json_cstr(b, val[K_MOBILE]), bf_buf_putc(b, '}');
#undef SEP
  bf_buf_puts(b, "]}}");
  return NULL;
}

static void set_outcome(struct bf_outcome *o, enum bf_outcome_status st, char *reason) {
  free(o->reason);
  o->status = st;
  o->reason = reason;
}

/* partialFailureError.details[].errors[] -> reject the operations named by
 * location.fieldPathElements[0].index (an index into this call's ops). */
size_t bf_gcm_partial_failures(json_t *res, const size_t *rec_of_op, size_t n_ops,
                               struct bf_outcome *outcomes) {
  json_t *pf = json_object_get(res, "partialFailureError");
  if (!json_is_object(pf)) return 0;
  size_t n = 0, i, j;
  json_t *det, *e;
  json_array_foreach(json_object_get(pf, "details"), i, det) {
    json_array_foreach(json_object_get(det, "errors"), j, e) {
      json_t *path = json_object_get(json_object_get(e, "location"), "fieldPathElements");
      json_t *idx = json_object_get(json_array_get(path, 0), "index");
      if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
          (size_t)json_integer_value(idx) >= n_ops)
        continue;
      size_t r = rec_of_op[json_integer_value(idx)];
      if (outcomes[r].status != BF_OUT_OK) continue;
      const char *msg = json_string_value(json_object_get(e, "message"));
      const char *code = NULL;
      json_t *ec = json_object_get(e, "errorCode");
      const char *k;
      json_t *v;
      json_object_foreach(ec, k, v) code = json_string_value(v);
      set_outcome(&outcomes[r], BF_OUT_REJECT,
                  bf_xasprintf("Google: %s%s%s", code ? code : "", code && msg ? ": " : "",
                               msg ? msg : ""));
      n++;
    }
  }
  return n;
}

int bf_gcm_job_status(json_t *res, char *status, size_t status_cap, char *why, size_t cap) {
  json_t *j =
      json_object_get(json_array_get(json_object_get(res, "results"), 0), "offlineUserDataJob");
  const char *st = json_string_value(json_object_get(j, "status"));
  const char *reason = json_string_value(json_object_get(j, "failureReason"));
  snprintf(status, status_cap, "%s", st ? st : "");
  if (st && !strcmp(st, "FAILED")) {
    snprintf(why, cap, "Google: job FAILED: %s", reason ? reason : "UNSPECIFIED");
    return 0;
  }
  return st && !strcmp(st, "SUCCESS") ? 1 : 2;
}

/* Polls the job until SUCCESS/FAILED or the wait is over. Returns 1 for
 * SUCCESS or still running, 0 for FAILED (reason in why), <0 on error. */
static int wait_job(struct gads_destination *d, const char *job, char *why, size_t cap,
                    struct bf_error *err) {
  char *path = bf_xasprintf("%s/googleAds:search", d->api);
  struct bf_buf q = {0};
  bf_buf_printf(
      &q,
      "{\"query\":\"SELECT offline_user_data_job.status, offline_user_data_job.failure_reason "
      "FROM offline_user_data_job WHERE offline_user_data_job.resource_name = '%s'\"}",
      job);
  double deadline = bf_http_now_ms() + (double)d->wait_ms;
  int rc = 1;
  for (;;) {
    json_t *res = NULL;
    if ((rc = call(d, "search", path, q.data, q.len, &res, NULL, err))) break;
    char status[48];
    int st = bf_gcm_job_status(res, status, sizeof status, why, cap);
    json_decref(res);
    if (st != 2) {
      rc = st;
      break;
    }
    if (bf_http_now_ms() + (double)d->poll_ms > deadline) {
      bf_log_info("destination '%s': job %s still %s; Google will finish it", d->base.name, job,
                  status[0] ? status : "pending");
      rc = 1;
      break;
    }
    bf_http_sleep_ms(d->poll_ms);
  }
  free(path);
  bf_buf_release(&q);
  return rc;
}

static int send_batch(struct gads_destination *d, const struct bf_batch *batch,
                      struct bf_outcome *outcomes, bool adds, struct bf_error *err) {
  for (size_t i = 0; i < batch->n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_OK, NULL};
  if (!batch->n) return 0;
  int rc = bf_gcm_resolve_keys(batch, adds, d->col, err);
  if (rc) return rc;
  if (batch->mapping->n_constants && !d->warned_constants && (d->warned_constants = true))
    bf_log_warn("sync '%s': constants are not sent to a Customer Match list", batch->sync_name);
  size_t *rec_of_op = bf_xmalloc(batch->n * sizeof *rec_of_op);
  bool *sent = bf_xcalloc(batch->n, sizeof *sent);
  char *job = NULL, *ops_path = NULL;
  json_t *res = NULL;
  char create[512];
  int n =
      snprintf(create, sizeof create,
               "{\"job\":{\"type\":\"CUSTOMER_MATCH_USER_LIST\",\"customerMatchUserListMetadata\":"
               "{\"userList\":\"%s\"%s}}}",
               d->user_list, d->consent);
  char *path = bf_xasprintf("%s/offlineUserDataJobs:create", d->api);
  bool any = false;
  size_t next = 0;
  while (next < batch->n) {
    /* One addOperations call: up to 100,000 operations. */
    bf_buf_reset(&d->body);
    bf_buf_puts(&d->body, "{\"enablePartialFailure\":true,\"operations\":[");
    size_t n_ops = 0;
    for (; next < batch->n && n_ops < GADS_MAX_OPS_PER_CALL; next++) {
      size_t mark = d->body.len;
      if (n_ops) bf_buf_putc(&d->body, ',');
      char *reason = bf_gcm_write_operation(d->col, batch, &batch->records[next], adds, &d->body);
      if (reason) {
        d->body.len = mark;
        set_outcome(&outcomes[next], BF_OUT_REJECT, reason);
        continue;
      }
      rec_of_op[n_ops++] = next;
    }
    bf_buf_puts(&d->body, "]}");
    if (!n_ops) continue;
    if (!job) {
      if ((rc = call(d, "create job", path, create, (size_t)n, &res, NULL, err))) goto out;
      const char *rn = json_string_value(json_object_get(res, "resourceName"));
      if (!rn) {
        rc = bf_error_set(err, BF_E_DESTINATION,
                          "destination '%s': create job: no resourceName in the answer",
                          d->base.name);
        goto out;
      }
      job = bf_xstrdup(rn);
      ops_path = bf_xasprintf("%s/%s:addOperations", d->version, job);
      json_decref(res);
      res = NULL;
    }
    struct bf_http_response refused = {0};
    if ((rc = call(d, "addOperations", ops_path, d->body.data, d->body.len, &res, &refused, err)))
      goto out;
    if (!res) {
      /* The whole call was refused (400 without partial failure). */
      char msg[240], status[48];
      bf_gcm_google_error(&refused, msg, sizeof msg, status, sizeof status);
      bf_http_scrub(d->http, msg);
      for (size_t i = 0; i < n_ops; i++)
        set_outcome(&outcomes[rec_of_op[i]], BF_OUT_REJECT,
                    bf_xasprintf("Google: HTTP %ld %s: %s", refused.status, status, msg));
      bf_http_response_release(&refused);
      continue;
    }
    bf_gcm_partial_failures(res, rec_of_op, n_ops, outcomes);
    for (size_t i = 0; i < n_ops; i++)
      if (outcomes[rec_of_op[i]].status == BF_OUT_OK) sent[rec_of_op[i]] = any = true;
    json_decref(res);
    res = NULL;
  }
  if (job && any) {
    char *run_path = bf_xasprintf("%s/%s:run", d->version, job);
    rc = call(d, "run job", run_path, "{}", 2, &res, NULL, err);
    free(run_path);
    if (rc) goto out;
    json_decref(res);
    res = NULL;
    char why[300] = "";
    int w = wait_job(d, job, why, sizeof why, err);
    if (w < 0) {
      rc = w;
      goto out;
    }
    if (w == 0) {
      bf_log_warn("destination '%s': %s; its records will be sent again", d->base.name, why);
      for (size_t i = 0; i < batch->n; i++)
        if (sent[i]) set_outcome(&outcomes[i], BF_OUT_RETRY, bf_xstrdup(why));
    }
  } else if (job) {
    bf_log_debug("destination '%s': job %s has no valid operation; not run", d->base.name, job);
  }
out:
  json_decref(res);
  free(path);
  free(job);
  free(ops_path);
  free(rec_of_op);
  free(sent);
  return rc;
}

static int gads_push(struct bf_destination *d, const struct bf_batch *batch,
                     struct bf_outcome *outcomes, struct bf_error *err) {
  return send_batch((struct gads_destination *)d, batch, outcomes, true, err);
}

static int gads_remove(struct bf_destination *d, const struct bf_batch *batch,
                       struct bf_outcome *outcomes, struct bf_error *err) {
  return send_batch((struct gads_destination *)d, batch, outcomes, false, err);
}

const struct bf_destination_type bf_destination_google_customer_match = {
    .name = "google_customer_match",
    .params = gads_params,
    .max_batch = GADS_MAX_BATCH,
    .default_batch = 10000,
    .needs_identifier_for_delete = true,
    .open = gads_open,
    .check = gads_check,
    .push = gads_push,
    .remove = gads_remove,
    .close = gads_close,
};

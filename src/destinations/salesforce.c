/* salesforce: Bulk API 2.0 ingest jobs.
 *
 * A push is one ingest job (plus one per round of duplicate external ids,
 * which Salesforce refuses inside one job): create the job (upsert by
 * externalIdFieldName = the sync's single match key), PUT the CSV once,
 * PATCH state UploadComplete, poll the job with growing waits, then read
 * successfulResults (ok), failedResults (reject with sf__Error) and
 * unprocessedrecords (retry). Rows come back in any order; they are matched
 * to records by the external id column, which is unique within a job.
 *
 * Values: NULL is "#N/A" (Bulk API's way to blank a field; an empty cell
 * would leave the old value), booleans true/false, numbers in decimal,
 * timestamps ISO 8601; CSV fields are quoted when they hold a comma, quote,
 * CR or LF, or leading/trailing spaces.
 *
 * Mirror deletes: Bulk API deletes by record Id only, so the Ids are found
 * first with SOQL (SELECT Id, <ext> FROM <object> WHERE <ext> IN (...)),
 * then a delete job runs; a record Salesforce does not have counts as
 * deleted. Auth: OAuth access token + instance URL from config. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util/log.h"
#include "util/stop.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

#define SOQL_CHUNK 200 /* ids per query: keeps the URL well under 16 KB */

struct sf_destination {
  struct bf_destination base;
  struct bf_http *http;
  char *api; /* "/services/data/v59.0" */
  long long poll_ms, poll_max_ms, job_timeout_ms;
  struct bf_buf tmp, text;
  bool warned_usage;
};

static const struct bf_param_spec sf_params[] = {
    BF_HTTP_PARAMS(NULL),
    {"instance_url", BF_PARAM_STRING, NULL, false, false,
     "https://<your-domain>.my.salesforce.com (base_url overrides it)"},
    {"access_token", BF_PARAM_STRING, NULL, true, true, "OAuth 2.0 access token"},
    {"api_version", BF_PARAM_STRING, "59.0", false, false, "REST API version, e.g. 59.0"},
    {"poll_interval", BF_PARAM_DURATION, "1s", false, false, "first wait between job status polls"},
    {"poll_max_interval", BF_PARAM_DURATION, "10s", false, false, "longest wait between polls"},
    {"job_timeout", BF_PARAM_DURATION, "30m", false, false,
     "give up waiting for a job (its records are sent again next run)"},
    {NULL, 0, NULL, false, false, NULL},
};

static void set_outcome(struct bf_outcome *o, enum bf_outcome_status st, const char *reason) {
  free(o->reason);
  o->status = st;
  o->reason = reason ? bf_xstrdup(reason) : NULL;
}

static bool valid_api_name(const char *s) {
  if (!s || !*s || strlen(s) > 120) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return false;
  return true;
}

/* ---- CSV ----------------------------------------------------------------- */

static void csv_field(struct bf_buf *b, const char *s, size_t n) {
  bool quote = n > 0 && (s[0] == ' ' || s[n - 1] == ' ');
  for (size_t i = 0; i < n && !quote; i++)
    if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r') quote = true;
  if (!quote) {
    bf_buf_append(b, s, n);
    return;
  }
  bf_buf_putc(b, '"');
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"') bf_buf_putc(b, '"');
    bf_buf_putc(b, s[i]);
  }
  bf_buf_putc(b, '"');
}

static void csv_value(struct sf_destination *d, struct bf_buf *b, const struct bf_value *v) {
  if (v->type == BF_NULL) {
    bf_buf_puts(b, "#N/A");
    return;
  }
  bf_buf_reset(&d->text);
  bf_http_value_text(&d->text, v);
  csv_field(b, d->text.data ? d->text.data : "", d->text.len);
}

/* A parsed CSV document: fields unescaped into one buffer. */
struct csv {
  char *data;
  size_t n_rows, n_cols_max;
  size_t *row_start; /* index into fields of each row's first field; [n_rows] = total */
  char **fields;     /* NUL-terminated, point into data */
  size_t n_fields;
};

static void csv_free(struct csv *c) {
  free(c->data);
  free(c->row_start);
  free(c->fields);
  memset(c, 0, sizeof *c);
}

static void csv_parse(struct csv *c, const char *s, size_t n) {
  memset(c, 0, sizeof *c);
  c->data = bf_xmalloc(n + 1);
  size_t cap_f = 64, cap_r = 16;
  c->fields = bf_xmalloc(cap_f * sizeof *c->fields);
  c->row_start = bf_xmalloc(cap_r * sizeof *c->row_start);
  size_t out = 0, i = 0;
  while (i < n) {
    if (c->n_rows + 2 > cap_r)
      c->row_start = bf_xrealloc(c->row_start, (cap_r *= 2) * sizeof *c->row_start);
    c->row_start[c->n_rows] = c->n_fields;
    for (;;) { /* one field */
      if (c->n_fields + 1 > cap_f)
        c->fields = bf_xrealloc(c->fields, (cap_f *= 2) * sizeof *c->fields);
      c->fields[c->n_fields++] = c->data + out;
      if (i < n && s[i] == '"') {
        i++;
        while (i < n) {
          if (s[i] == '"') {
            if (i + 1 < n && s[i + 1] == '"') {
              c->data[out++] = '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          c->data[out++] = s[i++];
        }
      }
      while (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r') c->data[out++] = s[i++];
      c->data[out++] = '\0';
      if (i < n && s[i] == ',') {
        i++;
        continue;
      }
      if (i < n && s[i] == '\r') i++;
      if (i < n && s[i] == '\n') i++;
      break;
    }
    c->n_rows++;
  }
  c->row_start[c->n_rows] = c->n_fields;
  c->data[out] = '\0';
}

static size_t csv_cols(const struct csv *c, size_t row) {
  return c->row_start[row + 1] - c->row_start[row];
}
static const char *csv_get(const struct csv *c, size_t row, size_t col) {
  return col < csv_cols(c, row) ? c->fields[c->row_start[row] + col] : NULL;
}
static size_t csv_col(const struct csv *c, const char *name) {
  for (size_t k = 0; c->n_rows && k < csv_cols(c, 0); k++)
    if (!strcmp(csv_get(c, 0, k), name)) return k;
  return SIZE_MAX;
}

/* ---- open / check / close -------------------------------------------------- */

static int sf_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                   struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    const struct bf_sync_config *s = &cfg->syncs[i];
    if (strcmp(s->destination, dc->name) != 0) continue;
    if (s->match.n != 1 || !valid_api_name(s->match.items[0].key))
      return bf_error_set(
          err, BF_E_CONFIG,
          "%s:%d:%d: sync '%s': salesforce needs exactly one match key, the "
          "External ID field records are upserted by (e.g. match: {Warehouse_Id__c: id})",
          s->loc.file, s->loc.line, s->loc.col, s->name);
    if (!s->object || !valid_api_name(s->object))
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: sync '%s': salesforce needs object: the sObject API name "
                          "(Contact, Account, My_Object__c)",
                          s->loc.file, s->loc.line, s->loc.col, s->name);
    for (size_t k = 0; k < s->fields.n; k++)
      if (!valid_api_name(s->fields.items[k].key))
        return bf_error_set(err, BF_E_CONFIG,
                            "%s:%d:%d: sync '%s': '%s' is not a Salesforce field API name",
                            s->fields.items[k].loc.file, s->fields.items[k].loc.line,
                            s->fields.items[k].loc.col, s->name, s->fields.items[k].key);
  }
  char *what = bf_xasprintf("destination '%s' (salesforce)", dc->name);
  char *name = bf_xasprintf("salesforce:%s", dc->name);
  const char *version = bf_params_str(p, sf_params, "api_version");
  const struct bf_node *vn = bf_node_get(p, "api_version");
  int rc = 0;
  struct sf_destination *d = NULL;
  struct bf_http_options o;
  /* No per-second limit is documented (a daily allocation is); bounded
   * concurrency is what matters, and Sforce-Limit-Info is watched. */
  bf_http_options_defaults(&o, name, bf_params_str(p, sf_params, "instance_url"), 0, 1, 4);
  for (const char *c = version; *c; c++)
    if (!isdigit((unsigned char)*c) && *c != '.') {
      rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: api_version must look like 59.0",
                        vn->loc.file, vn->loc.line, vn->loc.col, what);
      goto out;
    }
  if ((rc = bf_http_options_from_params(&o, p, sf_params, what, err))) goto out;
  d = bf_xcalloc(1, sizeof *d);
  if (!(d->http = bf_http_new(&o, err))) {
    rc = err ? err->code : BF_E_DESTINATION;
    goto out;
  }
  char *auth =
      bf_xasprintf("Authorization: Bearer %s", bf_params_str(p, sf_params, "access_token"));
  bf_http_add_header(d->http, auth, true);
  free(auth);
  d->api = bf_xasprintf("/services/data/v%s", version);
  d->poll_ms = bf_params_duration_ms(p, sf_params, "poll_interval");
  d->poll_max_ms = bf_params_duration_ms(p, sf_params, "poll_max_interval");
  d->job_timeout_ms = bf_params_duration_ms(p, sf_params, "job_timeout");
  if (d->poll_ms < 1) d->poll_ms = 1;
  *out = &d->base;
  d = NULL;
out:
  if (d) {
    bf_http_free(d->http);
    free(d);
  }
  free(what);
  free(name);
  return rc;
}

static void sf_close(struct bf_destination *d_) {
  struct sf_destination *d = (struct sf_destination *)d_;
  if (!d) return;
  bf_http_free(d->http);
  bf_buf_release(&d->tmp);
  bf_buf_release(&d->text);
  free(d->api);
  free(d);
}

/* Salesforce errors: [{"errorCode":"INVALID_SESSION_ID","message":"..."}] */
static char *sf_reason(struct bf_http_response *r) {
  json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
  json_t *e = json_is_array(root) ? json_array_get(root, 0) : root;
  const char *code = json_string_value(json_object_get(e, "errorCode"));
  const char *msg = json_string_value(json_object_get(e, "message"));
  char *out = msg ? bf_xasprintf("Salesforce %s %s: %s", r->error, code ? code : "", msg)
                  : bf_xasprintf("Salesforce %s%s%.*s", r->error, r->body.len ? ": " : "",
                                 (int)(r->body.len < 200 ? r->body.len : 200),
                                 r->body.data ? r->body.data : "");
  json_decref(root);
  return out;
}

static int unavailable(struct sf_destination *d, struct bf_http_response *r, struct bf_error *err) {
  char *why = sf_reason(r);
  bf_http_scrub(d->http, why);
  const char *hint = r->status == 401 ? " (the access token is invalid or expired)"
                     : r->status == 403
                         ? " (the user lacks permission, or the org's API limit is used up)"
                         : "";
  int rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s' (%s): %s%s", d->base.name,
                        bf_http_base_url_shown(d->http), why, hint);
  free(why);
  return rc;
}

static bool fatal_status(long status) {
  return status == 401 || status == 403 || status == 404 || (status >= 300 && status < 400);
}

static void watch_usage(struct sf_destination *d, const struct bf_http_response *r) {
  const char *v = bf_http_response_header(r, "sforce-limit-info");
  const char *u = v ? strstr(v, "api-usage=") : NULL;
  if (!u || d->warned_usage) return;
  long used = 0, max = 0;
  if (sscanf(u + 10, "%ld/%ld", &used, &max) == 2 && max > 0 && used * 10 >= max * 9) {
    bf_log_warn("destination '%s': %ld of the org's %ld daily API requests are used", d->base.name,
                used, max);
    d->warned_usage = true;
  }
}

/* One request; rc != 0 only when the destination is unavailable. */
static int call(struct sf_destination *d, const char *method, const char *path, const char *ctype,
                const char *body, size_t len, struct bf_http_response *resp, struct bf_error *err) {
  struct bf_http_request req = {
      .method = method, .path = path, .content_type = ctype, .body = body, .body_len = len};
  int rc = bf_http_perform_one(d->http, &req, resp, err);
  if (rc) return rc;
  watch_usage(d, resp);
  if (fatal_status(resp->status) || (!bf_http_ok(resp) && bf_http_retryable(d->http, resp)))
    return unavailable(d, resp, err);
  return 0;
}

static int sf_check(struct bf_destination *d_, struct bf_error *err) {
  struct sf_destination *d = (struct sf_destination *)d_;
  char *path = bf_xasprintf("%s/limits", d->api);
  struct bf_http_response resp;
  struct bf_http_request req = {.method = "GET", .path = path, .no_retry = true};
  int rc = bf_http_perform_one(d->http, &req, &resp, err);
  if (rc == 0 && !bf_http_ok(&resp)) rc = unavailable(d, &resp, err);
  bf_http_response_release(&resp);
  free(path);
  return rc;
}

/* The object's writable fields (sObject Describe), for the studio. */
static int sf_list_fields(struct bf_destination *d_, const char *object, struct bf_buf *out,
                          struct bf_error *err) {
  struct sf_destination *d = (struct sf_destination *)d_;
  if (!object) object = "Contact";
  if (!valid_api_name(object))
    return bf_error_set(err, BF_E_USAGE, "'%.60s' is not a Salesforce object name", object);
  char *path = bf_xasprintf("%s/sobjects/%s/describe/", d->api, object);
  struct bf_http_response resp;
  int rc = call(d, "GET", path, NULL, NULL, 0, &resp, err);
  free(path);
  if (rc == 0 && !bf_http_ok(&resp)) rc = unavailable(d, &resp, err);
  if (rc == 0) {
    json_t *root = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    size_t i, n = 0;
    json_t *f;
    bf_buf_putc(out, '[');
    json_array_foreach(json_object_get(root, "fields"), i, f) {
      const char *name = json_string_value(json_object_get(f, "name"));
      if (!name || !(json_is_true(json_object_get(f, "createable")) ||
                     json_is_true(json_object_get(f, "updateable"))))
        continue;
      const char *type = json_string_value(json_object_get(f, "type"));
      bf_buf_puts(out, n++ ? ",{\"name\":" : "{\"name\":");
      bf_json_cstr(out, name);
      bf_buf_puts(out, ",\"type\":");
      bf_json_cstr(out, type ? type : "unknown");
      bf_buf_printf(out, ",\"external_id\":%s}",
                    json_is_true(json_object_get(f, "externalId")) ? "true" : "false");
    }
    bf_buf_putc(out, ']');
    json_decref(root);
  }
  bf_http_response_release(&resp);
  return rc;
}

/* ---- one ingest job --------------------------------------------------------- */

struct job_records {
  const size_t *recs; /* batch positions, sorted by their keys */
  size_t n;
  char **keys; /* per batch position: the value matched in result rows */
};

/* Result rows -> outcomes. key_col names the column holding keys. */
static void apply_results(struct sf_destination *d, const struct job_records *jr,
                          const char *csv_text, size_t csv_len, const char *key_col, int kind,
                          struct bf_outcome *outcomes) {
  struct csv c;
  csv_parse(&c, csv_text, csv_len);
  size_t kc = csv_col(&c, key_col), ec = csv_col(&c, "sf__Error");
  for (size_t row = 1; kc != SIZE_MAX && row < c.n_rows; row++) {
    const char *key = csv_get(&c, row, kc);
    if (!key) continue;
    /* jr->recs is sorted by key (assign_rounds) and keys are unique in a job. */
    size_t lo = 0, hi = jr->n;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (strcmp(jr->keys[jr->recs[mid]], key) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo == jr->n || strcmp(jr->keys[jr->recs[lo]], key) != 0) continue; /* not ours */
    size_t i = jr->recs[lo];
    if (kind == 0) {
      set_outcome(&outcomes[i], BF_OUT_OK, NULL);
    } else if (kind == 1) {
      const char *e = ec != SIZE_MAX ? csv_get(&c, row, ec) : NULL;
      char *why = bf_xasprintf("Salesforce: %s", e && *e ? e : "failed");
      set_outcome(&outcomes[i], BF_OUT_REJECT, why);
      free(why);
    } else {
      set_outcome(&outcomes[i], BF_OUT_RETRY,
                  "Salesforce did not process this record; will resend");
    }
  }
  (void)d;
  csv_free(&c);
}

static int get_results(struct sf_destination *d, const char *job, const struct job_records *jr,
                       const char *key_col, bool deleting, struct bf_outcome *outcomes,
                       struct bf_error *err) {
  static const char *const kinds[] = {"successfulResults", "failedResults", "unprocessedrecords"};
  struct bf_http_request reqs[3];
  struct bf_http_response resps[3];
  char *paths[3];
  for (int k = 0; k < 3; k++) {
    paths[k] = bf_xasprintf("%s/jobs/ingest/%s/%s/", d->api, job, kinds[k]);
    reqs[k] = (struct bf_http_request){.method = "GET", .path = paths[k]};
  }
  int rc = bf_http_perform(d->http, reqs, resps, 3, NULL, NULL, err);
  for (int k = 0; k < 3 && rc == 0; k++) {
    struct bf_http_response *r = &resps[k];
    if (!bf_http_ok(r)) {
      rc = unavailable(d, r, err);
      break;
    }
    /* Deletes: a failure saying the record is gone is a success. */
    int kind = k;
    apply_results(d, jr, r->body.data ? r->body.data : "", r->body.len, key_col, kind, outcomes);
    if (deleting && k == 1)
      for (size_t j = 0; j < jr->n; j++) {
        struct bf_outcome *o = &outcomes[jr->recs[j]];
        if (o->status == BF_OUT_REJECT && o->reason &&
            (strstr(o->reason, "ENTITY_IS_DELETED") ||
             strstr(o->reason, "INVALID_CROSS_REFERENCE_KEY")))
          set_outcome(o, BF_OUT_OK, NULL);
      }
  }
  bf_http_responses_release(resps, 3);
  for (int k = 0; k < 3; k++) free(paths[k]);
  return rc;
}

/* Runs one job over jr's records with csv as its data; fills outcomes. */
static int run_job(struct sf_destination *d, const char *object, const char *operation,
                   const char *ext_field, const struct bf_buf *csv, const struct job_records *jr,
                   const char *key_col, struct bf_outcome *outcomes, struct bf_error *err) {
  for (size_t k = 0; k < jr->n; k++)
    set_outcome(&outcomes[jr->recs[k]], BF_OUT_RETRY, "Salesforce did not report this record");
  struct bf_buf body = {0};
  bf_buf_puts(&body, "{\"object\":");
  bf_json_cstr(&body, object);
  bf_buf_puts(&body, ",\"operation\":");
  bf_json_cstr(&body, operation);
  if (ext_field) {
    bf_buf_puts(&body, ",\"externalIdFieldName\":");
    bf_json_cstr(&body, ext_field);
  }
  bf_buf_puts(&body,
              ",\"contentType\":\"CSV\",\"columnDelimiter\":\"COMMA\",\"lineEnding\":\"LF\"}");
  char *path = bf_xasprintf("%s/jobs/ingest", d->api);
  char *job = NULL, *job_path = NULL, *upload = NULL;
  struct bf_http_response r = {0};
  json_t *doc = NULL;
  int rc = call(d, "POST", path, "application/json", body.data, body.len, &r, err);
  if (rc) goto out;
  if (!bf_http_ok(&r)) { /* invalid object or field: every record fails alike */
    char *why = sf_reason(&r);
    bf_http_scrub(d->http, why);
    for (size_t k = 0; k < jr->n; k++) set_outcome(&outcomes[jr->recs[k]], BF_OUT_REJECT, why);
    free(why);
    goto out;
  }
  doc = json_loadb(r.body.data, r.body.len, 0, NULL);
  const char *id = json_string_value(json_object_get(doc, "id"));
  const char *content_url = json_string_value(json_object_get(doc, "contentUrl"));
  if (!id ||
      strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != strlen(id)) {
    rc =
        bf_error_set(err, BF_E_DESTINATION,
                     "destination '%s': Salesforce created a job without a valid id", d->base.name);
    goto out;
  }
  job = bf_xstrdup(id);
  job_path = bf_xasprintf("%s/jobs/ingest/%s", d->api, job);
  upload = content_url ? bf_xasprintf("%s%s", content_url[0] == '/' ? "" : "/", content_url)
                       : bf_xasprintf("%s/batches", job_path);
  json_decref(doc);
  doc = NULL;
  bf_http_response_release(&r);

  /* Upload once (a second PUT makes the job fail), then close. */
  rc = call(d, "PUT", upload, "text/csv", csv->data, csv->len, &r, err);
  if (rc) goto out;
  if (!bf_http_ok(&r)) {
    char *why = sf_reason(&r);
    bf_http_scrub(d->http, why);
    for (size_t k = 0; k < jr->n; k++) set_outcome(&outcomes[jr->recs[k]], BF_OUT_REJECT, why);
    free(why);
    bf_http_response_release(&r);
    call(d, "PATCH", job_path, "application/json", "{\"state\":\"Aborted\"}", 19, &r, NULL);
    goto out;
  }
  bf_http_response_release(&r);
  static const char close_body[] = "{\"state\":\"UploadComplete\"}";
  rc = call(d, "PATCH", job_path, "application/json", close_body, sizeof close_body - 1, &r, err);
  if (rc) goto out;
  if (!bf_http_ok(&r)) {
    char *why = sf_reason(&r);
    bf_http_scrub(d->http, why);
    for (size_t k = 0; k < jr->n; k++) set_outcome(&outcomes[jr->recs[k]], BF_OUT_RETRY, why);
    free(why);
    goto out;
  }
  bf_http_response_release(&r);

  /* Poll: 1s, 1.5s, 2.25s ... up to poll_max_interval. */
  double start = bf_http_now_ms();
  long long wait = d->poll_ms;
  const char *state = NULL;
  for (;;) {
    bf_http_sleep_ms(wait);
    rc = call(d, "GET", job_path, NULL, NULL, 0, &r, err);
    if (rc) goto out;
    json_decref(doc);
    doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
    state = json_string_value(json_object_get(doc, "state"));
    if (state &&
        (!strcmp(state, "JobComplete") || !strcmp(state, "Failed") || !strcmp(state, "Aborted")))
      break;
    bf_http_response_release(&r);
    if (bf_http_now_ms() - start > (double)d->job_timeout_ms || bf_stop_requested) {
      bf_log_warn("destination '%s': job %s still %s after %lld ms; its records will be sent again",
                  d->base.name, job, state ? state : "unknown",
                  (long long)(bf_http_now_ms() - start));
      goto out;
    }
    wait = wait * 3 / 2;
    if (wait > d->poll_max_ms) wait = d->poll_max_ms;
  }
  bf_http_response_release(&r);
  const char *job_error = json_string_value(json_object_get(doc, "errorMessage"));
  rc = get_results(d, job, jr, key_col, !strcmp(operation, "delete"), outcomes, err);
  if (rc == 0 && strcmp(state, "JobComplete") != 0) {
    /* A failed job may report nothing per record: give its reason. */
    char *why =
        bf_xasprintf("Salesforce job %s: %s", state, job_error ? job_error : "no reason given");
    for (size_t k = 0; k < jr->n; k++) {
      struct bf_outcome *o = &outcomes[jr->recs[k]];
      if (o->status == BF_OUT_RETRY && o->reason &&
          !strncmp(o->reason, "Salesforce did not report", 25))
        set_outcome(o, BF_OUT_REJECT, why);
    }
    free(why);
  }
out:
  bf_http_response_release(&r);
  json_decref(doc);
  bf_buf_release(&body);
  free(path);
  free(job);
  free(job_path);
  free(upload);
  return rc;
}

/* ---- ids and rounds ------------------------------------------------------ */

static bool record_key(struct sf_destination *d, const struct bf_batch *batch,
                       const struct bf_record *rec, struct bf_buf *out) {
  bf_buf_reset(out);
  if (rec->values) {
    if (rec->values[0].type == BF_NULL) return false;
    bf_http_value_text(out, &rec->values[0]);
    return out->len > 0;
  }
  json_t *m = json_loadb(rec->match_json, rec->match_json_len, 0, NULL);
  json_t *v = json_object_get(m, batch->mapping->match_names[0]);
  if (json_is_string(v))
    bf_buf_append(out, json_string_value(v), json_string_length(v));
  else if (json_is_integer(v))
    bf_buf_printf(out, "%lld", (long long)json_integer_value(v));
  else if (json_is_real(v)) {
    struct bf_value fv = {.type = BF_FLOAT, .u.f = json_real_value(v)};
    bf_http_value_text(out, &fv);
  } else if (json_is_boolean(v))
    bf_buf_puts(out, json_is_true(v) ? "true" : "false");
  json_decref(m);
  (void)d;
  return out->len > 0;
}

static char **const *sort_keys_ctx;
static int cmp_by_key(const void *a, const void *b) {
  char **keys = *sort_keys_ctx;
  int c = strcmp(keys[*(const size_t *)a], keys[*(const size_t *)b]);
  if (c) return c;
  return *(const size_t *)a < *(const size_t *)b ? -1 : *(const size_t *)a > *(const size_t *)b;
}

/* Orders recs by key and gives each its round: the k-th record with the
 * same key goes into round k (Salesforce refuses an external id twice in a
 * job). Returns the number of rounds. */
static size_t assign_rounds(size_t *recs, size_t n, char **keys, unsigned *round) {
  sort_keys_ctx = (char **const *)&keys;
  qsort(recs, n, sizeof *recs, cmp_by_key);
  size_t rounds = n ? 1 : 0;
  for (size_t k = 0; k < n; k++) {
    unsigned r = 0;
    if (k > 0 && !strcmp(keys[recs[k]], keys[recs[k - 1]])) r = round[recs[k - 1]] + 1;
    round[recs[k]] = r;
    if (r + 1 > rounds) rounds = r + 1;
  }
  return rounds;
}

static int sf_push_batch(struct bf_destination *d_, const struct bf_batch *batch,
                         struct bf_outcome *outcomes, struct bf_error *err) {
  struct sf_destination *d = (struct sf_destination *)d_;
  const struct bf_mapping *m = batch->mapping;
  if (m->n_match != 1 || !batch->object)
    return bf_error_set(err, BF_E_CONFIG, "sync '%s': salesforce needs object and one match key",
                        batch->sync_name);
  size_t n = batch->n;
  char **keys = bf_xcalloc(n ? n : 1, sizeof *keys);
  size_t *recs = bf_xmalloc((n ? n : 1) * sizeof *recs);
  unsigned *round = bf_xcalloc(n ? n : 1, sizeof *round);
  size_t n_recs = 0;
  for (size_t i = 0; i < n; i++) {
    if (record_key(d, batch, &batch->records[i], &d->text)) {
      keys[i] = bf_xstrndup(d->text.data, d->text.len);
      recs[n_recs++] = i;
    } else {
      char *why =
          bf_xasprintf("%s is empty: Salesforce cannot match the record", m->match_names[0]);
      set_outcome(&outcomes[i], BF_OUT_REJECT, why);
      free(why);
    }
  }
  size_t rounds = assign_rounds(recs, n_recs, keys, round);
  size_t *job_recs = bf_xmalloc((n_recs ? n_recs : 1) * sizeof *job_recs);
  struct bf_buf csv = {0};
  int rc = 0;
  const char *operation = "upsert";
  if (n_recs && batch->records[recs[0]].op == BF_OP_INSERT) operation = "insert";
  for (size_t r = 0; r < rounds && rc == 0; r++) {
    size_t k = 0;
    for (size_t j = 0; j < n_recs; j++)
      if (round[recs[j]] == r) job_recs[k++] = recs[j];
    bf_buf_reset(&csv);
    csv_field(&csv, m->match_names[0], strlen(m->match_names[0]));
    for (size_t f = 0; f < m->n_fields; f++) {
      bf_buf_putc(&csv, ',');
      csv_field(&csv, m->field_names[f], strlen(m->field_names[f]));
    }
    for (size_t f = 0; f < m->n_constants; f++) {
      bf_buf_putc(&csv, ',');
      csv_field(&csv, m->constant_names[f], strlen(m->constant_names[f]));
    }
    bf_buf_putc(&csv, '\n');
    for (size_t j = 0; j < k; j++) {
      const struct bf_record *rec = &batch->records[job_recs[j]];
      csv_field(&csv, keys[job_recs[j]], strlen(keys[job_recs[j]]));
      for (size_t f = 0; f < m->n_fields; f++) {
        bf_buf_putc(&csv, ',');
        bf_buf_reset(&d->tmp);
        struct bf_value v = bf_mapping_field_value(m, f, &rec->values[m->n_match + f], &d->tmp);
        csv_value(d, &csv, &v);
      }
      for (size_t f = 0; f < m->n_constants; f++) {
        bf_buf_putc(&csv, ',');
        csv_value(d, &csv, &m->constant_values[f]);
      }
      bf_buf_putc(&csv, '\n');
    }
    struct job_records jr = {job_recs, k, keys};
    /* mode insert creates only; upsert/update/mirror upsert by external id */
    rc = run_job(d, batch->object, operation,
                 !strcmp(operation, "insert") ? NULL : m->match_names[0], &csv, &jr,
                 m->match_names[0], outcomes, err);
  }
  bf_buf_release(&csv);
  for (size_t i = 0; i < n; i++) free(keys[i]);
  free(keys);
  free(recs);
  free(round);
  free(job_recs);
  return rc;
}

/* ---- deletes --------------------------------------------------------------- */

static void url_escape(struct bf_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      bf_buf_putc(b, (char)c);
    } else {
      bf_buf_putc(b, '%');
      bf_buf_putc(b, hex[c >> 4]);
      bf_buf_putc(b, hex[c & 15]);
    }
  }
}

/* SOQL string literal: backslash-escape quotes and backslashes. */
static void soql_literal(struct bf_buf *b, const char *s) {
  bf_buf_putc(b, '\'');
  for (; *s; s++) {
    if (*s == '\'' || *s == '\\') bf_buf_putc(b, '\\');
    if (*s == '\n') {
      bf_buf_puts(b, "\\n");
      continue;
    }
    bf_buf_putc(b, *s);
  }
  bf_buf_putc(b, '\'');
}

/* ids[i] := Salesforce Id of record i (NULL when Salesforce has none). */
static int find_ids(struct sf_destination *d, const struct bf_batch *batch, const size_t *recs,
                    size_t n, char **keys, char **ids, struct bf_error *err) {
  const char *ext = batch->mapping->match_names[0];
  int rc = 0;
  struct bf_buf q = {0}, url = {0};
  for (size_t start = 0; start < n && rc == 0; start += SOQL_CHUNK) {
    size_t end = start + SOQL_CHUNK < n ? start + SOQL_CHUNK : n;
    bf_buf_reset(&q);
    bf_buf_printf(&q, "SELECT Id, %s FROM %s WHERE %s IN (", ext, batch->object, ext);
    for (size_t k = start; k < end; k++) {
      if (k > start) bf_buf_putc(&q, ',');
      soql_literal(&q, keys[recs[k]]);
    }
    bf_buf_putc(&q, ')');
    bf_buf_reset(&url);
    bf_buf_printf(&url, "%s/query?q=", d->api);
    url_escape(&url, bf_buf_cstr(&q));
    char *next = bf_xstrdup(bf_buf_cstr(&url));
    while (next && rc == 0) {
      struct bf_http_response r = {0};
      rc = call(d, "GET", next, NULL, NULL, 0, &r, err);
      free(next);
      next = NULL;
      if (rc == 0 && !bf_http_ok(&r)) {
        char *why = sf_reason(&r);
        bf_http_scrub(d->http, why);
        rc = bf_error_set(err, BF_E_DESTINATION,
                          "destination '%s': cannot look up records to delete: %s", d->base.name,
                          why);
        free(why);
      }
      if (rc == 0) {
        json_t *doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(doc, "records"), i, row) {
          const char *id = json_string_value(json_object_get(row, "Id"));
          json_t *ev = json_object_get(row, ext);
          char num[64];
          const char *v = json_string_value(ev);
          if (!v && json_is_integer(ev))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(ev)), v = num;
          if (!v && json_is_real(ev)) bf_double_text(num, json_real_value(ev)), v = num;
          if (!id || !v) continue;
          for (size_t k = start; k < end; k++)
            if (!ids[recs[k]] && !strcmp(keys[recs[k]], v)) ids[recs[k]] = bf_xstrdup(id);
        }
        const char *nu = json_is_true(json_object_get(doc, "done"))
                             ? NULL
                             : json_string_value(json_object_get(doc, "nextRecordsUrl"));
        if (nu) next = bf_xstrdup(nu);
        json_decref(doc);
      }
      bf_http_response_release(&r);
    }
    free(next);
  }
  bf_buf_release(&q);
  bf_buf_release(&url);
  return rc;
}

static int sf_remove_batch(struct bf_destination *d_, const struct bf_batch *batch,
                           struct bf_outcome *outcomes, struct bf_error *err) {
  struct sf_destination *d = (struct sf_destination *)d_;
  if (batch->mapping->n_match != 1 || !batch->object)
    return bf_error_set(err, BF_E_CONFIG, "sync '%s': salesforce needs object and one match key",
                        batch->sync_name);
  size_t n = batch->n;
  char **keys = bf_xcalloc(n ? n : 1, sizeof *keys);
  char **ids = bf_xcalloc(n ? n : 1, sizeof *ids);
  size_t *recs = bf_xmalloc((n ? n : 1) * sizeof *recs);
  size_t n_recs = 0;
  for (size_t i = 0; i < n; i++) {
    set_outcome(&outcomes[i], BF_OUT_OK, NULL); /* no key / not found: nothing to delete */
    if (record_key(d, batch, &batch->records[i], &d->text)) {
      keys[i] = bf_xstrndup(d->text.data, d->text.len);
      recs[n_recs++] = i;
    }
  }
  int rc = find_ids(d, batch, recs, n_recs, keys, ids, err);
  /* One delete job over the distinct Ids found. */
  size_t *found = bf_xmalloc((n_recs ? n_recs : 1) * sizeof *found);
  unsigned *round = bf_xcalloc(n ? n : 1, sizeof *round);
  size_t n_found = 0;
  for (size_t k = 0; k < n_recs; k++)
    if (ids[recs[k]]) found[n_found++] = recs[k];
  size_t rounds = rc == 0 ? assign_rounds(found, n_found, ids, round) : 0;
  struct bf_buf csv = {0};
  size_t *job = bf_xmalloc((n_found ? n_found : 1) * sizeof *job);
  for (size_t r = 0; r < rounds && rc == 0; r++) {
    size_t k = 0;
    bf_buf_reset(&csv);
    bf_buf_puts(&csv, "Id\n");
    for (size_t j = 0; j < n_found; j++)
      if (round[found[j]] == r) {
        job[k++] = found[j];
        bf_buf_puts(&csv, ids[found[j]]);
        bf_buf_putc(&csv, '\n');
      }
    struct job_records jr = {job, k, ids};
    /* A later round repeats Ids of an earlier one: ENTITY_IS_DELETED, ok. */
    rc = run_job(d, batch->object, "delete", NULL, &csv, &jr, "Id", outcomes, err);
  }
  bf_buf_release(&csv);
  for (size_t i = 0; i < n; i++) {
    free(keys[i]);
    free(ids[i]);
  }
  free(keys);
  free(ids);
  free(recs);
  free(found);
  free(round);
  free(job);
  return rc;
}

const struct bf_destination_type bf_destination_salesforce = {
    .name = "salesforce",
    .params = sf_params,
    /* One ingest job per push; Salesforce splits it internally. */
    .max_batch = 100000,
    .default_batch = 10000,
    .needs_identifier_for_delete = true,
    .open = sf_open,
    .check = sf_check,
    .push = sf_push_batch,
    .remove = sf_remove_batch,
    .close = sf_close,
    .list_fields = sf_list_fields,
};

/* zendesk: Support users via create_or_update_many (100 per request) and
 * job-status polling.
 *
 * Each request queues a job; the jobs of a push are polled together with
 * growing waits until completed/failed. The job's results come in request
 * order (or carry "index"): Created/Updated -> ok, Failed -> reject with
 * Zendesk's error and details; a record the job never reported -> retry.
 *
 * Fields: name, email, phone, external_id, role, alias, details, notes,
 * locale, time_zone, verified, organization_id, signature and tags are user
 * attributes; any other field goes into user_fields (custom user fields,
 * by key). external_id is always sent as a string; booleans and numbers
 * keep their JSON type; timestamps are ISO 8601; NULL clears.
 *
 * Mirror deletes: by external_id with destroy_many?external_ids=...; when
 * the match key is email, each user is found with users/search first.
 * Auth: API token as Basic "{email}/token:{api_token}". */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "util/log.h"
#include "util/stop.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

#define ZD_MAX_USERS 100

struct zd_destination {
  struct bf_destination base;
  struct bf_http *http;
  long long poll_ms, poll_max_ms, job_timeout_ms;
  struct bf_buf tmp, text;
};

static const struct bf_param_spec zd_params[] = {
    BF_HTTP_PARAMS(NULL),
    {"subdomain", BF_PARAM_STRING, NULL, false, false,
     "your Zendesk subdomain (base_url overrides it)"},
    {"email", BF_PARAM_STRING, NULL, true, false, "agent email the API token belongs to"},
    {"api_token", BF_PARAM_STRING, NULL, true, true, "Zendesk API token"},
    {"poll_interval", BF_PARAM_DURATION, "500ms", false, false,
     "first wait between job status polls"},
    {"poll_max_interval", BF_PARAM_DURATION, "5s", false, false, "longest wait between polls"},
    {"job_timeout", BF_PARAM_DURATION, "10m", false, false,
     "give up waiting for a job (its records are sent again next run)"},
    {NULL, 0, NULL, false, false, NULL},
};

static const char *const user_attributes[] = {
    "name",
    "email",
    "phone",
    "external_id",
    "role",
    "alias",
    "details",
    "notes",
    "locale",
    "time_zone",
    "verified",
    "organization_id",
    "signature",
    "tags",
    "moderator",
    "suspended",
    "shared_phone_number",
    "remote_photo_url",
    "default_group_id",
    "custom_role_id",
    NULL,
};

static bool is_attribute(const char *name) {
  for (size_t i = 0; user_attributes[i]; i++)
    if (!strcmp(user_attributes[i], name)) return true;
  return false;
}

static void set_outcome(struct bf_outcome *o, enum bf_outcome_status st, const char *reason) {
  free(o->reason);
  o->status = st;
  o->reason = reason ? bf_xstrdup(reason) : NULL;
}

/* ---- open / check / close -------------------------------------------------- */

static int zd_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                   struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    const struct bf_sync_config *s = &cfg->syncs[i];
    if (strcmp(s->destination, dc->name) != 0) continue;
    const char *key = s->match.n == 1 ? s->match.items[0].key : NULL;
    if (!key || (strcmp(key, "email") != 0 && strcmp(key, "external_id") != 0))
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: sync '%s': zendesk matches users by one key, email or "
                          "external_id (e.g. match: {external_id: id})",
                          s->loc.file, s->loc.line, s->loc.col, s->name);
    if (s->object && strcmp(s->object, "users") != 0)
      return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: sync '%s': zendesk syncs object: users only",
                          s->loc.file, s->loc.line, s->loc.col, s->name);
  }
  char *what = bf_xasprintf("destination '%s' (zendesk)", dc->name);
  char *name = bf_xasprintf("zendesk:%s", dc->name);
  const char *sub = bf_params_str(p, zd_params, "subdomain");
  char *base = NULL;
  int rc = 0;
  struct zd_destination *d = NULL;
  if (sub) {
    for (const char *c = sub; *c; c++)
      if (!isalnum((unsigned char)*c) && *c != '-') {
        const struct bf_node *n = bf_node_get(p, "subdomain");
        rc = bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: %s: subdomain must be letters, digits and '-'", n->loc.file,
                          n->loc.line, n->loc.col, what);
        goto out;
      }
    base = bf_xasprintf("https://%s.zendesk.com", sub);
  }
  struct bf_http_options o;
  /* Documented: 200 requests a minute on the smallest plan (Team), job
   * polls included. 200/60 per second with a bucket of 1, less the
   * transport's 1% headroom, admits at most 1 + 198 a minute. */
  bf_http_options_defaults(&o, name, base, 200.0 / 60.0, 1, 4);
  if ((rc = bf_http_options_from_params(&o, p, zd_params, what, err))) goto out;
  d = bf_xcalloc(1, sizeof *d);
  if (!(d->http = bf_http_new(&o, err))) {
    rc = err ? err->code : BF_E_DESTINATION;
    goto out;
  }
  char *cred = bf_xasprintf("%s/token:%s", bf_params_str(p, zd_params, "email"),
                            bf_params_str(p, zd_params, "api_token"));
  size_t b64_len = sodium_base64_ENCODED_LEN(strlen(cred), sodium_base64_VARIANT_ORIGINAL);
  char *b64 = bf_xmalloc(b64_len);
  sodium_bin2base64(b64, b64_len, (const unsigned char *)cred, strlen(cred),
                    sodium_base64_VARIANT_ORIGINAL);
  char *auth = bf_xasprintf("Authorization: Basic %s", b64);
  bf_http_add_header(d->http, auth, true);
  bf_http_add_secret(d->http, bf_params_str(p, zd_params, "api_token"));
  sodium_memzero(cred, strlen(cred));
  free(cred);
  free(b64);
  free(auth);
  d->poll_ms = bf_params_duration_ms(p, zd_params, "poll_interval");
  d->poll_max_ms = bf_params_duration_ms(p, zd_params, "poll_max_interval");
  d->job_timeout_ms = bf_params_duration_ms(p, zd_params, "job_timeout");
  if (d->poll_ms < 1) d->poll_ms = 1;
  *out = &d->base;
  d = NULL;
out:
  if (d) {
    bf_http_free(d->http);
    free(d);
  }
  free(base);
  free(what);
  free(name);
  return rc;
}

static void zd_close(struct bf_destination *d_) {
  struct zd_destination *d = (struct zd_destination *)d_;
  if (!d) return;
  bf_http_free(d->http);
  bf_buf_release(&d->tmp);
  bf_buf_release(&d->text);
  free(d);
}

/* {"error":"RecordInvalid","description":"...","details":{...}} or {"error":{"title","message"}} */
static char *zd_reason(struct bf_http_response *r) {
  json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
  json_t *e = json_object_get(root, "error");
  const char *title =
      json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "title"));
  const char *msg = json_string_value(json_object_get(root, "description"));
  if (!msg) msg = json_string_value(json_object_get(e, "message"));
  char *out = title || msg ? bf_xasprintf("Zendesk %s: %s%s%s", r->error, title ? title : "",
                                          title && msg ? ": " : "", msg ? msg : "")
                           : bf_xasprintf("Zendesk %s", r->error);
  json_decref(root);
  return out;
}

static int unavailable(struct zd_destination *d, struct bf_http_response *r, struct bf_error *err) {
  char *why = zd_reason(r);
  bf_http_scrub(d->http, why);
  const char *hint = r->status == 401   ? " (check email and api_token)"
                     : r->status == 403 ? " (the token's user may not manage users)"
                                        : "";
  int rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s' (%s): %s%s", d->base.name,
                        bf_http_base_url_shown(d->http), why, hint);
  free(why);
  return rc;
}

static bool fatal(struct zd_destination *d, const struct bf_http_response *r) {
  return r->status == 401 || r->status == 403 || r->status == 404 ||
         (r->status >= 300 && r->status < 400) || (!bf_http_ok(r) && bf_http_retryable(d->http, r));
}

static int zd_check(struct bf_destination *d_, struct bf_error *err) {
  struct zd_destination *d = (struct zd_destination *)d_;
  struct bf_http_request req = {.method = "GET", .path = "/api/v2/users/me", .no_retry = true};
  struct bf_http_response resp;
  int rc = bf_http_perform_one(d->http, &req, &resp, err);
  if (rc == 0 && !bf_http_ok(&resp)) rc = unavailable(d, &resp, err);
  bf_http_response_release(&resp);
  return rc;
}

/* ---- values --------------------------------------------------------------- */

static void json_typed(struct zd_destination *d, struct bf_buf *b, const struct bf_value *v,
                       bool as_string) {
  if (v->type == BF_NULL) {
    bf_buf_puts(b, "null");
  } else if (!as_string && (v->type == BF_INT || v->type == BF_FLOAT || v->type == BF_BOOL)) {
    bf_json_value(b, v);
  } else {
    bf_buf_reset(&d->text);
    bf_http_value_text(&d->text, v);
    bf_json_str(b, d->text.data ? d->text.data : "", d->text.len);
  }
}

static void member(struct zd_destination *d, struct bf_buf *b, bool *first, const char *name,
                   const struct bf_value *v) {
  if (!*first) bf_buf_putc(b, ',');
  *first = false;
  bf_json_cstr(b, name);
  bf_buf_putc(b, ':');
  bool as_string = !strcmp(name, "external_id") || !strcmp(name, "email") ||
                   !strcmp(name, "name") || !strcmp(name, "phone");
  json_typed(d, b, v, as_string);
}

static void user_json(struct zd_destination *d, const struct bf_batch *batch,
                      const struct bf_record *rec, struct bf_buf *b) {
  const struct bf_mapping *m = batch->mapping;
  bool first = true, has_custom = false;
  bf_buf_putc(b, '{');
  member(d, b, &first, m->match_names[0], &rec->values[0]);
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      for (size_t i = 0; i < m->n_fields && !has_custom; i++)
        has_custom = !is_attribute(m->field_names[i]);
      for (size_t i = 0; i < m->n_constants && !has_custom; i++)
        has_custom = !is_attribute(m->constant_names[i]);
      if (!has_custom) break;
      bf_buf_puts(b, ",\"user_fields\":{");
      first = true;
    }
    for (size_t i = 0; i < m->n_fields; i++) {
      if (is_attribute(m->field_names[i]) != (pass == 0)) continue;
      if (!strcmp(m->field_names[i], m->match_names[0])) continue;
      bf_buf_reset(&d->tmp);
      struct bf_value v = bf_mapping_field_value(m, i, &rec->values[m->n_match + i], &d->tmp);
      member(d, b, &first, m->field_names[i], &v);
    }
    for (size_t i = 0; i < m->n_constants; i++) {
      if (is_attribute(m->constant_names[i]) != (pass == 0)) continue;
      member(d, b, &first, m->constant_names[i], &m->constant_values[i]);
    }
    if (pass == 1) bf_buf_putc(b, '}');
  }
  bf_buf_putc(b, '}');
}

/* ---- jobs -------------------------------------------------------------------- */

struct zd_job {
  size_t *recs; /* batch positions, in request order */
  size_t n;
  struct bf_buf body;
  char *id; /* job id once queued */
  bool done;
};

/* Applies a finished job's results to its records. */
static void apply_job(json_t *js, const struct zd_job *job, bool deleting,
                      struct bf_outcome *outcomes) {
  const char *status = json_string_value(json_object_get(js, "status"));
  json_t *results = json_object_get(js, "results");
  size_t i;
  json_t *r;
  json_array_foreach(results, i, r) {
    json_t *ix = json_object_get(r, "index");
    size_t pos = json_is_integer(ix) ? (size_t)json_integer_value(ix) : i;
    if (pos >= job->n) continue;
    struct bf_outcome *o = &outcomes[job->recs[pos]];
    const char *st = json_string_value(json_object_get(r, "status"));
    json_t *success = json_object_get(r, "success");
    bool failed = (st && !strcasecmp(st, "Failed")) || json_is_false(success);
    if (!failed) {
      set_outcome(o, BF_OUT_OK, NULL);
      continue;
    }
    const char *e = json_string_value(json_object_get(r, "error"));
    const char *details = json_string_value(json_object_get(r, "details"));
    if (deleting && e && (strstr(e, "NotFound") || strstr(e, "not found"))) {
      set_outcome(o, BF_OUT_OK, NULL);
      continue;
    }
    char *why = bf_xasprintf("Zendesk %s%s%s", e ? e : "Failed", details ? ": " : "",
                             details ? details : "");
    set_outcome(o, BF_OUT_REJECT, why);
    free(why);
  }
  if (status && strcmp(status, "completed") != 0) {
    const char *msg = json_string_value(json_object_get(js, "message"));
    char *why =
        bf_xasprintf("Zendesk job %s%s%s; will resend", status, msg ? ": " : "", msg ? msg : "");
    for (size_t k = 0; k < job->n; k++) {
      struct bf_outcome *o = &outcomes[job->recs[k]];
      if (o->status == BF_OUT_RETRY) set_outcome(o, BF_OUT_RETRY, why);
    }
    free(why);
  }
}

/* Queues every job (requests built in job->body with method/path), then
 * polls them until all are done; fills outcomes. */
static int run_jobs(struct zd_destination *d, struct zd_job *jobs, size_t n_jobs,
                    const char *method, char **paths, bool deleting, struct bf_outcome *outcomes,
                    struct bf_error *err) {
  for (size_t j = 0; j < n_jobs; j++)
    for (size_t k = 0; k < jobs[j].n; k++)
      set_outcome(&outcomes[jobs[j].recs[k]], BF_OUT_RETRY, "Zendesk did not report this record");
  struct bf_http_request *reqs = bf_xcalloc(n_jobs ? n_jobs : 1, sizeof *reqs);
  struct bf_http_response *resps = bf_xcalloc(n_jobs ? n_jobs : 1, sizeof *resps);
  for (size_t j = 0; j < n_jobs; j++)
    reqs[j] = (struct bf_http_request){.method = method,
                                       .path = paths[j],
                                       .body = jobs[j].body.len ? jobs[j].body.data : NULL,
                                       .body_len = jobs[j].body.len};
  int rc = bf_http_perform(d->http, reqs, resps, n_jobs, NULL, NULL, err);
  size_t pending = 0;
  for (size_t j = 0; j < n_jobs && rc == 0; j++) {
    struct bf_http_response *r = &resps[j];
    if (fatal(d, r)) {
      rc = unavailable(d, r, err);
      break;
    }
    if (!bf_http_ok(r)) { /* 400/422: the request as a whole was refused */
      char *why = zd_reason(r);
      bf_http_scrub(d->http, why);
      for (size_t k = 0; k < jobs[j].n; k++)
        set_outcome(&outcomes[jobs[j].recs[k]], BF_OUT_REJECT, why);
      free(why);
      jobs[j].done = true;
      continue;
    }
    json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    json_t *js = json_object_get(doc, "job_status");
    json_t *id = json_object_get(js, "id");
    if (json_is_string(id))
      jobs[j].id = bf_xstrdup(json_string_value(id));
    else if (json_is_integer(id))
      jobs[j].id = bf_xasprintf("%lld", (long long)json_integer_value(id));
    const char *st = json_string_value(json_object_get(js, "status"));
    if (!jobs[j].id) {
      jobs[j].done = true; /* stays retry: no job to follow */
    } else if (st && (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "killed"))) {
      apply_job(js, &jobs[j], deleting, outcomes);
      jobs[j].done = true;
    } else {
      pending++;
    }
    json_decref(doc);
  }
  bf_http_responses_release(resps, n_jobs);

  /* Poll the queued jobs together. */
  double start = bf_http_now_ms();
  long long wait = d->poll_ms;
  char **poll_paths = bf_xcalloc(n_jobs ? n_jobs : 1, sizeof *poll_paths);
  size_t *which = bf_xcalloc(n_jobs ? n_jobs : 1, sizeof *which);
  while (rc == 0 && pending > 0) {
    if (bf_http_now_ms() - start > (double)d->job_timeout_ms || bf_stop_requested) {
      bf_log_warn(
          "destination '%s': %zu Zendesk job(s) not finished after %lld ms; their records will be "
          "sent again",
          d->base.name, pending, (long long)(bf_http_now_ms() - start));
      break;
    }
    bf_http_sleep_ms(wait);
    wait = wait * 3 / 2 > d->poll_max_ms ? d->poll_max_ms : wait * 3 / 2;
    size_t k = 0;
    for (size_t j = 0; j < n_jobs; j++)
      if (!jobs[j].done && jobs[j].id) {
        free(poll_paths[k]);
        poll_paths[k] = bf_xasprintf("/api/v2/job_statuses/%s", jobs[j].id);
        reqs[k] = (struct bf_http_request){.method = "GET", .path = poll_paths[k]};
        which[k++] = j;
      }
    rc = bf_http_perform(d->http, reqs, resps, k, NULL, NULL, err);
    for (size_t q = 0; q < k && rc == 0; q++) {
      struct bf_http_response *r = &resps[q];
      if (fatal(d, r) || !bf_http_ok(r)) {
        rc = unavailable(d, r, err);
        break;
      }
      json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
      json_t *js = json_object_get(doc, "job_status");
      const char *st = json_string_value(json_object_get(js, "status"));
      if (st && (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "killed"))) {
        apply_job(js, &jobs[which[q]], deleting, outcomes);
        jobs[which[q]].done = true;
        pending--;
      }
      json_decref(doc);
    }
    bf_http_responses_release(resps, k);
  }
  for (size_t j = 0; j < n_jobs; j++) free(poll_paths[j]);
  free(poll_paths);
  free(which);
  free(reqs);
  free(resps);
  return rc;
}

static void jobs_free(struct zd_job *jobs, size_t n) {
  for (size_t j = 0; j < n; j++) {
    free(jobs[j].recs);
    free(jobs[j].id);
    bf_buf_release(&jobs[j].body);
  }
  free(jobs);
}

/* ---- push ------------------------------------------------------------------- */

static int zd_push_batch(struct bf_destination *d_, const struct bf_batch *batch,
                         struct bf_outcome *outcomes, struct bf_error *err) {
  struct zd_destination *d = (struct zd_destination *)d_;
  const struct bf_mapping *m = batch->mapping;
  if (m->n_match != 1)
    return bf_error_set(err, BF_E_CONFIG, "sync '%s': zendesk needs one match key",
                        batch->sync_name);
  size_t n_jobs = (batch->n + ZD_MAX_USERS - 1) / ZD_MAX_USERS;
  struct zd_job *jobs = bf_xcalloc(n_jobs ? n_jobs : 1, sizeof *jobs);
  size_t j = 0;
  for (size_t i = 0; i < batch->n; i++) {
    const struct bf_record *rec = &batch->records[i];
    if (rec->values[0].type == BF_NULL ||
        (rec->values[0].type == BF_TEXT && rec->values[0].len == 0)) {
      char *why = bf_xasprintf("%s is empty: Zendesk cannot match the user", m->match_names[0]);
      set_outcome(&outcomes[i], BF_OUT_REJECT, why);
      free(why);
      continue;
    }
    if (jobs[j].n == ZD_MAX_USERS) j++;
    struct zd_job *job = &jobs[j];
    if (!job->recs) {
      job->recs = bf_xmalloc(ZD_MAX_USERS * sizeof *job->recs);
      bf_buf_puts(&job->body, "{\"users\":[");
    } else {
      bf_buf_putc(&job->body, ',');
    }
    job->recs[job->n++] = i;
    user_json(d, batch, rec, &job->body);
  }
  n_jobs = jobs[0].n ? j + 1 : 0;
  char **paths = bf_xcalloc(n_jobs ? n_jobs : 1, sizeof *paths);
  for (size_t k = 0; k < n_jobs; k++) {
    bf_buf_puts(&jobs[k].body, "]}");
    paths[k] = "/api/v2/users/create_or_update_many";
  }
  int rc = run_jobs(d, jobs, n_jobs, "POST", paths, false, outcomes, err);
  free(paths);
  jobs_free(jobs, n_jobs ? n_jobs : 1);
  return rc;
}

/* ---- remove ----------------------------------------------------------------- */

static void url_escape(struct bf_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      bf_buf_putc(b, (char)c);
    } else {
      bf_buf_putc(b, '%');
      bf_buf_putc(b, hex[c >> 4]);
      bf_buf_putc(b, hex[c & 15]);
    }
  }
}

static char *match_text(const struct bf_batch *batch, const struct bf_record *rec) {
  json_t *mj = json_loadb(rec->match_json, rec->match_json_len, 0, NULL);
  json_t *v = json_object_get(mj, batch->mapping->match_names[0]);
  char *out = NULL;
  if (json_is_string(v) && json_string_length(v))
    out = bf_xstrdup(json_string_value(v));
  else if (json_is_integer(v))
    out = bf_xasprintf("%lld", (long long)json_integer_value(v));
  else if (json_is_real(v)) {
    char num[BF_DOUBLE_TEXT_MAX];
    bf_double_text(num, json_real_value(v));
    out = bf_xstrdup(num);
  }
  json_decref(mj);
  return out;
}

static int zd_remove_batch(struct bf_destination *d_, const struct bf_batch *batch,
                           struct bf_outcome *outcomes, struct bf_error *err) {
  struct zd_destination *d = (struct zd_destination *)d_;
  bool by_email = !strcmp(batch->mapping->match_names[0], "email");
  size_t n = batch->n;
  char **keys = bf_xcalloc(n ? n : 1, sizeof *keys);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    set_outcome(&outcomes[i], BF_OUT_OK, NULL); /* no key / no user: nothing to delete */
    keys[i] = match_text(batch, &batch->records[i]);
  }
  if (by_email) {
    /* Find each user's id: GET /api/v2/users/search?query=email:"..." */
    struct bf_http_request *reqs = bf_xcalloc(n ? n : 1, sizeof *reqs);
    struct bf_http_response *resps = bf_xcalloc(n ? n : 1, sizeof *resps);
    char **paths = bf_xcalloc(n ? n : 1, sizeof *paths);
    size_t *pos = bf_xcalloc(n ? n : 1, sizeof *pos);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
      if (!keys[i]) continue;
      struct bf_buf q = {0};
      bf_buf_puts(&q, "/api/v2/users/search?query=");
      char *term = bf_xasprintf("email:\"%s\"", keys[i]);
      url_escape(&q, term, strlen(term));
      free(term);
      paths[k] = bf_xstrdup(bf_buf_cstr(&q));
      bf_buf_release(&q);
      reqs[k] = (struct bf_http_request){.method = "GET", .path = paths[k]};
      pos[k++] = i;
    }
    rc = bf_http_perform(d->http, reqs, resps, k, NULL, NULL, err);
    for (size_t q = 0; q < k; q++) {
      size_t i = pos[q];
      free(keys[i]);
      keys[i] = NULL;
      if (rc == 0 && fatal(d, &resps[q])) rc = unavailable(d, &resps[q], err);
      if (rc || !bf_http_ok(&resps[q])) continue;
      json_t *doc =
          json_loadb(resps[q].body.data ? resps[q].body.data : "", resps[q].body.len, 0, NULL);
      json_t *id = json_object_get(json_array_get(json_object_get(doc, "users"), 0), "id");
      if (json_is_integer(id)) keys[i] = bf_xasprintf("%lld", (long long)json_integer_value(id));
      json_decref(doc);
      free(paths[q]);
      paths[q] = NULL;
    }
    for (size_t q = 0; q < k; q++) free(paths[q]);
    bf_http_responses_release(resps, k);
    free(reqs);
    free(resps);
    free(paths);
    free(pos);
  }
  /* destroy_many in groups of 100: ?ids=1,2 or ?external_ids=a,b */
  size_t n_jobs = 0;
  struct zd_job *jobs = bf_xcalloc(n ? (n + ZD_MAX_USERS - 1) / ZD_MAX_USERS : 1, sizeof *jobs);
  char **paths = bf_xcalloc(n ? (n + ZD_MAX_USERS - 1) / ZD_MAX_USERS : 1, sizeof *paths);
  struct bf_buf url = {0};
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (!keys[i]) continue;
    struct zd_job *job = n_jobs ? &jobs[n_jobs - 1] : NULL;
    if (!job || job->n == ZD_MAX_USERS) {
      job = &jobs[n_jobs++];
      job->recs = bf_xmalloc(ZD_MAX_USERS * sizeof *job->recs);
    }
    job->recs[job->n++] = i;
  }
  for (size_t j = 0; j < n_jobs && rc == 0; j++) {
    bf_buf_reset(&url);
    bf_buf_puts(&url, by_email ? "/api/v2/users/destroy_many?ids="
                               : "/api/v2/users/destroy_many?external_ids=");
    for (size_t k = 0; k < jobs[j].n; k++) {
      if (k) bf_buf_puts(&url, "%2C");
      url_escape(&url, keys[jobs[j].recs[k]], strlen(keys[jobs[j].recs[k]]));
    }
    paths[j] = bf_xstrdup(bf_buf_cstr(&url));
  }
  if (rc == 0 && n_jobs) rc = run_jobs(d, jobs, n_jobs, "DELETE", paths, true, outcomes, err);
  for (size_t j = 0; j < n_jobs; j++) free(paths[j]);
  free(paths);
  bf_buf_release(&url);
  jobs_free(jobs, n_jobs);
  for (size_t i = 0; i < n; i++) free(keys[i]);
  free(keys);
  return rc;
}

const struct bf_destination_type bf_destination_zendesk = {
    .name = "zendesk",
    .params = zd_params,
    /* A push becomes up to 10 jobs of 100 users, queued side by side
     * (Zendesk allows 30 queued jobs per account). */
    .max_batch = 2000,
    .default_batch = 1000,
    .needs_identifier_for_delete = true,
    .open = zd_open,
    .check = zd_check,
    .push = zd_push_batch,
    .remove = zd_remove_batch,
    .close = zd_close,
};

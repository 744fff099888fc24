/* klaviyo: profiles through Klaviyo's Bulk Import Profiles API, and
 * membership of one list.
 *
 *   destinations:
 *     kl: {type: klaviyo, api_key: "${KLAVIYO_KEY}", list_id: Y6nRLr}
 *   syncs:
 *     vip_to_klaviyo: {model: vip, destination: kl, mode: mirror,
 *                      match: {email: email},
 *                      fields: {first_name: first_name, city: city, plan: plan}}
 *
 * match: the profile's identifiers, `email`, `phone_number` (sent as E.164)
 * or `external_id`, at least one. fields: Klaviyo's profile attributes
 * (first_name, last_name, organization, title, image, locale), its
 * location (address1, address2, city, country, region, zip, timezone,
 * latitude, longitude, ip), identifiers, and anything else as a custom
 * property; constants are properties too. NULL is left out: a bulk import
 * does not clear a field.
 *
 * Upserts: POST /api/profile-bulk-import-jobs (JSON:API, `revision`
 * header), up to 10,000 profiles and 5 MB a job (a batch is split), the
 * list in its relationships when list_id is set. A 400 that points at
 * profiles (/data/attributes/profiles/data/N) rejects those records and the
 * job is sent again without them. Then GET .../{id} every poll_interval
 * until complete (or wait_for_job ends: the job counts as accepted), and,
 * when failed_count > 0, GET .../{id}/import-errors (all pages): each error
 * rejects the record of the profile it names (source.pointer, else the
 * identifiers of original_payload). A cancelled job makes its records
 * retry.
 *
 * Removals (mode: mirror): with list_id, the profiles are looked up by
 * identifier (GET /api/profiles?filter=any(email,[...]), 100 at a time) and
 * removed from the list (DELETE /api/lists/{id}/relationships/profiles,
 * 1,000 a request); a profile Klaviyo does not have counts as removed.
 * The profile itself stays (deleting a person is a data-privacy request,
 * not a sync). Without list_id there is nothing to remove from: removals
 * send nothing and count as removed (a warning says so once a run). */
#include <ctype.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "util/log.h"
#include "util/pii_normalize.h"
#include "destinations/ads_internal.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

#define KL_MAX_PROFILES      10000
#define KL_MAX_BODY          5000000 /* Klaviyo: 5 MB a request */
#define KL_MAX_PROFILE_BYTES 100000  /* Klaviyo: 100 KB a profile */
#define KL_LOOKUP_MAX        100     /* values in one any(...) filter, profiles a page */
#define KL_LIST_REMOVE_MAX   1000    /* profiles a list-removal request */
#define KL_CONTENT_TYPE      "application/vnd.api+json"

static const struct bf_param_spec kl_params[] = {
    BF_HTTP_PARAMS("https://a.klaviyo.com"),
    {"api_key", BF_PARAM_STRING, NULL, true, true, "private API key (profiles:write, lists:write)"},
    {"list_id", BF_PARAM_STRING, NULL, false, false,
     "list the profiles are added to (and removed from)"},
    {"revision", BF_PARAM_STRING, "2025-01-15", false, false, "API revision header (YYYY-MM-DD)"},
    {"wait_for_job", BF_PARAM_DURATION, "300s", false, false,
     "how long a push polls its import job"},
    {"poll_interval", BF_PARAM_DURATION, "1s", false, false, "pause between two polls"},
    {NULL, 0, NULL, false, false, NULL},
};

struct kl_destination {
  struct bf_destination base;
  struct bf_http *http;
  char *list_id;
  char *list_path; /* /api/lists/<id>/relationships/profiles */
  long long wait_ms, poll_ms;
  struct bf_klaviyo_job job;
  bool warned_no_list;
};

/* ---- mapping ------------------------------------------------------------ */

enum kl_slot { KL_EMAIL, KL_PHONE, KL_EXTERNAL_ID, KL_ATTR, KL_LOCATION, KL_PROPERTY };

static const char *const kl_attrs[] = {"first_name", "last_name", "organization", "title", "image",
                                       "locale",     NULL};
static const char *const kl_location[] = {"address1",  "address2", "city",     "country",
                                          "region",    "zip",      "timezone", "latitude",
                                          "longitude", "ip",       NULL};

static bool in_list(const char *const *list, const char *name) {
  for (size_t i = 0; list[i]; i++)
    if (!strcmp(list[i], name)) return true;
  return false;
}

static enum kl_slot slot_of(const char *name) {
  if (!strcmp(name, "email")) return KL_EMAIL;
  if (!strcmp(name, "phone_number")) return KL_PHONE;
  if (!strcmp(name, "external_id")) return KL_EXTERNAL_ID;
  if (in_list(kl_attrs, name)) return KL_ATTR;
  if (in_list(kl_location, name)) return KL_LOCATION;
  return KL_PROPERTY;
}

static const char *const kl_id_names[3] = {"email", "phone_number", "external_id"};

int bf_klaviyo_check_mapping(const struct bf_batch *batch, struct bf_error *err) {
  const struct bf_mapping *m = batch->mapping;
  bool any = false;
  int seen[3] = {0, 0, 0};
  for (size_t i = 0; i < m->n_match + m->n_fields; i++) {
    const char *name = i < m->n_match ? m->match_names[i] : m->field_names[i - m->n_match];
    enum kl_slot s = slot_of(name);
    if (s > KL_EXTERNAL_ID) continue;
    if (seen[s]++)
      return bf_error_set(err, BF_E_CONFIG, "sync '%s': '%s' is mapped twice", batch->sync_name,
                          name);
    if (i < m->n_match) any = true;
  }
  if (!any)
    return bf_error_set(
        err, BF_E_CONFIG,
        "sync '%s': a klaviyo sync needs match: {email: <column>} (or phone_number, "
        "external_id)",
        batch->sync_name);
  return 0;
}

/* The record's identifiers, normalised: ids[k] "" when absent. Returns
 * NULL or a malloc'd reason (an identifier that is not one). */
static char *record_ids(const struct bf_batch *batch, const struct bf_record *rec,
                        char ids[3][BF_PII_MAX]) {
  static const bf_pii_fn fns[3] = {bf_pii_meta_email, bf_pii_google_phone, bf_pii_external_id};
  const struct bf_mapping *m = batch->mapping;
  ids[0][0] = ids[1][0] = ids[2][0] = '\0';
  json_t *match = rec->values ? NULL : json_loadb(rec->match_json, rec->match_json_len, 0, NULL);
  size_t n_vals = m->n_match + (rec->values ? m->n_fields : 0);
  char *reason = NULL;
  for (size_t i = 0; i < n_vals && !reason; i++) {
    const char *name = i < m->n_match ? m->match_names[i] : m->field_names[i - m->n_match];
    enum kl_slot k = slot_of(name);
    if (k > KL_EXTERNAL_ID) continue;
    char num[48];
    const char *s = NULL;
    size_t n = 0;
    bool present = rec->values
                       ? bf_pii_value_text(&rec->values[i], num, sizeof num, &s, &n)
                       : bf_ads_json_text(json_object_get(match, name), num, sizeof num, &s, &n);
    if (!present || bf_ads_blank(s, n)) continue;
    const char *why = NULL;
    if (fns[k](s, n, ids[k], &why) < 0) {
      ids[k][0] = '\0';
      reason = bf_xasprintf("%s: %s", name, why);
    }
  }
  json_decref(match);
  if (!reason && !ids[0][0] && !ids[1][0] && !ids[2][0])
    reason = bf_xstrdup("no identifier: needs email, phone_number or external_id");
  return reason;
}

/* ---- the job body ------------------------------------------------------ */

void bf_klaviyo_job_begin(struct bf_klaviyo_job *job) {
  job->n = 0;
  bf_buf_reset(&job->ids);
  bf_buf_reset(&job->body);
  bf_buf_puts(&job->body, "{\"data\":{\"type\":\"profile-bulk-import-job\",\"attributes\":"
                          "{\"profiles\":{\"data\":[");
}

static void put_member(struct bf_buf *b, bool *first, const char *name) {
  if (!*first) bf_buf_putc(b, ',');
  *first = false;
  bf_json_cstr(b, name);
  bf_buf_putc(b, ':');
}

char *bf_klaviyo_add_profile(struct bf_klaviyo_job *job, const struct bf_batch *batch, size_t i,
                             struct bf_buf *tmp) {
  const struct bf_mapping *m = batch->mapping;
  const struct bf_record *rec = &batch->records[i];
  char ids[3][BF_PII_MAX];
  char *reason = record_ids(batch, rec, ids);
  if (reason) return reason;
  struct bf_buf *b = &job->body;
  size_t mark = b->len;
  if (job->n) bf_buf_putc(b, ',');
  size_t start = b->len;
  bf_buf_puts(b, "{\"type\":\"profile\",\"attributes\":{");
  bool first = true;
  for (int k = 0; k < 3; k++) {
    if (!ids[k][0]) continue;
    put_member(b, &first, kl_id_names[k]);
    bf_json_cstr(b, ids[k]);
  }
  /* Standard attributes, then location, then properties (with constants). */
  for (enum kl_slot pass = KL_ATTR; pass <= KL_PROPERTY; pass++) {
    bool opened = false, inner_first = true;
    for (size_t f = 0; f < m->n_fields; f++) {
      const char *name = m->field_names[f];
      if (slot_of(name) != pass) continue;
      struct bf_value v = bf_mapping_field_value(m, f, &rec->values[m->n_match + f], tmp);
      if (v.type == BF_NULL) continue;
      if (pass == KL_ATTR) {
        put_member(b, &first, name);
      } else {
        if (!opened) {
          put_member(b, &first, pass == KL_LOCATION ? "location" : "properties");
          bf_buf_putc(b, '{');
          opened = true;
        }
        put_member(b, &inner_first, name);
      }
      if (pass == KL_PROPERTY || ((!strcmp(name, "latitude") || !strcmp(name, "longitude")) &&
                                  (v.type == BF_INT || v.type == BF_FLOAT))) {
        bf_json_value(b, &v);
      } else {
        /* Klaviyo's attributes are strings. */
        struct bf_buf text = {0};
        bf_http_value_text(&text, &v);
        bf_json_str(b, text.data ? text.data : "", text.len);
        bf_buf_release(&text);
      }
    }
    if (pass == KL_PROPERTY) {
      for (size_t c = 0; c < m->n_constants; c++) {
        if (m->constant_values[c].type == BF_NULL) continue;
        if (!opened) {
          put_member(b, &first, "properties");
          bf_buf_putc(b, '{');
          opened = true;
        }
        put_member(b, &inner_first, m->constant_names[c]);
        bf_json_value(b, &m->constant_values[c]);
      }
    }
    if (opened) bf_buf_putc(b, '}');
  }
  bf_buf_puts(b, "}}");
  if (b->len - start > KL_MAX_PROFILE_BYTES) {
    b->len = mark;
    return bf_xstrdup("profile is larger than Klaviyo's 100 KB limit");
  }
  if (job->n == job->cap) {
    job->cap = job->cap ? job->cap * 2 : 256;
    job->rec = bf_xrealloc(job->rec, job->cap * sizeof *job->rec);
    job->ids_off = bf_xrealloc(job->ids_off, job->cap * sizeof *job->ids_off);
  }
  job->rec[job->n] = i;
  job->ids_off[job->n] = job->ids.len;
  for (int k = 0; k < 3; k++) bf_buf_append(&job->ids, ids[k], strlen(ids[k]) + 1);
  job->n++;
  return NULL;
}

void bf_klaviyo_job_end(struct bf_klaviyo_job *job, const char *list_id) {
  bf_buf_puts(&job->body, "]}}");
  if (list_id) {
    bf_buf_puts(&job->body, ",\"relationships\":{\"lists\":{\"data\":[{\"type\":\"list\",\"id\":");
    bf_json_cstr(&job->body, list_id);
    bf_buf_puts(&job->body, "}]}}");
  }
  bf_buf_puts(&job->body, "}}");
}

void bf_klaviyo_job_release(struct bf_klaviyo_job *job) {
  if (job->ids.data) sodium_memzero(job->ids.data, job->ids.cap);
  bf_buf_release(&job->ids);
  bf_buf_release(&job->body);
  free(job->rec);
  free(job->ids_off);
  memset(job, 0, sizeof *job);
}

/* ---- answers ------------------------------------------------------------ */

static void set_outcome(struct bf_outcome *o, enum bf_outcome_status st, char *reason) {
  free(o->reason);
  o->status = st;
  o->reason = reason;
}

static char *error_reason(json_t *e) {
  const char *code = json_string_value(json_object_get(e, "code"));
  const char *detail = json_string_value(json_object_get(e, "detail"));
  if (!detail) detail = json_string_value(json_object_get(e, "title"));
  return bf_xasprintf("Klaviyo: %s%s%s", code ? code : "", code && detail ? ": " : "",
                      detail ? detail : (code ? "" : "error"));
}

void bf_klaviyo_error_text(const char *body, size_t len, char *out, size_t cap) {
  if (cap) out[0] = '\0';
  json_t *root = json_loadb(body ? body : "", len, 0, NULL);
  json_t *e = json_array_get(json_object_get(root, "errors"), 0);
  if (json_is_object(e) && cap) {
    char *r = error_reason(e);
    snprintf(out, cap, "%s", r + strlen("Klaviyo: "));
    free(r);
  }
  json_decref(root);
}

/* "/data/attributes/profiles/data/12/attributes/email" -> 12; -1 if not a profile's. */
static long long pointer_index(const char *p) {
  static const char prefix[] = "/data/attributes/profiles/data/";
  if (!p || strncmp(p, prefix, sizeof prefix - 1)) return -1;
  p += sizeof prefix - 1;
  if (!isdigit((unsigned char)*p)) return -1;
  long long n = 0;
  for (; isdigit((unsigned char)*p) && n < 100000000; p++) n = n * 10 + (*p - '0');
  return *p == '\0' || *p == '/' ? n : -1;
}

size_t bf_klaviyo_refusal(const struct bf_klaviyo_job *job, const char *body, size_t len,
                          struct bf_outcome *outcomes) {
  json_t *root = json_loadb(body ? body : "", len, 0, NULL);
  size_t i, n = 0;
  json_t *e;
  json_array_foreach(json_object_get(root, "errors"), i, e) {
    long long p =
        pointer_index(json_string_value(json_object_get(json_object_get(e, "source"), "pointer")));
    if (p < 0 || (size_t)p >= job->n) continue;
    struct bf_outcome *o = &outcomes[job->rec[p]];
    if (o->status == BF_OUT_REJECT) continue;
    set_outcome(o, BF_OUT_REJECT, error_reason(e));
    n++;
  }
  json_decref(root);
  return n;
}

char *bf_klaviyo_job_id(const char *body, size_t len) {
  json_t *root = json_loadb(body ? body : "", len, 0, NULL);
  json_t *data = json_object_get(root, "data");
  const char *id = json_string_value(json_object_get(data, "id"));
  const char *type = json_string_value(json_object_get(data, "type"));
  char *out = NULL;
  if (id && *id && type && !strcmp(type, "profile-bulk-import-job")) {
    out = bf_xstrdup(id);
    for (char *c = out; *c; c++)
      if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_') {
        free(out); /* it goes in a path: nothing but an id */
        out = NULL;
        break;
      }
  }
  json_decref(root);
  return out;
}

enum bf_klaviyo_status bf_klaviyo_job_status(const char *body, size_t len, long long *failed) {
  *failed = 0;
  json_t *root = json_loadb(body ? body : "", len, 0, NULL);
  json_t *attrs = json_object_get(json_object_get(root, "data"), "attributes");
  const char *st = json_string_value(json_object_get(attrs, "status"));
  json_t *fc = json_object_get(attrs, "failed_count");
  if (json_is_integer(fc) && json_integer_value(fc) > 0) *failed = json_integer_value(fc);
  enum bf_klaviyo_status r = BF_KLAVIYO_PENDING;
  if (st && !strcmp(st, "complete"))
    r = BF_KLAVIYO_COMPLETE;
  else if (st && !strcmp(st, "cancelled"))
    r = BF_KLAVIYO_CANCELLED;
  json_decref(root);
  return r;
}

/* The profile of job an import error's original_payload names, or -1. */
static long long profile_by_payload(const struct bf_klaviyo_job *job, json_t *payload) {
  static const bf_pii_fn fns[3] = {bf_pii_meta_email, bf_pii_google_phone, bf_pii_external_id};
  if (!json_is_object(payload)) return -1;
  json_t *attrs = json_object_get(payload, "attributes");
  if (json_is_object(attrs)) payload = attrs; /* either the profile or its attributes */
  for (int k = 0; k < 3; k++) {
    const char *v = json_string_value(json_object_get(payload, kl_id_names[k]));
    char norm[BF_PII_MAX];
    const char *why;
    if (!v || fns[k](v, strlen(v), norm, &why) < 0) continue;
    for (size_t p = 0; p < job->n; p++) {
      const char *id = job->ids.data + job->ids_off[p];
      for (int j = 0; j < k; j++) id += strlen(id) + 1;
      if (!strcmp(id, norm)) return (long long)p;
    }
  }
  return -1;
}

size_t bf_klaviyo_import_errors(const struct bf_klaviyo_job *job, const char *body, size_t len,
                                struct bf_outcome *outcomes, char **next) {
  *next = NULL;
  json_t *root = json_loadb(body ? body : "", len, 0, NULL);
  size_t i, n = 0;
  json_t *item;
  json_array_foreach(json_object_get(root, "data"), i, item) {
    json_t *a = json_object_get(item, "attributes");
    if (!json_is_object(a)) continue;
    long long p =
        pointer_index(json_string_value(json_object_get(json_object_get(a, "source"), "pointer")));
    if (p < 0 || (size_t)p >= job->n)
      p = profile_by_payload(job, json_object_get(a, "original_payload"));
    if (p < 0) continue;
    set_outcome(&outcomes[job->rec[p]], BF_OUT_REJECT, error_reason(a));
    n++;
  }
  const char *nx = json_string_value(json_object_get(json_object_get(root, "links"), "next"));
  if (nx && *nx) *next = bf_xstrdup(nx);
  json_decref(root);
  return n;
}

/* ---- open / check --------------------------------------------------------- */

static void kl_close(struct bf_destination *d_) {
  struct kl_destination *d = (struct kl_destination *)d_;
  if (!d) return;
  bf_http_free(d->http);
  free(d->list_id);
  free(d->list_path);
  bf_klaviyo_job_release(&d->job);
  free(d);
}

static bool revision_ok(const char *r) {
  /* YYYY-MM-DD, optionally with a suffix such as ".pre". */
  for (int i = 0; i < 10; i++)
    if (i == 4 || i == 7 ? r[i] != '-' : !isdigit((unsigned char)r[i])) return false;
  for (const char *c = r + 10; *c; c++)
    if (!isalnum((unsigned char)*c) && *c != '.') return false;
  return true;
}

static int kl_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                   struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  struct kl_destination *d = bf_xcalloc(1, sizeof *d);
  char *what = bf_xasprintf("destination '%s' (klaviyo)", dc->name);
  char *name = bf_xasprintf("klaviyo:%s", dc->name);
  int rc = 0;
  const char *revision = bf_params_str(p, kl_params, "revision");
  const char *list = bf_params_str(p, kl_params, "list_id");
  if (strlen(revision) < 10 || !revision_ok(revision)) {
    const struct bf_node *n = bf_node_get(p, "revision");
    rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: revision is a date, YYYY-MM-DD", n->loc.file,
                      n->loc.line, n->loc.col, what);
    goto out;
  }
  if (list) {
    bool ok = *list != '\0';
    for (const char *c = list; *c; c++) ok = ok && isalnum((unsigned char)*c);
    if (!ok) {
      const struct bf_node *n = bf_node_get(p, "list_id");
      rc = bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: %s: list_id is the list's id (letters and digits)", n->loc.file,
                        n->loc.line, n->loc.col, what);
      goto out;
    }
  }
  struct bf_http_options o;
  /* Bulk import endpoints: 10/s burst, 150/min steady per account; a
   * rolling 150/min with burst 1 keeps both. */
  bf_http_options_defaults(&o, name, "https://a.klaviyo.com", 2.5, 1, 1);
  if ((rc = bf_http_options_from_params(&o, p, kl_params, what, err))) goto out;
  if (!(d->http = bf_http_new(&o, err))) {
    rc = err->code ? err->code : BF_E_DESTINATION;
    goto out;
  }
  const char *key = bf_params_str(p, kl_params, "api_key");
  char *h = bf_xasprintf("Authorization: Klaviyo-API-Key %s", key);
  bf_http_add_header(d->http, h, true);
  bf_http_add_secret(d->http, key);
  sodium_memzero(h, strlen(h));
  free(h);
  h = bf_xasprintf("revision: %s", revision);
  bf_http_add_header(d->http, h, false);
  free(h);
  bf_http_add_header(d->http, "Accept: " KL_CONTENT_TYPE, false);
  if (list) {
    d->list_id = bf_xstrdup(list);
    d->list_path = bf_xasprintf("/api/lists/%s/relationships/profiles", list);
  }
  d->wait_ms = bf_params_duration_ms(p, kl_params, "wait_for_job");
  d->poll_ms = bf_params_duration_ms(p, kl_params, "poll_interval");
  *out = &d->base;
out:
  free(what);
  free(name);
  if (rc) kl_close(&d->base);
  return rc;
}

/* A non-2xx answer that means the destination cannot be used (the run
 * stops, nothing lost), or 0 for a refusal of the data. */
static int unavailable(struct kl_destination *d, struct bf_http_response *r, const char *step,
                       struct bf_error *err) {
  char msg[240];
  bf_klaviyo_error_text(r->body.data, r->body.len, msg, sizeof msg);
  bf_http_scrub(d->http, msg);
  const char *hint;
  if (r->status == 401)
    hint = ": check api_key";
  else if (r->status == 403)
    hint = ": the API key lacks a scope (profiles:write, lists:write)";
  else if (r->status == 404)
    hint = d->list_id && (!strcmp(step, "check") || !strcmp(step, "list removal") ||
                          !strcmp(step, "import job"))
               ? ": no such list (check list_id)"
               : ": not found";
  else if (bf_http_retryable(d->http, r) || r->status == 0)
    hint = ": still failing after retries";
  else
    return 0;
  return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (klaviyo %s): %s: %s%s%s%s",
                      d->base.name, bf_http_base_url_shown(d->http), step,
                      r->error[0] ? r->error : "failed", msg[0] ? ": " : "", msg, hint);
}

static int kl_check(struct bf_destination *d_, struct bf_error *err) {
  struct kl_destination *d = (struct kl_destination *)d_;
  char *path = d->list_id ? bf_xasprintf("/api/lists/%s", d->list_id)
                          : bf_xstrdup("/api/profile-bulk-import-jobs?page%5Bsize%5D=1");
  struct bf_http_request req = {.method = "GET", .path = path, .no_retry = true};
  struct bf_http_response resp;
  int rc = bf_http_perform_one(d->http, &req, &resp, err);
  free(path);
  if (rc) return rc;
  if (!bf_http_ok(&resp) && !(rc = unavailable(d, &resp, "check", err)))
    rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s' (klaviyo): check: HTTP %ld",
                      d->base.name, resp.status);
  bf_http_response_release(&resp);
  return rc;
}

/* ---- upserts ---------------------------------------------------------------- */

/* GET path (relative, or a links.next URL made relative to base_url). */
static int get(struct kl_destination *d, const char *step, const char *path,
               struct bf_http_response *resp, struct bf_error *err) {
  struct bf_http_request req = {.method = "GET", .path = path};
  int rc = bf_http_perform_one(d->http, &req, resp, err);
  if (rc) return rc;
  if (bf_http_ok(resp)) return 0;
  if (!(rc = unavailable(d, resp, step, err)))
    rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s' (klaviyo): %s: HTTP %ld",
                      d->base.name, step, resp->status);
  bf_http_response_release(resp);
  return rc;
}

/* A links.next URL as a path under base_url: the API key is never sent
 * to a host the answer names. NULL when it has no /api/ path. */
static char *next_path(struct kl_destination *d, const char *next) {
  const char *base = bf_http_base_url(d->http);
  size_t bl = strlen(base);
  while (bl && base[bl - 1] == '/') bl--;
  if (!strncmp(next, base, bl) && next[bl] == '/') return bf_xstrdup(next + bl);
  const char *api = strstr(next, "/api/");
  return api ? bf_xstrdup(api) : NULL;
}

/* Reads every page of the job's import errors into outcomes. */
static int read_import_errors(struct kl_destination *d, const char *job_id, long long failed,
                              struct bf_outcome *outcomes, struct bf_error *err) {
  char *path =
      bf_xasprintf("/api/profile-bulk-import-jobs/%s/import-errors?page%%5Bsize%%5D=100", job_id);
  size_t named = 0, pages = 0;
  int rc = 0;
  while (path && pages++ < 1000) {
    struct bf_http_response resp;
    if ((rc = get(d, "import-errors", path, &resp, err))) break;
    char *next = NULL;
    named += bf_klaviyo_import_errors(&d->job, resp.body.data, resp.body.len, outcomes, &next);
    bf_http_response_release(&resp);
    free(path);
    path = next ? next_path(d, next) : NULL;
    free(next);
  }
  free(path);
  if (!rc && (long long)named < failed)
    bf_log_warn("destination '%s': Klaviyo counted %lld failed profiles in job %s and named %zu; "
                "the others "
                "count as sent",
                d->base.name, failed, job_id, named);
  return rc;
}

/* Waits for the job, then reads its errors. */
static int follow_job(struct kl_destination *d, const char *job_id, struct bf_outcome *outcomes,
                      struct bf_error *err) {
  char *path = bf_xasprintf("/api/profile-bulk-import-jobs/%s", job_id);
  double deadline = bf_http_now_ms() + (double)d->wait_ms;
  int rc = 0;
  for (;;) {
    struct bf_http_response resp;
    if ((rc = get(d, "import job", path, &resp, err))) break;
    long long failed;
    enum bf_klaviyo_status st = bf_klaviyo_job_status(resp.body.data, resp.body.len, &failed);
    bf_http_response_release(&resp);
    if (st == BF_KLAVIYO_COMPLETE) {
      if (failed > 0) rc = read_import_errors(d, job_id, failed, outcomes, err);
      break;
    }
    if (st == BF_KLAVIYO_CANCELLED) {
      bf_log_warn(
          "destination '%s': Klaviyo cancelled import job %s; its profiles will be sent again",
          d->base.name, job_id);
      for (size_t p = 0; p < d->job.n; p++)
        if (outcomes[d->job.rec[p]].status == BF_OUT_OK)
          set_outcome(&outcomes[d->job.rec[p]], BF_OUT_RETRY,
                      bf_xstrdup("Klaviyo: import job cancelled"));
      break;
    }
    if (bf_http_now_ms() + (double)d->poll_ms > deadline) {
      bf_log_warn(
          "destination '%s': import job %s still running after wait_for_job; its profiles count "
          "as sent and its errors are not read",
          d->base.name, job_id);
      break;
    }
    bf_http_sleep_ms(d->poll_ms);
  }
  free(path);
  return rc;
}

/* Builds the job of records [first, end) that are still ok. */
static void build_job(struct kl_destination *d, const struct bf_batch *batch, size_t first,
                      size_t end, struct bf_outcome *outcomes, struct bf_buf *tmp) {
  bf_klaviyo_job_begin(&d->job);
  for (size_t i = first; i < end; i++) {
    if (outcomes[i].status != BF_OUT_OK) continue;
    char *reason = bf_klaviyo_add_profile(&d->job, batch, i, tmp);
    if (reason) set_outcome(&outcomes[i], BF_OUT_REJECT, reason);
  }
  bf_klaviyo_job_end(&d->job, d->list_id);
}

/* Sends the job of records [first, end) until Klaviyo takes it. */
static int send_job(struct kl_destination *d, const struct bf_batch *batch, size_t first,
                    size_t end, struct bf_outcome *outcomes, struct bf_buf *tmp,
                    struct bf_error *err) {
  int rc = 0;
  for (int round = 0; round < 5; round++) {
    if (round) build_job(d, batch, first, end, outcomes, tmp);
    if (!d->job.n) return 0;
    struct bf_http_request req = {.method = "POST",
                                  .path = "/api/profile-bulk-import-jobs",
                                  .content_type = KL_CONTENT_TYPE,
                                  .body = d->job.body.data,
                                  .body_len = d->job.body.len};
    struct bf_http_response resp;
    if ((rc = bf_http_perform_one(d->http, &req, &resp, err))) return rc;
    if (bf_http_ok(&resp)) {
      char *id = bf_klaviyo_job_id(resp.body.data, resp.body.len);
      bf_http_response_release(&resp);
      if (!id)
        return bf_error_set(err, BF_E_DESTINATION,
                            "destination '%s' (klaviyo): the import job answer has no job id",
                            d->base.name);
      rc = follow_job(d, id, outcomes, err);
      free(id);
      return rc;
    }
    if ((rc = unavailable(d, &resp, "import job", err))) {
      bf_http_response_release(&resp);
      return rc;
    }
    /* Refused: reject the profiles it points at and send the others again;
     * a refusal that points at none rejects them all. */
    size_t named = bf_klaviyo_refusal(&d->job, resp.body.data, resp.body.len, outcomes);
    if (!named) {
      char msg[240];
      bf_klaviyo_error_text(resp.body.data, resp.body.len, msg, sizeof msg);
      bf_http_scrub(d->http, msg);
      for (size_t p = 0; p < d->job.n; p++)
        if (outcomes[d->job.rec[p]].status == BF_OUT_OK)
          set_outcome(&outcomes[d->job.rec[p]], BF_OUT_REJECT,
                      bf_xasprintf("Klaviyo: HTTP %ld: %s", resp.status, msg[0] ? msg : "refused"));
      bf_http_response_release(&resp);
      return 0;
    }
    bf_http_response_release(&resp);
  }
  /* Still refused after several rounds: what is left goes again next time. */
  for (size_t p = 0; p < d->job.n; p++)
    if (outcomes[d->job.rec[p]].status == BF_OUT_OK)
      set_outcome(&outcomes[d->job.rec[p]], BF_OUT_RETRY,
                  bf_xstrdup("Klaviyo: import job refused repeatedly"));
  return 0;
}

static int kl_push(struct bf_destination *d_, const struct bf_batch *batch,
                   struct bf_outcome *outcomes, struct bf_error *err) {
  struct kl_destination *d = (struct kl_destination *)d_;
  for (size_t i = 0; i < batch->n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_OK, NULL};
  if (!batch->n) return 0;
  int rc = bf_klaviyo_check_mapping(batch, err);
  if (rc) return rc;
  struct bf_buf tmp = {0};
  size_t i = 0;
  while (i < batch->n && !rc) {
    /* One job: up to 10,000 profiles and 5 MB. */
    size_t first = i;
    bf_klaviyo_job_begin(&d->job);
    for (; i < batch->n && d->job.n < KL_MAX_PROFILES; i++) {
      size_t mark = d->job.body.len, n = d->job.n;
      char *reason = bf_klaviyo_add_profile(&d->job, batch, i, &tmp);
      if (reason) {
        set_outcome(&outcomes[i], BF_OUT_REJECT, reason);
        continue;
      }
      if (d->job.body.len + 256 > KL_MAX_BODY && n > 0) {
        d->job.body.len = mark; /* it goes in the next job */
        d->job.n = n;
        break;
      }
    }
    bf_klaviyo_job_end(&d->job, d->list_id);
    rc = send_job(d, batch, first, i, outcomes, &tmp, err);
  }
  bf_buf_release(&tmp);
  return rc;
}

/* ---- removals ----------------------------------------------------------------- */

static void url_encode(struct bf_buf *b, const char *s) {
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

/* The filter string's quoted literal. */
static void filter_literal(struct bf_buf *b, const char *s) {
  bf_buf_putc(b, '"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') bf_buf_putc(b, '\\');
    bf_buf_putc(b, *s);
  }
  bf_buf_putc(b, '"');
}

struct lookup {
  int kind; /* which identifier the record is looked up by */
  char id[BF_PII_MAX];
  char *profile; /* Klaviyo's profile id, once found */
};

/* Finds the profile ids of recs[idx[0..n)] by their identifier of `kind`. */
static int lookup_profiles(struct kl_destination *d, struct lookup *recs, const size_t *idx,
                           size_t n, int kind, struct bf_error *err) {
  struct bf_buf filter = {0}, path = {0};
  bf_buf_printf(&filter, "any(%s,[", kl_id_names[kind]);
  for (size_t k = 0; k < n; k++) {
    if (k) bf_buf_putc(&filter, ',');
    filter_literal(&filter, recs[idx[k]].id);
  }
  bf_buf_puts(&filter, "])");
  bf_buf_puts(&path, "/api/profiles?filter=");
  url_encode(&path, bf_buf_cstr(&filter));
  bf_buf_printf(&path, "&fields%%5Bprofile%%5D=%s&page%%5Bsize%%5D=%d", kl_id_names[kind],
                KL_LOOKUP_MAX);
  char *p = bf_xstrdup(bf_buf_cstr(&path));
  int rc = 0;
  size_t pages = 0;
  while (p && pages++ < 100) {
    struct bf_http_response resp;
    if ((rc = get(d, "profile lookup", p, &resp, err))) break;
    json_t *root = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    size_t i;
    json_t *prof;
    json_array_foreach(json_object_get(root, "data"), i, prof) {
      const char *pid = json_string_value(json_object_get(prof, "id"));
      const char *v = json_string_value(
          json_object_get(json_object_get(prof, "attributes"), kl_id_names[kind]));
      char norm[BF_PII_MAX];
      const char *why;
      static const bf_pii_fn fns[3] = {bf_pii_meta_email, bf_pii_google_phone, bf_pii_external_id};
      if (!pid || !v || fns[kind](v, strlen(v), norm, &why) < 0) continue;
      for (size_t k = 0; k < n; k++)
        if (!recs[idx[k]].profile && !strcmp(recs[idx[k]].id, norm))
          recs[idx[k]].profile = bf_xstrdup(pid);
    }
    const char *nx = json_string_value(json_object_get(json_object_get(root, "links"), "next"));
    free(p);
    p = nx && *nx ? next_path(d, nx) : NULL;
    json_decref(root);
    bf_http_response_release(&resp);
  }
  free(p);
  if (filter.data) sodium_memzero(filter.data, filter.cap);
  if (path.data) sodium_memzero(path.data, path.cap);
  bf_buf_release(&filter);
  bf_buf_release(&path);
  return rc;
}

static int kl_remove(struct bf_destination *d_, const struct bf_batch *batch,
                     struct bf_outcome *outcomes, struct bf_error *err) {
  struct kl_destination *d = (struct kl_destination *)d_;
  for (size_t i = 0; i < batch->n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_OK, NULL};
  if (!batch->n) return 0;
  int rc = bf_klaviyo_check_mapping(batch, err);
  if (rc) return rc;
  if (!d->list_id) {
    if (!d->warned_no_list && (d->warned_no_list = true))
      bf_log_warn(
          "destination '%s': no list_id, so rows leaving the model are not removed from Klaviyo "
          "(their profiles stay); they count as removed",
          d->base.name);
    return 0;
  }
  struct lookup *recs = bf_xcalloc(batch->n, sizeof *recs);
  size_t *idx = bf_xmalloc(batch->n * sizeof *idx);
  for (size_t i = 0; i < batch->n; i++) {
    char ids[3][BF_PII_MAX];
    char *reason = record_ids(batch, &batch->records[i], ids);
    recs[i].kind = -1;
    if (reason) {
      set_outcome(&outcomes[i], BF_OUT_REJECT, reason);
      continue;
    }
    for (int k = 0; k < 3 && recs[i].kind < 0; k++)
      if (ids[k][0]) {
        recs[i].kind = k;
        memcpy(recs[i].id, ids[k], sizeof recs[i].id);
      }
  }
  /* Look the profiles up, 100 identifiers at a time, per kind. */
  for (int kind = 0; kind < 3 && !rc; kind++) {
    size_t n = 0;
    for (size_t i = 0; i <= batch->n && !rc; i++) {
      if (i < batch->n && recs[i].kind == kind) idx[n++] = i;
      if (n && (n == KL_LOOKUP_MAX || i == batch->n)) {
        rc = lookup_profiles(d, recs, idx, n, kind, err);
        n = 0;
      }
    }
  }
  /* Remove the profiles found from the list, 1,000 a request. */
  struct bf_buf body = {0};
  size_t n = 0;
  for (size_t i = 0; i <= batch->n && !rc; i++) {
    if (i < batch->n && recs[i].profile) idx[n++] = i;
    if (!n || (n < KL_LIST_REMOVE_MAX && i < batch->n)) continue;
    bf_buf_reset(&body);
    bf_buf_puts(&body, "{\"data\":[");
    for (size_t k = 0; k < n; k++) {
      if (k) bf_buf_putc(&body, ',');
      bf_buf_puts(&body, "{\"type\":\"profile\",\"id\":");
      bf_json_cstr(&body, recs[idx[k]].profile);
      bf_buf_putc(&body, '}');
    }
    bf_buf_puts(&body, "]}");
    struct bf_http_request req = {.method = "DELETE",
                                  .path = d->list_path,
                                  .content_type = KL_CONTENT_TYPE,
                                  .body = body.data,
                                  .body_len = body.len};
    struct bf_http_response resp;
    if ((rc = bf_http_perform_one(d->http, &req, &resp, err))) break;
    if (!bf_http_ok(&resp) && !(rc = unavailable(d, &resp, "list removal", err))) {
      char msg[240];
      bf_klaviyo_error_text(resp.body.data, resp.body.len, msg, sizeof msg);
      bf_http_scrub(d->http, msg);
      for (size_t k = 0; k < n; k++)
        set_outcome(&outcomes[idx[k]], BF_OUT_REJECT,
                    bf_xasprintf("Klaviyo: HTTP %ld: %s", resp.status, msg[0] ? msg : "refused"));
    }
    bf_http_response_release(&resp);
    n = 0;
  }
  bf_buf_release(&body);
  for (size_t i = 0; i < batch->n; i++) free(recs[i].profile);
  sodium_memzero(recs, batch->n * sizeof *recs);
  free(recs);
  free(idx);
  return rc;
}

const struct bf_destination_type bf_destination_klaviyo = {
    .name = "klaviyo",
    .params = kl_params,
    .max_batch = KL_MAX_PROFILES,
    .default_batch = KL_MAX_PROFILES,
    .needs_identifier_for_delete = true,
    .open = kl_open,
    .check = kl_check,
    .push = kl_push,
    .remove = kl_remove,
    .close = kl_close,
};

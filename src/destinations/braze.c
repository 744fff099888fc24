/* braze: user attributes through the REST API.
 *
 *   destinations:
 *     bz: {type: braze, api_key: "${BRAZE_KEY}", instance: iad-01}
 *   syncs:
 *     vip_to_braze: {model: vip, destination: bz, mode: mirror,
 *                    match: {external_id: id}, fields: {email: email, plan: plan}}
 *
 * match: `external_id: <column>`, or `user_alias: <column>` to identify
 * users by an alias (alias_label, default "email": the email-alias users
 * Braze creates for people without an external id). fields: attribute
 * names as Braze knows them (standard ones such as email, first_name,
 * phone, or custom attributes); NULL clears an attribute.
 *
 * Upserts: POST /users/track {"attributes":[...]}, 75 objects a request
 * (Braze's limit for all three arrays together), requests in parallel
 * under Braze's 3,000 requests / 3 s. A 201 with errors[] {index,
 * input_array, type} rejects those objects (non-fatal errors); a fatal
 * answer (message other than "success") rejects or stops as its status says.
 * Removals: POST /users/delete, 50 ids a request, by external_ids or
 * user_aliases. */
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "util/log.h"
#include "util/pii_normalize.h"
#include "destinations/ads_internal.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

#define BRAZE_TRACK_MAX  75
#define BRAZE_DELETE_MAX 50

static const struct bf_param_spec braze_params[] = {
    BF_HTTP_PARAMS(NULL),
    {"api_key", BF_PARAM_STRING, NULL, true, true, "REST API key (users.track, users.delete)"},
    {"instance", BF_PARAM_STRING, NULL, false, false,
     "REST instance, e.g. iad-01 (or set base_url)"},
    {"alias_label", BF_PARAM_STRING, "email", false, false,
     "alias label for match: {user_alias: col}"},
    {"bulk", BF_PARAM_BOOL, "false", false, false, "send X-Braze-Bulk: true (backfills)"},
    {NULL, 0, NULL, false, false, NULL},
};

struct braze_destination {
  struct bf_destination base;
  struct bf_http *http;
  char *alias_label;
  bool bulk;
  bool warned_constants;
};

static void braze_close(struct bf_destination *d_) {
  struct braze_destination *d = (struct braze_destination *)d_;
  if (!d) return;
  bf_http_free(d->http);
  free(d->alias_label);
  free(d);
}

static int braze_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                      struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  struct braze_destination *d = bf_xcalloc(1, sizeof *d);
  char *what = bf_xasprintf("destination '%s' (braze)", dc->name);
  char *name = bf_xasprintf("braze:%s", dc->name);
  char *base = NULL;
  int rc = 0;
  const char *instance = bf_params_str(p, braze_params, "instance");
  if (instance) {
    for (const char *c = instance; *c; c++) {
      if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
        const struct bf_node *n = bf_node_get(p, "instance");
        rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: instance looks like iad-01", n->loc.file,
                          n->loc.line, n->loc.col, what);
        goto out;
      }
    }
    base = bf_xasprintf("https://rest.%s.braze.com", instance);
  }
  struct bf_http_options o;
  /* 3,000 requests per 3 s per workspace: 990/s with a burst of 20 keeps
   * burst + rate * 3 s under 3,000. */
  bf_http_options_defaults(&o, name, base, 990, 20, 8);
  if ((rc = bf_http_options_from_params(&o, p, braze_params, what, err))) goto out;
  if (!(d->http = bf_http_new(&o, err))) {
    rc = err->code ? err->code : BF_E_DESTINATION;
    goto out;
  }
  char *h = bf_xasprintf("Authorization: Bearer %s", bf_params_str(p, braze_params, "api_key"));
  bf_http_add_header(d->http, h, true);
  sodium_memzero(h, strlen(h));
  free(h);
  d->bulk = bf_params_bool(p, braze_params, "bulk");
  if (d->bulk) bf_http_add_header(d->http, "X-Braze-Bulk: true", false);
  d->alias_label = bf_xstrdup(bf_params_str(p, braze_params, "alias_label"));
  *out = &d->base;
out:
  free(base);
  free(what);
  free(name);
  if (rc) braze_close(&d->base);
  return rc;
}

/* Braze's fatal answers: {"message": "...", "errors": [...]}. */
void bf_braze_message(const struct bf_http_response *r, char *out, size_t cap) {
  out[0] = '\0';
  json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
  const char *m = json_string_value(json_object_get(root, "message"));
  if (m) snprintf(out, cap, "%s", m);
  json_decref(root);
}

static int unavailable(struct braze_destination *d, struct bf_http_response *r,
                       struct bf_error *err) {
  char msg[200];
  bf_braze_message(r, msg, sizeof msg);
  bf_http_scrub(d->http, msg);
  const char *hint;
  if (r->status == 401)
    hint = ": check api_key";
  else if (r->status == 403)
    hint = ": the API key lacks the users.track / users.delete permission";
  else if (r->status == 404)
    hint = ": wrong instance or base_url";
  else if (bf_http_retryable(d->http, r) || r->status == 0)
    hint = ": still failing after retries";
  else
    return 0;
  return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (braze %s): %s%s%s%s", d->base.name,
                      bf_http_base_url_shown(d->http), r->error[0] ? r->error : "failed",
                      msg[0] ? ": " : "", msg, hint);
}

static int braze_check(struct bf_destination *d_, struct bf_error *err) {
  /* An empty track call is authenticated and changes nothing; Braze
   * answers it 400 "valid data must be provided", which proves the key. */
  struct braze_destination *d = (struct braze_destination *)d_;
  struct bf_http_request req = {.method = "POST",
                                .path = "/users/track",
                                .body = "{\"attributes\":[]}",
                                .body_len = 17,
                                .no_retry = true};
  struct bf_http_response resp;
  int rc = bf_http_perform_one(d->http, &req, &resp, err);
  if (rc) return rc;
  if (!bf_http_ok(&resp) && resp.status != 400 && !(rc = unavailable(d, &resp, err)))
    rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s' (braze): HTTP %ld", d->base.name,
                      resp.status);
  bf_http_response_release(&resp);
  return rc;
}

static void set_outcome(struct bf_outcome *o, enum bf_outcome_status st, char *reason) {
  free(o->reason);
  o->status = st;
  o->reason = reason;
}

/* Which identifier: 0 external_id, 1 user_alias; the match column index. */
int bf_braze_identifier(const struct bf_batch *batch, int *kind, struct bf_error *err) {
  const struct bf_mapping *m = batch->mapping;
  for (size_t i = 0; i < m->n_match; i++) {
    if (!strcmp(m->match_names[i], "external_id")) return *kind = 0, (int)i;
    if (!strcmp(m->match_names[i], "user_alias")) return *kind = 1, (int)i;
  }
  return bf_error_set(
      err, BF_E_CONFIG,
      "sync '%s': a braze sync needs match: {external_id: <column>} or {user_alias: <column>}",
      batch->sync_name);
}

/* Writes the identifier member(s) of rec; NULL or a rejection reason. */
static char *write_identifier(const char *alias_label, const struct bf_batch *batch,
                              const struct bf_record *rec, int col, int kind, struct bf_buf *b) {
  char num[48];
  const char *s = NULL;
  size_t n = 0;
  json_t *match = NULL;
  bool present;
  if (rec->values) {
    present = bf_pii_value_text(&rec->values[col], num, sizeof num, &s, &n);
  } else {
    match = json_loadb(rec->match_json, rec->match_json_len, 0, NULL);
    json_t *v = json_object_get(match, batch->mapping->match_names[col]);
    struct bf_value bv = {.type = BF_NULL};
    if (json_is_string(v))
      bv = (struct bf_value){
          .type = BF_TEXT, .len = (uint32_t)json_string_length(v), .u.s = json_string_value(v)};
    else if (json_is_integer(v))
      bv = (struct bf_value){.type = BF_INT, .u.i = json_integer_value(v)};
    present = bf_pii_value_text(&bv, num, sizeof num, &s, &n);
  }
  char id[BF_PII_MAX];
  const char *why = "is empty";
  char *reason = NULL;
  if (!present || bf_pii_trim(s, n, id, &why) < 0) {
    reason = bf_xasprintf("%s: %s", batch->mapping->match_names[col], why);
  } else if (kind == 0) {
    bf_buf_puts(b, "\"external_id\":");
    bf_json_cstr(b, id);
  } else {
    bf_buf_puts(b, "\"user_alias\":{\"alias_name\":");
    bf_json_cstr(b, id);
    bf_buf_puts(b, ",\"alias_label\":");
    bf_json_cstr(b, alias_label);
    bf_buf_putc(b, '}');
  }
  json_decref(match);
  return reason;
}

size_t bf_braze_track_body(const struct bf_batch *batch, int col, int kind, const char *alias_label,
                           size_t first, size_t end, struct bf_buf *body, size_t *rec_of,
                           struct bf_outcome *outcomes, struct bf_buf *tmp) {
  const struct bf_mapping *m = batch->mapping;
  size_t n = 0;
  bf_buf_puts(body, "{\"attributes\":[");
  for (size_t next = first; next < end; next++) {
    const struct bf_record *rec = &batch->records[next];
    size_t mark = body->len;
    if (n) bf_buf_putc(body, ',');
    bf_buf_putc(body, '{');
    char *reason = write_identifier(alias_label, batch, rec, col, kind, body);
    if (reason) {
      body->len = mark;
      set_outcome(&outcomes[next], BF_OUT_REJECT, reason);
      continue;
    }
    if (kind == 1) bf_buf_puts(body, ",\"_update_existing_only\":false");
    for (size_t i = 0; i < m->n_fields; i++) {
      bf_buf_putc(body, ',');
      bf_json_cstr(body, m->field_names[i]);
      bf_buf_putc(body, ':');
      struct bf_value v = bf_mapping_field_value(m, i, &rec->values[m->n_match + i], tmp);
      bf_json_value(body, &v);
    }
    for (size_t i = 0; i < m->n_constants; i++) {
      bf_buf_putc(body, ',');
      bf_json_cstr(body, m->constant_names[i]);
      bf_buf_putc(body, ':');
      bf_json_value(body, &m->constant_values[i]);
    }
    bf_buf_putc(body, '}');
    rec_of[n++] = next;
  }
  bf_buf_puts(body, "]}");
  return n;
}

size_t bf_braze_delete_body(const struct bf_batch *batch, int col, int kind,
                            const char *alias_label, size_t first, size_t end, struct bf_buf *body,
                            size_t *rec_of, struct bf_outcome *outcomes) {
  size_t n = 0;
  bf_buf_puts(body, kind == 0 ? "{\"external_ids\":[" : "{\"user_aliases\":[");
  for (size_t next = first; next < end; next++) {
    struct bf_buf one = {0};
    char *reason = write_identifier(alias_label, batch, &batch->records[next], col, kind, &one);
    if (reason) {
      set_outcome(&outcomes[next], BF_OUT_REJECT, reason);
      bf_buf_release(&one);
      continue;
    }
    if (n) bf_buf_putc(body, ',');
    /* one = "external_id":"x" or "user_alias":{...}: keep the value. */
    const char *colon = memchr(one.data, ':', one.len);
    bf_buf_append(body, colon + 1, one.len - (size_t)(colon + 1 - one.data));
    bf_buf_release(&one);
    rec_of[n++] = next;
  }
  bf_buf_puts(body, "]}");
  return n;
}

void bf_braze_track_answer(const char *body, size_t len, const size_t *rec_of, size_t n,
                           struct bf_outcome *outcomes) {
  json_t *root = json_loadb(body ? body : "", len, 0, NULL);
  const char *message = json_string_value(json_object_get(root, "message"));
  if (!message || strcmp(message, "success")) {
    for (size_t k = 0; k < n; k++)
      set_outcome(&outcomes[rec_of[k]], BF_OUT_RETRY,
                  bf_xasprintf("Braze: %s", message ? message : "answer without a message"));
    json_decref(root);
    return;
  }
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(root, "errors"), i, e) {
    const char *arr = json_string_value(json_object_get(e, "input_array"));
    json_t *idx = json_object_get(e, "index");
    if (!arr || strcmp(arr, "attributes") || !json_is_integer(idx) || json_integer_value(idx) < 0 ||
        (size_t)json_integer_value(idx) >= n)
      continue;
    const char *type = json_string_value(json_object_get(e, "type"));
    set_outcome(&outcomes[rec_of[json_integer_value(idx)]], BF_OUT_REJECT,
                bf_xasprintf("Braze: %s", type ? type : "error"));
  }
  json_decref(root);
}

struct chunk {
  size_t n;
  size_t *rec; /* object index -> record index */
  struct bf_buf body;
};

static int braze_push(struct bf_destination *d_, const struct bf_batch *batch,
                      struct bf_outcome *outcomes, struct bf_error *err) {
  struct braze_destination *d = (struct braze_destination *)d_;
  for (size_t i = 0; i < batch->n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_OK, NULL};
  if (!batch->n) return 0;
  int kind;
  int col = bf_braze_identifier(batch, &kind, err);
  if (col < 0) return col;
  size_t n_chunks = (batch->n + BRAZE_TRACK_MAX - 1) / BRAZE_TRACK_MAX;
  struct chunk *chunks = bf_xcalloc(n_chunks, sizeof *chunks);
  struct bf_http_request *reqs = bf_xcalloc(n_chunks, sizeof *reqs);
  struct bf_http_response *resps = bf_xcalloc(n_chunks, sizeof *resps);
  struct bf_buf tmp = {0};
  size_t n_reqs = 0;
  int rc = 0;
  for (size_t c = 0; c < n_chunks; c++) {
    struct chunk *ch = &chunks[c];
    ch->rec = bf_xmalloc(BRAZE_TRACK_MAX * sizeof *ch->rec);
    size_t first = c * BRAZE_TRACK_MAX;
    size_t end = first + BRAZE_TRACK_MAX < batch->n ? first + BRAZE_TRACK_MAX : batch->n;
    ch->n = bf_braze_track_body(batch, col, kind, d->alias_label, first, end, &ch->body, ch->rec,
                                outcomes, &tmp);
    if (!ch->n) continue;
    reqs[n_reqs++] = (struct bf_http_request){.method = "POST",
                                              .path = "/users/track",
                                              .body = ch->body.data,
                                              .body_len = ch->body.len,
                                              .user = ch};
  }
  if (n_reqs && (rc = bf_http_perform(d->http, reqs, resps, n_reqs, NULL, NULL, err))) goto out;
  for (size_t r = 0; r < n_reqs && !rc; r++) {
    struct chunk *ch = reqs[r].user;
    struct bf_http_response *resp = &resps[r];
    if (!bf_http_ok(resp)) {
      if ((rc = unavailable(d, resp, err))) break;
      char msg[200];
      bf_braze_message(resp, msg, sizeof msg);
      for (size_t k = 0; k < ch->n; k++)
        set_outcome(&outcomes[ch->rec[k]], BF_OUT_REJECT,
                    bf_xasprintf("Braze: HTTP %ld: %s", resp->status, msg));
      continue;
    }
    bf_braze_track_answer(resp->body.data, resp->body.len, ch->rec, ch->n, outcomes);
  }
out:
  bf_http_responses_release(resps, n_reqs);
  for (size_t c = 0; c < n_chunks; c++) {
    bf_buf_release(&chunks[c].body);
    free(chunks[c].rec);
  }
  free(chunks);
  free(reqs);
  free(resps);
  bf_buf_release(&tmp);
  return rc;
}

static int braze_remove(struct bf_destination *d_, const struct bf_batch *batch,
                        struct bf_outcome *outcomes, struct bf_error *err) {
  struct braze_destination *d = (struct braze_destination *)d_;
  for (size_t i = 0; i < batch->n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_OK, NULL};
  if (!batch->n) return 0;
  int kind;
  int col = bf_braze_identifier(batch, &kind, err);
  if (col < 0) return col;
  size_t n_chunks = (batch->n + BRAZE_DELETE_MAX - 1) / BRAZE_DELETE_MAX;
  struct chunk *chunks = bf_xcalloc(n_chunks, sizeof *chunks);
  struct bf_http_request *reqs = bf_xcalloc(n_chunks, sizeof *reqs);
  struct bf_http_response *resps = bf_xcalloc(n_chunks, sizeof *resps);
  size_t n_reqs = 0;
  int rc = 0;
  for (size_t c = 0; c < n_chunks; c++) {
    struct chunk *ch = &chunks[c];
    ch->rec = bf_xmalloc(BRAZE_DELETE_MAX * sizeof *ch->rec);
    size_t first = c * BRAZE_DELETE_MAX;
    size_t end = first + BRAZE_DELETE_MAX < batch->n ? first + BRAZE_DELETE_MAX : batch->n;
    ch->n = bf_braze_delete_body(batch, col, kind, d->alias_label, first, end, &ch->body, ch->rec,
                                 outcomes);
    if (!ch->n) continue;
    reqs[n_reqs++] = (struct bf_http_request){.method = "POST",
                                              .path = "/users/delete",
                                              .body = ch->body.data,
                                              .body_len = ch->body.len,
                                              .user = ch};
  }
  if (n_reqs && (rc = bf_http_perform(d->http, reqs, resps, n_reqs, NULL, NULL, err))) goto out;
  for (size_t r = 0; r < n_reqs && !rc; r++) {
    struct chunk *ch = reqs[r].user;
    struct bf_http_response *resp = &resps[r];
    if (bf_http_ok(resp)) continue; /* deleting an unknown user is not an error */
    if ((rc = unavailable(d, resp, err))) break;
    char msg[200];
    bf_braze_message(resp, msg, sizeof msg);
    for (size_t k = 0; k < ch->n; k++)
      set_outcome(&outcomes[ch->rec[k]], BF_OUT_REJECT,
                  bf_xasprintf("Braze: HTTP %ld: %s", resp->status, msg));
  }
out:
  bf_http_responses_release(resps, n_reqs);
  for (size_t c = 0; c < n_chunks; c++) {
    bf_buf_release(&chunks[c].body);
    free(chunks[c].rec);
  }
  free(chunks);
  free(reqs);
  free(resps);
  return rc;
}

const struct bf_destination_type bf_destination_braze = {
    .name = "braze",
    .params = braze_params,
    .max_batch = 7500,
    .default_batch = 750,
    .needs_identifier_for_delete = true,
    .open = braze_open,
    .check = braze_check,
    .push = braze_push,
    .remove = braze_remove,
    .close = braze_close,
};

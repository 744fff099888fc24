/* mailchimp: audience (list) members through the Marketing API 3.0.
 *
 *   destinations:
 *     mc: {type: mailchimp, api_key: "${MAILCHIMP_KEY}", list_id: "a1b2c3d4e5"}
 *   syncs:
 *     vip_to_mc: {model: vip, destination: mc, mode: mirror,
 *                 match: {email_address: email},
 *                 fields: {FNAME: first_name, LNAME: last_name, tags: segments}}
 *
 * match: the member's email (key `email_address` or `email`). fields: `tags`
 * (comma-separated names, added to the member), `status`, `language`,
 * `vip`, `email_type` go on the member; every other field is a merge field
 * by its merge tag (FNAME, LNAME, ...).
 *
 * Upserts: POST /lists/{id} {"members":[...], "update_existing": true}, 500
 * members a request, requests sent concurrently (at most 10 connections,
 * Mailchimp's limit). Mailchimp answers 200 with errors[] naming refused
 * members by email: those records are rejected with its reason. Note:
 * with update_existing, Mailchimp applies `status` to existing members too;
 * map a `status` column, or set update_existing: false, where resubscribing
 * an unsubscribed member must not happen.
 *
 * Removals (mode: mirror): DELETE /lists/{id}/members/{md5(lowercase email)}
 * archives the member (remove_action: archive), or POST
 * .../actions/delete-permanent (remove_action: delete_permanent); a member
 * already gone (404) counts as removed.
 *
 * The host comes from the API key's data-centre suffix (…-us14 ->
 * https://us14.api.mailchimp.com/3.0) unless base_url is set. */
#include <ctype.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "util/log.h"
#include "util/pii_normalize.h"
#include "destinations/ads_internal.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

#define MC_MEMBERS_PER_REQUEST 500
#define MC_MAX_CONNECTIONS     10

static const struct bf_param_spec mc_params[] = {
    BF_HTTP_PARAMS(NULL),
    {"api_key", BF_PARAM_STRING, NULL, true, true, "Marketing API key (<key>-<dc>)"},
    {"list_id", BF_PARAM_STRING, NULL, true, false, "audience (list) id"},
    {"status", BF_PARAM_STRING, "subscribed", false, false,
     "status for members: subscribed | pending | transactional | unsubscribed"},
    {"update_existing", BF_PARAM_BOOL, "true", false, false, "update members that exist (upsert)"},
    {"remove_action", BF_PARAM_STRING, "archive", false, false, "archive | delete_permanent"},
    {NULL, 0, NULL, false, false, NULL},
};

struct mc_destination {
  struct bf_destination base;
  struct bf_http *http;
  char *list_path; /* /lists/<id> */
  char *status;
  bool update_existing, delete_permanent;
  bool warned_constants;
};

/* ---- MD5 (RFC 1321), for subscriber hashes only ------------------------ */

static void md5(const unsigned char *msg, size_t len, unsigned char out[16]) {
  static const uint32_t K[64] = {
      0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
      0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
      0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
      0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
      0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
      0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
      0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
      0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
      0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
      0xeb86d391};
  static const unsigned char R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                      5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                      4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                      6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
  uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  size_t total = ((len + 8) / 64 + 1) * 64;
  unsigned char block[64];
  for (size_t off = 0; off < total; off += 64) {
    for (size_t i = 0; i < 64; i++) {
      size_t p = off + i;
      block[i] = p < len ? msg[p] : p == len ? 0x80 : 0;
    }
    if (off + 64 == total) {
      uint64_t bits = (uint64_t)len * 8;
      for (int i = 0; i < 8; i++) block[56 + i] = (unsigned char)(bits >> (8 * i));
    }
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)block[4 * i] | (uint32_t)block[4 * i + 1] << 8 |
             (uint32_t)block[4 * i + 2] << 16 | (uint32_t)block[4 * i + 3] << 24;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; i++) {
      uint32_t f;
      int g;
      if (i < 16)
        f = (b & c) | (~b & d), g = i;
      else if (i < 32)
        f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
      else if (i < 48)
        f = b ^ c ^ d, g = (3 * i + 5) % 16;
      else
        f = c ^ (b | ~d), g = (7 * i) % 16;
      uint32_t t = d;
      d = c;
      c = b;
      uint32_t x = a + f + K[i] + w[g];
      b = b + (x << R[i] | x >> (32 - R[i]));
      a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d;
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (unsigned char)(h[i] >> (8 * j));
}

/* Mailchimp's subscriber hash: MD5 hex of the lower-cased email. */
void bf_mc_subscriber_hash(const char *email_lower, size_t n, char out[33]) {
  unsigned char d[16];
  md5((const unsigned char *)email_lower, n, d);
  sodium_bin2hex(out, 33, d, sizeof d);
}

/* ---- open / check ----------------------------------------------------- */

static void mc_close(struct bf_destination *d_) {
  struct mc_destination *d = (struct mc_destination *)d_;
  if (!d) return;
  bf_http_free(d->http);
  free(d->list_path);
  free(d->status);
  free(d);
}

bool bf_mc_retryable(const struct bf_http_response *r, void *arg) {
  /* Mailchimp sheds load with bare 403s under heavy concurrency; a 403
   * with an "API Key Invalid"-style JSON body is a real refusal. */
  return bf_http_default_retryable(r, arg) ||
         (r->status == 403 && (!r->body.len || !memmem(r->body.data, r->body.len, "\"title\"", 7)));
}

static int mc_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                   struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  struct mc_destination *d = bf_xcalloc(1, sizeof *d);
  char *what = bf_xasprintf("destination '%s' (mailchimp)", dc->name);
  char *name = bf_xasprintf("mailchimp:%s", dc->name);
  char *base = NULL;
  int rc = 0;
  const char *key = bf_params_str(p, mc_params, "api_key");
  const char *dash = strrchr(key, '-');
  bool dc_ok = dash && dash[1] && isalpha((unsigned char)dash[1]);
  for (const char *c = dash ? dash + 1 : ""; dc_ok && *c; c++) dc_ok = isalnum((unsigned char)*c);
  if (!bf_params_str(p, mc_params, "base_url")) {
    if (!dc_ok) {
      const struct bf_node *n = bf_node_get(p, "api_key");
      rc = bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: %s: api_key must end with its data centre (…-us14)", n->loc.file,
                        n->loc.line, n->loc.col, what);
      goto out;
    }
    base = bf_xasprintf("https://%s.api.mailchimp.com/3.0", dash + 1);
  }
  const char *status = bf_params_str(p, mc_params, "status");
  if (strcmp(status, "subscribed") && strcmp(status, "pending") &&
      strcmp(status, "transactional") && strcmp(status, "unsubscribed")) {
    const struct bf_node *n = bf_node_get(p, "status");
    rc = bf_error_set(
        err, BF_E_CONFIG,
        "%s:%d:%d: %s: status must be subscribed, pending, transactional or unsubscribed",
        n->loc.file, n->loc.line, n->loc.col, what);
    goto out;
  }
  const char *action = bf_params_str(p, mc_params, "remove_action");
  if (strcmp(action, "archive") && strcmp(action, "delete_permanent")) {
    const struct bf_node *n = bf_node_get(p, "remove_action");
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: %s: remove_action must be archive or delete_permanent",
                      n->loc.file, n->loc.line, n->loc.col, what);
    goto out;
  }
  struct bf_http_options o;
  bf_http_options_defaults(&o, name, base, 0, 1, 4);
  o.retryable = bf_mc_retryable;
  if ((rc = bf_http_options_from_params(&o, p, mc_params, what, err))) goto out;
  if (o.max_in_flight > MC_MAX_CONNECTIONS) {
    bf_log_warn("%s: max_in_flight %u lowered to %d (Mailchimp allows 10 connections)", what,
                o.max_in_flight, MC_MAX_CONNECTIONS);
    o.max_in_flight = MC_MAX_CONNECTIONS;
  }
  if (!(d->http = bf_http_new(&o, err))) {
    rc = err->code ? err->code : BF_E_DESTINATION;
    goto out;
  }
  char *pair = bf_xasprintf("backflow:%s", key);
  size_t b64_cap = sodium_base64_ENCODED_LEN(strlen(pair), sodium_base64_VARIANT_ORIGINAL);
  char *b64 = bf_xmalloc(b64_cap);
  sodium_bin2base64(b64, b64_cap, (const unsigned char *)pair, strlen(pair),
                    sodium_base64_VARIANT_ORIGINAL);
  char *h = bf_xasprintf("Authorization: Basic %s", b64);
  bf_http_add_header(d->http, h, true);
  bf_http_add_secret(d->http, key);
  sodium_memzero(pair, strlen(pair));
  sodium_memzero(h, strlen(h));
  free(pair);
  free(b64);
  free(h);
  d->list_path = bf_xasprintf("/lists/%s", bf_params_str(p, mc_params, "list_id"));
  d->status = bf_xstrdup(status);
  d->update_existing = bf_params_bool(p, mc_params, "update_existing");
  d->delete_permanent = !strcmp(action, "delete_permanent");
  *out = &d->base;
out:
  free(base);
  free(what);
  free(name);
  if (rc) mc_close(&d->base);
  return rc;
}

/* Mailchimp problem JSON: {"title","status","detail"}. */
void bf_mc_problem(const struct bf_http_response *r, char *out, size_t cap) {
  out[0] = '\0';
  json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
  const char *title = json_string_value(json_object_get(root, "title"));
  const char *detail = json_string_value(json_object_get(root, "detail"));
  if (title || detail)
    snprintf(out, cap, "%s%s%s", title ? title : "", title && detail ? ": " : "",
             detail ? detail : "");
  json_decref(root);
}

static int unavailable(struct mc_destination *d, struct bf_http_response *r, struct bf_error *err) {
  char msg[240];
  bf_mc_problem(r, msg, sizeof msg);
  bf_http_scrub(d->http, msg);
  const char *hint;
  if (r->status == 401 || r->status == 403)
    hint = ": check api_key";
  else if (r->status == 404)
    hint = ": no such list (check list_id)";
  else if (bf_http_retryable(d->http, r) || r->status == 0)
    hint = ": still failing after retries";
  else
    return 0;
  return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (mailchimp %s): %s%s%s%s",
                      d->base.name, bf_http_base_url_shown(d->http),
                      r->error[0] ? r->error : "failed", msg[0] ? ": " : "", msg, hint);
}

static int mc_check(struct bf_destination *d_, struct bf_error *err) {
  struct mc_destination *d = (struct mc_destination *)d_;
  char *path = bf_xasprintf("%s?fields=id,name", d->list_path);
  struct bf_http_request req = {.method = "GET", .path = path, .no_retry = true};
  struct bf_http_response resp;
  int rc = bf_http_perform_one(d->http, &req, &resp, err);
  free(path);
  if (rc) return rc;
  if (!bf_http_ok(&resp) && !(rc = unavailable(d, &resp, err)))
    rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s' (mailchimp): HTTP %ld", d->base.name,
                      resp.status);
  bf_http_response_release(&resp);
  return rc;
}

/* ---- records ---------------------------------------------------------- */

static void set_outcome(struct bf_outcome *o, enum bf_outcome_status st, char *reason) {
  free(o->reason);
  o->status = st;
  o->reason = reason;
}

int bf_mc_email_column(const struct bf_batch *batch, struct bf_error *err) {
  const struct bf_mapping *m = batch->mapping;
  for (size_t i = 0; i < m->n_match; i++)
    if (!strcmp(m->match_names[i], "email_address") || !strcmp(m->match_names[i], "email"))
      return (int)i;
  return bf_error_set(err, BF_E_CONFIG,
                      "sync '%s': a mailchimp sync needs match: {email_address: <column>}",
                      batch->sync_name);
}

/* The record's email: trimmed as written into out, lower-cased into lower.
 * Returns NULL or a malloc'd rejection reason. */
char *bf_mc_record_email(const struct bf_batch *batch, const struct bf_record *rec, int col,
                         char out[BF_PII_MAX], char lower[BF_PII_MAX]) {
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
    present = json_is_string(v);
    if (present) s = json_string_value(v), n = json_string_length(v);
  }
  const char *why = "is empty";
  char *reason = NULL;
  if (!present || bf_pii_meta_email(s, n, lower, &why) < 0) {
    reason = bf_xasprintf("%s: %s", batch->mapping->match_names[col], why);
  } else {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    memcpy(out, s, n);
    out[n] = '\0';
  }
  json_decref(match);
  return reason;
}

static bool member_key(const char *name) {
  return !strcmp(name, "status") || !strcmp(name, "language") || !strcmp(name, "vip") ||
         !strcmp(name, "email_type");
}

void bf_mc_write_member(const struct bf_batch *batch, const struct bf_record *rec,
                        const char *email, const char *default_status, struct bf_buf *b,
                        struct bf_buf *tmp) {
  const struct bf_mapping *m = batch->mapping;
  bf_buf_puts(b, "{\"email_address\":");
  bf_json_cstr(b, email);
  bool status_set = false;
  struct bf_value tags = {.type = BF_NULL};
  for (size_t i = 0; i < m->n_fields; i++) {
    const char *name = m->field_names[i];
    if (!member_key(name)) continue;
    struct bf_value v = bf_mapping_field_value(m, i, &rec->values[m->n_match + i], tmp);
    if (v.type == BF_NULL) continue;
    if (!strcmp(name, "status")) status_set = true;
    bf_buf_putc(b, ',');
    bf_json_cstr(b, name);
    bf_buf_putc(b, ':');
    if (!strcmp(name, "vip"))
      bf_buf_puts(b, (v.type == BF_TEXT ? v.len && v.u.s[0] != '0' && v.u.s[0] != 'f' : v.u.i != 0)
                         ? "true"
                         : "false");
    else
      bf_json_value(b, &v);
  }
  if (!status_set) {
    bf_buf_puts(b, ",\"status\":");
    bf_json_cstr(b, default_status);
  }
  bool any_merge = false;
  for (size_t i = 0; i < m->n_fields; i++) {
    const char *name = m->field_names[i];
    if (member_key(name)) continue;
    if (!strcmp(name, "tags")) {
      tags = rec->values[m->n_match + i];
      continue;
    }
    bf_buf_puts(b, any_merge ? "," : ",\"merge_fields\":{");
    any_merge = true;
    bf_json_cstr(b, name);
    bf_buf_putc(b, ':');
    struct bf_value v = bf_mapping_field_value(m, i, &rec->values[m->n_match + i], tmp);
    if (v.type == BF_NULL)
      bf_buf_puts(b, "\"\""); /* Mailchimp clears a merge field with "" */
    else
      bf_json_value(b, &v);
  }
  for (size_t i = 0; i < m->n_constants; i++) {
    bf_buf_puts(b, any_merge ? "," : ",\"merge_fields\":{");
    any_merge = true;
    bf_json_cstr(b, m->constant_names[i]);
    bf_buf_putc(b, ':');
    bf_json_value(b, &m->constant_values[i]);
  }
  if (any_merge) bf_buf_putc(b, '}');
  if (tags.type == BF_TEXT && tags.len) {
    bf_buf_puts(b, ",\"tags\":[");
    const char *p = tags.u.s, *end = tags.u.s + tags.len;
    bool first = true;
    while (p < end) {
      const char *comma = memchr(p, ',', (size_t)(end - p));
      const char *q = comma ? comma : end, *s = p;
      while (s < q && isspace((unsigned char)*s)) s++;
      const char *e = q;
      while (e > s && isspace((unsigned char)e[-1])) e--;
      if (e > s) {
        if (!first) bf_buf_putc(b, ',');
        first = false;
        bf_json_str(b, s, (size_t)(e - s));
      }
      p = q + 1;
    }
    bf_buf_putc(b, ']');
  }
  bf_buf_putc(b, '}');
}

void bf_mc_apply_answer(const char *body, size_t len, char (*lower)[BF_PII_MAX], size_t first,
                        size_t n, struct bf_outcome *outcomes) {
  json_t *root = json_loadb(body ? body : "", len, 0, NULL);
  json_t *errors = json_object_get(root, "errors");
  if (!root || !json_is_array(errors)) {
    for (size_t i = first; i < first + n; i++)
      if (outcomes[i].status == BF_OUT_OK)
        set_outcome(&outcomes[i], BF_OUT_RETRY, bf_xstrdup("Mailchimp: answer without errors[]"));
    json_decref(root);
    return;
  }
  size_t k;
  json_t *e;
  json_array_foreach(errors, k, e) {
    const char *addr = json_string_value(json_object_get(e, "email_address"));
    const char *msg = json_string_value(json_object_get(e, "error"));
    const char *code = json_string_value(json_object_get(e, "error_code"));
    char al[BF_PII_MAX];
    const char *why;
    if (!addr || bf_pii_meta_email(addr, strlen(addr), al, &why) < 0) continue;
    for (size_t i = first; i < first + n; i++) {
      if (outcomes[i].status == BF_OUT_OK && !strcmp(lower[i], al)) {
        set_outcome(&outcomes[i], BF_OUT_REJECT,
                    bf_xasprintf("Mailchimp: %s%s%s", code ? code : "", code && msg ? ": " : "",
                                 msg ? msg : ""));
      }
    }
  }
  json_decref(root);
}

struct chunk {
  size_t first, n; /* records [first, first + n) of the batch */
  struct bf_buf body;
};

static int mc_push(struct bf_destination *d_, const struct bf_batch *batch,
                   struct bf_outcome *outcomes, struct bf_error *err) {
  struct mc_destination *d = (struct mc_destination *)d_;
  for (size_t i = 0; i < batch->n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_OK, NULL};
  if (!batch->n) return 0;
  int col = bf_mc_email_column(batch, err);
  if (col < 0) return col;
  /* Emails, lower-cased, for matching errors[] back to records. */
  char(*lower)[BF_PII_MAX] = bf_xmalloc(batch->n * sizeof *lower);
  size_t n_chunks = (batch->n + MC_MEMBERS_PER_REQUEST - 1) / MC_MEMBERS_PER_REQUEST;
  struct chunk *chunks = bf_xcalloc(n_chunks, sizeof *chunks);
  struct bf_http_request *reqs = bf_xcalloc(n_chunks, sizeof *reqs);
  struct bf_http_response *resps = bf_xcalloc(n_chunks, sizeof *resps);
  struct bf_buf tmp = {0};
  size_t n_reqs = 0;
  int rc = 0;
  for (size_t c = 0; c < n_chunks; c++) {
    struct chunk *ch = &chunks[c];
    ch->first = c * MC_MEMBERS_PER_REQUEST;
    ch->n = batch->n - ch->first < MC_MEMBERS_PER_REQUEST ? batch->n - ch->first
                                                          : MC_MEMBERS_PER_REQUEST;
    bf_buf_puts(&ch->body, "{\"members\":[");
    size_t members = 0;
    for (size_t i = ch->first; i < ch->first + ch->n; i++) {
      char email[BF_PII_MAX];
      char *reason = bf_mc_record_email(batch, &batch->records[i], col, email, lower[i]);
      if (reason) {
        set_outcome(&outcomes[i], BF_OUT_REJECT, reason);
        continue;
      }
      if (members++) bf_buf_putc(&ch->body, ',');
      bf_mc_write_member(batch, &batch->records[i], email, d->status, &ch->body, &tmp);
    }
    bf_buf_printf(&ch->body, "],\"update_existing\":%s}", d->update_existing ? "true" : "false");
    if (!members) continue;
    reqs[n_reqs] = (struct bf_http_request){.method = "POST",
                                            .path = d->list_path,
                                            .body = ch->body.data,
                                            .body_len = ch->body.len,
                                            .user = ch};
    n_reqs++;
  }
  if (n_reqs && (rc = bf_http_perform(d->http, reqs, resps, n_reqs, NULL, NULL, err))) goto out;
  for (size_t r = 0; r < n_reqs && !rc; r++) {
    struct chunk *ch = reqs[r].user;
    struct bf_http_response *resp = &resps[r];
    if (!bf_http_ok(resp)) {
      if ((rc = unavailable(d, resp, err))) break;
      char msg[240];
      bf_mc_problem(resp, msg, sizeof msg);
      for (size_t i = ch->first; i < ch->first + ch->n; i++)
        if (outcomes[i].status == BF_OUT_OK)
          set_outcome(&outcomes[i], BF_OUT_REJECT,
                      bf_xasprintf("Mailchimp: HTTP %ld: %s", resp->status, msg));
      continue;
    }
    bf_mc_apply_answer(resp->body.data, resp->body.len, lower, ch->first, ch->n, outcomes);
  }
out:
  bf_http_responses_release(resps, n_reqs);
  for (size_t c = 0; c < n_chunks; c++) bf_buf_release(&chunks[c].body);
  sodium_memzero(lower, batch->n * sizeof *lower);
  free(lower);
  free(chunks);
  free(reqs);
  free(resps);
  bf_buf_release(&tmp);
  return rc;
}

static int mc_remove(struct bf_destination *d_, const struct bf_batch *batch,
                     struct bf_outcome *outcomes, struct bf_error *err) {
  struct mc_destination *d = (struct mc_destination *)d_;
  for (size_t i = 0; i < batch->n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_OK, NULL};
  if (!batch->n) return 0;
  int col = bf_mc_email_column(batch, err);
  if (col < 0) return col;
  struct bf_http_request *reqs = bf_xcalloc(batch->n, sizeof *reqs);
  struct bf_http_response *resps = bf_xcalloc(batch->n, sizeof *resps);
  char **paths = bf_xcalloc(batch->n, sizeof *paths);
  size_t n_reqs = 0;
  int rc = 0;
  for (size_t i = 0; i < batch->n; i++) {
    char email[BF_PII_MAX], lower[BF_PII_MAX], hash[33];
    char *reason = bf_mc_record_email(batch, &batch->records[i], col, email, lower);
    if (reason) {
      set_outcome(&outcomes[i], BF_OUT_REJECT, reason);
      continue;
    }
    bf_mc_subscriber_hash(lower, strlen(lower), hash);
    paths[i] = bf_xasprintf("%s/members/%s%s", d->list_path, hash,
                            d->delete_permanent ? "/actions/delete-permanent" : "");
    reqs[n_reqs++] = (struct bf_http_request){.method = d->delete_permanent ? "POST" : "DELETE",
                                              .path = paths[i],
                                              .user = (void *)(uintptr_t)i};
  }
  if (n_reqs && (rc = bf_http_perform(d->http, reqs, resps, n_reqs, NULL, NULL, err))) goto out;
  for (size_t r = 0; r < n_reqs && !rc; r++) {
    size_t i = (size_t)(uintptr_t)reqs[r].user;
    struct bf_http_response *resp = &resps[r];
    if (bf_http_ok(resp) || resp->status == 404) continue; /* 404: already gone */
    if ((rc = unavailable(d, resp, err))) break;
    char msg[240];
    bf_mc_problem(resp, msg, sizeof msg);
    set_outcome(&outcomes[i], BF_OUT_REJECT,
                bf_xasprintf("Mailchimp: HTTP %ld: %s", resp->status, msg));
  }
out:
  bf_http_responses_release(resps, n_reqs);
  for (size_t i = 0; i < batch->n; i++) free(paths[i]);
  free(paths);
  free(reqs);
  free(resps);
  return rc;
}

const struct bf_destination_type bf_destination_mailchimp = {
    .name = "mailchimp",
    .params = mc_params,
    .max_batch = 5000,
    .default_batch = 2000,
    .needs_identifier_for_delete = true,
    .open = mc_open,
    .check = mc_check,
    .push = mc_push,
    .remove = mc_remove,
    .close = mc_close,
};

/* meta_audience: members of a Meta (Facebook/Instagram) Customer File
 * Custom Audience. A model row entering the segment is added, one leaving
 * it is removed (mode: mirror).
 *
 *   destinations:
 *     fb: {type: meta_audience, token: "${META_TOKEN}", audience_id: "2384..."}
 *   syncs:
 *     vip_to_fb: {model: vip, destination: fb, mode: mirror,
 *                 match: {EMAIL: email}, fields: {PHONE: phone, FN: first_name, COUNTRY: country}}
 *
 * The sync's match and field names are Meta's multi-key schema keys. Each
 * value is normalised per Meta's rule for its key and SHA-256 hashed here
 * (src/core/pii_normalize.c): a value that cannot be normalised rejects
 * its row with the key and the reason, never sends the hash of garbage.
 * EXTERN_ID and MADID go in clear, as Meta asks.
 *
 *   add:    POST   /{api_version}/{audience_id}/users  {payload:{schema,data}, session}
 *   remove: DELETE /{api_version}/{audience_id}/users  (same body; match keys only,
 *           since a removed row is known only by its sealed match values)
 *
 * Up to 10,000 rows per call. The calls of one run are tied by a session
 * per direction (session_id random per run, batch_seq 1, 2, ...). Graph
 * throttling errors (codes 4, 17, 32, 613, 80003, 80004, or is_transient)
 * arrive as HTTP 400 and are retried like 429/5xx. The answer's
 * num_invalid_entries and invalid_entry_samples reject the rows they name;
 * a num_received that is not the number of rows sent makes the batch retry. */
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "util/log.h"
#include "util/pii_normalize.h"
#include "destinations/ads_internal.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

#define META_MAX_ROWS 10000

struct bf_meta_key {
  const char *name;
  bf_pii_fn normalize;
  bool hashed;
};

/* Meta's multi-key schema (customer file custom audiences). */
static const struct bf_meta_key meta_keys[] = {
    {"EMAIL", bf_pii_meta_email, true},      {"PHONE", bf_pii_meta_phone, true},
    {"FN", bf_pii_meta_name, true},          {"LN", bf_pii_meta_name, true},
    {"FI", bf_pii_meta_first_initial, true}, {"CT", bf_pii_meta_city, true},
    {"ST", bf_pii_meta_state, true},         {"ZIP", bf_pii_meta_zip, true},
    {"COUNTRY", bf_pii_meta_country, true},  {"DOBY", bf_pii_meta_dob_year, true},
    {"DOBM", bf_pii_meta_dob_month, true},   {"DOBD", bf_pii_meta_dob_day, true},
    {"GEN", bf_pii_meta_gender, true},       {"EXTERN_ID", bf_pii_external_id, false},
    {"MADID", bf_pii_meta_madid, false},
};
#define N_META_KEYS (sizeof meta_keys / sizeof meta_keys[0])
_Static_assert(N_META_KEYS == BF_META_N_KEYS, "BF_META_N_KEYS counts meta_keys");

static const struct bf_param_spec meta_params[] = {
    BF_HTTP_PARAMS("https://graph.facebook.com"),
    {"token", BF_PARAM_STRING, NULL, true, true,
     "Graph API access token (system user, ads_management)"},
    {"audience_id", BF_PARAM_STRING, NULL, true, false, "id of the customer-file custom audience"},
    {"api_version", BF_PARAM_STRING, "v21.0", false, false, "Graph API version in the path"},
    {"replace_on_full_resync", BF_PARAM_BOOL, "true", false, false,
     "run --full-resync of a mirror sync replaces the audience (usersreplace)"},
    {NULL, 0, NULL, false, false, NULL},
};

struct meta_session {
  uint64_t id;
  unsigned seq;
};

/* The usersreplace session of a full resync: its batches replace the
 * audience once the last one (last_batch_flag) is in. */
struct meta_replace {
  struct meta_session s;
  bool enabled, closed;
  struct bf_buf last;  /* the last usersreplace body sent (to close an open session) */
  size_t last_payload; /* its length before ,"session" */
  size_t last_rows;
  long long rows; /* rows sent in the session */
};

struct meta_destination {
  struct bf_destination base;
  struct bf_http *http;
  char *users_path;    /* /v21.0/<audience>/users */
  char *replace_path;  /* /v21.0/<audience>/usersreplace */
  char *audience_path; /* /v21.0/<audience> */
  struct meta_session add, remove;
  struct meta_replace replace;
  struct bf_buf body;
  struct bf_meta_rows rows; /* the batch being sent */
  bool warned_constants;
};

#define CELL(t, row, col) ((t)->cells.data + (t)->cell_off[(row) * (t)->n_cols + (col)])

static const struct bf_meta_key *find_key(const char *name) {
  for (size_t i = 0; i < N_META_KEYS; i++)
    if (!strcmp(meta_keys[i].name, name)) return &meta_keys[i];
  return NULL;
}

/* Graph error codes that mean "slow down" or "try again". */
static bool graph_code_transient(long long code) {
  return code == 1 || code == 2 || code == 4 || code == 17 || code == 32 || code == 341 ||
         code == 613 || code == 80003 || code == 80004;
}

bool bf_meta_graph_error(const char *body, size_t len, long long *code, long long *subcode,
                         char *msg, size_t msg_cap, bool *transient) {
  *code = *subcode = 0;
  *transient = false;
  if (msg_cap) msg[0] = '\0';
  json_t *root = json_loadb(body ? body : "", len, 0, NULL);
  json_t *e = root ? json_object_get(root, "error") : NULL;
  bool found = json_is_object(e);
  if (found) {
    *code = json_integer_value(json_object_get(e, "code"));
    *subcode = json_integer_value(json_object_get(e, "error_subcode"));
    *transient = json_is_true(json_object_get(e, "is_transient"));
    const char *m = json_string_value(json_object_get(e, "message"));
    if (m && msg_cap) snprintf(msg, msg_cap, "%s", m);
  }
  json_decref(root);
  return found;
}

bool bf_meta_retryable(const struct bf_http_response *r, void *arg) {
  if (bf_http_default_retryable(r, arg)) return true;
  if (r->status < 400 || r->status >= 500) return false;
  long long code, subcode;
  bool transient;
  char msg[8];
  if (!bf_meta_graph_error(r->body.data, r->body.len, &code, &subcode, msg, sizeof msg, &transient))
    return false;
  return transient || graph_code_transient(code);
}

/* ---- rows: schema, normalisation, payload ----------------------------- */

int bf_meta_rows_schema(struct bf_meta_rows *t, const struct bf_batch *batch, bool adds,
                        struct bf_error *err) {
  const struct bf_mapping *m = batch->mapping;
  size_t n = m->n_match + (adds ? m->n_fields : 0);
  t->n_cols = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = i < m->n_match ? m->match_names[i] : m->field_names[i - m->n_match];
    const struct bf_meta_key *k = find_key(name);
    if (!k) {
      char known[256] = "";
      for (size_t j = 0; j < N_META_KEYS; j++) {
        if (j) strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, meta_keys[j].name, sizeof known - strlen(known) - 1);
      }
      return bf_error_set(err, BF_E_CONFIG,
                          "sync '%s': '%s' is not a Meta audience schema key (known: %s)",
                          batch->sync_name, name, known);
    }
    for (size_t j = 0; j < t->n_cols; j++)
      if (t->cols[j] == k)
        return bf_error_set(err, BF_E_CONFIG, "sync '%s': schema key '%s' is mapped twice",
                            batch->sync_name, name);
    t->cols[t->n_cols++] = k;
  }
  if (!t->n_cols)
    return bf_error_set(err, BF_E_CONFIG, "sync '%s': no Meta schema key is mapped",
                        batch->sync_name);
  return 0;
}

void bf_meta_rows_reset(struct bf_meta_rows *t, size_t n) {
  if (t->cell_off_cap < n * t->n_cols) {
    t->cell_off_cap = n * t->n_cols;
    t->cell_off = bf_xrealloc(t->cell_off, t->cell_off_cap * sizeof *t->cell_off);
  }
  bf_buf_reset(&t->cells);
  bf_buf_reserve(&t->cells, n * t->n_cols * BF_PII_SHA256_HEX);
}

const char *bf_meta_rows_cell(const struct bf_meta_rows *t, size_t row, size_t col) {
  return CELL(t, row, col);
}

const char *bf_meta_rows_key(const struct bf_meta_rows *t, size_t col) {
  return t->cols[col]->name;
}

void bf_meta_rows_release(struct bf_meta_rows *t) {
  if (t->cells.data) sodium_memzero(t->cells.data, t->cells.cap);
  bf_buf_release(&t->cells);
  free(t->cell_off);
  t->cell_off = NULL;
  t->cell_off_cap = 0;
}

char *bf_meta_rows_add(struct bf_meta_rows *t, const struct bf_batch *batch,
                       const struct bf_record *rec, size_t row) {
  const struct bf_mapping *m = batch->mapping;
  json_t *match = NULL;
  if (!rec->values) match = json_loadb(rec->match_json, rec->match_json_len, 0, NULL);
  size_t rewind = t->cells.len;
  char *reason = NULL;
  size_t filled = 0;
  for (size_t c = 0; c < t->n_cols; c++) {
    char num[48], text[BF_PII_MAX];
    const char *s = NULL;
    size_t n = 0;
    bool present;
    if (rec->values)
      present = bf_pii_value_text(&rec->values[c], num, sizeof num, &s, &n);
    else if (c < m->n_match)
      present =
          bf_ads_json_text(json_object_get(match, m->match_names[c]), num, sizeof num, &s, &n);
    else
      present = false;
    const struct bf_meta_key *k = t->cols[c];
    const char *why = NULL;
    int rc = 0;
    text[0] = '\0';
    if (present) {
      rc = k->hashed ? bf_pii_normalize_hash(k->normalize, s, n, text, &why)
                     : (k->normalize(s, n, text, &why) < 0 ? -1 : 0);
      if (rc) {
        /* Blank text is a missing value, not an invalid one. */
        size_t b = 0;
        while (b < n && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) b++;
        if (b < n) {
          reason = bf_xasprintf("%s: %s", k->name, why);
          break;
        }
        text[0] = '\0';
      } else {
        filled++;
      }
    }
    t->cell_off[row * t->n_cols + c] = t->cells.len;
    bf_buf_append(&t->cells, text, strlen(text) + 1);
  }
  json_decref(match);
  if (!reason && !filled) reason = bf_xstrdup("no identifier: every mapped Meta key is empty");
  if (reason) t->cells.len = rewind;
  return reason;
}

static void set_outcome(struct bf_outcome *o, enum bf_outcome_status st, char *reason) {
  free(o->reason);
  o->status = st;
  o->reason = reason;
}

/* Maps invalid_entry_samples back to the rows holding the sampled value. */
static size_t reject_samples(const struct bf_meta_rows *t, json_t *samples, const size_t *row_of,
                             size_t n_records, struct bf_outcome *outcomes) {
  size_t rejected = 0;
  const char *value;
  json_t *why;
  json_object_foreach(samples, value, why) {
    const char *reason = json_string_value(why);
    for (size_t i = 0; i < n_records; i++) {
      if (row_of[i] == (size_t)-1 || outcomes[i].status != BF_OUT_OK) continue;
      for (size_t c = 0; c < t->n_cols; c++) {
        if (!strcmp(CELL(t, row_of[i], c), value)) {
          set_outcome(&outcomes[i], BF_OUT_REJECT,
                      bf_xasprintf("Meta: invalid %s entry: %s", t->cols[c]->name,
                                   reason ? reason : "invalid"));
          rejected++;
          break;
        }
      }
    }
  }
  return rejected;
}

void bf_meta_write_payload(const struct bf_meta_rows *t, size_t n_rows, struct bf_buf *b) {
  bf_buf_puts(b, "{\"payload\":{\"schema\":");
  if (t->n_cols == 1) {
    bf_json_cstr(b, t->cols[0]->name); /* single key: a string, as Meta's examples */
  } else {
    bf_buf_putc(b, '[');
    for (size_t c = 0; c < t->n_cols; c++) {
      if (c) bf_buf_putc(b, ',');
      bf_json_cstr(b, t->cols[c]->name);
    }
    bf_buf_putc(b, ']');
  }
  bf_buf_puts(b, ",\"data\":[");
  bf_buf_reserve(b, n_rows * t->n_cols * 68);
  for (size_t r = 0; r < n_rows; r++) {
    if (r) bf_buf_putc(b, ',');
    bf_buf_putc(b, '[');
    for (size_t c = 0; c < t->n_cols; c++) {
      if (c) bf_buf_putc(b, ',');
      const char *cell = CELL(t, r, c);
      if (t->cols[c]->hashed) { /* hex only: no escaping needed */
        bf_buf_putc(b, '"');
        bf_buf_puts(b, cell);
        bf_buf_putc(b, '"');
      } else {
        bf_json_cstr(b, cell);
      }
    }
    bf_buf_putc(b, ']');
  }
  bf_buf_puts(b, "]}");
}

void bf_meta_write_session(struct bf_buf *b, uint64_t session_id, unsigned batch_seq, bool last) {
  bf_buf_printf(b, ",\"session\":{\"session_id\":%llu,\"batch_seq\":%u,\"last_batch_flag\":%s}}",
                (unsigned long long)session_id, batch_seq, last ? "true" : "false");
}

void bf_meta_apply_answer(const char *dest_name, const struct bf_meta_rows *t, const char *body,
                          size_t len, const size_t *row_of, size_t n_records, size_t n_rows,
                          struct bf_outcome *outcomes) {
  json_t *root = json_loadb(body ? body : "", len, 0, NULL);
  json_t *received = root ? json_object_get(root, "num_received") : NULL;
  long long n_received = json_is_integer(received) ? json_integer_value(received) : -1;
  long long n_invalid = json_integer_value(json_object_get(root, "num_invalid_entries"));
  if (n_received != (long long)n_rows) {
    /* We cannot tell which rows Meta took: send them all again (adds and
     * removes are idempotent). */
    char *why = bf_xasprintf("Meta answered num_received %lld for %zu rows", n_received, n_rows);
    bf_log_warn("destination '%s': %s; the batch will be sent again", dest_name, why);
    for (size_t i = 0; i < n_records; i++)
      if (row_of[i] != (size_t)-1) set_outcome(&outcomes[i], BF_OUT_RETRY, bf_xstrdup(why));
    free(why);
  } else if (n_invalid > 0) {
    json_t *samples = json_object_get(root, "invalid_entry_samples");
    size_t named =
        json_is_object(samples) ? reject_samples(t, samples, row_of, n_records, outcomes) : 0;
    if ((long long)named < n_invalid)
      bf_log_warn("destination '%s': Meta found %lld invalid entries and named %zu; the others "
                  "count as sent",
                  dest_name, n_invalid, named);
  }
  json_decref(root);
}

/* ---- the destination --------------------------------------------------- */

static void meta_close(struct bf_destination *d_) {
  struct meta_destination *d = (struct meta_destination *)d_;
  if (!d) return;
  bf_http_free(d->http);
  free(d->users_path);
  free(d->replace_path);
  free(d->audience_path);
  bf_buf_release(&d->body);
  bf_buf_release(&d->replace.last);
  bf_meta_rows_release(&d->rows);
  free(d);
}

static uint64_t new_session_id(void) {
  uint64_t id;
  randombytes_buf(&id, sizeof id);
  id &= 0x7fffffffffffffffULL; /* a positive 64-bit integer */
  return id ? id : 1;
}

static int meta_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                     struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  struct meta_destination *d = bf_xcalloc(1, sizeof *d);
  char *what = bf_xasprintf("destination '%s' (meta_audience)", dc->name);
  char *name = bf_xasprintf("meta_audience:%s", dc->name);
  int rc = 0;
  const char *audience = bf_params_str(p, meta_params, "audience_id");
  const char *version = bf_params_str(p, meta_params, "api_version");
  for (const char *c = audience; *c; c++) {
    if (*c < '0' || *c > '9') {
      const struct bf_node *n = bf_node_get(p, "audience_id");
      rc = bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: %s: audience_id must be the audience's numeric id", n->loc.file,
                        n->loc.line, n->loc.col, what);
      goto out;
    }
  }
  struct bf_http_options o;
  /* Meta's custom_audience limits are per ad account per hour (business use
   * case); 10 calls/s of 10,000 rows stays well inside them. */
  bf_http_options_defaults(&o, name, "https://graph.facebook.com", 10, 10, 4);
  o.retryable = bf_meta_retryable;
  if ((rc = bf_http_options_from_params(&o, p, meta_params, what, err))) goto out;
  if (!(d->http = bf_http_new(&o, err))) {
    rc = err->code ? err->code : BF_E_DESTINATION;
    goto out;
  }
  char *auth = bf_xasprintf("Authorization: Bearer %s", bf_params_str(p, meta_params, "token"));
  bf_http_add_header(d->http, auth, true);
  sodium_memzero(auth, strlen(auth));
  free(auth);
  d->audience_path = bf_xasprintf("/%s/%s", version, audience);
  d->users_path = bf_xasprintf("/%s/%s/users", version, audience);
  d->replace_path = bf_xasprintf("/%s/%s/usersreplace", version, audience);
  d->replace.enabled = bf_params_bool(p, meta_params, "replace_on_full_resync");
  d->replace.s.id = new_session_id();
  d->add.id = new_session_id();
  d->remove.id = new_session_id();
  *out = &d->base;
out:
  free(what);
  free(name);
  if (rc) meta_close(&d->base);
  return rc;
}

/* A Graph error answer as a destination error or nothing (0). */
static int unavailable(struct meta_destination *d, struct bf_http_response *r,
                       struct bf_error *err) {
  long long code, subcode;
  bool transient;
  char msg[200];
  bool graph =
      bf_meta_graph_error(r->body.data, r->body.len, &code, &subcode, msg, sizeof msg, &transient);
  bf_http_scrub(d->http, msg);
  const char *hint = "";
  if (r->status == 401 || code == 190)
    hint = ": the access token is invalid or expired";
  else if (code == 10 || code == 200 || code == 294 || r->status == 403)
    hint = ": the token lacks ads_management permission on this audience's ad account";
  else if (subcode == 1713230)
    hint = ": the audience cannot be edited (flagged or being deleted)";
  else if (r->status == 404 || (code == 100 && subcode == 33))
    hint = ": no such audience (check audience_id)";
  else if (bf_http_retryable(d->http, r))
    hint = ": still failing after retries";
  else
    return 0;
  return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (meta_audience %s): %s%s%s%s",
                      d->base.name, bf_http_base_url_shown(d->http),
                      r->error[0] ? r->error : "HTTP error", graph ? ": " : "", graph ? msg : "",
                      hint);
}

static int meta_check(struct bf_destination *d_, struct bf_error *err) {
  struct meta_destination *d = (struct meta_destination *)d_;
  char *path = bf_xasprintf("%s?fields=id,name,operation_status", d->audience_path);
  struct bf_http_request req = {.method = "GET", .path = path, .no_retry = true};
  struct bf_http_response resp;
  int rc = bf_http_perform_one(d->http, &req, &resp, err);
  free(path);
  if (rc) return rc;
  if (!bf_http_ok(&resp) && !(rc = unavailable(d, &resp, err)))
    rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s' (meta_audience): %s", d->base.name,
                      resp.error[0] ? resp.error : "check failed");
  bf_http_response_release(&resp);
  return rc;
}

/* A usersreplace request Meta did not take: the run stops, the session
 * stays without its last batch (Meta does not end it), and the rows this
 * run counted as sent may be missing until a full resync succeeds. */
static int replace_failed(struct meta_destination *d, struct bf_http_response *r,
                          struct bf_error *err) {
  int rc = unavailable(d, r, err);
  if (!rc) {
    long long code, subcode;
    bool transient;
    char msg[300];
    bf_meta_graph_error(r->body.data, r->body.len, &code, &subcode, msg, sizeof msg, &transient);
    bf_http_scrub(d->http, msg);
    rc = bf_error_set(err, BF_E_DESTINATION,
                      "destination '%s' (meta_audience): usersreplace batch %u "
                      "refused: HTTP %ld, code %lld/%lld: %s",
                      d->base.name, d->replace.s.seq, r->status, code, subcode,
                      msg[0] ? msg : "refused");
  }
  bf_log_warn(
      "destination '%s': the full resync stopped inside Meta's replace session %llu (batch %u): "
      "the audience is not replaced; run the full resync again",
      d->base.name, (unsigned long long)d->replace.s.id, d->replace.s.seq);
  d->replace.closed = true; /* what follows in this run only adds */
  return rc;
}

static void replace_done(struct meta_destination *d) {
  d->replace.closed = true;
  bf_log_info(
      "destination '%s': full resync: Meta replaces the audience with the %lld rows of replace "
      "session %llu (%u batches)",
      d->base.name, d->replace.rows, (unsigned long long)d->replace.s.id, d->replace.s.seq);
}

/* Ends the replace session when the last batch brought no row to send:
 * the previous usersreplace body again (the same rows: a no-op) with
 * last_batch_flag. A full resync that sent no row replaces nothing. */
static int close_replace(struct meta_destination *d, struct bf_error *err) {
  if (d->replace.closed) return 0;
  if (!d->replace.s.seq) {
    d->replace.closed = true;
    bf_log_info("destination '%s': full resync sent no row; the audience is not replaced (removals "
                "follow)",
                d->base.name);
    return 0;
  }
  struct bf_buf *b = &d->replace.last;
  b->len = d->replace.last_payload;
  bf_meta_write_session(b, d->replace.s.id, ++d->replace.s.seq, true);
  struct bf_http_request req = {
      .method = "POST", .path = d->replace_path, .body = b->data, .body_len = b->len};
  struct bf_http_response resp;
  int rc = bf_http_perform_one(d->http, &req, &resp, err);
  if (rc) return rc;
  if (!bf_http_ok(&resp)) {
    rc = replace_failed(d, &resp, err);
  } else {
    json_t *root = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    json_t *got = json_object_get(root, "num_received");
    if (!json_is_integer(got) || json_integer_value(got) != (long long)d->replace.last_rows)
      bf_log_warn(
          "destination '%s': Meta answered the closing usersreplace batch with num_received %lld "
          "for %zu rows",
          d->base.name, json_is_integer(got) ? json_integer_value(got) : -1LL,
          d->replace.last_rows);
    json_decref(root);
    replace_done(d);
  }
  bf_http_response_release(&resp);
  return rc;
}

static int send_batch(struct meta_destination *d, const struct bf_batch *batch,
                      struct bf_outcome *outcomes, bool adds, struct bf_error *err) {
  for (size_t i = 0; i < batch->n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_OK, NULL};
  /* A full resync of a mirror sync: its upserts go to usersreplace in one
   * session, the last batch ends it (and Meta drops every member this run
   * did not send). Anything after that adds. */
  bool replace =
      adds && d->replace.enabled && batch->resync != BF_RESYNC_NONE && !d->replace.closed;
  bool last = replace && batch->resync == BF_RESYNC_LAST;
  if (!batch->n) return last ? close_replace(d, err) : 0;
  struct bf_meta_rows *t = &d->rows;
  int rc = bf_meta_rows_schema(t, batch, adds, err);
  if (rc) return rc;
  if (batch->mapping->n_constants && !d->warned_constants && (d->warned_constants = true))
    bf_log_warn("sync '%s': constants are not sent to a Meta audience", batch->sync_name);
  if (batch->n > META_MAX_ROWS) {
    /* The runner never sends more than max_batch; split anyway (only the
     * final part can be a full resync's last). */
    struct bf_batch part = *batch;
    for (size_t off = 0; off < batch->n && !rc; off += META_MAX_ROWS) {
      part.records = batch->records + off;
      part.n = batch->n - off < META_MAX_ROWS ? batch->n - off : META_MAX_ROWS;
      part.resync = batch->resync == BF_RESYNC_LAST && off + part.n < batch->n ? BF_RESYNC_BATCH
                                                                               : batch->resync;
      rc = send_batch(d, &part, outcomes + off, adds, err);
    }
    return rc;
  }
  bf_meta_rows_reset(t, batch->n);
  size_t *row_of = bf_xmalloc(batch->n * sizeof *row_of);
  size_t n_rows = 0;
  for (size_t i = 0; i < batch->n; i++) {
    char *reason = bf_meta_rows_add(t, batch, &batch->records[i], n_rows);
    if (reason) {
      set_outcome(&outcomes[i], BF_OUT_REJECT, reason);
      row_of[i] = (size_t)-1;
    } else {
      row_of[i] = n_rows++;
    }
  }
  if (!n_rows) {
    if (last) rc = close_replace(d, err);
    goto out;
  }
  struct meta_session *session = replace ? &d->replace.s : adds ? &d->add : &d->remove;
  bf_buf_reset(&d->body);
  bf_meta_write_payload(t, n_rows, &d->body);
  size_t payload_len = d->body.len;
  bf_meta_write_session(&d->body, session->id, ++session->seq, last);
  struct bf_http_request req = {.method = adds ? "POST" : "DELETE",
                                .path = replace ? d->replace_path : d->users_path,
                                .body = d->body.data,
                                .body_len = d->body.len};
  struct bf_http_response resp;
  if ((rc = bf_http_perform_one(d->http, &req, &resp, err))) goto out;
  if (!bf_http_ok(&resp)) {
    if (replace) {
      rc = replace_failed(d, &resp, err);
      goto release;
    }
    if ((rc = unavailable(d, &resp, err))) goto release;
    /* Refused for a reason that is not about availability: the batch is
     * rejected with Meta's message (the runner scrubs values from it). */
    long long code, subcode;
    bool transient;
    char msg[300];
    bf_meta_graph_error(resp.body.data, resp.body.len, &code, &subcode, msg, sizeof msg,
                        &transient);
    bf_http_scrub(d->http, msg);
    for (size_t i = 0; i < batch->n; i++)
      if (row_of[i] != (size_t)-1)
        set_outcome(&outcomes[i], BF_OUT_REJECT,
                    bf_xasprintf("Meta: HTTP %ld, code %lld: %s", resp.status, code,
                                 msg[0] ? msg : "refused"));
    goto release;
  }
  bf_meta_apply_answer(d->base.name, t, resp.body.data, resp.body.len, row_of, batch->n, n_rows,
                       outcomes);
  if (replace) {
    /* Keep this body: it closes the session if the last batch has no row. */
    struct bf_buf keep = d->replace.last;
    d->replace.last = d->body;
    d->body = keep;
    d->replace.last_payload = payload_len;
    d->replace.last_rows = n_rows;
    d->replace.rows += (long long)n_rows;
    if (last) replace_done(d);
  }
release:
  bf_http_response_release(&resp);
out:
  free(row_of);
  return rc;
}

static int meta_push(struct bf_destination *d, const struct bf_batch *batch,
                     struct bf_outcome *outcomes, struct bf_error *err) {
  return send_batch((struct meta_destination *)d, batch, outcomes, true, err);
}

static int meta_remove(struct bf_destination *d, const struct bf_batch *batch,
                       struct bf_outcome *outcomes, struct bf_error *err) {
  return send_batch((struct meta_destination *)d, batch, outcomes, false, err);
}

const struct bf_destination_type bf_destination_meta_audience = {
    .name = "meta_audience",
    .params = meta_params,
    .max_batch = META_MAX_ROWS,
    .default_batch = META_MAX_ROWS,
    .needs_identifier_for_delete = true,
    .open = meta_open,
    .check = meta_check,
    .push = meta_push,
    .remove = meta_remove,
    .close = meta_close,
};

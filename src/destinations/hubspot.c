/* hubspot: CRM v3 objects (contacts, companies, deals, custom objects).
 *
 * Upserts go to POST /crm/v3/objects/{object}/batch/upsert, 100 inputs per
 * request, several requests in flight. The sync's single `match` key is the
 * idProperty (`match: {email: email}` upserts contacts by email; a custom
 * object needs a unique property). Every value is sent as a string, the way
 * HubSpot stores properties: numbers in decimal, booleans "true"/"false",
 * timestamps ISO 8601, NULL as "" (clears the property).
 *
 * Each input carries objectWriteTraceId = its position in the request, so a
 * 200/207 answer maps back to records: results -> ok, errors -> reject with
 * HubSpot's category and message (rate-limit or internal errors -> retry).
 * HubSpot refuses a whole batch (400) when one input is invalid: the request
 * is then split in halves until the bad inputs stand alone, so one bad row
 * does not hold back 99 good ones.
 *
 * mode: update resolves ids first (batch/read) and rejects records HubSpot
 * does not have; mode: insert rejects those it has. Mirror deletes resolve
 * ids with batch/read by the idProperty, then batch/archive them; a record
 * HubSpot no longer has counts as deleted. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "util/log.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

#define HS_MAX_INPUTS 100

enum hs_type { HS_STRING = 0, HS_NUMBER, HS_BOOL, HS_DATE, HS_DATETIME };

/* An object's property definitions, read once per run (GET
 * /crm/v3/properties/{object}) so values are written as each property's
 * type wants and a misspelt property stops the run before anything is sent. */
struct hs_schema {
  char *object;
  size_t n;
  char **names;
  enum hs_type *types;
  bool known; /* false: the token may not read schemas; send values as they are */
};

struct hubspot_destination {
  struct bf_destination base;
  struct bf_http *http;
  char *name;
  struct bf_buf tmp, text;
  struct hs_schema *schemas;
  size_t n_schemas;
  enum hs_type *field_types; /* per push: type of each mapped field, then each constant */
  size_t field_types_cap;
};

static const struct bf_param_spec hubspot_params[] = {
    BF_HTTP_PARAMS("https://api.hubapi.com"),
    {"token", BF_PARAM_STRING, NULL, true, true, "private app (or OAuth) access token"},
    {NULL, 0, NULL, false, false, NULL},
};

/* One HTTP request: positions (into the batch) of the records it carries. */
struct piece {
  size_t *recs;
  size_t n;
  struct bf_buf body;
};

struct pieces {
  struct piece *items;
  size_t n, cap;
};

static void pieces_add(struct pieces *p, size_t *recs, size_t n) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 16;
    p->items = bf_xrealloc(p->items, p->cap * sizeof *p->items);
  }
  p->items[p->n++] = (struct piece){recs, n, {0}};
}

static void pieces_clear(struct pieces *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->items[i].recs);
    bf_buf_release(&p->items[i].body);
  }
  p->n = 0;
}

static void pieces_release(struct pieces *p) {
  pieces_clear(p);
  free(p->items);
  p->items = NULL;
  p->cap = 0;
}

static void set_outcome(struct bf_outcome *o, enum bf_outcome_status st, const char *reason) {
  free(o->reason);
  o->status = st;
  o->reason = reason ? bf_xstrdup(reason) : NULL;
}

static bool valid_object_name(const char *s) {
  if (!s || !*s || strlen(s) > 100) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return false;
  return true;
}

/* ---- open / check / close ----------------------------------------------- */

static int hubspot_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                        struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  int rc = 0;
  /* Every sync to this destination needs one match key (the idProperty)
   * and a valid object name: say so at config time, with the place. */
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    const struct bf_sync_config *s = &cfg->syncs[i];
    if (strcmp(s->destination, dc->name) != 0) continue;
    if (s->match.n != 1)
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: sync '%s': hubspot needs exactly one match key, the unique "
                          "property records are upserted by (e.g. match: {email: email})",
                          s->loc.file, s->loc.line, s->loc.col, s->name);
    if (s->object && !valid_object_name(s->object))
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: sync '%s': object must be a HubSpot object type such as "
                          "contacts, companies, deals or a custom object's name or id",
                          s->loc.file, s->loc.line, s->loc.col, s->name);
  }
  char *what = bf_xasprintf("destination '%s' (hubspot)", dc->name);
  char *name = bf_xasprintf("hubspot:%s", dc->name);
  struct bf_http_options o;
  /* Documented burst limit: 100 requests per rolling 10 s on the smallest
   * tiers (more on Pro/Enterprise: raise rate_limit). 10/s with a bucket of
   * 1, less the transport's 1% headroom, admits at most 1 + 99 in any 10 s. */
  bf_http_options_defaults(&o, name, "https://api.hubapi.com", 10, 1, 4);
  rc = bf_http_options_from_params(&o, p, hubspot_params, what, err);
  free(what);
  if (rc) {
    free(name);
    return rc;
  }
  struct bf_http *http = bf_http_new(&o, err);
  if (!http) {
    free(name);
    return err ? err->code : BF_E_DESTINATION;
  }
  char *auth = bf_xasprintf("Authorization: Bearer %s", bf_params_str(p, hubspot_params, "token"));
  bf_http_add_header(http, auth, true);
  free(auth);
  struct hubspot_destination *d = bf_xcalloc(1, sizeof *d);
  d->http = http;
  d->name = name;
  *out = &d->base;
  return 0;
}

static void hubspot_close(struct bf_destination *d_) {
  struct hubspot_destination *d = (struct hubspot_destination *)d_;
  if (!d) return;
  bf_http_free(d->http);
  bf_buf_release(&d->tmp);
  bf_buf_release(&d->text);
  for (size_t i = 0; i < d->n_schemas; i++) {
    struct hs_schema *sc = &d->schemas[i];
    for (size_t k = 0; k < sc->n; k++) free(sc->names[k]);
    free(sc->names);
    free(sc->types);
    free(sc->object);
  }
  free(d->schemas);
  free(d->field_types);
  free(d->name);
  free(d);
}

/* "HubSpot VALIDATION_ERROR: Property values were not valid" from an error body. */
static char *error_reason(const char *prefix, struct bf_http_response *r) {
  json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
  const char *cat = json_string_value(json_object_get(root, "category"));
  const char *msg = json_string_value(json_object_get(root, "message"));
  char *out;
  if (msg)
    out = bf_xasprintf("%s%s%s%s: %s", prefix, r->error, cat ? " " : "", cat ? cat : "", msg);
  else
    out = bf_xasprintf("%s%s%s%.*s", prefix, r->error, r->body.len ? ": " : "",
                       (int)(r->body.len < 200 ? r->body.len : 200),
                       r->body.data ? r->body.data : "");
  json_decref(root);
  return out;
}

/* Failure of the whole destination (auth, unknown object, retries exhausted). */
static int unavailable(struct hubspot_destination *d, const char *object,
                       struct bf_http_response *r, struct bf_error *err) {
  const char *hint = r->status == 401   ? " (check the token)"
                     : r->status == 403 ? " (the token lacks a scope for this object)"
                     : r->status == 404 ? " (unknown object type?)"
                                        : "";
  char *reason = error_reason("", r);
  bf_http_scrub(d->http, reason);
  int rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s' (%s, object %s): %s%s",
                        d->base.name, bf_http_base_url_shown(d->http), object, reason, hint);
  free(reason);
  return rc;
}

static bool unavailable_status(long status) {
  return status == 401 || status == 403 || status == 404 || (status >= 300 && status < 400);
}

static int hubspot_check(struct bf_destination *d_, struct bf_error *err) {
  struct hubspot_destination *d = (struct hubspot_destination *)d_;
  struct bf_http_request req = {.method = "GET",
                                .path = "/crm/v3/objects/contacts?limit=1&archived=false"};
  struct bf_http_response resp;
  int rc = bf_http_perform_one(d->http, &req, &resp, err);
  if (rc == 0 && !bf_http_ok(&resp)) rc = unavailable(d, "contacts", &resp, err);
  bf_http_response_release(&resp);
  return rc;
}

/* ---- property types ---------------------------------------------------------- */

static enum hs_type type_of(const char *t) {
  if (!t) return HS_STRING;
  if (!strcmp(t, "number")) return HS_NUMBER;
  if (!strcmp(t, "bool")) return HS_BOOL;
  if (!strcmp(t, "date")) return HS_DATE;
  if (!strcmp(t, "datetime")) return HS_DATETIME;
  return HS_STRING;
}

static int load_schema(struct hubspot_destination *d, const char *object, struct hs_schema **out,
                       struct bf_error *err) {
  for (size_t i = 0; i < d->n_schemas; i++)
    if (!strcmp(d->schemas[i].object, object)) {
      *out = &d->schemas[i];
      return 0;
    }
  char *path = bf_xasprintf("/crm/v3/properties/%s?archived=false", object);
  struct bf_http_request req = {.method = "GET", .path = path};
  struct bf_http_response r;
  int rc = bf_http_perform_one(d->http, &req, &r, err);
  free(path);
  if (rc) return rc;
  d->schemas = bf_xrealloc(d->schemas, (d->n_schemas + 1) * sizeof *d->schemas);
  struct hs_schema *sc = &d->schemas[d->n_schemas++];
  memset(sc, 0, sizeof *sc);
  sc->object = bf_xstrdup(object);
  if (r.status == 403) {
    bf_log_warn("destination '%s': the token cannot read %s property definitions (scope "
                "crm.schemas.%s.read); values are sent without type conversion",
                d->base.name, object, object);
  } else if (r.status == 401 || r.status == 404 || !bf_http_ok(&r)) {
    rc = unavailable(d, object, &r, err);
  } else {
    json_t *root = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
    json_t *results = json_object_get(root, "results");
    size_t i;
    json_t *p;
    sc->names = bf_xcalloc(json_array_size(results) + 1, sizeof *sc->names);
    sc->types = bf_xcalloc(json_array_size(results) + 1, sizeof *sc->types);
    json_array_foreach(results, i, p) {
      const char *name = json_string_value(json_object_get(p, "name"));
      if (!name) continue;
      sc->names[sc->n] = bf_xstrdup(name);
      sc->types[sc->n++] = type_of(json_string_value(json_object_get(p, "type")));
    }
    sc->known = true;
    json_decref(root);
  }
  bf_http_response_release(&r);
  *out = sc;
  return rc;
}

static int hubspot_list_fields(struct bf_destination *d_, const char *object, struct bf_buf *out,
                               struct bf_error *err) {
  static const char *const names[] = {"string", "number", "bool", "date", "datetime"};
  struct hubspot_destination *d = (struct hubspot_destination *)d_;
  if (!object) object = "contacts";
  if (!valid_object_name(object))
    return bf_error_set(err, BF_E_USAGE, "'%.60s' is not a HubSpot object type", object);
  struct hs_schema *sc = NULL;
  int rc = load_schema(d, object, &sc, err);
  if (rc) return rc;
  if (!sc->known)
    return bf_error_set(err, BF_E_DESTINATION,
                        "destination '%s': the token cannot read %s properties", d->base.name,
                        object);
  bf_buf_putc(out, '[');
  for (size_t i = 0; i < sc->n; i++) {
    bf_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
    bf_json_cstr(out, sc->names[i]);
    bf_buf_printf(out, ",\"type\":\"%s\"}", names[sc->types[i]]);
  }
  bf_buf_putc(out, ']');
  return 0;
}

static int property_type(struct hubspot_destination *d, const struct hs_schema *sc,
                         const char *object, const char *name, enum hs_type *out,
                         struct bf_error *err) {
  *out = HS_STRING;
  if (!sc->known) return 0;
  for (size_t i = 0; i < sc->n; i++)
    if (!strcmp(sc->names[i], name)) {
      *out = sc->types[i];
      return 0;
    }
  const char *guess = bf_did_you_mean(name, (const char *const *)sc->names);
  return bf_error_set(err, BF_E_CONFIG, "destination '%s': HubSpot %s have no property '%s'%s%s%s",
                      d->base.name, object, name, guess ? "; did you mean '" : "",
                      guess ? guess : "", guess ? "'?" : "");
}

/* Types of the batch's mapped fields and constants, in d->field_types. */
static int resolve_field_types(struct hubspot_destination *d, const struct bf_batch *batch,
                               const char *object, struct bf_error *err) {
  const struct bf_mapping *m = batch->mapping;
  size_t need = m->n_fields + m->n_constants + 1;
  if (need > d->field_types_cap) {
    d->field_types = bf_xrealloc(d->field_types, need * sizeof *d->field_types);
    d->field_types_cap = need;
  }
  struct hs_schema *sc;
  int rc = load_schema(d, object, &sc, err);
  for (size_t i = 0; i < m->n_fields && rc == 0; i++)
    rc = property_type(d, sc, object, m->field_names[i], &d->field_types[i], err);
  for (size_t i = 0; i < m->n_constants && rc == 0; i++)
    rc = property_type(d, sc, object, m->constant_names[i], &d->field_types[m->n_fields + i], err);
  return rc;
}

/* A value as the property's type wants it: bool "true"/"false" (from 0/1,
 * t/f, yes/no too), date "YYYY-MM-DD" (a timestamp's date part), the rest
 * as bf_http_value_text writes it. */
static void hs_value_text(struct bf_buf *out, const struct bf_value *v, enum hs_type type) {
  if (type == HS_BOOL && v->type != BF_NULL) {
    if (v->type == BF_INT || v->type == BF_BOOL) {
      bf_buf_puts(out, v->u.i ? "true" : "false");
      return;
    }
    if (v->type == BF_TEXT && v->len <= 5) {
      char low[6] = {0};
      for (uint32_t i = 0; i < v->len; i++) low[i] = (char)tolower((unsigned char)v->u.s[i]);
      static const char *const yes[] = {"1", "t", "true", "y", "yes"}, *const no[] = {"0", "f",
                                                                                      "false", "n",
                                                                                      "no"};
      for (size_t i = 0; i < 5; i++) {
        if (!strcmp(low, yes[i]) || !strcmp(low, no[i])) {
          bf_buf_puts(out, !strcmp(low, yes[i]) ? "true" : "false");
          return;
        }
      }
    }
  }
  if (type == HS_DATE && v->type == BF_TEXT && v->len > 10 && v->u.s[4] == '-' &&
      v->u.s[7] == '-' && (v->u.s[10] == ' ' || v->u.s[10] == 'T')) {
    bf_buf_append(out, v->u.s, 10);
    return;
  }
  bf_http_value_text(out, v);
}

/* ---- values ---------------------------------------------------------------- */

/* The record's idProperty value as text into out; false when NULL/empty. */
static bool record_id(const struct bf_batch *batch, const struct bf_record *rec,
                      struct bf_buf *out) {
  bf_buf_reset(out);
  if (rec->values) {
    bf_http_value_text(out, &rec->values[0]);
    return rec->values[0].type != BF_NULL && out->len > 0;
  }
  /* Deletes carry only the match JSON: {"email":"a@b.c"} */
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
  return out->len > 0;
}

static const char *object_of(const struct bf_batch *b) {
  return b->object ? b->object : "contacts";
}

/* ids[i] for every record of the batch (NULL: no usable id). */
static char **batch_ids(struct hubspot_destination *d, const struct bf_batch *batch) {
  char **ids = bf_xcalloc(batch->n ? batch->n : 1, sizeof *ids);
  for (size_t i = 0; i < batch->n; i++)
    if (record_id(batch, &batch->records[i], &d->text))
      ids[i] = bf_xstrndup(d->text.data, d->text.len);
  return ids;
}

static void free_ids(char **ids, size_t n) {
  for (size_t i = 0; ids && i < n; i++) free(ids[i]);
  free(ids);
}

static bool same_id(const char *a, const char *b, bool ci) {
  return ci ? !strcasecmp(a, b) : !strcmp(a, b);
}

/* Splits recs[0..n) into pieces of at most HS_MAX_INPUTS with no id twice in
 * a piece (HubSpot refuses duplicate ids in one batch): duplicates go to
 * later pieces. Takes nothing; copies indices. */
static void make_pieces(struct pieces *out, const size_t *recs, size_t n, char **ids, bool ci) {
  bool *placed = bf_xcalloc(n ? n : 1, sizeof *placed);
  size_t left = n;
  while (left > 0) {
    size_t *cur = bf_xmalloc(HS_MAX_INPUTS * sizeof *cur);
    size_t k = 0;
    for (size_t i = 0; i < n && k < HS_MAX_INPUTS; i++) {
      if (placed[i]) continue;
      bool dup = false;
      for (size_t j = 0; j < k && !dup; j++) dup = same_id(ids[cur[j]], ids[recs[i]], ci);
      if (dup) continue;
      cur[k++] = recs[i];
      placed[i] = true;
      left--;
    }
    pieces_add(out, cur, k);
  }
  free(placed);
}

static void append_property(struct hubspot_destination *d, struct bf_buf *b, bool *first,
                            const char *name, const struct bf_value *v, enum hs_type type) {
  if (!*first) bf_buf_putc(b, ',');
  *first = false;
  bf_json_cstr(b, name);
  bf_buf_putc(b, ':');
  bf_buf_reset(&d->text);
  hs_value_text(&d->text, v, type);
  bf_json_str(b, d->text.data ? d->text.data : "", d->text.len);
}

static void build_upsert_body(struct hubspot_destination *d, const struct bf_batch *batch,
                              struct piece *pc, char **ids) {
  const struct bf_mapping *m = batch->mapping;
  const char *idprop = m->match_names[0];
  struct bf_buf *b = &pc->body;
  bf_buf_reset(b);
  bf_buf_puts(b, "{\"inputs\":[");
  for (size_t k = 0; k < pc->n; k++) {
    const struct bf_record *rec = &batch->records[pc->recs[k]];
    if (k) bf_buf_putc(b, ',');
    bf_buf_puts(b, "{\"idProperty\":");
    bf_json_cstr(b, idprop);
    bf_buf_puts(b, ",\"id\":");
    bf_json_cstr(b, ids[pc->recs[k]]);
    bf_buf_printf(b, ",\"objectWriteTraceId\":\"%zu\",\"properties\":{", k);
    bool first = true;
    for (size_t i = 0; i < m->n_fields; i++) {
      bf_buf_reset(&d->tmp);
      struct bf_value v = bf_mapping_field_value(m, i, &rec->values[m->n_match + i], &d->tmp);
      append_property(d, b, &first, m->field_names[i], &v, d->field_types[i]);
    }
    for (size_t i = 0; i < m->n_constants; i++)
      append_property(d, b, &first, m->constant_names[i], &m->constant_values[i],
                      d->field_types[m->n_fields + i]);
    bf_buf_puts(b, "}}");
  }
  bf_buf_puts(b, "]}");
}

/* Position in the piece named by a trace id string, or SIZE_MAX. */
static size_t trace_pos(const char *s, size_t n) {
  if (!s || !*s) return SIZE_MAX;
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  return *end == '\0' && v < n ? (size_t)v : SIZE_MAX;
}

/* Which inputs of the piece an error names: context.objectWriteTraceId, or
 * context.ids / context.<idProperty> holding input ids. Marks hit[k]. */
static size_t error_targets(json_t *e, const struct piece *pc, char **ids, bool ci, bool *hit) {
  size_t found = 0;
  memset(hit, 0, pc->n * sizeof *hit);
  json_t *ctx = json_object_get(e, "context");
  json_t *traces = json_object_get(ctx, "objectWriteTraceId");
  const char *t1 = json_string_value(json_object_get(e, "objectWriteTraceId"));
  size_t pos = trace_pos(t1, pc->n);
  if (pos != SIZE_MAX && !hit[pos]) hit[pos] = true, found++;
  size_t i;
  json_t *v;
  json_array_foreach(traces, i, v) {
    pos = trace_pos(json_string_value(v), pc->n);
    if (pos != SIZE_MAX && !hit[pos]) hit[pos] = true, found++;
  }
  if (found) return found;
  const char *key;
  json_t *arr;
  json_object_foreach(ctx, key, arr) {
    json_array_foreach(arr, i, v) {
      const char *s = json_string_value(v);
      if (!s) continue;
      for (size_t k = 0; k < pc->n; k++)
        if (!hit[k] && same_id(ids[pc->recs[k]], s, ci)) hit[k] = true, found++;
    }
  }
  return found;
}

static bool error_is_transient(json_t *e) {
  const char *cat = json_string_value(json_object_get(e, "category"));
  const char *st = json_string_value(json_object_get(e, "status"));
  return (cat && (!strcmp(cat, "RATE_LIMITS") || !strcmp(cat, "INTERNAL_ERROR") ||
                  !strcmp(cat, "TIMEOUT"))) ||
         (st && (!strcmp(st, "429") || st[0] == '5'));
}

static char *item_reason(json_t *e) {
  const char *cat = json_string_value(json_object_get(e, "category"));
  const char *msg = json_string_value(json_object_get(e, "message"));
  return bf_xasprintf("HubSpot %s: %s", cat ? cat : "error", msg ? msg : "rejected");
}

/* A 200/207 upsert answer -> outcomes of the piece's records. */
static void parse_upsert(const struct bf_batch *batch, const struct piece *pc, char **ids, bool ci,
                         struct bf_http_response *r, struct bf_outcome *outcomes) {
  const char *idprop = batch->mapping->match_names[0];
  for (size_t k = 0; k < pc->n; k++)
    set_outcome(&outcomes[pc->recs[k]], BF_OUT_RETRY, "HubSpot did not report this record");
  json_error_t jerr;
  json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &jerr);
  if (!json_is_object(root)) {
    char *why =
        bf_xasprintf("HubSpot answered HTTP %ld without a JSON body; will resend", r->status);
    for (size_t k = 0; k < pc->n; k++) set_outcome(&outcomes[pc->recs[k]], BF_OUT_RETRY, why);
    free(why);
    json_decref(root);
    return;
  }
  json_t *results = json_object_get(root, "results");
  json_t *errors = json_object_get(root, "errors");
  bool *done = bf_xcalloc(pc->n, sizeof *done);
  bool *hit = bf_xcalloc(pc->n, sizeof *hit);
  size_t i, n_ok = 0;
  json_t *res;
  json_array_foreach(results, i, res) {
    size_t pos = trace_pos(json_string_value(json_object_get(res, "objectWriteTraceId")), pc->n);
    if (pos == SIZE_MAX) {
      /* No trace id: find the input by its idProperty value. */
      const char *v =
          json_string_value(json_object_get(json_object_get(res, "properties"), idprop));
      for (size_t k = 0; v && k < pc->n && pos == SIZE_MAX; k++)
        if (!done[k] && same_id(ids[pc->recs[k]], v, ci)) pos = k;
    }
    if (pos == SIZE_MAX || done[pos]) continue;
    done[pos] = true;
    n_ok++;
    set_outcome(&outcomes[pc->recs[pos]], BF_OUT_OK, NULL);
  }
  json_t *e;
  json_array_foreach(errors, i, e) {
    char *why = item_reason(e);
    enum bf_outcome_status st = error_is_transient(e) ? BF_OUT_RETRY : BF_OUT_REJECT;
    if (error_targets(e, pc, ids, ci, hit) == 0) {
      /* Unattributed: it explains every record still unreported. */
      for (size_t k = 0; k < pc->n; k++)
        if (!done[k]) set_outcome(&outcomes[pc->recs[k]], BF_OUT_RETRY, why);
    } else {
      for (size_t k = 0; k < pc->n; k++)
        if (hit[k] && !done[k]) {
          done[k] = true;
          set_outcome(&outcomes[pc->recs[k]], st, why);
        }
    }
    free(why);
  }
  /* An answer without trace ids or id values, but complete and error-free. */
  if (n_ok == 0 && json_array_size(errors) == 0 && json_array_size(results) == pc->n)
    for (size_t k = 0; k < pc->n; k++) set_outcome(&outcomes[pc->recs[k]], BF_OUT_OK, NULL);
  free(done);
  free(hit);
  json_decref(root);
}

/* ---- sending pieces -------------------------------------------------------- */

/* Sends pieces built by build(); a refused multi-input request (400, 409,
 * 413, 422) is split in halves and sent again. on_ok parses a 2xx answer. */
typedef void (*parse_fn)(const struct bf_batch *batch, const struct piece *pc, char **ids, bool ci,
                         struct bf_http_response *r, struct bf_outcome *outcomes);
typedef void (*build_fn)(struct hubspot_destination *d, const struct bf_batch *batch,
                         struct piece *pc, char **ids);

static int send_pieces(struct hubspot_destination *d, const struct bf_batch *batch,
                       const char *path, struct pieces *todo, char **ids, bool ci, build_fn build,
                       parse_fn parse, struct bf_outcome *outcomes, struct bf_error *err) {
  struct pieces next = {0};
  int rc = 0;
  while (todo->n > 0 && rc == 0) {
    struct bf_http_request *reqs = bf_xcalloc(todo->n, sizeof *reqs);
    struct bf_http_response *resps = bf_xcalloc(todo->n, sizeof *resps);
    for (size_t i = 0; i < todo->n; i++) {
      build(d, batch, &todo->items[i], ids);
      reqs[i] = (struct bf_http_request){.method = "POST",
                                         .path = path,
                                         .body = todo->items[i].body.data,
                                         .body_len = todo->items[i].body.len};
    }
    rc = bf_http_perform(d->http, reqs, resps, todo->n, NULL, NULL, err);
    for (size_t i = 0; i < todo->n && rc == 0; i++) {
      struct piece *pc = &todo->items[i];
      struct bf_http_response *r = &resps[i];
      if (bf_http_ok(r)) {
        parse(batch, pc, ids, ci, r, outcomes);
      } else if (unavailable_status(r->status) || bf_http_retryable(d->http, r)) {
        rc = unavailable(d, object_of(batch), r, err);
      } else if (pc->n > 1 &&
                 (r->status == 400 || r->status == 409 || r->status == 413 || r->status == 422)) {
        size_t half = pc->n / 2;
        size_t *a = bf_xmalloc(half * sizeof *a), *b = bf_xmalloc((pc->n - half) * sizeof *b);
        memcpy(a, pc->recs, half * sizeof *a);
        memcpy(b, pc->recs + half, (pc->n - half) * sizeof *b);
        pieces_add(&next, a, half);
        pieces_add(&next, b, pc->n - half);
      } else {
        char *why = error_reason("HubSpot ", r);
        bf_http_scrub(d->http, why);
        for (size_t k = 0; k < pc->n; k++) set_outcome(&outcomes[pc->recs[k]], BF_OUT_REJECT, why);
        free(why);
      }
    }
    bf_http_responses_release(resps, todo->n);
    free(resps);
    free(reqs);
    pieces_clear(todo);
    struct pieces tmp = *todo;
    *todo = next;
    next = tmp;
  }
  pieces_release(&next);
  return rc;
}

/* ---- resolving ids (batch/read) -------------------------------------------- */

static void build_read_body(struct hubspot_destination *d, const struct bf_batch *batch,
                            struct piece *pc, char **ids) {
  (void)d;
  const char *idprop = batch->mapping->match_names[0];
  struct bf_buf *b = &pc->body;
  bf_buf_reset(b);
  bf_buf_puts(b, "{\"idProperty\":");
  bf_json_cstr(b, idprop);
  bf_buf_puts(b, ",\"properties\":[");
  bf_json_cstr(b, idprop);
  bf_buf_puts(b, "],\"inputs\":[");
  for (size_t k = 0; k < pc->n; k++) {
    if (k) bf_buf_putc(b, ',');
    bf_buf_puts(b, "{\"id\":");
    bf_json_cstr(b, ids[pc->recs[k]]);
    bf_buf_putc(b, '}');
  }
  bf_buf_puts(b, "]}");
}

/* Resolution results travel through outcomes: OK + reason = HubSpot id
 * (found), OK + NULL reason = not found, RETRY/REJECT = could not tell. */
static void parse_read(const struct bf_batch *batch, const struct piece *pc, char **ids, bool ci,
                       struct bf_http_response *r, struct bf_outcome *outcomes) {
  const char *idprop = batch->mapping->match_names[0];
  for (size_t k = 0; k < pc->n; k++)
    set_outcome(&outcomes[pc->recs[k]], BF_OUT_RETRY, "HubSpot did not report this record");
  json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
  json_t *results = json_object_get(root, "results");
  json_t *errors = json_object_get(root, "errors");
  bool *hit = bf_xcalloc(pc->n, sizeof *hit);
  size_t i;
  json_t *res;
  json_array_foreach(results, i, res) {
    const char *hs_id = json_string_value(json_object_get(res, "id"));
    const char *v = json_string_value(json_object_get(json_object_get(res, "properties"), idprop));
    if (!hs_id || !v) continue;
    for (size_t k = 0; k < pc->n; k++)
      if (same_id(ids[pc->recs[k]], v, ci)) set_outcome(&outcomes[pc->recs[k]], BF_OUT_OK, hs_id);
  }
  json_t *e;
  json_array_foreach(errors, i, e) {
    const char *cat = json_string_value(json_object_get(e, "category"));
    bool not_found = cat && !strcmp(cat, "OBJECT_NOT_FOUND");
    if (error_targets(e, pc, ids, ci, hit) == 0) continue;
    char *why = item_reason(e);
    for (size_t k = 0; k < pc->n; k++) {
      if (!hit[k] || outcomes[pc->recs[k]].status == BF_OUT_OK) continue;
      if (not_found)
        set_outcome(&outcomes[pc->recs[k]], BF_OUT_OK, NULL);
      else
        set_outcome(&outcomes[pc->recs[k]], error_is_transient(e) ? BF_OUT_RETRY : BF_OUT_REJECT,
                    why);
    }
    free(why);
  }
  free(hit);
  json_decref(root);
}

static char *object_path(const struct bf_batch *batch, const char *verb) {
  return bf_xasprintf("/crm/v3/objects/%s/batch/%s", object_of(batch), verb);
}

/* For the records at recs[0..n): res[] gets OK+id / OK+NULL / RETRY / REJECT. */
static int resolve(struct hubspot_destination *d, const struct bf_batch *batch, const size_t *recs,
                   size_t n, char **ids, bool ci, struct bf_outcome *res, struct bf_error *err) {
  struct pieces todo = {0};
  make_pieces(&todo, recs, n, ids, ci);
  char *path = object_path(batch, "read");
  int rc = send_pieces(d, batch, path, &todo, ids, ci, build_read_body, parse_read, res, err);
  free(path);
  pieces_release(&todo);
  return rc;
}

/* ---- push ------------------------------------------------------------------- */

static bool ids_case_insensitive(const struct bf_batch *batch) {
  return !strcasecmp(batch->mapping->match_names[0], "email");
}

static int hubspot_push_batch(struct bf_destination *d_, const struct bf_batch *batch,
                              struct bf_outcome *outcomes, struct bf_error *err) {
  struct hubspot_destination *d = (struct hubspot_destination *)d_;
  if (batch->mapping->n_match != 1)
    return bf_error_set(err, BF_E_CONFIG, "sync '%s': hubspot needs exactly one match key",
                        batch->sync_name);
  int rc = resolve_field_types(d, batch, object_of(batch), err);
  if (rc) return rc;
  bool ci = ids_case_insensitive(batch);
  char **ids = batch_ids(d, batch);
  size_t *send = bf_xmalloc((batch->n ? batch->n : 1) * sizeof *send);
  size_t *check = bf_xmalloc((batch->n ? batch->n : 1) * sizeof *check);
  size_t n_send = 0, n_check = 0;
  for (size_t i = 0; i < batch->n; i++) {
    if (!ids[i]) {
      char *why = bf_xasprintf("%s is empty: HubSpot cannot match the record",
                               batch->mapping->match_names[0]);
      set_outcome(&outcomes[i], BF_OUT_REJECT, why);
      free(why);
    } else if (batch->records[i].op == BF_OP_UPDATE || batch->records[i].op == BF_OP_INSERT) {
      check[n_check++] = i;
    } else {
      send[n_send++] = i;
    }
  }
  if (n_check > 0) {
    struct bf_outcome *res = bf_xcalloc(batch->n, sizeof *res);
    rc = resolve(d, batch, check, n_check, ids, ci, res, err);
    for (size_t k = 0; k < n_check && rc == 0; k++) {
      size_t i = check[k];
      bool update = batch->records[i].op == BF_OP_UPDATE;
      if (res[i].status != BF_OUT_OK) {
        set_outcome(&outcomes[i], res[i].status, res[i].reason);
      } else if (update && !res[i].reason) {
        char *why = bf_xasprintf("mode update: HubSpot has no %s with this %s", object_of(batch),
                                 batch->mapping->match_names[0]);
        set_outcome(&outcomes[i], BF_OUT_REJECT, why);
        free(why);
      } else if (!update && res[i].reason) {
        char *why = bf_xasprintf("mode insert: HubSpot already has a %s with this %s",
                                 object_of(batch), batch->mapping->match_names[0]);
        set_outcome(&outcomes[i], BF_OUT_REJECT, why);
        free(why);
      } else {
        send[n_send++] = i;
      }
    }
    for (size_t i = 0; i < batch->n; i++) free(res[i].reason);
    free(res);
  }
  if (rc == 0 && n_send > 0) {
    struct pieces todo = {0};
    make_pieces(&todo, send, n_send, ids, ci);
    char *path = object_path(batch, "upsert");
    rc =
        send_pieces(d, batch, path, &todo, ids, ci, build_upsert_body, parse_upsert, outcomes, err);
    free(path);
    pieces_release(&todo);
  }
  free(send);
  free(check);
  free_ids(ids, batch->n);
  return rc;
}

/* ---- remove ------------------------------------------------------------------ */

static void build_archive_body(struct hubspot_destination *d, const struct bf_batch *batch,
                               struct piece *pc, char **hs_ids) {
  (void)d;
  (void)batch;
  struct bf_buf *b = &pc->body;
  bf_buf_reset(b);
  bf_buf_puts(b, "{\"inputs\":[");
  for (size_t k = 0; k < pc->n; k++) {
    if (k) bf_buf_putc(b, ',');
    bf_buf_puts(b, "{\"id\":");
    bf_json_cstr(b, hs_ids[pc->recs[k]]);
    bf_buf_putc(b, '}');
  }
  bf_buf_puts(b, "]}");
}

static void parse_archive(const struct bf_batch *batch, const struct piece *pc, char **ids, bool ci,
                          struct bf_http_response *r, struct bf_outcome *outcomes) {
  /* 204: all archived. A 207 with errors names the ids it could not archive. */
  for (size_t k = 0; k < pc->n; k++) set_outcome(&outcomes[pc->recs[k]], BF_OUT_OK, NULL);
  if (r->body.len == 0) return;
  json_t *root = json_loadb(r->body.data, r->body.len, 0, NULL);
  json_t *errors = json_object_get(root, "errors");
  bool *hit = bf_xcalloc(pc->n, sizeof *hit);
  size_t i;
  json_t *e;
  json_array_foreach(errors, i, e) {
    const char *cat = json_string_value(json_object_get(e, "category"));
    if (cat && !strcmp(cat, "OBJECT_NOT_FOUND")) continue; /* already gone */
    char *why = item_reason(e);
    if (error_targets(e, pc, ids, false, hit) == 0) memset(hit, 1, pc->n * sizeof *hit);
    for (size_t k = 0; k < pc->n; k++)
      if (hit[k])
        set_outcome(&outcomes[pc->recs[k]], error_is_transient(e) ? BF_OUT_RETRY : BF_OUT_REJECT,
                    why);
    free(why);
  }
  free(hit);
  json_decref(root);
  (void)batch;
  (void)ci;
}

static int hubspot_remove_batch(struct bf_destination *d_, const struct bf_batch *batch,
                                struct bf_outcome *outcomes, struct bf_error *err) {
  struct hubspot_destination *d = (struct hubspot_destination *)d_;
  if (batch->mapping->n_match != 1)
    return bf_error_set(err, BF_E_CONFIG, "sync '%s': hubspot needs exactly one match key",
                        batch->sync_name);
  bool ci = ids_case_insensitive(batch);
  char **ids = batch_ids(d, batch);
  size_t *look = bf_xmalloc((batch->n ? batch->n : 1) * sizeof *look);
  size_t n_look = 0;
  for (size_t i = 0; i < batch->n; i++) {
    if (ids[i])
      look[n_look++] = i;
    else
      set_outcome(&outcomes[i], BF_OUT_OK, NULL); /* no id: HubSpot cannot hold it */
  }
  struct bf_outcome *res = bf_xcalloc(batch->n ? batch->n : 1, sizeof *res);
  int rc = n_look ? resolve(d, batch, look, n_look, ids, ci, res, err) : 0;
  char **hs_ids = bf_xcalloc(batch->n ? batch->n : 1, sizeof *hs_ids);
  size_t *archive = bf_xmalloc((batch->n ? batch->n : 1) * sizeof *archive);
  size_t n_archive = 0;
  for (size_t k = 0; k < n_look && rc == 0; k++) {
    size_t i = look[k];
    if (res[i].status != BF_OUT_OK) {
      set_outcome(&outcomes[i], res[i].status, res[i].reason);
    } else if (!res[i].reason) {
      set_outcome(&outcomes[i], BF_OUT_OK, NULL); /* not in HubSpot: nothing to delete */
    } else {
      hs_ids[i] = res[i].reason;
      res[i].reason = NULL;
      archive[n_archive++] = i;
    }
  }
  if (rc == 0 && n_archive > 0) {
    /* Several records may resolve to one HubSpot id: make_pieces keeps
     * them in different requests, and archiving twice is harmless. */
    struct pieces todo = {0};
    make_pieces(&todo, archive, n_archive, hs_ids, false);
    char *path = object_path(batch, "archive");
    rc = send_pieces(d, batch, path, &todo, hs_ids, false, build_archive_body, parse_archive,
                     outcomes, err);
    free(path);
    pieces_release(&todo);
  }
  for (size_t i = 0; i < batch->n; i++) free(res[i].reason);
  free(res);
  free_ids(hs_ids, batch->n);
  free(archive);
  free(look);
  free_ids(ids, batch->n);
  return rc;
}

const struct bf_destination_type bf_destination_hubspot = {
    .name = "hubspot",
    .params = hubspot_params,
    /* A push is split into requests of 100 inputs sent side by side. */
    .max_batch = 10000,
    .default_batch = 1000,
    .needs_identifier_for_delete = true,
    .open = hubspot_open,
    .check = hubspot_check,
    .push = hubspot_push_batch,
    .remove = hubspot_remove_batch,
    .close = hubspot_close,
    .list_fields = hubspot_list_fields,
};

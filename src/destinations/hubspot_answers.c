/* HubSpot batch answers and request pieces (hubspot_internal.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "destinations/hubspot_internal.h"

void bf_hs_pieces_add(struct bf_hs_pieces *p, size_t *recs, size_t n) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 16;
    p->items = bf_xrealloc(p->items, p->cap * sizeof *p->items);
  }
  p->items[p->n++] = (struct bf_hs_piece){recs, n, {0}};
}

void bf_hs_pieces_clear(struct bf_hs_pieces *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->items[i].recs);
    bf_buf_release(&p->items[i].body);
  }
  p->n = 0;
}

void bf_hs_pieces_release(struct bf_hs_pieces *p) {
  bf_hs_pieces_clear(p);
  free(p->items);
  p->items = NULL;
  p->cap = 0;
}

void bf_hs_set_outcome(struct bf_outcome *o, enum bf_outcome_status st, const char *reason) {
  free(o->reason);
  o->status = st;
  o->reason = reason ? bf_xstrdup(reason) : NULL;
}

bool bf_hs_same_id(const char *a, const char *b, bool ci) {
  return ci ? !strcasecmp(a, b) : !strcmp(a, b);
}

/* Splits recs[0..n) into pieces of at most HS_MAX_INPUTS with no id twice in
 * a piece (HubSpot refuses duplicate ids in one batch): duplicates go to
 * later pieces. Takes nothing; copies indices. */
void bf_hs_make_pieces(struct bf_hs_pieces *out, const size_t *recs, size_t n, char **ids,
                       bool ci) {
  bool *placed = bf_xcalloc(n ? n : 1, sizeof *placed);
  size_t left = n;
  while (left > 0) {
    size_t *cur = bf_xmalloc(HS_MAX_INPUTS * sizeof *cur);
    size_t k = 0;
    for (size_t i = 0; i < n && k < HS_MAX_INPUTS; i++) {
      if (placed[i]) continue;
      bool dup = false;
      for (size_t j = 0; j < k && !dup; j++) dup = bf_hs_same_id(ids[cur[j]], ids[recs[i]], ci);
      if (dup) continue;
      cur[k++] = recs[i];
      placed[i] = true;
      left--;
    }
    bf_hs_pieces_add(out, cur, k);
  }
  free(placed);
}

static size_t trace_pos(const char *s, size_t n) {
  if (!s || !*s) return SIZE_MAX;
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  return *end == '\0' && v < n ? (size_t)v : SIZE_MAX;
}

/* Which inputs of the piece an error names: context.objectWriteTraceId, or
 * context.ids / context.<idProperty> holding input ids. Marks hit[k]. */
static size_t error_targets(json_t *e, const struct bf_hs_piece *pc, char **ids, bool ci,
                            bool *hit) {
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
        if (!hit[k] && bf_hs_same_id(ids[pc->recs[k]], s, ci)) hit[k] = true, found++;
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
void bf_hs_parse_upsert(const struct bf_batch *batch, const struct bf_hs_piece *pc, char **ids,
                        bool ci, struct bf_http_response *r, struct bf_outcome *outcomes) {
  const char *idprop = batch->mapping->match_names[0];
  for (size_t k = 0; k < pc->n; k++)
    bf_hs_set_outcome(&outcomes[pc->recs[k]], BF_OUT_RETRY, "HubSpot did not report this record");
  json_error_t jerr;
  json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &jerr);
  if (!json_is_object(root)) {
    char *why =
        bf_xasprintf("HubSpot answered HTTP %ld without a JSON body; will resend", r->status);
    for (size_t k = 0; k < pc->n; k++) bf_hs_set_outcome(&outcomes[pc->recs[k]], BF_OUT_RETRY, why);
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
        if (!done[k] && bf_hs_same_id(ids[pc->recs[k]], v, ci)) pos = k;
    }
    if (pos == SIZE_MAX || done[pos]) continue;
    done[pos] = true;
    n_ok++;
    bf_hs_set_outcome(&outcomes[pc->recs[pos]], BF_OUT_OK, NULL);
  }
  json_t *e;
  json_array_foreach(errors, i, e) {
    char *why = item_reason(e);
    enum bf_outcome_status st = error_is_transient(e) ? BF_OUT_RETRY : BF_OUT_REJECT;
    if (error_targets(e, pc, ids, ci, hit) == 0) {
      /* Unattributed: it explains every record still unreported. */
      for (size_t k = 0; k < pc->n; k++)
        if (!done[k]) bf_hs_set_outcome(&outcomes[pc->recs[k]], BF_OUT_RETRY, why);
    } else {
      for (size_t k = 0; k < pc->n; k++)
        if (hit[k] && !done[k]) {
          done[k] = true;
          bf_hs_set_outcome(&outcomes[pc->recs[k]], st, why);
        }
    }
    free(why);
  }
  /* An answer without trace ids or id values, but complete and error-free. */
  if (n_ok == 0 && json_array_size(errors) == 0 && json_array_size(results) == pc->n)
    for (size_t k = 0; k < pc->n; k++) bf_hs_set_outcome(&outcomes[pc->recs[k]], BF_OUT_OK, NULL);
  free(done);
  free(hit);
  json_decref(root);
}

/* Resolution results travel through outcomes: OK + reason = HubSpot id
 * (found), OK + NULL reason = not found, RETRY/REJECT = could not tell. */
void bf_hs_parse_read(const struct bf_batch *batch, const struct bf_hs_piece *pc, char **ids,
                      bool ci, struct bf_http_response *r, struct bf_outcome *outcomes) {
  const char *idprop = batch->mapping->match_names[0];
  for (size_t k = 0; k < pc->n; k++)
    bf_hs_set_outcome(&outcomes[pc->recs[k]], BF_OUT_RETRY, "HubSpot did not report this record");
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
      if (bf_hs_same_id(ids[pc->recs[k]], v, ci))
        bf_hs_set_outcome(&outcomes[pc->recs[k]], BF_OUT_OK, hs_id);
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
        bf_hs_set_outcome(&outcomes[pc->recs[k]], BF_OUT_OK, NULL);
      else
        bf_hs_set_outcome(&outcomes[pc->recs[k]],
                          error_is_transient(e) ? BF_OUT_RETRY : BF_OUT_REJECT, why);
    }
    free(why);
  }
  free(hit);
  json_decref(root);
}

void bf_hs_parse_archive(const struct bf_batch *batch, const struct bf_hs_piece *pc, char **ids,
                         bool ci, struct bf_http_response *r, struct bf_outcome *outcomes) {
  /* 204: all archived. A 207 with errors names the ids it could not archive. */
  for (size_t k = 0; k < pc->n; k++) bf_hs_set_outcome(&outcomes[pc->recs[k]], BF_OUT_OK, NULL);
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
        bf_hs_set_outcome(&outcomes[pc->recs[k]],
                          error_is_transient(e) ? BF_OUT_RETRY : BF_OUT_REJECT, why);
    free(why);
  }
  free(hit);
  json_decref(root);
  (void)batch;
  (void)ci;
}

/* The results of erasure requests: their JSON form (`forget --json`, the
 * erasure API) and the state of a request read back from the audit log
 * (GET /api/erasures/{id}). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "engine/audit_log.h"
#include "engine/forget.h"
#include "engine/forget_internal.h"
#include "engine/forgotten.h"
#include "util/fsutil.h"

void bf_forget_result_release(struct bf_forget_result *res) {
  if (!res) return;
  for (size_t i = 0; i < res->n_syncs; i++) {
    free(res->syncs[i].sync);
    free(res->syncs[i].destination);
    free(res->syncs[i].destination_type);
    free(res->syncs[i].reason);
  }
  free(res->syncs);
  free(res->model);
  memset(res, 0, sizeof *res);
}

void bf_forget_result_json(const struct bf_forget_result *res, struct bf_buf *out) {
  bf_buf_printf(out, "{\"request\":%llu,\"kind\":", (unsigned long long)res->request);
  bf_json_cstr(out, bf_forget_kind_name(res->kind));
  bf_buf_puts(out, ",\"identifier_hash\":");
  bf_json_cstr(out, res->identifier_hash);
  bf_buf_puts(out, ",\"model\":");
  if (res->model)
    bf_json_cstr(out, res->model);
  else
    bf_buf_puts(out, "null");
  bf_buf_puts(out, ",\"status\":");
  bf_json_cstr(out, res->status ? res->status : "pending");
  bf_buf_printf(out, ",\"exit_status\":%d,\"syncs\":[", res->exit_status);
  for (size_t i = 0; i < res->n_syncs; i++) {
    const struct bf_forget_sync_result *r = &res->syncs[i];
    if (i) bf_buf_putc(out, ',');
    bf_buf_puts(out, "{\"sync\":");
    bf_json_cstr(out, r->sync);
    bf_buf_puts(out, ",\"destination\":");
    if (r->destination)
      bf_json_cstr(out, r->destination);
    else
      bf_buf_puts(out, "null");
    bf_buf_puts(out, ",\"destination_type\":");
    if (r->destination_type)
      bf_json_cstr(out, r->destination_type);
    else
      bf_buf_puts(out, "null");
    bf_buf_printf(out, ",\"found\":%lld,\"deleted\":%lld,\"status\":", r->found, r->deleted);
    bf_json_cstr(out, r->status);
    bf_buf_puts(out, ",\"reason\":");
    if (r->reason)
      bf_json_cstr(out, r->reason);
    else
      bf_buf_puts(out, "null");
    bf_buf_putc(out, '}');
  }
  bf_buf_puts(out, "]}");
}

/* The audit log's words mapped to the constants results point at. */
static const char *sync_status(const char *s) {
  static const char *const known[] = {"deleted", "not_found", "pending", "failed"};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (s && !strcmp(s, known[i])) return known[i];
  return "pending";
}

static char *dup_or_null(json_t *o, const char *key) {
  const char *v = json_string_value(json_object_get(o, key));
  return v ? bf_xstrdup(v) : NULL;
}

static struct bf_forget_sync_result *sync_slot(struct bf_forget_result *res, const char *sync) {
  for (size_t i = 0; i < res->n_syncs; i++)
    if (!strcmp(res->syncs[i].sync, sync)) return &res->syncs[i];
  res->syncs = bf_xrealloc(res->syncs, (res->n_syncs + 1) * sizeof *res->syncs);
  struct bf_forget_sync_result *r = &res->syncs[res->n_syncs++];
  memset(r, 0, sizeof *r);
  r->sync = bf_xstrdup(sync);
  return r;
}

static void apply_event(struct bf_forget_result *res, json_t *ev, bool *seen) {
  const char *event = json_string_value(json_object_get(ev, "event"));
  if (!event) return;
  if (!strcmp(event, "request")) {
    *seen = true;
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    res->kind = kind && !strcmp(kind, "key")     ? BF_FORGET_KEY
                : kind && !strcmp(kind, "phone") ? BF_FORGET_PHONE
                                                 : BF_FORGET_EMAIL;
    const char *hash = json_string_value(json_object_get(ev, "identifier_hash"));
    snprintf(res->identifier_hash, sizeof res->identifier_hash, "%s", hash ? hash : "");
    free(res->model);
    res->model = dup_or_null(ev, "model");
  } else if (!strcmp(event, "sync")) {
    const char *sync = json_string_value(json_object_get(ev, "sync"));
    if (!sync) return;
    struct bf_forget_sync_result *r = sync_slot(res, sync);
    free(r->destination);
    free(r->destination_type);
    free(r->reason);
    r->destination = dup_or_null(ev, "destination");
    r->destination_type = dup_or_null(ev, "destination_type");
    r->reason = dup_or_null(ev, "reason");
    r->found = json_integer_value(json_object_get(ev, "found"));
    r->deleted = json_integer_value(json_object_get(ev, "deleted"));
    r->status = sync_status(json_string_value(json_object_get(ev, "status")));
  } else if (!strcmp(event, "complete")) {
    res->status = "complete";
  } else if (!strcmp(event, "pending")) {
    res->status = "pending";
  } else if (!strcmp(event, "incomplete")) {
    res->status = "incomplete";
  }
}

int bf_forget_status(struct bf_project *p, uint64_t id, struct bf_forget_result *res,
                     struct bf_error *err) {
  memset(res, 0, sizeof *res);
  res->request = id;
  res->status = "queued";
  int rc = bf_project_secret(p, false, err);
  if (rc == 1) return 1; /* no secret: no request was ever made */
  if (rc < 0 || (rc = bf_audit_verify(p->state_dir, &p->prf, NULL, err))) return rc;
  char *path = bf_xasprintf("%s/%s", p->state_dir, BF_AUDIT_FILE);
  unsigned char *data = NULL;
  size_t len = 0;
  bool seen = false;
  if (bf_read_file(path, &data, &len) == 0) {
    for (size_t off = 0; off < len;) {
      const unsigned char *nl = memchr(data + off, '\n', len - off);
      size_t end = nl ? (size_t)(nl - data) : len;
      json_t *ev = json_loadb((const char *)data + off, end - off, 0, NULL);
      json_t *rq = ev ? json_object_get(ev, "request") : NULL;
      if (rq && json_is_integer(rq) && (uint64_t)json_integer_value(rq) == id)
        apply_event(res, ev, &seen);
      json_decref(ev);
      off = end + 1;
    }
  }
  free(data);
  free(path);
  if (!seen) {
    bf_forget_result_release(res);
    memset(res, 0, sizeof *res);
    return 1;
  }
  bool pending = false, failed = false;
  for (size_t i = 0; i < res->n_syncs; i++) {
    pending |= !strcmp(res->syncs[i].status, "pending");
    failed |= !strcmp(res->syncs[i].status, "failed");
  }
  res->exit_status = !strcmp(res->status, "queued") ? 0 : pending ? 4 : failed ? 1 : 0;
  return 0;
}

int bf_forget_lift(struct bf_project *p, uint64_t id, size_t *removed, struct bf_error *err) {
  *removed = 0;
  struct bf_forget_result res;
  int rc = bf_forget_status(p, id, &res, err);
  if (rc == 1)
    return bf_error_set(err, BF_E_USAGE, "there is no erasure request %llu (see `backflow audit`)",
                        (unsigned long long)id);
  if (rc) return rc;
  bool unfinished = !strcmp(res.status, "pending") || !strcmp(res.status, "queued");
  bf_forget_result_release(&res);
  if (unfinished)
    return bf_error_set(err, BF_E_USAGE,
                        "erasure request %llu is still pending: lifting it now would let runs "
                        "send the person while deletes are still owed; finish it first "
                        "(`backflow forget --retry`)",
                        (unsigned long long)id);
  if ((rc = bf_forgotten_lift(p->state_dir, &p->prf, id, removed, err))) return rc;
  /* The lift is audited like the request it undoes (keyed hashes only). */
  char now[32];
  bf_forget_iso_now(now);
  struct bf_buf b = {0};
  bf_buf_puts(&b, "{\"time\":");
  bf_json_cstr(&b, now);
  bf_buf_printf(&b, ",\"request\":%llu,\"event\":\"lift\",\"removed\":%zu}", (unsigned long long)id,
                *removed);
  rc = bf_audit_append(p->state_dir, &p->prf, b.data, b.len, err);
  bf_buf_release(&b);
  return rc;
}

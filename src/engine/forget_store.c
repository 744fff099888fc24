/* The pending erasure requests (sealed in erasure_pending.bin) and the
 * audit entries of requests (forget.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "destinations/destination.h"
#include "engine/audit_log.h"
#include "engine/forget.h"
#include "engine/forget_internal.h"
#include "engine/forgotten.h"
#include "engine/idindex.h"
#include "engine/runlog.h"
#include "engine/state.h"
#include "engine/vault.h"
#include "sources/source.h"
#include "spec/mapping.h"
#include "util/crashpoint.h"
#include "util/fsutil.h"
#include "util/keyfile.h"
#include "util/pii_normalize.h"

static int kind_from_name(const char *s) {
  if (!s) return 0;
  if (!strcmp(s, "key")) return BF_FORGET_KEY;
  if (!strcmp(s, "email")) return BF_FORGET_EMAIL;
  if (!strcmp(s, "phone")) return BF_FORGET_PHONE;
  return 0;
}

/* ---- the audit log ------------------------------------------------------ */

void bf_forget_audit_head(struct bf_buf *b, const struct request *rq, const char *event) {
  char now[32];
  bf_forget_iso_now(now);
  bf_buf_reset(b);
  bf_buf_puts(b, "{\"time\":");
  bf_json_cstr(b, now);
  bf_buf_printf(b, ",\"request\":%llu,\"event\":", (unsigned long long)rq->id);
  bf_json_cstr(b, event);
  bf_buf_puts(b, ",\"kind\":");
  bf_json_cstr(b, bf_forget_kind_name(rq->kind));
  bf_buf_puts(b, ",\"identifier_hash\":");
  bf_json_cstr(b, rq->hash);
  if (rq->model) {
    bf_buf_puts(b, ",\"model\":");
    bf_json_cstr(b, rq->model);
  }
}

int bf_forget_audit_request(const struct bf_project *p, const struct request *rq,
                            struct bf_error *err) {
  struct bf_buf b = {0};
  bf_forget_audit_head(&b, rq, "request");
  bf_buf_putc(&b, '}');
  int rc = bf_audit_append(p->state_dir, &p->prf, b.data, b.len, err);
  bf_buf_release(&b);
  return rc;
}

static void item_fields_json(struct bf_buf *b, const struct bf_project *p, const struct item *it) {
  const struct bf_destination_config *dc =
      it->sync ? bf_config_destination(p->cfg, it->sync->destination) : NULL;
  bf_buf_puts(b, "\"sync\":");
  bf_json_cstr(b, it->sync_name);
  bf_buf_puts(b, ",\"destination\":");
  if (dc)
    bf_json_cstr(b, dc->name);
  else
    bf_buf_puts(b, "null");
  bf_buf_puts(b, ",\"destination_type\":");
  if (dc)
    bf_json_cstr(b, dc->type);
  else
    bf_buf_puts(b, "null");
  bf_buf_printf(b, ",\"found\":%lld,\"deleted\":%lld,\"status\":", it->found, it->deleted);
  bf_json_cstr(b, it->status ? it->status : "pending");
  bf_buf_puts(b, ",\"reason\":");
  if (it->reason)
    bf_json_cstr(b, it->reason);
  else
    bf_buf_puts(b, "null");
}

int bf_forget_audit_item(const struct bf_project *p, const struct request *rq,
                         const struct item *it, bool retry, struct bf_error *err) {
  struct bf_buf b = {0};
  bf_forget_audit_head(&b, rq, "sync");
  bf_buf_printf(&b, ",\"retry\":%s,", retry ? "true" : "false");
  item_fields_json(&b, p, it);
  bf_buf_putc(&b, '}');
  int rc = bf_audit_append(p->state_dir, &p->prf, b.data, b.len, err);
  bf_buf_release(&b);
  return rc;
}

/* ---- the pending store (sealed) ---------------------------------------- */

static char *pending_path(const struct bf_project *p) {
  return bf_xasprintf("%s/%s", p->state_dir, BF_ERASURE_PENDING_FILE);
}

static json_t *str_array(char **list, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(list[i]));
  return a;
}

static json_t *person_json(const struct person *ps) {
  json_t *o = json_object();
  if (ps->key_model) json_object_set_new(o, "key_model", json_string(ps->key_model));
  if (ps->key_value) json_object_set_new(o, "key_value", json_string(ps->key_value));
  if (ps->typed) json_object_set_new(o, "typed", json_string(ps->typed));
  json_object_set_new(o, "emails", str_array(ps->emails, ps->n_emails));
  json_object_set_new(o, "phones", str_array(ps->phones, ps->n_phones));
  json_object_set_new(o, "chained", json_boolean(ps->chained));
  return o;
}

static char *dup_str(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? bf_xstrdup(s) : NULL;
}

static void read_str_array(json_t *a, char ***list, size_t *n) {
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) {
    if (json_is_string(v)) bf_forget_add_unique(list, n, json_string_value(v));
  }
}

static struct person *person_from_json(json_t *o) {
  if (!json_is_object(o)) return NULL;
  struct person *ps = bf_xcalloc(1, sizeof *ps);
  ps->key_model = dup_str(o, "key_model");
  ps->key_value = dup_str(o, "key_value");
  ps->typed = dup_str(o, "typed");
  read_str_array(json_object_get(o, "emails"), &ps->emails, &ps->n_emails);
  read_str_array(json_object_get(o, "phones"), &ps->phones, &ps->n_phones);
  ps->chained = json_is_true(json_object_get(o, "chained"));
  return ps;
}

bool bf_forget_request_has_lookups(const struct request *rq) {
  for (size_t i = 0; i < rq->n; i++)
    if (rq->items[i].phase == PH_LOOKUP) return true;
  return false;
}

int bf_forget_store_save(const struct bf_project *p, struct store *st, struct bf_error *err) {
  json_t *arr = json_array();
  for (size_t r = 0; r < st->n; r++) {
    struct request *rq = st->rq[r];
    json_t *items = json_array();
    for (size_t i = 0; i < rq->n; i++) {
      struct item *it = &rq->items[i];
      if (it->phase == PH_DONE) continue;
      json_t *o = json_object();
      json_object_set_new(o, "sync", json_string(it->sync_name));
      json_object_set_new(o, "phase", json_string(it->phase == PH_LOOKUP ? "lookup" : "delete"));
      json_object_set_new(o, "found", json_integer(it->found));
      json_object_set_new(o, "deleted", json_integer(it->deleted));
      json_t *ts = json_array();
      for (size_t k = 0; k < it->nt; k++) {
        json_t *t = json_object();
        char hex[33];
        if (it->t[k].has_key) bf_key_hex(it->t[k].key, hex);
        json_object_set_new(t, "key", it->t[k].has_key ? json_string(hex) : json_null());
        json_object_set_new(t, "match", it->t[k].match ? json_string(it->t[k].match) : json_null());
        if (it->t[k].guess) json_object_set_new(t, "guess", json_string(it->t[k].guess));
        json_array_append_new(ts, t);
      }
      json_object_set_new(o, "targets", ts);
      json_array_append_new(items, o);
    }
    if (json_array_size(items) == 0) {
      json_decref(items);
      continue;
    }
    json_t *o = json_object();
    json_object_set_new(o, "request", json_integer((json_int_t)rq->id));
    json_object_set_new(o, "kind", json_string(bf_forget_kind_name(rq->kind)));
    json_object_set_new(o, "hash", json_string(rq->hash));
    if (rq->model) json_object_set_new(o, "model", json_string(rq->model));
    /* The identifier is kept (sealed) only while a lookup still needs it. */
    json_object_set_new(o, "person",
                        rq->person && bf_forget_request_has_lookups(rq) ? person_json(rq->person)
                                                                        : json_null());
    json_object_set_new(o, "items", items);
    json_array_append_new(arr, o);
  }
  char *path = pending_path(p);
  int rc = 0;
  if (json_array_size(arr) == 0) {
    if (unlink(path) < 0 && errno != ENOENT)
      rc = bf_error_set(err, BF_E_STATE, "%s: cannot remove: %s", path, strerror(errno));
    else
      bf_fsync_dir(p->state_dir);
    json_decref(arr);
    free(path);
    return rc;
  }
  char *text = json_dumps(arr, JSON_COMPACT);
  json_decref(arr);
  size_t sealed_len;
  unsigned char *sealed = bf_prf_seal(&p->prf, text, strlen(text), &sealed_len);
  bf_forget_free_secret(text);
  char *failed_at = NULL;
  struct bf_keyfile_header kh = {.committed = sealed_len};
  memcpy(kh.magic, PENDING_MAGIC, 8);
  memcpy(kh.key_check, p->prf.key_check, BF_KEY_CHECK_BYTES);
  unsigned char header[BF_KEYFILE_HEADER];
  bf_keyfile_header_encode(header, &kh);
  if (bf_write_file_atomic(path, header, sizeof header, sealed, sealed_len, &failed_at) < 0) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot write: %s", failed_at, strerror(errno));
    free(failed_at);
  }
  free(sealed);
  free(path);
  return rc;
}

int bf_forget_store_load(struct bf_project *p, struct store *st, struct bf_error *err) {
  memset(st, 0, sizeof *st);
  char *path = pending_path(p);
  unsigned char *data = NULL;
  size_t len = 0;
  int rc = 0;
  if (bf_read_file(path, &data, &len) < 0) {
    if (errno != ENOENT)
      rc = bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", path, strerror(errno));
    free(path);
    return rc;
  }
  char *text = NULL;
  json_t *arr = NULL;
  struct bf_keyfile_header kh;
  size_t at = 8;
  if (bf_keyfile_header_decode(data, len, &kh) && memcmp(kh.magic, PENDING_MAGIC, 8) == 0) {
    if ((rc = bf_keyfile_check_key(path, kh.key_check, &p->prf, err))) goto out;
    at = BF_KEYFILE_HEADER;
  } else if (len < 8 || memcmp(data, PENDING_MAGIC_V1, 8) != 0) {
    rc = bf_keyfile_damaged(err, path, len ? "not a Backflow erasure file" : "empty file");
    goto out;
  }
  if (!(text = bf_prf_open(&p->prf, data + at, len - at, NULL))) {
    rc = bf_keyfile_damaged(err, path, "its seal does not open: changed on disk");
    goto out;
  }
  arr = json_loads(text, 0, NULL);
  if (!json_is_array(arr)) {
    rc = bf_error_set(err, BF_E_STATE, "%s: damaged (not the expected JSON)", path);
    goto out;
  }
  size_t r;
  json_t *o;
  json_array_foreach(arr, r, o) {
    struct request *rq = bf_xcalloc(1, sizeof *rq);
    rq->id = (uint64_t)json_integer_value(json_object_get(o, "request"));
    rq->kind = kind_from_name(json_string_value(json_object_get(o, "kind")));
    const char *hash = json_string_value(json_object_get(o, "hash"));
    snprintf(rq->hash, sizeof rq->hash, "%s", hash ? hash : "");
    rq->model = dup_str(o, "model");
    rq->person = person_from_json(json_object_get(o, "person"));
    json_t *items = json_object_get(o, "items");
    rq->items = bf_xcalloc(json_array_size(items) + 1, sizeof *rq->items);
    size_t i;
    json_t *io;
    json_array_foreach(items, i, io) {
      struct item *it = &rq->items[rq->n++];
      const char *sync_name = json_string_value(json_object_get(io, "sync"));
      it->sync_name = bf_xstrdup(sync_name ? sync_name : "?");
      it->sync = bf_config_sync(p->cfg, it->sync_name);
      const char *phase = json_string_value(json_object_get(io, "phase"));
      it->phase = phase && !strcmp(phase, "delete") ? PH_DELETE : PH_LOOKUP;
      it->found = json_integer_value(json_object_get(io, "found"));
      it->deleted = json_integer_value(json_object_get(io, "deleted"));
      size_t k;
      json_t *to;
      json_array_foreach(json_object_get(io, "targets"), k, to) {
        const char *hex = json_string_value(json_object_get(to, "key"));
        unsigned char key[16];
        size_t klen = 0;
        bool has_key = hex &&
                       sodium_hex2bin(key, sizeof key, hex, strlen(hex), NULL, &klen, NULL) == 0 &&
                       klen == 16;
        const char *match = json_string_value(json_object_get(to, "match"));
        const char *guess = json_string_value(json_object_get(to, "guess"));
        struct target *t =
            bf_forget_add_target(it, has_key ? key : NULL, match ? bf_xstrdup(match) : NULL);
        if (guess && !t->guess) t->guess = bf_xstrdup(guess);
      }
    }
    st->rq = bf_xrealloc(st->rq, (st->n + 1) * sizeof *st->rq);
    st->rq[st->n++] = rq;
  }
out:
  json_decref(arr);
  bf_forget_free_secret(text);
  free(data);
  free(path);
  return rc;
}

int bf_forget_pending_count(struct bf_project *p, size_t *items, size_t *requests,
                            struct bf_error *err) {
  *items = *requests = 0;
  int rc = bf_project_secret(p, false, err);
  if (rc == 1) return 0;
  if (rc < 0) return rc;
  struct store st;
  if ((rc = bf_forget_store_load(p, &st, err))) return rc;
  *requests = st.n;
  for (size_t i = 0; i < st.n; i++) *items += st.rq[i]->n;
  bf_forget_store_release(&st);
  return 0;
}

int bf_forget_check_pending(struct bf_project *p, struct bf_error *err) {
  struct store st;
  int rc = bf_forget_store_load(p, &st, err);
  bf_forget_store_release(&st);
  return rc;
}

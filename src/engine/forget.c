/* Erasure requests: `backflow forget`. The procedure and the files it keeps
 * are described in forget.h and docs/privacy.md; this file makes requests
 * and drives them (forget_lookup.c finds the person, forget_deliver.c sends
 * the deletes, forget_store.c keeps the pending requests and the audit
 * trail). */
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

const char *bf_forget_kind_name(int kind) {
  switch (kind) {
  case BF_FORGET_KEY: return "key";
  case BF_FORGET_EMAIL: return "email";
  case BF_FORGET_PHONE: return "phone";
  }
  return "?";
}

/* ---- memory ------------------------------------------------------------ */

void bf_forget_free_secret(char *s) {
  if (!s) return;
  sodium_memzero(s, strlen(s));
  free(s);
}

void bf_forget_person_free(struct person *ps) {
  if (!ps) return;
  free(ps->key_model);
  bf_forget_free_secret(ps->key_value);
  for (size_t i = 0; i < ps->n_emails; i++) bf_forget_free_secret(ps->emails[i]);
  for (size_t i = 0; i < ps->n_phones; i++) bf_forget_free_secret(ps->phones[i]);
  free(ps->emails);
  free(ps->phones);
  bf_forget_free_secret(ps->typed);
  free(ps);
}

void bf_forget_targets_free(struct item *it) {
  for (size_t i = 0; i < it->nt; i++) {
    bf_forget_free_secret(it->t[i].match);
    bf_forget_free_secret(it->t[i].guess);
  }
  free(it->t);
  it->t = NULL;
  it->nt = 0;
}

void bf_forget_request_free(struct request *rq) {
  if (!rq) return;
  for (size_t i = 0; i < rq->n; i++) {
    bf_forget_targets_free(&rq->items[i]);
    free(rq->items[i].sync_name);
    free(rq->items[i].reason);
  }
  free(rq->items);
  free(rq->model);
  bf_forget_person_free(rq->person);
  free(rq);
}

void bf_forget_store_release(struct store *st) {
  for (size_t i = 0; i < st->n; i++) bf_forget_request_free(st->rq[i]);
  free(st->rq);
  memset(st, 0, sizeof *st);
}

bool bf_forget_add_unique(char ***list, size_t *n, const char *s) {
  for (size_t i = 0; i < *n; i++)
    if (!strcmp((*list)[i], s)) return false;
  *list = bf_xrealloc(*list, (*n + 1) * sizeof **list);
  (*list)[(*n)++] = bf_xstrdup(s);
  return true;
}

void bf_forget_set_reason(struct item *it, const char *reason) {
  free(it->reason);
  it->reason = reason ? bf_xstrdup(reason) : NULL;
}

/* Adds a target unless the same key (or, without a key, the same match) is
 * there already; returns it. Takes match. */
struct target *bf_forget_add_target(struct item *it, const unsigned char *key, char *match) {
  for (size_t i = 0; i < it->nt; i++) {
    struct target *t = &it->t[i];
    bool same = key ? t->has_key && !memcmp(t->key, key, 16)
                    : !t->has_key && t->match && match && !strcmp(t->match, match);
    if (same) {
      if (!t->match)
        t->match = match;
      else
        bf_forget_free_secret(match);
      return t;
    }
  }
  it->t = bf_xrealloc(it->t, (it->nt + 1) * sizeof *it->t);
  struct target *t = &it->t[it->nt++];
  memset(t, 0, sizeof *t);
  if (key) {
    t->has_key = true;
    memcpy(t->key, key, 16);
  }
  t->match = match;
  return t;
}

/* ---- small helpers ------------------------------------------------------ */

void bf_forget_iso_now(char out[32]) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void bf_forget_sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

const char *bf_forget_pii_kind(const struct bf_model_config *m, const char *column) {
  return bf_pairs_get(&m->pii, column);
}

/* Case-insensitive replacement of every occurrence of needle by [value]. */
static char *scrub_one(char *s, const char *needle, size_t n) {
  if (n < 3) return s;
  for (size_t i = 0; s[i];) {
    if (strlen(s + i) >= n && strncasecmp(s + i, needle, n) == 0) {
      char *joined = bf_xasprintf("%.*s[value]%s", (int)i, s, s + i + n);
      free(s);
      s = joined;
      i += 7;
    } else {
      i++;
    }
  }
  return s;
}

/* A reason from a destination may quote what it refused: every value the
 * request knows of the person is taken out, and it is kept on one line. */
char *bf_forget_scrub(const struct request *rq, const struct item *it, const char *reason) {
  char *out = bf_xstrdup(reason ? reason : "rejected");
  const struct person *ps = rq->person;
  if (ps) {
    if (ps->typed) out = scrub_one(out, ps->typed, strlen(ps->typed));
    if (ps->key_value) out = scrub_one(out, ps->key_value, strlen(ps->key_value));
    for (size_t i = 0; i < ps->n_emails; i++)
      out = scrub_one(out, ps->emails[i], strlen(ps->emails[i]));
    for (size_t i = 0; i < ps->n_phones; i++)
      out = scrub_one(out, ps->phones[i], strlen(ps->phones[i]));
  }
  for (size_t i = 0; i < it->nt; i++) {
    if (!it->t[i].match) continue;
    json_t *m = json_loads(it->t[i].match, JSON_DECODE_ANY, NULL);
    const char *k;
    json_t *v;
    if (json_is_object(m)) {
      json_object_foreach(m, k, v) {
        char num[48];
        if (json_is_string(v))
          out = scrub_one(out, json_string_value(v), json_string_length(v));
        else if (json_is_integer(v))
          out = scrub_one(
              out, num,
              (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)));
        else if (json_is_real(v))
          out = scrub_one(out, num, bf_double_text(num, json_real_value(v)));
      }
    }
    json_decref(m);
  }
  for (char *c = out; *c; c++)
    if ((unsigned char)*c < 0x20) *c = ' ';
  return out;
}

/* ---- the request ------------------------------------------------------- */

static void entries_push(struct bf_forget_entries *v, int kind, uint64_t scope,
                         const unsigned char hash[16], uint64_t request) {
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 16;
    v->e = bf_xrealloc(v->e, v->cap * sizeof *v->e);
  }
  struct bf_forgotten_entry *e = &v->e[v->n++];
  memset(e, 0, sizeof *e);
  e->kind = (uint8_t)kind;
  e->scope = scope;
  memcpy(e->hash, hash, 16);
  e->request = request;
}

/* The person's own identifiers, as the suppression list holds them. */
static void identifier_entries(struct bf_project *p, const struct request *rq,
                               struct bf_forget_entries *v) {
  const struct person *ps = rq->person;
  if (!ps) return;
  unsigned char h[16];
  if (ps->key_model && ps->key_value) {
    bf_prf_key(&p->prf, ps->key_value, strlen(ps->key_value), h);
    entries_push(v, BF_FORGOTTEN_KEY, bf_forgotten_model_scope(ps->key_model), h, rq->id);
  }
  for (size_t i = 0; i < ps->n_emails; i++) {
    bf_forgotten_identifier_hash(&p->prf, BF_FORGOTTEN_EMAIL, ps->emails[i], strlen(ps->emails[i]),
                                 h);
    entries_push(v, BF_FORGOTTEN_EMAIL, 0, h, rq->id);
  }
  for (size_t i = 0; i < ps->n_phones; i++) {
    bf_forgotten_identifier_hash(&p->prf, BF_FORGOTTEN_PHONE, ps->phones[i], strlen(ps->phones[i]),
                                 h);
    entries_push(v, BF_FORGOTTEN_PHONE, 0, h, rq->id);
  }
}

/* The primary keys found, scoped to their model. */
static void key_entries(const struct request *rq, struct bf_forget_entries *v) {
  size_t first = v->n;
  for (size_t i = 0; i < rq->n; i++) {
    const struct item *it = &rq->items[i];
    if (!it->fresh || it->phase != PH_DELETE || !it->sync) continue;
    uint64_t scope = bf_forgotten_model_scope(it->sync->model);
    for (size_t k = 0; k < it->nt; k++) {
      if (!it->t[k].has_key) continue;
      bool dup = false;
      for (size_t j = first; j < v->n && !dup; j++)
        dup = v->e[j].scope == scope && !memcmp(v->e[j].hash, it->t[k].key, 16);
      if (!dup) entries_push(v, BF_FORGOTTEN_KEY, scope, it->t[k].key, rq->id);
    }
  }
}

static int append_entries(struct bf_project *p, struct bf_forget_entries *v, struct bf_error *err) {
  int rc = bf_forgotten_append(p->state_dir, &p->prf, v->e, v->n, err);
  if (rc == 0) v->n = 0;
  return rc;
}

static int suppress_identifiers(struct bf_project *p, const struct request *rq,
                                struct bf_error *err) {
  struct bf_forget_entries v = {0};
  identifier_entries(p, rq, &v);
  int rc = append_entries(p, &v, err);
  free(v.e);
  return rc;
}

/* The primary keys found join the list, scoped to their model. */
static int suppress_keys(struct bf_project *p, const struct request *rq, struct bf_error *err) {
  struct bf_forget_entries v = {0};
  key_entries(rq, &v);
  int rc = append_entries(p, &v, err);
  free(v.e);
  return rc;
}

static int chain(struct bf_project *p, struct request *rq, struct bf_error *err) {
  int rc = bf_forget_chain_lookup(p, rq, err);
  return rc ? rc : suppress_identifiers(p, rq, err);
}

static int process_request(struct bf_project *p, struct store *st, struct request *rq, bool retry,
                           long long lock_wait, struct bf_forget_batch *batch,
                           struct bf_error *err) {
  int rc = 0;
  bool lookups = true;
  if (rq->person && rq->kind == BF_FORGET_KEY && !rq->person->chained &&
      bf_forget_request_has_lookups(rq)) {
    struct bf_error werr = {0};
    rc = chain(p, rq, &werr);
    if (rc && werr.code != BF_E_WAREHOUSE && werr.code != BF_E_CONFIG) {
      *err = werr; /* the suppression list could not be written */
      return rc;
    }
    if (rc) {
      lookups = false;
      for (size_t i = 0; i < rq->n; i++) {
        if (rq->items[i].phase != PH_LOOKUP) continue;
        rq->items[i].fresh = true;
        bf_forget_item_pending(&rq->items[i], bf_code_exit_status(rc), werr.msg);
      }
    }
  }
  for (size_t i = 0; lookups && i < rq->n; i++) {
    struct item *it = &rq->items[i];
    if (it->phase != PH_LOOKUP) continue;
    it->fresh = true;
    if (!it->sync)
      bf_forget_item_done(it, "failed", 2, "the sync is no longer in the configuration");
    else if (!rq->person)
      bf_forget_item_done(it, "failed", 2, "the identifier to look up was lost");
    else
      bf_forget_lookup_item(p, rq, it, batch);
  }
  /* In a batch's group, the keys found, the audit lines and the pending
   * file are written at the group's commit (bf_forget_batch_run). */
  struct bf_forget_audit_queue *q = bf_forget_batch_queue(batch);
  if (q)
    key_entries(rq, bf_forget_batch_keys(batch));
  else if ((rc = suppress_keys(p, rq, err)) || (rc = bf_forget_store_save(p, st, err)))
    return rc;
  for (size_t i = 0; i < rq->n; i++) {
    struct item *it = &rq->items[i];
    if (it->phase != PH_DELETE) continue;
    it->fresh = true;
    if (!it->sync)
      bf_forget_item_done(it, "failed", 2, "the sync is no longer in the configuration");
    else
      bf_forget_deliver(p, rq, it, lock_wait, batch);
  }
  /* Audited before the pending file forgets what was done: a crash in
   * between resends deletes (harmless) rather than losing their record. */
  for (size_t i = 0; i < rq->n; i++)
    if (rq->items[i].fresh && (rc = bf_forget_audit_item(p, rq, &rq->items[i], retry, q, err)))
      return rc;
  return q ? 0 : bf_forget_store_save(p, st, err);
}

static void fill_result(const struct bf_project *p, const struct request *rq,
                        struct bf_forget_result *res) {
  memset(res, 0, sizeof *res);
  res->request = rq->id;
  res->kind = rq->kind;
  snprintf(res->identifier_hash, sizeof res->identifier_hash, "%s", rq->hash);
  res->model = rq->model ? bf_xstrdup(rq->model) : NULL;
  res->syncs = bf_xcalloc(rq->n + 1, sizeof *res->syncs);
  bool pending = false, failed = false;
  int worst[5] = {0};
  for (size_t i = 0; i < rq->n; i++) {
    const struct item *it = &rq->items[i];
    if (!it->fresh) continue;
    struct bf_forget_sync_result *r = &res->syncs[res->n_syncs++];
    const struct bf_destination_config *dc =
        it->sync ? bf_config_destination(p->cfg, it->sync->destination) : NULL;
    r->sync = bf_xstrdup(it->sync_name);
    r->destination = dc ? bf_xstrdup(dc->name) : NULL;
    r->destination_type = dc ? bf_xstrdup(dc->type) : NULL;
    r->found = it->found;
    r->deleted = it->deleted;
    r->status = it->status ? it->status : "pending";
    r->reason = it->reason ? bf_xstrdup(it->reason) : NULL;
    if (it->phase != PH_DONE)
      pending = true;
    else if (strcmp(r->status, "deleted") && strcmp(r->status, "not_found"))
      failed = true;
    if (it->exit >= 0 && it->exit < 5) worst[it->exit] = 1;
  }
  res->status = pending ? "pending" : failed ? "incomplete" : "complete";
  /* A warehouse down says the most about what is left to do, then an
   * unavailable destination, then a configuration or storage problem, then
   * refused records. */
  res->exit_status = worst[3] ? 3 : worst[4] ? 4 : worst[2] ? 2 : worst[1] ? 1 : 0;
}

static int audit_end(const struct bf_project *p, const struct request *rq,
                     const struct bf_forget_result *res, struct bf_forget_audit_queue *q,
                     struct bf_error *err) {
  struct bf_buf b = {0};
  bf_forget_audit_head(&b, rq, res->status);
  bf_buf_putc(&b, '}');
  int rc = bf_forget_audit_emit(p, q, &b, err);
  bf_buf_release(&b);
  return rc;
}

/* Serialises erasure commands of a project (the pending file is rewritten). */
static int lock_erasures(const struct bf_project *p, int *fd, struct bf_error *err) {
  if (mkdir(p->state_dir, 0700) < 0 && errno != EEXIST)
    return bf_error_set(err, BF_E_STATE, "%s: cannot create: %s", p->state_dir, strerror(errno));
  char *path = bf_xasprintf("%s/erasure.lock", p->state_dir);
  *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  int rc = 0;
  if (*fd < 0 || flock(*fd, LOCK_EX) < 0)
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot lock: %s", path, strerror(errno));
  free(path);
  return rc;
}

static uint64_t next_request_id(const struct bf_project *p, const struct store *st,
                                struct bf_error *err, int *rc) {
  uint64_t max = 0;
  *rc = bf_forgotten_max_request(p->state_dir, &max, err);
  for (size_t i = 0; i < st->n; i++)
    if (st->rq[i]->id > max) max = st->rq[i]->id;
  return max + 1;
}

/* The person named on the command line; norm gets the normalised email or
 * phone. */
static int person_from_options(const struct bf_project *p, const struct bf_forget_options *o,
                               struct person **out, char norm[BF_PII_MAX], struct bf_error *err) {
  const char *value = o->value ? o->value : "";
  const char *why = NULL;
  struct person *ps = bf_xcalloc(1, sizeof *ps);
  norm[0] = '\0';
  int rc = 0;
  switch (o->kind) {
  case BF_FORGET_EMAIL:
  case BF_FORGET_PHONE: {
    bool email = o->kind == BF_FORGET_EMAIL;
    int len = email ? bf_pii_meta_email(value, strlen(value), norm, &why)
                    : bf_pii_meta_phone(value, strlen(value), norm, &why);
    if (len < 0) {
      /* the value is not repeated: error output is often logged */
      rc = bf_error_set(err, BF_E_USAGE, "--%s: the value %s", email ? "email" : "phone", why);
      break;
    }
    bf_forget_add_unique(email ? &ps->emails : &ps->phones, email ? &ps->n_emails : &ps->n_phones,
                         norm);
    size_t a = strspn(value, " \t\r\n"), n = strlen(value + a);
    while (n && strchr(" \t\r\n", value[a + n - 1])) n--;
    ps->typed = bf_xstrndup(value + a, n);
    ps->chained = true;
    break;
  }
  case BF_FORGET_KEY: {
    const struct bf_model_config *m = o->model ? bf_config_model(p->cfg, o->model) : NULL;
    if (!m) {
      rc = bf_error_set(err, BF_E_USAGE, "--key: no model '%s' in %s (MODEL=VALUE)",
                        o->model ? o->model : "", p->cfg->path);
      break;
    }
    if (!*value) {
      rc = bf_error_set(err, BF_E_USAGE, "--key: the value after '=' is empty");
      break;
    }
    ps->key_model = bf_xstrdup(m->name);
    ps->key_value = bf_xstrdup(value);
    break;
  }
  default: rc = bf_error_set(err, BF_E_USAGE, "name the person: --email, --phone or --key"); break;
  }
  if (rc) {
    bf_forget_person_free(ps);
    return rc;
  }
  *out = ps;
  return 0;
}

/* The request's keyed hash: the key's hash for a key, else the identifier's. */
static void request_hash(const struct bf_project *p, const struct bf_forget_options *o,
                         const struct person *ps, const char *norm, char hex[33]) {
  unsigned char h[16];
  if (o->kind == BF_FORGET_KEY)
    bf_prf_key(&p->prf, ps->key_value, strlen(ps->key_value), h);
  else
    bf_forgotten_identifier_hash(&p->prf, o->kind, norm, strlen(norm), h);
  bf_key_hex(h, hex);
}

int bf_forget_identifier_hash(struct bf_project *p, const struct bf_forget_options *o, char hex[33],
                              struct bf_error *err) {
  struct person *ps = NULL;
  char norm[BF_PII_MAX];
  int rc = person_from_options(p, o, &ps, norm, err);
  if (rc == 0) rc = bf_project_secret(p, false, err);
  if (rc == 0) request_hash(p, o, ps, norm, hex);
  sodium_memzero(norm, sizeof norm);
  bf_forget_person_free(ps);
  return rc;
}

/* Records a new request for the person named by o (sealed in the pending
 * store, the suppression list, the audit log) with every sync still to be
 * looked up; *rq then belongs to st. The caller holds the erasure lock. */
/* A new request for the person named by o, with every sync still to be
 * looked up, appended to st (nothing written yet). */
static int make_request(struct bf_project *p, const struct bf_forget_options *o, struct store *st,
                        uint64_t id, struct request **out, struct bf_error *err) {
  *out = NULL;
  struct person *ps = NULL;
  char norm[BF_PII_MAX];
  int rc = person_from_options(p, o, &ps, norm, err);
  if (rc) return rc;
  struct request *rq = bf_xcalloc(1, sizeof *rq);
  rq->id = id;
  rq->kind = o->kind;
  rq->model = ps->key_model ? bf_xstrdup(ps->key_model) : NULL;
  request_hash(p, o, ps, norm, rq->hash);
  sodium_memzero(norm, sizeof norm);
  rq->person = ps;
  rq->items = bf_xcalloc(p->cfg->n_syncs + 1, sizeof *rq->items);
  for (size_t i = 0; i < p->cfg->n_syncs; i++) {
    struct item *it = &rq->items[rq->n++];
    it->sync = &p->cfg->syncs[i];
    it->sync_name = bf_xstrdup(it->sync->name);
    it->phase = PH_LOOKUP;
  }
  st->rq = bf_xrealloc(st->rq, (st->n + 1) * sizeof *st->rq);
  st->rq[st->n++] = rq;
  *out = rq;
  return 0;
}

/* Secret, audit log and pending requests, before requests are made. */
static int open_requests(struct bf_project *p, struct bf_forget_batch *batch, struct store *st,
                         struct bf_error *err) {
  int rc = bf_project_secret(p, true, err);
  if (rc < 0) return rc;
  if (bf_forget_batch_verify_audit(batch) &&
      (rc = bf_audit_verify(p->state_dir, &p->prf, NULL, err)))
    return rc;
  return bf_forget_store_load(p, st, err);
}

/* Records a new request for the person named by o (sealed in the pending
 * store, the suppression list, the audit log) with every sync still to be
 * looked up; *rq then belongs to st. The caller holds the erasure lock. */
static int new_request(struct bf_project *p, const struct bf_forget_options *o, struct store *st,
                       struct request **out, struct bf_error *err) {
  *out = NULL;
  struct person *check = NULL;
  char norm[BF_PII_MAX];
  /* A bad identifier is a usage error before any file is touched. */
  int rc = person_from_options(p, o, &check, norm, err);
  sodium_memzero(norm, sizeof norm);
  bf_forget_person_free(check);
  if (rc || (rc = open_requests(p, NULL, st, err))) return rc < 0 ? rc : 0;
  uint64_t id = next_request_id(p, st, err, &rc);
  if (rc || (rc = make_request(p, o, st, id, out, err))) return rc;
  /* Recorded (sealed) before anything else: a crash from here on leaves a
   * request that --retry completes. Then no run sends the person again. */
  if ((rc = bf_forget_store_save(p, st, err)) || (rc = suppress_identifiers(p, *out, err)) ||
      (rc = bf_forget_audit_request(p, *out, NULL, err)))
    return rc;
  return 0;
}

int bf_forget_person(struct bf_project *p, const struct bf_forget_options *o,
                     struct bf_forget_result *res, struct bf_error *err) {
  memset(res, 0, sizeof *res);
  int lock_fd = -1;
  struct store st = {0};
  struct request *rq = NULL;
  int rc = lock_erasures(p, &lock_fd, err);
  if (rc || (rc = new_request(p, o, &st, &rq, err))) goto out;
  long long wait = o->lock_wait_ms > 0 ? o->lock_wait_ms : DEFAULT_LOCK_WAIT_MS;
  if ((rc = process_request(p, &st, rq, false, wait, NULL, err))) goto out;
  fill_result(p, rq, res);
  rc = audit_end(p, rq, res, NULL, err);
out:
  bf_forget_store_release(&st);
  if (lock_fd >= 0) close(lock_fd);
  return rc < 0 ? rc : 0;
}

int bf_forget_submit(struct bf_project *p, const struct bf_forget_options *o, uint64_t *id,
                     struct bf_error *err) {
  *id = 0;
  int lock_fd = -1;
  struct store st = {0};
  struct request *rq = NULL;
  int rc = lock_erasures(p, &lock_fd, err);
  if (rc == 0) rc = new_request(p, o, &st, &rq, err);
  if (rc == 0) *id = rq->id;
  bf_forget_store_release(&st);
  if (lock_fd >= 0) close(lock_fd);
  return rc;
}

int bf_forget_retry(struct bf_project *p, long long lock_wait_ms, struct bf_forget_result **res,
                    size_t *n, struct bf_error *err) {
  *res = NULL;
  *n = 0;
  int lock_fd = -1;
  struct store st = {0};
  int rc = bf_project_secret(p, false, err);
  if (rc == 1) return 0; /* no secret: nothing was ever requested */
  if (rc < 0 || (rc = lock_erasures(p, &lock_fd, err)) ||
      (rc = bf_audit_verify(p->state_dir, &p->prf, NULL, err)) ||
      (rc = bf_forget_store_load(p, &st, err)))
    goto out;
  long long wait = lock_wait_ms > 0 ? lock_wait_ms : DEFAULT_LOCK_WAIT_MS;
  *res = bf_xcalloc(st.n + 1, sizeof **res);
  for (size_t i = 0; i < st.n && rc == 0; i++) {
    struct request *rq = st.rq[i];
    if (rq->person && bf_forget_request_has_lookups(rq)) rc = suppress_identifiers(p, rq, err);
    if (rc == 0) rc = process_request(p, &st, rq, true, wait, NULL, err);
    if (rc == 0) {
      fill_result(p, rq, &(*res)[*n]);
      rc = audit_end(p, rq, &(*res)[(*n)++], NULL, err);
    }
  }
out:
  bf_forget_store_release(&st);
  if (lock_fd >= 0) close(lock_fd);
  return rc < 0 ? rc : 0;
}

/* A batch's group commit: the audit lines first (what was done is on
 * record before anything forgets it), then the keys found, the held syncs'
 * journals made durable, and the pending file without the requests done.
 * A crash before it leaves those requests pending: --retry does them again
 * (deletes are idempotent). */
static int group_commit(struct bf_project *p, struct bf_forget_batch *batch, struct store *st,
                        struct bf_error *err) {
  int rc = bf_forget_audit_flush(p, bf_forget_batch_queue(batch), err);
  if (rc == 0) rc = append_entries(p, bf_forget_batch_keys(batch), err);
  if (rc == 0) rc = bf_forget_batch_sync(batch, err);
  if (rc == 0) rc = bf_forget_store_save(p, st, err);
  return rc;
}

#define GROUP_REQUESTS 50

int bf_forget_batch_run(struct bf_project *p, struct bf_forget_batch *batch,
                        const struct bf_forget_options *people, size_t n,
                        struct bf_forget_result *res, struct bf_error *errs,
                        void (*progress)(size_t done, size_t total), struct bf_error *err) {
  memset(res, 0, n * sizeof *res);
  int *lock = bf_forget_batch_lock(batch);
  struct store st = {0};
  struct request **rqs = bf_xcalloc(n + 1, sizeof *rqs);
  struct bf_forget_entries idents = {0};
  int rc = *lock < 0 ? lock_erasures(p, lock, err) : 0;
  if (rc || (rc = open_requests(p, batch, &st, err))) goto out;
  uint64_t id = next_request_id(p, &st, err, &rc);
  if (rc) goto out;
  /* 1. Every request recorded at once (sealed, suppressed, audited). */
  struct bf_forget_audit_queue q = {0};
  for (size_t i = 0; i < n; i++) {
    memset(&errs[i], 0, sizeof errs[i]);
    if (make_request(p, &people[i], &st, id, &rqs[i], &errs[i])) continue;
    id++;
    identifier_entries(p, rqs[i], &idents);
    if ((rc = bf_forget_audit_request(p, rqs[i], &q, err))) break;
  }
  if (rc == 0 && (rc = bf_forget_store_save(p, &st, err)) == 0 &&
      (rc = append_entries(p, &idents, err)) == 0)
    rc = bf_forget_audit_flush(p, &q, err);
  bf_buf_release(&q.lines);
  free(q.lens);
  if (rc) goto out;
  /* 2. Worked on in groups: durable writes once per group, not per person. */
  bf_forget_batch_set_grouped(batch, true);
  long long wait = people[0].lock_wait_ms > 0 ? people[0].lock_wait_ms : DEFAULT_LOCK_WAIT_MS;
  size_t done = 0, in_group = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (!rqs[i]) continue;
    if ((rc = process_request(p, &st, rqs[i], false, wait, batch, err))) break;
    fill_result(p, rqs[i], &res[i]);
    if ((rc = audit_end(p, rqs[i], &res[i], bf_forget_batch_queue(batch), err))) break;
    done++;
    if (++in_group == GROUP_REQUESTS) {
      rc = group_commit(p, batch, &st, err);
      in_group = 0;
    }
    if (progress) progress(done, n);
  }
  if (rc == 0 && in_group) rc = group_commit(p, batch, &st, err);
  bf_forget_batch_set_grouped(batch, false);
out:
  free(idents.e);
  free(rqs);
  bf_forget_store_release(&st);
  return rc < 0 ? rc : 0;
}

/* Erasure requests: `backflow forget`. The procedure and the files it keeps
 * are described in forget.h and docs/privacy.md. */
#include "engine/forget.h"
#include "engine/forget_internal.h"

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

#include "engine/audit_log.h"
#include "util/crashpoint.h"
#include "engine/forgotten.h"
#include "engine/idindex.h"
#include "util/fsutil.h"
#include "util/keyfile.h"
#include "spec/mapping.h"
#include "util/pii_normalize.h"
#include "engine/runlog.h"
#include "engine/state.h"
#include "engine/vault.h"
#include "destinations/destination.h"
#include "sources/source.h"

#define PENDING_MAGIC_V1     "BFERASE1"
#define PENDING_MAGIC        "BFERASE2"
#define SEND_ATTEMPTS        3
#define DEFAULT_LOCK_WAIT_MS 60000

enum phase { PH_LOOKUP, PH_DELETE, PH_DONE };

/* Who is erased. Plaintext: in memory, or sealed in the pending file while a
 * lookup is still to be done; never elsewhere. */
struct person {
  char *key_model, *key_value; /* BF_FORGET_KEY */
  char **emails;               /* normalised (bf_pii_meta_email) */
  size_t n_emails;
  char **phones; /* normalised (bf_pii_meta_phone) */
  size_t n_phones;
  char *typed;  /* the email or phone as typed (trimmed) */
  bool chained; /* KEY: the key's row was read for its emails and phones */
};

struct target {
  bool has_key;
  unsigned char key[16];
  char *match; /* the record's match JSON; NULL: to resolve from the vault */
  char *guess; /* KEY whose row is gone: the match JSON made from the key, if the vault has none */
};

struct item {
  char *sync_name;
  const struct bf_sync_config *sync; /* NULL when the sync left the configuration */
  int phase;
  struct target *t;
  size_t nt;
  long long found, deleted;
  const char *status;
  char *reason;
  int exit;     /* this invocation's verdict: 0, 1, 2, 3, 4 */
  bool fresh;   /* worked on in this invocation (gets an audit entry) */
  bool indexed; /* the sync's identifier index covers every record it sent */
};

struct request {
  uint64_t id;
  int kind;
  char hash[33];
  char *model;           /* KEY */
  struct person *person; /* NULL when loaded after its lookups were done */
  struct item *items;
  size_t n;
};

struct store {
  struct request **rq;
  size_t n;
};

const char *bf_forget_kind_name(int kind) {
  switch (kind) {
  case BF_FORGET_KEY: return "key";
  case BF_FORGET_EMAIL: return "email";
  case BF_FORGET_PHONE: return "phone";
  }
  return "?";
}

static int kind_from_name(const char *s) {
  if (!s) return 0;
  if (!strcmp(s, "key")) return BF_FORGET_KEY;
  if (!strcmp(s, "email")) return BF_FORGET_EMAIL;
  if (!strcmp(s, "phone")) return BF_FORGET_PHONE;
  return 0;
}

/* ---- memory ------------------------------------------------------------ */

static void free_secret_str(char *s) {
  if (!s) return;
  sodium_memzero(s, strlen(s));
  free(s);
}

static void person_free(struct person *ps) {
  if (!ps) return;
  free(ps->key_model);
  free_secret_str(ps->key_value);
  for (size_t i = 0; i < ps->n_emails; i++) free_secret_str(ps->emails[i]);
  for (size_t i = 0; i < ps->n_phones; i++) free_secret_str(ps->phones[i]);
  free(ps->emails);
  free(ps->phones);
  free_secret_str(ps->typed);
  free(ps);
}

static void targets_free(struct item *it) {
  for (size_t i = 0; i < it->nt; i++) {
    free_secret_str(it->t[i].match);
    free_secret_str(it->t[i].guess);
  }
  free(it->t);
  it->t = NULL;
  it->nt = 0;
}

static void request_free(struct request *rq) {
  if (!rq) return;
  for (size_t i = 0; i < rq->n; i++) {
    targets_free(&rq->items[i]);
    free(rq->items[i].sync_name);
    free(rq->items[i].reason);
  }
  free(rq->items);
  free(rq->model);
  person_free(rq->person);
  free(rq);
}

static void store_release(struct store *st) {
  for (size_t i = 0; i < st->n; i++) request_free(st->rq[i]);
  free(st->rq);
  memset(st, 0, sizeof *st);
}

static bool add_unique(char ***list, size_t *n, const char *s) {
  for (size_t i = 0; i < *n; i++)
    if (!strcmp((*list)[i], s)) return false;
  *list = bf_xrealloc(*list, (*n + 1) * sizeof **list);
  (*list)[(*n)++] = bf_xstrdup(s);
  return true;
}

static void set_reason(struct item *it, const char *reason) {
  free(it->reason);
  it->reason = reason ? bf_xstrdup(reason) : NULL;
}

/* Adds a target unless the same key (or, without a key, the same match) is
 * there already; returns it. Takes match. */
static struct target *add_target(struct item *it, const unsigned char *key, char *match) {
  for (size_t i = 0; i < it->nt; i++) {
    struct target *t = &it->t[i];
    bool same = key ? t->has_key && !memcmp(t->key, key, 16)
                    : !t->has_key && t->match && match && !strcmp(t->match, match);
    if (same) {
      if (!t->match)
        t->match = match;
      else
        free_secret_str(match);
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

static void iso_now(char out[32]) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static const char *pii_kind_of(const struct bf_model_config *m, const char *column) {
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
static char *scrub(const struct request *rq, const struct item *it, const char *reason) {
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

/* ---- the audit log ------------------------------------------------------ */

static void audit_head(struct bf_buf *b, const struct request *rq, const char *event) {
  char now[32];
  iso_now(now);
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

static int audit_request(const struct bf_project *p, const struct request *rq,
                         struct bf_error *err) {
  struct bf_buf b = {0};
  audit_head(&b, rq, "request");
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

static int audit_item(const struct bf_project *p, const struct request *rq, const struct item *it,
                      bool retry, struct bf_error *err) {
  struct bf_buf b = {0};
  audit_head(&b, rq, "sync");
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
    if (json_is_string(v)) add_unique(list, n, json_string_value(v));
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

static bool request_has_lookups(const struct request *rq) {
  for (size_t i = 0; i < rq->n; i++)
    if (rq->items[i].phase == PH_LOOKUP) return true;
  return false;
}

static int store_save(const struct bf_project *p, struct store *st, struct bf_error *err) {
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
    json_object_set_new(
        o, "person", rq->person && request_has_lookups(rq) ? person_json(rq->person) : json_null());
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
  free_secret_str(text);
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

static int store_load(struct bf_project *p, struct store *st, struct bf_error *err) {
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
        struct target *t = add_target(it, has_key ? key : NULL, match ? bf_xstrdup(match) : NULL);
        if (guess && !t->guess) t->guess = bf_xstrdup(guess);
      }
    }
    st->rq = bf_xrealloc(st->rq, (st->n + 1) * sizeof *st->rq);
    st->rq[st->n++] = rq;
  }
out:
  json_decref(arr);
  free_secret_str(text);
  free(data);
  free(path);
  return rc;
}

/* ---- looking the person up in the warehouse ----------------------------- */

static void quote_ident(struct bf_buf *b, const char *name) {
  bf_buf_putc(b, '"');
  for (const char *c = name; *c; c++) {
    if (*c == '"') bf_buf_putc(b, '"');
    bf_buf_putc(b, *c);
  }
  bf_buf_putc(b, '"');
}

static void col_text(struct bf_buf *b, const char *col) {
  bf_buf_puts(b, "CAST(bf_m.");
  quote_ident(b, col);
  bf_buf_puts(b, " AS TEXT)");
}

/* chr(n) / char(n): the control characters the normalisers trim. */
static void ctrl(struct bf_buf *b, bool pg, int c) {
  bf_buf_printf(b, pg ? "chr(%d)" : "char(%d)", c);
}

/* Email: trimmed of whitespace and lower-cased on both sides, as
 * bf_pii_meta_email does (the rows found are checked again in C with the
 * normaliser itself). */
static void email_cond(struct bf_buf *b, bool pg, const char *col, size_t param) {
  bf_buf_puts(b, pg ? "LOWER(BTRIM(" : "LOWER(TRIM(");
  col_text(b, col);
  bf_buf_puts(b, ", ' '");
  for (int c = 9; c <= 13; c++) {
    bf_buf_puts(b, "||");
    ctrl(b, pg, c);
  }
  bf_buf_printf(b, ")) = LOWER(CAST($%zu AS TEXT))", param);
}

/* Phone: the separators bf_pii_meta_phone accepts are removed; the
 * normalised number (no leading zeros or 00) then ends the digits. */
static void phone_cond(struct bf_buf *b, bool pg, const char *col, size_t param) {
  static const char *const seps[] = {"' '", "'-'", "'.'", "'('", "')'", "'/'", "'+'"};
  size_t nrep = sizeof seps / sizeof seps[0] + 5;
  for (size_t i = 0; i < nrep; i++) bf_buf_puts(b, "REPLACE(");
  col_text(b, col);
  for (size_t i = 0; i < sizeof seps / sizeof seps[0]; i++) bf_buf_printf(b, ", %s, '')", seps[i]);
  for (int c = 9; c <= 13; c++) {
    bf_buf_puts(b, ", ");
    ctrl(b, pg, c);
    bf_buf_puts(b, ", '')");
  }
  bf_buf_printf(b, " LIKE '%%' || CAST($%zu AS TEXT)", param);
}

struct lookup {
  struct bf_buf sql;
  const char **params;
  size_t nparams;
};

static void lookup_add_param(struct lookup *lk, const char *v) {
  lk->params = bf_xrealloc(lk->params, (lk->nparams + 1) * sizeof *lk->params);
  lk->params[lk->nparams++] = v;
}

static bool has_column(char *const *cols, size_t ncols, const char *name) {
  for (size_t i = 0; i < ncols; i++)
    if (!strcmp(cols[i], name)) return true;
  return cols == NULL; /* columns not known yet: assume it is there */
}

/* Builds SELECT * FROM (<model sql>) AS bf_m WHERE ...; false when the model
 * cannot hold the person (no column to search). cols: the query's columns
 * (a pii column the query does not return is not searched), or NULL. */
static bool lookup_build(const struct bf_model_config *m, const struct person *ps, bool pg,
                         bool key_only, char *const *cols, size_t ncols, struct lookup *lk) {
  struct bf_buf cond = {0};
  bool key = ps->key_model && ps->key_value && !strcmp(ps->key_model, m->name);
  if (key) {
    col_text(&cond, m->primary_key);
    lookup_add_param(lk, ps->key_value);
    bf_buf_printf(&cond, " = CAST($%zu AS TEXT)", lk->nparams);
  }
  for (size_t i = 0; !key_only && i < m->pii.n; i++) {
    const struct bf_pair *c = &m->pii.items[i];
    bool email = !strcmp(c->value, "email"), phone = !strcmp(c->value, "phone");
    size_t n = email ? ps->n_emails : phone ? ps->n_phones : 0;
    if (n && !has_column(cols, ncols, c->key)) continue;
    for (size_t k = 0; k < n; k++) {
      if (cond.len) bf_buf_puts(&cond, " OR ");
      lookup_add_param(lk, email ? ps->emails[k] : ps->phones[k]);
      if (email)
        email_cond(&cond, pg, c->key, lk->nparams);
      else
        phone_cond(&cond, pg, c->key, lk->nparams);
    }
  }
  if (!cond.len) {
    bf_buf_release(&cond);
    return false;
  }
  size_t n = strlen(m->sql);
  while (n && (m->sql[n - 1] == ';' || m->sql[n - 1] == ' ' || m->sql[n - 1] == '\n' ||
               m->sql[n - 1] == '\t' || m->sql[n - 1] == '\r'))
    n--;
  /* Newlines: a trailing -- comment in the model cannot swallow the rest. */
  bf_buf_printf(&lk->sql, "SELECT * FROM (\n%.*s\n) AS bf_m WHERE ", (int)n, m->sql);
  bf_buf_append(&lk->sql, cond.data, cond.len);
  bf_buf_release(&cond);
  return true;
}

static void lookup_release(struct lookup *lk) {
  bf_buf_release(&lk->sql);
  free(lk->params);
}

/* Does this row belong to the person? Checked with the normalisers: the SQL
 * only narrows the search. */
static bool row_matches(const struct bf_model_config *m, const struct person *ps, char *const *cols,
                        size_t ncols, size_t pk_col, const struct bf_value *row,
                        struct bf_buf *tmp) {
  if (ps->key_model && ps->key_value && !strcmp(ps->key_model, m->name) &&
      bf_mapping_key_bytes(&row[pk_col], tmp) && tmp->len == strlen(ps->key_value) &&
      !memcmp(tmp->data, ps->key_value, tmp->len))
    return true;
  for (size_t c = 0; c < ncols; c++) {
    const char *kind = pii_kind_of(m, cols[c]);
    if (!kind) continue;
    bool email = !strcmp(kind, "email"), phone = !strcmp(kind, "phone");
    if (!email && !phone) continue;
    char num[48], out[BF_PII_MAX];
    const char *s, *why;
    size_t n;
    if (!bf_pii_value_text(&row[c], num, sizeof num, &s, &n)) continue;
    int len = email ? bf_pii_meta_email(s, n, out, &why) : bf_pii_meta_phone(s, n, out, &why);
    if (len < 0) continue;
    char **list = email ? ps->emails : ps->phones;
    size_t nl = email ? ps->n_emails : ps->n_phones;
    for (size_t k = 0; k < nl; k++)
      if (!strcmp(list[k], out)) return true;
  }
  return false;
}

/* What a lookup does with the query's columns (once) and each matching row. */
struct row_sink {
  int (*begin)(void *ctx, char *const *cols, size_t ncols, struct bf_error *err);
  void (*row)(void *ctx, char *const *cols, size_t ncols, const struct bf_value *row);
  void *ctx;
};

/* Runs the person's lookup on model m (key_only: by the primary key alone)
 * and hands every matching row to sink. Returns 1 when the model has
 * nothing to search by, 0, or a bf_code. */
/* A batch's person: the rows the batch read from the model in one pass. */
static int lookup_cached(struct bf_project *p, const struct bf_model_config *m,
                         const struct person *ps, const struct bf_forget_rows *rows,
                         const struct row_sink *sink, struct bf_error *err) {
  size_t pk_col = 0;
  while (pk_col < rows->ncols && strcmp(rows->cols[pk_col], m->primary_key)) pk_col++;
  if (pk_col == rows->ncols)
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: primary key '%s' is not a column of model '%s'",
                        m->primary_key_loc.file, m->primary_key_loc.line, m->primary_key_loc.col,
                        m->primary_key, m->name);
  int rc = sink->begin ? sink->begin(sink->ctx, rows->cols, rows->ncols, err) : 0;
  struct bf_buf tmp = {0};
  for (size_t r = 0; rc == 0 && r < rows->rb.nrows; r++) {
    const struct bf_value *row = bf_rowbuf_row(&rows->rb, r);
    if (row_matches(m, ps, rows->cols, rows->ncols, pk_col, row, &tmp))
      sink->row(sink->ctx, rows->cols, rows->ncols, row);
  }
  bf_buf_release(&tmp);
  (void)p;
  return rc;
}

static int lookup_rows(struct bf_project *p, const struct bf_model_config *m,
                       const struct person *ps, bool key_only, struct bf_forget_batch *batch,
                       const struct row_sink *sink, struct bf_error *err) {
  const struct bf_warehouse_config *wh = bf_config_warehouse(p->cfg, m->warehouse);
  struct lookup lk = {0};
  bool pg = wh && !strcmp(wh->type, "postgres");
  bool searchable = lookup_build(m, ps, pg, key_only, NULL, 0, &lk);
  lookup_release(&lk);
  memset(&lk, 0, sizeof lk);
  if (!searchable) return 1; /* known without asking the warehouse */
  if (batch && !key_only && !ps->key_model) {
    const struct bf_forget_rows *rows = NULL;
    int rc = bf_forget_batch_rows(batch, p, m, &rows, err);
    if (rc) return rc;
    if (rows) return lookup_cached(p, m, ps, rows, sink, err);
  }
  struct bf_source *src = NULL;
  struct bf_cursor *cur = NULL;
  struct bf_rowbuf rb = {0};
  struct bf_buf tmp = {0};
  int rc = bf_source_open(wh, p->cfg, &src, err);
  /* The model's columns first (prepared, not run): only pii columns the
   * query returns are searched. */
  if (rc == 0 && (rc = bf_source_query(src, m->sql, &cur, err)) == 0) {
    if (!has_column(cur->column_names, cur->ncols, m->primary_key))
      rc =
          bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: primary key '%s' is not a column of model '%s'",
                       m->primary_key_loc.file, m->primary_key_loc.line, m->primary_key_loc.col,
                       m->primary_key, m->name);
    searchable = lookup_build(m, ps, pg, key_only, cur->column_names, cur->ncols, &lk);
    bf_cursor_free(cur);
    cur = NULL;
    if (rc == 0 && !searchable) {
      bf_source_close(src);
      lookup_release(&lk);
      return 1;
    }
  }
  if (rc == 0)
    rc = bf_source_query_params(src, bf_buf_cstr(&lk.sql), lk.params, lk.nparams, &cur, err);
  if (rc && src && err->code != BF_E_CONFIG)
    bf_error_prefix(err, "%s:%d:%d: model '%s': looking the person up", m->sql_loc.file,
                    m->sql_loc.line, m->sql_loc.col, m->name);
  size_t pk_col = 0;
  if (rc == 0) {
    while (pk_col < cur->ncols && strcmp(cur->column_names[pk_col], m->primary_key)) pk_col++;
    if (pk_col == cur->ncols)
      rc = bf_error_set(err, BF_E_CONFIG, "model '%s': no primary key column", m->name);
  }
  if (rc == 0 && sink->begin) rc = sink->begin(sink->ctx, cur->column_names, cur->ncols, err);
  if (rc == 0) {
    bf_rowbuf_init(&rb, cur->ncols, 256);
    for (;;) {
      bf_rowbuf_clear(&rb);
      int got = cur->ops->next_chunk(cur, &rb, err);
      if (got < 0) {
        rc = got;
        bf_error_prefix(err, "model '%s': looking the person up", m->name);
        break;
      }
      if (got == 0) break;
      for (size_t r = 0; r < rb.nrows; r++) {
        const struct bf_value *row = bf_rowbuf_row(&rb, r);
        if (row_matches(m, ps, cur->column_names, cur->ncols, pk_col, row, &tmp))
          sink->row(sink->ctx, cur->column_names, cur->ncols, row);
      }
    }
  }
  bf_rowbuf_release(&rb);
  bf_buf_release(&tmp);
  bf_cursor_free(cur);
  bf_source_close(src);
  lookup_release(&lk);
  return rc;
}

/* KEY: the emails and phones of the key's row find the person in the other
 * models. */
struct chain_ctx {
  const struct bf_model_config *m;
  struct person *ps;
};

static void chain_row(void *ctx_, char *const *cols, size_t ncols, const struct bf_value *row) {
  struct chain_ctx *ctx = ctx_;
  for (size_t c = 0; c < ncols; c++) {
    const char *kind = pii_kind_of(ctx->m, cols[c]);
    if (!kind || (strcmp(kind, "email") && strcmp(kind, "phone"))) continue;
    bool email = !strcmp(kind, "email");
    char num[48], out[BF_PII_MAX];
    const char *s, *why;
    size_t n;
    if (!bf_pii_value_text(&row[c], num, sizeof num, &s, &n)) continue;
    int len = email ? bf_pii_meta_email(s, n, out, &why) : bf_pii_meta_phone(s, n, out, &why);
    if (len < 0) continue;
    if (email)
      add_unique(&ctx->ps->emails, &ctx->ps->n_emails, out);
    else
      add_unique(&ctx->ps->phones, &ctx->ps->n_phones, out);
    sodium_memzero(out, sizeof out);
  }
}

struct found_ctx {
  struct bf_project *p;
  const struct bf_sync_config *s;
  const struct bf_model_config *m;
  struct item *it;
  struct bf_mapping map;
  bool built;
  struct bf_buf keybuf, json;
};

static int found_begin(void *ctx_, char *const *cols, size_t ncols, struct bf_error *err) {
  struct found_ctx *ctx = ctx_;
  int rc = bf_mapping_build(ctx->p->cfg, ctx->s, ctx->m, cols, ncols, &ctx->map, err);
  ctx->built = rc == 0;
  return rc;
}

static void found_row(void *ctx_, char *const *cols, size_t ncols, const struct bf_value *row) {
  struct found_ctx *ctx = ctx_;
  if (!bf_mapping_key_bytes(&row[ctx->map.pk_col], &ctx->keybuf)) return; /* never sent */
  unsigned char key[16];
  bf_prf_key(&ctx->p->prf, ctx->keybuf.data, ctx->keybuf.len, key);
  bf_mapping_match_json(&ctx->map, row, &ctx->json);
  add_target(ctx->it, key, bf_xstrndup(ctx->json.data, ctx->json.len));
}

/* A sync's mapping from the names its config uses (no warehouse needed):
 * what a destination's remove reads is the match part. */
static int config_mapping(const struct bf_config *cfg, const struct bf_sync_config *s,
                          const struct bf_model_config *m, struct bf_mapping *map,
                          struct bf_error *err) {
  size_t n = 1 + s->match.n + s->fields.n;
  char **cols = bf_xcalloc(n, sizeof *cols);
  size_t k = 0;
  cols[k++] = m->primary_key;
  for (size_t i = 0; i < s->match.n; i++) cols[k++] = s->match.items[i].value;
  for (size_t i = 0; i < s->fields.n; i++) cols[k++] = s->fields.items[i].value;
  int rc = bf_mapping_build(cfg, s, m, cols, n, map, err);
  free(cols);
  return rc;
}

/* The only match column of sync s, or NULL. */
static const char *single_match_column(const struct bf_sync_config *s) {
  return s->match.n == 1 ? s->match.items[0].value : NULL;
}

/* {"user_id":7} from a value typed on the command line. numeric: a plain
 * integer is written as a number (a key), else everything is a string. */
static char *match_from_text(const char *field, const char *value, bool numeric) {
  struct bf_buf b = {0};
  bf_buf_putc(&b, '{');
  bf_json_cstr(&b, field);
  bf_buf_putc(&b, ':');
  const char *d = value + (value[0] == '-');
  size_t nd = strspn(d, "0123456789");
  bool integer = numeric && nd > 0 && nd <= 18 && d[nd] == '\0' && (d[0] != '0' || nd == 1);
  if (integer)
    bf_buf_puts(&b, value);
  else
    bf_json_cstr(&b, value);
  bf_buf_putc(&b, '}');
  char *out = bf_xstrndup(b.data, b.len);
  bf_buf_release(&b);
  return out;
}

/* match_from_text for sync s's only match column: under `pii_policy: hash`
 * the destination holds the hash of the normalised value, so the delete
 * names that. NULL when the value cannot be normalised. */
static char *match_for_sync(const struct bf_sync_config *s, const struct bf_model_config *m,
                            const char *value, bool numeric) {
  const char *column = s->match.items[0].value;
  const char *policy = bf_pairs_get(&s->pii_policy, column);
  if (!policy || strcmp(policy, "hash"))
    return match_from_text(s->match.items[0].key, value, numeric);
  const char *kind = bf_pairs_get(&m->pii, column);
  char hex[BF_PII_SHA256_HEX];
  const char *why;
  if (bf_pii_normalize_hash(bf_pii_fn_for_kind(kind ? kind : "other"), value, strlen(value), hex,
                            &why))
    return NULL;
  return match_from_text(s->match.items[0].key, hex, false);
}

static void item_pending(struct item *it, int exit, const char *reason) {
  it->status = "pending";
  it->exit = exit;
  set_reason(it, reason);
}

static void item_done(struct item *it, const char *status, int exit, const char *reason) {
  it->phase = PH_DONE;
  it->status = status;
  it->exit = exit;
  set_reason(it, reason);
}

/* The records the sync sent for the person's emails and phones, by its
 * identifier index (idindex.h): found whether or not the rows are still in
 * the warehouse. Their match values come from the vault at delivery. */
static int index_targets(struct bf_project *p, const struct person *ps, struct item *it,
                         struct bf_forget_batch *batch, struct bf_error *err) {
  size_t n = ps->n_emails + ps->n_phones;
  if (n == 0) return 0;
  unsigned char(*idents)[16] = bf_xcalloc(n, 16);
  for (size_t i = 0; i < ps->n_emails; i++)
    bf_forgotten_identifier_hash(&p->prf, BF_FORGOTTEN_EMAIL, ps->emails[i], strlen(ps->emails[i]),
                                 idents[i]);
  for (size_t i = 0; i < ps->n_phones; i++)
    bf_forgotten_identifier_hash(&p->prf, BF_FORGOTTEN_PHONE, ps->phones[i], strlen(ps->phones[i]),
                                 idents[ps->n_emails + i]);
  char *dir = bf_project_sync_dir(p, it->sync->name);
  unsigned char(*keys)[16] = NULL;
  size_t n_keys = 0;
  bool indexed;
  struct bf_forget_held *kept = bf_forget_batch_held(batch, it->sync->name);
  int rc = 0;
  if (kept && !kept->index && (rc = bf_idindex_snapshot(dir, &p->prf, &kept->index, err))) {
    bf_idindex_snapshot_free(kept->index);
    kept->index = NULL;
  }
  if (rc == 0 && kept)
    bf_idindex_snapshot_lookup(kept->index, (const unsigned char(*)[16])idents, n, &keys, &n_keys,
                               &indexed);
  else if (rc == 0)
    rc = bf_idindex_lookup(dir, &p->prf, (const unsigned char(*)[16])idents, n, &keys, &n_keys,
                           &indexed, err);
  for (size_t i = 0; rc == 0 && i < n_keys; i++) add_target(it, keys[i], NULL);
  it->indexed = indexed || access(dir, F_OK) != 0; /* a sync that never ran holds nothing */
  free(keys);
  free(idents);
  free(dir);
  return rc;
}

static void lookup_item(struct bf_project *p, struct request *rq, struct item *it,
                        struct bf_forget_batch *batch) {
  const struct bf_sync_config *s = it->sync;
  const struct bf_model_config *m = bf_config_model(p->cfg, s->model);
  const struct person *ps = rq->person;
  struct bf_error err = {0};
  struct found_ctx ctx = {.p = p, .s = s, .m = m, .it = it};
  struct row_sink sink = {found_begin, found_row, &ctx};
  targets_free(it);
  int rc = lookup_rows(p, m, ps, false, batch, &sink, &err);
  bool key_model = ps->key_model && ps->key_value && !strcmp(ps->key_model, m->name);
  if (rc < 0) {
    targets_free(it);
    item_pending(it, bf_code_exit_status(rc), err.msg); /* the lookup is done again by --retry */
    goto out;
  }
  if (rc == 1) {
    bool has_email = false, has_phone = false;
    for (size_t i = 0; i < m->pii.n; i++) {
      has_email |= !strcmp(m->pii.items[i].value, "email");
      has_phone |= !strcmp(m->pii.items[i].value, "phone");
    }
    char *why;
    if (rq->kind == BF_FORGET_KEY && (has_email || has_phone))
      why = bf_xasprintf("the key's row (model '%s') gave no email or phone to find the person by "
                         "in model '%s'",
                         ps->key_model, m->name);
    else
      why = bf_xasprintf("model '%s' has no pii column of kind %s", m->name,
                         rq->kind == BF_FORGET_PHONE   ? "phone"
                         : rq->kind == BF_FORGET_EMAIL ? "email"
                                                       : "email or phone");
    item_done(it, "not_found", 0, why);
    free(why);
    goto out;
  }
  const char *only = single_match_column(s);
  if (key_model) {
    /* The key's row may have left the warehouse: the key still names the
     * record (its identifier comes from the vault, or from the key itself
     * when the sync matches by the primary key). */
    unsigned char key[16];
    bf_prf_key(&p->prf, ps->key_value, strlen(ps->key_value), key);
    struct target *t = add_target(it, key, NULL);
    if (!t->match && only && !strcmp(only, m->primary_key))
      t->guess = match_for_sync(s, m, ps->key_value, true);
  }
  if ((rc = index_targets(p, ps, it, batch, &err)) < 0) {
    targets_free(it);
    item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  if (it->nt == 0 && ps->typed && only) {
    /* Not in the warehouse (any more), but the sync matches by the erased
     * identifier itself: the delete can name it. */
    const char *kind = pii_kind_of(m, only);
    if (kind && !strcmp(kind, bf_forget_kind_name(rq->kind))) {
      char *match = match_for_sync(s, m, ps->typed, false);
      if (match) add_target(it, NULL, match);
    }
  }
  it->found = (long long)it->nt;
  if (it->nt == 0 && !it->indexed && rq->kind != BF_FORGET_KEY)
    item_done(it, "not_found", 0,
              "not in the warehouse; the sync's identifier index is not complete yet (its next "
              "run completes it), so a record it sent before for someone no longer in the "
              "warehouse cannot be found");
  else if (it->nt == 0)
    item_done(it, "not_found", 0, NULL);
  else
    it->phase = PH_DELETE;
out:
  if (ctx.built) bf_mapping_release(&ctx.map);
  bf_buf_release(&ctx.keybuf);
  bf_buf_release(&ctx.json);
}

static void remove_target(struct item *it, size_t i) {
  free_secret_str(it->t[i].match);
  free_secret_str(it->t[i].guess);
  it->t[i] = it->t[--it->nt];
}

/* Sends the deletes of an item's targets to its destination; what was
 * acknowledged leaves the sync's state and vault. */
static void deliver(struct bf_project *p, struct request *rq, struct item *it, long long lock_wait,
                    struct bf_forget_batch *batch) {
  const struct bf_sync_config *s = it->sync;
  const struct bf_model_config *m = bf_config_model(p->cfg, s->model);
  const struct bf_destination_config *dc = bf_config_destination(p->cfg, s->destination);
  char *dir = bf_project_sync_dir(p, s->name);
  char *vault_path = bf_xasprintf("%s/vault.bin", dir);
  struct bf_state *st = NULL;
  struct bf_vault *vault = NULL;
  struct bf_destination *dest = NULL;
  struct bf_mapping map = {0};
  bool mapped = false;
  struct bf_error err = {0};
  size_t unresolvable = 0;
  bool *acked = NULL;
  struct bf_record *recs = NULL;
  struct bf_outcome *outs = NULL;
  size_t *todo = NULL, *next = NULL;
  char *pending_reason = NULL;
  int pending_exit = 0;
  int rc;
  struct bf_forget_held *kept = bf_forget_batch_held(batch, s->name);
  if (access(dir, F_OK) != 0) {
    item_done(it, "not_found", 0, "the sync never ran: its destination holds nothing from it");
    goto out;
  }
  if (kept && kept->st) {
    st = kept->st;
    vault = kept->vault;
    dest = kept->dest;
    goto opened;
  }
  long long deadline = bf_now_ms() + lock_wait;
  for (;;) {
    memset(&err, 0, sizeof err);
    rc = bf_state_open(dir, true, &p->prf, &st, &err);
    if (rc != BF_E_LOCKED || bf_now_ms() >= deadline) break;
    sleep_ms(100);
  }
  if (rc == BF_E_LOCKED) {
    item_pending(
        it, 4, "a run of this sync held its lock; `backflow forget --retry` completes the erasure");
    goto out;
  }
  if (rc) {
    item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  if (access(vault_path, F_OK) == 0 &&
      (rc = bf_vault_open(dir, &p->prf, p->cfg->durability_power, &vault, &err))) {
    item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  if (kept) {
    kept->st = st;
    kept->vault = vault;
  }
opened:
  /* Every target needs its match values. A row found in the warehouse gave
   * them; a key whose row is gone is sent only when the destination holds
   * it (the state says so, or the vault still names it), by the vault's
   * identifier or else by the key itself when the sync matches by it. */
  for (size_t i = 0; i < it->nt;) {
    struct target *t = &it->t[i];
    if (!t->match && t->has_key) {
      size_t len;
      struct bf_state_entry *e = bf_state_find(st, t->key);
      bool held = e && (e->flags & BF_ST_PERSISTED);
      if (vault) t->match = bf_vault_get(vault, t->key, &len);
      if (!t->match && held && t->guess) {
        t->match = t->guess;
        t->guess = NULL;
      }
      if (!t->match) {
        if (held)
          unresolvable++; /* held, but nothing names it */
        else
          it->found--; /* the destination never got it, or let go of it */
        remove_target(it, i);
        continue;
      }
    }
    i++;
  }
  if ((rc = config_mapping(p->cfg, s, m, &map, &err))) {
    item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  mapped = true;
  if (it->nt && !dest && (rc = bf_destination_open(dc, p->cfg, &dest, &err))) {
    item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  if (kept) kept->dest = dest;
  const struct bf_destination_type *dt = dest ? dest->type : NULL;
  size_t bs = dt ? (s->batch_size ? (size_t)s->batch_size : dt->default_batch) : 1;
  if (dt && bs > dt->max_batch) bs = dt->max_batch;
  if (bs == 0) bs = 1;
  acked = bf_xcalloc(it->nt + 1, sizeof *acked);
  todo = bf_xcalloc(it->nt + 1, sizeof *todo);
  next = bf_xcalloc(it->nt + 1, sizeof *next);
  recs = bf_xcalloc(bs, sizeof *recs);
  outs = bf_xcalloc(bs, sizeof *outs);
  size_t n_todo = it->nt;
  for (size_t i = 0; i < n_todo; i++) todo[i] = i;
  bool unavailable = false;
  for (int attempt = 0; attempt < SEND_ATTEMPTS && n_todo && !unavailable; attempt++) {
    if (attempt) sleep_ms(100LL << attempt);
    size_t n_next = 0;
    for (size_t start = 0; start < n_todo && !unavailable; start += bs) {
      size_t n = n_todo - start < bs ? n_todo - start : bs;
      for (size_t k = 0; k < n; k++) {
        struct target *t = &it->t[todo[start + k]];
        memset(&recs[k], 0, sizeof recs[k]);
        recs[k].op = BF_OP_DELETE;
        recs[k].change = BF_CHANGE_REMOVE;
        if (t->has_key) memcpy(recs[k].key, t->key, 16);
        recs[k].attempts = (unsigned)attempt;
        recs[k].match_json = t->match;
        recs[k].match_json_len = strlen(t->match);
        memset(&outs[k], 0, sizeof outs[k]);
      }
      struct bf_batch deletes = {s->name, s->object, &map, n, recs, BF_RESYNC_NONE};
      struct bf_error derr = {0};
      bf_crashpoint("forget-before-push");
      rc = dt->remove(dest, &deletes, outs, &derr);
      bf_crashpoint("forget-after-push");
      if (rc) {
        unavailable = true;
        free(pending_reason);
        pending_reason = scrub(rq, it, derr.msg);
        pending_exit = bf_code_exit_status(rc);
        for (size_t k = 0; k < n; k++) {
          free(outs[k].reason); /* any a partial remove set */
          outs[k].reason = NULL;
        }
        break;
      }
      bf_outcomes_settle(dest->name, outs, n);
      for (size_t k = 0; k < n; k++) {
        size_t idx = todo[start + k];
        if (outs[k].status == BF_OUT_OK) {
          acked[idx] = true;
        } else if (outs[k].status == BF_OUT_RETRY && attempt + 1 < SEND_ATTEMPTS) {
          next[n_next++] = idx;
        } else {
          char *why = scrub(rq, it, outs[k].reason);
          free(pending_reason);
          if (outs[k].status == BF_OUT_REJECT) {
            pending_reason = bf_xasprintf("the destination refused the delete: %s", why);
            if (pending_exit == 0) pending_exit = 1;
          } else {
            pending_reason = bf_xasprintf("not accepted after %d attempts: %s", SEND_ATTEMPTS, why);
            pending_exit = 4;
          }
          free(why);
        }
        free(outs[k].reason);
        outs[k].reason = NULL;
      }
    }
    memcpy(todo, next, n_next * sizeof *todo);
    n_todo = n_next;
  }
  /* What the destination let go of leaves the state, then the vault (the
   * journal is durable first, as in the runner). */
  size_t n_acked = 0;
  for (size_t i = 0; i < it->nt; i++) {
    if (!acked[i]) continue;
    n_acked++;
    struct bf_state_entry *e = it->t[i].has_key ? bf_state_find(st, it->t[i].key) : NULL;
    if (e && (e->flags & BF_ST_PERSISTED)) bf_state_mark_deleted(st, it->t[i].key);
  }
  struct bf_error serr = {0};
  int src = n_acked ? bf_state_flush(st, true, &serr) : 0;
  if (src == 0 && n_acked && vault) {
    src = bf_vault_begin(vault, &serr);
    for (size_t i = 0; i < it->nt && src == 0; i++)
      if (acked[i] && it->t[i].has_key) src = bf_vault_delete(vault, it->t[i].key, &serr);
    if (src == 0) src = bf_vault_commit(vault, &serr);
  }
  if (src == 0 && n_acked && kept)
    kept->changed = true; /* folded when the batch ends */
  else if (src == 0 && n_acked)
    src = bf_state_fold(st, &serr);
  for (size_t i = it->nt; i-- > 0;)
    if (acked[i]) remove_target(it, i);
  it->deleted += (long long)n_acked;
  char *why = NULL;
  if (unresolvable)
    why = bf_xasprintf(
        "%zu record(s) cannot be deleted: the row left the warehouse and the sync kept "
        "no identifier for it (it was sent before the sync's identifier index was complete); "
        "delete it at the destination by hand",
        unresolvable);
  if (it->nt) {
    char *r =
        why ? bf_xasprintf("%s; %s", pending_reason ? pending_reason : "not acknowledged", why)
            : bf_xstrdup(pending_reason ? pending_reason : "not acknowledged");
    item_pending(it, pending_exit ? pending_exit : 4, r);
    free(r);
  } else if (unresolvable) {
    item_done(it, "failed", 1, why);
  } else {
    item_done(it, it->found ? "deleted" : "not_found", 0, NULL);
  }
  free(why);
  if (src) {
    /* The destination deleted; only our own bookkeeping failed. */
    char *r =
        bf_xasprintf("%s%s%s", it->reason ? it->reason : "", it->reason ? "; " : "", serr.msg);
    set_reason(it, r);
    free(r);
    if (it->exit == 0 || it->exit == 1) it->exit = 2;
  }
out:
  if (outs) {
    for (size_t k = 0; k < bs; k++) free(outs[k].reason);
  }
  free(outs);
  free(recs);
  free(todo);
  free(next);
  free(acked);
  free(pending_reason);
  if (mapped) bf_mapping_release(&map);
  if (!kept) {
    bf_destination_close(dest);
    bf_vault_close(vault);
    bf_state_free(st);
  }
  free(vault_path);
  free(dir);
}

/* ---- the request ------------------------------------------------------- */

static int suppress_identifiers(struct bf_project *p, const struct request *rq,
                                struct bf_error *err) {
  const struct person *ps = rq->person;
  if (!ps) return 0;
  size_t cap = 1 + ps->n_emails + ps->n_phones, n = 0;
  struct bf_forgotten_entry *e = bf_xcalloc(cap, sizeof *e);
  if (ps->key_model && ps->key_value) {
    e[n].kind = BF_FORGOTTEN_KEY;
    e[n].scope = bf_forgotten_model_scope(ps->key_model);
    bf_prf_key(&p->prf, ps->key_value, strlen(ps->key_value), e[n].hash);
    e[n++].request = rq->id;
  }
  for (size_t i = 0; i < ps->n_emails; i++) {
    e[n].kind = BF_FORGOTTEN_EMAIL;
    bf_forgotten_identifier_hash(&p->prf, BF_FORGOTTEN_EMAIL, ps->emails[i], strlen(ps->emails[i]),
                                 e[n].hash);
    e[n++].request = rq->id;
  }
  for (size_t i = 0; i < ps->n_phones; i++) {
    e[n].kind = BF_FORGOTTEN_PHONE;
    bf_forgotten_identifier_hash(&p->prf, BF_FORGOTTEN_PHONE, ps->phones[i], strlen(ps->phones[i]),
                                 e[n].hash);
    e[n++].request = rq->id;
  }
  int rc = bf_forgotten_append(p->state_dir, &p->prf, e, n, err);
  free(e);
  return rc;
}

/* The primary keys found join the list, scoped to their model. */
static int suppress_keys(struct bf_project *p, const struct request *rq, struct bf_error *err) {
  size_t n = 0, cap = 0;
  struct bf_forgotten_entry *e = NULL;
  for (size_t i = 0; i < rq->n; i++) {
    const struct item *it = &rq->items[i];
    if (!it->fresh || it->phase != PH_DELETE || !it->sync) continue;
    uint64_t scope = bf_forgotten_model_scope(it->sync->model);
    for (size_t k = 0; k < it->nt; k++) {
      if (!it->t[k].has_key) continue;
      bool dup = false;
      for (size_t j = 0; j < n && !dup; j++)
        dup = e[j].scope == scope && !memcmp(e[j].hash, it->t[k].key, 16);
      if (dup) continue;
      if (n == cap) {
        cap = cap ? cap * 2 : 16;
        e = bf_xrealloc(e, cap * sizeof *e);
      }
      memset(&e[n], 0, sizeof e[n]);
      e[n].kind = BF_FORGOTTEN_KEY;
      e[n].scope = scope;
      memcpy(e[n].hash, it->t[k].key, 16);
      e[n++].request = rq->id;
    }
  }
  int rc = bf_forgotten_append(p->state_dir, &p->prf, e, n, err);
  free(e);
  return rc;
}

static int chain(struct bf_project *p, struct request *rq, struct bf_error *err) {
  struct person *ps = rq->person;
  const struct bf_model_config *m = bf_config_model(p->cfg, ps->key_model);
  if (!m)
    return bf_error_set(err, BF_E_CONFIG, "model '%s' is no longer in the configuration",
                        ps->key_model);
  struct chain_ctx ctx = {m, ps};
  struct row_sink sink = {NULL, chain_row, &ctx};
  int rc = lookup_rows(p, m, ps, true, NULL, &sink, err);
  if (rc < 0) return rc;
  ps->chained = true;
  return suppress_identifiers(p, rq, err);
}

static int process_request(struct bf_project *p, struct store *st, struct request *rq, bool retry,
                           long long lock_wait, struct bf_forget_batch *batch,
                           struct bf_error *err) {
  int rc = 0;
  bool lookups = true;
  if (rq->person && rq->kind == BF_FORGET_KEY && !rq->person->chained && request_has_lookups(rq)) {
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
        item_pending(&rq->items[i], bf_code_exit_status(rc), werr.msg);
      }
    }
  }
  for (size_t i = 0; lookups && i < rq->n; i++) {
    struct item *it = &rq->items[i];
    if (it->phase != PH_LOOKUP) continue;
    it->fresh = true;
    if (!it->sync)
      item_done(it, "failed", 2, "the sync is no longer in the configuration");
    else if (!rq->person)
      item_done(it, "failed", 2, "the identifier to look up was lost");
    else
      lookup_item(p, rq, it, batch);
  }
  if ((rc = suppress_keys(p, rq, err)) || (rc = store_save(p, st, err))) return rc;
  for (size_t i = 0; i < rq->n; i++) {
    struct item *it = &rq->items[i];
    if (it->phase != PH_DELETE) continue;
    it->fresh = true;
    if (!it->sync)
      item_done(it, "failed", 2, "the sync is no longer in the configuration");
    else
      deliver(p, rq, it, lock_wait, batch);
  }
  /* Audited before the pending file forgets what was done: a crash in
   * between resends deletes (harmless) rather than losing their record. */
  for (size_t i = 0; i < rq->n; i++)
    if (rq->items[i].fresh && (rc = audit_item(p, rq, &rq->items[i], retry, err))) return rc;
  return store_save(p, st, err);
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
                     const struct bf_forget_result *res, struct bf_error *err) {
  struct bf_buf b = {0};
  audit_head(&b, rq, res->status);
  bf_buf_putc(&b, '}');
  int rc = bf_audit_append(p->state_dir, &p->prf, b.data, b.len, err);
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
    add_unique(email ? &ps->emails : &ps->phones, email ? &ps->n_emails : &ps->n_phones, norm);
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
    person_free(ps);
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
  person_free(ps);
  return rc;
}

/* Records a new request for the person named by o (sealed in the pending
 * store, the suppression list, the audit log) with every sync still to be
 * looked up; *rq then belongs to st. The caller holds the erasure lock. */
static int new_request(struct bf_project *p, const struct bf_forget_options *o, struct store *st,
                       struct request **out, struct bf_error *err) {
  *out = NULL;
  struct person *ps = NULL;
  char norm[BF_PII_MAX];
  int rc = person_from_options(p, o, &ps, norm, err);
  if (rc || (rc = bf_project_secret(p, true, err)) < 0) goto out;
  if (bf_forget_batch_verify_audit(o->batch) &&
      (rc = bf_audit_verify(p->state_dir, &p->prf, NULL, err)))
    goto out;
  if ((rc = store_load(p, st, err))) goto out;
  struct request *rq = bf_xcalloc(1, sizeof *rq);
  rq->id = next_request_id(p, st, err, &rc);
  if (rc) {
    request_free(rq);
    goto out;
  }
  rq->kind = o->kind;
  rq->model = ps->key_model ? bf_xstrdup(ps->key_model) : NULL;
  request_hash(p, o, ps, norm, rq->hash);
  rq->person = ps;
  ps = NULL;
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
  /* Recorded (sealed) before anything else: a crash from here on leaves a
   * request that --retry completes. Then no run sends the person again. */
  if ((rc = store_save(p, st, err)) || (rc = suppress_identifiers(p, rq, err)) ||
      (rc = audit_request(p, rq, err)))
    goto out;
out:
  sodium_memzero(norm, sizeof norm);
  person_free(ps);
  return rc < 0 ? rc : 0;
}

int bf_forget_person(struct bf_project *p, const struct bf_forget_options *o,
                     struct bf_forget_result *res, struct bf_error *err) {
  memset(res, 0, sizeof *res);
  int lock_fd = -1;
  struct store st = {0};
  struct request *rq = NULL;
  /* A batch takes the erasure lock once and holds it to its end. */
  int *batch_lock = bf_forget_batch_lock(o->batch);
  int rc = 0;
  if (batch_lock && *batch_lock < 0)
    rc = lock_erasures(p, batch_lock, err);
  else if (!batch_lock)
    rc = lock_erasures(p, &lock_fd, err);
  if (rc || (rc = new_request(p, o, &st, &rq, err))) goto out;
  long long wait = o->lock_wait_ms > 0 ? o->lock_wait_ms : DEFAULT_LOCK_WAIT_MS;
  if ((rc = process_request(p, &st, rq, false, wait, o->batch, err))) goto out;
  fill_result(p, rq, res);
  rc = audit_end(p, rq, res, err);
out:
  store_release(&st);
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
  store_release(&st);
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
      (rc = bf_audit_verify(p->state_dir, &p->prf, NULL, err)) || (rc = store_load(p, &st, err)))
    goto out;
  long long wait = lock_wait_ms > 0 ? lock_wait_ms : DEFAULT_LOCK_WAIT_MS;
  *res = bf_xcalloc(st.n + 1, sizeof **res);
  for (size_t i = 0; i < st.n && rc == 0; i++) {
    struct request *rq = st.rq[i];
    if (rq->person && request_has_lookups(rq)) rc = suppress_identifiers(p, rq, err);
    if (rc == 0) rc = process_request(p, &st, rq, true, wait, NULL, err);
    if (rc == 0) {
      fill_result(p, rq, &(*res)[*n]);
      rc = audit_end(p, rq, &(*res)[(*n)++], err);
    }
  }
out:
  store_release(&st);
  if (lock_fd >= 0) close(lock_fd);
  return rc < 0 ? rc : 0;
}

int bf_forget_pending_count(struct bf_project *p, size_t *items, size_t *requests,
                            struct bf_error *err) {
  *items = *requests = 0;
  int rc = bf_project_secret(p, false, err);
  if (rc == 1) return 0;
  if (rc < 0) return rc;
  struct store st;
  if ((rc = store_load(p, &st, err))) return rc;
  *requests = st.n;
  for (size_t i = 0; i < st.n; i++) *items += st.rq[i]->n;
  store_release(&st);
  return 0;
}

int bf_forget_check_pending(struct bf_project *p, struct bf_error *err) {
  struct store st;
  int rc = store_load(p, &st, err);
  store_release(&st);
  return rc;
}

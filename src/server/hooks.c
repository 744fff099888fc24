/* The feedback loop: POST /hooks/{destination} takes the destination's
 * events (opened, clicked, bounced, unsubscribed...), checks their Standard
 * Webhooks signature with the destination's signing_secret and appends them
 * to backflow_events in the warehouse, before answering, so the model's next
 * run can use them. The person is stored only as a keyed hash (the project's
 * PRF: the same hash `backflow errors` shows for a primary key), and the
 * payload is stored without the fields that name the person. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "util/log.h"
#include "server/server.h"

#define TOLERANCE_S 300
#define MAX_EVENTS  10000

static const char *const event_keys[] = {
    "event", "type", "event_type", "eventType", "subscriptionType", NULL};
/* Where shapes we know put the person: generic, Braze (user.external_user_id),
 * HubSpot (objectId), Mailchimp form posts (data[id], data[email]). */
static const char *const id_paths[] = {
    "user_id",      "userId",     "external_id", "external_user_id", "user.external_user_id",
    "user.user_id", "contact_id", "objectId",    "data.id",          NULL};
static const char *const email_paths[] = {
    "email",      "email_address", "recipient", "user.email", "properties.email_address",
    "data.email", "contact.email", NULL};
/* Keys whose values are personal data wherever they appear in a payload. */
static const char *const pii_keys[] = {
    "email",      "email_address", "emailaddress", "recipient", "phone",     "phone_number",
    "mobile",     "first_name",    "firstname",    "fname",     "last_name", "lastname",
    "lname",      "name",          "full_name",    "address",   "street",    "ip",
    "ip_address", "user_agent",    "useragent",    NULL};

static const char *const schema = "CREATE TABLE IF NOT EXISTS backflow_events ("
                                  " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                  " received_at TEXT NOT NULL,"
                                  " destination TEXT NOT NULL,"
                                  " event TEXT NOT NULL,"
                                  " person_hash TEXT,"
                                  " payload TEXT NOT NULL,"
                                  " webhook_id TEXT NOT NULL,"
                                  " seq INTEGER NOT NULL,"
                                  " UNIQUE (destination, webhook_id, seq))";

static void unauthorized(struct bf_http_req *req, struct bf_http_resp *resp, const char *dest,
                         const char *why) {
  /* The client learns only that it is not authorized; the log says why.
   * Only configured names are logged or used as labels: the path is the
   * sender's text. */
  const char *known = bf_config_destination(req->srv->p->cfg, dest) ? dest : "(unknown)";
  bf_log_warn("hooks: refused a request for destination '%s': %s", known, why);
  bf_metrics_hook(req->srv->metrics, known, "bad_signature", 0);
  bf_http_error(resp, 401, "missing or invalid webhook signature");
}

/* Decodes the signing secret: "whsec_<base64>" per Standard Webhooks, any
 * other text is used as the key bytes. Returns the key length or -1. */
static long decode_secret(const char *secret, unsigned char *key, size_t cap) {
  if (!strncmp(secret, "whsec_", 6)) {
    size_t len = 0;
    if (sodium_base642bin(key, cap, secret + 6, strlen(secret + 6), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL))
      return -1;
    return (long)len;
  }
  size_t len = strlen(secret);
  if (len > cap) return -1;
  memcpy(key, secret, len);
  return (long)len;
}

static bool signature_ok(const struct bf_http_req *req, const unsigned char *key, size_t key_len,
                         const char *id, const char *ts, const char *sigs) {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)req->body, req->body_len);
  crypto_auth_hmacsha256_final(&st, mac);
  bool ok = false;
  /* "v1,<b64> v1,<b64>": any one that matches (secret rotation). */
  for (const char *p = sigs; *p;) {
    while (*p == ' ') p++;
    size_t len = strcspn(p, " ");
    if (len > 3 && !strncmp(p, "v1,", 3)) {
      unsigned char got[64];
      size_t got_len = 0;
      if (sodium_base642bin(got, sizeof got, p + 3, len - 3, NULL, &got_len, NULL,
                            sodium_base64_VARIANT_ORIGINAL) == 0 &&
          got_len == sizeof mac && sodium_memcmp(got, mac, sizeof mac) == 0)
        ok = true;
    }
    p += len;
  }
  sodium_memzero(mac, sizeof mac);
  return ok;
}

/* ---- application/x-www-form-urlencoded (Mailchimp): data[merges][EMAIL]=x
 * becomes {"data": {"merges": {"EMAIL": "x"}}}. */
static char *url_decode(const char *s, size_t n) {
  char *out = bf_xmalloc(n + 1);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') {
      out[k++] = ' ';
    } else if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
               isxdigit((unsigned char)s[i + 2])) {
      char hex[3] = {s[i + 1], s[i + 2], 0};
      out[k++] = (char)strtol(hex, NULL, 16);
      i += 2;
    } else {
      out[k++] = s[i];
    }
  }
  out[k] = 0;
  return out;
}

static json_t *parse_form(const char *body, size_t len) {
  json_t *root = json_object();
  const char *p = body, *end = body + len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    if (!amp) amp = end;
    const char *eq = memchr(p, '=', (size_t)(amp - p));
    char *key = url_decode(p, (size_t)((eq ? eq : amp) - p));
    char *val = eq ? url_decode(eq + 1, (size_t)(amp - eq - 1)) : bf_xstrdup("");
    json_t *obj = root;
    char *seg = key;
    for (int depth = 0; depth < 8; depth++) {
      char *br = strchr(seg, '[');
      if (br) *br = 0;
      if (!br) {
        json_object_set_new(obj, seg, json_string(val));
        break;
      }
      json_t *child = json_object_get(obj, seg);
      if (!json_is_object(child)) {
        child = json_object();
        json_object_set_new(obj, seg, child);
      }
      obj = child;
      seg = br + 1;
      char *close = strchr(seg, ']');
      if (close) memmove(close, close + 1, strlen(close));
    }
    free(key);
    free(val);
    p = amp + 1;
  }
  return root;
}

/* Looks up "a.b" in obj; sets *parent and *leaf to where it was found. */
static json_t *get_path(json_t *obj, const char *path, json_t **parent, const char **leaf) {
  char buf[64];
  snprintf(buf, sizeof buf, "%s", path);
  char *seg = buf, *dot;
  json_t *cur = obj;
  while ((dot = strchr(seg, '.'))) {
    *dot = 0;
    cur = json_object_get(cur, seg);
    if (!json_is_object(cur)) return NULL;
    seg = dot + 1;
  }
  json_t *v = json_object_get(cur, seg);
  if (v && parent) {
    *parent = cur;
    *leaf = path + (seg - buf);
  }
  return v;
}

static bool looks_like_email(const char *s) {
  const char *at = strchr(s, '@');
  return at && at > s && strchr(at, '.') && !strchr(s, ' ');
}

static bool is_pii_key(const char *k) {
  for (int i = 0; pii_keys[i]; i++)
    if (!strcasecmp(k, pii_keys[i])) return true;
  return false;
}

/* Removes personal data in place: PII keys go, strings that look like an
 * email address become "[redacted]". */
static void scrub(json_t *v, int depth) {
  if (depth > 32) return;
  if (json_is_object(v)) {
    const char *k;
    json_t *child;
    void *tmp;
    json_object_foreach_safe(v, tmp, k, child) {
      if (is_pii_key(k))
        json_object_del(v, k);
      else if (json_is_string(child) && looks_like_email(json_string_value(child)))
        json_object_set_new(v, k, json_string("[redacted]"));
      else
        scrub(child, depth + 1);
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *child = json_array_get(v, i);
      if (json_is_string(child) && looks_like_email(json_string_value(child)))
        json_array_set_new(v, i, json_string("[redacted]"));
      else
        scrub(child, depth + 1);
    }
  }
}

struct event {
  char event[128];
  char person_hash[33]; /* "" when the event names nobody */
  char *payload;
};

static void extract(const struct bf_prf *prf, json_t *ev, struct event *out) {
  snprintf(out->event, sizeof out->event, "unknown");
  for (int i = 0; event_keys[i]; i++) {
    json_t *v = json_object_get(ev, event_keys[i]);
    if (json_is_string(v) && *json_string_value(v)) {
      snprintf(out->event, sizeof out->event, "%s", json_string_value(v));
      break;
    }
  }
  char ident[512] = "";
  for (int i = 0; id_paths[i] && !*ident; i++) {
    json_t *parent;
    const char *leaf;
    json_t *v = get_path(ev, id_paths[i], &parent, &leaf);
    if (json_is_integer(v))
      snprintf(ident, sizeof ident, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v) && *json_string_value(v))
      snprintf(ident, sizeof ident, "%s", json_string_value(v));
    if (*ident) json_object_del(parent, leaf);
  }
  for (int i = 0; email_paths[i]; i++) {
    json_t *parent;
    const char *leaf;
    json_t *v = get_path(ev, email_paths[i], &parent, &leaf);
    if (!json_is_string(v)) continue;
    if (!*ident) { /* trimmed and lower-cased, as people type addresses every which way */
      const char *s = json_string_value(v);
      while (isspace((unsigned char)*s)) s++;
      size_t n = strlen(s);
      while (n && isspace((unsigned char)s[n - 1])) n--;
      if (n >= sizeof ident) n = sizeof ident - 1;
      for (size_t k = 0; k < n; k++) ident[k] = (char)tolower((unsigned char)s[k]);
      ident[n] = 0;
    }
    json_object_del(parent, leaf);
  }
  out->person_hash[0] = 0;
  if (*ident) {
    unsigned char key[BF_KEY_HASH_BYTES];
    bf_prf_key(prf, ident, strlen(ident), key);
    bf_key_hex(key, out->person_hash);
    sodium_memzero(ident, sizeof ident);
  }
  scrub(ev, 0);
  out->payload = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
}

/* The SQLite warehouse of the first sync that feeds destination, else the
 * project's first SQLite warehouse. Caller frees. */
static char *events_db_path(const struct bf_config *cfg, const char *destination) {
  const struct bf_warehouse_config *wh = NULL;
  for (size_t i = 0; i < cfg->n_syncs && !wh; i++) {
    if (strcmp(cfg->syncs[i].destination, destination)) continue;
    const struct bf_model_config *m = bf_config_model(cfg, cfg->syncs[i].model);
    const struct bf_warehouse_config *w = m ? bf_config_warehouse(cfg, m->warehouse) : NULL;
    if (w && !strcmp(w->type, "sqlite")) wh = w;
  }
  for (size_t i = 0; i < cfg->n_warehouses && !wh; i++)
    if (!strcmp(cfg->warehouses[i].type, "sqlite")) wh = &cfg->warehouses[i];
  const char *path = wh ? bf_node_get_str(wh->params, "path") : NULL;
  return path ? bf_config_path(cfg, path) : NULL;
}

static int store(const char *db_path, const char *destination, const char *webhook_id,
                 struct event *evs, size_t n, long long *stored, char *why, size_t why_len) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int rc = -1;
  if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) goto out;
  sqlite3_busy_timeout(db, 5000);
  if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "INSERT OR IGNORE INTO backflow_events (received_at, destination, event,"
                         " person_hash, payload, webhook_id, seq) VALUES (?,?,?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    goto out;
  char stamp[40];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t k = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(stamp + k, sizeof stamp - k, ".%03ldZ", ts.tv_nsec / 1000000);
  *stored = 0;
  for (size_t i = 0; i < n; i++) {
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, stamp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, destination, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, evs[i].event, -1, SQLITE_STATIC);
    if (evs[i].person_hash[0])
      sqlite3_bind_text(st, 4, evs[i].person_hash, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 4);
    sqlite3_bind_text(st, 5, evs[i].payload ? evs[i].payload : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, webhook_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)i);
    if (sqlite3_step(st) != SQLITE_DONE) goto out;
    *stored += sqlite3_changes(db);
  }
  if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto out;
  rc = 0;
out:
  if (rc) snprintf(why, why_len, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "cannot open");
  sqlite3_finalize(st);
  if (rc && db) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(db);
  return rc;
}

void bf_hooks_receive(struct bf_http_req *req, struct bf_http_resp *resp) {
  const char *dest = req->params[0];
  struct bf_project *p = req->srv->p;
  const struct bf_destination_config *dc = bf_config_destination(p->cfg, dest);
  if (!dc) {
    unauthorized(req, resp, dest, "no such destination");
    return;
  }
  const char *secret = bf_node_get_str(dc->params, "signing_secret");
  if (!secret || !*secret) {
    unauthorized(req, resp, dest, "the destination has no signing_secret to verify events with");
    return;
  }
  const char *id = bf_http_header(req, "webhook-id");
  const char *ts = bf_http_header(req, "webhook-timestamp");
  const char *sigs = bf_http_header(req, "webhook-signature");
  if (!id || !ts || !sigs || !*id || strlen(id) > 256) {
    unauthorized(req, resp, dest, "webhook-id, webhook-timestamp or webhook-signature missing");
    return;
  }
  char *end;
  long long when = strtoll(ts, &end, 10);
  long long now_s = bf_now_ms() / 1000;
  if (*end || !*ts || when < now_s - TOLERANCE_S || when > now_s + TOLERANCE_S) {
    unauthorized(req, resp, dest, "webhook-timestamp is not within 5 minutes of now");
    return;
  }
  unsigned char key[256];
  long key_len = decode_secret(secret, key, sizeof key);
  if (key_len <= 0) {
    unauthorized(req, resp, dest, "signing_secret is not valid whsec_<base64>");
    return;
  }
  bool ok = signature_ok(req, key, (size_t)key_len, id, ts, sigs);
  sodium_memzero(key, sizeof key);
  if (!ok) {
    unauthorized(req, resp, dest, "signature does not match");
    return;
  }

  /* Authenticated from here on. */
  const char *ctype = bf_http_header(req, "Content-Type");
  json_t *root = NULL;
  if (ctype && !strncasecmp(ctype, "application/x-www-form-urlencoded", 33)) {
    root = parse_form(req->body, req->body_len);
  } else {
    json_error_t jerr;
    root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
      bf_metrics_hook(req->srv->metrics, dest, "bad_request", 0);
      bf_http_error(resp, 400, "body is not JSON (line %d: %s)", jerr.line, jerr.text);
      return;
    }
  }
  /* [ev, ...] (HubSpot), {"events": [...]} (Braze Currents, generic), or one event. */
  json_t *list = json_is_array(root) ? root : json_object_get(root, "events");
  size_t n = json_is_array(list) ? json_array_size(list) : 1;
  if (n > MAX_EVENTS) {
    json_decref(root);
    bf_metrics_hook(req->srv->metrics, dest, "bad_request", 0);
    bf_http_error(resp, 413, "%zu events in one request; at most %d", n, MAX_EVENTS);
    return;
  }
  struct event *evs = bf_xcalloc(n ? n : 1, sizeof *evs);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *ev = json_is_array(list) ? json_array_get(list, i) : root;
    if (!json_is_object(ev)) continue;
    extract(&p->prf, ev, &evs[k++]);
  }
  json_decref(root);
  char *db_path = events_db_path(p->cfg, dest);
  long long stored = 0;
  char why[512] = "";
  if (!db_path) {
    bf_metrics_hook(req->srv->metrics, dest, "error", 0);
    bf_http_error(resp, 501, "events are stored in a SQLite warehouse; this project has none");
  } else if (store(db_path, dest, id, evs, k, &stored, why, sizeof why)) {
    bf_log_error("hooks: destination '%s': cannot store events: %s", dest, why);
    bf_metrics_hook(req->srv->metrics, dest, "error", 0);
    bf_http_error(resp, 503, "cannot store the events now; send them again later");
  } else {
    bf_metrics_hook(req->srv->metrics, dest, "stored", stored);
    bf_log_debug("hooks: destination '%s': %lld events stored (%zu received)", dest, stored, k);
    bf_http_json(resp, 200);
    bf_buf_printf(&resp->body, "{\"received\":%zu,\"stored\":%lld,\"duplicates\":%lld}\n", k,
                  stored, (long long)k - stored);
  }
  for (size_t i = 0; i < k; i++) free(evs[i].payload);
  free(evs);
  free(db_path);
}

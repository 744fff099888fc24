/* The bodies of POST /hooks/{destination}: the events of one delivery,
 * each reduced to its name, the keyed hash of the person it names and its
 * payload without personal data (see hook_events.h). Fuzzed by
 * tests/fuzz/fuzz_hooks_body.c. */
#include "server/hook_events.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "util/jsonw.h"

static const char *const event_keys[] = {
    "event", "type", "event_type", "eventType", "subscriptionType", "topic", NULL};
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
 * email address become "[redacted]", and what nests deeper than anyone's
 * events do is dropped whole (it would otherwise go unscrubbed). */
#define MAX_DEPTH 32
static json_t *scrubbed_child(json_t *child, int depth);
static void scrub(json_t *v, int depth) {
  if (json_is_object(v)) {
    const char *k;
    json_t *child;
    void *tmp;
    json_object_foreach_safe(v, tmp, k, child) {
      if (is_pii_key(k))
        json_object_del(v, k);
      else
        json_object_set_new(v, k, scrubbed_child(child, depth + 1));
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      json_array_set_new(v, i, scrubbed_child(json_array_get(v, i), depth + 1));
  }
}
/* A new reference to what child becomes. */
static json_t *scrubbed_child(json_t *child, int depth) {
  if (json_is_string(child) && looks_like_email(json_string_value(child)))
    return json_string("[redacted]");
  if (json_is_object(child) || json_is_array(child)) {
    if (depth > MAX_DEPTH) return json_string("[too deep]");
    scrub(child, depth);
  }
  return json_incref(child);
}

static void extract(const struct bf_prf *prf, json_t *ev, struct bf_hook_event *out) {
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
    out->ident = bf_xstrdup(ident);
    sodium_memzero(ident, sizeof ident);
  }
  scrub(ev, 0);
  out->payload = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
}

int bf_hook_parse(const struct bf_prf *prf, const char *ctype, const char *body, size_t len,
                  struct bf_hook_event **out, size_t *n_out, char *why, size_t cap) {
  *out = NULL;
  *n_out = 0;
  json_t *root = NULL;
  if (ctype && !strncasecmp(ctype, "application/x-www-form-urlencoded", 33)) {
    root = parse_form(body, len);
  } else {
    json_error_t jerr;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
      snprintf(why, cap, "body is not JSON (line %d: %s)", jerr.line, jerr.text);
      return 400;
    }
  }
  /* [ev, ...] (HubSpot), {"events": [...]} (Braze Currents, generic),
   * {"data": [...]} (Klaviyo), or one event. */
  json_t *list = json_is_array(root) ? root : json_object_get(root, "events");
  if (!json_is_array(list) && json_is_array(json_object_get(root, "data")))
    list = json_object_get(root, "data");
  size_t n = json_is_array(list) ? json_array_size(list) : 1;
  if (n > BF_HOOK_MAX_EVENTS) {
    json_decref(root);
    snprintf(why, cap, "%zu events in one request; at most %d", n, BF_HOOK_MAX_EVENTS);
    return 413;
  }
  struct bf_hook_event *evs = bf_xcalloc(n ? n : 1, sizeof *evs);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *ev = json_is_array(list) ? json_array_get(list, i) : root;
    if (!json_is_object(ev)) continue;
    extract(prf, ev, &evs[k++]);
  }
  json_decref(root);
  *out = evs;
  *n_out = k;
  return 0;
}

void bf_hook_events_free(struct bf_hook_event *evs, size_t n) {
  for (size_t i = 0; evs && i < n; i++) {
    free(evs[i].payload);
    if (evs[i].ident) {
      sodium_memzero(evs[i].ident, strlen(evs[i].ident));
      free(evs[i].ident);
    }
  }
  free(evs);
}

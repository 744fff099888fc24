/* Who may post to /hooks: the vendors' own signature schemes, so a
 * destination's events need no relay (docs/server.md lists what each vendor
 * offers, with the vendor's page). Every scheme is a keyed MAC over the
 * exact body bytes, compared in constant time, and, where the vendor sends
 * a timestamp, refused outside 5 minutes of now (a captured request cannot
 * be replayed later; within the window the idempotency key stores it once). */
#include "server/hook_events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#define WINDOW_MS (5 * 60 * 1000LL)

static const char *const scheme_names[] = {"standard", "hubspot", "klaviyo", "token"};

const char *bf_hook_scheme_name(enum bf_hook_scheme s) {
  return (unsigned)s < 4 ? scheme_names[s] : "?";
}

int bf_hook_scheme_find(const char *name) {
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, scheme_names[i])) return i;
  return -1;
}

static const char *header(const struct bf_hook_request *req, const char *name) {
  const char *v = req->header(req->ctx, name);
  return v && *v ? v : NULL;
}

static bool fail(char *why, size_t cap, const char *msg) {
  snprintf(why, cap, "%s", msg);
  return false;
}

/* Unix seconds, milliseconds (> 1e11) or ISO 8601 UTC (Klaviyo's docs do
 * not pin one down); -1 when unreadable. */
static long long parse_time_ms(const char *s) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (*s && !*end) return v > 100000000000LL ? v : v * 1000;
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return -1;
  long long ms = 0;
  if (*rest == '.') {
    int digits = 0;
    for (rest++; *rest >= '0' && *rest <= '9'; rest++)
      if (digits++ < 3) ms = ms * 10 + (*rest - '0');
    while (digits++ < 3) ms *= 10;
  }
  if (*rest && strcmp(rest, "Z") && strcmp(rest, "+00:00")) return -1;
  return (long long)timegm(&tm) * 1000 + ms;
}

static bool in_window(long long when_ms, long long now_ms) {
  return when_ms >= 0 && when_ms >= now_ms - WINDOW_MS && when_ms <= now_ms + WINDOW_MS;
}

static void hmac(const unsigned char *key, size_t key_len, const char *const *parts,
                 const size_t *lens, size_t n, unsigned char mac[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  for (size_t i = 0; i < n; i++)
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)parts[i], lens[i]);
  crypto_auth_hmacsha256_final(&st, mac);
}

static bool b64_equals(const char *b64, size_t len, const unsigned char mac[32]) {
  unsigned char got[64];
  size_t got_len = 0;
  return sodium_base642bin(got, sizeof got, b64, len, NULL, &got_len, NULL,
                           sodium_base64_VARIANT_ORIGINAL) == 0 &&
         got_len == 32 && sodium_memcmp(got, mac, 32) == 0;
}

/* An idempotency key for vendors without a delivery id: the ids of the
 * events in the body (a retry resends the same events, though fields like
 * HubSpot's attemptNumber change), else the body itself. */
static void derived_id(const char *prefix, const struct bf_hook_request *req, char *id) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 16);
  json_t *root = json_loadb(req->body, req->body_len, 0, NULL);
  json_t *list = json_is_array(root) ? root : json_object_get(root, "data");
  bool any = false;
  static const char *const id_keys[] = {"eventId", "external_id", "id", "event_id", NULL};
  for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++) {
    json_t *ev = json_array_get(list, i);
    for (int k = 0; id_keys[k]; k++) {
      json_t *v = json_object_get(ev, id_keys[k]);
      char buf[128];
      if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      else if (json_is_string(v))
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
      else
        continue;
      crypto_generichash_update(&st, (const unsigned char *)buf, strlen(buf) + 1);
      any = true;
      break;
    }
  }
  json_decref(root);
  if (!any) crypto_generichash_update(&st, (const unsigned char *)req->body, req->body_len);
  unsigned char h[16];
  crypto_generichash_final(&st, h, sizeof h);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  snprintf(id, 257, "%s%s", prefix, hex);
}

/* Standard Webhooks: "whsec_<base64>" keys, any other text is the key bytes. */
static bool verify_standard(const struct bf_hook_auth *a, const struct bf_hook_request *req,
                            long long now_ms, char *id, char *why, size_t cap) {
  const char *wid = header(req, "webhook-id"), *ts = header(req, "webhook-timestamp"),
             *sigs = header(req, "webhook-signature");
  if (!wid || !ts || !sigs || strlen(wid) > 256)
    return fail(why, cap, "webhook-id, webhook-timestamp or webhook-signature missing");
  char *end;
  long long when = strtoll(ts, &end, 10);
  if (*end || !in_window(when * 1000, now_ms))
    return fail(why, cap, "webhook-timestamp is not within 5 minutes of now");
  unsigned char key[256];
  size_t key_len = 0;
  if (!strncmp(a->secret, "whsec_", 6)) {
    if (sodium_base642bin(key, sizeof key, a->secret + 6, strlen(a->secret + 6), NULL, &key_len,
                          NULL, sodium_base64_VARIANT_ORIGINAL))
      return fail(why, cap, "signing secret is not valid whsec_<base64>");
  } else {
    key_len = strlen(a->secret);
    if (key_len > sizeof key) return fail(why, cap, "signing secret is too long");
    memcpy(key, a->secret, key_len);
  }
  const char *parts[] = {wid, ".", ts, ".", req->body};
  size_t lens[] = {strlen(wid), 1, strlen(ts), 1, req->body_len};
  unsigned char mac[32];
  hmac(key, key_len, parts, lens, 5, mac);
  sodium_memzero(key, sizeof key);
  bool ok = false;
  /* "v1,<b64> v1,<b64>": any one that matches (secret rotation). */
  for (const char *p = sigs; *p;) {
    while (*p == ' ') p++;
    size_t len = strcspn(p, " ");
    if (len > 3 && !strncmp(p, "v1,", 3) && b64_equals(p + 3, len - 3, mac)) ok = true;
    p += len;
  }
  sodium_memzero(mac, sizeof mac);
  if (!ok) return fail(why, cap, "signature does not match");
  snprintf(id, 257, "%s", wid);
  return true;
}

/* HubSpot v3: base64 HMAC-SHA256(client secret, method + URI + body +
 * timestamp), timestamp in unix ms, refused when older than 5 minutes. */
static bool verify_hubspot(const struct bf_hook_auth *a, const struct bf_hook_request *req,
                           long long now_ms, char *id, char *why, size_t cap) {
  const char *sig = header(req, "X-HubSpot-Signature-v3"),
             *ts = header(req, "X-HubSpot-Request-Timestamp");
  if (!sig || !ts)
    return fail(why, cap, "X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp missing");
  char *end;
  long long when = strtoll(ts, &end, 10);
  if (*end || !in_window(when, now_ms))
    return fail(why, cap, "X-HubSpot-Request-Timestamp is not within 5 minutes of now");
  if (!a->url || !*a->url)
    return fail(why, cap,
                "hooks: the destination has no url (the address HubSpot posts to, "
                "which it signs)");
  const char *parts[] = {req->method, a->url, req->body, ts};
  size_t lens[] = {strlen(req->method), strlen(a->url), req->body_len, strlen(ts)};
  unsigned char mac[32];
  hmac((const unsigned char *)a->secret, strlen(a->secret), parts, lens, 4, mac);
  bool ok = b64_equals(sig, strlen(sig), mac);
  sodium_memzero(mac, sizeof mac);
  if (!ok) return fail(why, cap, "signature does not match");
  derived_id("hubspot-", req, id);
  return true;
}

/* Klaviyo system webhooks: hex HMAC-SHA256(secret, body + timestamp). */
static bool verify_klaviyo(const struct bf_hook_auth *a, const struct bf_hook_request *req,
                           long long now_ms, char *id, char *why, size_t cap) {
  const char *sig = header(req, "Klaviyo-Signature"), *ts = header(req, "Klaviyo-Timestamp");
  if (!sig || !ts) return fail(why, cap, "Klaviyo-Signature or Klaviyo-Timestamp missing");
  if (!in_window(parse_time_ms(ts), now_ms))
    return fail(why, cap, "Klaviyo-Timestamp is not within 5 minutes of now");
  const char *parts[] = {req->body, ts};
  size_t lens[] = {req->body_len, strlen(ts)};
  unsigned char mac[32], got[32];
  hmac((const unsigned char *)a->secret, strlen(a->secret), parts, lens, 2, mac);
  size_t got_len = 0;
  /* Hex per the docs as read; base64 too, as the one page that states the
   * encoding is not Klaviyo's own. */
  bool ok = (sodium_hex2bin(got, sizeof got, sig, strlen(sig), NULL, &got_len, NULL) == 0 &&
             got_len == 32 && sodium_memcmp(got, mac, 32) == 0) ||
            b64_equals(sig, strlen(sig), mac);
  sodium_memzero(mac, sizeof mac);
  if (!ok) return fail(why, cap, "signature does not match");
  derived_id("klaviyo-", req, id);
  return true;
}

/* A shared secret in a header (Braze webhook campaigns set any header) or
 * in the URL's token parameter (Mailchimp audience webhooks have nothing
 * else). No timestamp: replays are stored once by the idempotency key. */
static bool verify_token(const struct bf_hook_auth *a, const struct bf_hook_request *req, char *id,
                         char *why, size_t cap) {
  const char *name = a->header && *a->header ? a->header : "Authorization";
  const char *got = header(req, name);
  if (got && !strncasecmp(got, "Bearer ", 7) && !strcasecmp(name, "Authorization")) got += 7;
  if (!got && req->query) got = req->query(req->ctx, "token");
  if (!got) return fail(why, cap, "no token (header or ?token=)");
  /* Compare digests, so the time taken says nothing about the secret. */
  unsigned char h1[32], h2[32];
  crypto_generichash(h1, sizeof h1, (const unsigned char *)got, strlen(got), NULL, 0);
  crypto_generichash(h2, sizeof h2, (const unsigned char *)a->secret, strlen(a->secret), NULL, 0);
  if (sodium_memcmp(h1, h2, sizeof h1)) return fail(why, cap, "token does not match");
  const char *wid = header(req, "webhook-id");
  if (wid && strlen(wid) <= 256)
    snprintf(id, 257, "%s", wid);
  else
    derived_id("token-", req, id);
  return true;
}

bool bf_hook_verify(const struct bf_hook_auth *auth, const struct bf_hook_request *req,
                    long long now_ms, char *id, char *why, size_t why_cap) {
  if (!auth->secret || !*auth->secret)
    return fail(why, why_cap, "the destination has no secret to verify events with");
  switch (auth->scheme) {
  case BF_HOOK_STANDARD: return verify_standard(auth, req, now_ms, id, why, why_cap);
  case BF_HOOK_HUBSPOT: return verify_hubspot(auth, req, now_ms, id, why, why_cap);
  case BF_HOOK_KLAVIYO: return verify_klaviyo(auth, req, now_ms, id, why, why_cap);
  case BF_HOOK_TOKEN: return verify_token(auth, req, id, why, why_cap);
  }
  return fail(why, why_cap, "unknown scheme");
}

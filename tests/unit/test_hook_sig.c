/* Vendor signature schemes of /hooks (src/server/hook_sig.c). Where the
 * vendor publishes an example it is used; HubSpot publishes concrete values
 * for v1/v2 only, so its v3 case is computed by the documented algorithm
 * (method + URI + body + timestamp) over HubSpot's own v1 example body. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

#include "server/hook_events.h"

struct hdrs {
  const char *names[4], *values[4];
  const char *token; /* ?token= */
};
static const char *get(const void *ctx, const char *name) {
  const struct hdrs *h = ctx;
  for (int i = 0; i < 4 && h->names[i]; i++)
    if (!strcasecmp(h->names[i], name)) return h->values[i];
  return NULL;
}
static const char *query(const void *ctx, const char *name) {
  const struct hdrs *h = ctx;
  return !strcmp(name, "token") ? h->token : NULL;
}
static bool verify(const struct bf_hook_auth *a, const char *method, const char *body,
                   const struct hdrs *h, long long now_ms, char *id) {
  struct bf_hook_request req = {method, a->url, body, strlen(body), get, query, h};
  char why[256];
  return bf_hook_verify(a, &req, now_ms, id, why, sizeof why);
}

#define SW_BODY "{\"test\": 2432232314}"
/* The Standard Webhooks reference vector (its libraries' tests). */
Test(hook_sig, standard_webhooks_vector_window_and_tampering) {
  cr_assert(sodium_init() >= 0);
  struct bf_hook_auth a = {BF_HOOK_STANDARD, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL, NULL};
  struct hdrs h = {{"webhook-id", "webhook-timestamp", "webhook-signature"},
                   {"msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
                   NULL};
  char id[257];
  long long at = 1614265330LL * 1000;
  cr_assert(verify(&a, "POST", SW_BODY, &h, at, id));
  cr_assert_str_eq(id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
  cr_assert(verify(&a, "POST", SW_BODY, &h, at + 299000, id));
  cr_assert_not(verify(&a, "POST", SW_BODY, &h, at + 301000, id), "stale");
  cr_assert_not(verify(&a, "POST", SW_BODY, &h, at - 301000, id), "future");
  cr_assert_not(verify(&a, "POST", "{\"test\": 2432232315}", &h, at, id), "tampered");
  h.values[2] = "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
  cr_assert(verify(&a, "POST", SW_BODY, &h, at, id), "rotation: any one matches");
}

#define HS_BODY                                                                                    \
  "[{\"eventId\":1,\"subscriptionId\":12345,\"portalId\":62515,\"occurredAt\":1564113600000,"      \
  "\"subscriptionType\":\"contact.creation\",\"attemptNumber\":0,\"objectId\":123,"                \
  "\"changeSource\":\"CRM\",\"changeFlag\":\"NEW\",\"appId\":54321}]"
Test(hook_sig, hubspot_v3) {
  cr_assert(sodium_init() >= 0);
  struct bf_hook_auth a = {BF_HOOK_HUBSPOT, "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
                           "https://www.example.com/webhook_uri", NULL};
  struct hdrs h = {{"X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"},
                   {"/pXDSgWeGksQpwCsgqd43P0eY6gBIse9UX0tfkudUrE=", "1700000000000"},
                   NULL};
  char id[257], id2[257];
  long long at = 1700000000000LL;
  cr_assert(verify(&a, "POST", HS_BODY, &h, at + 1000, id));
  cr_assert(!strncmp(id, "hubspot-", 8));
  cr_assert_not(verify(&a, "POST", HS_BODY, &h, at + 301000, id), "older than 5 minutes");
  cr_assert_not(verify(&a, "PUT", HS_BODY, &h, at, id), "the method is signed");
  a.url = "https://www.example.com/other";
  cr_assert_not(verify(&a, "POST", HS_BODY, &h, at, id), "the URI is signed");
  a.url = NULL;
  cr_assert_not(verify(&a, "POST", HS_BODY, &h, at, id), "no url configured");
  /* A retry changes attemptNumber, not the events: the same key. */
  a.url = "https://www.example.com/webhook_uri";
  struct bf_hook_auth t = {BF_HOOK_TOKEN, "s3cret", NULL, NULL};
  struct hdrs th = {{"Authorization"}, {"Bearer s3cret"}, NULL};
  cr_assert(verify(&t, "POST", HS_BODY, &th, at, id));
  char retry[sizeof HS_BODY];
  strcpy(retry, HS_BODY);
  char *n = strstr(retry, "\"attemptNumber\":0");
  n[16] = '1';
  cr_assert(verify(&t, "POST", retry, &th, at, id2));
  cr_assert_str_eq(id, id2);
}

#define KL_BODY                                                                                    \
  "{\"data\":[{\"topic\":\"event:klaviyo.unsubscribed_from_email_marketing\",\"external_id\":"     \
  "\"ev1\"}]}"
Test(hook_sig, klaviyo) {
  cr_assert(sodium_init() >= 0);
  struct bf_hook_auth a = {BF_HOOK_KLAVIYO, "klaviyo-secret-123456", NULL, NULL};
  struct hdrs h = {
      {"Klaviyo-Signature", "Klaviyo-Timestamp"},
      {"adaaaadde3a1870d28ab89261a5ce25a83c3c1bce1d4fc7963cd85dc061d6048", "2024-05-01T12:00:00Z"},
      NULL};
  char id[257];
  long long at = 1714564800000LL; /* 2024-05-01T12:00:00Z */
  cr_assert(verify(&a, "POST", KL_BODY, &h, at, id));
  cr_assert(!strncmp(id, "klaviyo-", 8));
  cr_assert_not(verify(&a, "POST", KL_BODY, &h, at + 301000, id), "stale");
  a.secret = "another-secret-123456";
  cr_assert_not(verify(&a, "POST", KL_BODY, &h, at, id));
}

Test(hook_sig, token_header_or_query) {
  cr_assert(sodium_init() >= 0);
  struct bf_hook_auth a = {BF_HOOK_TOKEN, "s3cret", NULL, "X-Braze-Token"};
  struct hdrs h = {{"X-Braze-Token"}, {"s3cret"}, NULL};
  char id[257];
  cr_assert(verify(&a, "POST", "{}", &h, 0, id));
  h.values[0] = "s3creT";
  cr_assert_not(verify(&a, "POST", "{}", &h, 0, id));
  struct hdrs q = {{NULL}, {NULL}, "s3cret"};
  cr_assert(verify(&a, "POST", "{}", &q, 0, id), "Mailchimp: ?token= in the URL");
  a.secret = "";
  cr_assert_not(verify(&a, "POST", "{}", &q, 0, id), "an empty secret lets nobody in");
}

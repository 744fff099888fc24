#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "destinations/destination.h"

/* The Standard Webhooks reference test vector (svix/standard-webhooks). */
Test(webhook, signature_matches_the_standard_webhooks_vector) {
  cr_assert(sodium_init() >= 0);
  const char *b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  unsigned char key[64];
  size_t key_len;
  cr_assert_eq(sodium_base642bin(key, sizeof key, b64, strlen(b64), NULL, &key_len, NULL,
                                 sodium_base64_VARIANT_ORIGINAL),
               0);
  const char *body = "{\"test\": 2432232314}";
  char sig[96];
  bf_webhook_signature(key, key_len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body),
                       sig, sizeof sig);
  cr_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

Test(webhook, signature_changes_with_body) {
  cr_assert(sodium_init() >= 0);
  unsigned char key[16] = {1};
  char a[96], b[96];
  bf_webhook_signature(key, sizeof key, "msg_1", 1, "x", 1, a, sizeof a);
  bf_webhook_signature(key, sizeof key, "msg_1", 1, "y", 1, b, sizeof b);
  cr_assert_str_neq(a, b);
}

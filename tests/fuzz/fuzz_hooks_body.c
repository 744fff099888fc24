/* libFuzzer target: the body parser of POST /hooks/{destination}
 * (bf_hook_parse), the first code an authenticated sender's bytes reach.
 * Input: one byte choosing the content type (even: JSON, odd: a form post),
 * then the body (not NUL-terminated: an exact-size heap block).
 *
 * Properties, besides ASan/UBSan: the answer is 0, 400 or 413; on 0 there
 * are at most BF_HOOK_MAX_EVENTS events, each with a non-empty name, a
 * person hash that is empty or 32 hex digits (set exactly when an
 * identifier was found), and a payload that is JSON without any key that
 * holds personal data (email, phone, name, ...). */
#include <ctype.h>
#include <stdint.h>

#include <jansson.h>
#include <sodium.h>

#include "fuzz_common.h"
#include "server/hook_events.h"

static struct bf_prf prf;
static const char *const pii[] = {"email",   "phone", "first_name", "last_name", "name",
                                  "address", "ip",    "user_agent", NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup_env();
  if (sodium_init() < 0) abort();
  static const unsigned char secret[32] = "fuzz-hooks-body-secret-32-bytes";
  struct bf_error err = {0};
  if (bf_prf_init(&prf, secret, sizeof secret, &err)) abort();
  return 0;
}

static void no_pii_keys(json_t *v, int depth) {
  if (depth > 40) return;
  if (json_is_object(v)) {
    const char *k;
    json_t *child;
    json_object_foreach(v, k, child) {
      for (int i = 0; pii[i]; i++)
        FUZZ_CHECK(strcasecmp(k, pii[i]) != 0, "payload keeps key '%s'", k);
      no_pii_keys(child, depth + 1);
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) no_pii_keys(json_array_get(v, i), depth + 1);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return -1;
  const char *ctype = data[0] & 1 ? "application/x-www-form-urlencoded" : "application/json";
  size_t len = size - 1;
  char *body = malloc(len ? len : 1);
  if (len) memcpy(body, data + 1, len);
  struct bf_hook_event *evs = NULL;
  size_t n = 0;
  char why[512];
  int rc = bf_hook_parse(&prf, ctype, body, len, &evs, &n, why, sizeof why);
  FUZZ_CHECK(rc == 0 || rc == 400 || rc == 413, "status %d", rc);
  if (rc) {
    FUZZ_CHECK(evs == NULL && n == 0, "events on failure");
    FUZZ_CHECK(why[0] != 0, "no reason");
  }
  FUZZ_CHECK(n <= BF_HOOK_MAX_EVENTS, "%zu events", n);
  for (size_t i = 0; i < n; i++) {
    const struct bf_hook_event *e = &evs[i];
    FUZZ_CHECK(e->event[0] != 0, "empty event name");
    size_t hl = strlen(e->person_hash);
    FUZZ_CHECK(hl == 0 || hl == 32, "hash length %zu", hl);
    for (size_t k = 0; k < hl; k++) FUZZ_CHECK(isxdigit((unsigned char)e->person_hash[k]), "hash");
    FUZZ_CHECK((hl == 32) == (e->ident != NULL), "hash without identifier or back");
    if (e->payload) {
      json_t *p = json_loads(e->payload, 0, NULL);
      FUZZ_CHECK(p != NULL, "payload is not JSON: %s", e->payload);
      no_pii_keys(p, 0);
      json_decref(p);
    }
  }
  bf_hook_events_free(evs, n);
  free(body);
  return 0;
}

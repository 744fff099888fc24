/* Shared by the libFuzzer targets in tests/fuzz/: the environment the
 * ${NAME} targets see, and a check that aborts (so libFuzzer saves the
 * input) with a message saying which property broke. */
#ifndef BF_FUZZ_COMMON_H
#define BF_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* A value no input contains by chance: if a message shows it, a secret from
 * the environment was echoed. */
#define FUZZ_SECRET "Zq9-s3cr3t-Vw7xK"

static inline void fuzz_setup_env(void) {
  setenv("BF_FUZZ_SECRET", FUZZ_SECRET, 1);
  setenv("BF_FUZZ_A", "alpha", 1);
  setenv("BF_FUZZ_EMPTY", "", 1);
  setenv("BF_FUZZ_NUM", "30s", 1);
  /* Substituted text is never substituted again. */
  setenv("BF_FUZZ_DOLLAR", "${BF_FUZZ_SECRET}$${x}", 1);
  setenv("BF_FUZZ_UTF8", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 1);
  setenv("BF_FUZZ_NL", "line1\nline2: x", 1);
  setenv("HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
  setenv("BACKFLOW_SECRET", FUZZ_SECRET "-project", 1);
  setenv("BACKFLOW_TOKEN", FUZZ_SECRET "-token", 1);
  setenv("PG_DSN", "postgres://u:" FUZZ_SECRET "@db/x", 1);
  setenv("HUBSPOT_TOKEN", FUZZ_SECRET "-hs", 1);
  unsetenv("BF_FUZZ_UNSET");
  bf_log_level = getenv("FUZZ_LOG") ? BF_LOG_DEBUG : BF_LOG_ERROR;
}

#define FUZZ_CHECK(cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: property broken: %s: ", __FILE__, __LINE__, #cond);                  \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* True when the n bytes at p contain needle. */
static inline int fuzz_contains(const void *p, size_t n, const char *needle) {
  return memmem(p, n, needle, strlen(needle)) != NULL;
}

#endif

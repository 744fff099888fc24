#include "util/crashpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bf_crashpoint(const char *point) {
  static int parsed;
  static char name[64];
  static long remaining;
  if (!parsed) {
    parsed = 1;
    const char *spec = getenv("BACKFLOW_CRASH_AT");
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (colon && (size_t)(colon - spec) < sizeof name) {
      memcpy(name, spec, (size_t)(colon - spec));
      remaining = strtol(colon + 1, NULL, 10);
    }
  }
  if (!name[0] || strcmp(name, point) != 0) return;
  if (--remaining == 0) kill(getpid(), SIGKILL);
}

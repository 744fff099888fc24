#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

enum bf_log_level bf_log_level = BF_LOG_WARN;

void bf_log_write(enum bf_log_level level, const char *fmt, ...) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s backflow %s: %s\n", stamp, names[level], line);
}

/* Errors are values: functions return 0 or a negative bf_code and fill a
 * caller-owned struct bf_error with a message that names the place.
 * The CLI prints the message once and maps the code to an exit status. */
#ifndef BF_ERROR_H
#define BF_ERROR_H

#include <stdarg.h>
#include <stdlib.h>

/* X(name, value, exit_status, description). Values are never renumbered. */
#define BF_ERROR_MAP(X)                                                                            \
  X(OK, 0, 0, "ok")                                                                                \
  X(USAGE, -1, 2, "usage error")                                                                   \
  X(CONFIG, -2, 2, "configuration error")                                                          \
  X(WAREHOUSE, -3, 3, "warehouse error")                                                           \
  X(DESTINATION, -4, 4, "destination unavailable")                                                 \
  X(IO, -5, 2, "input/output error")                                                               \
  X(NOMEM, -6, 2, "out of memory")                                                                 \
  X(STATE, -7, 2, "state store error")                                                             \
  X(LOCKED, -8, 5, "sync is already running")                                                      \
  X(INTERRUPTED, -9, 130, "interrupted")                                                           \
  X(SECRET, -10, 2, "the secret does not match the state")

enum bf_code {
#define BF_X(name, value, exit_status, desc) BF_E_##name = value,
  BF_ERROR_MAP(BF_X)
#undef BF_X
};

#define BF_ERROR_MSG_MAX 1024

struct bf_error {
  int code;                   /* enum bf_code; 0 when no error was set */
  char msg[BF_ERROR_MSG_MAX]; /* one line, names file:line:col or object */
};

/* Sets err (if not NULL) and returns code, so callers write
 * `return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: ...", ...)`. */
int bf_error_set(struct bf_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes an existing message: "context: old message". Returns err->code. */
int bf_error_prefix(struct bf_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bf_error_clear(struct bf_error *err);
const char *bf_code_name(int code);
int bf_code_exit_status(int code);

/* Internal invariant broken: abort with file and line (git's BUG()). */
#define BF_BUG(...) bf_bug(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void bf_bug(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define BF_ASSERT(cond)                                                                            \
  do {                                                                                             \
    if (!(cond)) BF_BUG("assertion failed: %s", #cond);                                            \
  } while (0)

/* Allocation helpers that abort on exhaustion: a reverse-ETL run cannot
 * do anything useful without memory, and every caller checking NULL
 * would triple the error paths for no user benefit. */
void *bf_xmalloc(size_t n);
void *bf_xcalloc(size_t n, size_t size);
void *bf_xrealloc(void *p, size_t n);
char *bf_xstrdup(const char *s);
char *bf_xstrndup(const char *s, size_t n);
/* Caller frees. */
char *bf_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

#include "util/error.h"

#include <stdio.h>
#include <string.h>

int bf_error_set(struct bf_error *err, int code, const char *fmt, ...) {
  if (!err) return code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  /* A message is one line, whatever a config value or a server put in it:
   * a newline from outside must not forge a second log line. */
  for (char *c = err->msg; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
  err->code = code;
  return code;
}

int bf_error_prefix(struct bf_error *err, const char *fmt, ...) {
  if (!err) return 0;
  char prefix[BF_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  char old[BF_ERROR_MSG_MAX];
  memcpy(old, err->msg, sizeof old);
  /* Truncation is acceptable: the message is for people and stays one line. */
  size_t n = strlen(prefix);
  if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
  memcpy(err->msg, prefix, n);
  memcpy(err->msg + n, ": ", 2);
  size_t rest = sizeof err->msg - n - 3;
  size_t old_len = strlen(old);
  if (old_len > rest) old_len = rest;
  memcpy(err->msg + n + 2, old, old_len);
  err->msg[n + 2 + old_len] = '\0';
  return err->code;
}

void bf_error_clear(struct bf_error *err) {
  if (!err) return;
  err->code = 0;
  err->msg[0] = '\0';
}

const char *bf_code_name(int code) {
  switch (code) {
#define BF_X(name, value, exit_status, desc)                                                       \
  case value: return desc;
    BF_ERROR_MAP(BF_X)
#undef BF_X
  }
  return "unknown error";
}

int bf_code_exit_status(int code) {
  switch (code) {
#define BF_X(name, value, exit_status, desc)                                                       \
  case value: return exit_status;
    BF_ERROR_MAP(BF_X)
#undef BF_X
  }
  return 2;
}

void bf_bug(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "BUG at %s:%d: ", file, line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

static void *check_alloc(void *p) {
  if (!p) {
    fputs("backflow: out of memory\n", stderr);
    abort();
  }
  return p;
}

void *bf_xmalloc(size_t n) { return check_alloc(malloc(n ? n : 1)); }
void *bf_xcalloc(size_t n, size_t size) { return check_alloc(calloc(n ? n : 1, size ? size : 1)); }
void *bf_xrealloc(void *p, size_t n) { return check_alloc(realloc(p, n ? n : 1)); }
char *bf_xstrdup(const char *s) { return check_alloc(strdup(s ? s : "")); }
char *bf_xstrndup(const char *s, size_t n) { return check_alloc(strndup(s, n)); }

char *bf_xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *out = bf_xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(out, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return out;
}

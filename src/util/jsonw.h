/* A streaming JSON writer into a growable buffer: records are written once
 * into a reused buffer instead of building a tree per record. */
#ifndef BF_JSONW_H
#define BF_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/value.h"

struct bf_buf {
  char *data;
  size_t len, cap;
};

void bf_buf_reserve(struct bf_buf *b, size_t extra);
void bf_buf_append(struct bf_buf *b, const void *p, size_t n);
void bf_buf_puts(struct bf_buf *b, const char *s);
void bf_buf_putc(struct bf_buf *b, char c);
void bf_buf_printf(struct bf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bf_buf_reset(struct bf_buf *b);   /* len = 0, keeps memory */
void bf_buf_release(struct bf_buf *b); /* frees memory */
/* NUL-terminates without counting the NUL in len. */
const char *bf_buf_cstr(struct bf_buf *b);

/* Appends s as a quoted, escaped JSON string (invalid UTF-8 bytes become U+FFFD). */
void bf_json_str(struct bf_buf *b, const char *s, size_t n);
void bf_json_cstr(struct bf_buf *b, const char *s);
void bf_json_int(struct bf_buf *b, int64_t v);
/* The shortest decimal text that reads back as exactly v (1882.6, not
 * 1882.5999999999999), as JSON writers and printf("%.17g") users disagree
 * on; what every destination that receives text gets. v must be finite.
 * out needs BF_DOUBLE_TEXT_MAX bytes; returns the length written. */
#define BF_DOUBLE_TEXT_MAX 32
size_t bf_double_text(char *out, double v);
/* NaN and infinities have no JSON form: written as null. */
void bf_json_double(struct bf_buf *b, double v);
/* Writes a typed value: text as string, blob as base64 string, NULL as null. */
void bf_json_value(struct bf_buf *b, const struct bf_value *v);

#endif

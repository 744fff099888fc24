#include "util/jsonw.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "util/error.h"

const char *bf_type_name(enum bf_type t) {
  static const char *const names[] = {"null", "int", "float", "text", "blob", "bool", "json"};
  return (unsigned)t < sizeof names / sizeof *names ? names[t] : "?";
}

void bf_buf_reserve(struct bf_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  b->data = bf_xrealloc(b->data, cap);
  b->cap = cap;
}

void bf_buf_append(struct bf_buf *b, const void *p, size_t n) {
  bf_buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void bf_buf_puts(struct bf_buf *b, const char *s) { bf_buf_append(b, s, strlen(s)); }

void bf_buf_putc(struct bf_buf *b, char c) {
  bf_buf_reserve(b, 1);
  b->data[b->len++] = c;
}

void bf_buf_printf(struct bf_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  bf_buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void bf_buf_reset(struct bf_buf *b) { b->len = 0; }

void bf_buf_release(struct bf_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

const char *bf_buf_cstr(struct bf_buf *b) {
  bf_buf_reserve(b, 0);
  b->data[b->len] = '\0';
  return b->data;
}

/* Length of a valid UTF-8 sequence at s (of at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4;
  else
    return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (len == 3 && c == 0xE0 && s[1] < 0xA0) return 0;
  if (len == 3 && c == 0xED && s[1] > 0x9F) return 0;
  if (len == 4 && c == 0xF0 && s[1] < 0x90) return 0;
  if (len == 4 && c == 0xF4 && s[1] > 0x8F) return 0;
  return len;
}

void bf_json_str(struct bf_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  bf_buf_reserve(b, n + 2);
  b->data[b->len++] = '"';
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    /* Fast path: copy a run of plain ASCII at once. */
    size_t run = i;
    while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
    if (run > i) {
      bf_buf_append(b, p + i, run - i);
      i = run;
      continue;
    }
    unsigned c = p[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      bf_buf_append(b, esc, 2);
      i++;
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      if (c == '\n')
        bf_buf_append(b, "\\n", 2);
      else if (c == '\t')
        bf_buf_append(b, "\\t", 2);
      else if (c == '\r')
        bf_buf_append(b, "\\r", 2);
      else
        bf_buf_append(b, esc, 6);
      i++;
    } else {
      size_t len = utf8_seq(p + i, n - i);
      if (len == 0) {
        bf_buf_append(b, "\xEF\xBF\xBD", 3);
        i++;
      } else {
        bf_buf_append(b, p + i, len);
        i += len;
      }
    }
  }
  bf_buf_putc(b, '"');
}

void bf_json_cstr(struct bf_buf *b, const char *s) { bf_json_str(b, s, strlen(s)); }

void bf_json_int(struct bf_buf *b, int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
  bf_buf_append(b, tmp, (size_t)n);
}

void bf_json_double(struct bf_buf *b, double v) {
  if (!isfinite(v)) {
    bf_buf_append(b, "null", 4);
    return;
  }
  char tmp[BF_DOUBLE_TEXT_MAX];
  bf_buf_append(b, tmp, bf_double_text(tmp, v));
}

size_t bf_double_text(char *out, double v) {
  /* When a representation of at most 15 digits round-trips, %.15g prints it
   * (a normal double carries 15.95 digits, so rounding to 15 lands on it);
   * else 16 digits, else 17, which always round-trips. Subnormals carry
   * fewer digits: there every precision is tried. */
  int n = 0;
  for (int digits = fabs(v) < DBL_MIN ? 1 : 15; digits <= 17; digits++) {
    n = snprintf(out, BF_DOUBLE_TEXT_MAX, "%.*g", digits, v);
    if (strtod(out, NULL) == v) break;
  }
  return (size_t)n;
}

void bf_json_value(struct bf_buf *b, const struct bf_value *v) {
  switch (v->type) {
  case BF_NULL: bf_buf_append(b, "null", 4); break;
  case BF_INT: bf_json_int(b, v->u.i); break;
  case BF_BOOL: bf_buf_puts(b, v->u.i ? "true" : "false"); break;
  case BF_FLOAT: bf_json_double(b, v->u.f); break;
  case BF_TEXT: bf_json_str(b, v->u.s, v->len); break;
  case BF_JSON: bf_buf_append(b, v->u.s, v->len); break;
  case BF_BLOB: {
    size_t cap = sodium_base64_ENCODED_LEN(v->len, sodium_base64_VARIANT_ORIGINAL);
    char *tmp = bf_xmalloc(cap);
    sodium_bin2base64(tmp, cap, (const unsigned char *)v->u.s, v->len,
                      sodium_base64_VARIANT_ORIGINAL);
    bf_json_cstr(b, tmp);
    free(tmp);
    break;
  }
  }
}

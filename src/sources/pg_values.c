/* PostgreSQL text output -> bf_value (see pg_values.h). */
#include "sources/pg_values.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Type OIDs (pg_type.dat; stable across versions). */
enum {
  OID_BOOL = 16,
  OID_BYTEA = 17,
  OID_INT8 = 20,
  OID_INT2 = 21,
  OID_INT4 = 23,
  OID_OID = 26,
  OID_JSON = 114,
  OID_FLOAT4 = 700,
  OID_FLOAT8 = 701,
  OID_TIMESTAMP = 1114,
  OID_TIMESTAMPTZ = 1184,
  OID_JSONB = 3802,
};

enum { K_TEXT, K_INT, K_FLOAT, K_BOOL, K_BLOB, K_TS, K_TSTZ, K_JSON, K_ARRAY };
#define ARRAY_OF(k) ((bf_pg_kind)(K_ARRAY | (k) << 8))

/* PostgreSQL allows arrays of at most 6 dimensions (MAXDIM). */
#define MAX_DIMS 6

bf_pg_kind bf_pg_kind_of(Oid t) {
  switch (t) {
  case OID_INT2:
  case OID_INT4:
  case OID_INT8:
  case OID_OID: return K_INT;
  case OID_FLOAT4:
  case OID_FLOAT8: return K_FLOAT;
  case OID_BOOL: return K_BOOL;
  case OID_BYTEA: return K_BLOB;
  case OID_TIMESTAMP: return K_TS;
  case OID_TIMESTAMPTZ: return K_TSTZ;
  case OID_JSON:
  case OID_JSONB: return K_JSON;
  /* Array types of the element types above, and of text-like ones. */
  case 1000: return ARRAY_OF(K_BOOL);
  case 1005:                           /* int2[] */
  case 1007:                           /* int4[] */
  case 1016:                           /* int8[] */
  case 1028: return ARRAY_OF(K_INT);   /* oid[] */
  case 1021:                           /* float4[] */
  case 1022: return ARRAY_OF(K_FLOAT); /* float8[] */
  case 1115: return ARRAY_OF(K_TS);
  case 1185: return ARRAY_OF(K_TSTZ);
  case 199:                           /* json[] */
  case 3807: return ARRAY_OF(K_JSON); /* jsonb[] */
  case 1009:                          /* text[] */
  case 1014:                          /* bpchar[] */
  case 1015:                          /* varchar[] */
  case 1231:                          /* numeric[]: strings, keeping their scale */
  case 2951:                          /* uuid[] */
  case 1182:                          /* date[] */
  case 1001: return ARRAY_OF(K_TEXT); /* bytea[]: as printed (\x...) */
  default: return K_TEXT;
  }
}

int bf_pg_hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int parse_int(const char *s, size_t n, int64_t *out) {
  if (n == 0 || n > 20) return -1;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '-' || s[0] == '+') neg = s[i++] == '-';
  if (i == n) return -1;
  uint64_t v = 0;
  for (; i < n; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (d > 9) return -1;
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* strtod over exactly n bytes; s[n] may be overwritten for the call. */
static bool parse_float(char *s, size_t n, double *out) {
  char save = s[n];
  s[n] = '\0';
  char *end;
  *out = strtod(s, &end);
  s[n] = save;
  return n > 0 && end == s + n;
}

/* "2024-05-01 12:00:00.5+00" -> "2024-05-01T12:00:00.5Z", in place; returns
 * the new length. */
static size_t iso_timestamp(char *s, size_t n, bool tz) {
  if (n >= 19 && s[4] == '-' && s[10] == ' ' && s[13] == ':') {
    s[10] = 'T';
    if (tz && n >= 22 && !memcmp(s + n - 3, "+00", 3) && isdigit((unsigned char)s[n - 4])) {
      s[n - 3] = 'Z';
      n -= 2;
    }
  }
  return n;
}

/* One array element as JSON. p is writable (see iso_timestamp). */
static void element_json(struct bf_buf *out, int kind, char *p, size_t n) {
  int64_t i;
  double f;
  switch (kind) {
  case K_INT:
    if (parse_int(p, n, &i) == 0) return bf_json_int(out, i);
    break;
  case K_FLOAT:
    if (parse_float(p, n, &f) && isfinite(f)) return bf_json_double(out, f);
    break; /* NaN, Infinity: as strings, which JSON can hold */
  case K_BOOL:
    if (n == 1 && (p[0] == 't' || p[0] == 'f'))
      return bf_buf_puts(out, p[0] == 't' ? "true" : "false");
    break;
  case K_JSON: return bf_buf_append(out, p, n);
  case K_TS:
  case K_TSTZ: n = iso_timestamp(p, n, kind == K_TSTZ); break;
  }
  bf_json_str(out, p, n);
}

/* Parses one {...} level at s[*at] into out as a JSON array. Quoted
 * elements are unescaped in place (writes trail reads). False when the text
 * is not an array literal as PostgreSQL prints one. */
static bool array_level(char *s, size_t n, size_t *at, int elem, int depth, struct bf_buf *out) {
  size_t i = *at;
  if (i >= n || s[i] != '{' || depth > MAX_DIMS) return false;
  i++;
  bf_buf_putc(out, '[');
  if (i < n && s[i] == '}') {
    *at = i + 1;
    bf_buf_putc(out, ']');
    return true;
  }
  for (;;) {
    if (i >= n) return false;
    if (s[i] == '{') {
      if (!array_level(s, n, &i, elem, depth + 1, out)) return false;
    } else if (s[i] == '"') {
      char *w = s + ++i, *start = w;
      while (i < n && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < n) i++;
        *w++ = s[i++];
      }
      if (i >= n) return false;
      i++; /* the closing quote */
      element_json(out, elem, start, (size_t)(w - start));
    } else {
      size_t start = i;
      while (i < n && s[i] != ',' && s[i] != '}') i++;
      size_t len = i - start;
      while (len && isspace((unsigned char)s[start + len - 1])) len--;
      if (len == 4 && !strncasecmp(s + start, "NULL", 4))
        bf_buf_puts(out, "null");
      else
        element_json(out, elem, s + start, len);
    }
    if (i >= n) return false;
    if (s[i] == ',') {
      bf_buf_putc(out, ',');
      i++;
      continue;
    }
    if (s[i] != '}') return false;
    *at = i + 1;
    bf_buf_putc(out, ']');
    return true;
  }
}

/* s: an array as PostgreSQL prints it, e.g. {a,"b c",NULL} or
 * [0:1]={1,2} (the bounds are dropped: JSON arrays start at 0). */
static bool array_json(char *s, size_t n, int elem, struct bf_buf *out) {
  size_t i = 0;
  if (n && s[0] == '[') {
    const char *eq = memchr(s, '=', n);
    if (!eq) return false;
    i = (size_t)(eq - s) + 1;
  }
  return array_level(s, n, &i, elem, 1, out) && i == n;
}

static void put_bytes(struct bf_rowbuf *rb, struct bf_value *v, enum bf_type t, const char *s,
                      size_t n) {
  v->type = t;
  v->len = (uint32_t)n;
  v->u.s = bf_rowbuf_put_bytes(rb, s, n);
}

void bf_pg_put_value(struct bf_rowbuf *rb, struct bf_value *v, bf_pg_kind kind, char *s, size_t n,
                     struct bf_pg_scratch *scratch) {
  switch (kind & 0xff) {
  case K_INT:
    if (parse_int(s, n, &v->u.i) == 0) {
      v->type = BF_INT;
      return;
    }
    break;
  case K_FLOAT:
    if (parse_float(s, n, &v->u.f)) {
      v->type = BF_FLOAT;
      return;
    }
    break;
  case K_BOOL:
    if (n == 1 && (s[0] == 't' || s[0] == 'f')) {
      v->type = BF_BOOL;
      v->u.i = s[0] == 't';
      return;
    }
    break;
  case K_BLOB:
    if (n >= 2 && s[0] == '\\' && s[1] == 'x' && n % 2 == 0) {
      size_t m = (n - 2) / 2;
      for (size_t i = 0; i < m; i++) {
        int hi = bf_pg_hexval(s[2 + 2 * i]), lo = bf_pg_hexval(s[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
          put_bytes(rb, v, BF_TEXT, s, n);
          return;
        }
        s[i] = (char)(hi << 4 | lo); /* in place: writes trail reads */
      }
      put_bytes(rb, v, BF_BLOB, s, m);
      return;
    }
    break;
  case K_TS:
  case K_TSTZ: n = iso_timestamp(s, n, (kind & 0xff) == K_TSTZ); break;
  case K_JSON: put_bytes(rb, v, BF_JSON, s, n); return;
  case K_ARRAY: {
    /* Parsing unescapes a copy in place, so s stays whole for the fallback
     * (text as printed), which only an unexpected literal takes. */
    bf_buf_reset(&scratch->copy);
    bf_buf_reset(&scratch->json);
    bf_buf_append(&scratch->copy, s, n);
    if (array_json(scratch->copy.data, n, kind >> 8, &scratch->json)) {
      put_bytes(rb, v, BF_JSON, scratch->json.data, scratch->json.len);
      return;
    }
    break;
  }
  }
  put_bytes(rb, v, BF_TEXT, s, n);
}

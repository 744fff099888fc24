/* Values of the Snowflake SQL API result format (jsonv2): every cell is a
 * JSON string or null, and dates and times come as numbers since the epoch
 * (https://docs.snowflake.com/en/developer-guide/sql-api/handling-responses).
 * They are turned into the same text the PostgreSQL warehouse produces, so a
 * model moved from one warehouse to the other sends the same records. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sources/snowflake.h"
#include "sources/cells.h"

enum bf_sf_kind bf_sf_kind_of(const char *type, long long scale) {
  static const struct {
    const char *name;
    enum bf_sf_kind kind;
  } names[] = {
      {"real", BF_SF_REAL},
      {"float", BF_SF_REAL},
      {"double", BF_SF_REAL},
      {"boolean", BF_SF_BOOL},
      {"date", BF_SF_DATE},
      {"time", BF_SF_TIME},
      {"timestamp_ntz", BF_SF_TS_NTZ},
      {"timestamp_ltz", BF_SF_TS_LTZ},
      {"timestamp_tz", BF_SF_TS_TZ},
      {"variant", BF_SF_JSON},
      {"object", BF_SF_JSON},
      {"array", BF_SF_JSON},
      {"binary", BF_SF_BINARY},
      {"text", BF_SF_TEXT},
  };
  if (!type) return BF_SF_TEXT;
  if (!strcasecmp(type, "fixed") || !strcasecmp(type, "number"))
    return scale > 0 ? BF_SF_DECIMAL : BF_SF_INT;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcasecmp(type, names[i].name)) return names[i].kind;
  return BF_SF_TEXT;
}

/* Splits "[-]S[.F]" into whole seconds (floored) and the fraction digits
 * (at most 9, trailing zeros dropped), so a time before the epoch is
 * "-1.25" = -2 s + 0.75. */
static int split_seconds(const char *s, size_t n, long long *secs, char frac[10]) {
  bool neg = n && s[0] == '-';
  size_t i = neg ? 1 : 0, start = i;
  long long whole = 0;
  while (i < n && isdigit((unsigned char)s[i])) {
    if (whole > 1000000000000000LL) return -1;
    whole = whole * 10 + (s[i++] - '0');
  }
  if (i == start) return -1;
  long long nanos = 0;
  int digits = 0;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && isdigit((unsigned char)s[i])) {
      if (digits < 9) {
        nanos = nanos * 10 + (s[i] - '0');
        digits++;
      }
      i++;
    }
  }
  if (i != n) return -1;
  for (; digits < 9; digits++) nanos *= 10;
  if (neg) {
    whole = -whole;
    if (nanos) {
      whole -= 1;
      nanos = 1000000000LL - nanos;
    }
  }
  *secs = whole;
  bf_text_fraction(frac, nanos);
  return 0;
}

static int read_timestamp(enum bf_sf_kind k, const char *s, size_t n, struct bf_rowbuf *rb,
                          struct bf_value *v) {
  long long offset_min = 0;
  size_t secs_len = n;
  if (k == BF_SF_TS_TZ) {
    const char *sp = memchr(s, ' ', n);
    if (!sp) return -1;
    secs_len = (size_t)(sp - s);
    char tmp[16];
    size_t ol = n - secs_len - 1;
    if (ol == 0 || ol >= sizeof tmp) return -1;
    memcpy(tmp, sp + 1, ol);
    tmp[ol] = '\0';
    char *end;
    offset_min = strtoll(tmp, &end, 10) - 1440;
    if (*end || offset_min < -1440 || offset_min > 1440) return -1;
  }
  long long secs;
  char frac[10];
  if (split_seconds(s, secs_len, &secs, frac)) return -1;
  secs += offset_min * 60; /* wall clock at the value's own offset */
  char out[64];
  size_t len = bf_text_datetime(out, sizeof out - 8, secs, frac);
  if (k == BF_SF_TS_LTZ) {
    out[len++] = 'Z';
  } else if (k == BF_SF_TS_TZ) {
    long long a = offset_min < 0 ? -offset_min : offset_min;
    len += (size_t)snprintf(out + len, sizeof out - len, "%c%02lld:%02lld",
                            offset_min < 0 ? '-' : '+', a / 60, a % 60);
  }
  bf_cell_text(out, len, rb, v);
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int bf_sf_cell(enum bf_sf_kind k, const char *s, size_t n, struct bf_rowbuf *rb,
               struct bf_value *v) {
  switch (k) {
  case BF_SF_INT: return bf_cell_int(s, n, rb, v);
  case BF_SF_REAL: return bf_cell_real(s, n, v);
  case BF_SF_BOOL: return bf_cell_bool(s, n, v);
  case BF_SF_DATE: {
    long long days;
    char frac[10];
    if (split_seconds(s, n, &days, frac) || *frac) return -1;
    char out[32];
    bf_cell_text(out, bf_text_date(out, sizeof out, days), rb, v);
    return 0;
  }
  case BF_SF_TIME: {
    long long secs;
    char frac[10];
    if (split_seconds(s, n, &secs, frac) || secs < 0 || secs >= 86400) return -1;
    char out[32];
    bf_cell_text(out, bf_text_clock(out, sizeof out, secs, frac), rb, v);
    return 0;
  }
  case BF_SF_TS_NTZ:
  case BF_SF_TS_LTZ:
  case BF_SF_TS_TZ: return read_timestamp(k, s, n, rb, v);
  case BF_SF_BINARY: {
    if (n % 2) return -1;
    char *dst = (char *)bf_rowbuf_put_bytes(rb, s, n / 2); /* reserve; overwritten below */
    for (size_t i = 0; i < n / 2; i++) {
      int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
      if (hi < 0 || lo < 0) return -1;
      dst[i] = (char)(hi << 4 | lo);
    }
    v->type = BF_BLOB;
    v->len = (uint32_t)(n / 2);
    v->u.s = dst;
    return 0;
  }
  case BF_SF_DECIMAL:
  case BF_SF_JSON:
  case BF_SF_TEXT: bf_cell_text(s, n, rb, v); return 0;
  }
  return -1;
}

/* Typed values from text cells; ISO 8601 text from epoch numbers. */
#include "sources/cells.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void bf_cell_text(const char *s, size_t n, struct bf_rowbuf *rb, struct bf_value *v) {
  v->type = BF_TEXT;
  v->len = (uint32_t)n;
  v->u.s = rb ? bf_rowbuf_put_bytes(rb, s, n) : s;
}

#define EXACT_LIMIT 9007199254740992LL /* 2^53 */

int bf_cell_int(const char *s, size_t n, struct bf_rowbuf *rb, struct bf_value *v) {
  size_t i = (n && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == n) return -1;
  for (size_t k = i; k < n; k++)
    if (!isdigit((unsigned char)s[k])) return -1;
  char tmp[32];
  if (n < sizeof tmp) {
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    long long x = strtoll(tmp, NULL, 10);
    if (errno == 0 && x <= EXACT_LIMIT && x >= -EXACT_LIMIT) {
      v->type = BF_INT;
      v->u.i = x;
      return 0;
    }
  }
  bf_cell_text(s, n, rb, v);
  return 0;
}

int bf_cell_real(const char *s, size_t n, struct bf_value *v) {
  char tmp[64];
  if (n == 0 || n >= sizeof tmp) return -1;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *end;
  v->u.f = strtod(tmp, &end);
  if (*end) return -1;
  v->type = BF_FLOAT;
  return 0;
}

int bf_cell_bool(const char *s, size_t n, struct bf_value *v) {
  v->type = BF_BOOL;
  if ((n == 4 && !strncasecmp(s, "true", 4)) || (n == 1 && s[0] == '1'))
    v->u.i = 1;
  else if ((n == 5 && !strncasecmp(s, "false", 5)) || (n == 1 && s[0] == '0'))
    v->u.i = 0;
  else
    return -1;
  return 0;
}

/* Days since 1970-01-01 -> civil date (Howard Hinnant's days_from_civil
 * inverse): exact for every day a 64-bit count holds, no time zone tables. */
static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d) {
  z += 719468;
  long long era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long long yy = (long long)yoe + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

static long long floor_div(long long a, long long b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

static size_t clamp(int n, size_t cap) {
  return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

size_t bf_text_date(char *out, size_t cap, long long days) {
  long long y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  return clamp(snprintf(out, cap, "%04lld-%02u-%02u", y, m, d), cap);
}

size_t bf_text_clock(char *out, size_t cap, long long secs_of_day, const char *frac) {
  return clamp(snprintf(out, cap, "%02lld:%02lld:%02lld%s%s", secs_of_day / 3600,
                        secs_of_day / 60 % 60, secs_of_day % 60, *frac ? "." : "", frac),
               cap);
}

size_t bf_text_datetime(char *out, size_t cap, long long secs, const char *frac) {
  long long days = floor_div(secs, 86400);
  size_t n = bf_text_date(out, cap, days);
  if (n + 2 >= cap) return n;
  out[n++] = 'T';
  return n + bf_text_clock(out + n, cap - n, secs - days * 86400, frac);
}

void bf_text_fraction(char frac[10], long long nanos) {
  snprintf(frac, 10, "%09lld", nanos);
  int len = 9;
  while (len > 0 && frac[len - 1] == '0') len--;
  frac[len] = '\0';
}

/* Skips whitespace and comments (--, #, and block comments) from p. */
static const char *skip_blank(const char *p) {
  for (;;) {
    while (isspace((unsigned char)*p)) p++;
    if ((p[0] == '-' && p[1] == '-') || p[0] == '#') {
      while (*p && *p != '\n') p++;
    } else if (p[0] == '/' && p[1] == '*') {
      const char *end = strstr(p + 2, "*/");
      if (!end) return p + strlen(p);
      p = end + 2;
    } else {
      return p;
    }
  }
}

bool bf_sql_single_query(const char *sql) {
  const char *p = skip_blank(sql);
  while (*p == '(') p = skip_blank(p + 1);
  if (strncasecmp(p, "select", 6) != 0 && strncasecmp(p, "with", 4) != 0) return false;
  while (*p) {
    const char *q = skip_blank(p);
    if (q != p) {
      p = q;
      continue;
    }
    if (*p == '\'' || *p == '"' || *p == '`') {
      char quote = *p++;
      while (*p && *p != quote) p += (*p == '\\' && p[1]) ? 2 : 1;
      if (*p) p++;
      continue;
    }
    if (*p == ';') {
      for (p++; *(p = skip_blank(p)) == ';';) p++;
      return *p == '\0';
    }
    p++;
  }
  return true;
}

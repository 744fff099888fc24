#include "server/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct field_spec {
  const char *name;
  int min, max;
  const char *const *names; /* names[i] stands for min + i; NULL when none */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const weekday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

/* Weekday accepts 7 (Sunday) and is folded to 0 after parsing. */
static const struct field_spec fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day of week", 0, 7, weekday_names},
};

static const struct {
  const char *name, *expansion;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* Reads a number or a name at *p; advances *p. Returns 0 or -1. */
static int parse_value(const char **p, const struct field_spec *f, int *out) {
  const char *s = *p;
  if (isdigit((unsigned char)*s)) {
    long v = 0;
    while (isdigit((unsigned char)*s)) {
      v = v * 10 + (*s - '0');
      if (v > 1000) return -1;
      s++;
    }
    *p = s;
    *out = (int)v;
    return 0;
  }
  if (f->names && isalpha((unsigned char)s[0])) {
    for (int i = 0; f->names[i]; i++) {
      if (!strncasecmp(s, f->names[i], 3) && !isalpha((unsigned char)s[3])) {
        *p = s + 3;
        *out = f->min + i;
        return 0;
      }
    }
  }
  return -1;
}

static int field_error(struct bf_error *err, const char *expr, const struct field_spec *f,
                       const char *item, size_t item_len, const char *why) {
  return bf_error_set(err, BF_E_CONFIG, "cron expression \"%s\": %s '%.*s' %s", expr, f->name,
                      (int)item_len, item, why);
}

/* Parses one field (text of length len) into a bit set. */
static int parse_field(const char *expr, const char *text, size_t len, const struct field_spec *f,
                       uint64_t *bits, struct bf_error *err) {
  *bits = 0;
  char buf[128];
  if (len == 0 || len >= sizeof buf) return field_error(err, expr, f, text, len, "is not valid");
  memcpy(buf, text, len);
  buf[len] = 0;
  char *save = NULL;
  for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    const char *p = item;
    int lo, hi, step = 1;
    bool star = false, ranged = false;
    if (*p == '*') {
      star = true;
      lo = f->min;
      hi = f->max == 7 ? 6 : f->max; /* '*' weekdays: 0-6 */
      p++;
    } else {
      if (parse_value(&p, f, &lo))
        return field_error(err, expr, f, item, strlen(item), "is not a number or name");
      hi = lo;
      if (*p == '-') {
        p++;
        ranged = true;
        if (parse_value(&p, f, &hi))
          return field_error(err, expr, f, item, strlen(item), "has a range without an end");
      }
    }
    if (*p == '/') {
      p++;
      long s = 0;
      if (!isdigit((unsigned char)*p))
        return field_error(err, expr, f, item, strlen(item), "has a step that is not a number");
      while (isdigit((unsigned char)*p) && s <= 1000) s = s * 10 + (*p++ - '0');
      if (s < 1 || s > f->max)
        return field_error(err, expr, f, item, strlen(item), "has a step out of range");
      step = (int)s;
      if (!star && !ranged) hi = f->max == 7 ? 6 : f->max; /* "5/10": 5 to the maximum */
    }
    if (*p) return field_error(err, expr, f, item, strlen(item), "is not valid");
    if (lo < f->min || hi > f->max) {
      char why[64];
      snprintf(why, sizeof why, "is out of range %d-%d", f->min, f->max);
      return field_error(err, expr, f, item, strlen(item), why);
    }
    if (lo > hi)
      return field_error(err, expr, f, item, strlen(item), "is a range that ends before it starts");
    for (int v = lo; v <= hi; v += step) *bits |= 1ULL << v;
  }
  return 0;
}

int bf_cron_parse(const char *expr, struct bf_cron *out, struct bf_error *err) {
  memset(out, 0, sizeof *out);
  const char *text = expr;
  while (*text == ' ' || *text == '\t') text++;
  if (*text == '@') {
    size_t n = strcspn(text, " \t");
    const char *rest = text + n;
    while (*rest == ' ' || *rest == '\t') rest++;
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
      if (strlen(macros[i].name) == n && !strncasecmp(text, macros[i].name, n) && !*rest)
        return bf_cron_parse(macros[i].expansion, out, err);
    return bf_error_set(err, BF_E_CONFIG,
                        "cron expression \"%s\" is not known; expected five fields or one of "
                        "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly",
                        expr);
  }
  const char *start[5];
  size_t len[5];
  size_t n = 0;
  for (const char *c = text; *c;) {
    while (*c == ' ' || *c == '\t') c++;
    if (!*c) break;
    const char *b = c;
    while (*c && *c != ' ' && *c != '\t') c++;
    if (n < 5) {
      start[n] = b;
      len[n] = (size_t)(c - b);
    }
    n++;
  }
  if (n != 5)
    return bf_error_set(err, BF_E_CONFIG,
                        "cron expression \"%s\" has %zu fields; expected 5 (minute hour "
                        "day-of-month month day-of-week), e.g. \"0 * * * *\"",
                        expr, n);
  uint64_t bits[5];
  for (int i = 0; i < 5; i++) {
    int rc = parse_field(expr, start[i], len[i], &fields[i], &bits[i], err);
    if (rc) return rc;
  }
  out->minutes = bits[0];
  out->hours = (uint32_t)bits[1];
  out->days = (uint32_t)bits[2];
  out->months = (uint16_t)bits[3];
  if (bits[4] & (1ULL << 7)) bits[4] |= 1; /* 7 is Sunday */
  out->weekdays = (uint8_t)(bits[4] & 0x7f);
  out->days_star = start[2][0] == '*';
  out->weekdays_star = start[4][0] == '*';
  return 0;
}

static void to_tm(time_t t, bool utc, struct tm *tm) {
  if (utc)
    gmtime_r(&t, tm);
  else
    localtime_r(&t, tm);
}

static time_t from_tm(struct tm *tm, bool utc) {
  tm->tm_isdst = -1;
  return utc ? timegm(tm) : mktime(tm);
}

static bool day_matches(const struct bf_cron *c, const struct tm *tm) {
  bool dom = c->days & (1U << tm->tm_mday);
  bool dow = c->weekdays & (1U << tm->tm_wday);
  if (c->days_star || c->weekdays_star) return dom && dow;
  return dom || dow;
}

long long bf_cron_next(const struct bf_cron *c, long long after_ms, bool utc) {
  time_t t = (time_t)(after_ms >= 0 ? after_ms / 1000 : (after_ms - 999) / 1000);
  t = t - ((t % 60) + 60) % 60 + 60; /* next whole minute strictly after */
  struct tm tm;
  to_tm(t, utc, &tm);
  int last_year = tm.tm_year + 8;
  /* Each step moves to the start of the next month, day, hour or minute, so
   * a year takes at most a few thousand steps. */
  for (int steps = 0; steps < 1000000; steps++) {
    if (tm.tm_year > last_year) return -1;
    time_t next;
    if (!(c->months & (1U << (tm.tm_mon + 1)))) {
      tm.tm_mon++;
      tm.tm_mday = 1;
      tm.tm_hour = tm.tm_min = 0;
    } else if (!day_matches(c, &tm)) {
      tm.tm_mday++;
      tm.tm_hour = tm.tm_min = 0;
    } else if (!(c->hours & (1U << tm.tm_hour))) {
      tm.tm_hour++;
      tm.tm_min = 0;
    } else if (!(c->minutes & (1ULL << tm.tm_min))) {
      tm.tm_min++;
    } else {
      return (long long)t * 1000;
    }
    tm.tm_sec = 0;
    next = from_tm(&tm, utc);
    /* A daylight-saving change can map the new wall time back before t:
     * never go backwards. */
    if (next <= t) next = t + 60;
    t = next;
    to_tm(t, utc, &tm);
  }
  return -1;
}

/* Tests for src/server/cron.c: parsing five-field cron expressions and
 * computing the next time one fires. Times are UTC unless a test sets TZ. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/cron.h"

/* Unix milliseconds of a UTC wall time. */
static long long utc_ms(int year, int mon, int day, int hour, int min) {
  struct tm tm = {
      .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day, .tm_hour = hour, .tm_min = min};
  return (long long)timegm(&tm) * 1000;
}

static struct bf_cron parse_ok(const char *expr) {
  struct bf_cron c;
  struct bf_error err = {0};
  int rc = bf_cron_parse(expr, &c, &err);
  cr_assert_eq(rc, 0, "\"%s\": unexpected error: %s", expr, err.msg);
  return c;
}

static void assert_next(const char *expr, long long after, long long expected) {
  struct bf_cron c = parse_ok(expr);
  long long got = bf_cron_next(&c, after, true);
  char g[32] = "never", e[32] = "never";
  time_t t;
  struct tm tm;
  if (got >= 0) {
    t = (time_t)(got / 1000);
    strftime(g, sizeof g, "%Y-%m-%d %H:%M:%S %a", gmtime_r(&t, &tm));
  }
  if (expected >= 0) {
    t = (time_t)(expected / 1000);
    strftime(e, sizeof e, "%Y-%m-%d %H:%M:%S %a", gmtime_r(&t, &tm));
  }
  cr_assert_eq(got, expected, "\"%s\": next is %s, expected %s", expr, g, e);
}

static void assert_bad(const char *expr, const char *fragment) {
  struct bf_cron c;
  struct bf_error err = {0};
  int rc = bf_cron_parse(expr, &c, &err);
  cr_assert_eq(rc, BF_E_CONFIG, "\"%s\" should not parse", expr);
  cr_assert_not_null(strstr(err.msg, fragment), "\"%s\": message '%s' lacks '%s'", expr, err.msg,
                     fragment);
}

Test(cron, every_minute_is_strictly_after) {
  assert_next("* * * * *", utc_ms(2024, 1, 1, 0, 0), utc_ms(2024, 1, 1, 0, 1));
  assert_next("* * * * *", utc_ms(2024, 1, 1, 0, 0) + 59999, utc_ms(2024, 1, 1, 0, 1));
}

Test(cron, steps_ranges_and_lists) {
  assert_next("*/15 * * * *", utc_ms(2024, 1, 1, 0, 7) + 30000, utc_ms(2024, 1, 1, 0, 15));
  assert_next("*/15 * * * *", utc_ms(2024, 1, 1, 0, 15), utc_ms(2024, 1, 1, 0, 30));
  assert_next("*/15 * * * *", utc_ms(2024, 1, 1, 0, 45), utc_ms(2024, 1, 1, 1, 0));
  assert_next("10-50/20 * * * *", utc_ms(2024, 1, 1, 0, 31), utc_ms(2024, 1, 1, 0, 50));
  assert_next("10-50/20 * * * *", utc_ms(2024, 1, 1, 0, 50), utc_ms(2024, 1, 1, 1, 10));
  assert_next("5/10 * * * *", utc_ms(2024, 1, 1, 0, 46), utc_ms(2024, 1, 1, 0, 55));
  assert_next("0,30 9-17 * * *", utc_ms(2024, 1, 1, 17, 30), utc_ms(2024, 1, 2, 9, 0));
  assert_next("0,30 9-17 * * *", utc_ms(2024, 1, 1, 12, 10), utc_ms(2024, 1, 1, 12, 30));
  assert_next("15 3 * * *", utc_ms(2024, 12, 31, 4, 0), utc_ms(2025, 1, 1, 3, 15));
}

Test(cron, names_and_weekdays) {
  /* 2024-01-05 is a Friday. */
  assert_next("0 9 * * mon-fri", utc_ms(2024, 1, 5, 10, 0), utc_ms(2024, 1, 8, 9, 0));
  assert_next("0 9 * * MON-FRI", utc_ms(2024, 1, 5, 8, 0), utc_ms(2024, 1, 5, 9, 0));
  assert_next("0 0 1 jan,jul *", utc_ms(2024, 2, 1, 0, 0), utc_ms(2024, 7, 1, 0, 0));
  assert_next("0 0 1 Jul-Aug *", utc_ms(2024, 7, 1, 0, 0), utc_ms(2024, 8, 1, 0, 0));
  /* 7 is Sunday, like 0. 2024-01-07 is a Sunday. */
  assert_next("0 0 * * 7", utc_ms(2024, 1, 1, 0, 0), utc_ms(2024, 1, 7, 0, 0));
  assert_next("0 0 * * 0", utc_ms(2024, 1, 1, 0, 0), utc_ms(2024, 1, 7, 0, 0));
  assert_next("0 0 * * sun", utc_ms(2024, 1, 1, 0, 0), utc_ms(2024, 1, 7, 0, 0));
  assert_next("0 0 * * 5-7", utc_ms(2024, 1, 1, 0, 0), utc_ms(2024, 1, 5, 0, 0));
}

Test(cron, day_of_month_or_day_of_week) {
  /* Both restricted: either matches (Friday the 5th comes before the 13th). */
  assert_next("0 12 13 * fri", utc_ms(2024, 1, 1, 0, 0), utc_ms(2024, 1, 5, 12, 0));
  /* Day of month starts with '*': both must match (odd days that are Saturdays). */
  assert_next("0 12 */2 * sat", utc_ms(2024, 1, 1, 0, 0), utc_ms(2024, 1, 13, 12, 0));
  /* Day of week '*': day of month alone. */
  assert_next("30 2 1 * *", utc_ms(2024, 1, 15, 0, 0), utc_ms(2024, 2, 1, 2, 30));
}

Test(cron, leap_day_and_impossible_dates) {
  assert_next("0 0 29 2 *", utc_ms(2023, 3, 1, 0, 0), utc_ms(2024, 2, 29, 0, 0));
  assert_next("0 0 31 * *", utc_ms(2024, 4, 1, 0, 0), utc_ms(2024, 5, 31, 0, 0));
  assert_next("0 0 30 2 *", utc_ms(2024, 1, 1, 0, 0), -1);
}

Test(cron, macros) {
  assert_next("@hourly", utc_ms(2024, 1, 1, 0, 1), utc_ms(2024, 1, 1, 1, 0));
  assert_next("@daily", utc_ms(2024, 1, 1, 0, 1), utc_ms(2024, 1, 2, 0, 0));
  assert_next("@midnight", utc_ms(2024, 1, 1, 0, 1), utc_ms(2024, 1, 2, 0, 0));
  assert_next("@weekly", utc_ms(2024, 1, 1, 0, 1), utc_ms(2024, 1, 7, 0, 0));
  assert_next("@monthly", utc_ms(2024, 1, 1, 0, 1), utc_ms(2024, 2, 1, 0, 0));
  assert_next("@yearly", utc_ms(2024, 1, 1, 0, 1), utc_ms(2025, 1, 1, 0, 0));
  assert_next("@annually", utc_ms(2024, 1, 1, 0, 1), utc_ms(2025, 1, 1, 0, 0));
  assert_next("  0   *  * * *  ", utc_ms(2024, 1, 1, 0, 1), utc_ms(2024, 1, 1, 1, 0));
}

Test(cron, errors_name_the_field) {
  assert_bad("60 * * * *", "minute '60' is out of range 0-59");
  assert_bad("* 24 * * *", "hour '24' is out of range 0-23");
  assert_bad("* * 0 * *", "day of month '0' is out of range 1-31");
  assert_bad("* * * 13 *", "month '13' is out of range 1-12");
  assert_bad("* * * * 8", "day of week '8' is out of range 0-7");
  assert_bad("*/0 * * * *", "minute '*/0' has a step out of range");
  assert_bad("5-1 * * * *", "ends before it starts");
  assert_bad("abc * * * *", "minute 'abc' is not a number or name");
  assert_bad("* * * foo *", "month 'foo' is not a number or name");
  assert_bad("* * * * mon-", "has a range without an end");
  assert_bad("1x * * * *", "minute '1x' is not valid");
  assert_bad("* * * *", "has 4 fields; expected 5");
  assert_bad("* * * * * *", "has 6 fields; expected 5");
  assert_bad("@reboot", "is not known");
  assert_bad("", "has 0 fields");
}

Test(cron, local_time_zone) {
  setenv("TZ", "America/New_York", 1);
  tzset();
  struct bf_cron c = parse_ok("0 9 * * *");
  long long after = utc_ms(2024, 6, 1, 0, 0); /* 20:00 EDT on May 31 */
  long long next = bf_cron_next(&c, after, false);
  cr_assert_eq(next, utc_ms(2024, 6, 1, 13, 0), "09:00 EDT is 13:00 UTC");
  /* 02:30 does not exist on 2024-03-10 (clocks go from 02:00 to 03:00):
   * the computation moves on without looping or going back in time. */
  c = parse_ok("30 2 * * *");
  next = bf_cron_next(&c, utc_ms(2024, 3, 10, 5, 0), false);
  cr_assert_gt(next, utc_ms(2024, 3, 10, 5, 0));
  time_t t = (time_t)(next / 1000);
  struct tm tm;
  localtime_r(&t, &tm);
  cr_assert_eq(tm.tm_hour, 2);
  cr_assert_eq(tm.tm_min, 30);
}

/* Five-field cron expressions ("minute hour day-of-month month day-of-week")
 * and the next time one fires.
 *
 * Each field is a comma-separated list of items: `*`, `N`, `A-B`, each
 * optionally followed by `/STEP` (every 15 minutes is `*` then `/15`;
 * `10-50/20`; `5/10` = 5 to the field's maximum in steps of 10). Months take jan..dec and weekdays
 * sun..sat (case-insensitive, also in ranges); weekday 7 is Sunday too.
 * `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and
 * `@hourly` stand for their usual five fields.
 *
 * Day matching follows Vixie cron, as crontab(5) documents: when both the
 * day-of-month and day-of-week fields are restricted (neither starts with
 * `*`), a day matches if either does; otherwise both must. */
#ifndef BF_CRON_H
#define BF_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

struct bf_cron {
  uint64_t minutes; /* bit m set: minute m (0-59) matches */
  uint32_t hours;   /* bit h: hour h (0-23) */
  uint32_t days;    /* bit d: day of month d (1-31) */
  uint16_t months;  /* bit m: month m (1-12) */
  uint8_t weekdays; /* bit d: weekday d (0 = Sunday .. 6) */
  bool days_star;   /* day-of-month field started with '*' */
  bool weekdays_star;
};

/* Parses expr into *out. On error returns BF_E_CONFIG with a message that
 * quotes the expression and names the field ("cron expression \"0 25 * * *\":
 * hour 25 is out of range 0-23"); callers prefix the location. */
int bf_cron_parse(const char *expr, struct bf_cron *out, struct bf_error *err);

/* The first minute strictly after after_ms (unix milliseconds) at which c
 * fires, as unix milliseconds; in UTC when utc, else in the local time zone
 * (TZ). Returns -1 when c never fires in the next eight years (30 February). */
long long bf_cron_next(const struct bf_cron *c, long long after_ms, bool utc);

#endif

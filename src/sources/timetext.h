/* Dates and times as ISO 8601 text, for warehouses whose APIs send them as
 * numbers since the epoch (Snowflake's jsonv2, BigQuery's int64 timestamps).
 * Each writes into out[cap] (NUL-terminated) and returns the length. */
#ifndef BF_TIMETEXT_H
#define BF_TIMETEXT_H

#include <stddef.h>

/* "YYYY-MM-DD" for days since 1970-01-01 (proleptic Gregorian). */
size_t bf_text_date(char *out, size_t cap, long long days);
/* "HH:MM:SS[.frac]" for 0 <= secs_of_day < 86400; frac = fraction digits or "". */
size_t bf_text_clock(char *out, size_t cap, long long secs_of_day, const char *frac);
/* "YYYY-MM-DDTHH:MM:SS[.frac]" for secs since the epoch (any sign). */
size_t bf_text_datetime(char *out, size_t cap, long long secs, const char *frac);
/* Writes nanos (0..999999999) as fraction digits without trailing zeros
 * into frac[10] ("" for 0). */
void bf_text_fraction(char frac[10], long long nanos);

#endif

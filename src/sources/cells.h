/* Reading the text cells of HTTP warehouses (Snowflake's jsonv2 and
 * BigQuery's f/v rows send every value as a JSON string) into typed values,
 * and dates and times as ISO 8601 text from numbers since the epoch. */
#ifndef BF_CELLS_H
#define BF_CELLS_H

#include <stddef.h>

#include "sources/source.h"

/* Each reads s[0..n) into v (text bytes copied into rb; with rb NULL the
 * text points at s) and returns 0, or -1 when s is not of the type. */
/* Decimal integer: BF_INT up to +-2^53, beyond that the exact digits as
 * BF_TEXT, so no JSON reader downstream rounds them (design.md §9). */
int bf_cell_int(const char *s, size_t n, struct bf_rowbuf *rb, struct bf_value *v);
/* Float text strtod reads ("1.5", "NaN", "Infinity"). */
int bf_cell_real(const char *s, size_t n, struct bf_value *v);
/* "true"/"false" (any case) or "1"/"0". */
int bf_cell_bool(const char *s, size_t n, struct bf_value *v);
void bf_cell_text(const char *s, size_t n, struct bf_rowbuf *rb, struct bf_value *v);

/* The functions below write into out[cap] (NUL-terminated) and return the
 * length. */

/* "YYYY-MM-DD" for days since 1970-01-01 (proleptic Gregorian). */
size_t bf_text_date(char *out, size_t cap, long long days);
/* "HH:MM:SS[.frac]" for 0 <= secs_of_day < 86400; frac = fraction digits or "". */
size_t bf_text_clock(char *out, size_t cap, long long secs_of_day, const char *frac);
/* "YYYY-MM-DDTHH:MM:SS[.frac]" for secs since the epoch (any sign). */
size_t bf_text_datetime(char *out, size_t cap, long long secs, const char *frac);
/* Writes nanos (0..999999999) as fraction digits without trailing zeros
 * into frac[10] ("" for 0). */
void bf_text_fraction(char frac[10], long long nanos);

/* True when sql is one query: it starts (after comments and parentheses)
 * with SELECT or WITH and holds no ';' but trailing ones outside quotes and
 * comments. The HTTP warehouses run whatever they are sent, even a script
 * (BigQuery) or DML, so the model's SQL is held to a query here; the role
 * or service account should still be read-only. */
bool bf_sql_single_query(const char *sql);

#endif

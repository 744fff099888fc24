/* One row per warehouse type. Relative dates are computed by the warehouse
 * at query time, so a saved segment "in the last 30 days" stays relative. */
#include <string.h>

#include "engine/segment.h"

static const struct bf_segment_dialect dialects[] = {
    /* julianday() reads both 'YYYY-MM-DD HH:MM:SS' and ISO 8601 text. */
    {"sqlite", '"', false, " ESCAPE '\\'", "julianday(%s) >= julianday('now') - (%s)", true},
    {"postgres", '"', false, " ESCAPE '\\'", "%s >= now() - make_interval(days => (%s)::int)",
     true},
    {"snowflake", '"', true, " ESCAPE '\\\\'", "%s >= DATEADD(day, -(%s), CURRENT_TIMESTAMP())",
     false},
    /* BigQuery's LIKE takes '\' as its escape and has no ESCAPE clause. */
    {"bigquery", '`', true, "", "%s >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL (%s) DAY)",
     false},
};

const struct bf_segment_dialect *bf_segment_dialect_find(const char *type) {
  for (size_t i = 0; type && i < sizeof dialects / sizeof dialects[0]; i++)
    if (!strcmp(dialects[i].type, type)) return &dialects[i];
  return NULL;
}

void bf_segment_quote_ident(const struct bf_segment_dialect *d, struct bf_buf *b,
                            const char *ident) {
  bf_buf_putc(b, d->quote);
  for (const char *s = ident; *s; s++) {
    if (*s == d->quote) bf_buf_putc(b, d->quote);
    bf_buf_putc(b, *s);
  }
  bf_buf_putc(b, d->quote);
}

void bf_segment_quote_string(const struct bf_segment_dialect *d, struct bf_buf *b, const char *s) {
  bf_buf_putc(b, '\'');
  for (; *s; s++) {
    if (*s == '\'') bf_buf_putc(b, '\'');
    if (*s == '\\' && d->backslash_in_strings) bf_buf_putc(b, '\\');
    bf_buf_putc(b, *s);
  }
  bf_buf_putc(b, '\'');
}

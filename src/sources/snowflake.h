/* Internals of the Snowflake warehouse shared by snowflake.c (the SQL API
 * client) and snowflake_types.c (values of the jsonv2 result format), and
 * exposed for the unit tests. */
#ifndef BF_SNOWFLAKE_H
#define BF_SNOWFLAKE_H

#include <stddef.h>

#include "sources/source.h"

/* How a column of resultSetMetaData.rowType is read. */
enum bf_sf_kind {
  BF_SF_TEXT,    /* text and anything unknown: kept as sent */
  BF_SF_INT,     /* fixed, scale 0: int, or exact digits beyond 2^53 */
  BF_SF_DECIMAL, /* fixed, scale > 0: exact decimal text */
  BF_SF_REAL,
  BF_SF_BOOL,
  BF_SF_DATE,   /* days since 1970-01-01 -> YYYY-MM-DD */
  BF_SF_TIME,   /* seconds since midnight -> HH:MM:SS[.f] */
  BF_SF_TS_NTZ, /* seconds since epoch, wall clock -> YYYY-MM-DDTHH:MM:SS[.f] */
  BF_SF_TS_LTZ, /* seconds since epoch, an instant -> ...Z */
  BF_SF_TS_TZ,  /* "seconds offset" (offset = minutes + 1440) -> ...+HH:MM */
  BF_SF_JSON,   /* variant, object, array: JSON text */
  BF_SF_BINARY  /* hex -> blob */
};

/* The kind for a rowType entry's type (any case) and scale. */
enum bf_sf_kind bf_sf_kind_of(const char *type, long long scale);

/* Reads the cell text s[0..n) of a column of kind k into v; text bytes are
 * copied into rb. Returns 0, or -1 when s is not what the kind promises. */
int bf_sf_cell(enum bf_sf_kind k, const char *s, size_t n, struct bf_rowbuf *rb,
               struct bf_value *v);

#endif

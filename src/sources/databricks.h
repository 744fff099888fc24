/* Internals of the Databricks warehouse shared by databricks.c (the SQL
 * Statement Execution API client) and databricks_types.c (values of the
 * JSON_ARRAY format), exposed for the unit tests. */
#ifndef BF_DATABRICKS_H
#define BF_DATABRICKS_H

#include <stddef.h>

#include "sources/source.h"

/* How a column of manifest.schema.columns is read, by its type_name. */
enum bf_dbx_kind {
  BF_DBX_TEXT,    /* STRING, CHAR, DATE, TIMESTAMP_NTZ, INTERVAL, ...: as sent */
  BF_DBX_INT,     /* BYTE, SHORT, INT, LONG: int, or exact digits beyond 2^53 */
  BF_DBX_DECIMAL, /* exact decimal text */
  BF_DBX_REAL,    /* FLOAT, DOUBLE */
  BF_DBX_BOOL,
  BF_DBX_TIMESTAMP, /* an instant: ISO 8601 in UTC, "...Z" */
  BF_DBX_JSON,      /* ARRAY, MAP, STRUCT: JSON text as sent */
  BF_DBX_BINARY     /* base64 -> blob */
};

/* The kind for a column's type_name (any case). */
enum bf_dbx_kind bf_dbx_kind_of(const char *type_name);

/* Reads the cell text s[0..n) of a column of kind k into v; text bytes are
 * copied into rb. Returns 0, or -1 when s is not what the kind promises. */
int bf_dbx_cell(enum bf_dbx_kind k, const char *s, size_t n, struct bf_rowbuf *rb,
                struct bf_value *v);

#endif

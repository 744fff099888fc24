/* Internals of the BigQuery warehouse shared by bigquery.c (the REST
 * client) and bigquery_types.c (values of f/v rows), exposed for the unit
 * tests. */
#ifndef BF_BIGQUERY_H
#define BF_BIGQUERY_H

#include <jansson.h>

#include "sources/source.h"

enum bf_bq_kind {
  BF_BQ_TEXT, /* STRING, DATE, TIME, DATETIME, GEOGRAPHY, JSON, ...: as sent */
  BF_BQ_INT,  /* INT64: int, or exact digits beyond 2^53 */
  BF_BQ_NUMERIC,
  BF_BQ_FLOAT,
  BF_BQ_BOOL,
  BF_BQ_TIMESTAMP, /* microseconds since the epoch -> ...Z */
  BF_BQ_BYTES,     /* base64 -> blob */
  BF_BQ_NESTED     /* RECORD/STRUCT or mode REPEATED: JSON text */
};

/* The kind of a schema field (its "type" and "mode"). */
enum bf_bq_kind bf_bq_kind_of(const json_t *field);

/* Reads the cell cell (the "v" of an f/v row: a string, null, or for
 * nested kinds an object/array) of schema field field into v; bytes copied
 * into rb, nested values written as JSON with field names. Returns 0, or -1
 * when the cell does not match its type. */
int bf_bq_cell(const json_t *field, enum bf_bq_kind k, const json_t *cell, struct bf_rowbuf *rb,
               struct bf_value *v);

#endif

/* The CSV of Salesforce Bulk API 2.0 job results (salesforce.c), parsed
 * from whatever the server sent: RFC 4180 quoting ("" inside quotes),
 * CRLF or LF rows. Internal to the Salesforce destination; exposed for its
 * fuzz target (tests/fuzz/fuzz_sf_csv.c). */
#ifndef BF_SF_CSV_H
#define BF_SF_CSV_H

#include <stddef.h>

/* A parsed CSV document: fields unescaped into one buffer. */
struct bf_sf_csv {
  char *data;
  size_t n_rows, n_cols_max;
  size_t *row_start; /* index into fields of each row's first field; [n_rows] = total */
  char **fields;     /* NUL-terminated, point into data */
  size_t n_fields;
};

/* Parses n bytes of s (no NUL needed) into c; free with bf_sf_csv_free. */
void bf_sf_csv_parse(struct bf_sf_csv *c, const char *s, size_t n);
void bf_sf_csv_free(struct bf_sf_csv *c);
/* Fields of row; the field at (row, col) or NULL past the row's end. */
size_t bf_sf_csv_cols(const struct bf_sf_csv *c, size_t row);
const char *bf_sf_csv_get(const struct bf_sf_csv *c, size_t row, size_t col);
/* Column of the header row named name, SIZE_MAX when none. */
size_t bf_sf_csv_col(const struct bf_sf_csv *c, const char *name);

#endif

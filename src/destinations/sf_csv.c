/* Salesforce Bulk API 2.0 result CSV (sf_csv.h). */
#include "destinations/sf_csv.h"

#include <stdint.h>
#include <string.h>

#include "util/error.h"
#include "util/jsonw.h"

void bf_sf_csv_free(struct bf_sf_csv *c) {
  free(c->data);
  free(c->row_start);
  free(c->fields);
  memset(c, 0, sizeof *c);
}

void bf_sf_csv_parse(struct bf_sf_csv *c, const char *s, size_t n) {
  memset(c, 0, sizeof *c);
  /* Each input byte gives at most one byte out, each field (at most n + 1
   * of them: ",,," is four) one NUL, and the document a final NUL. */
  c->data = bf_xmalloc(2 * n + 2);
  size_t cap_f = 64, cap_r = 16;
  c->fields = bf_xmalloc(cap_f * sizeof *c->fields);
  c->row_start = bf_xmalloc(cap_r * sizeof *c->row_start);
  size_t out = 0, i = 0;
  while (i < n) {
    if (c->n_rows + 2 > cap_r)
      c->row_start = bf_xrealloc(c->row_start, (cap_r *= 2) * sizeof *c->row_start);
    c->row_start[c->n_rows] = c->n_fields;
    for (;;) { /* one field */
      if (c->n_fields + 1 > cap_f)
        c->fields = bf_xrealloc(c->fields, (cap_f *= 2) * sizeof *c->fields);
      c->fields[c->n_fields++] = c->data + out;
      if (i < n && s[i] == '"') {
        i++;
        while (i < n) {
          if (s[i] == '"') {
            if (i + 1 < n && s[i + 1] == '"') {
              c->data[out++] = '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          c->data[out++] = s[i++];
        }
      }
      while (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r') c->data[out++] = s[i++];
      c->data[out++] = '\0';
      if (i < n && s[i] == ',') {
        i++;
        continue;
      }
      if (i < n && s[i] == '\r') i++;
      if (i < n && s[i] == '\n') i++;
      break;
    }
    c->n_rows++;
  }
  c->row_start[c->n_rows] = c->n_fields;
  c->data[out] = '\0';
}

size_t bf_sf_csv_cols(const struct bf_sf_csv *c, size_t row) {
  return c->row_start[row + 1] - c->row_start[row];
}
const char *bf_sf_csv_get(const struct bf_sf_csv *c, size_t row, size_t col) {
  return col < bf_sf_csv_cols(c, row) ? c->fields[c->row_start[row] + col] : NULL;
}
size_t bf_sf_csv_col(const struct bf_sf_csv *c, const char *name) {
  for (size_t k = 0; c->n_rows && k < bf_sf_csv_cols(c, 0); k++)
    if (!strcmp(bf_sf_csv_get(c, 0, k), name)) return k;
  return SIZE_MAX;
}

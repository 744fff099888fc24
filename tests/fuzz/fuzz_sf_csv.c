/* libFuzzer target: the Salesforce Bulk API 2.0 result CSV parser
 * (src/destinations/sf_csv.h), fed any body a server could answer with
 * (issue 19: every parser of data from outside has a fuzz target).
 *
 * Properties, besides ASan/UBSan: rows index fields in order and cover
 * them all; every field is NUL-terminated inside the parsed buffer and no
 * longer than the input; reading any row or column through the accessors
 * stays in bounds; an unknown column is SIZE_MAX. */
#include <stdint.h>

#include "destinations/sf_csv.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_setup_env();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *copy = malloc(size ? size : 1); /* exactly the body: no NUL after it */
  memcpy(copy, data, size);
  struct bf_sf_csv c;
  bf_sf_csv_parse(&c, copy, size);
  FUZZ_CHECK(c.row_start[0] == 0 || c.n_rows == 0, "first row does not start at field 0");
  FUZZ_CHECK(c.row_start[c.n_rows] == c.n_fields, "rows do not cover the fields");
  for (size_t r = 0; r < c.n_rows; r++) {
    FUZZ_CHECK(c.row_start[r] <= c.row_start[r + 1], "row %zu ends before it starts", r);
    for (size_t k = 0; k <= bf_sf_csv_cols(&c, r); k++) {
      const char *f = bf_sf_csv_get(&c, r, k);
      if (k == bf_sf_csv_cols(&c, r)) {
        FUZZ_CHECK(f == NULL, "a field past the end of row %zu", r);
        continue;
      }
      FUZZ_CHECK(f >= c.data && f <= c.data + size, "field outside the buffer");
      FUZZ_CHECK(strlen(f) <= size, "field longer than the input");
    }
  }
  (void)bf_sf_csv_col(&c, "sf__Id");
  FUZZ_CHECK(bf_sf_csv_col(&c, "\x01no such column\x02") == SIZE_MAX || c.n_rows > 0,
             "a column found in an empty document");
  bf_sf_csv_free(&c);
  free(copy);
  return 0;
}

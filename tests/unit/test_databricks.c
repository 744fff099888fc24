/* Databricks JSON_ARRAY cells typed by manifest.schema type_name. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sources/databricks.h"

static struct bf_rowbuf rb;
static void setup(void) { bf_rowbuf_init(&rb, 1, 4); }
static void teardown(void) { bf_rowbuf_release(&rb); }
TestSuite(databricks, .init = setup, .fini = teardown);

/* Reads s as a cell of type_name; returns rc, the text (if any) in out. */
static int read_cell(const char *type_name, const char *s, struct bf_value *v, char out[128]) {
  memset(v, 0, sizeof *v);
  int rc = bf_dbx_cell(bf_dbx_kind_of(type_name), s, strlen(s), &rb, v);
  out[0] = '\0';
  if (rc == 0 && v->type == BF_TEXT) snprintf(out, 128, "%.*s", (int)v->len, v->u.s);
  return rc;
}

Test(databricks, kinds_by_type_name) {
  cr_assert_eq(bf_dbx_kind_of("LONG"), BF_DBX_INT);
  cr_assert_eq(bf_dbx_kind_of("short"), BF_DBX_INT);
  cr_assert_eq(bf_dbx_kind_of("DECIMAL"), BF_DBX_DECIMAL);
  cr_assert_eq(bf_dbx_kind_of("DOUBLE"), BF_DBX_REAL);
  cr_assert_eq(bf_dbx_kind_of("BOOLEAN"), BF_DBX_BOOL);
  cr_assert_eq(bf_dbx_kind_of("TIMESTAMP"), BF_DBX_TIMESTAMP);
  cr_assert_eq(bf_dbx_kind_of("TIMESTAMP_NTZ"), BF_DBX_TEXT);
  cr_assert_eq(bf_dbx_kind_of("STRUCT"), BF_DBX_JSON);
  cr_assert_eq(bf_dbx_kind_of("BINARY"), BF_DBX_BINARY);
  cr_assert_eq(bf_dbx_kind_of(NULL), BF_DBX_TEXT);
}

Test(databricks, integers_exact_beyond_2_53) {
  struct bf_value v;
  char out[128];
  cr_assert_eq(read_cell("LONG", "42", &v, out), 0);
  cr_assert(v.type == BF_INT && v.u.i == 42);
  cr_assert_eq(read_cell("LONG", "1234567890123456789", &v, out), 0);
  cr_assert_str_eq(out, "1234567890123456789");
  cr_assert_neq(read_cell("LONG", "12x", &v, out), 0);
}

Test(databricks, decimals_booleans_binary) {
  struct bf_value v;
  char out[128];
  cr_assert_eq(read_cell("DECIMAL", "-12.50", &v, out), 0);
  cr_assert_str_eq(out, "-12.50");
  cr_assert_neq(read_cell("DECIMAL", "1.2.3", &v, out), 0);
  cr_assert_neq(read_cell("DECIMAL", "", &v, out), 0);
  cr_assert_eq(read_cell("BOOLEAN", "true", &v, out), 0);
  cr_assert(v.type == BF_BOOL && v.u.i == 1);
  cr_assert_eq(read_cell("BINARY", "AP8Q", &v, out), 0);
  cr_assert(v.type == BF_BLOB && v.len == 3 && !memcmp(v.u.s, "\x00\xff\x10", 3));
}

Test(databricks, timestamps_as_utc_iso) {
  struct bf_value v;
  char out[128];
  cr_assert_eq(read_cell("TIMESTAMP", "2024-01-01T00:03:00.500Z", &v, out), 0);
  cr_assert_str_eq(out, "2024-01-01T00:03:00.5Z");
  cr_assert_eq(read_cell("TIMESTAMP", "2024-01-01T00:03:00.000Z", &v, out), 0);
  cr_assert_str_eq(out, "2024-01-01T00:03:00Z");
  cr_assert_eq(read_cell("TIMESTAMP", "2024-01-01 00:03:00.123456+00:00", &v, out), 0);
  cr_assert_str_eq(out, "2024-01-01T00:03:00.123456Z");
  cr_assert_neq(read_cell("TIMESTAMP", "2024-01-01T00:03:00+02:00", &v, out), 0);
  cr_assert_neq(read_cell("TIMESTAMP", "yesterday", &v, out), 0);
}

Test(databricks, complex_types_keep_their_json) {
  struct bf_value v;
  char out[128];
  cr_assert_eq(read_cell("MAP", "{\"k\":1}", &v, out), 0);
  cr_assert_str_eq(out, "{\"k\":1}");
}

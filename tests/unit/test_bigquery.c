/* BigQuery f/v cells typed by their schema field. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sources/bigquery.h"

static struct bf_rowbuf rb;
static void setup(void) { bf_rowbuf_init(&rb, 1, 4); }
static void teardown(void) { bf_rowbuf_release(&rb); }
TestSuite(bigquery, .init = setup, .fini = teardown);

/* Reads cell_json (the "v") for field_json; returns the value's text or "". */
static const char *read_cell(const char *field_json, const char *cell_json, struct bf_value *v) {
  static char out[256];
  json_t *field = json_loads(field_json, 0, NULL);
  json_t *cell = json_loads(cell_json, JSON_DECODE_ANY, NULL);
  cr_assert(field && cell, "bad test JSON");
  memset(v, 0, sizeof *v);
  int rc = bf_bq_cell(field, bf_bq_kind_of(field), cell, &rb, v);
  json_decref(field);
  json_decref(cell);
  cr_assert_eq(rc, 0, "cell %s", cell_json);
  out[0] = '\0';
  if (v->type == BF_TEXT) snprintf(out, sizeof out, "%.*s", (int)v->len, v->u.s);
  return out;
}

Test(bigquery, scalars) {
  struct bf_value v;
  read_cell("{\"type\":\"INTEGER\"}", "\"42\"", &v);
  cr_assert(v.type == BF_INT && v.u.i == 42);
  cr_assert_str_eq(read_cell("{\"type\":\"INT64\"}", "\"9223372036854775807\"", &v),
                   "9223372036854775807");
  cr_assert_str_eq(read_cell("{\"type\":\"NUMERIC\"}", "\"12.50\"", &v), "12.50");
  read_cell("{\"type\":\"FLOAT\"}", "\"Infinity\"", &v);
  cr_assert_eq(v.type, BF_FLOAT);
  read_cell("{\"type\":\"BOOLEAN\"}", "\"true\"", &v);
  cr_assert(v.type == BF_BOOL && v.u.i == 1);
  read_cell("{\"type\":\"STRING\"}", "null", &v);
  cr_assert_eq(v.type, BF_NULL);
  read_cell("{\"type\":\"BYTES\"}", "\"AP8Q\"", &v);
  cr_assert(v.type == BF_BLOB && v.len == 3 && !memcmp(v.u.s, "\x00\xff\x10", 3));
}

Test(bigquery, timestamps_from_int64_microseconds) {
  struct bf_value v;
  cr_assert_str_eq(read_cell("{\"type\":\"TIMESTAMP\"}", "\"1714571100123456\"", &v),
                   "2024-05-01T13:45:00.123456Z");
  cr_assert_str_eq(read_cell("{\"type\":\"TIMESTAMP\"}", "\"-1\"", &v),
                   "1969-12-31T23:59:59.999999Z");
  json_t *f = json_loads("{\"type\":\"TIMESTAMP\"}", 0, NULL);
  json_t *c = json_string("1.7145711E9"); /* float seconds: not what Backflow asks for */
  cr_assert_neq(bf_bq_cell(f, BF_BQ_TIMESTAMP, c, &rb, &v), 0);
  json_decref(f);
  json_decref(c);
}

Test(bigquery, records_and_repeated_fields_are_json) {
  struct bf_value v;
  cr_assert_str_eq(read_cell("{\"name\":\"A\",\"type\":\"RECORD\",\"fields\":["
                             "{\"name\":\"CITY\",\"type\":\"STRING\"},"
                             "{\"name\":\"ZIP\",\"type\":\"INTEGER\"},"
                             "{\"name\":\"AT\",\"type\":\"TIMESTAMP\"},"
                             "{\"name\":\"T\",\"type\":\"STRING\",\"mode\":\"REPEATED\"}]}",
                             "{\"f\":[{\"v\":\"Z\\u00fcrich\"},{\"v\":\"8001\"},{\"v\":\"0\"},"
                             "{\"v\":[{\"v\":\"x\"},{\"v\":null}]}]}",
                             &v),
                   "{\"CITY\":\"Z\xc3\xbcrich\",\"ZIP\":8001,\"AT\":\"1970-01-01T00:00:00Z\","
                   "\"T\":[\"x\",null]}");
  cr_assert_str_eq(read_cell("{\"type\":\"INTEGER\",\"mode\":\"REPEATED\"}",
                             "[{\"v\":\"1\"},{\"v\":\"90071992547409930\"}]", &v),
                   "[1,\"90071992547409930\"]");
  cr_assert_str_eq(read_cell("{\"type\":\"STRING\",\"mode\":\"REPEATED\"}", "[]", &v), "[]");
}

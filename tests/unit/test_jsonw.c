#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/jsonw.h"

static const char *str_json(struct bf_buf *b, const char *s, size_t n) {
  bf_buf_reset(b);
  bf_json_str(b, s, n);
  return bf_buf_cstr(b);
}

Test(jsonw, escapes_quotes_controls_and_keeps_utf8) {
  struct bf_buf b = {0};
  cr_assert_str_eq(str_json(&b, "a\"b\\c", 5), "\"a\\\"b\\\\c\"");
  cr_assert_str_eq(str_json(&b, "l1\nl2\t\x01", 7), "\"l1\\nl2\\t\\u0001\"");
  cr_assert_str_eq(str_json(&b, "caf\xc3\xa9", 5), "\"caf\xc3\xa9\"");
  bf_buf_release(&b);
}

Test(jsonw, invalid_utf8_becomes_replacement_character) {
  struct bf_buf b = {0};
  cr_assert_str_eq(str_json(&b,
                            "a\xff"
                            "b",
                            3),
                   "\"a\xef\xbf\xbd"
                   "b\"");
  cr_assert_str_eq(str_json(&b, "\xc3", 1), "\"\xef\xbf\xbd\"");
  bf_buf_release(&b);
}

Test(jsonw, numbers_round_trip_and_non_finite_is_null) {
  struct bf_buf b = {0};
  bf_json_double(&b, 0.1);
  cr_assert_str_eq(bf_buf_cstr(&b), "0.1");
  bf_buf_reset(&b);
  bf_json_double(&b, 1.0 / 3.0);
  cr_assert_eq(strtod(bf_buf_cstr(&b), NULL), 1.0 / 3.0);
  bf_buf_reset(&b);
  bf_json_double(&b, NAN);
  cr_assert_str_eq(bf_buf_cstr(&b), "null");
  bf_buf_reset(&b);
  bf_json_int(&b, -9223372036854775807LL - 1);
  cr_assert_str_eq(bf_buf_cstr(&b), "-9223372036854775808");
  bf_buf_release(&b);
}

/* Shortest text that reads back exactly: what Redis and every other text
 * destination receive (issue 16: 1882.6 arrived as 1882.5999999999999). */
Test(jsonw, double_text_is_the_shortest_round_trip) {
  static const struct {
    double v;
    const char *want;
  } cases[] = {{1882.6, "1882.6"},
               {0.1, "0.1"},
               {0.30000000000000004, "0.30000000000000004"},
               {1e300, "1e+300"},
               {-2, "-2"},
               {5e-324, "5e-324"},
               {123456789012345680.0, "1.2345678901234568e+17"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char buf[BF_DOUBLE_TEXT_MAX];
    size_t n = bf_double_text(buf, cases[i].v);
    cr_assert_str_eq(buf, cases[i].want);
    cr_assert_eq(n, strlen(cases[i].want));
    cr_assert_eq(strtod(buf, NULL), cases[i].v);
  }
  /* Every double of a sweep round-trips and is never longer than %.17g. */
  for (double v = 1e-5; v < 1e6; v *= 1.37) {
    char buf[BF_DOUBLE_TEXT_MAX], full[40];
    bf_double_text(buf, v);
    snprintf(full, sizeof full, "%.17g", v);
    cr_assert_eq(strtod(buf, NULL), v);
    cr_assert_leq(strlen(buf), strlen(full));
  }
}

Test(jsonw, json_values_are_written_as_they_are) {
  struct bf_buf b = {0};
  struct bf_value v = {.type = BF_JSON, .len = 9, .u.s = "[1,\"a\"]xx"};
  v.len = 7;
  bf_json_value(&b, &v);
  cr_assert_str_eq(bf_buf_cstr(&b), "[1,\"a\"]");
  cr_assert_str_eq(bf_type_name(BF_JSON), "json");
  bf_buf_release(&b);
}

Test(jsonw, typed_values) {
  struct bf_buf b = {0};
  struct bf_value vals[] = {
      {.type = BF_NULL},
      {.type = BF_BOOL, .u.i = 1},
      {.type = BF_TEXT, .len = 2, .u.s = "hi"},
      {.type = BF_BLOB, .len = 3, .u.s = "\x00\x01\x02"},
  };
  for (size_t i = 0; i < 4; i++) {
    if (i) bf_buf_putc(&b, ',');
    bf_json_value(&b, &vals[i]);
  }
  cr_assert_str_eq(bf_buf_cstr(&b), "null,true,\"hi\",\"AAEC\"");
  bf_buf_release(&b);
}

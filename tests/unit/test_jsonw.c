#include <criterion/criterion.h>
#include <math.h>
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

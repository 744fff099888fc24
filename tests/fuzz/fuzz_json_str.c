/* libFuzzer target: the JSON writer. Any bytes through bf_json_str() must
 * give one JSON string that jansson reads back: the same bytes when they
 * are valid UTF-8, else the bytes with each byte that starts no valid UTF-8
 * sequence replaced by U+FFFD (the reference below asks jansson, not our
 * decoder, what is valid). The first 8 bytes also go through bf_json_int()
 * and, as a double, bf_json_double(): finite doubles must read back equal,
 * NaN and infinities as null. */
#include <math.h>
#include <stdint.h>

#include <jansson.h>

#include "util/jsonw.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_setup_env();
  return 0;
}

/* Length of the one valid UTF-8 character at p, or 0. */
static size_t one_char(const char *p, size_t n) {
  for (size_t len = 1; len <= 4 && len <= n; len++) {
    json_t *s = json_stringn(p, len);
    json_decref(s);
    if (s) return (unsigned char)p[0] < 0x80 ? 1 : (len > 1 ? len : 0);
  }
  return 0;
}

static void check_numbers(const uint8_t *data) {
  int64_t i;
  double d;
  memcpy(&i, data, 8);
  memcpy(&d, data, 8);
  struct bf_buf b = {0};
  bf_json_int(&b, i);
  json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL);
  FUZZ_CHECK(json_is_integer(v) && json_integer_value(v) == i, "int %lld wrote %.*s", (long long)i,
             (int)b.len, b.data);
  json_decref(v);
  bf_buf_reset(&b);
  bf_json_double(&b, d);
  v = json_loadb(b.data, b.len, JSON_DECODE_ANY, NULL);
  if (!isfinite(d))
    FUZZ_CHECK(json_is_null(v), "%g wrote %.*s", d, (int)b.len, b.data);
  else
    FUZZ_CHECK(json_is_number(v) && json_number_value(v) == d, "%.17g wrote %.*s", d, (int)b.len,
               b.data);
  json_decref(v);
  bf_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *in = malloc(size ? size : 1);
  memcpy(in, data, size);
  struct bf_buf out = {0}, want = {0};
  bf_buf_puts(&out, "[1,"); /* the string is written mid-buffer, as in a record */
  size_t start = out.len;
  bf_json_str(&out, in, size);
  json_error_t jerr;
  json_t *s =
      json_loadb(out.data + start, out.len - start, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  FUZZ_CHECK(json_is_string(s), "not a JSON string (%s): %.*s", jerr.text, (int)(out.len - start),
             out.data + start);
  for (size_t i = 0; i < size;) {
    size_t len = one_char(in + i, size - i);
    if (len)
      bf_buf_append(&want, in + i, len);
    else
      bf_buf_append(&want, "\xEF\xBF\xBD", 3);
    i += len ? len : 1;
  }
  FUZZ_CHECK(json_string_length(s) == want.len &&
                 !memcmp(json_string_value(s), want.data ? want.data : "", want.len),
             "read back %zu bytes, expected %zu", json_string_length(s), want.len);
  json_decref(s);
  if (size >= 8) check_numbers(data);
  bf_buf_release(&out);
  bf_buf_release(&want);
  free(in);
  return 0;
}

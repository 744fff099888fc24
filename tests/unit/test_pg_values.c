/* Tests for src/sources/pg_values.c: PostgreSQL's text output typed by OID,
 * json and arrays as JSON (issue 16), anything unexpected kept as text. */
#include <criterion/criterion.h>

#include <string.h>

#include "sources/pg_values.h"

/* Types text as a column of type oid; returns the value's type and its
 * bytes (or number) as text in out. */
static enum bf_type typed(unsigned oid, const char *text, char *out, size_t cap) {
  struct bf_rowbuf rb;
  struct bf_pg_scratch scratch = {0};
  bf_rowbuf_init(&rb, 1, 4);
  char *s = strdup(text);
  struct bf_value v = {0};
  bf_pg_put_value(&rb, &v, bf_pg_kind_of((Oid)oid), s, strlen(s), &scratch);
  if (bf_value_has_bytes(v.type))
    snprintf(out, cap, "%.*s", (int)v.len, v.u.s);
  else if (v.type == BF_INT)
    snprintf(out, cap, "%lld", (long long)v.u.i);
  else
    out[0] = '\0';
  free(s);
  bf_rowbuf_release(&rb);
  bf_buf_release(&scratch.copy);
  bf_buf_release(&scratch.json);
  return v.type;
}

#define EXPECT(oid, in, type, want)                                                                \
  do {                                                                                             \
    char got_[256];                                                                                \
    cr_assert_eq(typed(oid, in, got_, sizeof got_), type, "%s", in);                               \
    cr_assert_str_eq(got_, want);                                                                  \
  } while (0)

Test(pg_values, json_and_jsonb_are_json) {
  EXPECT(3802, "{\"a\": [1, 2]}", BF_JSON, "{\"a\": [1, 2]}");
  EXPECT(114, "[1, \"two\"]", BF_JSON, "[1, \"two\"]");
}

Test(pg_values, arrays_become_json_arrays_by_element_type) {
  EXPECT(1009, "{a,b}", BF_JSON, "[\"a\",\"b\"]");
  EXPECT(1009, "{\"with,comma\",\"q\\\"uote\",\"back\\\\slash\",\"NULL\",NULL,\"\"}", BF_JSON,
         "[\"with,comma\",\"q\\\"uote\",\"back\\\\slash\",\"NULL\",null,\"\"]");
  EXPECT(1007, "{1,NULL,-3}", BF_JSON, "[1,null,-3]");
  EXPECT(1022, "{{0.1,NaN},{1e300,-2}}", BF_JSON, "[[0.1,\"NaN\"],[1e+300,-2]]");
  EXPECT(1000, "{t,f}", BF_JSON, "[true,false]");
  EXPECT(3807, "{\"{\\\"k\\\": 1}\"}", BF_JSON, "[{\"k\": 1}]");
  EXPECT(1231, "{19.90,1}", BF_JSON, "[\"19.90\",\"1\"]"); /* numeric keeps its scale */
  EXPECT(1185, "{\"2024-05-01 12:00:00+00\"}", BF_JSON, "[\"2024-05-01T12:00:00Z\"]");
  EXPECT(1007, "[0:1]={5,6}", BF_JSON, "[5,6]");
  EXPECT(1009, "{}", BF_JSON, "[]");
}

Test(pg_values, what_is_not_an_array_literal_stays_text) {
  EXPECT(1009, "{a,b", BF_TEXT, "{a,b");
  EXPECT(1009, "{\"open}", BF_TEXT, "{\"open}");
  EXPECT(1009, "{a}x", BF_TEXT, "{a}x");
  EXPECT(1007, "{{{{{{{1}}}}}}}", BF_TEXT, "{{{{{{{1}}}}}}}"); /* deeper than PostgreSQL allows */
  EXPECT(1700, "19.90", BF_TEXT, "19.90");                     /* numeric */
  EXPECT(20, "42", BF_INT, "42");
}

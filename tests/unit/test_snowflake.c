/* Snowflake jsonv2 cells and the RS256 JWT signer. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jwt.h"
#include "sources/cells.h"
#include "sources/snowflake.h"

static struct bf_rowbuf rb;
static void setup(void) { bf_rowbuf_init(&rb, 1, 4); }
static void teardown(void) { bf_rowbuf_release(&rb); }

/* The cell as text (BF_TEXT) or "" when it is not text. */
static const char *text_of(enum bf_sf_kind k, const char *cell, struct bf_value *v) {
  static char out[128];
  memset(v, 0, sizeof *v);
  cr_assert_eq(bf_sf_cell(k, cell, strlen(cell), &rb, v), 0, "cell %s", cell);
  if (v->type != BF_TEXT) return "";
  snprintf(out, sizeof out, "%.*s", (int)v->len, v->u.s);
  return out;
}

TestSuite(snowflake, .init = setup, .fini = teardown);

Test(snowflake, kinds_follow_row_type) {
  cr_assert_eq(bf_sf_kind_of("fixed", 0), BF_SF_INT);
  cr_assert_eq(bf_sf_kind_of("FIXED", 2), BF_SF_DECIMAL);
  cr_assert_eq(bf_sf_kind_of("timestamp_tz", 9), BF_SF_TS_TZ);
  cr_assert_eq(bf_sf_kind_of("variant", 0), BF_SF_JSON);
  cr_assert_eq(bf_sf_kind_of("geography", 0), BF_SF_TEXT);
  cr_assert_eq(bf_sf_kind_of(NULL, 0), BF_SF_TEXT);
}

Test(snowflake, integers_are_exact_and_text_beyond_2_53) {
  struct bf_value v;
  text_of(BF_SF_INT, "9007199254740992", &v);
  cr_assert_eq(v.type, BF_INT);
  cr_assert_eq(v.u.i, 9007199254740992LL);
  cr_assert_str_eq(text_of(BF_SF_INT, "9007199254740993", &v), "9007199254740993");
  cr_assert_str_eq(text_of(BF_SF_INT, "-12345678901234567890123456789012345678", &v),
                   "-12345678901234567890123456789012345678");
  cr_assert_neq(bf_sf_cell(BF_SF_INT, "1.5", 3, &rb, &v), 0);
  cr_assert_str_eq(text_of(BF_SF_DECIMAL, "0.10", &v), "0.10");
}

Test(snowflake, dates_times_and_timestamps) {
  struct bf_value v;
  cr_assert_str_eq(text_of(BF_SF_DATE, "0", &v), "1970-01-01");
  cr_assert_str_eq(text_of(BF_SF_DATE, "19844", &v), "2024-05-01");
  cr_assert_str_eq(text_of(BF_SF_DATE, "-1", &v), "1969-12-31");
  cr_assert_str_eq(text_of(BF_SF_TIME, "49500.500000000", &v), "13:45:00.5");
  cr_assert_str_eq(text_of(BF_SF_TS_NTZ, "1714571100.000000000", &v), "2024-05-01T13:45:00");
  cr_assert_str_eq(text_of(BF_SF_TS_LTZ, "1714571100.123456789", &v),
                   "2024-05-01T13:45:00.123456789Z");
  cr_assert_str_eq(text_of(BF_SF_TS_LTZ, "-1.250000000", &v), "1969-12-31T23:59:58.75Z");
  cr_assert_str_eq(text_of(BF_SF_TS_TZ, "1714571100.000000000 1560", &v),
                   "2024-05-01T15:45:00+02:00");
  cr_assert_str_eq(text_of(BF_SF_TS_TZ, "1714571100.000000000 1140", &v),
                   "2024-05-01T08:45:00-05:00");
  cr_assert_neq(bf_sf_cell(BF_SF_TS_TZ, "1714571100", 10, &rb, &v), 0);
  cr_assert_neq(bf_sf_cell(BF_SF_TIME, "86400", 5, &rb, &v), 0);
}

Test(snowflake, booleans_reals_and_binary) {
  struct bf_value v;
  text_of(BF_SF_BOOL, "true", &v);
  cr_assert(v.type == BF_BOOL && v.u.i == 1);
  text_of(BF_SF_BOOL, "false", &v);
  cr_assert(v.type == BF_BOOL && v.u.i == 0);
  text_of(BF_SF_REAL, "0.25", &v);
  cr_assert(v.type == BF_FLOAT && v.u.f == 0.25);
  text_of(BF_SF_BINARY, "00ff10", &v);
  cr_assert(v.type == BF_BLOB && v.len == 3 && !memcmp(v.u.s, "\x00\xff\x10", 3));
  cr_assert_neq(bf_sf_cell(BF_SF_BINARY, "0g", 2, &rb, &v), 0);
}

/* Signs with a key made by openssl and checks the signature with openssl. */
Test(snowflake, jwt_signature_verifies_with_openssl) {
  char dir[] = "/tmp/bf-jwt-XXXXXX";
  cr_assert(mkdtemp(dir));
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s/k.p8 2>/dev/null"
           " && openssl pkey -in %s/k.p8 -pubout -out %s/k.pub",
           dir, dir, dir);
  cr_assert_eq(system(cmd), 0);
  char path[256];
  snprintf(path, sizeof path, "%s/k.p8", dir);
  struct bf_rsa_key *k = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_rsa_key_load(path, NULL, "test", &k, &err), 0, "%s", err.msg);
  char *fp = bf_rsa_key_fingerprint(k);
  cr_assert_eq(strncmp(fp, "SHA256:", 7), 0);
  cr_assert_eq(strlen(fp), 7 + 44);
  char *jwt = NULL;
  cr_assert_eq(bf_jwt_rs256(k, NULL, "{\"sub\":\"A.B\"}", &jwt, &err), 0, "%s", err.msg);
  char *dot = strrchr(jwt, '.');
  cr_assert(dot);
  snprintf(path, sizeof path, "%s/in", dir);
  FILE *f = fopen(path, "w");
  fwrite(jwt, 1, (size_t)(dot - jwt), f);
  fclose(f);
  /* base64url without padding: add it so base64 -d accepts the text */
  size_t sl = strlen(dot + 1);
  char padded[1024];
  snprintf(padded, sizeof padded, "%s%s", dot + 1, sl % 4 == 2 ? "==" : sl % 4 == 3 ? "=" : "");
  snprintf(cmd, sizeof cmd,
           "cd %s && printf '%%s' '%s' | tr '_-' '/+' | base64 -d > sig &&"
           " openssl dgst -sha256 -verify k.pub -signature sig in >/dev/null",
           dir, padded);
  cr_assert_eq(system(cmd), 0, "signature does not verify");
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
  free(jwt);
  free(fp);
  bf_rsa_key_free(k);
}

Test(snowflake, missing_or_bad_key_is_a_config_error) {
  struct bf_rsa_key *k = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_rsa_key_load("/nonexistent/k.p8", NULL, "wh", &k, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "cannot open the private key file"));
  cr_assert_eq(bf_rsa_key_from_pem("not a key", 9, "wh", &k, &err), BF_E_CONFIG);
  cr_assert_null(k);
}

Test(snowflake, only_single_queries_are_sent) {
  cr_assert(bf_sql_single_query("SELECT 1"));
  cr_assert(bf_sql_single_query("  -- model\n/* x */ (select a from t) ;; \n"));
  cr_assert(bf_sql_single_query("WITH x AS (SELECT ';' AS s) SELECT * FROM x"));
  cr_assert(bf_sql_single_query("SELECT \"a;b\", `c;d` FROM t -- ; trailing"));
  cr_assert_not(bf_sql_single_query("DELETE FROM t"));
  cr_assert_not(bf_sql_single_query("SELECT 1; DROP TABLE t"));
  cr_assert_not(bf_sql_single_query("SELECT 'it''s'; UPDATE t SET a = 1"));
  cr_assert_not(bf_sql_single_query("# comment\nCALL p()"));
}

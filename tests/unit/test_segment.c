/* Tests for src/engine/segment.c: conditions -> SQL with bound parameters,
 * identifiers checked and quoted, and the literal rendering used for saved
 * models returning exactly the rows the parameterised form returns. */
#include <criterion/criterion.h>

#include <sqlite3.h>
#include <string.h>

#include "engine/segment.h"

static const char *const cols[] = {"id", "email", "plan", "ltv", "signed_up", "we\"ird", NULL};
#define NCOLS 6

static struct bf_segment build_ok(const char *type, const char *where_json) {
  json_error_t jerr;
  json_t *where = json_loads(where_json, 0, &jerr);
  cr_assert_not_null(where, "bad test JSON: %s", jerr.text);
  struct bf_segment s;
  struct bf_error err = {0};
  int rc = bf_segment_build(bf_segment_dialect_find(type), "SELECT * FROM users;", cols, NCOLS,
                            where, &s, &err);
  json_decref(where);
  cr_assert_eq(rc, 0, "unexpected error: %s", err.msg);
  return s;
}

static struct bf_error build_err(const char *where_json) {
  json_t *where = json_loads(where_json, 0, NULL);
  cr_assert_not_null(where);
  struct bf_segment s;
  struct bf_error err = {0};
  int rc = bf_segment_build(bf_segment_dialect_find("sqlite"), "SELECT * FROM users", cols, NCOLS,
                            where, &s, &err);
  json_decref(where);
  cr_assert_eq(rc, BF_E_USAGE, "expected a usage error, got %d", rc);
  cr_assert_null(s.sql);
  return err;
}

Test(segment, two_conditions_in_groups_bind_every_value) {
  struct bf_segment s = build_ok(
      "postgres", "{\"all\":[{\"column\":\"plan\",\"op\":\"=\",\"value\":\"pro\"},"
                  "{\"any\":[{\"column\":\"ltv\",\"op\":\">=\",\"value\":100},"
                  "{\"column\":\"email\",\"op\":\"ends_with\",\"value\":\"@x_y.com\"}]}]}");
  cr_assert_str_eq(s.sql, "SELECT * FROM (SELECT * FROM users) AS bf_base WHERE (\"plan\" = $1 "
                          "AND (\"ltv\" >= $2 OR \"email\" LIKE $3 ESCAPE '\\'))");
  cr_assert_eq(s.nparams, 3);
  cr_assert_str_eq(s.params[0], "pro");
  cr_assert_str_eq(s.params[1], "100");
  cr_assert_str_eq(s.params[2], "%@x\\_y.com");
  cr_assert_str_eq(s.literal_sql,
                   "SELECT * FROM (SELECT * FROM users) AS bf_base WHERE (\"plan\" = 'pro' AND "
                   "(\"ltv\" >= 100 OR \"email\" LIKE '%@x\\_y.com' ESCAPE '\\'))");
  bf_segment_release(&s);
}

Test(segment, relative_dates_and_in_lists_per_dialect) {
  struct bf_segment s = build_ok(
      "postgres", "{\"all\":[{\"column\":\"signed_up\",\"op\":\"in_last_days\",\"value\":30},"
                  "{\"column\":\"plan\",\"op\":\"in\",\"value\":[\"a\",\"b\"]}]}");
  cr_assert(strstr(s.sql, "\"signed_up\" >= now() - make_interval(days => ($1)::int)"), "%s",
            s.sql);
  cr_assert(strstr(s.sql, "\"plan\" IN ($2, $3)"), "%s", s.sql);
  cr_assert(strstr(s.literal_sql, "make_interval(days => (30)::int)"), "%s", s.literal_sql);
  bf_segment_release(&s);
  s = build_ok("bigquery", "{\"column\":\"we\\\"ird\",\"op\":\"=\",\"value\":\"it's \\\\\"}");
  cr_assert_str_eq(s.literal_sql,
                   "SELECT * FROM (SELECT * FROM users) AS bf_base WHERE `we\"ird` = 'it''s \\\\'");
  bf_segment_release(&s);
  s = build_ok("sqlite", "{\"column\":\"we\\\"ird\",\"op\":\"is_null\"}");
  cr_assert(strstr(s.sql, "WHERE \"we\"\"ird\" IS NULL"), "%s", s.sql);
  cr_assert_eq(s.nparams, 0);
  bf_segment_release(&s);
}

Test(segment, bad_input_names_the_place) {
  struct bf_error e = build_err("{\"all\":[{\"column\":\"plan\",\"op\":\"=\",\"value\":1},"
                                "{\"column\":\"emial\",\"op\":\"=\",\"value\":\"x\"}]}");
  cr_assert(strstr(e.msg, "where.all[1].column: unknown column 'emial'; did you mean 'email'?"),
            "%s", e.msg);
  e = build_err("{\"column\":\"plan\\\" OR 1=1 --\",\"op\":\"=\",\"value\":\"x\"}");
  cr_assert(strstr(e.msg, "where.column: unknown column"), "%s", e.msg);
  e = build_err("{\"column\":\"plan\",\"op\":\"= 1 OR 1=\",\"value\":\"x\"}");
  cr_assert(strstr(e.msg, "where.op: unknown operator"), "%s", e.msg);
  e = build_err("{\"column\":\"signed_up\",\"op\":\"in_last_days\",\"value\":\"30; DROP\"}");
  cr_assert(strstr(e.msg, "where.value: in_last_days needs a whole number"), "%s", e.msg);
  e = build_err("{\"all\":[]}");
  cr_assert(strstr(e.msg, "where.all: expected a non-empty list"), "%s", e.msg);
  e = build_err("{\"column\":\"plan\",\"op\":\"=\",\"value\":{\"a\":1}}");
  cr_assert(strstr(e.msg, "where.value: expected a string, number or boolean"), "%s", e.msg);
  e = build_err("{\"column\":\"plan\",\"op\":\"=\",\"value\":\"x\",\"sql\":\"1\"}");
  cr_assert(strstr(e.msg, "unknown key 'sql'"), "%s", e.msg);
}

Test(segment, table_names_are_checked_and_quoted) {
  const struct bf_segment_dialect *d = bf_segment_dialect_find("postgres");
  char *sql = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_segment_table_sql(d, "public.users", &sql, &err), 0, "%s", err.msg);
  cr_assert_str_eq(sql, "SELECT * FROM \"public\".\"users\"");
  free(sql);
  const char *bad[] = {"users; DROP TABLE x", "users\"", "", "a.b.c.d", "1users", "a..b", NULL};
  for (int i = 0; bad[i]; i++) {
    cr_assert_eq(bf_segment_table_sql(d, bad[i], &sql, &err), BF_E_USAGE, "%s", bad[i]);
    cr_assert_null(sql);
  }
}

static long long count_rows(sqlite3 *db, const char *sql, char **params, size_t n) {
  char *q = sqlite3_mprintf("SELECT COUNT(*) FROM (%s)", sql);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK, "%s: %s", q,
               sqlite3_errmsg(db));
  for (size_t i = 0; i < n; i++) {
    char name[24];
    snprintf(name, sizeof name, "$%zu", i + 1);
    sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, name), params[i], -1, SQLITE_STATIC);
  }
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  long long c = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_free(q);
  return c;
}

/* Both renderings run on a real SQLite and select the same rows, including
 * for values that try to break out of their literal. */
Test(segment, literal_and_parameterised_forms_agree_on_sqlite) {
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db,
                            "CREATE TABLE users (id INTEGER, email TEXT, plan TEXT, ltv REAL, "
                            "signed_up TEXT, \"we\"\"ird\" TEXT);"
                            "INSERT INTO users VALUES (1,'a@x.com','pro',150,datetime('now','-2 "
                            "days'),NULL),(2,'b@y.com','free',10,datetime('now','-90 days'),'q'),"
                            "(3,'c%d@x.com','pro',20,'2001-01-01','x'' OR ''1''=''1')",
                            NULL, NULL, NULL),
               SQLITE_OK);
  struct {
    const char *where;
    long long want;
  } cases[] = {
      {"{\"all\":[{\"column\":\"plan\",\"op\":\"=\",\"value\":\"pro\"},"
       "{\"column\":\"signed_up\",\"op\":\"in_last_days\",\"value\":30}]}",
       1},
      {"{\"column\":\"ltv\",\"op\":\">\",\"value\":15}", 2},
      {"{\"column\":\"plan\",\"op\":\"=\",\"value\":\"x' OR '1'='1\"}", 0},
      {"{\"column\":\"we\\\"ird\",\"op\":\"=\",\"value\":\"x' OR '1'='1\"}", 1},
      {"{\"column\":\"email\",\"op\":\"contains\",\"value\":\"%\"}", 1},
      {"{\"any\":[{\"column\":\"id\",\"op\":\"in\",\"value\":[1,3]},"
       "{\"column\":\"we\\\"ird\",\"op\":\"is_null\"}]}",
       2},
      {"{\"column\":\"plan\",\"op\":\"not_in\",\"value\":[\"free\"]}", 2},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct bf_segment s = build_ok("sqlite", cases[i].where);
    cr_expect_eq(count_rows(db, s.sql, s.params, s.nparams), cases[i].want, "params: %s",
                 cases[i].where);
    cr_expect_eq(count_rows(db, s.literal_sql, NULL, 0), cases[i].want, "literal: %s",
                 cases[i].where);
    bf_segment_release(&s);
  }
  sqlite3_close(db);
}

#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "cli/cli.h"

/* Parses one "--name VALUE" pair with the shared helper. */
static int parse_int(const char *name, const char *value, long long min, long long max,
                     long long *out, struct bf_error *err) {
  char *argv[] = {(char *)name, (char *)value, NULL};
  struct bf_cli cli = {.argc = 2, .argv = argv};
  return bf_cli_int_option(&cli, name, min, max, out, err);
}

Test(cli, whole_numbers_in_range_are_read) {
  struct bf_error err = {0};
  long long v = -7;
  cr_assert_eq(parse_int("--limit", "42", 1, 100, &v, &err), 0);
  cr_assert_eq(v, 42);
  cr_assert_eq(parse_int("--sample", "0", 0, 100, &v, &err), 0);
  cr_assert_eq(v, 0);
  cr_assert_eq(parse_int("--run", "9223372036854775807", 1, LLONG_MAX, &v, &err), 0);
  cr_assert_eq(v, LLONG_MAX);
}

Test(cli, anything_else_is_a_usage_error_naming_the_option) {
  const char *bad[] = {
      "abc", "2x", "", " 3", "3 ", "-1", "0", "101", "1e3", "0x10", "99999999999999999999", "+"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct bf_error err = {0};
    long long v = 5;
    cr_assert_eq(parse_int("--limit", bad[i], 1, 100, &v, &err), BF_E_USAGE, "'%s'", bad[i]);
    cr_assert_eq(v, 5, "'%s' changed the value", bad[i]);
    cr_assert(strstr(err.msg, "--limit"), "%s", err.msg);
  }
}

Test(cli, an_absent_option_leaves_the_default) {
  char *argv[] = {"SYNC", NULL};
  struct bf_cli cli = {.argc = 1, .argv = argv};
  struct bf_error err = {0};
  long long v = 20;
  cr_assert_eq(bf_cli_int_option(&cli, "--limit", 1, 100, &v, &err), 0);
  cr_assert_eq(v, 20);
  cr_assert_eq(cli.argc, 1);
}

Test(cli, seconds_take_fractions_but_not_zero_or_junk) {
  struct bf_error err = {0};
  double s = 0;
  char *ok[] = {"--wait", "0.5", NULL};
  struct bf_cli cli = {.argc = 2, .argv = ok};
  cr_assert_eq(bf_cli_seconds_option(&cli, "--wait", 60, &s, &err), 0);
  cr_assert_float_eq(s, 0.5, 1e-9);
  const char *bad[] = {"0", "-1", "abc", "1s", "61", "nan", "inf", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *argv[] = {"--wait", (char *)bad[i], NULL};
    struct bf_cli c = {.argc = 2, .argv = argv};
    cr_assert_eq(bf_cli_seconds_option(&c, "--wait", 60, &s, &err), BF_E_USAGE, "'%s'", bad[i]);
    cr_assert(strstr(err.msg, "--wait"));
  }
}

Test(cli, every_command_in_the_table_has_a_runner_summary_and_options) {
  size_t n = 0;
  for (const struct bf_cli_command *c = bf_cli_commands; c->name; c++, n++) {
    cr_assert(c->run && c->synopsis && c->summary && c->description && c->options, "%s", c->name);
    cr_assert_eq(bf_cli_find_command(c->name), c, "%s listed twice", c->name);
    for (const struct bf_cli_opt *o = c->options; o->name; o++) {
      cr_assert(!strncmp(o->name, "--", 2) && o->help, "%s %s", c->name, o->name);
      for (const struct bf_cli_opt *g = bf_cli_global_opts; g->name; g++)
        cr_assert(strcmp(g->name, o->name), "%s redefines global %s", c->name, o->name);
    }
  }
  cr_assert_geq(n, 10);
  cr_assert_null(bf_cli_find_command("nope"));
}

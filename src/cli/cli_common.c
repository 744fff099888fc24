#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/jsonw.h"
#include "engine/runner.h"

static void drop_args(struct bf_cli *cli, int at, int count) {
  for (int k = at; k + count < cli->argc; k++) cli->argv[k] = cli->argv[k + count];
  cli->argc -= count;
}

const char *bf_cli_option(struct bf_cli *cli, const char *name) {
  size_t len = strlen(name);
  for (int i = 0; i < cli->argc; i++) {
    if (!strcmp(cli->argv[i], name) && i + 1 < cli->argc) {
      const char *v = cli->argv[i + 1];
      drop_args(cli, i, 2);
      return v;
    }
    if (!strncmp(cli->argv[i], name, len) && cli->argv[i][len] == '=') {
      const char *v = cli->argv[i] + len + 1;
      drop_args(cli, i, 1);
      return v;
    }
  }
  return NULL;
}

bool bf_cli_flag(struct bf_cli *cli, const char *name) {
  for (int i = 0; i < cli->argc; i++) {
    if (!strcmp(cli->argv[i], name)) {
      drop_args(cli, i, 1);
      return true;
    }
  }
  return false;
}

int bf_cli_int_option(struct bf_cli *cli, const char *name, long long min, long long max,
                      long long *out, struct bf_error *err) {
  const char *s = bf_cli_option(cli, name);
  if (!s) return 0;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  /* strtoll alone takes "2x" as 2 and "abc" as 0, and skips leading blanks. */
  bool digits =
      (*s >= '0' && *s <= '9') || ((*s == '-' || *s == '+') && s[1] >= '0' && s[1] <= '9');
  if (!digits || *end || errno == ERANGE || v < min || v > max) {
    if (max == LLONG_MAX)
      return bf_error_set(err, BF_E_USAGE, "%s takes a whole number of at least %lld, not '%s'",
                          name, min, s);
    return bf_error_set(err, BF_E_USAGE, "%s takes a whole number from %lld to %lld, not '%s'",
                        name, min, max, s);
  }
  *out = v;
  return 0;
}

int bf_cli_seconds_option(struct bf_cli *cli, const char *name, double max, double *out,
                          struct bf_error *err) {
  const char *s = bf_cli_option(cli, name);
  if (!s) return 0;
  char *end = NULL;
  double v = strtod(s, &end);
  bool digits = (*s >= '0' && *s <= '9') || (*s == '.' && s[1] >= '0' && s[1] <= '9');
  if (!digits || *end || !isfinite(v) || !(v > 0) || v > max)
    return bf_error_set(err, BF_E_USAGE,
                        "%s takes a number of seconds above 0 and at most %g, not '%s'", name, max,
                        s);
  *out = v;
  return 0;
}

int bf_cli_no_more_options(struct bf_cli *cli, const char *usage, struct bf_error *err) {
  (void)usage; /* main prints the command table's usage line after a usage error */
  for (int i = 0; i < cli->argc; i++)
    if (cli->argv[i][0] == '-' && cli->argv[i][1])
      return bf_error_set(err, BF_E_USAGE, "unknown option '%s'", cli->argv[i]);
  return 0;
}

/* The nearest folder holding backflow.yml from the current one upwards
 * ("." for the current one, so messages name files as before), or NULL.
 * Caller frees. */
static char *find_project_upwards(void) {
  if (access("backflow.yml", F_OK) == 0) return bf_xstrdup(".");
  char *dir = getcwd(NULL, 0);
  while (dir && strcmp(dir, "/")) {
    char *slash = strrchr(dir, '/');
    if (!slash) break;
    slash[slash == dir ? 1 : 0] = '\0'; /* "/a" becomes "/" */
    char *file = bf_xasprintf("%s/backflow.yml", strcmp(dir, "/") ? dir : "");
    bool found = access(file, F_OK) == 0;
    free(file);
    if (found) return dir;
  }
  free(dir);
  return NULL;
}

int bf_cli_project(struct bf_cli *cli, struct bf_project **out, struct bf_error *err) {
  int rc = bf_cli_project_lazy(cli, out, err);
  if (rc == 0 && (rc = bf_config_require_all((*out)->cfg, err))) {
    bf_project_free(*out);
    *out = NULL;
  }
  return rc;
}

int bf_cli_project_lazy(struct bf_cli *cli, struct bf_project **out, struct bf_error *err) {
  const char *env = getenv("BACKFLOW_PROJECT");
  if (cli->project_path || (env && *env)) return bf_project_load(cli->project_path, out, err);
  char *dir = find_project_upwards();
  /* Not found: loading "." reports "no project here" naming the current folder. */
  int rc = bf_project_load(dir ? dir : ".", out, err);
  free(dir);
  return rc;
}

void bf_cli_result_json(struct bf_buf *out, const char *sync, const struct bf_run_result *res,
                        const char *error) {
  const struct bf_run_counts *c = &res->counts;
  bf_buf_puts(out, "{\"sync\":");
  bf_json_cstr(out, sync);
  if (res->run_id) bf_buf_printf(out, ",\"run_id\":%lld", res->run_id);
  bf_buf_puts(out, ",\"status\":");
  bf_json_cstr(out, res->status ? res->status : "failed");
  bf_buf_printf(out,
                ",\"rows_read\":%lld,\"added\":%lld,\"changed\":%lld,\"removed\":%lld,"
                "\"unchanged\":%lld,\"skipped\":%lld,\"rejected\":%lld,\"failed\":%lld,"
                "\"duration_ms\":%lld,\"error\":",
                c->rows_read, c->added, c->changed, c->removed, c->unchanged, c->skipped,
                c->rejected, c->failed, res->duration_ms);
  if (error)
    bf_json_cstr(out, error);
  else
    bf_buf_puts(out, "null");
  bf_buf_putc(out, '}');
}

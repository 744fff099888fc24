#include <string.h>

#include "cli/cli.h"
#include "core/jsonw.h"
#include "core/runner.h"

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

int bf_cli_no_more_options(struct bf_cli *cli, const char *usage, struct bf_error *err) {
  for (int i = 0; i < cli->argc; i++)
    if (cli->argv[i][0] == '-' && cli->argv[i][1])
      return bf_error_set(err, BF_E_USAGE, "unknown option '%s' (usage: backflow %s)", cli->argv[i],
                          usage);
  return 0;
}

int bf_cli_project(struct bf_cli *cli, struct bf_project **out, struct bf_error *err) {
  return bf_project_load(cli->project_path, out, err);
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

/* backflow serve [--listen ADDR] */
#include "cli/cli.h"
#include "util/log.h"
#include "server/server.h"

int bf_cmd_serve(struct bf_cli *cli, struct bf_error *err) {
  const char *listen = bf_cli_option(cli, "--listen");
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  if (cli->argc != 0) return bf_error_set(err, BF_E_USAGE, "serve takes no arguments"), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project(cli, &p, err)) return bf_code_exit_status(err->code);
  /* A service says what it does: runs are logged at info level (-v: debug). */
  if (bf_log_level < BF_LOG_INFO) bf_log_level = BF_LOG_INFO;
  int rc = bf_serve(p, listen, err);
  bf_project_free(p);
  return rc ? bf_code_exit_status(rc) : 0;
}

/* backflow reset SYNC: forget what the destination holds; the next run
 * sends every row again. */
#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/state.h"

int bf_cmd_reset(struct bf_cli *cli, struct bf_error *err) {
  if (bf_cli_no_more_options(cli, "reset SYNC", err)) return 2;
  if (cli->argc != 1) return bf_error_set(err, BF_E_USAGE, "reset takes exactly one sync"), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project(cli, &p, err)) return bf_code_exit_status(err->code);
  int status = 0;
  char *dir = NULL;
  struct bf_state *st = NULL;
  if (!bf_project_find_sync(p, cli->argv[0], err)) {
    status = 2;
    goto out;
  }
  dir = bf_project_sync_dir(p, cli->argv[0]);
  if (access(dir, F_OK) != 0) {
    printf("%s: nothing to reset (never run)\n", cli->argv[0]);
    goto out;
  }
  if (bf_state_open(dir, true, &st, err) || bf_state_clear(st, err)) {
    status = bf_code_exit_status(err->code);
    goto out;
  }
  /* The sealed identifiers go too: nothing is kept for a sync that forgot. */
  char *vault = bf_xasprintf("%s/vault.bin", dir);
  unlink(vault);
  free(vault);
  printf("%s: state cleared; the next run sends every row\n", cli->argv[0]);
out:
  bf_state_free(st);
  free(dir);
  bf_project_free(p);
  return status;
}

/* backflow live setup|teardown SYNC */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/live.h"

int bf_cmd_live(struct bf_cli *cli, struct bf_error *err) {
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  bool setup = cli->argc == 2 && !strcmp(cli->argv[0], "setup");
  bool teardown = cli->argc == 2 && !strcmp(cli->argv[0], "teardown");
  if (!setup && !teardown)
    return bf_error_set(err, BF_E_USAGE, "expected 'live setup SYNC' or 'live teardown SYNC'"), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project(cli, &p, err)) return bf_code_exit_status(err->code);
  int rc = bf_live_setup(p, cli->argv[1], teardown, err);
  if (rc == 0 && teardown) printf("live capture of sync '%s' removed\n", cli->argv[1]);
  if (rc == 0 && setup)
    printf("live capture of sync '%s' installed; `backflow serve` or `backflow run %s --live` "
           "follows it\n",
           cli->argv[1], cli->argv[1]);
  bf_project_free(p);
  return bf_code_exit_status(rc);
}

/* Command-line front end: one cmd_<verb>.c per command, one table in main.c. */
#ifndef BF_CLI_H
#define BF_CLI_H

#include <stdbool.h>

#include "core/error.h"
#include "core/project.h"

struct bf_cli {
  const char *project_path; /* -p DIR */
  bool json;                /* --json */
  int argc;                 /* arguments after the command name */
  char **argv;
};

/* Each command returns an exit status (design.md §4) and prints its own
 * output; errors are returned in err and printed once by main. */
int bf_cmd_init(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_validate(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_plan(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_run(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_runs(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_errors(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_reset(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_types(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_serve(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_forget(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_pii(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_audit(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_live(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_doctor(struct bf_cli *cli, struct bf_error *err);

/* Option helpers: returns the value of --name VALUE / --name=VALUE and
 * removes it from cli->argv, or NULL. */
const char *bf_cli_option(struct bf_cli *cli, const char *name);
bool bf_cli_flag(struct bf_cli *cli, const char *name);
/* Fails with a usage error when an unknown --option is left. */
int bf_cli_no_more_options(struct bf_cli *cli, const char *usage, struct bf_error *err);

/* Loads the project named by -p / BACKFLOW_PROJECT / the current folder. */
int bf_cli_project(struct bf_cli *cli, struct bf_project **out, struct bf_error *err);

/* Formats a run/plan as JSON or as a line for people. */
struct bf_run_result;
struct bf_buf;
void bf_cli_result_json(struct bf_buf *out, const char *sync, const struct bf_run_result *res,
                        const char *error);

#endif

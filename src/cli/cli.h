/* Command-line front end: one cmd_<verb>.c per command, one table of
 * commands and options (commands.c) from which main parses the command line
 * and help, the man page and the shell completions are generated (help.c). */
#ifndef BF_CLI_H
#define BF_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "util/error.h"
#include "engine/project.h"

/* An option of a command, or a global one. */
struct bf_cli_opt {
  const char *name;  /* "--limit" */
  const char *alias; /* "-p", or NULL */
  const char *arg;   /* placeholder of its value ("N"), or NULL for a flag */
  const char *help;  /* one line */
};

struct bf_cli;
struct bf_cli_command {
  const char *name;
  int (*run)(struct bf_cli *cli, struct bf_error *err);
  const char *synopsis;             /* what follows the name, e.g. "SYNC... | --all" */
  const char *summary;              /* one line, for the list of commands */
  const char *description;          /* `help NAME` and the man page; lines end with \n */
  const char *complete;             /* what its arguments are: "sync", "type", "dir" or NULL */
  const struct bf_cli_opt *options; /* ends with an entry whose name is NULL */
};

/* Every command, in the order help lists them; ends with a NULL name. */
extern const struct bf_cli_command bf_cli_commands[];
/* Options every command takes, anywhere on the line; ends with a NULL name. */
extern const struct bf_cli_opt bf_cli_global_opts[];
/* The command named name, or NULL. */
const struct bf_cli_command *bf_cli_find_command(const char *name);

struct bf_cli {
  const struct bf_cli_command *command; /* the command being run */
  const char *project_path;             /* -p DIR */
  bool json;                            /* --json */
  int argc;                             /* arguments after the command name */
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
int bf_cmd_pause(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_resume(struct bf_cli *cli, struct bf_error *err);
int bf_cmd_help(struct bf_cli *cli, struct bf_error *err);

/* Help generated from the table (help.c). FILE is stdout or stderr. */
void bf_cli_print_usage(FILE *out);
void bf_cli_print_command_help(FILE *out, const struct bf_cli_command *c);
void bf_cli_print_man(FILE *out);
/* shell: "bash" or "zsh"; returns -1 for another. */
int bf_cli_print_completion(FILE *out, const char *shell);
/* The command reference as Markdown, for the README (`make docs`). */
void bf_cli_print_markdown(FILE *out);

/* Option helpers: returns the value of --name VALUE / --name=VALUE and
 * removes it from cli->argv, or NULL. */
const char *bf_cli_option(struct bf_cli *cli, const char *name);
bool bf_cli_flag(struct bf_cli *cli, const char *name);
/* The value of --name as a whole number in [min, max]: 0 with *out set (left
 * alone when the option is absent), or a usage error naming the option when
 * the value is not a decimal integer in range ("2x", "abc", "-1"). The one
 * parser of numeric options: every command uses it. */
int bf_cli_int_option(struct bf_cli *cli, const char *name, long long min, long long max,
                      long long *out, struct bf_error *err);
/* The same for a number of seconds with an optional fraction, in (0, max]. */
int bf_cli_seconds_option(struct bf_cli *cli, const char *name, double max, double *out,
                          struct bf_error *err);
/* Fails with a usage error when an unknown --option is left. The message
 * shows usage, or the command table's synopsis when usage is NULL. */
int bf_cli_no_more_options(struct bf_cli *cli, const char *usage, struct bf_error *err);

/* Loads the project named by -p / BACKFLOW_PROJECT, else the nearest folder
 * holding backflow.yml from the current one upwards (as git and dbt do). */
int bf_cli_project(struct bf_cli *cli, struct bf_project **out, struct bf_error *err);
/* The same without requiring every ${NAME} of the file to be set: for
 * commands that read only some of it and ask for that themselves
 * (bf_config_require_sync), or none (runs, errors). */
int bf_cli_project_lazy(struct bf_cli *cli, struct bf_project **out, struct bf_error *err);

/* errors --reveal (cmd_reveal.c): prints errs[n] of run_id with the primary
 * key of each, found by hashing the model's keys again. Returns the exit
 * status. */
struct bf_run_error;
int bf_cli_errors_reveal(struct bf_cli *cli, struct bf_project *p, const char *sync,
                         long long run_id, const struct bf_run_error *errs, size_t n,
                         struct bf_error *err);

/* Formats a run/plan as JSON or as a line for people. */
struct bf_run_result;
struct bf_buf;
void bf_cli_result_json(struct bf_buf *out, const char *sync, const struct bf_run_result *res,
                        const char *error);

#endif

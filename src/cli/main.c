#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "cli/version.h"
#include "util/log.h"
#include "engine/runner.h"

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
  stop_signal = sig;
  bf_stop_requested = 1;
}

/* The option of opts that arg names (--name, an alias, or --name=VALUE:
 * then *inline_value points at VALUE), or NULL. */
static const struct bf_cli_opt *match_opt(const struct bf_cli_opt *opts, const char *arg,
                                          const char **inline_value) {
  *inline_value = NULL;
  for (const struct bf_cli_opt *o = opts; o->name; o++) {
    size_t len = strlen(o->name);
    if (!strcmp(arg, o->name) || (o->alias && !strcmp(arg, o->alias))) return o;
    if (o->arg && !strncmp(arg, o->name, len) && arg[len] == '=') {
      *inline_value = arg + len + 1;
      return o;
    }
  }
  return NULL;
}

struct parsed {
  const struct bf_cli_command *cmd;
  bool help, version, man, list_syncs;
  const char *completion;
  char **rest; /* the command's arguments and options, in order; main frees */
  int n_rest;
};

/* Splits argv into global options (anywhere, as git and dbt accept them),
 * the command and its own arguments. Options are checked against the
 * command table here, so a command only sees options it declared. */
static int parse(int argc, char **argv, struct bf_cli *cli, struct parsed *pr,
                 struct bf_error *err) {
  pr->rest = bf_xcalloc((size_t)argc + 1, sizeof *pr->rest);
  bool positional_only = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *value;
    const struct bf_cli_opt *o;
    if (positional_only || a[0] != '-' || !a[1]) {
      if (!pr->cmd) {
        if (!(pr->cmd = bf_cli_find_command(a)))
          return bf_error_set(err, BF_E_USAGE, "unknown command '%s'", a);
      } else {
        pr->rest[pr->n_rest++] = argv[i];
      }
      continue;
    }
    if (!strcmp(a, "--")) {
      positional_only = true;
      continue;
    }
    if ((o = match_opt(bf_cli_global_opts, a, &value))) {
      if (o->arg && !value) {
        if (i + 1 >= argc)
          return bf_error_set(err, BF_E_USAGE, "option '%s' needs a value (%s)", a, o->arg);
        value = argv[++i];
      }
      if (!strcmp(o->name, "--project")) cli->project_path = value;
      if (!strcmp(o->name, "--verbose"))
        bf_log_level = bf_log_level == BF_LOG_INFO ? BF_LOG_DEBUG : BF_LOG_INFO;
      if (!strcmp(o->name, "--json")) cli->json = true;
      if (!strcmp(o->name, "--help")) pr->help = true;
      if (!strcmp(o->name, "--version")) pr->version = true;
      if (!strcmp(o->name, "--help-man")) pr->man = true;
      if (!strcmp(o->name, "--completion")) pr->completion = value;
      if (!strcmp(o->name, "--list-syncs")) pr->list_syncs = true;
      continue;
    }
    if (!pr->cmd) return bf_error_set(err, BF_E_USAGE, "unknown option '%s'", a);
    if (!(o = match_opt(pr->cmd->options, a, &value)))
      return bf_error_set(err, BF_E_USAGE, "unknown option '%s'", a);
    pr->rest[pr->n_rest++] = argv[i];
    if (o->arg && !value) {
      if (i + 1 >= argc)
        return bf_error_set(err, BF_E_USAGE, "option '%s' needs a value (%s)", a, o->arg);
      pr->rest[pr->n_rest++] = argv[++i];
    }
  }
  return 0;
}

static int list_syncs(struct bf_cli *cli, struct bf_error *err) {
  struct bf_project *p = NULL;
  if (bf_cli_project_lazy(cli, &p, err)) return bf_code_exit_status(err->code);
  for (size_t i = 0; i < p->cfg->n_syncs; i++) printf("%s\n", p->cfg->syncs[i].name);
  bf_project_free(p);
  return 0;
}

static void print_usage_line(FILE *out, const struct bf_cli_command *c) {
  fprintf(out, "usage: backflow %s%s%s\n", c->name, *c->synopsis ? " " : "", c->synopsis);
}

int main(int argc, char **argv) {
  struct bf_cli cli = {0};
  struct parsed pr = {0};
  struct bf_error err = {0};
  int status = 0;
  if (parse(argc, argv, &cli, &pr, &err)) {
    fprintf(stderr, "backflow%s%s: %s\n", pr.cmd ? " " : "", pr.cmd ? pr.cmd->name : "", err.msg);
    if (pr.cmd)
      print_usage_line(stderr, pr.cmd);
    else
      fprintf(stderr, "`backflow help` lists the commands and options\n");
    status = 2;
    goto out;
  }
  if (pr.version) {
    printf("backflow %s\n", BF_VERSION);
    goto out;
  }
  if (pr.man) {
    bf_cli_print_man(stdout);
    goto out;
  }
  if (pr.completion) {
    if (bf_cli_print_completion(stdout, pr.completion)) {
      fprintf(stderr, "backflow: --completion takes bash or zsh, not '%s'\n", pr.completion);
      status = 2;
    }
    goto out;
  }
  if (pr.list_syncs) {
    status = list_syncs(&cli, &err);
    if (err.code) fprintf(stderr, "backflow: %s\n", err.msg);
    goto out;
  }
  if (pr.help) {
    if (pr.cmd && strcmp(pr.cmd->name, "help"))
      bf_cli_print_command_help(stdout, pr.cmd);
    else
      bf_cli_print_usage(stdout);
    goto out;
  }
  if (!pr.cmd) {
    bf_cli_print_usage(stderr);
    status = 2;
    goto out;
  }
  cli.command = pr.cmd;
  cli.argc = pr.n_rest;
  cli.argv = pr.rest;

  struct sigaction sa = {0};
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  status = pr.cmd->run(&cli, &err);
  if (err.code) {
    fprintf(stderr, "backflow %s: %s\n", pr.cmd->name, err.msg);
    if (err.code == BF_E_USAGE) print_usage_line(stderr, pr.cmd);
    if (status == 0) status = bf_code_exit_status(err.code);
  }
  /* 130 is "ended by SIGINT"; a stop asked by SIGTERM says so the same way. */
  if (status == 130 && stop_signal) status = 128 + stop_signal;
  curl_global_cleanup();
out:
  free(pr.rest);
  return status;
}

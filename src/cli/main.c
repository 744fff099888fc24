#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/runner.h"

struct command {
  const char *name;
  int (*run)(struct bf_cli *cli, struct bf_error *err);
  const char *usage;
  const char *help;
};

static const struct command commands[] = {
    {"init", bf_cmd_init, "init [DIR] [--rows N]",
     "create an example project on SQLite with a file destination"},
    {"validate", bf_cmd_validate, "validate [--offline]",
     "check config, SQL, mappings and connectivity"},
    {"plan", bf_cmd_plan, "plan SYNC [--json] [--sample N]",
     "show what a run would send; changes nothing"},
    {"run", bf_cmd_run, "run SYNC... | --all [--full-resync] [--json] | SYNC --live",
     "run syncs now; --live: then follow the warehouse's changes until Ctrl-C"},
    {"live", bf_cmd_live, "live setup|teardown SYNC",
     "install or remove what a live sync needs in its warehouse"},
    {"runs", bf_cmd_runs, "runs [SYNC] [--json] [--limit N]", "run history"},
    {"errors", bf_cmd_errors, "errors SYNC [--run ID] [--json]", "row-level errors of a run"},
    {"reset", bf_cmd_reset, "reset SYNC | --all [--new-secret]",
     "forget sync state: the next run is a full resync; --new-secret: start over after a lost "
     "secret"},
    {"doctor", bf_cmd_doctor, "doctor",
     "check every file of the state directory; says which sync to reset"},
    {"serve", bf_cmd_serve, "serve [--listen HOST:PORT]",
     "scheduler, dashboard, API, /metrics and webhook intake"},
    {"types", bf_cmd_types, "types [--markdown]",
     "warehouse and destination types and their config keys"},
    {"forget", bf_cmd_forget, "forget --email A|--phone N|--key M=V|--retry",
     "erase a person from every destination (GDPR Art. 17 / CCPA); [--wait SECONDS] [--json]"},
    {"pii", bf_cmd_pii, "pii [--json]",
     "PII footprint per destination: which columns reach which fields, and how"},
    {"audit", bf_cmd_audit, "audit [--request N|--email A|...] [--json]",
     "erasure audit log, newest first (a person by --email, --phone or --key)"},
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *out) {
  fprintf(out, "usage: backflow [-p DIR] [-v] COMMAND [ARGS]\n\ncommands:\n");
  for (const struct command *c = commands; c->name; c++)
    fprintf(out, "  %-46s %s\n", c->usage, c->help);
  fprintf(out, "\nexit status: 0 ok, 1 some records rejected, 2 usage/config error,\n"
               "             3 warehouse error, 4 destination unavailable (nothing lost)\n");
}

static void on_stop_signal(int sig) {
  (void)sig;
  bf_stop_requested = 1;
}

int main(int argc, char **argv) {
  struct bf_cli cli = {0};
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if ((!strcmp(argv[i], "-p") || !strcmp(argv[i], "--project")) && i + 1 < argc) {
      cli.project_path = argv[++i];
    } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
      bf_log_level = bf_log_level == BF_LOG_INFO ? BF_LOG_DEBUG : BF_LOG_INFO;
    } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "backflow: unknown option '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return 2;
  }
  const char *name = argv[i];
  const struct command *cmd = NULL;
  for (const struct command *c = commands; c->name; c++)
    if (!strcmp(c->name, name)) cmd = c;
  if (!cmd) {
    fprintf(stderr, "backflow: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
  }
  cli.argc = argc - i - 1;
  cli.argv = argv + i + 1;
  cli.json = bf_cli_flag(&cli, "--json");
  if (bf_cli_flag(&cli, "--help")) {
    printf("usage: backflow %s\n  %s\n", cmd->usage, cmd->help);
    return 0;
  }

  struct sigaction sa = {0};
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  struct bf_error err = {0};
  int status = cmd->run(&cli, &err);
  if (err.code) {
    fprintf(stderr, "backflow %s: %s\n", name, err.msg);
    if (err.code == BF_E_USAGE) fprintf(stderr, "usage: backflow %s\n", cmd->usage);
    if (status == 0) status = bf_code_exit_status(err.code);
  }
  curl_global_cleanup();
  return status;
}

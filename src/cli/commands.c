/* The one table of commands and options. main.c parses the command line
 * with it (an option not listed here is refused before the command runs),
 * and help.c prints `help`, the man page, the README's command reference
 * and the bash/zsh completions from it, so they cannot drift apart.
 *
 * To add a command: write bf_cmd_<verb>() in cmd_<verb>.c, declare it in
 * cli.h, and add a row below (its options in a <verb>_opts array). */
#include <string.h>

#include "cli/cli.h"

#define END_OPTS                                                                                   \
  { NULL, NULL, NULL, NULL }

const struct bf_cli_opt bf_cli_global_opts[] = {
    {"--project", "-p", "DIR",
     "the project folder; default: $BACKFLOW_PROJECT, else the nearest one upwards"},
    {"--verbose", "-v", NULL, "log more (info; twice: debug)"},
    {"--json", NULL, NULL, "print one JSON document (commands that print a result)"},
    {"--help", "-h", NULL, "show help (of the command, when one is named)"},
    {"--version", NULL, NULL, "print the version"},
    {"--help-man", NULL, NULL, "print the manual page (roff)"},
    {"--completion", NULL, "SHELL", "print the completion script for bash or zsh"},
    {"--list-syncs", NULL, NULL, "print the project's sync names, one a line (for completion)"},
    END_OPTS,
};

static const struct bf_cli_opt no_opts[] = {END_OPTS};

static const struct bf_cli_opt init_opts[] = {
    {"--rows", NULL, "N", "rows in the example warehouse (default 5000)"},
    END_OPTS,
};

static const struct bf_cli_opt validate_opts[] = {
    {"--connect", NULL, NULL,
     "also contact every destination with a cheap authenticated call (a webhook gets a "
     "signed empty POST)"},
    {"--offline", NULL, NULL, "the default: check destination settings only (kept for scripts)"},
    END_OPTS,
};

static const struct bf_cli_opt plan_opts[] = {
    {"--all", NULL, NULL, "plan every sync"},
    {"--sample", NULL, "N", "records to show per sync (default 5; 0: none)"},
    END_OPTS,
};

static const struct bf_cli_opt run_opts[] = {
    {"--all", NULL, NULL, "run every sync, in config order"},
    {"--full-resync", NULL, NULL, "send every row again, not only what changed"},
    {"--live", NULL, NULL, "after the run, follow the warehouse's changes until Ctrl-C"},
    END_OPTS,
};

static const struct bf_cli_opt reset_opts[] = {
    {"--all", NULL, NULL, "reset every sync"},
    {"--new-secret", NULL, NULL, "with --all: start over under a new secret (after a lost one)"},
    END_OPTS,
};

static const struct bf_cli_opt runs_opts[] = {
    {"--limit", NULL, "N", "show the N newest runs (default 20)"},
    END_OPTS,
};

static const struct bf_cli_opt errors_opts[] = {
    {"--run", NULL, "ID", "the run to show (default: the sync's latest)"},
    {"--reveal", NULL, NULL,
     "also print each row's primary key, found by hashing the model's keys again (nothing is "
     "stored)"},
    END_OPTS,
};

static const struct bf_cli_opt serve_opts[] = {
    {"--listen", NULL, "HOST:PORT",
     "address of the dashboard and API (default: server.listen, else 127.0.0.1:8420)"},
    END_OPTS,
};

static const struct bf_cli_opt types_opts[] = {
    {"--markdown", NULL, NULL, "print Markdown tables (the README's reference)"},
    END_OPTS,
};

static const struct bf_cli_opt forget_opts[] = {
    {"--email", NULL, "ADDR", "the person's email address"},
    {"--phone", NULL, "NUM", "the person's phone number"},
    {"--key", NULL, "MODEL=VALUE", "the person's primary key in a model"},
    {"--from", NULL, "FILE", "erase everyone in FILE: one email or phone per line ('-': stdin)"},
    {"--retry", NULL, NULL, "finish every pending erasure request"},
    {"--lift", NULL, "N", "lift request N's suppression: runs may send the person again"},
    {"--wait", NULL, "SECONDS", "how long to wait for a run holding a sync (default 60)"},
    END_OPTS,
};

static const struct bf_cli_opt help_opts[] = {
    {"--markdown", NULL, NULL, "print the command reference in Markdown (the README's)"},
    END_OPTS,
};

static const struct bf_cli_opt audit_opts[] = {
    {"--request", NULL, "N", "only this erasure request"},
    {"--email", NULL, "ADDR", "only requests for this email address"},
    {"--phone", NULL, "NUM", "only requests for this phone number"},
    {"--key", NULL, "MODEL=VALUE", "only requests for this primary key"},
    END_OPTS,
};

const struct bf_cli_command bf_cli_commands[] = {
    {"init", bf_cmd_init, "[DIR] [--rows N]",
     "create an example project on SQLite with a file destination",
     "Creates DIR (default: the current folder) holding backflow.yml and warehouse.db, an\n"
     "example SQLite warehouse of customers, with one sync to a JSON Lines file.\n",
     "dir", init_opts},
    {"validate", bf_cmd_validate, "[--connect]",
     "check config, state folder, SQL, mappings and (with --connect) destinations",
     "Loads the configuration, checks the state folder can be written, runs every model's\n"
     "SQL, builds every mapping, parses every schedule, checks batch sizes against each\n"
     "destination's maximum and every destination's settings. Destinations are contacted\n"
     "only with --connect (a webhook receives a signed POST of {\"records\": []}). Every\n"
     "check runs even after one fails; each failure is listed and the exit status is the\n"
     "first failure's.\n",
     NULL, validate_opts},
    {"plan", bf_cmd_plan, "SYNC | --all [--sample N]",
     "show what a run would send; changes nothing",
     "Reads the model and compares it with the sync's state: how many records a run would\n"
     "add, change and remove, and a sample of them. Nothing is sent or written.\n",
     "sync", plan_opts},
    {"run", bf_cmd_run, "SYNC... | --all [--full-resync] | SYNC --live", "run syncs now",
     "Runs each named sync: reads its model, sends what changed since the last run, and\n"
     "records the run in the history. With --live, a full run of one sync and then its\n"
     "warehouse's changes as they commit, until Ctrl-C (exit 130).\n",
     "sync", run_opts},
    {"live", bf_cmd_live, "setup|teardown SYNC",
     "install or remove what a live sync needs in its warehouse",
     "setup installs the capture a live sync reads (a PostgreSQL publication and slot, or\n"
     "SQLite triggers); teardown removes it.\n",
     "live", no_opts},
    {"runs", bf_cmd_runs, "[SYNC] [--limit N]", "run history",
     "Lists runs, newest first, with their status (succeeded, partial, failed, cancelled,\n"
     "skipped, crashed) and counts.\n",
     "sync", runs_opts},
    {"errors", bf_cmd_errors, "SYNC [--run ID] [--reveal]", "row-level errors of a run",
     "Lists the rows a run rejected or the destination did not accept, by keyed hash, with\n"
     "the reason. With --reveal, the model is read again and every primary key hashed with\n"
     "the project secret on this machine, and each error is shown with its key; the keys\n"
     "are printed only, never stored. Needs the sync's warehouse and secret.\n",
     "sync", errors_opts},
    {"reset", bf_cmd_reset, "SYNC | --all [--new-secret]",
     "forget sync state: the next run is a full resync",
     "Clears what Backflow knows the destination holds for SYNC (or every sync with --all);\n"
     "the next run sends every row again. --all --new-secret starts over under a new\n"
     "project secret when the old one is lost: everything keyed by the old secret is moved\n"
     "to replaced-<time>/ in the state directory, and people erased so far can no longer be\n"
     "suppressed (the warning says how many).\n",
     "sync", reset_opts},
    {"pause", bf_cmd_pause, "SYNC", "stop scheduled runs of a sync until resumed",
     "Leaves a marker in the state folder (paused/SYNC) that `backflow serve` reads before\n"
     "each run: while it exists no scheduled, triggered or `after` run of SYNC starts (a run\n"
     "in flight finishes). An explicit `backflow run SYNC` still runs. Live syncs cannot be\n"
     "paused (exit 2): their replication slot would hold the warehouse's WAL.\n",
     "sync", no_opts},
    {"resume", bf_cmd_resume, "SYNC", "let a paused sync run on its schedule again",
     "Removes the marker `backflow pause` left; the sync's next scheduled instant runs.\n", "sync",
     no_opts},
    {"doctor", bf_cmd_doctor, "", "check every file of the state directory",
     "Checks the secret, every keyed file (key check, checksum, committed length) and\n"
     "runs.db without changing any, and says for each problem what to do: which sync to\n"
     "reset, or what to restore. Exit 2 when a problem was found.\n",
     NULL, no_opts},
    {"serve", bf_cmd_serve, "[--listen HOST:PORT]",
     "scheduler, dashboard, API, /metrics and webhook intake",
     "Runs syncs on their schedules and follows live syncs, and serves the dashboard, the\n"
     "API, Prometheus /metrics and webhook triggers. SIGTERM or SIGINT stops it after the\n"
     "batches in flight.\n",
     NULL, serve_opts},
    {"types", bf_cmd_types, "[NAME] [--markdown]",
     "warehouse and destination types and their config keys",
     "Prints every warehouse and destination type (or only NAME) with its configuration\n"
     "keys, their types, defaults and meaning: the tables that check configs.\n",
     "type", types_opts},
    {"forget", bf_cmd_forget,
     "--email ADDR | --phone NUM | --key MODEL=VALUE | --from FILE | --retry | --lift N",
     "erase a person from every destination (GDPR Art. 17 / CCPA)",
     "Finds the person in every model that holds them, deletes them from every destination,\n"
     "adds their keyed hash to the suppression list so no later run sends them, and writes\n"
     "the audit log (no plaintext). People who left the warehouse are found through each\n"
     "sync's identifier index. --retry finishes requests left pending; --lift N undoes a\n"
     "finished request's suppression (audited).\n",
     NULL, forget_opts},
    {"pii", bf_cmd_pii, "", "PII footprint per destination",
     "Which personal-data columns reach which destination fields, and how (in clear,\n"
     "hashed, dropped), how many records each destination holds, and pending erasures.\n",
     NULL, no_opts},
    {"audit", bf_cmd_audit, "[--request N | --email ADDR | --phone NUM | --key MODEL=VALUE]",
     "erasure audit log, newest first",
     "Prints the erasure audit log written by forget, newest first; a person is found by\n"
     "their keyed hash (the log never holds the value).\n",
     NULL, audit_opts},
    {"help", bf_cmd_help, "[COMMAND]", "show help for backflow or for a command", "", "command",
     help_opts},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL},
};

const struct bf_cli_command *bf_cli_find_command(const char *name) {
  for (const struct bf_cli_command *c = bf_cli_commands; c->name; c++)
    if (!strcmp(c->name, name)) return c;
  return NULL;
}

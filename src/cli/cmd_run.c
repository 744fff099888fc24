/* backflow run / backflow plan */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/live.h"
#include "engine/runner.h"
#include "spec/sync_keys.h"

static void print_human(const char *verb, const char *sync, const struct bf_run_result *res) {
  const struct bf_run_counts *c = &res->counts;
  if (!strcmp(verb, "plan")) {
    printf("plan %s: %lld to add, %lld to change, %lld to remove, %lld unchanged, %lld skipped, "
           "%lld rejected (%lld rows read in %.2fs)\n",
           sync, c->added, c->changed, c->removed, c->unchanged, c->skipped, c->rejected,
           c->rows_read, (double)res->duration_ms / 1000.0);
  } else {
    printf("run %lld %s: %s: %lld added, %lld changed, %lld removed, %lld unchanged, %lld skipped, "
           "%lld rejected, %lld failed (%lld rows read in %.2fs)\n",
           res->run_id, sync, res->status, c->added, c->changed, c->removed, c->unchanged,
           c->skipped, c->rejected, c->failed, c->rows_read, (double)res->duration_ms / 1000.0);
    if (c->rejected || c->failed)
      printf("  see the rows with: backflow errors %s --run %lld%s\n", sync, res->run_id,
             c->rejected ? " (--reveal: with their keys)" : "");
  }
}

/* Appends the plan of one sync to out as JSON, with its sample. */
static void plan_json(struct bf_buf *out, const char *sync, const struct bf_run_result *res,
                      const char *error) {
  bf_cli_result_json(out, sync, res, error);
  out->len--; /* reopen the object to add the sample */
  bf_buf_puts(out, ",\"sample\":[");
  for (size_t i = 0; i < res->sample.len; i++) {
    char ch = res->sample.data[i];
    if (ch == '\n') {
      if (i + 1 < res->sample.len) bf_buf_putc(out, ',');
    } else {
      bf_buf_putc(out, ch);
    }
  }
  bf_buf_puts(out, "],\"reasons\":[");
  for (size_t i = 0; i < res->n_reasons; i++) {
    bf_buf_puts(out, i ? ",{\"reason\":" : "{\"reason\":");
    bf_json_cstr(out, res->reasons[i].reason);
    bf_buf_printf(out, ",\"count\":%lld}", res->reasons[i].count);
  }
  bf_buf_puts(out, "]}");
}

static void plan_human(const char *sync, struct bf_run_result *res) {
  print_human("plan", sync, res);
  if (res->n_reasons) printf("would reject:\n");
  for (size_t i = 0; i < res->n_reasons; i++)
    printf("  %8lld  %s\n", res->reasons[i].count, res->reasons[i].reason);
  if (!res->sample.len) return;
  printf("sample:\n");
  const char *s = bf_buf_cstr(&res->sample);
  while (*s) {
    const char *nl = strchr(s, '\n');
    printf("  %.*s\n", (int)(nl - s), s);
    s = nl + 1;
  }
}

/* plan SYNC prints one plan ({...} with --json); plan --all one per sync
 * ({"plans": [...]}), going on after a sync that fails. */
int bf_cmd_plan(struct bf_cli *cli, struct bf_error *err) {
  bool all = bf_cli_flag(cli, "--all");
  long long sample = 5;
  if (bf_cli_int_option(cli, "--sample", 0, 10000, &sample, err) ||
      bf_cli_no_more_options(cli, NULL, err))
    return 2;
  if (all ? cli->argc != 0 : cli->argc != 1)
    return bf_error_set(err, BF_E_USAGE, "name one sync to plan, or --all"), 2;
  struct bf_project *p = NULL;
  /* A named sync needs only its own ${NAME}s (the runner asks for them). */
  if ((all ? bf_cli_project : bf_cli_project_lazy)(cli, &p, err))
    return bf_code_exit_status(err->code);
  size_t n = all ? p->cfg->n_syncs : 1;
  struct bf_buf out = {0};
  if (all) bf_buf_puts(&out, "{\"plans\":[");
  int status = 0;
  struct bf_error first_err = {0};
  for (size_t i = 0; i < n; i++) {
    const char *name = all ? p->cfg->syncs[i].name : cli->argv[0];
    struct bf_run_options opts = {
        .plan_only = true, .sample_limit = (size_t)sample, .progress = isatty(2) && !cli->json};
    struct bf_run_result res;
    struct bf_error plan_err = {0};
    int rc = bf_sync_run(p, name, &opts, &res, &plan_err);
    if (i) bf_buf_putc(&out, ',');
    plan_json(&out, name, &res, rc ? plan_err.msg : NULL);
    if (rc) {
      if (!first_err.code)
        first_err = plan_err;
      else
        fprintf(stderr, "backflow plan: %s\n", plan_err.msg);
      if (status == 0) status = bf_code_exit_status(rc);
    } else if (!cli->json) {
      plan_human(name, &res);
    }
    bf_run_result_release(&res);
    if (rc == BF_E_INTERRUPTED) {
      status = bf_code_exit_status(rc);
      break;
    }
  }
  if (all) bf_buf_puts(&out, "]}");
  bf_buf_putc(&out, '\n');
  if (cli->json) fwrite(out.data, 1, out.len, stdout);
  bf_buf_release(&out);
  bf_project_free(p);
  if (first_err.code) *err = first_err;
  return status;
}

/* run SYNC --live: follows the sync in the foreground until Ctrl-C. */
static int run_live(struct bf_cli *cli, bool other_options, struct bf_error *err) {
  if (other_options || cli->json || cli->argc != 1)
    return bf_error_set(err, BF_E_USAGE, "--live takes exactly one sync and no other option"), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project_lazy(cli, &p, err)) return bf_code_exit_status(err->code);
  struct bf_live_options o = {.print = true};
  fprintf(stderr, "backflow: sync '%s': a full run, then live changes (Ctrl-C stops)\n",
          cli->argv[0]);
  int rc = bf_live_follow(p, cli->argv[0], &o, err);
  bf_project_free(p);
  if (rc == BF_E_INTERRUPTED) {
    bf_error_clear(err);
    fprintf(stderr, "backflow: sync '%s': stopped; every change acknowledged so far is kept\n",
            cli->argv[0]);
    return 130; /* the shell's code for "ended by SIGINT" */
  }
  return bf_code_exit_status(rc);
}

int bf_cmd_run(struct bf_cli *cli, struct bf_error *err) {
  bool all = bf_cli_flag(cli, "--all");
  bool full = bf_cli_flag(cli, "--full-resync");
  bool live = bf_cli_flag(cli, "--live");
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  if (live) return run_live(cli, all || full, err);
  if (all == (cli->argc > 0))
    return bf_error_set(err, BF_E_USAGE, "name the syncs to run, or --all"), 2;
  struct bf_project *p = NULL;
  if ((all ? bf_cli_project : bf_cli_project_lazy)(cli, &p, err))
    return bf_code_exit_status(err->code);
  size_t n = all ? p->cfg->n_syncs : (size_t)cli->argc;
  for (size_t i = 0; !all && i < n; i++) {
    if (!bf_project_find_sync(p, cli->argv[i], err) ||
        bf_config_require_sync(p->cfg, cli->argv[i], err)) {
      bf_project_free(p);
      return 2;
    }
  }
  struct bf_buf json = {0};
  bf_buf_puts(&json, "{\"runs\":[");
  int status = 0;
  struct bf_error first_err = {0};
  for (size_t i = 0; i < n; i++) {
    const char *name = all ? p->cfg->syncs[i].name : cli->argv[i];
    struct bf_run_options opts = {
        .full_resync = full, .progress = isatty(2) && !cli->json, .log_skipped = true};
    struct bf_run_result res;
    struct bf_error run_err = {0};
    int rc = bf_sync_run(p, name, &opts, &res, &run_err);
    if (i) bf_buf_putc(&json, ',');
    bf_cli_result_json(&json, name, &res, rc ? run_err.msg : NULL);
    if (rc) {
      if (!first_err.code)
        first_err = run_err;
      else
        fprintf(stderr, "backflow run: %s\n", run_err.msg);
      if (status == 0 || status == 1) status = bf_code_exit_status(rc);
    } else {
      if (!cli->json) print_human("run", name, &res);
      if (!strcmp(res.status, "partial") && status == 0) status = 1;
      if (!strcmp(res.status, "succeeded") && res.counts.rejected) {
        char note[160];
        bf_sync_threshold_note(bf_config_sync(p->cfg, name), res.counts.rejected,
                               res.counts.rows_read, note, sizeof note);
        fprintf(stderr, "backflow run: warning: sync '%s': %s; see backflow errors %s --reveal\n",
                name, note, name);
      }
    }
    bf_run_result_release(&res);
    /* Ctrl-C stops the command, not only the sync it came during. */
    if (rc == BF_E_INTERRUPTED) {
      status = bf_code_exit_status(rc);
      break;
    }
  }
  bf_buf_puts(&json, "]}\n");
  if (cli->json) fwrite(json.data, 1, json.len, stdout);
  bf_buf_release(&json);
  bf_project_free(p);
  if (first_err.code) *err = first_err;
  return status;
}

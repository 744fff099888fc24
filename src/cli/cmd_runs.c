/* backflow runs / backflow errors */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "util/jsonw.h"
#include "engine/runlog.h"

static void format_time(long long ms, char *out, size_t cap) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int bf_cmd_runs(struct bf_cli *cli, struct bf_error *err) {
  long long limit = 20;
  if (bf_cli_int_option(cli, "--limit", 1, 1000000, &limit, err) ||
      bf_cli_no_more_options(cli, NULL, err))
    return 2;
  if (cli->argc > 1) return bf_error_set(err, BF_E_USAGE, "runs takes at most one sync"), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project_lazy(cli, &p, err)) return bf_code_exit_status(err->code);
  const char *sync = cli->argc ? cli->argv[0] : NULL;
  struct bf_runlog *log = NULL;
  struct bf_run_info *runs = NULL;
  size_t n = 0;
  int status = 0;
  if (sync && !bf_project_find_sync(p, sync, err)) {
    status = 2;
    goto out;
  }
  if (bf_runlog_open_readonly(p->state_dir, &log, err) ||
      bf_runlog_list(log, sync, (int)limit, &runs, &n, err)) {
    status = bf_code_exit_status(err->code);
    goto out;
  }
  if (cli->json) {
    struct bf_buf out = {0};
    bf_buf_puts(&out, "{\"runs\":[");
    for (size_t i = 0; i < n; i++) {
      struct bf_run_info *r = &runs[i];
      const struct bf_run_counts *c = &r->counts;
      if (i) bf_buf_putc(&out, ',');
      bf_buf_printf(&out, "{\"id\":%lld,\"sync\":", r->id);
      bf_json_cstr(&out, r->sync);
      bf_buf_puts(&out, ",\"status\":");
      bf_json_cstr(&out, r->status);
      bf_buf_printf(
          &out,
          ",\"started_ms\":%lld,\"finished_ms\":%lld,\"duration_ms\":%lld,\"rows_read\":%lld,"
          "\"added\":%lld,\"changed\":%lld,\"removed\":%lld,\"unchanged\":%lld,"
          "\"skipped\":%lld,\"rejected\":%lld,\"failed\":%lld,\"error\":",
          r->started_ms, r->finished_ms, r->finished_ms ? r->finished_ms - r->started_ms : 0,
          c->rows_read, c->added, c->changed, c->removed, c->unchanged, c->skipped, c->rejected,
          c->failed);
      if (r->error)
        bf_json_cstr(&out, r->error);
      else
        bf_buf_puts(&out, "null");
      bf_buf_putc(&out, '}');
    }
    bf_buf_puts(&out, "]}\n");
    fwrite(out.data, 1, out.len, stdout);
    bf_buf_release(&out);
  } else if (n == 0) {
    printf("no runs yet\n");
  } else {
    printf("%-6s %-20s %-10s %-20s %8s %8s %8s %8s %8s %8s %9s\n", "RUN", "SYNC", "STATUS",
           "STARTED", "ADDED", "CHANGED", "REMOVED", "REJECTED", "FAILED", "ROWS", "SECONDS");
    for (size_t i = 0; i < n; i++) {
      struct bf_run_info *r = &runs[i];
      char when[32];
      format_time(r->started_ms, when, sizeof when);
      printf("%-6lld %-20s %-10s %-20s %8lld %8lld %8lld %8lld %8lld %8lld %9.2f\n", r->id, r->sync,
             r->status, when, r->counts.added, r->counts.changed, r->counts.removed,
             r->counts.rejected, r->counts.failed, r->counts.rows_read,
             r->finished_ms ? (double)(r->finished_ms - r->started_ms) / 1000.0 : 0.0);
      if (r->error) printf("       error: %s\n", r->error);
    }
  }
out:
  bf_run_infos_free(runs, n);
  bf_runlog_close(log);
  bf_project_free(p);
  return status;
}

int bf_cmd_errors(struct bf_cli *cli, struct bf_error *err) {
  long long run = 0;
  bool reveal = bf_cli_flag(cli, "--reveal");
  if (bf_cli_int_option(cli, "--run", 1, LLONG_MAX, &run, err) ||
      bf_cli_no_more_options(cli, NULL, err))
    return 2;
  if (cli->argc != 1) return bf_error_set(err, BF_E_USAGE, "errors takes exactly one sync"), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project_lazy(cli, &p, err)) return bf_code_exit_status(err->code);
  struct bf_runlog *log = NULL;
  struct bf_run_error *errs = NULL;
  size_t n = 0;
  long long run_id = 0;
  int status = 0;
  if (!bf_project_find_sync(p, cli->argv[0], err)) {
    status = 2;
    goto out;
  }
  if (bf_runlog_open_readonly(p->state_dir, &log, err) ||
      bf_runlog_errors(log, cli->argv[0], run, &run_id, &errs, &n, err)) {
    status = bf_code_exit_status(err->code);
    goto out;
  }
  if (reveal) {
    status = bf_cli_errors_reveal(cli, p, cli->argv[0], run_id, errs, n, err);
  } else if (cli->json) {
    struct bf_buf out = {0};
    bf_buf_printf(&out, "{\"sync\":");
    bf_json_cstr(&out, cli->argv[0]);
    bf_buf_printf(&out, ",\"run_id\":%lld,\"errors\":[", run_id);
    for (size_t i = 0; i < n; i++) {
      if (i) bf_buf_putc(&out, ',');
      bf_buf_puts(&out, "{\"key_hash\":");
      bf_json_cstr(&out, errs[i].key_hash);
      bf_buf_puts(&out, ",\"column\":");
      if (errs[i].column)
        bf_json_cstr(&out, errs[i].column);
      else
        bf_buf_puts(&out, "null");
      bf_buf_puts(&out, ",\"reason\":");
      bf_json_cstr(&out, errs[i].reason);
      bf_buf_printf(&out, ",\"kind\":\"%s\"}", errs[i].failed ? "failed" : "rejected");
    }
    bf_buf_puts(&out, "]}\n");
    fwrite(out.data, 1, out.len, stdout);
    bf_buf_release(&out);
  } else {
    printf("run %lld of %s: %zu row-level error%s\n", run_id, cli->argv[0], n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++)
      printf("  %-32s %-12s %s\n", errs[i].key_hash[0] ? errs[i].key_hash : "(no key)",
             errs[i].column ? errs[i].column : "-", errs[i].reason);
  }
out:
  bf_run_errors_free(errs, n);
  bf_runlog_close(log);
  bf_project_free(p);
  return status;
}

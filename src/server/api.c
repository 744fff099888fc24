/* JSON API handlers: /healthz, /api/... and /metrics (the page is dashboard.c).
 * Run history and row errors come from the run log (<state_dir>/runs.db),
 * opened per request: SQLite in WAL mode lets readers and the runs' writers
 * work side by side. */
#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "engine/health.h"
#include "engine/pause.h"
#include "server/coordinator.h"
#include "server/server.h"

#define MAX_RUNS_LIMIT       1000
#define DEFAULT_ERRORS_LIMIT 1000
#define MAX_ERRORS_LIMIT     100000
/* Runs looked at for a sync's health: a failure streak longer than this is
 * shown as "at least" (health.no_success_seen). */
#define HEALTH_RUNS 100

static long long query_int(const struct bf_http_req *req, const char *name, long long dflt,
                           long long max) {
  const char *v = bf_http_query(req, name);
  if (!v || !*v) return dflt;
  char *end;
  long long n = strtoll(v, &end, 10);
  if (*end || n < 0) return dflt;
  return n > max ? max : n;
}

static struct bf_runlog *open_log(struct bf_http_req *req, struct bf_http_resp *resp) {
  struct bf_runlog *log = NULL;
  struct bf_error err = {0};
  if (bf_runlog_open(req->srv->p->state_dir, &log, &err)) {
    bf_log_error("http: %s", err.msg);
    bf_http_error(resp, 500, "cannot read the run log: %s", err.msg);
    return NULL;
  }
  return log;
}

static void counts_json(struct bf_buf *b, const struct bf_run_counts *c) {
  bf_buf_printf(b,
                "{\"rows_read\":%lld,\"added\":%lld,\"changed\":%lld,\"removed\":%lld,"
                "\"unchanged\":%lld,\"skipped\":%lld,\"rejected\":%lld,\"failed\":%lld}",
                c->rows_read, c->added, c->changed, c->removed, c->unchanged, c->skipped,
                c->rejected, c->failed);
}

static void run_json(struct bf_buf *b, const struct bf_run_info *r) {
  bf_buf_printf(b, "{\"id\":%lld,\"sync\":", r->id);
  bf_json_cstr(b, r->sync ? r->sync : "");
  bf_buf_puts(b, ",\"status\":");
  bf_json_cstr(b, r->status ? r->status : "");
  bf_buf_printf(b, ",\"started_ms\":%lld,\"finished_ms\":", r->started_ms);
  if (r->finished_ms > 0)
    bf_buf_printf(b, "%lld,\"duration_ms\":%lld", r->finished_ms, r->finished_ms - r->started_ms);
  else
    bf_buf_puts(b, "null,\"duration_ms\":null");
  bf_buf_puts(b, ",\"counts\":");
  counts_json(b, &r->counts);
  bf_buf_puts(b, ",\"error\":");
  if (r->error)
    bf_json_cstr(b, r->error);
  else
    bf_buf_puts(b, "null");
  bf_buf_putc(b, '}');
}

static void duration_text(char *out, size_t n, long long ms) {
  if (ms % 86400000 == 0)
    snprintf(out, n, "%lldd", ms / 86400000);
  else if (ms % 3600000 == 0)
    snprintf(out, n, "%lldh", ms / 3600000);
  else if (ms % 60000 == 0)
    snprintf(out, n, "%lldm", ms / 60000);
  else if (ms % 1000 == 0)
    snprintf(out, n, "%llds", ms / 1000);
  else
    snprintf(out, n, "%lldms", ms);
}

static void sync_json(struct bf_http_req *req, struct bf_runlog *log,
                      const struct bf_sync_config *s, struct bf_buf *b) {
  bf_buf_puts(b, "{\"name\":");
  bf_json_cstr(b, s->name);
  bf_buf_puts(b, ",\"model\":");
  bf_json_cstr(b, s->model);
  bf_buf_puts(b, ",\"destination\":");
  bf_json_cstr(b, s->destination);
  const struct bf_destination_config *dc = bf_config_destination(req->srv->p->cfg, s->destination);
  bf_buf_puts(b, ",\"destination_type\":");
  bf_json_cstr(b, dc && dc->type ? dc->type : "");
  bf_buf_puts(b, ",\"mode\":");
  bf_json_cstr(b, bf_sync_mode_name(s->mode));
  long long paused_ms = bf_pause_since_ms(req->srv->p->state_dir, s->name);
  bf_buf_printf(b, ",\"paused\":%s,\"paused_since_ms\":", paused_ms ? "true" : "false");
  if (paused_ms)
    bf_buf_printf(b, "%lld", paused_ms);
  else
    bf_buf_puts(b, "null");
  bf_buf_printf(b, ",\"pausable\":%s", s->schedule == BF_SCHEDULE_LIVE ? "false" : "true");
  bf_buf_puts(b, ",\"schedule\":");
  char text[160];
  switch (s->schedule) {
  case BF_SCHEDULE_EVERY: {
    char d[32];
    duration_text(d, sizeof d, s->every_ms);
    snprintf(text, sizeof text, "every %s", d);
    bf_buf_printf(b, "{\"kind\":\"every\",\"every_ms\":%lld,\"text\":", s->every_ms);
    break;
  }
  case BF_SCHEDULE_CRON:
    snprintf(text, sizeof text, "cron %.140s", s->cron);
    bf_buf_puts(b, "{\"kind\":\"cron\",\"cron\":");
    bf_json_cstr(b, s->cron);
    bf_buf_puts(b, ",\"text\":");
    break;
  case BF_SCHEDULE_AFTER:
    snprintf(text, sizeof text, "after %.140s", s->after);
    bf_buf_puts(b, "{\"kind\":\"after\",\"after\":");
    bf_json_cstr(b, s->after);
    bf_buf_puts(b, ",\"text\":");
    break;
  case BF_SCHEDULE_LIVE:
    snprintf(text, sizeof text, "live");
    bf_buf_puts(b, "{\"kind\":\"live\",\"text\":");
    break;
  default:
    snprintf(text, sizeof text, "manual");
    bf_buf_puts(b, "{\"kind\":\"manual\",\"text\":");
    break;
  }
  bf_json_cstr(b, text);
  bf_buf_putc(b, '}');
  struct bf_sched_status st = {0};
  st.next_ms = -1;
  bf_scheduler_status(req->srv->sched, s->name, &st);
  bf_buf_printf(b, ",\"running\":%s,\"queued\":%s,\"running_since_ms\":",
                st.running ? "true" : "false", st.queued ? "true" : "false");
  if (st.running)
    bf_buf_printf(b, "%lld", st.running_since_ms);
  else
    bf_buf_puts(b, "null");
  bf_buf_puts(b, ",\"next_run_ms\":");
  if (st.next_ms >= 0)
    bf_buf_printf(b, "%lld", st.next_ms);
  else
    bf_buf_puts(b, "null");
  bf_buf_puts(b, ",\"live\":");
  bf_live_workers_json(req->srv, s->name, b);
  bf_buf_puts(b, ",\"last_run\":");
  struct bf_run_info *runs = NULL;
  size_t n = 0;
  struct bf_error err = {0};
  /* Shared: every worker's runs, from the coordinator's table. */
  if (!log ||
      (req->srv->coord ? bf_coord_list(req->srv->coord, s->name, HEALTH_RUNS, &runs, &n, &err)
                       : bf_runlog_list(log, s->name, HEALTH_RUNS, &runs, &n, &err)))
    n = 0;
  if (n > 0)
    run_json(b, &runs[0]);
  else
    bf_buf_puts(b, "null");
  /* The run in flight with its counts so far (the runner updates them at
   * most every 250 ms). */
  bf_buf_puts(b, ",\"current_run\":");
  if (n > 0 && !strcmp(runs[0].status, "running")) {
    long long elapsed = bf_now_ms() - runs[0].started_ms;
    bf_buf_printf(b,
                  "{\"id\":%lld,\"started_ms\":%lld,\"elapsed_ms\":%lld,\"rows_per_s\":%.0f,"
                  "\"counts\":",
                  runs[0].id, runs[0].started_ms, elapsed,
                  elapsed > 0 ? (double)runs[0].counts.rows_read * 1000.0 / (double)elapsed : 0.0);
    counts_json(b, &runs[0].counts);
    bf_buf_putc(b, '}');
  } else {
    bf_buf_puts(b, "null");
  }
  struct bf_sync_health hl;
  bf_health_compute(runs, n, &hl);
  bf_buf_puts(b, ",\"health\":{\"last_success_ms\":");
  if (hl.last_success_ms)
    bf_buf_printf(b, "%lld,\"last_success_run_id\":%lld", hl.last_success_ms,
                  hl.last_success_run_id);
  else
    bf_buf_puts(b, "null,\"last_success_run_id\":null");
  bf_buf_puts(b, ",\"failing_since_ms\":");
  if (hl.failing_since_ms)
    bf_buf_printf(b, "%lld", hl.failing_since_ms);
  else
    bf_buf_puts(b, "null");
  bf_buf_printf(b, ",\"consecutive_failures\":%d,\"at_least\":%s}", hl.consecutive_failures,
                hl.no_success_seen && n >= HEALTH_RUNS ? "true" : "false");
  bf_run_infos_free(runs, n);
  bf_buf_putc(b, '}');
}

void bf_api_healthz(struct bf_http_req *req, struct bf_http_resp *resp) {
  bf_http_json(resp, 200);
  bf_buf_printf(&resp->body, "{\"status\":\"%s\",\"uptime_s\":%lld}\n",
                req->srv->stopping ? "stopping" : "ok",
                (bf_now_ms() - req->srv->started_ms) / 1000);
}

void bf_api_syncs(struct bf_http_req *req, struct bf_http_resp *resp) {
  struct bf_runlog *log = open_log(req, resp);
  if (!log) return;
  const struct bf_config *cfg = req->srv->p->cfg;
  bf_http_json(resp, 200);
  bf_buf_printf(&resp->body, "{\"now_ms\":%lld,\"syncs\":[", bf_now_ms());
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    if (i) bf_buf_putc(&resp->body, ',');
    sync_json(req, log, &cfg->syncs[i], &resp->body);
  }
  bf_buf_puts(&resp->body, "]}\n");
  bf_runlog_close(log);
}

static const struct bf_sync_config *find_sync(struct bf_http_req *req, struct bf_http_resp *resp) {
  const struct bf_sync_config *s = bf_config_sync(req->srv->p->cfg, req->params[0]);
  if (!s) bf_http_error(resp, 404, "unknown sync '%s'", req->params[0]);
  return s;
}

void bf_api_sync(struct bf_http_req *req, struct bf_http_resp *resp) {
  const struct bf_sync_config *s = find_sync(req, resp);
  if (!s) return;
  struct bf_runlog *log = open_log(req, resp);
  if (!log) return;
  bf_http_json(resp, 200);
  sync_json(req, log, s, &resp->body);
  bf_buf_putc(&resp->body, '\n');
  bf_runlog_close(log);
}

void bf_api_sync_runs(struct bf_http_req *req, struct bf_http_resp *resp) {
  const struct bf_sync_config *s = find_sync(req, resp);
  if (!s) return;
  struct bf_runlog *log = open_log(req, resp);
  if (!log) return;
  int limit = (int)query_int(req, "limit", 50, MAX_RUNS_LIMIT);
  struct bf_run_info *runs = NULL;
  size_t n = 0;
  struct bf_error err = {0};
  /* Shared: every worker's runs, from the coordinator's table. */
  if (req->srv->coord ? bf_coord_list(req->srv->coord, s->name, limit, &runs, &n, &err)
                      : bf_runlog_list(log, s->name, limit, &runs, &n, &err)) {
    bf_http_error(resp, 500, "%s", err.msg);
  } else {
    bf_http_json(resp, 200);
    bf_buf_puts(&resp->body, "{\"sync\":");
    bf_json_cstr(&resp->body, s->name);
    bf_buf_puts(&resp->body, ",\"runs\":[");
    for (size_t i = 0; i < n; i++) {
      if (i) bf_buf_putc(&resp->body, ',');
      run_json(&resp->body, &runs[i]);
    }
    bf_buf_puts(&resp->body, "]}\n");
  }
  bf_run_infos_free(runs, n);
  bf_runlog_close(log);
}

void bf_api_sync_trigger(struct bf_http_req *req, struct bf_http_resp *resp) {
  const struct bf_sync_config *s = find_sync(req, resp);
  if (!s) return;
  if (req->srv->stopping) {
    bf_http_error(resp, 503, "the server is shutting down");
    return;
  }
  struct bf_sched_status st = {0};
  if (bf_live_workers_reconcile(req->srv, s->name)) {
    bf_log_info("[sync %s → %s] reconciliation run requested through the API", s->name,
                s->destination);
    bf_http_json(resp, 202);
    bf_buf_puts(&resp->body, "{\"sync\":");
    bf_json_cstr(&resp->body, s->name);
    bf_buf_puts(&resp->body, ",\"accepted\":true,\"live\":true,\"queued\":true}\n");
    return;
  }
  if (bf_pause_is_paused(req->srv->p->state_dir, s->name)) {
    bf_http_error(resp, 409, "sync '%s' is paused; resume it to run it (POST /api/syncs/%s/resume)",
                  s->name, s->name);
    return;
  }
  bf_scheduler_trigger(req->srv->sched, s->name, &st);
  bf_log_info("[sync %s → %s] run requested through the API%s", s->name, s->destination,
              st.running ? " (queued after the run in flight)" : "");
  bf_http_json(resp, 202);
  bf_buf_puts(&resp->body, "{\"sync\":");
  bf_json_cstr(&resp->body, s->name);
  bf_buf_printf(&resp->body, ",\"accepted\":true,\"running\":%s,\"queued\":true}\n",
                st.running ? "true" : "false");
}

static void pause_or_resume(struct bf_http_req *req, struct bf_http_resp *resp, bool paused) {
  const struct bf_sync_config *s = find_sync(req, resp);
  if (!s) return;
  struct bf_error err = {0};
  bool changed = false;
  if (bf_pause_set(req->srv->p->state_dir, s, paused, &changed, &err)) {
    bf_http_error(resp, err.code == BF_E_USAGE ? 409 : 500, "%s", err.msg);
    return;
  }
  if (changed)
    bf_log_info("[sync %s → %s] %s through the API", s->name, s->destination,
                paused ? "paused" : "resumed");
  bf_http_json(resp, 200);
  bf_buf_puts(&resp->body, "{\"sync\":");
  bf_json_cstr(&resp->body, s->name);
  bf_buf_printf(&resp->body, ",\"paused\":%s,\"changed\":%s}\n", paused ? "true" : "false",
                changed ? "true" : "false");
}

void bf_api_sync_pause(struct bf_http_req *req, struct bf_http_resp *resp) {
  pause_or_resume(req, resp, true);
}

void bf_api_sync_resume(struct bf_http_req *req, struct bf_http_resp *resp) {
  pause_or_resume(req, resp, false);
}

void bf_api_run_errors(struct bf_http_req *req, struct bf_http_resp *resp) {
  char *end;
  long long id = strtoll(req->params[0], &end, 10);
  if (*end || id <= 0) {
    bf_http_error(resp, 400, "run id must be a positive integer, not '%s'", req->params[0]);
    return;
  }
  struct bf_runlog *log = open_log(req, resp);
  if (!log) return;
  const struct bf_config *cfg = req->srv->p->cfg;
  /* The run log looks errors up by sync and run: find the sync that owns
   * the run (one indexed lookup per sync). */
  struct bf_run_error *errs = NULL;
  size_t n = 0;
  const char *owner = NULL;
  for (size_t i = 0; i < cfg->n_syncs && !owner; i++) {
    long long resolved = 0;
    struct bf_error err = {0};
    if (bf_runlog_errors(log, cfg->syncs[i].name, id, &resolved, &errs, &n, &err) == 0)
      owner = cfg->syncs[i].name;
  }
  if (!owner) {
    bf_http_error(resp, 404, "no run %lld", id);
    bf_runlog_close(log);
    return;
  }
  size_t limit = (size_t)query_int(req, "limit", DEFAULT_ERRORS_LIMIT, MAX_ERRORS_LIMIT);
  bf_http_json(resp, 200);
  struct bf_buf *b = &resp->body;
  bf_buf_printf(b, "{\"run_id\":%lld,\"sync\":", id);
  bf_json_cstr(b, owner);
  bf_buf_puts(b, ",\"run\":");
  struct bf_run_info *runs = NULL;
  size_t nruns = 0;
  struct bf_error err = {0};
  const struct bf_run_info *run = NULL;
  if (bf_runlog_list(log, owner, MAX_RUNS_LIMIT, &runs, &nruns, &err) == 0)
    for (size_t i = 0; i < nruns && !run; i++)
      if (runs[i].id == id) run = &runs[i];
  if (run)
    run_json(b, run);
  else
    bf_buf_puts(b, "null");
  bf_run_infos_free(runs, nruns);
  size_t n_failed = 0;
  for (size_t i = 0; i < n; i++) n_failed += errs[i].failed;
  bf_buf_printf(b, ",\"total\":%zu,\"rejected\":%zu,\"failed\":%zu,\"truncated\":%s,\"errors\":[",
                n, n - n_failed, n_failed, n > limit ? "true" : "false");
  for (size_t i = 0; i < n && i < limit; i++) {
    if (i) bf_buf_putc(b, ',');
    bf_buf_puts(b, "{\"key_hash\":");
    bf_json_cstr(b, errs[i].key_hash ? errs[i].key_hash : "");
    bf_buf_puts(b, ",\"column\":");
    if (errs[i].column && *errs[i].column)
      bf_json_cstr(b, errs[i].column);
    else
      bf_buf_puts(b, "null");
    bf_buf_puts(b, ",\"reason\":");
    bf_json_cstr(b, errs[i].reason ? errs[i].reason : "");
    bf_buf_printf(b, ",\"kind\":\"%s\"}", errs[i].failed ? "failed" : "rejected");
  }
  bf_buf_puts(b, "]}\n");
  bf_run_errors_free(errs, n);
  bf_runlog_close(log);
}

void bf_api_metrics(struct bf_http_req *req, struct bf_http_resp *resp) {
  const struct bf_config *cfg = req->srv->p->cfg;
  bool *running = bf_xcalloc(cfg->n_syncs + 1, sizeof *running);
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    struct bf_sched_status st = {0};
    if (bf_scheduler_status(req->srv->sched, cfg->syncs[i].name, &st) == 0) running[i] = st.running;
  }
  resp->status = 200;
  resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
  bf_metrics_write(req->srv->metrics, running, &resp->body);
  bf_live_workers_metrics(req->srv, &resp->body);
  free(running);
}

/* The live syncs of `backflow serve`: one thread per `schedule: live` sync
 * runs bf_live_follow() for as long as the server runs. Their runs go to
 * the same metrics and alerts as scheduled runs; their lag is on /metrics
 * and in the API. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/live.h"
#include "util/log.h"
#include "server/server.h"

struct bf_live_worker {
  struct bf_server *srv;
  const char *sync;
  struct bf_live_monitor monitor;
  pthread_t thread;
  bool started;
};

/* Runs and history rows count as runs for metrics and alerts. */
static void live_finished(void *ctx, const char *sync, const struct bf_run_result *rr) {
  struct bf_live_worker *w = ctx;
  struct bf_sched_result res;
  memset(&res, 0, sizeof res);
  res.run_id = rr->run_id;
  res.status = rr->status ? rr->status : "failed";
  res.counts = rr->counts;
  res.duration_ms = rr->duration_ms;
  res.started_ms = bf_now_ms() - rr->duration_ms;
  res.code = rr->code;
  bf_metrics_observe_run(w->srv->metrics, sync, &res);
  bf_alerts_observe(w->srv->alerts, sync, &res);
}

static void *worker_main(void *arg) {
  struct bf_live_worker *w = arg;
  struct bf_live_options o = {.monitor = &w->monitor, .finished = live_finished, .ctx = w};
  struct bf_error err = {0};
  int rc = bf_live_follow(w->srv->p, w->sync, &o, &err);
  if (rc && rc != BF_E_INTERRUPTED)
    bf_log_error("[sync %s] live sync stopped: %s", w->sync, err.msg);
  return NULL;
}

int bf_live_workers_start(struct bf_server *srv, struct bf_error *err) {
  const struct bf_config *cfg = srv->p->cfg;
  srv->live = bf_xcalloc(cfg->n_syncs ? cfg->n_syncs : 1, sizeof *srv->live);
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    if (cfg->syncs[i].schedule != BF_SCHEDULE_LIVE) continue;
    struct bf_live_worker *w = &srv->live[srv->n_live++];
    w->srv = srv;
    w->sync = cfg->syncs[i].name;
    bf_live_monitor_init(&w->monitor);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc)
      return bf_error_set(err, BF_E_IO, "cannot start the live sync thread of '%s': %s", w->sync,
                          strerror(rc));
    w->started = true;
  }
  return 0;
}

void bf_live_workers_stop(struct bf_server *srv) {
  for (size_t i = 0; i < srv->n_live; i++) {
    if (srv->live[i].started) pthread_join(srv->live[i].thread, NULL);
    bf_live_monitor_destroy(&srv->live[i].monitor);
  }
  free(srv->live);
  srv->live = NULL;
  srv->n_live = 0;
}

static struct bf_live_worker *find(struct bf_server *srv, const char *sync) {
  for (size_t i = 0; i < srv->n_live; i++)
    if (!strcmp(srv->live[i].sync, sync)) return &srv->live[i];
  return NULL;
}

bool bf_live_workers_reconcile(struct bf_server *srv, const char *sync) {
  struct bf_live_worker *w = find(srv, sync);
  if (!w) return false;
  pthread_mutex_lock(&w->monitor.mu);
  w->monitor.reconcile_requested = true;
  pthread_mutex_unlock(&w->monitor.mu);
  return true;
}

void bf_live_workers_json(struct bf_server *srv, const char *sync, struct bf_buf *b) {
  struct bf_live_worker *w = find(srv, sync);
  if (!w) {
    bf_buf_puts(b, "null");
    return;
  }
  struct bf_live_monitor m;
  bf_live_monitor_read(&w->monitor, &m);
  bf_buf_printf(b,
                "{\"state\":\"%s\",\"lag_seconds\":%.3f,\"lag_bytes\":%lld,\"changes\":%lld,"
                "\"pushed\":%lld,\"last_change_ms\":",
                bf_live_state_name(m.state), m.lag_seconds, m.lag_bytes, m.changes, m.pushed);
  if (m.last_change_ms)
    bf_buf_printf(b, "%lld", m.last_change_ms);
  else
    bf_buf_puts(b, "null");
  bf_buf_puts(b, ",\"error\":");
  if (m.last_error[0])
    bf_json_cstr(b, m.last_error);
  else
    bf_buf_puts(b, "null");
  bf_buf_putc(b, '}');
}

static void sync_label(struct bf_buf *out, const char *metric, const char *sync) {
  bf_buf_printf(out, "%s{sync=\"", metric);
  for (const char *c = sync; *c; c++) {
    if (*c == '"' || *c == '\\') bf_buf_putc(out, '\\');
    if (*c == '\n') {
      bf_buf_puts(out, "\\n");
      continue;
    }
    bf_buf_putc(out, *c);
  }
  bf_buf_puts(out, "\"} ");
}

void bf_live_workers_metrics(struct bf_server *srv, struct bf_buf *out) {
  if (!srv->n_live) return;
  static const struct {
    const char *name, *type, *help;
  } families[] = {
      {"backflow_live_lag_seconds", "gauge",
       "Seconds since the oldest warehouse commit a live sync has not yet delivered."},
      {"backflow_live_lag_bytes", "gauge",
       "PostgreSQL: WAL bytes between the server's end of WAL and the slot's confirmed "
       "position; SQLite: captured changes waiting."},
      {"backflow_live_changes_total", "counter", "Changed keys a live sync received."},
      {"backflow_live_following", "gauge", "1 while the live sync follows its change feed."},
  };
  for (size_t f = 0; f < sizeof families / sizeof *families; f++) {
    bf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                  families[f].name, families[f].type);
    for (size_t i = 0; i < srv->n_live; i++) {
      struct bf_live_monitor m;
      bf_live_monitor_read(&srv->live[i].monitor, &m);
      sync_label(out, families[f].name, srv->live[i].sync);
      switch (f) {
      case 0: bf_buf_printf(out, "%.3f\n", m.lag_seconds); break;
      case 1: bf_buf_printf(out, "%lld\n", m.lag_bytes); break;
      case 2: bf_buf_printf(out, "%lld\n", m.changes); break;
      default: bf_buf_printf(out, "%d\n", m.state == BF_LIVE_FOLLOWING); break;
      }
    }
  }
}

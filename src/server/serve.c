/* bf_serve(): wires the scheduler, runs, metrics, alerts and the HTTP
 * server together, and stops them in order on SIGTERM/SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/log.h"
#include "engine/pause.h"
#include "engine/runner.h"
#include "server/coordinator.h"
#include "server/hook_events.h"
#include "server/server.h"

/* A run that failed before the runner logged it (warehouse unreachable,
 * SQL error, bad destination settings) still belongs in the history the
 * dashboard and `backflow runs` show. */
static void log_early_failure(struct bf_server *srv, const char *sync,
                              struct bf_sched_result *res) {
  struct bf_runlog *log = NULL;
  struct bf_error err = {0};
  if (bf_runlog_open(srv->p->state_dir, &log, &err) == 0 &&
      bf_runlog_begin(log, sync, &res->run_id, &err) == 0)
    bf_runlog_finish(log, res->run_id, "failed", &res->counts, res->error, &err);
  if (err.code) bf_log_warn("[sync %s] cannot log the failed run: %s", sync, err.msg);
  bf_runlog_close(log);
}

static void run_sync(void *ctx, const char *sync, struct bf_sched_result *res) {
  struct bf_server *srv = ctx;
  const struct bf_sync_config *sc = bf_config_sync(srv->p->cfg, sync);
  if (srv->stopping) { /* picked just as the server began to stop */
    res->status = "skipped";
    return;
  }
  struct bf_run_options opts = {.log_skipped = true};
  struct bf_run_result rr;
  struct bf_error err = {0};
  int rc = bf_sync_run(srv->p, sync, &opts, &rr, &err);
  res->run_id = rr.run_id;
  res->counts = rr.counts;
  res->duration_ms = rr.duration_ms;
  res->code = rc;
  res->status = rr.status ? rr.status : "failed";
  if (rc == BF_E_LOCKED)
    res->status = "skipped"; /* `backflow run` holds it; the next run catches up */
  if (rc) snprintf(res->error, sizeof res->error, "%s", err.msg);
  bf_run_result_release(&rr);
  if (rc && rc != BF_E_LOCKED && res->run_id == 0) log_early_failure(srv, sync, res);
  const struct bf_run_counts *c = &res->counts;
  if (rc == BF_E_LOCKED)
    bf_log_warn("[sync %s → %s] skipped: %s", sync, sc->destination, err.msg);
  else if (rc)
    bf_log_error("[sync %s → %s] run %lld failed after %.1fs: %s", sync, sc->destination,
                 res->run_id, (double)res->duration_ms / 1000.0, err.msg);
  else
    bf_log_info("[sync %s → %s] run %lld %s in %.1fs: %lld added, %lld changed, %lld removed, "
                "%lld unchanged, %lld rejected, %lld failed",
                sync, sc->destination, res->run_id, res->status, (double)res->duration_ms / 1000.0,
                c->added, c->changed, c->removed, c->unchanged, c->rejected, c->failed);
}

static bool sync_paused(void *ctx, const char *sync) {
  struct bf_server *srv = ctx;
  return bf_pause_is_paused(srv->p->state_dir, sync);
}

static void run_finished(void *ctx, const char *sync, const struct bf_sched_result *res) {
  struct bf_server *srv = ctx;
  bf_metrics_observe_run(srv->metrics, sync, res);
  bf_alerts_observe(srv->alerts, sync, res);
}

/* With a coordinator, the runs the local scheduler makes (triggers) go into
 * the shared history too. */
static void local_run_finished(void *ctx, const char *sync, const struct bf_sched_result *res) {
  struct bf_server *srv = ctx;
  run_finished(ctx, sync, res);
  bf_coord_record(srv->coord, sync, res);
}

/* server.token, or a token generated once into <state_dir>/server_token
 * (mode 0600) so that `backflow serve` works out of the box yet never
 * unauthenticated. */
static int load_token(struct bf_server *srv, struct bf_error *err) {
  const char *tok = srv->p->cfg->server_token;
  char buf[128];
  if (!tok || !*tok) {
    char *path = bf_xasprintf("%s/server_token", srv->p->state_dir);
    mkdir(srv->p->state_dir, 0700);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      unsigned char raw[24];
      randombytes_buf(raw, sizeof raw);
      sodium_bin2hex(buf, sizeof buf, raw, sizeof raw);
      fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0 || write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf) || fsync(fd)) {
        int rc = bf_error_set(err, BF_E_IO, "%s: cannot write: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        free(path);
        return rc;
      }
      close(fd);
      bf_log_warn("no 'server: {token: ...}' in %s: generated a token into %s", srv->p->cfg->path,
                  path);
    } else {
      ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
      if (fd >= 0) close(fd);
      if (n <= 0) {
        int rc = bf_error_set(err, BF_E_IO, "%s: cannot read the server token: %s", path,
                              n == 0 ? "empty" : strerror(errno));
        free(path);
        return rc;
      }
      buf[n] = 0;
      buf[strcspn(buf, "\r\n")] = 0;
    }
    free(path);
    tok = buf;
  }
  srv->roles = bf_roles_new(srv->p->cfg, tok);
  sodium_memzero(buf, sizeof buf);
  return 0;
}

/* What the run log says about each sync before we start. */
static int seed_from_runlog(struct bf_server *srv, struct bf_error *err) {
  struct bf_runlog *log = NULL;
  int rc = bf_runlog_open(srv->p->state_dir, &log, err);
  if (rc) return rc;
  const struct bf_config *cfg = srv->p->cfg;
  for (size_t i = 0; i < cfg->n_syncs && rc == 0; i++) {
    struct bf_run_info *runs = NULL;
    size_t n = 0;
    rc = bf_runlog_list(log, cfg->syncs[i].name, 100, &runs, &n, err);
    if (rc == 0 && n > 0) {
      bf_scheduler_set_last_start(srv->sched, cfg->syncs[i].name, runs[0].started_ms);
      bf_alerts_seed(srv->alerts, &runs[0]);
      for (size_t k = 0; k < n; k++)
        if (!strcmp(runs[k].status, "succeeded") || !strcmp(runs[k].status, "partial")) {
          bf_metrics_set_last_success(srv->metrics, cfg->syncs[i].name, runs[k].finished_ms);
          break;
        }
    }
    bf_run_infos_free(runs, n);
  }
  bf_runlog_close(log);
  return rc;
}

int bf_serve(struct bf_project *p, const char *listen, struct bf_error *err) {
  struct bf_server srv = {.p = p, .started_ms = bf_now_ms()};
  sigset_t stop_signals, old_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP); /* reload (reload.c) */
  bool reload = false;
  int listen_fd = -1;
  bool masked = false;
  int rc;
  /* Everything that can be wrong in the configuration, before any thread. */
  if ((rc = bf_project_secret(p, true, err)) < 0) goto out;
  rc = 0;
  if ((rc = load_token(&srv, err))) goto out;
  if ((rc = bf_alerts_new(p->cfg, &srv.alerts, err))) goto out;
  if ((rc = bf_hooks_check(p->cfg, err))) goto out;
  srv.metrics = bf_metrics_new(p->cfg);
  struct bf_sched_ops ops = {
      .run = run_sync, .finished = run_finished, .paused = sync_paused, .ctx = &srv};
  struct bf_sched_ops local_ops = ops;
  if (p->cfg->coord_warehouse) {
    if ((rc = bf_coord_new(p->cfg, &ops, &srv.coord, err))) goto out;
    local_ops.finished = local_run_finished;
  }
  if ((rc = bf_scheduler_new(p->cfg, &local_ops, 0, &srv.sched, err))) goto out;
  if ((rc = seed_from_runlog(&srv, err))) goto out;

  /* Signals are taken by sigwait below: every thread created from here on
   * inherits the mask, so no thread is interrupted mid-request. */
  pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  masked = true;
  srv.hooks = bf_hook_store_new(p->cfg, bf_live_workers_nudge, &srv);
  if ((rc = bf_erasure_worker_start(&srv, err))) goto out; /* before the API can reach it */
  if ((rc = bf_http_start(&srv, listen ? listen : p->cfg->server_listen, err))) goto out;
  bf_alerts_set_base_url(srv.alerts,
                         p->cfg->server_public_url ? p->cfg->server_public_url : srv.url);
  if ((rc = bf_alerts_start(srv.alerts, err))) goto out;
  /* Shared: the coordinator's table says when syncs run, the local
   * scheduler only takes triggers. */
  if ((rc = bf_scheduler_start(srv.sched, !srv.coord, err))) goto out;
  if (srv.coord && (rc = bf_coord_start(srv.coord, err))) goto out;
  if ((rc = bf_live_workers_start(&srv, err))) goto out;
  __atomic_store_n(&srv.live_ready, 1, __ATOMIC_RELEASE);
  printf("listening on %s\n", srv.url);
  fflush(stdout);
  bf_log_info("serving %zu syncs on %s (dashboard: %s/ ; %zu alert rules)", p->cfg->n_syncs,
              srv.url, srv.url, bf_alerts_count(srv.alerts));

  while (!bf_stop_requested) {
    struct timespec one_second = {1, 0};
    int sig = sigtimedwait(&stop_signals, NULL, &one_second);
    if (sig == SIGTERM || sig == SIGINT) {
      bf_log_info("received %s: stopping; runs in flight stop after their batch",
                  sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if (sig == SIGHUP) bf_reload_request(&srv, "SIGHUP");
    if (bf_reload_due(&srv)) {
      reload = true;
      break;
    }
  }
out:
  /* Order: no new runs, then runs in flight stop after their batch and are
   * joined, then the HTTP server stops (hooks in flight are committed),
   * then live syncs, then queued alerts go out. */
  srv.stopping = 1;
  bf_stop_requested = 1;
  bf_coord_stop(srv.coord);
  bf_scheduler_stop(srv.sched);
  if (reload) listen_fd = bf_http_quiesce(&srv);
  bf_http_stop(&srv);
  bf_hook_store_free(srv.hooks);
  srv.hooks = NULL;
  bf_erasure_worker_stop(&srv);
  bf_live_workers_stop(&srv);
  bf_alerts_stop(srv.alerts);
  bf_scheduler_free(srv.sched);
  bf_coord_free(srv.coord);
  bf_alerts_free(srv.alerts);
  bf_metrics_free(srv.metrics);
  bf_roles_free(srv.roles);
  if (masked) pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
  if (reload && rc == 0) return bf_reload_exec(listen_fd, err); /* returns only on failure */
  if (rc == 0) bf_log_info("stopped");
  return rc;
}

/* `backflow serve`: the scheduler, the HTTP server (dashboard, JSON API,
 * /metrics, /hooks), alerts. This header is shared by the files of
 * src/server/; the CLI calls only bf_serve(). docs/server.md is the user's
 * guide. */
#ifndef BF_SERVER_H
#define BF_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"
#include "util/jsonw.h"
#include "engine/project.h"
#include "engine/runlog.h"
#include "server/roles.h"
#include "server/scheduler.h"

/* Runs the server until SIGTERM or SIGINT, then stops gracefully: no new
 * run starts, runs in flight stop after their batch (nothing acknowledged
 * is lost), threads are joined. listen (HOST:PORT, may be NULL) overrides
 * server.listen; port 0 picks a free port. The first line on stdout is
 * "listening on http://HOST:PORT". Returns 0 after a graceful stop. */
int bf_serve(struct bf_project *p, const char *listen, struct bf_error *err);

/* ---- metrics.c: counters for /metrics (Prometheus text format). */
struct bf_metrics;
struct bf_metrics *bf_metrics_new(const struct bf_config *cfg);
void bf_metrics_free(struct bf_metrics *m);
void bf_metrics_observe_run(struct bf_metrics *m, const char *sync,
                            const struct bf_sched_result *res);
/* Seeds the last success time of sync from the run log (unix ms). */
void bf_metrics_set_last_success(struct bf_metrics *m, const char *sync, long long finished_ms);
/* result: stored | bad_signature | bad_request | error */
void bf_metrics_hook(struct bf_metrics *m, const char *destination, const char *result,
                     long long events);
/* Appends the exposition; running[i] tells whether sync i runs now. */
void bf_metrics_write(struct bf_metrics *m, const bool *running, struct bf_buf *out);

/* ---- alerts.c: `alerts:` webhooks, one per state change of a sync. */
struct bf_alerts;
/* Checks every `alerts:` list of cfg (top level, and per sync where a sync
 * has its own list, which replaces the top-level one for that sync). */
int bf_alerts_new(const struct bf_config *cfg, struct bf_alerts **out, struct bf_error *err);
void bf_alerts_free(struct bf_alerts *a);
/* The state of sync before the server started (its last logged run). */
void bf_alerts_seed(struct bf_alerts *a, const struct bf_run_info *last);
/* Evaluates a finished run; queues the alerts its state change calls for. */
void bf_alerts_observe(struct bf_alerts *a, const char *sync, const struct bf_sched_result *res);
/* Alerts link to the run's page under base (server.public_url, else the
 * address the server listens on); copied. Call before bf_alerts_start. */
void bf_alerts_set_base_url(struct bf_alerts *a, const char *base);
int bf_alerts_start(struct bf_alerts *a, struct bf_error *err);
/* Sends what is queued (each attempt bounded by a short timeout) and joins. */
void bf_alerts_stop(struct bf_alerts *a);
/* Number of rules (for the startup log). */
size_t bf_alerts_count(const struct bf_alerts *a);

/* ---- http.c: the HTTP server and its routes table. */
struct bf_server {
  struct bf_project *p;
  struct bf_scheduler *sched;
  struct bf_metrics *metrics;
  struct bf_alerts *alerts;
  struct bf_roles *roles; /* roles.h: that token (admin) and server.tokens */
  long long started_ms;
  volatile sig_atomic_t stopping;
  struct MHD_Daemon *daemon;
  char *url;                   /* http://HOST:PORT actually bound */
  struct bf_live_worker *live; /* live_workers.c: one per `schedule: live` sync */
  size_t n_live;
  struct bf_hook_store *hooks;        /* hook_store.c: the group commit of /hooks */
  int live_ready;                     /* live workers all started (atomic) */
  struct bf_erasure_worker *erasures; /* erasures.c */
  int reload_requested;               /* reload.c (atomic) */
  int active_requests;                /* HTTP requests being served (atomic) */
  struct bf_coord *coord;             /* coordinator.c: the shared schedule, or NULL */
};

/* ---- reload.c: SIGHUP or a studio save restarts the server in place. */
void bf_reload_request(struct bf_server *srv, const char *why);
/* True once a reload was asked for, nothing runs, and the project loads. */
bool bf_reload_due(struct bf_server *srv);
/* The listening socket a reloaded server inherited, or -1. */
int bf_reload_inherited_fd(void);
/* Executes the server again (returns only on failure). */
int bf_reload_exec(int listen_fd, struct bf_error *err);

/* ---- erasures.c: the erasure API's worker thread. */
int bf_erasure_worker_start(struct bf_server *srv, struct bf_error *err);
void bf_erasure_worker_stop(struct bf_server *srv);

/* ---- live_workers.c: the `schedule: live` syncs, one thread each. */
int bf_live_workers_start(struct bf_server *srv, struct bf_error *err);
/* Joins them (bf_stop_requested set first makes them stop). */
void bf_live_workers_stop(struct bf_server *srv);
/* Run now on a live sync: a reconciliation run. False when sync is not live. */
bool bf_live_workers_reconcile(struct bf_server *srv, const char *sync);
/* {"state":..,"lag_seconds":..,...} or null when sync is not live. */
void bf_live_workers_json(struct bf_server *srv, const char *sync, struct bf_buf *b);
void bf_live_workers_metrics(struct bf_server *srv, struct bf_buf *out);
/* bf_hook_nudge_fn (ctx: the server): the live syncs of destination look
 * the keys idents up again (an event may have changed their model row). */
void bf_live_workers_nudge(void *srv, const char *destination, const char *const *idents, size_t n);

/* A request as handlers see it. */
struct bf_http_req {
  struct bf_server *srv;
  const char *method;
  const char *path;
  char *params[2];  /* values of {placeholders} in the route, in order */
  const char *body; /* NUL-terminated; body_len bytes */
  size_t body_len;
  void *conn;        /* struct MHD_Connection */
  enum bf_role role; /* of the caller's token (BF_ROLE_NONE on public routes) */
  const char *who;   /* the token's name, for the edit log; NULL on public routes */
};

struct bf_http_resp {
  int status;
  const char *content_type; /* static */
  struct bf_buf body;
  char allow[64];    /* Allow header (405); "" when none */
  bool html;         /* adds the dashboard's security headers */
  char *edit_detail; /* write routes: JSON for the edit log's "detail" (malloc'd), or NULL */
  char etag[40];     /* ETag header ("\"<version>\""); "" when none */
};

#define BF_HTTP_MAX_BODY (1024 * 1024)

/* A header or query argument of the request; NULL when absent. */
const char *bf_http_header(const struct bf_http_req *req, const char *name);
const char *bf_http_query(const struct bf_http_req *req, const char *name);
/* Sets a {"error": "..."} response. */
void bf_http_error(struct bf_http_resp *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets a JSON response whose body the caller then fills. */
void bf_http_json(struct bf_http_resp *resp, int status);

/* Starts the daemon on listen (HOST:PORT or [V6]:PORT); sets srv->url. */
int bf_http_start(struct bf_server *srv, const char *listen, struct bf_error *err);
void bf_http_stop(struct bf_server *srv);
/* Stops accepting connections (those in flight go on) and hands back the
 * listening socket, which bf_http_stop then leaves open; -1 on failure. */
int bf_http_quiesce(struct bf_server *srv);

/* ---- api.c / hooks.c / dashboard.c: route handlers. */
void bf_api_healthz(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_dashboard(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_syncs(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_sync(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_sync_runs(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_sync_trigger(struct bf_http_req *req, struct bf_http_resp *resp);
/* 409 for a live sync (engine/pause.h says why). */
void bf_api_sync_pause(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_sync_resume(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_run_errors(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_metrics(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_erasure_create(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_erasure(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_pii(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_api_reload(struct bf_http_req *req, struct bf_http_resp *resp);
void bf_hooks_receive(struct bf_http_req *req, struct bf_http_resp *resp);
/* Checks the top-level `hooks:` map (destinations, keys, schemes). */
int bf_hooks_check(const struct bf_config *cfg, struct bf_error *err);

/* The dashboard's parts (dashboard_css.c, dashboard_js.c, dashboard_views.c). */
extern const char bf_dashboard_css[];
extern const char bf_dashboard_js[];
extern const char bf_dashboard_views_js[];
extern const char bf_dashboard_pii_js[]; /* dashboard_pii.c */

#endif

/* The shared schedule of several `backflow serve` workers (coordinator.h). */
#include "server/coordinator.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "clients/pg.h"
#include "server/cron.h"
#include "util/log.h"
#include "util/stop.h"

#define MAX_RUNNERS 64

struct bf_coord {
  const struct bf_config *cfg;
  const struct bf_warehouse_config *wh;
  struct bf_sched_ops ops;
  char worker[128]; /* host:pid, in each row this worker leases */
  char lease[32];   /* "15000 milliseconds" */
  struct bf_cron *crons;
  long long *last_slot; /* per sync: the last slot enqueued */
  pthread_t clock, runners[MAX_RUNNERS];
  unsigned n_runners, started;
  bool clock_started;
  volatile int stopping;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static const char table_sql[] =
    "SELECT pg_advisory_xact_lock(hashtext('backflow.schema'));\n"
    "CREATE SCHEMA IF NOT EXISTS backflow;\n"
    "CREATE TABLE IF NOT EXISTS backflow.coord_runs (\n"
    "  id bigserial PRIMARY KEY, sync text NOT NULL, slot bigint NOT NULL,\n"
    "  state text NOT NULL DEFAULT 'due', worker text, lease_until timestamptz,\n"
    "  attempts integer NOT NULL DEFAULT 0, due_at timestamptz NOT NULL DEFAULT now(),\n"
    "  started_at timestamptz, finished_at timestamptz, status text, rows_read bigint,\n"
    "  added bigint, changed bigint, removed bigint, unchanged bigint, skipped bigint,\n"
    "  rejected bigint, failed bigint, error text, UNIQUE (sync, slot));\n"
    "CREATE INDEX IF NOT EXISTS coord_runs_open ON backflow.coord_runs (state, id)\n"
    "  WHERE state <> 'done';\n";

static PGconn *connect_coord(struct bf_coord *c, struct bf_error *err) {
  char what[160];
  snprintf(what, sizeof what, "coordinator warehouse '%s'", c->wh->name);
  return bf_pg_connect(c->wh->params, what, BF_E_WAREHOUSE, err);
}

/* Runs sql with text parameters; false (and a warning naming doing) on
 * failure. *out, when given, receives the result to clear. */
static bool exec(PGconn *conn, const char *sql, int n, const char *const *params, const char *doing,
                 PGresult **out) {
  PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(res);
  bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) bf_log_warn("coordinator: %s: %s", doing, PQerrorMessage(conn));
  if (ok && out)
    *out = res;
  else
    PQclear(res);
  return ok;
}

/* A lost connection (a restarted server) is opened again on the next turn. */
static PGconn *ensure(struct bf_coord *c, PGconn *conn) {
  if (conn && PQstatus(conn) == CONNECTION_OK) return conn;
  if (conn) PQfinish(conn);
  struct bf_error err = {0};
  conn = connect_coord(c, &err);
  if (!conn) bf_log_warn("coordinator: %s", err.msg);
  return conn;
}

static void wait_ms(struct bf_coord *c, long long ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&c->mu);
  if (!c->stopping) pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  pthread_mutex_unlock(&c->mu);
}

static void enqueue(PGconn *conn, const char *sync, long long slot) {
  char slot_text[32];
  snprintf(slot_text, sizeof slot_text, "%lld", slot);
  const char *params[2] = {sync, slot_text};
  exec(conn,
       "INSERT INTO backflow.coord_runs (sync, slot) VALUES ($1, $2) "
       "ON CONFLICT (sync, slot) DO NOTHING",
       2, params, "enqueueing a run", NULL);
}

/* The slot of sync i that is due at now, or -1. */
static long long due_slot(struct bf_coord *c, size_t i, long long now) {
  const struct bf_sync_config *s = &c->cfg->syncs[i];
  if (s->schedule == BF_SCHEDULE_EVERY) {
    long long every = s->every_ms > 0 ? s->every_ms : 1000;
    return now / every;
  }
  if (s->schedule == BF_SCHEDULE_CRON) {
    long long minute = now / 60000;
    long long at = bf_cron_next(&c->crons[i], minute * 60000 - 1, false);
    return at == minute * 60000 ? minute : -1;
  }
  return -1;
}

/* Enqueues due instants and extends this worker's leases. */
static void *clock_main(void *arg) {
  struct bf_coord *c = arg;
  PGconn *conn = NULL;
  long long last_beat = 0;
  while (!c->stopping) {
    if ((conn = ensure(c, conn))) {
      long long now = bf_now_ms();
      for (size_t i = 0; i < c->cfg->n_syncs; i++) {
        long long slot = due_slot(c, i, now);
        if (slot < 0 || slot == c->last_slot[i]) continue;
        /* Paused here (a pause is per worker, engine/pause.h): this worker
         * does not ask for the run; another that is not paused still does. */
        if (c->ops.paused && c->ops.paused(c->ops.ctx, c->cfg->syncs[i].name)) continue;
        enqueue(conn, c->cfg->syncs[i].name, slot);
        c->last_slot[i] = slot;
      }
      if (now - last_beat >= c->cfg->coord_lease_ms / 3) {
        const char *params[2] = {c->worker, c->lease};
        exec(conn,
             "UPDATE backflow.coord_runs SET lease_until = now() + $2::interval "
             "WHERE worker = $1 AND state = 'leased'",
             2, params, "extending leases", NULL);
        last_beat = now;
      }
    }
    wait_ms(c, 200);
  }
  if (conn) PQfinish(conn);
  return NULL;
}

/* Leases the oldest due row (or one whose lease expired) of a sync that no
 * worker is running. Returns its id (and sync into name), or 0. */
static long long lease_one(struct bf_coord *c, PGconn *conn, char *name, size_t cap) {
  const char *params[2] = {c->worker, c->lease};
  PGresult *res = NULL;
  if (!exec(conn,
            "UPDATE backflow.coord_runs AS r SET state = 'leased', worker = $1, "
            "lease_until = now() + $2::interval, attempts = r.attempts + 1, started_at = now() "
            "WHERE r.id = (SELECT d.id FROM backflow.coord_runs AS d "
            "  WHERE (d.state = 'due' OR (d.state = 'leased' AND d.lease_until < now())) "
            "  AND NOT EXISTS (SELECT 1 FROM backflow.coord_runs AS e WHERE e.sync = d.sync "
            "    AND e.id <> d.id AND e.state = 'leased' AND e.lease_until >= now()) "
            "  ORDER BY d.id FOR UPDATE SKIP LOCKED LIMIT 1) "
            "RETURNING r.id, r.sync, r.attempts",
            2, params, "leasing a run", &res))
    return 0;
  long long id = 0;
  if (PQntuples(res) == 1) {
    id = atoll(PQgetvalue(res, 0, 0));
    snprintf(name, cap, "%s", PQgetvalue(res, 0, 1));
    int attempts = atoi(PQgetvalue(res, 0, 2));
    if (attempts > 1)
      bf_log_warn("[sync %s] coordinator: run %lld resumed by %s (attempt %d: a worker's lease "
                  "expired)",
                  name, id, c->worker, attempts);
  }
  PQclear(res);
  return id;
}

static void finish(struct bf_coord *c, PGconn *conn, long long id, const char *sync,
                   const struct bf_sched_result *res) {
  char idt[32], n[8][32];
  snprintf(idt, sizeof idt, "%lld", id);
  const struct bf_run_counts *k = &res->counts;
  long long v[8] = {k->rows_read, k->added,   k->changed,  k->removed,
                    k->unchanged, k->skipped, k->rejected, k->failed};
  for (int i = 0; i < 8; i++) snprintf(n[i], sizeof n[i], "%lld", v[i]);
  /* Stopped (SIGTERM) or kept out by a run elsewhere: the scheduled run has
   * not happened yet, so it is due again, for any worker. */
  bool again = !strcmp(res->status, "cancelled") || !strcmp(res->status, "skipped");
  const char *params[13] = {idt,
                            c->worker,
                            res->status,
                            n[0],
                            n[1],
                            n[2],
                            n[3],
                            n[4],
                            n[5],
                            n[6],
                            n[7],
                            res->error[0] ? res->error : NULL,
                            again ? "due" : "done"};
  PGresult *r = NULL;
  if (!exec(conn,
            "UPDATE backflow.coord_runs SET state = $13, finished_at = CASE WHEN $13 = 'done' "
            "THEN now() END, status = CASE WHEN $13 = 'done' THEN $3 END, rows_read = $4, "
            "added = $5, changed = $6, removed = $7, unchanged = $8, skipped = $9, rejected = $10, "
            "failed = $11, error = $12, worker = CASE WHEN $13 = 'done' THEN worker END, "
            "lease_until = NULL WHERE id = $1 AND worker = $2",
            13, params, "recording a run", &r))
    return;
  if (strcmp(PQcmdTuples(r), "1") != 0)
    bf_log_warn("[sync %s] coordinator: run %lld was leased by another worker meanwhile (this "
                "worker's lease expired); its result is not recorded here",
                sync, id);
  PQclear(r);
  bool completed = !strcmp(res->status, "succeeded") || !strcmp(res->status, "partial");
  for (size_t i = 0; completed && i < c->cfg->n_syncs; i++) {
    const struct bf_sync_config *s = &c->cfg->syncs[i];
    if (s->schedule == BF_SCHEDULE_AFTER && !strcmp(s->after, sync)) enqueue(conn, s->name, -id);
  }
}

static void *runner_main(void *arg) {
  struct bf_coord *c = arg;
  PGconn *conn = NULL;
  while (!c->stopping && !bf_stop_requested) {
    char sync[256];
    long long id = 0;
    if ((conn = ensure(c, conn))) id = lease_one(c, conn, sync, sizeof sync);
    if (id == 0) {
      wait_ms(c, 200);
      continue;
    }
    struct bf_sched_result res;
    memset(&res, 0, sizeof res);
    res.status = "failed";
    res.started_ms = bf_now_ms();
    c->ops.run(c->ops.ctx, sync, &res);
    if (c->ops.finished) c->ops.finished(c->ops.ctx, sync, &res);
    if ((conn = ensure(c, conn))) finish(c, conn, id, sync, &res);
  }
  if (conn) PQfinish(conn);
  return NULL;
}

int bf_coord_new(const struct bf_config *cfg, const struct bf_sched_ops *ops, struct bf_coord **out,
                 struct bf_error *err) {
  struct bf_coord *c = bf_xcalloc(1, sizeof *c);
  c->cfg = cfg;
  c->ops = *ops;
  c->wh = bf_config_warehouse(cfg, cfg->coord_warehouse);
  c->n_runners = cfg->coord_runners < MAX_RUNNERS ? cfg->coord_runners : MAX_RUNNERS;
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  snprintf(c->worker, sizeof c->worker, "%s:%ld", host, (long)getpid());
  snprintf(c->lease, sizeof c->lease, "%lld milliseconds", cfg->coord_lease_ms);
  c->crons = bf_xcalloc(cfg->n_syncs ? cfg->n_syncs : 1, sizeof *c->crons);
  c->last_slot = bf_xcalloc(cfg->n_syncs ? cfg->n_syncs : 1, sizeof *c->last_slot);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  int rc = 0;
  for (size_t i = 0; i < cfg->n_syncs && rc == 0; i++) {
    c->last_slot[i] = -1;
    if (cfg->syncs[i].schedule == BF_SCHEDULE_CRON &&
        (rc = bf_cron_parse(cfg->syncs[i].cron, &c->crons[i], err)))
      bf_error_prefix(err, "sync '%s'", cfg->syncs[i].name);
  }
  PGconn *conn = rc ? NULL : connect_coord(c, err);
  if (rc == 0 && !conn) rc = err->code;
  if (conn) {
    PGresult *res = PQexec(conn, "BEGIN");
    PQclear(res);
    res = PQexec(conn, table_sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
      rc = bf_error_set(err, BF_E_WAREHOUSE,
                        "coordinator warehouse '%s': creating "
                        "backflow.coord_runs: %s",
                        c->wh->name, PQerrorMessage(conn));
    PQclear(res);
    res = PQexec(conn, rc ? "ROLLBACK" : "COMMIT");
    PQclear(res);
    PQfinish(conn);
  }
  if (rc) {
    bf_coord_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int bf_coord_start(struct bf_coord *c, struct bf_error *err) {
  int rc = pthread_create(&c->clock, NULL, clock_main, c);
  if (rc) return bf_error_set(err, BF_E_IO, "cannot start the coordinator: %s", strerror(rc));
  c->clock_started = true;
  for (; c->started < c->n_runners; c->started++)
    if ((rc = pthread_create(&c->runners[c->started], NULL, runner_main, c)))
      return bf_error_set(err, BF_E_IO, "cannot start a runner thread: %s", strerror(rc));
  bf_log_info("coordinator: worker %s, %u runners, lease %s, warehouse '%s'", c->worker,
              c->n_runners, c->lease, c->wh->name);
  return 0;
}

void bf_coord_stop(struct bf_coord *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->stopping = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  for (unsigned i = 0; i < c->started; i++) pthread_join(c->runners[i], NULL);
  c->started = 0;
  if (c->clock_started) pthread_join(c->clock, NULL);
  c->clock_started = false;
}

void bf_coord_free(struct bf_coord *c) {
  if (!c) return;
  bf_coord_stop(c);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c->crons);
  free(c->last_slot);
  free(c);
}

void bf_coord_record(struct bf_coord *c, const char *sync, const struct bf_sched_result *res) {
  if (!c) return;
  struct bf_error err = {0};
  PGconn *conn = connect_coord(c, &err);
  if (!conn) {
    bf_log_warn("[sync %s] coordinator: cannot record the run: %s", sync, err.msg);
    return;
  }
  /* A trigger is no scheduled instant: its slot is negative and unique. */
  char started[32];
  snprintf(started, sizeof started, "%lld", res->started_ms);
  const char *params[2] = {sync, started};
  PGresult *r = NULL;
  if (exec(conn,
           "INSERT INTO backflow.coord_runs (sync, slot, state, attempts, started_at) VALUES ($1, "
           "-nextval('backflow.coord_runs_id_seq') - 1000000000000, 'leased', 1, "
           "to_timestamp($2::double precision / 1000)) RETURNING id",
           2, params, "recording a triggered run", &r)) {
    long long id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *wp[2] = {c->worker, NULL};
    char idt[32];
    snprintf(idt, sizeof idt, "%lld", id);
    wp[1] = idt;
    exec(conn, "UPDATE backflow.coord_runs SET worker = $1 WHERE id = $2", 2, wp, "recording",
         NULL);
    finish(c, conn, id, sync, res);
  }
  PQfinish(conn);
}

int bf_coord_list(struct bf_coord *c, const char *sync, int limit, struct bf_run_info **out,
                  size_t *n, struct bf_error *err) {
  *out = NULL;
  *n = 0;
  PGconn *conn = connect_coord(c, err);
  if (!conn) return err->code;
  char lim[16];
  snprintf(lim, sizeof lim, "%d", limit);
  const char *params[2] = {sync, lim};
  PGresult *res = PQexecParams(
      conn,
      "SELECT id, CASE WHEN state = 'leased' THEN 'running' ELSE status END, "
      "(extract(epoch FROM started_at) * 1000)::bigint, "
      "coalesce((extract(epoch FROM finished_at) * 1000)::bigint, 0), rows_read, added, changed, "
      "removed, unchanged, skipped, rejected, failed, error FROM backflow.coord_runs "
      "WHERE sync = $1 AND state <> 'due' ORDER BY id DESC LIMIT $2::integer",
      2, NULL, params, NULL, NULL, 0);
  int rc = 0;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = bf_error_set(err, BF_E_WAREHOUSE, "coordinator warehouse '%s': listing runs: %s",
                      c->wh->name, PQerrorMessage(conn));
  } else {
    int rows = PQntuples(res);
    struct bf_run_info *runs = bf_xcalloc(rows ? (size_t)rows : 1, sizeof *runs);
    for (int i = 0; i < rows; i++) {
      struct bf_run_info *r = &runs[i];
      r->id = atoll(PQgetvalue(res, i, 0));
      r->sync = bf_xstrdup(sync);
      r->status = bf_xstrdup(PQgetisnull(res, i, 1) ? "running" : PQgetvalue(res, i, 1));
      r->started_ms = atoll(PQgetvalue(res, i, 2));
      r->finished_ms = atoll(PQgetvalue(res, i, 3));
      long long *k[8] = {&r->counts.rows_read, &r->counts.added,     &r->counts.changed,
                         &r->counts.removed,   &r->counts.unchanged, &r->counts.skipped,
                         &r->counts.rejected,  &r->counts.failed};
      for (int f = 0; f < 8; f++) *k[f] = atoll(PQgetvalue(res, i, 4 + f));
      r->error = PQgetisnull(res, i, 12) ? NULL : bf_xstrdup(PQgetvalue(res, i, 12));
    }
    *out = runs;
    *n = (size_t)rows;
  }
  PQclear(res);
  PQfinish(conn);
  return rc;
}

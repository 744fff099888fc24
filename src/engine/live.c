#include "engine/live.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/live_pass.h"
#include "util/log.h"
#include "engine/writeback.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS   30000
#define WAIT_MS          200
#define FOLD_JOURNAL_RECORDS                                                                       \
  (1u << 20) /* 32 MiB of journal */ /* longest wait for changes: stop and timers are checked as   \
                                        often */

const char *bf_live_state_name(enum bf_live_state s) {
  switch (s) {
  case BF_LIVE_STARTING: return "starting";
  case BF_LIVE_FOLLOWING: return "following";
  case BF_LIVE_RECONNECTING: return "reconnecting";
  case BF_LIVE_STOPPED: return "stopped";
  }
  return "?";
}

void bf_live_monitor_init(struct bf_live_monitor *m) {
  memset(m, 0, sizeof *m);
  pthread_mutex_init(&m->mu, NULL);
}

void bf_live_monitor_destroy(struct bf_live_monitor *m) { pthread_mutex_destroy(&m->mu); }

void bf_live_monitor_read(struct bf_live_monitor *m, struct bf_live_monitor *out) {
  pthread_mutex_lock(&m->mu);
  memcpy((char *)out + sizeof out->mu, (char *)m + sizeof m->mu, sizeof *m - sizeof m->mu);
  pthread_mutex_unlock(&m->mu);
}

/* The live sync's working set. */
struct follower {
  struct bf_project *p;
  const struct bf_sync_config *sync;
  const struct bf_model_config *model;
  const struct bf_warehouse_config *wh;
  const struct bf_live_options *o;
  struct bf_feed_spec spec;
  struct bf_feed *feed;
  /* the session: open between full runs */
  struct run session;
  struct bf_run_options session_opts;
  struct bf_run_result session_res;
  bool open;
  long long row_started_ms;
  long long next_reconcile_ms;
  bool caught_up; /* the first full run is done */
};

static void set_state(struct follower *f, enum bf_live_state st, const char *error) {
  struct bf_live_monitor *m = f->o->monitor;
  if (!m) return;
  pthread_mutex_lock(&m->mu);
  m->state = st;
  if (error) snprintf(m->last_error, sizeof m->last_error, "%s", error);
  pthread_mutex_unlock(&m->mu);
}

static void report(struct follower *f, const char *what, const struct bf_run_result *res) {
  if (f->o->print) {
    const struct bf_run_counts *c = &res->counts;
    printf("%s %lld %s: %s: %lld added, %lld changed, %lld removed, %lld unchanged, %lld "
           "rejected, %lld failed (%lld rows read)\n",
           what, res->run_id, f->sync->name, res->status, c->added, c->changed, c->removed,
           c->unchanged, c->rejected, c->failed, c->rows_read);
    fflush(stdout);
  }
  if (f->o->finished) f->o->finished(f->o->ctx, f->sync->name, res);
}

static bool stopping(void) { return bf_stop_requested != 0; }

/* Sleeps ms, waking early when a stop is asked for. */
static void pause_ms(long long ms) {
  long long until = bf_now_ms() + ms;
  while (!stopping() && bf_now_ms() < until) {
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

static int session_open(struct follower *f, struct bf_error *err) {
  memset(&f->session, 0, sizeof f->session);
  memset(&f->session_res, 0, sizeof f->session_res);
  f->session_opts = (struct bf_run_options){0};
  f->session.p = f->p;
  f->session.opts = &f->session_opts;
  f->session.res = &f->session_res;
  f->session.keyed = true;
  f->open = true;
  return bf_run_begin(&f->session, f->sync->name, err);
}

/* Closes the history row when one is open. */
static int row_close(struct follower *f, struct bf_error *err) {
  struct run *r = &f->session;
  if (!r->logged) return 0;
  struct bf_run_result *res = r->res;
  res->status = bf_run_status(r, 0);
  res->duration_ms = bf_now_ms() - f->row_started_ms;
  int rc = bf_runlog_finish(r->log, res->run_id, res->status, &res->counts, NULL, err);
  r->logged = false;
  /* A fold rewrites the whole state: only when the journal has grown
   * long, so that following stays in milliseconds on a large state. */
  if (rc == 0 && bf_state_journal_records(r->state) > FOLD_JOURNAL_RECORDS)
    rc = bf_state_fold(r->state, err);
  report(f, "live", res);
  bf_writeback_run(f->p, f->sync->name);
  memset(&res->counts, 0, sizeof res->counts);
  res->run_id = 0;
  return rc;
}

static void session_close(struct follower *f) {
  if (!f->open) return;
  struct bf_error ignored = {0};
  row_close(f, &ignored);
  bf_run_end(&f->session, 0, &ignored);
  f->open = false;
}

static int full_run(struct follower *f, struct bf_error *err) {
  session_close(f);
  struct bf_run_options opts = {0};
  struct bf_run_result res;
  int rc = bf_sync_run(f->p, f->sync->name, &opts, &res, err);
  report(f, "run", &res);
  bf_run_result_release(&res);
  f->next_reconcile_ms = f->sync->reconcile_ms > 0 ? bf_now_ms() + f->sync->reconcile_ms : -1;
  return rc;
}

/* One burst of changes through the session. */
static int apply(struct follower *f, const struct bf_change_batch *b, struct bf_error *err) {
  struct run *r = &f->session;
  int rc = 0;
  if (!r->logged) {
    if ((rc = bf_runlog_begin(r->log, f->sync->name, &r->res->run_id, err))) return rc;
    r->logged = true;
    f->row_started_ms = bf_now_ms();
  }
  long long before = r->res->counts.added + r->res->counts.changed + r->res->counts.removed;
  rc = bf_live_pass(r, b->keys, b->n, err);
  if (rc == 0) rc = bf_runlog_flush(r->log, err);
  struct bf_live_monitor *m = f->o->monitor;
  if (m) {
    pthread_mutex_lock(&m->mu);
    m->changes += (long long)b->n;
    m->pushed += r->res->counts.added + r->res->counts.changed + r->res->counts.removed - before;
    m->last_change_ms = bf_now_ms();
    pthread_mutex_unlock(&m->mu);
  }
  return rc;
}

static void update_lag(struct follower *f) {
  struct bf_live_monitor *m = f->o->monitor;
  if (!m || !f->feed) return;
  double secs;
  long long bytes;
  f->feed->ops->lag(f->feed, &secs, &bytes);
  pthread_mutex_lock(&m->mu);
  m->lag_seconds = secs;
  m->lag_bytes = bytes;
  pthread_mutex_unlock(&m->mu);
}

/* Follows until stopped or a failure: returns its code. */
static int follow(struct follower *f, struct bf_error *err) {
  int rc = bf_feed_open(f->wh, f->p->cfg, &f->spec, &f->feed, err);
  if (rc) return rc;
  /* The feed exists before the full run, so what commits during it is
   * replayed afterwards (at worst sent twice, never missed). A reconnect
   * resumes from the acknowledged position: no full run, unless the feed
   * had to be recreated. */
  if (!f->caught_up || f->feed->created) {
    if ((rc = full_run(f, err))) return rc;
    f->caught_up = true;
  }
  if ((rc = session_open(f, err))) return rc;
  set_state(f, BF_LIVE_FOLLOWING, "");
  if (f->o->print)
    fprintf(stderr, "backflow: sync '%s': following changes\n", f->sync->name);
  else
    bf_log_info("sync '%s': following changes live", f->sync->name);
  long long history_ms = f->o->history_ms > 0 ? f->o->history_ms : 60000;
  while (!stopping()) {
    struct bf_change_batch b;
    if ((rc = f->feed->ops->next(f->feed, WAIT_MS, &b, err))) return rc;
    if (b.n && (rc = apply(f, &b, err))) return rc;
    bool reconcile = f->next_reconcile_ms >= 0 && bf_now_ms() >= f->next_reconcile_ms;
    struct bf_live_monitor *m = f->o->monitor;
    if (m) {
      pthread_mutex_lock(&m->mu);
      reconcile |= m->reconcile_requested;
      m->reconcile_requested = false;
      pthread_mutex_unlock(&m->mu);
    }
    if (b.resync || reconcile) {
      if (b.resync)
        bf_log_info("sync '%s': the change feed cannot name every changed key (TRUNCATE or a "
                    "lost slot): full run",
                    f->sync->name);
      if ((rc = full_run(f, err)) || (rc = session_open(f, err))) return rc;
    }
    if (b.position && (rc = f->feed->ops->ack(f->feed, b.position, err))) return rc;
    update_lag(f);
    if (f->session.logged && bf_now_ms() - f->row_started_ms >= history_ms &&
        (rc = row_close(f, err)))
      return rc;
  }
  return bf_error_set(err, BF_E_INTERRUPTED, "sync '%s': live sync stopped", f->sync->name);
}

static int init_follower(struct follower *f, struct bf_project *p, const char *sync_name,
                         struct bf_error *err) {
  f->p = p;
  f->sync = bf_project_find_sync(p, sync_name, err);
  if (!f->sync) return err->code;
  f->model = bf_config_model(p->cfg, f->sync->model);
  f->wh = bf_config_warehouse(p->cfg, f->model->warehouse);
  if (!f->model->n_live)
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: model '%s' of sync '%s' has no 'live: {table: ..., key: ...}': "
                        "name the tables whose changes affect it",
                        f->model->loc.file, f->model->loc.line, f->model->loc.col, f->model->name,
                        f->sync->name);
  f->spec = (struct bf_feed_spec){f->sync->name, f->model->live, f->model->n_live,
                                  f->sync->mode == BF_MODE_MIRROR};
  return 0;
}

int bf_live_follow(struct bf_project *p, const char *sync_name, const struct bf_live_options *o,
                   struct bf_error *err) {
  struct follower f = {.o = o, .next_reconcile_ms = -1};
  int rc = init_follower(&f, p, sync_name, err);
  if (rc) return rc;
  long long backoff = BACKOFF_FIRST_MS;
  set_state(&f, BF_LIVE_STARTING, NULL);
  for (;;) {
    long long started = bf_now_ms();
    rc = follow(&f, err);
    session_close(&f);
    bf_feed_close(f.feed);
    f.feed = NULL;
    if (rc == BF_E_INTERRUPTED || stopping()) {
      rc = bf_error_set(err, BF_E_INTERRUPTED, "sync '%s': live sync stopped", f.sync->name);
      break;
    }
    /* What a retry cannot mend ends the live sync. */
    if (rc == BF_E_CONFIG || rc == BF_E_USAGE || rc == BF_E_STATE) break;
    if (bf_now_ms() - started > 2 * BACKOFF_MAX_MS) backoff = BACKOFF_FIRST_MS; /* it ran a while */
    bf_log_warn("sync '%s': live: %s; resuming in %.0fs", f.sync->name, err->msg,
                (double)backoff / 1000.0);
    set_state(&f, BF_LIVE_RECONNECTING, err->msg);
    pause_ms(backoff);
    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
  }
  set_state(&f, BF_LIVE_STOPPED, rc == BF_E_INTERRUPTED ? NULL : err->msg);
  return rc;
}

int bf_live_setup(struct bf_project *p, const char *sync_name, bool teardown,
                  struct bf_error *err) {
  struct follower f = {0};
  int rc = init_follower(&f, p, sync_name, err);
  if (rc) return rc;
  return teardown ? bf_feed_teardown(f.wh, p->cfg, &f.spec, err)
                  : bf_feed_setup(f.wh, p->cfg, &f.spec, err);
}

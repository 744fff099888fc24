#include "server/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "server/cron.h"

#define MAX_WORKERS 8

struct job {
  const struct bf_sync_config *sync;
  struct bf_cron cron;
  long long next_ms; /* -1: no time-based schedule */
  bool due;          /* a run is wanted */
  bool running;
  long long due_seq; /* order in which runs were asked for: oldest first */
  long long running_since_ms;
  long long runs;
  long long paused_skips;
};

struct bf_scheduler {
  const struct bf_config *cfg;
  struct bf_sched_ops ops;
  size_t n;
  struct job *jobs;
  unsigned n_workers, started_workers;
  pthread_t *workers;
  pthread_t timer;
  bool timer_started;
  pthread_mutex_t mu;
  pthread_cond_t work_cv;  /* workers: a run may have become possible */
  pthread_cond_t idle_cv;  /* wait_idle: a run finished */
  pthread_cond_t timer_cv; /* timer thread: stop */
  bool stopping;
  unsigned active;
  long long seq;
};

static long long now_ms(const struct bf_scheduler *s) {
  return s->ops.now_ms ? s->ops.now_ms(s->ops.ctx) : bf_now_ms();
}

static struct job *find_job(struct bf_scheduler *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->jobs[i].sync->name, name)) return &s->jobs[i];
  return NULL;
}

static void mark_due_locked(struct bf_scheduler *s, struct job *j) {
  if (!j->due) {
    j->due = true;
    j->due_seq = ++s->seq;
  }
  pthread_cond_broadcast(&s->work_cv);
}

static void tick_locked(struct bf_scheduler *s, long long now) {
  for (size_t i = 0; i < s->n; i++) {
    struct job *j = &s->jobs[i];
    if (j->next_ms < 0 || j->next_ms > now) continue;
    mark_due_locked(s, j);
    if (j->sync->schedule == BF_SCHEDULE_EVERY) {
      /* Fixed instants; those missed while busy collapse into this one. */
      long long every = j->sync->every_ms > 0 ? j->sync->every_ms : 1000;
      long long missed = (now - j->next_ms) / every;
      j->next_ms += (missed + 1) * every;
    } else {
      j->next_ms = bf_cron_next(&j->cron, now, false);
    }
  }
}

static bool destination_busy_locked(const struct bf_scheduler *s, const struct job *j) {
  for (size_t i = 0; i < s->n; i++)
    if (s->jobs[i].running && !strcmp(s->jobs[i].sync->destination, j->sync->destination))
      return true;
  return false;
}

static struct job *pick_locked(struct bf_scheduler *s) {
  struct job *best = NULL;
  for (size_t i = 0; i < s->n; i++) {
    struct job *j = &s->jobs[i];
    if (!j->due || j->running || destination_busy_locked(s, j)) continue;
    if (!best || j->due_seq < best->due_seq) best = j;
  }
  return best;
}

static void *worker_main(void *arg) {
  struct bf_scheduler *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->stopping) {
    struct job *j = pick_locked(s);
    if (!j) {
      pthread_cond_wait(&s->work_cv, &s->mu);
      continue;
    }
    j->due = false;
    if (s->ops.paused && s->ops.paused(s->ops.ctx, j->sync->name)) {
      j->paused_skips++;
      bf_log_debug("[sync %s] paused: the run that came due is dropped", j->sync->name);
      pthread_cond_broadcast(&s->idle_cv);
      continue;
    }
    j->running = true;
    j->runs++;
    j->running_since_ms = now_ms(s);
    s->active++;
    pthread_mutex_unlock(&s->mu);

    struct bf_sched_result res;
    memset(&res, 0, sizeof res);
    res.status = "failed";
    res.started_ms = j->running_since_ms;
    s->ops.run(s->ops.ctx, j->sync->name, &res);
    if (s->ops.finished) s->ops.finished(s->ops.ctx, j->sync->name, &res);

    pthread_mutex_lock(&s->mu);
    j->running = false;
    s->active--;
    bool completed = !strcmp(res.status, "succeeded") || !strcmp(res.status, "partial");
    if (completed && !s->stopping) {
      for (size_t i = 0; i < s->n; i++) {
        struct job *next = &s->jobs[i];
        if (next->sync->schedule == BF_SCHEDULE_AFTER && !strcmp(next->sync->after, j->sync->name))
          mark_due_locked(s, next);
      }
    }
    /* The destination is free again: another worker may take a waiting sync. */
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->idle_cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void abs_deadline(struct timespec *ts, long long in_ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += in_ms / 1000;
  ts->tv_nsec += (in_ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static void *timer_main(void *arg) {
  struct bf_scheduler *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->stopping) {
    long long now = now_ms(s);
    tick_locked(s, now);
    /* Wake at the next instant, and at least once a second so that a
     * wall-clock change is noticed. */
    long long wait = 1000;
    for (size_t i = 0; i < s->n; i++)
      if (s->jobs[i].next_ms >= 0 && s->jobs[i].next_ms - now < wait)
        wait = s->jobs[i].next_ms - now;
    if (wait < 1) wait = 1;
    struct timespec ts;
    abs_deadline(&ts, wait);
    pthread_cond_timedwait(&s->timer_cv, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

int bf_scheduler_new(const struct bf_config *cfg, const struct bf_sched_ops *ops, unsigned workers,
                     struct bf_scheduler **out, struct bf_error *err) {
  struct bf_scheduler *s = bf_xcalloc(1, sizeof *s);
  s->cfg = cfg;
  s->ops = *ops;
  s->n = cfg->n_syncs;
  s->jobs = bf_xcalloc(s->n ? s->n : 1, sizeof *s->jobs);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->work_cv, NULL);
  pthread_cond_init(&s->idle_cv, NULL);
  pthread_cond_init(&s->timer_cv, NULL);
  long long now = now_ms(s);
  size_t destinations = 0;
  for (size_t i = 0; i < s->n; i++) {
    struct job *j = &s->jobs[i];
    j->sync = &cfg->syncs[i];
    j->next_ms = -1;
    bool seen = false;
    for (size_t k = 0; k < i; k++) seen |= !strcmp(cfg->syncs[k].destination, j->sync->destination);
    destinations += !seen;
    switch (j->sync->schedule) {
    case BF_SCHEDULE_EVERY: j->next_ms = now; break;
    case BF_SCHEDULE_CRON: {
      int rc = bf_cron_parse(j->sync->cron, &j->cron, err);
      if (rc) {
        bf_error_prefix(err, "%s:%d:%d: sync '%s'", j->sync->loc.file, j->sync->loc.line,
                        j->sync->loc.col, j->sync->name);
        bf_scheduler_free(s);
        return rc;
      }
      j->next_ms = bf_cron_next(&j->cron, now, false);
      if (j->next_ms < 0)
        bf_log_warn("sync '%s': cron \"%s\" never fires; it runs only when triggered",
                    j->sync->name, j->sync->cron);
      break;
    }
    case BF_SCHEDULE_LIVE: break; /* followed by its own thread (server/live_workers.c) */
    default: break;
    }
  }
  if (workers == 0) workers = destinations ? (unsigned)destinations : 1;
  if (workers > MAX_WORKERS) workers = MAX_WORKERS;
  s->n_workers = workers;
  *out = s;
  return 0;
}

void bf_scheduler_set_last_start(struct bf_scheduler *s, const char *sync, long long started_ms) {
  pthread_mutex_lock(&s->mu);
  struct job *j = find_job(s, sync);
  if (j && j->sync->schedule == BF_SCHEDULE_EVERY) {
    long long now = now_ms(s);
    long long next = started_ms + j->sync->every_ms;
    j->next_ms = next > now ? next : now;
  }
  pthread_mutex_unlock(&s->mu);
}

int bf_scheduler_start(struct bf_scheduler *s, bool timer, struct bf_error *err) {
  s->workers = bf_xcalloc(s->n_workers, sizeof *s->workers);
  for (; s->started_workers < s->n_workers; s->started_workers++) {
    int rc = pthread_create(&s->workers[s->started_workers], NULL, worker_main, s);
    if (rc) return bf_error_set(err, BF_E_IO, "cannot start a worker thread: %s", strerror(rc));
  }
  if (timer) {
    int rc = pthread_create(&s->timer, NULL, timer_main, s);
    if (rc) return bf_error_set(err, BF_E_IO, "cannot start the timer thread: %s", strerror(rc));
    s->timer_started = true;
  }
  return 0;
}

void bf_scheduler_tick(struct bf_scheduler *s) {
  pthread_mutex_lock(&s->mu);
  tick_locked(s, now_ms(s));
  pthread_mutex_unlock(&s->mu);
}

static void status_locked(const struct job *j, struct bf_sched_status *st) {
  st->running = j->running;
  st->queued = j->due;
  st->next_ms = j->next_ms;
  st->running_since_ms = j->running ? j->running_since_ms : 0;
  st->runs = j->runs;
  st->paused_skips = j->paused_skips;
}

int bf_scheduler_trigger(struct bf_scheduler *s, const char *sync, struct bf_sched_status *st) {
  pthread_mutex_lock(&s->mu);
  struct job *j = find_job(s, sync);
  if (j) {
    mark_due_locked(s, j);
    if (st) status_locked(j, st);
  }
  pthread_mutex_unlock(&s->mu);
  return j ? 0 : -1;
}

int bf_scheduler_status(struct bf_scheduler *s, const char *sync, struct bf_sched_status *st) {
  pthread_mutex_lock(&s->mu);
  struct job *j = find_job(s, sync);
  if (j) status_locked(j, st);
  pthread_mutex_unlock(&s->mu);
  return j ? 0 : -1;
}

bool bf_scheduler_wait_idle(struct bf_scheduler *s, long long timeout_ms) {
  struct timespec ts;
  abs_deadline(&ts, timeout_ms);
  pthread_mutex_lock(&s->mu);
  bool idle = false;
  for (;;) {
    idle = s->active == 0;
    for (size_t i = 0; idle && i < s->n; i++) idle = !s->jobs[i].due;
    if (idle || s->stopping) break;
    if (pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&s->mu);
  return idle;
}

void bf_scheduler_stop(struct bf_scheduler *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_broadcast(&s->work_cv);
  pthread_cond_broadcast(&s->timer_cv);
  pthread_cond_broadcast(&s->idle_cv);
  pthread_mutex_unlock(&s->mu);
  for (unsigned i = 0; i < s->started_workers; i++) pthread_join(s->workers[i], NULL);
  s->started_workers = 0;
  if (s->timer_started) pthread_join(s->timer, NULL);
  s->timer_started = false;
}

void bf_scheduler_free(struct bf_scheduler *s) {
  if (!s) return;
  bf_scheduler_stop(s);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->work_cv);
  pthread_cond_destroy(&s->idle_cv);
  pthread_cond_destroy(&s->timer_cv);
  free(s->workers);
  free(s->jobs);
  free(s);
}

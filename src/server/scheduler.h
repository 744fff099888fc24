/* The scheduler of `backflow serve`: decides when each sync runs and runs
 * it on a worker thread.
 *
 * - `schedule: {every: 15m}` runs at fixed instants start, start + 15m, ...
 *   (anchored on the last run's start from the run log, so restarting the
 *   server does not cause a burst); instants missed while the sync was busy
 *   collapse into one follow-up run.
 * - `schedule: {cron: "..."}` runs at each minute the expression matches,
 *   in the server's local time zone.
 * - `schedule: {after: other}` runs when `other` completes (status
 *   succeeded or partial; not after a failed run).
 * - bf_scheduler_trigger() asks for a run now (POST .../trigger).
 * - a paused sync (ops->paused) does not run; its instants pass by.
 *
 * A sync never runs twice at once: a request while it runs (timer, trigger
 * or `after`) queues exactly one follow-up, however many arrive. Syncs on
 * different destinations run concurrently; syncs on the same destination
 * take turns, so one destination's rate limit is never shared by two runs.
 *
 * The clock and the run function are injected (struct bf_sched_ops) so that
 * unit tests drive the scheduler with a fake clock and fake runs. */
#ifndef BF_SCHEDULER_H
#define BF_SCHEDULER_H

#include <stdbool.h>

#include "spec/config.h"
#include "util/error.h"
#include "engine/runlog.h"

struct bf_sched_result {
  long long run_id;   /* 0 when the run was not logged */
  const char *status; /* static: succeeded | partial | failed | skipped */
  struct bf_run_counts counts;
  long long started_ms, duration_ms;
  int code;                     /* 0 or the bf_code that stopped the run */
  char error[BF_ERROR_MSG_MAX]; /* "" when none */
};

struct bf_sched_ops {
  /* Wall-clock unix milliseconds; NULL = bf_now_ms. */
  long long (*now_ms)(void *ctx);
  /* Runs one sync and fills res (zeroed by the caller). Called on a worker
   * thread without the scheduler's lock. */
  void (*run)(void *ctx, const char *sync, struct bf_sched_result *res);
  /* Optional: called on the worker thread after each run (metrics, alerts). */
  void (*finished)(void *ctx, const char *sync, const struct bf_sched_result *res);
  /* Optional: true while sync is paused (engine/pause.h). A run of a
   * paused sync that comes due (timer, trigger, `after`) is dropped, not
   * kept for later, so resuming does not start a burst of runs. */
  bool (*paused)(void *ctx, const char *sync);
  void *ctx;
};

/* What the scheduler knows about one sync, for the API and dashboard. */
struct bf_sched_status {
  bool running;
  bool queued;                /* a run is wanted and will start when possible */
  long long next_ms;          /* next scheduled instant; -1 when none (manual, after) */
  long long running_since_ms; /* when running */
  long long runs;             /* runs started by this scheduler */
  long long paused_skips;     /* runs that came due while the sync was paused */
};

struct bf_scheduler;

/* Builds a scheduler for every sync of cfg (borrowed: must outlive the
 * scheduler). Cron expressions are checked here: errors name the sync's
 * file:line:col. workers = 0 picks one per destination, at most 8.
 * Caller frees with bf_scheduler_free(). */
int bf_scheduler_new(const struct bf_config *cfg, const struct bf_sched_ops *ops, unsigned workers,
                     struct bf_scheduler **out, struct bf_error *err);
void bf_scheduler_free(struct bf_scheduler *s);

/* Before start: the last run of sync began at started_ms; `every` schedules
 * continue from there instead of running at once. */
void bf_scheduler_set_last_start(struct bf_scheduler *s, const char *sync, long long started_ms);

/* Starts the workers and, when timer is true, a thread that fires time-based
 * schedules by the wall clock. Tests pass false and call bf_scheduler_tick. */
int bf_scheduler_start(struct bf_scheduler *s, bool timer, struct bf_error *err);

/* Fires every time-based schedule due at ops->now_ms(). */
void bf_scheduler_tick(struct bf_scheduler *s);

/* Asks for a run of sync now. Returns 0, or -1 for an unknown sync. st
 * (optional) gets the sync's status after the request. */
int bf_scheduler_trigger(struct bf_scheduler *s, const char *sync, struct bf_sched_status *st);

/* Returns 0, or -1 for an unknown sync. */
int bf_scheduler_status(struct bf_scheduler *s, const char *sync, struct bf_sched_status *st);

/* Waits (real time) until no run is in flight and none is wanted. Returns
 * false on timeout. */
bool bf_scheduler_wait_idle(struct bf_scheduler *s, long long timeout_ms);

/* Starts no new run; waits for the runs in flight (set bf_stop_requested
 * first to make them stop after their batch) and joins every thread. */
void bf_scheduler_stop(struct bf_scheduler *s);

#endif

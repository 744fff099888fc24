/* Live syncs (design.md §8): one full run, then the warehouse's change feed
 * (sources/feed.h) is followed. For each burst of changed keys the model is
 * evaluated for those keys only, diffed against the state and pushed with
 * the same accounting, batching, retries and crash rules as a run; the
 * feed's position is acknowledged only after the destination acknowledged
 * every change up to it. A reconciliation run (sync `reconcile`, 1 h by
 * default) catches what the feed cannot see (tables not listed in `live`).
 *
 * Failures of the warehouse or the destination never end a live sync: it
 * closes everything, waits (1 s doubling to 30 s) and resumes from the
 * feed's acknowledged position, so nothing is lost. Configuration problems
 * (wal_level, privileges, capture not installed) end it with BF_E_CONFIG. */
#ifndef BF_LIVE_H
#define BF_LIVE_H

#include <pthread.h>
#include <stdbool.h>

#include "util/error.h"
#include "engine/project.h"
#include "engine/runner.h"

enum bf_live_state { BF_LIVE_STARTING, BF_LIVE_FOLLOWING, BF_LIVE_RECONNECTING, BF_LIVE_STOPPED };
const char *bf_live_state_name(enum bf_live_state s);

/* What a live sync reports while it runs, read by the server's threads. */
struct bf_live_monitor {
  pthread_mutex_t mu;
  enum bf_live_state state;
  double lag_seconds;  /* since the oldest commit not yet acknowledged */
  long long lag_bytes; /* see bf_feed_ops.lag */
  long long changes;   /* changed keys received (before coalescing) */
  long long pushed;    /* records acknowledged by the destination live */
  long long last_change_ms;
  char last_error[BF_ERROR_MSG_MAX]; /* "" when the last attempt worked */
  bool reconcile_requested;          /* set by the server (Run now): a full run soon */
};
void bf_live_monitor_init(struct bf_live_monitor *m);
void bf_live_monitor_destroy(struct bf_live_monitor *m);
/* A consistent copy of m (for metrics and the API). */
void bf_live_monitor_read(struct bf_live_monitor *m, struct bf_live_monitor *out);

struct bf_live_options {
  struct bf_live_monitor *monitor; /* optional */
  /* Live changes go into one run-history row per this many ms (a row is
   * opened by the first change after the last one closed); 0 = 60 s. */
  long long history_ms;
  bool print; /* a line on stdout per run and history row (foreground) */
  /* Optional: called after each full run and each closed history row. */
  void (*finished)(void *ctx, const char *sync, const struct bf_run_result *res);
  void *ctx;
};

/* Follows sync until bf_stop_requested is set (returns BF_E_INTERRUPTED)
 * or a configuration error stops it (its code; err says what to fix). */
int bf_live_follow(struct bf_project *p, const char *sync, const struct bf_live_options *o,
                   struct bf_error *err);

/* `backflow live setup|teardown SYNC`. */
int bf_live_setup(struct bf_project *p, const char *sync, bool teardown, struct bf_error *err);

#endif

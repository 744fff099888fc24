/* The health of a sync as its run history tells it, for the dashboard and
 * the API: when it last succeeded, since when it has been failing and how
 * many runs in a row failed. Pure computation over bf_runlog_list() output,
 * so that it is tested without a server. */
#ifndef BF_HEALTH_H
#define BF_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/runlog.h"

struct bf_sync_health {
  long long last_success_ms;     /* finish of the newest succeeded/partial run; 0: none */
  long long last_success_run_id; /* 0: none */
  long long failing_since_ms;    /* start of the oldest failure of the current streak; 0 */
  int consecutive_failures;      /* failed or crashed runs since the last success */
  bool no_success_seen;          /* none of the runs succeeded: the streak may be longer */
};

/* runs[n] newest first (as bf_runlog_list returns them). Runs still
 * running, skipped (another process held the sync) or cancelled (Ctrl-C,
 * shutdown) say nothing about health and are passed over. */
void bf_health_compute(const struct bf_run_info *runs, size_t n, struct bf_sync_health *out);

#endif

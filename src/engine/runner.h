/* The runner: one run (or plan) of one sync, as design.md §1 describes.
 *   warehouse rows -> map -> diff vs state -> batches -> destination ->
 *   per-record outcomes -> journal (per batch) -> fold + run log.
 * A key is journaled as pending before its record is sent, so a crash at
 * any point leaves enough to resend or delete it on the next run. */
#ifndef BF_RUNNER_H
#define BF_RUNNER_H

#include <signal.h>
#include <stdbool.h>

#include "util/jsonw.h"
#include "engine/project.h"
#include "engine/runlog.h"
#include "util/stop.h"

struct bf_run_options {
  bool plan_only;          /* count and sample; write nothing anywhere */
  bool full_resync;        /* resend every row, even unchanged ones */
  bool progress;           /* progress line on stderr */
  size_t sample_limit;     /* plan: records in the sample */
  unsigned record_retries; /* sends of a record the destination asked to retry; 0 = 3 */
  bool log_skipped;        /* a held lock is recorded as a `skipped` run in the history
                            * (`run`, `serve`; a live sync retrying every few seconds is not) */
};

struct bf_run_result {
  long long run_id;            /* 0 for a plan */
  struct bf_run_counts counts; /* run: acknowledged; plan: to be sent */
  long long duration_ms;
  const char *status;   /* succeeded | partial | failed | cancelled (SIGINT/SIGTERM) |
                         * skipped (another run held the lock) | planned */
  struct bf_buf sample; /* plan: JSON array of sample records */
  /* Rejected rows counted per reason ("column: reason"), in order of first
   * appearance; at most BF_RUN_MAX_REASONS, the rest under "other reasons". */
  struct bf_reason_count {
    char *reason;
    long long count;
  } * reasons;
  size_t n_reasons;
  int code; /* 0 or the bf_code that stopped the run */
};

/* Set by a signal handler: the run stops after the batch in flight. */

/* Runs (or plans) sync. Returns 0 when the run completed (some records may
 * be rejected: see counts), or the code that stopped it (err says why; the
 * run is logged as failed and nothing acknowledged is lost). res is filled
 * either way; release it with bf_run_result_release(). */
int bf_sync_run(struct bf_project *p, const char *sync_name, const struct bf_run_options *opts,
                struct bf_run_result *res, struct bf_error *err);
void bf_run_result_release(struct bf_run_result *res);

#define BF_RUN_MAX_REASONS 50
/* Counts one rejected row under its reason (run_reasons.c). */
void bf_run_result_add_reason(struct bf_run_result *res, const char *column, const char *reason);

#endif

/* The run log: every run's counts, status, timings and row-level errors,
 * in <state_dir>/runs.db (SQLite). Errors name the row by keyed hash and
 * the column by name, never by value. */
#ifndef BF_RUNLOG_H
#define BF_RUNLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "util/clock.h"
#include "util/error.h"

struct bf_run_counts {
  long long rows_read;
  long long added, changed, removed; /* acknowledged by the destination */
  long long unchanged;               /* in state with the same values: not sent */
  long long skipped;                 /* not sent because of the sync mode */
  long long rejected;                /* by Backflow (NULL/duplicate key) or the destination */
  long long failed;                  /* retries exhausted or not sent: retried next run */
};

struct bf_run_info {
  long long id;
  char *sync;
  char *status; /* running | succeeded | partial | failed | crashed */
  long long started_ms, finished_ms;
  struct bf_run_counts counts;
  char *error; /* NULL when none */
};

struct bf_run_error {
  char *key_hash; /* hex keyed hash, or "" for a row without a key */
  char *column;
  char *reason;
  bool failed; /* the destination never acknowledged it (retries exhausted, or the run
                * stopped before it was sent): retried next run. false: rejected, as a
                * row Backflow refused or the destination refused for good */
};

struct bf_runlog;

/* Caller frees with bf_runlog_close(). */
int bf_runlog_open(const char *state_dir, struct bf_runlog **out, struct bf_error *err);
/* For readers (runs, errors): opens runs.db read-only, creating nothing, so
 * a user who may read the state folder but not write it can list runs.
 * *out is NULL (and 0 returned) when there is no run log yet; list and
 * errors then find nothing. Caller frees with bf_runlog_close(). */
int bf_runlog_open_readonly(const char *state_dir, struct bf_runlog **out, struct bf_error *err);
void bf_runlog_close(struct bf_runlog *log);

int bf_runlog_begin(struct bf_runlog *log, const char *sync, long long *run_id,
                    struct bf_error *err);
/* Buffered; written by bf_runlog_flush/finish. At most 100000 per run are kept. */
void bf_runlog_add_error(struct bf_runlog *log, long long run_id, const char *key_hash,
                         const char *column, const char *reason);
/* The same for a record whose delivery failed (bf_run_error.failed). */
void bf_runlog_add_failure(struct bf_runlog *log, long long run_id, const char *key_hash,
                           const char *reason);
int bf_runlog_flush(struct bf_runlog *log, struct bf_error *err);
/* The counts of run_id so far, while it runs (the dashboard shows them
 * live). Best effort: a busy database skips this update, never the run. */
void bf_runlog_progress(struct bf_runlog *log, long long run_id, const struct bf_run_counts *c);
int bf_runlog_finish(struct bf_runlog *log, long long run_id, const char *status,
                     const struct bf_run_counts *counts, const char *error, struct bf_error *err);
/* Runs of sync still marked running (a crash): marked crashed. Call with the
 * sync's lock held. */
void bf_runlog_mark_crashed(struct bf_runlog *log, const char *sync);

/* Newest first; sync NULL = all. *out is an array of n runs; free with
 * bf_run_infos_free. */
int bf_runlog_list(struct bf_runlog *log, const char *sync, int limit, struct bf_run_info **out,
                   size_t *n, struct bf_error *err);
void bf_run_infos_free(struct bf_run_info *runs, size_t n);
/* Errors of run_id (<= 0: the latest run of sync that has any errors).
 * *resolved gets the run id used. Free with bf_run_errors_free. */
int bf_runlog_errors(struct bf_runlog *log, const char *sync, long long run_id, long long *resolved,
                     struct bf_run_error **out, size_t *n, struct bf_error *err);
void bf_run_errors_free(struct bf_run_error *errs, size_t n);

#endif

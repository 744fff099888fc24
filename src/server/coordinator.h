/* coordinator: {warehouse: pg} (docs/scale.md): several `backflow serve`
 * processes, on any number of machines, share the schedule through one
 * PostgreSQL table, backflow.coord_runs:
 *
 * - every worker enqueues each due instant of each sync (`every` instants
 *   are aligned on the epoch, `cron` minutes are the matching minutes) with
 *   INSERT ... ON CONFLICT DO NOTHING on (sync, slot): one row per
 *   scheduled run, however many workers saw it come due;
 * - runner threads lease a due row with UPDATE ... FOR UPDATE SKIP LOCKED
 *   (never a second row of a sync whose run is leased), a heartbeat thread
 *   extends this worker's leases; a killed worker's lease expires and
 *   another worker leases the row again and runs the sync, which resumes
 *   from its warehouse state (state: warehouse) with nothing lost;
 * - a finished run writes its status and counts into its row, which is what
 *   /api/syncs/{name}/runs shows on every worker.
 * `after:` syncs are enqueued when the run they follow completes. */
#ifndef BF_COORDINATOR_H
#define BF_COORDINATOR_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/runlog.h"
#include "server/scheduler.h"
#include "spec/config.h"
#include "util/error.h"

struct bf_coord;

/* Connects, creates the table when absent. ops->run runs a sync (on a runner
 * thread), ops->finished (optional) observes its result. cfg is borrowed.
 * Caller frees with bf_coord_free(). */
int bf_coord_new(const struct bf_config *cfg, const struct bf_sched_ops *ops, struct bf_coord **out,
                 struct bf_error *err);
int bf_coord_start(struct bf_coord *c, struct bf_error *err);
/* No new lease; waits for the runs in flight (bf_stop_requested makes them
 * stop after their batch; a cancelled run's row is due again for another
 * worker) and joins the threads. */
void bf_coord_stop(struct bf_coord *c);
void bf_coord_free(struct bf_coord *c);

/* Records a run this worker made outside the shared schedule (a trigger). */
void bf_coord_record(struct bf_coord *c, const char *sync, const struct bf_sched_result *res);
/* The last `limit` runs of sync from every worker, newest first, as the
 * run log lists them; free with bf_run_infos_free(). */
int bf_coord_list(struct bf_coord *c, const char *sync, int limit, struct bf_run_info **out,
                  size_t *n, struct bf_error *err);

#endif

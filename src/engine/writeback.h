/* Write-back: each run's summary and row-level errors appended to tables in
 * a warehouse, so analysts can query sync health with SQL.
 *
 *   write_back: {warehouse: pg, schema: backflow}   # on a sync, or top level
 *
 * PostgreSQL warehouses get <schema>.sync_runs, <schema>.sync_errors and
 * <schema>.outcomes (core/outcomes.h); SQLite warehouses get
 * <schema>_sync_runs and so on (the SQLite file is opened read-write for
 * this only). Tables are created when absent, through the warehouse type's
 * write path (sources/source.h, bf_writer_ops). Errors name the row by keyed hash and the column by
 * name, never by value (design.md §2). */
#ifndef BF_WRITEBACK_H
#define BF_WRITEBACK_H

#include <stdbool.h>
#include <stddef.h>

#include "spec/config.h"
#include "engine/project.h"
#include "engine/runlog.h"

struct bf_wtable;

/* Where a sync's write-back goes. */
struct bf_writeback_target {
  const struct bf_config *cfg;
  const struct bf_sync_config *sync;
  const struct bf_warehouse_config *wh;
  const char *schema; /* "backflow" unless set */
};
/* The sync's `write_back:` (or the top-level one). False when there is none
 * or it is turned off; a malformed one is logged as a warning and false. */
bool bf_writeback_target(const struct bf_config *cfg, const char *sync,
                         struct bf_writeback_target *out);
/* The sync_runs and sync_errors tables in schema (for tests and docs). */
void bf_writeback_tables(const char *schema, struct bf_wtable *runs, struct bf_wtable *errors);

/* Writes the runs of sync that are not yet in the warehouse: the one just
 * finished and any an earlier failure left out (the 20 latest runs are
 * offered; rows already there are kept). Does nothing without `write_back:`.
 * A failure is logged as a warning and never changes the run's outcome.
 * Call after the run log is finished (it reads runs.db itself). */
void bf_writeback_run(struct bf_project *p, const char *sync);

#endif

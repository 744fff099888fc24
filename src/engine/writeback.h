/* Write-back: each run's summary and row-level errors appended to tables in
 * a warehouse, so analysts can query sync health with SQL.
 *
 *   write_back: {warehouse: pg, schema: backflow}   # on a sync, or top level
 *
 * PostgreSQL warehouses get <schema>.sync_runs and <schema>.sync_errors;
 * SQLite warehouses get backflow_sync_runs and backflow_sync_errors (the
 * SQLite file is opened read-write for this only). Tables are created when
 * absent. Errors name the row by keyed hash and the column by name, never by
 * value (design.md §2). */
#ifndef BF_WRITEBACK_H
#define BF_WRITEBACK_H

#include <stdbool.h>
#include <stddef.h>

#include "spec/config.h"
#include "engine/project.h"
#include "engine/runlog.h"

/* Writes the runs of sync that are not yet in the warehouse: the one just
 * finished and any an earlier failure left out (the 20 latest runs are
 * offered; rows already there are kept). Does nothing without `write_back:`.
 * A failure is logged as a warning and never changes the run's outcome.
 * Call after the run log is finished (it reads runs.db itself). */
void bf_writeback_run(struct bf_project *p, const char *sync);

#endif

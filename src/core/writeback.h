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

#include <libpq-fe.h>

#include "core/config.h"
#include "core/project.h"
#include "core/runlog.h"

/* Writes the runs of sync that are not yet in the warehouse: the one just
 * finished and any an earlier failure left out (the 20 latest runs are
 * offered; rows already there are kept). Does nothing without `write_back:`.
 * A failure is logged as a warning and never changes the run's outcome.
 * Call after the run log is finished (it reads runs.db itself). */
void bf_writeback_run(struct bf_project *p, const char *sync);

/* --- PostgreSQL connection helpers ---------------------------------------
 * Shared by the postgres warehouse, the postgres destination and write-back;
 * defined in src/sources/postgres.c. `params` is the warehouse/destination
 * map: dsn (a libpq URI or key=value string), sslmode, sslrootcert, sslcert,
 * sslkey, connect_timeout. */

/* Connects and sets the session up (UTF8, ISO dates, UTC, full float
 * precision). what names the object in messages ("warehouse 'pg'"); code is
 * the bf_code for failures. Messages never hold the password. */
PGconn *bf_pg_connect(const struct bf_node *params, const char *what, int code,
                      struct bf_error *err);
/* The DSN with its password replaced by "***". Caller frees. */
char *bf_pg_redact_dsn(const char *dsn);
/* One line describing the failure of res (or of the connection when res is
 * NULL): the server's message, detail and SQLSTATE, with the DSN's password
 * taken out. */
void bf_pg_error_text(PGconn *conn, const PGresult *res, const char *dsn, char *out, size_t cap);
/* True when the connection is gone (or the failure says it went away). */
bool bf_pg_connection_lost(PGconn *conn, const PGresult *res);

#endif

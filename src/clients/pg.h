/* PostgreSQL connection helpers shared by the postgres warehouse, the
 * postgres destination, the live feed and write-back (src/clients/pg.c). */
#ifndef BF_PG_H
#define BF_PG_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "spec/config.h"
#include "util/error.h"

/* `params` is the warehouse/destination
 * map: dsn (a libpq URI or key=value string), sslmode, sslrootcert, sslcert,
 * sslkey, connect_timeout. */

/* Connects and sets the session up (UTF8, ISO dates, UTC, full float
 * precision). what names the object in messages ("warehouse 'pg'"); code is
 * the bf_code for failures. Messages never hold the password. */
PGconn *bf_pg_connect(const struct bf_node *params, const char *what, int code,
                      struct bf_error *err);
/* The same as a logical replication connection (replication=database),
 * which also runs plain SQL. */
PGconn *bf_pg_connect_replication(const struct bf_node *params, const char *what, int code,
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

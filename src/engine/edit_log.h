/* The edit log, <state_dir>/edits.jsonl (issue 18): one JSON object per line
 * for every change made through the server's write routes,
 *
 *   {"time":"2026-12-07T23:10:00Z","who":"marketing","action":"save_model",
 *    "target":"models/vip.yml","detail":{...}}
 *
 * who is the token's name from server.tokens (never the token). It is kept
 * apart from the erasure audit log (audit_log.h): that log's readers treat
 * every event as part of an erasure request and its chain is keyed by the
 * project secret, which an edit has nothing to do with. */
#ifndef BF_EDIT_LOG_H
#define BF_EDIT_LOG_H

#include <stddef.h>

#include "util/error.h"

/* Appends one event and fsyncs it. detail: a JSON value's text, or NULL. */
int bf_edit_log_append(const char *state_dir, const char *who, const char *action,
                       const char *target, const char *detail, struct bf_error *err);

/* The last max events, oldest first, as a JSON array into *out (a new
 * string the caller frees). A missing log is an empty array. */
int bf_edit_log_read(const char *state_dir, size_t max, char **out, struct bf_error *err);

#endif

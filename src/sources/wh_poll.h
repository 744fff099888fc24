/* Waiting for a statement an HTTP warehouse runs asynchronously
 * (Snowflake, BigQuery, Databricks): polls spaced 20 ms, doubling up to
 * 1 s, and the statement cancelled when a stop is asked for (Ctrl-C,
 * SIGTERM) or it runs past statement_timeout. */
#ifndef BF_WH_POLL_H
#define BF_WH_POLL_H

#include "util/error.h"

struct bf_wh_poll {
  const char *what; /* "warehouse 'snow' (snowflake)", borrowed */
  double started_ms;
  long long wait_ms;
  long long limit_ms; /* statement_timeout; 0: none */
};

void bf_wh_poll_start(struct bf_wh_poll *p, const char *what, long long statement_timeout_ms);

/* Called while the statement runs, before the next poll. When a stop was
 * asked for or statement_timeout has passed, calls cancel(arg) and returns
 * BF_E_INTERRUPTED or BF_E_WAREHOUSE ("<what>: stopped; <subject> was
 * cancelled", subject naming the statement: "the query", "job X"); else
 * sleeps until the next poll is due and returns 0. */
int bf_wh_poll_wait(struct bf_wh_poll *p, void (*cancel)(void *arg), void *arg, const char *subject,
                    struct bf_error *err);

/* A random (v4) UUID, for the request ids that make a resent POST
 * idempotent. Caller frees. */
char *bf_wh_request_id(void);

#endif

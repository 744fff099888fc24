/* The keyed pass of a live sync (internal to the engine: core/live.c). */
#ifndef BF_LIVE_PASS_H
#define BF_LIVE_PASS_H

#include "engine/runner_internal.h"

/* Evaluates the model for keys (the model's primary key values; repeats
 * collapse), diffs and pushes on the open session r (bf_run_begin with
 * r->keyed). Counts add to r->res->counts. Returns 0 or the code that
 * stopped it; nothing acknowledged is lost either way. */
int bf_live_pass(struct run *r, const struct bf_value *keys, size_t n, struct bf_error *err);

#endif

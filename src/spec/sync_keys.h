/* The keys of a sync (syncs: NAME: {...}) as one table: config.c accepts
 * exactly these, and `backflow types` / the README reference print them. */
#ifndef BF_SYNC_KEYS_H
#define BF_SYNC_KEYS_H

#include <stdbool.h>

#include "spec/config.h"
#include "spec/params.h"

/* Ends with an entry whose name is NULL. */
extern const struct bf_param_spec bf_sync_keys[];

/* Reads `reject_threshold`: "0.1%" (a share of the rows read) or "5" (a
 * count of rejected rows). A config error at the value otherwise. */
int bf_sync_parse_reject_threshold(const struct bf_node *n, struct bf_sync_config *s,
                                   struct bf_error *err);

/* True when a run's rejects are within the sync's reject_threshold: the run
 * then counts as succeeded (with a warning) instead of partial. Records that
 * failed delivery are never tolerated: they are not a model's known bad rows
 * but a destination that did not take them. */
bool bf_sync_rejects_tolerated(const struct bf_sync_config *s, long long rejected, long long failed,
                               long long rows_read);

/* "3 rejected rows (0.01% of 24000 read) are within reject_threshold 0.1%"
 * into out (cap bytes). */
void bf_sync_threshold_note(const struct bf_sync_config *s, long long rejected, long long rows_read,
                            char *out, size_t cap);

#endif

/* Paused syncs: `backflow pause SYNC` (or POST /api/syncs/{name}/pause)
 * leaves a marker file <state_dir>/paused/<sync>; the scheduler of
 * `backflow serve` starts no scheduled or triggered run of a sync while its
 * marker exists, and `backflow resume SYNC` removes it. A file rather than a
 * flag in memory so that the CLI and a running server agree without talking
 * to each other, and a pause survives a restart. An explicit
 * `backflow run SYNC` still runs: it is a person asking for that run.
 * Live syncs cannot be paused: they hold a replication slot that would keep
 * WAL piling up on the warehouse while nobody reads it. */
#ifndef BF_PAUSE_H
#define BF_PAUSE_H

#include <stdbool.h>

#include "spec/config.h"
#include "util/error.h"

/* Pauses (paused true) or resumes sync. Refuses a live sync with BF_E_USAGE
 * and a message saying why. *changed (optional) tells whether the state
 * changed (false: it was already so). */
int bf_pause_set(const char *state_dir, const struct bf_sync_config *sync, bool paused,
                 bool *changed, struct bf_error *err);
/* When sync was paused (unix ms), or 0 when it is not paused. */
long long bf_pause_since_ms(const char *state_dir, const char *sync);
static inline bool bf_pause_is_paused(const char *state_dir, const char *sync) {
  return bf_pause_since_ms(state_dir, sync) > 0;
}

#endif

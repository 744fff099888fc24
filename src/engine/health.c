#include "engine/health.h"

#include <string.h>

static bool is(const char *status, const char *what) { return status && !strcmp(status, what); }

void bf_health_compute(const struct bf_run_info *runs, size_t n, struct bf_sync_health *out) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < n; i++) {
    const struct bf_run_info *r = &runs[i];
    if (is(r->status, "succeeded") || is(r->status, "partial")) {
      out->last_success_ms = r->finished_ms > 0 ? r->finished_ms : r->started_ms;
      out->last_success_run_id = r->id;
      return;
    }
    if (is(r->status, "failed") || is(r->status, "crashed")) {
      out->consecutive_failures++;
      out->failing_since_ms = r->started_ms;
    }
  }
  /* No success among the runs looked at: the streak may be longer. */
  out->no_success_seen = n > 0;
}

/* Progress of a run, at most every 250 ms: its counts so far into its row
 * of the run log (the dashboard and the API show them live), and a line on
 * stderr when that is a terminal (runner_internal.h). */
#include <stdio.h>

#include "engine/runner_internal.h"

void bf_run_progress(struct run *r, bool final) {
  if (!r->sync) return;
  long long now = bf_now_ms();
  if (!final && now - r->last_progress_ms < 250) return;
  r->last_progress_ms = now;
  if (!final && r->logged) bf_runlog_progress(r->log, r->res->run_id, &r->res->counts);
  if (!r->opts->progress) return;
  double secs = (double)(now - r->started_ms) / 1000.0;
  const struct bf_run_counts *c = &r->res->counts;
  fprintf(stderr, "\r[%s] %lld rows read, %lld sent, %lld rejected  (%.0f rows/s, %.1fs)%s",
          r->sync->name, c->rows_read, r->sent, c->rejected,
          secs > 0 ? (double)c->rows_read / secs : 0.0, secs, final ? "\n" : "  ");
  fflush(stderr);
}

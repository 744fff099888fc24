/* Tests for engine/pause.c (the paused/<sync> marker), engine/health.c (last
 * success, failing since, failures in a row) and the scheduler's skipping of
 * paused syncs (server/scheduler.c with a fake clock and fake runs). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec/config.h"
#include "engine/health.h"
#include "engine/pause.h"
#include "server/scheduler.h"

#define MIN_MS (60LL * 1000)

static struct bf_config *config(const char *syncs) {
  char text[4096];
  snprintf(text, sizeof text,
           "version: 1\n"
           "warehouses: {w: {type: sqlite, path: w.db}}\n"
           "models: {m: {warehouse: w, sql: \"SELECT 1 AS id\", primary_key: id,"
           " live: {table: t, key: id}}}\n"
           "destinations: {d1: {type: file, path: a.jsonl}, d2: {type: file, path: b.jsonl}}\n"
           "syncs:\n%s",
           syncs);
  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_config_parse("t.yml", text, strlen(text), "/tmp", &cfg, &err), 0, "%s", err.msg);
  return cfg;
}

static char *temp_dir(void) {
  char *d = strdup("/tmp/bf-pause-XXXXXX");
  cr_assert_not_null(mkdtemp(d));
  return d;
}

/* ---- health */

static struct bf_run_info run(long long id, const char *status, long long started) {
  struct bf_run_info r = {0};
  r.id = id;
  r.status = (char *)status;
  r.started_ms = started;
  r.finished_ms = started + 500;
  return r;
}

Test(health, never_ran) {
  struct bf_sync_health hl;
  bf_health_compute(NULL, 0, &hl);
  cr_assert_eq(hl.last_success_ms, 0);
  cr_assert_eq(hl.consecutive_failures, 0);
  cr_assert_eq(hl.failing_since_ms, 0);
  cr_assert(!hl.no_success_seen);
}

Test(health, failures_since_the_last_success) {
  /* Newest first: failed, crashed, skipped (says nothing), failed, then a
   * partial run (a success: it completed) and older failures. */
  struct bf_run_info runs[] = {
      run(9, "failed", 9000),    run(8, "crashed", 8000),   run(7, "skipped", 7000),
      run(6, "cancelled", 6500), run(5, "failed", 6000),    run(4, "partial", 5000),
      run(3, "failed", 4000),    run(2, "succeeded", 3000),
  };
  struct bf_sync_health hl;
  bf_health_compute(runs, sizeof runs / sizeof *runs, &hl);
  cr_assert_eq(hl.consecutive_failures, 3);
  cr_assert_eq(hl.failing_since_ms, 6000, "the oldest failure of the streak: %lld",
               hl.failing_since_ms);
  cr_assert_eq(hl.last_success_ms, 5500, "finish of run 4: %lld", hl.last_success_ms);
  cr_assert_eq(hl.last_success_run_id, 4);
  cr_assert(!hl.no_success_seen);
}

Test(health, healthy_and_running) {
  struct bf_run_info runs[] = {run(3, "running", 3000), run(2, "succeeded", 2000),
                               run(1, "failed", 1000)};
  struct bf_sync_health hl;
  bf_health_compute(runs, 3, &hl);
  cr_assert_eq(hl.consecutive_failures, 0);
  cr_assert_eq(hl.failing_since_ms, 0);
  cr_assert_eq(hl.last_success_run_id, 2);
}

Test(health, only_failures) {
  struct bf_run_info runs[] = {run(2, "failed", 2000), run(1, "failed", 1000)};
  struct bf_sync_health hl;
  bf_health_compute(runs, 2, &hl);
  cr_assert_eq(hl.consecutive_failures, 2);
  cr_assert_eq(hl.failing_since_ms, 1000);
  cr_assert_eq(hl.last_success_ms, 0);
  cr_assert(hl.no_success_seen);
}

/* ---- the marker */

Test(pause, marker_round_trip) {
  struct bf_config *cfg = config("  a: {model: m, destination: d1, match: {id: id}}\n");
  char *dir = temp_dir();
  struct bf_error err = {0};
  bool changed = true;
  cr_assert_eq(bf_pause_since_ms(dir, "a"), 0);
  cr_assert_eq(bf_pause_set(dir, &cfg->syncs[0], false, &changed, &err), 0, "%s", err.msg);
  cr_assert(!changed, "resuming a sync that is not paused changes nothing");
  cr_assert_eq(bf_pause_set(dir, &cfg->syncs[0], true, &changed, &err), 0, "%s", err.msg);
  cr_assert(changed);
  cr_assert(bf_pause_is_paused(dir, "a"));
  cr_assert_gt(bf_pause_since_ms(dir, "a"), 1600000000000LL);
  char path[512];
  snprintf(path, sizeof path, "%s/paused/a", dir);
  struct stat sb;
  cr_assert_eq(stat(path, &sb), 0, "the marker is <state_dir>/paused/<sync>");
  cr_assert_eq(sb.st_mode & 0777, 0600);
  cr_assert_eq(bf_pause_set(dir, &cfg->syncs[0], true, &changed, &err), 0);
  cr_assert(!changed, "pausing twice is not a change");
  cr_assert_eq(bf_pause_set(dir, &cfg->syncs[0], false, &changed, &err), 0);
  cr_assert(changed);
  cr_assert(!bf_pause_is_paused(dir, "a"));
  cr_assert_neq(stat(path, &sb), 0);
  snprintf(path, sizeof path, "%s/paused", dir);
  rmdir(path);
  rmdir(dir);
  free(dir);
  bf_config_free(cfg);
}

Test(pause, live_sync_is_refused) {
  struct bf_config *cfg =
      config("  lv: {model: m, destination: d1, match: {id: id}, schedule: live}\n");
  char *dir = temp_dir();
  struct bf_error err = {0};
  cr_assert_eq(bf_pause_set(dir, &cfg->syncs[0], true, NULL, &err), BF_E_USAGE);
  cr_assert(strstr(err.msg, "live") && strstr(err.msg, "cannot be paused"), "%s", err.msg);
  cr_assert(!bf_pause_is_paused(dir, "lv"));
  struct bf_error err2 = {0};
  cr_assert_eq(bf_pause_set(dir, &cfg->syncs[0], false, NULL, &err2), 0,
               "resuming is always allowed");
  rmdir(dir);
  free(dir);
  bf_config_free(cfg);
}

Test(pause, names_that_are_not_file_names) {
  cr_assert_eq(bf_pause_since_ms("/tmp", "../etc"), 0);
  cr_assert_eq(bf_pause_since_ms("/tmp", ".hidden"), 0);
}

/* ---- the scheduler */

static _Atomic long long fake_now;
static _Atomic int runs_a, runs_b;
static _Atomic bool a_paused;

static long long clock_now(void *ctx) {
  (void)ctx;
  return atomic_load(&fake_now);
}
static void fake_run(void *ctx, const char *sync, struct bf_sched_result *res) {
  (void)ctx;
  atomic_fetch_add(!strcmp(sync, "a") ? &runs_a : &runs_b, 1);
  res->status = "succeeded";
}
static bool fake_paused(void *ctx, const char *sync) {
  (void)ctx;
  return !strcmp(sync, "a") && atomic_load(&a_paused);
}

Test(pause, scheduler_skips_paused_syncs_and_resumes_without_a_burst) {
  struct bf_config *cfg =
      config("  a: {model: m, destination: d1, match: {id: id}, schedule: {every: 1m}}\n"
             "  b: {model: m, destination: d2, match: {id: id}, schedule: {after: a}}\n");
  long long t0 = 1704067200000LL;
  atomic_store(&fake_now, t0);
  struct bf_sched_ops ops = {.now_ms = clock_now, .run = fake_run, .paused = fake_paused};
  struct bf_scheduler *s = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_scheduler_new(cfg, &ops, 0, &s, &err), 0, "%s", err.msg);
  cr_assert_eq(bf_scheduler_start(s, false, &err), 0, "%s", err.msg);
  bf_scheduler_tick(s);
  cr_assert(bf_scheduler_wait_idle(s, 10000));
  cr_assert_eq(atomic_load(&runs_a), 1);
  cr_assert_eq(atomic_load(&runs_b), 1, "b follows a");

  atomic_store(&a_paused, true);
  for (int m = 1; m <= 5; m++) {
    atomic_store(&fake_now, t0 + m * MIN_MS);
    bf_scheduler_tick(s);
    cr_assert(bf_scheduler_wait_idle(s, 10000));
  }
  bf_scheduler_trigger(s, "a", NULL);
  cr_assert(bf_scheduler_wait_idle(s, 10000));
  cr_assert_eq(atomic_load(&runs_a), 1, "a paused sync does not run: %d", atomic_load(&runs_a));
  cr_assert_eq(atomic_load(&runs_b), 1, "nor does what follows it");
  struct bf_sched_status st;
  cr_assert_eq(bf_scheduler_status(s, "a", &st), 0);
  cr_assert_eq(st.paused_skips, 6);
  cr_assert(!st.queued, "the dropped runs are not kept for later");

  atomic_store(&a_paused, false);
  cr_assert(bf_scheduler_wait_idle(s, 10000));
  cr_assert_eq(atomic_load(&runs_a), 1, "resuming starts no burst of missed runs");
  atomic_store(&fake_now, t0 + 6 * MIN_MS);
  bf_scheduler_tick(s);
  cr_assert(bf_scheduler_wait_idle(s, 10000));
  cr_assert_eq(atomic_load(&runs_a), 2, "the next instant runs");
  cr_assert_eq(atomic_load(&runs_b), 2);
  bf_scheduler_free(s);
  bf_config_free(cfg);
}

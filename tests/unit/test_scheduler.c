/* Tests for src/server/scheduler.c with a fake clock and fake runs: each
 * schedule kind runs at the expected instants, a sync never runs twice at
 * once, triggers during a run queue one follow-up, and destinations are
 * shared fairly (different ones concurrently, the same one in turn). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "spec/config.h"
#include "server/scheduler.h"

#define MIN_MS (60LL * 1000)

static _Atomic long long fake_now;

struct fake {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char names[256][32];
  long long at[256];
  size_t n;
  int in_flight, max_in_flight;
  const char *block;         /* runs of this sync (or "*": all) wait for release */
  int released;              /* how many blocked runs of any sync may proceed */
  char released_name[8][32]; /* or: one blocked run of this sync may proceed */
  int blocked_now;
  const char *fail; /* runs of this sync fail */
};

static struct fake F = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static long long clock_now(void *ctx) {
  (void)ctx;
  return atomic_load(&fake_now);
}

static void fake_run(void *ctx, const char *sync, struct bf_sched_result *res) {
  (void)ctx;
  pthread_mutex_lock(&F.mu);
  snprintf(F.names[F.n], sizeof F.names[0], "%s", sync);
  F.at[F.n++] = atomic_load(&fake_now);
  F.in_flight++;
  if (F.in_flight > F.max_in_flight) F.max_in_flight = F.in_flight;
  if (F.block && (!strcmp(F.block, "*") || !strcmp(F.block, sync))) {
    F.blocked_now++;
    pthread_cond_broadcast(&F.cv);
    for (;;) {
      int k = 0;
      while (k < 8 && strcmp(F.released_name[k], sync)) k++;
      if (k < 8) {
        F.released_name[k][0] = 0;
        break;
      }
      if (F.released > 0) {
        F.released--;
        break;
      }
      pthread_cond_wait(&F.cv, &F.mu);
    }
    F.blocked_now--;
    pthread_cond_broadcast(&F.cv);
  }
  F.in_flight--;
  res->status = F.fail && !strcmp(F.fail, sync) ? "failed" : "succeeded";
  pthread_mutex_unlock(&F.mu);
}

/* Waits (real time, bounded) until `started` runs have started in all and
 * exactly `n` of them are blocked inside fake_run. */
static void wait_blocked_after(size_t started, int n) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 10;
  pthread_mutex_lock(&F.mu);
  while (F.n < started || F.blocked_now != n)
    cr_assert_eq(pthread_cond_timedwait(&F.cv, &F.mu, &ts), 0, "runs did not start");
  pthread_mutex_unlock(&F.mu);
}

static void release_sync(const char *sync) {
  pthread_mutex_lock(&F.mu);
  for (int k = 0; k < 8; k++)
    if (!F.released_name[k][0]) {
      snprintf(F.released_name[k], sizeof F.released_name[k], "%s", sync);
      break;
    }
  pthread_cond_broadcast(&F.cv);
  pthread_mutex_unlock(&F.mu);
}

static void release(int n) {
  pthread_mutex_lock(&F.mu);
  F.released += n;
  pthread_cond_broadcast(&F.cv);
  pthread_mutex_unlock(&F.mu);
}

#define HEAD                                                                                       \
  "version: 1\n"                                                                                   \
  "warehouses: {w: {type: sqlite, path: w.db}}\n"                                                  \
  "models: {m: {warehouse: w, sql: \"SELECT 1 AS id\", primary_key: id}}\n"                        \
  "destinations: {d1: {type: file, path: a.jsonl}, d2: {type: file, path: b.jsonl}}\n"             \
  "syncs:\n"

static struct bf_config *config(const char *syncs) {
  char text[4096];
  snprintf(text, sizeof text, "%s%s", HEAD, syncs);
  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_config_parse("t.yml", text, strlen(text), "/tmp", &cfg, &err), 0, "%s", err.msg);
  return cfg;
}

static struct bf_scheduler *start(struct bf_config *cfg, long long t0) {
  atomic_store(&fake_now, t0);
  struct bf_sched_ops ops = {.now_ms = clock_now, .run = fake_run};
  struct bf_scheduler *s = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_scheduler_new(cfg, &ops, 0, &s, &err), 0, "%s", err.msg);
  cr_assert_eq(bf_scheduler_start(s, false, &err), 0, "%s", err.msg);
  return s;
}

/* Moves the fake clock to t, fires what is due and lets the runs finish. */
static void advance_to(struct bf_scheduler *s, long long t) {
  atomic_store(&fake_now, t);
  bf_scheduler_tick(s);
  cr_assert(bf_scheduler_wait_idle(s, 10000), "scheduler did not go idle");
}

/* Runs of sync, as fake times, in order. */
static size_t runs_of(const char *sync, long long *out, size_t max) {
  size_t k = 0;
  pthread_mutex_lock(&F.mu);
  for (size_t i = 0; i < F.n; i++)
    if (!strcmp(F.names[i], sync) && k < max) out[k++] = F.at[i];
  pthread_mutex_unlock(&F.mu);
  return k;
}

Test(scheduler, every_runs_at_fixed_instants) {
  struct bf_config *cfg =
      config("  a: {model: m, destination: d1, match: {id: id}, schedule: {every: 15m}}\n");
  long long t0 = 1704067200000LL; /* 2024-01-01T00:00:00Z */
  struct bf_scheduler *s = start(cfg, t0);
  /* Minute by minute for an hour, with a few seconds of scheduling jitter. */
  for (long long m = 0; m <= 60; m++) advance_to(s, t0 + m * MIN_MS + 1500);
  long long at[16];
  size_t n = runs_of("a", at, 16);
  cr_assert_eq(n, 5, "expected runs at 0, 15, 30, 45, 60 min; got %zu", n);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(at[i], t0 + (long long)i * 15 * MIN_MS + 1500, "run %zu at +%lld ms", i,
                 at[i] - t0);
  struct bf_sched_status st;
  cr_assert_eq(bf_scheduler_status(s, "a", &st), 0);
  cr_assert_eq(st.next_ms, t0 + 75 * MIN_MS);
  cr_assert_eq(st.runs, 5);
  bf_scheduler_free(s);
  bf_config_free(cfg);
}

Test(scheduler, every_continues_from_last_run_and_skips_missed_instants) {
  struct bf_config *cfg =
      config("  a: {model: m, destination: d1, match: {id: id}, schedule: {every: 10m}}\n");
  long long t0 = 1704067200000LL;
  atomic_store(&fake_now, t0);
  struct bf_sched_ops ops = {.now_ms = clock_now, .run = fake_run};
  struct bf_scheduler *s = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_scheduler_new(cfg, &ops, 0, &s, &err), 0);
  bf_scheduler_set_last_start(s, "a", t0 - 4 * MIN_MS); /* last ran 4 minutes ago */
  cr_assert_eq(bf_scheduler_start(s, false, &err), 0);
  advance_to(s, t0);
  long long at[8];
  cr_assert_eq(runs_of("a", at, 8), 0, "must not run at start: the last run was 4 min ago");
  advance_to(s, t0 + 6 * MIN_MS);
  cr_assert_eq(runs_of("a", at, 8), 1);
  /* The server was busy (or the machine asleep) for 35 minutes: one run, not three. */
  advance_to(s, t0 + 41 * MIN_MS);
  cr_assert_eq(runs_of("a", at, 8), 2);
  struct bf_sched_status st;
  bf_scheduler_status(s, "a", &st);
  cr_assert_eq(st.next_ms, t0 + 46 * MIN_MS, "instants stay on the 10-minute grid");
  bf_scheduler_free(s);
  bf_config_free(cfg);
}

Test(scheduler, cron_runs_at_matching_minutes) {
  struct bf_config *cfg = config(
      "  c: {model: m, destination: d1, match: {id: id}, schedule: {cron: \"*/20 * * * *\"}}\n");
  setenv("TZ", "UTC", 1);
  tzset();
  long long t0 = 1704067200000LL + 5 * MIN_MS; /* 00:05 */
  struct bf_scheduler *s = start(cfg, t0);
  for (long long sec = 0; sec <= 3600; sec += 20) advance_to(s, t0 + sec * 1000);
  long long at[8];
  size_t n = runs_of("c", at, 8);
  cr_assert_eq(n, 3, "expected runs at 00:20, 00:40, 01:00; got %zu", n);
  cr_assert_eq(at[0], 1704067200000LL + 20 * MIN_MS);
  cr_assert_eq(at[1], 1704067200000LL + 40 * MIN_MS);
  cr_assert_eq(at[2], 1704067200000LL + 60 * MIN_MS);
  bf_scheduler_free(s);
  bf_config_free(cfg);
}

Test(scheduler, bad_cron_names_the_sync) {
  struct bf_config *cfg = config(
      "  c: {model: m, destination: d1, match: {id: id}, schedule: {cron: \"0 25 * * *\"}}\n");
  struct bf_sched_ops ops = {.now_ms = clock_now, .run = fake_run};
  struct bf_scheduler *s = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_scheduler_new(cfg, &ops, 0, &s, &err), BF_E_CONFIG);
  cr_assert_null(s);
  cr_assert_not_null(strstr(err.msg, "t.yml:6:"), "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, "sync 'c'"), "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, "hour '25' is out of range 0-23"), "%s", err.msg);
  bf_config_free(cfg);
}

Test(scheduler, after_runs_when_upstream_succeeds_only) {
  struct bf_config *cfg =
      config("  up: {model: m, destination: d1, match: {id: id}}\n"
             "  down: {model: m, destination: d2, match: {id: id}, schedule: {after: up}}\n"
             "  last: {model: m, destination: d1, match: {id: id}, schedule: {after: down}}\n");
  struct bf_scheduler *s = start(cfg, 1000);
  cr_assert_eq(bf_scheduler_trigger(s, "up", NULL), 0);
  cr_assert(bf_scheduler_wait_idle(s, 10000));
  long long at[8];
  cr_assert_eq(runs_of("up", at, 8), 1);
  cr_assert_eq(runs_of("down", at, 8), 1);
  cr_assert_eq(runs_of("last", at, 8), 1);
  pthread_mutex_lock(&F.mu);
  cr_assert_str_eq(F.names[0], "up");
  cr_assert_str_eq(F.names[1], "down");
  cr_assert_str_eq(F.names[2], "last");
  F.fail = "up";
  pthread_mutex_unlock(&F.mu);
  bf_scheduler_trigger(s, "up", NULL);
  cr_assert(bf_scheduler_wait_idle(s, 10000));
  cr_assert_eq(runs_of("up", at, 8), 2);
  cr_assert_eq(runs_of("down", at, 8), 1, "a failed run does not start its followers");
  bf_scheduler_free(s);
  bf_config_free(cfg);
}

Test(scheduler, triggers_during_a_run_queue_one_follow_up) {
  struct bf_config *cfg = config("  a: {model: m, destination: d1, match: {id: id}}\n");
  F.block = "a";
  struct bf_scheduler *s = start(cfg, 1000);
  struct bf_sched_status st;
  cr_assert_eq(bf_scheduler_trigger(s, "a", &st), 0);
  wait_blocked_after(1, 1);
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(bf_scheduler_trigger(s, "a", &st), 0);
    cr_assert(st.running);
    cr_assert(st.queued);
  }
  cr_assert_eq(bf_scheduler_trigger(s, "nope", &st), -1);
  release(1);
  wait_blocked_after(2, 1); /* the follow-up */
  release(1);
  cr_assert(bf_scheduler_wait_idle(s, 10000));
  long long at[8];
  cr_assert_eq(runs_of("a", at, 8), 2, "one run plus exactly one follow-up");
  cr_assert_eq(F.max_in_flight, 1);
  bf_scheduler_free(s);
  bf_config_free(cfg);
}

Test(scheduler, destinations_run_concurrently_but_each_in_turn) {
  struct bf_config *cfg = config("  a: {model: m, destination: d1, match: {id: id}}\n"
                                 "  b: {model: m, destination: d1, match: {id: id}}\n"
                                 "  c: {model: m, destination: d2, match: {id: id}}\n");
  F.block = "*";
  struct bf_scheduler *s = start(cfg, 1000);
  bf_scheduler_trigger(s, "a", NULL);
  bf_scheduler_trigger(s, "b", NULL);
  bf_scheduler_trigger(s, "c", NULL);
  wait_blocked_after(2, 2); /* a (d1) and c (d2) together */
  struct bf_sched_status sa, sb, sc;
  bf_scheduler_status(s, "a", &sa);
  bf_scheduler_status(s, "b", &sb);
  bf_scheduler_status(s, "c", &sc);
  cr_assert(sa.running && sc.running, "different destinations run at the same time");
  cr_assert(!sb.running && sb.queued, "b waits for d1");
  release_sync("a");
  release_sync("c");
  wait_blocked_after(3, 1);
  bf_scheduler_status(s, "b", &sb);
  cr_assert(sb.running);
  release(1);
  cr_assert(bf_scheduler_wait_idle(s, 10000));
  cr_assert_eq(F.max_in_flight, 2);
  cr_assert_eq(F.n, 3);
  bf_scheduler_free(s);
  bf_config_free(cfg);
}

static void *release_later(void *arg) {
  (void)arg;
  /* Gives bf_scheduler_stop time to begin waiting; the assertion below
   * holds whichever comes first, the sleep only makes the test meaningful. */
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  release(100);
  return NULL;
}

Test(scheduler, stop_waits_for_runs_in_flight_and_starts_no_more) {
  struct bf_config *cfg = config("  a: {model: m, destination: d1, match: {id: id}}\n");
  F.block = "a";
  struct bf_scheduler *s = start(cfg, 1000);
  bf_scheduler_trigger(s, "a", NULL);
  wait_blocked_after(1, 1);
  bf_scheduler_trigger(s, "a", NULL); /* queued: must not start once stopping */
  pthread_t t;
  pthread_create(&t, NULL, release_later, NULL);
  bf_scheduler_stop(s);
  cr_assert_eq(F.in_flight, 0, "stop returned while a run was in flight");
  cr_assert_eq(F.n, 1, "a queued run started after stop");
  pthread_join(t, NULL);
  bf_scheduler_free(s);
  bf_config_free(cfg);
}

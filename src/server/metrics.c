/* Counters behind /metrics, in the Prometheus text exposition format
 * (version 0.0.4). One table of metric families; every configured sync gets
 * every label combination from the start (at zero), so rate() and alerts
 * work before the first run. Counters count what this server process did. */
#include <pthread.h>
#include <string.h>

#include "clients/http_transport.h"
#include "server/server.h"

static const char *const run_statuses[] = {"succeeded", "partial", "failed",
                                           "cancelled", "skipped", NULL};
static const char *const outcomes[] = {"added",   "changed",  "removed", "unchanged",
                                       "skipped", "rejected", "failed",  NULL};
#define N_STATUSES 5
#define N_OUTCOMES 7
/* Run durations range from a second to hours. */
static const double buckets[] = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

struct sync_metrics {
  const char *name;
  long long runs[N_STATUSES];
  long long records[N_OUTCOMES];
  long long rows_read;
  long long bucket_counts[N_BUCKETS]; /* not cumulative; summed when written */
  long long duration_count;
  double duration_sum;
  long long last_success_ms; /* 0: none known */
};

struct hook_metrics {
  char *destination;
  char *result;
  long long requests, events;
};

struct bf_metrics {
  pthread_mutex_t mu;
  size_t n;
  struct sync_metrics *syncs;
  size_t n_hooks, cap_hooks;
  struct hook_metrics *hooks;
};

struct bf_metrics *bf_metrics_new(const struct bf_config *cfg) {
  struct bf_metrics *m = bf_xcalloc(1, sizeof *m);
  pthread_mutex_init(&m->mu, NULL);
  m->n = cfg->n_syncs;
  m->syncs = bf_xcalloc(m->n ? m->n : 1, sizeof *m->syncs);
  for (size_t i = 0; i < m->n; i++) m->syncs[i].name = cfg->syncs[i].name;
  return m;
}

void bf_metrics_free(struct bf_metrics *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_hooks; i++) {
    free(m->hooks[i].destination);
    free(m->hooks[i].result);
  }
  free(m->hooks);
  free(m->syncs);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static struct sync_metrics *find(struct bf_metrics *m, const char *sync) {
  for (size_t i = 0; i < m->n; i++)
    if (!strcmp(m->syncs[i].name, sync)) return &m->syncs[i];
  return NULL;
}

void bf_metrics_observe_run(struct bf_metrics *m, const char *sync,
                            const struct bf_sched_result *res) {
  pthread_mutex_lock(&m->mu);
  struct sync_metrics *s = find(m, sync);
  if (s) {
    for (int i = 0; run_statuses[i]; i++)
      if (!strcmp(run_statuses[i], res->status)) s->runs[i]++;
    if (strcmp(res->status, "skipped")) {
      const struct bf_run_counts *c = &res->counts;
      long long v[N_OUTCOMES] = {c->added,   c->changed,  c->removed, c->unchanged,
                                 c->skipped, c->rejected, c->failed};
      for (int i = 0; i < N_OUTCOMES; i++) s->records[i] += v[i];
      s->rows_read += c->rows_read;
      double secs = (double)res->duration_ms / 1000.0;
      for (size_t b = 0; b < N_BUCKETS; b++)
        if (secs <= buckets[b]) {
          s->bucket_counts[b]++;
          break;
        }
      s->duration_count++;
      s->duration_sum += secs;
      if (!strcmp(res->status, "succeeded") || !strcmp(res->status, "partial"))
        s->last_success_ms = res->started_ms + res->duration_ms;
    }
  }
  pthread_mutex_unlock(&m->mu);
}

void bf_metrics_set_last_success(struct bf_metrics *m, const char *sync, long long finished_ms) {
  pthread_mutex_lock(&m->mu);
  struct sync_metrics *s = find(m, sync);
  if (s && finished_ms > s->last_success_ms) s->last_success_ms = finished_ms;
  pthread_mutex_unlock(&m->mu);
}

void bf_metrics_hook(struct bf_metrics *m, const char *destination, const char *result,
                     long long events) {
  pthread_mutex_lock(&m->mu);
  struct hook_metrics *h = NULL;
  for (size_t i = 0; i < m->n_hooks && !h; i++)
    if (!strcmp(m->hooks[i].destination, destination) && !strcmp(m->hooks[i].result, result))
      h = &m->hooks[i];
  if (!h && m->n_hooks < 1024) { /* bounded: destination names come from config */
    if (m->n_hooks == m->cap_hooks) {
      m->cap_hooks = m->cap_hooks ? m->cap_hooks * 2 : 8;
      m->hooks = bf_xrealloc(m->hooks, m->cap_hooks * sizeof *m->hooks);
    }
    h = &m->hooks[m->n_hooks++];
    h->destination = bf_xstrdup(destination);
    h->result = bf_xstrdup(result);
    h->requests = h->events = 0;
  }
  if (h) {
    h->requests++;
    h->events += events;
  }
  pthread_mutex_unlock(&m->mu);
}

/* Label values: backslash, double quote and newline are escaped. */
static void label(struct bf_buf *out, const char *name, const char *value) {
  bf_buf_puts(out, name);
  bf_buf_puts(out, "=\"");
  for (const char *c = value; *c; c++) {
    if (*c == '\\')
      bf_buf_puts(out, "\\\\");
    else if (*c == '"')
      bf_buf_puts(out, "\\\"");
    else if (*c == '\n')
      bf_buf_puts(out, "\\n");
    else
      bf_buf_putc(out, *c);
  }
  bf_buf_putc(out, '"');
}

static void family(struct bf_buf *out, const char *name, const char *type, const char *help) {
  bf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void bf_metrics_write(struct bf_metrics *m, const bool *running, struct bf_buf *out) {
  pthread_mutex_lock(&m->mu);
  family(out, "backflow_runs_total", "counter",
         "Runs finished by this server, by sync and status.");
  for (size_t i = 0; i < m->n; i++)
    for (int k = 0; k < N_STATUSES; k++) {
      bf_buf_puts(out, "backflow_runs_total{");
      label(out, "sync", m->syncs[i].name);
      bf_buf_putc(out, ',');
      label(out, "status", run_statuses[k]);
      bf_buf_printf(out, "} %lld\n", m->syncs[i].runs[k]);
    }
  family(out, "backflow_records_total", "counter",
         "Records by outcome: added/changed/removed acknowledged by the destination, unchanged "
         "not sent, skipped by the sync mode, rejected, failed (retried next run).");
  for (size_t i = 0; i < m->n; i++)
    for (int k = 0; k < N_OUTCOMES; k++) {
      bf_buf_puts(out, "backflow_records_total{");
      label(out, "sync", m->syncs[i].name);
      bf_buf_putc(out, ',');
      label(out, "outcome", outcomes[k]);
      bf_buf_printf(out, "} %lld\n", m->syncs[i].records[k]);
    }
  family(out, "backflow_rows_read_total", "counter", "Model rows read from the warehouse.");
  for (size_t i = 0; i < m->n; i++) {
    bf_buf_puts(out, "backflow_rows_read_total{");
    label(out, "sync", m->syncs[i].name);
    bf_buf_printf(out, "} %lld\n", m->syncs[i].rows_read);
  }
  family(out, "backflow_run_duration_seconds", "histogram", "Duration of runs.");
  for (size_t i = 0; i < m->n; i++) {
    const struct sync_metrics *s = &m->syncs[i];
    long long cumulative = 0;
    for (size_t b = 0; b <= N_BUCKETS; b++) {
      bf_buf_puts(out, "backflow_run_duration_seconds_bucket{");
      label(out, "sync", s->name);
      if (b < N_BUCKETS) {
        cumulative += s->bucket_counts[b];
        bf_buf_printf(out, ",le=\"%g\"} %lld\n", buckets[b], cumulative);
      } else {
        bf_buf_printf(out, ",le=\"+Inf\"} %lld\n", s->duration_count);
      }
    }
    bf_buf_puts(out, "backflow_run_duration_seconds_sum{");
    label(out, "sync", s->name);
    bf_buf_printf(out, "} %.3f\n", s->duration_sum);
    bf_buf_puts(out, "backflow_run_duration_seconds_count{");
    label(out, "sync", s->name);
    bf_buf_printf(out, "} %lld\n", s->duration_count);
  }
  family(out, "backflow_last_success_timestamp_seconds", "gauge",
         "Unix time the last succeeded or partial run of a sync finished (absent: none yet).");
  for (size_t i = 0; i < m->n; i++) {
    if (!m->syncs[i].last_success_ms) continue;
    bf_buf_puts(out, "backflow_last_success_timestamp_seconds{");
    label(out, "sync", m->syncs[i].name);
    bf_buf_printf(out, "} %.3f\n", (double)m->syncs[i].last_success_ms / 1000.0);
  }
  family(out, "backflow_sync_running", "gauge", "1 while a run of the sync is in flight.");
  for (size_t i = 0; i < m->n; i++) {
    bf_buf_puts(out, "backflow_sync_running{");
    label(out, "sync", m->syncs[i].name);
    bf_buf_printf(out, "} %d\n", running && running[i] ? 1 : 0);
  }
  /* The shared HTTP transport keeps process-wide totals only, so these
   * carry no destination label (per-destination counts need a per-type
   * hook in src/destinations). The webhook destination does not use the
   * shared transport yet and is not counted. */
  struct bf_http_stats hs;
  bf_http_stats_totals(&hs);
  family(out, "backflow_destination_requests_total", "counter",
         "HTTP requests to destinations (all HTTP destinations on the shared transport), by status "
         "class.");
  static const char *const classes[] = {"2xx", "3xx", "4xx", "429", "5xx", "transport_error"};
  const uint64_t by_class[] = {hs.status_2xx, hs.status_3xx, hs.status_4xx,
                               hs.status_429, hs.status_5xx, hs.transport_errors};
  for (size_t i = 0; i < 6; i++)
    bf_buf_printf(out, "backflow_destination_requests_total{status=\"%s\"} %llu\n", classes[i],
                  (unsigned long long)by_class[i]);
  family(out, "backflow_destination_retries_total", "counter",
         "Destination requests sent again after a retryable answer.");
  bf_buf_printf(out, "backflow_destination_retries_total %llu\n", (unsigned long long)hs.retries);
  family(out, "backflow_destination_throttles_total", "counter",
         "Pauses a destination asked for (429, Retry-After, rate-limit headers).");
  bf_buf_printf(out, "backflow_destination_throttles_total %llu\n",
                (unsigned long long)hs.server_throttles);
  family(out, "backflow_rate_limit_waits_total", "counter",
         "Requests that waited for a destination's rate limit.");
  bf_buf_printf(out, "backflow_rate_limit_waits_total %llu\n",
                (unsigned long long)hs.rate_limit_waits);
  family(out, "backflow_rate_limit_wait_seconds_total", "counter",
         "Time spent waiting for destinations' rate limits.");
  bf_buf_printf(out, "backflow_rate_limit_wait_seconds_total %.3f\n",
                (double)hs.rate_limit_wait_ms / 1000.0);
  family(out, "backflow_hook_requests_total", "counter",
         "Requests to /hooks/{destination} by result (stored, bad_signature, bad_request, error).");
  for (size_t i = 0; i < m->n_hooks; i++) {
    bf_buf_puts(out, "backflow_hook_requests_total{");
    label(out, "destination", m->hooks[i].destination);
    bf_buf_putc(out, ',');
    label(out, "result", m->hooks[i].result);
    bf_buf_printf(out, "} %lld\n", m->hooks[i].requests);
  }
  family(out, "backflow_hook_events_total", "counter",
         "Destination events stored in backflow_events.");
  for (size_t i = 0; i < m->n_hooks; i++) {
    if (strcmp(m->hooks[i].result, "stored")) continue;
    bf_buf_puts(out, "backflow_hook_events_total{");
    label(out, "destination", m->hooks[i].destination);
    bf_buf_printf(out, "} %lld\n", m->hooks[i].events);
  }
  pthread_mutex_unlock(&m->mu);
}

/* Alerts: `alerts: [{type: webhook, url: ..., on: [failure, rejected_over: 5%,
 * recovered]}]` at the top level or per sync (a sync's own list replaces the
 * top-level one). Each rule follows the health of each sync it covers:
 *   failing    the last run failed
 *   rejecting  the last run completed but rejected more than the rule's
 *              share of the rows it read
 *   ok         otherwise
 * and posts one Slack-compatible message ({"text": ..., "sync": ...,
 * "run_id": ..., "run_url": ...}; Slack reads text and ignores the rest)
 * when that state changes into one of the rule's `on` events, never once
 * per run; run_url is the run's page on the dashboard. Messages
 * are sent by one thread with libcurl, so a slow receiver never delays runs. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "util/log.h"
#include "server/server.h"

enum health { HEALTH_OK, HEALTH_FAILING, HEALTH_REJECTING };

struct rule {
  char *url;
  bool on_failure, on_recovered, on_rejected;
  double rejected_pct; /* on_rejected: threshold in percent */
  struct bf_loc loc;
};

/* One (sync, rule) pair with its current state. */
struct watch {
  const char *sync;
  const struct rule *rule;
  enum health state;
};

struct message {
  char *url;
  char *body;
  struct message *next;
};

struct bf_alerts {
  size_t n_rules;
  struct rule *rules;
  size_t n_watches;
  struct watch *watches;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct message *head, *tail;
  size_t queued;
  bool stopping, started;
  pthread_t thread;
  char *base_url; /* the dashboard, without a trailing slash; NULL: no links */
};

void bf_alerts_set_base_url(struct bf_alerts *a, const char *base) {
  free(a->base_url);
  a->base_url = base ? bf_xstrdup(base) : NULL;
}

static int loc_err(struct bf_error *err, const struct bf_node *n, const char *fmt,
                   const char *what) {
  return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s %s", n->loc.file, n->loc.line, n->loc.col,
                      what, fmt);
}

/* "5%", "5", "0.5 %" -> percent. */
static int parse_percent(const struct bf_node *n, const char *text, double *out,
                         struct bf_error *err) {
  char *end;
  double v = strtod(text, &end);
  while (*end == ' ') end++;
  if (*end == '%') end++;
  while (*end == ' ') end++;
  if (end == text || *end || !isfinite(v) || v < 0 || v > 100)
    return loc_err(err, n, "expected a percentage such as 5% for rejected_over", "alert:");
  *out = v;
  return 0;
}

static int parse_event(struct rule *r, const struct bf_node *n, struct bf_error *err) {
  static const char *const expected =
      "expected failure, recovered or rejected_over: N% in 'on' of an alert";
  if (n->kind == BF_NODE_MAP) {
    if (n->n != 1 || strcmp(n->keys[0], "rejected_over") || n->items[0]->kind != BF_NODE_SCALAR)
      return loc_err(err, n, expected, "unknown alert event;");
    r->on_rejected = true;
    return parse_percent(n->items[0], n->items[0]->scalar, &r->rejected_pct, err);
  }
  if (n->kind != BF_NODE_SCALAR) return loc_err(err, n, expected, "unknown alert event;");
  const char *s = n->scalar;
  if (!strcmp(s, "failure") || !strcmp(s, "failed")) {
    r->on_failure = true;
  } else if (!strcmp(s, "recovered") || !strcmp(s, "recovery")) {
    r->on_recovered = true;
  } else if (!strncmp(s, "rejected_over", 13)) {
    const char *p = s + 13;
    while (*p == ' ') p++;
    if (*p != ':') return loc_err(err, n, expected, "alert event without a threshold;");
    p++;
    while (*p == ' ') p++;
    r->on_rejected = true;
    return parse_percent(n, p, &r->rejected_pct, err);
  } else {
    char what[160];
    snprintf(what, sizeof what, "unknown alert event '%.100s';", s);
    return loc_err(err, n, expected, what);
  }
  return 0;
}

static int parse_rule(struct rule *r, const struct bf_node *n, struct bf_error *err) {
  static const char *const keys[] = {"type", "url", "on", NULL};
  if (n->kind != BF_NODE_MAP)
    return loc_err(err, n, "expected {type: webhook, url: ..., on: [failure, recovered]}",
                   "alert:");
  int rc = bf_node_check_keys(n, "alert", keys, err);
  if (rc) return rc;
  const struct bf_node *type = bf_node_get(n, "type"), *url = bf_node_get(n, "url"),
                       *on = bf_node_get(n, "on");
  if (!type || type->kind != BF_NODE_SCALAR ||
      (strcmp(type->scalar, "webhook") && strcmp(type->scalar, "slack")))
    return loc_err(err, type ? type : n, "expected 'type: webhook' (Slack-compatible JSON)",
                   "alert:");
  if (!url || url->kind != BF_NODE_SCALAR ||
      (strncmp(url->scalar, "http://", 7) && strncmp(url->scalar, "https://", 8)))
    return loc_err(err, url ? url : n, "expected 'url: https://...'", "alert:");
  r->url = bf_xstrdup(url->scalar);
  r->loc = n->loc;
  if (!on) { /* the useful default: hear about breakage and its end */
    r->on_failure = r->on_recovered = true;
    return 0;
  }
  if (on->kind == BF_NODE_SEQ) {
    for (size_t i = 0; i < on->n; i++)
      if ((rc = parse_event(r, on->items[i], err))) return rc;
    return 0;
  }
  return parse_event(r, on, err);
}

static int parse_list(struct bf_alerts *a, const struct bf_node *list, size_t *first, size_t *count,
                      struct bf_error *err) {
  *first = a->n_rules;
  *count = 0;
  if (!list) return 0;
  if (list->kind != BF_NODE_SEQ)
    return loc_err(err, list, "expected a list: alerts: [{type: webhook, url: ..., on: [...]}]",
                   "alerts:");
  a->rules = bf_xrealloc(a->rules, (a->n_rules + list->n + 1) * sizeof *a->rules);
  for (size_t i = 0; i < list->n; i++) {
    struct rule *r = &a->rules[a->n_rules];
    memset(r, 0, sizeof *r);
    a->n_rules++;
    int rc = parse_rule(r, list->items[i], err);
    if (rc) return rc;
  }
  *count = list->n;
  return 0;
}

int bf_alerts_new(const struct bf_config *cfg, struct bf_alerts **out, struct bf_error *err) {
  struct bf_alerts *a = bf_xcalloc(1, sizeof *a);
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, NULL);
  const struct bf_node *syncs = bf_node_get(cfg->root, "syncs");
  size_t *first = bf_xcalloc(cfg->n_syncs + 1, sizeof *first);
  size_t *count = bf_xcalloc(cfg->n_syncs + 1, sizeof *count);
  int rc = parse_list(a, bf_node_get(cfg->root, "alerts"), &first[cfg->n_syncs],
                      &count[cfg->n_syncs], err);
  for (size_t i = 0; rc == 0 && i < cfg->n_syncs; i++) {
    const struct bf_node *own = bf_node_get(bf_node_get(syncs, cfg->syncs[i].name), "alerts");
    if (own)
      rc = parse_list(a, own, &first[i], &count[i], err);
    else {
      first[i] = first[cfg->n_syncs];
      count[i] = count[cfg->n_syncs];
    }
  }
  if (rc == 0) {
    for (size_t i = 0; i < cfg->n_syncs; i++) a->n_watches += count[i];
    a->watches = bf_xcalloc(a->n_watches + 1, sizeof *a->watches);
    size_t w = 0;
    for (size_t i = 0; i < cfg->n_syncs; i++)
      for (size_t k = 0; k < count[i]; k++)
        a->watches[w++] = (struct watch){cfg->syncs[i].name, &a->rules[first[i] + k], HEALTH_OK};
  }
  free(first);
  free(count);
  if (rc) {
    bf_alerts_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

size_t bf_alerts_count(const struct bf_alerts *a) { return a->n_rules; }

static enum health health_of(const struct rule *r, const char *status,
                             const struct bf_run_counts *c) {
  if (!strcmp(status, "failed") || !strcmp(status, "crashed")) return HEALTH_FAILING;
  if (r->on_rejected && c->rows_read > 0 &&
      100.0 * (double)c->rejected / (double)c->rows_read > r->rejected_pct)
    return HEALTH_REJECTING;
  return HEALTH_OK;
}

void bf_alerts_seed(struct bf_alerts *a, const struct bf_run_info *last) {
  if (!last->status || !strcmp(last->status, "running")) return;
  for (size_t i = 0; i < a->n_watches; i++)
    if (!strcmp(a->watches[i].sync, last->sync))
      a->watches[i].state = health_of(a->watches[i].rule, last->status, &last->counts);
}

static void enqueue(struct bf_alerts *a, const char *url, const char *text, const char *sync,
                    long long run_id, const char *run_url) {
  struct message *m = bf_xcalloc(1, sizeof *m);
  struct bf_buf body = {0};
  bf_buf_puts(&body, "{\"text\":");
  bf_json_cstr(&body, text);
  bf_buf_puts(&body, ",\"sync\":");
  bf_json_cstr(&body, sync);
  bf_buf_printf(&body, ",\"run_id\":%lld,\"run_url\":", run_id);
  if (run_url)
    bf_json_cstr(&body, run_url);
  else
    bf_buf_puts(&body, "null");
  bf_buf_puts(&body, "}");
  m->url = bf_xstrdup(url);
  m->body = bf_xstrdup(bf_buf_cstr(&body));
  bf_buf_release(&body);
  pthread_mutex_lock(&a->mu);
  if (a->queued >= 1000) { /* a dead receiver must not eat memory */
    pthread_mutex_unlock(&a->mu);
    bf_log_warn("alerts: queue full; dropping an alert"); /* the URL is a secret (Slack) */
    free(m->url);
    free(m->body);
    free(m);
    return;
  }
  if (a->tail)
    a->tail->next = m;
  else
    a->head = m;
  a->tail = m;
  a->queued++;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

void bf_alerts_observe(struct bf_alerts *a, const char *sync, const struct bf_sched_result *res) {
  /* A skipped run (another process held the sync) and a run stopped by
   * shutdown say nothing about the sync's health. */
  if (!strcmp(res->status, "skipped") || res->code == BF_E_INTERRUPTED) return;
  const struct bf_run_counts *c = &res->counts;
  char run_url[1024] = "", see[1100] = "";
  if (a->base_url && res->run_id > 0) {
    snprintf(run_url, sizeof run_url, "%s/#/run/%lld", a->base_url, res->run_id);
    snprintf(see, sizeof see, " %s", run_url);
  }
  for (size_t i = 0; i < a->n_watches; i++) {
    struct watch *w = &a->watches[i];
    if (strcmp(w->sync, sync)) continue;
    const struct rule *r = w->rule;
    pthread_mutex_lock(&a->mu);
    enum health before = w->state, now = health_of(r, res->status, c);
    w->state = now;
    pthread_mutex_unlock(&a->mu);
    if (now == before) continue;
    /* Room for the error (BF_ERROR_MSG_MAX), the link and the words. */
    char text[BF_ERROR_MSG_MAX + sizeof see + 1024];
    if (now == HEALTH_FAILING && r->on_failure) {
      snprintf(text, sizeof text, ":red_circle: backflow: sync %s failed (run %lld): %s%s", sync,
               res->run_id, res->error[0] ? res->error : "no error message", see);
    } else if (now == HEALTH_REJECTING && r->on_rejected) {
      snprintf(
          text, sizeof text,
          ":warning: backflow: sync %s rejected %.1f%% of the rows it read in run %lld (%lld of "
          "%lld; alert threshold %g%%). See the row errors on the dashboard%s or with "
          "`backflow errors %s --run %lld`.",
          sync, 100.0 * (double)c->rejected / (double)c->rows_read, res->run_id, c->rejected,
          c->rows_read, r->rejected_pct, see, sync, res->run_id);
    } else if (now == HEALTH_OK && r->on_recovered) {
      snprintf(text, sizeof text,
               ":large_green_circle: backflow: sync %s recovered: run %lld %s (%lld added, %lld "
               "changed, "
               "%lld removed, %lld rejected)%s",
               sync, res->run_id, res->status, c->added, c->changed, c->removed, c->rejected, see);
    } else {
      continue;
    }
    enqueue(a, r->url, text, sync, res->run_id, run_url[0] ? run_url : NULL);
  }
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud) {
  (void)ptr;
  (void)ud;
  return size * nmemb;
}

/* Returns true when the receiver took it (2xx) or refused it for good (4xx
 * other than 408/429: sending again would not help). */
static bool post(const struct message *m, long timeout_s) {
  CURL *h = curl_easy_init();
  if (!h) return false;
  struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_URL, m->url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, m->body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_USERAGENT, "backflow-alerts");
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK) {
    bf_log_warn("alerts: cannot post to the alert webhook: %s", curl_easy_strerror(rc));
    return false;
  }
  if (status >= 200 && status < 300) return true;
  bf_log_warn("alerts: the alert webhook answered HTTP %ld", status);
  return status >= 400 && status < 500 && status != 408 && status != 429;
}

static void *sender_main(void *arg) {
  struct bf_alerts *a = arg;
  pthread_mutex_lock(&a->mu);
  for (;;) {
    while (!a->head && !a->stopping) pthread_cond_wait(&a->cv, &a->mu);
    if (!a->head) break;
    struct message *m = a->head;
    a->head = m->next;
    if (!a->head) a->tail = NULL;
    a->queued--;
    bool stopping = a->stopping;
    pthread_mutex_unlock(&a->mu);
    /* Three tries, 1s then 4s apart; when stopping, one short try each. */
    for (int attempt = 0; attempt < (stopping ? 1 : 3); attempt++) {
      if (post(m, stopping ? 3 : 10)) break;
      pthread_mutex_lock(&a->mu);
      if (a->stopping) {
        pthread_mutex_unlock(&a->mu);
        break;
      }
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += attempt == 0 ? 1 : 4;
      pthread_cond_timedwait(&a->cv, &a->mu, &ts);
      pthread_mutex_unlock(&a->mu);
    }
    free(m->url);
    free(m->body);
    free(m);
    pthread_mutex_lock(&a->mu);
  }
  pthread_mutex_unlock(&a->mu);
  return NULL;
}

int bf_alerts_start(struct bf_alerts *a, struct bf_error *err) {
  if (a->n_rules == 0) return 0;
  int rc = pthread_create(&a->thread, NULL, sender_main, a);
  if (rc) return bf_error_set(err, BF_E_IO, "cannot start the alerts thread: %s", strerror(rc));
  a->started = true;
  return 0;
}

void bf_alerts_stop(struct bf_alerts *a) {
  if (!a || !a->started) return;
  pthread_mutex_lock(&a->mu);
  a->stopping = true;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
  pthread_join(a->thread, NULL);
  a->started = false;
}

void bf_alerts_free(struct bf_alerts *a) {
  if (!a) return;
  bf_alerts_stop(a);
  for (size_t i = 0; i < a->n_rules; i++) free(a->rules[i].url);
  free(a->base_url);
  free(a->rules);
  free(a->watches);
  while (a->head) {
    struct message *m = a->head;
    a->head = m->next;
    free(m->url);
    free(m->body);
    free(m);
  }
  pthread_mutex_destroy(&a->mu);
  pthread_cond_destroy(&a->cv);
  free(a);
}

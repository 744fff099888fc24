/* The erasure API (design.md §10, docs/server.md) and the server's erasure
 * worker: POST /api/erasures records the request (sealed, suppressed,
 * audited: from the 202 on, no run sends the person again) and wakes the
 * worker, which works on every pending request as `backflow forget --retry`
 * does; it also retries pending ones every BF_ERASURE_RETRY_MS, so an
 * erasure held back by a dead destination completes once it is back.
 * GET /api/erasures/{id} reads the request's state back from the audit log. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "engine/forget.h"
#include "engine/pii_report.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/log.h"

#define BF_ERASURE_RETRY_MS 30000

struct bf_erasure_worker {
  struct bf_project *p;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool started, stop, wake;
};

static void *worker_main(void *arg) {
  struct bf_erasure_worker *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    if (!w->wake) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += BF_ERASURE_RETRY_MS / 1000;
      pthread_cond_timedwait(&w->cv, &w->mu, &until);
      if (w->stop) break;
    }
    w->wake = false;
    pthread_mutex_unlock(&w->mu);
    size_t items = 0, requests = 0;
    struct bf_error err = {0};
    if (bf_forget_pending_count(w->p, &items, &requests, &err) == 0 && requests) {
      struct bf_forget_result *res = NULL;
      size_t n = 0;
      if (bf_forget_retry(w->p, 5000, &res, &n, &err))
        bf_log_warn("erasures: %s (retried in %d s)", err.msg, BF_ERASURE_RETRY_MS / 1000);
      for (size_t i = 0; i < n; i++) {
        bf_log_info("erasure request %llu: %s", (unsigned long long)res[i].request, res[i].status);
        bf_forget_result_release(&res[i]);
      }
      free(res);
    } else if (err.code) {
      bf_log_warn("erasures: %s", err.msg);
    }
    pthread_mutex_lock(&w->mu);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

int bf_erasure_worker_start(struct bf_server *srv, struct bf_error *err) {
  struct bf_erasure_worker *w = bf_xcalloc(1, sizeof *w);
  w->p = srv->p;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->wake = true; /* what an earlier server left pending */
  srv->erasures = w;
  int e = pthread_create(&w->thread, NULL, worker_main, w);
  if (e) return bf_error_set(err, BF_E_IO, "cannot start the erasure worker: %s", strerror(e));
  w->started = true;
  return 0;
}

void bf_erasure_worker_stop(struct bf_server *srv) {
  struct bf_erasure_worker *w = srv->erasures;
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (w->started) pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
  srv->erasures = NULL;
}

static void wake(struct bf_erasure_worker *w) {
  pthread_mutex_lock(&w->mu);
  w->wake = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* The person named by the body; NULL with resp set when the body is not
 * one of the three documented shapes. Strings point into *doc. */
static bool parse_person(struct bf_http_req *req, struct bf_http_resp *resp, json_t **doc,
                         struct bf_forget_options *o) {
  json_error_t jerr;
  *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
  if (!*doc || !json_is_object(*doc)) {
    bf_http_error(resp, 400, "body: %s", *doc ? "not a JSON object" : jerr.text);
    return false;
  }
  const char *key;
  json_t *v;
  size_t n = 0;
  json_object_foreach(*doc, key, v) {
    n++;
    if (strcmp(key, "email") && strcmp(key, "phone") && strcmp(key, "key")) {
      bf_http_error(resp, 400, "body: unknown field '%.64s' (expected email, phone or key)", key);
      return false;
    }
  }
  if (n != 1) {
    bf_http_error(resp, 400, "body: exactly one of email, phone or key is expected");
    return false;
  }
  json_t *email = json_object_get(*doc, "email"), *phone = json_object_get(*doc, "phone");
  json_t *k = json_object_get(*doc, "key");
  if (email || phone) {
    json_t *s = email ? email : phone;
    if (!json_is_string(s) || json_string_length(s) == 0) {
      bf_http_error(resp, 400, "body: %s must be a non-empty string", email ? "email" : "phone");
      return false;
    }
    o->kind = email ? BF_FORGET_EMAIL : BF_FORGET_PHONE;
    o->value = json_string_value(s);
    return true;
  }
  json_t *model = json_object_get(k, "model"), *value = json_object_get(k, "value");
  if (!json_is_object(k) || json_object_size(k) != 2 || !json_is_string(model) ||
      !(json_is_string(value) || json_is_integer(value))) {
    bf_http_error(resp, 400, "body: key must be {\"model\": string, \"value\": string or integer}");
    return false;
  }
  if (json_is_integer(value)) {
    json_t *text = json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(value));
    json_object_set_new(k, "value", text);
    value = text;
  }
  o->kind = BF_FORGET_KEY;
  o->model = json_string_value(model);
  o->value = json_string_value(value);
  return true;
}

void bf_api_erasure_create(struct bf_http_req *req, struct bf_http_resp *resp) {
  if (req->srv->stopping) {
    bf_http_error(resp, 503, "the server is shutting down");
    return;
  }
  json_t *doc = NULL;
  struct bf_forget_options o = {0};
  if (!parse_person(req, resp, &doc, &o)) {
    json_decref(doc);
    return;
  }
  uint64_t id = 0;
  struct bf_error err = {0};
  int rc = bf_forget_submit(req->srv->p, &o, &id, &err);
  json_decref(doc);
  if (rc) {
    /* A bad identifier or unknown model is the caller's; the rest is ours. */
    int status = rc == BF_E_USAGE || rc == BF_E_CONFIG ? 400 : 500;
    bf_http_error(resp, status, "%s", err.msg);
    return;
  }
  bf_log_info("erasure request %llu received through the API", (unsigned long long)id);
  wake(req->srv->erasures);
  bf_http_json(resp, 202);
  bf_buf_printf(&resp->body, "{\"id\":%llu}\n", (unsigned long long)id);
}

void bf_api_erasure(struct bf_http_req *req, struct bf_http_resp *resp) {
  char *end;
  errno = 0;
  unsigned long long id = strtoull(req->params[0], &end, 10);
  if (errno || *end || id == 0 || req->params[0][0] == '-') {
    bf_http_error(resp, 400, "erasure id '%.32s' is not a positive integer", req->params[0]);
    return;
  }
  struct bf_forget_result res;
  struct bf_error err = {0};
  int rc = bf_forget_status(req->srv->p, id, &res, &err);
  if (rc == 1) {
    bf_http_error(resp, 404, "no erasure request %llu", id);
    return;
  }
  if (rc) {
    bf_http_error(resp, 500, "%s", err.msg);
    return;
  }
  bf_http_json(resp, 200);
  bf_forget_result_json(&res, &resp->body);
  bf_buf_putc(&resp->body, '\n');
  bf_forget_result_release(&res);
}

void bf_api_pii(struct bf_http_req *req, struct bf_http_resp *resp) {
  struct bf_buf json = {0};
  struct bf_error err = {0};
  int rc = bf_pii_report(req->srv->p, &json, NULL, &err);
  if (rc) {
    bf_http_error(resp, 500, "%s", err.msg);
  } else {
    if (err.code) bf_log_warn("pii: %s", err.msg);
    bf_http_json(resp, 200);
    bf_buf_append(&resp->body, json.data, json.len);
  }
  bf_buf_release(&json);
}

/* The shared HTTP transport against an in-process libmicrohttpd server:
 * retries and backoff, Retry-After, vendor rate-limit headers, bounded
 * concurrency, keep-alive reuse, response cap, stats. */
#include <criterion/criterion.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "clients/http_transport.h"

static struct MHD_Daemon *daemon_;
static unsigned short port_;
static atomic_int connections_, in_flight_, max_in_flight_, hits_;
static atomic_int fail_left_;

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  (void)cls, (void)c, (void)socket_context;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) atomic_fetch_add(&connections_, 1);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             const char *h1, const char *v1, const char *h2, const char *v2,
                             const char *h3, const char *v3) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  if (h1) MHD_add_response_header(r, h1, v1);
  if (h2) MHD_add_response_header(r, h2, v2);
  if (h3) MHD_add_response_header(r, h3, v3);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **state) {
  (void)cls, (void)method, (void)version, (void)upload_data;
  if (*state == NULL) {
    *state = (void *)1;
    return MHD_YES;
  }
  if (*upload_data_size) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  atomic_fetch_add(&hits_, 1);
  if (!strcmp(url, "/ok"))
    return reply(c, 200, "{\"ok\":true}", "Content-Type", "application/json", NULL, NULL, NULL,
                 NULL);
  if (!strcmp(url, "/flaky")) {
    if (atomic_fetch_sub(&fail_left_, 1) > 0)
      return reply(c, 503, "busy", NULL, NULL, NULL, NULL, NULL, NULL);
    return reply(c, 200, "fine", NULL, NULL, NULL, NULL, NULL, NULL);
  }
  if (!strcmp(url, "/throttle")) {
    if (atomic_fetch_sub(&fail_left_, 1) > 0)
      return reply(c, 429, "slow down", "Retry-After", "1", NULL, NULL, NULL, NULL);
    return reply(c, 200, "fine", NULL, NULL, NULL, NULL, NULL, NULL);
  }
  if (!strcmp(url, "/remaining0"))
    return reply(c, 200, "{}", "X-HubSpot-RateLimit-Remaining", "0",
                 "X-HubSpot-RateLimit-Interval-Milliseconds", "1000", "X-HubSpot-RateLimit-Max",
                 "2");
  if (!strcmp(url, "/notfound")) return reply(c, 404, "nope", NULL, NULL, NULL, NULL, NULL, NULL);
  if (!strcmp(url, "/slow")) {
    int now = atomic_fetch_add(&in_flight_, 1) + 1;
    int seen = atomic_load(&max_in_flight_);
    while (now > seen && !atomic_compare_exchange_weak(&max_in_flight_, &seen, now)) {
    }
    usleep(60000);
    atomic_fetch_sub(&in_flight_, 1);
    return reply(c, 200, "slow", NULL, NULL, NULL, NULL, NULL, NULL);
  }
  if (!strcmp(url, "/big")) {
    static char big[2 << 20];
    memset(big, 'x', sizeof big - 1);
    return reply(c, 200, big, NULL, NULL, NULL, NULL, NULL, NULL);
  }
  return reply(c, 404, "unknown", NULL, NULL, NULL, NULL, NULL, NULL);
}

static void start(void) {
  cr_assert(sodium_init() >= 0);
  atomic_store(&connections_, 0);
  atomic_store(&hits_, 0);
  atomic_store(&in_flight_, 0);
  atomic_store(&max_in_flight_, 0);
  atomic_store(&fail_left_, 0);
  daemon_ = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                             NULL, NULL, handler, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
                             NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
  cr_assert_not_null(daemon_);
  port_ = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void stop(void) { MHD_stop_daemon(daemon_); }

static struct bf_http *transport(double rps, double burst, unsigned in_flight, unsigned retries) {
  char base[64];
  snprintf(base, sizeof base, "http://127.0.0.1:%u/", port_);
  struct bf_http_options o;
  bf_http_options_defaults(&o, "test", base, rps, burst, in_flight);
  o.max_retries = retries;
  o.retry_base_ms = 10;
  o.retry_max_wait_ms = 2000;
  o.timeout_ms = 5000;
  struct bf_error err = {0};
  struct bf_http *t = bf_http_new(&o, &err);
  cr_assert_not_null(t, "%s", err.msg);
  return t;
}

TestSuite(http, .init = start, .fini = stop, .timeout = 30);

Test(http, many_requests_reuse_few_connections) {
  struct bf_http *t = transport(0, 1, 4, 0);
  enum { N = 40 };
  struct bf_http_request req[N];
  struct bf_http_response resp[N];
  for (int i = 0; i < N; i++)
    req[i] = (struct bf_http_request){.method = "POST", .path = "ok", .body = "{}", .body_len = 2};
  struct bf_error err = {0};
  for (int round = 0; round < 3; round++) {
    cr_assert_eq(bf_http_perform(t, req, resp, N, NULL, NULL, &err), 0, "%s", err.msg);
    for (int i = 0; i < N; i++) {
      cr_assert_eq(resp[i].status, 200);
      cr_assert_str_eq(bf_http_response_text(&resp[i]), "{\"ok\":true}");
      cr_assert_str_eq(bf_http_response_header(&resp[i], "Content-Type"), "application/json");
    }
    bf_http_responses_release(resp, N);
  }
  cr_assert_leq(atomic_load(&connections_), 4, "%d connections for 120 requests",
                atomic_load(&connections_));
  struct bf_http_stats st;
  bf_http_stats_get(t, &st);
  cr_assert_eq(st.requests, 3 * N);
  cr_assert_eq(st.status_2xx, 3 * N);
  bf_http_free(t);
}

Test(http, concurrency_is_bounded) {
  struct bf_http *t = transport(0, 1, 3, 0);
  enum { N = 12 };
  struct bf_http_request req[N];
  struct bf_http_response resp[N];
  for (int i = 0; i < N; i++) req[i] = (struct bf_http_request){.path = "/slow"};
  struct bf_error err = {0};
  double t0 = bf_http_now_ms();
  cr_assert_eq(bf_http_perform(t, req, resp, N, NULL, NULL, &err), 0);
  double ms = bf_http_now_ms() - t0;
  cr_assert_eq(atomic_load(&max_in_flight_), 3);
  cr_assert_geq(ms, 4 * 60 - 5, "%f ms", ms); /* 12 requests / 3 at a time * 60 ms */
  bf_http_responses_release(resp, N);
  bf_http_free(t);
}

Test(http, server_errors_are_retried_then_succeed) {
  struct bf_http *t = transport(0, 1, 2, 5);
  atomic_store(&fail_left_, 3);
  struct bf_http_request req = {.path = "/flaky"};
  struct bf_http_response resp;
  struct bf_error err = {0};
  cr_assert_eq(bf_http_perform_one(t, &req, &resp, &err), 0);
  cr_assert_eq(resp.status, 200);
  cr_assert_eq(resp.attempts, 4);
  cr_assert_str_eq(resp.error, "");
  struct bf_http_stats st;
  bf_http_stats_get(t, &st);
  cr_assert_eq(st.status_5xx, 3);
  cr_assert_eq(st.retries, 3);
  bf_http_response_release(&resp);
  bf_http_free(t);
}

Test(http, retries_run_out_and_say_so) {
  struct bf_http *t = transport(0, 1, 2, 2);
  atomic_store(&fail_left_, 100);
  struct bf_http_request req = {.path = "/flaky"};
  struct bf_http_response resp;
  cr_assert_eq(bf_http_perform_one(t, &req, &resp, NULL), 0);
  cr_assert_eq(resp.status, 503);
  cr_assert_eq(resp.attempts, 3);
  cr_assert(bf_http_retryable(t, &resp));
  cr_assert_str_eq(resp.error, "HTTP 503 after 3 attempts");
  bf_http_response_release(&resp);
  bf_http_free(t);
}

Test(http, client_errors_are_not_retried) {
  struct bf_http *t = transport(0, 1, 2, 5);
  struct bf_http_request req = {.path = "/notfound"};
  struct bf_http_response resp;
  cr_assert_eq(bf_http_perform_one(t, &req, &resp, NULL), 0);
  cr_assert_eq(resp.status, 404);
  cr_assert_eq(resp.attempts, 1);
  cr_assert_not(bf_http_retryable(t, &resp));
  bf_http_response_release(&resp);
  bf_http_free(t);
}

Test(http, retry_after_is_honoured) {
  struct bf_http *t = transport(0, 1, 2, 3);
  atomic_store(&fail_left_, 1);
  struct bf_http_request req = {.path = "/throttle"};
  struct bf_http_response resp;
  double t0 = bf_http_now_ms();
  cr_assert_eq(bf_http_perform_one(t, &req, &resp, NULL), 0);
  double ms = bf_http_now_ms() - t0;
  cr_assert_eq(resp.status, 200);
  cr_assert_geq(ms, 990, "waited only %f ms", ms);
  struct bf_http_stats st;
  bf_http_stats_get(t, &st);
  cr_assert_eq(st.status_429, 1);
  cr_assert_eq(st.server_throttles, 1);
  bf_http_response_release(&resp);
  bf_http_free(t);
}

Test(http, vendor_remaining_zero_pauses_everyone) {
  struct bf_http *t = transport(0, 1, 1, 0);
  struct bf_http_request req = {.path = "/remaining0"};
  struct bf_http_response resp;
  double t0 = bf_http_now_ms();
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(bf_http_perform_one(t, &req, &resp, NULL), 0);
    bf_http_response_release(&resp);
  }
  double ms = bf_http_now_ms() - t0;
  cr_assert_geq(ms, 495, "second request after %f ms: interval/max = 500", ms);
  bf_http_free(t);
}

Test(http, token_bucket_paces_requests) {
  struct bf_http *t = transport(50, 1, 4, 0);
  enum { N = 26 };
  struct bf_http_request req[N];
  struct bf_http_response resp[N];
  for (int i = 0; i < N; i++) req[i] = (struct bf_http_request){.path = "/ok"};
  double t0 = bf_http_now_ms();
  cr_assert_eq(bf_http_perform(t, req, resp, N, NULL, NULL, NULL), 0);
  double ms = bf_http_now_ms() - t0;
  /* 1 at once, then 25 at 49.5/s: >= 505 ms */
  cr_assert_geq(ms, 500, "%f ms", ms);
  cr_assert_leq(ms, 3000, "%f ms", ms);
  struct bf_http_stats st;
  bf_http_stats_get(t, &st);
  cr_assert_gt(st.rate_limit_waits, 0);
  bf_http_responses_release(resp, N);
  bf_http_free(t);
}

Test(http, oversized_response_fails_without_retry) {
  char base[64];
  snprintf(base, sizeof base, "http://127.0.0.1:%u", port_);
  struct bf_http_options o;
  bf_http_options_defaults(&o, "test", base, 0, 1, 1);
  o.max_response_bytes = 1 << 20;
  struct bf_http *t = bf_http_new(&o, NULL);
  struct bf_http_request req = {.path = "/big"};
  struct bf_http_response resp;
  cr_assert_eq(bf_http_perform_one(t, &req, &resp, NULL), 0);
  cr_assert(resp.too_large);
  cr_assert_eq(resp.attempts, 1);
  cr_assert_leq(resp.body.len, (size_t)1 << 20);
  bf_http_response_release(&resp);
  bf_http_free(t);
}

Test(http, connection_refused_is_retryable_with_a_message) {
  struct bf_http_options o;
  bf_http_options_defaults(&o, "test", "http://127.0.0.1:1", 0, 1, 1);
  o.max_retries = 1;
  o.retry_base_ms = 1;
  struct bf_http *t = bf_http_new(&o, NULL);
  struct bf_http_request req = {.path = "/x?token=SECRETQUERY"};
  struct bf_http_response resp;
  cr_assert_eq(bf_http_perform_one(t, &req, &resp, NULL), 0);
  cr_assert_eq(resp.status, 0);
  cr_assert_eq(resp.attempts, 2);
  cr_assert(bf_http_retryable(t, &resp));
  cr_assert_null(strstr(resp.error, "SECRETQUERY"));
  cr_assert_neq(resp.error[0], '\0');
  bf_http_response_release(&resp);
  bf_http_free(t);
}

static size_t done_calls;
static void on_done(void *arg, size_t index, const struct bf_http_request *req,
                    struct bf_http_response *resp) {
  (void)arg, (void)req;
  cr_assert_eq(resp->status, 200);
  cr_assert_lt(index, 5);
  done_calls++;
}

Test(http, on_done_is_called_once_per_request) {
  struct bf_http *t = transport(0, 1, 2, 0);
  struct bf_http_request req[5];
  struct bf_http_response resp[5];
  for (int i = 0; i < 5; i++) req[i] = (struct bf_http_request){.path = "/ok"};
  done_calls = 0;
  cr_assert_eq(bf_http_perform(t, req, resp, 5, on_done, NULL, NULL), 0);
  cr_assert_eq(done_calls, 5);
  bf_http_responses_release(resp, 5);
  struct bf_http_stats total;
  bf_http_stats_totals(&total);
  cr_assert_geq(total.requests, 5);
  bf_http_free(t);
}

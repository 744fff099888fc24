/* The transport's pure parts: token bucket, backoff, Retry-After, URL
 * redaction, secret scrubbing and value text. */
#include <criterion/criterion.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "clients/http_transport.h"

Test(token_bucket, starts_full_then_paces_at_the_rate) {
  struct bf_token_bucket b;
  bf_token_bucket_init(&b, 10, 3, 0);
  for (int i = 0; i < 3; i++) cr_assert_eq(bf_token_bucket_take(&b, 0), 0);
  double wait = bf_token_bucket_take(&b, 0);
  cr_assert(fabs(wait - 100) < 0.01, "wait %f", wait);
  cr_assert_gt(bf_token_bucket_take(&b, 99), 0);
  cr_assert_eq(bf_token_bucket_take(&b, 100.001), 0);
}

Test(token_bucket, never_admits_more_than_burst_plus_rate_times_t) {
  struct bf_token_bucket b;
  bf_token_bucket_init(&b, 20, 5, 0);
  int admitted = 0;
  /* Ask every 1 ms for 10 s: at most 5 + 20 * 10. */
  for (int ms = 0; ms <= 10000; ms++)
    while (bf_token_bucket_take(&b, ms) == 0) admitted++;
  cr_assert_leq(admitted, 5 + 200);
  cr_assert_geq(admitted, 5 + 199);
}

Test(token_bucket, unlimited_when_rate_is_zero) {
  struct bf_token_bucket b;
  bf_token_bucket_init(&b, 0, 1, 0);
  for (int i = 0; i < 1000; i++) cr_assert_eq(bf_token_bucket_take(&b, 0), 0);
}

Test(token_bucket, pause_holds_tokens_back) {
  struct bf_token_bucket b;
  bf_token_bucket_init(&b, 10, 10, 0);
  bf_token_bucket_pause(&b, 0, 500);
  cr_assert_gt(bf_token_bucket_take(&b, 499), 0);
  cr_assert_eq(bf_token_bucket_take(&b, 600.01), 0);
}

Test(backoff, full_jitter_within_the_doubling_cap) {
  cr_assert(sodium_init() >= 0);
  for (unsigned attempt = 0; attempt < 8; attempt++) {
    long long cap = 100LL << attempt;
    if (cap > 5000) cap = 5000;
    long long lo = cap, hi = 0;
    for (int i = 0; i < 400; i++) {
      long long w = bf_http_backoff_ms(100, 5000, attempt, -1);
      cr_assert(w >= 0 && w <= cap, "attempt %u: %lld not in [0, %lld]", attempt, w, cap);
      if (w < lo) lo = w;
      if (w > hi) hi = w;
    }
    cr_assert_lt(lo, cap / 2 + 1, "full jitter reaches low values");
    cr_assert_gt(hi, cap / 2, "full jitter reaches high values");
  }
}

Test(backoff, retry_after_is_a_floor_and_max_wait_a_ceiling) {
  cr_assert(sodium_init() >= 0);
  for (int i = 0; i < 100; i++) {
    long long w = bf_http_backoff_ms(10, 60000, 0, 3000);
    cr_assert(w >= 3000 && w <= 3010, "%lld", w);
  }
  cr_assert_eq(bf_http_backoff_ms(10, 2000, 0, 9000), 2000);
}

Test(retry_after, seconds_and_http_dates) {
  time_t now = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */
  cr_assert_eq(bf_http_parse_retry_after("120", now), 120000);
  cr_assert_eq(bf_http_parse_retry_after(" 0 ", now), 0);
  cr_assert_eq(bf_http_parse_retry_after("1.5", now), 1500);
  cr_assert_eq(bf_http_parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000);
  cr_assert_eq(bf_http_parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), 0); /* past */
  cr_assert_eq(bf_http_parse_retry_after("soon", now), -1);
  cr_assert_eq(bf_http_parse_retry_after("", now), -1);
}

Test(redact, urls_lose_userinfo_and_query) {
  char *u = bf_http_redact_url("https://user:pa55@api.example.com/v1/x?api_key=SECRET#f");
  cr_assert_str_eq(u, "https://api.example.com/v1/x?…");
  free(u);
  u = bf_http_redact_url("http://127.0.0.1:8080");
  cr_assert_str_eq(u, "http://127.0.0.1:8080");
  free(u);
}

Test(redact, scrub_replaces_every_registered_secret) {
  struct bf_http_options o;
  bf_http_options_defaults(&o, "t", "https://u:basicpass@x.example", 0, 1, 1);
  struct bf_error err = {0};
  struct bf_http *t = bf_http_new(&o, &err);
  cr_assert_not_null(t, "%s", err.msg);
  bf_http_add_header(t, "Authorization: Bearer tok-123456789", true);
  bf_http_add_header(t, "Accept: application/json", false);
  char msg[256];
  snprintf(msg, sizeof msg,
           "got tok-123456789 twice: tok-123456789; basicpass; Accept application/json");
  bf_http_scrub(t, msg);
  cr_assert_null(strstr(msg, "tok-123456789"), "%s", msg);
  cr_assert_null(strstr(msg, "basicpass"), "%s", msg);
  cr_assert_not_null(strstr(msg, "application/json"), "%s", msg);
  cr_assert_str_eq(bf_http_base_url_shown(t), "https://x.example");
  bf_http_free(t);
}

static const char *text_of(const struct bf_value *v) {
  static struct bf_buf b;
  bf_buf_reset(&b);
  bf_http_value_text(&b, v);
  return bf_buf_cstr(&b);
}

Test(value_text, types_as_saas_apis_expect) {
  struct bf_value v = {.type = BF_INT, .u.i = -42};
  cr_assert_str_eq(text_of(&v), "-42");
  v = (struct bf_value){.type = BF_FLOAT, .u.f = 1.5};
  cr_assert_str_eq(text_of(&v), "1.5");
  v = (struct bf_value){.type = BF_FLOAT, .u.f = 0.1};
  cr_assert_str_eq(text_of(&v), "0.1");
  v = (struct bf_value){.type = BF_FLOAT, .u.f = 3.0};
  cr_assert_str_eq(text_of(&v), "3");
  v = (struct bf_value){.type = BF_BOOL, .u.i = 1};
  cr_assert_str_eq(text_of(&v), "true");
  v = (struct bf_value){.type = BF_NULL};
  cr_assert_str_eq(text_of(&v), "");
  const char *ts = "2024-03-05 10:20:30";
  v = (struct bf_value){.type = BF_TEXT, .len = (uint32_t)strlen(ts), .u.s = ts};
  cr_assert_str_eq(text_of(&v), "2024-03-05T10:20:30Z");
  ts = "2024-03-05 10:20:30.125+02:00";
  v = (struct bf_value){.type = BF_TEXT, .len = (uint32_t)strlen(ts), .u.s = ts};
  cr_assert_str_eq(text_of(&v), "2024-03-05T10:20:30.125+02:00");
  ts = "2024-03-05 10:20";
  v = (struct bf_value){.type = BF_TEXT, .len = (uint32_t)strlen(ts), .u.s = ts};
  cr_assert_str_eq(text_of(&v), "2024-03-05T10:20:00Z");
  ts = "2024-03-05";
  v = (struct bf_value){.type = BF_TEXT, .len = (uint32_t)strlen(ts), .u.s = ts};
  cr_assert_str_eq(text_of(&v), "2024-03-05");
  ts = "2024-03-05 is a Tuesday";
  v = (struct bf_value){.type = BF_TEXT, .len = (uint32_t)strlen(ts), .u.s = ts};
  cr_assert_str_eq(text_of(&v), "2024-03-05 is a Tuesday");
}

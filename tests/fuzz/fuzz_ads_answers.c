/* libFuzzer target: the ad-audience and email-platform destinations'
 * response parsers (src/destinations/ads_internal.h), fed any answer a
 * server could send. Input: a selector byte, a record-count byte, then the
 * response body.
 *
 * Properties, besides ASan/UBSan (outcome arrays are exact-size heap
 * blocks): every outcome stays OK, RETRY or REJECT; a RETRY or REJECT has a
 * reason; an outcome set to RETRY before the call (as the destinations do)
 * is never turned into OK by a parser reading an answer that does not say
 * so for that record; every text result is NUL-terminated inside its
 * buffer; parsers never crash or leak on any bytes. */
#include <stdint.h>

#include "destinations/ads_internal.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_setup_env();
  return 0;
}

static void check_outcomes(const struct bf_outcome *o, size_t n, const char *who) {
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(o[i].status == BF_OUT_OK || o[i].status == BF_OUT_RETRY ||
                   o[i].status == BF_OUT_REJECT,
               "%s: record %zu has status %d", who, i, (int)o[i].status);
    FUZZ_CHECK(o[i].status == BF_OUT_OK || o[i].reason, "%s: record %zu has no reason", who, i);
  }
}

static void free_outcomes(struct bf_outcome *o, size_t n) {
  for (size_t i = 0; i < n; i++) free(o[i].reason);
  free(o);
}

static void check_text(const char *buf, size_t cap, const char *who) {
  FUZZ_CHECK(memchr(buf, '\0', cap) != NULL, "%s: text not terminated", who);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return -1;
  int which = data[0] % 10;
  size_t n = data[1] % 17;
  const char *body = (const char *)data + 2;
  size_t len = size - 2;
  char *copy = malloc(len + 1); /* parsers get exactly the body, no NUL */
  memcpy(copy, body, len);
  struct bf_outcome *o = calloc(n ? n : 1, sizeof *o);
  /* The destinations start a parsed answer from every record ok. */
  for (size_t i = 0; i < n; i++) o[i].status = BF_OUT_OK;
  char text[64], text2[32];
  switch (which) {
  case 0: {
    long long code, sub;
    bool transient;
    bf_meta_graph_error(copy, len, &code, &sub, text, sizeof text, &transient);
    check_text(text, sizeof text, "meta graph error");
    break;
  }
  case 1: {
    char(*lower)[BF_PII_MAX] = calloc(n ? n : 1, sizeof *lower);
    for (size_t i = 0; i < n; i++) snprintf(lower[i], BF_PII_MAX, "p%zu@example.com", i);
    bf_mc_apply_answer(copy, len, lower, 0, n, o);
    check_outcomes(o, n, "mailchimp answer");
    free(lower);
    break;
  }
  case 2: {
    size_t *rec_of = calloc(n ? n : 1, sizeof *rec_of);
    for (size_t i = 0; i < n; i++) rec_of[i] = n - 1 - i;
    bf_braze_track_answer(copy, len, rec_of, n, o);
    check_outcomes(o, n, "braze answer");
    free(rec_of);
    break;
  }
  case 3:
    bf_klaviyo_error_text(copy, len, text, sizeof text);
    check_text(text, sizeof text, "klaviyo error");
    free(bf_klaviyo_job_id(copy, len));
    break;
  case 4: {
    long long failed = -1;
    enum bf_klaviyo_status s = bf_klaviyo_job_status(copy, len, &failed);
    FUZZ_CHECK(s == BF_KLAVIYO_PENDING || s == BF_KLAVIYO_COMPLETE || s == BF_KLAVIYO_CANCELLED,
               "klaviyo status %d", (int)s);
    break;
  }
  case 5:
  case 6: {
    /* A job of n profiles, record k = profile k, with identifiers. */
    struct bf_klaviyo_job job = {0};
    job.n = n;
    job.rec = calloc(n ? n : 1, sizeof *job.rec);
    job.ids_off = calloc(n + 1, sizeof *job.ids_off);
    for (size_t i = 0; i < n; i++) {
      job.rec[i] = i;
      job.ids_off[i] = job.ids.len;
      char ids[96];
      int w = snprintf(ids, sizeof ids, "p%zu@example.com%c+1555000%04zu%cx%zu", i, 0, i, 0, i);
      bf_buf_append(&job.ids, ids, (size_t)w + 1);
    }
    job.ids_off[n] = job.ids.len;
    for (size_t i = 0; i < n; i++) o[i] = (struct bf_outcome){BF_OUT_RETRY, strdup("pending")};
    if (which == 5) {
      bf_klaviyo_refusal(&job, copy, len, o);
    } else {
      char *next = NULL;
      bf_klaviyo_import_errors(&job, copy, len, o, &next);
      free(next);
    }
    check_outcomes(o, n, which == 5 ? "klaviyo refusal" : "klaviyo import errors");
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK(o[i].status != BF_OUT_OK, "klaviyo: an error answer made record %zu ok", i);
    free(job.rec);
    free(job.ids_off);
    bf_buf_release(&job.ids);
    break;
  }
  case 7: {
    json_t *res = json_loadb(copy, len, 0, NULL);
    size_t *rec_of = calloc(n ? n : 1, sizeof *rec_of);
    for (size_t i = 0; i < n; i++) rec_of[i] = i;
    bf_gcm_partial_failures(res, rec_of, n, o);
    check_outcomes(o, n, "google partial failures");
    bf_gcm_job_status(res, text2, sizeof text2, text, sizeof text);
    check_text(text, sizeof text, "google job why");
    check_text(text2, sizeof text2, "google job status");
    json_decref(res);
    free(rec_of);
    break;
  }
  default: {
    struct bf_http_response r = {.status = 400 + (long)(n % 200), .retry_after_ms = -1};
    bf_buf_append(&r.body, copy, len);
    snprintf(r.content_type, sizeof r.content_type, "application/json");
    if (which == 8) {
      bf_gcm_google_error(&r, text, sizeof text, text2, sizeof text2);
      check_text(text, sizeof text, "google error");
      check_text(text2, sizeof text2, "google status");
      (void)bf_gcm_retryable(&r, NULL);
      (void)bf_meta_retryable(&r, NULL);
    } else {
      bf_mc_problem(&r, text, sizeof text);
      check_text(text, sizeof text, "mailchimp problem");
      bf_braze_message(&r, text, sizeof text);
      check_text(text, sizeof text, "braze message");
      (void)bf_mc_retryable(&r, NULL);
    }
    bf_buf_release(&r.body);
    break;
  }
  }
  free_outcomes(o, n);
  free(copy);
  return 0;
}

/* webhook: POSTs batches of records as JSON, signed per Standard Webhooks
 * (design.md §3). The webhook-id stays the same on every retry of a batch,
 * so the receiver can use it as its idempotency key.
 *
 * Receiver answers: any 2xx accepts the batch; a JSON body
 * {"results":[{"status":"ok"|"rejected"|"retry","reason":"..."}...]} with one
 * entry per record, in order, gives per-record outcomes. 429, 408 and 5xx are
 * retried with exponential backoff and full jitter, honouring Retry-After; 413
 * splits the batch; 401/403/404/410 stop the run (destination unavailable);
 * other 4xx reject the whole batch with the receiver's reason. */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "core/log.h"
#include "destinations/destination.h"

#define MAX_RESPONSE_BYTES (8u << 20) /* a hostile receiver cannot make us eat memory */

struct webhook_destination {
  struct bf_destination base;
  char *url;
  char *url_shown; /* without credentials or query string */
  unsigned char key[64];
  size_t key_len; /* 0 = unsigned */
  long long timeout_ms, retry_base_ms, retry_max_wait_ms;
  long long max_retries;
  CURL *curl;
  struct curl_slist *headers;
  struct bf_buf body, tmp, response;
  char retry_after[64];
};

static const struct bf_param_spec webhook_params[] = {
    {"url", BF_PARAM_STRING, NULL, true, false, "http(s) URL the batches are POSTed to"},
    {"signing_secret", BF_PARAM_STRING, NULL, false, true, "whsec_<base64> secret for webhook-signature"},
    {"timeout", BF_PARAM_DURATION, "30s", false, false, "time allowed for one request"},
    {"max_retries", BF_PARAM_INT, "6", false, false, "retries of a batch on 429/5xx/timeouts"},
    {"retry_base", BF_PARAM_DURATION, "500ms", false, false, "first backoff; doubles each retry"},
    {"retry_max_wait", BF_PARAM_DURATION, "60s", false, false, "longest wait between retries"},
    {"headers", BF_PARAM_MAP, NULL, false, true, "extra request headers"},
    {"insecure", BF_PARAM_BOOL, "false", false, false, "skip TLS verification (warns)"},
    {NULL, 0, NULL, false, false, NULL},
};

/* Strips user:password@ and ?query so a URL can be shown in errors. */
static char *redact_url(const char *url) {
  const char *scheme_end = strstr(url, "://");
  const char *host = scheme_end ? scheme_end + 3 : url;
  const char *path = host + strcspn(host, "/?#");
  const char *at = memchr(host, '@', (size_t)(path - host));
  if (at) host = at + 1;
  size_t path_len = strcspn(path, "?#");
  return bf_xasprintf("%.*s%.*s%.*s%s", scheme_end ? (int)(scheme_end + 3 - url) : 0, url,
                      (int)(path - host), host, (int)path_len, path, path[path_len] ? "?…" : "");
}

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  struct webhook_destination *d = arg;
  size_t len = size * n;
  if (d->response.len + len > MAX_RESPONSE_BYTES) return 0; /* aborts the transfer */
  bf_buf_append(&d->response, p, len);
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  struct webhook_destination *d = arg;
  size_t len = size * n;
  if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
    const char *v = p + 12;
    while (*v == ' ') v++;
    size_t vl = strcspn(v, "\r\n");
    if (vl >= sizeof d->retry_after) vl = sizeof d->retry_after - 1;
    memcpy(d->retry_after, v, vl);
    d->retry_after[vl] = '\0';
  }
  return len;
}

static int webhook_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                        struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  struct webhook_destination *d = bf_xcalloc(1, sizeof *d);
  int rc = 0;
  d->url = bf_xstrdup(bf_params_str(p, webhook_params, "url"));
  d->url_shown = redact_url(d->url);
  const struct bf_node *url_node = bf_node_get(p, "url");
  if (strncmp(d->url, "http://", 7) != 0 && strncmp(d->url, "https://", 8) != 0) {
    rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: destination '%s': url must start with http:// or https://",
                      url_node->loc.file, url_node->loc.line, url_node->loc.col, dc->name);
    goto fail;
  }
  const char *secret = bf_params_str(p, webhook_params, "signing_secret");
  if (secret) {
    const struct bf_node *sn = bf_node_get(p, "signing_secret");
    const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
    size_t key_len = 0;
    if (sodium_base642bin(d->key, sizeof d->key, b64, strlen(b64), NULL, &key_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 || key_len < 16) {
      rc = bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: destination '%s': signing_secret must be whsec_ followed by "
                        "base64 of 16 to 64 bytes",
                        sn->loc.file, sn->loc.line, sn->loc.col, dc->name);
      goto fail;
    }
    d->key_len = key_len;
  }
  d->timeout_ms = bf_params_duration_ms(p, webhook_params, "timeout");
  d->retry_base_ms = bf_params_duration_ms(p, webhook_params, "retry_base");
  d->retry_max_wait_ms = bf_params_duration_ms(p, webhook_params, "retry_max_wait");
  d->max_retries = bf_params_int(p, webhook_params, "max_retries");
  d->curl = curl_easy_init();
  if (!d->curl) {
    rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s': cannot initialise libcurl", dc->name);
    goto fail;
  }
  d->headers = curl_slist_append(d->headers, "Content-Type: application/json");
  d->headers = curl_slist_append(d->headers, "Expect:"); /* no 100-continue round trip */
  const struct bf_node *extra = bf_node_get(p, "headers");
  for (size_t i = 0; extra && i < extra->n; i++) {
    if (extra->items[i]->kind != BF_NODE_SCALAR) continue;
    char *h = bf_xasprintf("%s: %s", extra->keys[i], extra->items[i]->scalar);
    d->headers = curl_slist_append(d->headers, h);
    free(h);
  }
  curl_easy_setopt(d->curl, CURLOPT_URL, d->url);
  curl_easy_setopt(d->curl, CURLOPT_POST, 1L);
  curl_easy_setopt(d->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(d->curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(d->curl, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(d->curl, CURLOPT_FOLLOWLOCATION, 0L); /* 3xx is a failure (spec) */
  curl_easy_setopt(d->curl, CURLOPT_TIMEOUT_MS, (long)d->timeout_ms);
  curl_easy_setopt(d->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(d->timeout_ms < 10000 ? d->timeout_ms : 10000));
  curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, d);
  curl_easy_setopt(d->curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(d->curl, CURLOPT_HEADERDATA, d);
  curl_easy_setopt(d->curl, CURLOPT_USERAGENT, "backflow/0.1");
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(d->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(d->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (bf_params_bool(p, webhook_params, "insecure")) {
    bf_log_warn("destination '%s': TLS verification is off (insecure: true)", dc->name);
    curl_easy_setopt(d->curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(d->curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  *out = &d->base;
  return 0;
fail:
  curl_slist_free_all(d->headers);
  if (d->curl) curl_easy_cleanup(d->curl);
  free(d->url);
  free(d->url_shown);
  free(d);
  return rc;
}

void bf_webhook_signature(const unsigned char *key, size_t key_len, const char *id, long long ts,
                          const char *body, size_t body_len, char *out, size_t cap) {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  char prefix[128];
  int n = snprintf(prefix, sizeof prefix, "%s.%lld.", id, ts);
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)prefix, (size_t)n);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
  crypto_auth_hmacsha256_final(&st, mac);
  char b64[sodium_base64_ENCODED_LEN(sizeof mac, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
  snprintf(out, cap, "v1,%s", b64);
}

static void sign(struct webhook_destination *d, const char *id, long long ts, char *out, size_t cap) {
  char sig[96];
  bf_webhook_signature(d->key, d->key_len, id, ts, d->body.data, d->body.len, sig, sizeof sig);
  snprintf(out, cap, "webhook-signature: %s", sig);
}

/* Milliseconds to wait before the next attempt. */
static long long backoff_ms(struct webhook_destination *d, unsigned attempt) {
  if (d->retry_after[0]) {
    char *end;
    long long secs = strtoll(d->retry_after, &end, 10);
    long long ms;
    if (end != d->retry_after && *end == '\0') {
      ms = secs * 1000;
    } else {
      struct tm tm = {0};
      if (strptime(d->retry_after, "%a, %d %b %Y %H:%M:%S GMT", &tm)) ms = (timegm(&tm) - time(NULL)) * 1000LL;
      else ms = d->retry_base_ms;
    }
    if (ms < 0) ms = 0;
    return ms < d->retry_max_wait_ms ? ms : d->retry_max_wait_ms;
  }
  long long cap = d->retry_base_ms << (attempt < 20 ? attempt : 20);
  if (cap > d->retry_max_wait_ms) cap = d->retry_max_wait_ms;
  return (long long)randombytes_uniform((uint32_t)(cap > 0 ? cap : 1) + 1); /* full jitter */
}

static void sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

void bf_webhook_parse_results(const char *name, const char *url_shown, const char *content_type,
                              const char *body, size_t body_len, size_t n,
                              struct bf_outcome *outcomes) {
  bool is_json = content_type && strstr(content_type, "json");
  for (size_t i = 0; i < n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_OK, NULL};
  if (!is_json || body_len == 0) return; /* plain 2xx: the whole batch is accepted */
  json_error_t jerr;
  json_t *root = json_loadb(body, body_len, 0, &jerr);
  const char *problem = NULL;
  char detail[256];
  json_t *results = root ? json_object_get(root, "results") : NULL;
  if (!root) {
    snprintf(detail, sizeof detail, "malformed JSON response (%.120s at byte %d)", jerr.text, jerr.position);
    problem = detail;
  } else if (!results) {
    goto out; /* a JSON body without per-record results: accepted */
  } else if (!json_is_array(results) || json_array_size(results) != n) {
    snprintf(detail, sizeof detail, "response has %zu results for %zu records",
             json_is_array(results) ? json_array_size(results) : 0, n);
    problem = detail;
  }
  if (problem) {
    /* We cannot tell which records landed: send them all again (at-least-once). */
    bf_log_warn("destination '%s' (%s): %s; the batch will be sent again", name, url_shown,
                problem);
    for (size_t i = 0; i < n; i++) outcomes[i] = (struct bf_outcome){BF_OUT_RETRY, bf_xstrdup(problem)};
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *r = json_array_get(results, i);
    const char *status = json_string_value(json_object_get(r, "status"));
    const char *reason = json_string_value(json_object_get(r, "reason"));
    if (status && (!strcmp(status, "ok") || !strcmp(status, "success"))) continue;
    if (status && !strcmp(status, "retry")) {
      outcomes[i] = (struct bf_outcome){BF_OUT_RETRY, bf_xstrdup(reason ? reason : "receiver asked to retry")};
    } else if (status && (!strcmp(status, "rejected") || !strcmp(status, "error"))) {
      outcomes[i] = (struct bf_outcome){BF_OUT_REJECT, bf_xstrdup(reason ? reason : "rejected by receiver")};
    } else {
      outcomes[i] = (struct bf_outcome){BF_OUT_RETRY, bf_xstrdup("result without a known status")};
    }
  }
out:
  json_decref(root);
}

/* Fills outcomes from a 2xx response. */
static void parse_results(struct webhook_destination *d, size_t n, struct bf_outcome *outcomes) {
  char *ctype = NULL;
  curl_easy_getinfo(d->curl, CURLINFO_CONTENT_TYPE, &ctype);
  bf_webhook_parse_results(d->base.name, d->url_shown, ctype, d->response.data, d->response.len,
                           n, outcomes);
}

static int post_batch(struct webhook_destination *d, const struct bf_batch *batch,
                      struct bf_outcome *outcomes, struct bf_error *err);

static int split_batch(struct webhook_destination *d, const struct bf_batch *batch,
                       struct bf_outcome *outcomes, struct bf_error *err) {
  struct bf_batch half = *batch;
  half.n = batch->n / 2;
  int rc = post_batch(d, &half, outcomes, err);
  if (rc) return rc;
  half.records = batch->records + half.n;
  half.n = batch->n - half.n;
  return post_batch(d, &half, outcomes + batch->n / 2, err);
}

static int post_batch(struct webhook_destination *d, const struct bf_batch *batch,
                      struct bf_outcome *outcomes, struct bf_error *err) {
  unsigned char raw_id[16];
  randombytes_buf(raw_id, sizeof raw_id);
  char id[40] = "msg_";
  sodium_bin2hex(id + 4, sizeof id - 4, raw_id, sizeof raw_id);

  bf_buf_reset(&d->body);
  bf_buf_puts(&d->body, "{\"sync\":");
  bf_json_cstr(&d->body, batch->sync_name);
  bf_buf_puts(&d->body, ",\"batch_id\":\"");
  bf_buf_puts(&d->body, id);
  bf_buf_puts(&d->body, "\",\"records\":[");
  for (size_t i = 0; i < batch->n; i++) {
    if (i) bf_buf_putc(&d->body, ',');
    bf_record_json(batch, &batch->records[i], &d->body, &d->tmp);
  }
  bf_buf_puts(&d->body, "]}");

  char last_error[256] = "";
  for (unsigned attempt = 0; attempt <= (unsigned)d->max_retries; attempt++) {
    long long ts = (long long)time(NULL);
    char h_id[64], h_ts[64], h_sig[128];
    snprintf(h_id, sizeof h_id, "webhook-id: %s", id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", ts);
    struct curl_slist *headers = NULL;
    for (struct curl_slist *h = d->headers; h; h = h->next) headers = curl_slist_append(headers, h->data);
    headers = curl_slist_append(headers, h_id);
    headers = curl_slist_append(headers, h_ts);
    if (d->key_len) {
      sign(d, id, ts, h_sig, sizeof h_sig);
      headers = curl_slist_append(headers, h_sig);
    }
    curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, d->body.data);
    curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->body.len);
    bf_buf_reset(&d->response);
    d->retry_after[0] = '\0';
    CURLcode cc = curl_easy_perform(d->curl);
    curl_slist_free_all(headers);
    long status = 0;
    if (cc == CURLE_OK) curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &status);

    if (cc != CURLE_OK) {
      snprintf(last_error, sizeof last_error, "%s", curl_easy_strerror(cc));
    } else if (status >= 200 && status < 300) {
      parse_results(d, batch->n, outcomes);
      return 0;
    } else if (status == 413 && batch->n > 1) {
      return split_batch(d, batch, outcomes, err);
    } else if (status == 401 || status == 403 || status == 404 || status == 410 ||
               (status >= 300 && status < 400)) {
      return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (%s): HTTP %ld%s", d->base.name,
                          d->url_shown, status,
                          status == 401 || status == 403 ? ": check the signing secret and headers"
                          : status == 410              ? ": the receiver says the endpoint is gone"
                                                       : "");
    } else if (status >= 400 && status < 500 && status != 408 && status != 429) {
      size_t shown = d->response.len < 200 ? d->response.len : 200;
      char *reason = bf_xasprintf("HTTP %ld: %.*s", status, (int)shown, d->response.data ? d->response.data : "");
      for (size_t i = 0; i < batch->n; i++)
        outcomes[i] = (struct bf_outcome){BF_OUT_REJECT, bf_xstrdup(reason)};
      free(reason);
      return 0;
    } else {
      snprintf(last_error, sizeof last_error, "HTTP %ld", status);
    }
    if (attempt == (unsigned)d->max_retries) break;
    long long wait = backoff_ms(d, attempt);
    bf_log_info("destination '%s': %s; retry %u/%lld of batch %s in %lld ms", d->base.name,
                last_error, attempt + 1, d->max_retries, id, wait);
    sleep_ms(wait);
  }
  return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (%s): %s after %lld attempts",
                      d->base.name, d->url_shown, last_error, d->max_retries + 1);
}

static int webhook_push(struct bf_destination *d_, const struct bf_batch *batch,
                        struct bf_outcome *outcomes, struct bf_error *err) {
  return post_batch((struct webhook_destination *)d_, batch, outcomes, err);
}

static int webhook_check(struct bf_destination *d_, struct bf_error *err) {
  /* An empty batch is a valid, side-effect-free delivery. */
  struct webhook_destination *d = (struct webhook_destination *)d_;
  struct bf_batch empty = {.sync_name = "backflow-check", .n = 0};
  long long saved = d->max_retries;
  d->max_retries = 0;
  int rc = post_batch(d, &empty, NULL, err);
  d->max_retries = saved;
  return rc;
}

static void webhook_close(struct bf_destination *d_) {
  struct webhook_destination *d = (struct webhook_destination *)d_;
  curl_easy_cleanup(d->curl);
  curl_slist_free_all(d->headers);
  bf_buf_release(&d->body);
  bf_buf_release(&d->tmp);
  bf_buf_release(&d->response);
  sodium_memzero(d->key, sizeof d->key);
  free(d->url);
  free(d->url_shown);
  free(d);
}

const struct bf_destination_type bf_destination_webhook = {
    .name = "webhook",
    .params = webhook_params,
    .max_batch = 10000,
    .default_batch = 500,
    .needs_identifier_for_delete = true,
    .open = webhook_open,
    .check = webhook_check,
    .push = webhook_push,
    .remove = webhook_push,
    .close = webhook_close,
};

/* webhook: POSTs batches of records as JSON, signed per Standard Webhooks
 * (design.md §3), over the shared HTTP transport (http_transport.h): one
 * keep-alive connection per request in flight, up to max_in_flight of them.
 *
 * A push (the runner's batch) is cut into POSTs of the sync's batch_size
 * records (DEFAULT_POST_RECORDS when the sync sets none), sent concurrently.
 * Each POST has its own webhook-id (= the body's batch_id), the same on
 * every retry of that POST, so the receiver can use it as its idempotency
 * key; webhook-timestamp and webhook-signature are made afresh for every
 * attempt (the transport's attempt_headers hook).
 *
 * Receiver answers: any 2xx accepts the POST; a JSON body
 * {"results":[{"status":"ok"|"rejected"|"retry","reason":"..."}...]} with one
 * entry per record, in order, gives per-record outcomes. 429, 408, 5xx,
 * timeouts, dropped connections and answers over MAX_RESPONSE_BYTES are
 * retried by the transport with exponential backoff and full jitter,
 * honouring Retry-After up to retry_max_wait; 413 splits the POST in
 * halves; 401/403/404/410 and 3xx stop the run (destination unavailable);
 * other 4xx reject the POST's records with the receiver's reason. */
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "util/log.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

#define MAX_RESPONSE_BYTES   (8u << 20) /* a hostile receiver cannot make us eat memory */
#define DEFAULT_POST_RECORDS 500        /* records per POST when the sync sets no batch_size */
#define DEFAULT_IN_FLIGHT    4          /* the max_in_flight default below */

/* One POST: records [off, off + n) of the batch being pushed. */
struct post {
  struct webhook_destination *d;
  size_t off, n;
  char id[40];        /* "msg_" + 32 hex: webhook-id and batch_id */
  char id_header[64]; /* "webhook-id: msg_..." */
  const char *headers[2];
  struct bf_buf body; /* reused from push to push */
};

struct range {
  size_t off, n;
};

struct ranges {
  struct range *items;
  size_t n, cap;
};

struct sync_post_size {
  char *sync;
  size_t records; /* the sync's batch_size; 0 = DEFAULT_POST_RECORDS */
};

struct webhook_destination {
  struct bf_destination base;
  struct bf_http *http;
  char *url;       /* as configured: may hold credentials, never printed */
  char *url_shown; /* without credentials or query string */
  unsigned char key[64];
  size_t key_len;               /* 0 = unsigned */
  struct sync_post_size *syncs; /* syncs to this destination */
  size_t n_syncs;
  struct post *posts; /* pool, one per POST of a round */
  size_t n_posts;
  struct bf_buf tmp;
};

static const struct bf_param_spec webhook_params[] = {
    {"url", BF_PARAM_STRING, NULL, true, false, "http(s) URL the batches are POSTed to"},
    {"signing_secret", BF_PARAM_STRING, NULL, false, true,
     "whsec_<base64> secret for webhook-signature"},
    {"max_in_flight", BF_PARAM_INT, "4", false, false,
     "POSTs on the wire at once (1-256), each of the sync's batch_size records (default 500). "
     "A sync without batch_size is handed 2000 records at a time (4 POSTs); one with "
     "batch_size, one POST at a time (docs/decisions.md)"},
    {"timeout", BF_PARAM_DURATION, "30s", false, false, "time allowed for one request"},
    {"max_retries", BF_PARAM_INT, "6", false, false, "retries of a batch on 429/5xx/timeouts"},
    {"retry_base", BF_PARAM_DURATION, "500ms", false, false, "first backoff; doubles each retry"},
    {"retry_max_wait", BF_PARAM_DURATION, "60s", false, false, "longest wait between retries"},
    {"headers", BF_PARAM_MAP, NULL, false, true, "extra request headers"},
    {"insecure", BF_PARAM_BOOL, "false", false, false, "skip TLS verification (warns)"},
    {NULL, 0, NULL, false, false, NULL},
};

static void webhook_close(struct bf_destination *d_) {
  struct webhook_destination *d = (struct webhook_destination *)d_;
  if (!d) return;
  bf_http_free(d->http);
  for (size_t i = 0; i < d->n_posts; i++) bf_buf_release(&d->posts[i].body);
  free(d->posts);
  for (size_t i = 0; i < d->n_syncs; i++) free(d->syncs[i].sync);
  free(d->syncs);
  bf_buf_release(&d->tmp);
  sodium_memzero(d->key, sizeof d->key);
  free(d->url);
  free(d->url_shown);
  free(d);
}

static int webhook_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                        struct bf_destination **out, struct bf_error *err) {
  const struct bf_node *p = dc->params;
  struct webhook_destination *d = bf_xcalloc(1, sizeof *d);
  int rc = 0;
  d->url = bf_xstrdup(bf_params_str(p, webhook_params, "url"));
  d->url_shown = bf_http_redact_url(d->url);
  const struct bf_node *url_node = bf_node_get(p, "url");
  if (strncmp(d->url, "http://", 7) != 0 && strncmp(d->url, "https://", 8) != 0) {
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: destination '%s': url must start with http:// or https://",
                      url_node->loc.file, url_node->loc.line, url_node->loc.col, dc->name);
    goto fail;
  }
  const char *secret = bf_params_str(p, webhook_params, "signing_secret");
  if (secret) {
    const struct bf_node *sn = bf_node_get(p, "signing_secret");
    const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
    size_t key_len = 0;
    if (sodium_base642bin(d->key, sizeof d->key, b64, strlen(b64), NULL, &key_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        key_len < 16) {
      rc = bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: destination '%s': signing_secret must be whsec_ followed by "
                        "base64 of 16 to 64 bytes",
                        sn->loc.file, sn->loc.line, sn->loc.col, dc->name);
      goto fail;
    }
    d->key_len = key_len;
  }
  long long in_flight = bf_params_int(p, webhook_params, "max_in_flight");
  if (in_flight < 1 || in_flight > 256) {
    const struct bf_node *n = bf_node_get(p, "max_in_flight");
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: destination '%s': max_in_flight must be from 1 to 256",
                      n->loc.file, n->loc.line, n->loc.col, dc->name);
    goto fail;
  }
  /* Records per POST: each sync's batch_size, looked up by the sync name a
   * batch carries. */
  for (size_t i = 0; cfg && i < cfg->n_syncs; i++) {
    const struct bf_sync_config *s = &cfg->syncs[i];
    if (strcmp(s->destination, dc->name) != 0) continue;
    d->syncs = bf_xrealloc(d->syncs, (d->n_syncs + 1) * sizeof *d->syncs);
    d->syncs[d->n_syncs++] =
        (struct sync_post_size){bf_xstrdup(s->name), s->batch_size > 0 ? (size_t)s->batch_size : 0};
  }

  /* The transport's name starts its log lines and the insecure warning. */
  char *name = bf_xasprintf("destination '%s'", dc->name);
  struct bf_http_options o;
  bf_http_options_defaults(&o, name, d->url, 0 /* no rate limit */, 1, (unsigned)in_flight);
  o.timeout_ms = bf_params_duration_ms(p, webhook_params, "timeout");
  o.connect_timeout_ms = o.timeout_ms < 10000 ? o.timeout_ms : 10000;
  o.max_retries = (unsigned)bf_params_int(p, webhook_params, "max_retries");
  o.retry_base_ms = bf_params_duration_ms(p, webhook_params, "retry_base");
  o.retry_max_wait_ms = bf_params_duration_ms(p, webhook_params, "retry_max_wait");
  o.max_response_bytes = MAX_RESPONSE_BYTES;
  o.retry_too_large = true; /* the POST may have landed: send it again, same webhook-id */
  o.insecure = bf_params_bool(p, webhook_params, "insecure");
  d->http = bf_http_new(&o, err);
  free(name);
  if (!d->http) {
    rc = err ? err->code : BF_E_DESTINATION;
    goto fail;
  }
  /* Header values are secrets: scrubbed from every message, a receiver's
   * quoted answer included. */
  const struct bf_node *extra = bf_node_get(p, "headers");
  for (size_t i = 0; extra && i < extra->n; i++) {
    if (extra->items[i]->kind != BF_NODE_SCALAR) continue;
    char *h = bf_xasprintf("%s: %s", extra->keys[i], extra->items[i]->scalar);
    bf_http_add_header(d->http, h, true);
    free(h);
  }
  /* So are the URL's user:password@ (registered by the transport) and the
   * values in its query string, which often carry a token. */
  const char *q = strchr(d->url, '?');
  while (q) {
    const char *v = q + 1 + strcspn(q + 1, "=&#");
    const char *end = v + strcspn(v, "&#");
    if (*v == '=' && end - v > 1) {
      char *value = bf_xstrndup(v + 1, (size_t)(end - v - 1));
      bf_http_add_secret(d->http, value);
      free(value);
    }
    q = *end == '&' ? end : NULL;
  }
  *out = &d->base;
  return 0;
fail:
  webhook_close(&d->base);
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

/* Called by the transport before every attempt of a POST: a fresh
 * timestamp, and the signature over it (webhook-id stays in the fixed
 * headers). */
static void attempt_headers(const struct bf_http_request *req, unsigned attempt,
                            struct bf_buf *out) {
  (void)attempt;
  const struct post *p = req->user;
  long long ts = (long long)time(NULL);
  bf_buf_printf(out, "webhook-timestamp: %lld\n", ts);
  if (p->d->key_len) {
    char sig[96];
    bf_webhook_signature(p->d->key, p->d->key_len, p->id, ts, req->body, req->body_len, sig,
                         sizeof sig);
    bf_buf_printf(out, "webhook-signature: %s\n", sig);
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
    snprintf(detail, sizeof detail, "malformed JSON response (%.120s at byte %d)", jerr.text,
             jerr.position);
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
    for (size_t i = 0; i < n; i++)
      outcomes[i] = (struct bf_outcome){BF_OUT_RETRY, bf_xstrdup(problem)};
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *r = json_array_get(results, i);
    const char *status = json_string_value(json_object_get(r, "status"));
    const char *reason = json_string_value(json_object_get(r, "reason"));
    if (status && (!strcmp(status, "ok") || !strcmp(status, "success"))) continue;
    if (status && !strcmp(status, "retry")) {
      outcomes[i] = (struct bf_outcome){
          BF_OUT_RETRY, bf_xstrdup(reason && *reason ? reason : "receiver asked to retry")};
    } else if (status && (!strcmp(status, "rejected") || !strcmp(status, "error"))) {
      outcomes[i] = (struct bf_outcome){
          BF_OUT_REJECT, bf_xstrdup(reason && *reason ? reason : "rejected by receiver")};
    } else {
      outcomes[i] = (struct bf_outcome){BF_OUT_RETRY, bf_xstrdup("result without a known status")};
    }
  }
out:
  json_decref(root);
}

static void ranges_add(struct ranges *r, size_t off, size_t n) {
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 16;
    r->items = bf_xrealloc(r->items, r->cap * sizeof *r->items);
  }
  r->items[r->n++] = (struct range){off, n};
}

/* Records per POST for a batch of this sync. */
static size_t post_records(const struct webhook_destination *d, const char *sync) {
  for (size_t i = 0; i < d->n_syncs; i++)
    if (sync && !strcmp(d->syncs[i].sync, sync) && d->syncs[i].records) return d->syncs[i].records;
  return DEFAULT_POST_RECORDS;
}

/* Builds the body of p (records [off, off + n) of batch) under a new id. */
static void build_post(struct webhook_destination *d, struct post *p, const struct bf_batch *batch,
                       struct range rg) {
  p->d = d;
  p->off = rg.off;
  p->n = rg.n;
  unsigned char raw_id[16];
  randombytes_buf(raw_id, sizeof raw_id);
  memcpy(p->id, "msg_", 4);
  sodium_bin2hex(p->id + 4, sizeof p->id - 4, raw_id, sizeof raw_id);
  snprintf(p->id_header, sizeof p->id_header, "webhook-id: %s", p->id);
  p->headers[0] = p->id_header;
  p->headers[1] = NULL;

  struct bf_buf *b = &p->body;
  bf_buf_reset(b);
  bf_buf_puts(b, "{\"sync\":");
  bf_json_cstr(b, batch->sync_name);
  bf_buf_puts(b, ",\"batch_id\":\"");
  bf_buf_puts(b, p->id);
  bf_buf_puts(b, "\",\"records\":[");
  for (size_t i = rg.off; i < rg.off + rg.n; i++) {
    if (i > rg.off) bf_buf_putc(b, ',');
    bf_record_json(batch, &batch->records[i], b, &d->tmp);
  }
  bf_buf_puts(b, "]}");
}

/* The final answer to one POST -> its records' outcomes, halves to send
 * again (413), or the error that stops the run. */
static int judge(struct webhook_destination *d, const struct post *p, struct bf_http_response *r,
                 struct bf_outcome *outcomes, struct ranges *again, struct bf_error *err) {
  long status = r->status;
  struct bf_outcome *out = outcomes ? outcomes + p->off : NULL;
  if (bf_http_ok(r) && !r->too_large) {
    bf_webhook_parse_results(d->base.name, d->url_shown, r->content_type, r->body.data, r->body.len,
                             p->n, out);
    return 0;
  }
  if (status == 413 && p->n > 1) {
    ranges_add(again, p->off, p->n / 2);
    ranges_add(again, p->off + p->n / 2, p->n - p->n / 2);
    return 0;
  }
  if (status == 401 || status == 403 || status == 404 || status == 410 ||
      (status >= 300 && status < 400))
    return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (%s): HTTP %ld%s", d->base.name,
                        d->url_shown, status,
                        status == 401 || status == 403 ? ": check the signing secret and headers"
                        : status == 410                ? ": the receiver says the endpoint is gone"
                                                       : "");
  if (!r->too_large && !bf_http_retryable(d->http, r) && status >= 400 && status < 500) {
    size_t shown = r->body.len < 200 ? r->body.len : 200;
    char *reason =
        bf_xasprintf("HTTP %ld: %.*s", status, (int)shown, r->body.data ? r->body.data : "");
    bf_http_scrub(d->http, reason);
    for (size_t i = 0; i < p->n; i++)
      out[i] = (struct bf_outcome){BF_OUT_REJECT, bf_xstrdup(reason)};
    free(reason);
    return 0;
  }
  /* 429, 408, 5xx, no answer or an oversized one, after the retries. */
  return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (%s): %s", d->base.name,
                      d->url_shown, r->error[0] ? r->error : "no usable answer");
}

struct round {
  struct webhook_destination *d;
  struct bf_outcome *outcomes;
  struct ranges *again;
  int rc; /* the first error that stops the run */
  struct bf_error *err;
};

/* Each POST is judged as soon as its answer is final, while the others of
 * the round are still on the wire. */
static void on_done(void *arg, size_t index, const struct bf_http_request *req,
                    struct bf_http_response *resp) {
  (void)index;
  struct round *rd = arg;
  if (rd->rc == 0) rd->rc = judge(rd->d, req->user, resp, rd->outcomes, rd->again, rd->err);
}

/* POSTs batch as POSTs of `per_post` records, max_in_flight at a time, and
 * fills outcomes[batch->n] (NULL for the empty check batch). */
static int send_batch(struct webhook_destination *d, const struct bf_batch *batch, size_t per_post,
                      bool one_attempt, struct bf_outcome *outcomes, struct bf_error *err) {
  struct ranges todo = {0}, next = {0};
  if (batch->n == 0) ranges_add(&todo, 0, 0); /* `check`: one empty, valid delivery */
  for (size_t off = 0; off < batch->n; off += per_post)
    ranges_add(&todo, off, batch->n - off < per_post ? batch->n - off : per_post);
  int rc = 0;
  while (todo.n > 0 && rc == 0) {
    if (d->n_posts < todo.n) {
      d->posts = bf_xrealloc(d->posts, todo.n * sizeof *d->posts);
      memset(d->posts + d->n_posts, 0, (todo.n - d->n_posts) * sizeof *d->posts);
      d->n_posts = todo.n;
    }
    struct bf_http_request *reqs = bf_xcalloc(todo.n, sizeof *reqs);
    struct bf_http_response *resps = bf_xcalloc(todo.n, sizeof *resps);
    for (size_t i = 0; i < todo.n; i++) {
      struct post *p = &d->posts[i];
      build_post(d, p, batch, todo.items[i]);
      reqs[i] = (struct bf_http_request){.method = "POST",
                                         .path = d->url, /* absolute: used as it is */
                                         .body = p->body.data,
                                         .body_len = p->body.len,
                                         .headers = p->headers,
                                         .no_retry = one_attempt,
                                         .user = p,
                                         .attempt_headers = attempt_headers};
    }
    next.n = 0;
    struct round rd = {d, outcomes, &next, 0, err};
    rc = bf_http_perform(d->http, reqs, resps, todo.n, on_done, &rd, err);
    if (rc == 0) rc = rd.rc;
    bf_http_responses_release(resps, todo.n);
    free(resps);
    free(reqs);
    struct ranges swap = todo;
    todo = next;
    next = swap;
  }
  free(todo.items);
  free(next.items);
  return rc;
}

static int webhook_push(struct bf_destination *d_, const struct bf_batch *batch,
                        struct bf_outcome *outcomes, struct bf_error *err) {
  struct webhook_destination *d = (struct webhook_destination *)d_;
  return send_batch(d, batch, post_records(d, batch->sync_name), false, outcomes, err);
}

static int webhook_check(struct bf_destination *d_, struct bf_error *err) {
  /* An empty batch is a valid, side-effect-free delivery; one attempt. */
  struct webhook_destination *d = (struct webhook_destination *)d_;
  struct bf_batch empty = {.sync_name = "backflow-check", .n = 0};
  return send_batch(d, &empty, DEFAULT_POST_RECORDS, true, NULL, err);
}

const struct bf_destination_type bf_destination_webhook = {
    .name = "webhook",
    .params = webhook_params,
    .max_batch = 10000,
    /* POSTs of DEFAULT_POST_RECORDS, DEFAULT_IN_FLIGHT at once. A sync's own
     * batch_size is the runner's batch as it is: one POST per push. */
    .default_batch = DEFAULT_POST_RECORDS * DEFAULT_IN_FLIGHT,
    .needs_identifier_for_delete = true,
    .open = webhook_open,
    .check = webhook_check,
    .push = webhook_push,
    .remove = webhook_push,
    .close = webhook_close,
};

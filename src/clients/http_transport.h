/* The HTTP transport every SaaS destination shares (design.md §5).
 *
 * One struct bf_http per opened destination. It owns a libcurl multi handle
 * and a pool of easy handles, so connections are kept alive between requests
 * and between pushes. A caller hands it N requests at once; the transport
 *
 *   - keeps at most max_in_flight of them on the wire (bounded concurrency),
 *   - starts each attempt only when the token bucket has a token
 *     (requests_per_second, burst), and pauses everything while a vendor's
 *     rate-limit headers say the window is used up (Retry-After on any
 *     answer, X-HubSpot-RateLimit-Remaining: 0 with -Interval-Milliseconds,
 *     X-Rate-Limit-Remaining / X-RateLimit-Remaining / RateLimit-Remaining: 0
 *     with their Reset header),
 *   - retries 429, 408, 5xx, timeouts and connection errors (or what the
 *     destination's `retryable` hook says) with exponential backoff and full
 *     jitter, waiting at least Retry-After (seconds or HTTP date) when given,
 *   - caps every response body at max_response_bytes,
 *   - and returns one final response per request, in order, calling an
 *     optional on_done callback as each request finishes.
 *
 * Credentials never leave it: default headers marked secret (Authorization,
 * API keys) are not logged, URLs are shown without userinfo and query
 * string, and every message the transport writes has each registered secret
 * string replaced by "[redacted]" (bf_http_scrub does the same for callers).
 *
 * Rate limits: a token bucket admits at most burst + rps*T requests in any
 * interval T. The transport keeps headroom under what it is given (it paces
 * at 99% of requests_per_second and holds burst - 1 tokens, at least 1), so
 * a limit configured exactly as the vendor documents it is never crossed by
 * network jitter. A vendor limit of N requests per rolling window W is kept
 * by rps = N/W and burst = 1 (HubSpot: 100 per 10 s -> rps 10).
 *
 * Threading: a struct bf_http is used by one thread at a time. The stats
 * totals (bf_http_stats_totals) are process-wide and thread-safe.
 *
 * Typical use (see hubspot.c):
 *
 *   struct bf_http_options o;
 *   bf_http_options_defaults(&o, "hubspot:crm", "https://api.hubapi.com", 10, 1, 4);
 *   rc = bf_http_options_from_params(&o, dc->params, specs, what, err);   // config overrides
 *   struct bf_http *t = bf_http_new(&o, err);
 *   bf_http_add_header(t, "Authorization: Bearer <token>", true);
 *   struct bf_http_request req[k] = {{.method = "POST", .path = "/crm/v3/...", .body = b, .body_len
 * = n}}; struct bf_http_response resp[k]; rc = bf_http_perform(t, req, resp, k, NULL, NULL, err);
 *   ... resp[i].status, resp[i].body ...
 *   bf_http_responses_release(resp, k);
 *   bf_http_free(t);
 */
#ifndef BF_HTTP_TRANSPORT_H
#define BF_HTTP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"
#include "util/jsonw.h"
#include "spec/params.h"

/* ---- configuration ---------------------------------------------------- */

struct bf_http_response;

struct bf_http_options {
  const char *name;           /* "hubspot:crm", for log lines; copied */
  const char *base_url;       /* "https://api.hubapi.com", no trailing slash needed; copied */
  double requests_per_second; /* token refill rate; 0 = unlimited */
  double burst;               /* bucket size in requests (>= 1) */
  unsigned max_in_flight;     /* requests on the wire at once (>= 1) */
  long long timeout_ms;       /* one attempt, connect to last byte */
  long long connect_timeout_ms;
  unsigned max_retries;        /* attempts = 1 + max_retries */
  long long retry_base_ms;     /* first backoff cap; doubles per attempt */
  long long retry_max_wait_ms; /* longest single wait, Retry-After included */
  size_t max_response_bytes;   /* larger bodies fail the attempt (final unless retry_too_large) */
  bool insecure;               /* skip TLS verification (warns once) */
  /* Decides whether a finished attempt is sent again. NULL means
   * bf_http_default_retryable. Salesforce, for example, adds its 403
   * REQUEST_LIMIT_EXCEEDED. */
  bool (*retryable)(const struct bf_http_response *resp, void *arg);
  void *retryable_arg;
  /* An answer larger than max_response_bytes is retried like a dropped
   * connection instead of being final (the webhook: the receiver may have
   * applied the batch, so it goes again with the same id). Default false. */
  bool retry_too_large;
};

/* Fills o with the transport's defaults and the destination's documented
 * limits (rps 0 = unlimited). Strings are borrowed until bf_http_new. */
void bf_http_options_defaults(struct bf_http_options *o, const char *name, const char *base_url,
                              double requests_per_second, double burst, unsigned max_in_flight);

/* Config keys every HTTP destination accepts; put this at the start of its
 * bf_param_spec table (then the destination's own keys, then the NULL row).
 *   base_url       API root (sandboxes, proxies, tests)
 *   rate_limit     {requests_per_second: N, burst: M} (decimals allowed;
 *                  burst defaults to 1 when only the rate is given;
 *                  requests_per_second: 0 turns the limiter off)
 *   max_in_flight  concurrent requests
 *   timeout, max_retries, retry_base, retry_max_wait, insecure */
#define BF_HTTP_PARAMS(default_base_url)                                                             \
  {"base_url", BF_PARAM_STRING, default_base_url,                                                    \
   false,      false,           "API root URL (sandbox, proxy or test server)"},                     \
      {"rate_limit", BF_PARAM_MAP,                                                                   \
       NULL,         false,                                                                          \
       false,        "{requests_per_second: N, burst: M}; defaults to the API's documented limit"},  \
      {"max_in_flight", BF_PARAM_INT, NULL, false, false, "concurrent requests (default per API)"},  \
      {"timeout", BF_PARAM_DURATION, "30s", false, false, "time allowed for one request"},           \
      {"max_retries", BF_PARAM_INT, "6", false, false, "retries of a request on 429/5xx/timeouts"},  \
      {"retry_base", BF_PARAM_DURATION, "500ms", false, false, "first backoff; doubles each retry"}, \
      {"retry_max_wait", BF_PARAM_DURATION, "60s", false, false, "longest wait between retries"},    \
  {                                                                                                  \
    "insecure", BF_PARAM_BOOL, "false", false, false, "skip TLS verification (warns)"                \
  }

/* Applies the BF_HTTP_PARAMS keys found in params (already checked with
 * bf_params_check against specs) on top of o. o->base_url then points into
 * params. Returns 0, or BF_E_CONFIG with file:line:col for a bad rate_limit
 * map or a base_url that is not http(s). what = "destination 'crm' (hubspot)". */
int bf_http_options_from_params(struct bf_http_options *o, const struct bf_node *params,
                                const struct bf_param_spec *specs, const char *what,
                                struct bf_error *err);

/* ---- the transport ----------------------------------------------------- */

struct bf_http;

/* Creates a transport. Caller frees with bf_http_free (NULL is fine). */
struct bf_http *bf_http_new(const struct bf_http_options *o, struct bf_error *err);
void bf_http_free(struct bf_http *t);

/* Adds "Name: value" to every request. secret = true also registers the
 * value part as a secret (scrubbed from every message). Copied. */
void bf_http_add_header(struct bf_http *t, const char *header_line, bool secret);
/* Registers a string that must never appear in a log line or error (a
 * token, a password, a basic-auth pair). Strings shorter than 4 bytes are
 * ignored. Copied. */
void bf_http_add_secret(struct bf_http *t, const char *secret);
/* Replaces every registered secret in text (NUL-terminated, in place) with
 * "[redacted]", shortening it as needed. */
void bf_http_scrub(const struct bf_http *t, char *text);
/* base_url as given (may hold credentials: do not print). */
const char *bf_http_base_url(const struct bf_http *t);
/* base_url without userinfo and query string: safe to print. */
const char *bf_http_base_url_shown(const struct bf_http *t);

struct bf_http_request {
  const char *method;       /* NULL: "POST" when body is set, else "GET" */
  const char *path;         /* appended to base_url; or an absolute http(s):// URL */
  const char *content_type; /* NULL: "application/json" when body is set */
  const char *body;         /* borrowed until bf_http_perform returns; may be NULL */
  size_t body_len;
  const char *const *headers; /* NULL-terminated "Name: value" lines, borrowed; may be NULL */
  bool no_retry;              /* one attempt only (e.g. `check`) */
  void *user;                 /* for on_done */
  /* Optional: called just before every attempt of this request goes on the
   * wire (attempt = 1, 2, ...). It appends header lines for that attempt
   * only to out, each "Name: value\n": values that must be fresh on every
   * send, such as a timestamp and a signature over it. */
  void (*attempt_headers)(const struct bf_http_request *req, unsigned attempt, struct bf_buf *out);
};

/* Headers the transport keeps from the final answer, by lower-case name. */
#define BF_HTTP_MAX_KEPT_HEADERS 32

struct bf_http_response {
  long status;        /* final HTTP status; 0 when there was no HTTP answer */
  struct bf_buf body; /* the final answer's body; owned, see bf_http_response_release */
  char content_type[96];
  long long retry_after_ms; /* Retry-After of the final answer; -1 when absent */
  unsigned attempts;        /* how many times the request was sent */
  bool too_large;           /* body exceeded max_response_bytes */
  bool tls_failed;          /* TLS handshake or certificate failed: retrying cannot help */
  /* Why the request failed, "" when it got a 2xx: "HTTP 503", "Timeout
   * was reached after 7 attempts", ...; never holds credentials. */
  char error[256];
  size_t n_headers; /* every response header line, name lower-cased, up to the cap */
  char *header_names[BF_HTTP_MAX_KEPT_HEADERS];
  char *header_values[BF_HTTP_MAX_KEPT_HEADERS];
};

/* Called once per request when it is final (2xx, a non-retryable answer, or
 * retries exhausted), in completion order. May take ownership of
 * resp->body's memory (then zero it). index is the request's position. */
typedef void (*bf_http_done_fn)(void *arg, size_t index, const struct bf_http_request *req,
                                struct bf_http_response *resp);

/* Sends n requests (bounded concurrency, rate limit, retries inside) and
 * fills resps[n] (which the caller then releases). Returns 0 when every
 * request has a final response, whatever its status: a request that failed
 * after its retries has status 0 or its last status and bf_http_retryable()
 * true, which destinations report as "destination unavailable" or per-record
 * retry. Returns a negative bf_code only when the transport itself broke. */
int bf_http_perform(struct bf_http *t, const struct bf_http_request *reqs,
                    struct bf_http_response *resps, size_t n, bf_http_done_fn on_done, void *arg,
                    struct bf_error *err);
/* One request. */
int bf_http_perform_one(struct bf_http *t, const struct bf_http_request *req,
                        struct bf_http_response *resp, struct bf_error *err);

void bf_http_response_release(struct bf_http_response *r);
void bf_http_responses_release(struct bf_http_response *r, size_t n);
/* Value of a kept response header (name case-insensitive), or NULL. */
const char *bf_http_response_header(const struct bf_http_response *r, const char *name);
/* The body as a NUL-terminated string ("" when empty). */
const char *bf_http_response_text(struct bf_http_response *r);

static inline bool bf_http_ok(const struct bf_http_response *r) {
  return r->status >= 200 && r->status < 300;
}
/* 429, 408, 5xx, or no answer (timeouts, connection errors). */
bool bf_http_default_retryable(const struct bf_http_response *r, void *arg);
/* The transport's verdict for r with its options (the retryable hook). A
 * final response for which this is true means "retries exhausted". */
bool bf_http_retryable(const struct bf_http *t, const struct bf_http_response *r);

/* Waits ms milliseconds; used between polls of async jobs. */
void bf_http_sleep_ms(long long ms);
/* Milliseconds of full-jitter backoff before attempt `attempt` (0-based):
 * uniform in [0, min(max_wait, base * 2^attempt)]; at least retry_after_ms
 * (>= 0) when the server named one, capped at max_wait. */
long long bf_http_backoff_ms(long long base_ms, long long max_wait_ms, unsigned attempt,
                             long long retry_after_ms);
/* Retry-After value ("120" or "Wed, 21 Oct 2015 07:28:00 GMT") in ms from
 * now (>= 0), or -1 when it cannot be parsed. */
long long bf_http_parse_retry_after(const char *value, time_t now);
/* url without user:password@ and ?query (replaced by "?…"). Caller frees. */
char *bf_http_redact_url(const char *url);

/* ---- payload helpers shared by SaaS destinations ---------------------- */

/* Appends v as the plain text SaaS APIs expect in string-typed fields:
 * integers in decimal, floats in the shortest form that reads back equal,
 * booleans "true"/"false", NULL as "" (which clears a field in HubSpot),
 * blobs as base64, and SQL timestamps "YYYY-MM-DD HH:MM[:SS[.fff]][zone]" as
 * ISO 8601 "YYYY-MM-DDTHH:MM:SS[.fff]Z" (UTC when no zone is given); dates
 * "YYYY-MM-DD" and other text are kept as they are. */
void bf_http_value_text(struct bf_buf *out, const struct bf_value *v);

/* ---- statistics (the server exposes these as metrics) ------------------ */

struct bf_http_stats {
  uint64_t requests; /* attempts put on the wire */
  uint64_t status_2xx, status_3xx, status_4xx, status_429, status_5xx;
  uint64_t transport_errors;   /* no HTTP answer: timeouts, refused, reset */
  uint64_t retries;            /* attempts after the first */
  uint64_t rate_limit_waits;   /* attempts that waited for the token bucket */
  uint64_t rate_limit_wait_ms; /* total time waited for the bucket */
  uint64_t server_throttles;   /* pauses asked for by the server (429, Retry-After, headers) */
  uint64_t bytes_sent, bytes_received;
};
/* This transport's counters since bf_http_new. */
void bf_http_stats_get(const struct bf_http *t, struct bf_http_stats *out);
/* Sum over every transport of the process, closed ones included. */
void bf_http_stats_totals(struct bf_http_stats *out);

/* ---- the token bucket (exposed for tests and other limiters) ----------- */

struct bf_token_bucket {
  double rate;  /* tokens per second; <= 0: unlimited */
  double burst; /* capacity */
  double tokens;
  double last_ms; /* time of the last refill */
};
/* Starts full. */
void bf_token_bucket_init(struct bf_token_bucket *b, double rate, double burst, double now_ms);
/* Takes one token if there is one (returns 0), else returns the ms to wait
 * until one will be there (and takes nothing). */
double bf_token_bucket_take(struct bf_token_bucket *b, double now_ms);
/* Empties the bucket until now_ms + ms: a server said "slow down". */
void bf_token_bucket_pause(struct bf_token_bucket *b, double now_ms, double ms);

/* Monotonic clock in ms. */
double bf_http_now_ms(void);

#endif

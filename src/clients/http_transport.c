/* The shared HTTP transport: libcurl multi, keep-alive, bounded
 * concurrency, token bucket, retries with full-jitter backoff (see
 * http_transport.h for the contract). */
#include "clients/http_transport.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <sodium.h>

#include "util/log.h"
#include "util/stop.h"

#define MAX_SECRETS 8

struct slot {
  CURL *easy;
  struct curl_slist *headers;
  char *url;
  size_t req; /* index into the current perform's requests */
  bool busy;
};

struct bf_http {
  char *name;
  char *base_url; /* without trailing '/' */
  char *base_url_shown;
  struct bf_http_options o;
  CURLM *multi;
  struct slot *slots;
  struct curl_slist *default_headers;
  char *secrets[MAX_SECRETS];
  size_t n_secrets;
  struct bf_token_bucket bucket;
  double paused_until_ms; /* a server asked us to stop sending until then */
  struct bf_http_stats stats;
  struct bf_buf attempt_lines; /* scratch for a request's attempt_headers */
};

static struct bf_http_stats g_totals;

#define STAT_ADD(t, field, v)                                                                      \
  do {                                                                                             \
    (t)->stats.field += (uint64_t)(v);                                                             \
    __atomic_fetch_add(&g_totals.field, (uint64_t)(v), __ATOMIC_RELAXED);                          \
  } while (0)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_global(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

double bf_http_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- token bucket ----------------------------------------------------- */

void bf_token_bucket_init(struct bf_token_bucket *b, double rate, double burst, double now_ms) {
  b->rate = rate;
  b->burst = burst < 1 ? 1 : burst;
  b->tokens = b->burst;
  b->last_ms = now_ms;
}

static void refill(struct bf_token_bucket *b, double now_ms) {
  if (now_ms > b->last_ms) {
    b->tokens += (now_ms - b->last_ms) * b->rate / 1000.0;
    if (b->tokens > b->burst) b->tokens = b->burst;
    b->last_ms = now_ms;
  }
}

double bf_token_bucket_take(struct bf_token_bucket *b, double now_ms) {
  if (b->rate <= 0) return 0;
  refill(b, now_ms);
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return 0;
  }
  /* Never 0 here: the caller would spin. */
  double wait = (1.0 - b->tokens) * 1000.0 / b->rate;
  return wait > 0.001 ? wait : 0.001;
}

void bf_token_bucket_pause(struct bf_token_bucket *b, double now_ms, double ms) {
  if (b->rate <= 0) return;
  refill(b, now_ms);
  /* Negative tokens: the bucket refills to 0 after ms, then to 1 a token later. */
  double tokens = -(ms * b->rate / 1000.0);
  if (tokens < b->tokens) b->tokens = tokens;
}

/* ---- small helpers ------------------------------------------------------ */

void bf_http_sleep_ms(long long ms) {
  if (ms <= 0) return;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && !bf_stop_requested) {
  }
}

long long bf_http_backoff_ms(long long base_ms, long long max_wait_ms, unsigned attempt,
                             long long retry_after_ms) {
  long long cap = base_ms << (attempt < 20 ? attempt : 20);
  if (cap > max_wait_ms || cap < 0) cap = max_wait_ms;
  long long ms =
      cap > 0 ? (long long)randombytes_uniform((uint32_t)(cap < 0x7fffffff ? cap : 0x7fffffff) + 1)
              : 0;
  if (retry_after_ms >= 0 && ms < retry_after_ms) ms = retry_after_ms;
  return ms < max_wait_ms ? ms : max_wait_ms;
}

long long bf_http_parse_retry_after(const char *value, time_t now) {
  while (*value == ' ' || *value == '\t') value++;
  if (!*value) return -1;
  char *end;
  double secs = strtod(value, &end);
  while (*end == ' ' || *end == '\t') end++;
  if (end != value && *end == '\0' && isdigit((unsigned char)value[0]))
    return secs < 0 ? 0 : (long long)(secs * 1000.0);
  struct tm tm = {0};
  const char *rest = strptime(value, "%a, %d %b %Y %H:%M:%S", &tm);
  if (!rest) return -1;
  long long ms = ((long long)timegm(&tm) - (long long)now) * 1000LL;
  return ms < 0 ? 0 : ms;
}

char *bf_http_redact_url(const char *url) {
  const char *scheme_end = strstr(url, "://");
  const char *host = scheme_end ? scheme_end + 3 : url;
  const char *path = host + strcspn(host, "/?#");
  const char *at = memchr(host, '@', (size_t)(path - host));
  if (at) host = at + 1;
  size_t path_len = strcspn(path, "?#");
  return bf_xasprintf("%.*s%.*s%.*s%s", scheme_end ? (int)(scheme_end + 3 - url) : 0, url,
                      (int)(path - host), host, (int)path_len, path, path[path_len] ? "?…" : "");
}

void bf_http_scrub(const struct bf_http *t, char *text) {
  if (!t || !text) return;
  static const char mark[] = "[redacted]";
  for (size_t s = 0; s < t->n_secrets; s++) {
    const char *secret = t->secrets[s];
    size_t sl = strlen(secret);
    char *p;
    while ((p = strstr(text, secret)) != NULL) {
      size_t ml = sizeof mark - 1;
      if (ml > sl) ml = sl; /* never grow the text: a short secret becomes a short mark */
      memcpy(p, mark, ml);
      memmove(p + ml, p + sl, strlen(p + sl) + 1);
    }
  }
}

void bf_http_add_secret(struct bf_http *t, const char *secret) {
  if (!secret || strlen(secret) < 4 || t->n_secrets >= MAX_SECRETS) return;
  t->secrets[t->n_secrets++] = bf_xstrdup(secret);
}

void bf_http_add_header(struct bf_http *t, const char *header_line, bool secret) {
  t->default_headers = curl_slist_append(t->default_headers, header_line);
  if (secret) {
    const char *v = strchr(header_line, ':');
    if (v) {
      v++;
      while (*v == ' ') v++;
      bf_http_add_secret(t, v);
      /* "Bearer xyz" / "Basic abc": the credential alone too */
      const char *sp = strchr(v, ' ');
      if (sp) bf_http_add_secret(t, sp + 1);
    }
  }
}

const char *bf_http_base_url(const struct bf_http *t) { return t->base_url; }
const char *bf_http_base_url_shown(const struct bf_http *t) { return t->base_url_shown; }

/* ---- payload helpers ---------------------------------------------------- */

static bool digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i])) return false;
  return true;
}

/* "YYYY-MM-DD HH:MM[:SS[.fff]][Z|+hh[:mm]]" -> ISO 8601 with 'T' and a zone. */
static bool sql_timestamp_iso(struct bf_buf *out, const char *s, size_t n) {
  if (n < 16 || n > 40 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
      !digits(s + 8, 2) || (s[10] != ' ' && s[10] != 'T') || !digits(s + 11, 2) || s[13] != ':' ||
      !digits(s + 14, 2))
    return false;
  size_t i = 16;
  bool has_seconds = false;
  if (i < n && s[i] == ':') {
    if (i + 3 > n || !digits(s + i + 1, 2)) return false;
    has_seconds = true;
    i += 3;
    if (i < n && s[i] == '.') {
      size_t j = i + 1;
      while (j < n && isdigit((unsigned char)s[j])) j++;
      if (j == i + 1) return false;
      i = j;
    }
  }
  size_t zone = i;
  if (i < n && s[i] == ' ') zone = ++i; /* "... 10:00:00 +02:00" */
  if (i < n) {
    if (s[i] == 'Z' && i + 1 == n) {
    } else if ((s[i] == '+' || s[i] == '-') && (n - i == 3 || n - i == 5 || n - i == 6) &&
               digits(s + i + 1, 2)) {
    } else {
      return false;
    }
  }
  bf_buf_append(out, s, 10);
  bf_buf_putc(out, 'T');
  bf_buf_append(out, s + 11, 5);
  if (has_seconds)
    bf_buf_append(out, s + 16, (zone < n && s[zone - 1] == ' ' ? zone - 1 : zone) - 16);
  else
    bf_buf_puts(out, ":00");
  if (zone >= n)
    bf_buf_putc(out, 'Z');
  else
    bf_buf_append(out, s + zone, n - zone);
  return true;
}

void bf_http_value_text(struct bf_buf *out, const struct bf_value *v) {
  char num[64];
  switch (v->type) {
  case BF_NULL: break;
  case BF_INT: bf_buf_printf(out, "%lld", (long long)v->u.i); break;
  case BF_BOOL: bf_buf_puts(out, v->u.i ? "true" : "false"); break;
  case BF_FLOAT:
    if (!isfinite(v->u.f)) break;
    bf_buf_append(out, num, bf_double_text(num, v->u.f));
    break;
  case BF_JSON: bf_buf_append(out, v->u.s, v->len); break;
  case BF_TEXT:
    if (!sql_timestamp_iso(out, v->u.s, v->len)) bf_buf_append(out, v->u.s, v->len);
    break;
  case BF_BLOB: {
    size_t cap = sodium_base64_ENCODED_LEN(v->len, sodium_base64_VARIANT_ORIGINAL);
    bf_buf_reserve(out, cap);
    sodium_bin2base64(out->data + out->len, cap, (const unsigned char *)v->u.s, v->len,
                      sodium_base64_VARIANT_ORIGINAL);
    out->len += strlen(out->data + out->len);
    break;
  }
  }
}

/* ---- options ------------------------------------------------------------ */

void bf_http_options_defaults(struct bf_http_options *o, const char *name, const char *base_url,
                              double requests_per_second, double burst, unsigned max_in_flight) {
  memset(o, 0, sizeof *o);
  o->name = name;
  o->base_url = base_url;
  o->requests_per_second = requests_per_second;
  o->burst = burst;
  o->max_in_flight = max_in_flight ? max_in_flight : 1;
  o->timeout_ms = 30000;
  o->connect_timeout_ms = 10000;
  o->max_retries = 6;
  o->retry_base_ms = 500;
  o->retry_max_wait_ms = 60000;
  o->max_response_bytes = 64u << 20;
}

static bool has_spec(const struct bf_param_spec *specs, const char *name) {
  for (; specs && specs->name; specs++)
    if (!strcmp(specs->name, name)) return true;
  return false;
}

static int node_number(const struct bf_node *n, double min, double max, double *out,
                       const char *what, const char *key, struct bf_error *err) {
  char *end = NULL;
  double v = n && n->kind == BF_NODE_SCALAR ? strtod(n->scalar, &end) : NAN;
  if (!n || n->kind != BF_NODE_SCALAR || end == n->scalar || *end || !(v >= min && v <= max))
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: %s: rate_limit.%s must be a number from %g to %g", n->loc.file,
                        n->loc.line, n->loc.col, what, key, min, max);
  *out = v;
  return 0;
}

int bf_http_options_from_params(struct bf_http_options *o, const struct bf_node *params,
                                const struct bf_param_spec *specs, const char *what,
                                struct bf_error *err) {
  const struct bf_node *bn = bf_node_get(params, "base_url");
  const char *base = bf_params_str(params, specs, "base_url");
  if (base) o->base_url = base;
  if (!o->base_url ||
      (strncmp(o->base_url, "http://", 7) != 0 && strncmp(o->base_url, "https://", 8) != 0)) {
    if (bn)
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: %s: base_url must start with http:// or https://",
                          bn->loc.file, bn->loc.line, bn->loc.col, what);
    return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s needs 'base_url'", params->loc.file,
                        params->loc.line, params->loc.col, what);
  }
  const struct bf_node *rl = bf_node_get(params, "rate_limit");
  if (rl) {
    static const char *const keys[] = {"requests_per_second", "burst", NULL};
    char *w = bf_xasprintf("rate_limit of %s", what);
    int rc = bf_node_check_keys(rl, w, keys, err);
    free(w);
    if (rc) return rc;
    const struct bf_node *rps = bf_node_get(rl, "requests_per_second");
    const struct bf_node *burst = bf_node_get(rl, "burst");
    if (rps &&
        (rc = node_number(rps, 0, 1e9, &o->requests_per_second, what, "requests_per_second", err)))
      return rc;
    if (burst && (rc = node_number(burst, 1, 1e9, &o->burst, what, "burst", err))) return rc;
    if (rps && !burst) o->burst = 1; /* a rate alone: evenly paced */
  }
  if (has_spec(specs, "max_in_flight") && bf_node_get(params, "max_in_flight")) {
    long long v = bf_params_int(params, specs, "max_in_flight");
    if (v < 1 || v > 256) {
      const struct bf_node *n = bf_node_get(params, "max_in_flight");
      return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: max_in_flight must be from 1 to 256",
                          n->loc.file, n->loc.line, n->loc.col, what);
    }
    o->max_in_flight = (unsigned)v;
  }
  if (has_spec(specs, "timeout")) o->timeout_ms = bf_params_duration_ms(params, specs, "timeout");
  if (o->connect_timeout_ms > o->timeout_ms) o->connect_timeout_ms = o->timeout_ms;
  if (has_spec(specs, "max_retries"))
    o->max_retries = (unsigned)bf_params_int(params, specs, "max_retries");
  if (has_spec(specs, "retry_base"))
    o->retry_base_ms = bf_params_duration_ms(params, specs, "retry_base");
  if (has_spec(specs, "retry_max_wait"))
    o->retry_max_wait_ms = bf_params_duration_ms(params, specs, "retry_max_wait");
  if (has_spec(specs, "insecure")) o->insecure = bf_params_bool(params, specs, "insecure");
  return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

struct bf_http *bf_http_new(const struct bf_http_options *o, struct bf_error *err) {
  pthread_once(&curl_once, curl_global);
  struct bf_http *t = bf_xcalloc(1, sizeof *t);
  t->o = *o;
  t->name = bf_xstrdup(o->name ? o->name : "http");
  t->o.name = t->name;
  const char *base = o->base_url ? o->base_url : "";
  size_t bl = strlen(base);
  while (bl > 0 && base[bl - 1] == '/') bl--;
  t->base_url = bf_xstrndup(base, bl);
  t->o.base_url = t->base_url;
  t->base_url_shown = bf_http_redact_url(t->base_url);
  if (t->o.max_in_flight < 1) t->o.max_in_flight = 1;
  if (t->o.burst < 1) t->o.burst = 1;
  if (!t->o.max_response_bytes) t->o.max_response_bytes = 64u << 20;
  /* userinfo in base_url is a credential too */
  const char *se = strstr(t->base_url, "://");
  if (se) {
    const char *host = se + 3;
    const char *pe = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(pe - host));
    if (at) {
      char *ui = bf_xstrndup(host, (size_t)(at - host));
      bf_http_add_secret(t, ui);
      char *colon = strchr(ui, ':');
      if (colon) bf_http_add_secret(t, colon + 1);
      free(ui);
    }
  }
  /* Headroom under the configured limit, so that network jitter between our
   * clock and the server's never tips a request over it: 1% of the rate and
   * one request of the burst. */
  bf_token_bucket_init(&t->bucket, t->o.requests_per_second * 0.99,
                       t->o.burst > 1 ? t->o.burst - 1 : 1, bf_http_now_ms());
  t->multi = curl_multi_init();
  if (!t->multi) {
    bf_error_set(err, BF_E_DESTINATION, "%s: cannot initialise libcurl", t->name);
    bf_http_free(t);
    return NULL;
  }
  curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)t->o.max_in_flight);
  curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)t->o.max_in_flight + 2);
  t->slots = bf_xcalloc(t->o.max_in_flight, sizeof *t->slots);
  for (unsigned i = 0; i < t->o.max_in_flight; i++) {
    t->slots[i].easy = curl_easy_init();
    if (!t->slots[i].easy) {
      bf_error_set(err, BF_E_DESTINATION, "%s: cannot initialise libcurl", t->name);
      bf_http_free(t);
      return NULL;
    }
  }
  if (t->o.insecure) bf_log_warn("%s: TLS verification is off (insecure: true)", t->name);
  return t;
}

void bf_http_free(struct bf_http *t) {
  if (!t) return;
  for (unsigned i = 0; t->slots && i < t->o.max_in_flight; i++) {
    struct slot *s = &t->slots[i];
    if (s->busy && t->multi) curl_multi_remove_handle(t->multi, s->easy);
    if (s->easy) curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    free(s->url);
  }
  free(t->slots);
  if (t->multi) curl_multi_cleanup(t->multi);
  curl_slist_free_all(t->default_headers);
  for (size_t i = 0; i < t->n_secrets; i++) {
    sodium_memzero(t->secrets[i], strlen(t->secrets[i]));
    free(t->secrets[i]);
  }
  free(t->name);
  free(t->base_url);
  free(t->base_url_shown);
  bf_buf_release(&t->attempt_lines);
  free(t);
}

void bf_http_stats_get(const struct bf_http *t, struct bf_http_stats *out) { *out = t->stats; }

void bf_http_stats_totals(struct bf_http_stats *out) {
  uint64_t *dst = (uint64_t *)out;
  uint64_t *src = (uint64_t *)&g_totals;
  for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
    dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* ---- responses ---------------------------------------------------------- */

static void response_clear_headers(struct bf_http_response *r) {
  for (size_t i = 0; i < r->n_headers; i++) {
    free(r->header_names[i]);
    free(r->header_values[i]);
  }
  r->n_headers = 0;
}

void bf_http_response_release(struct bf_http_response *r) {
  if (!r) return;
  bf_buf_release(&r->body);
  response_clear_headers(r);
}

void bf_http_responses_release(struct bf_http_response *r, size_t n) {
  for (size_t i = 0; r && i < n; i++) bf_http_response_release(&r[i]);
}

const char *bf_http_response_header(const struct bf_http_response *r, const char *name) {
  for (size_t i = 0; i < r->n_headers; i++)
    if (!strcasecmp(r->header_names[i], name)) return r->header_values[i];
  return NULL;
}

const char *bf_http_response_text(struct bf_http_response *r) { return bf_buf_cstr(&r->body); }

bool bf_http_default_retryable(const struct bf_http_response *r, void *arg) {
  (void)arg;
  if (r->too_large) return false;
  return r->status == 0 || r->status == 408 || r->status == 429 || r->status >= 500;
}

bool bf_http_retryable(const struct bf_http *t, const struct bf_http_response *r) {
  if (r->too_large) return t->o.retry_too_large;
  return t->o.retryable ? t->o.retryable(r, t->o.retryable_arg)
                        : bf_http_default_retryable(r, NULL);
}

/* ---- curl callbacks ----------------------------------------------------- */

struct xfer {
  struct bf_http *t;
  struct bf_http_response *resp;
};

/* The callbacks need the transport and the response; both live in the
 * perform call's frame, reached through the slot's private pointer. */
static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  struct xfer *x = arg;
  size_t len = size * n;
  if (x->resp->body.len + len > x->t->o.max_response_bytes) {
    x->resp->too_large = true;
    return 0; /* aborts the transfer */
  }
  bf_buf_append(&x->resp->body, p, len);
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  struct xfer *x = arg;
  struct bf_http_response *r = x->resp;
  size_t len = size * n;
  if (len >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new answer (after 100 Continue, redirects) */
    response_clear_headers(r);
    return len;
  }
  const char *colon = memchr(p, ':', len);
  if (!colon || r->n_headers >= BF_HTTP_MAX_KEPT_HEADERS) return len;
  size_t nl = (size_t)(colon - p);
  if (nl == 10 && !strncasecmp(p, "set-cookie", 10)) return len;
  const char *v = colon + 1;
  const char *end = p + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
  char *name = bf_xstrndup(p, nl);
  for (char *c = name; *c; c++) *c = (char)tolower((unsigned char)*c);
  r->header_names[r->n_headers] = name;
  r->header_values[r->n_headers] = bf_xstrndup(v, (size_t)(end - v));
  r->n_headers++;
  return len;
}

/* ---- perform ------------------------------------------------------------ */

struct req_state {
  unsigned attempt;     /* attempts made */
  double not_before_ms; /* backoff */
  bool in_flight, done;
  struct xfer x;
};

static char *build_url(const struct bf_http *t, const char *path) {
  if (!path) path = "";
  if (!strncmp(path, "http://", 7) || !strncmp(path, "https://", 8)) return bf_xstrdup(path);
  return bf_xasprintf("%s%s%s", t->base_url, path[0] == '/' || path[0] == '\0' ? "" : "/", path);
}

static void start_attempt(struct bf_http *t, struct slot *s, size_t idx,
                          const struct bf_http_request *req, struct req_state *st) {
  struct bf_http_response *r = st->x.resp;
  bf_buf_reset(&r->body);
  response_clear_headers(r);
  r->too_large = false;
  r->tls_failed = false;
  r->status = 0;
  CURL *e = s->easy;
  curl_easy_reset(e);
  curl_slist_free_all(s->headers);
  s->headers = NULL;
  for (struct curl_slist *h = t->default_headers; h; h = h->next)
    s->headers = curl_slist_append(s->headers, h->data);
  bool has_body = req->body != NULL;
  const char *method = req->method ? req->method : has_body ? "POST" : "GET";
  if (has_body || strcmp(method, "GET") != 0) {
    char ct[160];
    snprintf(ct, sizeof ct, "Content-Type: %s",
             req->content_type ? req->content_type : "application/json");
    if (has_body) s->headers = curl_slist_append(s->headers, ct);
  }
  s->headers = curl_slist_append(s->headers, "Expect:");
  for (const char *const *h = req->headers; h && *h; h++)
    s->headers = curl_slist_append(s->headers, *h);
  if (req->attempt_headers) {
    struct bf_buf *lines = &t->attempt_lines;
    bf_buf_reset(lines);
    req->attempt_headers(req, st->attempt + 1, lines);
    char *line = (char *)bf_buf_cstr(lines);
    while (*line) {
      char *nl = strchr(line, '\n');
      if (nl) *nl = '\0';
      if (*line) s->headers = curl_slist_append(s->headers, line); /* copied */
      if (!nl) break;
      line = nl + 1;
    }
  }
  free(s->url);
  s->url = build_url(t, req->path);
  curl_easy_setopt(e, CURLOPT_URL, s->url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
  if (!strcmp(method, "GET")) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (!strcmp(method, "HEAD")) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    if (has_body || !strcmp(method, "POST")) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(has_body ? req->body_len : 0));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, has_body ? req->body : "");
    }
    if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->o.timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)t->o.connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &st->x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &st->x);
  curl_easy_setopt(e, CURLOPT_PRIVATE, s);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "backflow/0.1");
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (t->o.insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  s->req = idx;
  s->busy = true;
  st->in_flight = true;
  st->attempt++;
  STAT_ADD(t, requests, 1);
  if (st->attempt > 1) STAT_ADD(t, retries, 1);
  if (has_body) STAT_ADD(t, bytes_sent, req->body_len);
  curl_multi_add_handle(t->multi, e);
}

static double header_number(const struct bf_http_response *r, const char *name, bool *found) {
  const char *v = bf_http_response_header(r, name);
  *found = false;
  if (!v) return 0;
  char *end;
  double d = strtod(v, &end);
  if (end == v) return 0;
  *found = true;
  return d;
}

/* A server's "slow down" for everyone: Retry-After on a throttling answer,
 * or a vendor's remaining-calls header at 0 with its reset/interval. */
static void server_pacing(struct bf_http *t, struct bf_http_response *r, double now) {
  double pause_ms = 0;
  if (r->retry_after_ms >= 0 && (r->status == 429 || r->status == 503))
    pause_ms = (double)r->retry_after_ms;
  bool f_rem, f_a, f_b;
  double rem = header_number(r, "x-hubspot-ratelimit-remaining", &f_rem);
  if (f_rem && rem <= 0) {
    /* Rolling window: the next slot frees about interval/max from now. */
    double interval = header_number(r, "x-hubspot-ratelimit-interval-milliseconds", &f_a);
    double max = header_number(r, "x-hubspot-ratelimit-max", &f_b);
    double ms = f_a ? (f_b && max > 0 ? interval / max : interval) : 1000;
    if (ms > pause_ms) pause_ms = ms;
  }
  static const char *const generic[][2] = {
      {"x-ratelimit-remaining", "x-ratelimit-reset"},
      {"ratelimit-remaining", "ratelimit-reset"},
      {"x-rate-limit-remaining", "ratelimit-reset"},
  };
  for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++) {
    rem = header_number(r, generic[i][0], &f_rem);
    if (!f_rem || rem > 0) continue;
    double reset = header_number(r, generic[i][1], &f_a);
    double ms = 1000;
    if (f_a) {
      /* epoch seconds (Braze, Intercom) or seconds from now (Klaviyo, Zendesk) */
      ms = reset > 1e9 ? (reset - (double)time(NULL)) * 1000.0 : reset * 1000.0;
      if (ms < 0) ms = 0;
    }
    if (ms > pause_ms) pause_ms = ms;
  }
  if (pause_ms > (double)t->o.retry_max_wait_ms) pause_ms = (double)t->o.retry_max_wait_ms;
  if (pause_ms > 0) {
    /* Only a gate: the bucket keeps its own pace, so a pause that ends
     * before the next token is due costs nothing. */
    if (now + pause_ms > t->paused_until_ms) t->paused_until_ms = now + pause_ms;
    STAT_ADD(t, server_throttles, 1);
    bf_log_debug("%s: server asked to pause %.0f ms", t->name, pause_ms);
  }
}

static void finish_attempt(struct bf_http *t, struct slot *s, CURLcode cc,
                           const struct bf_http_request *req, struct req_state *st, double now) {
  struct bf_http_response *r = st->x.resp;
  long status = 0;
  if (cc == CURLE_OK) curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  r->status = cc == CURLE_OK ? status : 0;
  r->attempts = st->attempt;
  r->content_type[0] = '\0';
  char *ct = NULL;
  if (cc == CURLE_OK && curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
    snprintf(r->content_type, sizeof r->content_type, "%s", ct);
  const char *ra = bf_http_response_header(r, "retry-after");
  r->retry_after_ms = ra ? bf_http_parse_retry_after(ra, time(NULL)) : -1;
  STAT_ADD(t, bytes_received, r->body.len);
  if (cc != CURLE_OK)
    STAT_ADD(t, transport_errors, 1);
  else if (status == 429)
    STAT_ADD(t, status_429, 1);
  else if (status >= 500)
    STAT_ADD(t, status_5xx, 1);
  else if (status >= 400)
    STAT_ADD(t, status_4xx, 1);
  else if (status >= 300)
    STAT_ADD(t, status_3xx, 1);
  else if (status >= 200)
    STAT_ADD(t, status_2xx, 1);

  if (r->too_large) {
    r->status = status ? status : r->status;
    snprintf(r->error, sizeof r->error, "response larger than %zu bytes", t->o.max_response_bytes);
  } else if (cc != CURLE_OK) {
    snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(cc));
    r->tls_failed = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CERTPROBLEM ||
                    cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_SSL_CIPHER ||
                    cc == CURLE_SSL_ISSUER_ERROR || cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
  } else if (status < 200 || status >= 300) {
    snprintf(r->error, sizeof r->error, "HTTP %ld", status);
  } else {
    r->error[0] = '\0';
  }
  if (cc == CURLE_OK) server_pacing(t, r, now);

  curl_multi_remove_handle(t->multi, s->easy);
  s->busy = false;
  st->in_flight = false;

  bool again = (!r->too_large || t->o.retry_too_large) && !r->tls_failed && !req->no_retry &&
               st->attempt <= t->o.max_retries && bf_http_retryable(t, r);
  if (again) {
    long long wait = bf_http_backoff_ms(t->o.retry_base_ms, t->o.retry_max_wait_ms, st->attempt - 1,
                                        r->retry_after_ms);
    st->not_before_ms = now + (double)wait;
    char shown[300];
    snprintf(shown, sizeof shown, "%s", r->error);
    bf_http_scrub(t, shown);
    bf_log_info("%s: %s %s: %s; retry %u/%u in %lld ms", t->name,
                req->method ? req->method
                : req->body ? "POST"
                            : "GET",
                t->base_url_shown, shown, st->attempt, t->o.max_retries, wait);
  } else {
    st->done = true;
    if (r->error[0] && st->attempt > 1) {
      size_t l = strlen(r->error);
      snprintf(r->error + l, sizeof r->error - l, " after %u attempts", st->attempt);
    }
  }
  bf_http_scrub(t, r->error);
}

int bf_http_perform(struct bf_http *t, const struct bf_http_request *reqs,
                    struct bf_http_response *resps, size_t n, bf_http_done_fn on_done, void *arg,
                    struct bf_error *err) {
  struct req_state *st = bf_xcalloc(n ? n : 1, sizeof *st);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    memset(&resps[i], 0, sizeof resps[i]);
    resps[i].retry_after_ms = -1;
    st[i].x = (struct xfer){t, &resps[i]};
  }
  size_t n_done = 0, next_fresh = 0;
  size_t n_waiting_retry = 0; /* requests that failed an attempt and wait for backoff */
  double blocked_since = -1;  /* the bucket is holding a ready request back since */
  unsigned in_flight = 0;
  while (n_done < n) {
    double now = bf_http_now_ms();
    double wake = now + 1000;
    if (bf_stop_requested && n_waiting_retry > 0) {
      /* Stopping: what waits for a retry is final as it is. */
      for (size_t i = 0; i < n; i++) {
        if (st[i].done || st[i].in_flight || st[i].attempt == 0) continue;
        st[i].done = true;
        n_done++;
        n_waiting_retry--;
        snprintf(resps[i].error + strlen(resps[i].error),
                 sizeof resps[i].error - strlen(resps[i].error), " (interrupted)");
        if (on_done) on_done(arg, i, &reqs[i], &resps[i]);
      }
      continue;
    }
    /* Start what may start. */
    while (in_flight < t->o.max_in_flight) {
      size_t pick = n;
      if (n_waiting_retry > 0) {
        for (size_t i = 0; i < n; i++)
          if (!st[i].done && !st[i].in_flight && st[i].attempt > 0) {
            if (st[i].not_before_ms <= now) {
              pick = i;
              break;
            }
            if (st[i].not_before_ms < wake) wake = st[i].not_before_ms;
          }
      }
      if (pick == n && next_fresh < n) pick = next_fresh;
      if (pick == n) break;
      if (t->paused_until_ms > now) {
        if (t->paused_until_ms < wake) wake = t->paused_until_ms;
        break;
      }
      double wait = bf_token_bucket_take(&t->bucket, now);
      if (wait > 0) {
        if (blocked_since < 0) {
          blocked_since = now;
          STAT_ADD(t, rate_limit_waits, 1);
        }
        if (now + wait < wake) wake = now + wait;
        break;
      }
      if (blocked_since >= 0) {
        STAT_ADD(t, rate_limit_wait_ms, (uint64_t)(now - blocked_since));
        blocked_since = -1;
      }
      struct slot *s = NULL;
      for (unsigned k = 0; k < t->o.max_in_flight; k++)
        if (!t->slots[k].busy) {
          s = &t->slots[k];
          break;
        }
      BF_ASSERT(s != NULL);
      if (pick == next_fresh)
        next_fresh++;
      else
        n_waiting_retry--;
      start_attempt(t, s, pick, &reqs[pick], &st[pick]);
      in_flight++;
    }
    int running = 0;
    CURLMcode mc = curl_multi_perform(t->multi, &running);
    if (mc != CURLM_OK) {
      rc = bf_error_set(err, BF_E_DESTINATION, "%s: libcurl: %s", t->name, curl_multi_strerror(mc));
      goto out;
    }
    CURLMsg *msg;
    int left;
    bool finished_any = false;
    while ((msg = curl_multi_info_read(t->multi, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE) continue;
      struct slot *s = NULL;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
      size_t idx = s->req;
      CURLcode cc = msg->data.result;
      finish_attempt(t, s, cc, &reqs[idx], &st[idx], bf_http_now_ms());
      in_flight--;
      finished_any = true;
      if (st[idx].done) {
        n_done++;
        if (on_done) on_done(arg, idx, &reqs[idx], &resps[idx]);
      } else {
        n_waiting_retry++;
      }
    }
    if (finished_any || n_done == n) continue; /* slots freed: start more at once */
    now = bf_http_now_ms();
    double timeout = wake - now;
    if (timeout < 0) timeout = 0;
    if (in_flight == 0) {
      bf_http_sleep_ms((long long)ceil(timeout));
      continue;
    }
    int numfds;
    mc = curl_multi_poll(t->multi, NULL, 0, (int)ceil(timeout), &numfds);
    if (mc != CURLM_OK) {
      rc = bf_error_set(err, BF_E_DESTINATION, "%s: libcurl: %s", t->name, curl_multi_strerror(mc));
      goto out;
    }
  }
out:
  if (rc) {
    for (unsigned k = 0; k < t->o.max_in_flight; k++)
      if (t->slots[k].busy) {
        curl_multi_remove_handle(t->multi, t->slots[k].easy);
        t->slots[k].busy = false;
      }
  }
  free(st);
  return rc;
}

int bf_http_perform_one(struct bf_http *t, const struct bf_http_request *req,
                        struct bf_http_response *resp, struct bf_error *err) {
  return bf_http_perform(t, req, resp, 1, NULL, NULL, err);
}

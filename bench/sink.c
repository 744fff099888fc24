/* Minimal webhook sink for the push benchmark (libmicrohttpd, one epoll thread).
 *
 *   sink [--port N] [--port-file F] [--mode results|empty]
 *
 * Listens on 127.0.0.1. Every POST is read whole and answered 200:
 *   --mode results (default): {"results":[{"status":"ok"},...]} with one entry per record, the
 *                             answer a real receiver gives, which Backflow parses per record;
 *   --mode empty:             an empty body (no Content-Type): the whole batch is accepted.
 * Records are counted as the occurrences of `{"op":` in the body: every Backflow record object
 * starts with it, and inside a JSON string the quote would be escaped (a mapped field named
 * "op" placed first would be miscounted; the benchmark maps none).
 * It does NOT verify signatures or parse JSON: it measures what Backflow can push, not what a
 * receiver can check. GET /_counters answers {"requests":..,"records":..,"bytes":..}.
 * SIGINT/SIGTERM: prints the counters as JSON on stdout and exits. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#define MAX_BODY (64u << 20)

struct body {
  char *data;
  size_t len, cap;
  bool too_big;
};

static atomic_llong n_requests, n_records, n_bytes;
static bool reply_results = true;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *text, size_t len,
                             const char *ctype) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (!resp) return MHD_NO;
  if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  enum MHD_Result r = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return r;
}

static size_t count_records(const char *data, size_t len) {
  static const char needle[] = "{\"op\":";
  size_t n = 0;
  const char *p = data, *end = data + len;
  while (p < end) {
    const char *hit = memmem(p, (size_t)(end - p), needle, sizeof needle - 1);
    if (!hit) break;
    n++;
    p = hit + sizeof needle - 1;
  }
  return n;
}

static char *counters_json(size_t *len) {
  char *out = malloc(160);
  if (!out) return NULL;
  int n = snprintf(out, 160, "{\"requests\":%lld,\"records\":%lld,\"bytes\":%lld}",
                   atomic_load(&n_requests), atomic_load(&n_records), atomic_load(&n_bytes));
  *len = (size_t)n;
  return out;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **ctx) {
  (void)cls;
  (void)version;
  if (strcmp(method, "POST") != 0) {
    size_t len = 0;
    char *text = strcmp(url, "/_counters") == 0 ? counters_json(&len) : NULL;
    if (text) return reply(conn, 200, text, len, "application/json");
    return reply(conn, 405, NULL, 0, NULL);
  }
  struct body *b = *ctx;
  if (!b) { /* first call: headers only */
    b = calloc(1, sizeof *b);
    if (!b) return MHD_NO;
    *ctx = b;
    return MHD_YES;
  }
  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (b->too_big || b->len + n > MAX_BODY) {
      b->too_big = true;
      return MHD_YES;
    }
    if (b->len + n > b->cap) {
      size_t cap = b->cap ? b->cap : 256 * 1024;
      while (cap < b->len + n) cap *= 2;
      char *data = realloc(b->data, cap);
      if (!data) return MHD_NO;
      b->data = data;
      b->cap = cap;
    }
    memcpy(b->data + b->len, upload, n);
    b->len += n;
    return MHD_YES;
  }
  /* Body complete. */
  if (b->too_big) return reply(conn, 413, NULL, 0, NULL);
  size_t records = count_records(b->data, b->len);
  atomic_fetch_add(&n_requests, 1);
  atomic_fetch_add(&n_records, (long long)records);
  atomic_fetch_add(&n_bytes, (long long)b->len);
  if (!reply_results) return reply(conn, 200, NULL, 0, NULL);
  static const char head[] = "{\"results\":[", item[] = "{\"status\":\"ok\"}", tail[] = "]}";
  size_t cap = sizeof head + records * sizeof item + sizeof tail;
  char *text = malloc(cap), *p = text;
  if (!text) return MHD_NO;
  memcpy(p, head, sizeof head - 1);
  p += sizeof head - 1;
  for (size_t i = 0; i < records; i++) {
    if (i) *p++ = ',';
    memcpy(p, item, sizeof item - 1);
    p += sizeof item - 1;
  }
  memcpy(p, tail, sizeof tail - 1);
  p += sizeof tail - 1;
  return reply(conn, 200, text, (size_t)(p - text), "application/json");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  struct body *b = *ctx;
  if (b) {
    free(b->data);
    free(b);
    *ctx = NULL;
  }
}

int main(int argc, char **argv) {
  unsigned port = 0;
  const char *port_file = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      port = (unsigned)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--port-file") && i + 1 < argc) {
      port_file = argv[++i];
    } else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
      const char *m = argv[++i];
      if (strcmp(m, "results") && strcmp(m, "empty")) goto usage;
      reply_results = strcmp(m, "results") == 0;
    } else {
      goto usage;
    }
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL); /* the daemon's thread inherits the mask */
  signal(SIGPIPE, SIG_IGN);

  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(1u << 20),
      MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
      MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "sink: cannot listen on 127.0.0.1:%u\n", port);
    return 1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  unsigned bound = info ? info->port : port;
  if (port_file) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", bound) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0) {
      fprintf(stderr, "sink: cannot write %s\n", port_file);
      MHD_stop_daemon(d);
      return 1;
    }
  }
  fprintf(stderr, "sink: listening on 127.0.0.1:%u (mode %s)\n", bound,
          reply_results ? "results" : "empty");
  int sig = 0;
  sigwait(&stop, &sig);
  MHD_stop_daemon(d);
  size_t len = 0;
  char *text = counters_json(&len);
  if (text) printf("%s\n", text);
  free(text);
  return 0;

usage:
  fprintf(stderr, "usage: sink [--port N] [--port-file F] [--mode results|empty]\n");
  return 2;
}

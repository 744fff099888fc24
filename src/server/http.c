/* The HTTP server of `backflow serve` (libmicrohttpd, one thread per
 * connection): one routes table, bearer-token auth, body size limits and
 * JSON errors. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "engine/edit_log.h"
#include "util/log.h"
#include "server/server.h"
#include "server/studio.h"

enum auth {
  AUTH_NONE,   /* public: /healthz and the dashboard page (which holds no data) */
  AUTH_TOKEN,  /* Authorization: Bearer <a token of any role> */
  AUTH_EDITOR, /* a write route: an editor or admin token */
  AUTH_ADMIN,  /* an admin token */
  AUTH_HMAC,   /* the handler verifies the destination's signature */
};

struct route {
  const char *method;
  const char *pattern; /* "{x}" matches one non-empty path segment */
  enum auth auth;
  void (*handler)(struct bf_http_req *req, struct bf_http_resp *resp);
  const char *help;
};

/* docs/server.md lists the same routes. */
static const struct route routes[] = {
    {"GET", "/healthz", AUTH_NONE, bf_api_healthz, "liveness; no token needed"},
    {"GET", "/", AUTH_NONE, bf_api_dashboard, "dashboard page; its data needs the token"},
    {"GET", "/api/syncs", AUTH_TOKEN, bf_api_syncs, "every sync with its last run and next run"},
    {"GET", "/api/syncs/{name}", AUTH_TOKEN, bf_api_sync, "one sync"},
    {"GET", "/api/syncs/{name}/runs", AUTH_TOKEN, bf_api_sync_runs, "run history (?limit=N)"},
    {"POST", "/api/syncs/{name}/trigger", AUTH_EDITOR, bf_api_sync_trigger,
     "run now (or once more); 409 when paused"},
    {"POST", "/api/syncs/{name}/pause", AUTH_EDITOR, bf_api_sync_pause,
     "pause scheduled runs; 409 for a live sync"},
    {"POST", "/api/syncs/{name}/resume", AUTH_EDITOR, bf_api_sync_resume, "resume a paused sync"},
    {"GET", "/api/runs/{id}/errors", AUTH_TOKEN, bf_api_run_errors, "row-level errors of a run"},
    {"GET", "/metrics", AUTH_TOKEN, bf_api_metrics, "Prometheus text format"},
    {"POST", "/api/erasures", AUTH_ADMIN, bf_api_erasure_create,
     "erase a person: {\"email\"|\"phone\"|\"key\": ...} -> 202 {\"id\": N}; admin"},
    {"GET", "/api/erasures/{id}", AUTH_TOKEN, bf_api_erasure, "an erasure request, per sync"},
    {"GET", "/api/pii", AUTH_TOKEN, bf_api_pii, "the PII footprint, as `backflow pii --json`"},
    {"POST", "/api/reload", AUTH_EDITOR, bf_api_reload,
     "restart with the project on disk once idle (as SIGHUP); 422 when it does not load"},
    {"POST", "/hooks/{destination}", AUTH_HMAC, bf_hooks_receive, "destination events, signed"},
    {"GET", "/api/edits", AUTH_ADMIN, bf_studio_edits, "the edit log (?limit=N); admin"},
    {"GET", "/studio", AUTH_NONE, bf_studio_page, "the studio page; its data needs a token"},
    {"GET", "/api/studio/catalog", AUTH_TOKEN, bf_studio_catalog, "models, destinations, syncs"},
    {"POST", "/api/studio/segments/preview", AUTH_TOKEN, bf_studio_preview,
     "segment SQL, row count and a sample"},
    {"GET", "/api/studio/models/{name}", AUTH_TOKEN, bf_studio_model_get, "models/NAME.yml"},
    {"PUT", "/api/studio/models/{name}", AUTH_EDITOR, bf_studio_model_put,
     "save a segment as models/NAME.yml"},
    {"GET", "/api/studio/models/{name}/columns", AUTH_TOKEN, bf_studio_model_columns,
     "a model's columns, types and pii kinds"},
    {"GET", "/api/studio/destinations/{name}/fields", AUTH_TOKEN, bf_studio_destination_fields,
     "fields the destination lists (?object=X)"},
    {"GET", "/api/studio/syncs/{name}", AUTH_TOKEN, bf_studio_sync_get, "syncs/NAME.yml"},
    {"POST", "/api/studio/syncs/{name}/preview", AUTH_TOKEN, bf_studio_sync_preview,
     "a sync's YAML and plan, nothing saved"},
    {"PUT", "/api/studio/syncs/{name}", AUTH_EDITOR, bf_studio_sync_put,
     "save a sync as syncs/NAME.yml"},
    {"POST", "/api/studio/syncs/{name}/run", AUTH_EDITOR, bf_studio_sync_run,
     "run a sync as saved on disk"},
    {"GET", "/api/studio/syncs/{name}/runs", AUTH_TOKEN, bf_studio_sync_runs,
     "runs of any sync in the run log"},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

struct conn_ctx {
  struct bf_buf body;
  bool too_big;
};

const char *bf_http_header(const struct bf_http_req *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *bf_http_query(const struct bf_http_req *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

void bf_http_json(struct bf_http_resp *resp, int status) {
  resp->status = status;
  resp->content_type = "application/json";
  bf_buf_reset(&resp->body);
}

void bf_http_error(struct bf_http_resp *resp, int status, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  bf_http_json(resp, status);
  bf_buf_puts(&resp->body, "{\"error\":");
  bf_json_cstr(&resp->body, msg);
  bf_buf_puts(&resp->body, "}\n");
}

/* Matches path against pattern; fills params (malloc'd) on success. */
static bool match_route(const char *pattern, const char *path, char *params[2]) {
  const char *p = pattern, *s = path;
  int n = 0;
  char *got[2] = {NULL, NULL};
  while (*p && *s) {
    if (*p == '{') {
      const char *close = strchr(p, '}');
      size_t len = strcspn(s, "/");
      if (!close || len == 0 || n == 2) goto no;
      got[n++] = bf_xstrndup(s, len);
      p = close + 1;
      s += len;
    } else if (*p == *s) {
      p++;
      s++;
    } else {
      goto no;
    }
  }
  if (*p || *s) goto no;
  params[0] = got[0];
  params[1] = got[1];
  return true;
no:
  free(got[0]);
  free(got[1]);
  return false;
}

static enum MHD_Result send_resp(struct MHD_Connection *c, struct bf_http_resp *r) {
  struct MHD_Response *mr =
      MHD_create_response_from_buffer(r->body.len, r->body.data, MHD_RESPMEM_MUST_COPY);
  if (!mr) return MHD_NO;
  MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                          r->content_type ? r->content_type : "application/json");
  MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
  if (r->status == MHD_HTTP_UNAUTHORIZED)
    MHD_add_response_header(mr, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"backflow\"");
  if (r->allow[0]) MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, r->allow);
  if (r->etag[0]) MHD_add_response_header(mr, MHD_HTTP_HEADER_ETAG, r->etag);
  if (r->html) {
    MHD_add_response_header(
        mr, "Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; frame-ancestors 'none'");
    MHD_add_response_header(mr, "X-Frame-Options", "DENY");
    MHD_add_response_header(mr, "Referrer-Policy", "no-referrer");
  }
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, mr);
  MHD_destroy_response(mr);
  return ret;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, int status, const char *msg) {
  struct bf_http_resp r = {0};
  bf_http_error(&r, status, "%s", msg);
  enum MHD_Result ret = send_resp(c, &r);
  bf_buf_release(&r.body);
  return ret;
}

static void dispatch(struct bf_server *srv, struct MHD_Connection *c, const char *url,
                     const char *method, struct conn_ctx *ctx, struct bf_http_resp *resp) {
  const char *m = strcmp(method, "HEAD") ? method : "GET"; /* MHD drops the body of HEAD replies */
  const struct route *found = NULL;
  char *params[2] = {NULL, NULL};
  char allow[64] = "";
  bool path_known = false;
  for (size_t i = 0; i < N_ROUTES && !found; i++) {
    char *got[2] = {NULL, NULL};
    if (!match_route(routes[i].pattern, url, got)) continue;
    path_known = true;
    if (!strcmp(routes[i].method, m)) {
      found = &routes[i];
      params[0] = got[0];
      params[1] = got[1];
    } else {
      if (*allow) strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
      strncat(allow, routes[i].method, sizeof allow - strlen(allow) - 1);
      free(got[0]);
      free(got[1]);
    }
  }
  /* Without the token, nothing but the public routes says whether a path exists. */
  bool public_route = found && (found->auth == AUTH_NONE || found->auth == AUTH_HMAC);
  const char *who = NULL;
  const char *authz =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  enum bf_role role = public_route ? BF_ROLE_NONE : bf_roles_check(srv->roles, authz, &who);
  if (!public_route && role == BF_ROLE_NONE) {
    bf_http_error(resp, 401, "missing or wrong token: send 'Authorization: Bearer <server.token>'");
    goto out;
  }
  enum bf_role needed = !found                       ? BF_ROLE_VIEWER
                        : found->auth == AUTH_EDITOR ? BF_ROLE_EDITOR
                        : found->auth == AUTH_ADMIN  ? BF_ROLE_ADMIN
                                                     : BF_ROLE_NONE;
  if (role < needed) {
    bf_http_error(resp, 403, "token '%s' has role %s; %s %s needs %s", who, bf_role_name(role),
                  method, url, bf_role_name(needed));
    goto out;
  }
  if (!found) {
    if (path_known) {
      bf_http_error(resp, 405, "method %s not allowed on %s; use %s", method, url, allow);
      snprintf(resp->allow, sizeof resp->allow, "%s", allow);
    } else {
      bf_http_error(resp, 404, "no route %s %s", method, url);
    }
    goto out;
  }
  if (ctx->too_big) {
    bf_http_error(resp, 413, "request body larger than %d bytes", BF_HTTP_MAX_BODY);
    goto out;
  }
  struct bf_http_req req = {.srv = srv,
                            .method = m,
                            .path = url,
                            .conn = c,
                            .body = bf_buf_cstr(&ctx->body),
                            .body_len = ctx->body.len,
                            .role = role,
                            .who = who};
  req.params[0] = params[0];
  req.params[1] = params[1];
  resp->status = 500;
  found->handler(&req, resp);
  /* Every successful write is in the edit log (who, what, when). */
  if (needed >= BF_ROLE_EDITOR && resp->status >= 200 && resp->status < 300) {
    struct bf_error err = {0};
    if (bf_edit_log_append(srv->p->state_dir, who, found->pattern, url, resp->edit_detail, &err))
      bf_log_error("http: %s", err.msg);
  }
out:
  free(params[0]);
  free(params[1]);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  (void)version;
  struct bf_server *srv = cls;
  struct conn_ctx *ctx = *con_cls;
  if (!ctx) {
    ctx = bf_xcalloc(1, sizeof *ctx);
    *con_cls = ctx;
    __atomic_add_fetch(&srv->active_requests, 1, __ATOMIC_ACQ_REL);
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > BF_HTTP_MAX_BODY) {
      /* Refuse before reading it; MHD closes the connection afterwards. */
      char msg[96];
      snprintf(msg, sizeof msg, "request body larger than %d bytes", BF_HTTP_MAX_BODY);
      return respond_error(c, 413, msg);
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (!ctx->too_big && ctx->body.len + *upload_data_size <= BF_HTTP_MAX_BODY)
      bf_buf_append(&ctx->body, upload_data, *upload_data_size);
    else
      ctx->too_big = true; /* chunked upload over the limit: read and drop */
    *upload_data_size = 0;
    return MHD_YES;
  }
  struct bf_http_resp resp = {.status = 500};
  dispatch(srv, c, url, method, ctx, &resp);
  if (!resp.content_type && resp.body.len == 0)
    bf_http_error(&resp, 500, "internal error: empty response");
  enum MHD_Result ret = send_resp(c, &resp);
  bf_buf_release(&resp.body);
  free(resp.edit_detail);
  return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)c;
  (void)toe;
  struct bf_server *srv = cls;
  struct conn_ctx *ctx = *con_cls;
  if (!ctx) return;
  __atomic_sub_fetch(&srv->active_requests, 1, __ATOMIC_ACQ_REL);
  bf_buf_release(&ctx->body);
  free(ctx);
  *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
  bf_log_debug("http: %s", line);
}

int bf_http_start(struct bf_server *srv, const char *listen, struct bf_error *err) {
  char host[256];
  const char *colon = strrchr(listen, ':');
  if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host)
    return bf_error_set(err, BF_E_USAGE, "listen address '%s': expected HOST:PORT", listen);
  const char *h = listen, *port = colon + 1;
  size_t hlen = (size_t)(colon - listen);
  if (h[0] == '[' && h[hlen - 1] == ']') {
    h++;
    hlen -= 2;
  }
  memcpy(host, h, hlen);
  host[hlen] = 0;
  char *end;
  long pn = strtol(port, &end, 10);
  if (!*port || *end || pn < 0 || pn > 65535)
    return bf_error_set(err, BF_E_USAGE, "listen address '%s': port must be 0-65535", listen);
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  int gai = getaddrinfo(host, port, &hints, &ai);
  if (gai)
    return bf_error_set(err, BF_E_USAGE, "listen address '%s': %s", listen, gai_strerror(gai));
  /* ITC: lets a reload quiesce the daemon and keep its socket. */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                   MHD_USE_ERROR_LOG | MHD_USE_ITC;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  int inherited = bf_reload_inherited_fd(); /* a reloaded server keeps its socket */
  if (inherited >= 0)
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)inherited,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)65536, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
  else
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)65536, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
  int family = ai->ai_family;
  freeaddrinfo(ai);
  if (!srv->daemon)
    return bf_error_set(err, BF_E_IO,
                        "cannot listen on %s (address in use, or not an address of this machine)",
                        listen);
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
  unsigned bound = info ? info->port : (unsigned)pn;
  srv->url = family == AF_INET6 ? bf_xasprintf("http://[%s]:%u", host, bound)
                                : bf_xasprintf("http://%s:%u", host, bound);
  return 0;
}

int bf_http_quiesce(struct bf_server *srv) {
  return srv->daemon ? (int)MHD_quiesce_daemon(srv->daemon) : -1;
}

void bf_http_stop(struct bf_server *srv) {
  if (srv->daemon) MHD_stop_daemon(srv->daemon);
  srv->daemon = NULL;
  free(srv->url);
  srv->url = NULL;
}

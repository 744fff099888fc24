/* The feedback loop: POST /hooks/{destination} takes the destination's
 * events (opened, clicked, bounced, unsubscribed...), checks their signature
 * (Standard Webhooks, or the vendor's own scheme: hook_sig.c) and stores them
 * in backflow_events in the warehouse by a group commit (hook_store.c)
 * before answering, so the model can use them; live syncs of the
 * destination look the people they name up again at once. The person is stored only as a keyed hash
 * (the project's PRF: the same hash `backflow errors` shows for a primary key), and the payload is
 * stored without the fields that name the person. */
#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "server/hook_events.h"
#include "server/server.h"

static void unauthorized(struct bf_http_req *req, struct bf_http_resp *resp, const char *dest,
                         const char *why) {
  /* The client learns only that it is not authorized; the log says why.
   * Only configured names are logged or used as labels: the path is the
   * sender's text. */
  const char *known = bf_config_destination(req->srv->p->cfg, dest) ? dest : "(unknown)";
  bf_log_warn("hooks: refused a request for destination '%s': %s", known, why);
  bf_metrics_hook(req->srv->metrics, known, "bad_signature", 0);
  bf_http_error(resp, 401, "missing or invalid webhook signature");
}

static const char *req_header(const void *ctx, const char *name) {
  return bf_http_header(ctx, name);
}
static const char *req_query(const void *ctx, const char *name) { return bf_http_query(ctx, name); }

/* How destination's deliveries are authenticated: the top-level
 * `hooks: {DEST: {scheme, secret, url, header}}`, else Standard Webhooks
 * with the destination's signing_secret. */
static bool auth_of(const struct bf_config *cfg, const struct bf_destination_config *dc,
                    struct bf_hook_auth *a, char *why, size_t cap) {
  memset(a, 0, sizeof *a);
  const struct bf_node *h = bf_node_get(bf_node_get(cfg->root, "hooks"), dc->name);
  if (!h) {
    a->scheme = BF_HOOK_STANDARD;
    a->secret = bf_node_get_str(dc->params, "signing_secret");
    return true;
  }
  const char *scheme = bf_node_get_str(h, "scheme");
  int sc = bf_hook_scheme_find(scheme ? scheme : "standard");
  if (sc < 0) {
    snprintf(why, cap, "hooks.%s.scheme '%s' is not one of standard, hubspot, klaviyo, token",
             dc->name, scheme);
    return false;
  }
  a->scheme = (enum bf_hook_scheme)sc;
  a->secret = bf_node_get_str(h, "secret");
  if (!a->secret) a->secret = bf_node_get_str(dc->params, "signing_secret");
  a->url = bf_node_get_str(h, "url");
  a->header = bf_node_get_str(h, "header");
  return true;
}

int bf_hooks_check(const struct bf_config *cfg, struct bf_error *err) {
  const struct bf_node *hooks = bf_node_get(cfg->root, "hooks");
  if (!hooks) return 0;
  if (hooks->kind != BF_NODE_MAP)
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: hooks must map destination names to {scheme, secret, ...}",
                        hooks->loc.file, hooks->loc.line, hooks->loc.col);
  static const char *const keys[] = {"scheme", "secret", "url", "header", NULL};
  for (size_t i = 0; i < hooks->n; i++) {
    const char *name = hooks->keys[i];
    const struct bf_node *h = hooks->items[i];
    const struct bf_loc *loc = &hooks->key_locs[i];
    if (!bf_config_destination(cfg, name))
      return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: hooks: no destination named '%s'", loc->file,
                          loc->line, loc->col, name);
    char *what = bf_xasprintf("hooks.%s", name);
    int rc = h->kind == BF_NODE_MAP ? bf_node_check_keys(h, what, keys, err)
                                    : bf_error_set(err, BF_E_CONFIG,
                                                   "%s:%d:%d: %s must be a mapping like {scheme: "
                                                   "hubspot, secret: ...}",
                                                   loc->file, loc->line, loc->col, what);
    free(what);
    if (rc) return rc;
    const char *scheme = bf_node_get_str(h, "scheme");
    if (scheme && bf_hook_scheme_find(scheme) < 0)
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: hooks.%s.scheme '%s': one of standard, hubspot, klaviyo, "
                          "token",
                          loc->file, loc->line, loc->col, name, scheme);
    if (scheme && !strcmp(scheme, "hubspot") && !bf_node_get_str(h, "url"))
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: hooks.%s: HubSpot signs the URL it posts to; set url to the "
                          "public address of /hooks/%s",
                          loc->file, loc->line, loc->col, name, name);
  }
  return 0;
}

void bf_hooks_receive(struct bf_http_req *req, struct bf_http_resp *resp) {
  const char *dest = req->params[0];
  struct bf_project *p = req->srv->p;
  const struct bf_destination_config *dc = bf_config_destination(p->cfg, dest);
  if (!dc) {
    unauthorized(req, resp, dest, "no such destination");
    return;
  }
  struct bf_hook_auth auth;
  char why[512] = "", id[257] = "";
  if (!auth_of(p->cfg, dc, &auth, why, sizeof why)) {
    unauthorized(req, resp, dest, why);
    return;
  }
  struct bf_hook_request hr = {req->method, auth.url,  req->body, req->body_len,
                               req_header,  req_query, req};
  if (!bf_hook_verify(&auth, &hr, bf_now_ms(), id, why, sizeof why)) {
    unauthorized(req, resp, dest, why);
    return;
  }

  /* Authenticated from here on. */
  struct bf_hook_event *evs = NULL;
  size_t k = 0;
  int status = bf_hook_parse(&p->prf, bf_http_header(req, "Content-Type"), req->body, req->body_len,
                             &evs, &k, why, sizeof why);
  if (status) {
    bf_metrics_hook(req->srv->metrics, dest, "bad_request", 0);
    bf_http_error(resp, status, "%s", why);
    return;
  }
  long long stored = 0;
  status = bf_hook_store_put(req->srv->hooks, dest, id, evs, k, &stored, why, sizeof why);
  if (status == 501) {
    bf_metrics_hook(req->srv->metrics, dest, "error", 0);
    bf_http_error(resp, 501,
                  "events are stored in a sqlite or postgres warehouse; this project "
                  "has none");
  } else if (status) {
    bf_log_error("hooks: destination '%s': cannot store events: %s", dest, why);
    bf_metrics_hook(req->srv->metrics, dest, "error", 0);
    bf_http_error(resp, 503, "cannot store the events now; send them again later");
  } else {
    bf_metrics_hook(req->srv->metrics, dest, "stored", stored);
    bf_log_debug("hooks: destination '%s': %lld events stored (%zu received)", dest, stored, k);
    bf_http_json(resp, 200);
    bf_buf_printf(&resp->body, "{\"received\":%zu,\"stored\":%lld,\"duplicates\":%lld}\n", k,
                  stored, (long long)k - stored);
  }
  bf_hook_events_free(evs, k);
}

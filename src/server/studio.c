/* The self-serve studio's JSON API (issue 18): the edit log, the segment
 * builder (studio_segment.c) and the page (studio_page.c). Handlers only
 * parse and answer; SQL is built by src/engine/segment.c. */
#include <stdio.h>
#include <string.h>

#include "engine/edit_log.h"
#include "util/log.h"
#include "server/server.h"
#include "server/studio.h"

#define DEFAULT_EDITS_LIMIT 200
#define MAX_EDITS_LIMIT     10000

void bf_studio_edits(struct bf_http_req *req, struct bf_http_resp *resp) {
  const char *v = bf_http_query(req, "limit");
  long long limit = DEFAULT_EDITS_LIMIT;
  if (v && *v) {
    char *end;
    limit = strtoll(v, &end, 10);
    if (*end || limit < 1) {
      bf_http_error(resp, 400, "limit must be a positive integer, got '%.40s'", v);
      return;
    }
    if (limit > MAX_EDITS_LIMIT) limit = MAX_EDITS_LIMIT;
  }
  char *events = NULL;
  struct bf_error err = {0};
  if (bf_edit_log_read(req->srv->p->state_dir, (size_t)limit, &events, &err)) {
    bf_log_error("http: %s", err.msg);
    bf_http_error(resp, 500, "%s", err.msg);
    return;
  }
  bf_http_json(resp, 200);
  bf_buf_puts(&resp->body, "{\"edits\":");
  bf_buf_puts(&resp->body, events);
  bf_buf_puts(&resp->body, "}\n");
  free(events);
}

void bf_studio_catalog(struct bf_http_req *req, struct bf_http_resp *resp) {
  /* The project on disk: models and syncs saved since the server started
   * are listed too. */
  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  if (bf_config_load(req->srv->p->cfg->path, &cfg, &err)) {
    bf_http_error(resp, 409, "the project does not load as it is on disk: %s", err.msg);
    return;
  }
  struct bf_buf *b = &resp->body;
  bf_http_json(resp, 200);
  bf_buf_puts(b, "{\"token\":");
  bf_json_cstr(b, req->who);
  bf_buf_puts(b, ",\"role\":");
  bf_json_cstr(b, bf_role_name(req->role));
  bf_buf_puts(b, ",\"models\":[");
  for (size_t i = 0; i < cfg->n_models; i++) {
    bf_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
    bf_json_cstr(b, cfg->models[i].name);
    bf_buf_puts(b, ",\"warehouse\":");
    bf_json_cstr(b, cfg->models[i].warehouse);
    bf_buf_puts(b, ",\"file\":");
    bf_json_cstr(b, cfg->models[i].loc.file);
    bf_buf_putc(b, '}');
  }
  bf_buf_puts(b, "],\"destinations\":[");
  for (size_t i = 0; i < cfg->n_destinations; i++) {
    bf_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
    bf_json_cstr(b, cfg->destinations[i].name);
    bf_buf_puts(b, ",\"type\":");
    bf_json_cstr(b, cfg->destinations[i].type);
    bf_buf_putc(b, '}');
  }
  bf_buf_puts(b, "],\"syncs\":[");
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    if (i) bf_buf_putc(b, ',');
    bf_json_cstr(b, cfg->syncs[i].name);
  }
  bf_buf_puts(b, "]}\n");
  bf_config_free(cfg);
}

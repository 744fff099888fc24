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

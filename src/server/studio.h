/* Route handlers of the studio (issue 18); registered in http.c's table
 * and documented in docs/server.md. */
#ifndef BF_STUDIO_H
#define BF_STUDIO_H

#include "server/server.h"

/* GET /api/edits?limit=N (admin): the edit log, oldest first. */
void bf_studio_edits(struct bf_http_req *req, struct bf_http_resp *resp);

#endif

/* Route handlers of the studio (issue 18); registered in http.c's table
 * and documented in docs/server.md. */
#ifndef BF_STUDIO_H
#define BF_STUDIO_H

#include "server/server.h"

/* GET /api/edits?limit=N (admin): the edit log, oldest first. */
void bf_studio_edits(struct bf_http_req *req, struct bf_http_resp *resp);

/* GET /studio: the page (no token; it asks for one). */
void bf_studio_page(struct bf_http_req *req, struct bf_http_resp *resp);
/* GET /api/studio/catalog: the caller's token name and role, and the
 * models, destinations and syncs of the project as it is on disk. */
void bf_studio_catalog(struct bf_http_req *req, struct bf_http_resp *resp);

/* POST /api/studio/segments/preview: {"base", "where", "sample"} -> the
 * SQL, its parameters, the row count and a sample (pii masked below admin). */
void bf_studio_preview(struct bf_http_req *req, struct bf_http_resp *resp);
/* GET /api/studio/models/{name}: models/NAME.yml with its version. */
void bf_studio_model_get(struct bf_http_req *req, struct bf_http_resp *resp);
/* PUT /api/studio/models/{name} (editor): {"base", "where", "primary_key",
 * "version"} saved as models/NAME.yml. */
void bf_studio_model_put(struct bf_http_req *req, struct bf_http_resp *resp);

/* GET /api/studio/models/{name}/columns: [{"name", "type", "pii"}]. */
void bf_studio_model_columns(struct bf_http_req *req, struct bf_http_resp *resp);
/* GET /api/studio/destinations/{name}/fields?object=X: the destination's
 * fields where its API lists them ("listed": true), else free text. */
void bf_studio_destination_fields(struct bf_http_req *req, struct bf_http_resp *resp);
/* GET /api/studio/syncs/{name}: syncs/NAME.yml with its version. */
void bf_studio_sync_get(struct bf_http_req *req, struct bf_http_resp *resp);
/* POST /api/studio/syncs/{name}/preview: the YAML and the plan, nothing saved. */
void bf_studio_sync_preview(struct bf_http_req *req, struct bf_http_resp *resp);
/* PUT /api/studio/syncs/{name} (editor): saves syncs/NAME.yml once it plans. */
void bf_studio_sync_put(struct bf_http_req *req, struct bf_http_resp *resp);

/* POST /api/studio/syncs/{name}/run (editor): one run of the sync as the
 * project on disk defines it (a sync saved since the server started). */
void bf_studio_sync_run(struct bf_http_req *req, struct bf_http_resp *resp);
/* GET /api/studio/syncs/{name}/runs: the run log's last 50 runs of it. */
void bf_studio_sync_runs(struct bf_http_req *req, struct bf_http_resp *resp);

/* ---- Shared by the studio's files (studio_segment.c). */
#include <jansson.h>
/* The request body as a JSON object (caller decrefs), or NULL with a 400 set. */
json_t *bf_studio_body(struct bf_http_req *req, struct bf_http_resp *resp);
/* GET of <folder>/NAME.yml: {"name", "path", "exists", "version", "yaml"}. */
void bf_studio_file_get(struct bf_http_req *req, struct bf_http_resp *resp, const char *folder);
/* The version a PUT was based on: body "version" or the If-Match header
 * ("\"<version>\""). A new string the caller frees, or NULL with a 400 set. */
char *bf_studio_request_version(struct bf_http_req *req, const json_t *body,
                                struct bf_http_resp *resp);
/* Letters, digits and '_', not a digit first, at most 128 bytes. */
bool bf_studio_name_ok(const char *name);
/* A file's version: BLAKE2b-128 of its bytes in hex, or "new" when absent. */
void bf_studio_version(const char *path, char out[33]);
/* A further check of the project as it would be after the edit (a sync's
 * plan); returns nonzero with resp set to refuse the edit. */
typedef int (*bf_studio_check_fn)(const struct bf_config *cfg, void *ctx,
                                  struct bf_http_resp *resp);
/* Writes text to rel (a path in the project) when its version on disk is
 * still version and the whole project loads with it (checked first, from
 * memory, then check(cfg, ctx) when not NULL); adds `include:` to
 * backflow.yml when it has none. kind/name ("model"/"sync") must not be
 * defined in another file. Returns 0 with new_version set, or -1 with resp
 * set (409 conflict, 422 would not load) and nothing written. */
int bf_studio_write_checked(struct bf_http_req *req, struct bf_http_resp *resp, const char *rel,
                            const char *text, const char *version, const char *kind,
                            const char *name, bf_studio_check_fn check, void *ctx,
                            char new_version[33]);

#endif

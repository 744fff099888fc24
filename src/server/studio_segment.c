/* Segment routes: preview (any role) and save as models/NAME.yml (editor).
 * A save re-reads the project from disk rather than trusting the config the
 * server started with: hand edits made since then are seen, and the file is
 * only kept when the whole project still loads. */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "engine/segment.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "server/server.h"
#include "server/studio.h"

#define DEFAULT_SAMPLE 10

/* One save at a time: the version check and the write must not interleave. */
static pthread_mutex_t save_lock = PTHREAD_MUTEX_INITIALIZER;

static int status_of(int code) {
  return code == BF_E_USAGE || code == BF_E_CONFIG ? 400 : code == BF_E_WAREHOUSE ? 422 : 500;
}

json_t *bf_studio_body(struct bf_http_req *req, struct bf_http_resp *resp) {
  json_error_t jerr;
  json_t *body =
      json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object(body)) {
    bf_http_error(resp, 400, "the body must be a JSON object%s%s", body ? "" : ": ",
                  body ? "" : jerr.text);
    json_decref(body);
    return NULL;
  }
  return body;
}

bool bf_studio_name_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > 128 ||
      !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

void bf_studio_version(const char *path, char out[33]) {
  unsigned char *text = NULL;
  size_t len = 0;
  if (bf_read_file(path, &text, &len)) {
    snprintf(out, 33, "new");
    return;
  }
  unsigned char h[16];
  crypto_generichash(h, sizeof h, text, len, NULL, 0);
  sodium_bin2hex(out, 33, h, sizeof h);
  free(text);
}

char *bf_studio_request_version(struct bf_http_req *req, const json_t *body,
                                struct bf_http_resp *resp) {
  const char *in_body = json_string_value(json_object_get(body, "version"));
  const char *h = bf_http_header(req, "If-Match");
  char *from_header = NULL;
  if (h) {
    size_t n = strlen(h);
    if (n < 3 || h[0] != '"' || h[n - 1] != '"' || n > 40) {
      bf_http_error(resp, 400, "If-Match: expected the ETag of the GET, e.g. \"new\"");
      return NULL;
    }
    from_header = bf_xstrndup(h + 1, n - 2);
  }
  if (in_body && from_header && strcmp(in_body, from_header)) {
    bf_http_error(resp, 400, "version and If-Match disagree; send one of them");
    free(from_header);
    return NULL;
  }
  if (from_header) return from_header;
  if (in_body) return bf_xstrdup(in_body);
  bf_http_error(resp, 400,
                "version: expected the version (or ETag, as If-Match) from the GET of this file "
                "(\"new\" for a new one)");
  return NULL;
}

void bf_studio_preview(struct bf_http_req *req, struct bf_http_resp *resp) {
  json_t *body = bf_studio_body(req, resp);
  if (!body) return;
  json_int_t sample = DEFAULT_SAMPLE;
  json_t *sv = json_object_get(body, "sample");
  if (sv && (!json_is_integer(sv) || (sample = json_integer_value(sv)) < 0 || sample > 100)) {
    bf_http_error(resp, 400, "sample: expected a number of rows from 0 to 100");
    json_decref(body);
    return;
  }
  struct bf_buf out = {0};
  struct bf_error err = {0};
  int rc = bf_segment_run(req->srv->p->cfg, body, true, (size_t)sample, req->role >= BF_ROLE_ADMIN,
                          &out, NULL, NULL, &err);
  json_decref(body);
  if (rc) {
    bf_http_error(resp, status_of(rc), "%s", err.msg);
  } else {
    bf_http_json(resp, 200);
    bf_buf_append(&resp->body, out.data, out.len);
    bf_buf_puts(&resp->body, "\n");
  }
  bf_buf_release(&out);
}

/* The model file's text. seg_json: the request's base and where, kept as a
 * comment so the studio can open the segment again. */
static char *model_yaml(const char *name, const struct bf_segment_base *base,
                        const struct bf_segment *s, const char *primary_key, const char *seg_json) {
  struct bf_buf b = {0};
  bf_buf_puts(&b, "# Written by the Backflow studio (segment builder). Hand edits are fine: the\n"
                  "# studio will not overwrite this file once it changed on disk.\n"
                  "# segment: ");
  bf_buf_puts(&b, seg_json);
  bf_buf_printf(&b, "\nmodels:\n  %s:\n    warehouse: ", name);
  bf_json_cstr(&b, base->warehouse->name);
  bf_buf_puts(&b, "\n    primary_key: ");
  bf_json_cstr(&b, primary_key);
  bf_buf_puts(&b, "\n    sql: ");
  bf_json_cstr(&b, s->literal_sql);
  if (base->model && base->model->pii.n) {
    bf_buf_puts(&b, "\n    pii: {");
    for (size_t i = 0; i < base->model->pii.n; i++) {
      if (i) bf_buf_puts(&b, ", ");
      bf_json_cstr(&b, base->model->pii.items[i].key);
      bf_buf_puts(&b, ": ");
      bf_json_cstr(&b, base->model->pii.items[i].value);
    }
    bf_buf_puts(&b, "}");
  }
  bf_buf_puts(&b, "\n");
  char *text = bf_xstrdup(bf_buf_cstr(&b));
  bf_buf_release(&b);
  return text;
}

/* True when an `include:` pattern of cfg covers rel (a path in the project). */
static bool included(const struct bf_config *cfg, const char *rel, bool *has_include) {
  const struct bf_node *list = bf_node_get(cfg->root, "include");
  *has_include = list != NULL;
  for (size_t i = 0; list && list->kind == BF_NODE_SEQ && i < list->n; i++)
    if (list->items[i]->kind == BF_NODE_SCALAR &&
        fnmatch(list->items[i]->scalar, rel, FNM_PATHNAME) == 0)
      return true;
  return false;
}

int bf_studio_write_checked(struct bf_http_req *req, struct bf_http_resp *resp, const char *rel,
                            const char *text, const char *version, const char *kind,
                            const char *name, bf_studio_check_fn check, void *ctx,
                            char new_version[33]) {
  const struct bf_config *old = req->srv->p->cfg;
  char *path = bf_xasprintf("%s/%s", old->dir, rel);
  char *dir = bf_xstrndup(path, (size_t)(strrchr(path, '/') - path));
  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  unsigned char *main_text = NULL;
  size_t main_len = 0;
  int rc = -1;
  char cur[33];
  pthread_mutex_lock(&save_lock);
  bf_studio_version(path, cur);
  if (strcmp(cur, version)) {
    bf_http_error(resp, 409,
                  "%s changed on disk since it was read (version '%s', now '%s'); read it again "
                  "(GET) and re-apply the edit",
                  rel, version, cur);
    goto out;
  }
  if (bf_config_load(old->path, &cfg, &err)) {
    bf_http_error(resp, 409, "the project does not load as it is on disk, fix it first: %s",
                  err.msg);
    goto out;
  }
  const struct bf_loc *where = NULL;
  if (!strcmp(kind, "model") && bf_config_model(cfg, name))
    where = &bf_config_model(cfg, name)->loc;
  if (!strcmp(kind, "sync") && bf_config_sync(cfg, name)) where = &bf_config_sync(cfg, name)->loc;
  if (where && strcmp(where->file, path)) {
    bf_http_error(resp, 409, "%s '%s' is already defined at %s:%d:%d; pick another name", kind,
                  name, where->file, where->line, where->col);
    goto out;
  }
  bool has_include;
  if (!included(cfg, rel, &has_include) && has_include) {
    bf_http_error(resp, 409,
                  "%s does not match the 'include' list of %s; add e.g. models/*.yml and "
                  "syncs/*.yml to it",
                  rel, old->path);
    goto out;
  }
  /* The project as it would be, checked before anything is written. */
  bf_config_free(cfg);
  cfg = NULL;
  struct bf_config_overlay ov = {rel, text};
  if (bf_config_load_overlay(old->path, &ov, &cfg, &err)) {
    bf_http_error(resp, 422, "the project would not load with this %s, nothing was saved: %s", kind,
                  err.msg);
    goto out;
  }
  if (check && check(cfg, ctx, resp)) goto out;
  if (!has_include) {
    /* No include yet: add the studio's folders to backflow.yml. */
    const char *line = "\ninclude: [models/*.yml, syncs/*.yml]\n";
    char *failed = NULL;
    if (bf_read_file(old->path, &main_text, &main_len) ||
        bf_write_file_atomic(old->path, main_text, main_len, line, strlen(line), &failed)) {
      bf_http_error(resp, 500, "cannot add 'include' to %s: %s", old->path, strerror(errno));
      free(failed);
      goto out;
    }
    chmod(old->path, 0644);
  }
  mkdir(dir, 0755);
  char *failed = NULL;
  if (bf_write_file_atomic(path, text, strlen(text), NULL, 0, &failed)) {
    bf_http_error(resp, 500, "cannot write %s: %s", failed, strerror(errno));
    free(failed);
    if (!has_include) bf_write_file_atomic(old->path, main_text, main_len, NULL, 0, NULL);
    goto out;
  }
  chmod(path, 0644);
  bf_studio_version(path, new_version);
  rc = 0;
out:
  pthread_mutex_unlock(&save_lock);
  bf_config_free(cfg);
  free(main_text);
  free(path);
  free(dir);
  return rc;
}

void bf_studio_model_get(struct bf_http_req *req, struct bf_http_resp *resp) {
  bf_studio_file_get(req, resp, "models");
}

void bf_studio_sync_get(struct bf_http_req *req, struct bf_http_resp *resp) {
  bf_studio_file_get(req, resp, "syncs");
}

void bf_studio_file_get(struct bf_http_req *req, struct bf_http_resp *resp, const char *folder) {
  const char *name = req->params[0];
  if (!bf_studio_name_ok(name)) {
    bf_http_error(resp, 400, "'%.60s' is not a name (letters, digits, '_')", name);
    return;
  }
  char *rel = bf_xasprintf("%s/%s.yml", folder, name);
  char *path = bf_xasprintf("%s/%s", req->srv->p->cfg->dir, rel);
  char version[33];
  bf_studio_version(path, version);
  unsigned char *text = NULL;
  size_t len = 0;
  bool exists = bf_read_file(path, &text, &len) == 0;
  bf_http_json(resp, 200);
  snprintf(resp->etag, sizeof resp->etag, "\"%s\"", version);
  bf_buf_puts(&resp->body, "{\"name\":");
  bf_json_cstr(&resp->body, name);
  bf_buf_puts(&resp->body, ",\"path\":");
  bf_json_cstr(&resp->body, rel);
  bf_buf_printf(&resp->body, ",\"exists\":%s,\"version\":", exists ? "true" : "false");
  bf_json_cstr(&resp->body, version);
  bf_buf_puts(&resp->body, ",\"yaml\":");
  if (exists)
    bf_json_str(&resp->body, (const char *)text, len);
  else
    bf_buf_puts(&resp->body, "null");
  bf_buf_puts(&resp->body, "}\n");
  free(text);
  free(rel);
  free(path);
}

void bf_studio_model_put(struct bf_http_req *req, struct bf_http_resp *resp) {
  const char *name = req->params[0];
  if (!bf_studio_name_ok(name)) {
    bf_http_error(resp, 400, "'%.60s' is not a model name (letters, digits, '_')", name);
    return;
  }
  json_t *body = bf_studio_body(req, resp);
  if (!body) return;
  static const char *const keys[] = {"base", "where", "primary_key", "version", NULL};
  const char *k;
  json_t *v;
  json_object_foreach(body, k, v) {
    bool known = false;
    for (size_t i = 0; keys[i]; i++) known |= !strcmp(keys[i], k);
    if (!known) {
      bf_http_error(resp, 400, "unknown key '%.40s'; expected base, where, primary_key, version",
                    k);
      json_decref(body);
      return;
    }
  }
  char *version = bf_studio_request_version(req, body, resp);
  if (!version) {
    json_decref(body);
    return;
  }
  struct bf_buf out = {0};
  struct bf_segment seg = {0};
  struct bf_segment_base base = {0};
  struct bf_error err = {0};
  char *yaml = NULL, *rel = NULL, *seg_json = NULL;
  struct bf_config *cfg = NULL;
  int rc = bf_config_load(req->srv->p->cfg->path, &cfg, &err);
  if (!rc) rc = bf_segment_run(cfg, body, false, 0, false, &out, &seg, &base, &err);
  if (rc) {
    bf_http_error(resp, status_of(rc), "%s", err.msg);
    goto out;
  }
  const char *pk = json_string_value(json_object_get(body, "primary_key"));
  if (!pk && base.model) pk = base.model->primary_key;
  if (!pk) {
    bf_http_error(resp, 400, "primary_key: a segment of a table needs its primary key column");
    goto out;
  }
  json_t *parsed = json_loads(bf_buf_cstr(&out), 0, NULL);
  bool pk_ok = false;
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(parsed, "columns"), i, c) pk_ok |=
      !strcmp(json_string_value(c), pk);
  json_decref(parsed);
  if (!pk_ok) {
    bf_http_error(resp, 400, "primary_key: '%.60s' is not a column of the segment", pk);
    goto out;
  }
  json_t *keep = json_pack("{s:O,s:O?}", "base", json_object_get(body, "base"), "where",
                           json_object_get(body, "where"));
  seg_json = json_dumps(keep, JSON_COMPACT);
  json_decref(keep);
  yaml = model_yaml(name, &base, &seg, pk, seg_json);
  rel = bf_xasprintf("models/%s.yml", name);
  char new_version[33];
  if (bf_studio_write_checked(req, resp, rel, yaml, version, "model", name, NULL, NULL,
                              new_version))
    goto out;
  bf_http_json(resp, 200);
  snprintf(resp->etag, sizeof resp->etag, "\"%s\"", new_version);
  bf_buf_puts(&resp->body, "{\"name\":");
  bf_json_cstr(&resp->body, name);
  bf_buf_puts(&resp->body, ",\"path\":");
  bf_json_cstr(&resp->body, rel);
  bf_buf_puts(&resp->body, ",\"version\":");
  bf_json_cstr(&resp->body, new_version);
  bf_buf_puts(&resp->body, ",\"sql\":");
  bf_json_cstr(&resp->body, seg.literal_sql);
  bf_buf_puts(&resp->body, ",\"yaml\":");
  bf_json_cstr(&resp->body, yaml);
  bf_buf_puts(&resp->body,
              ",\"note\":\"restart `backflow serve` (or run `backflow run`) to use it\"}\n");
  struct bf_buf d = {0};
  bf_buf_puts(&d, "{\"path\":");
  bf_json_cstr(&d, rel);
  bf_buf_puts(&d, ",\"version\":");
  bf_json_cstr(&d, new_version);
  bf_buf_puts(&d, ",\"previous_version\":");
  bf_json_cstr(&d, version);
  bf_buf_puts(&d, "}");
  resp->edit_detail = bf_xstrdup(bf_buf_cstr(&d));
  bf_buf_release(&d);
out:
  json_decref(body);
  bf_buf_release(&out);
  bf_segment_release(&seg);
  bf_segment_base_release(&base);
  bf_config_free(cfg); /* after base, which points into it */
  free(version);
  free(yaml);
  free(rel);
  free(seg_json);
}

/* The mapping and schedule editor's routes: model columns, destination
 * fields, a sync's plan before it is saved, and saving syncs/NAME.yml. A
 * sync is checked exactly as a run would see it: the project is loaded with
 * the new file in memory and the runner plans it (reading the warehouse and
 * the sync's state, sending and writing nothing). */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "destinations/destination.h"
#include "engine/project.h"
#include "engine/runner.h"
#include "engine/segment.h"
#include "util/log.h"
#include "server/server.h"
#include "server/studio.h"

#define PLAN_SAMPLE 5

void bf_studio_model_columns(struct bf_http_req *req, struct bf_http_resp *resp) {
  /* The project on disk, so a model saved since the server started is known. */
  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  if (bf_config_load(req->srv->p->cfg->path, &cfg, &err)) {
    bf_http_error(resp, 409, "the project does not load as it is on disk: %s", err.msg);
    return;
  }
  const struct bf_model_config *m = bf_config_model(cfg, req->params[0]);
  if (!m) {
    bf_http_error(resp, 404, "unknown model '%.60s'", req->params[0]);
    bf_config_free(cfg);
    return;
  }
  struct bf_buf cols = {0};
  if (bf_segment_model_columns(cfg, m, &cols, &err)) {
    bf_http_error(resp, err.code == BF_E_WAREHOUSE ? 422 : 400, "%s", err.msg);
  } else {
    bf_http_json(resp, 200);
    bf_buf_puts(&resp->body, "{\"model\":");
    bf_json_cstr(&resp->body, m->name);
    bf_buf_puts(&resp->body, ",\"primary_key\":");
    bf_json_cstr(&resp->body, m->primary_key);
    bf_buf_puts(&resp->body, ",\"columns\":");
    bf_buf_append(&resp->body, cols.data, cols.len);
    bf_buf_puts(&resp->body, "}\n");
  }
  bf_buf_release(&cols);
  bf_config_free(cfg);
}

void bf_studio_destination_fields(struct bf_http_req *req, struct bf_http_resp *resp) {
  const struct bf_config *cfg = req->srv->p->cfg;
  const struct bf_destination_config *dc = bf_config_destination(cfg, req->params[0]);
  if (!dc) {
    bf_http_error(resp, 404, "unknown destination '%.60s'", req->params[0]);
    return;
  }
  const struct bf_destination_type *t = bf_destination_find(dc->type);
  if (!t || !t->list_fields) {
    bf_http_json(resp, 200);
    bf_buf_puts(&resp->body, "{\"destination\":");
    bf_json_cstr(&resp->body, dc->name);
    bf_buf_puts(&resp->body, ",\"type\":");
    bf_json_cstr(&resp->body, dc->type);
    bf_buf_puts(&resp->body, ",\"listed\":false,\"fields\":[]}\n");
    return;
  }
  struct bf_destination *d = NULL;
  struct bf_buf fields = {0};
  struct bf_error err = {0};
  int rc = bf_destination_open(dc, cfg, &d, &err);
  if (!rc) rc = t->list_fields(d, bf_http_query(req, "object"), &fields, &err);
  bf_destination_close(d);
  if (rc) {
    bf_http_error(resp, rc == BF_E_USAGE ? 400 : 502, "%s", err.msg);
  } else {
    bf_http_json(resp, 200);
    bf_buf_puts(&resp->body, "{\"destination\":");
    bf_json_cstr(&resp->body, dc->name);
    bf_buf_puts(&resp->body, ",\"type\":");
    bf_json_cstr(&resp->body, dc->type);
    bf_buf_puts(&resp->body, ",\"listed\":true,\"fields\":");
    bf_buf_append(&resp->body, fields.data, fields.len);
    bf_buf_puts(&resp->body, "}\n");
  }
  bf_buf_release(&fields);
}

/* ---- a sync's YAML from the editor's JSON */

static bool string_map(const json_t *v, bool scalars) {
  if (!json_is_object(v)) return false;
  const char *k;
  json_t *x;
  json_object_foreach((json_t *)v, k, x) {
    if (!*k) return false;
    if (scalars ? !(json_is_string(x) || json_is_number(x) || json_is_boolean(x))
                : !(json_is_string(x) && json_string_value(x)[0]))
      return false;
  }
  return true;
}

/* Appends "    key: <JSON>\n"; a flow mapping or a quoted scalar in JSON's
 * syntax, which YAML reads the same. */
static void yaml_json(struct bf_buf *b, const char *key, const json_t *v) {
  char *text = json_dumps(v, JSON_ENCODE_ANY);
  bf_buf_printf(b, "    %s: %s\n", key, text);
  free(text);
}

/* The file's text, or NULL with a 400 set. */
static char *sync_yaml(const char *name, const json_t *body, struct bf_http_resp *resp) {
  static const char *const keys[] = {"model",    "destination", "mode",      "object",
                                     "match",    "fields",      "constants", "pii_policy",
                                     "schedule", "version",     NULL};
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)body, k, v) {
    bool known = false;
    for (size_t i = 0; keys[i]; i++) known |= !strcmp(keys[i], k);
    if (!known) {
      bf_http_error(resp, 400,
                    "unknown key '%.40s'; expected model, destination, mode, object, match, "
                    "fields, constants, pii_policy, schedule, version",
                    k);
      return NULL;
    }
  }
  static const char *const strings[] = {"model", "destination", "mode", "object", NULL};
  for (size_t i = 0; strings[i]; i++) {
    v = json_object_get(body, strings[i]);
    if ((v || i < 2) && !(json_is_string(v) && json_string_value(v)[0])) {
      bf_http_error(resp, 400, "%s: expected a non-empty string", strings[i]);
      return NULL;
    }
  }
  static const char *const maps[] = {"match", "fields", "pii_policy", "constants", NULL};
  for (size_t i = 0; maps[i]; i++) {
    v = json_object_get(body, maps[i]);
    if ((v || i == 0) && !string_map(v, i == 3)) {
      bf_http_error(resp, 400, "%s: expected an object of destination field (or column) to %s",
                    maps[i], i == 3 ? "a string, number or boolean" : "a non-empty string");
      return NULL;
    }
  }
  const json_t *sched = json_object_get(body, "schedule");
  bool manual = !sched || json_is_null(sched) ||
                (json_is_string(sched) && !strcmp(json_string_value(sched), "manual"));
  if (!manual) {
    const char *sk = NULL;
    json_t *sv = NULL;
    if (json_is_object(sched) && json_object_size(sched) == 1) {
      void *it = json_object_iter((json_t *)sched);
      sk = json_object_iter_key(it);
      sv = json_object_iter_value(it);
    }
    if (!sk || (strcmp(sk, "every") && strcmp(sk, "cron") && strcmp(sk, "after")) ||
        !json_is_string(sv)) {
      bf_http_error(resp, 400,
                    "schedule: expected {\"every\": \"15m\"}, {\"cron\": \"0 * * * *\"}, "
                    "{\"after\": SYNC}, \"manual\" or null");
      return NULL;
    }
  }
  struct bf_buf b = {0};
  bf_buf_puts(&b, "# Written by the Backflow studio (mapping and schedule editor). Hand edits are\n"
                  "# fine: the studio will not overwrite this file once it changed on disk.\n");
  bf_buf_printf(&b, "syncs:\n  %s:\n", name);
  static const char *const order[] = {"model",  "destination", "mode",       "object", "match",
                                      "fields", "constants",   "pii_policy", NULL};
  for (size_t i = 0; order[i]; i++)
    if ((v = json_object_get(body, order[i]))) yaml_json(&b, order[i], v);
  if (!manual) yaml_json(&b, "schedule", sched);
  char *text = bf_xstrdup(bf_buf_cstr(&b));
  bf_buf_release(&b);
  return text;
}

struct plan_ctx {
  struct bf_server *srv;
  const char *sync;
  size_t sample;
  bool show_pii;
  struct bf_buf out; /* {"added",...,"sample":[...]} */
};

/* Masks, in a record of the sample, the fields whose model column is pii. */
static void mask_record(json_t *rec, const struct bf_config *cfg, const struct bf_sync_config *s) {
  const struct bf_model_config *m = bf_config_model(cfg, s->model);
  if (!m) return;
  const struct bf_pairs *maps[] = {&s->match, &s->fields};
  json_t *parts[] = {rec, json_object_get(rec, "match"), json_object_get(rec, "fields"),
                     json_object_get(rec, "properties"), json_object_get(rec, "values")};
  for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
    if (!json_is_object(parts[p])) continue;
    for (size_t k = 0; k < 2; k++)
      for (size_t i = 0; i < maps[k]->n; i++)
        if (bf_pairs_get(&m->pii, maps[k]->items[i].value) &&
            json_is_string(json_object_get(parts[p], maps[k]->items[i].key)))
          json_object_set_new(parts[p], maps[k]->items[i].key, json_string("***"));
  }
}

static int plan_check(const struct bf_config *cfg, void *ctx_, struct bf_http_resp *resp) {
  struct plan_ctx *ctx = ctx_;
  struct bf_project p = {.cfg = (struct bf_config *)cfg, .state_dir = ctx->srv->p->state_dir};
  /* Borrowed: the server's state folder and a config the caller frees. */
  struct bf_run_options opts = {.plan_only = true, .sample_limit = ctx->sample};
  struct bf_run_result res;
  struct bf_error err = {0};
  int rc = bf_sync_run(&p, ctx->sync, &opts, &res, &err);
  if (rc) {
    bf_http_error(resp, 422, "the sync cannot run as written, nothing was saved: %s", err.msg);
  } else {
    const struct bf_run_counts *c = &res.counts;
    bf_buf_printf(&ctx->out,
                  "{\"rows_read\":%lld,\"added\":%lld,\"changed\":%lld,\"removed\":%lld,"
                  "\"unchanged\":%lld,\"rejected\":%lld,\"sample\":[",
                  c->rows_read, c->added, c->changed, c->removed, c->unchanged, c->rejected);
    const struct bf_sync_config *s = bf_config_sync(cfg, ctx->sync);
    const char *at = bf_buf_cstr(&res.sample), *end = at + res.sample.len;
    bool first = true;
    while (at < end) {
      const char *nl = memchr(at, '\n', (size_t)(end - at));
      size_t len = nl ? (size_t)(nl - at) : (size_t)(end - at);
      json_t *rec = json_loadb(at, len, 0, NULL);
      if (rec) {
        if (!ctx->show_pii && s) mask_record(rec, cfg, s);
        char *t = json_dumps(rec, JSON_COMPACT);
        if (!first) bf_buf_putc(&ctx->out, ',');
        bf_buf_puts(&ctx->out, t);
        first = false;
        free(t);
        json_decref(rec);
      }
      at += len + 1;
    }
    bf_buf_puts(&ctx->out, "]}");
  }
  bf_run_result_release(&res);
  sodium_memzero(&p.prf, sizeof p.prf);
  return rc;
}

/* Name, body and YAML of a sync request; NULL with resp set. */
static char *sync_request(struct bf_http_req *req, struct bf_http_resp *resp, json_t **body) {
  *body = NULL;
  if (!bf_studio_name_ok(req->params[0])) {
    bf_http_error(resp, 400, "'%.60s' is not a sync name (letters, digits, '_')", req->params[0]);
    return NULL;
  }
  if (!(*body = bf_studio_body(req, resp))) return NULL;
  char *yaml = sync_yaml(req->params[0], *body, resp);
  if (!yaml) {
    json_decref(*body);
    *body = NULL;
  }
  return yaml;
}

static void plan_answer(struct bf_http_resp *resp, const char *name, const char *yaml,
                        const struct plan_ctx *ctx, const char *version) {
  bf_http_json(resp, 200);
  bf_buf_puts(&resp->body, "{\"name\":");
  bf_json_cstr(&resp->body, name);
  bf_buf_puts(&resp->body, ",\"path\":");
  char rel[160];
  snprintf(rel, sizeof rel, "syncs/%s.yml", name);
  bf_json_cstr(&resp->body, rel);
  if (version) {
    bf_buf_puts(&resp->body, ",\"version\":");
    bf_json_cstr(&resp->body, version);
  }
  bf_buf_puts(&resp->body, ",\"yaml\":");
  bf_json_cstr(&resp->body, yaml);
  bf_buf_puts(&resp->body, ",\"plan\":");
  bf_buf_append(&resp->body, ctx->out.data, ctx->out.len);
  bf_buf_puts(&resp->body, "}\n");
}

void bf_studio_sync_preview(struct bf_http_req *req, struct bf_http_resp *resp) {
  json_t *body;
  char *yaml = sync_request(req, resp, &body);
  if (!yaml) return;
  const char *name = req->params[0];
  char *rel = bf_xasprintf("syncs/%s.yml", name);
  struct bf_config_overlay ov = {rel, yaml};
  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  struct plan_ctx ctx = {req->srv, name, PLAN_SAMPLE, req->role >= BF_ROLE_ADMIN, {0}};
  if (bf_config_load_overlay(req->srv->p->cfg->path, &ov, &cfg, &err))
    bf_http_error(resp, 422, "the project would not load with this sync: %s", err.msg);
  else if (plan_check(cfg, &ctx, resp) == 0)
    plan_answer(resp, name, yaml, &ctx, NULL);
  bf_config_free(cfg);
  bf_buf_release(&ctx.out);
  free(rel);
  free(yaml);
  json_decref(body);
}

void bf_studio_sync_put(struct bf_http_req *req, struct bf_http_resp *resp) {
  json_t *body;
  char *yaml = sync_request(req, resp, &body);
  if (!yaml) return;
  const char *name = req->params[0];
  char *version = bf_studio_request_version(req, body, resp);
  char *rel = bf_xasprintf("syncs/%s.yml", name);
  struct plan_ctx ctx = {req->srv, name, PLAN_SAMPLE, req->role >= BF_ROLE_ADMIN, {0}};
  char new_version[33];
  if (!version) {
    /* resp is set */
  } else if (bf_studio_write_checked(req, resp, rel, yaml, version, "sync", name, plan_check, &ctx,
                                     new_version) == 0) {
    plan_answer(resp, name, yaml, &ctx, new_version);
    snprintf(resp->etag, sizeof resp->etag, "\"%s\"", new_version);
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
  }
  bf_buf_release(&ctx.out);
  free(version);
  free(rel);
  free(yaml);
  json_decref(body);
}

/* ---- running a saved sync before the server knows it */

void bf_studio_sync_run(struct bf_http_req *req, struct bf_http_resp *resp) {
  const char *name = req->params[0];
  if (!bf_studio_name_ok(name)) {
    bf_http_error(resp, 400, "'%.60s' is not a sync name (letters, digits, '_')", name);
    return;
  }
  /* The project as it is on disk now: a sync saved since the server started
   * runs without a restart (the run lock keeps it from running twice). */
  struct bf_project *p = NULL;
  struct bf_error err = {0};
  if (bf_project_load(req->srv->p->cfg->path, &p, &err)) {
    bf_http_error(resp, 409, "the project does not load as it is on disk: %s", err.msg);
    return;
  }
  if (!bf_config_sync(p->cfg, name)) {
    bf_http_error(resp, 404, "unknown sync '%s' (not in the project on disk)", name);
    bf_project_free(p);
    return;
  }
  struct bf_run_options opts = {.log_skipped = true};
  struct bf_run_result res;
  int rc = bf_sync_run(p, name, &opts, &res, &err);
  const struct bf_run_counts *c = &res.counts;
  bf_http_json(resp, rc && !res.run_id ? 422 : 200);
  bf_buf_printf(&resp->body, "{\"sync\":");
  bf_json_cstr(&resp->body, name);
  bf_buf_printf(&resp->body,
                ",\"run_id\":%lld,\"status\":\"%s\",\"counts\":{\"rows_read\":%lld,\"added\":%lld,"
                "\"changed\":%lld,\"removed\":%lld,\"unchanged\":%lld,\"rejected\":%lld,"
                "\"failed\":%lld},\"error\":",
                res.run_id, res.status ? res.status : "failed", c->rows_read, c->added, c->changed,
                c->removed, c->unchanged, c->rejected, c->failed);
  if (rc)
    bf_json_cstr(&resp->body, err.msg);
  else
    bf_buf_puts(&resp->body, "null");
  bf_buf_puts(&resp->body, "}\n");
  bf_run_result_release(&res);
  bf_project_free(p);
}

void bf_studio_sync_runs(struct bf_http_req *req, struct bf_http_resp *resp) {
  const char *name = req->params[0];
  if (!bf_studio_name_ok(name)) {
    bf_http_error(resp, 400, "'%.60s' is not a sync name (letters, digits, '_')", name);
    return;
  }
  struct bf_runlog *log = NULL;
  struct bf_run_info *runs = NULL;
  size_t n = 0;
  struct bf_error err = {0};
  if (bf_runlog_open(req->srv->p->state_dir, &log, &err) ||
      bf_runlog_list(log, name, 50, &runs, &n, &err)) {
    bf_http_error(resp, 500, "cannot read the run log: %s", err.msg);
  } else {
    bf_http_json(resp, 200);
    bf_buf_puts(&resp->body, "{\"sync\":");
    bf_json_cstr(&resp->body, name);
    bf_buf_puts(&resp->body, ",\"runs\":[");
    for (size_t i = 0; i < n; i++) {
      const struct bf_run_info *r = &runs[i];
      bf_buf_printf(&resp->body, "%s{\"id\":%lld,\"status\":", i ? "," : "", r->id);
      bf_json_cstr(&resp->body, r->status ? r->status : "");
      bf_buf_printf(&resp->body,
                    ",\"started_ms\":%lld,\"finished_ms\":%lld,\"added\":%lld,\"changed\":%lld,"
                    "\"removed\":%lld,\"rejected\":%lld}",
                    r->started_ms, r->finished_ms, r->counts.added, r->counts.changed,
                    r->counts.removed, r->counts.rejected);
    }
    bf_buf_puts(&resp->body, "]}\n");
  }
  bf_run_infos_free(runs, n);
  bf_runlog_close(log);
}

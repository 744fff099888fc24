/* backflow validate: every check that can be made before a run. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "spec/mapping.h"
#include "destinations/destination.h"
#include "server/cron.h"
#include "sources/source.h"

static int check_models(struct bf_project *p, bool quiet, struct bf_error *err) {
  const struct bf_config *cfg = p->cfg;
  for (size_t i = 0; i < cfg->n_models; i++) {
    const struct bf_model_config *m = &cfg->models[i];
    struct bf_source *src = NULL;
    struct bf_cursor *cur = NULL;
    int rc = bf_source_open(bf_config_warehouse(cfg, m->warehouse), cfg, &src, err);
    if (rc == 0 && (rc = bf_source_query(src, m->sql, &cur, err)))
      bf_error_prefix(err, "%s:%d:%d: model '%s': SQL error", m->sql_loc.file, m->sql_loc.line,
                      m->sql_loc.col, m->name);
    for (size_t s = 0; rc == 0 && s < cfg->n_syncs; s++) {
      if (strcmp(cfg->syncs[s].model, m->name)) continue;
      struct bf_mapping map;
      rc = bf_mapping_build(cfg, &cfg->syncs[s], m, cur->column_names, cur->ncols, &map, err);
      if (rc == 0) bf_mapping_release(&map);
    }
    if (rc == 0 && !quiet) printf("ok   model %s (%zu columns)\n", m->name, cur->ncols);
    bf_cursor_free(cur);
    bf_source_close(src);
    if (rc) return rc;
  }
  return 0;
}

static int check_destinations(struct bf_project *p, bool offline, bool quiet,
                              struct bf_error *err) {
  const struct bf_config *cfg = p->cfg;
  for (size_t i = 0; i < cfg->n_destinations; i++) {
    const struct bf_destination_config *dc = &cfg->destinations[i];
    const struct bf_destination_type *type = bf_destination_find(dc->type);
    struct bf_destination *d = NULL;
    int rc;
    if (offline && type) {
      char *what = bf_xasprintf("destination '%s' (%s)", dc->name, dc->type);
      rc = bf_params_check(dc->params, type->params, what, err);
      free(what);
    } else {
      rc = bf_destination_open(dc, cfg, &d, err);
      if (rc == 0) rc = d->type->check(d, err);
    }
    if (!type && offline) rc = bf_destination_open(dc, cfg, &d, err);
    bf_destination_close(d);
    if (rc) return rc;
    if (!quiet)
      printf("ok   destination %s (%s%s)\n", dc->name, dc->type, offline ? ", not contacted" : "");
  }
  return 0;
}

/* Schedules are checked with the scheduler's own parser, so what validate
 * accepts `serve` runs. */
static int check_schedules(struct bf_project *p, struct bf_error *err) {
  for (size_t i = 0; i < p->cfg->n_syncs; i++) {
    const struct bf_sync_config *s = &p->cfg->syncs[i];
    if (s->schedule != BF_SCHEDULE_CRON) continue;
    struct bf_cron cron;
    if (bf_cron_parse(s->cron, &cron, err))
      return bf_error_prefix(err, "%s:%d:%d: sync '%s': schedule", s->loc.file, s->loc.line,
                             s->loc.col, s->name);
  }
  return 0;
}

int bf_cmd_validate(struct bf_cli *cli, struct bf_error *err) {
  bool offline = bf_cli_flag(cli, "--offline");
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  if (cli->argc) return bf_error_set(err, BF_E_USAGE, "validate takes no arguments"), 2;
  struct bf_project *p = NULL;
  int rc = bf_cli_project(cli, &p, err);
  if (rc == 0 && !cli->json) printf("ok   config %s\n", p->cfg->path);
  if (rc == 0) rc = check_schedules(p, err);
  if (rc == 0) rc = check_models(p, cli->json, err);
  if (rc == 0) rc = check_destinations(p, offline, cli->json, err);
  if (cli->json) {
    struct bf_buf out = {0};
    bf_buf_printf(&out, "{\"ok\":%s,\"error\":", rc ? "false" : "true");
    if (rc)
      bf_json_cstr(&out, err->msg);
    else
      bf_buf_puts(&out, "null");
    bf_buf_puts(&out, "}\n");
    fwrite(out.data, 1, out.len, stdout);
    bf_buf_release(&out);
  } else if (rc == 0) {
    printf("valid: %zu warehouse%s, %zu model%s, %zu destination%s, %zu sync%s\n",
           p->cfg->n_warehouses, p->cfg->n_warehouses == 1 ? "" : "s", p->cfg->n_models,
           p->cfg->n_models == 1 ? "" : "s", p->cfg->n_destinations,
           p->cfg->n_destinations == 1 ? "" : "s", p->cfg->n_syncs,
           p->cfg->n_syncs == 1 ? "" : "s");
  }
  bf_project_free(p);
  return rc ? bf_code_exit_status(rc) : 0;
}

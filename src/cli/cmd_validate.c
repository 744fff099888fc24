/* backflow validate: every check that can be made before a run.
 *
 * Every check runs even after one fails, so a project with three broken
 * destinations is fixed in one pass, not three. Destinations are contacted
 * only with --connect: a check call is a real request (the webhook's is a
 * signed empty POST) that a receiver may count, alert on or rate-limit. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "spec/mapping.h"
#include "spec/params.h"
#include "destinations/destination.h"
#include "engine/wstate.h"
#include "server/cron.h"
#include "server/server.h"
#include "sources/source.h"

struct report {
  bool json;
  size_t n_failed;
  struct bf_error first; /* the first failure, returned to main */
  struct bf_buf checks;  /* JSON array items */
};

/* Records one check: prints "ok   what name (note)" or "FAIL what name: msg". */
static void report(struct report *r, const char *what, const char *name, int rc,
                   const struct bf_error *e, const char *note) {
  if (r->checks.len) bf_buf_putc(&r->checks, ',');
  bf_buf_puts(&r->checks, "{\"check\":");
  bf_json_cstr(&r->checks, what);
  bf_buf_puts(&r->checks, ",\"name\":");
  if (name)
    bf_json_cstr(&r->checks, name);
  else
    bf_buf_puts(&r->checks, "null");
  bf_buf_printf(&r->checks, ",\"ok\":%s,\"error\":", rc ? "false" : "true");
  if (rc)
    bf_json_cstr(&r->checks, e->msg);
  else
    bf_buf_puts(&r->checks, "null");
  bf_buf_putc(&r->checks, '}');
  if (rc && r->n_failed++ == 0) r->first = *e;
  if (r->json) return;
  if (rc)
    printf("FAIL %s%s%s: %s\n", what, name ? " " : "", name ? name : "", e->msg);
  else
    printf("ok   %s%s%s%s%s%s\n", what, name ? " " : "", name ? name : "", note ? " (" : "",
           note ? note : "", note ? ")" : "");
}

/* The state folder must be a directory we can write, or be creatable. */
static int check_state_dir(const struct bf_project *p, struct bf_error *err) {
  const struct bf_loc *loc = &p->cfg->state_dir_loc;
  struct stat sb;
  if (stat(p->state_dir, &sb) == 0) {
    if (!S_ISDIR(sb.st_mode))
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: state_dir %s is not a directory; expected a folder Backflow "
                          "can write its state to",
                          loc->file, loc->line, loc->col, p->state_dir);
    if (access(p->state_dir, W_OK | X_OK))
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: state_dir %s is not writable (%s); expected a folder the "
                          "user running Backflow can write",
                          loc->file, loc->line, loc->col, p->state_dir, strerror(errno));
    return 0;
  }
  if (errno != ENOENT)
    return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: state_dir %s: %s", loc->file, loc->line,
                        loc->col, p->state_dir, strerror(errno));
  /* Absent: the first run creates it (one level, as mkdir does). */
  char *parent = bf_xstrdup(p->state_dir);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) *slash = '\0';
  if (!slash) strcpy(parent, ".");
  if (slash == parent) parent[1] = '\0';
  int rc = 0;
  if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(parent, W_OK | X_OK))
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: state_dir %s does not exist and cannot be created in %s (%s); "
                      "expected a folder the user running Backflow can write",
                      loc->file, loc->line, loc->col, p->state_dir, parent,
                      stat(parent, &sb) != 0 ? strerror(errno)
                      : !S_ISDIR(sb.st_mode) ? "not a directory"
                                             : "not writable");
  free(parent);
  return rc;
}

/* A value validate cannot check because its ${NAME} is not set. */
static int unset_error(const struct bf_node *u, const char *kind, const char *name,
                       struct bf_error *err) {
  return bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: environment variable %s is not set (needed by %s%s%s%s)",
                      u->loc.file, u->loc.line, u->loc.col, u->unset_var, kind, name ? " '" : "",
                      name ? name : "", name ? "'" : "");
}

static void check_models(struct bf_project *p, struct report *r) {
  const struct bf_config *cfg = p->cfg;
  for (size_t i = 0; i < cfg->n_models; i++) {
    const struct bf_model_config *m = &cfg->models[i];
    struct bf_source *src = NULL;
    struct bf_cursor *cur = NULL;
    struct bf_error err = {0};
    const struct bf_warehouse_config *wh = bf_config_warehouse(cfg, m->warehouse);
    if (m->unset || (wh && wh->unset)) {
      unset_error(m->unset ? m->unset : wh->unset, m->unset ? "model" : "warehouse",
                  m->unset ? m->name : wh->name, &err);
      report(r, "model", m->name, err.code, &err, NULL);
      continue;
    }
    int rc = bf_source_open(wh, cfg, &src, &err);
    if (rc == 0 && (rc = bf_source_query(src, m->sql, &cur, &err)))
      bf_error_prefix(&err, "%s:%d:%d: model '%s': SQL error", m->sql_loc.file, m->sql_loc.line,
                      m->sql_loc.col, m->name);
    for (size_t s = 0; rc == 0 && s < cfg->n_syncs; s++) {
      if (strcmp(cfg->syncs[s].model, m->name) || cfg->syncs[s].unset) continue;
      struct bf_mapping map;
      rc = bf_mapping_build(cfg, &cfg->syncs[s], m, cur->column_names, cur->ncols, &map, &err);
      if (rc == 0) bf_mapping_release(&map);
    }
    char note[64];
    snprintf(note, sizeof note, "%zu columns", cur ? cur->ncols : 0);
    report(r, "model", m->name, rc, &err, note);
    bf_cursor_free(cur);
    bf_source_close(src);
  }
}

static void check_destinations(struct bf_project *p, bool connect, struct report *r) {
  const struct bf_config *cfg = p->cfg;
  for (size_t i = 0; i < cfg->n_destinations; i++) {
    const struct bf_destination_config *dc = &cfg->destinations[i];
    const struct bf_destination_type *type = bf_destination_find(dc->type);
    struct bf_destination *d = NULL;
    struct bf_error err = {0};
    int rc;
    if (dc->unset) {
      unset_error(dc->unset, "destination", dc->name, &err);
      report(r, "destination", dc->name, err.code, &err, NULL);
      continue;
    }
    if (!connect && type) {
      char *what = bf_xasprintf("destination '%s' (%s)", dc->name, dc->type);
      rc = bf_params_check(dc->params, type->params, what, &err);
      free(what);
    } else {
      rc = bf_destination_open(dc, cfg, &d, &err); /* also reports an unknown type */
      if (rc == 0 && connect) rc = d->type->check(d, &err);
    }
    bf_destination_close(d);
    char note[96];
    snprintf(note, sizeof note, "%s%s", dc->type, connect ? "" : ", not contacted");
    report(r, "destination", dc->name, rc, &err, note);
  }
}

/* Schedules with the scheduler's own parser, so what validate accepts
 * `serve` runs; batch sizes with the rule the runner applies. */
static void check_syncs(struct bf_project *p, struct report *r) {
  for (size_t i = 0; i < p->cfg->n_syncs; i++) {
    const struct bf_sync_config *s = &p->cfg->syncs[i];
    const struct bf_destination_config *dc = bf_config_destination(p->cfg, s->destination);
    struct bf_error err = {0};
    int rc = bf_config_require_sync(p->cfg, s->name, &err);
    if (rc == 0) rc = bf_destination_check_batch_size(s, bf_destination_find(dc->type), &err);
    struct bf_cron cron;
    if (rc == 0 && s->schedule == BF_SCHEDULE_CRON && (rc = bf_cron_parse(s->cron, &cron, &err)))
      bf_error_prefix(&err, "%s:%d:%d: sync '%s': schedule", s->loc.file, s->loc.line, s->loc.col,
                      s->name);
    if (rc == 0 && s->state_warehouse) rc = bf_wstate_validate(p, s, &err);
    report(r, "sync", s->name, rc, &err, NULL);
  }
}

int bf_cmd_validate(struct bf_cli *cli, struct bf_error *err) {
  bool connect = bf_cli_flag(cli, "--connect");
  bool offline = bf_cli_flag(cli, "--offline"); /* the default now; kept for old scripts */
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  if (connect && offline)
    return bf_error_set(err, BF_E_USAGE, "--connect and --offline contradict each other"), 2;
  if (cli->argc) return bf_error_set(err, BF_E_USAGE, "validate takes no arguments"), 2;
  struct bf_project *p = NULL;
  /* Lazily: each value whose ${NAME} is unset fails its own check. */
  int rc = bf_cli_project_lazy(cli, &p, err);
  if (rc) {
    if (cli->json) {
      struct bf_buf out = {0};
      bf_buf_puts(&out, "{\"ok\":false,\"error\":");
      bf_json_cstr(&out, err->msg);
      bf_buf_puts(&out, ",\"checks\":[]}\n");
      fwrite(out.data, 1, out.len, stdout);
      bf_buf_release(&out);
    }
    return bf_code_exit_status(rc);
  }
  struct report r = {.json = cli->json};
  struct bf_error e = {0};
  const struct bf_node *unset =
      p->cfg->unset_globals ? p->cfg->unset_globals : p->cfg->unset_server;
  rc = unset ? unset_error(unset, "the top-level settings", NULL, &e) : 0;
  report(&r, "config", p->cfg->path, rc, &e, NULL);
  rc = check_state_dir(p, &e);
  report(&r, "state_dir", p->state_dir, rc, &e, NULL);
  check_syncs(p, &r);
  check_models(p, &r);
  check_destinations(p, connect, &r);
  /* What `serve` checks before it starts: the hooks and the alert rules. */
  rc = bf_hooks_check(p->cfg, &e);
  report(&r, "hooks", "hooks", rc, &e, NULL);
  struct bf_alerts *alerts = NULL;
  rc = bf_alerts_new(p->cfg, &alerts, &e);
  bf_alerts_free(alerts);
  report(&r, "alerts", "alerts", rc, &e, NULL);
  if (r.n_failed) {
    *err = r.first;
    if (r.n_failed > 1)
      bf_error_prefix(err, "%zu checks failed (each is listed above); the first", r.n_failed);
  }
  if (cli->json) {
    struct bf_buf out = {0};
    bf_buf_printf(&out, "{\"ok\":%s,\"error\":", r.n_failed ? "false" : "true");
    if (r.n_failed)
      bf_json_cstr(&out, r.first.msg);
    else
      bf_buf_puts(&out, "null");
    bf_buf_printf(&out, ",\"failed\":%zu,\"checks\":[", r.n_failed);
    bf_buf_append(&out, r.checks.data, r.checks.len);
    bf_buf_puts(&out, "]}\n");
    fwrite(out.data, 1, out.len, stdout);
    bf_buf_release(&out);
  } else if (r.n_failed == 0) {
    printf("valid: %zu warehouse%s, %zu model%s, %zu destination%s, %zu sync%s%s\n",
           p->cfg->n_warehouses, p->cfg->n_warehouses == 1 ? "" : "s", p->cfg->n_models,
           p->cfg->n_models == 1 ? "" : "s", p->cfg->n_destinations,
           p->cfg->n_destinations == 1 ? "" : "s", p->cfg->n_syncs, p->cfg->n_syncs == 1 ? "" : "s",
           connect ? "" : " (destinations not contacted; --connect checks them)");
  }
  int status = r.n_failed ? bf_code_exit_status(r.first.code) : 0;
  bf_buf_release(&r.checks);
  bf_project_free(p);
  return status;
}

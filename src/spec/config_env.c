/* ${NAME} resolved only for what a command touches (config.h).
 *
 * The file loads even when a variable is missing: the scalar that names it
 * keeps the variable's name (bf_node.unset_var) and the model or sync it is
 * in is not checked further. A command then asks for what it reads, so a
 * token missing for sync A does not stop `run B`, `runs` or `errors`. */
#include <stdio.h>
#include <string.h>

#include "spec/config.h"

const struct bf_node *bf_node_first_unset(const struct bf_node *n) {
  if (!n) return NULL;
  if (n->kind == BF_NODE_SCALAR) return n->unset_var ? n : NULL;
  for (size_t i = 0; i < n->n; i++) {
    const struct bf_node *u = bf_node_first_unset(n->items[i]);
    if (u) return u;
  }
  return NULL;
}

static int unset_error(const struct bf_node *u, const char *needed_by, struct bf_error *err) {
  return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: environment variable %s is not set%s%s%s",
                      u->loc.file, u->loc.line, u->loc.col, u->unset_var,
                      needed_by ? " (needed by " : "", needed_by ? needed_by : "",
                      needed_by ? ")" : "");
}

int bf_config_require_all(const struct bf_config *cfg, struct bf_error *err) {
  const struct bf_node *u = bf_node_first_unset(cfg->root);
  return u ? unset_error(u, NULL, err) : 0;
}

/* The warehouse write_back names for sync (its own, else the top level's). */
static const struct bf_warehouse_config *write_back_warehouse(const struct bf_config *cfg,
                                                              const char *sync) {
  const struct bf_node *own =
      bf_node_get(bf_node_get(bf_node_get(cfg->root, "syncs"), sync), "write_back");
  const struct bf_node *wb = own ? own : bf_node_get(cfg->root, "write_back");
  return bf_config_warehouse(cfg, bf_node_get_str(wb, "warehouse"));
}

int bf_config_require_sync(const struct bf_config *cfg, const char *name, struct bf_error *err) {
  const struct bf_sync_config *s = bf_config_sync(cfg, name);
  if (!s) return 0; /* the caller reports an unknown sync */
  char what[320];
  const struct bf_model_config *m = bf_config_model(cfg, s->model);
  const struct bf_node *u = NULL;
  if (m && m->unset) {
    snprintf(what, sizeof what, "sync '%s': model '%s'", name, m->name);
    u = m->unset;
  } else if (s->unset) {
    snprintf(what, sizeof what, "sync '%s'", name);
    u = s->unset;
  }
  const struct bf_warehouse_config *wh = m ? bf_config_warehouse(cfg, m->warehouse) : NULL;
  if (!u && wh && wh->unset) {
    snprintf(what, sizeof what, "sync '%s': warehouse '%s'", name, wh->name);
    u = wh->unset;
  }
  const struct bf_destination_config *d = bf_config_destination(cfg, s->destination);
  if (!u && d && d->unset) {
    snprintf(what, sizeof what, "sync '%s': destination '%s'", name, d->name);
    u = d->unset;
  }
  const struct bf_warehouse_config *wb = write_back_warehouse(cfg, name);
  if (!u && wb && wb->unset) {
    snprintf(what, sizeof what, "sync '%s': write-back warehouse '%s'", name, wb->name);
    u = wb->unset;
  }
  if (!u && cfg->unset_globals) {
    snprintf(what, sizeof what, "sync '%s'", name);
    u = cfg->unset_globals;
  }
  return u ? unset_error(u, what, err) : 0;
}

/* coordinator: {warehouse: NAME, lease: 15s, runners: 4} (docs/scale.md):
 * several `backflow serve` processes share the schedule through a
 * PostgreSQL warehouse. Every sync they share must keep its state there. */
#include <string.h>

#include "spec/config.h"
#include "spec/config_internal.h"

int bf_config_load_coordinator(struct bf_config *cfg, struct bf_error *err) {
  const struct bf_node *c = bf_node_get(cfg->root, "coordinator");
  cfg->coord_lease_ms = 15000;
  cfg->coord_runners = 4;
  if (!c) return 0;
  cfg->coord_loc = c->loc;
  if (c->kind != BF_NODE_MAP)
    return bf_config_loc_error(
        err, c->loc, "'coordinator' must be a mapping, e.g. coordinator: {warehouse: pg}");
  static const char *const keys[] = {"warehouse", "lease", "runners", NULL};
  int rc = bf_node_check_keys(c, "'coordinator'", keys, err);
  if (rc) return rc;
  const char *wh_name = bf_node_get_str(c, "warehouse");
  if (!wh_name)
    return bf_config_loc_error(err, c->loc,
                               "'coordinator' needs 'warehouse': the name of a postgres warehouse "
                               "whose database the workers share");
  const struct bf_warehouse_config *wh = bf_config_warehouse(cfg, wh_name);
  if (!wh || strcmp(wh->type, "postgres") != 0)
    return bf_config_loc_error(err, bf_node_get(c, "warehouse")->loc,
                               "coordinator warehouse '%s' %s; expected a postgres warehouse",
                               wh_name, wh ? "is not postgres" : "is not defined");
  cfg->coord_warehouse = (char *)wh->name;
  const struct bf_node *lease = bf_node_get(c, "lease");
  if (lease && (rc = bf_node_as_duration_ms(lease, &cfg->coord_lease_ms, err))) return rc;
  if (cfg->coord_lease_ms < 1000)
    return bf_config_loc_error(err, lease ? lease->loc : c->loc,
                               "coordinator lease must be at least 1s");
  long long runners = 4;
  const struct bf_node *rn = bf_node_get(c, "runners");
  if (rn && (rc = bf_node_as_int(rn, 1, 64, &runners, err))) return rc;
  cfg->coord_runners = (unsigned)runners;
  /* A worker's local state is invisible to the others: a sync they share
   * would be diffed against a different state on every machine. */
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    const struct bf_sync_config *s = &cfg->syncs[i];
    if (s->unset || s->state_warehouse) continue;
    return bf_config_loc_error(err, s->loc,
                               "sync '%s' is shared by the workers of 'coordinator' (%s:%d:%d) and "
                               "needs 'state: warehouse' (local state is not shared between "
                               "machines)",
                               s->name, c->loc.file, c->loc.line, c->loc.col);
  }
  return 0;
}

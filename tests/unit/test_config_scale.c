/* `state:` on a sync and `coordinator:` at the top level (docs/scale.md). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "spec/config.h"

static struct bf_config *parse(const char *yaml, struct bf_error *err) {
  struct bf_config *cfg = NULL;
  memset(err, 0, sizeof *err);
  bf_config_parse("t.yml", yaml, strlen(yaml), "/proj", &cfg, err);
  return cfg;
}

#define HEAD                                                                                       \
  "version: 1\n"                                                 /*  1 */                          \
  "warehouses:\n"                                                /*  2 */                          \
  "  pg: {type: postgres, dsn: \"postgresql://h/db\"}\n"         /*  3 */                          \
  "  lite: {type: sqlite, path: w.db}\n"                         /*  4 */                          \
  "models:\n"                                                    /*  5 */                          \
  "  m: {warehouse: pg, sql: SELECT 1 AS id, primary_key: id}\n" /*  6 */                          \
  "destinations:\n"                                              /*  7 */                          \
  "  out: {type: file, path: o.jsonl}\n"                         /*  8 */                          \
  "syncs:\n"                                                     /*  9 */

Test(config_scale, state_defaults_to_local_and_reads_warehouse) {
  struct bf_error err;
  struct bf_config *cfg = parse(HEAD "  a: {model: m, destination: out, match: {id: id}}\n"
                                     "  b: {model: m, destination: out, match: {id: id}, state: "
                                     "warehouse}\n"
                                     "  c: {model: m, destination: out, match: {id: id}, state: "
                                     "local}\n",
                                &err);
  cr_assert_not_null(cfg, "%s", err.msg);
  cr_assert_not(bf_config_sync(cfg, "a")->state_warehouse);
  cr_assert(bf_config_sync(cfg, "b")->state_warehouse);
  cr_assert_not(bf_config_sync(cfg, "c")->state_warehouse);
  cr_assert_null(cfg->coord_warehouse);
  bf_config_free(cfg);
}

Test(config_scale, state_errors_name_the_place) {
  struct bf_error err;
  cr_assert_null(
      parse(HEAD "  a: {model: m, destination: out, match: {id: id}, state: cloud}\n", &err));
  cr_assert_eq(err.code, BF_E_CONFIG);
  cr_assert_not_null(strstr(err.msg, "t.yml:10:"), "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, "must be local or warehouse"), "%s", err.msg);
  cr_assert_null(parse("version: 1\n"
                       "warehouses: {pg: {type: postgres, dsn: \"postgresql://h/db\"}}\n"
                       "models: {m: {warehouse: pg, sql: SELECT 1 AS id, primary_key: id,"
                       " live: {table: t, key: id}}}\n"
                       "destinations: {out: {type: file, path: o.jsonl}}\n"
                       "syncs: {a: {model: m, destination: out, match: {id: id}, state: warehouse,"
                       " schedule: live}}\n",
                       &err));
  cr_assert_not_null(strstr(err.msg, "not available for 'schedule: live'"), "%s", err.msg);
}

Test(config_scale, coordinator_reads_its_settings) {
  struct bf_error err;
  struct bf_config *cfg =
      parse(HEAD "  a: {model: m, destination: out, match: {id: id}, state: warehouse}\n"
                 "coordinator: {warehouse: pg, lease: 5s, runners: 2}\n",
            &err);
  cr_assert_not_null(cfg, "%s", err.msg);
  cr_assert_str_eq(cfg->coord_warehouse, "pg");
  cr_assert_eq(cfg->coord_lease_ms, 5000);
  cr_assert_eq(cfg->coord_runners, 2);
  bf_config_free(cfg);
  cfg = parse(HEAD "  a: {model: m, destination: out, match: {id: id}, state: warehouse}\n"
                   "coordinator: {warehouse: pg}\n",
              &err);
  cr_assert_not_null(cfg, "%s", err.msg);
  cr_assert_eq(cfg->coord_lease_ms, 15000);
  cr_assert_eq(cfg->coord_runners, 4);
  bf_config_free(cfg);
}

Test(config_scale, coordinator_needs_warehouse_state_on_every_sync) {
  struct bf_error err;
  cr_assert_null(parse(HEAD "  a: {model: m, destination: out, match: {id: id}, state: warehouse}\n"
                            "  b: {model: m, destination: out, match: {id: id}}\n"
                            "coordinator: {warehouse: pg}\n",
                       &err));
  cr_assert_eq(err.code, BF_E_CONFIG);
  cr_assert_not_null(strstr(err.msg, "t.yml:11:"), "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, "sync 'b' is shared"), "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, "(t.yml:12:"), "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, "needs 'state: warehouse'"), "%s", err.msg);
}

Test(config_scale, coordinator_errors) {
  struct bf_error err;
  const char *sync = "  a: {model: m, destination: out, match: {id: id}, state: warehouse}\n";
  char yaml[2048];
  snprintf(yaml, sizeof yaml, "%s%scoordinator: {warehouse: lite}\n", HEAD, sync);
  cr_assert_null(parse(yaml, &err));
  cr_assert_not_null(strstr(err.msg, "is not postgres"), "%s", err.msg);
  snprintf(yaml, sizeof yaml, "%s%scoordinator: {warehouse: nope}\n", HEAD, sync);
  cr_assert_null(parse(yaml, &err));
  cr_assert_not_null(strstr(err.msg, "is not defined"), "%s", err.msg);
  snprintf(yaml, sizeof yaml, "%s%scoordinator: {warehouse: pg, lease: 500ms}\n", HEAD, sync);
  cr_assert_null(parse(yaml, &err));
  cr_assert_not_null(strstr(err.msg, "at least 1s"), "%s", err.msg);
  snprintf(yaml, sizeof yaml, "%s%scoordinator: {warehouse: pg, runners: 0}\n", HEAD, sync);
  cr_assert_null(parse(yaml, &err));
  snprintf(yaml, sizeof yaml, "%s%scoordinator: {warehouse: pg, leases: 5s}\n", HEAD, sync);
  cr_assert_null(parse(yaml, &err));
  cr_assert_not_null(strstr(err.msg, "unknown key 'leases'"), "%s", err.msg);
  snprintf(yaml, sizeof yaml, "%s%scoordinator: {}\n", HEAD, sync);
  cr_assert_null(parse(yaml, &err));
  cr_assert_not_null(strstr(err.msg, "needs 'warehouse'"), "%s", err.msg);
}

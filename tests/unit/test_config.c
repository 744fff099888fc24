/* Tests for src/spec/config.c: parsing backflow.yml into typed structs and
 * reporting every mistake at its file:line:col. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec/config.h"

/* Parses yaml as "t.yml"; the test fails if it does not parse. */
static struct bf_config *parse_ok(const char *yaml) {
  struct bf_error err = {0};
  struct bf_config *cfg = NULL;
  int rc = bf_config_parse("t.yml", yaml, strlen(yaml), "/proj", &cfg, &err);
  cr_assert_eq(rc, 0, "unexpected error: %s", err.msg);
  cr_assert_not_null(cfg);
  cr_assert_eq(err.code, 0);
  return cfg;
}

/* Parses yaml as "t.yml"; the test fails if it parses. Returns the error. */
static struct bf_error parse_err(const char *yaml) {
  struct bf_error err = {0};
  struct bf_config *cfg = (struct bf_config *)1;
  int rc = bf_config_parse("t.yml", yaml, strlen(yaml), NULL, &cfg, &err);
  cr_assert_eq(rc, BF_E_CONFIG, "expected a config error, got %d (%s)", rc, err.msg);
  cr_assert_eq(err.code, BF_E_CONFIG);
  cr_assert_null(cfg, "a failed parse must not return a config");
  cr_assert_null(strchr(err.msg, '\n'), "message must be one line: %s", err.msg);
  return err;
}

#define assert_msg(yaml, expected)                                                                 \
  do {                                                                                             \
    struct bf_error e_ = parse_err(yaml);                                                          \
    cr_assert_str_eq(e_.msg, expected);                                                            \
  } while (0)

#define assert_msg_has(yaml, loc_prefix, fragment)                                                 \
  do {                                                                                             \
    struct bf_error e_ = parse_err(yaml);                                                          \
    cr_assert_eq(strncmp(e_.msg, loc_prefix, strlen(loc_prefix)), 0,                               \
                 "message '%s' does not start with '%s'", e_.msg, loc_prefix);                     \
    cr_assert_not_null(strstr(e_.msg, fragment), "message '%s' lacks '%s'", e_.msg, fragment);     \
  } while (0)

/* The example from design.md §3, verbatim. */
static const char design_example[] =
    "version: 1\n"
    "state_dir: .backflow                # default\n"
    "server: {listen: \"127.0.0.1:8420\", token: \"${BACKFLOW_TOKEN}\"}   # for `backflow serve`\n"
    "warehouses:\n"
    "  local: {type: sqlite, path: warehouse.db}          # paths relative to the project folder\n"
    "  pg:    {type: postgres, dsn: \"${PG_DSN}\"}\n"
    "models:\n"
    "  vip_users:\n"
    "    warehouse: local\n"
    "    sql: SELECT id, email, first_name, ltv FROM users WHERE ltv > 1000\n"
    "    primary_key: id\n"
    "    pii: {email: email, first_name: name}          # column: kind "
    "(email|phone|name|address|ip|id|other)\n"
    "    live: {table: users, key: id}                  # for `schedule: live`: base table and its "
    "key\n"
    "destinations:\n"
    "  crm:  {type: hubspot, token: \"${HUBSPOT_TOKEN}\"} # every HTTP destination also takes "
    "base_url\n"
    "  hook: {type: webhook, url: \"http://127.0.0.1:9000/in\", signing_secret: "
    "\"${HOOK_SECRET}\"}\n"
    "  out:  {type: file, path: out/vip.jsonl}          # JSON Lines, one event per line\n"
    "syncs:\n"
    "  vip_to_hook:\n"
    "    model: vip_users\n"
    "    destination: hook\n"
    "    mode: mirror               # upsert (default) | update | insert | mirror (upsert + delete "
    "removed)\n"
    "    object: contacts           # destination object, where the destination has several\n"
    "    match: {user_id: id}       # destination identifier field: model column\n"
    "    fields: {email: email, first_name: first_name, lifetime_value: ltv}\n"
    "    constants: {source: backflow}\n"
    "    schedule: {every: 15m}     # or {cron: \"0 * * * *\"} or {after: other_sync} or live\n"
    "    pii_policy: {first_name: drop}   # per PII column: allow (default) | hash | drop\n";

static void set_example_env(void) {
  setenv("BACKFLOW_TOKEN", "tok-123", 1);
  setenv("PG_DSN", "postgres://u:p@db/x", 1);
  setenv("HUBSPOT_TOKEN", "hs-secret", 1);
  setenv("HOOK_SECRET", "whsec_abc", 1);
}

/* A small valid project; tests append sync keys after line 16. */
#define BASE                                                                                       \
  "version: 1\n"                                                 /*  1 */                          \
  "warehouses:\n"                                                /*  2 */                          \
  "  local: {type: sqlite, path: warehouse.db}\n"                /*  3 */                          \
  "models:\n"                                                    /*  4 */                          \
  "  vip_users:\n"                                               /*  5 */                          \
  "    warehouse: local\n"                                       /*  6 */                          \
  "    sql: SELECT id, email FROM users\n"                       /*  7 */                          \
  "    primary_key: id\n"                                        /*  8 */                          \
  "    pii: {email: email, phone: phone}\n"                      /*  9 */                          \
  "destinations:\n"                                              /* 10 */                          \
  "  hook: {type: webhook, url: \"http://127.0.0.1:9000/in\"}\n" /* 11 */                          \
  "syncs:\n"                                                     /* 12 */                          \
  "  vip_to_hook:\n"                                             /* 13 */                          \
  "    model: vip_users\n"                                       /* 14 */                          \
  "    destination: hook\n"                                      /* 15 */                          \
  "    match: {user_id: id}\n"                                   /* 16 */

/* ---------------------------------------------------------------------- */
/* Valid configurations */

Test(config, design_example_parses_with_every_value) {
  set_example_env();
  struct bf_config *cfg = parse_ok(design_example);

  cr_assert_str_eq(cfg->path, "t.yml");
  cr_assert_str_eq(cfg->dir, "/proj");
  cr_assert_eq(cfg->version, 1);
  cr_assert_str_eq(cfg->state_dir, ".backflow");
  cr_assert_null(cfg->secret);
  cr_assert_str_eq(cfg->server_listen, "127.0.0.1:8420");
  cr_assert_str_eq(cfg->server_token, "tok-123");

  cr_assert_eq(cfg->n_warehouses, 2);
  cr_assert_str_eq(cfg->warehouses[0].name, "local");
  cr_assert_str_eq(cfg->warehouses[0].type, "sqlite");
  cr_assert_str_eq(bf_node_get_str(cfg->warehouses[0].params, "path"), "warehouse.db");
  cr_assert_eq(cfg->warehouses[0].loc.line, 5);
  cr_assert_eq(cfg->warehouses[0].loc.col, 3);
  const struct bf_warehouse_config *pg = bf_config_warehouse(cfg, "pg");
  cr_assert_not_null(pg);
  cr_assert_str_eq(pg->type, "postgres");
  cr_assert_str_eq(bf_node_get_str(pg->params, "dsn"), "postgres://u:p@db/x");

  cr_assert_eq(cfg->n_models, 1);
  const struct bf_model_config *m = bf_config_model(cfg, "vip_users");
  cr_assert_not_null(m);
  cr_assert_str_eq(m->warehouse, "local");
  cr_assert_str_eq(m->sql, "SELECT id, email, first_name, ltv FROM users WHERE ltv > 1000");
  cr_assert_str_eq(m->primary_key, "id");
  cr_assert_eq(m->pii.n, 2);
  cr_assert_str_eq(m->pii.items[0].key, "email");
  cr_assert_str_eq(m->pii.items[0].value, "email");
  cr_assert_str_eq(bf_pairs_get(&m->pii, "first_name"), "name");
  cr_assert_null(bf_pairs_get(&m->pii, "ltv"));
  cr_assert_eq(m->n_live, 1);
  cr_assert_str_eq(m->live[0].table, "users");
  cr_assert_str_eq(m->live[0].key, "id");
  cr_assert_eq(m->loc.line, 8);
  cr_assert_eq(m->loc.col, 3);
  cr_assert_eq(m->sql_loc.line, 10);
  cr_assert_eq(m->sql_loc.col, 10);
  cr_assert_str_eq(m->sql_loc.file, "t.yml");

  cr_assert_eq(cfg->n_destinations, 3);
  const struct bf_destination_config *hook = bf_config_destination(cfg, "hook");
  cr_assert_not_null(hook);
  cr_assert_str_eq(hook->type, "webhook");
  cr_assert_eq(hook->type_loc.line, 16);
  cr_assert_eq(hook->type_loc.col, 16);
  cr_assert_str_eq(bf_node_get_str(hook->params, "signing_secret"), "whsec_abc");
  cr_assert_str_eq(bf_config_destination(cfg, "crm")->type, "hubspot");
  cr_assert_str_eq(bf_config_destination(cfg, "out")->type, "file");
  cr_assert_null(bf_config_destination(cfg, "nope"));

  cr_assert_eq(cfg->n_syncs, 1);
  const struct bf_sync_config *s = bf_config_sync(cfg, "vip_to_hook");
  cr_assert_not_null(s);
  cr_assert_str_eq(s->model, "vip_users");
  cr_assert_str_eq(s->destination, "hook");
  cr_assert_eq(s->mode, BF_MODE_MIRROR);
  cr_assert_str_eq(bf_sync_mode_name(s->mode), "mirror");
  cr_assert_str_eq(s->object, "contacts");
  cr_assert_eq(s->match.n, 1);
  cr_assert_str_eq(s->match.items[0].key, "user_id");
  cr_assert_str_eq(s->match.items[0].value, "id");
  cr_assert_eq(s->fields.n, 3);
  const char *fk[] = {"email", "first_name", "lifetime_value"};
  const char *fv[] = {"email", "first_name", "ltv"};
  for (size_t i = 0; i < 3; i++) {
    cr_assert_str_eq(s->fields.items[i].key, fk[i]);
    cr_assert_str_eq(s->fields.items[i].value, fv[i]);
  }
  cr_assert_str_eq(bf_pairs_get(&s->constants, "source"), "backflow");
  cr_assert_eq(s->schedule, BF_SCHEDULE_EVERY);
  cr_assert_eq(s->every_ms, 15 * 60 * 1000);
  cr_assert_str_eq(bf_pairs_get(&s->pii_policy, "first_name"), "drop");
  cr_assert_eq(s->batch_size, 0);
  cr_assert_eq(s->loc.line, 19);
  cr_assert_eq(s->model_loc.line, 20);
  cr_assert_eq(s->model_loc.col, 12);
  cr_assert_eq(s->mode_loc.line, 22);

  char *p = bf_config_path(cfg, "warehouse.db");
  cr_assert_str_eq(p, "/proj/warehouse.db");
  free(p);
  p = bf_config_path(cfg, "/abs/x.db");
  cr_assert_str_eq(p, "/abs/x.db");
  free(p);
  bf_config_free(cfg);
}

Test(config, defaults_for_a_minimal_project) {
  struct bf_config *cfg = parse_ok(BASE);
  cr_assert_eq(cfg->version, 1);
  cr_assert_str_eq(cfg->state_dir, ".backflow");
  cr_assert_str_eq(cfg->server_listen, "127.0.0.1:8420");
  cr_assert_null(cfg->server_token);
  cr_assert_null(cfg->secret);
  const struct bf_sync_config *s = &cfg->syncs[0];
  cr_assert_eq(s->mode, BF_MODE_UPSERT);
  cr_assert_eq(s->schedule, BF_SCHEDULE_NONE);
  cr_assert_eq(s->batch_size, 0);
  cr_assert_null(s->object);
  cr_assert_eq(s->fields.n, 0);
  cr_assert_eq(s->constants.n, 0);
  cr_assert_eq(s->pii_policy.n, 0);
  cr_assert_eq(cfg->models[0].n_live, 0);
  bf_config_free(cfg);
}

Test(config, version_may_be_omitted_and_dir_defaults_to_dot) {
  const char *yaml = "state_dir: /var/lib/bf\n";
  struct bf_error err = {0};
  struct bf_config *cfg = NULL;
  cr_assert_eq(bf_config_parse("t.yml", yaml, strlen(yaml), NULL, &cfg, &err), 0, "%s", err.msg);
  cr_assert_eq(cfg->version, 1);
  cr_assert_str_eq(cfg->dir, ".");
  cr_assert_str_eq(cfg->state_dir, "/var/lib/bf");
  cr_assert_eq(cfg->n_syncs, 0);
  char *p = bf_config_path(cfg, "x.db");
  cr_assert_str_eq(p, "./x.db");
  free(p);
  bf_config_free(cfg);
}

Test(config, null_sections_are_empty_maps) {
  struct bf_config *cfg = parse_ok(BASE "    fields:\n    constants: ~\n    pii_policy:\n"
                                        "    schedule:\nwrite_back:\nalerts:\n");
  cr_assert_eq(cfg->syncs[0].fields.n, 0);
  cr_assert_eq(cfg->syncs[0].constants.n, 0);
  cr_assert_eq(cfg->syncs[0].schedule, BF_SCHEDULE_NONE);
  bf_config_free(cfg);
}

Test(config, all_sync_options) {
  struct bf_config *cfg = parse_ok(BASE "    mode: update\n"
                                        "    fields: {mail: email, tel: phone}\n"
                                        "    constants: {source: backflow, n: 7, empty: ''}\n"
                                        "    pii_policy: {email: hash, phone: drop}\n"
                                        "    batch_size: 500\n"
                                        "    description: VIPs to the hook\n"
                                        "    write_back: {table: bf_runs, anything: [1, 2]}\n"
                                        "    alerts: [{on: failure}]\n"
                                        "  nightly:\n"
                                        "    model: vip_users\n"
                                        "    destination: hook\n"
                                        "    mode: insert\n"
                                        "    match: {user_id: id}\n"
                                        "    schedule: {cron: \" 0  3 * * 1-5 \"}\n"
                                        "  follow:\n"
                                        "    model: vip_users\n"
                                        "    destination: hook\n"
                                        "    match: {user_id: id}\n"
                                        "    schedule: {after: nightly}\n"
                                        "  by_hand:\n"
                                        "    model: vip_users\n"
                                        "    destination: hook\n"
                                        "    mode: upsert\n"
                                        "    match: {user_id: id}\n"
                                        "    schedule: manual\n"
                                        "write_back: {warehouse: local}\n"
                                        "alerts: {webhook: \"http://x\"}\n");
  const struct bf_sync_config *s = bf_config_sync(cfg, "vip_to_hook");
  cr_assert_eq(s->mode, BF_MODE_UPDATE);
  cr_assert_eq(s->fields.n, 2);
  cr_assert_str_eq(bf_pairs_get(&s->constants, "n"), "7");
  cr_assert_str_eq(bf_pairs_get(&s->constants, "empty"), "");
  cr_assert_str_eq(bf_pairs_get(&s->pii_policy, "email"), "hash");
  cr_assert_eq(s->batch_size, 500);
  const struct bf_sync_config *n = bf_config_sync(cfg, "nightly");
  cr_assert_eq(n->mode, BF_MODE_INSERT);
  cr_assert_eq(n->schedule, BF_SCHEDULE_CRON);
  cr_assert_str_eq(n->cron, " 0  3 * * 1-5 ");
  const struct bf_sync_config *f = bf_config_sync(cfg, "follow");
  cr_assert_eq(f->schedule, BF_SCHEDULE_AFTER);
  cr_assert_str_eq(f->after, "nightly");
  cr_assert_eq(bf_config_sync(cfg, "by_hand")->schedule, BF_SCHEDULE_NONE);
  cr_assert_null(bf_config_sync(cfg, "nope"));
  /* Untyped sections stay reachable through the tree. */
  const struct bf_node *wb = bf_node_get(cfg->root, "write_back");
  cr_assert_str_eq(bf_node_get_str(wb, "warehouse"), "local");
  bf_config_free(cfg);
}

Test(config, live_schedule_needs_model_live) {
  struct bf_config *cfg =
      parse_ok("warehouses: {w: {type: sqlite}}\n"
               "models:\n"
               "  m: {warehouse: w, sql: s, primary_key: id,\n"
               "      live: {table: users, key: id}}\n"
               "destinations: {d: {type: file}}\n"
               "syncs:\n"
               "  s: {model: m, destination: d, match: {k: id}, schedule: live}\n");
  cr_assert_eq(cfg->syncs[0].schedule, BF_SCHEDULE_LIVE);
  bf_config_free(cfg);

  assert_msg(BASE "    schedule: live\n",
             "t.yml:17:15: 'schedule: live' in sync 'vip_to_hook' needs model 'vip_users' to "
             "say which table to watch; expected 'live: {table: ..., key: ...}' in model "
             "'vip_users'");
}

Test(config, node_tree_keeps_locations_and_quoting) {
  struct bf_config *cfg = parse_ok("alerts:\n"
                                   "  - plain\n"
                                   "  - 'single'\n"
                                   "  - {k: \"double\"}\n");
  const struct bf_node *a = bf_node_get(cfg->root, "alerts");
  cr_assert_eq(a->kind, BF_NODE_SEQ);
  cr_assert_eq(a->n, 3);
  cr_assert_eq(a->items[0]->kind, BF_NODE_SCALAR);
  cr_assert_str_eq(a->items[0]->scalar, "plain");
  cr_assert_not(a->items[0]->quoted);
  cr_assert(a->items[1]->quoted);
  cr_assert_eq(a->items[1]->loc.line, 3);
  cr_assert_eq(a->items[1]->loc.col, 5);
  const struct bf_node *m = a->items[2];
  cr_assert_eq(m->kind, BF_NODE_MAP);
  cr_assert_str_eq(m->keys[0], "k");
  cr_assert_eq(m->key_locs[0].line, 4);
  cr_assert_eq(m->key_locs[0].col, 6);
  cr_assert(m->items[0]->quoted);
  cr_assert_eq(cfg->root->key_locs[0].line, 1);
  cr_assert_eq(cfg->root->key_locs[0].col, 1);
  cr_assert_null(bf_node_get(m, "missing"));
  cr_assert_null(bf_node_get(a, "k"), "bf_node_get on a sequence is NULL");
  cr_assert_null(bf_node_get_str(cfg->root, "alerts"), "not a scalar");
  bf_config_free(cfg);
}

/* ---------------------------------------------------------------------- */
/* Environment substitution */

Test(config, env_substitution_and_escape) {
  setenv("BF_T_HOST", "db.example", 1);
  setenv("BF_T_EMPTY", "", 1);
  struct bf_config *cfg =
      parse_ok("warehouses:\n"
               "  pg: {type: postgres, dsn: \"host=${BF_T_HOST} port=5432\", x: '$${BF_T_HOST}',\n"
               "       y: a$$b$, z: \"${BF_T_HOST}${BF_T_HOST}\", e: \"[${BF_T_EMPTY}]\"}\n"
               "alerts:\n  ${BF_T_HOST}: 1\n");
  const struct bf_node *p = cfg->warehouses[0].params;
  cr_assert_str_eq(bf_node_get_str(p, "dsn"), "host=db.example port=5432");
  cr_assert(bf_node_get(p, "dsn")->from_env);
  cr_assert_str_eq(bf_node_get_str(p, "x"), "${BF_T_HOST}");
  cr_assert_not(bf_node_get(p, "x")->from_env);
  cr_assert_str_eq(bf_node_get_str(p, "y"), "a$$b$");
  cr_assert_str_eq(bf_node_get_str(p, "z"), "db.exampledb.example");
  cr_assert_str_eq(bf_node_get_str(p, "e"), "[]");
  /* Keys are not substituted. */
  cr_assert_str_eq(bf_node_get(cfg->root, "alerts")->keys[0], "${BF_T_HOST}");
  bf_config_free(cfg);
}

Test(config, env_keys_are_not_substituted_but_names_are_checked) {
  assert_msg("warehouses:\n  ${X}: {type: sqlite}\n",
             "t.yml:2:3: invalid warehouse name '${X}'; expected letters, digits, '_' and '-' "
             "only");
}

/* A missing variable is refused only where a command needs it (issue 16):
 * the file loads, and the require calls name it at its place. */
Test(config, env_missing_variable) {
  unsetenv("BACKFLOW_SECRET");
  unsetenv("BF_TEST_HOOK_URL");
  struct bf_config *cfg =
      parse_ok("version: 1\nsecret: abc-${BACKFLOW_SECRET}\n"
               "warehouses: {w: {type: sqlite, path: w.db}}\n"
               "models: {m: {warehouse: w, sql: SELECT 1 AS id, primary_key: id}}\n"
               "destinations:\n"
               "  f: {type: file, path: o.jsonl}\n"
               "  h: {type: webhook, url: \"${BF_TEST_HOOK_URL}\"}\n"
               "syncs:\n"
               "  a: {model: m, destination: h, match: {id: id}}\n"
               "  b: {model: m, destination: f, match: {id: id}}\n");
  cr_assert_null(cfg->secret);
  struct bf_error err = {0};
  cr_assert_eq(bf_config_require_all(cfg, &err), BF_E_CONFIG);
  cr_assert_str_eq(err.msg, "t.yml:2:9: environment variable BACKFLOW_SECRET is not set");
  cr_assert_eq(bf_config_require_sync(cfg, "a", &err), BF_E_CONFIG);
  cr_assert_str_eq(err.msg, "t.yml:7:27: environment variable BF_TEST_HOOK_URL is not set (needed "
                            "by sync 'a': destination 'h')");
  cr_assert_eq(bf_config_require_sync(cfg, "b", &err), BF_E_CONFIG);
  cr_assert_str_eq(
      err.msg, "t.yml:2:9: environment variable BACKFLOW_SECRET is not set (needed by sync 'b')");
  bf_config_free(cfg);
  /* What every command needs is still refused at load. */
  assert_msg("version: 1\nstate_dir: \"${BACKFLOW_SECRET}\"\n",
             "t.yml:2:12: environment variable BACKFLOW_SECRET is not set");
}

Test(config, env_invalid_references) {
  assert_msg("secret: \"${1ABC}\"\n",
             "t.yml:1:9: invalid environment variable reference ${1ABC}; expected ${NAME} with "
             "NAME made of letters, digits and '_', not starting with a digit (write $${ for a "
             "literal ${)");
  assert_msg_has("secret: ${A:-default}\n", "t.yml:1:9: ", "reference ${A:-default}");
  assert_msg_has("secret: ${}\n", "t.yml:1:9: ", "reference ${}");
  assert_msg("secret: \"${OPEN\"\n",
             "t.yml:1:9: unterminated '${'; expected ${NAME} (write $${ for a literal ${)");
}

Test(config, env_values_never_appear_in_messages) {
  setenv("BF_T_SECRET", "hunter2-very-secret", 1);
  const char *cases[] = {
      BASE "    mode: ${BF_T_SECRET}\n",
      BASE "    batch_size: ${BF_T_SECRET}\n",
      BASE "    schedule: {every: \"${BF_T_SECRET}\"}\n",
      BASE "    schedule: {cron: \"${BF_T_SECRET}\"}\n",
      BASE "    schedule: \"${BF_T_SECRET}\"\n",
      BASE "    pii_policy: {email: \"${BF_T_SECRET}\"}\n",
      "version: ${BF_T_SECRET}\n",
      "server: {listen: \"${BF_T_SECRET}\"}\n",
      ("warehouses: {w: {type: sqlite}}\n"
       "models: {m: {warehouse: \"${BF_T_SECRET}\", sql: s, primary_key: id}}\n"),
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct bf_error e = parse_err(cases[i]);
    cr_assert_null(strstr(e.msg, "hunter2"), "case %zu leaks the value: %s", i, e.msg);
    cr_assert_not_null(strstr(e.msg, "from the environment"), "case %zu: %s", i, e.msg);
  }
}

Test(config, empty_secret_from_env_is_an_error) {
  setenv("BF_T_EMPTY", "", 1);
  assert_msg_has("secret: \"${BF_T_EMPTY}\"\n",
                 "t.yml:1:9: ", "'secret' is empty (its environment variable is empty)");
  /* `secret:` with no value means "generate one". */
  struct bf_config *cfg = parse_ok("secret:\n");
  cr_assert_null(cfg->secret);
  bf_config_free(cfg);
}

/* ---------------------------------------------------------------------- */
/* Keys */

Test(config, unknown_key_did_you_mean) {
  assert_msg(BASE "    fieds: {email: email}\n",
             "t.yml:17:5: unknown key 'fieds' in sync 'vip_to_hook'; did you mean 'fields'? "
             "(known: model, destination, mode, object, match, fields, constants, schedule, "
             "pii_policy, batch_size, reject_threshold, description, write_back, alerts, "
             "reconcile, state)");
  assert_msg_has("sycns: {}\n", "t.yml:1:1: ",
                 "unknown key 'sycns' in the top level; did you mean 'syncs'? (known: version,");
  assert_msg_has(BASE "    zzzzzzz: 1\n",
                 "t.yml:17:5: ", "unknown key 'zzzzzzz' in sync 'vip_to_hook' (known: model,");
  assert_msg_has("server: {listn: x}\n",
                 "t.yml:1:10: ", "unknown key 'listn' in 'server'; did you mean 'listen'?");
  assert_msg_has(BASE "    schedule: {evry: 1h}\n", "t.yml:17:16: ",
                 "unknown key 'evry' in 'schedule' of sync 'vip_to_hook'; did you mean 'every'?");
}

Test(config, duplicate_key_is_reported_at_the_second) {
  assert_msg(BASE "    model: vip_users\n",
             "t.yml:17:5: duplicate key 'model' (first given at line 14, column 5); expected "
             "each key once in a mapping");
  assert_msg("alerts: {a: 1, b: 2, a: 3}\n",
             "t.yml:1:22: duplicate key 'a' (first given at line 1, column 10); expected each "
             "key once in a mapping");
}

Test(config, duplicate_detection_in_a_big_map) {
  /* 5000 distinct keys then a repeat of key 1234: exercises the hash set. */
  size_t cap = 5002 * 16, o = 0;
  char *yaml = malloc(cap);
  o += (size_t)snprintf(yaml + o, cap - o, "alerts:\n");
  for (int i = 0; i < 5000; i++) o += (size_t)snprintf(yaml + o, cap - o, "  k%d: 1\n", i);
  snprintf(yaml + o, cap - o, "  k1234: 2\n");
  struct bf_error e = parse_err(yaml);
  cr_assert_str_eq(e.msg, "t.yml:5002:3: duplicate key 'k1234' (first given at line 1236, "
                          "column 3); expected each key once in a mapping");
  free(yaml);
}

Test(config, non_string_keys_are_rejected) {
  assert_msg("alerts:\n  ? [a, b]\n  : c\n",
             "t.yml:2:5: found a sequence used as a key; expected a string key");
  assert_msg("alerts: {{a: 1}: c}\n",
             "t.yml:1:10: found a mapping used as a key; expected a string key");
  assert_msg("alerts: {\"\": c}\n",
             "t.yml:1:10: found an empty (null) key; expected a name before ':'");
  assert_msg_has("alerts:\n  ~: c\n", "t.yml:2:3: ", "empty (null) key");
}

Test(config, anchors_aliases_and_merge_keys_are_rejected) {
  assert_msg("alerts:\n  a: &base {x: 1}\n  b: *base\n",
             "t.yml:2:6: YAML anchors (&base) are not supported; expected each value written "
             "out in full");
  assert_msg("alerts: {a: 1, b: *base}\n",
             "t.yml:1:19: YAML aliases (*base) are not supported; expected each value written "
             "out in full");
  assert_msg("alerts:\n  b:\n    <<: {x: 1}\n",
             "t.yml:3:5: YAML merge keys (<<) are not supported; expected each key written out "
             "in full");
  assert_msg_has("alerts: {&k a: 1}\n", "t.yml:1:10: ", "YAML anchors (&k)");
  /* A quoted "<<" is an ordinary key. */
  struct bf_config *cfg = parse_ok("alerts: {\"<<\": 1}\n");
  bf_config_free(cfg);
}

Test(config, tags_other_than_plain_are_rejected) {
  assert_msg("alerts: !!int 3\n",
             "t.yml:1:9: YAML tags (tag:yaml.org,2002:int) are not supported; expected a plain "
             "value without a tag");
  struct bf_config *cfg = parse_ok("alerts: !!str 3\n");
  bf_config_free(cfg);
}

/* ---------------------------------------------------------------------- */
/* Structure and references */

Test(config, scalar_where_a_mapping_is_expected) {
  assert_msg(BASE "    fields: email\n",
             "t.yml:17:13: expected a mapping for 'fields' in sync 'vip_to_hook', found a "
             "scalar");
  assert_msg("warehouses: [a, b]\n",
             "t.yml:1:13: expected a mapping for 'warehouses', found a sequence");
  assert_msg("just a string\n",
             "t.yml:1:1: expected a mapping of settings (version, warehouses, models, "
             "destinations, syncs) at the top level, found a scalar");
}

Test(config, unknown_sync_model_reference) {
  const char *yaml = "version: 1\n"
                     "warehouses:\n"
                     "  local: {type: sqlite, path: warehouse.db}\n"
                     "models:\n"
                     "  vip_users: {warehouse: local, sql: SELECT 1, primary_key: id}\n"
                     "destinations:\n"
                     "  hook: {type: webhook}\n"
                     "syncs:\n"
                     "  s1:\n"
                     "    model: vip_usrs\n"
                     "    destination: hook\n"
                     "    match: {k: id}\n";
  assert_msg(yaml, "t.yml:10:12: unknown model 'vip_usrs' in sync 's1'; did you mean "
                   "'vip_users'? (defined: vip_users)");
  assert_msg("warehouses: {w: {type: sqlite}}\n"
             "models: {m: {warehouse: w, sql: s, primary_key: id}}\n"
             "destinations: {d: {type: file}}\n"
             "syncs: {s: {model: m, destination: zzz, match: {k: id}}}\n",
             "t.yml:4:36: unknown destination 'zzz' in sync 's'; expected one of: d");
  assert_msg("models: {m: {warehouse: w, sql: s, primary_key: id}}\n",
             "t.yml:1:25: unknown warehouse 'w' in model 'm'; expected a name defined under "
             "'warehouses', but none are defined");
}

Test(config, required_keys) {
  assert_msg("warehouses: {w: {type: sqlite}}\n"
             "models:\n"
             "  m:\n"
             "    warehouse: w\n"
             "    primary_key: id\n",
             "t.yml:3:3: model 'm' is missing 'sql'; expected the SQL query that selects the "
             "rows");
  assert_msg("warehouses: {w: {path: x.db}}\n",
             "t.yml:1:14: warehouse 'w' is missing 'type'; expected the warehouse type, e.g. "
             "sqlite or postgres");
  assert_msg("destinations:\n  d:\n",
             "t.yml:2:3: destination 'd' has no settings; expected a mapping with at least "
             "'type'");
  assert_msg("warehouses: {w: {type: sqlite}}\n"
             "models:\n"
             "  m:\n"
             "    warehouse: w\n"
             "    sql:\n"
             "    primary_key: id\n",
             "t.yml:5:5: 'sql' in model 'm' has no value; expected the SQL query that selects "
             "the rows");
  assert_msg_has("warehouses: {w: {type: [a]}}\n", "t.yml:1:24: ",
                 "'type' in warehouse 'w' is a sequence; expected a string: the warehouse "
                 "type");
  assert_msg_has("warehouses: {w: {type: sqlite}}\n"
                 "models: {m: {warehouse: w, sql: s, primary_key: id, live: {table: t}}}\n",
                 "t.yml:2:53: ", "'live' of model 'm' is missing 'key'");
}

Test(config, match_is_required_and_not_empty) {
  const char *head = "warehouses: {w: {type: sqlite}}\n"
                     "models: {m: {warehouse: w, sql: s, primary_key: id}}\n"
                     "destinations: {d: {type: file}}\n"
                     "syncs:\n"
                     "  s:\n"
                     "    model: m\n"
                     "    destination: d\n";
  char yaml[1024];
  snprintf(yaml, sizeof yaml, "%s", head);
  assert_msg_has(yaml, "t.yml:5:3: ", "sync 's' is missing 'match'");
  snprintf(yaml, sizeof yaml, "%s    match: {}\n", head);
  assert_msg_has(yaml, "t.yml:8:5: ", "'match' in sync 's' is empty; expected at least one");
  snprintf(yaml, sizeof yaml, "%s    match:\n", head);
  assert_msg_has(yaml, "t.yml:8:5: ", "'match' in sync 's' is empty");
  snprintf(yaml, sizeof yaml, "%s    match: {k: ''}\n", head);
  assert_msg_has(yaml, "t.yml:8:13: ",
                 "expected a model column for 'k' in 'match' of sync "
                 "'s', found an empty value");
}

Test(config, field_in_match_and_fields_is_reported_at_the_second) {
  assert_msg(BASE "    fields: {email: email, user_id: id}\n",
             "t.yml:17:28: destination field 'user_id' in 'fields' of sync 'vip_to_hook' is "
             "already set in 'match' (line 16, column 13); expected each destination field "
             "once across match, fields and constants");
  /* Order in the file decides which one is "second". */
  assert_msg_has("warehouses: {w: {type: sqlite}}\n"
                 "models: {m: {warehouse: w, sql: s, primary_key: id}}\n"
                 "destinations: {d: {type: file}}\n"
                 "syncs:\n"
                 "  s:\n"
                 "    constants: {src: x}\n"
                 "    model: m\n"
                 "    destination: d\n"
                 "    match: {src: id}\n",
                 "t.yml:9:13: ", "'src' in 'match' of sync 's' is already set in 'constants'");
  assert_msg_has(BASE "    fields: {a: email}\n    constants: {a: x}\n", "t.yml:18:17: ",
                 "'a' in 'constants' of sync 'vip_to_hook' is already set in 'fields'");
}

Test(config, mode_and_batch_size) {
  assert_msg(BASE "    mode: upsrt\n",
             "t.yml:17:11: unknown mode 'upsrt' in sync 'vip_to_hook' (did you mean 'upsert'?); "
             "expected upsert, update, insert or mirror");
  assert_msg(BASE "    batch_size: 0\n",
             "t.yml:17:17: expected an integer from 1 to 100000, found '0'");
  assert_msg(BASE "    batch_size: 100001\n",
             "t.yml:17:17: expected an integer from 1 to 100000, found '100001'");
  assert_msg(BASE "    batch_size: 10x\n",
             "t.yml:17:17: expected an integer from 1 to 100000, found '10x'");
  assert_msg(BASE "    batch_size: {a: 1}\n",
             "t.yml:17:17: expected an integer from 1 to 100000, found a mapping");
}

Test(config, schedule_errors) {
  assert_msg(BASE "    schedule: {cron: \"0 * * *\"}\n",
             "t.yml:17:22: cron expression '0 * * *' in sync 'vip_to_hook' has 4 fields; "
             "expected 5 (minute hour day-of-month month day-of-week), e.g. \"0 * * * *\"");
  assert_msg(BASE "    schedule: {every: 15}\n",
             "t.yml:17:23: expected a positive duration such as 500ms, 30s, 15m, 2h or 1d, "
             "found '15'");
  assert_msg(BASE "    schedule: {after: vip_to_hook}\n",
             "t.yml:17:23: sync 'vip_to_hook' cannot run after itself; expected another sync");
  assert_msg_has(BASE "    schedule: {after: vip_to_hok}\n",
                 "t.yml:17:23: ", "unknown sync 'vip_to_hok' in 'schedule' of sync 'vip_to_hook'");
  assert_msg(BASE "    schedule: hourly\n",
             "t.yml:17:15: unknown schedule 'hourly' in sync 'vip_to_hook'; expected {every: "
             "15m}, {cron: \"0 * * * *\"}, {after: other_sync}, live or manual");
  assert_msg_has(BASE "    schedule: {every: 1h, cron: \"* * * * *\"}\n", "t.yml:17:27: ",
                 "'schedule' of sync 'vip_to_hook' has more than one entry; expected exactly "
                 "one of every, cron or after");
  assert_msg_has(BASE "    schedule: {}\n", "t.yml:17:5: ", "is empty; expected exactly one");
}

Test(config, after_cycle_is_rejected) {
  assert_msg_has(BASE "    schedule: {after: b}\n"
                      "  b:\n"
                      "    model: vip_users\n"
                      "    destination: hook\n"
                      "    match: {user_id: id}\n"
                      "    schedule: {after: vip_to_hook}\n",
                 "t.yml:13:3: ", "sync 'vip_to_hook' is part of a cycle");
}

Test(config, long_after_chain_parses_and_later_cycles_are_found) {
  /* s0 <- s1 <- ... <- s2999: a long legal chain (linear-time check). */
  size_t n = 3000, cap = n * 128 + 512, o = 0;
  char *yaml = malloc(cap);
  o += (size_t)snprintf(yaml + o, cap - o,
                        "warehouses: {w: {type: sqlite}}\n"
                        "models: {m: {warehouse: w, sql: s, primary_key: id}}\n"
                        "destinations: {d: {type: file}}\n"
                        "syncs:\n");
  for (size_t i = 0; i < n; i++) {
    o +=
        (size_t)snprintf(yaml + o, cap - o, "  s%zu: {model: m, destination: d, match: {k: id}", i);
    if (i) o += (size_t)snprintf(yaml + o, cap - o, ", schedule: {after: s%zu}", i - 1);
    o += (size_t)snprintf(yaml + o, cap - o, "}\n");
  }
  struct bf_config *cfg = parse_ok(yaml);
  cr_assert_eq(cfg->n_syncs, n);
  cr_assert_str_eq(cfg->syncs[n - 1].after, "s2998");
  bf_config_free(cfg);

  /* A cycle among syncs that the first sync does not lead into. */
  snprintf(yaml, cap,
           "warehouses: {w: {type: sqlite}}\n"
           "models: {m: {warehouse: w, sql: s, primary_key: id}}\n"
           "destinations: {d: {type: file}}\n"
           "syncs:\n"
           "  a: {model: m, destination: d, match: {k: id}, schedule: {every: 1h}}\n"
           "  b: {model: m, destination: d, match: {k: id}, schedule: {after: c}}\n"
           "  c: {model: m, destination: d, match: {k: id}, schedule: {after: e}}\n"
           "  e: {model: m, destination: d, match: {k: id}, schedule: {after: b}}\n");
  assert_msg(yaml, "t.yml:6:3: sync 'b' is part of a cycle of 'schedule: {after: ...}'; "
                   "expected a chain that starts with a sync scheduled some other way");
  free(yaml);
}

Test(config, pii_kinds_and_policy) {
  assert_msg("warehouses: {w: {type: sqlite}}\n"
             "models: {m: {warehouse: w, sql: s, primary_key: id, pii: {mail: emial}}}\n",
             "t.yml:2:65: unknown PII kind 'emial' for column 'mail' in model 'm' (did you "
             "mean 'email'?); expected one of: email, phone, name, address, ip, id, other");
  assert_msg(BASE "    pii_policy: {first_name: drop}\n",
             "t.yml:17:18: column 'first_name' in 'pii_policy' of sync 'vip_to_hook' is not a "
             "PII column of model 'vip_users'; expected one of: email, phone");
  assert_msg_has(BASE "    pii_policy: {emial: hash}\n", "t.yml:17:18: ",
                 "is not a PII column of model 'vip_users' (did you mean 'email'?)");
  assert_msg(BASE "    pii_policy: {email: encrypt}\n",
             "t.yml:17:25: unknown PII action 'encrypt' for column 'email' in sync "
             "'vip_to_hook'; expected allow, hash or drop");
  assert_msg("warehouses: {w: {type: sqlite}}\n"
             "models: {m: {warehouse: w, sql: s, primary_key: id, pii: {email: email}}}\n"
             "destinations: {d: {type: file}}\n"
             "syncs: {s: {model: m, destination: d, match: {e: email},\n"
             "            pii_policy: {email: drop}}}\n",
             "t.yml:5:33: column 'email' cannot be dropped in sync 's': 'match' uses it to "
             "identify records; expected allow or hash");
}

Test(config, names_are_checked) {
  assert_msg("syncs:\n  \"my sync\": {}\n",
             "t.yml:2:3: invalid sync name 'my sync'; expected letters, digits, '_' and '-' "
             "only");
  struct bf_config *cfg = parse_ok("warehouses: {w-1_X: {type: sqlite}}\n");
  cr_assert_str_eq(cfg->warehouses[0].name, "w-1_X");
  bf_config_free(cfg);
}

Test(config, version_and_server) {
  assert_msg("version: 2\n",
             "t.yml:1:10: unsupported configuration version '2'; expected 'version: 1'");
  assert_msg_has("server: {listen: localhost}\n", "t.yml:1:18: ",
                 "invalid 'listen' address 'localhost' in 'server'; expected HOST:PORT");
  assert_msg_has("server: {listen: \"h:99999\"}\n", "t.yml:1:18: ", "invalid 'listen'");
  struct bf_config *cfg = parse_ok("server: {listen: \"[::1]:9000\"}\n");
  cr_assert_str_eq(cfg->server_listen, "[::1]:9000");
  bf_config_free(cfg);
}

/* ---------------------------------------------------------------------- */
/* YAML-level errors and limits */

Test(config, yaml_syntax_error_uses_problem_mark) {
  struct bf_error e = parse_err("version: 1\nserver:\n  listen: x\n token: y\n");
  cr_assert_eq(strncmp(e.msg, "t.yml:4:", 8), 0, "%s", e.msg);
  cr_assert_not_null(strstr(e.msg, "invalid YAML: "), "%s", e.msg);
  assert_msg("a: [1, 2\n",
             "t.yml:2:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
             "sequence that starts at line 1, column 4)");
}

Test(config, invalid_utf8_is_located) {
  assert_msg("alerts:\n  x: \"ab\xff\"\n",
             "t.yml:2:9: invalid YAML: invalid leading UTF-8 octet (byte 0xff); expected UTF-8 "
             "text");
}

Test(config, empty_file_and_multiple_documents) {
  assert_msg("", "t.yml:1:1: the configuration is empty; expected a mapping starting with "
                 "'version: 1'");
  assert_msg("# only a comment\n", "t.yml:1:1: the configuration is empty; expected a "
                                   "mapping starting with 'version: 1'");
  assert_msg("version: 1\n---\nversion: 1\n",
             "t.yml:2:1: found a second YAML document; expected one document per file");
}

Test(config, nesting_deeper_than_64_is_refused) {
  char yaml[256];
  size_t o = (size_t)snprintf(yaml, sizeof yaml, "alerts: ");
  for (int i = 0; i < 70; i++) yaml[o++] = '[';
  for (int i = 0; i < 70; i++) yaml[o++] = ']';
  yaml[o++] = '\n';
  yaml[o] = '\0';
  /* alerts' value is level 2, so the 64th '[' is level 65: column 8 + 64. */
  assert_msg(yaml, "t.yml:1:72: values are nested more than 64 levels deep; expected a "
                   "flatter configuration");
  /* 63 levels of '[' (64 with the top-level mapping) are fine. */
  o = (size_t)snprintf(yaml, sizeof yaml, "alerts: ");
  for (int i = 0; i < 63; i++) yaml[o++] = '[';
  for (int i = 0; i < 63; i++) yaml[o++] = ']';
  yaml[o] = '\0';
  bf_config_free(parse_ok(yaml));
}

Test(config, input_over_4_mib_is_refused) {
  size_t len = 4 * 1024 * 1024 + 1;
  char *text = malloc(len);
  memset(text, '#', len);
  struct bf_error err = {0};
  struct bf_config *cfg = NULL;
  cr_assert_eq(bf_config_parse("big.yml", text, len, NULL, &cfg, &err), BF_E_CONFIG);
  cr_assert_null(cfg);
  cr_assert_str_eq(err.msg, "big.yml: the file is 4194305 bytes; expected at most 4 MiB "
                            "(4194304 bytes)");

  char path[] = "/tmp/bf_test_config_XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, text, len), (ssize_t)len);
  close(fd);
  bf_error_clear(&err);
  cr_assert_eq(bf_config_load(path, &cfg, &err), BF_E_CONFIG);
  cr_assert_null(cfg);
  cr_assert_not_null(strstr(err.msg, ": the file is larger than 4 MiB"), "%s", err.msg);
  cr_assert_eq(strncmp(err.msg, path, strlen(path)), 0);
  unlink(path);
  free(text);
}

Test(config, too_many_nodes_are_refused) {
  size_t n = 200001, cap = n * 2 + 32, o = 0;
  char *yaml = malloc(cap);
  o += (size_t)snprintf(yaml, cap, "alerts: [");
  for (size_t i = 0; i < n; i++) {
    if (i) yaml[o++] = ',';
    yaml[o++] = '1';
  }
  snprintf(yaml + o, cap - o, "]\n");
  struct bf_error e = parse_err(yaml);
  cr_assert_not_null(strstr(e.msg, "too many YAML values (more than 200000)"), "%s", e.msg);
  free(yaml);
}

/* ---------------------------------------------------------------------- */
/* bf_config_load */

Test(config, load_missing_file) {
  struct bf_error err = {0};
  struct bf_config *cfg = (struct bf_config *)1;
  cr_assert_eq(bf_config_load("/nonexistent/dir/backflow.yml", &cfg, &err), BF_E_CONFIG);
  cr_assert_null(cfg);
  cr_assert_str_eq(err.msg,
                   "/nonexistent/dir/backflow.yml: cannot read: No such file or directory");
}

Test(config, load_sets_dir_and_uses_the_path_in_messages) {
  char dir[] = "/tmp/bf_test_proj_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/backflow.yml", dir);
  FILE *f = fopen(path, "w");
  fputs(BASE, f);
  fclose(f);
  struct bf_error err = {0};
  struct bf_config *cfg = NULL;
  cr_assert_eq(bf_config_load(path, &cfg, &err), 0, "%s", err.msg);
  cr_assert_str_eq(cfg->dir, dir);
  cr_assert_str_eq(cfg->path, path);
  cr_assert_str_eq(cfg->syncs[0].loc.file, path);
  char *p = bf_config_path(cfg, cfg->state_dir);
  char want[160];
  snprintf(want, sizeof want, "%s/.backflow", dir);
  cr_assert_str_eq(p, want);
  free(p);
  bf_config_free(cfg);

  f = fopen(path, "w");
  fputs(BASE "    fieds: {}\n", f);
  fclose(f);
  cr_assert_eq(bf_config_load(path, &cfg, &err), BF_E_CONFIG);
  char prefix[160];
  snprintf(prefix, sizeof prefix, "%s:17:5: unknown key 'fieds'", path);
  cr_assert_eq(strncmp(err.msg, prefix, strlen(prefix)), 0, "%s", err.msg);
  unlink(path);
  rmdir(dir);
}

Test(config, free_accepts_null) { bf_config_free(NULL); }

/* ---------------------------------------------------------------------- */
/* Node helpers */

/* Parses `alerts: {k: <value>}` and returns the config; *n is the value. */
static struct bf_config *value_node(const char *value, const struct bf_node **n) {
  char yaml[256];
  snprintf(yaml, sizeof yaml, "alerts: {k: %s}\n", value);
  struct bf_config *cfg = parse_ok(yaml);
  *n = bf_node_get(bf_node_get(cfg->root, "alerts"), "k");
  cr_assert_not_null(*n);
  return cfg;
}

Test(config, duration_parsing) {
  const struct {
    const char *text;
    long long ms;
  } ok[] = {{"500ms", 500}, {"30s", 30000}, {"15m", 900000}, {"2h", 7200000}, {"1d", 86400000}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    const struct bf_node *n;
    struct bf_config *cfg = value_node(ok[i].text, &n);
    long long ms = -1;
    struct bf_error err = {0};
    cr_assert_eq(bf_node_as_duration_ms(n, &ms, &err), 0, "%s: %s", ok[i].text, err.msg);
    cr_assert_eq(ms, ok[i].ms, "%s", ok[i].text);
    bf_config_free(cfg);
  }
  const char *bad[] = {"0s",
                       "-5m",
                       "15",
                       "m",
                       "1.5h",
                       "15 m",
                       "15mm",
                       "\"\"",
                       "[1]",
                       "99999999999999999999d",
                       "9999999999999999d"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const struct bf_node *n;
    struct bf_config *cfg = value_node(bad[i], &n);
    long long ms = -1;
    struct bf_error err = {0};
    cr_assert_eq(bf_node_as_duration_ms(n, &ms, &err), BF_E_CONFIG, "%s accepted", bad[i]);
    cr_assert_eq(strncmp(err.msg, "t.yml:1:13: ", 12), 0, "%s", err.msg);
    cr_assert_eq(ms, -1);
    bf_config_free(cfg);
  }
}

Test(config, bool_and_int_parsing) {
  const char *yes[] = {"true", "yes", "on", "True", "YES"};
  const char *no[] = {"false", "no", "off", "Off"};
  for (size_t i = 0; i < 5; i++) {
    const struct bf_node *n;
    struct bf_config *cfg = value_node(yes[i], &n);
    bool b = false;
    cr_assert_eq(bf_node_as_bool(n, &b, NULL), 0);
    cr_assert(b, "%s", yes[i]);
    bf_config_free(cfg);
  }
  for (size_t i = 0; i < 4; i++) {
    const struct bf_node *n;
    struct bf_config *cfg = value_node(no[i], &n);
    bool b = true;
    cr_assert_eq(bf_node_as_bool(n, &b, NULL), 0);
    cr_assert_not(b, "%s", no[i]);
    bf_config_free(cfg);
  }
  const struct bf_node *n;
  struct bf_config *cfg = value_node("maybe", &n);
  struct bf_error err = {0};
  bool b;
  cr_assert_eq(bf_node_as_bool(n, &b, &err), BF_E_CONFIG);
  cr_assert_str_eq(err.msg, "t.yml:1:13: expected true or false, found 'maybe'");
  bf_config_free(cfg);

  cfg = value_node("-42", &n);
  long long v = 0;
  cr_assert_eq(bf_node_as_int(n, -100, 100, &v, NULL), 0);
  cr_assert_eq(v, -42);
  cr_assert_eq(bf_node_as_int(n, 0, 100, &v, &err), BF_E_CONFIG);
  cr_assert_str_eq(err.msg, "t.yml:1:13: expected an integer from 0 to 100, found '-42'");
  bf_config_free(cfg);
}

Test(config, check_keys_directly) {
  static const char *const allowed[] = {"alpha", "beta", NULL};
  struct bf_config *cfg = parse_ok("alerts: {alpha: 1, gamma: 2}\n");
  struct bf_error err = {0};
  const struct bf_node *a = bf_node_get(cfg->root, "alerts");
  cr_assert_eq(bf_node_check_keys(a, "'alerts'", allowed, &err), BF_E_CONFIG);
  cr_assert_str_eq(err.msg, "t.yml:1:20: unknown key 'gamma' in 'alerts' (known: alpha, beta)");
  static const char *const all[] = {"alpha", "gamma", NULL};
  cr_assert_eq(bf_node_check_keys(a, "'alerts'", all, &err), 0);
  cr_assert_eq(bf_node_check_keys(NULL, "x", all, &err), 0);
  bf_config_free(cfg);
}

Test(config, did_you_mean) {
  static const char *const c[] = {"fields", "constants", "match", "id", NULL};
  cr_assert_str_eq(bf_did_you_mean("fieds", c), "fields");
  cr_assert_str_eq(bf_did_you_mean("fielsd", c), "fields");
  cr_assert_str_eq(bf_did_you_mean("mtch", c), "match");
  cr_assert_str_eq(bf_did_you_mean("ip", c), "id");
  cr_assert_null(bf_did_you_mean("schedule", c));
  cr_assert_null(bf_did_you_mean("x", c), "no hint when nothing is shared");
  cr_assert_null(bf_did_you_mean("fi", c), "distance 4 is too far");
  cr_assert_null(bf_did_you_mean(NULL, c));
}

Test(config, mode_names) {
  cr_assert_str_eq(bf_sync_mode_name(BF_MODE_UPSERT), "upsert");
  cr_assert_str_eq(bf_sync_mode_name(BF_MODE_UPDATE), "update");
  cr_assert_str_eq(bf_sync_mode_name(BF_MODE_INSERT), "insert");
  cr_assert_str_eq(bf_sync_mode_name(BF_MODE_MIRROR), "mirror");
}

Test(config, every_prefix_of_the_example_fails_cleanly_or_parses) {
  /* Cut the example at every byte: each prefix must parse or give a
   * located error, never crash or leak (run under ASan/valgrind). */
  set_example_env();
  size_t len = strlen(design_example);
  for (size_t cut = 0; cut <= len; cut++) {
    struct bf_error err = {0};
    struct bf_config *cfg = NULL;
    int rc = bf_config_parse("t.yml", design_example, cut, NULL, &cfg, &err);
    if (rc == 0) {
      cr_assert_not_null(cfg);
      bf_config_free(cfg);
    } else {
      cr_assert_null(cfg);
      cr_assert_eq(strncmp(err.msg, "t.yml:", 6), 0, "cut %zu: %s", cut, err.msg);
    }
  }
}

#define LIVE_BASE(live, extra)                                                                     \
  "version: 1\n"                                                                                   \
  "warehouses:\n"                                                                                  \
  "  local: {type: sqlite, path: warehouse.db}\n"                                                  \
  "models:\n"                                                                                      \
  "  carts:\n"                                                                                     \
  "    warehouse: local\n"                                                                         \
  "    sql: SELECT id FROM users\n"                                                                \
  "    primary_key: id\n" live "destinations:\n"                                                   \
  "  out: {type: file, path: out.jsonl}\n"                                                         \
  "syncs:\n"                                                                                       \
  "  s:\n"                                                                                         \
  "    model: carts\n"                                                                             \
  "    destination: out\n"                                                                         \
  "    match: {user_id: id}\n" extra

Test(config, live_tables_as_a_list_and_reconcile) {
  struct bf_config *cfg = parse_ok(LIVE_BASE("    live:\n"
                                             "      - {table: public.users, key: id}\n"
                                             "      - {table: carts, key: user_id}\n",
                                             "    schedule: live\n    reconcile: 10m\n"));
  const struct bf_model_config *m = &cfg->models[0];
  cr_assert_eq(m->n_live, 2);
  cr_assert_str_eq(m->live[0].table, "public.users");
  cr_assert_str_eq(m->live[1].key, "user_id");
  cr_assert_eq(m->live[1].loc.line, 11);
  cr_assert_eq(cfg->syncs[0].schedule, BF_SCHEDULE_LIVE);
  cr_assert_eq(cfg->syncs[0].reconcile_ms, 600000);
  bf_config_free(cfg);
  cfg = parse_ok(LIVE_BASE("    live: {table: users, key: id}\n", "    schedule: live\n"));
  cr_assert_eq(cfg->syncs[0].reconcile_ms, 3600000, "reconcile defaults to 1h");
  bf_config_free(cfg);
}

Test(config, live_errors_name_the_place) {
  assert_msg_has(LIVE_BASE("    live: users\n", ""),
                 "t.yml:9:11: ", "expected a mapping {table: ..., key: ...} or a list of them");
  assert_msg_has(LIVE_BASE("    live: []\n", ""), "t.yml:9:11: ", "empty list");
  assert_msg_has(LIVE_BASE("    live:\n      - {table: users}\n", ""),
                 "t.yml:10:9: ", "missing 'key'");
  assert_msg_has(LIVE_BASE("    live: {table: users, key: id}\n", "    reconcile: 1h\n"),
                 "t.yml:17:16: ", "'reconcile' in sync 's' applies only to 'schedule: live'");
  assert_msg_has(LIVE_BASE("", "    schedule: live\n"),
                 "t.yml:16:15: ", "needs model 'carts' to say which table to watch");
}

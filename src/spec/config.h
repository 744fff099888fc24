/* Project configuration (backflow.yml): parsed with libyaml into a tree of
 * nodes that remember file:line:column, with ${NAME} replaced from the
 * environment, then checked into the typed structs below.
 *
 * Every error names "file:line:col: what was wrong; what was expected". */
#ifndef BF_CONFIG_H
#define BF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

struct bf_loc {
  const char *file; /* borrowed from struct bf_config.path */
  int line;         /* 1-based */
  int col;          /* 1-based */
};

enum bf_node_kind { BF_NODE_SCALAR, BF_NODE_MAP, BF_NODE_SEQ };

/* A YAML node. Maps keep their keys in file order. */
struct bf_node {
  enum bf_node_kind kind;
  struct bf_loc loc;
  char *scalar;            /* BF_NODE_SCALAR: value after ${ENV} substitution */
  bool quoted;             /* scalar was written in quotes */
  size_t n;                /* MAP: number of pairs; SEQ: number of items */
  char **keys;             /* MAP: n keys */
  struct bf_loc *key_locs; /* MAP: where each key was written */
  struct bf_node **items;  /* MAP: n values; SEQ: n items */
  bool from_env;           /* SCALAR: contains a ${NAME} value; never echo it */
  char *unset_var; /* SCALAR: the first ${NAME} that is not set (scalar is then ""), or NULL */
};

/* Map lookup; NULL when absent or when node is not a map. */
const struct bf_node *bf_node_get(const struct bf_node *map, const char *key);
/* Scalar value of map[key], or NULL when absent (error when not a scalar). */
const char *bf_node_get_str(const struct bf_node *map, const char *key);

/* Checks that every key of map is in allowed (NULL-terminated). An unknown
 * key gives "file:l:c: unknown key 'fieds' in <what>; did you mean 'fields'?
 * (known: a, b, c)". */
int bf_node_check_keys(const struct bf_node *map, const char *what, const char *const *allowed,
                       struct bf_error *err);

/* Parse helpers that report the node's location on failure. */
int bf_node_as_int(const struct bf_node *n, long long min, long long max, long long *out,
                   struct bf_error *err);
int bf_node_as_bool(const struct bf_node *n, bool *out, struct bf_error *err);
/* "15m", "30s", "2h", "1d", "500ms" -> milliseconds. */
int bf_node_as_duration_ms(const struct bf_node *n, long long *out, struct bf_error *err);

/* Edit distance helper for "did you mean": returns the closest candidate
 * within distance 2, or NULL. */
const char *bf_did_you_mean(const char *word, const char *const *candidates);

/* "file:l:c: unknown <what> '<name>'; did you mean '<x>'? (known: a, b)".
 * hide: the name came from the environment and is not shown (it may be a
 * secret). known is NULL-terminated. Returns code. */
int bf_error_unknown(struct bf_error *err, int code, const struct bf_loc *loc, const char *what,
                     const char *name, bool hide, const char *const *known);

/* An ordered string map from config (match, fields, constants, pii...). */
struct bf_pair {
  char *key;
  char *value;
  struct bf_loc loc; /* of the value */
};
struct bf_pairs {
  size_t n;
  struct bf_pair *items;
};
const char *bf_pairs_get(const struct bf_pairs *p, const char *key);

struct bf_warehouse_config {
  char *name;
  char *type;                   /* "sqlite", "postgres", ... */
  const struct bf_node *params; /* the whole map, checked by the source type */
  struct bf_loc loc;
  const struct bf_node *unset; /* first value naming an unset ${NAME}, or NULL (see below) */
};

struct bf_live_table {
  char *table; /* as written, e.g. public.users (PostgreSQL) or users (SQLite) */
  char *key;   /* column of table whose value is the model's primary key */
  struct bf_loc loc;
};

struct bf_model_config {
  char *name;
  char *warehouse; /* name of a warehouse */
  char *sql;
  char *primary_key;   /* column name */
  struct bf_pairs pii; /* column -> kind (email|phone|name|address|ip|id|other) */
  /* live: {table, key} or a list of them (design.md §8): the base tables
   * whose changes can affect the model, and the column of each that holds
   * the model's primary key. n_live == 0: the model cannot be followed live. */
  size_t n_live;
  struct bf_live_table *live;
  struct bf_loc loc;
  struct bf_loc warehouse_loc, sql_loc, primary_key_loc;
  /* Set when a value of the model names an unset ${NAME}: the model was not
   * checked beyond its name (its strings are ""), and so is every sync of it. */
  const struct bf_node *unset;
};

struct bf_destination_config {
  char *name;
  char *type;
  const struct bf_node *params; /* the whole map, checked by the destination type */
  struct bf_loc loc;
  struct bf_loc type_loc;
  const struct bf_node *unset; /* first value naming an unset ${NAME}, or NULL */
};

enum bf_sync_mode { BF_MODE_UPSERT, BF_MODE_UPDATE, BF_MODE_INSERT, BF_MODE_MIRROR };
enum bf_schedule_kind {
  BF_SCHEDULE_NONE,
  BF_SCHEDULE_EVERY,
  BF_SCHEDULE_CRON,
  BF_SCHEDULE_AFTER,
  BF_SCHEDULE_LIVE
};
enum bf_pii_action { BF_PII_ALLOW, BF_PII_HASH, BF_PII_DROP };

struct bf_sync_config {
  char *name;
  char *model;
  char *destination;
  enum bf_sync_mode mode;
  char *object;               /* optional */
  struct bf_pairs match;      /* destination id field -> model column (>= 1) */
  struct bf_pairs fields;     /* destination field -> model column */
  struct bf_pairs constants;  /* destination field -> literal value */
  struct bf_pairs pii_policy; /* model column -> "allow" | "hash" | "drop" */
  enum bf_schedule_kind schedule;
  long long every_ms;   /* BF_SCHEDULE_EVERY */
  char *cron;           /* BF_SCHEDULE_CRON */
  char *after;          /* BF_SCHEDULE_AFTER */
  long long batch_size; /* 0 = destination default */
  struct bf_loc batch_size_loc;
  long long reconcile_ms; /* live: full reconciliation run every ...; default 1h, 0 = never */
  bool state_warehouse;   /* state: warehouse (design.md §10) rather than local */
  struct bf_loc state_loc;
  /* reject_threshold (sync_keys.h): a share of the rows read in percent, or
   * (pct < 0) a count of rejected rows a run tolerates. */
  bool reject_threshold_set;
  double reject_threshold_pct;
  long long reject_threshold_count;
  struct bf_loc loc;
  struct bf_loc model_loc, destination_loc, mode_loc;
  /* Set when a value of the sync or of its model names an unset ${NAME}:
   * nothing beyond the sync's name was checked. */
  const struct bf_node *unset;
};

/* server.tokens (issue 18): who may read and who may edit through the API.
 * Roles are ordered: each includes the ones below it. */
enum bf_role { BF_ROLE_NONE = 0, BF_ROLE_VIEWER, BF_ROLE_EDITOR, BF_ROLE_ADMIN };
struct bf_server_token {
  const char *name;  /* borrowed from the config tree; shown in the edit log */
  const char *token; /* borrowed; never logged */
  enum bf_role role;
  struct bf_loc loc;
};

struct bf_config {
  char *path; /* path of backflow.yml as given */
  char *dir;  /* project folder; relative paths in config resolve here */
  int version;
  char *state_dir;                         /* absolute or relative to dir; default ".backflow" */
  char *secret;                            /* optional; NULL -> generated into <state_dir>/secret */
  struct bf_loc state_dir_loc, secret_loc; /* where written, else file:1:1 */
  char *server_listen;                     /* default "127.0.0.1:8420" */
  char *server_token;                      /* optional */
  struct bf_server_token *server_tokens;   /* server.tokens (config_tokens.c) */
  size_t n_server_tokens;
  char *server_public_url; /* optional: where people reach the dashboard (alerts link to it),
                            * http(s)://HOST[:PORT][/PATH] without a trailing slash */
  /* durability: process (default) survives a killed process; power also
   * fsyncs before every send, to survive a power cut, at ~10 ms a batch. */
  bool durability_power;
  /* coordinator: {warehouse: NAME} (config_coord.c): NULL without one; the
   * name is borrowed from the warehouse's config. */
  char *coord_warehouse;
  long long coord_lease_ms; /* default 15s */
  unsigned coord_runners;   /* runs at once per worker; default 4 */
  struct bf_loc coord_loc;
  size_t n_warehouses, n_models, n_destinations, n_syncs;
  struct bf_warehouse_config *warehouses;
  struct bf_model_config *models;
  struct bf_destination_config *destinations;
  struct bf_sync_config *syncs;
  struct bf_node *root; /* owns every node and string above */
  /* Files read through `include:` (config_include.c); their nodes' locations
   * point at these names. */
  char **include_files;
  size_t n_include_files;
  /* First unset ${NAME} in `secret`, `write_back` or `alerts`, and in
   * `server` (whose settings are then defaults): needed by runs / serve only. */
  const struct bf_node *unset_globals, *unset_server;
};

/* Loads and checks path. On success *out is a new config the caller frees
 * with bf_config_free(). Checks structure, types, required keys, unknown keys,
 * that every name referenced (model.warehouse, sync.model, sync.destination,
 * schedule.after) exists, and ${NAME} substitution. It does not check the
 * params of warehouses/destinations (their types do) nor SQL. */
int bf_config_load(const char *path, struct bf_config **out, struct bf_error *err);
/* Same from a string; name is used in error locations. */
int bf_config_parse(const char *name, const char *text, size_t len, const char *dir,
                    struct bf_config **out, struct bf_error *err);
void bf_config_free(struct bf_config *cfg);

/* bf_config_load with one project file read from text instead of the disk
 * (config_include.c): how the studio checks an edit before writing it. rel
 * is relative to the project folder and is included as if `include:` named
 * it (it must match an `include:` entry when the file has that key). */
struct bf_config_overlay {
  const char *rel;
  const char *text;
};
int bf_config_load_overlay(const char *path, const struct bf_config_overlay *ov,
                           struct bf_config **out, struct bf_error *err);

const struct bf_warehouse_config *bf_config_warehouse(const struct bf_config *c, const char *name);
const struct bf_model_config *bf_config_model(const struct bf_config *c, const char *name);
const struct bf_destination_config *bf_config_destination(const struct bf_config *c,
                                                          const char *name);
const struct bf_sync_config *bf_config_sync(const struct bf_config *c, const char *name);

/* ${NAME} is resolved only for what a command touches (config_env.c): a
 * missing variable is an error only when a command needs the value. The file
 * loads with it; these say whether what is needed is complete, and fail with
 * "file:l:c: environment variable X is not set (needed by ...)". */
/* Everything in the file. */
int bf_config_require_all(const struct bf_config *cfg, struct bf_error *err);
/* What a run of sync name reads: the sync, its model, warehouse and
 * destination, write-back's warehouse, and the secret/write_back/alerts. */
int bf_config_require_sync(const struct bf_config *cfg, const char *name, struct bf_error *err);
/* The first scalar under n naming an unset ${NAME}, in file order, or NULL. */
const struct bf_node *bf_node_first_unset(const struct bf_node *n);

/* Resolves a config-relative path against cfg->dir. Caller frees. */
char *bf_config_path(const struct bf_config *cfg, const char *relative);

const char *bf_sync_mode_name(enum bf_sync_mode m);

#endif

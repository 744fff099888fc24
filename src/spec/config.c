/* backflow.yml: struct bf_node tree (config_yaml.c builds it from libyaml
 * events) -> typed structs, with every mistake named at its file:line:col.
 * ${NAME}s that are not set are refused only where a command needs them
 * (config_env.c). */
#include "spec/config.h"
#include "spec/config_internal.h"
#include "spec/sync_keys.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------------- */
/* Messages */

/* text for a message: one line, at most SHOW_MAX bytes, not cut inside a
 * UTF-8 sequence; quoted as 'text' when quote is set. */
const char *bf_config_show_text(struct shown *b, const char *s, bool quote) {
  size_t len = strlen(s), n = len, o = 0;
  if (n > SHOW_MAX) {
    n = SHOW_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  }
  if (quote) b->s[o++] = '\'';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    b->s[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (n < len) {
    memcpy(b->s + o, "...", 3);
    o += 3;
  }
  if (quote) b->s[o++] = '\'';
  b->s[o] = '\0';
  return b->s;
}

static const char *show_str(struct shown *b, const char *s) {
  return bf_config_show_text(b, s, true);
}

static bool node_is_null(const struct bf_node *n) {
  if (!n || n->kind != BF_NODE_SCALAR || n->quoted || n->from_env) return false;
  const char *s = n->scalar ? n->scalar : "";
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *kind_name(const struct bf_node *n) {
  if (!n) return "nothing";
  switch (n->kind) {
  case BF_NODE_MAP: return "a mapping";
  case BF_NODE_SEQ: return "a sequence";
  case BF_NODE_SCALAR: break;
  }
  return node_is_null(n) ? "nothing" : "a scalar";
}

/* How a node is named after "found" or "unknown x": its text, unless the
 * text came from the environment (it may be a secret). */
static const char *show_value(struct shown *b, const struct bf_node *n) {
  if (!n || n->kind != BF_NODE_SCALAR || node_is_null(n)) return kind_name(n);
  if (n->from_env) return "(a value from the environment, not shown)";
  return show_str(b, n->scalar);
}

int bf_config_loc_error(struct bf_error *err, struct bf_loc loc, const char *fmt, ...) {
  char msg[BF_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s", loc.file ? loc.file : "?", loc.line,
                      loc.col, msg);
}

/* "a, b, c" from n names, cut at LIST_MAX bytes. */
static void join_names(char *buf, size_t size, const char *const *names, size_t n) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    size_t need = strlen(names[i]) + (i ? 2 : 0);
    if (o + need + 4 >= size || o + need > LIST_MAX) {
      snprintf(buf + o, size - o, "%s...", i ? ", " : "");
      return;
    }
    o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "", names[i]);
  }
}

/* ---------------------------------------------------------------------- */
/* Small string set (open addressing) so that duplicate checks stay linear
 * in the size of a map even for a large hostile one. */

static uint64_t str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

void bf_strset_free(struct strset *s) {
  free(s->keys);
  free(s->vals);
  memset(s, 0, sizeof *s);
}

/* Adds key -> val. If key is already there, returns true and its value in
 * *existing and leaves the set unchanged. The key is borrowed. */
bool bf_strset_add(struct strset *s, const char *key, size_t val, size_t *existing) {
  if (2 * (s->n + 1) > s->cap) {
    struct strset bigger = {.cap = s->cap ? 2 * s->cap : 16};
    bigger.keys = bf_xcalloc(bigger.cap, sizeof *bigger.keys);
    bigger.vals = bf_xcalloc(bigger.cap, sizeof *bigger.vals);
    for (size_t i = 0; i < s->cap; i++)
      if (s->keys[i]) bf_strset_add(&bigger, s->keys[i], s->vals[i], NULL);
    bf_strset_free(s);
    *s = bigger;
  }
  size_t i = (size_t)str_hash(key) & (s->cap - 1);
  for (; s->keys[i]; i = (i + 1) & (s->cap - 1)) {
    if (!strcmp(s->keys[i], key)) {
      if (existing) *existing = s->vals[i];
      return true;
    }
  }
  s->keys[i] = key;
  s->vals[i] = val;
  s->n++;
  return false;
}

bool bf_strset_get(const struct strset *s, const char *key, size_t *val) {
  if (!s->cap) return false;
  for (size_t i = (size_t)str_hash(key) & (s->cap - 1); s->keys[i]; i = (i + 1) & (s->cap - 1)) {
    if (!strcmp(s->keys[i], key)) {
      if (val) *val = s->vals[i];
      return true;
    }
  }
  return false;
}

/* ---------------------------------------------------------------------- */
/* Nodes */

void bf_node_free(struct bf_node *n) {
  if (!n) return;
  if (n->scalar) {
    if (n->from_env) explicit_bzero(n->scalar, strlen(n->scalar));
    free(n->scalar);
  }
  free(n->unset_var);
  for (size_t i = 0; i < n->n; i++) {
    if (n->keys) free(n->keys[i]);
    if (n->items) bf_node_free(n->items[i]);
  }
  free(n->keys);
  free(n->key_locs);
  free(n->items);
  free(n);
}

const struct bf_node *bf_node_get(const struct bf_node *map, const char *key) {
  if (!map || map->kind != BF_NODE_MAP || !key) return NULL;
  for (size_t i = 0; i < map->n; i++)
    if (!strcmp(map->keys[i], key)) return map->items[i];
  return NULL;
}

/* Like bf_node_get, and also gives where the key was written. */
static const struct bf_node *map_get(const struct bf_node *map, const char *key,
                                     struct bf_loc *key_loc) {
  if (!map || map->kind != BF_NODE_MAP) return NULL;
  for (size_t i = 0; i < map->n; i++) {
    if (!strcmp(map->keys[i], key)) {
      if (key_loc) *key_loc = map->key_locs[i];
      return map->items[i];
    }
  }
  return NULL;
}

const char *bf_node_get_str(const struct bf_node *map, const char *key) {
  const struct bf_node *n = bf_node_get(map, key);
  return n && n->kind == BF_NODE_SCALAR ? n->scalar : NULL;
}

/* ---------------------------------------------------------------------- */
/* Public node helpers */

const char *bf_did_you_mean(const char *word, const char *const *candidates) {
  if (!word || !candidates) return NULL;
  size_t la = strlen(word);
  if (la > NAME_MAX_LEN) return NULL;
  const char *best = NULL;
  size_t best_d = 3;
  for (size_t c = 0; candidates[c]; c++) {
    const char *cand = candidates[c];
    size_t lb = strlen(cand);
    if (lb > NAME_MAX_LEN + 2 || (la > lb ? la - lb : lb - la) > 2) continue;
    /* Levenshtein distance, two rows. */
    size_t rows[2][NAME_MAX_LEN + 4];
    for (size_t j = 0; j <= lb; j++) rows[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
      size_t *prev = rows[(i - 1) & 1], *cur = rows[i & 1];
      cur[0] = i;
      for (size_t j = 1; j <= lb; j++) {
        size_t sub = prev[j - 1] + (word[i - 1] != cand[j - 1]);
        size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
        cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
      }
    }
    size_t d = rows[la & 1][lb];
    /* d == max(la, lb) means nothing in common ('x' vs 'id'): no hint. */
    if (d < best_d && d < (la > lb ? la : lb)) {
      best = cand;
      best_d = d;
    }
  }
  return best;
}

int bf_node_check_keys(const struct bf_node *map, const char *what, const char *const *allowed,
                       struct bf_error *err) {
  if (!map || node_is_null(map)) return 0;
  if (map->kind != BF_NODE_MAP) {
    struct shown b;
    return bf_config_loc_error(err, map->loc, "expected a mapping for %s, found %s", what,
                               show_value(&b, map));
  }
  for (size_t i = 0; i < map->n; i++) {
    size_t k = 0;
    while (allowed[k] && strcmp(allowed[k], map->keys[i])) k++;
    if (allowed[k]) continue;
    while (allowed[k]) k++;
    char known[LIST_MAX + 64];
    join_names(known, sizeof known, allowed, k);
    struct shown b;
    const char *hint = bf_did_you_mean(map->keys[i], allowed);
    if (hint)
      return bf_config_loc_error(err, map->key_locs[i],
                                 "unknown key %s in %s; did you mean '%s'? (known: %s)",
                                 show_str(&b, map->keys[i]), what, hint, known);
    return bf_config_loc_error(err, map->key_locs[i], "unknown key %s in %s (known: %s)",
                               show_str(&b, map->keys[i]), what, known);
  }
  return 0;
}

static int parse_ll(const char *s, long long *out) {
  if (!*s) return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || !(s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9'))) return -1;
  *out = v;
  return 0;
}

int bf_node_as_int(const struct bf_node *n, long long min, long long max, long long *out,
                   struct bf_error *err) {
  struct shown b;
  long long v;
  if (!n) return bf_error_set(err, BF_E_CONFIG, "missing integer value");
  if (n->kind != BF_NODE_SCALAR || node_is_null(n) || parse_ll(n->scalar, &v) || v < min || v > max)
    return bf_config_loc_error(err, n->loc, "expected an integer from %lld to %lld, found %s", min,
                               max, show_value(&b, n));
  *out = v;
  return 0;
}

int bf_node_as_bool(const struct bf_node *n, bool *out, struct bf_error *err) {
  static const char *const yes[] = {"true", "yes", "on"};
  static const char *const no[] = {"false", "no", "off"};
  struct shown b;
  if (!n) return bf_error_set(err, BF_E_CONFIG, "missing boolean value");
  if (n->kind == BF_NODE_SCALAR) {
    for (size_t i = 0; i < 3; i++) {
      if (!strcasecmp(n->scalar, yes[i])) {
        *out = true;
        return 0;
      }
      if (!strcasecmp(n->scalar, no[i])) {
        *out = false;
        return 0;
      }
    }
  }
  return bf_config_loc_error(err, n->loc, "expected true or false, found %s", show_value(&b, n));
}

int bf_node_as_duration_ms(const struct bf_node *n, long long *out, struct bf_error *err) {
  static const struct {
    const char *unit;
    long long ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  struct shown b;
  if (!n) return bf_error_set(err, BF_E_CONFIG, "missing duration value");
  if (n->kind == BF_NODE_SCALAR && n->scalar[0] >= '0' && n->scalar[0] <= '9') {
    char *end;
    errno = 0;
    long long v = strtoll(n->scalar, &end, 10);
    for (size_t i = 0; !errno && v > 0 && i < sizeof units / sizeof units[0]; i++) {
      if (strcmp(end, units[i].unit)) continue;
      if (v > LLONG_MAX / units[i].ms)
        return bf_config_loc_error(err, n->loc, "duration %s is too long; expected at most %lld%s",
                                   show_value(&b, n), LLONG_MAX / units[i].ms, units[i].unit);
      *out = v * units[i].ms;
      return 0;
    }
  }
  return bf_config_loc_error(
      err, n->loc, "expected a positive duration such as 500ms, 30s, 15m, 2h or 1d, found %s",
      show_value(&b, n));
}

const char *bf_pairs_get(const struct bf_pairs *p, const char *key) {
  if (!p || !key) return NULL;
  for (size_t i = 0; i < p->n; i++)
    if (!strcmp(p->items[i].key, key)) return p->items[i].value;
  return NULL;
}

/* ---------------------------------------------------------------------- */
/* Typed checks */

static const char *in_ctx(char *buf, size_t size, const char *ctx) {
  if (!ctx) return "";
  snprintf(buf, size, " in %s", ctx);
  return buf;
}

/* For values every command needs (version, state_dir, durability). */
static int check_set(const struct bf_node *n, struct bf_error *err) {
  const struct bf_node *u = bf_node_first_unset(n);
  return u ? bf_config_loc_error(err, u->loc, "environment variable %s is not set", u->unset_var)
           : 0;
}

/* A null value (`fields:`) counts as an empty mapping. */
static int want_map(const struct bf_node *n, const char *key, const char *ctx,
                    struct bf_error *err) {
  if (!n || node_is_null(n) || n->kind == BF_NODE_MAP) return 0;
  char where[NAME_MAX_LEN + 64];
  return bf_config_loc_error(err, n->loc, "expected a mapping for '%s'%s, found %s", key,
                             in_ctx(where, sizeof where, ctx), kind_name(n));
}

/* map[key] as a non-empty string copied into *out. An absent or null value
 * leaves *out NULL and is an error when required (at owner, where the thing
 * missing the key was named). */
static int get_string(const struct bf_node *map, const char *key, const char *ctx,
                      struct bf_loc owner, bool required, const char *expected, char **out,
                      struct bf_loc *loc, struct bf_error *err) {
  char where[NAME_MAX_LEN + 64];
  struct bf_loc key_loc = owner;
  const struct bf_node *n = map_get(map, key, &key_loc);
  *out = NULL;
  if (loc) *loc = owner;
  if (!n || node_is_null(n)) {
    if (!required) return 0;
    if (!n)
      return bf_config_loc_error(err, owner, "%s is missing '%s'; expected %s",
                                 ctx ? ctx : "the file", key, expected);
    return bf_config_loc_error(err, key_loc, "'%s'%s has no value; expected %s", key,
                               in_ctx(where, sizeof where, ctx), expected);
  }
  if (n->kind != BF_NODE_SCALAR)
    return bf_config_loc_error(err, n->loc, "'%s'%s is %s; expected a string: %s", key,
                               in_ctx(where, sizeof where, ctx), kind_name(n), expected);
  if (!n->scalar[0])
    return bf_config_loc_error(err, n->loc, "'%s'%s is empty%s; expected %s", key,
                               in_ctx(where, sizeof where, ctx),
                               n->from_env ? " (its environment variable is empty)" : "", expected);
  *out = bf_xstrdup(n->scalar);
  if (loc) *loc = n->loc;
  return 0;
}

static int check_name(const char *name, struct bf_loc loc, const char *kind, struct bf_error *err) {
  struct shown b;
  size_t len = strlen(name);
  if (len > NAME_MAX_LEN)
    return bf_config_loc_error(err, loc, "%s name %s is too long; expected at most %d characters",
                               kind, show_str(&b, name), NAME_MAX_LEN);
  for (size_t i = 0; i < len; i++)
    if (!bf_config_is_name_char(name[i]) && name[i] != '-')
      return bf_config_loc_error(err, loc,
                                 "invalid %s name %s; expected letters, digits, '_' and '-' only",
                                 kind, show_str(&b, name));
  return 0;
}

static void pairs_free(struct bf_pairs *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->items[i].key);
    free(p->items[i].value);
  }
  free(p->items);
  p->items = NULL;
  p->n = 0;
}

/* map[key] as an ordered string map. Values must be scalars; when
 * non_empty, also non-empty (column names). */
static int get_pairs(const struct bf_node *map, const char *key, const char *ctx, bool non_empty,
                     const char *expected, struct bf_pairs *out, struct bf_error *err) {
  const struct bf_node *n = bf_node_get(map, key);
  int rc = want_map(n, key, ctx, err);
  if (rc || !n || n->kind != BF_NODE_MAP) return rc;
  out->items = bf_xcalloc(n->n, sizeof *out->items);
  for (size_t i = 0; i < n->n; i++) {
    const struct bf_node *v = n->items[i];
    struct shown b;
    if (v->kind != BF_NODE_SCALAR || (non_empty && (!v->scalar[0] || node_is_null(v))))
      return bf_config_loc_error(
          err, v->kind == BF_NODE_SCALAR ? n->key_locs[i] : v->loc,
          "expected %s for %s in '%s' of %s, found %s", expected, show_str(&b, n->keys[i]), key,
          ctx, v->kind == BF_NODE_SCALAR && !node_is_null(v) ? "an empty value" : kind_name(v));
    struct bf_pair *pr = &out->items[out->n++];
    pr->key = bf_xstrdup(n->keys[i]);
    pr->value = bf_xstrdup(v->scalar);
    pr->loc = v->loc;
  }
  return 0;
}

/* Every config struct starts with `char *name`, so one helper lists the
 * names of any of them; the result is NULL-terminated, caller frees. */
static const char **names_of(const void *base, size_t n, size_t stride) {
  const char **names = bf_xcalloc(n + 1, sizeof *names);
  for (size_t i = 0; i < n; i++)
    names[i] = *(char *const *)(const void *)((const char *)base + i * stride);
  return names;
}

static bool has_name(const void *base, size_t n, size_t stride, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(*(char *const *)(const void *)((const char *)base + i * stride), name)) return true;
  return false;
}

/* Error for a reference (`model: x`) to a name that is not defined. */
static int unknown_ref(const struct bf_node *v, const char *kind, const char *section,
                       const char *ctx, const char **names, size_t n, struct bf_error *err) {
  struct shown b;
  char list[LIST_MAX + 64];
  if (n == 0)
    return bf_config_loc_error(err, v->loc,
                               "unknown %s %s in %s; expected a name defined under '%s', "
                               "but none are defined",
                               kind, show_value(&b, v), ctx, section);
  join_names(list, sizeof list, names, n);
  const char *hint = v->from_env ? NULL : bf_did_you_mean(v->scalar, names);
  if (hint)
    return bf_config_loc_error(err, v->loc, "unknown %s %s in %s; did you mean '%s'? (defined: %s)",
                               kind, show_value(&b, v), ctx, hint, list);
  return bf_config_loc_error(err, v->loc, "unknown %s %s in %s; expected one of: %s", kind,
                             show_value(&b, v), ctx, list);
}

static int check_ref(const struct bf_node *map, const char *key, const char *section,
                     const char *ctx, const void *base, size_t n, size_t stride,
                     struct bf_error *err) {
  const struct bf_node *v = bf_node_get(map, key);
  if (!v || v->kind != BF_NODE_SCALAR || has_name(base, n, stride, v->scalar)) return 0;
  const char **names = names_of(base, n, stride);
  int rc = unknown_ref(v, key, section, ctx, names, n, err);
  free(names);
  return rc;
}

static int load_typed_section(struct bf_config *cfg, const char *section, const char *kind,
                              const char *type_example, bool is_destination, struct bf_error *err) {
  const struct bf_node *sec = bf_node_get(cfg->root, section);
  int rc = want_map(sec, section, NULL, err);
  if (rc || !sec || sec->kind != BF_NODE_MAP) return rc;
  if (is_destination) {
    cfg->destinations = bf_xcalloc(sec->n, sizeof *cfg->destinations);
    cfg->n_destinations = sec->n;
  } else {
    cfg->warehouses = bf_xcalloc(sec->n, sizeof *cfg->warehouses);
    cfg->n_warehouses = sec->n;
  }
  for (size_t i = 0; i < sec->n; i++) {
    const char *name = sec->keys[i];
    struct bf_loc loc = sec->key_locs[i];
    const struct bf_node *v = sec->items[i];
    char ctx[NAME_MAX_LEN + 32], expected[128];
    if ((rc = check_name(name, loc, kind, err))) return rc;
    snprintf(ctx, sizeof ctx, "%s '%s'", kind, name);
    snprintf(expected, sizeof expected, "the %s type, e.g. %s", kind, type_example);
    if (node_is_null(v))
      return bf_config_loc_error(
          err, loc, "%s has no settings; expected a mapping with at least 'type'", ctx);
    if (v->kind != BF_NODE_MAP)
      return bf_config_loc_error(err, v->loc, "expected a mapping for %s, found %s", ctx,
                                 kind_name(v));
    char *type = NULL;
    struct bf_loc type_loc = loc;
    const struct bf_node *unset = bf_node_first_unset(v);
    const struct bf_node *type_node = bf_node_get(v, "type");
    if (type_node && type_node->unset_var) {
      type = bf_xstrdup(""); /* refused when a command needs it */
      type_loc = type_node->loc;
    } else {
      rc = get_string(v, "type", ctx, loc, true, expected, &type, &type_loc, err);
    }
    if (is_destination)
      cfg->destinations[i] = (struct bf_destination_config){.name = bf_xstrdup(name),
                                                            .type = type,
                                                            .params = v,
                                                            .loc = loc,
                                                            .type_loc = type_loc,
                                                            .unset = unset};
    else
      cfg->warehouses[i] = (struct bf_warehouse_config){
          .name = bf_xstrdup(name), .type = type, .params = v, .loc = loc, .unset = unset};
    if (rc) return rc;
  }
  return 0;
}

static const char *const pii_kinds[] = {"email", "phone", "name",  "address",
                                        "ip",    "id",    "other", NULL};

/* live: {table, key} | [{table, key}, ...] */
static int load_live(const struct bf_node *live, struct bf_loc live_loc, struct bf_model_config *m,
                     const char *ctx, struct bf_error *err) {
  static const char *const live_keys[] = {"table", "key", NULL};
  char live_ctx[NAME_MAX_LEN + 48];
  snprintf(live_ctx, sizeof live_ctx, "'live' of %s", ctx);
  if (!live || node_is_null(live)) return 0;
  if (live->kind == BF_NODE_SCALAR)
    return bf_config_loc_error(
        err, live->loc,
        "expected a mapping {table: ..., key: ...} or a list of them for 'live' in "
        "%s",
        ctx);
  size_t n = live->kind == BF_NODE_SEQ ? live->n : 1;
  if (n == 0)
    return bf_config_loc_error(err, live->loc,
                               "'live' in %s is an empty list; expected {table, key} entries", ctx);
  m->live = bf_xcalloc(n, sizeof *m->live);
  for (size_t i = 0; i < n; i++) {
    const struct bf_node *e = live->kind == BF_NODE_SEQ ? live->items[i] : live;
    struct bf_loc e_loc = live->kind == BF_NODE_SEQ ? e->loc : live_loc;
    int rc;
    if (e->kind != BF_NODE_MAP)
      return bf_config_loc_error(err, e->loc, "expected a mapping {table: ..., key: ...} in %s",
                                 live_ctx);
    struct bf_live_table *t = &m->live[m->n_live++];
    t->loc = e_loc;
    if ((rc = bf_node_check_keys(e, live_ctx, live_keys, err)) ||
        (rc = get_string(e, "table", live_ctx, e_loc, true,
                         "the base table whose changes trigger a live sync", &t->table, NULL,
                         err)) ||
        (rc = get_string(e, "key", live_ctx, e_loc, true,
                         "the column of the base table that holds the model's primary key", &t->key,
                         NULL, err)))
      return rc;
  }
  return 0;
}

static int load_model(struct bf_config *cfg, struct bf_model_config *m, const char *name,
                      struct bf_loc loc, const struct bf_node *v, struct bf_error *err) {
  static const char *const keys[] = {"warehouse", "pii",         "sql", "primary_key",
                                     "live",      "description", NULL};
  char ctx[NAME_MAX_LEN + 32];
  int rc;
  snprintf(ctx, sizeof ctx, "model '%s'", name);
  m->name = bf_xstrdup(name);
  m->loc = loc;
  if (node_is_null(v))
    return bf_config_loc_error(err, loc,
                               "%s has no settings; expected a mapping with warehouse, sql and "
                               "primary_key",
                               ctx);
  if ((rc = bf_node_check_keys(v, ctx, keys, err))) return rc;
  if ((m->unset = bf_node_first_unset(v))) {
    /* Checked when a command needs the model (bf_config_require_sync). */
    const char *wh = bf_node_get_str(v, "warehouse");
    m->warehouse = bf_xstrdup(wh ? wh : "");
    m->sql = bf_xstrdup("");
    m->primary_key = bf_xstrdup("");
    m->warehouse_loc = m->sql_loc = m->primary_key_loc = loc;
    return 0;
  }
  if ((rc = get_string(v, "warehouse", ctx, loc, true, "the name of a warehouse", &m->warehouse,
                       &m->warehouse_loc, err)) ||
      (rc = check_ref(v, "warehouse", "warehouses", ctx, cfg->warehouses, cfg->n_warehouses,
                      sizeof *cfg->warehouses, err)) ||
      (rc = get_string(v, "sql", ctx, loc, true, "the SQL query that selects the rows", &m->sql,
                       &m->sql_loc, err)) ||
      (rc = get_string(v, "primary_key", ctx, loc, true, "the column that identifies a row",
                       &m->primary_key, &m->primary_key_loc, err)) ||
      (rc = get_pairs(v, "pii", ctx, true, "a PII kind", &m->pii, err)))
    return rc;
  const struct bf_node *pii = bf_node_get(v, "pii");
  for (size_t i = 0; i < m->pii.n; i++) {
    const struct bf_node *kv = pii->items[i]; /* get_pairs keeps the node's order */
    size_t k = 0;
    while (pii_kinds[k] && strcmp(pii_kinds[k], kv->scalar)) k++;
    if (pii_kinds[k]) continue;
    struct shown b, c;
    const char *hint = kv->from_env ? NULL : bf_did_you_mean(kv->scalar, pii_kinds);
    char list[LIST_MAX];
    join_names(list, sizeof list, pii_kinds, 7);
    return bf_config_loc_error(
        err, kv->loc, "unknown PII kind %s for column %s in %s%s%s%s; expected one of: %s",
        show_value(&b, kv), show_str(&c, m->pii.items[i].key), ctx, hint ? " (did you mean '" : "",
        hint ? hint : "", hint ? "'?)" : "", list);
  }
  struct bf_loc live_loc = loc;
  const struct bf_node *live = map_get(v, "live", &live_loc);
  return load_live(live, live_loc, m, ctx, err);
}

struct field_ref {
  const char *key;
  struct bf_loc loc;
  const char *section;
};

static int cmp_field_ref(const void *a, const void *b) {
  const struct field_ref *x = a, *y = b;
  if (x->loc.line != y->loc.line) return x->loc.line < y->loc.line ? -1 : 1;
  return (x->loc.col > y->loc.col) - (x->loc.col < y->loc.col);
}

/* A destination field may be set once across match, fields and constants;
 * the error is at whichever setting comes second in the file. */
static int check_field_conflicts(const struct bf_node *v, const char *ctx, struct bf_error *err) {
  static const char *const sections[] = {"match", "fields", "constants"};
  size_t total = 0, n = 0;
  for (size_t s = 0; s < 3; s++) {
    const struct bf_node *m = bf_node_get(v, sections[s]);
    if (m && m->kind == BF_NODE_MAP) total += m->n;
  }
  if (total == 0) return 0;
  struct field_ref *refs = bf_xcalloc(total, sizeof *refs);
  for (size_t s = 0; s < 3; s++) {
    const struct bf_node *m = bf_node_get(v, sections[s]);
    for (size_t i = 0; m && m->kind == BF_NODE_MAP && i < m->n; i++)
      refs[n++] = (struct field_ref){m->keys[i], m->key_locs[i], sections[s]};
  }
  qsort(refs, n, sizeof *refs, cmp_field_ref);
  struct strset seen = {0};
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    size_t first;
    if (!bf_strset_add(&seen, refs[i].key, i, &first)) continue;
    struct shown b;
    rc =
        bf_config_loc_error(err, refs[i].loc,
                            "destination field %s in '%s' of %s is already set in '%s' (line %d, "
                            "column %d); expected each destination field once across match, fields "
                            "and constants",
                            show_str(&b, refs[i].key), refs[i].section, ctx, refs[first].section,
                            refs[first].loc.line, refs[first].loc.col);
  }
  bf_strset_free(&seen);
  free(refs);
  return rc;
}

static int load_schedule(const struct bf_node *syncs_node, struct bf_sync_config *s,
                         const struct bf_model_config *model, const struct bf_node *v,
                         const char *ctx, struct bf_error *err) {
  static const char *const keys[] = {"every", "cron", "after", NULL};
  static const char *const expected =
      "{every: 15m}, {cron: \"0 * * * *\"}, {after: other_sync}, live or manual";
  struct bf_loc key_loc = s->loc;
  const struct bf_node *sch = map_get(v, "schedule", &key_loc);
  struct shown b;
  int rc;
  s->schedule = BF_SCHEDULE_NONE;
  if (!sch || node_is_null(sch)) return 0;
  if (sch->kind == BF_NODE_SEQ)
    return bf_config_loc_error(err, sch->loc, "expected %s for 'schedule' in %s, found a sequence",
                               expected, ctx);
  if (sch->kind == BF_NODE_SCALAR) {
    if (!strcmp(sch->scalar, "manual")) return 0;
    if (strcmp(sch->scalar, "live"))
      return bf_config_loc_error(err, sch->loc, "unknown schedule %s in %s; expected %s",
                                 show_value(&b, sch), ctx, expected);
    if (model && !model->n_live)
      return bf_config_loc_error(err, sch->loc,
                                 "'schedule: live' in %s needs model '%s' to say which table to "
                                 "watch; expected 'live: {table: ..., key: ...}' in model '%s'",
                                 ctx, model->name, model->name);
    s->schedule = BF_SCHEDULE_LIVE;
    return 0;
  }
  char what[NAME_MAX_LEN + 48];
  snprintf(what, sizeof what, "'schedule' of %s", ctx);
  if ((rc = bf_node_check_keys(sch, what, keys, err))) return rc;
  if (sch->n != 1)
    return bf_config_loc_error(err, sch->n ? sch->key_locs[1] : key_loc,
                               "%s %s; expected exactly one of every, cron or after", what,
                               sch->n ? "has more than one entry" : "is empty");
  const struct bf_node *val = sch->items[0];
  const char *kind = sch->keys[0];
  if (!strcmp(kind, "every")) {
    s->schedule = BF_SCHEDULE_EVERY;
    return bf_node_as_duration_ms(val, &s->every_ms, err);
  }
  if (val->kind != BF_NODE_SCALAR || node_is_null(val))
    return bf_config_loc_error(err, val->loc, "expected %s for '%s' in %s, found %s",
                               !strcmp(kind, "cron") ? "a cron expression such as \"0 * * * *\""
                                                     : "the name of a sync",
                               kind, what, kind_name(val));
  if (!strcmp(kind, "cron")) {
    size_t fields = 0;
    for (const char *c = val->scalar; *c;) {
      while (*c == ' ' || *c == '\t') c++;
      if (!*c) break;
      fields++;
      while (*c && *c != ' ' && *c != '\t') c++;
    }
    bool macro = val->scalar[strspn(val->scalar, " \t")] == '@'; /* @hourly, @daily... */
    if (!(fields == 5 || (macro && fields == 1)))
      return bf_config_loc_error(err, val->loc,
                                 "cron expression %s in %s has %zu fields; expected 5 (minute hour "
                                 "day-of-month month day-of-week), e.g. \"0 * * * *\"",
                                 show_value(&b, val), ctx, fields);
    s->schedule = BF_SCHEDULE_CRON;
    s->cron = bf_xstrdup(val->scalar);
    return 0;
  }
  if (!strcmp(val->scalar, s->name))
    return bf_config_loc_error(err, val->loc, "%s cannot run after itself; expected another sync",
                               ctx);
  if (!bf_node_get(syncs_node, val->scalar)) {
    const char **names = bf_xcalloc(syncs_node->n + 1, sizeof *names);
    for (size_t i = 0; i < syncs_node->n; i++) names[i] = syncs_node->keys[i];
    rc = unknown_ref(val, "sync", "syncs", what, names, syncs_node->n, err);
    free(names);
    return rc;
  }
  s->schedule = BF_SCHEDULE_AFTER;
  s->after = bf_xstrdup(val->scalar);
  return 0;
}

static int load_pii_policy(const struct bf_node *v, struct bf_sync_config *s,
                           const struct bf_model_config *model, const char *ctx,
                           struct bf_error *err) {
  static const char *const actions[] = {"allow", "hash", "drop", NULL};
  const struct bf_node *pol = bf_node_get(v, "pii_policy");
  int rc = get_pairs(v, "pii_policy", ctx, true, "allow, hash or drop", &s->pii_policy, err);
  if (rc || !pol || pol->kind != BF_NODE_MAP || !model) return rc;
  struct strset pii = {0};
  for (size_t i = 0; i < model->pii.n; i++) bf_strset_add(&pii, model->pii.items[i].key, i, NULL);
  for (size_t i = 0; i < pol->n && !rc; i++) {
    const char *column = pol->keys[i];
    const struct bf_node *act = pol->items[i];
    struct shown b, c;
    if (!bf_strset_get(&pii, column, NULL)) {
      const char **names = bf_xcalloc(model->pii.n + 1, sizeof *names);
      char list[LIST_MAX + 64];
      for (size_t k = 0; k < model->pii.n; k++) names[k] = model->pii.items[k].key;
      join_names(list, sizeof list, names, model->pii.n);
      const char *hint = bf_did_you_mean(column, names);
      if (model->pii.n == 0)
        rc = bf_config_loc_error(
            err, pol->key_locs[i],
            "column %s in 'pii_policy' of %s is not a PII column of model '%s'; "
            "expected a column listed in the model's 'pii' (it lists none)",
            show_str(&b, column), ctx, model->name);
      else
        rc = bf_config_loc_error(
            err, pol->key_locs[i],
            "column %s in 'pii_policy' of %s is not a PII column of model '%s'%s%s%s; "
            "expected one of: %s",
            show_str(&b, column), ctx, model->name, hint ? " (did you mean '" : "",
            hint ? hint : "", hint ? "'?)" : "", list);
      free(names);
      break;
    }
    size_t k = 0;
    while (actions[k] && strcmp(actions[k], act->scalar)) k++;
    if (!actions[k]) {
      rc = bf_config_loc_error(
          err, act->loc, "unknown PII action %s for column %s in %s; expected allow, hash or drop",
          show_value(&b, act), show_str(&c, column), ctx);
      break;
    }
    if (k == BF_PII_DROP) {
      for (size_t m = 0; m < s->match.n; m++) {
        if (strcmp(s->match.items[m].value, column)) continue;
        rc = bf_config_loc_error(err, act->loc,
                                 "column %s cannot be dropped in %s: 'match' uses it to identify "
                                 "records; expected allow or hash",
                                 show_str(&b, column), ctx);
        break;
      }
    }
  }
  bf_strset_free(&pii);
  return rc;
}

/* state: local | warehouse. A live sync keeps its state locally: its
 * per-key passes are not one plan statement. */
static int load_state_kind(const struct bf_node *v, struct bf_sync_config *s, const char *ctx,
                           struct bf_error *err) {
  const struct bf_node *st = bf_node_get(v, "state");
  s->state_loc = st ? st->loc : s->loc;
  if (!st || node_is_null(st)) return 0;
  const char *kind = bf_node_get_str(v, "state");
  if (kind && !strcmp(kind, "warehouse"))
    s->state_warehouse = true;
  else if (!kind || strcmp(kind, "local") != 0)
    return bf_config_loc_error(err, st->loc, "'state' in %s must be local or warehouse", ctx);
  if (s->state_warehouse && s->schedule == BF_SCHEDULE_LIVE)
    return bf_config_loc_error(err, st->loc,
                               "'state: warehouse' in %s is not available for 'schedule: live' "
                               "syncs; use 'state: local'",
                               ctx);
  return 0;
}

static int load_sync(struct bf_config *cfg, const struct bf_node *syncs_node,
                     struct bf_sync_config *s, const char *name, struct bf_loc loc,
                     const struct bf_node *v, struct bf_error *err) {
  const char *keys[32]; /* from the one table, which `types` prints */
  size_t n_keys = 0;
  for (; bf_sync_keys[n_keys].name && n_keys < 31; n_keys++)
    keys[n_keys] = bf_sync_keys[n_keys].name;
  keys[n_keys] = NULL;
  static const char *const modes[] = {"upsert", "update", "insert", "mirror", NULL};
  char ctx[NAME_MAX_LEN + 32];
  struct shown b;
  int rc;
  snprintf(ctx, sizeof ctx, "sync '%s'", name);
  s->name = bf_xstrdup(name);
  s->loc = s->model_loc = s->destination_loc = s->mode_loc = loc;
  if (node_is_null(v))
    return bf_config_loc_error(err, loc,
                               "%s has no settings; expected a mapping with model, destination and "
                               "match",
                               ctx);
  if ((rc = bf_node_check_keys(v, ctx, keys, err))) return rc;
  if ((s->unset = bf_node_first_unset(v))) {
    /* Checked when a command needs the sync (bf_config_require_sync). */
    const char *model = bf_node_get_str(v, "model"), *dest = bf_node_get_str(v, "destination");
    s->model = bf_xstrdup(model ? model : "");
    s->destination = bf_xstrdup(dest ? dest : "");
    return 0;
  }
  if ((rc = get_string(v, "model", ctx, loc, true, "the name of a model", &s->model, &s->model_loc,
                       err)) ||
      (rc = check_ref(v, "model", "models", ctx, cfg->models, cfg->n_models, sizeof *cfg->models,
                      err)) ||
      (rc = get_string(v, "destination", ctx, loc, true, "the name of a destination",
                       &s->destination, &s->destination_loc, err)) ||
      (rc = check_ref(v, "destination", "destinations", ctx, cfg->destinations, cfg->n_destinations,
                      sizeof *cfg->destinations, err)))
    return rc;
  const struct bf_model_config *model = bf_config_model(cfg, s->model);
  if (model->unset) {
    s->unset = model->unset; /* the sync cannot be checked without its model */
    return 0;
  }

  char *mode = NULL;
  if ((rc = get_string(v, "mode", ctx, loc, false, "upsert, update, insert or mirror", &mode,
                       &s->mode_loc, err)))
    return rc;
  s->mode = BF_MODE_UPSERT;
  if (mode) {
    size_t k = 0;
    while (modes[k] && strcmp(modes[k], mode)) k++;
    free(mode);
    if (!modes[k]) {
      const struct bf_node *mv = bf_node_get(v, "mode");
      const char *hint = mv->from_env ? NULL : bf_did_you_mean(mv->scalar, modes);
      return bf_config_loc_error(err, s->mode_loc,
                                 "unknown mode %s in %s%s%s%s; expected upsert, update, "
                                 "insert or mirror",
                                 show_value(&b, mv), ctx, hint ? " (did you mean '" : "",
                                 hint ? hint : "", hint ? "'?)" : "");
    }
    s->mode = (enum bf_sync_mode)k;
  }

  struct bf_loc match_loc = loc;
  const struct bf_node *match = map_get(v, "match", &match_loc);
  if ((rc = get_string(v, "object", ctx, loc, false, "the destination object, e.g. contacts",
                       &s->object, NULL, err)) ||
      (rc = get_pairs(v, "match", ctx, true, "a model column", &s->match, err)))
    return rc;
  if (!match)
    return bf_config_loc_error(
        err, loc,
        "%s is missing 'match'; expected a mapping of destination id field to "
        "model column, e.g. match: {email: email}",
        ctx);
  if (s->match.n == 0)
    return bf_config_loc_error(
        err, match_loc,
        "'match' in %s is empty; expected at least one destination id field: "
        "model column pair, e.g. match: {email: email}",
        ctx);
  if ((rc = get_pairs(v, "fields", ctx, true, "a model column", &s->fields, err)) ||
      (rc = get_pairs(v, "constants", ctx, false, "a value", &s->constants, err)) ||
      (rc = check_field_conflicts(v, ctx, err)) ||
      (rc = load_schedule(syncs_node, s, model, v, ctx, err)) ||
      (rc = load_pii_policy(v, s, model, ctx, err)))
    return rc;

  const struct bf_node *bs = bf_node_get(v, "batch_size");
  s->batch_size_loc = bs ? bs->loc : loc;
  if (bs && !node_is_null(bs) && (rc = bf_node_as_int(bs, 1, 100000, &s->batch_size, err)))
    return rc;
  const struct bf_node *rt = bf_node_get(v, "reject_threshold");
  if (rt && !node_is_null(rt) && (rc = bf_sync_parse_reject_threshold(rt, s, err))) return rc;
  s->reconcile_ms = 3600000;
  const struct bf_node *rec = bf_node_get(v, "reconcile");
  if (rec && !node_is_null(rec)) {
    if (s->schedule != BF_SCHEDULE_LIVE)
      return bf_config_loc_error(
          err, rec->loc,
          "'reconcile' in %s applies only to 'schedule: live'; remove it or make the "
          "sync live",
          ctx);
    if ((rc = bf_node_as_duration_ms(rec, &s->reconcile_ms, err))) return rc;
  }
  return load_state_kind(v, s, ctx, err);
}

/* `after` chains must end: a cycle would leave every sync in it waiting.
 * Each sync has at most one successor, so one walk per unvisited sync with
 * three colours finds every cycle in linear time. */
static int check_after_cycles(const struct bf_config *cfg, struct bf_error *err) {
  enum { UNSEEN, ON_PATH, DONE };
  size_t n = cfg->n_syncs, none = (size_t)-1;
  size_t *next = bf_xcalloc(n, sizeof *next);
  unsigned char *colour = bf_xcalloc(n, 1);
  struct strset index = {0};
  int rc = 0;
  for (size_t i = 0; i < n; i++) bf_strset_add(&index, cfg->syncs[i].name, i, NULL);
  for (size_t i = 0; i < n; i++)
    if (cfg->syncs[i].schedule != BF_SCHEDULE_AFTER ||
        !bf_strset_get(&index, cfg->syncs[i].after, &next[i]))
      next[i] = none;
  for (size_t i = 0; i < n && !rc; i++) {
    size_t j = i;
    while (j != none && colour[j] == UNSEEN) {
      colour[j] = ON_PATH;
      j = next[j];
    }
    if (j != none && colour[j] == ON_PATH)
      rc = bf_config_loc_error(
          err, cfg->syncs[j].loc,
          "sync '%s' is part of a cycle of 'schedule: {after: ...}'; expected a "
          "chain that starts with a sync scheduled some other way",
          cfg->syncs[j].name);
    for (j = i; j != none && colour[j] == ON_PATH; j = next[j]) colour[j] = DONE;
  }
  bf_strset_free(&index);
  free(colour);
  free(next);
  return rc;
}

/* server.public_url: the dashboard's address as people reach it (behind a
 * proxy it is not server.listen); alerts link to run pages under it. */
static int load_public_url(struct bf_config *cfg, const struct bf_node *srv, struct bf_loc owner,
                           struct bf_error *err) {
  struct bf_loc loc;
  char *url = NULL;
  int rc =
      get_string(srv, "public_url", "'server'", owner, false,
                 "the dashboard's address, e.g. \"https://backflow.example.com\"", &url, &loc, err);
  if (rc || !url) return rc;
  size_t scheme = !strncmp(url, "https://", 8) ? 8 : !strncmp(url, "http://", 7) ? 7 : 0;
  size_t host = scheme ? strcspn(url + scheme, "/:") : 0;
  bool bad = !scheme || host == 0 || strpbrk(url, " \t\r\n?#@\"<>\\") != NULL;
  if (bad) {
    rc = bf_config_loc_error(err, loc,
                             "invalid 'public_url' \"%.200s\" in 'server'; expected "
                             "http(s)://HOST[:PORT][/PATH] without query, fragment or user, e.g. "
                             "\"https://backflow.example.com\"",
                             url);
    free(url);
    return rc;
  }
  size_t len = strlen(url);
  while (len > scheme + host && url[len - 1] == '/') url[--len] = '\0';
  cfg->server_public_url = url;
  return 0;
}

static int load_server(struct bf_config *cfg, struct bf_error *err) {
  static const char *const keys[] = {"listen", "token", "tokens", "public_url", NULL};
  struct bf_loc loc = {cfg->path, 1, 1};
  const struct bf_node *srv = map_get(cfg->root, "server", &loc);
  int rc = want_map(srv, "server", NULL, err);
  if (rc || (rc = bf_node_check_keys(srv, "'server'", keys, err))) return rc;
  if (cfg->unset_server) { /* only serve reads it, and refuses it then */
    cfg->server_listen = bf_xstrdup("127.0.0.1:8420");
    return 0;
  }
  struct bf_loc listen_loc;
  if ((rc = get_string(srv, "listen", "'server'", loc, false, "HOST:PORT, e.g. \"127.0.0.1:8420\"",
                       &cfg->server_listen, &listen_loc, err)) ||
      (rc = get_string(srv, "token", "'server'", loc, false,
                       "the token clients must send (or no 'token' key)", &cfg->server_token, NULL,
                       err)) ||
      (rc = bf_config_load_tokens(cfg, srv, err)) || (rc = load_public_url(cfg, srv, loc, err)))
    return rc;
  if (!cfg->server_listen) {
    cfg->server_listen = bf_xstrdup("127.0.0.1:8420");
    return 0;
  }
  const char *colon = strrchr(cfg->server_listen, ':');
  long long port = 0;
  if (!colon || colon == cfg->server_listen || parse_ll(colon + 1, &port) || port < 1 ||
      port > 65535 || colon[1] == '+' || colon[1] == '-') {
    struct shown b;
    return bf_config_loc_error(
        err, listen_loc,
        "invalid 'listen' address %s in 'server'; expected HOST:PORT with a port "
        "from 1 to 65535, e.g. \"127.0.0.1:8420\"",
        show_value(&b, bf_node_get(srv, "listen")));
  }
  return 0;
}

static int check_config(struct bf_config *cfg, struct bf_error *err) {
  static const char *const top_keys[] = {
      "version",    "state_dir",    "secret",  "server",      "warehouses",
      "models",     "destinations", "syncs",   "write_back",  "alerts",
      "durability", "hooks",        "include", "coordinator", NULL};
  const struct bf_node *root = cfg->root;
  struct bf_loc top = {cfg->path, 1, 1};
  int rc;
  if (node_is_null(root))
    return bf_config_loc_error(err, root->loc,
                               "the configuration is empty; expected a mapping starting with "
                               "'version: 1'");
  if (root->kind != BF_NODE_MAP)
    return bf_config_loc_error(err, root->loc,
                               "expected a mapping of settings (version, warehouses, models, "
                               "destinations, syncs) at the top level, found %s",
                               kind_name(root));
  if ((rc = bf_node_check_keys(root, "the top level", top_keys, err))) return rc;

  if ((rc = check_set(bf_node_get(root, "version"), err)) ||
      (rc = check_set(bf_node_get(root, "state_dir"), err)) ||
      (rc = check_set(bf_node_get(root, "durability"), err)))
    return rc;
  static const char *const lazy_globals[] = {"secret", "write_back", "alerts", NULL};
  for (size_t i = 0; lazy_globals[i] && !cfg->unset_globals; i++)
    cfg->unset_globals = bf_node_first_unset(bf_node_get(root, lazy_globals[i]));
  const struct bf_node *secret_node = bf_node_get(root, "secret");
  bool secret_unset = bf_node_first_unset(secret_node) != NULL;
  cfg->unset_server = bf_node_first_unset(bf_node_get(root, "server"));

  cfg->version = 1;
  const struct bf_node *ver = bf_node_get(root, "version");
  if (ver) {
    long long v = 0;
    struct shown b;
    if (ver->kind != BF_NODE_SCALAR || parse_ll(ver->scalar, &v) || v != 1)
      return bf_config_loc_error(err, ver->loc,
                                 "unsupported configuration version %s; expected 'version: 1'",
                                 show_value(&b, ver));
  }
  if ((rc = get_string(root, "state_dir", NULL, top, false,
                       "a directory for the state store, e.g. .backflow", &cfg->state_dir,
                       &cfg->state_dir_loc, err)) ||
      (!secret_unset &&
       (rc = get_string(root, "secret", NULL, top, false,
                        "the project secret, usually \"${BACKFLOW_SECRET}\" (or no 'secret' "
                        "key to have one generated)",
                        &cfg->secret, &cfg->secret_loc, err))) ||
      (rc = load_server(cfg, err)))
    return rc;
  if (secret_unset) cfg->secret_loc = secret_node->loc;
  /* The same rule as the key derivation's (prf.c), here so that validate
   * refuses what run would, at the place it was written. */
  if (cfg->secret && strlen(cfg->secret) < 16)
    return bf_config_loc_error(
        err, cfg->secret_loc,
        "secret is too short (%zu characters%s); expected at least 16 random "
        "characters, usually \"${BACKFLOW_SECRET}\"",
        strlen(cfg->secret), secret_node->from_env ? ", from the environment" : "");
  if (!cfg->state_dir) cfg->state_dir = bf_xstrdup(".backflow");
  const struct bf_node *dur = bf_node_get(root, "durability");
  if (dur) {
    if (dur->kind != BF_NODE_SCALAR ||
        (strcmp(dur->scalar, "process") && strcmp(dur->scalar, "power")))
      return bf_config_loc_error(err, dur->loc, "durability must be 'process' or 'power'");
    cfg->durability_power = !strcmp(dur->scalar, "power");
  }

  if ((rc = load_typed_section(cfg, "warehouses", "warehouse", "sqlite or postgres", false, err)) ||
      (rc = load_typed_section(cfg, "destinations", "destination", "webhook, hubspot or file", true,
                               err)))
    return rc;

  const struct bf_node *models = bf_node_get(root, "models");
  if ((rc = want_map(models, "models", NULL, err))) return rc;
  if (models && models->kind == BF_NODE_MAP) {
    cfg->models = bf_xcalloc(models->n, sizeof *cfg->models);
    cfg->n_models = models->n;
    for (size_t i = 0; i < models->n; i++) {
      if ((rc = check_name(models->keys[i], models->key_locs[i], "model", err)) ||
          (rc = load_model(cfg, &cfg->models[i], models->keys[i], models->key_locs[i],
                           models->items[i], err)))
        return rc;
    }
  }

  const struct bf_node *syncs = bf_node_get(root, "syncs");
  if ((rc = want_map(syncs, "syncs", NULL, err))) return rc;
  if (syncs && syncs->kind == BF_NODE_MAP) {
    cfg->syncs = bf_xcalloc(syncs->n, sizeof *cfg->syncs);
    cfg->n_syncs = syncs->n;
    for (size_t i = 0; i < syncs->n; i++) {
      if ((rc = check_name(syncs->keys[i], syncs->key_locs[i], "sync", err)) ||
          (rc = load_sync(cfg, syncs, &cfg->syncs[i], syncs->keys[i], syncs->key_locs[i],
                          syncs->items[i], err)))
        return rc;
    }
  }
  if ((rc = check_after_cycles(cfg, err))) return rc;
  return bf_config_load_coordinator(cfg, err);
}

/* ---------------------------------------------------------------------- */
/* Config lifecycle */

int bf_config_parse(const char *name, const char *text, size_t len, const char *dir,
                    struct bf_config **out, struct bf_error *err) {
  struct bf_config *cfg = bf_xcalloc(1, sizeof *cfg);
  int rc;
  *out = NULL;
  cfg->path = bf_xstrdup(name ? name : "<config>");
  cfg->dir = bf_xstrdup(dir ? dir : ".");
  if (len > CONFIG_MAX_BYTES) {
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s: the file is %zu bytes; expected at most 4 MiB (%zu bytes)", cfg->path,
                      len, CONFIG_MAX_BYTES);
    goto fail;
  }
  if ((rc = bf_config_parse_tree(cfg->path, text ? text : "", text ? len : 0, &cfg->root, err)) ||
      (rc = bf_config_expand_includes(cfg, err)) || (rc = check_config(cfg, err)))
    goto fail;
  *out = cfg;
  return 0;
fail:
  bf_config_free(cfg);
  return rc;
}

int bf_config_load(const char *path, struct bf_config **out, struct bf_error *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return bf_error_set(err, BF_E_CONFIG, "%s: cannot read: %s", path, strerror(errno));
  /* Read at most one byte past the cap: enough to know the file is too big
   * without trusting st_size (pipes, /proc files). */
  size_t cap = 64 * 1024, len = 0;
  char *buf = bf_xmalloc(cap);
  int rc = 0;
  for (;;) {
    if (len == cap) {
      cap = cap * 2 > CONFIG_MAX_BYTES + 1 ? CONFIG_MAX_BYTES + 1 : cap * 2;
      buf = bf_xrealloc(buf, cap);
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (len > CONFIG_MAX_BYTES) {
      rc = bf_error_set(err, BF_E_CONFIG,
                        "%s: the file is larger than 4 MiB; expected at most %zu bytes", path,
                        CONFIG_MAX_BYTES);
      break;
    }
    if (got == 0) {
      if (ferror(f))
        rc = bf_error_set(err, BF_E_CONFIG, "%s: cannot read: %s", path,
                          strerror(errno ? errno : EIO));
      break;
    }
  }
  fclose(f);
  if (!rc) {
    const char *slash = strrchr(path, '/');
    char *dir = !slash          ? bf_xstrdup(".")
                : slash == path ? bf_xstrdup("/")
                                : bf_xstrndup(path, (size_t)(slash - path));
    rc = bf_config_parse(path, buf, len, dir, out, err);
    free(dir);
  }
  free(buf);
  return rc;
}

void bf_config_free(struct bf_config *cfg) {
  if (!cfg) return;
  for (size_t i = 0; cfg->warehouses && i < cfg->n_warehouses; i++) {
    free(cfg->warehouses[i].name);
    free(cfg->warehouses[i].type);
  }
  for (size_t i = 0; cfg->models && i < cfg->n_models; i++) {
    struct bf_model_config *m = &cfg->models[i];
    free(m->name);
    free(m->warehouse);
    free(m->sql);
    free(m->primary_key);
    pairs_free(&m->pii);
    for (size_t k = 0; k < m->n_live; k++) {
      free(m->live[k].table);
      free(m->live[k].key);
    }
    free(m->live);
  }
  for (size_t i = 0; cfg->destinations && i < cfg->n_destinations; i++) {
    free(cfg->destinations[i].name);
    free(cfg->destinations[i].type);
  }
  for (size_t i = 0; cfg->syncs && i < cfg->n_syncs; i++) {
    struct bf_sync_config *s = &cfg->syncs[i];
    free(s->name);
    free(s->model);
    free(s->destination);
    free(s->object);
    pairs_free(&s->match);
    pairs_free(&s->fields);
    pairs_free(&s->constants);
    pairs_free(&s->pii_policy);
    free(s->cron);
    free(s->after);
  }
  free(cfg->warehouses);
  free(cfg->models);
  free(cfg->destinations);
  free(cfg->syncs);
  bf_node_free(cfg->root);
  for (size_t i = 0; i < cfg->n_include_files; i++) free(cfg->include_files[i]);
  free(cfg->include_files);
  if (cfg->secret) explicit_bzero(cfg->secret, strlen(cfg->secret));
  if (cfg->server_token) explicit_bzero(cfg->server_token, strlen(cfg->server_token));
  free(cfg->secret);
  free(cfg->server_token);
  free(cfg->server_tokens);
  free(cfg->server_public_url);
  free(cfg->server_listen);
  free(cfg->state_dir);
  free(cfg->path);
  free(cfg->dir);
  free(cfg);
}

#define CONFIG_FIND(fn, type, arr, count)                                                          \
  const type *fn(const struct bf_config *c, const char *name) {                                    \
    if (!c || !name) return NULL;                                                                  \
    for (size_t i = 0; c->arr && i < c->count; i++)                                                \
      if (c->arr[i].name && !strcmp(c->arr[i].name, name)) return &c->arr[i];                      \
    return NULL;                                                                                   \
  }
CONFIG_FIND(bf_config_warehouse, struct bf_warehouse_config, warehouses, n_warehouses)
CONFIG_FIND(bf_config_model, struct bf_model_config, models, n_models)
CONFIG_FIND(bf_config_destination, struct bf_destination_config, destinations, n_destinations)
CONFIG_FIND(bf_config_sync, struct bf_sync_config, syncs, n_syncs)
#undef CONFIG_FIND

char *bf_config_path(const struct bf_config *cfg, const char *relative) {
  if (!relative) return NULL;
  if (relative[0] == '/') return bf_xstrdup(relative);
  const char *dir = cfg && cfg->dir && cfg->dir[0] ? cfg->dir : ".";
  size_t n = strlen(dir);
  return bf_xasprintf("%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", relative);
}

const char *bf_sync_mode_name(enum bf_sync_mode m) {
  switch (m) {
  case BF_MODE_UPSERT: return "upsert";
  case BF_MODE_UPDATE: return "update";
  case BF_MODE_INSERT: return "insert";
  case BF_MODE_MIRROR: return "mirror";
  }
  return "unknown";
}

int bf_error_unknown(struct bf_error *err, int code, const struct bf_loc *loc, const char *what,
                     const char *name, bool hide, const char *const *known) {
  char list[512] = "";
  for (size_t i = 0; known[i]; i++) {
    if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
    strncat(list, known[i], sizeof list - strlen(list) - 1);
  }
  const char *guess = hide ? NULL : bf_did_you_mean(name, known);
  return bf_error_set(err, code, "%s:%d:%d: unknown %s %s%s%s%s%s%s (known: %s)", loc->file,
                      loc->line, loc->col, what, hide ? "" : "'",
                      hide ? "(a value from the environment, not shown)" : name, hide ? "" : "'",
                      guess ? "; did you mean '" : "", guess ? guess : "", guess ? "'?" : "", list);
}

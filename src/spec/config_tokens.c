/* server.tokens: a list of {name, token, role}. The names appear in the
 * edit log (who changed what), so they must be unique; two entries with the
 * same token would make the name ambiguous, so that is refused too. */
#include <string.h>

#include "spec/config_internal.h"

#define TOKEN_MIN_LEN 16

static const char *const role_names[] = {"viewer", "editor", "admin", NULL};

static int scalar_of(const struct bf_node *item, const char *key, const char *expected,
                     const char **out, struct bf_error *err) {
  const struct bf_node *n = bf_node_get(item, key);
  if (!n)
    return bf_config_loc_error(err, item->loc,
                               "a token in 'server.tokens' is missing '%s'; "
                               "expected %s",
                               key, expected);
  if (n->kind != BF_NODE_SCALAR || !n->scalar[0])
    return bf_config_loc_error(err, n->loc,
                               "'%s' in 'server.tokens' must be a non-empty "
                               "string; expected %s",
                               key, expected);
  *out = n->scalar;
  return 0;
}

static int check_name(const struct bf_node *item, const char *name, struct bf_error *err) {
  size_t len = strlen(name);
  bool ok = len <= NAME_MAX_LEN && bf_config_is_name_start(name[0]);
  for (size_t i = 1; ok && i < len; i++) ok = bf_config_is_name_char(name[i]) || name[i] == '-';
  if (ok) return 0;
  struct shown b;
  return bf_config_loc_error(err, bf_node_get(item, "name")->loc,
                             "invalid token name %s in 'server.tokens'; expected letters, digits, "
                             "'_' and '-', e.g. \"marketing\"",
                             bf_config_show_text(&b, name, true));
}

static int parse_role(const struct bf_node *item, const char *role, enum bf_role *out,
                      struct bf_error *err) {
  for (int i = 0; role_names[i]; i++)
    if (!strcmp(role, role_names[i])) {
      *out = (enum bf_role)(BF_ROLE_VIEWER + i);
      return 0;
    }
  const char *near = bf_did_you_mean(role, role_names);
  struct shown b;
  return bf_config_loc_error(err, bf_node_get(item, "role")->loc,
                             "unknown role %s in 'server.tokens'%s%s%s; expected viewer, editor "
                             "or admin",
                             bf_config_show_text(&b, role, true), near ? "; did you mean '" : "",
                             near ? near : "", near ? "'?" : "");
}

static int load_one(const struct bf_node *item, struct bf_server_token *t, struct bf_error *err) {
  static const char *const keys[] = {"name", "token", "role", NULL};
  if (item->kind != BF_NODE_MAP)
    return bf_config_loc_error(err, item->loc,
                               "expected a mapping {name, token, role} in 'server.tokens'");
  const char *role = NULL;
  int rc;
  if ((rc = bf_node_check_keys(item, "a token of 'server.tokens'", keys, err)) ||
      (rc = scalar_of(item, "name", "a name shown in the edit log", &t->name, err)) ||
      (rc = check_name(item, t->name, err)) ||
      (rc = scalar_of(item, "token", "the bearer token, e.g. \"${MARKETING_TOKEN}\"", &t->token,
                      err)) ||
      (rc = scalar_of(item, "role", "viewer, editor or admin", &role, err)) ||
      (rc = parse_role(item, role, &t->role, err)))
    return rc;
  t->loc = item->loc;
  if (strlen(t->token) < TOKEN_MIN_LEN)
    return bf_config_loc_error(err, bf_node_get(item, "token")->loc,
                               "token '%s' in 'server.tokens' is shorter than %d characters; "
                               "expected a random string, e.g. from `openssl rand -hex 24`",
                               t->name, TOKEN_MIN_LEN);
  return 0;
}

int bf_config_load_tokens(struct bf_config *cfg, const struct bf_node *srv, struct bf_error *err) {
  const struct bf_node *list = bf_node_get(srv, "tokens");
  if (!list || (list->kind == BF_NODE_SCALAR && !list->quoted && !list->scalar[0])) return 0;
  if (list->kind != BF_NODE_SEQ)
    return bf_config_loc_error(err, list->loc,
                               "'tokens' in 'server' must be a list of {name, token, role}");
  cfg->server_tokens = bf_xcalloc(list->n ? list->n : 1, sizeof *cfg->server_tokens);
  cfg->n_server_tokens = 0;
  struct strset names = {0}, tokens = {0};
  int rc = 0;
  for (size_t i = 0; i < list->n && !rc; i++) {
    struct bf_server_token *t = &cfg->server_tokens[i];
    if ((rc = load_one(list->items[i], t, err))) break;
    size_t prev;
    if (bf_strset_add(&names, t->name, i, &prev))
      rc = bf_config_loc_error(err, t->loc,
                               "token name '%s' appears twice in 'server.tokens' "
                               "(first at line %d); names must be unique",
                               t->name, cfg->server_tokens[prev].loc.line);
    else if (bf_strset_add(&tokens, t->token, i, &prev) ||
             (cfg->server_token && !strcmp(cfg->server_token, t->token)))
      rc = bf_config_loc_error(err, t->loc,
                               "token '%s' in 'server.tokens' has the same token as another "
                               "entry; each needs its own",
                               t->name);
    cfg->n_server_tokens = i + 1;
  }
  bf_strset_free(&names);
  bf_strset_free(&tokens);
  return rc;
}

#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "server/roles.h"

struct role_entry {
  unsigned char hash[32];
  char *name;
  enum bf_role role;
};

struct bf_roles {
  size_t n;
  struct role_entry *e;
};

static void hash_token(const char *tok, unsigned char out[32]) {
  crypto_generichash(out, 32, (const unsigned char *)tok, strlen(tok), NULL, 0);
}

struct bf_roles *bf_roles_new(const struct bf_config *cfg, const char *single) {
  struct bf_roles *r = bf_xcalloc(1, sizeof *r);
  r->e = bf_xcalloc(cfg->n_server_tokens + 1, sizeof *r->e);
  hash_token(single, r->e[0].hash);
  r->e[0].name = bf_xstrdup("token");
  r->e[0].role = BF_ROLE_ADMIN;
  r->n = 1;
  for (size_t i = 0; i < cfg->n_server_tokens; i++, r->n++) {
    hash_token(cfg->server_tokens[i].token, r->e[r->n].hash);
    r->e[r->n].name = bf_xstrdup(cfg->server_tokens[i].name);
    r->e[r->n].role = cfg->server_tokens[i].role;
  }
  return r;
}

void bf_roles_free(struct bf_roles *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) {
    sodium_memzero(r->e[i].hash, sizeof r->e[i].hash);
    free(r->e[i].name);
  }
  free(r->e);
  free(r);
}

enum bf_role bf_roles_check(const struct bf_roles *r, const char *authorization,
                            const char **name) {
  *name = NULL;
  if (!r || !authorization || strncasecmp(authorization, "Bearer ", 7)) return BF_ROLE_NONE;
  const char *tok = authorization + 7;
  while (*tok == ' ') tok++;
  unsigned char hash[32];
  hash_token(tok, hash);
  /* Every entry is compared (no early exit), so timing says nothing about
   * which one matched. */
  enum bf_role role = BF_ROLE_NONE;
  for (size_t i = 0; i < r->n; i++) {
    int same = sodium_memcmp(hash, r->e[i].hash, sizeof hash) == 0;
    if (same) {
      role = r->e[i].role;
      *name = r->e[i].name;
    }
  }
  return role;
}

const char *bf_role_name(enum bf_role role) {
  switch (role) {
  case BF_ROLE_VIEWER: return "viewer";
  case BF_ROLE_EDITOR: return "editor";
  case BF_ROLE_ADMIN: return "admin";
  case BF_ROLE_NONE: break;
  }
  return "none";
}

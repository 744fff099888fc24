/* Tests for src/server/roles.c and server.tokens in src/spec/config_tokens.c:
 * each token maps to its name and role, the single server token is admin,
 * and anything else is no role at all. */
#include <criterion/criterion.h>

#include <string.h>

#include "server/roles.h"

static const char *yaml = "version: 1\n"
                          "server:\n"
                          "  token: single-admin-token-000\n"
                          "  tokens:\n"
                          "    - {name: ann, token: viewer-token-0123456789, role: viewer}\n"
                          "    - {name: bob, token: editor-token-0123456789, role: editor}\n"
                          "    - {name: cat, token: admin2-token-0123456789, role: admin}\n";

Test(roles, tokens_map_to_names_and_roles) {
  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_config_parse("t.yml", yaml, strlen(yaml), "/p", &cfg, &err), 0, "%s", err.msg);
  cr_assert_eq(cfg->n_server_tokens, 3);
  struct bf_roles *r = bf_roles_new(cfg, cfg->server_token);
  const char *who = NULL;
  cr_assert_eq(bf_roles_check(r, "Bearer viewer-token-0123456789", &who), BF_ROLE_VIEWER);
  cr_assert_str_eq(who, "ann");
  cr_assert_eq(bf_roles_check(r, "bearer   editor-token-0123456789", &who), BF_ROLE_EDITOR);
  cr_assert_str_eq(who, "bob");
  cr_assert_eq(bf_roles_check(r, "Bearer admin2-token-0123456789", &who), BF_ROLE_ADMIN);
  cr_assert_str_eq(who, "cat");
  cr_assert_eq(bf_roles_check(r, "Bearer single-admin-token-000", &who), BF_ROLE_ADMIN);
  cr_assert_str_eq(who, "token");
  const char *bad[] = {"Bearer viewer-token-012345678",
                       "Bearer viewer-token-0123456789x",
                       "Basic viewer-token-0123456789",
                       "viewer-token-0123456789",
                       "Bearer ",
                       ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(bf_roles_check(r, bad[i], &who), BF_ROLE_NONE, "%s", bad[i]);
    cr_assert_null(who);
  }
  cr_assert_eq(bf_roles_check(r, NULL, &who), BF_ROLE_NONE);
  cr_assert_str_eq(bf_role_name(BF_ROLE_EDITOR), "editor");
  bf_roles_free(r);
  bf_config_free(cfg);
}

Test(roles, a_project_without_tokens_has_only_the_admin_token) {
  const char *y = "version: 1\nserver: {token: only-token-00000000}\n";
  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_config_parse("t.yml", y, strlen(y), "/p", &cfg, &err), 0, "%s", err.msg);
  cr_assert_eq(cfg->n_server_tokens, 0);
  struct bf_roles *r = bf_roles_new(cfg, cfg->server_token);
  const char *who;
  cr_assert_eq(bf_roles_check(r, "Bearer only-token-00000000", &who), BF_ROLE_ADMIN);
  cr_assert_eq(bf_roles_check(r, "Bearer viewer-token-0123456789", &who), BF_ROLE_NONE);
  bf_roles_free(r);
  bf_config_free(cfg);
}

Test(roles, a_tokens_entry_reusing_the_server_token_is_refused) {
  const char *y = "version: 1\nserver:\n  token: same-token-0123456789\n  tokens:\n"
                  "    - {name: ann, token: same-token-0123456789, role: viewer}\n";
  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_config_parse("t.yml", y, strlen(y), "/p", &cfg, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "t.yml:5:7: token 'ann' in 'server.tokens' has the same token"), "%s",
            err.msg);
}

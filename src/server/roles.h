/* Bearer tokens and their roles (issue 18). server.token (or the generated
 * <state_dir>/server_token) is the admin token named "token"; server.tokens
 * adds named viewer, editor and admin tokens. Only BLAKE2b hashes of the
 * tokens are kept. */
#ifndef BF_ROLES_H
#define BF_ROLES_H

#include "spec/config.h"

struct bf_roles;

/* single: the server token (admin). Caller frees with bf_roles_free(). */
struct bf_roles *bf_roles_new(const struct bf_config *cfg, const char *single);
void bf_roles_free(struct bf_roles *r);

/* The role of the bearer token in authorization (an Authorization header's
 * value, may be NULL); BF_ROLE_NONE when missing or unknown. *name is set to
 * the token's name (owned by r). Takes the same time whichever token, if any,
 * matches. */
enum bf_role bf_roles_check(const struct bf_roles *r, const char *authorization, const char **name);

/* "viewer", "editor", "admin" ("none" for BF_ROLE_NONE). */
const char *bf_role_name(enum bf_role role);

#endif

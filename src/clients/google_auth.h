/* OAuth 2.0 access tokens for a Google service account: the JWT bearer
 * grant (RFC 7523) to the key file's token_uri, as described in
 * https://developers.google.com/identity/protocols/oauth2/service-account.
 * Tokens live in memory only, are refreshed before they expire and on
 * demand (a 401), and are registered as secrets with the transport so no
 * message shows them. */
#ifndef BF_GOOGLE_AUTH_H
#define BF_GOOGLE_AUTH_H

#include <stdbool.h>

#include "util/error.h"
#include "clients/http_transport.h"

struct bf_google_auth;

/* Reads a service-account key file (JSON with type "service_account",
 * client_email, private_key, private_key_id, token_uri) and prepares to ask
 * for tokens with scope. what names the config place for messages. Caller
 * frees *out with bf_google_auth_free. */
int bf_google_auth_new(const char *key_path, const char *scope, const char *what,
                       struct bf_google_auth **out, struct bf_error *err);
void bf_google_auth_free(struct bf_google_auth *a);

/* The key file's project_id, or NULL. Owned by a. */
const char *bf_google_auth_project(const struct bf_google_auth *a);

/* A current access token through http (the request goes to token_uri as an
 * absolute URL): the one held unless it ends within a fifth of its life (at
 * most 5 minutes) or force is set, else a new one. *token stays owned by a
 * and valid until the next call. Errors carry the endpoint's error and
 * error_description (exit 3). */
int bf_google_auth_token(struct bf_google_auth *a, struct bf_http *http, bool force,
                         const char **token, struct bf_error *err);

/* Tokens obtained so far (for tests and metrics). */
unsigned bf_google_auth_grants(const struct bf_google_auth *a);

#endif

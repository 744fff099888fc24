/* OAuth 2.0 access tokens Backflow obtains and renews by itself, shared by
 * every HTTP source and destination that does not sign its own requests:
 *
 *   - client credentials (RFC 6749 §4.4): Databricks OAuth M2M,
 *   - refresh token (RFC 6749 §6): Salesforce and HubSpot public apps,
 *   - a fixed token (a Databricks personal access token): never renewed.
 *
 * The access token lives in memory only, is registered as a secret with
 * the transports it is used on (so no message shows it), is renewed when
 * less than a fifth of its life (at most 5 minutes) is left, and once more
 * when the API answers 401. Grants go through a transport of their own, so
 * a token can be renewed while the API's transport has requests in flight.
 * (https://datatracker.ietf.org/doc/html/rfc6749#section-4.4,
 *  https://datatracker.ietf.org/doc/html/rfc6749#section-6) */
#ifndef BF_OAUTH_TOKEN_H
#define BF_OAUTH_TOKEN_H

#include <stdbool.h>

#include "util/error.h"
#include "spec/config.h"
#include "clients/http_transport.h"

enum bf_oauth_client_auth {
  BF_OAUTH_BASIC, /* client_id:client_secret as HTTP Basic (Databricks) */
  BF_OAUTH_FORM   /* client_id and client_secret in the form body (Salesforce, HubSpot) */
};

struct bf_oauth_grant {
  const char *token_url;     /* absolute http(s) URL of the token endpoint */
  const char *grant_type;    /* "client_credentials" or "refresh_token" */
  const char *client_id;     /* required */
  const char *client_secret; /* required */
  const char *refresh_token; /* for "refresh_token" */
  const char *scope;         /* optional */
  enum bf_oauth_client_auth client_auth;
  /* Life assumed when the answer has no expires_in (Salesforce sends none:
   * its session timeout is an org setting); 0 means 1 hour. */
  long long default_lifetime_s;
  /* Exit code of a refused grant: 0 means BF_E_WAREHOUSE (sources);
   * destinations pass BF_E_DESTINATION. */
  int error_code;
};

struct bf_oauth;

/* Prepares to obtain tokens by grant g (strings copied). like gives the
 * token transport's timeout, retries and TLS setting (NULL: defaults).
 * what names the config place for messages ("warehouse 'dbx'
 * (databricks)"). Nothing is sent yet. Caller frees *out with
 * bf_oauth_free. Returns BF_E_CONFIG for a token_url that is not http(s). */
int bf_oauth_new(const struct bf_oauth_grant *g, const struct bf_http_options *like,
                 const char *what, struct bf_oauth **out, struct bf_error *err);
/* A provider that always hands out token (copied): a personal access
 * token. A 401 is then final. Caller frees with bf_oauth_free. */
struct bf_oauth *bf_oauth_new_fixed(const char *token, const char *what);
void bf_oauth_free(struct bf_oauth *a);

/* A current access token: the one held, unless it is near its end or force
 * is set (then a new grant). The token is registered as a secret with api
 * (may be NULL). *token stays owned by a, valid until the next call.
 * Errors carry the endpoint's error and error_description (exit 3), never
 * a secret. */
int bf_oauth_token(struct bf_oauth *a, struct bf_http *api, bool force, const char **token,
                   struct bf_error *err);

/* One request through api with "Authorization: Bearer <token>" added to
 * req's headers; a 401 gets a new token and one more try (not for a fixed
 * token). Returns 0 with resp filled whatever its status (caller releases),
 * or a negative code when no token could be had or the transport broke. */
int bf_oauth_send(struct bf_oauth *a, struct bf_http *api, const struct bf_http_request *req,
                  struct bf_http_response *resp, struct bf_error *err);

/* Like bf_http_perform without on_done: every attempt of every request
 * carries the current token (renewed when near its end, also between
 * retries), and the requests answered 401 are sent once more after one new
 * grant (not for a fixed token). The requests' user and attempt_headers are
 * the provider's (they must be unset). Returns 0 with resps[n] filled
 * (caller releases them), or a negative code: no token could be had (resps
 * then hold nothing, releasing them is harmless), or the transport broke. */
int bf_oauth_perform(struct bf_oauth *a, struct bf_http *api, const struct bf_http_request *reqs,
                     struct bf_http_response *resps, size_t n, struct bf_error *err);

/* A destination's credentials from its config: auth (a map {refresh_token,
 * client_id, client_secret[, token_url]}, may be NULL) for the refresh-token
 * grant, else the fixed access_token. Exactly one of the two must be given.
 * default_token_url is used when auth names none; default_lifetime_s as in
 * struct bf_oauth_grant. Errors name the config place (BF_E_CONFIG); what
 * is "destination 'crm' (hubspot)". Caller frees *out with bf_oauth_free. */
int bf_oauth_from_config(const struct bf_node *params, const char *token_key,
                         const char *default_token_url, long long default_lifetime_s,
                         const struct bf_http_options *like, const char *what,
                         struct bf_oauth **out, struct bf_error *err);

/* A string field of the last token answer ("instance_url"), or NULL.
 * Owned by a, valid until the next grant. */
const char *bf_oauth_field(const struct bf_oauth *a, const char *name);

/* Tokens obtained so far (tests, metrics). */
unsigned bf_oauth_grants(const struct bf_oauth *a);

#endif

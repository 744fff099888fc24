/* Events of POST /hooks/{destination} (docs/server.md, "Feedback loop"):
 * parsing (hook_parse.c), vendor signatures (hook_sig.c) and the group
 * commit into the warehouse (hook_store.c). */
#ifndef BF_HOOK_EVENTS_H
#define BF_HOOK_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "spec/config.h"
#include "util/prf.h"

#define BF_HOOK_MAX_EVENTS 10000

struct bf_hook_event {
  char event[128];
  char person_hash[33]; /* "" when the event names nobody */
  char *payload;        /* JSON without personal data; NULL if it could not be encoded */
  /* The identifier person_hash is the hash of, in memory only (never
   * stored): a live sync of the destination looks that key up again. */
  char *ident;
};

/* Parses a delivery: JSON (one event, an array, {"events": [...]},
 * {"data": [...]}) or a form post (ctype application/x-www-form-urlencoded).
 * Returns 0 and the events (caller frees with bf_hook_events_free), or the
 * HTTP status to answer (400, 413) with why filled. */
int bf_hook_parse(const struct bf_prf *prf, const char *ctype, const char *body, size_t len,
                  struct bf_hook_event **out, size_t *n, char *why, size_t cap);
/* Accepts NULL; wipes the identifiers. */
void bf_hook_events_free(struct bf_hook_event *evs, size_t n);

/* ---- hook_sig.c: who may post. A delivery as the signature sees it. */
struct bf_hook_request {
  const char *method;
  const char *url; /* the URL the sender was given (HubSpot signs it) */
  const char *body;
  size_t body_len;
  /* header lookup (case-insensitive) */
  const char *(*header)(const void *ctx, const char *name);
  const char *(*query)(const void *ctx, const char *name); /* may be NULL */
  const void *ctx;
};
enum bf_hook_scheme { BF_HOOK_STANDARD, BF_HOOK_HUBSPOT, BF_HOOK_KLAVIYO, BF_HOOK_TOKEN };
struct bf_hook_auth {
  enum bf_hook_scheme scheme;
  const char *secret;
  const char *url;    /* hubspot: the public URL of this endpoint */
  const char *header; /* token: the header holding the secret (default Authorization) */
};
/* The scheme name ("standard", "hubspot", ...) and back; -1 when unknown. */
const char *bf_hook_scheme_name(enum bf_hook_scheme s);
int bf_hook_scheme_find(const char *name);
/* Checks the signature and the timestamp window (now_ms) of req; fills id
 * (cap >= 257) with the delivery's idempotency key. Returns true when
 * authentic; else why says what was wrong (for the log only). */
bool bf_hook_verify(const struct bf_hook_auth *auth, const struct bf_hook_request *req,
                    long long now_ms, char *id, char *why, size_t why_cap);

/* ---- hook_store.c: the group commit. */
struct bf_hook_store;
/* Called after a commit with the identifiers of the events that were new
 * for destination (live syncs look them up again). */
typedef void (*bf_hook_nudge_fn)(void *ctx, const char *destination, const char *const *idents,
                                 size_t n);
/* Starts one committer thread per warehouse that receives events. Free
 * with bf_hook_store_free (joins after committing what is queued). */
struct bf_hook_store *bf_hook_store_new(const struct bf_config *cfg, bf_hook_nudge_fn nudge,
                                        void *ctx);
void bf_hook_store_free(struct bf_hook_store *s);
/* Stores one delivery of destination and waits for its commit, which
 * carries every delivery queued meanwhile. Returns 0 with *stored (new
 * rows; duplicates of an earlier delivery with the same id are not stored),
 * 501 when no warehouse can hold events, 503 when the commit failed (why
 * says why, for the log). */
int bf_hook_store_put(struct bf_hook_store *s, const char *destination, const char *webhook_id,
                      const struct bf_hook_event *evs, size_t n, long long *stored, char *why,
                      size_t cap);

#endif

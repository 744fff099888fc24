/* Erasure requests (GDPR Art. 17 / CCPA): `backflow forget`. docs/privacy.md
 * is the user's description; in short:
 *
 *   1. the person is named by an email, a phone or a model's primary key;
 *   2. each sync's model is searched on its warehouse (models' `pii:` email
 *      and phone columns; a key also yields the emails and phones of its row,
 *      which then find the person in the other models);
 *   3. a delete is sent to each sync's destination for every record found,
 *      the sync's state forgets the key and its sealed identifier goes;
 *   4. the person's keyed hashes join the suppression list (forgotten.h), so
 *      no later run sends them again;
 *   5. every step is appended to <state_dir>/audit.jsonl (keyed hashes only).
 *
 * What could not be done (destination unavailable, warehouse down, a run
 * holding the sync's lock, a delete the destination refused) stays pending
 * in <state_dir>/erasure_pending.bin, sealed like the identifier vault, until
 * `backflow forget --retry` completes it. */
#ifndef BF_FORGET_H
#define BF_FORGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/jsonw.h"
#include "engine/project.h"

#define BF_AUDIT_FILE           "audit.jsonl"
#define BF_ERASURE_PENDING_FILE "erasure_pending.bin"

enum bf_forget_kind { BF_FORGET_KEY = 1, BF_FORGET_EMAIL = 2, BF_FORGET_PHONE = 3 };
const char *bf_forget_kind_name(int kind);

struct bf_forget_options {
  int kind;               /* enum bf_forget_kind */
  const char *value;      /* the email or phone as typed, or the key's value */
  const char *model;      /* BF_FORGET_KEY: the model the key belongs to */
  long long lock_wait_ms; /* how long to wait for a running sync; <= 0: 60 s */
};

/* Several requests in a row (`forget --from`): each sync's state, vault and
 * destination stay open (and the sync locked) from one request to the next
 * until the batch is freed, which folds the states it changed (its error
 * is the fold's). Caller frees with bf_forget_batch_free(). */
struct bf_forget_batch;
struct bf_forget_result;
struct bf_forget_batch *bf_forget_batch_new(void);
/* Names one of the batch's people before its first request, so that each
 * model is read once for all of them (the requests themselves are still
 * made one by one). False when value is not an email or phone. */
bool bf_forget_batch_add(struct bf_forget_batch *b, struct bf_project *p, int kind,
                         const char *value);
int bf_forget_batch_free(struct bf_forget_batch *b, struct bf_error *err);
/* Erases n people as one batch (`forget --from`): every request is
 * recorded first (one sealed pending file, suppression list and audit
 * append for all), then worked on with the pending file, audit lines and
 * journals made durable once per group of requests rather than once per
 * person. res[i] / errs[i]: person i's result, or why it was refused (a bad
 * identifier: errs[i].code set, res[i] empty). progress (may be NULL) is
 * called after each request. Returns 0 or the code of a failure that
 * stopped the batch (what was done stays done or pending). */
int bf_forget_batch_run(struct bf_project *p, struct bf_forget_batch *b,
                        const struct bf_forget_options *people, size_t n,
                        struct bf_forget_result *res, struct bf_error *errs,
                        void (*progress)(size_t done, size_t total), struct bf_error *err);

struct bf_forget_sync_result {
  char *sync, *destination, *destination_type;
  long long found;    /* records of the person found for this sync */
  long long deleted;  /* deletes the destination acknowledged */
  const char *status; /* deleted | not_found | pending | failed */
  char *reason;       /* NULL or why (never a value) */
};

struct bf_forget_result {
  uint64_t request;
  int kind;
  char identifier_hash[33];
  char *model;        /* BF_FORGET_KEY */
  const char *status; /* complete | pending | incomplete */
  struct bf_forget_sync_result *syncs;
  size_t n_syncs;
  int exit_status; /* 0 | 1 | 3 | 4 as design.md §4 */
};

/* Erases one person (a new request). Returns 0 with *res filled (its
 * exit_status says how it went), or a bf_code with err set when nothing
 * could start (bad identifier, unknown model, state folder unusable). */
int bf_forget_person(struct bf_project *p, const struct bf_forget_options *o,
                     struct bf_forget_result *res, struct bf_error *err);
/* Records a new request (sealed, suppressed, audited) without working on
 * it: the next bf_forget_retry does (the server's erasure worker). *id is
 * its number. */
int bf_forget_submit(struct bf_project *p, const struct bf_forget_options *o, uint64_t *id,
                     struct bf_error *err);
/* The state of request id as the audit log tells it, in the shape of a
 * bf_forget_person result (status "queued" while no sync was worked on).
 * 1 when there is no such request. */
int bf_forget_status(struct bf_project *p, uint64_t id, struct bf_forget_result *res,
                     struct bf_error *err);
/* Lifts a finished request's suppression (`forget --lift N`): its entries
 * leave the suppression list, so runs may send the person again; audited.
 * A pending request cannot be lifted. *removed: entries removed. */
int bf_forget_lift(struct bf_project *p, uint64_t id, size_t *removed, struct bf_error *err);
/* Resends every pending request. *res is an array of *n results (none when
 * nothing is pending). */
int bf_forget_retry(struct bf_project *p, long long lock_wait_ms, struct bf_forget_result **res,
                    size_t *n, struct bf_error *err);
void bf_forget_result_release(struct bf_forget_result *res);
/* The keyed hash the audit log shows for a person named as in o (to find
 * their entries). Returns 1 when the project has no secret yet (no request
 * was ever made), else 0 or a bf_code. */
int bf_forget_identifier_hash(struct bf_project *p, const struct bf_forget_options *o, char hex[33],
                              struct bf_error *err);
/* Writes a result as one JSON object. */
void bf_forget_result_json(const struct bf_forget_result *res, struct bf_buf *out);
/* Pending work: number of (request, sync) items and of requests. Reading
 * needs the secret; without one there is nothing pending. */
int bf_forget_pending_count(struct bf_project *p, size_t *items, size_t *requests,
                            struct bf_error *err);
/* Reads the pending erasures (p->prf must hold the secret) and reports
 * damage or a foreign secret; changes nothing. */
int bf_forget_check_pending(struct bf_project *p, struct bf_error *err);

#endif

/* Internals of the ad-audience and email-platform destinations
 * (meta_audience.c, google_customer_match.c, mailchimp.c, braze.c,
 * klaviyo.c), exposed for the unit tests (tests/unit/test_ads_payloads.c)
 * and for nothing else: the payload builders and the response parsers,
 * which are pure (no network, no destination object). The destinations
 * call exactly these functions, so what the tests pin is what is sent.
 *
 * Conventions: a builder that refuses a record returns a malloc'd reason
 * (the caller owns it) and appends nothing; a parser never trusts the
 * answer (any JSON, or none, is handled without a crash) and sets
 * outcomes with set_outcome semantics (an earlier reason is freed). */
#ifndef BF_ADS_INTERNAL_H
#define BF_ADS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/jsonw.h"
#include "util/pii_normalize.h"
#include "destinations/destination.h"
#include "clients/http_transport.h"

/* ---- shared (ads_common.c) ---------------------------------------------- */

/* Text of a match value from a record's match JSON (deletes), as fed to a
 * normaliser: strings as they are, numbers and booleans as text. False for
 * null and other types. buf (>= 48 bytes) holds converted numbers. */
bool bf_ads_json_text(json_t *v, char *buf, size_t cap, const char **s, size_t *n);
/* True when s holds only white space. */
bool bf_ads_blank(const char *s, size_t n);

/* ---- meta_audience ----------------------------------------------------- */

#define BF_META_N_KEYS 15
struct bf_meta_key; /* one multi-key schema key: name, normaliser, hashed or not */

/* One batch's rows, normalised and hashed, column by column. */
struct bf_meta_rows {
  size_t n_cols;
  const struct bf_meta_key *cols[BF_META_N_KEYS];
  struct bf_buf cells; /* NUL-terminated cell texts */
  size_t *cell_off;    /* [row * n_cols + col] -> offset in cells */
  size_t cell_off_cap;
};

/* Columns for batch: its match keys, then (adds) its field keys. An
 * unknown or repeated key is BF_E_CONFIG. */
int bf_meta_rows_schema(struct bf_meta_rows *t, const struct bf_batch *batch, bool adds,
                        struct bf_error *err);
/* Empties t for up to n rows of the current schema. */
void bf_meta_rows_reset(struct bf_meta_rows *t, size_t n);
/* Normalises and hashes rec into row `row` (the next free one). Returns
 * NULL, or a malloc'd reason naming the key and the rule (then nothing is
 * kept). Deletes (rec->values NULL) read the match JSON. */
char *bf_meta_rows_add(struct bf_meta_rows *t, const struct bf_batch *batch,
                       const struct bf_record *rec, size_t row);
const char *bf_meta_rows_cell(const struct bf_meta_rows *t, size_t row, size_t col);
const char *bf_meta_rows_key(const struct bf_meta_rows *t, size_t col);
void bf_meta_rows_release(struct bf_meta_rows *t);

/* {"payload":{"schema":...,"data":[[...],...]} for rows [0, n_rows): the
 * request body without its closing brace (bf_meta_write_session ends it). */
void bf_meta_write_payload(const struct bf_meta_rows *t, size_t n_rows, struct bf_buf *out);
/* ,"session":{"session_id":..,"batch_seq":..,"last_batch_flag":..}} */
void bf_meta_write_session(struct bf_buf *out, uint64_t session_id, unsigned batch_seq, bool last);

/* A 2xx answer of /users or /usersreplace for n_rows rows: a num_received
 * other than n_rows (or no readable answer) makes every sent record retry;
 * invalid_entry_samples reject the records holding a sampled value.
 * row_of[i] is record i's row or (size_t)-1 (not sent). Warnings (a batch
 * to resend, invalid entries Meta counted but did not name) are logged
 * with dest_name. */
void bf_meta_apply_answer(const char *dest_name, const struct bf_meta_rows *t, const char *body,
                          size_t len, const size_t *row_of, size_t n_records, size_t n_rows,
                          struct bf_outcome *outcomes);
/* {"error":{"code","error_subcode","message","is_transient"}}: false when
 * body is not a Graph error. msg gets the message (may be ""). */
bool bf_meta_graph_error(const char *body, size_t len, long long *code, long long *subcode,
                         char *msg, size_t msg_cap, bool *transient);
/* The transport's retry verdict: 429/5xx/timeouts, and Graph throttling or
 * transient errors (HTTP 400 with codes 1, 2, 4, 17, 32, 341, 613, 80003,
 * 80004, or is_transient). */
bool bf_meta_retryable(const struct bf_http_response *r, void *arg);

/* ---- google_customer_match -------------------------------------------- */

/* email, phone, first_name, last_name, country_code, postal_code, crm_id,
 * mobile_id: col[k] is the value index of key k in a record, or -1. */
#define BF_GCM_N_KEYS 8
int bf_gcm_resolve_keys(const struct bf_batch *batch, bool adds, int col[BF_GCM_N_KEYS],
                        struct bf_error *err);
/* Appends {"create"|"remove":{"userIdentifiers":[...]}} for rec to out, or
 * returns a malloc'd reason (nothing appended). */
char *bf_gcm_write_operation(const int col[BF_GCM_N_KEYS], const struct bf_batch *batch,
                             const struct bf_record *rec, bool adds, struct bf_buf *out);
/* addOperations answer: partialFailureError.details[].errors[] reject the
 * records of the operations named by location.fieldPathElements[0].index
 * (rec_of_op[index]). Returns how many were rejected. */
size_t bf_gcm_partial_failures(json_t *res, const size_t *rec_of_op, size_t n_ops,
                               struct bf_outcome *outcomes);
/* A Google error answer: the first GoogleAdsFailure message (else
 * error.message) and error.status; both "" when body is not one. */
void bf_gcm_google_error(const struct bf_http_response *r, char *msg, size_t cap, char *status,
                         size_t status_cap);
bool bf_gcm_retryable(const struct bf_http_response *r, void *arg);
/* A GAQL answer about one job: 1 SUCCESS, 0 FAILED (why gets Google's
 * failureReason), 2 anything else (still running, or unreadable). status
 * gets the job's status text ("" when absent). */
int bf_gcm_job_status(json_t *res, char *status, size_t status_cap, char *why, size_t cap);

/* ---- mailchimp ----------------------------------------------------------- */

/* MD5 hex of the lower-cased email: Mailchimp's member id. */
void bf_mc_subscriber_hash(const char *email_lower, size_t n, char out[33]);
/* Index of the email_address (or email) match key, or BF_E_CONFIG. */
int bf_mc_email_column(const struct bf_batch *batch, struct bf_error *err);
/* The record's email, trimmed as written (out) and lower-cased (lower);
 * NULL or a malloc'd reason. */
char *bf_mc_record_email(const struct bf_batch *batch, const struct bf_record *rec, int col,
                         char out[BF_PII_MAX], char lower[BF_PII_MAX]);
/* One member object of a POST /lists/{id} body. */
void bf_mc_write_member(const struct bf_batch *batch, const struct bf_record *rec,
                        const char *email, const char *default_status, struct bf_buf *b,
                        struct bf_buf *tmp);
/* The 200 answer to a batch of records [first, first + n): errors[] reject
 * records by email (lower[i] is record i's lower-cased email); an answer
 * without errors[] makes the request's records retry. */
void bf_mc_apply_answer(const char *body, size_t len, char (*lower)[BF_PII_MAX], size_t first,
                        size_t n, struct bf_outcome *outcomes);
/* Problem JSON {"title","detail"} as "title: detail" ("" when absent). */
void bf_mc_problem(const struct bf_http_response *r, char *out, size_t cap);
bool bf_mc_retryable(const struct bf_http_response *r, void *arg);

/* ---- braze --------------------------------------------------------------- */

/* The identifier match key: *kind 0 external_id, 1 user_alias; returns
 * its index, or BF_E_CONFIG. */
int bf_braze_identifier(const struct bf_batch *batch, int *kind, struct bf_error *err);
/* {"attributes":[...]} of records [first, end) into body: rec_of[k] is the
 * record of object k; refused records get their outcome. Returns the
 * number of objects written. */
size_t bf_braze_track_body(const struct bf_batch *batch, int col, int kind, const char *alias_label,
                           size_t first, size_t end, struct bf_buf *body, size_t *rec_of,
                           struct bf_outcome *outcomes, struct bf_buf *tmp);
/* {"external_ids":[...]} or {"user_aliases":[...]}, the same way. */
size_t bf_braze_delete_body(const struct bf_batch *batch, int col, int kind,
                            const char *alias_label, size_t first, size_t end, struct bf_buf *body,
                            size_t *rec_of, struct bf_outcome *outcomes);
/* A 2xx /users/track answer for n objects: "success" with errors[]
 * {index, input_array: "attributes", type} rejects those objects; any
 * other message (or none) makes the request's records retry. */
void bf_braze_track_answer(const char *body, size_t len, const size_t *rec_of, size_t n,
                           struct bf_outcome *outcomes);
/* {"message": "..."} ("" when absent). */
void bf_braze_message(const struct bf_http_response *r, char *out, size_t cap);

/* ---- klaviyo ------------------------------------------------------------- */

/* The profiles of one bulk import job: the request body and, per profile,
 * its record and its identifiers (to map import errors back). */
struct bf_klaviyo_job {
  size_t n;          /* profiles in body */
  size_t *rec;       /* profile -> record index */
  struct bf_buf ids; /* per profile: "email\0phone_number\0external_id\0" */
  size_t *ids_off;   /* profile -> offset in ids */
  size_t cap;
  struct bf_buf body;
};

/* A sync's mapping must have email, phone_number or external_id in match,
 * and name each identifier once. */
int bf_klaviyo_check_mapping(const struct bf_batch *batch, struct bf_error *err);
/* Starts job: empties it and writes the body's head. */
void bf_klaviyo_job_begin(struct bf_klaviyo_job *job);
/* Appends record i of batch as one profile: identifiers normalised (email
 * lower-cased, phone_number E.164), profile attributes, location, the rest
 * (and constants) as properties; NULL values left out (a bulk import does
 * not clear a field). Returns NULL, or a malloc'd reason (nothing kept). */
char *bf_klaviyo_add_profile(struct bf_klaviyo_job *job, const struct bf_batch *batch, size_t i,
                             struct bf_buf *tmp);
/* Closes the body; list_id (or NULL) adds the profiles to that list. */
void bf_klaviyo_job_end(struct bf_klaviyo_job *job, const char *list_id);
void bf_klaviyo_job_release(struct bf_klaviyo_job *job);

/* A JSON:API error answer as "code: detail" (first error; "" if none). */
void bf_klaviyo_error_text(const char *body, size_t len, char *out, size_t cap);
/* A 4xx answer to a job creation: rejects the records of the profiles its
 * errors point at (/data/attributes/profiles/data/N...). Returns how many
 * were rejected (0: the refusal names no profile). */
size_t bf_klaviyo_refusal(const struct bf_klaviyo_job *job, const char *body, size_t len,
                          struct bf_outcome *outcomes);
/* The job's id from a 202 answer, malloc'd, or NULL. */
char *bf_klaviyo_job_id(const char *body, size_t len);
enum bf_klaviyo_status { BF_KLAVIYO_PENDING, BF_KLAVIYO_COMPLETE, BF_KLAVIYO_CANCELLED };
/* A job answer: its status (anything unreadable is PENDING) and its
 * failed_count (0 when absent). */
enum bf_klaviyo_status bf_klaviyo_job_status(const char *body, size_t len, long long *failed);
/* One page of import-errors: rejects the records of the profiles each
 * error names (source.pointer, else original_payload's identifiers).
 * Returns how many errors were matched to a record; *next gets links.next
 * (malloc'd) or NULL. */
size_t bf_klaviyo_import_errors(const struct bf_klaviyo_job *job, const char *body, size_t len,
                                struct bf_outcome *outcomes, char **next);

#endif

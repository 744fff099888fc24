/* Internals of the HubSpot destination (hubspot.c): the split of a batch
 * into requests and the parsers of HubSpot's batch answers, which are pure
 * (no network) and exposed for the fuzz target
 * (tests/fuzz/fuzz_hubspot_answers.c) and for nothing else. A parser never
 * trusts the answer: any bytes are handled without a crash, and a record
 * the answer does not account for is left to retry. */
#ifndef BF_HUBSPOT_INTERNAL_H
#define BF_HUBSPOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "clients/http_transport.h"
#include "destinations/destination.h"
#include "util/jsonw.h"

#define HS_MAX_INPUTS 100 /* inputs per batch request (HubSpot's limit) */

/* One HTTP request: positions (into the batch) of the records it carries. */
struct bf_hs_piece {
  size_t *recs;
  size_t n;
  struct bf_buf body;
};

struct bf_hs_pieces {
  struct bf_hs_piece *items;
  size_t n, cap;
};

/* Takes recs (malloc'd, n entries). */
void bf_hs_pieces_add(struct bf_hs_pieces *p, size_t *recs, size_t n);
void bf_hs_pieces_clear(struct bf_hs_pieces *p);
void bf_hs_pieces_release(struct bf_hs_pieces *p);
/* Sets an outcome (an earlier reason is freed; reason copied). */
void bf_hs_set_outcome(struct bf_outcome *o, enum bf_outcome_status st, const char *reason);
bool bf_hs_same_id(const char *a, const char *b, bool ci);
/* Splits recs[0..n) into pieces of at most HS_MAX_INPUTS with no id twice in
 * a piece (HubSpot refuses duplicate ids in one batch). ids[i]: the id of
 * batch record i, never NULL for a record in recs. */
void bf_hs_make_pieces(struct bf_hs_pieces *out, const size_t *recs, size_t n, char **ids, bool ci);
/* Answers of batch/upsert, batch/read and batch/archive -> outcomes of the
 * piece's records (read: OK + reason = the HubSpot id, OK + NULL = not
 * found). ci: ids compare case-insensitively (emails). */
void bf_hs_parse_upsert(const struct bf_batch *batch, const struct bf_hs_piece *pc, char **ids,
                        bool ci, struct bf_http_response *r, struct bf_outcome *outcomes);
void bf_hs_parse_read(const struct bf_batch *batch, const struct bf_hs_piece *pc, char **ids,
                      bool ci, struct bf_http_response *r, struct bf_outcome *outcomes);
void bf_hs_parse_archive(const struct bf_batch *batch, const struct bf_hs_piece *pc, char **ids,
                         bool ci, struct bf_http_response *r, struct bf_outcome *outcomes);

#endif

/* `state: warehouse` (design.md §10): a sync's diff state kept in its
 * PostgreSQL warehouse, schema `backflow`, so that the plan is one SQL
 * statement there and only added, changed and removed rows leave it.
 *
 *   backflow.sync_state       (sync, key, fp, flags, ident): one row per key
 *                             the destination holds or may hold;
 *   backflow.sync_state_meta  (sync, key_check): the secret's key check.
 *
 * Keys and fingerprints are HMAC-SHA-256 computed in SQL (PostgreSQL's
 * built-in sha256(), no extension) under two keys derived from the project
 * secret, truncated to 16 and 8 bytes. They are not the local state's
 * SipHash values: PostgreSQL has no SipHash, and HMAC is the keyed hash
 * every warehouse has (docs/scale.md). flags: 1 acknowledged, 2 pending
 * (recorded before the send, as in the local journal). ident: the
 * destination identifier sealed with the secret's seal key, kept only
 * where mirror deletes need it. No plaintext. */
#ifndef BF_WSTATE_H
#define BF_WSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "destinations/destination.h"
#include "spec/config.h"
#include "util/error.h"
#include "util/prf.h"

struct bf_wstate;

/* Connects to warehouse wh (a postgres warehouse; any other type is a
 * configuration error naming loc) for sync. Flags:
 *   BF_WSTATE_WRITABLE   creates the schema and tables when absent, takes the
 *                        sync's advisory lock (BF_E_LOCKED when another
 *                        process, on any machine, runs the sync) and records
 *                        the key check;
 *   BF_WSTATE_KEEP_IDENT pending records store their sealed identifier;
 *   BF_WSTATE_NO_CHECK   the key check is neither read nor written (a plan
 *                        with no secret yet, or a reset to a new secret).
 * Otherwise a state written under another secret is BF_E_SECRET. prf is
 * borrowed and must outlive ws. Caller frees with bf_wstate_free(). */
#define BF_WSTATE_WRITABLE   1u
#define BF_WSTATE_KEEP_IDENT 2u
#define BF_WSTATE_NO_CHECK   4u
int bf_wstate_open(const struct bf_warehouse_config *wh, const char *sync, const struct bf_prf *prf,
                   unsigned flags, struct bf_wstate **out, struct bf_error *err);
/* A plan before the first run has no secret yet (prf is a throw-away one):
 * it must read the table as empty. */
void bf_wstate_ignore_table(struct bf_wstate *ws);
/* Closes the connection (which releases the lock). Accepts NULL. */
void bf_wstate_free(struct bf_wstate *ws);

/* The plan statement: model_sql's rows (columns cols, in that order, then
 * __bf_k, __bf_f, __bf_sf, __bf_st, __bf_m, __bf_n, __bf_id) that are new,
 * changed, pending, duplicated or keyless, and the state's keys the model no
 * longer has (__bf_m NULL).  mapped: the columns the fingerprint covers, with
 * the mapping's signature. full_resync: every model row. removals: whether state keys the model no
 * longer has are returned (mirror). Caller frees. */
char *bf_wstate_plan_sql(struct bf_wstate *ws, const char *model_sql, char *const *cols,
                         size_t ncols, size_t pk_col, const size_t *mapped, size_t n_mapped,
                         uint64_t signature, bool full_resync, bool removals);
#define BF_WSTATE_EXTRA_COLS 7

/* Records the batch's keys as pending (with their sealed identifiers when
 * kept), durably, before the batch is sent. */
int bf_wstate_pending(struct bf_wstate *ws, const struct bf_record *recs, size_t n,
                      struct bf_error *err);
/* Notes an acknowledged record (its fingerprint, or its deletion) for the
 * next commit. ws may be NULL (no-op). */
void bf_wstate_note_ack(struct bf_wstate *ws, const struct bf_record *rec);
/* Writes the noted acknowledgements in one transaction. ws may be NULL. */
int bf_wstate_commit(struct bf_wstate *ws, struct bf_error *err);

/* Remembers a removed key's sealed identifier (hex from the plan) for
 * bf_wstate_ident. */
void bf_wstate_add_removed(struct bf_wstate *ws, const unsigned char key[16], const char *ident_hex,
                           size_t hex_len);
size_t bf_wstate_n_removed(const struct bf_wstate *ws);
const unsigned char *bf_wstate_removed_key(const struct bf_wstate *ws, size_t i);
/* The identifier to delete key by: a new string the caller frees, "{}" when
 * identifiers are not kept, NULL when it should be but is not. */
char *bf_wstate_ident(struct bf_wstate *ws, const unsigned char key[16], size_t *len);

/* Forgets the sync's state and key check (`backflow reset`). */
int bf_wstate_clear(struct bf_wstate *ws, struct bf_error *err);
/* Keys of the sync held (acknowledged or pending); -1 on error. */
long long bf_wstate_count(struct bf_wstate *ws, struct bf_error *err);

/* Parses n*2 hex digits into out; false on a bad digit. */
bool bf_wstate_unhex(const char *hex, size_t hex_len, unsigned char *out, size_t n);

/* validate's check of a `state: warehouse` sync (wstate_run.c): a postgres
 * warehouse, reachable, and its state (if any) keyed by this project's
 * secret. */
struct bf_project;
int bf_wstate_validate(struct bf_project *p, const struct bf_sync_config *s, struct bf_error *err);
/* `backflow reset` of a `state: warehouse` sync: empties its rows in
 * backflow.sync_state (under its lock). */
int bf_wstate_reset(struct bf_project *p, const struct bf_sync_config *s, struct bf_error *err);

#endif

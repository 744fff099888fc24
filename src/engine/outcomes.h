/* Per-record outcomes written back: for every record a run or a live batch
 * sent (or refused to send), one row of <schema>.outcomes (PostgreSQL) or
 * <schema>_outcomes (SQLite: backflow_outcomes) in the sync's write-back
 * warehouse, so a model can JOIN what happened to each of its rows
 * (retry-with-fix, suppression):
 *
 *   sync, run_id, key_hash, key, outcome, reason, at
 *
 * outcome is added | changed | removed | rejected | failed; reason is the
 * destination's (scrubbed) reason for rejected and failed. key is the
 * primary key as text, the same text key_hash is the keyed hash of, written
 * only when the write-back warehouse is the model's own (the value is
 * already there); NULL otherwise and for removals (the row is gone).
 *
 * Rows are buffered and written in one transaction per flush (the runner
 * flushes at the end of each run, each live pass, and every
 * BF_OUTCOMES_FLUSH_ROWS rows), never one round trip per record. A failed
 * write is logged and retried with the next flush; it never changes the
 * run's outcome. */
#ifndef BF_OUTCOMES_H
#define BF_OUTCOMES_H

#include <stdbool.h>
#include <stddef.h>

#include "spec/config.h"
#include "util/value.h"

#define BF_OUTCOMES_FLUSH_ROWS 20000

struct bf_wtable;
struct bf_outcomes;

/* The outcomes buffer of sync, or NULL when the sync has no write-back.
 * Nothing is opened yet. Free with bf_outcomes_free. */
struct bf_outcomes *bf_outcomes_new(const struct bf_config *cfg, const char *sync);
/* Writes what is left, closes the connection, frees. Accepts NULL. */
void bf_outcomes_free(struct bf_outcomes *o);
/* Opens the connection and creates the table when absent, so a model may
 * JOIN it from its very first run. A failure is logged (not fatal). */
void bf_outcomes_prepare(struct bf_outcomes *o);
/* Remembers the primary key value behind key (a record about to be sent),
 * for the row its outcome will make. */
void bf_outcomes_note_key(struct bf_outcomes *o, const unsigned char key[16],
                          const struct bf_value *pk);
/* Buffers one outcome; key may be NULL (a row without a primary key),
 * reason NULL. */
void bf_outcomes_add(struct bf_outcomes *o, long long run_id, const unsigned char *key,
                     const char *outcome, const char *reason);
/* Writes the buffered rows when there are at least min_rows. */
void bf_outcomes_flush(struct bf_outcomes *o, size_t min_rows);
/* The outcomes table in schema. */
void bf_outcomes_table(const char *schema, struct bf_wtable *t);

#endif

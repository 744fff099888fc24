/* The diff state of one sync: for every key the destination holds (or may
 * hold), its keyed hash and the fingerprint of the values last acknowledged.
 * No plaintext: 32 bytes per key.
 *
 * On disk, in the sync's state folder:
 *   state.bin    header (key check, XXH3 checksum of the entries) +
 *                fixed-size entries, replaced atomically (tmp, fsync,
 *                rename) when a run ends ("fold");
 *   journal.bin  append-only log of what happened since the fold: PENDING
 *                (about to send), ACK (acknowledged with fingerprint), DELETED.
 *                Each record carries a check word, so a torn tail written by
 *                a crash is recognised and ignored.
 * Both carry a generation; a journal whose generation differs from the base
 * was already folded into it and is ignored. Loading = base + journal replay.
 *
 * In memory the base file is mapped as it is and later entries follow in one
 * dense array, found through an open-addressing index of 8-byte slots; the
 * key hash is already uniformly random, so its top bits place it there. */
#ifndef BF_STATE_H
#define BF_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/prf.h"

/* Persisted flags. */
#define BF_ST_PRESENT   0x1u /* the destination acknowledged fp */
#define BF_ST_PENDING   0x2u /* sent or about to be, not acknowledged */
#define BF_ST_PERSISTED (BF_ST_PRESENT | BF_ST_PENDING)
/* Memory-only flag, never written to disk; use bf_state_see / _seen (for
 * entries of the mapped base file it is kept in a separate bitmap). */
#define BF_ST_SEEN 0x100u /* key is in this run's model */

struct bf_state_entry {
  unsigned char key[16];
  uint64_t fp;
  uint32_t flags;
  uint32_t aux; /* unused: keeps an entry at 32 bytes (two per cache line) */
};

struct bf_state;

/* Opens the state in dir (created when writable and absent) and loads it,
 * refusing files written under another secret than prf's (BF_E_SECRET) and
 * damaged ones (BF_E_STATE). prf may be NULL only when !writable (the key
 * check is then skipped). writable: takes an exclusive lock (BF_E_LOCKED if
 * another run holds it) and repairs a torn journal tail. Caller frees with
 * bf_state_free(). */
int bf_state_open(const char *dir, bool writable, const struct bf_prf *prf, struct bf_state **out,
                  struct bf_error *err);
void bf_state_free(struct bf_state *st);

/* Lookup; NULL when absent. */
struct bf_state_entry *bf_state_find(struct bf_state *st, const unsigned char key[16]);
/* Lookup or insert a zeroed entry (flags = USED). The pointer stays valid
 * until the next insert. */
struct bf_state_entry *bf_state_upsert(struct bf_state *st, const unsigned char key[16]);

/* Hints the CPU to load key's index slot, then (once that is in cache) its
 * entry: lookups for a chunk of rows are issued together, one step for all
 * keys then the next, so their cache misses overlap. */
void bf_state_prefetch(const struct bf_state *st, const unsigned char key[16]);
void bf_state_prefetch_entry(const struct bf_state *st, const unsigned char key[16]);

/* Marks an entry as in this run's model; returns whether it already was.
 * (BF_ST_SEEN of entries loaded from the base file is kept apart from them,
 * so reading the model never writes to the mapped file: use these two.) */
bool bf_state_see(struct bf_state *st, struct bf_state_entry *e);
bool bf_state_seen(const struct bf_state *st, const struct bf_state_entry *e);
/* Clears the mark (a live pass marks only the keys it looked at, then
 * clears them for the next pass). */
void bf_state_unsee(struct bf_state *st, struct bf_state_entry *e);

/* Iteration over every entry: for (i = 0; (e = bf_state_next(st, &i));) */
struct bf_state_entry *bf_state_next(struct bf_state *st, size_t *cursor);
/* Keys with PRESENT or PENDING. */
size_t bf_state_count(const struct bf_state *st);

/* Journal operations: applied to memory at once, buffered for the file. */
void bf_state_mark_pending(struct bf_state *st, const unsigned char key[16]);
void bf_state_mark_acked(struct bf_state *st, const unsigned char key[16], uint64_t fp);
void bf_state_mark_deleted(struct bf_state *st, const unsigned char key[16]);
/* Writes buffered journal records; durable (fdatasync) when sync is true. */
int bf_state_flush(struct bf_state *st, bool sync, struct bf_error *err);
/* Records in the journal since the last fold (a live sync folds when the
 * journal grows long, not at every history row). */
size_t bf_state_journal_records(const struct bf_state *st);
/* Writes a new base from memory and empties the journal (crash-safe). */
int bf_state_fold(struct bf_state *st, struct bf_error *err);
/* Forgets everything (reset): empty base, empty journal. */
int bf_state_clear(struct bf_state *st, struct bf_error *err);

#endif

/* The identifier index of a sync (issue 13, docs/privacy.md "Finding people
 * who left the warehouse"): for every record the sync sent, the keyed hashes
 * of its email and phone values mapped to the record's key hash, so that
 * `backflow forget --email` finds the record at the destination after the
 * row left the warehouse. No value is kept: an identifier hash is
 * bf_forgotten_identifier_hash of the normalised value (the same hash the
 * suppression list holds), a key hash is the runner's.
 *
 * <sync_dir>/idindex.bin, mode 0600:
 *   header: keyfile.h's (magic "BFIDIX01", key check, committed = records
 *           written whole, aux = columns fingerprint | complete bit)
 *   records of 40 bytes: ident[16] | key[16] | u64 check (XXH3 of the 32)
 * Append-only; a torn tail (crash mid-append) fails its check and is cut
 * off; a bad record before the committed count is damage. "complete" says
 * the index covers every record the destination may hold: it is set once a
 * run has read the whole model with the index open (the upgrade of a sync
 * that ran before the index existed) and cleared when the indexed columns
 * change. */
#ifndef BF_IDINDEX_H
#define BF_IDINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/prf.h"

#define BF_IDINDEX_FILE   "idindex.bin"
#define BF_IDINDEX_RECORD 40

struct bf_idindex;

/* Fingerprint of the indexed columns ("name:kind" pairs, in order); its
 * lowest bit is always 0 (the file keeps the complete flag there). */
uint64_t bf_idindex_columns_fp(char *const *names, const int *kinds, size_t n);

/* Opens (creates) sync_dir/idindex.bin for appending; the caller holds the
 * sync's lock. *complete is false when the file is new, was written for
 * other columns, or was never completed. durable: every commit is
 * fsynced. Caller frees with bf_idindex_close(). */
int bf_idindex_open(const char *sync_dir, const struct bf_prf *prf, bool durable,
                    uint64_t columns_fp, bool *complete, struct bf_idindex **out,
                    struct bf_error *err);
/* Queues a pair for the next commit; a pair already in the file or queued
 * is not added twice (in a new index, whose run sends each record once,
 * only a record's repeated pair is looked for, among its own). */
void bf_idindex_add(struct bf_idindex *ix, const unsigned char ident[16],
                    const unsigned char key[16]);
/* Pairs queued and not yet committed. */
size_t bf_idindex_queued(const struct bf_idindex *ix);
/* Appends the queued pairs; complete records that the index now covers
 * every record sent (it stays so until the columns change; false keeps
 * what the file says). */
int bf_idindex_commit(struct bf_idindex *ix, bool complete, struct bf_error *err);
void bf_idindex_close(struct bf_idindex *ix);

/* The key hashes recorded for any of n identifier hashes, read without
 * the sync's lock. *keys (caller frees) holds *n_keys distinct keys;
 * *indexed is false when the sync has no index or an incomplete one (keys
 * found are still returned). A missing file is no error. */
int bf_idindex_lookup(const char *sync_dir, const struct bf_prf *prf,
                      const unsigned char (*idents)[16], size_t n, unsigned char (**keys)[16],
                      size_t *n_keys, bool *indexed, struct bf_error *err);
/* The index as read now, sorted for lookups (a batch of erasures reads it
 * once): a missing file is an empty, incomplete snapshot. Caller frees
 * with bf_idindex_snapshot_free() (also on error). */
struct bf_idindex_snapshot;
int bf_idindex_snapshot(const char *sync_dir, const struct bf_prf *prf,
                        struct bf_idindex_snapshot **out, struct bf_error *err);
/* As bf_idindex_lookup, on a snapshot. */
void bf_idindex_snapshot_lookup(const struct bf_idindex_snapshot *snap,
                                const unsigned char (*idents)[16], size_t n,
                                unsigned char (**keys)[16], size_t *n_keys, bool *indexed);
void bf_idindex_snapshot_free(struct bf_idindex_snapshot *snap);
/* Checks the file (key check unless prf is NULL, records whole) without
 * changing it, and without the sync's lock. *records gets the number of
 * pairs (-1: no index) and *complete its flag (either may be NULL). */
int bf_idindex_check(const char *sync_dir, const struct bf_prf *prf, long long *records,
                     bool *complete, struct bf_error *err);

#endif

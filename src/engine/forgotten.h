/* The suppression list of erased people (`backflow forget`, docs/privacy.md).
 *
 * <state_dir>/forgotten.bin holds keyed hashes only, never a value (after
 * a keyfile.h header: key check, committed entries):
 *   header "BFFORGT1"
 *   48-byte records: u8 kind | 7 zero bytes | u64 scope | hash[16] | u64 request | u64 check
 * kind KEY:          hash = the runner's key hash of a primary key (bf_prf_key of its
 *                    canonical bytes), scope = bf_forgotten_model_scope(model);
 * kind EMAIL/PHONE:  hash = bf_forgotten_identifier_hash() of the normalised value
 *                    (SipHash-128 under the PII subkey, not the key-hash one), scope 0.
 * Appends are one write() of whole records then fdatasync, under an exclusive
 * flock; mode 0600. A torn tail (crash mid-write) fails its check word: readers
 * ignore it and the next append cuts it off. A damaged record elsewhere is
 * skipped without hiding the records after it. Entries are removed only by
 * bf_forgotten_lift (an audited `forget --lift`).
 *
 * The runner asks a filter, built once per run, whether a row belongs to an
 * erased person. With an empty (or absent) list there is no filter at all
 * (NULL): the cost per row is one pointer test. */
#ifndef BF_FORGOTTEN_H
#define BF_FORGOTTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/config.h"
#include "util/error.h"
#include "util/prf.h"
#include "util/value.h"

#define BF_FORGOTTEN_FILE "forgotten.bin"

enum bf_forgotten_kind { BF_FORGOTTEN_KEY = 1, BF_FORGOTTEN_EMAIL = 2, BF_FORGOTTEN_PHONE = 3 };

struct bf_forgotten_entry {
  uint8_t kind;   /* enum bf_forgotten_kind */
  uint64_t scope; /* KEY: the model's scope; else 0 */
  unsigned char hash[16];
  uint64_t request; /* erasure request number */
};

/* Keyed hash of a normalised email or phone (kind EMAIL/PHONE). The same
 * value is shown in the audit log as the identifier's hash. */
void bf_forgotten_identifier_hash(const struct bf_prf *prf, int kind, const char *norm, size_t n,
                                  unsigned char out[16]);
/* Keyed hash (as above) of a row's email or phone value, normalised as the
 * suppression list stores it; false when the value is not one. */
bool bf_forgotten_value_hash(const struct bf_prf *prf, int kind, const struct bf_value *v,
                             unsigned char out[16]);
/* Scope of a model's primary keys: key hashes of two models never mix. It
 * is a hash of the model's name (configuration, not personal data). */
uint64_t bf_forgotten_model_scope(const char *model);

/* Appends n entries durably (creates the file, mode 0600; a file of the
 * older format is rewritten in the current one). Refuses a list written
 * under another secret than prf's, and a damaged one. */
int bf_forgotten_append(const char *state_dir, const struct bf_prf *prf,
                        const struct bf_forgotten_entry *entries, size_t n, struct bf_error *err);
/* Removes every entry of erasure request `request` (`forget --lift`: the
 * person asked to be contacted again, or the request was a mistake): the
 * list is rewritten atomically under its lock. *removed: entries removed
 * (0 when the request has none). Appends elsewhere wait for the lock. */
int bf_forgotten_lift(const char *state_dir, const struct bf_prf *prf, uint64_t request,
                      size_t *removed, struct bf_error *err);
/* Every valid entry, in file order; a missing file is an empty list;
 * damage is an error (BF_E_STATE). prf NULL skips the key check. Caller
 * frees *out. */
int bf_forgotten_read(const char *state_dir, const struct bf_prf *prf,
                      struct bf_forgotten_entry **out, size_t *n, struct bf_error *err);
/* Entries in the list whatever the secret (0 when absent or unreadable). */
size_t bf_forgotten_count(const char *state_dir);
/* Largest request number in the list (0 when empty). */
int bf_forgotten_max_request(const char *state_dir, uint64_t *out, struct bf_error *err);

/* ---- the runner's filter ----------------------------------------------- */
struct bf_forgotten_filter;

/* Builds the filter of model's runs: its own primary keys and, when the model
 * declares pii email/phone columns (found among columns), the erased emails
 * and phones. *out is NULL when nothing in the list can match this model.
 * prf is read only when a row is checked (it may be filled in after this
 * call, before the first row). A list that exists but cannot be read is an
 * error: a run must not resend erased people. */
int bf_forgotten_filter_open(const char *state_dir, const struct bf_prf *prf,
                             const struct bf_model_config *model, char *const *columns,
                             size_t ncols, struct bf_forgotten_filter **out, struct bf_error *err);
/* NULL when the row may be sent; else the reason it may not,
 * "forgotten (erasure request N)" (valid until the next call). key is the
 * row's key hash. */
const char *bf_forgotten_filter_match(struct bf_forgotten_filter *f, const struct bf_value *row,
                                      const unsigned char key[16]);
void bf_forgotten_filter_free(struct bf_forgotten_filter *f);

#endif

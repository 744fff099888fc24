/* The erasure audit log, <state_dir>/audit.jsonl: one JSON object per line
 * (keyed hashes only), readable with any JSON tool. Integrity (issue 19):
 *
 *   {"backflow_audit":2,"key_check":"<hex>","bytes":"<20 digits>"}
 *   {...event...,"check":"<hex>"}
 *
 * - key_check: the secret's (keyfile.h); a log from another project or
 *   written under a lost secret is refused.
 * - bytes: length of the lines written whole, rewritten in place (fixed
 *   width) after each append: a log shorter than that was truncated;
 *   beyond it only a line torn by a crash, which is cut.
 * - check: BLAKE2b-128 of the previous line's check (the key check for the
 *   first event) and this line without its check field: a changed, removed
 *   or reordered line breaks the chain.
 * A log of the older format (no first line) is rewritten in this one on
 * the next append. */
#ifndef BF_AUDIT_LOG_H
#define BF_AUDIT_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"
#include "util/prf.h"

/* Appends one event durably. object: a JSON object's text, ending in '}'. */
int bf_audit_append(const char *state_dir, const struct bf_prf *prf, const char *object, size_t len,
                    struct bf_error *err);

/* Appends n events with one write and one sync (a batch of erasures). */
int bf_audit_append_many(const char *state_dir, const struct bf_prf *prf,
                         const char *const *objects, const size_t *lens, size_t n,
                         struct bf_error *err);

/* Checks the whole log (a missing log is fine). prf NULL skips the key
 * check. Sets *events to the number of events when not NULL. */
int bf_audit_verify(const char *state_dir, const struct bf_prf *prf, size_t *events,
                    struct bf_error *err);

/* True for the log's first line (not an event). */
bool bf_audit_is_header(const char *line, size_t len);

#endif

/* Checks of the state directory as a whole (issue 19): is there keyed data
 * a missing secret would orphan, was every keyed file written under this
 * secret, and (backflow doctor) is every file whole. */
#ifndef BF_INTEGRITY_H
#define BF_INTEGRITY_H

#include <stdbool.h>
#include <stdio.h>

#include "util/error.h"
#include "util/prf.h"

/* The first keyed file found under state_dir (state, journal, vault,
 * suppression list, audit log, pending erasures), or NULL when there is
 * none. Caller frees. */
char *bf_integrity_first_keyed_file(const char *state_dir);

/* Reads only the headers: BF_E_SECRET naming the first keyed file written
 * under another secret than prf's. Files of the older formats carry no key
 * check and pass. */
int bf_integrity_check_keys(const char *state_dir, const struct bf_prf *prf, struct bf_error *err);

#endif

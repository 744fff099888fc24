/* The header every file keyed by the project secret starts with, and the
 * integrity rules they share (issue 19, docs/reliability.md "State
 * integrity"):
 *
 *   magic[8] | key check[8] | committed u64 | aux u64          (32 bytes)
 *
 * - key check: bf_prf.key_check of the secret that wrote the file. A file
 *   written under another secret (a lost secret regenerated, BACKFLOW_SECRET
 *   changed, a file copied from another project) is refused before any of
 *   its hashes is compared with a new one.
 * - committed: for append-only logs, the length (records or bytes, per
 *   file) known to be written completely. Anything wrong before it is
 *   damage and an error; only what follows it may be a torn tail of a
 *   crash. Rewritten in place after each append.
 * - aux: per file (the journal's generation, a body checksum's half...). */
#ifndef BF_KEYFILE_H
#define BF_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/prf.h"

#define BF_KEYFILE_HEADER 32

struct bf_keyfile_header {
  char magic[8];
  unsigned char key_check[BF_KEY_CHECK_BYTES];
  uint64_t committed;
  uint64_t aux;
};

void bf_keyfile_header_encode(unsigned char out[BF_KEYFILE_HEADER],
                              const struct bf_keyfile_header *h);
/* false when data is shorter than a header. */
bool bf_keyfile_header_decode(const unsigned char *data, size_t len, struct bf_keyfile_header *h);

/* 0 when key_check is the one of prf; else BF_E_SECRET with a message
 * naming path and the ways out. */
int bf_keyfile_check_key(const char *path, const unsigned char key_check[BF_KEY_CHECK_BYTES],
                         const struct bf_prf *prf, struct bf_error *err);

/* BF_E_STATE: "<path>: damaged (<what>)" plus what to do about it. */
int bf_keyfile_damaged(struct bf_error *err, const char *path, const char *what);

/* Rewrites the committed field of an open file's header in place. */
int bf_keyfile_set_committed(int fd, uint64_t committed);

/* 128-bit checksum of a file body (XXH3: at memory speed, so loading a
 * large state pays about a millisecond per 30 MB). */
void bf_keyfile_checksum(const void *data, size_t len, unsigned char out[16]);

#endif

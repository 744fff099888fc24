/* Keyed pseudo-random functions over the project secret (design.md §2).
 * Only their outputs are ever stored: a key hash says "this primary key",
 * a fingerprint says "these mapped values", neither can be reversed without
 * the secret. Identifiers a destination needs to delete by are sealed
 * (encrypted) with a key derived from the same secret. */
#ifndef BF_PRF_H
#define BF_PRF_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define BF_SECRET_BYTES    32
#define BF_KEY_HASH_BYTES  16
#define BF_KEY_CHECK_BYTES 8

struct bf_prf {
  unsigned char key_hash_key[16];    /* SipHash-2-4-128 key for primary keys */
  unsigned char fingerprint_key[16]; /* SipHash-2-4-64 key for mapped values */
  unsigned char seal_key[32];        /* XSalsa20-Poly1305 key for identifiers */
  unsigned char pii_hash_key[32];    /* keyed hashes of erased identifiers (emails, phones) */
  /* PRF of a fixed label: written in the header of every file keyed by the
   * secret, so a lost or replaced secret is noticed before it is used. */
  unsigned char key_check[BF_KEY_CHECK_BYTES];
};

/* Derives the subkeys from a project secret of any length >= 16 bytes. */
int bf_prf_init(struct bf_prf *prf, const unsigned char *secret, size_t len, struct bf_error *err);

/* Reads the secret: config value (text, at least 16 chars) if given, else
 * <state_dir>/secret, created with 32 random bytes and mode 0600 when absent
 * (unless create is false, in which case a missing file is an error). */
int bf_prf_load_secret(struct bf_prf *prf, const char *config_secret, const char *state_dir,
                       int create, struct bf_error *err);

void bf_prf_key(const struct bf_prf *prf, const void *data, size_t len,
                unsigned char out[BF_KEY_HASH_BYTES]);
uint64_t bf_prf_fingerprint(const struct bf_prf *prf, const void *data, size_t len);

/* Hex of a key hash, for logs and run errors: 32 chars + NUL. */
void bf_key_hex(const unsigned char key[BF_KEY_HASH_BYTES], char out[33]);

/* Seals plaintext; returns a new buffer (nonce || ciphertext) the caller
 * frees, and its length in *out_len. */
unsigned char *bf_prf_seal(const struct bf_prf *prf, const void *plain, size_t len,
                           size_t *out_len);
/* Opens a sealed buffer; returns a new NUL-terminated buffer or NULL when
 * it was tampered with or sealed under another secret. Caller frees. */
char *bf_prf_open(const struct bf_prf *prf, const unsigned char *sealed, size_t len,
                  size_t *out_len);

#endif

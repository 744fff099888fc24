#include "util/prf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/fsutil.h"

static int sodium_ready(struct bf_error *err) {
  if (sodium_init() < 0) return bf_error_set(err, BF_E_IO, "libsodium failed to initialise");
  return 0;
}

int bf_prf_init(struct bf_prf *prf, const unsigned char *secret, size_t len, struct bf_error *err) {
  if (sodium_ready(err)) return err->code;
  if (len < 16)
    return bf_error_set(err, BF_E_CONFIG, "secret is too short: at least 16 bytes are needed");
  unsigned char master[32];
  crypto_generichash(master, sizeof master, secret, len, (const unsigned char *)"backflow/v1", 11);
  /* Distinct subkeys per use, so a value hashed for one purpose cannot be
   * matched against another. */
  crypto_kdf_derive_from_key(prf->key_hash_key, sizeof prf->key_hash_key, 1, "bf_keyhs", master);
  crypto_kdf_derive_from_key(prf->fingerprint_key, sizeof prf->fingerprint_key, 2, "bf_fprnt",
                             master);
  crypto_kdf_derive_from_key(prf->seal_key, sizeof prf->seal_key, 3, "bf_seal_", master);
  crypto_kdf_derive_from_key(prf->pii_hash_key, sizeof prf->pii_hash_key, 4, "bf_piihs", master);
  unsigned char check_key[32], check[crypto_generichash_BYTES_MIN];
  crypto_kdf_derive_from_key(check_key, sizeof check_key, 5, "bf_kchck", master);
  crypto_generichash(check, sizeof check, (const unsigned char *)"backflow key check v1", 21,
                     check_key, sizeof check_key);
  memcpy(prf->key_check, check, sizeof prf->key_check);
  sodium_memzero(check_key, sizeof check_key);
  sodium_memzero(master, sizeof master);
  return 0;
}

int bf_prf_load_secret(struct bf_prf *prf, const char *config_secret, const char *state_dir,
                       int create, struct bf_error *err) {
  if (config_secret) {
    if (strlen(config_secret) < 16)
      return bf_error_set(err, BF_E_CONFIG,
                          "secret: too short (%zu characters); use at least 16 random characters",
                          strlen(config_secret));
    return bf_prf_init(prf, (const unsigned char *)config_secret, strlen(config_secret), err);
  }
  if (sodium_ready(err)) return err->code;
  char *path = bf_xasprintf("%s/secret", state_dir);
  unsigned char secret[BF_SECRET_BYTES];
  int rc = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && create) {
    if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
      rc = bf_error_set(err, BF_E_IO, "%s: cannot create state directory: %s", state_dir,
                        strerror(errno));
      goto out;
    }
    randombytes_buf(secret, sizeof secret);
    char *failed_at = NULL;
    if (bf_write_file_atomic(path, secret, sizeof secret, NULL, 0, &failed_at) < 0) {
      rc = bf_error_set(err, BF_E_IO, "%s: cannot write secret: %s", failed_at, strerror(errno));
      free(failed_at);
      goto out;
    }
  } else if (fd < 0) {
    rc = bf_error_set(err, BF_E_STATE,
                      errno == ENOENT ? "%s: no secret yet (nothing has been synced)"
                                      : "%s: cannot read secret: %s",
                      path, strerror(errno));
    goto out;
  } else {
    ssize_t n = read(fd, secret, sizeof secret);
    close(fd);
    if (n != (ssize_t)sizeof secret) {
      rc = bf_error_set(err, BF_E_STATE, "%s: secret file is damaged (expected %d bytes)", path,
                        BF_SECRET_BYTES);
      goto out;
    }
  }
  rc = bf_prf_init(prf, secret, sizeof secret, err);
out:
  sodium_memzero(secret, sizeof secret);
  free(path);
  return rc;
}

void bf_prf_key(const struct bf_prf *prf, const void *data, size_t len,
                unsigned char out[BF_KEY_HASH_BYTES]) {
  crypto_shorthash_siphashx24(out, data, len, prf->key_hash_key);
}

uint64_t bf_prf_fingerprint(const struct bf_prf *prf, const void *data, size_t len) {
  unsigned char out[8];
  crypto_shorthash_siphash24(out, data, len, prf->fingerprint_key);
  uint64_t v;
  memcpy(&v, out, 8);
  return v;
}

void bf_key_hex(const unsigned char key[BF_KEY_HASH_BYTES], char out[33]) {
  sodium_bin2hex(out, 33, key, BF_KEY_HASH_BYTES);
}

/* Nonces: 16 random bytes drawn once per process, then a 64-bit counter.
 * Unique under one key as random ones are (a 2^-128 chance that two
 * processes draw the same prefix), without a getrandom() call per sealed
 * identifier, which cost more than the sealing itself. */
static pthread_once_t nonce_once = PTHREAD_ONCE_INIT;
static unsigned char nonce_prefix[16];
static uint64_t nonce_counter;

static void nonce_redraw(void) { randombytes_buf(nonce_prefix, sizeof nonce_prefix); }

static void nonce_init(void) {
  nonce_redraw();
  pthread_atfork(NULL, NULL, nonce_redraw); /* a forked child never repeats the parent's */
}

static void next_nonce(unsigned char out[crypto_secretbox_NONCEBYTES]) {
  pthread_once(&nonce_once, nonce_init);
  uint64_t n = __atomic_fetch_add(&nonce_counter, 1, __ATOMIC_RELAXED);
  memcpy(out, nonce_prefix, sizeof nonce_prefix);
  memcpy(out + sizeof nonce_prefix, &n, sizeof n);
}

unsigned char *bf_prf_seal(const struct bf_prf *prf, const void *plain, size_t len,
                           size_t *out_len) {
  size_t total = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
  unsigned char *out = bf_xmalloc(total);
  next_nonce(out);
  crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, plain, len, out, prf->seal_key);
  *out_len = total;
  return out;
}

char *bf_prf_open(const struct bf_prf *prf, const unsigned char *sealed, size_t len,
                  size_t *out_len) {
  if (len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) return NULL;
  size_t plain_len = len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
  char *out = bf_xmalloc(plain_len + 1);
  if (crypto_secretbox_open_easy((unsigned char *)out, sealed + crypto_secretbox_NONCEBYTES,
                                 len - crypto_secretbox_NONCEBYTES, sealed, prf->seal_key) != 0) {
    free(out);
    return NULL;
  }
  out[plain_len] = '\0';
  if (out_len) *out_len = plain_len;
  return out;
}

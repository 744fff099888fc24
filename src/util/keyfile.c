#include "util/keyfile.h"

#include <string.h>
#include <unistd.h>

#include <xxhash.h>

void bf_keyfile_header_encode(unsigned char out[BF_KEYFILE_HEADER],
                              const struct bf_keyfile_header *h) {
  memcpy(out, h->magic, 8);
  memcpy(out + 8, h->key_check, BF_KEY_CHECK_BYTES);
  memcpy(out + 16, &h->committed, 8);
  memcpy(out + 24, &h->aux, 8);
}

bool bf_keyfile_header_decode(const unsigned char *data, size_t len, struct bf_keyfile_header *h) {
  if (len < BF_KEYFILE_HEADER) return false;
  memcpy(h->magic, data, 8);
  memcpy(h->key_check, data + 8, BF_KEY_CHECK_BYTES);
  memcpy(&h->committed, data + 16, 8);
  memcpy(&h->aux, data + 24, 8);
  return true;
}

int bf_keyfile_check_key(const char *path, const unsigned char key_check[BF_KEY_CHECK_BYTES],
                         const struct bf_prf *prf, struct bf_error *err) {
  if (memcmp(key_check, prf->key_check, BF_KEY_CHECK_BYTES) == 0) return 0;
  return bf_error_set(
      err, BF_E_SECRET,
      "%s was written under another secret: the project secret was lost or replaced "
      "(.backflow/secret regenerated, BACKFLOW_SECRET or `secret:` changed, or the file comes "
      "from another project); nothing was read or sent. Restore the original secret, or run "
      "`backflow reset --all --new-secret` to start over knowingly (people erased so far can "
      "then no longer be suppressed)",
      path);
}

int bf_keyfile_damaged(struct bf_error *err, const char *path, const char *what) {
  return bf_error_set(err, BF_E_STATE,
                      "%s: damaged (%s); nothing was sent. Restore it from a backup, or run "
                      "`backflow doctor` to see which sync to `backflow reset`",
                      path, what);
}

int bf_keyfile_set_committed(int fd, uint64_t committed) {
  return pwrite(fd, &committed, 8, 16) == 8 ? 0 : -1;
}

void bf_keyfile_checksum(const void *data, size_t len, unsigned char out[16]) {
  XXH128_hash_t h = XXH3_128bits(data, len);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  memcpy(out, c.digest, 16);
}

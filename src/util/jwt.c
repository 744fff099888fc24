/* RS256 JWTs with libcrypto (EVP API, OpenSSL 3). */
#include "util/jwt.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

struct bf_rsa_key {
  EVP_PKEY *pkey;
};

/* The last libcrypto reason, e.g. "bad decrypt"; never key material. */
static const char *crypto_reason(void) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  return r ? r : "not a PEM private key";
}

/* PEM_read_bio_PrivateKey asks for a passphrase through this callback; with
 * none configured it must fail rather than prompt on the terminal. */
static int passphrase_cb(char *buf, int size, int rwflag, void *u) {
  const char *pass = u;
  if (!pass) return -1;
  size_t n = strlen(pass);
  if (n > (size_t)size) return -1;
  memcpy(buf, pass, n);
  return (int)n;
}

static int key_from_bio(BIO *bio, const char *passphrase, const char *source, const char *what,
                        struct bf_rsa_key **out, struct bf_error *err) {
  ERR_clear_error();
  EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, passphrase_cb, (void *)passphrase);
  if (!pkey) {
    int rc =
        bf_error_set(err, BF_E_CONFIG, "%s: cannot read the private key %s: %s%s", what, source,
                     crypto_reason(), passphrase ? "" : " (an encrypted key needs a passphrase)");
    ERR_clear_error();
    return rc;
  }
  if (EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA) {
    EVP_PKEY_free(pkey);
    return bf_error_set(err, BF_E_CONFIG, "%s: the private key %s is not an RSA key", what, source);
  }
  *out = bf_xcalloc(1, sizeof **out);
  (*out)->pkey = pkey;
  return 0;
}

int bf_rsa_key_load(const char *path, const char *passphrase, const char *what,
                    struct bf_rsa_key **out, struct bf_error *err) {
  *out = NULL;
  BIO *bio = BIO_new_file(path, "r");
  if (!bio) {
    ERR_clear_error();
    return bf_error_set(err, BF_E_CONFIG, "%s: cannot open the private key file %s", what, path);
  }
  char *source = bf_xasprintf("in %s", path);
  int rc = key_from_bio(bio, passphrase, source, what, out, err);
  free(source);
  BIO_free(bio);
  return rc;
}

int bf_rsa_key_from_pem(const char *pem, size_t len, const char *what, struct bf_rsa_key **out,
                        struct bf_error *err) {
  *out = NULL;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (!bio) return bf_error_set(err, BF_E_NOMEM, "%s: out of memory reading a key", what);
  int rc = key_from_bio(bio, NULL, "given", what, out, err);
  BIO_free(bio);
  return rc;
}

void bf_rsa_key_free(struct bf_rsa_key *k) {
  if (!k) return;
  EVP_PKEY_free(k->pkey);
  free(k);
}

char *bf_rsa_key_fingerprint(const struct bf_rsa_key *k) {
  unsigned char *der = NULL;
  int n = i2d_PUBKEY(k->pkey, &der);
  if (n <= 0) BF_BUG("cannot encode a loaded RSA public key");
  unsigned char digest[32];
  crypto_hash_sha256(digest, der, (unsigned long long)n);
  OPENSSL_free(der);
  char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
  return bf_xasprintf("SHA256:%s", b64);
}

void bf_base64url(struct bf_buf *out, const void *p, size_t n) {
  size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  bf_buf_reserve(out, cap);
  sodium_bin2base64(out->data + out->len, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out->len += strlen(out->data + out->len);
}

int bf_jwt_rs256(const struct bf_rsa_key *k, const char *kid, const char *claims_json, char **out,
                 struct bf_error *err) {
  *out = NULL;
  struct bf_buf header = {0}, jwt = {0};
  bf_buf_puts(&header, "{\"alg\":\"RS256\",\"typ\":\"JWT\"");
  if (kid) {
    bf_buf_puts(&header, ",\"kid\":");
    bf_json_cstr(&header, kid);
  }
  bf_buf_putc(&header, '}');
  bf_base64url(&jwt, header.data, header.len);
  bf_buf_release(&header);
  bf_buf_putc(&jwt, '.');
  bf_base64url(&jwt, claims_json, strlen(claims_json));
  unsigned char *sig = NULL;
  size_t siglen = 0;
  int rc = 0;
  ERR_clear_error();
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
      EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)jwt.data, jwt.len) != 1) {
    rc = bf_error_set(err, BF_E_CONFIG, "signing a JWT failed: %s", crypto_reason());
    goto out;
  }
  sig = bf_xmalloc(siglen);
  if (EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)jwt.data, jwt.len) != 1) {
    rc = bf_error_set(err, BF_E_CONFIG, "signing a JWT failed: %s", crypto_reason());
    goto out;
  }
  bf_buf_putc(&jwt, '.');
  bf_base64url(&jwt, sig, siglen);
  *out = bf_xstrdup(bf_buf_cstr(&jwt));
out:
  ERR_clear_error();
  EVP_MD_CTX_free(ctx);
  free(sig);
  bf_buf_release(&jwt);
  return rc;
}

/* RS256 JSON Web Tokens (RFC 7515/7519) signed with an RSA private key, for
 * the warehouses and APIs that authenticate with a key pair instead of a
 * password: Snowflake key-pair authentication, Google service accounts. The
 * key is read with OpenSSL's libcrypto; nothing here ever copies key bytes or
 * a passphrase into an error message. */
#ifndef BF_JWT_H
#define BF_JWT_H

#include <stddef.h>

#include "util/error.h"
#include "util/jsonw.h"

struct bf_rsa_key;

/* Reads the PEM private key in path (PKCS#8 "BEGIN PRIVATE KEY", or
 * "BEGIN ENCRYPTED PRIVATE KEY" with passphrase; a traditional "BEGIN RSA
 * PRIVATE KEY" is accepted too). what names the config place for messages
 * ("warehouse 'snow' (snowflake)"). Caller frees *out with bf_rsa_key_free. */
int bf_rsa_key_load(const char *path, const char *passphrase, const char *what,
                    struct bf_rsa_key **out, struct bf_error *err);
/* Reads a PEM private key held in memory (a service-account key file's
 * "private_key"); otherwise as bf_rsa_key_load. Caller frees *out. */
int bf_rsa_key_from_pem(const char *pem, size_t len, const char *what, struct bf_rsa_key **out,
                        struct bf_error *err);
void bf_rsa_key_free(struct bf_rsa_key *k);

/* "SHA256:" + base64 of the SHA-256 of the public key's DER encoding
 * (SubjectPublicKeyInfo): the fingerprint Snowflake shows as
 * RSA_PUBLIC_KEY_FP and expects in a JWT's iss. Caller frees. */
char *bf_rsa_key_fingerprint(const struct bf_rsa_key *k);

/* A compact JWT: base64url({"alg":"RS256","typ":"JWT"[,"kid":kid]}) "."
 * base64url(claims) "." base64url(RSASSA-PKCS1-v1_5 SHA-256 signature).
 * claims_json is the payload as given (a JSON object); kid (the key's id, as
 * Google's token endpoint wants it) may be NULL. Caller frees *out. */
int bf_jwt_rs256(const struct bf_rsa_key *k, const char *kid, const char *claims_json, char **out,
                 struct bf_error *err);

/* Appends base64url without padding (RFC 4648 §5) of p[0..n). */
void bf_base64url(struct bf_buf *out, const void *p, size_t n);

#endif

/* Normalisation and hashing of personal identifiers for ad platforms and
 * for `pii_policy: hash`. One function per identifier kind and platform
 * rule, because the platforms disagree (Meta wants phones as digits
 * without '+', Google wants E.164 with '+'; Meta hashes country and zip,
 * Google sends them in clear). The rules and the sources they come from
 * are in docs/destinations-ads.md.
 *
 * Every normaliser has the signature of bf_pii_fn: it reads n bytes of s
 * (not NUL-terminated, any encoding; invalid UTF-8 is an error), writes the
 * normalised text into out (NUL-terminated, at most BF_PII_MAX - 1 bytes)
 * and returns its length, or -1 with *why set to a static reason that never
 * quotes the value (design.md §2). An empty or invalid value is an error:
 * Backflow rejects that row instead of sending the hash of garbage.
 *
 * Unicode is handled by libunistring (core/pii_text.h): "whitespace" is
 * the White_Space property plus U+FEFF, lower case is the full,
 * language-independent case mapping (as JavaScript's toLowerCase, which
 * Meta's SDK uses), letters are general categories L and M.
 *
 * Results go into the caller's buffers (libunistring may use scratch
 * memory internally); all functions are thread-safe. */
#ifndef BF_PII_NORMALIZE_H
#define BF_PII_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/value.h"

#define BF_PII_MAX        320 /* longest normalised value (an email is <= 254) */
#define BF_PII_SHA256_HEX 65  /* 64 hex digits + NUL */

typedef int (*bf_pii_fn)(const char *s, size_t n, char out[BF_PII_MAX], const char **why);

/* --- Meta (Custom Audiences multi-key schema) ------------------------ */
/* EMAIL: trim, full lower case (no normal form: Meta asks for none);
 * must look like local@domain.tld. */
int bf_pii_meta_email(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* PHONE: Meta's "remove symbols, letters, and any leading zeros": every
 * non-digit goes (quotes, a spreadsheet's leading ', ';', '+', spaces of
 * any kind), digits of any script count, leading zeros (and so a 00
 * prefix) go. What is left must be 7 to 15 digits with the country code,
 * else the value cannot be a phone and is an error.
 * "'+1 (650) 555-1212" -> "16505551212". */
int bf_pii_meta_phone(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* FN / LN: trim, full lower case, NFC, then letters (and their combining
 * marks) of any script only: punctuation, digits and spaces removed
 * (Meta: "a-z", "no punctuation", "special characters in UTF-8").
 * "ΟΔΥΣΣΕΥΣ" -> "οδυσσευς", "İpek" -> "i̇pek", "Jose" + U+0301 -> "josé". */
int bf_pii_meta_name(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* FI: the first code point of the normalised first name. */
int bf_pii_meta_first_initial(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* CT: as a name (letters only, no spaces): "San Francisco" -> "sanfrancisco". */
int bf_pii_meta_city(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* ST: US states and territories as their 2-letter code ("California" ->
 * "ca"); other regions lowercase letters only. */
int bf_pii_meta_state(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* ZIP: lowercase without whitespace; US ZIP / ZIP+4 -> first 5 digits. */
int bf_pii_meta_zip(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* COUNTRY: ISO 3166-1 alpha-2, lowercase; a few common names and alpha-3
 * forms ("USA", "United Kingdom") are accepted. */
int bf_pii_meta_country(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* DOBY: YYYY, 1900..this year; DOBM: 01..12; DOBD: 01..31. Each also
 * accepts a full ISO date (YYYY-MM-DD, with an optional time) and takes
 * its part, so one birth-date column can feed all three keys. */
int bf_pii_meta_dob_year(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
int bf_pii_meta_dob_month(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
int bf_pii_meta_dob_day(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* GEN: "m" or "f" (also accepts male/female in any case). */
int bf_pii_meta_gender(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* EXTERN_ID: trimmed, otherwise as-is; never hashed. */
int bf_pii_external_id(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* MADID: lowercase, hyphens kept; never hashed. */
int bf_pii_meta_madid(const char *s, size_t n, char out[BF_PII_MAX], const char **why);

/* --- Google (Customer Match / Data Manager formatting rules) ---------- */
/* email: all whitespace removed, lowercase; for gmail.com and
 * googlemail.com the dots and any +suffix of the local part are removed
 * ("cloudy.sanfrancisco+shopping@gmail.com" -> "cloudysanfrancisco@gmail.com"). */
int bf_pii_google_email(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* phone: E.164 with '+': "(800) 555-0100" written with its country code,
 * "+1 800 555 0100" -> "+18005550100". */
int bf_pii_google_phone(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* first/last name: as Meta's FN/LN but inner whitespace kept as one
 * space ("Mary  Ann" -> "mary ann"). */
int bf_pii_google_name(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* countryCode: ISO 3166-1 alpha-2, UPPER case, sent in clear. */
int bf_pii_google_country(const char *s, size_t n, char out[BF_PII_MAX], const char **why);
/* postalCode: trimmed, inner whitespace collapsed, sent in clear. */
int bf_pii_google_postal_code(const char *s, size_t n, char out[BF_PII_MAX], const char **why);

/* --- Hashing ---------------------------------------------------------- */
/* SHA-256 of n bytes as 64 lowercase hex digits + NUL. */
void bf_pii_sha256_hex(const void *s, size_t n, char out[BF_PII_SHA256_HEX]);
/* True when s is 64 hex digits: a value already hashed upstream, which
 * Meta and Google both take as is (lower-cased). */
bool bf_pii_is_sha256_hex(const char *s, size_t n);

/* Normalises with fn, then writes the lowercase SHA-256 hex into out.
 * A value that already is a SHA-256 hex digest is passed through
 * lower-cased. Returns 0, or -1 with *why (the value was invalid). */
int bf_pii_normalize_hash(bf_pii_fn fn, const char *s, size_t n, char out[BF_PII_SHA256_HEX],
                          const char **why);

/* The text of a warehouse value as fed to a normaliser: text and blobs
 * as they are, integers in decimal, floats without a fraction when they
 * have none (a phone read as REAL), booleans as "true"/"false". buf (>= 48
 * bytes) holds converted numbers. Returns false for NULL. */
bool bf_pii_value_text(const struct bf_value *v, char *buf, size_t cap, const char **s, size_t *n);

/* --- Generic kinds (models' `pii:` kinds, for `pii_policy: hash`) ----- */
/* The normaliser for a model's pii kind ("email", "phone", "name", ...);
 * never NULL: kinds without a rule (ip, id, other, NULL) are trimmed only.
 * email and name follow Meta's rules, which also match the hashes Google
 * and most CRMs compute; phone uses Meta's digits-only E.164. */
bf_pii_fn bf_pii_fn_for_kind(const char *kind);
/* Trim only; errors on an empty value. */
int bf_pii_trim(const char *s, size_t n, char out[BF_PII_MAX], const char **why);

#endif

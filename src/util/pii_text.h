/* Unicode steps shared by the identifier normalisers (pii_normalize.c):
 * validity, trimming, full case mapping, NFC and character classes, all by
 * libunistring so that they follow the Unicode Character Database instead
 * of hand-written tables (issue 13: lower-casing outside Latin-1, Greek and
 * Cyrillic was wrong, Unicode spaces were not trimmed).
 *
 * Strings are UTF-8 with a length (not NUL-terminated). Results are written
 * into the caller's buffer; nothing returned needs freeing. libunistring may
 * allocate scratch memory internally and frees it before returning. All
 * functions are thread-safe. */
#ifndef BF_PII_TEXT_H
#define BF_PII_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s is well-formed UTF-8 (no overlong forms, surrogates or code
 * points above U+10FFFF). */
bool bf_pii_utf8_valid(const char *s, size_t n);

/* Decodes the code point at s (n > 0 bytes left) into *cp and returns its
 * length in bytes; an ill-formed sequence gives U+FFFD and length 1. */
size_t bf_pii_utf8_next(const char *s, size_t n, uint32_t *cp);

/* Padding a person's identifier may carry: the Unicode White_Space property
 * (U+00A0, U+2009, U+3000, U+2028, ...) and U+FEFF, the byte-order mark a
 * spreadsheet export leaves at the start of a file's first cell. */
bool bf_pii_is_space(uint32_t cp);

/* A letter (general category L) or a combining mark (M), which belongs to
 * the letter before it: what a name is made of. */
bool bf_pii_is_letter(uint32_t cp);

/* The value of a decimal digit of any script (ASCII, full-width, Arabic-
 * Indic, ...), or -1. */
int bf_pii_digit(uint32_t cp);

/* Moves *s and *n past leading and trailing bf_pii_is_space() code points.
 * Stops at an ill-formed sequence (the caller rejects those). */
void bf_pii_trim_space(const char **s, size_t *n);

/* Full, language-independent Unicode lower case of n bytes of valid UTF-8
 * (SpecialCasing included: U+0130 -> "i" U+0307, final sigma -> U+03C2),
 * then NFC when nfc is set. Writes at most cap - 1 bytes and a NUL into
 * out. Returns the length, or -1 when the result does not fit (or the
 * library fails). */
int bf_pii_lower(const char *s, size_t n, bool nfc, char *out, size_t cap);

#endif

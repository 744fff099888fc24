/* Unicode steps for the identifier normalisers, by libunistring. ASCII is
 * handled inline: it is most identifiers, its lower case and NFC are
 * trivially the same as the full Unicode ones, and it keeps the hot path
 * (one call per identifier per row) free of library calls. */
#include "util/pii_text.h"

#include <stdlib.h>

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

bool bf_pii_utf8_valid(const char *s, size_t n) { return u8_check((const uint8_t *)s, n) == NULL; }

size_t bf_pii_utf8_next(const char *s, size_t n, uint32_t *cp) {
  unsigned char c = (unsigned char)s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  ucs4_t uc;
  int len = u8_mbtouc(&uc, (const uint8_t *)s, n);
  *cp = uc;
  return len > 0 ? (size_t)len : 1;
}

bool bf_pii_is_space(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= '\t' && cp <= '\r');
  return cp == 0xFEFF || uc_is_property_white_space(cp);
}

bool bf_pii_is_letter(uint32_t cp) {
  if (cp < 0x80) return ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  return uc_is_general_category(cp, UC_CATEGORY_L) || uc_is_general_category(cp, UC_CATEGORY_M);
}

int bf_pii_digit(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9' ? (int)(cp - '0') : -1;
  return uc_decimal_value(cp);
}

void bf_pii_trim_space(const char **s, size_t *n) {
  const char *p = *s;
  size_t left = *n;
  while (left) {
    ucs4_t uc;
    int len = u8_mbtoucr(&uc, (const uint8_t *)p, left);
    if (len <= 0 || !bf_pii_is_space(uc)) break;
    p += len, left -= (size_t)len;
  }
  /* Trailing: the end of the last code point that is not padding. */
  size_t end = 0, i = 0;
  while (i < left) {
    ucs4_t uc;
    int len = u8_mbtoucr(&uc, (const uint8_t *)p + i, left - i);
    if (len <= 0) { /* ill-formed: keep the rest, the caller rejects it */
      end = left;
      break;
    }
    i += (size_t)len;
    if (!bf_pii_is_space(uc)) end = i;
  }
  *s = p;
  *n = end;
}

int bf_pii_lower(const char *s, size_t n, bool nfc, char *out, size_t cap) {
  size_t i = 0;
  while (i < n && (unsigned char)s[i] < 0x80) i++;
  if (i == n) {
    if (n >= cap) return -1;
    for (i = 0; i < n; i++) {
      unsigned char c = (unsigned char)s[i];
      out[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    out[n] = '\0';
    return (int)n;
  }
  if (cap < 2) return -1;
  size_t len = cap - 1;
  uint8_t *r =
      u8_tolower((const uint8_t *)s, n, NULL, nfc ? UNINORM_NFC : NULL, (uint8_t *)out, &len);
  if (!r) return -1;
  if (r != (uint8_t *)out) { /* did not fit: the library allocated instead */
    free(r);
    return -1;
  }
  out[len] = '\0';
  return (int)len;
}

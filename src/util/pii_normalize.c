/* Identifier normalisation per platform rule, then SHA-256. The rules and
 * their sources are listed in docs/destinations-ads.md; the unit tests pin
 * the platforms' published examples and tests/integration/test_pii_meta_sdk.py
 * compares with Meta's own SDK. Unicode (spaces, case, NFC, letters, digits)
 * is libunistring's, through core/pii_text.h. Hot path: one call per
 * identifier per row, so results go into the caller's buffers and nothing
 * depends on the locale. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "util/pii_normalize.h"
#include "util/pii_text.h"

#define INVALID(reason)                                                                            \
  do {                                                                                             \
    *why = (reason);                                                                               \
    return -1;                                                                                     \
  } while (0)

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static unsigned char to_lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c | 0x20 : c; }

static void trim(const char **s, size_t *n) { bf_pii_trim_space(s, n); }

/* Room for a lower-cased value before it is filtered: full case mapping
 * can lengthen text (U+0130 is 2 bytes, its lower case 3). */
#define LOWER_MAX (4 * BF_PII_MAX)

/* Letters only, lower-cased: trim, full lower case of the whole value (so
 * that a final sigma is seen as final before punctuation goes), NFC, then
 * every code point that is not a letter or a combining mark dropped.
 * keep_spaces collapses runs of whitespace into one space instead of
 * dropping them. Returns the length or -1. */
static int letters_only(const char *s, size_t n, char out[BF_PII_MAX], bool keep_spaces,
                        const char **why) {
  if (!bf_pii_utf8_valid(s, n)) INVALID("not valid UTF-8");
  trim(&s, &n);
  char low[LOWER_MAX];
  int low_len = bf_pii_lower(s, n, true, low, sizeof low);
  if (low_len < 0) INVALID("too long");
  size_t i = 0, len = 0;
  bool pending_space = false;
  while (i < (size_t)low_len) {
    uint32_t cp;
    size_t step = bf_pii_utf8_next(low + i, (size_t)low_len - i, &cp);
    if (!bf_pii_is_letter(cp)) {
      if (keep_spaces && bf_pii_is_space(cp)) pending_space = true;
      i += step;
      continue;
    }
    if (pending_space && len) {
      if (len + 1 >= BF_PII_MAX) INVALID("too long");
      out[len++] = ' ';
    }
    pending_space = false;
    if (len + step >= BF_PII_MAX) INVALID("too long");
    memcpy(out + len, low + i, step);
    len += step;
    i += step;
  }
  if (!len) INVALID("has no letters");
  out[len] = '\0';
  return (int)len;
}

/* --- email ------------------------------------------------------------ */

/* Checks local@domain.tld on lower-cased text without whitespace. */
static bool email_shape_ok(const char *e, size_t n) {
  const char *at = memchr(e, '@', n);
  if (!at || at == e || memchr(at + 1, '@', n - (size_t)(at - e) - 1)) return false;
  const char *dom = at + 1;
  size_t dn = n - (size_t)(dom - e);
  if (dn < 3 || dom[0] == '.' || dom[dn - 1] == '.') return false;
  if (!memchr(dom, '.', dn)) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)e[i];
    if (c < 0x21 || c == 0x7F || c == ',' || c == ';' || c == '<' || c == '>' || c == '(' ||
        c == ')' || c == '[' || c == ']' || c == '\\' || c == '"' || c == ':')
      return false;
  }
  for (size_t i = 0; i + 1 < dn; i++)
    if (dom[i] == '.' && dom[i + 1] == '.') return false;
  return true;
}

/* Meta: "trim leading and trailing whitespace and convert all characters to
 * lowercase". No normal form is asked for, so none is applied: the bytes a
 * person typed are what Meta hashed when they signed up. */
int bf_pii_meta_email(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  if (!bf_pii_utf8_valid(s, n)) INVALID("not valid UTF-8");
  trim(&s, &n);
  if (!n) INVALID("is empty");
  if (n > 254) INVALID("is longer than an email address can be");
  int len = bf_pii_lower(s, n, false, out, 255);
  if (len < 0) INVALID("is longer than an email address can be");
  if (!email_shape_ok(out, (size_t)len)) INVALID("not an email address");
  return len;
}

/* Google: lowercase, "trim leading, trailing and intermediate whitespace",
 * and for gmail.com / googlemail.com no dots and no +suffix in the local
 * part. */
int bf_pii_google_email(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  if (!bf_pii_utf8_valid(s, n)) INVALID("not valid UTF-8");
  char packed[BF_PII_MAX];
  size_t plen = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t step = bf_pii_utf8_next(s + i, n - i, &cp);
    if (!bf_pii_is_space(cp)) {
      if (plen + step > 254) INVALID("is longer than an email address can be");
      memcpy(packed + plen, s + i, step);
      plen += step;
    }
    i += step;
  }
  if (!plen) INVALID("is empty");
  int ilen = bf_pii_lower(packed, plen, false, out, 255);
  if (ilen < 0) INVALID("is longer than an email address can be");
  size_t len = (size_t)ilen;
  if (!email_shape_ok(out, len)) INVALID("not an email address");
  char *at = memchr(out, '@', len);
  const char *dom = at + 1;
  if (!strcmp(dom, "gmail.com") || !strcmp(dom, "googlemail.com")) {
    size_t w = 0;
    for (char *p = out; p < at; p++) {
      if (*p == '+') break;
      if (*p != '.') out[w++] = *p;
    }
    if (!w) INVALID("not an email address");
    size_t dl = strlen(dom);
    memmove(out + w, at, dl + 2); /* '@' + domain + NUL */
    len = w + 1 + dl;
  }
  return (int)len;
}

/* --- phone ------------------------------------------------------------ */

/* Meta: "remove symbols, letters, and any leading zeros". So every
 * character that is not a digit goes (a spreadsheet's leading apostrophe,
 * quotes, ';', '+', dots, any space); digits of other scripts (full-width
 * ０-９) count as the digits they are. What is left must be a number with
 * its country code: 7 to 15 digits (E.164); anything else cannot be a
 * phone and is rejected. */
static int phone_digits(const char *s, size_t n, char *out, const char **why) {
  if (!bf_pii_utf8_valid(s, n)) INVALID("not valid UTF-8");
  trim(&s, &n);
  if (!n) INVALID("is empty");
  size_t len = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    i += bf_pii_utf8_next(s + i, n - i, &cp);
    int d = bf_pii_digit(cp);
    if (d < 0 || (d == 0 && len == 0)) continue; /* symbols, letters, leading zeros */
    if (len >= 15) INVALID("has more than 15 digits (E.164)");
    out[len++] = (char)('0' + d);
  }
  if (!len) INVALID("has no digits");
  if (len < 7) INVALID("is too short for a phone number with its country code");
  out[len] = '\0';
  return (int)len;
}

int bf_pii_meta_phone(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  return phone_digits(s, n, out, why);
}

int bf_pii_google_phone(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  char digits[BF_PII_MAX];
  int len = phone_digits(s, n, digits, why);
  if (len < 0) return -1;
  out[0] = '+';
  memcpy(out + 1, digits, (size_t)len + 1);
  return len + 1;
}

/* --- names and places ------------------------------------------------- */

int bf_pii_meta_name(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  return letters_only(s, n, out, false, why);
}

int bf_pii_meta_first_initial(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  int len = letters_only(s, n, out, false, why);
  if (len < 0) return -1;
  uint32_t cp;
  size_t first = bf_pii_utf8_next(out, (size_t)len, &cp);
  out[first] = '\0';
  return (int)first;
}

int bf_pii_meta_city(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  return letters_only(s, n, out, false, why);
}

int bf_pii_google_name(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  return letters_only(s, n, out, true, why);
}

/* US states, DC and territories by their letters-only lower-case name. */
static const char *const us_states[][2] = {
    {"alabama", "al"},
    {"alaska", "ak"},
    {"arizona", "az"},
    {"arkansas", "ar"},
    {"california", "ca"},
    {"colorado", "co"},
    {"connecticut", "ct"},
    {"delaware", "de"},
    {"districtofcolumbia", "dc"},
    {"florida", "fl"},
    {"georgia", "ga"},
    {"hawaii", "hi"},
    {"idaho", "id"},
    {"illinois", "il"},
    {"indiana", "in"},
    {"iowa", "ia"},
    {"kansas", "ks"},
    {"kentucky", "ky"},
    {"louisiana", "la"},
    {"maine", "me"},
    {"maryland", "md"},
    {"massachusetts", "ma"},
    {"michigan", "mi"},
    {"minnesota", "mn"},
    {"mississippi", "ms"},
    {"missouri", "mo"},
    {"montana", "mt"},
    {"nebraska", "ne"},
    {"nevada", "nv"},
    {"newhampshire", "nh"},
    {"newjersey", "nj"},
    {"newmexico", "nm"},
    {"newyork", "ny"},
    {"northcarolina", "nc"},
    {"northdakota", "nd"},
    {"ohio", "oh"},
    {"oklahoma", "ok"},
    {"oregon", "or"},
    {"pennsylvania", "pa"},
    {"rhodeisland", "ri"},
    {"southcarolina", "sc"},
    {"southdakota", "sd"},
    {"tennessee", "tn"},
    {"texas", "tx"},
    {"utah", "ut"},
    {"vermont", "vt"},
    {"virginia", "va"},
    {"washington", "wa"},
    {"westvirginia", "wv"},
    {"wisconsin", "wi"},
    {"wyoming", "wy"},
    {"puertorico", "pr"},
    {"guam", "gu"},
    {"americansamoa", "as"},
    {"northernmarianaislands", "mp"},
    {"usvirginislands", "vi"},
};

int bf_pii_meta_state(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  int len = letters_only(s, n, out, false, why);
  if (len < 0) return -1;
  for (size_t i = 0; i < sizeof us_states / sizeof us_states[0]; i++) {
    if (!strcmp(out, us_states[i][0])) {
      memcpy(out, us_states[i][1], 3);
      return 2;
    }
  }
  return len;
}

int bf_pii_meta_zip(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  if (!bf_pii_utf8_valid(s, n)) INVALID("not valid UTF-8");
  trim(&s, &n);
  size_t len = 0, digits = 0;
  for (size_t i = 0, step; i < n; i += step) {
    uint32_t cp;
    step = bf_pii_utf8_next(s + i, n - i, &cp);
    if (bf_pii_is_space(cp)) continue;
    unsigned char c = cp < 0x80 ? (unsigned char)cp : 0;
    if (!(is_digit(c) || is_alpha(c) || c == '-'))
      INVALID("has characters a postal code cannot have");
    if (len >= 10) INVALID("is too long for a postal code");
    digits += is_digit(c);
    out[len++] = (char)to_lower(c);
  }
  if (len < 2) INVALID("is too short for a postal code");
  out[len] = '\0';
  /* US ZIP+4 (12345-6789 or 123456789): Meta wants the first 5 digits. */
  bool zip4 = (len == 10 && digits == 9 && out[5] == '-') || (len == 9 && digits == 9);
  if (zip4) {
    out[5] = '\0';
    return 5;
  }
  return (int)len;
}

int bf_pii_google_postal_code(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  if (!bf_pii_utf8_valid(s, n)) INVALID("not valid UTF-8");
  trim(&s, &n);
  size_t len = 0;
  bool space = false;
  for (size_t i = 0, step; i < n; i += step) {
    uint32_t cp;
    step = bf_pii_utf8_next(s + i, n - i, &cp);
    unsigned char c = cp < 0x80 ? (unsigned char)cp : 0;
    if (bf_pii_is_space(cp)) {
      space = true;
      continue;
    }
    if (!(is_digit(c) || is_alpha(c) || c == '-'))
      INVALID("has characters a postal code cannot have");
    if (len + 2 >= 16) INVALID("is too long for a postal code");
    if (space && len) out[len++] = ' ';
    space = false;
    out[len++] = (char)c;
  }
  if (len < 2) INVALID("is too short for a postal code");
  out[len] = '\0';
  return (int)len;
}

/* ISO 3166-1: alpha-3 followed by its alpha-2, sorted by alpha-3. */
static const char iso3166[] =
    "abwawafgafagoaoaiaaialaaxalbalandadareaeargararmamasmasataaqatftfatgagausauautatazeazbdibi"
    "belbebenbjbesbqbfabfbgdbdbgrbgbhrbhbhsbsbihbablmblblrbyblzbzbmubmbolbobrabrbrbbbbrnbnbtnbt"
    "bvtbvbwabwcafcfcancacckccchechchlclchncncivcicmrcmcodcdcogcgcokckcolcocomkmcpvcvcricrcubcu"
    "cuwcwcxrcxcymkycypcyczeczdeudedjidjdmadmdnkdkdomdodzadzecuecegyegeriereshehespesesteeethet"
    "finfifjifjflkfkfrafrfrofofsmfmgabgagbrgbgeogeggyggghaghgibgigingnglpgpgmbgmgnbgwgnqgqgrcgr"
    "grdgdgrlglgtmgtgufgfgumguguygyhkghkhmdhmhndhnhrvhrhtihthunhuidnidimnimindiniotioirlieirnir"
    "irqiqislisisrilitaitjamjmjeyjejorjojpnjpkazkzkenkekgzkgkhmkhkirkiknaknkorkrkwtkwlaolalbnlb"
    "lbrlrlbylylcalclielilkalklsolsltultluxlulvalvmacmomafmfmarmamcomcmdamdmdgmgmdvmvmexmxmhlmh"
    "mkdmkmlimlmltmtmmrmmmnememngmnmnpmpmozmzmrtmrmsrmsmtqmqmusmumwimwmysmymytytnamnanclncnerne"
    "nfknfngangnicniniununldnlnornonplnpnrunrnzlnzomnompakpkpanpapcnpnperpephlphplwpwpngpgpolpl"
    "priprprkkpprtptprypypsepspyfpfqatqareurerourorusrurwarwsausasdnsdsensnsgpsgsgsgsshnshsjmsj"
    "slbsbsleslslvsvsmrsmsomsospmpmsrbrsssdssstpstsursrsvksksvnsisweseswzszsxmsxsycscsyrsytcatc"
    "tcdtdtgotgthathtjktjtkltktkmtmtlstltontottotttuntnturtrtuvtvtwntwtzatzugaugukruaumiumuryuy"
    "usausuzbuzvatvavctvcvenvevgbvgvirvivnmvnvutvuwlfwfwsmwsyemyezafzazmbzmzwezw";

static const char *const country_names[][2] = {
    {"unitedstates", "us"}, {"unitedstatesofamerica", "us"},
    {"uk", "gb"},           {"unitedkingdom", "gb"},
    {"greatbritain", "gb"}, {"england", "gb"},
    {"scotland", "gb"},     {"wales", "gb"},
    {"germany", "de"},      {"france", "fr"},
    {"canada", "ca"},       {"australia", "au"},
    {"spain", "es"},        {"italy", "it"},
    {"netherlands", "nl"},  {"mexico", "mx"},
    {"brazil", "br"},       {"india", "in"},
    {"japan", "jp"},        {"ireland", "ie"},
};

/* Lower-case ISO alpha-2 in out, or -1. */
static int country_code(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  char letters[BF_PII_MAX];
  int len = letters_only(s, n, letters, false, why);
  if (len < 0) return -1;
  if (len == 2) {
    for (size_t i = 0; i + 5 <= sizeof iso3166 - 1; i += 5) {
      if (iso3166[i + 3] == letters[0] && iso3166[i + 4] == letters[1]) {
        memcpy(out, letters, 3);
        return 2;
      }
    }
  } else if (len == 3) {
    for (size_t i = 0; i + 5 <= sizeof iso3166 - 1; i += 5) {
      if (!memcmp(iso3166 + i, letters, 3)) {
        out[0] = iso3166[i + 3];
        out[1] = iso3166[i + 4];
        out[2] = '\0';
        return 2;
      }
    }
  }
  for (size_t i = 0; i < sizeof country_names / sizeof country_names[0]; i++) {
    if (!strcmp(letters, country_names[i][0])) {
      memcpy(out, country_names[i][1], 3);
      return 2;
    }
  }
  INVALID("not an ISO 3166-1 alpha-2 country code");
}

int bf_pii_meta_country(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  return country_code(s, n, out, why);
}

int bf_pii_google_country(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  int len = country_code(s, n, out, why);
  if (len < 0) return -1;
  out[0] = (char)(out[0] - 32);
  out[1] = (char)(out[1] - 32);
  return len;
}

/* --- date of birth, gender, ids -------------------------------------- */

/* Parses "YYYY", "MM"/"M", "DD"/"D" alone (which = 'y','m','d') or a full
 * date YYYY-MM-DD / YYYY/MM/DD / YYYYMMDD with anything after it. */
static int dob_part(const char *s, size_t n, char which, int *value) {
  trim(&s, &n);
  int y = -1, m = -1, d = -1;
  size_t digits = 0;
  while (digits < n && is_digit((unsigned char)s[digits])) digits++;
  if (digits == n && n >= 1 && n <= 4) {
    int v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    if (which == 'y' && n == 4)
      y = v;
    else if (which == 'm' && n <= 2)
      m = v;
    else if (which == 'd' && n <= 2)
      d = v;
    else
      return -1;
  } else if (digits == 8 && (n == 8 || !is_digit((unsigned char)s[8]))) {
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    m = (s[4] - '0') * 10 + (s[5] - '0');
    d = (s[6] - '0') * 10 + (s[7] - '0');
  } else if (digits == 4 && n >= 10 && (s[4] == '-' || s[4] == '/') && s[7] == s[4] &&
             is_digit((unsigned char)s[5]) && is_digit((unsigned char)s[6]) &&
             is_digit((unsigned char)s[8]) && is_digit((unsigned char)s[9]) &&
             (n == 10 || !is_digit((unsigned char)s[10]))) {
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
  } else {
    return -1;
  }
  if (m != -1 && (m < 1 || m > 12)) return -1;
  if (d != -1 && (d < 1 || d > 31)) return -1;
  *value = which == 'y' ? y : which == 'm' ? m : d;
  return *value < 0 ? -1 : 0;
}

static int current_year(void) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  return tm.tm_year + 1900;
}

int bf_pii_meta_dob_year(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  int y;
  if (dob_part(s, n, 'y', &y) || y < 1900 || y > current_year())
    INVALID("not a birth year (YYYY, 1900 to this year) or date");
  for (int i = 3; i >= 0; i--, y /= 10) out[i] = (char)('0' + y % 10);
  out[4] = '\0';
  return 4;
}

int bf_pii_meta_dob_month(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  int m;
  if (dob_part(s, n, 'm', &m)) INVALID("not a birth month (01 to 12) or date");
  out[0] = (char)('0' + m / 10);
  out[1] = (char)('0' + m % 10);
  out[2] = '\0';
  return 2;
}

int bf_pii_meta_dob_day(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  int d;
  if (dob_part(s, n, 'd', &d)) INVALID("not a birth day (01 to 31) or date");
  out[0] = (char)('0' + d / 10);
  out[1] = (char)('0' + d % 10);
  out[2] = '\0';
  return 2;
}

int bf_pii_meta_gender(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  char letters[BF_PII_MAX];
  int len = letters_only(s, n, letters, false, why);
  if (len < 0) return -1;
  if (!strcmp(letters, "m") || !strcmp(letters, "male"))
    out[0] = 'm';
  else if (!strcmp(letters, "f") || !strcmp(letters, "female"))
    out[0] = 'f';
  else
    INVALID("not a gender Meta accepts (m or f)");
  out[1] = '\0';
  return 1;
}

int bf_pii_trim(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  if (!bf_pii_utf8_valid(s, n)) INVALID("not valid UTF-8");
  trim(&s, &n);
  if (!n) INVALID("is empty");
  if (n >= BF_PII_MAX) INVALID("too long");
  memcpy(out, s, n);
  out[n] = '\0';
  return (int)n;
}

int bf_pii_external_id(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  return bf_pii_trim(s, n, out, why);
}

int bf_pii_meta_madid(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  int len = bf_pii_trim(s, n, out, why);
  if (len < 0) return -1;
  for (int i = 0; i < len; i++) {
    unsigned char c = (unsigned char)out[i];
    if (!(is_digit(c) || is_alpha(c) || c == '-')) INVALID("not a mobile advertiser id");
    out[i] = (char)to_lower(c);
  }
  return len;
}

/* --- hashing ---------------------------------------------------------- */

static void hex_lower(const unsigned char *bin, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[bin[i] >> 4];
    out[2 * i + 1] = digits[bin[i] & 15];
  }
  out[2 * n] = '\0';
}

void bf_pii_sha256_hex(const void *s, size_t n, char out[BF_PII_SHA256_HEX]) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, s, n);
  hex_lower(digest, sizeof digest, out);
}

bool bf_pii_is_sha256_hex(const char *s, size_t n) {
  if (n != 64) return false;
  for (size_t i = 0; i < 64; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'))) return false;
  }
  return true;
}

int bf_pii_normalize_hash(bf_pii_fn fn, const char *s, size_t n, char out[BF_PII_SHA256_HEX],
                          const char **why) {
  trim(&s, &n);
  if (bf_pii_is_sha256_hex(s, n)) {
    for (size_t i = 0; i < 64; i++) out[i] = (char)to_lower((unsigned char)s[i]);
    out[64] = '\0';
    return 0;
  }
  char norm[BF_PII_MAX];
  int len = fn(s, n, norm, why);
  if (len < 0) return -1;
  bf_pii_sha256_hex(norm, (size_t)len, out);
  return 0;
}

bool bf_pii_value_text(const struct bf_value *v, char *buf, size_t cap, const char **s, size_t *n) {
  int len;
  switch (v->type) {
  case BF_NULL: return false;
  case BF_TEXT:
  case BF_JSON:
  case BF_BLOB:
    *s = v->u.s;
    *n = v->len;
    return true;
  case BF_INT: len = snprintf(buf, cap, "%lld", (long long)v->u.i); break;
  case BF_BOOL: len = snprintf(buf, cap, "%s", v->u.i ? "true" : "false"); break;
  case BF_FLOAT:
    if (v->u.f > -1e18 && v->u.f < 1e18 && v->u.f == (double)(long long)v->u.f)
      len = snprintf(buf, cap, "%lld", (long long)v->u.f);
    else
      len = snprintf(buf, cap, "%.17g", v->u.f);
    break;
  default: return false;
  }
  *s = buf;
  *n = len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
  return true;
}

bf_pii_fn bf_pii_fn_for_kind(const char *kind) {
  if (!kind) return bf_pii_trim;
  if (!strcmp(kind, "email")) return bf_pii_meta_email;
  if (!strcmp(kind, "phone")) return bf_pii_meta_phone;
  if (!strcmp(kind, "name")) return bf_pii_meta_name;
  return bf_pii_trim;
}

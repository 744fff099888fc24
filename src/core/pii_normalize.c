/* Identifier normalisation per platform rule, then SHA-256. The rules and
 * their sources are listed in docs/destinations-ads.md; the unit tests pin
 * the platforms' published examples. Hot path: one call per identifier per
 * row, so no allocation and no locale-dependent ctype calls. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/pii_normalize.h"

#define INVALID(reason)                                                                            \
  do {                                                                                             \
    *why = (reason);                                                                               \
    return -1;                                                                                     \
  } while (0)

static bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static unsigned char to_lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c | 0x20 : c; }

static void trim(const char **s, size_t *n) {
  while (*n && is_space((unsigned char)**s)) (*s)++, (*n)--;
  while (*n && is_space((unsigned char)(*s)[*n - 1])) (*n)--;
}

/* Decodes one UTF-8 code point at s[*i]; returns -1 on malformed input
 * (overlong forms, surrogates and out-of-range values included). */
static int32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
  unsigned char c = s[*i];
  if (c < 0x80) {
    (*i)++;
    return c;
  }
  int len;
  int32_t cp, min;
  if ((c & 0xE0) == 0xC0)
    len = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    len = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0)
    len = 4, cp = c & 0x07, min = 0x10000;
  else
    return -1;
  if (*i + (size_t)len > n) return -1;
  for (int k = 1; k < len; k++) {
    unsigned char cc = s[*i + (size_t)k];
    if ((cc & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  *i += (size_t)len;
  return cp;
}

static size_t utf8_put(char *out, int32_t cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Lower case for the scripts names are most often written in: Latin-1,
 * Latin Extended-A, Greek and Cyrillic. Others are returned unchanged. */
static int32_t unicode_lower(int32_t cp) {
  if (cp < 0x80) return to_lower((unsigned char)cp);
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 0x20;
  if (cp >= 0x100 && cp <= 0x137) return cp | 1;
  if (cp >= 0x139 && cp <= 0x148) return (cp & 1) ? cp + 1 : cp;
  if (cp >= 0x14A && cp <= 0x177) return cp | 1;
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x179 && cp <= 0x17E) return (cp & 1) ? cp + 1 : cp;
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 0x20;
  if (cp == 0x386) return 0x3AC;
  if (cp >= 0x388 && cp <= 0x38A) return cp + 0x25;
  if (cp == 0x38C) return 0x3CC;
  if (cp == 0x38E || cp == 0x38F) return cp + 0x3F;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
  if ((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF)) return cp | 1;
  return cp;
}

/* Non-ASCII code points that are not letters: Latin-1 symbols and spaces,
 * general punctuation, symbols, CJK punctuation, full-width ASCII
 * punctuation, specials. Everything else above U+00BF counts as a letter
 * (or a combining mark, which belongs to its letter). */
static bool unicode_is_non_letter(int32_t cp) {
  return (cp >= 0x80 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7 || (cp >= 0x2000 && cp <= 0x2BFF) ||
         (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFE30 && cp <= 0xFE4F) ||
         (cp >= 0xFF00 && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) ||
         (cp >= 0xFF5B && cp <= 0xFF65) || (cp >= 0xFFF0 && cp <= 0xFFFF);
}

/* Letters only, lower-cased; keep_spaces collapses runs of whitespace into
 * one space instead of dropping them. Returns the length or -1. */
static int letters_only(const char *s, size_t n, char out[BF_PII_MAX], bool keep_spaces,
                        const char **why) {
  trim(&s, &n);
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, len = 0;
  bool pending_space = false;
  while (i < n) {
    int32_t cp = utf8_next(u, n, &i);
    if (cp < 0) INVALID("not valid UTF-8");
    bool letter = cp < 0x80 ? is_alpha((unsigned char)cp) : !unicode_is_non_letter(cp);
    if (!letter) {
      if (keep_spaces && cp < 0x80 && is_space((unsigned char)cp)) pending_space = true;
      if (keep_spaces && (cp == 0xA0 || cp == 0x3000)) pending_space = true;
      continue;
    }
    if (pending_space && len) {
      if (len + 1 >= BF_PII_MAX) INVALID("too long");
      out[len++] = ' ';
    }
    pending_space = false;
    if (len + 4 >= BF_PII_MAX) INVALID("too long");
    len += utf8_put(out + len, unicode_lower(cp));
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

static bool utf8_valid(const char *s, size_t n) {
  size_t i = 0;
  while (i < n)
    if (utf8_next((const unsigned char *)s, n, &i) < 0) return false;
  return true;
}

int bf_pii_meta_email(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  trim(&s, &n);
  if (!n) INVALID("is empty");
  if (n > 254) INVALID("is longer than an email address can be");
  if (!utf8_valid(s, n)) INVALID("not valid UTF-8");
  for (size_t i = 0; i < n; i++) out[i] = (char)to_lower((unsigned char)s[i]);
  out[n] = '\0';
  if (!email_shape_ok(out, n)) INVALID("not an email address");
  return (int)n;
}

int bf_pii_google_email(const char *s, size_t n, char out[BF_PII_MAX], const char **why) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_space(c)) continue;
    if (len >= 254) INVALID("is longer than an email address can be");
    out[len++] = (char)to_lower(c);
  }
  if (!len) INVALID("is empty");
  out[len] = '\0';
  if (!utf8_valid(out, len)) INVALID("not valid UTF-8");
  if (!email_shape_ok(out, len)) INVALID("not an email address");
  char *at = memchr(out, '@', len);
  const char *dom = at + 1;
  if (!strcmp(dom, "gmail.com") || !strcmp(dom, "googlemail.com")) {
    /* Google: drop the dots and any +suffix of a Gmail local part. */
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

/* The digits of a phone written with its country code, without the '+'
 * or 00 international prefix and leading zeros. */
static int phone_digits(const char *s, size_t n, char *out, const char **why) {
  trim(&s, &n);
  if (!n) INVALID("is empty");
  size_t len = 0;
  bool seen_digit = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_digit(c)) {
      if (!seen_digit && c == '0' && len == 0) continue; /* leading zeros, 00 prefix */
      seen_digit = true;
      if (len >= 15) INVALID("has more than 15 digits (E.164)");
      out[len++] = (char)c;
    } else if (c == '+') {
      if (seen_digit || len) INVALID("has a '+' inside the number");
    } else if (!(c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/' ||
                 c == '\t')) {
      INVALID("has characters a phone number cannot have");
    }
  }
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
  size_t i = 0;
  utf8_next((const unsigned char *)out, (size_t)len, &i);
  out[i] = '\0';
  return (int)i;
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
  trim(&s, &n);
  size_t len = 0, digits = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_space(c)) continue;
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
  trim(&s, &n);
  size_t len = 0;
  bool space = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_space(c)) {
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
  trim(&s, &n);
  if (!n) INVALID("is empty");
  if (n >= BF_PII_MAX) INVALID("too long");
  if (!utf8_valid(s, n)) INVALID("not valid UTF-8");
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

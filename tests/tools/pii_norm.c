/* Drives Backflow's identifier normalisers from a test: reads one request a
 * line on stdin, "FIELD HEX", where HEX is the value's bytes in hex (so a
 * value may hold any byte, newlines and U+2028 included), and answers one
 * line each on stdout:
 *
 *   ok <sha256 hex> <normalised text in hex>     the value is accepted
 *   reject <reason>                              the value is an error
 *
 * The hash is bf_pii_normalize_hash(), what the destinations send. FIELD
 * names the rule: Meta's keys as the Conversions API SDK spells them (em
 * ph fn ln fi ct st zp country ge doby dobm dobd), google_email,
 * google_phone, google_name, google_country, google_postal_code, or a
 * model's pii kind as kind:email / kind:phone / kind:name / kind:other.
 * tests/integration/test_pii_meta_sdk.py uses it. Exit status 2 on a
 * malformed request. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/pii_normalize.h"

static const struct {
  const char *name;
  bf_pii_fn fn;
} fields[] = {
    {"em", bf_pii_meta_email},
    {"ph", bf_pii_meta_phone},
    {"fn", bf_pii_meta_name},
    {"ln", bf_pii_meta_name},
    {"fi", bf_pii_meta_first_initial},
    {"ct", bf_pii_meta_city},
    {"st", bf_pii_meta_state},
    {"zp", bf_pii_meta_zip},
    {"country", bf_pii_meta_country},
    {"ge", bf_pii_meta_gender},
    {"doby", bf_pii_meta_dob_year},
    {"dobm", bf_pii_meta_dob_month},
    {"dobd", bf_pii_meta_dob_day},
    {"madid", bf_pii_meta_madid},
    {"google_email", bf_pii_google_email},
    {"google_phone", bf_pii_google_phone},
    {"google_name", bf_pii_google_name},
    {"google_country", bf_pii_google_country},
    {"google_postal_code", bf_pii_google_postal_code},
};

static bf_pii_fn field_fn(const char *name) {
  if (!strncmp(name, "kind:", 5)) return bf_pii_fn_for_kind(name + 5);
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    if (!strcmp(fields[i].name, name)) return fields[i].fn;
  return NULL;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int main(void) {
  if (sodium_init() < 0) return 1;
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  unsigned long lineno = 0;
  while ((got = getline(&line, &cap, stdin)) >= 0) {
    lineno++;
    while (got && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
    char *sp = strchr(line, ' ');
    if (sp) *sp = '\0';
    const char *hex = sp ? sp + 1 : "";
    bf_pii_fn fn = field_fn(line);
    size_t hn = strlen(hex);
    if (!fn || hn % 2) {
      fprintf(stderr, "pii_norm: line %lu: want FIELD HEX with a known field\n", lineno);
      free(line);
      return 2;
    }
    char *val = malloc(hn / 2 + 1);
    if (!val) return 1;
    for (size_t i = 0; i < hn / 2; i++) {
      int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        fprintf(stderr, "pii_norm: line %lu: bad hex\n", lineno);
        free(val);
        free(line);
        return 2;
      }
      val[i] = (char)(hi << 4 | lo);
    }
    char hash[BF_PII_SHA256_HEX], norm[BF_PII_MAX];
    const char *why = NULL;
    if (bf_pii_normalize_hash(fn, val, hn / 2, hash, &why) != 0) {
      printf("reject %s\n", why ? why : "?");
    } else {
      /* The normalised text, for a readable failure message; a value that
       * was already a hash has none. */
      int len = fn(val, hn / 2, norm, &why);
      printf("ok %s ", hash);
      for (int i = 0; i < len; i++) printf("%02x", (unsigned char)norm[i]);
      putchar('\n');
    }
    free(val);
  }
  free(line);
  return 0;
}

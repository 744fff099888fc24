/* Speed of the identifier normalisers alone (bench/meta_bench.py prints it):
 * normalise + SHA-256 + hex for a mix of emails, phones and names, as the
 * Meta destination does per row. Prints one JSON object.
 *
 *   pii_hash_bench [--n N] */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/pii_normalize.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long n = 1000000;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--n")) n = atol(argv[++i]);
  if (sodium_init() < 0) return 1;
  static const char *first[] = {"Mary", "José", "Łukasz", "Anne-Marie", "O'Brien", "Zoë"};
  char email[64], phone[32], out[BF_PII_SHA256_HEX];
  const char *why;
  unsigned long sink = 0, invalid = 0;
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    int el = snprintf(email, sizeof email, " User.%ld@Example.COM ", i);
    int pl = snprintf(phone, sizeof phone, "+1 (650) %03ld-%04ld", (i / 10000) % 1000, i % 10000);
    const char *fn = first[i % 6];
    if (bf_pii_normalize_hash(bf_pii_meta_email, email, (size_t)el, out, &why)) invalid++;
    sink += (unsigned char)out[0];
    if (bf_pii_normalize_hash(bf_pii_meta_phone, phone, (size_t)pl, out, &why)) invalid++;
    sink += (unsigned char)out[0];
    if (bf_pii_normalize_hash(bf_pii_meta_name, fn, strlen(fn), out, &why)) invalid++;
    sink += (unsigned char)out[0];
  }
  double secs = now_s() - t0;
  double hashes = 3.0 * (double)n;
  printf("{\"hashes\": %.0f, \"seconds\": %.4f, \"hashes_per_s\": %.0f, \"rows_per_s\": %.0f, "
         "\"invalid\": %lu, \"checksum\": %lu}\n",
         hashes, secs, hashes / secs, (double)n / secs, invalid, sink);
  return invalid ? 1 : 0;
}

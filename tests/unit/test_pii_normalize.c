/* Normalisation per platform rule, pinned to the platforms' published
 * examples; expected hashes were computed independently with Python's
 * hashlib (sha256(normalised.encode()).hexdigest()). */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "util/pii_normalize.h"

static void init(void) { cr_assert(sodium_init() >= 0); }

/* fn(in) must give want. */
static void norm_is(bf_pii_fn fn, const char *in, const char *want) {
  char out[BF_PII_MAX];
  const char *why = NULL;
  int len = fn(in, strlen(in), out, &why);
  cr_assert_geq(len, 0, "'%s' rejected: %s", in, why ? why : "?");
  cr_assert_eq((size_t)len, strlen(out), "length of '%s'", in);
  cr_assert_str_eq(out, want, "'%s'", in);
}

/* fn(in) must be an error with a reason. */
static void norm_rejects(bf_pii_fn fn, const char *in) {
  char out[BF_PII_MAX];
  const char *why = NULL;
  int len = fn(in, strlen(in), out, &why);
  cr_assert_eq(len, -1, "'%s' accepted as '%s'", in, len >= 0 ? out : "");
  cr_assert_not_null(why);
  if (strlen(in) >= 4) cr_assert_null(strstr(why, in), "the reason must not quote the value");
}

static void hash_is(bf_pii_fn fn, const char *in, const char *hex) {
  char out[BF_PII_SHA256_HEX];
  const char *why = NULL;
  cr_assert_eq(bf_pii_normalize_hash(fn, in, strlen(in), out, &why), 0, "'%s': %s", in, why);
  cr_assert_str_eq(out, hex, "hash of '%s'", in);
}

TestSuite(pii, .init = init);

/* --- hashing ---------------------------------------------------------- */

Test(pii, sha256_lower_hex_matches_independent_vectors) {
  char out[BF_PII_SHA256_HEX];
  bf_pii_sha256_hex("test@example.com", 16, out);
  cr_assert_str_eq(out, "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b");
  /* The X Ads API documentation's own example: sha256("adsapi"). */
  bf_pii_sha256_hex("adsapi", 6, out);
  cr_assert_str_eq(out, "49e0be2aeccfb51a8dee4c945c8a70a9ac500cf6f5cb08112575f74db9b1470d");
  bf_pii_sha256_hex("", 0, out);
  cr_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

Test(pii, already_hashed_values_pass_through_lowercased) {
  hash_is(bf_pii_meta_email, "973DFE463EC85785F5F95AF5BA3906EEDB2D931C24E69824A89EA65DBA4E813B",
          "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b");
  cr_assert(
      !bf_pii_is_sha256_hex("973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813", 63));
  cr_assert(!bf_pii_is_sha256_hex(
      "g73dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b", 64));
}

Test(pii, invalid_values_are_errors_never_hashes) {
  char out[BF_PII_SHA256_HEX] = "";
  const char *why = NULL;
  cr_assert_eq(bf_pii_normalize_hash(bf_pii_meta_email, "not an email", 12, out, &why), -1);
  cr_assert_not_null(why);
  cr_assert_eq(bf_pii_normalize_hash(bf_pii_meta_phone, "", 0, out, &why), -1);
  cr_assert_eq(bf_pii_normalize_hash(bf_pii_meta_name, "  ", 2, out, &why), -1);
}

/* --- Meta ------------------------------------------------------------- */

Test(pii, meta_email_trims_and_lowercases) {
  norm_is(bf_pii_meta_email, "  Test@Example.COM \t", "test@example.com");
  hash_is(bf_pii_meta_email, " Test@Example.com ",
          "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b");
  /* Meta keeps Gmail dots and +tags: only Google documents removing them. */
  norm_is(bf_pii_meta_email, "Jane.Doe+ads@Gmail.com", "jane.doe+ads@gmail.com");
}

Test(pii, meta_email_rejects_what_is_not_an_address) {
  norm_rejects(bf_pii_meta_email, "");
  norm_rejects(bf_pii_meta_email, "jane");
  norm_rejects(bf_pii_meta_email, "jane@");
  norm_rejects(bf_pii_meta_email, "@example.com");
  norm_rejects(bf_pii_meta_email, "jane@localhost");
  norm_rejects(bf_pii_meta_email, "jane doe@example.com");
  norm_rejects(bf_pii_meta_email, "a@b@example.com");
  norm_rejects(bf_pii_meta_email, "jane@example..com");
  norm_rejects(bf_pii_meta_email, "jane@example.com\xff");
}

Test(pii, meta_phone_is_digits_with_country_code_no_plus) {
  /* Meta's documented example: +1 (650) 555-1212 -> 16505551212. */
  norm_is(bf_pii_meta_phone, "+1 (650) 555-1212", "16505551212");
  hash_is(bf_pii_meta_phone, "+1 (650) 555-1212",
          "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176");
  /* "447123456 and not +447123456" (Meta connector notes). */
  norm_is(bf_pii_meta_phone, "+447123456", "447123456");
  /* 00 international prefix and leading zeros go. */
  norm_is(bf_pii_meta_phone, "0044 7700 900123", "447700900123");
  norm_is(bf_pii_meta_phone, "1.650.555.1212", "16505551212");
}

Test(pii, meta_phone_rejects_garbage) {
  norm_rejects(bf_pii_meta_phone, "");
  norm_rejects(bf_pii_meta_phone, "n/a");
  norm_rejects(bf_pii_meta_phone, "555-CALL-NOW");
  norm_rejects(bf_pii_meta_phone, "12345");            /* too short */
  norm_rejects(bf_pii_meta_phone, "1234567890123456"); /* > 15 digits */
}

/* Meta: "remove symbols, letters, and any leading zeros": a stray '+' is a
 * symbol like any other (test_pii_normalize_unicode.c has the rest). */
Test(pii, meta_phone_removes_symbols_anywhere) {
  norm_is(bf_pii_meta_phone, "1 650+555 1212", "16505551212");
}

Test(pii, meta_names_are_lowercase_letters_only_with_utf8) {
  norm_is(bf_pii_meta_name, "  Mary ", "mary");
  norm_is(bf_pii_meta_name, "Mary-Ann", "maryann");
  norm_is(bf_pii_meta_name, "O'Brien Jr.", "obrienjr");
  hash_is(bf_pii_meta_name, "Mary Ann",
          "16b3f07f0ec2f9dd127b71dc2e6c791b7d93116a1c3bc99d057eaa7a8a077e73");
  /* Special characters stay, in UTF-8, lower-cased. */
  norm_is(bf_pii_meta_name, "José", "josé");
  hash_is(bf_pii_meta_name, "JOSÉ",
          "d994e1d001886fe5b45b1267bd1fa2b752ac50742579bd3dad7b2a2aa0ed6866");
  hash_is(bf_pii_meta_name, "Élodie",
          "36bac2631d17463d569eaf1b869e7bf8d40e4636fd8b2b778ee93f504baf6691");
  hash_is(bf_pii_meta_name, "MÜLLER",
          "2dbd218072117713f2d5996a726a9b216ed791ffd0783b6ba4ab6d61b8333192");
  hash_is(bf_pii_meta_name, "Анна",
          "80e29e9a7810e7454c3d14c0f97cd121ae314384d010d8a48c02ab27f360afb9");
  norm_is(bf_pii_meta_name, "Łukasz", "łukasz");
  norm_is(bf_pii_meta_name, "Zoë\xc2\xa0", "zoë"); /* NBSP is not a letter */
  norm_rejects(bf_pii_meta_name, "--");
  norm_rejects(bf_pii_meta_name, "123");
  norm_rejects(bf_pii_meta_name, "Jos\xc3");  /* truncated UTF-8 */
  norm_rejects(bf_pii_meta_name, "\xc0\xaf"); /* overlong */
  norm_is(bf_pii_meta_first_initial, " élodie", "é");
  norm_is(bf_pii_meta_first_initial, "Mary", "m");
}

Test(pii, meta_city_state_zip_country) {
  norm_is(bf_pii_meta_city, "San Francisco", "sanfrancisco");
  hash_is(bf_pii_meta_city, "San Francisco",
          "1a6bd4d9d79dc0a79b53795c70d3349fa9e38968a3fbefbfe8783efb1d2b6aac");
  norm_is(bf_pii_meta_city, "St. Louis", "stlouis");
  norm_is(bf_pii_meta_state, "CA", "ca");
  norm_is(bf_pii_meta_state, "California", "ca");
  norm_is(bf_pii_meta_state, "new york", "ny");
  norm_is(bf_pii_meta_state, "District of Columbia", "dc");
  norm_is(bf_pii_meta_state, "Île-de-France", "îledefrance");
  hash_is(bf_pii_meta_state, "California",
          "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126");
  norm_is(bf_pii_meta_zip, "94035", "94035");
  norm_is(bf_pii_meta_zip, "94035-1234", "94035");
  norm_is(bf_pii_meta_zip, "940351234", "94035");
  norm_is(bf_pii_meta_zip, "W1J 7BU", "w1j7bu");
  norm_is(bf_pii_meta_zip, "00-950", "00-950");
  hash_is(bf_pii_meta_zip, " 94035-0001 ",
          "1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e");
  norm_rejects(bf_pii_meta_zip, "9");
  norm_rejects(bf_pii_meta_zip, "94035;DROP");
  norm_is(bf_pii_meta_country, "US", "us");
  norm_is(bf_pii_meta_country, "usa", "us");
  norm_is(bf_pii_meta_country, "United Kingdom", "gb");
  norm_is(bf_pii_meta_country, "DEU", "de");
  hash_is(bf_pii_meta_country, " US ",
          "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621");
  norm_rejects(bf_pii_meta_country, "XX");
  norm_rejects(bf_pii_meta_country, "Atlantis");
}

Test(pii, meta_dob_gender_and_ids) {
  norm_is(bf_pii_meta_dob_year, "1990", "1990");
  norm_is(bf_pii_meta_dob_year, "1990-07-14", "1990");
  norm_is(bf_pii_meta_dob_month, "7", "07");
  norm_is(bf_pii_meta_dob_month, "1990-07-14T00:00:00Z", "07");
  norm_is(bf_pii_meta_dob_day, "19900714", "14");
  norm_is(bf_pii_meta_dob_day, "1990/07/04", "04");
  hash_is(bf_pii_meta_dob_month, "1990-07-14",
          "19b100ab7725c612f3d80ff203ca53cea5cadaafae3bf0f88f0fb4089fe08815");
  norm_rejects(bf_pii_meta_dob_year, "1899");
  norm_rejects(bf_pii_meta_dob_year, "3000");
  norm_rejects(bf_pii_meta_dob_year, "90");
  norm_rejects(bf_pii_meta_dob_month, "13");
  norm_rejects(bf_pii_meta_dob_month, "1990-13-01");
  norm_rejects(bf_pii_meta_dob_day, "32");
  norm_rejects(bf_pii_meta_dob_day, "July 4");
  norm_is(bf_pii_meta_gender, "M", "m");
  norm_is(bf_pii_meta_gender, "Female", "f");
  hash_is(bf_pii_meta_gender, "F",
          "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111");
  norm_rejects(bf_pii_meta_gender, "x");
  norm_is(bf_pii_external_id, "  CRM-123 ", "CRM-123");
  norm_rejects(bf_pii_external_id, "   ");
  norm_is(bf_pii_meta_madid, "6D92078A-8246-4BA4-AE5B-76104861E7DC",
          "6d92078a-8246-4ba4-ae5b-76104861e7dc");
}

/* --- Google ----------------------------------------------------------- */

Test(pii, google_email_follows_the_data_manager_examples) {
  /* Both examples from Google's "Format user data" guide. */
  norm_is(bf_pii_google_email, "cloudy.sanfrancisco+shopping@gmail.com",
          "cloudysanfrancisco@gmail.com");
  norm_is(bf_pii_google_email, "user.name+NYC@Example.com", "user.name+nyc@example.com");
  hash_is(bf_pii_google_email, " Cloudy.SanFrancisco+shopping@GMAIL.com ",
          "223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4");
  hash_is(bf_pii_google_email, "user.name+NYC@Example.com",
          "f109a2a632fbcea5fc82049f50beed3d8621bf9034399f437fb622222acccdac");
  norm_is(bf_pii_google_email, "j.a.n.e@googlemail.com", "jane@googlemail.com");
  norm_is(bf_pii_google_email, " test @ example.com ",
          "test@example.com"); /* intermediate whitespace */
  norm_rejects(bf_pii_google_email, "+tag@gmail.com");
  norm_rejects(bf_pii_google_email, "nobody");
}

Test(pii, google_phone_is_e164_with_plus) {
  /* Google's example: (800)555-0100 in the US -> +18005550100. */
  norm_is(bf_pii_google_phone, "+1 (800) 555-0100", "+18005550100");
  norm_is(bf_pii_google_phone, "1 800 555 0100", "+18005550100");
  hash_is(bf_pii_google_phone, "+1-800-555-0100",
          "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30");
  norm_is(bf_pii_google_phone, "0044 7700 900123", "+447700900123");
  norm_rejects(bf_pii_google_phone, "call me");
}

Test(pii, google_names_country_and_postal_code) {
  norm_is(bf_pii_google_name, "  Mary  Ann ", "mary ann");
  hash_is(bf_pii_google_name, "Mary Ann",
          "343b97011010c3549fe7fcd6c226ed9431ea37b0b77ed78f6300a0098925faf1");
  norm_is(bf_pii_google_name, "O'Brien", "obrien");
  norm_is(bf_pii_google_country, "us", "US");
  norm_is(bf_pii_google_country, "United States", "US");
  norm_rejects(bf_pii_google_country, "ZZ");
  norm_is(bf_pii_google_postal_code, " 94045 ", "94045");
  norm_is(bf_pii_google_postal_code, "SW1A  1AA", "SW1A 1AA");
  norm_rejects(bf_pii_google_postal_code, "<script>");
}

Test(pii, generic_kinds_pick_a_rule) {
  cr_assert_eq(bf_pii_fn_for_kind("email"), bf_pii_meta_email);
  cr_assert_eq(bf_pii_fn_for_kind("phone"), bf_pii_meta_phone);
  cr_assert_eq(bf_pii_fn_for_kind("name"), bf_pii_meta_name);
  cr_assert_eq(bf_pii_fn_for_kind("other"), bf_pii_trim);
  cr_assert_eq(bf_pii_fn_for_kind(NULL), bf_pii_trim);
}

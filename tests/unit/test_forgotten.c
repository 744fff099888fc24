/* The suppression list of erased people (core/forgotten.h): the file, its
 * crash safety, and the runner's filter. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/forgotten.h"
#include "util/fsutil.h"

static char dir[64];
static char path[128];
static struct bf_prf prf;

static void setup(void) {
  strcpy(dir, "/tmp/bf-forgotten-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/%s", dir, BF_FORGOTTEN_FILE);
  struct bf_error err = {0};
  const char *secret = "unit-test-secret-0123456789";
  cr_assert_eq(bf_prf_init(&prf, (const unsigned char *)secret, strlen(secret), &err), 0, "%s",
               err.msg);
}
static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(forgotten, .init = setup, .fini = teardown);

static struct bf_forgotten_entry key_entry(const char *model, const char *pk, uint64_t request) {
  struct bf_forgotten_entry e = {.kind = BF_FORGOTTEN_KEY, .request = request};
  e.scope = bf_forgotten_model_scope(model);
  bf_prf_key(&prf, pk, strlen(pk), e.hash);
  return e;
}

static struct bf_forgotten_entry id_entry(int kind, const char *norm, uint64_t request) {
  struct bf_forgotten_entry e = {.kind = (uint8_t)kind, .request = request};
  bf_forgotten_identifier_hash(&prf, kind, norm, strlen(norm), e.hash);
  return e;
}

static void append(const struct bf_forgotten_entry *e, size_t n) {
  struct bf_error err = {0};
  cr_assert_eq(bf_forgotten_append(dir, &prf, e, n, &err), 0, "%s", err.msg);
}

static size_t count(void) {
  struct bf_forgotten_entry *e = NULL;
  size_t n = 0;
  struct bf_error err = {0};
  cr_assert_eq(bf_forgotten_read(dir, &prf, &e, &n, &err), 0, "%s", err.msg);
  free(e);
  return n;
}

static off_t file_size(void) {
  struct stat sb;
  cr_assert_eq(stat(path, &sb), 0);
  return sb.st_size;
}

Test(forgotten, missing_file_is_an_empty_list_and_no_filter) {
  cr_assert_eq(count(), 0);
  uint64_t max = 99;
  struct bf_error err = {0};
  cr_assert_eq(bf_forgotten_max_request(dir, &max, &err), 0);
  cr_assert_eq(max, 0);
  struct bf_model_config m = {.name = "users"};
  char *cols[] = {"id"};
  struct bf_forgotten_filter *f = (void *)1;
  cr_assert_eq(bf_forgotten_filter_open(dir, &prf, &m, cols, 1, &f, &err), 0);
  cr_assert_null(f, "no list: no filter, one pointer test per row");
  cr_assert_eq(access(path, F_OK), -1, "reading creates nothing");
}

Test(forgotten, append_and_read_back_keyed_hashes_only_mode_0600) {
  struct bf_forgotten_entry e[3] = {key_entry("users", "7", 1),
                                    id_entry(BF_FORGOTTEN_EMAIL, "alice@example.com", 1),
                                    id_entry(BF_FORGOTTEN_PHONE, "16505551212", 2)};
  append(e, 2);
  append(e + 2, 1);
  struct bf_forgotten_entry *got = NULL;
  size_t n = 0;
  struct bf_error err = {0};
  cr_assert_eq(bf_forgotten_read(dir, &prf, &got, &n, &err), 0, "%s", err.msg);
  cr_assert_eq(n, 3);
  for (size_t i = 0; i < 3; i++) {
    cr_assert_eq(got[i].kind, e[i].kind);
    cr_assert_eq(got[i].scope, e[i].scope);
    cr_assert_eq(got[i].request, e[i].request);
    cr_assert_eq(memcmp(got[i].hash, e[i].hash, 16), 0);
  }
  free(got);
  uint64_t max = 0;
  cr_assert_eq(bf_forgotten_max_request(dir, &max, &err), 0);
  cr_assert_eq(max, 2);
  struct stat sb;
  cr_assert_eq(stat(path, &sb), 0);
  cr_assert_eq(sb.st_mode & 0777, 0600);
  cr_assert_eq(sb.st_size, 32 + 3 * 48);
  unsigned char *data;
  size_t len;
  cr_assert_eq(bf_read_file(path, &data, &len), 0);
  cr_assert_null(memmem(data, len, "alice", 5), "no plaintext in the list");
  cr_assert_null(memmem(data, len, "5551212", 7));
  free(data);
}

Test(forgotten, torn_tail_is_ignored_then_cut_by_the_next_append) {
  struct bf_forgotten_entry e[3] = {key_entry("users", "1", 1), key_entry("users", "2", 2),
                                    key_entry("users", "3", 3)};
  append(e, 2);
  /* A crash in the middle of writing a record: part of it reached the disk. */
  int fd = open(path, O_WRONLY | O_APPEND);
  cr_assert_geq(fd, 0);
  unsigned char half[30];
  memset(half, 0xab, sizeof half);
  cr_assert_eq(write(fd, half, sizeof half), (ssize_t)sizeof half);
  close(fd);
  cr_assert_eq(count(), 2);
  append(e + 2, 1);
  cr_assert_eq(count(), 3);
  cr_assert_eq(file_size(), 32 + 3 * 48, "the torn bytes were cut off");
}

Test(forgotten, a_damaged_record_is_an_error_never_a_silent_drop) {
  struct bf_forgotten_entry e[3] = {key_entry("users", "1", 1), key_entry("users", "2", 2),
                                    key_entry("users", "3", 3)};
  append(e, 3);
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0);
  unsigned char b = 0xff;
  cr_assert_eq(pwrite(fd, &b, 1, 32 + 48 + 20), 1); /* inside the second record's hash */
  close(fd);
  struct bf_forgotten_entry *got = NULL;
  size_t n = 0;
  struct bf_error err = {0};
  /* Dropping it would send an erased person again. */
  cr_assert_eq(bf_forgotten_read(dir, &prf, &got, &n, &err), BF_E_STATE);
  cr_assert(strstr(err.msg, "entry 2 of 3 fails its check"), "%s", err.msg);
  cr_assert_null(got);
  cr_assert_eq(bf_forgotten_append(dir, &prf, e, 1, &err), BF_E_STATE);
}

Test(forgotten, truncation_below_the_committed_count_is_damage) {
  struct bf_forgotten_entry e[3] = {key_entry("users", "1", 1), key_entry("users", "2", 2),
                                    key_entry("users", "3", 3)};
  append(e, 3);
  cr_assert_eq(truncate(path, 32 + 2 * 48), 0); /* a whole record gone */
  struct bf_forgotten_entry *got = NULL;
  size_t n = 0;
  struct bf_error err = {0};
  cr_assert_eq(bf_forgotten_read(dir, &prf, &got, &n, &err), BF_E_STATE);
  cr_assert(strstr(err.msg, "3 entries written, 2 present"), "%s", err.msg);
}

Test(forgotten, a_list_of_another_secret_is_refused) {
  struct bf_forgotten_entry e = key_entry("users", "1", 1);
  append(&e, 1);
  struct bf_prf other;
  struct bf_error err = {0};
  cr_assert_eq(bf_prf_init(&other, (const unsigned char *)"another secret, 16+", 19, &err), 0);
  struct bf_forgotten_entry *got = NULL;
  size_t n = 0;
  cr_assert_eq(bf_forgotten_read(dir, &other, &got, &n, &err), BF_E_SECRET);
  cr_assert(strstr(err.msg, "written under another secret"), "%s", err.msg);
  cr_assert_eq(bf_forgotten_append(dir, &other, &e, 1, &err), BF_E_SECRET);
  cr_assert_eq(bf_forgotten_read(dir, NULL, &got, &n, &err), 0, "no key check without a prf");
  cr_assert_eq(n, 1);
  free(got);
}

Test(forgotten, a_list_of_the_first_format_is_read_and_rewritten_on_append) {
  /* "BFFORGT1" then bare records, as the previous version wrote it. */
  struct bf_forgotten_entry e[2] = {key_entry("users", "1", 1), key_entry("users", "2", 2)};
  append(e, 2);
  unsigned char *data;
  size_t len;
  cr_assert_eq(bf_read_file(path, &data, &len), 0);
  FILE *f = fopen(path, "wb");
  fwrite("BFFORGT1", 1, 8, f);
  fwrite(data + 32, 1, len - 32, f);
  fclose(f);
  free(data);
  cr_assert_eq(count(), 2);
  struct bf_forgotten_entry third = key_entry("users", "3", 3);
  append(&third, 1);
  cr_assert_eq(count(), 3);
  cr_assert_eq(file_size(), 32 + 3 * 48);
  cr_assert_eq(bf_read_file(path, &data, &len), 0);
  cr_assert_eq(memcmp(data, "BFFORGT2", 8), 0);
  free(data);
}

Test(forgotten, not_a_list_is_an_error_for_readers_and_the_filter) {
  FILE *f = fopen(path, "w");
  fputs("something else entirely, long enough", f);
  fclose(f);
  struct bf_forgotten_entry *got = NULL;
  size_t n = 0;
  struct bf_error err = {0};
  cr_assert_neq(bf_forgotten_read(dir, &prf, &got, &n, &err), 0);
  cr_assert_eq(err.code, BF_E_STATE);
  struct bf_model_config m = {.name = "users"};
  char *cols[] = {"id"};
  struct bf_forgotten_filter *filter = NULL;
  memset(&err, 0, sizeof err);
  cr_assert_neq(bf_forgotten_filter_open(dir, &prf, &m, cols, 1, &filter, &err), 0,
                "a run must not go on when it cannot tell who was erased");
  struct bf_forgotten_entry e = key_entry("users", "1", 1);
  memset(&err, 0, sizeof err);
  cr_assert_neq(bf_forgotten_append(dir, &prf, &e, 1, &err), 0);
}

static struct bf_value text(const char *s) {
  return (struct bf_value){.type = BF_TEXT, .len = (uint32_t)strlen(s), .u.s = s};
}

Test(forgotten, filter_matches_keys_of_its_model_and_normalised_identifiers) {
  struct bf_forgotten_entry e[5] = {key_entry("users", "7", 1), key_entry("orders", "8", 2),
                                    id_entry(BF_FORGOTTEN_EMAIL, "alice@example.com", 3),
                                    id_entry(BF_FORGOTTEN_PHONE, "16505551212", 4),
                                    key_entry("users", "7", 5)};
  append(e, 5);
  struct bf_pair pii[] = {{"email", "email", {0}}, {"phone", "phone", {0}}, {"name", "name", {0}}};
  struct bf_model_config users = {.name = "users", .primary_key = "id", .pii = {3, pii}};
  char *cols[] = {"id", "email", "phone", "name"};
  struct bf_forgotten_filter *f = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_forgotten_filter_open(dir, &prf, &users, cols, 4, &f, &err), 0, "%s", err.msg);
  cr_assert_not_null(f);
  unsigned char k7[16], k8[16], k9[16];
  bf_prf_key(&prf, "7", 1, k7);
  bf_prf_key(&prf, "8", 1, k8);
  bf_prf_key(&prf, "9", 1, k9);
  struct bf_value row[4] = {
      {.type = BF_INT, .u.i = 9}, text("bob@example.com"), {0}, text("Alice")};
  cr_assert_null(bf_forgotten_filter_match(f, row, k9));
  /* the earliest request names a key forgotten twice */
  cr_assert_str_eq(bf_forgotten_filter_match(f, row, k7), "forgotten (erasure request 1)");
  cr_assert_null(bf_forgotten_filter_match(f, row, k8), "key 8 was erased from orders, not users");
  row[1] = text("  Alice@Example.COM ");
  cr_assert_str_eq(bf_forgotten_filter_match(f, row, k9), "forgotten (erasure request 3)");
  row[1] = text("not an email");
  cr_assert_null(bf_forgotten_filter_match(f, row, k9));
  row[2] = text("+1 (650) 555-1212");
  cr_assert_str_eq(bf_forgotten_filter_match(f, row, k9), "forgotten (erasure request 4)");
  row[2] = (struct bf_value){.type = BF_INT, .u.i = 16505551212LL};
  cr_assert_str_eq(bf_forgotten_filter_match(f, row, k9), "forgotten (erasure request 4)");
  row[2] = text("+1 (650) 555-1213");
  cr_assert_null(bf_forgotten_filter_match(f, row, k9));
  bf_forgotten_filter_free(f);

  /* A model with nothing in the list that could match it gets no filter. */
  struct bf_model_config other = {.name = "events", .primary_key = "id"};
  cr_assert_eq(bf_forgotten_filter_open(dir, &prf, &other, cols, 4, &f, &err), 0, "%s", err.msg);
  cr_assert_null(f);
}

Test(forgotten, identifier_hashes_are_keyed_and_separated_by_kind) {
  unsigned char a[16], b[16], c[16];
  bf_forgotten_identifier_hash(&prf, BF_FORGOTTEN_EMAIL, "16505551212", 11, a);
  bf_forgotten_identifier_hash(&prf, BF_FORGOTTEN_PHONE, "16505551212", 11, b);
  cr_assert_neq(memcmp(a, b, 16), 0);
  struct bf_prf other;
  struct bf_error err = {0};
  const char *secret = "another-secret-0123456789";
  cr_assert_eq(bf_prf_init(&other, (const unsigned char *)secret, strlen(secret), &err), 0);
  bf_forgotten_identifier_hash(&other, BF_FORGOTTEN_PHONE, "16505551212", 11, c);
  cr_assert_neq(memcmp(b, c, 16), 0);
  cr_assert_neq(bf_forgotten_model_scope("users"), bf_forgotten_model_scope("orders"));
}

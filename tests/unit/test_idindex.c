#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/idindex.h"

static char dir[64], path[96];
static struct bf_prf prf;

static void setup(void) {
  struct bf_error err = {0};
  cr_assert_eq(bf_prf_init(&prf, (const unsigned char *)"0123456789abcdef", 16, &err), 0);
  strcpy(dir, "/tmp/bf-idindex-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/%s", dir, BF_IDINDEX_FILE);
}
static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

static void fill(unsigned i, unsigned char out[16], unsigned char salt) {
  for (int b = 0; b < 16; b++) out[b] = (unsigned char)((i * 2654435761u) >> (b % 4 * 8)) ^ salt;
  memcpy(out, &i, 4);
}

static struct bf_idindex *open_ix(uint64_t fp, bool *complete) {
  struct bf_idindex *ix = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_idindex_open(dir, &prf, true, fp, complete, &ix, &err), 0, "%s", err.msg);
  return ix;
}

static size_t lookup(unsigned ident_no, unsigned char first_key[16], bool *indexed) {
  unsigned char ident[16], (*keys)[16] = NULL;
  size_t n = 0;
  struct bf_error err = {0};
  fill(ident_no, ident, 0x11);
  cr_assert_eq(bf_idindex_lookup(dir, &prf, (const unsigned char(*)[16]) & ident, 1, &keys, &n,
                                 indexed, &err),
               0, "%s", err.msg);
  if (n && first_key) memcpy(first_key, keys[0], 16);
  free(keys);
  return n;
}

static long long records(void) {
  long long n;
  struct bf_error err = {0};
  cr_assert_eq(bf_idindex_check(dir, &prf, &n, NULL, &err), 0, "%s", err.msg);
  return n;
}

TestSuite(idindex, .init = setup, .fini = teardown);

Test(idindex, pairs_survive_reopen_and_are_not_added_twice) {
  bool complete;
  struct bf_idindex *ix = open_ix(42, &complete);
  cr_assert_not(complete);
  unsigned char ident[16], key[16];
  for (unsigned i = 0; i < 1000; i++) {
    fill(i, ident, 0x11);
    fill(i, key, 0x22);
    bf_idindex_add(ix, ident, key);
    bf_idindex_add(ix, ident, key); /* the same record sent twice in a run */
  }
  struct bf_error err = {0};
  cr_assert_eq(bf_idindex_commit(ix, true, &err), 0, "%s", err.msg);
  bf_idindex_close(ix);
  cr_assert_eq(records(), 1000);
  ix = open_ix(42, &complete);
  cr_assert(complete);
  for (unsigned i = 0; i < 1000; i++) { /* sent again by a later run */
    fill(i, ident, 0x11);
    fill(i, key, 0x22);
    bf_idindex_add(ix, ident, key);
  }
  fill(7, ident, 0x11);
  fill(5000, key, 0x22); /* a second record with person 7's email */
  bf_idindex_add(ix, ident, key);
  cr_assert_eq(bf_idindex_queued(ix), 1);
  cr_assert_eq(bf_idindex_commit(ix, false, &err), 0, "%s", err.msg);
  bf_idindex_close(ix);
  cr_assert_eq(records(), 1001);
  bool indexed;
  unsigned char got[16], want[16];
  cr_assert_eq(lookup(7, NULL, &indexed), 2);
  cr_assert(indexed, "complete stays set by later commits");
  cr_assert_eq(lookup(8, got, &indexed), 1);
  fill(8, want, 0x22);
  cr_assert_eq(memcmp(got, want, 16), 0);
  cr_assert_eq(lookup(99999, NULL, &indexed), 0);
}

Test(idindex, other_columns_start_a_new_incomplete_index) {
  bool complete;
  struct bf_idindex *ix = open_ix(42, &complete);
  unsigned char ident[16], key[16];
  fill(1, ident, 0x11);
  fill(1, key, 0x22);
  bf_idindex_add(ix, ident, key);
  struct bf_error err = {0};
  cr_assert_eq(bf_idindex_commit(ix, true, &err), 0);
  bf_idindex_close(ix);
  ix = open_ix(44, &complete);
  cr_assert_not(complete);
  bf_idindex_close(ix);
  cr_assert_eq(records(), 0);
  char *names[] = {"email", "phone"};
  int kinds[] = {2, 3}, swapped[] = {3, 2};
  cr_assert_neq(bf_idindex_columns_fp(names, kinds, 2), bf_idindex_columns_fp(names, swapped, 2));
}

Test(idindex, a_torn_tail_is_cut_and_damage_is_refused) {
  bool complete;
  struct bf_idindex *ix = open_ix(42, &complete);
  unsigned char ident[16], key[16];
  for (unsigned i = 0; i < 10; i++) {
    fill(i, ident, 0x11);
    fill(i, key, 0x22);
    bf_idindex_add(ix, ident, key);
  }
  struct bf_error err = {0};
  cr_assert_eq(bf_idindex_commit(ix, false, &err), 0);
  bf_idindex_close(ix);
  /* a crash in the middle of the next append: half a record */
  int fd = open(path, O_WRONLY | O_APPEND);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, "0123456789012345678901", 22), 22);
  close(fd);
  cr_assert_eq(records(), 10);
  /* Opening reads the header only; the first pair added reads the rest and
   * cuts the torn tail. */
  ix = open_ix(42, &complete);
  unsigned char ident2[16], key2[16];
  fill(99, ident2, 0x11);
  fill(99, key2, 0x22);
  bf_idindex_add(ix, ident2, key2);
  cr_assert_eq(bf_idindex_commit(ix, false, &err), 0, "%s", err.msg);
  bf_idindex_close(ix);
  struct stat sb;
  cr_assert_eq(stat(path, &sb), 0);
  cr_assert_eq(sb.st_size, 32 + 11 * BF_IDINDEX_RECORD);
  /* one bit of a committed record flips */
  fd = open(path, O_RDWR);
  unsigned char b;
  cr_assert_eq(pread(fd, &b, 1, 32 + 3 * BF_IDINDEX_RECORD + 20), 1);
  b ^= 4;
  cr_assert_eq(pwrite(fd, &b, 1, 32 + 3 * BF_IDINDEX_RECORD + 20), 1);
  close(fd);
  long long n;
  cr_assert_eq(bf_idindex_check(dir, &prf, &n, NULL, &err), BF_E_STATE);
  cr_assert(strstr(err.msg, "damaged"), "%s", err.msg);
  /* a writer refuses to add to it: the pair is not queued and the commit fails */
  struct bf_idindex *again = open_ix(42, &complete);
  fill(100, ident2, 0x11);
  bf_idindex_add(again, ident2, key2);
  memset(&err, 0, sizeof err);
  cr_assert_eq(bf_idindex_commit(again, false, &err), BF_E_STATE);
  cr_assert(strstr(err.msg, "damaged"), "%s", err.msg);
  bf_idindex_close(again);
  cr_assert_eq(stat(path, &sb), 0);
  cr_assert_eq(sb.st_size, 32 + 11 * BF_IDINDEX_RECORD, "nothing was appended or cut");
}

Test(idindex, another_secret_is_refused) {
  bool complete;
  bf_idindex_close(open_ix(42, &complete));
  struct bf_prf other;
  struct bf_error err = {0};
  cr_assert_eq(bf_prf_init(&other, (const unsigned char *)"fedcba9876543210", 16, &err), 0);
  struct bf_idindex *ix = NULL;
  cr_assert_eq(bf_idindex_open(dir, &other, true, 42, &complete, &ix, &err), BF_E_SECRET);
  cr_assert_null(ix);
}

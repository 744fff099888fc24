#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/state.h"

static char dir[64];
static struct bf_prf prf;

static void setup(void) {
  struct bf_error err = {0};
  cr_assert_eq(bf_prf_init(&prf, (const unsigned char *)"0123456789abcdef", 16, &err), 0);
  strcpy(dir, "/tmp/bf-state-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}
static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

static void key_of(unsigned i, unsigned char key[16]) {
  memset(key, 0, 16);
  /* spread keys over the table like real PRF output would */
  for (int b = 0; b < 16; b++)
    key[b] = (unsigned char)((i * 2654435761u) >> ((b % 4) * 8)) ^ (unsigned char)b;
  memcpy(key + 12, &i, 4);
}

static struct bf_state *open_state(bool writable) {
  struct bf_state *st = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_state_open(dir, writable, &prf, &st, &err), 0, "%s", err.msg);
  return st;
}

static void read_file(const char *name, unsigned char **data, size_t *len);
static void fold_keys(unsigned from, unsigned to);

TestSuite(state, .init = setup, .fini = teardown);

Test(state, acked_entries_survive_fold_and_reload) {
  struct bf_state *st = open_state(true);
  struct bf_error err = {0};
  unsigned char key[16];
  for (unsigned i = 0; i < 5000; i++) {
    key_of(i, key);
    bf_state_mark_pending(st, key);
    bf_state_mark_acked(st, key, 1000 + i);
  }
  cr_assert_eq(bf_state_fold(st, &err), 0, "%s", err.msg);
  bf_state_free(st);
  st = open_state(false);
  cr_assert_eq(bf_state_count(st), 5000);
  for (unsigned i = 0; i < 5000; i++) {
    key_of(i, key);
    struct bf_state_entry *e = bf_state_find(st, key);
    cr_assert_not_null(e);
    cr_assert_eq(e->fp, 1000 + i);
    cr_assert_eq(e->flags & BF_ST_PERSISTED, BF_ST_PRESENT);
  }
  key_of(99999, key);
  cr_assert_null(bf_state_find(st, key));
  bf_state_free(st);
}

Test(state, journal_is_replayed_without_a_fold) {
  struct bf_state *st = open_state(true);
  struct bf_error err = {0};
  unsigned char a[16], b[16], c[16];
  key_of(1, a);
  key_of(2, b);
  key_of(3, c);
  bf_state_mark_acked(st, a, 11);
  bf_state_mark_pending(st, b); /* sent, never acknowledged */
  bf_state_mark_acked(st, c, 33);
  bf_state_mark_deleted(st, c);
  cr_assert_eq(bf_state_flush(st, true, &err), 0);
  bf_state_free(st); /* as if the process died here: no fold */
  st = open_state(true);
  struct bf_state_entry *e = bf_state_find(st, a);
  cr_assert(e && (e->flags & BF_ST_PRESENT) && e->fp == 11);
  e = bf_state_find(st, b);
  cr_assert(e && (e->flags & BF_ST_PENDING) && !(e->flags & BF_ST_PRESENT));
  e = bf_state_find(st, c);
  cr_assert(!e || !(e->flags & BF_ST_PERSISTED));
  cr_assert_eq(bf_state_count(st), 2);
  bf_state_free(st);
}

Test(state, torn_journal_tail_is_ignored_and_repaired) {
  struct bf_state *st = open_state(true);
  struct bf_error err = {0};
  unsigned char a[16], b[16];
  key_of(1, a);
  key_of(2, b);
  bf_state_mark_acked(st, a, 7);
  cr_assert_eq(bf_state_flush(st, true, &err), 0);
  bf_state_mark_acked(st, b, 8);
  cr_assert_eq(bf_state_flush(st, false, &err), 0); /* written, not synced: not committed */
  bf_state_free(st);
  /* Tear the last record in half, as a crash mid-write would. */
  char path[128];
  snprintf(path, sizeof path, "%s/journal.bin", dir);
  struct stat sb;
  cr_assert_eq(stat(path, &sb), 0);
  cr_assert_eq(truncate(path, sb.st_size - 10), 0);
  st = open_state(true);
  cr_assert_eq(bf_state_count(st), 1);
  cr_assert_not_null(bf_state_find(st, a));
  bf_state_mark_acked(st, b, 9); /* appends after the repaired tail */
  cr_assert_eq(bf_state_flush(st, true, &err), 0);
  bf_state_free(st);
  st = open_state(false);
  struct bf_state_entry *e = bf_state_find(st, b);
  cr_assert(e && e->fp == 9);
  bf_state_free(st);
}

static void flip_byte(const char *name, off_t at) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0);
  unsigned char b;
  cr_assert_eq(pread(fd, &b, 1, at), 1);
  b ^= 0x01;
  cr_assert_eq(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

static int open_error(bool writable, const struct bf_prf *with, struct bf_error *err) {
  struct bf_state *st = NULL;
  int rc = bf_state_open(dir, writable, with, &st, err);
  bf_state_free(st);
  return rc;
}

Test(state, damage_of_committed_records_is_an_error_not_a_torn_tail) {
  struct bf_state *st = open_state(true);
  struct bf_error err = {0};
  unsigned char key[16];
  for (unsigned i = 0; i < 10; i++) {
    key_of(i, key);
    bf_state_mark_acked(st, key, i);
  }
  cr_assert_eq(bf_state_flush(st, true, &err), 0);
  bf_state_free(st);
  flip_byte("journal.bin", 32 + 4 * 32 + 3); /* inside the fifth record */
  cr_assert_eq(open_error(true, &prf, &err), BF_E_STATE);
  cr_assert(strstr(err.msg, "record 5 of 10 fails its check"), "%s", err.msg);
  flip_byte("journal.bin", 32 + 4 * 32 + 3);
  char path[128];
  snprintf(path, sizeof path, "%s/journal.bin", dir);
  cr_assert_eq(truncate(path, 32 + 8 * 32), 0);
  cr_assert_eq(open_error(false, &prf, &err), BF_E_STATE);
  cr_assert(strstr(err.msg, "10 records written, 8 present"), "%s", err.msg);
}

Test(state, a_flipped_byte_in_the_base_fails_its_checksum) {
  fold_keys(0, 100);
  flip_byte("state.bin", 64 + 50 * 32 + 17); /* a fingerprint */
  struct bf_error err = {0};
  cr_assert_eq(open_error(false, &prf, &err), BF_E_STATE);
  cr_assert(strstr(err.msg, "checksum mismatch"), "%s", err.msg);
  cr_assert(strstr(err.msg, "backflow doctor"), "%s", err.msg);
}

Test(state, state_of_another_secret_is_refused) {
  fold_keys(0, 10);
  struct bf_prf other;
  struct bf_error err = {0};
  cr_assert_eq(bf_prf_init(&other, (const unsigned char *)"another secret, 16+", 19, &err), 0);
  cr_assert_eq(open_error(false, &other, &err), BF_E_SECRET);
  cr_assert(strstr(err.msg, "state.bin was written under another secret"), "%s", err.msg);
  cr_assert_eq(open_error(false, NULL, &err), 0, "no key check without a prf");
}

Test(state, first_format_files_are_read_and_the_next_fold_upgrades_them) {
  /* Version 1: 32-byte headers, no key check, no checksum. */
  unsigned char header[32] = "BFSTATE1";
  uint64_t gen = 3, count = 2;
  memcpy(header + 8, &gen, 8);
  memcpy(header + 16, &count, 8);
  unsigned char recs[64] = {0};
  key_of(1, recs);
  key_of(2, recs + 32);
  uint64_t fp = 77;
  uint32_t flags = BF_ST_PRESENT;
  for (int i = 0; i < 2; i++) {
    memcpy(recs + 32 * i + 16, &fp, 8);
    memcpy(recs + 32 * i + 24, &flags, 4);
  }
  char path[128];
  snprintf(path, sizeof path, "%s/state.bin", dir);
  FILE *f = fopen(path, "wb");
  fwrite(header, 1, 32, f);
  fwrite(recs, 1, 64, f);
  fclose(f);
  struct bf_state *st = open_state(true);
  cr_assert_eq(bf_state_count(st), 2);
  struct bf_error err = {0};
  cr_assert_eq(bf_state_fold(st, &err), 0, "%s", err.msg);
  bf_state_free(st);
  unsigned char *data;
  size_t len;
  read_file("state.bin", &data, &len);
  cr_assert_eq(len, 64 + 2 * 32);
  cr_assert_eq(memcmp(data, "BFSTATE2", 8), 0);
  free(data);
  st = open_state(false);
  unsigned char key[16];
  key_of(2, key);
  cr_assert(bf_state_find(st, key) && bf_state_find(st, key)->fp == 77);
  bf_state_free(st);
}

Test(state, second_writer_is_refused) {
  struct bf_state *st = open_state(true);
  struct bf_state *other = NULL;
  struct bf_error err = {0};
  cr_assert_eq(bf_state_open(dir, true, &prf, &other, &err), BF_E_LOCKED);
  cr_assert_null(other);
  cr_assert(strstr(err.msg, "lock"));
  bf_state_free(st);
}

Test(state, clear_forgets_everything) {
  struct bf_state *st = open_state(true);
  struct bf_error err = {0};
  unsigned char a[16];
  key_of(1, a);
  bf_state_mark_acked(st, a, 1);
  cr_assert_eq(bf_state_clear(st, &err), 0);
  bf_state_free(st);
  st = open_state(false);
  cr_assert_eq(bf_state_count(st), 0);
  bf_state_free(st);
}

Test(state, base_file_is_32_bytes_per_key_and_private) {
  struct bf_state *st = open_state(true);
  struct bf_error err = {0};
  unsigned char key[16];
  for (unsigned i = 0; i < 1000; i++) {
    key_of(i, key);
    bf_state_mark_acked(st, key, i);
  }
  cr_assert_eq(bf_state_fold(st, &err), 0);
  bf_state_free(st);
  char path[128];
  snprintf(path, sizeof path, "%s/state.bin", dir);
  struct stat sb;
  cr_assert_eq(stat(path, &sb), 0);
  cr_assert_eq(sb.st_size, 64 + 1000 * 32); /* header: key check and checksum */
  cr_assert_eq(sb.st_mode & 0777, 0600);
}

static void read_file(const char *name, unsigned char **data, size_t *len) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  *data = malloc(*len ? *len : 1);
  cr_assert_eq(fread(*data, 1, *len, f), *len);
  fclose(f);
}

static void fold_keys(unsigned from, unsigned to) {
  struct bf_state *st = open_state(true);
  struct bf_error err = {0};
  unsigned char key[16];
  for (unsigned i = from; i < to; i++) {
    key_of(i, key);
    bf_state_mark_acked(st, key, 100 + i);
  }
  cr_assert_eq(bf_state_fold(st, &err), 0, "%s", err.msg);
  bf_state_free(st);
}

/* Kilobytes of the mapping of path that this process has written to (copied
 * on write), from /proc/self/smaps; -1 when path is not mapped. */
static long private_dirty_kb(const char *path) {
  FILE *f = fopen("/proc/self/smaps", "r");
  cr_assert_not_null(f);
  char line[512];
  long kb = -1;
  bool in_mapping = false;
  while (fgets(line, sizeof line, f)) {
    size_t len = strlen(line);
    if (len && line[len - 1] == '\n') line[--len] = '\0';
    unsigned long from, to;
    if (sscanf(line, "%lx-%lx ", &from, &to) == 2) { /* a new mapping's header line */
      in_mapping = len >= strlen(path) && strcmp(line + len - strlen(path), path) == 0;
      if (in_mapping && kb < 0) kb = 0;
    }
    long v;
    if (in_mapping && sscanf(line, "Private_Dirty: %ld kB", &v) == 1) kb += v;
  }
  fclose(f);
  return kb;
}

/* The base file is mapped, not copied: marking every key seen (what a plan
 * does) must not write to the mapped pages (no copy-on-write), and must work
 * as for keys added later. */
Test(state, seen_marks_never_write_the_mapped_base) {
  fold_keys(0, 3000);
  char path[128];
  snprintf(path, sizeof path, "%s/state.bin", dir);
  struct bf_state *st = open_state(false);
  cr_assert_eq(private_dirty_kb(path), 0, "the base is not mapped, or was written on load");
  unsigned char key[16];
  for (unsigned i = 0; i < 4000; i++) { /* 3000 from the base, 1000 new */
    key_of(i, key);
    struct bf_state_entry *e = bf_state_upsert(st, key);
    cr_assert_eq(bf_state_see(st, e), false, "key %u seen twice", i);
  }
  for (unsigned i = 0; i < 4000; i++) {
    key_of(i, key);
    struct bf_state_entry *e = bf_state_find(st, key);
    cr_assert_not_null(e);
    cr_assert(bf_state_seen(st, e));
    cr_assert(bf_state_see(st, e), "second sighting of key %u not reported", i);
    cr_assert_eq(e->fp, i < 3000 ? 100 + i : 0);
  }
  size_t cursor = 0, n = 0;
  struct bf_state_entry *e;
  while ((e = bf_state_next(st, &cursor))) {
    cr_assert(bf_state_seen(st, e));
    n++;
  }
  cr_assert_eq(n, 4000);
  cr_assert_eq(bf_state_count(st), 3000); /* the new keys hold nothing yet */
  cr_assert_eq(private_dirty_kb(path), 0, "marking keys seen copied pages of the base");
  bf_state_free(st);
}

/* Keys added after a load outnumber the base (the index grows several
 * times), changes to base entries are journalled, and a fold merges both. */
Test(state, base_and_later_keys_fold_together) {
  fold_keys(0, 2000);
  struct bf_state *st = open_state(true);
  struct bf_error err = {0};
  unsigned char key[16];
  for (unsigned i = 0; i < 2000; i += 2) { /* change half the base, delete a quarter */
    key_of(i, key);
    if (i % 4 == 0)
      bf_state_mark_deleted(st, key);
    else
      bf_state_mark_acked(st, key, 7000 + i);
  }
  for (unsigned i = 2000; i < 20000; i++) {
    key_of(i, key);
    bf_state_mark_acked(st, key, 100 + i);
  }
  cr_assert_eq(bf_state_flush(st, true, &err), 0);
  bf_state_free(st); /* journal only: replayed over the mapped base */
  st = open_state(true);
  cr_assert_eq(bf_state_count(st), 20000 - 500);
  cr_assert_eq(bf_state_fold(st, &err), 0, "%s", err.msg);
  bf_state_free(st);
  st = open_state(false);
  cr_assert_eq(bf_state_count(st), 20000 - 500);
  for (unsigned i = 0; i < 20000; i++) {
    key_of(i, key);
    struct bf_state_entry *e = bf_state_find(st, key);
    if (i < 2000 && i % 4 == 0) {
      cr_assert(!e || !(e->flags & BF_ST_PERSISTED), "deleted key %u is back", i);
      continue;
    }
    cr_assert_not_null(e, "key %u lost", i);
    uint64_t want = i < 2000 && i % 2 == 0 ? 7000 + i : 100 + i;
    cr_assert_eq(e->fp, want, "key %u: fp %llu", i, (unsigned long long)e->fp);
  }
  bf_state_free(st);
}

/* A fold writes keys in index order, which is the order of their top 32
 * bits: the next load indexes them in sequence. */
Test(state, fold_writes_keys_in_tag_order) {
  fold_keys(0, 5000);
  unsigned char *data;
  size_t len;
  read_file("state.bin", &data, &len);
  cr_assert_eq(len, 64 + 5000 * 32);
  uint32_t prev = 0;
  size_t out_of_order = 0;
  for (size_t off = 64; off < len; off += 32) {
    uint64_t h;
    memcpy(&h, data + off, 8);
    uint32_t tag = (uint32_t)(h >> 32);
    if (tag < prev) out_of_order++;
    prev = tag;
  }
  /* Linear probing may swap neighbours within a cluster, and the wrap at the
   * end of the index puts a few high tags first: nearly, not strictly sorted. */
  cr_assert_lt(out_of_order, 5000 / 20, "%zu of 5000 keys out of order", out_of_order);
  free(data);
}

/* Past 512k keys the index of a loaded base is built by two threads, each
 * filling its half; keys whose probe crosses the middle are placed last.
 * Every key must be found, and nothing else. */
/* Keys spread like PRF output, except the last 3000: 2000 share the tag in
 * the middle of the tag range (a cluster across the two halves) and 1000 the
 * highest tag (a cluster that wraps to the start of the index). */
static void crowded_key_of(unsigned i, unsigned n, unsigned char key[16]) {
  key_of(i, key);
  uint32_t tag = i >= n - 1000 ? 0xffffffffu : i >= n - 3000 ? 0x80000000u : 0;
  if (i >= n - 3000) memcpy(key + 4, &tag, 4); /* bytes 4..7: the top 32 bits */
}

Test(state, large_base_indexed_in_two_halves_finds_every_key, .timeout = 120) {
  enum { N = 700000 };
  struct bf_state *st = open_state(true);
  struct bf_error err = {0};
  unsigned char key[16];
  for (unsigned i = 0; i < N; i++) {
    crowded_key_of(i, N, key);
    bf_state_mark_acked(st, key, 100 + i);
  }
  cr_assert_eq(bf_state_fold(st, &err), 0, "%s", err.msg);
  bf_state_free(st);
  st = open_state(false);
  for (unsigned i = 0; i < N; i++) {
    crowded_key_of(i, N, key);
    struct bf_state_entry *e = bf_state_find(st, key);
    if (!e || e->fp != 100 + i) cr_assert_fail("key %u: %s", i, e ? "wrong fp" : "not found");
  }
  for (unsigned i = N; i < N + 10000; i++) {
    key_of(i, key);
    cr_assert_null(bf_state_find(st, key), "key %u was never stored", i);
  }
  cr_assert_eq(bf_state_count(st), N);
  bf_state_free(st);
}

/* libFuzzer target: loading the state directory's keyed files from
 * arbitrary bytes (issue 19). Input: one byte choosing the file, then its
 * content:
 *   0 state.bin, 1 journal.bin (after a valid empty base), 2 vault.bin,
 *   3 forgotten.bin, 4 audit.jsonl, 5 idindex.bin
 * Each is written into a private temporary folder and loaded the way a run
 * (writable: repairs a torn tail) and a reader (read-only) load it.
 *
 * Properties, besides ASan/UBSan: every load either succeeds or fails with
 * a state or secret error whose message names the file; a load that
 * succeeded once succeeds again (a repair never makes a file unreadable),
 * and loading never crashes or leaks on any bytes. */
#include <stdint.h>
#include <unistd.h>

#include "engine/audit_log.h"
#include "engine/forgotten.h"
#include "engine/idindex.h"
#include "util/fsutil.h"
#include "util/prf.h"
#include "engine/state.h"
#include "engine/vault.h"
#include "fuzz_common.h"

static char dir[64];
static struct bf_prf prf;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_setup_env();
  strcpy(dir, "/tmp/bf-fuzz-state-XXXXXX");
  if (!mkdtemp(dir)) abort();
  struct bf_error err = {0};
  if (bf_prf_init(&prf, (const unsigned char *)FUZZ_SECRET "-project", 24, &err)) abort();
  return 0;
}

static const char *const names[] = {"state.bin",     "journal.bin", "vault.bin",
                                    "forgotten.bin", "audit.jsonl", "idindex.bin"};

static void put(const char *name, const uint8_t *data, size_t len) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *failed_at = NULL;
  if (bf_write_file_atomic(path, data, len, NULL, 0, &failed_at) < 0) abort();
}

static void clear(void) {
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
}

static void check_error(int rc, const struct bf_error *err, const char *name) {
  if (rc == 0) return;
  FUZZ_CHECK(rc == BF_E_STATE || rc == BF_E_SECRET, "unexpected code %d: %s", rc, err->msg);
  FUZZ_CHECK(strstr(err->msg, name) != NULL, "message does not name %s: %s", name, err->msg);
}

static int load(int kind, bool writable, struct bf_error *err) {
  memset(err, 0, sizeof *err);
  switch (kind) {
  case 0:
  case 1: {
    struct bf_state *st = NULL;
    int rc = bf_state_open(dir, writable, &prf, &st, err);
    if (rc == 0 && writable) {
      unsigned char key[16] = {1, 2, 3};
      bf_state_mark_acked(st, key, 42);
      rc = bf_state_flush(st, true, err);
    }
    bf_state_free(st);
    return rc;
  }
  case 2: {
    if (!writable) return bf_vault_check(dir, &prf, err);
    struct bf_vault *v = NULL;
    int rc = bf_vault_open(dir, &prf, false, &v, err);
    if (rc == 0) {
      unsigned char key[16] = {1};
      size_t n;
      free(bf_vault_get(v, key, &n));
    }
    bf_vault_close(v);
    return rc;
  }
  case 3: {
    struct bf_forgotten_entry *e = NULL;
    size_t n = 0;
    int rc = bf_forgotten_read(dir, &prf, &e, &n, err);
    free(e);
    if (rc == 0 && writable) {
      struct bf_forgotten_entry add = {.kind = BF_FORGOTTEN_KEY, .scope = 1, .request = 9};
      rc = bf_forgotten_append(dir, &prf, &add, 1, err);
    }
    return rc;
  }
  case 5: {
    if (!writable) {
      struct bf_idindex_snapshot *snap = NULL;
      int rc = bf_idindex_snapshot(dir, &prf, &snap, err);
      if (rc == 0) {
        unsigned char ident[16] = {7}, (*keys)[16] = NULL;
        size_t n = 0;
        bool indexed;
        bf_idindex_snapshot_lookup(snap, (const unsigned char(*)[16]) & ident, 1, &keys, &n,
                                   &indexed);
        free(keys);
      }
      bf_idindex_snapshot_free(snap);
      return rc;
    }
    struct bf_idindex *ix = NULL;
    bool complete;
    int rc = bf_idindex_open(dir, &prf, false, 42, &complete, &ix, err);
    if (rc == 0) {
      unsigned char ident[16] = {7}, key[16] = {8};
      bf_idindex_add(ix, ident, key);
      rc = bf_idindex_commit(ix, true, err);
    }
    bf_idindex_close(ix);
    return rc;
  }
  default: {
    int rc = bf_audit_verify(dir, &prf, NULL, err);
    if (rc == 0 && writable) rc = bf_audit_append(dir, &prf, "{\"event\":\"x\"}", 13, err);
    return rc;
  }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return -1;
  int kind = data[0] % 6;
  clear();
  if (kind == 1) {
    /* A valid empty base of generation 0, so the journal is replayed. */
    struct bf_state *st = NULL;
    struct bf_error err = {0};
    if (bf_state_open(dir, true, &prf, &st, &err) || bf_state_fold(st, &err)) abort();
    bf_state_free(st);
  }
  put(names[kind], data + 1, size - 1);
  struct bf_error err;
  int rc = load(kind, false, &err);
  check_error(rc, &err, names[kind]);
  int wrc = load(kind, true, &err);
  check_error(wrc, &err, names[kind]);
  if (wrc == 0) {
    /* What a writer accepted (and maybe repaired) stays readable. */
    rc = load(kind, false, &err);
    FUZZ_CHECK(rc == 0, "a repaired %s is unreadable: %s", names[kind], err.msg);
  }
  return 0;
}

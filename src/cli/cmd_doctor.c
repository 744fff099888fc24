/* backflow doctor: checks every file of the state directory (key checks,
 * checksums, committed lengths, runs.db) without changing any, and says for
 * each problem what to do: which sync to reset, or what to restore. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli/cli.h"
#include "engine/audit_log.h"
#include "engine/forget.h"
#include "engine/forgotten.h"
#include "engine/integrity.h"
#include "engine/state.h"
#include "engine/idindex.h"
#include "engine/vault.h"

struct doctor {
  size_t checked, problems;
};

static void report(struct doctor *d, const char *what, int rc, const struct bf_error *err,
                   const char *advice) {
  d->checked++;
  if (rc == 0) {
    printf("ok       %s\n", what);
    return;
  }
  d->problems++;
  printf("PROBLEM  %s\n         %s\n         -> %s\n", what, err->msg, advice);
}

static void check_runs_db(struct doctor *d, const char *state_dir) {
  char *path = bf_xasprintf("%s/runs.db", state_dir);
  if (access(path, F_OK) != 0) {
    free(path);
    return;
  }
  struct bf_error err = {0};
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW)
    rc = bf_error_set(&err, BF_E_STATE, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
  else if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
    rc = bf_error_set(&err, BF_E_STATE, "%s: %s", path, sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  report(d, path, rc, &err,
         "run history only: move it aside (a new one is created); no sync state is in it");
  free(path);
}

static void check_sync(struct doctor *d, struct bf_project *p, const char *name) {
  char *dir = bf_xasprintf("%s/syncs/%s", p->state_dir, name);
  char *what = bf_xasprintf("%s (state.bin, journal.bin)", dir);
  char *advice = bf_xasprintf(
      "`backflow reset %s`: its next run sends every row again (upserts are idempotent)", name);
  struct bf_error err = {0};
  struct bf_state *st = NULL;
  int rc = bf_state_open(dir, false, &p->prf, &st, &err);
  bf_state_free(st);
  report(d, what, rc, &err, advice);
  free(what);
  what = bf_xasprintf("%s/vault.bin", dir);
  memset(&err, 0, sizeof err);
  rc = bf_vault_check(dir, &p->prf, &err);
  report(d, what, rc, &err, advice);
  free(what);
  what = bf_xasprintf("%s/%s", dir, BF_IDINDEX_FILE);
  memset(&err, 0, sizeof err);
  rc = bf_idindex_check(dir, &p->prf, NULL, NULL, &err);
  free(advice);
  advice = bf_xstrdup("move it aside: the sync's next run builds it again from the warehouse "
                      "(people who already left it can then no longer be found by email)");
  report(d, what, rc, &err, advice);
  free(what);
  free(advice);
  free(dir);
}

int bf_cmd_doctor(struct bf_cli *cli, struct bf_error *err) {
  if (bf_cli_no_more_options(cli, "doctor", err)) return 2;
  struct bf_project *p = NULL;
  if (bf_cli_project(cli, &p, err)) return bf_code_exit_status(err->code);
  struct doctor d = {0};
  printf("checking %s\n", p->state_dir);
  struct bf_error e = {0};
  char *secret = bf_xasprintf("%s/secret", p->state_dir);
  char *keyed = bf_integrity_first_keyed_file(p->state_dir);
  bool no_secret = !p->cfg->secret && access(secret, F_OK) != 0;
  free(secret);
  int rc = 0;
  if (no_secret && !keyed) {
    printf("ok       no secret and no keyed state yet (nothing was synced)\n");
    goto out;
  }
  /* Each file is then checked on its own: one written under another secret
   * names itself; all of them doing so means the secret is the wrong one. */
  if (no_secret)
    rc = bf_error_set(&e, BF_E_SECRET, "%s/secret is missing, but %s holds data keyed by it",
                      p->state_dir, keyed);
  else
    rc = bf_prf_load_secret(&p->prf, p->cfg->secret, p->state_dir, false, &e);
  report(&d, "the project secret", rc, &e,
         "restore the secret, or `backflow reset --all --new-secret` (read its warning first)");
  if (rc) goto out;
  p->has_secret = true;

  char *path = bf_xasprintf("%s/%s", p->state_dir, BF_FORGOTTEN_FILE);
  struct bf_forgotten_entry *entries = NULL;
  size_t n = 0;
  memset(&e, 0, sizeof e);
  rc = bf_forgotten_read(p->state_dir, &p->prf, &entries, &n, &e);
  free(entries);
  if (access(path, F_OK) == 0)
    report(&d, path, rc, &e,
           "restore it from a backup: it is the list of erased people; without it they would "
           "be sent again. Do not delete it");
  free(path);

  path = bf_xasprintf("%s/%s", p->state_dir, BF_ERASURE_PENDING_FILE);
  memset(&e, 0, sizeof e);
  rc = bf_forget_check_pending(p, &e);
  if (access(path, F_OK) == 0)
    report(&d, path, rc, &e,
           "restore it from a backup, or move it aside and issue the pending erasures again "
           "(`backflow audit` lists them)");
  free(path);

  path = bf_xasprintf("%s/%s", p->state_dir, BF_AUDIT_FILE);
  memset(&e, 0, sizeof e);
  rc = bf_audit_verify(p->state_dir, &p->prf, NULL, &e);
  if (access(path, F_OK) == 0)
    report(&d, path, rc, &e,
           "restore it from a backup; keep the damaged copy for your records. Erasures are "
           "refused until the log is whole");
  free(path);
  check_runs_db(&d, p->state_dir);

  char *syncs = bf_xasprintf("%s/syncs", p->state_dir);
  DIR *dir = opendir(syncs);
  struct dirent *de;
  while (dir && (de = readdir(dir)))
    if (de->d_name[0] != '.') check_sync(&d, p, de->d_name);
  if (dir) closedir(dir);
  free(syncs);
out:
  free(keyed);
  printf("%zu checked, %zu problem%s\n", d.checked, d.problems, d.problems == 1 ? "" : "s");
  bf_project_free(p);
  return d.problems ? 2 : 0;
}

/* backflow reset SYNC | --all [--new-secret]: forget what the destination
 * holds; the next run sends every row again. --new-secret starts over under
 * a new project secret when the old one is lost (docs/reliability.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/forget.h"
#include "engine/forgotten.h"
#include "engine/state.h"
#include "engine/wstate.h"

static const char *const usage = "reset SYNC | --all [--new-secret]";

static int reset_sync(struct bf_project *p, const char *name, struct bf_error *err) {
  char *dir = bf_project_sync_dir(p, name);
  struct bf_state *st = NULL;
  int rc = 0;
  const struct bf_sync_config *sync = bf_config_sync(p->cfg, name);
  if (sync && sync->state_warehouse) {
    if ((rc = bf_wstate_reset(p, sync, err))) goto out;
    /* What this machine keeps of it goes too (keyed by the secret a reset
     * may be replacing): the identifier index and the scratch. */
    const char *files[] = {"vault.bin", "idindex.bin", "wscratch/state.bin",
                           "wscratch/journal.bin"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
      char *path = bf_xasprintf("%s/%s", dir, files[i]);
      unlink(path);
      free(path);
    }
    printf("%s: state in the warehouse cleared; the next run sends every row\n", name);
    goto out;
  }
  if (access(dir, F_OK) != 0) {
    printf("%s: nothing to reset (never run)\n", name);
    goto out;
  }
  if ((rc = bf_state_open(dir, true, &p->prf, &st, err)) || (rc = bf_state_clear(st, err)))
    goto out;
  /* The sealed identifiers and their index go too: nothing is kept for a
   * sync that forgot (the next run sends, and indexes, every row again). */
  char *vault = bf_xasprintf("%s/vault.bin", dir);
  char *index = bf_xasprintf("%s/idindex.bin", dir);
  unlink(vault);
  unlink(index);
  free(vault);
  free(index);
  printf("%s: state cleared; the next run sends every row\n", name);
out:
  bf_state_free(st);
  free(dir);
  return rc;
}

/* Moves <state_dir>/<rel> into the archive folder (same relative path). */
static int archive(const char *state_dir, const char *archive_dir, const char *rel,
                   struct bf_error *err) {
  char *from = bf_xasprintf("%s/%s", state_dir, rel);
  char *to = bf_xasprintf("%s/%s", archive_dir, rel);
  int rc = 0;
  char *slash = strrchr(to, '/');
  *slash = '\0';
  mkdir(to, 0700);
  *slash = '/';
  if (rename(from, to) < 0 && errno != ENOENT)
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot move to %s: %s", from, to, strerror(errno));
  free(from);
  free(to);
  return rc;
}

/* Moves everything keyed by the old secret aside (never deleted: with the
 * old secret restored it is whole again), then makes a new secret. */
static int move_aside(struct bf_project *p, struct bf_error *err) {
  char stamp[32];
  time_t now = time(NULL);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime(&now));
  char *dir = bf_xasprintf("%s/replaced-%s", p->state_dir, stamp);
  int rc = 0;
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot create: %s", dir, strerror(errno));
    goto out;
  }
  const char *files[] = {"secret", BF_FORGOTTEN_FILE, BF_ERASURE_PENDING_FILE, BF_AUDIT_FILE,
                         "syncs"};
  for (size_t i = 0; rc == 0 && i < sizeof files / sizeof *files; i++)
    rc = archive(p->state_dir, dir, files[i], err);
  if (rc) goto out;
  if (!p->cfg->secret && (rc = bf_prf_load_secret(&p->prf, NULL, p->state_dir, true, err)))
    goto out;
  printf("state moved to %s; %s; the next run of each sync sends every row\n", dir,
         p->cfg->secret ? "the configured secret is used from now on"
                        : "a new secret was generated in the state directory");
out:
  free(dir);
  return rc;
}

/* Entries and distinct erasure requests in the suppression list, read
 * without the secret. */
static void count_suppressed(const char *state_dir, size_t *entries, size_t *requests) {
  struct bf_forgotten_entry *e = NULL;
  struct bf_error ignored = {0};
  *entries = *requests = 0;
  bf_forgotten_read(state_dir, NULL, &e, entries, &ignored);
  for (size_t i = 0; i < *entries; i++) {
    bool seen = false;
    for (size_t j = 0; j < i && !seen; j++) seen = e[j].request == e[i].request;
    if (!seen) (*requests)++;
  }
  free(e);
}

static int new_secret(struct bf_project *p, struct bf_error *err) {
  /* Every sync's lock, held until the files are moved: a run in progress
   * must not write into state that is being set aside. */
  int *locks = bf_xcalloc(p->cfg->n_syncs + 1, sizeof *locks);
  size_t n_locks = 0;
  int rc = 0;
  for (size_t i = 0; i < p->cfg->n_syncs && rc == 0; i++) {
    char *lock = bf_xasprintf("%s/syncs/%s/lock", p->state_dir, p->cfg->syncs[i].name);
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    free(lock);
    if (fd < 0) continue;
    locks[n_locks++] = fd;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
      rc = bf_error_set(err, BF_E_LOCKED, "sync '%s' is running: stop it (and serve) first",
                        p->cfg->syncs[i].name);
  }
  if (rc == 0) {
    size_t entries, requests;
    count_suppressed(p->state_dir, &entries, &requests);
    fprintf(stderr,
            "backflow: WARNING: starting over under a new secret. The suppression list holds %zu "
            "entr%s from %zu erasure request%s (people erased so far); under a new secret they "
            "can no longer be matched, so anyone of them still in the warehouse WILL be sent "
            "again by the next run. Remove them from the models first. Every sync sends every "
            "row again.\n",
            entries, entries == 1 ? "y" : "ies", requests, requests == 1 ? "" : "s");
    rc = move_aside(p, err);
  }
  for (size_t i = 0; i < n_locks; i++) close(locks[i]);
  free(locks);
  return rc;
}

int bf_cmd_reset(struct bf_cli *cli, struct bf_error *err) {
  bool all = bf_cli_flag(cli, "--all");
  bool renew = bf_cli_flag(cli, "--new-secret");
  if (bf_cli_no_more_options(cli, usage, err)) return 2;
  if (renew && !all)
    return bf_error_set(err, BF_E_USAGE,
                        "--new-secret resets every sync: use reset --all --new-secret"),
           2;
  if (all == (cli->argc == 1) || cli->argc > 1)
    return bf_error_set(err, BF_E_USAGE, "usage: backflow %s", usage), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project(cli, &p, err)) return bf_code_exit_status(err->code);
  int rc = 0;
  if (renew) {
    rc = new_secret(p, err);
    goto out;
  }
  if (!all && !bf_project_find_sync(p, cli->argv[0], err)) {
    rc = err->code;
    goto out;
  }
  rc = bf_project_secret(p, false, err);
  if (rc == 1) { /* no secret: nothing was ever synced */
    rc = 0;
    printf("nothing to reset (never run)\n");
    goto out;
  }
  if (rc) goto out;
  if (!all) {
    rc = reset_sync(p, cli->argv[0], err);
    goto out;
  }
  for (size_t i = 0; rc == 0 && i < p->cfg->n_syncs; i++)
    rc = reset_sync(p, p->cfg->syncs[i].name, err);
out:
  bf_project_free(p);
  return rc ? bf_code_exit_status(rc) : 0;
}

/* A project: its configuration, state folder and secret. */
#ifndef BF_PROJECT_H
#define BF_PROJECT_H

#include <stdbool.h>

#include "spec/config.h"
#include "util/prf.h"

struct bf_project {
  struct bf_config *cfg;
  char *state_dir;
  struct bf_prf prf;
  bool has_secret;
};

/* path: a folder holding backflow.yml, or the file itself; NULL means
 * $BACKFLOW_PROJECT or the current folder. Caller frees with
 * bf_project_free(). */
int bf_project_load(const char *path, struct bf_project **out, struct bf_error *err);
void bf_project_free(struct bf_project *p);

/* Loads the secret; create = generate <state_dir>/secret when absent.
 * Without create and without a secret, returns 1 (nothing synced yet).
 * BF_E_SECRET when the secret file is missing while keyed data exists, or
 * when a keyed file was written under another secret. */
int bf_project_secret(struct bf_project *p, bool create, struct bf_error *err);

/* <state_dir>/syncs/<name>. Caller frees. */
char *bf_project_sync_dir(const struct bf_project *p, const char *sync);

/* Looks up a sync; unknown names get "did you mean" and the list. */
const struct bf_sync_config *bf_project_find_sync(const struct bf_project *p, const char *name,
                                                  struct bf_error *err);

#endif

#include "engine/project.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "engine/integrity.h"

int bf_project_load(const char *path, struct bf_project **out, struct bf_error *err) {
  if (!path) path = getenv("BACKFLOW_PROJECT");
  if (!path || !*path) path = ".";
  struct stat sb;
  char *file;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    file = bf_xasprintf("%s/backflow.yml", path);
  else
    file = bf_xstrdup(path);
  if (access(file, F_OK) != 0) {
    int rc =
        bf_error_set(err, BF_E_CONFIG, "%s: no project here (%s); create one with `backflow init`",
                     file, strerror(errno));
    free(file);
    return rc;
  }
  struct bf_project *p = bf_xcalloc(1, sizeof *p);
  int rc = bf_config_load(file, &p->cfg, err);
  free(file);
  if (rc) {
    bf_project_free(p);
    return rc;
  }
  p->state_dir = bf_config_path(p->cfg, p->cfg->state_dir);
  *out = p;
  return 0;
}

void bf_project_free(struct bf_project *p) {
  if (!p) return;
  bf_config_free(p->cfg);
  free(p->state_dir);
  sodium_memzero(&p->prf, sizeof p->prf);
  free(p);
}

int bf_project_secret(struct bf_project *p, bool create, struct bf_error *err) {
  if (p->has_secret) return 0;
  /* An unset ${BACKFLOW_SECRET} must not fall back to the generated one. */
  const struct bf_node *unset = bf_node_first_unset(bf_node_get(p->cfg->root, "secret"));
  if (unset)
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: environment variable %s is not set (needed "
                        "by the project secret)",
                        unset->loc.file, unset->loc.line, unset->loc.col, unset->unset_var);
  if (!p->cfg->secret) {
    char *path = bf_xasprintf("%s/secret", p->state_dir);
    bool exists = access(path, F_OK) == 0;
    char *keyed = exists ? NULL : bf_integrity_first_keyed_file(p->state_dir);
    int rc = 0;
    /* A new secret would match none of the hashes kept so far: erased people
     * would be sent again and every row re-sent as new. */
    if (keyed)
      rc = bf_error_set(err, BF_E_SECRET,
                        "%s is missing, but %s holds data keyed by it (the state directory was "
                        "restored without its secret, or a fresh volume was mounted for it); "
                        "nothing was read or sent. Restore the secret file (32 bytes, mode 0600), "
                        "or run `backflow reset --all --new-secret` to start over knowingly "
                        "(people erased so far can then no longer be suppressed)",
                        path, keyed);
    free(keyed);
    free(path);
    if (rc) return rc;
    if (!exists && !create) return 1;
  }
  int rc = bf_prf_load_secret(&p->prf, p->cfg->secret, p->state_dir, create, err);
  if (rc == 0) rc = bf_integrity_check_keys(p->state_dir, &p->prf, err);
  if (rc == 0) p->has_secret = true;
  return rc;
}

char *bf_project_sync_dir(const struct bf_project *p, const char *sync) {
  return bf_xasprintf("%s/syncs/%s", p->state_dir, sync);
}

const struct bf_sync_config *bf_project_find_sync(const struct bf_project *p, const char *name,
                                                  struct bf_error *err) {
  const struct bf_sync_config *s = bf_config_sync(p->cfg, name);
  if (s) return s;
  const char *names[256];
  char known[1024] = "";
  size_t n = 0;
  for (; n < p->cfg->n_syncs && n < 255; n++) {
    names[n] = p->cfg->syncs[n].name;
    if (n) strncat(known, ", ", sizeof known - strlen(known) - 1);
    strncat(known, names[n], sizeof known - strlen(known) - 1);
  }
  names[n] = NULL;
  const char *guess = bf_did_you_mean(name, names);
  bf_error_set(err, BF_E_USAGE, "unknown sync '%s'%s%s%s (syncs in %s: %s)", name,
               guess ? "; did you mean '" : "", guess ? guess : "", guess ? "'?" : "", p->cfg->path,
               n ? known : "none");
  return NULL;
}

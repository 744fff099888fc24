#include "engine/pause.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Sync names come from the config, but a name with a slash or a leading dot
 * must never reach the file system as a path. */
static bool safe_name(const char *name) { return *name && name[0] != '.' && !strchr(name, '/'); }

long long bf_pause_since_ms(const char *state_dir, const char *sync) {
  if (!safe_name(sync)) return 0;
  char *path = bf_xasprintf("%s/paused/%s", state_dir, sync);
  struct stat sb;
  long long since = 0;
  if (stat(path, &sb) == 0) {
    since = (long long)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    if (since <= 0) since = 1;
  }
  free(path);
  return since;
}

int bf_pause_set(const char *state_dir, const struct bf_sync_config *sync, bool paused,
                 bool *changed, struct bf_error *err) {
  if (changed) *changed = false;
  if (paused && sync->schedule == BF_SCHEDULE_LIVE)
    return bf_error_set(err, BF_E_USAGE,
                        "sync '%s' is live and cannot be paused: a paused live sync would keep "
                        "its replication slot and let the warehouse's WAL pile up; stop "
                        "`backflow serve` or change its schedule instead",
                        sync->name);
  if (!safe_name(sync->name))
    return bf_error_set(err, BF_E_USAGE, "sync name '%s' cannot name a pause marker", sync->name);
  char *dir = bf_xasprintf("%s/paused", state_dir);
  char *path = bf_xasprintf("%s/%s", dir, sync->name);
  int rc = 0;
  if (paused) {
    mkdir(state_dir, 0700);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
      rc = bf_error_set(err, BF_E_STATE, "%s: cannot create: %s", dir, strerror(errno));
      goto out;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      close(fd);
      if (changed) *changed = true;
    } else if (errno != EEXIST) {
      rc = bf_error_set(err, BF_E_STATE, "%s: cannot create: %s", path, strerror(errno));
    }
  } else if (unlink(path) == 0) {
    if (changed) *changed = true;
  } else if (errno != ENOENT) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot remove: %s", path, strerror(errno));
  }
out:
  free(dir);
  free(path);
  return rc;
}

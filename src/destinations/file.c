/* file: appends one JSON object per record to a JSON Lines file. Useful for
 * the demo, for audits, and as a queue other tools tail. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "destinations/destination.h"

struct file_destination {
  struct bf_destination base;
  char *path;
  int fd;
  bool fsync_each_batch;
  struct bf_buf buf, tmp;
};

static const struct bf_param_spec file_params[] = {
    {"path", BF_PARAM_STRING, NULL, true, false,
     "file to append JSON Lines to, relative to the project"},
    {"fsync", BF_PARAM_BOOL, "false", false, false,
     "flush each batch to disk before acknowledging it (slow: ~10 ms a batch)"},
    {NULL, 0, NULL, false, false, NULL},
};

static int mkdir_parents(const char *path) {
  char *copy = bf_xstrdup(path);
  for (char *p = copy + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    mkdir(copy, 0755);
    *p = '/';
  }
  free(copy);
  return 0;
}

static int file_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                     struct bf_destination **out, struct bf_error *err) {
  struct file_destination *d = bf_xcalloc(1, sizeof *d);
  d->path = bf_config_path(cfg, bf_params_str(dc->params, file_params, "path"));
  d->fsync_each_batch = bf_params_bool(dc->params, file_params, "fsync");
  d->fd = -1; /* opened on the first write: validate and plan create nothing */
  *out = &d->base;
  return 0;
}

static int ensure_open(struct file_destination *d, struct bf_error *err) {
  if (d->fd >= 0) return 0;
  mkdir_parents(d->path);
  d->fd = open(d->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (d->fd < 0)
    return bf_error_set(err, BF_E_DESTINATION, "destination '%s': cannot open %s: %s", d->base.name,
                        d->path, strerror(errno));
  return 0;
}

/* The file's folder must exist (or be creatable) and be writable. */
static int file_check(struct bf_destination *d_, struct bf_error *err) {
  struct file_destination *d = (struct file_destination *)d_;
  char *dir = bf_xstrdup(d->path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  /* Walk up to the nearest folder that exists: that one must be writable. */
  while (access(dir, F_OK) != 0 && (slash = strrchr(dir, '/')) && slash != dir) *slash = '\0';
  int rc = 0;
  if (access(dir, W_OK) != 0)
    rc = bf_error_set(err, BF_E_DESTINATION, "destination '%s': cannot write to %s: %s",
                      d->base.name, dir, strerror(errno));
  free(dir);
  return rc;
}

static int file_write(struct bf_destination *d_, const struct bf_batch *batch,
                      struct bf_outcome *outcomes, struct bf_error *err) {
  struct file_destination *d = (struct file_destination *)d_;
  int rc = ensure_open(d, err);
  if (rc) return rc;
  bf_buf_reset(&d->buf);
  for (size_t i = 0; i < batch->n; i++) {
    bf_record_json(batch, &batch->records[i], &d->buf, &d->tmp);
    bf_buf_putc(&d->buf, '\n');
  }
  const char *p = d->buf.data;
  size_t left = d->buf.len;
  while (left > 0) {
    ssize_t w = write(d->fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0)
      return bf_error_set(err, BF_E_DESTINATION, "destination '%s': writing %s failed: %s",
                          d->base.name, d->path, strerror(errno));
    p += w;
    left -= (size_t)w;
  }
  if (d->fsync_each_batch && fdatasync(d->fd) < 0)
    return bf_error_set(err, BF_E_DESTINATION, "destination '%s': syncing %s failed: %s",
                        d->base.name, d->path, strerror(errno));
  for (size_t i = 0; i < batch->n; i++) outcomes[i].status = BF_OUT_OK;
  return 0;
}

static void file_close(struct bf_destination *d_) {
  struct file_destination *d = (struct file_destination *)d_;
  if (d->fd >= 0) close(d->fd);
  bf_buf_release(&d->buf);
  bf_buf_release(&d->tmp);
  free(d->path);
  free(d);
}

const struct bf_destination_type bf_destination_file = {
    .name = "file",
    .params = file_params,
    .max_batch = 100000,
    .default_batch = 1000,
    .needs_identifier_for_delete = true,
    .open = file_open,
    .check = file_check,
    .push = file_write,
    .remove = file_write,
    .close = file_close,
};

#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"

int bf_read_file(const char *path, unsigned char **out, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat sb;
  if (fstat(fd, &sb) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  unsigned char *buf = bf_xmalloc((size_t)sb.st_size + 1);
  size_t got = 0;
  while (got < (size_t)sb.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  *out = buf;
  *len = got;
  return 0;
}

int bf_write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int bf_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

void bf_atomic_begin(struct bf_atomic_file *f, const char *path) {
  f->path = bf_xstrdup(path);
  f->tmp = bf_xasprintf("%s.tmp", path);
  f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  f->saved_errno = f->fd < 0 ? errno : 0;
  f->failed_at = f->tmp;
}

void bf_atomic_write(struct bf_atomic_file *f, const void *p, size_t n, off_t at) {
  const char *c = p;
  while (n > 0 && !f->saved_errno) {
    ssize_t w = pwrite(f->fd, c, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      f->saved_errno = w < 0 ? errno : EIO;
      break;
    }
    c += w;
    n -= (size_t)w;
    at += w;
  }
}

int bf_atomic_commit(struct bf_atomic_file *f, char **failed_at) {
  if (!f->saved_errno && fsync(f->fd) < 0) f->saved_errno = errno;
  if (f->fd >= 0) close(f->fd);
  if (!f->saved_errno) {
    char *slash = strrchr(f->path, '/');
    char *dir = slash ? bf_xstrndup(f->path, (size_t)(slash - f->path)) : bf_xstrdup(".");
    if (rename(f->tmp, f->path) < 0 || bf_fsync_dir(dir) < 0) {
      f->saved_errno = errno;
      f->failed_at = f->path;
    }
    free(dir);
  }
  int saved = f->saved_errno;
  if (saved) {
    unlink(f->tmp);
    *failed_at = bf_xstrdup(f->failed_at);
  }
  free(f->tmp);
  free(f->path);
  errno = saved;
  return saved ? -1 : 0;
}

int bf_write_file_atomic(const char *path, const void *a, size_t alen, const void *b, size_t blen,
                         char **failed_at) {
  struct bf_atomic_file f;
  bf_atomic_begin(&f, path);
  bf_atomic_write(&f, a, alen, 0);
  if (b) bf_atomic_write(&f, b, blen, (off_t)alen);
  return bf_atomic_commit(&f, failed_at);
}

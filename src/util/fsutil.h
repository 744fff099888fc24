/* Small file helpers shared by the state store and the vault. */
#ifndef BF_FSUTIL_H
#define BF_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Reads the whole file into a new buffer (one spare byte at the end) the
 * caller frees. Returns 0, or -1 with errno set. */
int bf_read_file(const char *path, unsigned char **out, size_t *len);
/* write() until done, retrying EINTR. Returns 0, or -1 with errno set. */
int bf_write_all(int fd, const void *p, size_t n);
/* fsync of a folder, so a rename in it is durable. */
int bf_fsync_dir(const char *dir);

/* A file replaced atomically: everything goes to <path>.tmp (mode 0600),
 * which replaces <path> only once it is complete and on disk (fsync, rename,
 * fsync of the folder). A crash at any point leaves the old file or the new
 * one. Writes after a failure do nothing; bf_atomic_commit reports it. */
struct bf_atomic_file {
  char *path, *tmp;
  int fd;
  int saved_errno;       /* 0 while all is well */
  const char *failed_at; /* path or tmp, for the message, once failed */
};
void bf_atomic_begin(struct bf_atomic_file *f, const char *path);
/* pwrite() of all n bytes at offset at, retrying EINTR and short writes. */
void bf_atomic_write(struct bf_atomic_file *f, const void *p, size_t n, off_t at);
/* Makes the file durable and puts it in place, or removes the tmp file.
 * Returns 0, or -1 with errno set and *failed_at (owned by the caller, to
 * free) naming the file that failed. Releases f either way. */
int bf_atomic_commit(struct bf_atomic_file *f, char **failed_at);
/* The whole of a small file in one go: a, then b (b may be NULL). */
int bf_write_file_atomic(const char *path, const void *a, size_t alen, const void *b, size_t blen,
                         char **failed_at);

#endif

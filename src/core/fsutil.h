/* Small file helpers shared by the state store and the vault. */
#ifndef BF_FSUTIL_H
#define BF_FSUTIL_H

#include <stddef.h>

/* Reads the whole file into a new buffer (one spare byte at the end) the
 * caller frees. Returns 0, or -1 with errno set. */
int bf_read_file(const char *path, unsigned char **out, size_t *len);
/* write() until done, retrying EINTR. Returns 0, or -1 with errno set. */
int bf_write_all(int fd, const void *p, size_t n);
/* fsync of a folder, so a rename in it is durable. */
int bf_fsync_dir(const char *dir);

#endif

#include "engine/integrity.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "engine/forget.h"
#include "engine/forgotten.h"
#include "util/keyfile.h"

/* Where each keyed file of the current format keeps its key check. */
struct keyed_kind {
  const char *name;
  const char *magic;
  size_t check_at;
};

static const struct keyed_kind project_files[] = {
    {BF_FORGOTTEN_FILE, "BFFORGT2", 8},
    {BF_ERASURE_PENDING_FILE, "BFERASE2", 8},
    {BF_AUDIT_FILE, NULL, 0}, /* JSON lines: the first line holds it */
};

static const struct keyed_kind sync_files[] = {
    {"state.bin", "BFSTATE2", 24},
    {"journal.bin", "BFJRNL02", 8},
    {"vault.bin", "BFVAULT2", 8},
    {"idindex.bin", "BFIDIX01", 8},
};

static bool non_empty(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0;
}

/* Calls visit(path, kind) for every keyed file present; stops at the first
 * non-zero answer and returns it. */
static int each_keyed_file(const char *state_dir,
                           int (*visit)(const char *, const struct keyed_kind *, void *),
                           void *ctx) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < sizeof project_files / sizeof *project_files; i++) {
    char *path = bf_xasprintf("%s/%s", state_dir, project_files[i].name);
    if (non_empty(path)) rc = visit(path, &project_files[i], ctx);
    free(path);
  }
  char *syncs = bf_xasprintf("%s/syncs", state_dir);
  DIR *d = rc == 0 ? opendir(syncs) : NULL;
  struct dirent *de;
  while (d && rc == 0 && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    for (size_t i = 0; rc == 0 && i < sizeof sync_files / sizeof *sync_files; i++) {
      char *path = bf_xasprintf("%s/%s/%s", syncs, de->d_name, sync_files[i].name);
      if (non_empty(path)) rc = visit(path, &sync_files[i], ctx);
      free(path);
    }
  }
  if (d) closedir(d);
  free(syncs);
  return rc;
}

static int remember_first(const char *path, const struct keyed_kind *kind, void *ctx) {
  (void)kind;
  *(char **)ctx = bf_xstrdup(path);
  return 1;
}

char *bf_integrity_first_keyed_file(const char *state_dir) {
  char *first = NULL;
  each_keyed_file(state_dir, remember_first, &first);
  return first;
}

/* The key check of the audit log's first line, {"backflow_audit":2,
 * "key_check":"<hex>",...}; false for an older log (no such line). */
static bool audit_key_check(const char *path, unsigned char out[BF_KEY_CHECK_BYTES]) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char line[256] = {0};
  ssize_t n = read(fd, line, sizeof line - 1);
  close(fd);
  if (n <= 0) return false;
  const char *tag = "\"key_check\":\"";
  const char *at = strncmp(line, "{\"backflow_audit\":", 18) == 0 ? strstr(line, tag) : NULL;
  if (!at) return false;
  at += strlen(tag);
  size_t got = 0;
  return sodium_hex2bin(out, BF_KEY_CHECK_BYTES, at, 2 * BF_KEY_CHECK_BYTES, NULL, &got, NULL) ==
             0 &&
         got == BF_KEY_CHECK_BYTES;
}

struct check_ctx {
  const struct bf_prf *prf;
  struct bf_error *err;
};

static int check_one(const char *path, const struct keyed_kind *kind, void *arg) {
  struct check_ctx *c = arg;
  unsigned char check[BF_KEY_CHECK_BYTES];
  if (!kind->magic) {
    if (!audit_key_check(path, check)) return 0;
  } else {
    unsigned char header[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0; /* the loader reports what is wrong */
    ssize_t n = read(fd, header, sizeof header);
    close(fd);
    if (n != (ssize_t)sizeof header || memcmp(header, kind->magic, 8) != 0) return 0;
    memcpy(check, header + kind->check_at, BF_KEY_CHECK_BYTES);
  }
  return bf_keyfile_check_key(path, check, c->prf, c->err);
}

int bf_integrity_check_keys(const char *state_dir, const struct bf_prf *prf, struct bf_error *err) {
  struct check_ctx c = {prf, err};
  return each_keyed_file(state_dir, check_one, &c);
}

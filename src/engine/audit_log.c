#include "engine/audit_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "engine/forget.h"
#include "util/fsutil.h"
#include "util/jsonw.h"
#include "util/keyfile.h"

#define HEADER_PREFIX "{\"backflow_audit\":2,\"key_check\":\""
#define BYTES_AT      (sizeof HEADER_PREFIX - 1 + 2 * BF_KEY_CHECK_BYTES + 11)
#define HEADER_LEN    (BYTES_AT + 20 + 3)
#define CHECK_FIELD   ",\"check\":\""
#define CHECK_LEN     (sizeof CHECK_FIELD - 1 + 32 + 2) /* field, hex, quote and brace */

bool bf_audit_is_header(const char *line, size_t len) {
  return len >= sizeof HEADER_PREFIX - 1 && !memcmp(line, HEADER_PREFIX, sizeof HEADER_PREFIX - 1);
}

static void header_text(char out[HEADER_LEN + 1], const struct bf_prf *prf, uint64_t bytes) {
  char hex[2 * BF_KEY_CHECK_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, prf->key_check, BF_KEY_CHECK_BYTES);
  snprintf(out, HEADER_LEN + 1, HEADER_PREFIX "%s\",\"bytes\":\"%020llu\"}\n", hex,
           (unsigned long long)bytes);
}

/* The chain: BLAKE2b-128 of the previous check and the line without its
 * check field. */
static void chain(const unsigned char prev[16], const char *body, size_t len,
                  unsigned char out[16]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 16);
  crypto_generichash_update(&st, prev, 16);
  crypto_generichash_update(&st, (const unsigned char *)body, len);
  crypto_generichash_final(&st, out, 16);
}

/* Checks one event line (without its newline) against prev; on success
 * *prev becomes its check. */
static bool line_ok(const char *line, size_t len, unsigned char prev[16]) {
  if (len < CHECK_LEN + 1 || line[len - 1] != '}' || line[len - 2] != '"' ||
      memcmp(line + len - CHECK_LEN, CHECK_FIELD, sizeof CHECK_FIELD - 1) != 0)
    return false;
  unsigned char want[16], got[16];
  size_t n = 0;
  if (sodium_hex2bin(want, 16, line + len - 34, 32, NULL, &n, NULL) != 0 || n != 16) return false;
  chain(prev, line, len - CHECK_LEN, got);
  if (memcmp(want, got, 16) != 0) return false;
  memcpy(prev, got, 16);
  return true;
}

struct parsed {
  unsigned char key_check[BF_KEY_CHECK_BYTES];
  uint64_t committed;
  size_t end; /* of the last whole, chained line */
  size_t events;
  unsigned char last[16]; /* check of the line ending at end */
};

static void first_prev(const unsigned char key_check[BF_KEY_CHECK_BYTES], unsigned char out[16]) {
  memset(out, 0, 16);
  memcpy(out, key_check, BF_KEY_CHECK_BYTES);
}

static int parse_header(const char *path, const char *data, size_t len, size_t file_len,
                        struct parsed *ps, struct bf_error *err) {
  memset(ps, 0, sizeof *ps);
  size_t n = 0;
  char digits[21] = {0};
  if (len < HEADER_LEN || !bf_audit_is_header(data, len) || data[HEADER_LEN - 1] != '\n' ||
      sodium_hex2bin(ps->key_check, BF_KEY_CHECK_BYTES, data + sizeof HEADER_PREFIX - 1,
                     2 * BF_KEY_CHECK_BYTES, NULL, &n, NULL) != 0 ||
      n != BF_KEY_CHECK_BYTES)
    return bf_keyfile_damaged(err, path, len ? "no audit header line" : "empty file");
  memcpy(digits, data + BYTES_AT, 20);
  ps->committed = strtoull(digits, NULL, 10);
  if (ps->committed < HEADER_LEN || ps->committed > file_len) {
    char what[96];
    snprintf(what, sizeof what, "%llu bytes were written, %zu present",
             (unsigned long long)ps->committed, file_len);
    return bf_keyfile_damaged(err, path, what);
  }
  first_prev(ps->key_check, ps->last);
  ps->end = HEADER_LEN;
  return 0;
}

/* Follows the chain over data[off, len) (file offsets: data + base is the
 * byte at file offset base), from ps->last. */
static int scan_lines(const char *path, const char *data, size_t base, size_t off, size_t len,
                      struct parsed *ps, struct bf_error *err) {
  while (off < len) {
    const char *at = data + (off - base);
    const char *nl = memchr(at, '\n', len - off);
    size_t line_end = nl ? off + (size_t)(nl - at) : len;
    unsigned char prev[16];
    memcpy(prev, ps->last, 16);
    if (!nl || !line_ok(at, line_end - off, prev)) {
      if (off < ps->committed) {
        char what[96];
        snprintf(what, sizeof what, "event %zu does not match its check", ps->events + 1);
        return bf_keyfile_damaged(err, path, what);
      }
      break; /* a line torn by a crash */
    }
    memcpy(ps->last, prev, 16);
    ps->events++;
    off = ps->end = line_end + 1;
  }
  return 0;
}

static int parse(const char *path, const char *data, size_t len, struct parsed *ps,
                 struct bf_error *err) {
  int rc = parse_header(path, data, len, len, ps, err);
  return rc ? rc : scan_lines(path, data, 0, HEADER_LEN, len, ps, err);
}

/* For an append: the header, then only the log's tail. The last committed
 * line's own check is the chain's head (the whole chain is verified by
 * bf_audit_verify, before each erasure); lines after it are a torn tail or,
 * after a power loss took the header's update, whole lines to keep. */
#define TAIL_BYTES 16384

static int parse_tail(const char *path, int fd, size_t file_len, struct parsed *ps,
                      struct bf_error *err) {
  char header[HEADER_LEN];
  if (pread(fd, header, HEADER_LEN, 0) != (ssize_t)(file_len < HEADER_LEN ? file_len : HEADER_LEN))
    return bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", path, strerror(errno));
  int rc =
      parse_header(path, header, file_len < HEADER_LEN ? file_len : HEADER_LEN, file_len, ps, err);
  if (rc) return rc;
  size_t from = ps->committed > HEADER_LEN + TAIL_BYTES ? ps->committed - TAIL_BYTES : HEADER_LEN;
  char *tail = bf_xmalloc(file_len - from + 1);
  if (pread(fd, tail, file_len - from, (off_t)from) != (ssize_t)(file_len - from)) {
    free(tail);
    return bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", path, strerror(errno));
  }
  if (ps->committed > HEADER_LEN) {
    /* The last committed line: from the newline before it to committed. */
    size_t last_end = ps->committed - 1, start = last_end;
    while (start > from && tail[start - 1 - from] != '\n') start--;
    size_t n = 0;
    if (tail[last_end - from] != '\n' || (start == from && from != HEADER_LEN) ||
        last_end - start < CHECK_LEN ||
        sodium_hex2bin(ps->last, 16, tail + (last_end - from) - 34, 32, NULL, &n, NULL) != 0 ||
        n != 16) {
      free(tail);
      return bf_keyfile_damaged(err, path, "its last event is not whole");
    }
    ps->end = ps->committed;
  }
  rc = scan_lines(path, tail, from, ps->committed, file_len, ps, err);
  free(tail);
  return rc;
}

int bf_audit_verify(const char *state_dir, const struct bf_prf *prf, size_t *events,
                    struct bf_error *err) {
  char *path = bf_xasprintf("%s/%s", state_dir, BF_AUDIT_FILE);
  unsigned char *data = NULL;
  size_t len = 0;
  int rc = 0;
  if (events) *events = 0;
  if (bf_read_file(path, &data, &len) < 0) {
    if (errno != ENOENT)
      rc = bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", path, strerror(errno));
    free(path);
    return rc;
  }
  struct parsed ps;
  bool old = len > 0 && !bf_audit_is_header((const char *)data, len) && data[0] == '{' &&
             memmem(data, len, CHECK_FIELD, sizeof CHECK_FIELD - 1) == NULL;
  if (!old) {
    rc = parse(path, (const char *)data, len, &ps, err);
    if (rc == 0 && prf) rc = bf_keyfile_check_key(path, ps.key_check, prf, err);
    if (rc == 0 && events) *events = ps.events;
  }
  free(data);
  free(path);
  return rc;
}

/* The older log (lines without checks) rewritten in the current format. */
static int upgrade(const char *path, const struct bf_prf *prf, const char *data, size_t len,
                   struct bf_error *err) {
  struct bf_buf out = {0};
  char header[HEADER_LEN + 1];
  bf_buf_append(&out, header, HEADER_LEN);
  unsigned char prev[16];
  first_prev(prf->key_check, prev);
  for (size_t off = 0; off < len;) {
    const char *nl = memchr(data + off, '\n', len - off);
    if (!nl) break; /* torn */
    size_t n = (size_t)(nl - (data + off));
    if (n > 1 && data[off + n - 1] == '}') {
      chain(prev, data + off, n - 1, prev);
      char hex[33];
      sodium_bin2hex(hex, sizeof hex, prev, 16);
      bf_buf_append(&out, data + off, n - 1);
      bf_buf_printf(&out, CHECK_FIELD "%s\"}\n", hex);
    }
    off += n + 1;
  }
  header_text(header, prf, out.len);
  memcpy(out.data, header, HEADER_LEN);
  char *failed_at = NULL;
  int rc = 0;
  if (bf_write_file_atomic(path, out.data, out.len, NULL, 0, &failed_at) < 0) {
    rc = bf_error_set(err, BF_E_STATE, "%s: cannot write: %s", failed_at, strerror(errno));
    free(failed_at);
  }
  bf_buf_release(&out);
  return rc;
}

int bf_audit_append(const char *state_dir, const struct bf_prf *prf, const char *object, size_t len,
                    struct bf_error *err) {
  return bf_audit_append_many(state_dir, prf, &object, &len, 1, err);
}

int bf_audit_append_many(const char *state_dir, const struct bf_prf *prf,
                         const char *const *objects, const size_t *lens, size_t n,
                         struct bf_error *err) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) BF_ASSERT(lens[i] >= 2 && objects[i][lens[i] - 1] == '}');
  char *path = bf_xasprintf("%s/%s", state_dir, BF_AUDIT_FILE);
  int rc = 0;
  unsigned char *data = NULL;
  size_t data_len = 0;
  struct bf_buf line = {0};
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct stat sb;
  if (fd < 0 || flock(fd, LOCK_EX) < 0 || fstat(fd, &sb) < 0) goto io_error;
  if (sb.st_size > 0) {
    char head[sizeof HEADER_PREFIX - 1];
    ssize_t got = pread(fd, head, sizeof head, 0);
    if (got < 0) goto io_error;
    if (head[0] == '{' && !bf_audit_is_header(head, (size_t)got)) {
      if (bf_read_file(path, &data, &data_len) < 0) goto io_error;
      if ((rc = upgrade(path, prf, (const char *)data, data_len, err))) goto out;
      close(fd);
      fd = open(path, O_RDWR | O_CLOEXEC);
      if (fd < 0 || flock(fd, LOCK_EX) < 0 || fstat(fd, &sb) < 0) goto io_error;
    }
  }
  struct parsed ps;
  if (sb.st_size == 0) {
    char header[HEADER_LEN + 1];
    header_text(header, prf, HEADER_LEN);
    if (bf_write_all(fd, header, HEADER_LEN) < 0) goto io_error;
    first_prev(prf->key_check, ps.last);
    ps.end = HEADER_LEN;
  } else {
    if ((rc = parse_tail(path, fd, (size_t)sb.st_size, &ps, err)) ||
        (rc = bf_keyfile_check_key(path, ps.key_check, prf, err)))
      goto out;
    if (ps.end != (size_t)sb.st_size && ftruncate(fd, (off_t)ps.end) < 0) goto io_error;
  }
  for (size_t i = 0; i < n; i++) {
    /* Each line's check chains on the one before it, as if appended alone. */
    unsigned char check[16];
    char hex[33];
    chain(ps.last, objects[i], lens[i] - 1, check);
    sodium_bin2hex(hex, sizeof hex, check, 16);
    bf_buf_append(&line, objects[i], lens[i] - 1);
    bf_buf_printf(&line, CHECK_FIELD "%s\"}\n", hex);
    memcpy(ps.last, check, sizeof check);
  }
  char digits[21];
  snprintf(digits, sizeof digits, "%020llu", (unsigned long long)(ps.end + line.len));
  if (pwrite(fd, line.data, line.len, (off_t)ps.end) != (ssize_t)line.len || fdatasync(fd) < 0 ||
      pwrite(fd, digits, 20, (off_t)BYTES_AT) != 20)
    goto io_error;
  goto out;
io_error:
  rc = bf_error_set(err, BF_E_STATE, "%s: cannot append: %s", path, strerror(errno));
out:
  if (fd >= 0) close(fd);
  bf_buf_release(&line);
  free(data);
  free(path);
  return rc;
}

/* Appends use O_APPEND with one write() per line, so concurrent request
 * threads never interleave inside a line; a line torn by a crash is skipped
 * by the reader. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/edit_log.h"
#include "util/fsutil.h"
#include "util/jsonw.h"

static pthread_mutex_t append_lock = PTHREAD_MUTEX_INITIALIZER;

int bf_edit_log_append(const char *state_dir, const char *who, const char *action,
                       const char *target, const char *detail, struct bf_error *err) {
  char now[32];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
  struct bf_buf line = {0};
  bf_buf_puts(&line, "{\"time\":");
  bf_json_cstr(&line, now);
  bf_buf_puts(&line, ",\"who\":");
  bf_json_cstr(&line, who ? who : "");
  bf_buf_puts(&line, ",\"action\":");
  bf_json_cstr(&line, action);
  bf_buf_puts(&line, ",\"target\":");
  bf_json_cstr(&line, target ? target : "");
  bf_buf_puts(&line, ",\"detail\":");
  bf_buf_puts(&line, detail ? detail : "null");
  bf_buf_puts(&line, "}\n");
  mkdir(state_dir, 0700);
  char *path = bf_xasprintf("%s/edits.jsonl", state_dir);
  int rc = 0;
  pthread_mutex_lock(&append_lock);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0 || bf_write_all(fd, line.data, line.len) || fsync(fd))
    rc = bf_error_set(err, BF_E_IO, "%s: cannot append to the edit log: %s", path, strerror(errno));
  if (fd >= 0) close(fd);
  pthread_mutex_unlock(&append_lock);
  free(path);
  bf_buf_release(&line);
  return rc;
}

int bf_edit_log_read(const char *state_dir, size_t max, char **out, struct bf_error *err) {
  char *path = bf_xasprintf("%s/edits.jsonl", state_dir);
  unsigned char *text = NULL;
  size_t len = 0;
  *out = NULL;
  if (bf_read_file(path, &text, &len)) {
    int e = errno;
    free(path);
    if (e == ENOENT) {
      *out = bf_xstrdup("[]");
      return 0;
    }
    return bf_error_set(err, BF_E_IO, "cannot read the edit log: %s", strerror(e));
  }
  free(path);
  json_t *all = json_array();
  char *s = (char *)text, *end = s + len;
  while (s < end) {
    char *nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl) break; /* torn last line */
    json_t *ev = json_loadb(s, (size_t)(nl - s), 0, NULL);
    if (json_is_object(ev)) json_array_append(all, ev);
    json_decref(ev);
    s = nl + 1;
  }
  free(text);
  while (json_array_size(all) > max) json_array_remove(all, 0);
  *out = json_dumps(all, JSON_COMPACT);
  json_decref(all);
  return 0;
}

/* Reloading `backflow serve` (docs/server.md "Reloading"): on SIGHUP or
 * POST /api/reload (after the studio saved models or syncs, or a hand
 * edit), the server waits until no run
 * and no HTTP request is in flight, checks that the project on disk loads,
 * stops gracefully and executes itself again on the same listening socket
 * (inherited through BACKFLOW_LISTEN_FD), so every part of the server
 * (scheduler, dashboard, API, live syncs, alerts) uses the new
 * configuration and no connection is refused meanwhile: the kernel queues
 * them on the socket. The process id stays, as a service manager expects. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"
#include "util/jsonw.h"
#include "util/log.h"

#define LISTEN_FD_ENV "BACKFLOW_LISTEN_FD"

void bf_reload_request(struct bf_server *srv, const char *why) {
  if (!__atomic_exchange_n(&srv->reload_requested, 1, __ATOMIC_ACQ_REL))
    bf_log_info("reload requested (%s): the server restarts with the project on disk once no "
                "run or request is in flight",
                why);
}

/* 0 when the project on disk loads, else its error (file:line:col). */
static int project_loads(const struct bf_server *srv, struct bf_error *err) {
  struct bf_project *next = NULL;
  int rc = bf_project_load(srv->p->cfg->path, &next, err);
  bf_project_free(next);
  return rc;
}

bool bf_reload_due(struct bf_server *srv) {
  if (!__atomic_load_n(&srv->reload_requested, __ATOMIC_ACQUIRE)) return false;
  if (__atomic_load_n(&srv->active_requests, __ATOMIC_ACQUIRE) > 0) return false;
  const struct bf_config *cfg = srv->p->cfg;
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    struct bf_sched_status st = {0};
    if (bf_scheduler_status(srv->sched, cfg->syncs[i].name, &st) == 0 && st.running) return false;
  }
  /* A project that no longer loads is not restarted into: the server goes
   * on with what it has, and says why. */
  struct bf_error err = {0};
  if (project_loads(srv, &err)) {
    bf_log_error("reload refused, the server goes on with the configuration it has: %s", err.msg);
    __atomic_store_n(&srv->reload_requested, 0, __ATOMIC_RELEASE);
    return false;
  }
  return true;
}

int bf_reload_inherited_fd(void) {
  const char *v = getenv(LISTEN_FD_ENV);
  if (!v) return -1;
  char *end;
  long fd = strtol(v, &end, 10);
  unsetenv(LISTEN_FD_ENV); /* not passed on to anything the server starts */
  if (*end || fd < 3 || fd > 65535 || fcntl((int)fd, F_GETFD) < 0) {
    bf_log_warn("%s=%s is not an open descriptor: listening anew", LISTEN_FD_ENV, v);
    return -1;
  }
  fcntl((int)fd, F_SETFD, FD_CLOEXEC);
  return (int)fd;
}

int bf_reload_exec(int listen_fd, struct bf_error *err) {
  /* /proc files have no size: read to the end. */
  struct bf_buf text = {0};
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  char chunk[4096];
  ssize_t got;
  while (fd >= 0 && (got = read(fd, chunk, sizeof chunk)) > 0)
    bf_buf_append(&text, chunk, (size_t)got);
  if (fd >= 0) close(fd);
  if (text.len == 0) {
    bf_buf_release(&text);
    return bf_error_set(err, BF_E_IO, "reload: cannot read /proc/self/cmdline: %s",
                        strerror(errno));
  }
  char *cmdline = text.data;
  size_t len = text.len;
  size_t argc = 0;
  for (size_t i = 0; i < len; i++) argc += cmdline[i] == '\0';
  char **argv = bf_xcalloc(argc + 2, sizeof *argv);
  size_t k = 0;
  for (size_t i = 0; i < len && k < argc; i += strlen(cmdline + i) + 1) argv[k++] = cmdline + i;
  char fd_text[16];
  snprintf(fd_text, sizeof fd_text, "%d", listen_fd);
  if (listen_fd >= 0) {
    fcntl(listen_fd, F_SETFD, 0); /* kept across exec */
    setenv(LISTEN_FD_ENV, fd_text, 1);
  }
  bf_log_info("reloading: executing %s again", argv[0]);
  fflush(NULL);
  execv("/proc/self/exe", argv);
  int e = errno;
  free(argv);
  bf_buf_release(&text);
  return bf_error_set(err, BF_E_IO, "reload: cannot execute the server again: %s", strerror(e));
}

void bf_api_reload(struct bf_http_req *req, struct bf_http_resp *resp) {
  if (req->srv->stopping) {
    bf_http_error(resp, 503, "the server is shutting down");
    return;
  }
  /* Checked now, so the caller learns of a broken project at once. */
  struct bf_error err = {0};
  if (project_loads(req->srv, &err)) {
    bf_http_error(resp, 422, "the project on disk does not load, nothing reloaded: %s", err.msg);
    return;
  }
  bf_reload_request(req->srv, "POST /api/reload");
  bf_http_json(resp, 202);
  bf_buf_puts(&resp->body, "{\"reload\":true}\n");
}

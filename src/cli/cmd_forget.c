/* backflow forget --email ADDR | --phone NUM | --key MODEL=VALUE | --retry
 * Erases a person from every destination (core/forget.h, docs/privacy.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/forget.h"

static void print_human(const struct bf_forget_result *r) {
  printf("erasure request %llu (%s%s%s, keyed hash %s): %s\n", (unsigned long long)r->request,
         bf_forget_kind_name(r->kind), r->model ? " of model " : "", r->model ? r->model : "",
         r->identifier_hash, r->status);
  for (size_t i = 0; i < r->n_syncs; i++) {
    const struct bf_forget_sync_result *s = &r->syncs[i];
    printf("  %s -> %s (%s): %s", s->sync, s->destination ? s->destination : "?",
           s->destination_type ? s->destination_type : "?", s->status);
    if (!strcmp(s->status, "deleted") || s->found)
      printf(", %lld found, %lld deleted", s->found, s->deleted);
    if (s->reason) printf(" (%s)", s->reason);
    printf("\n");
  }
  if (!strcmp(r->status, "pending"))
    printf("  not finished: `backflow forget --retry` sends what is left; the person is already "
           "excluded from every run\n");
}

int bf_cmd_forget(struct bf_cli *cli, struct bf_error *err) {
  const char *email = bf_cli_option(cli, "--email");
  const char *phone = bf_cli_option(cli, "--phone");
  const char *key = bf_cli_option(cli, "--key");
  bool retry = bf_cli_flag(cli, "--retry");
  /* How long to wait for a run that holds a sync's lock (default 60 s). */
  double secs = 0;
  if (bf_cli_seconds_option(cli, "--wait", 86400, &secs, err)) return 2;
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  long long wait_ms = (long long)(secs * 1000);
  if (secs > 0 && wait_ms == 0) wait_ms = 1;
  int given = !!email + !!phone + !!key + !!retry;
  if (given != 1 || cli->argc != 0)
    return bf_error_set(err, BF_E_USAGE, "name one person: --email, --phone or --key (or --retry)"),
           2;
  struct bf_project *p = NULL;
  if (bf_cli_project(cli, &p, err)) return bf_code_exit_status(err->code);
  int status = 0;
  struct bf_buf out = {0};
  if (retry) {
    struct bf_forget_result *res = NULL;
    size_t n = 0;
    int rc = bf_forget_retry(p, wait_ms, &res, &n, err);
    if (rc) {
      status = bf_code_exit_status(rc);
    } else {
      bf_buf_puts(&out, "{\"requests\":[");
      for (size_t i = 0; i < n; i++) {
        if (i) bf_buf_putc(&out, ',');
        bf_forget_result_json(&res[i], &out);
        if (!cli->json) print_human(&res[i]);
        int s = res[i].exit_status;
        /* the most telling status wins, as for one request */
        if (s == 3 || (s == 4 && status != 3) || (s == 2 && status != 3 && status != 4) ||
            (s == 1 && status == 0))
          status = s;
      }
      bf_buf_puts(&out, "]}\n");
      if (!cli->json && n == 0) printf("no erasure request is pending\n");
    }
    for (size_t i = 0; i < n; i++) bf_forget_result_release(&res[i]);
    free(res);
  } else {
    struct bf_forget_options o = {.lock_wait_ms = wait_ms};
    char *model = NULL;
    if (email) {
      o.kind = BF_FORGET_EMAIL;
      o.value = email;
    } else if (phone) {
      o.kind = BF_FORGET_PHONE;
      o.value = phone;
    } else {
      const char *eq = strchr(key, '=');
      if (!eq || eq == key) {
        bf_project_free(p);
        return bf_error_set(err, BF_E_USAGE, "--key takes MODEL=VALUE"), 2;
      }
      model = bf_xstrndup(key, (size_t)(eq - key));
      o.kind = BF_FORGET_KEY;
      o.model = model;
      o.value = eq + 1;
    }
    struct bf_forget_result res;
    int rc = bf_forget_person(p, &o, &res, err);
    if (rc) {
      status = bf_code_exit_status(rc);
    } else {
      bf_forget_result_json(&res, &out);
      bf_buf_putc(&out, '\n');
      if (!cli->json) print_human(&res);
      status = res.exit_status;
    }
    bf_forget_result_release(&res);
    free(model);
  }
  if (cli->json && out.len) fwrite(out.data, 1, out.len, stdout);
  bf_buf_release(&out);
  bf_project_free(p);
  return status;
}

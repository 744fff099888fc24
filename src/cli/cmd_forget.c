/* backflow forget --email ADDR | --phone NUM | --key MODEL=VALUE | --from FILE | --retry |
 * --lift N: erases people from every destination (engine/forget.h, docs/privacy.md). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"
#include "engine/forget.h"
#include "util/clock.h"

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

/* The most telling exit status of several requests wins, as for one. */
static int worse(int status, int s) {
  if (s == 3 || (s == 4 && status != 3) || (s == 2 && status != 3 && status != 4) ||
      (s == 1 && status == 0))
    return s;
  return status;
}

static void show_progress(size_t done, size_t total) {
  static long long last;
  long long now = bf_now_ms();
  if (now - last < 1000 && done < total) return;
  last = now;
  fprintf(stderr, "forget: %zu of %zu request(s) done\n", done, total);
}

static void trim(char *line) {
  size_t n = strlen(line);
  while (n &&
         (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
    line[--n] = '\0';
}

/* --from FILE: one email or phone per line ('-': standard input; blank lines
 * and lines starting with '#' are skipped). A line that is not an email or
 * a phone is reported with its line number and the others go on. */
static int forget_from(struct bf_cli *cli, struct bf_project *p, const char *path,
                       long long wait_ms, struct bf_buf *out, struct bf_error *err) {
  FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
  if (!f) return bf_error_set(err, BF_E_USAGE, "%s: cannot open: %s", path, strerror(errno)), 2;
  int status = 0;
  size_t lineno = 0, done = 0, bad = 0;
  char *line = NULL;
  size_t cap = 0;
  bf_buf_puts(out, "{\"requests\":[");
  bool first = true;
  struct bf_forget_batch *batch = bf_forget_batch_new();
  /* Read whole first: the batch reads each model once for everyone. */
  char **lines = NULL;
  size_t *linenos = NULL, n_lines = 0;
  while (getline(&line, &cap, f) >= 0) {
    lineno++;
    trim(line);
    const char *v = line;
    while (*v == ' ' || *v == '\t') v++;
    if (!*v || *v == '#') continue;
    lines = bf_xrealloc(lines, (n_lines + 1) * sizeof *lines);
    linenos = bf_xrealloc(linenos, (n_lines + 1) * sizeof *linenos);
    linenos[n_lines] = lineno;
    lines[n_lines++] = bf_xstrdup(v);
    bf_forget_batch_add(batch, p, strchr(v, '@') ? BF_FORGET_EMAIL : BF_FORGET_PHONE, v);
  }
  struct bf_forget_options *people = bf_xcalloc(n_lines + 1, sizeof *people);
  struct bf_forget_result *res = bf_xcalloc(n_lines + 1, sizeof *res);
  struct bf_error *errs = bf_xcalloc(n_lines + 1, sizeof *errs);
  for (size_t li = 0; li < n_lines; li++) {
    people[li] = (struct bf_forget_options){.lock_wait_ms = wait_ms, .value = lines[li]};
    people[li].kind = strchr(lines[li], '@') ? BF_FORGET_EMAIL : BF_FORGET_PHONE;
  }
  int rc =
      n_lines ? bf_forget_batch_run(p, batch, people, n_lines, res, errs, show_progress, err) : 0;
  for (size_t li = 0; li < n_lines; li++) {
    if (errs[li].code) {
      /* The value is never echoed: it is personal data. */
      fprintf(stderr, "backflow forget: %s:%zu: %s\n", path, linenos[li], errs[li].msg);
      bad++;
      status = worse(status, 1);
      continue;
    }
    if (!res[li].request) continue; /* not reached: the batch stopped */
    if (!first) bf_buf_putc(out, ',');
    first = false;
    bf_forget_result_json(&res[li], out);
    if (!cli->json) print_human(&res[li]);
    status = worse(status, res[li].exit_status);
    bf_forget_result_release(&res[li]);
    done++;
  }
  if (rc) {
    fprintf(stderr, "backflow forget: %s\n", err->msg);
    status = worse(status, bf_code_exit_status(rc));
  }
  free(people);
  free(res);
  free(errs);
  for (size_t li = 0; li < n_lines; li++) {
    sodium_memzero(lines[li], strlen(lines[li]));
    free(lines[li]);
  }
  free(lines);
  free(linenos);
  bf_buf_puts(out, "]}\n");
  struct bf_error ferr = {0};
  if (bf_forget_batch_free(batch, &ferr)) {
    fprintf(stderr, "backflow forget: %s\n", ferr.msg);
    status = worse(status, bf_code_exit_status(ferr.code));
  }
  free(line);
  if (f != stdin) fclose(f);
  fprintf(stderr, "forget: %zu request(s) made from %s%s\n", done, path,
          bad ? ", some lines were refused (above)" : "");
  return status;
}

int bf_cmd_forget(struct bf_cli *cli, struct bf_error *err) {
  const char *email = bf_cli_option(cli, "--email");
  const char *phone = bf_cli_option(cli, "--phone");
  const char *key = bf_cli_option(cli, "--key");
  const char *from = bf_cli_option(cli, "--from");
  bool retry = bf_cli_flag(cli, "--retry");
  long long lift = 0;
  if (bf_cli_int_option(cli, "--lift", 1, LLONG_MAX, &lift, err)) return 2;
  /* How long to wait for a run that holds a sync's lock (default 60 s). */
  double secs = 0;
  if (bf_cli_seconds_option(cli, "--wait", 86400, &secs, err)) return 2;
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  long long wait_ms = (long long)(secs * 1000);
  if (secs > 0 && wait_ms == 0) wait_ms = 1;
  int given = !!email + !!phone + !!key + !!retry + !!from + !!lift;
  if (given != 1 || cli->argc != 0)
    return bf_error_set(err, BF_E_USAGE,
                        "name one person (--email, --phone or --key), a file of them (--from), "
                        "--retry or --lift N"),
           2;
  struct bf_project *p = NULL;
  if (bf_cli_project(cli, &p, err)) return bf_code_exit_status(err->code);
  int status = 0;
  struct bf_buf out = {0};
  if (lift) {
    size_t removed = 0;
    int rc = bf_forget_lift(p, (uint64_t)lift, &removed, err);
    if (rc) {
      status = bf_code_exit_status(rc);
    } else {
      bf_buf_printf(&out, "{\"request\":%lld,\"lifted\":%zu}\n", lift, removed);
      if (!cli->json)
        printf("erasure request %lld: %zu suppression entr%s removed; runs may send the person "
               "again (audited)\n",
               lift, removed, removed == 1 ? "y" : "ies");
    }
  } else if (from) {
    status = forget_from(cli, p, from, wait_ms, &out, err);
  } else if (retry) {
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
        status = worse(status, res[i].exit_status);
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

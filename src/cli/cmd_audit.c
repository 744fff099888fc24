/* backflow audit [--request N | --email ADDR | --phone NUM | --key MODEL=VALUE] [--json]:
 * the erasure audit log (<state_dir>/audit.jsonl, written by `backflow
 * forget`), newest first. A person is found by their keyed hash: the log
 * never holds the value. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "engine/audit_log.h"
#include "engine/forget.h"
#include "util/fsutil.h"

static const char *str(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

static void print_entry(json_t *e) {
  const char *event = str(e, "event");
  printf("%s  request %lld  ", str(e, "time"),
         (long long)json_integer_value(json_object_get(e, "request")));
  if (!strcmp(event, "request")) {
    printf("erasure requested: %s%s%s, keyed hash %s\n", str(e, "kind"),
           json_object_get(e, "model") ? " of model " : "", str(e, "model"),
           str(e, "identifier_hash"));
  } else if (!strcmp(event, "sync")) {
    printf("%s%s -> %s (%s): %s, %lld found, %lld deleted",
           json_is_true(json_object_get(e, "retry")) ? "retry: " : "", str(e, "sync"),
           str(e, "destination"), str(e, "destination_type"), str(e, "status"),
           (long long)json_integer_value(json_object_get(e, "found")),
           (long long)json_integer_value(json_object_get(e, "deleted")));
    if (json_is_string(json_object_get(e, "reason"))) printf(" (%s)", str(e, "reason"));
    printf("\n");
  } else if (!strcmp(event, "lift")) {
    printf("suppression lifted (forget --lift): %lld entr%s removed; runs may send the person "
           "again\n",
           (long long)json_integer_value(json_object_get(e, "removed")),
           json_integer_value(json_object_get(e, "removed")) == 1 ? "y" : "ies");
  } else {
    printf("%s\n", event);
  }
}

int bf_cmd_audit(struct bf_cli *cli, struct bf_error *err) {
  long long only = 0;
  if (bf_cli_int_option(cli, "--request", 1, LLONG_MAX, &only, err)) return 2;
  const char *email = bf_cli_option(cli, "--email");
  const char *phone = bf_cli_option(cli, "--phone");
  const char *key = bf_cli_option(cli, "--key");
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  if (cli->argc != 0) return bf_error_set(err, BF_E_USAGE, "audit takes no arguments"), 2;
  if (!!only + !!email + !!phone + !!key > 1)
    return bf_error_set(err, BF_E_USAGE, "filter by one of --request, --email, --phone, --key"), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project(cli, &p, err)) return bf_code_exit_status(err->code);
  char hash[33] = "";
  bool by_person = email || phone || key;
  if (by_person) {
    struct bf_forget_options o = {.kind = email   ? BF_FORGET_EMAIL
                                          : phone ? BF_FORGET_PHONE
                                                  : BF_FORGET_KEY,
                                  .value = email ? email : phone};
    char *model = NULL;
    if (key) {
      const char *eq = strchr(key, '=');
      model = eq ? bf_xstrndup(key, (size_t)(eq - key)) : bf_xstrdup(key);
      o.model = model;
      o.value = eq ? eq + 1 : "";
    }
    int rc = bf_forget_identifier_hash(p, &o, hash, err);
    free(model);
    if (rc < 0) {
      bf_project_free(p);
      return bf_code_exit_status(rc);
    }
    if (rc == 1) hash[0] = '\0'; /* no secret: nothing was ever erased */
  }
  char *path = bf_xasprintf("%s/%s", p->state_dir, BF_AUDIT_FILE);
  unsigned char *data = NULL;
  size_t len = 0;
  int status = 0;
  json_t *entries = json_array();
  if (bf_audit_verify(p->state_dir, p->has_secret ? &p->prf : NULL, NULL, err)) {
    status = bf_code_exit_status(err->code);
    goto out;
  }
  if (bf_read_file(path, &data, &len) < 0 && errno != ENOENT) {
    status = bf_code_exit_status(
        bf_error_set(err, BF_E_STATE, "%s: cannot read: %s", path, strerror(errno)));
    goto out;
  }
  /* Lines in file order; a line a crash tore is skipped. */
  for (size_t off = 0; off < len;) {
    unsigned char *nl = memchr(data + off, '\n', len - off);
    size_t end = nl ? (size_t)(nl - data) : len;
    json_t *e = bf_audit_is_header((const char *)data + off, end - off)
                    ? NULL
                    : json_loadb((const char *)data + off, end - off, 0, NULL);
    bool keep =
        json_is_object(e) && (!only || json_integer_value(json_object_get(e, "request")) == only);
    if (keep && by_person) keep = hash[0] && !strcmp(str(e, "identifier_hash"), hash);
    if (keep && key)
      keep = !strncmp(key, str(e, "model"), strlen(str(e, "model"))) &&
             key[strlen(str(e, "model"))] == '=';
    if (keep)
      json_array_append_new(entries, e);
    else
      json_decref(e);
    off = end + 1;
  }
  /* Newest first. */
  json_t *rev = json_array();
  for (size_t i = json_array_size(entries); i-- > 0;)
    json_array_append(rev, json_array_get(entries, i));
  json_decref(entries);
  entries = rev;
  size_t pending_items = 0, pending_requests = 0;
  struct bf_error perr = {0};
  if (bf_forget_pending_count(p, &pending_items, &pending_requests, &perr))
    fprintf(stderr, "backflow audit: %s\n", perr.msg);
  if (cli->json) {
    json_t *doc = json_pack("{s:O,s:{s:I,s:I}}", "entries", entries, "pending", "requests",
                            (json_int_t)pending_requests, "syncs", (json_int_t)pending_items);
    char *text = json_dumps(doc, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(doc);
  } else {
    if (pending_requests)
      printf("%zu erasure request(s) pending: `backflow forget --retry` completes them\n",
             pending_requests);
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) print_entry(e);
    if (json_array_size(entries) == 0)
      printf(only || by_person ? "no audit entries match\n" : "no erasure requests yet\n");
  }
out:
  json_decref(entries);
  free(data);
  free(path);
  bf_project_free(p);
  return status;
}

/* libFuzzer target: a whole backflow.yml through bf_config_parse(), then the
 * checks a parsed config goes through before anything connects: each
 * destination's and warehouse's keys (bf_params_check with each type's
 * table), each sync's mapping (bf_mapping_build) and cron expression.
 *
 * Properties, besides ASan/UBSan: a failed parse returns BF_E_CONFIG (or
 * BF_E_NOMEM), leaves *out NULL and gives one line that names the file; a
 * successful one sets no error; and no message shows the value of an
 * environment variable (FUZZ_SECRET) unless the document itself contains it. */
#include <stdint.h>

#include "spec/config.h"
#include "spec/mapping.h"
#include "destinations/destination.h"
#include "fuzz_common.h"
#include "server/cron.h"
#include "sources/source.h"

#define FILE_NAME "fuzz.yml"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_setup_env();
  return 0;
}

static void check_message(const struct bf_error *err, const uint8_t *doc, size_t size,
                          const char *what) {
  FUZZ_CHECK(err->msg[0] != '\0', "%s: empty message", what);
  FUZZ_CHECK(!strchr(err->msg, '\n'), "%s: message of more than one line: %s", what, err->msg);
  if (!fuzz_contains(doc, size, FUZZ_SECRET))
    FUZZ_CHECK(!strstr(err->msg, FUZZ_SECRET), "%s: message shows a secret: %s", what, err->msg);
}

/* Every column the sync names, so that the mapping resolves. */
static size_t sync_columns(const struct bf_model_config *m, const struct bf_sync_config *s,
                           char **cols, size_t cap) {
  size_t n = 0;
  cols[n++] = m->primary_key;
  for (size_t i = 0; i < s->match.n && n < cap; i++) cols[n++] = s->match.items[i].value;
  for (size_t i = 0; i < s->fields.n && n < cap; i++) cols[n++] = s->fields.items[i].value;
  return n;
}

static void check_parsed(const struct bf_config *cfg, const uint8_t *doc, size_t size) {
  for (size_t i = 0; i < cfg->n_destinations; i++) {
    const struct bf_destination_config *dc = &cfg->destinations[i];
    const struct bf_destination_type *t = bf_destination_find(dc->type);
    if (!t || dc->unset) continue; /* an unset ${NAME}: checked when a command needs it */
    struct bf_error err = {0};
    if (bf_params_check(dc->params, t->params, "destination", &err))
      check_message(&err, doc, size, "destination params");
  }
  for (size_t i = 0; i < cfg->n_warehouses; i++) {
    for (size_t k = 0; !cfg->warehouses[i].unset && bf_source_types[k]; k++) {
      if (strcmp(cfg->warehouses[i].type, bf_source_types[k]->name)) continue;
      struct bf_error err = {0};
      if (bf_params_check(cfg->warehouses[i].params, bf_source_types[k]->params, "warehouse", &err))
        check_message(&err, doc, size, "warehouse params");
    }
  }
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    const struct bf_sync_config *s = &cfg->syncs[i];
    struct bf_error uerr = {0};
    /* What a command runs on: a sync whose ${NAME}s are all set. */
    if (bf_config_require_sync(cfg, s->name, &uerr)) {
      FUZZ_CHECK(!strncmp(uerr.msg, FILE_NAME ":", strlen(FILE_NAME ":")),
                 "message does not name the file: %s", uerr.msg);
      check_message(&uerr, doc, size, "unset variable");
      continue;
    }
    const struct bf_model_config *m = bf_config_model(cfg, s->model);
    FUZZ_CHECK(m && bf_config_destination(cfg, s->destination),
               "sync '%s' refers to an undefined model or destination", s->name);
    char *cols[256];
    size_t n = sync_columns(m, s, cols, 256);
    struct bf_mapping map;
    struct bf_error err = {0};
    if (n < 256) {
      int rc = bf_mapping_build(cfg, s, m, cols, n, &map, &err);
      FUZZ_CHECK(rc == 0, "mapping of sync '%s' with all its columns: %s", s->name, err.msg);
      bf_mapping_release(&map);
    }
    if (s->schedule == BF_SCHEDULE_CRON) {
      struct bf_cron cron;
      struct bf_error cerr = {0};
      /* Not check_message: bf_cron_parse quotes the expression as written,
       * newlines and ${NAME} values included (an open finding in
       * docs/reliability.md; src/server/cron.c is not this target's to fix). */
      if (bf_cron_parse(s->cron, &cron, &cerr)) {
        FUZZ_CHECK(cerr.msg[0], "cron error without a message");
      } else {
        long long after = 1767225600000LL; /* 2026-01-01T00:00:00Z */
        long long next = bf_cron_next(&cron, after, true);
        FUZZ_CHECK(next == -1 || (next > after && next % 60000 == 0), "cron '%s' next fire %lld",
                   s->cron, next);
      }
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy, so reading past the end is caught. */
  char *text = malloc(size ? size : 1);
  memcpy(text, data, size);
  struct bf_config *cfg = (struct bf_config *)1;
  struct bf_error err = {0};
  int rc = bf_config_parse(FILE_NAME, text, size, "/proj", &cfg, &err);
  if (rc) {
    FUZZ_CHECK(rc == BF_E_CONFIG || rc == BF_E_NOMEM, "unexpected code %d: %s", rc, err.msg);
    FUZZ_CHECK(err.code == rc, "err.code %d, returned %d", err.code, rc);
    FUZZ_CHECK(cfg == NULL, "a failed parse returned a config");
    FUZZ_CHECK(!strncmp(err.msg, FILE_NAME ":", strlen(FILE_NAME ":")),
               "message does not name the file: %s", err.msg);
    check_message(&err, data, size, "parse");
  } else {
    FUZZ_CHECK(cfg != NULL && err.code == 0, "success without a config or with an error");
    FUZZ_CHECK(cfg->version == 1 && cfg->state_dir && cfg->server_listen,
               "defaults missing after a successful parse");
    check_parsed(cfg, data, size);
    bf_config_free(cfg);
  }
  free(text);
  return 0;
}

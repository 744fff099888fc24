/* The table of sync keys and reject_threshold (sync_keys.h). */
#include "spec/sync_keys.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct bf_param_spec bf_sync_keys[] = {
    {"model", BF_PARAM_STRING, NULL, true, false, "the model whose rows are sent"},
    {"destination", BF_PARAM_STRING, NULL, true, false, "the destination they are sent to"},
    {"mode", BF_PARAM_STRING, "upsert", false, false, "upsert | update | insert | mirror"},
    {"object", BF_PARAM_STRING, NULL, false, false,
     "destination object, where the destination has several (e.g. contacts)"},
    {"match", BF_PARAM_MAP, NULL, true, false, "destination identifier field: model column"},
    {"fields", BF_PARAM_MAP, NULL, false, false, "destination field: model column"},
    {"constants", BF_PARAM_MAP, NULL, false, false,
     "destination field: value (plain YAML scalars keep their type)"},
    {"schedule", BF_PARAM_MAP, NULL, false, false,
     "{every: 15m} | {cron: \"0 * * * *\"} | {after: other_sync} | live"},
    {"pii_policy", BF_PARAM_MAP, NULL, false, false,
     "per PII column: allow (default) | hash | drop"},
    {"batch_size", BF_PARAM_INT, NULL, false, false,
     "records per batch (default: the destination's; above its maximum is an error)"},
    {"reject_threshold", BF_PARAM_STRING, NULL, false, false,
     "rejected rows a run tolerates: a share of the rows read (0.1%) or a count (5); within it "
     "the run is succeeded with a warning (exit 0), not partial (exit 1)"},
    {"description", BF_PARAM_STRING, NULL, false, false, "free text"},
    {"write_back", BF_PARAM_MAP, NULL, false, false,
     "{warehouse: NAME, schema: backflow}: run summaries and errors into the warehouse"},
    {"alerts", BF_PARAM_MAP, NULL, false, false, "alerts of this sync (see docs/server.md)"},
    {"reconcile", BF_PARAM_DURATION, "1h", false, false,
     "schedule: live only: full reconciliation run every ... (0s: never)"},
    {"state", BF_PARAM_STRING, "local", false, false,
     "local (state_dir) | warehouse: the state in the model's PostgreSQL warehouse, schema "
     "backflow, and the diff computed there (docs/scale.md)"},
    {NULL, 0, NULL, false, false, NULL},
};

int bf_sync_parse_reject_threshold(const struct bf_node *n, struct bf_sync_config *s,
                                   struct bf_error *err) {
  const char *text = n->kind == BF_NODE_SCALAR ? n->scalar : "";
  size_t len = strlen(text);
  char *end = NULL;
  errno = 0;
  if (len > 1 && text[len - 1] == '%') {
    double pct = strtod(text, &end);
    if (end == text + len - 1 && errno == 0 && isfinite(pct) && pct >= 0 && pct <= 100) {
      s->reject_threshold_pct = pct;
      s->reject_threshold_set = true;
      return 0;
    }
  } else if (len > 0 && text[0] >= '0' && text[0] <= '9') {
    long long count = strtoll(text, &end, 10);
    if (end == text + len && errno == 0) {
      s->reject_threshold_count = count;
      s->reject_threshold_pct = -1;
      s->reject_threshold_set = true;
      return 0;
    }
  }
  return bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: invalid reject_threshold in sync '%s'; expected a share of the "
                      "rows read from 0%% to 100%%, e.g. 0.1%%, or a count of rows, e.g. 5",
                      n->loc.file, n->loc.line, n->loc.col, s->name);
}

bool bf_sync_rejects_tolerated(const struct bf_sync_config *s, long long rejected, long long failed,
                               long long rows_read) {
  if (!s->reject_threshold_set || failed > 0) return false;
  if (s->reject_threshold_pct < 0) return rejected <= s->reject_threshold_count;
  return (double)rejected * 100.0 <= s->reject_threshold_pct * (double)rows_read;
}

void bf_sync_threshold_note(const struct bf_sync_config *s, long long rejected, long long rows_read,
                            char *out, size_t cap) {
  char limit[48];
  if (s->reject_threshold_pct < 0)
    snprintf(limit, sizeof limit, "%lld", s->reject_threshold_count);
  else
    snprintf(limit, sizeof limit, "%g%%", s->reject_threshold_pct);
  snprintf(out, cap, "%lld rejected row%s (%.3g%% of %lld read) within reject_threshold %s",
           rejected, rejected == 1 ? "" : "s",
           rows_read ? 100.0 * (double)rejected / (double)rows_read : 0.0, rows_read, limit);
}

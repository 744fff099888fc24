/* Rejected rows counted per reason, so `plan` can say why it would reject
 * rows and not only how many (runner.h). */
#include <string.h>

#include "engine/runner.h"

void bf_run_result_add_reason(struct bf_run_result *res, const char *column, const char *reason) {
  char *text = column ? bf_xasprintf("%s: %s", column, reason) : bf_xstrdup(reason);
  /* Few distinct reasons in practice (NULL key, duplicate key, a field that
   * does not normalise): a linear search is the cheap way. */
  for (size_t i = 0; i < res->n_reasons; i++) {
    if (!strcmp(res->reasons[i].reason, text) ||
        (i == BF_RUN_MAX_REASONS && !strcmp(res->reasons[i].reason, "other reasons"))) {
      res->reasons[i].count++;
      free(text);
      return;
    }
  }
  if (res->n_reasons == BF_RUN_MAX_REASONS) {
    free(text);
    text = bf_xstrdup("other reasons");
  }
  if (res->n_reasons > BF_RUN_MAX_REASONS) { /* cannot happen: "other reasons" matched */
    free(text);
    return;
  }
  res->reasons = bf_xrealloc(res->reasons, (res->n_reasons + 1) * sizeof *res->reasons);
  res->reasons[res->n_reasons++] = (struct bf_reason_count){text, 1};
}

#include <criterion/criterion.h>
#include <string.h>

#include "destinations/destination.h"

/* A destination that forgets a record must not have it counted as
 * delivered (issue 11: outcomes are calloc'ed; the zero value used to be
 * BF_OUT_OK). */
Test(outcomes, a_record_left_unset_is_retried_never_acknowledged) {
  struct bf_outcome *o = calloc(3, sizeof *o);
  cr_assert_eq(o[0].status, BF_OUT_UNSET, "the zero value is not an outcome");
  o[0].status = BF_OUT_OK;
  o[2] = (struct bf_outcome){BF_OUT_REJECT, strdup("bad email")};
  cr_assert_eq(bf_outcomes_settle("crm", o, 3), 1);
  cr_assert_eq(o[0].status, BF_OUT_OK);
  cr_assert_null(o[0].reason);
  cr_assert_eq(o[1].status, BF_OUT_RETRY);
  cr_assert_str_eq(o[1].reason, "destination 'crm' did not report this record");
  cr_assert_eq(o[2].status, BF_OUT_REJECT);
  cr_assert_str_eq(o[2].reason, "bad email");
  cr_assert_eq(bf_outcomes_settle("crm", o, 3), 0, "settling twice changes nothing");
  for (int i = 0; i < 3; i++) free(o[i].reason);
  free(o);
}

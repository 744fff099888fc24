/* libFuzzer target: HubSpot's batch answers (batch/upsert, batch/read,
 * batch/archive; src/destinations/hubspot_internal.h), fed any body a server
 * could send (issue 19: every SaaS destination's response parser).
 * Input: a selector byte, a record-count byte, a flags byte (bit 0: ids
 * compare case-insensitively, bit 1: two records share an id), then the body.
 *
 * Properties, besides ASan/UBSan (outcome arrays are exact-size heap
 * blocks): every outcome of the piece is OK, RETRY or REJECT; RETRY and
 * REJECT carry a reason; records outside the piece are never touched. */
#include <stdint.h>
#include <stdio.h>

#include "destinations/hubspot_internal.h"
#include "spec/mapping.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_setup_env();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return -1;
  int which = data[0] % 3;
  size_t n = data[1] % 9 + 1; /* records in the batch; the piece holds all but the last */
  bool ci = data[2] & 1, shared = data[2] & 2;
  struct bf_http_response r = {.status = 200};
  bf_buf_append(&r.body, data + 3, size - 3);
  const char *match[] = {"email"};
  struct bf_mapping map = {.match_names = match, .n_match = 1};
  struct bf_record *recs = calloc(n, sizeof *recs);
  char **ids = calloc(n, sizeof *ids);
  for (size_t i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "person%zu@Example.com", shared && i == 1 ? 0 : i);
    ids[i] = strdup(id);
  }
  struct bf_batch batch = {
      .sync_name = "fuzz", .object = "contacts", .mapping = &map, .n = n, .records = recs};
  struct bf_hs_piece pc = {.recs = calloc(n, sizeof(size_t)), .n = n - 1};
  for (size_t k = 0; k < pc.n; k++) pc.recs[k] = k;
  struct bf_outcome *o = calloc(n, sizeof *o);
  o[n - 1].status = BF_OUT_RETRY; /* outside the piece: must stay as it is */
  switch (which) {
  case 0: bf_hs_parse_upsert(&batch, &pc, ids, ci, &r, o); break;
  case 1: bf_hs_parse_read(&batch, &pc, ids, ci, &r, o); break;
  default: bf_hs_parse_archive(&batch, &pc, ids, ci, &r, o); break;
  }
  for (size_t k = 0; k < pc.n; k++) {
    FUZZ_CHECK(o[k].status == BF_OUT_OK || o[k].status == BF_OUT_RETRY ||
                   o[k].status == BF_OUT_REJECT,
               "record %zu has status %d", k, (int)o[k].status);
    FUZZ_CHECK(o[k].status == BF_OUT_OK || o[k].reason, "record %zu has no reason", k);
  }
  FUZZ_CHECK(o[n - 1].status == BF_OUT_RETRY && !o[n - 1].reason,
             "a record outside the piece changed");
  for (size_t i = 0; i < n; i++) {
    free(o[i].reason);
    free(ids[i]);
  }
  free(o);
  free(ids);
  free(pc.recs);
  free(recs);
  bf_buf_release(&r.body);
  return 0;
}

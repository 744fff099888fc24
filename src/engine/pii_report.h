/* The PII footprint of a project (`backflow pii`, the dashboard's PII page):
 * per sync, which pii columns reach which destination fields and how, the
 * records the destination holds, the vault and identifier index kept for
 * it; then the suppression list and the pending erasures. Read without
 * locks; no warehouse or destination is contacted. */
#ifndef BF_PII_REPORT_H
#define BF_PII_REPORT_H

#include "engine/project.h"
#include "util/jsonw.h"

/* Appends the report as one JSON object (and a newline) to json and, when
 * text is not NULL, in words to text. A part that cannot be read is left
 * out (null) with err set to the first such problem; the result is its
 * code when the list of erased people or pending erasures could not be
 * read (else 0). The rest is still reported. */
int bf_pii_report(struct bf_project *p, struct bf_buf *json, struct bf_buf *text,
                  struct bf_error *err);

#endif

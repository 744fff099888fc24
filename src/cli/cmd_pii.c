/* backflow pii [--json]: the PII footprint per destination (engine/pii_report.h). */
#include <stdio.h>

#include "cli/cli.h"
#include "engine/pii_report.h"

int bf_cmd_pii(struct bf_cli *cli, struct bf_error *err) {
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  if (cli->argc != 0) return bf_error_set(err, BF_E_USAGE, "pii takes no arguments"), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project(cli, &p, err)) return bf_code_exit_status(err->code);
  struct bf_buf json = {0}, text = {0};
  struct bf_error rerr = {0};
  int rc = bf_pii_report(p, &json, cli->json ? NULL : &text, &rerr);
  const struct bf_buf *out = cli->json ? &json : &text;
  fwrite(out->data, 1, out->len, stdout);
  if (rerr.code) fprintf(stderr, "backflow pii: %s\n", rerr.msg);
  bf_buf_release(&json);
  bf_buf_release(&text);
  bf_project_free(p);
  return rc ? 2 : 0;
}

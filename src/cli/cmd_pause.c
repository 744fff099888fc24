/* backflow pause SYNC / backflow resume SYNC: the marker a running
 * `backflow serve` reads before each run (engine/pause.h). */
#include <stdio.h>

#include "cli/cli.h"
#include "util/jsonw.h"
#include "engine/pause.h"

static int pause_or_resume(struct bf_cli *cli, bool paused, struct bf_error *err) {
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  if (cli->argc != 1)
    return bf_error_set(err, BF_E_USAGE, "usage: backflow %s SYNC", paused ? "pause" : "resume"), 2;
  struct bf_project *p = NULL;
  if (bf_cli_project_lazy(cli, &p, err)) return bf_code_exit_status(err->code);
  const char *name = cli->argv[0];
  const struct bf_sync_config *s = bf_project_find_sync(p, name, err);
  bool changed = false;
  int status = 0;
  if (!s || bf_pause_set(p->state_dir, s, paused, &changed, err)) {
    status = bf_code_exit_status(err->code);
    goto out;
  }
  if (cli->json) {
    struct bf_buf out = {0};
    bf_buf_puts(&out, "{\"sync\":");
    bf_json_cstr(&out, name);
    bf_buf_printf(&out, ",\"paused\":%s,\"changed\":%s}\n", paused ? "true" : "false",
                  changed ? "true" : "false");
    fputs(bf_buf_cstr(&out), stdout);
    bf_buf_release(&out);
  } else if (paused) {
    printf(changed ? "%s: paused; `backflow serve` starts no run of it until `backflow resume "
                     "%s`\n"
                   : "%s: already paused (resume with `backflow resume %s`)\n",
           name, name);
  } else {
    printf(changed ? "%s: resumed; its schedule applies again\n" : "%s: was not paused\n", name);
  }
out:
  bf_project_free(p);
  return status;
}

int bf_cmd_pause(struct bf_cli *cli, struct bf_error *err) {
  return pause_or_resume(cli, true, err);
}

int bf_cmd_resume(struct bf_cli *cli, struct bf_error *err) {
  return pause_or_resume(cli, false, err);
}

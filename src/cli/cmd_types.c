/* backflow types [NAME] [--markdown] [--json]: every warehouse and
 * destination type (or those named NAME: postgres is both) with its
 * configuration keys, printed from the same tables that validate configs
 * (the README's reference is generated from this: `make docs`). */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "util/jsonw.h"
#include "spec/sync_keys.h"
#include "destinations/destination.h"
#include "sources/source.h"

static const char *type_name(enum bf_param_type t) {
  switch (t) {
  case BF_PARAM_STRING: return "string";
  case BF_PARAM_INT: return "integer";
  case BF_PARAM_BOOL: return "boolean";
  case BF_PARAM_DURATION: return "duration";
  case BF_PARAM_MAP: return "mapping";
  }
  return "?";
}

static void print_rows(const struct bf_param_spec *params, bool markdown);

static void print_params(const char *kind, const char *name, const struct bf_param_spec *params,
                         bool markdown) {
  if (markdown) {
    printf("\n#### %s `%s`\n\n| key | type | default | |\n|---|---|---|---|\n", kind, name);
  } else {
    printf("%s %s\n", kind, name);
  }
  print_rows(params, markdown);
}

static void print_rows(const struct bf_param_spec *params, bool markdown) {
  for (const struct bf_param_spec *p = params; p && p->name; p++) {
    const char *dflt = p->required ? "required" : p->default_value ? p->default_value : "-";
    if (markdown)
      printf("| `%s` | %s | %s | %s%s |\n", p->name, type_name(p->type), dflt, p->help,
             p->secret ? " (secret: never printed)" : "");
    else
      printf("  %-18s %-9s %-10s %s%s\n", p->name, type_name(p->type), dflt, p->help,
             p->secret ? " (secret)" : "");
  }
}

static json_t *params_json(const struct bf_param_spec *params) {
  json_t *arr = json_array();
  for (const struct bf_param_spec *p = params; p && p->name; p++)
    json_array_append_new(arr,
                          json_pack("{s:s,s:s,s:b,s:o,s:b,s:s}", "key", p->name, "type",
                                    type_name(p->type), "required", p->required, "default",
                                    p->default_value ? json_string(p->default_value) : json_null(),
                                    "secret", p->secret, "help", p->help ? p->help : ""));
  return arr;
}

static bool is_source_type(const char *name) {
  for (size_t i = 0; bf_source_types[i]; i++)
    if (!strcmp(bf_source_types[i]->name, name)) return true;
  return false;
}

static void append_names(struct bf_buf *b, const char *name) {
  bf_buf_puts(b, b->len ? ", " : "");
  bf_buf_puts(b, name);
}

int bf_cmd_types(struct bf_cli *cli, struct bf_error *err) {
  bool markdown = bf_cli_flag(cli, "--markdown");
  if (bf_cli_no_more_options(cli, NULL, err)) return 2;
  if (cli->argc > 1) return bf_error_set(err, BF_E_USAGE, "types takes at most one type name"), 2;
  if (markdown && cli->json)
    return bf_error_set(err, BF_E_USAGE, "--markdown and --json exclude each other"), 2;
  const char *only = cli->argc ? cli->argv[0] : NULL;
  size_t shown = 0;
  json_t *warehouses = json_array(), *destinations = json_array();
  for (size_t i = 0; bf_source_types[i]; i++) {
    const struct bf_source_type *t = bf_source_types[i];
    if (only && strcmp(only, t->name)) continue;
    shown++;
    if (cli->json)
      json_array_append_new(
          warehouses, json_pack("{s:s,s:o}", "name", t->name, "keys", params_json(t->params)));
    else
      print_params("warehouse", t->name, t->params, markdown);
  }
  for (size_t i = 0; bf_destination_types[i]; i++) {
    const struct bf_destination_type *t = bf_destination_types[i];
    if (only && strcmp(only, t->name)) continue;
    shown++;
    if (cli->json) {
      json_array_append_new(destinations,
                            json_pack("{s:s,s:o,s:I,s:I}", "name", t->name, "keys",
                                      params_json(t->params), "max_batch", (json_int_t)t->max_batch,
                                      "default_batch", (json_int_t)t->default_batch));
      continue;
    }
    print_params("destination", t->name, t->params, markdown);
    if (markdown)
      printf("\nBatches of up to %zu records (default %zu).\n", t->max_batch, t->default_batch);
  }
  /* `types sync`: the keys every sync takes (not a type, but the same table
   * validates them). */
  bool syncs = !only || !strcmp(only, "sync");
  if (syncs) {
    shown++;
    if (markdown)
      printf("\n#### sync keys (`syncs: NAME: {...}`)\n\n| key | type | default | |\n"
             "|---|---|---|---|\n");
    else if (!cli->json)
      printf("sync (keys of every sync)\n");
    if (!cli->json) print_rows(bf_sync_keys, markdown);
  }
  int status = 0;
  if (shown == 0) {
    struct bf_buf names = {0};
    for (size_t i = 0; bf_source_types[i]; i++) append_names(&names, bf_source_types[i]->name);
    for (size_t i = 0; bf_destination_types[i]; i++)
      if (!is_source_type(bf_destination_types[i]->name))
        append_names(&names, bf_destination_types[i]->name);
    status = 2;
    bf_error_set(err, BF_E_USAGE, "no type '%s'; the types are: %s", only, bf_buf_cstr(&names));
    bf_buf_release(&names);
  } else if (cli->json) {
    json_t *doc = json_pack("{s:O,s:O,s:o}", "warehouses", warehouses, "destinations", destinations,
                            "sync_keys", syncs ? params_json(bf_sync_keys) : json_array());
    char *text = json_dumps(doc, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(doc);
  }
  json_decref(warehouses);
  json_decref(destinations);
  return status;
}

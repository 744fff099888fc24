/* backflow types [--markdown]: every warehouse and destination type with its
 * configuration keys, printed from the same tables that validate configs
 * (the README's reference is generated from this: `make docs`). */
#include <stdio.h>

#include "cli/cli.h"
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

static void print_params(const char *kind, const char *name, const struct bf_param_spec *params,
                         bool markdown) {
  if (markdown) {
    printf("\n#### %s `%s`\n\n| key | type | default | |\n|---|---|---|---|\n", kind, name);
  } else {
    printf("%s %s\n", kind, name);
  }
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

int bf_cmd_types(struct bf_cli *cli, struct bf_error *err) {
  bool markdown = bf_cli_flag(cli, "--markdown");
  if (bf_cli_no_more_options(cli, "types [--markdown]", err)) return 2;
  for (size_t i = 0; bf_source_types[i]; i++)
    print_params("warehouse", bf_source_types[i]->name, bf_source_types[i]->params, markdown);
  for (size_t i = 0; bf_destination_types[i]; i++) {
    const struct bf_destination_type *t = bf_destination_types[i];
    print_params("destination", t->name, t->params, markdown);
    if (markdown)
      printf("\nBatches of up to %zu records (default %zu).\n", t->max_batch, t->default_batch);
  }
  return 0;
}

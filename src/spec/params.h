/* Declarative config keys for warehouses and destinations: one table per
 * type drives validation, defaults and help text. */
#ifndef BF_PARAMS_H
#define BF_PARAMS_H

#include <stdbool.h>

#include "spec/config.h"

enum bf_param_type {
  BF_PARAM_STRING,
  BF_PARAM_INT,
  BF_PARAM_BOOL,
  BF_PARAM_DURATION,
  BF_PARAM_MAP
};

struct bf_param_spec {
  const char *name;
  enum bf_param_type type;
  const char *default_value; /* NULL: no default */
  bool required;
  bool secret; /* never printed */
  const char *help;
};

/* Checks every key of params against specs (unknown keys, types, required).
 * what = "destination 'hook' (webhook)" for messages. */
int bf_params_check(const struct bf_node *params, const struct bf_param_spec *specs,
                    const char *what, struct bf_error *err);
/* Typed getters with the spec's default; call after bf_params_check. */
const char *bf_params_str(const struct bf_node *params, const struct bf_param_spec *specs,
                          const char *name);
long long bf_params_int(const struct bf_node *params, const struct bf_param_spec *specs,
                        const char *name);
bool bf_params_bool(const struct bf_node *params, const struct bf_param_spec *specs,
                    const char *name);
long long bf_params_duration_ms(const struct bf_node *params, const struct bf_param_spec *specs,
                                const char *name);

#endif

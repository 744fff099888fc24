#include "spec/params.h"

#include <string.h>

static const struct bf_param_spec *find_spec(const struct bf_param_spec *specs, const char *name) {
  for (; specs && specs->name; specs++)
    if (!strcmp(specs->name, name)) return specs;
  return NULL;
}

int bf_params_check(const struct bf_node *params, const struct bf_param_spec *specs,
                    const char *what, struct bf_error *err) {
  const char *allowed[64];
  size_t n = 0;
  allowed[n++] = "type";
  for (const struct bf_param_spec *s = specs; s && s->name && n < 63; s++) allowed[n++] = s->name;
  allowed[n] = NULL;
  int rc = bf_node_check_keys(params, what, allowed, err);
  if (rc) return rc;
  for (const struct bf_param_spec *s = specs; s && s->name; s++) {
    const struct bf_node *v = bf_node_get(params, s->name);
    if (!v) {
      if (s->required)
        return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s needs '%s' (%s)", params->loc.file,
                            params->loc.line, params->loc.col, what, s->name, s->help);
      continue;
    }
    bool is_map = v->kind == BF_NODE_MAP;
    if ((s->type == BF_PARAM_MAP) != is_map || v->kind == BF_NODE_SEQ)
      return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s: '%s' must be %s", v->loc.file,
                          v->loc.line, v->loc.col, what, s->name,
                          s->type == BF_PARAM_MAP ? "a mapping" : "a single value");
    long long i;
    bool b;
    switch (s->type) {
    case BF_PARAM_INT: rc = bf_node_as_int(v, 0, 1LL << 40, &i, err); break;
    case BF_PARAM_BOOL: rc = bf_node_as_bool(v, &b, err); break;
    case BF_PARAM_DURATION: rc = bf_node_as_duration_ms(v, &i, err); break;
    default: break;
    }
    if (rc) return rc; /* the message already names file:line:col */
  }
  return 0;
}

static const struct bf_node *value_node(const struct bf_node *params,
                                        const struct bf_param_spec *specs, const char *name,
                                        const char **dflt) {
  const struct bf_param_spec *s = find_spec(specs, name);
  if (!s) BF_BUG("unknown param '%s'", name);
  *dflt = s->default_value;
  return bf_node_get(params, name);
}

const char *bf_params_str(const struct bf_node *params, const struct bf_param_spec *specs,
                          const char *name) {
  const char *dflt;
  const struct bf_node *v = value_node(params, specs, name, &dflt);
  return v && v->kind == BF_NODE_SCALAR ? v->scalar : dflt;
}

long long bf_params_int(const struct bf_node *params, const struct bf_param_spec *specs,
                        const char *name) {
  const char *dflt;
  const struct bf_node *v = value_node(params, specs, name, &dflt);
  long long out = dflt ? strtoll(dflt, NULL, 10) : 0;
  if (v) bf_node_as_int(v, 0, 1LL << 40, &out, NULL);
  return out;
}

bool bf_params_bool(const struct bf_node *params, const struct bf_param_spec *specs,
                    const char *name) {
  const char *dflt;
  const struct bf_node *v = value_node(params, specs, name, &dflt);
  bool out = dflt && !strcmp(dflt, "true");
  if (v) bf_node_as_bool(v, &out, NULL);
  return out;
}

long long bf_params_duration_ms(const struct bf_node *params, const struct bf_param_spec *specs,
                                const char *name) {
  const char *dflt;
  const struct bf_node *v = value_node(params, specs, name, &dflt);
  long long out = 0;
  if (v) {
    bf_node_as_duration_ms(v, &out, NULL);
  } else if (dflt) {
    struct bf_node tmp = {.kind = BF_NODE_SCALAR, .scalar = (char *)dflt};
    bf_node_as_duration_ms(&tmp, &out, NULL);
  }
  return out;
}

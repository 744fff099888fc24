#include "spec/mapping.h"

#include "util/pii_normalize.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

static int find_column(char *const *columns, size_t ncols, const char *name, size_t *out) {
  for (size_t i = 0; i < ncols; i++) {
    if (strcmp(columns[i], name) == 0) {
      *out = i;
      return 0;
    }
  }
  return -1;
}

/* hide: the column name came from ${NAME} and may be a secret; not shown. */
static int missing_column(const struct bf_loc *loc, const char *what, const char *column, bool hide,
                          const struct bf_model_config *model, char *const *columns, size_t ncols,
                          struct bf_error *err) {
  char list[512] = "";
  for (size_t i = 0; i < ncols; i++) {
    if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
    strncat(list, columns[i], sizeof list - strlen(list) - 1);
  }
  const char *cands[65];
  size_t n = ncols < 64 ? ncols : 64;
  for (size_t i = 0; i < n; i++) cands[i] = columns[i];
  cands[n] = NULL;
  const char *guess = hide ? NULL : bf_did_you_mean(column, cands);
  int rc = bf_error_set(
      err, BF_E_CONFIG, "%s:%d:%d: %s %s%s%s is not a column of model '%s'%s%s%s (its columns: %s)",
      loc->file, loc->line, loc->col, what, hide ? "" : "'",
      hide ? "(a value from the environment, not shown)" : column, hide ? "" : "'", model->name,
      guess ? "; did you mean '" : "", guess ? guess : "", guess ? "'?" : "", list);
  /* Names from the config or the query may hold a newline: keep the message one line. */
  for (char *c = err ? err->msg : NULL; c && *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
  return rc;
}

static bool from_env(const struct bf_node *n) { return n && n->from_env; }

/* Constants keep YAML's plain-scalar typing: `3` is a number, `"3"` text. */
static struct bf_value constant_value(const struct bf_node *node, const char *text) {
  struct bf_value v = {.type = BF_TEXT};
  if (node && !node->quoted) {
    char *end;
    long long i = strtoll(text, &end, 10);
    if (*text && *end == '\0') return (struct bf_value){.type = BF_INT, .u.i = i};
    double f = strtod(text, &end);
    if (*text && *end == '\0') return (struct bf_value){.type = BF_FLOAT, .u.f = f};
    if (!strcmp(text, "true") || !strcmp(text, "false"))
      return (struct bf_value){.type = BF_BOOL, .u.i = text[0] == 't'};
    if (!strcmp(text, "null") || !strcmp(text, "~") || !*text) return (struct bf_value){0};
  }
  v.len = (uint32_t)strlen(text);
  v.u.s = bf_xstrdup(text);
  return v;
}

int bf_mapping_build(const struct bf_config *cfg, const struct bf_sync_config *sync,
                     const struct bf_model_config *model, char *const *columns, size_t ncols,
                     struct bf_mapping *m, struct bf_error *err) {
  memset(m, 0, sizeof *m);
  const struct bf_node *model_node = bf_node_get(bf_node_get(cfg->root, "models"), model->name);
  const struct bf_node *sync_node = bf_node_get(bf_node_get(cfg->root, "syncs"), sync->name);
  if (find_column(columns, ncols, model->primary_key, &m->pk_col) < 0)
    return missing_column(&model->primary_key_loc, "primary key", model->primary_key,
                          from_env(bf_node_get(model_node, "primary_key")), model, columns, ncols,
                          err);
  m->n_match = sync->match.n;
  m->match_names = bf_xcalloc(m->n_match, sizeof *m->match_names);
  m->match_cols = bf_xcalloc(m->n_match, sizeof *m->match_cols);
  m->match_pii_kinds = bf_xcalloc(m->n_match, sizeof *m->match_pii_kinds);
  for (size_t i = 0; i < sync->match.n; i++) {
    const struct bf_pair *p = &sync->match.items[i];
    m->match_names[i] = p->key;
    const char *match_policy = bf_pairs_get(&sync->pii_policy, p->value);
    if (match_policy && !strcmp(match_policy, "hash")) {
      /* The destination's identifier becomes the hash: pseudonymous ids. */
      const char *kind = bf_pairs_get(&model->pii, p->value);
      m->match_pii_kinds[i] = kind ? kind : "other";
      m->has_hashed_fields = true;
    }
    if (find_column(columns, ncols, p->value, &m->match_cols[i]) < 0) {
      int rc = missing_column(&p->loc, "match column", p->value,
                              from_env(bf_node_get(bf_node_get(sync_node, "match"), p->key)), model,
                              columns, ncols, err);
      bf_mapping_release(m);
      return rc;
    }
  }
  m->field_names = bf_xcalloc(sync->fields.n, sizeof *m->field_names);
  m->field_cols = bf_xcalloc(sync->fields.n, sizeof *m->field_cols);
  m->field_actions = bf_xcalloc(sync->fields.n, sizeof *m->field_actions);
  m->field_pii_kinds = bf_xcalloc(sync->fields.n, sizeof *m->field_pii_kinds);
  for (size_t i = 0; i < sync->fields.n; i++) {
    const struct bf_pair *p = &sync->fields.items[i];
    size_t col;
    if (find_column(columns, ncols, p->value, &col) < 0) {
      int rc = missing_column(&p->loc, "field column", p->value,
                              from_env(bf_node_get(bf_node_get(sync_node, "fields"), p->key)),
                              model, columns, ncols, err);
      bf_mapping_release(m);
      return rc;
    }
    const char *policy = bf_pairs_get(&sync->pii_policy, p->value);
    enum bf_pii_action action = BF_PII_ALLOW;
    if (policy && !strcmp(policy, "drop")) action = BF_PII_DROP;
    if (policy && !strcmp(policy, "hash")) action = BF_PII_HASH;
    if (action == BF_PII_DROP) continue; /* never leaves the warehouse */
    size_t k = m->n_fields++;
    m->field_names[k] = p->key;
    m->field_cols[k] = col;
    m->field_actions[k] = action;
    m->field_pii_kinds[k] = bf_pairs_get(&model->pii, p->value);
    if (action == BF_PII_HASH) m->has_hashed_fields = true;
  }
  const struct bf_node *const_map = bf_node_get(sync_node, "constants");
  m->constant_names = bf_xcalloc(sync->constants.n, sizeof *m->constant_names);
  m->constant_values = bf_xcalloc(sync->constants.n, sizeof *m->constant_values);
  for (size_t i = 0; i < sync->constants.n; i++) {
    const struct bf_pair *p = &sync->constants.items[i];
    m->constant_names[i] = p->key;
    m->constant_values[i] = constant_value(bf_node_get(const_map, p->key), p->value);
    m->n_constants++;
  }
  /* The signature covers everything that shapes a record, so editing the
   * mapping (a new field, a new constant, a policy) resends every row. */
  struct bf_buf sig = {0};
  bf_buf_printf(&sig, "v1|%s|%s|", bf_sync_mode_name(sync->mode), sync->object ? sync->object : "");
  for (size_t i = 0; i < m->n_match; i++)
    bf_buf_printf(&sig, "m:%s:%d|", m->match_names[i], m->match_pii_kinds[i] != NULL);
  for (size_t i = 0; i < m->n_fields; i++)
    bf_buf_printf(&sig, "f:%s:%d|", m->field_names[i], (int)m->field_actions[i]);
  for (size_t i = 0; i < sync->constants.n; i++)
    bf_buf_printf(&sig, "c:%s=%s|", sync->constants.items[i].key, sync->constants.items[i].value);
  unsigned char h[8];
  crypto_generichash(h, sizeof h, (const unsigned char *)sig.data, sig.len, NULL, 0);
  memcpy(&m->signature, h, 8);
  bf_buf_release(&sig);
  return 0;
}

void bf_mapping_release(struct bf_mapping *m) {
  for (size_t i = 0; i < m->n_constants; i++)
    if (m->constant_values[i].type == BF_TEXT) free((char *)m->constant_values[i].u.s);
  free(m->match_names);
  free(m->match_cols);
  free(m->match_pii_kinds);
  free(m->field_names);
  free(m->field_cols);
  free(m->field_actions);
  free(m->field_pii_kinds);
  free(m->constant_names);
  free(m->constant_values);
  memset(m, 0, sizeof *m);
}

bool bf_mapping_key_bytes(const struct bf_value *v, struct bf_buf *out) {
  bf_buf_reset(out);
  char tmp[40];
  switch (v->type) {
  case BF_NULL: return false;
  case BF_INT:
  case BF_BOOL: {
    /* Hot path (one per row): plain digit loop instead of snprintf. */
    uint64_t u = v->u.i < 0 ? 0 - (uint64_t)v->u.i : (uint64_t)v->u.i;
    char *end = tmp + sizeof tmp, *p = end;
    do {
      *--p = (char)('0' + u % 10);
      u /= 10;
    } while (u);
    if (v->u.i < 0) *--p = '-';
    bf_buf_append(out, p, (size_t)(end - p));
    break;
  }
  case BF_FLOAT: bf_buf_append(out, tmp, (size_t)snprintf(tmp, sizeof tmp, "%.17g", v->u.f)); break;
  case BF_TEXT:
  case BF_JSON:
  case BF_BLOB: bf_buf_append(out, v->u.s, v->len); break;
  }
  return true;
}

/* Appends a value's tag and bytes to p; returns the end. The caller has
 * reserved value_size() bytes. One row's fingerprint input is built with
 * plain stores: this runs once per value of every row. */
static size_t value_size(const struct bf_value *v) {
  return bf_value_has_bytes(v->type) ? 5 + (size_t)v->len : 9;
}

static unsigned char *put_value(unsigned char *p, const struct bf_value *v) {
  *p++ = (unsigned char)v->type;
  switch (v->type) {
  case BF_NULL: memset(p, 0, 8); return p + 8;
  case BF_INT:
  case BF_BOOL: memcpy(p, &v->u.i, 8); return p + 8;
  case BF_FLOAT: memcpy(p, &v->u.f, 8); return p + 8;
  case BF_TEXT:
  case BF_JSON:
  case BF_BLOB:
    memcpy(p, &v->len, 4);
    memcpy(p + 4, v->u.s, v->len);
    return p + 4 + v->len;
  }
  return p;
}

void bf_mapping_fingerprint_bytes(const struct bf_mapping *m, const struct bf_value *row,
                                  struct bf_buf *out) {
  size_t need = 8;
  for (size_t i = 0; i < m->n_match; i++) need += value_size(&row[m->match_cols[i]]);
  for (size_t i = 0; i < m->n_fields; i++) need += value_size(&row[m->field_cols[i]]);
  bf_buf_reset(out);
  bf_buf_reserve(out, need);
  unsigned char *p = (unsigned char *)out->data;
  memcpy(p, &m->signature, 8);
  p += 8;
  for (size_t i = 0; i < m->n_match; i++) p = put_value(p, &row[m->match_cols[i]]);
  for (size_t i = 0; i < m->n_fields; i++) p = put_value(p, &row[m->field_cols[i]]);
  out->len = (size_t)(p - (unsigned char *)out->data);
}

void bf_mapping_match_json(const struct bf_mapping *m, const struct bf_value *row,
                           struct bf_buf *out) {
  bf_buf_reset(out);
  bf_buf_putc(out, '{');
  for (size_t i = 0; i < m->n_match; i++) {
    if (i) bf_buf_putc(out, ',');
    bf_json_cstr(out, m->match_names[i]);
    bf_buf_putc(out, ':');
    const struct bf_value *v = &row[m->match_cols[i]];
    if (m->match_pii_kinds[i] && v->type != BF_NULL) {
      char num[48], hex[BF_PII_SHA256_HEX];
      const char *s, *why;
      size_t n;
      bf_pii_value_text(v, num, sizeof num, &s, &n);
      if (bf_pii_normalize_hash(bf_pii_fn_for_kind(m->match_pii_kinds[i]), s, n, hex, &why) == 0)
        bf_json_str(out, hex, 64);
      else
        bf_buf_puts(out, "null"); /* unreachable: bf_mapping_check_row rejected the row */
    } else {
      bf_json_value(out, v);
    }
  }
  bf_buf_putc(out, '}');
}

struct bf_value bf_mapping_field_value(const struct bf_mapping *m, size_t field,
                                       const struct bf_value *v, struct bf_buf *tmp) {
  if (m->field_actions[field] != BF_PII_HASH || v->type == BF_NULL) return *v;
  char num[48];
  const char *s, *why;
  size_t n;
  bf_pii_value_text(v, num, sizeof num, &s, &n);
  bf_buf_reset(tmp);
  bf_buf_reserve(tmp, BF_PII_SHA256_HEX);
  /* Rows with invalid values were rejected by bf_mapping_check_row; this
   * is the belt to its braces: never the hash of garbage. */
  if (bf_pii_normalize_hash(bf_pii_fn_for_kind(m->field_pii_kinds[field]), s, n, tmp->data, &why))
    return (struct bf_value){.type = BF_NULL};
  tmp->len = 64;
  return (struct bf_value){.type = BF_TEXT, .len = 64, .u.s = tmp->data};
}

int bf_mapping_check_row(const struct bf_mapping *m, const struct bf_value *row, size_t *bad_field,
                         const char **why) {
  if (!m->has_hashed_fields) return 0;
  char out[BF_PII_SHA256_HEX], num[48];
  for (size_t i = 0; i < m->n_match; i++) {
    const struct bf_value *v = &row[m->match_cols[i]];
    if (!m->match_pii_kinds[i] || v->type == BF_NULL) continue;
    const char *s;
    size_t n;
    bf_pii_value_text(v, num, sizeof num, &s, &n);
    if (bf_pii_normalize_hash(bf_pii_fn_for_kind(m->match_pii_kinds[i]), s, n, out, why)) {
      *bad_field = SIZE_MAX; /* a match column */
      return -1;
    }
  }
  for (size_t i = 0; i < m->n_fields; i++) {
    const struct bf_value *v = &row[m->field_cols[i]];
    if (m->field_actions[i] != BF_PII_HASH || v->type == BF_NULL) continue;
    const char *s;
    size_t n;
    bf_pii_value_text(v, num, sizeof num, &s, &n);
    if (bf_pii_normalize_hash(bf_pii_fn_for_kind(m->field_pii_kinds[i]), s, n, out, why)) {
      *bad_field = i;
      return -1;
    }
  }
  return 0;
}

/* One walk over the condition tree writes both renderings (parameters and
 * literals) so they cannot drift apart. */
#include <stdio.h>
#include <string.h>

#include "engine/segment.h"

#define MAX_DEPTH      8
#define MAX_CONDITIONS 200
#define MAX_IN_VALUES  1000
#define MAX_DAYS       36500

struct walk {
  const struct bf_segment_dialect *d;
  const char *const *columns;
  size_t ncols;
  struct bf_buf p, l; /* parameterised, literal */
  char **params;
  size_t nparams, cap;
  size_t nconds;
  struct bf_error *err;
};

static void both(struct walk *w, const char *s) {
  bf_buf_puts(&w->p, s);
  bf_buf_puts(&w->l, s);
}

/* A value: bound as $n in p, a typed literal in l. numeric: the literal is
 * written unquoted (it came from a JSON number, so it is digits). */
static size_t add_param(struct walk *w, const char *text) {
  if (w->nparams == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 8;
    w->params = bf_xrealloc(w->params, w->cap * sizeof *w->params);
  }
  w->params[w->nparams++] = bf_xstrdup(text);
  return w->nparams;
}

static void value(struct walk *w, const char *text, bool numeric) {
  add_param(w, text);
  bf_buf_printf(&w->p, "$%zu", w->nparams);
  if (numeric)
    bf_buf_puts(&w->l, text);
  else
    bf_segment_quote_string(w->d, &w->l, text);
}

/* "path: message"; fmt has at most one %s, for a. */
static int fail(struct walk *w, const char *path, const char *fmt, const char *a) {
  char msg[400];
  if (a)
    snprintf(msg, sizeof msg, fmt, a);
  else
    snprintf(msg, sizeof msg, "%s", fmt);
  return bf_error_set(w->err, BF_E_USAGE, "%s: %s", path, msg);
}

/* Text of a scalar JSON value; numeric says whether it is a number. */
static int scalar_text(struct walk *w, const char *path, const json_t *v, char *buf, size_t n,
                       const char **out, bool *numeric) {
  *numeric = false;
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
      return fail(w, path, "a value must not contain a NUL character", NULL);
    *out = s;
    return 0;
  }
  if (json_is_integer(v)) {
    snprintf(buf, n, "%lld", (long long)json_integer_value(v));
  } else if (json_is_real(v)) {
    snprintf(buf, n, "%.17g", json_real_value(v));
  } else if (json_is_boolean(v)) {
    snprintf(buf, n, "%d", json_is_true(v) ? 1 : 0);
  } else {
    return fail(w, path, "expected a string, number or boolean value", NULL);
  }
  *numeric = true;
  *out = buf;
  return 0;
}

static int column(struct walk *w, const char *path, const json_t *c, struct bf_buf *col_sql) {
  const char *name = json_string_value(c);
  if (!name || !*name) return fail(w, path, "expected a column name (a string)", NULL);
  for (size_t i = 0; i < w->ncols; i++)
    if (!strcmp(w->columns[i], name)) {
      bf_segment_quote_ident(w->d, col_sql, name);
      return 0;
    }
  const char *near = bf_did_you_mean(name, (const char *const *)w->columns);
  struct bf_buf known = {0};
  for (size_t i = 0; i < w->ncols && known.len < 300; i++)
    bf_buf_printf(&known, "%s%s", i ? ", " : "", w->columns[i]);
  char shown[80];
  snprintf(shown, sizeof shown, "%.60s", name);
  int rc = bf_error_set(w->err, BF_E_USAGE, "%s: unknown column '%s'%s%s%s (columns: %s)", path,
                        shown, near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "",
                        bf_buf_cstr(&known));
  bf_buf_release(&known);
  return rc;
}

/* LIKE pattern for contains / starts_with / ends_with: % and _ in the value
 * match themselves. */
static char *like_pattern(const char *op, const char *v) {
  struct bf_buf b = {0};
  if (strcmp(op, "starts_with")) bf_buf_putc(&b, '%');
  for (; *v; v++) {
    if (*v == '%' || *v == '_' || *v == '\\') bf_buf_putc(&b, '\\');
    bf_buf_putc(&b, *v);
  }
  if (strcmp(op, "ends_with")) bf_buf_putc(&b, '%');
  char *s = bf_xstrdup(bf_buf_cstr(&b));
  bf_buf_release(&b);
  return s;
}

static const char *const ops[] = {"=",      "!=",       "<",           "<=",           ">",
                                  ">=",     "contains", "starts_with", "ends_with",    "in",
                                  "not_in", "is_null",  "is_not_null", "in_last_days", NULL};

static int condition(struct walk *w, const char *path, const json_t *c) {
  static const char *const keys[] = {"column", "op", "value", NULL};
  const char *k;
  json_t *unused;
  json_object_foreach((json_t *)c, k, unused) {
    bool known = false;
    for (size_t i = 0; keys[i]; i++) known |= !strcmp(keys[i], k);
    if (!known)
      return fail(w, path, "unknown key '%.40s' in a condition; expected column, op, value", k);
  }
  char sub[256];
  snprintf(sub, sizeof sub, "%s.column", path);
  struct bf_buf col = {0};
  int rc = column(w, sub, json_object_get(c, "column"), &col);
  if (rc) goto out;
  const char *op = json_string_value(json_object_get(c, "op"));
  size_t oi = 0;
  while (op && ops[oi] && strcmp(ops[oi], op)) oi++;
  snprintf(sub, sizeof sub, "%s.op", path);
  if (!op || !ops[oi]) {
    rc = fail(w, sub,
              "unknown operator '%.40s'; expected =, !=, <, <=, >, >=, contains, starts_with, "
              "ends_with, in, not_in, is_null, is_not_null or in_last_days",
              op ? op : "(none)");
    goto out;
  }
  const json_t *v = json_object_get(c, "value");
  snprintf(sub, sizeof sub, "%s.value", path);
  bool no_value = !strcmp(op, "is_null") || !strcmp(op, "is_not_null");
  if (no_value != !v) {
    rc = fail(w, sub, no_value ? "operator %s takes no value" : "operator %s needs a value", op);
    goto out;
  }
  char num[64];
  const char *text;
  bool numeric;
  const char *c_sql = bf_buf_cstr(&col);
  if (no_value) {
    both(w, c_sql);
    both(w, strcmp(op, "is_null") ? " IS NOT NULL" : " IS NULL");
  } else if (!strcmp(op, "in_last_days")) {
    json_int_t days = json_is_integer(v) ? json_integer_value(v) : -1;
    if (days < 1 || days > MAX_DAYS) {
      rc = fail(w, sub, "in_last_days needs a whole number of days from 1 to 36500", NULL);
      goto out;
    }
    snprintf(num, sizeof num, "%lld", (long long)days);
    char ph[32];
    snprintf(ph, sizeof ph, "$%zu", add_param(w, num));
    bf_buf_printf(&w->p, w->d->since_days_fmt, c_sql, ph);
    bf_buf_printf(&w->l, w->d->since_days_fmt, c_sql, num);
  } else if (!strcmp(op, "in") || !strcmp(op, "not_in")) {
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0 || n > MAX_IN_VALUES) {
      rc = fail(w, sub, "%s needs a list of 1 to 1000 values", op);
      goto out;
    }
    both(w, c_sql);
    both(w, strcmp(op, "in") ? " NOT IN (" : " IN (");
    for (size_t i = 0; i < n; i++) {
      char item[300];
      snprintf(item, sizeof item, "%s[%zu]", sub, i);
      if ((rc = scalar_text(w, item, json_array_get(v, i), num, sizeof num, &text, &numeric)))
        goto out;
      if (i) both(w, ", ");
      value(w, text, numeric);
    }
    both(w, ")");
  } else {
    if ((rc = scalar_text(w, sub, v, num, sizeof num, &text, &numeric))) goto out;
    both(w, c_sql);
    if (oi >= 6) { /* contains, starts_with, ends_with */
      if (numeric) {
        rc = fail(w, sub, "%s needs a string value", op);
        goto out;
      }
      char *pat = like_pattern(op, text);
      both(w, " LIKE ");
      value(w, pat, false);
      both(w, w->d->like_escape);
      free(pat);
    } else {
      both(w, " ");
      both(w, strcmp(op, "!=") ? op : "<>");
      both(w, " ");
      value(w, text, numeric);
    }
  }
out:
  bf_buf_release(&col);
  return rc;
}

static int group(struct walk *w, const char *path, const json_t *g, int depth) {
  if (!json_is_object(g))
    return fail(w, path, "expected {\"all\": [...]} or {\"any\": [...]}", NULL);
  const json_t *all = json_object_get(g, "all"), *any = json_object_get(g, "any");
  if (!all && !any) return condition(w, path, g);
  if ((all && any) || json_object_size(g) != 1)
    return fail(w, path, "a group has exactly one key, \"all\" (AND) or \"any\" (OR)", NULL);
  if (depth >= MAX_DEPTH) return fail(w, path, "groups nest at most 8 deep", NULL);
  const json_t *items = all ? all : any;
  size_t n = json_array_size(items);
  char sub[256];
  snprintf(sub, sizeof sub, "%s.%s", path, all ? "all" : "any");
  if (!json_is_array(items) || n == 0)
    return fail(w, sub, "expected a non-empty list of conditions or groups", NULL);
  both(w, "(");
  for (size_t i = 0; i < n; i++) {
    if (++w->nconds > MAX_CONDITIONS)
      return fail(w, sub, "at most 200 conditions in a segment", NULL);
    if (i) both(w, all ? " AND " : " OR ");
    char item[300];
    snprintf(item, sizeof item, "%s[%zu]", sub, i);
    int rc = group(w, item, json_array_get(items, i), depth + 1);
    if (rc) return rc;
  }
  both(w, ")");
  return 0;
}

int bf_segment_build(const struct bf_segment_dialect *d, const char *base_sql,
                     const char *const *columns, size_t ncols, const json_t *where,
                     struct bf_segment *out, struct bf_error *err) {
  memset(out, 0, sizeof *out);
  struct walk w = {.d = d, .columns = columns, .ncols = ncols, .err = err};
  size_t n = strlen(base_sql);
  while (n && (base_sql[n - 1] == ';' || base_sql[n - 1] == ' ' || base_sql[n - 1] == '\n' ||
               base_sql[n - 1] == '\t' || base_sql[n - 1] == '\r'))
    n--;
  bf_buf_puts(&w.p, "SELECT * FROM (");
  bf_buf_append(&w.p, base_sql, n);
  bf_buf_puts(&w.p, ") AS bf_base");
  bf_buf_append(&w.l, w.p.data, w.p.len);
  int rc = 0;
  if (where && !(json_is_object(where) && json_object_size(where) == 0)) {
    both(&w, " WHERE ");
    rc = group(&w, "where", where, 0);
  }
  if (rc) {
    bf_buf_release(&w.p);
    bf_buf_release(&w.l);
    for (size_t i = 0; i < w.nparams; i++) free(w.params[i]);
    free(w.params);
    return rc;
  }
  out->sql = bf_xstrdup(bf_buf_cstr(&w.p));
  out->literal_sql = bf_xstrdup(bf_buf_cstr(&w.l));
  out->params = w.params;
  out->nparams = w.nparams;
  bf_buf_release(&w.p);
  bf_buf_release(&w.l);
  return 0;
}

void bf_segment_release(struct bf_segment *s) {
  if (!s) return;
  free(s->sql);
  free(s->literal_sql);
  for (size_t i = 0; i < s->nparams; i++) free(s->params[i]);
  free(s->params);
  memset(s, 0, sizeof *s);
}

static bool ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '$';
}

int bf_segment_table_sql(const struct bf_segment_dialect *d, const char *table, char **out,
                         struct bf_error *err) {
  *out = NULL;
  struct bf_buf b = {0};
  int parts = 0;
  const char *s = table ? table : "";
  for (;;) {
    size_t len = 0;
    while (ident_char(s[len])) len++;
    bool ok = len > 0 && len <= 128 && !(s[0] >= '0' && s[0] <= '9') && s[0] != '$';
    if (!ok || ++parts > 3 || (s[len] && s[len] != '.')) {
      bf_buf_release(&b);
      return bf_error_set(err, BF_E_USAGE,
                          "base.table: '%.60s' is not a table name; expected [schema.]table of "
                          "letters, digits and '_'",
                          table ? table : "");
    }
    char *part = bf_xstrndup(s, len);
    if (parts > 1) bf_buf_putc(&b, '.');
    bf_segment_quote_ident(d, &b, part);
    free(part);
    if (!s[len]) break;
    s += len + 1;
  }
  *out = bf_xasprintf("SELECT * FROM %s", bf_buf_cstr(&b));
  bf_buf_release(&b);
  return 0;
}

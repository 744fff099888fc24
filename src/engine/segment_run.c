/* The segment's columns come from the warehouse itself (the base selected
 * with WHERE 1=0), so a condition can only name a column that exists. */
#include <stdio.h>
#include <string.h>

#include "engine/segment.h"
#include "sources/source.h"

#define MAX_SAMPLE 100

int bf_segment_base_resolve(const struct bf_config *cfg, const json_t *base,
                            struct bf_segment_base *out, struct bf_error *err) {
  memset(out, 0, sizeof *out);
  if (!json_is_object(base))
    return bf_error_set(err, BF_E_USAGE,
                        "base: expected {\"model\": NAME} or {\"warehouse\": NAME, \"table\": T}");
  const char *model = json_string_value(json_object_get(base, "model"));
  const char *table = json_string_value(json_object_get(base, "table"));
  const char *wh = json_string_value(json_object_get(base, "warehouse"));
  if (!model == !table)
    return bf_error_set(err, BF_E_USAGE, "base: give exactly one of \"model\" or \"table\"");
  if (model) {
    out->model = bf_config_model(cfg, model);
    if (!out->model)
      return bf_error_set(err, BF_E_USAGE, "base.model: unknown model '%.60s'", model);
    if (out->model->unset)
      return bf_error_set(err, BF_E_USAGE,
                          "base.model: model '%s' names an environment variable that is not set",
                          model);
    wh = out->model->warehouse;
  } else if (!wh) {
    return bf_error_set(err, BF_E_USAGE, "base.warehouse: a table needs its warehouse's name");
  }
  out->warehouse = bf_config_warehouse(cfg, wh);
  if (!out->warehouse)
    return bf_error_set(err, BF_E_USAGE, "base.warehouse: unknown warehouse '%.60s'", wh);
  out->dialect = bf_segment_dialect_find(out->warehouse->type);
  if (!out->dialect)
    return bf_error_set(err, BF_E_USAGE, "base: warehouse '%s' of type '%s' has no SQL dialect", wh,
                        out->warehouse->type);
  if (model) {
    out->sql = bf_xstrdup(out->model->sql);
    return 0;
  }
  return bf_segment_table_sql(out->dialect, table, &out->sql, err);
}

void bf_segment_base_release(struct bf_segment_base *b) {
  if (!b) return;
  free(b->sql);
  memset(b, 0, sizeof *b);
}

static bool is_pii(const struct bf_model_config *m, const char *col) {
  return m && bf_pairs_get(&m->pii, col) != NULL;
}

static bool any_pii(const struct bf_config *cfg, const char *col) {
  for (size_t i = 0; i < cfg->n_models; i++)
    if (is_pii(&cfg->models[i], col)) return true;
  return false;
}

/* Runs sql with params and hands back the rows of its first chunk. */
static int run_params(struct bf_source *src, const char *sql, const struct bf_segment *s,
                      struct bf_cursor **cur, struct bf_rowbuf *rb, size_t max,
                      struct bf_error *err) {
  int rc = bf_source_query_params(src, sql, (const char *const *)s->params, s->nparams, cur, err);
  if (rc) return rc;
  bf_rowbuf_init(rb, (*cur)->ncols, max);
  rc = (*cur)->ops->next_chunk(*cur, rb, err);
  return rc < 0 ? rc : 0;
}

static void columns_json(struct bf_buf *out, char **cols, size_t n) {
  bf_buf_puts(out, "[");
  for (size_t i = 0; i < n; i++) {
    if (i) bf_buf_putc(out, ',');
    bf_json_cstr(out, cols[i]);
  }
  bf_buf_puts(out, "]");
}

int bf_segment_run(const struct bf_config *cfg, const json_t *req, bool preview, size_t sample,
                   bool show_pii, struct bf_buf *out, struct bf_segment *seg,
                   struct bf_segment_base *base_out, struct bf_error *err) {
  struct bf_segment_base base = {0};
  struct bf_segment s = {0};
  struct bf_source *src = NULL;
  struct bf_cursor *cur = NULL;
  struct bf_rowbuf rb = {0};
  char **cols = NULL;
  size_t ncols = 0;
  char *q = NULL;
  if (sample > MAX_SAMPLE) sample = MAX_SAMPLE;
  int rc = bf_segment_base_resolve(cfg, json_object_get(req, "base"), &base, err);
  if (rc) goto out;
  if (preview && !base.dialect->has_params) {
    rc = bf_error_set(err, BF_E_USAGE,
                      "base: previews of '%s' warehouses are not supported yet (no bound "
                      "parameters in that source); the segment can still be saved",
                      base.dialect->type);
    goto out;
  }
  if ((rc = bf_source_open(base.warehouse, cfg, &src, err))) goto out;
  q = bf_xasprintf("SELECT * FROM (%s) AS bf_probe WHERE 1=0", base.sql);
  if ((rc = bf_source_query(src, q, &cur, err))) {
    bf_error_prefix(err, "base: cannot read the columns");
    goto out;
  }
  ncols = cur->ncols;
  cols = bf_xcalloc(ncols + 1, sizeof *cols);
  for (size_t i = 0; i < ncols; i++) cols[i] = bf_xstrdup(cur->column_names[i]);
  bf_cursor_free(cur);
  cur = NULL;
  if ((rc = bf_segment_build(base.dialect, base.sql, (const char *const *)cols, ncols,
                             json_object_get(req, "where"), &s, err)))
    goto out;
  bf_buf_puts(out, "{\"sql\":");
  bf_json_cstr(out, s.sql);
  bf_buf_puts(out, ",\"params\":[");
  for (size_t i = 0; i < s.nparams; i++) {
    if (i) bf_buf_putc(out, ',');
    bf_json_cstr(out, s.params[i]);
  }
  bf_buf_puts(out, "],\"columns\":");
  columns_json(out, cols, ncols);
  if (preview) {
    free(q);
    q = bf_xasprintf("SELECT COUNT(*) FROM (%s) AS bf_count", s.sql);
    if ((rc = run_params(src, q, &s, &cur, &rb, 1, err))) goto out;
    const struct bf_value *v = rb.nrows ? bf_rowbuf_row(&rb, 0) : NULL;
    long long count = v && v->type == BF_INT     ? v->u.i
                      : v && v->type == BF_FLOAT ? (long long)v->u.f
                                                 : -1;
    bf_buf_printf(out, ",\"row_count\":%lld,\"sample\":[", count);
    bf_cursor_free(cur);
    cur = NULL;
    bf_rowbuf_release(&rb);
    free(q);
    q = bf_xasprintf("%s LIMIT %zu", s.sql, sample ? sample : 1);
    if ((rc = run_params(src, q, &s, &cur, &rb, sample ? sample : 1, err))) goto out;
    /* A table has no pii declaration: below admin its text values are
     * masked, as are columns any model of the project declares pii. */
    bool *masked = bf_xcalloc(cur->ncols + 1, sizeof *masked);
    for (size_t r = 0; sample && r < rb.nrows; r++) {
      bf_buf_puts(out, r ? ",{" : "{");
      const struct bf_value *row = bf_rowbuf_row(&rb, r);
      for (size_t c = 0; c < cur->ncols; c++) {
        if (c) bf_buf_putc(out, ',');
        bf_json_cstr(out, cur->column_names[c]);
        bf_buf_putc(out, ':');
        enum bf_type t = row[c].type;
        bool mask = !show_pii && t != BF_NULL &&
                    (base.model ? is_pii(base.model, cur->column_names[c])
                                : t == BF_TEXT || t == BF_BLOB || t == BF_JSON ||
                                      any_pii(cfg, cur->column_names[c]));
        if (mask) {
          bf_buf_puts(out, "\"***\"");
          masked[c] = true;
        } else {
          bf_json_value(out, &row[c]);
        }
      }
      bf_buf_putc(out, '}');
    }
    bf_buf_puts(out, "],\"masked\":[");
    bool first = true;
    for (size_t c = 0; c < cur->ncols; c++)
      if (masked[c] || (!show_pii && base.model && is_pii(base.model, cur->column_names[c]))) {
        if (!first) bf_buf_putc(out, ',');
        bf_json_cstr(out, cur->column_names[c]);
        first = false;
      }
    free(masked);
    bf_buf_puts(out, "]");
  }
  bf_buf_puts(out, "}");
out:
  bf_cursor_free(cur);
  bf_rowbuf_release(&rb);
  bf_source_close(src);
  free(q);
  for (size_t i = 0; i < ncols; i++) free(cols[i]);
  free(cols);
  if (rc == 0 && seg)
    *seg = s;
  else
    bf_segment_release(&s);
  if (rc == 0 && base_out)
    *base_out = base;
  else
    bf_segment_base_release(&base);
  return rc;
}

int bf_segment_model_columns(const struct bf_config *cfg, const struct bf_model_config *m,
                             struct bf_buf *out, struct bf_error *err) {
  const struct bf_warehouse_config *wh = bf_config_warehouse(cfg, m->warehouse);
  if (!wh || m->unset)
    return bf_error_set(err, BF_E_USAGE, "model '%s' cannot be read (warehouse or ${NAME} unset)",
                        m->name);
  struct bf_source *src = NULL;
  struct bf_cursor *cur = NULL;
  struct bf_rowbuf rb = {0};
  char *q = bf_xasprintf("SELECT * FROM (%s) AS bf_probe LIMIT 1", m->sql);
  int rc = bf_source_open(wh, cfg, &src, err);
  if (!rc) rc = bf_source_query(src, q, &cur, err);
  if (!rc) {
    bf_rowbuf_init(&rb, cur->ncols, 1);
    int got = cur->ops->next_chunk(cur, &rb, err);
    if (got < 0) rc = got;
  }
  if (!rc) {
    bf_buf_putc(out, '[');
    for (size_t c = 0; c < cur->ncols; c++) {
      const char *pii = bf_pairs_get(&m->pii, cur->column_names[c]);
      bf_buf_puts(out, c ? ",{\"name\":" : "{\"name\":");
      bf_json_cstr(out, cur->column_names[c]);
      bf_buf_puts(out, ",\"type\":");
      bf_json_cstr(out, rb.nrows && bf_rowbuf_row(&rb, 0)[c].type != BF_NULL
                            ? bf_type_name(bf_rowbuf_row(&rb, 0)[c].type)
                            : "unknown");
      bf_buf_puts(out, ",\"pii\":");
      if (pii)
        bf_json_cstr(out, pii);
      else
        bf_buf_puts(out, "null");
      bf_buf_putc(out, '}');
    }
    bf_buf_putc(out, ']');
  }
  bf_rowbuf_release(&rb);
  bf_cursor_free(cur);
  bf_source_close(src);
  free(q);
  return rc;
}

/* The table of destination types and what every destination shares. */
#include <string.h>

#include "destinations/destination.h"

#include "util/log.h"

const struct bf_destination_type *const bf_destination_types[] = {
    &bf_destination_file,
    &bf_destination_webhook,
    &bf_destination_postgres,
    &bf_destination_redis,
    &bf_destination_hubspot,
    &bf_destination_salesforce,
    &bf_destination_zendesk,
    &bf_destination_meta_audience,
    &bf_destination_google_customer_match,
    &bf_destination_mailchimp,
    &bf_destination_braze,
    &bf_destination_klaviyo,
    NULL,
};

const char *bf_op_name(enum bf_op op) {
  switch (op) {
  case BF_OP_UPSERT: return "upsert";
  case BF_OP_UPDATE: return "update";
  case BF_OP_INSERT: return "insert";
  case BF_OP_DELETE: return "delete";
  }
  return "?";
}

const struct bf_destination_type *bf_destination_find(const char *name) {
  for (size_t i = 0; bf_destination_types[i]; i++)
    if (!strcmp(bf_destination_types[i]->name, name)) return bf_destination_types[i];
  return NULL;
}

int bf_destination_check_batch_size(const struct bf_sync_config *s,
                                    const struct bf_destination_type *type, struct bf_error *err) {
  if (!type || s->batch_size <= 0 || (size_t)s->batch_size <= type->max_batch) return 0;
  return bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: batch_size %lld in sync '%s' is above the maximum of destination "
                      "type '%s'; expected at most %zu (or no batch_size: the default is %zu)",
                      s->batch_size_loc.file, s->batch_size_loc.line, s->batch_size_loc.col,
                      s->batch_size, s->name, type->name, type->max_batch, type->default_batch);
}

int bf_destination_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                        struct bf_destination **out, struct bf_error *err) {
  const struct bf_destination_type *type = bf_destination_find(dc->type);
  if (!type) {
    const char *names[64];
    size_t n = 0;
    for (; bf_destination_types[n] && n < 63; n++) names[n] = bf_destination_types[n]->name;
    names[n] = NULL;
    const struct bf_node *type_node = bf_node_get(dc->params, "type");
    return bf_error_unknown(err, BF_E_CONFIG, &dc->type_loc, "destination type", dc->type,
                            type_node && type_node->from_env, names);
  }
  char *what = bf_xasprintf("destination '%s' (%s)", dc->name, dc->type);
  int rc = bf_params_check(dc->params, type->params, what, err);
  free(what);
  if (rc) return rc;
  rc = type->open(dc, cfg, out, err);
  if (rc) return rc;
  (*out)->type = type;
  (*out)->name = bf_xstrdup(dc->name);
  return 0;
}

void bf_destination_close(struct bf_destination *d) {
  if (!d) return;
  free(d->name);
  d->type->close(d);
}

void bf_record_json(const struct bf_batch *batch, const struct bf_record *rec, struct bf_buf *out,
                    struct bf_buf *tmp) {
  const struct bf_mapping *m = batch->mapping;
  bf_buf_puts(out, "{\"op\":\"");
  bf_buf_puts(out, bf_op_name(rec->op));
  bf_buf_puts(out, "\",\"sync\":");
  bf_json_cstr(out, batch->sync_name);
  bf_buf_puts(out, ",\"key\":");
  bf_buf_append(out, rec->match_json, rec->match_json_len);
  if (rec->op != BF_OP_DELETE && rec->values) {
    bf_buf_puts(out, ",\"fields\":{");
    size_t k = 0;
    for (size_t i = 0; i < m->n_fields; i++, k++) {
      if (k) bf_buf_putc(out, ',');
      bf_json_cstr(out, m->field_names[i]);
      bf_buf_putc(out, ':');
      struct bf_value v = bf_mapping_field_value(m, i, &rec->values[m->n_match + i], tmp);
      bf_json_value(out, &v);
    }
    for (size_t i = 0; i < m->n_constants; i++, k++) {
      if (k) bf_buf_putc(out, ',');
      bf_json_cstr(out, m->constant_names[i]);
      bf_buf_putc(out, ':');
      bf_json_value(out, &m->constant_values[i]);
    }
    bf_buf_putc(out, '}');
  }
  bf_buf_putc(out, '}');
}

size_t bf_outcomes_settle(const char *dest_name, struct bf_outcome *outcomes, size_t n) {
  size_t unset = 0;
  for (size_t i = 0; i < n; i++) {
    if (outcomes[i].status != BF_OUT_UNSET) continue;
    unset++;
    free(outcomes[i].reason);
    outcomes[i] = (struct bf_outcome){
        BF_OUT_RETRY, bf_xasprintf("destination '%s' did not report this record", dest_name)};
  }
  if (unset)
    bf_log_warn("destination '%s' did not report %zu of %zu records; they are not counted as "
                "delivered and will be sent again (please report this bug)",
                dest_name, unset, n);
  return unset;
}

/* Values of BigQuery's REST rows: {"f": [{"v": ...}, ...]} with every
 * scalar a JSON string, a RECORD an {"f": [...]} object and a REPEATED field
 * an array of {"v": ...}
 * (https://cloud.google.com/bigquery/docs/reference/rest/v2/tabledata/list).
 * TIMESTAMP is asked for as int64 microseconds (formatOptions.useInt64Timestamp)
 * so no precision is lost to a float. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "util/jsonw.h"
#include "sources/bigquery.h"
#include "sources/cells.h"

static bool type_is(const json_t *field, const char *a, const char *b) {
  const char *t = json_string_value(json_object_get(field, "type"));
  return t && (!strcasecmp(t, a) || (b && !strcasecmp(t, b)));
}

static enum bf_bq_kind scalar_kind(const json_t *field) {
  if (type_is(field, "INTEGER", "INT64")) return BF_BQ_INT;
  if (type_is(field, "FLOAT", "FLOAT64")) return BF_BQ_FLOAT;
  if (type_is(field, "BOOLEAN", "BOOL")) return BF_BQ_BOOL;
  if (type_is(field, "NUMERIC", "BIGNUMERIC")) return BF_BQ_NUMERIC;
  if (type_is(field, "TIMESTAMP", NULL)) return BF_BQ_TIMESTAMP;
  if (type_is(field, "BYTES", NULL)) return BF_BQ_BYTES;
  if (type_is(field, "RECORD", "STRUCT")) return BF_BQ_NESTED;
  return BF_BQ_TEXT;
}

enum bf_bq_kind bf_bq_kind_of(const json_t *field) {
  const char *mode = json_string_value(json_object_get(field, "mode"));
  if (mode && !strcasecmp(mode, "REPEATED")) return BF_BQ_NESTED;
  return scalar_kind(field);
}

/* "1714571100123456" -> "2024-05-01T13:45:00.123456Z". */
static int timestamp_text(const char *s, char *out, size_t cap, size_t *len) {
  char *end;
  long long micros = strtoll(s, &end, 10);
  if (end == s || *end) return -1;
  long long secs = micros / 1000000, rem = micros % 1000000;
  if (rem < 0) {
    rem += 1000000;
    secs -= 1;
  }
  char frac[10];
  bf_text_fraction(frac, rem * 1000);
  *len = bf_text_datetime(out, cap - 1, secs, frac);
  out[(*len)++] = 'Z';
  out[*len] = '\0';
  return 0;
}

static int value_json(const json_t *field, const json_t *v, struct bf_buf *b);

/* One value of field (an element when the field repeats): a RECORD
 * ({"f": [{"v": ...}]}) becomes an object keyed by the field names, a
 * scalar is typed as at the top level. */
static int element_json(const json_t *field, const json_t *v, struct bf_buf *b) {
  if (!v || json_is_null(v)) {
    bf_buf_puts(b, "null");
    return 0;
  }
  enum bf_bq_kind k = scalar_kind(field);
  if (k == BF_BQ_NESTED) {
    json_t *subs = json_object_get(field, "fields");
    json_t *f = json_object_get(v, "f");
    if (!json_is_array(subs) || !json_is_array(f) || json_array_size(subs) != json_array_size(f))
      return -1;
    bf_buf_putc(b, '{');
    for (size_t i = 0; i < json_array_size(subs); i++) {
      json_t *sub = json_array_get(subs, i);
      const char *name = json_string_value(json_object_get(sub, "name"));
      if (i) bf_buf_putc(b, ',');
      bf_json_cstr(b, name ? name : "");
      bf_buf_putc(b, ':');
      if (value_json(sub, json_object_get(json_array_get(f, i), "v"), b)) return -1;
    }
    bf_buf_putc(b, '}');
    return 0;
  }
  const char *s = json_string_value(v);
  if (!s) return -1;
  size_t n = json_string_length(v);
  struct bf_value tmp;
  switch (k) {
  case BF_BQ_INT:
    if (bf_cell_int(s, n, NULL, &tmp)) return -1;
    if (tmp.type == BF_INT)
      bf_json_int(b, tmp.u.i);
    else
      bf_json_str(b, s, n); /* beyond 2^53: a string, as at the top level */
    return 0;
  case BF_BQ_FLOAT:
    if (bf_cell_real(s, n, &tmp)) return -1;
    bf_json_double(b, tmp.u.f);
    return 0;
  case BF_BQ_BOOL:
    if (bf_cell_bool(s, n, &tmp)) return -1;
    bf_buf_puts(b, tmp.u.i ? "true" : "false");
    return 0;
  case BF_BQ_TIMESTAMP: {
    char out[64];
    size_t len;
    if (timestamp_text(s, out, sizeof out, &len)) return -1;
    bf_json_str(b, out, len);
    return 0;
  }
  default: bf_json_str(b, s, n); return 0;
  }
}

/* A field's value: an array of {"v": ...} when it repeats. */
static int value_json(const json_t *field, const json_t *v, struct bf_buf *b) {
  const char *mode = json_string_value(json_object_get(field, "mode"));
  if (!mode || strcasecmp(mode, "REPEATED")) return element_json(field, v, b);
  if (json_is_null(v)) {
    bf_buf_puts(b, "[]");
    return 0;
  }
  if (!json_is_array(v)) return -1;
  bf_buf_putc(b, '[');
  for (size_t i = 0; i < json_array_size(v); i++) {
    if (i) bf_buf_putc(b, ',');
    if (element_json(field, json_object_get(json_array_get(v, i), "v"), b)) return -1;
  }
  bf_buf_putc(b, ']');
  return 0;
}

int bf_bq_cell(const json_t *field, enum bf_bq_kind k, const json_t *cell, struct bf_rowbuf *rb,
               struct bf_value *v) {
  v->type = BF_NULL;
  if (!cell || json_is_null(cell)) return 0;
  if (k == BF_BQ_NESTED) {
    struct bf_buf b = {0};
    int rc = value_json(field, cell, &b);
    if (rc == 0) bf_cell_text(b.data ? b.data : "", b.len, rb, v);
    bf_buf_release(&b);
    return rc;
  }
  const char *s = json_string_value(cell);
  if (!s) return -1;
  size_t n = json_string_length(cell);
  switch (k) {
  case BF_BQ_INT: return bf_cell_int(s, n, rb, v);
  case BF_BQ_FLOAT: return bf_cell_real(s, n, v);
  case BF_BQ_BOOL: return bf_cell_bool(s, n, v);
  case BF_BQ_TIMESTAMP: {
    char out[64];
    size_t len;
    if (timestamp_text(s, out, sizeof out, &len)) return -1;
    bf_cell_text(out, len, rb, v);
    return 0;
  }
  case BF_BQ_BYTES: {
    /* Decoded bytes never outnumber the base64 text: reserve n, decode over it. */
    size_t len = 0;
    char *dst = (char *)bf_rowbuf_put_bytes(rb, s, n);
    if (sodium_base642bin((unsigned char *)dst, n, s, n, NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL))
      return -1;
    v->type = BF_BLOB;
    v->len = (uint32_t)len;
    v->u.s = dst;
    return 0;
  }
  case BF_BQ_NUMERIC:
  case BF_BQ_TEXT:
  case BF_BQ_NESTED: bf_cell_text(s, n, rb, v); return 0;
  }
  return -1;
}

/* Values of the Statement Execution API's JSON_ARRAY format: every non-null
 * value is a string, complex types (ARRAY, MAP, STRUCT) their JSON text
 * (https://docs.databricks.com/api/workspace/statementexecution,
 *  https://docs.databricks.com/en/sql/language-manual/sql-ref-datatypes.html). */
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "sources/cells.h"
#include "sources/databricks.h"

enum bf_dbx_kind bf_dbx_kind_of(const char *type_name) {
  static const struct {
    const char *name;
    enum bf_dbx_kind kind;
  } names[] = {
      {"BYTE", BF_DBX_INT},      {"SHORT", BF_DBX_INT},       {"INT", BF_DBX_INT},
      {"LONG", BF_DBX_INT},      {"TINYINT", BF_DBX_INT},     {"SMALLINT", BF_DBX_INT},
      {"BIGINT", BF_DBX_INT},    {"DECIMAL", BF_DBX_DECIMAL}, {"FLOAT", BF_DBX_REAL},
      {"DOUBLE", BF_DBX_REAL},   {"BOOLEAN", BF_DBX_BOOL},    {"TIMESTAMP", BF_DBX_TIMESTAMP},
      {"ARRAY", BF_DBX_JSON},    {"MAP", BF_DBX_JSON},        {"STRUCT", BF_DBX_JSON},
      {"BINARY", BF_DBX_BINARY},
  };
  if (!type_name) return BF_DBX_TEXT;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcasecmp(type_name, names[i].name)) return names[i].kind;
  return BF_DBX_TEXT;
}

/* Exact decimal text: [-]digits[.digits]. */
static bool decimal_ok(const char *s, size_t n) {
  size_t i = n && (s[0] == '-' || s[0] == '+') ? 1 : 0, digits = 0;
  bool dot = false;
  for (; i < n; i++) {
    if (s[i] >= '0' && s[i] <= '9')
      digits++;
    else if (s[i] == '.' && !dot)
      dot = true;
    else
      return false;
  }
  return digits > 0;
}

/* "2024-01-01T10:00:00.500Z" (or a space for T, or +00:00): the shape
 * Databricks sends an instant in; anything else is not a TIMESTAMP. */
static bool timestamp_ok(const char *s, size_t n) {
  if (n < 19) return false;
  for (size_t i = 0; i < 19; i++) {
    bool digit = s[i] >= '0' && s[i] <= '9';
    if (i == 4 || i == 7     ? s[i] != '-'
        : i == 10            ? s[i] != 'T' && s[i] != ' '
        : i == 13 || i == 16 ? s[i] != ':'
                             : !digit)
      return false;
  }
  return true;
}

int bf_dbx_cell(enum bf_dbx_kind k, const char *s, size_t n, struct bf_rowbuf *rb,
                struct bf_value *v) {
  switch (k) {
  case BF_DBX_INT: return bf_cell_int(s, n, rb, v);
  case BF_DBX_REAL: return bf_cell_real(s, n, v);
  case BF_DBX_BOOL: return bf_cell_bool(s, n, v);
  case BF_DBX_DECIMAL:
    if (!decimal_ok(s, n)) return -1;
    bf_cell_text(s, n, rb, v);
    return 0;
  case BF_DBX_TIMESTAMP: {
    if (!timestamp_ok(s, n)) return -1;
    /* Databricks sends instants in UTC ("Z" or "+00:00"); they become the
     * text the other warehouses produce: T, the fraction without trailing
     * zeros, Z. */
    size_t end = n;
    if (s[end - 1] == 'Z')
      end--;
    else if (end >= 25 && !memcmp(s + end - 6, "+00:00", 6))
      end -= 6;
    if (end > 19 && s[19] != '.') return -1;
    for (size_t i = 20; i < end; i++)
      if (s[i] < '0' || s[i] > '9') return -1;
    if (end > 29) return -1;
    char out[32];
    memcpy(out, s, end);
    out[10] = 'T';
    if (end > 19) {
      while (end > 20 && out[end - 1] == '0') end--;
      if (end == 20) end = 19;
    }
    out[end++] = 'Z';
    bf_cell_text(out, end, rb, v);
    return 0;
  }
  case BF_DBX_BINARY: {
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
  case BF_DBX_JSON:
  case BF_DBX_TEXT: bf_cell_text(s, n, rb, v); return 0;
  }
  return -1;
}

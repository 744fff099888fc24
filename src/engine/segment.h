/* The segment builder (issue 18): a base (a model or a table) and a tree of
 * conditions (JSON, see docs/server.md "Segments") become SQL in the
 * warehouse's dialect. Identifiers are checked against the base's real
 * columns and quoted; values are bound as parameters $1..$n, never spliced.
 *
 * A saved model is plain SQL in YAML (config-as-code, reviewed in git), so
 * bf_segment_build also renders the same tree with each value as a literal
 * of the dialect (typed, quoted and escaped by the dialect layer, never
 * copied raw). That text is only written to a file; queries the server runs
 * itself use the parameterised form. */
#ifndef BF_SEGMENT_H
#define BF_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "spec/config.h"
#include "util/error.h"
#include "util/jsonw.h"

/* How one warehouse type spells what conditions need (segment_dialect.c). */
struct bf_segment_dialect {
  const char *type;           /* warehouse type: sqlite, postgres, ... */
  char quote;                 /* identifier quote: '"' or '`' */
  bool backslash_in_strings;  /* '\' escapes inside '...' literals */
  const char *like_escape;    /* appended after LIKE x: " ESCAPE '\\'" or "" */
  const char *since_days_fmt; /* "col within the last N days": %s column, %s N */
  bool has_params;            /* the source type implements query_params */
};

/* The dialect of a warehouse type, or NULL when there is none. */
const struct bf_segment_dialect *bf_segment_dialect_find(const char *type);

/* Appends ident quoted for d (the quote character doubled inside). */
void bf_segment_quote_ident(const struct bf_segment_dialect *d, struct bf_buf *b,
                            const char *ident);
/* Appends s as a string literal of d. */
void bf_segment_quote_string(const struct bf_segment_dialect *d, struct bf_buf *b, const char *s);

struct bf_segment {
  char *sql;     /* SELECT * FROM (base) ... WHERE ..., with $1..$n */
  char **params; /* nparams values for $1..$n, as text */
  size_t nparams;
  char *literal_sql; /* the same with the values as literals (for a saved model) */
};

/* Builds the segment of base_sql (any SELECT; wrapped as a subquery) with
 * columns (ncols names of base_sql's result) and where (a group or NULL
 * for every row). Bad input fails with BF_E_USAGE and a message naming the
 * place in the request, e.g. "where.all[1].column: unknown column 'emial';
 * did you mean 'email'?". On success the caller releases out with
 * bf_segment_release(). */
int bf_segment_build(const struct bf_segment_dialect *d, const char *base_sql,
                     const char *const *columns, size_t ncols, const json_t *where,
                     struct bf_segment *out, struct bf_error *err);
void bf_segment_release(struct bf_segment *s);

/* A table name for `FROM`: one to three parts (database.schema.table) of
 * letters, digits, '_' and '$', each quoted. BF_E_USAGE for anything else. */
int bf_segment_table_sql(const struct bf_segment_dialect *d, const char *table, char **out,
                         struct bf_error *err);

/* ---- segment_run.c: a segment against its warehouse. */

/* A request's base: {"model": NAME} or {"warehouse": NAME, "table": T}.
 * Resolved into the warehouse, the dialect, the SQL to select from and the
 * model (NULL for a table), whose pii columns are masked in samples. */
struct bf_segment_base {
  const struct bf_warehouse_config *warehouse;
  const struct bf_segment_dialect *dialect;
  const struct bf_model_config *model;
  char *sql;
};
int bf_segment_base_resolve(const struct bf_config *cfg, const json_t *base,
                            struct bf_segment_base *out, struct bf_error *err);
void bf_segment_base_release(struct bf_segment_base *b);

/* Builds req's segment ({"base":..., "where":...}) and, when preview,
 * runs it: appends {"sql", "params", "columns", "row_count", "sample",
 * "masked"} to out. sample rows (at most 100) have the base model's pii
 * columns replaced by "***" unless show_pii; a table (no pii declaration)
 * has its text values and the columns any model declares pii masked. Without preview only the SQL
 * is built (out gets "sql", "params", "columns"). On success, when seg is
 * not NULL, it receives the segment (caller releases it) and *base the
 * resolved base (caller releases it). BF_E_USAGE for bad input,
 * BF_E_WAREHOUSE when the warehouse refused. */
int bf_segment_run(const struct bf_config *cfg, const json_t *req, bool preview, size_t sample,
                   bool show_pii, struct bf_buf *out, struct bf_segment *seg,
                   struct bf_segment_base *base, struct bf_error *err);

/* Appends [{"name", "type", "pii"}] for model m: the columns its SQL returns
 * (asked of the warehouse), the type of each in the first row ("unknown"
 * when there is no row or the value is NULL) and its pii kind or null. */
int bf_segment_model_columns(const struct bf_config *cfg, const struct bf_model_config *m,
                             struct bf_buf *out, struct bf_error *err);

#endif

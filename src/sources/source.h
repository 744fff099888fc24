/* Warehouses. A source type is a const table of operations; a cursor streams
 * a query's rows in chunks, so memory stays bounded by the chunk size and
 * never grows with the model. */
#ifndef BF_SOURCE_H
#define BF_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/error.h"
#include "core/params.h"
#include "core/value.h"

/* A chunk of rows: values[row * ncols + col]; text bytes live in data. */
struct bf_rowbuf {
  size_t ncols;
  size_t nrows, cap_rows;
  struct bf_value *values;
  char *data;
  size_t data_len, data_cap;
};

void bf_rowbuf_init(struct bf_rowbuf *rb, size_t ncols, size_t cap_rows);
void bf_rowbuf_release(struct bf_rowbuf *rb);
/* Starts a new chunk (keeps memory). */
void bf_rowbuf_clear(struct bf_rowbuf *rb);
/* Appends bytes for a text/blob value of the current row; returns its offset. */
size_t bf_rowbuf_put_bytes(struct bf_rowbuf *rb, const void *p, size_t n);
/* Converts offsets to pointers once the chunk is complete. */
void bf_rowbuf_finish(struct bf_rowbuf *rb);
static inline const struct bf_value *bf_rowbuf_row(const struct bf_rowbuf *rb, size_t row) {
  return rb->values + row * rb->ncols;
}

struct bf_cursor;
struct bf_cursor_ops {
  /* Fills rb (cleared by the caller) with up to rb->cap_rows rows. Returns the
   * number of rows, 0 at the end, or a negative code (BF_E_WAREHOUSE). */
  int (*next_chunk)(struct bf_cursor *cur, struct bf_rowbuf *rb, struct bf_error *err);
  void (*free)(struct bf_cursor *cur);
};
struct bf_cursor {
  const struct bf_cursor_ops *ops;
  size_t ncols;
  char **column_names; /* owned by the cursor */
  /* Optional, set before the first chunk: wanted[c] false means column c is
   * never looked at, and a source may skip reading it (left NULL). */
  const bool *wanted;
};

struct bf_source;
struct bf_source_type {
  const char *name;
  const struct bf_param_spec *params; /* config keys besides `type` */
  /* Opens a connection. cfg gives the project folder for relative paths. */
  int (*open)(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
              struct bf_source **out, struct bf_error *err);
  /* Prepares sql and reads its column names; rows come from the cursor.
   * A SQL error names the model. Caller frees the cursor with bf_cursor_free. */
  int (*query)(struct bf_source *src, const char *sql, struct bf_cursor **out,
               struct bf_error *err);
  void (*close)(struct bf_source *src);
  /* Optional (NULL when the type has none): like query, with text values
   * bound to the parameters $1..$n of sql (SQLite and PostgreSQL both read
   * $N). For small lookups (`backflow forget`): the result is expected to be
   * a few rows, and PostgreSQL reads it at once rather than by COPY. */
  int (*query_params)(struct bf_source *src, const char *sql, const char *const *params,
                      size_t nparams, struct bf_cursor **out, struct bf_error *err);
};
struct bf_source {
  const struct bf_source_type *type;
  char *name;
};

/* Finds the type for wh->type and opens it; an unknown type names the
 * config location and suggests the closest known type. */
int bf_source_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                   struct bf_source **out, struct bf_error *err);
void bf_source_close(struct bf_source *src);
int bf_source_query(struct bf_source *src, const char *sql, struct bf_cursor **out,
                    struct bf_error *err);
/* Parameterised query (see query_params); a type without it is an error
 * naming the warehouse. */
int bf_source_query_params(struct bf_source *src, const char *sql, const char *const *params,
                           size_t nparams, struct bf_cursor **out, struct bf_error *err);
void bf_cursor_free(struct bf_cursor *cur);
/* Frees column names: for cursor implementations. */
void bf_cursor_release_names(struct bf_cursor *cur);

/* Reads chunks on a second thread while the caller processes the previous
 * one (design.md §7: the scan is the floor, the rest hides behind it).
 * Takes ownership of cur. */
struct bf_prefetch;
struct bf_prefetch *bf_prefetch_new(struct bf_cursor *cur, size_t chunk_rows);
/* Returns the next chunk (valid until the next call), NULL at the end or on
 * error (then err is set and *failed is true). */
const struct bf_rowbuf *bf_prefetch_next(struct bf_prefetch *pf, bool *failed,
                                         struct bf_error *err);
void bf_prefetch_free(struct bf_prefetch *pf);

/* NULL-terminated list of every warehouse type. */
extern const struct bf_source_type *const bf_source_types[];
extern const struct bf_source_type bf_source_sqlite;
extern const struct bf_source_type bf_source_postgres;

#endif

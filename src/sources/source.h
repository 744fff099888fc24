/* Warehouses. A source type is a const table of operations; a cursor streams
 * a query's rows in chunks, so memory stays bounded by the chunk size and
 * never grows with the model. */
#ifndef BF_SOURCE_H
#define BF_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "spec/config.h"
#include "util/error.h"
#include "spec/params.h"
#include "util/value.h"
#include "sources/feed.h"

/* Text and blob bytes of a chunk live in a chain of blocks that is never
 * reallocated, so a value points at its bytes from the moment it is read
 * (no offset fix-up pass) and clearing a chunk keeps the blocks. */
struct bf_rowbuf_block {
  struct bf_rowbuf_block *next;
  size_t cap;
  char bytes[];
};

/* A chunk of rows: values[row * ncols + col]. */
struct bf_rowbuf {
  size_t ncols;
  size_t nrows, cap_rows;
  struct bf_value *values;
  struct bf_rowbuf_block *first, *block; /* the chain; the block being filled */
  char *at, *end;                        /* free bytes of block */
  void *prep;    /* per-chunk results of a prepare step (bf_prefetch), or NULL */
  bool prepared; /* prep holds the results for these rows */
};

void bf_rowbuf_init(struct bf_rowbuf *rb, size_t ncols, size_t cap_rows);
void bf_rowbuf_release(struct bf_rowbuf *rb);
/* Starts a new chunk (keeps memory). */
void bf_rowbuf_clear(struct bf_rowbuf *rb);
/* Moves to a block with at least n free bytes (internal to put_bytes). */
void bf_rowbuf_next_block(struct bf_rowbuf *rb, size_t n);
/* Copies the bytes of a text/blob value of the current chunk; the copy stays
 * valid until the chunk is cleared or released. */
static inline const char *bf_rowbuf_put_bytes(struct bf_rowbuf *rb, const void *p, size_t n) {
  if ((size_t)(rb->end - rb->at) < n) bf_rowbuf_next_block(rb, n);
  char *dst = rb->at;
  if (n) memcpy(dst, p, n);
  rb->at += n;
  return dst;
}
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
  /* Optional: the rows of the model sql whose column key_column equals one
   * of keys (a live sync's changed keys): `SELECT * FROM (sql) WHERE key IN
   * (...)` in the type's dialect, the keys bound as parameters, never
   * spliced. Like query_params, the result is read at once. */
  int (*query_keys)(struct bf_source *src, const char *sql, const char *key_column,
                    const struct bf_value *keys, size_t n, struct bf_cursor **out,
                    struct bf_error *err);
  /* Change capture for `schedule: live` (sources/feed.h), or NULL. */
  const struct bf_feed_type *feed;
  /* Backflow's own tables in this warehouse (below), or NULL. */
  const struct bf_writer_ops *write;
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
/* query_keys (see there); a type without it is an error naming the warehouse. */
int bf_source_query_keys(struct bf_source *src, const char *sql, const char *key_column,
                         const struct bf_value *keys, size_t n, struct bf_cursor **out,
                         struct bf_error *err);
/* The source type named by wh->type, or NULL. */
const struct bf_source_type *bf_source_type_find(const char *name);
void bf_cursor_free(struct bf_cursor *cur);
/* Frees column names: for cursor implementations. */
void bf_cursor_release_names(struct bf_cursor *cur);

/* Reads chunks on a second thread while the caller processes the previous
 * one (design.md §7: the scan is the floor, the rest hides behind it).
 * Takes ownership of cur. Each chunk gets prep_bytes of zeroed memory
 * (rb->prep) for bf_prefetch_set_prepare's step. */
struct bf_prefetch;
struct bf_prefetch *bf_prefetch_new(struct bf_cursor *cur, size_t chunk_rows, size_t prep_bytes);
/* A pure per-chunk step (hashing, say) that fills rb->prep from rb's rows
 * and must not touch anything the caller changes meanwhile. When the ring
 * is full, or once the warehouse is read, the reader thread runs it on
 * waiting chunks instead of idling, so the work lands on whichever thread
 * has time; rb->prepared tells the caller whether it still has to. */
typedef void (*bf_prepare_fn)(struct bf_rowbuf *rb, void *ctx);
void bf_prefetch_set_prepare(struct bf_prefetch *pf, bf_prepare_fn prepare, void *ctx);
/* Returns the next chunk (valid until the next call), NULL at the end or on
 * error (then err is set and *failed is true). */
struct bf_rowbuf *bf_prefetch_next(struct bf_prefetch *pf, bool *failed, struct bf_error *err);
void bf_prefetch_free(struct bf_prefetch *pf);

/* ---- The write path: the tables Backflow itself keeps in a warehouse
 * (write-back of runs, per-record outcomes, /hooks events). One path for
 * every type, so a new warehouse gets all three by filling bf_writer_ops. */
enum bf_wcol_type {
  BF_WCOL_TEXT,
  BF_WCOL_INT,
  BF_WCOL_TIME /* a BF_INT of unix ms: timestamptz, or ISO 8601 UTC text in SQLite */
};
struct bf_wcol {
  const char *name;
  enum bf_wcol_type type;
  bool not_null;
};
struct bf_wtable {
  /* SQLite has no schemas: "<schema>_<name>" there, "<schema>"."<name>" in
   * PostgreSQL (backflow_events / backflow.events). */
  const char *schema, *name;
  const struct bf_wcol *cols;
  size_t ncols;
  /* Columns (indexes into cols, NOT NULL) whose values identify a row: a
   * row already there is skipped, never written twice (the idempotency of
   * webhook-id, of run ids). n_unique 0: rows are always added. */
  const size_t *unique;
  size_t n_unique;
  bool serial_id; /* an `id` column numbering rows in insertion order */
};

struct bf_writer;
struct bf_writer_ops {
  /* A read-write connection (the reading one is read-only on purpose). */
  int (*open)(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
              struct bf_writer **out, struct bf_error *err);
  /* Creates t (and its schema) when absent. */
  int (*ensure)(struct bf_writer *w, const struct bf_wtable *t, struct bf_error *err);
  int (*begin)(struct bf_writer *w, struct bf_error *err);
  /* Adds n rows (rows[i * t->ncols + c]: BF_NULL, BF_INT or BF_TEXT) inside
   * the open transaction, in one round trip per call where the type can.
   * inserted (n flags, may be NULL) says which rows were new. */
  int (*insert)(struct bf_writer *w, const struct bf_wtable *t, const struct bf_value *rows,
                size_t n, bool *inserted, struct bf_error *err);
  int (*commit)(struct bf_writer *w, struct bf_error *err);
  void (*rollback)(struct bf_writer *w);
  void (*close)(struct bf_writer *w);
};
struct bf_writer {
  const struct bf_writer_ops *ops;
  char *name; /* the warehouse's */
};

/* Opens the write path of wh; a type without one is an error naming the
 * warehouse. Free with bf_writer_close. */
int bf_writer_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                   struct bf_writer **out, struct bf_error *err);
/* Accepts NULL; rolls back an open transaction. */
void bf_writer_close(struct bf_writer *w);
/* ensure, begin, insert, commit in one go (rollback on failure). */
int bf_writer_write(struct bf_writer *w, const struct bf_wtable *t, const struct bf_value *rows,
                    size_t n, bool *inserted, struct bf_error *err);
/* Value constructors for rows handed to insert (text is not copied). */
static inline struct bf_value bf_wtext(const char *s) {
  struct bf_value v = {BF_NULL, 0, {0}};
  if (s) {
    v.type = BF_TEXT;
    v.len = (uint32_t)strlen(s);
    v.u.s = s;
  }
  return v;
}
static inline struct bf_value bf_wint(long long i) {
  struct bf_value v = {BF_INT, 0, {0}};
  v.u.i = i;
  return v;
}
extern const struct bf_writer_ops bf_writer_sqlite, bf_writer_postgres;

/* NULL-terminated list of every warehouse type. */
extern const struct bf_source_type *const bf_source_types[];
extern const struct bf_source_type bf_source_sqlite;
extern const struct bf_source_type bf_source_postgres;
extern const struct bf_source_type bf_source_snowflake;
extern const struct bf_source_type bf_source_bigquery;
extern const struct bf_source_type bf_source_databricks;

#endif

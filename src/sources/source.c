/* Source registry, row chunks and the prefetching reader thread. */
#include "sources/source.h"

#include <pthread.h>
#include <string.h>

const struct bf_source_type *const bf_source_types[] = {
    &bf_source_sqlite,   &bf_source_postgres,   &bf_source_snowflake,
    &bf_source_bigquery, &bf_source_databricks, NULL,
};

#define ROWBUF_BLOCK_BYTES (64u * 1024)

static struct bf_rowbuf_block *block_new(size_t cap) {
  struct bf_rowbuf_block *b = bf_xmalloc(sizeof *b + cap);
  b->next = NULL;
  b->cap = cap;
  return b;
}

static void use_block(struct bf_rowbuf *rb, struct bf_rowbuf_block *b) {
  rb->block = b;
  rb->at = b->bytes;
  rb->end = b->bytes + b->cap;
}

void bf_rowbuf_init(struct bf_rowbuf *rb, size_t ncols, size_t cap_rows) {
  memset(rb, 0, sizeof *rb);
  rb->ncols = ncols;
  rb->cap_rows = cap_rows;
  rb->values = bf_xcalloc(ncols * cap_rows, sizeof *rb->values);
  rb->first = block_new(ROWBUF_BLOCK_BYTES);
  use_block(rb, rb->first);
}

void bf_rowbuf_release(struct bf_rowbuf *rb) {
  free(rb->values);
  free(rb->prep);
  for (struct bf_rowbuf_block *b = rb->first, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  memset(rb, 0, sizeof *rb);
}

void bf_rowbuf_clear(struct bf_rowbuf *rb) {
  rb->nrows = 0;
  rb->prepared = false;
  use_block(rb, rb->first);
}

void bf_rowbuf_next_block(struct bf_rowbuf *rb, size_t n) {
  struct bf_rowbuf_block *next = rb->block->next;
  if (!next || next->cap < n) {
    /* A value larger than a block gets a block of its own size, put in the
     * chain here so later chunks reuse it. */
    struct bf_rowbuf_block *b = block_new(n > ROWBUF_BLOCK_BYTES ? n : ROWBUF_BLOCK_BYTES);
    b->next = next;
    rb->block->next = b;
    next = b;
  }
  use_block(rb, next);
}

int bf_source_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                   struct bf_source **out, struct bf_error *err) {
  const char *names[16];
  size_t n = 0;
  for (size_t i = 0; bf_source_types[i]; i++) {
    if (strcmp(bf_source_types[i]->name, wh->type) == 0) {
      char *what = bf_xasprintf("warehouse '%s' (%s)", wh->name, wh->type);
      int rc = bf_params_check(wh->params, bf_source_types[i]->params, what, err);
      free(what);
      if (rc) return rc;
      rc = bf_source_types[i]->open(wh, cfg, out, err);
      if (rc == 0) (*out)->name = bf_xstrdup(wh->name);
      return rc;
    }
    names[n++] = bf_source_types[i]->name;
  }
  names[n] = NULL;
  const struct bf_node *type_node = bf_node_get(wh->params, "type");
  return bf_error_unknown(err, BF_E_CONFIG, &wh->loc, "warehouse type", wh->type,
                          type_node && type_node->from_env, names);
}

void bf_source_close(struct bf_source *src) {
  if (!src) return;
  free(src->name);
  src->type->close(src);
}

int bf_source_query(struct bf_source *src, const char *sql, struct bf_cursor **out,
                    struct bf_error *err) {
  return src->type->query(src, sql, out, err);
}

int bf_source_query_params(struct bf_source *src, const char *sql, const char *const *params,
                           size_t nparams, struct bf_cursor **out, struct bf_error *err) {
  if (!src->type->query_params)
    return bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s' (%s) cannot run parameterised queries",
                        src->name, src->type->name);
  return src->type->query_params(src, sql, params, nparams, out, err);
}

int bf_source_query_keys(struct bf_source *src, const char *sql, const char *key_column,
                         const struct bf_value *keys, size_t n, struct bf_cursor **out,
                         struct bf_error *err) {
  if (!src->type->query_keys)
    return bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s' (%s) cannot look rows up by key",
                        src->name, src->type->name);
  return src->type->query_keys(src, sql, key_column, keys, n, out, err);
}

const struct bf_source_type *bf_source_type_find(const char *name) {
  for (size_t i = 0; bf_source_types[i]; i++)
    if (!strcmp(bf_source_types[i]->name, name)) return bf_source_types[i];
  return NULL;
}

int bf_writer_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                   struct bf_writer **out, struct bf_error *err) {
  *out = NULL;
  const struct bf_source_type *t = bf_source_type_find(wh->type);
  if (!t || !t->write)
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: warehouse '%s' (%s) cannot hold Backflow's tables (write-back, "
                        "outcomes, /hooks events); use a sqlite or postgres warehouse",
                        wh->loc.file, wh->loc.line, wh->loc.col, wh->name, wh->type);
  int rc = t->write->open(wh, cfg, out, err);
  if (rc) return rc;
  (*out)->ops = t->write;
  (*out)->name = bf_xstrdup(wh->name);
  return 0;
}

void bf_writer_close(struct bf_writer *w) {
  if (!w) return;
  char *name = w->name;
  w->ops->rollback(w);
  w->ops->close(w);
  free(name);
}

int bf_writer_write(struct bf_writer *w, const struct bf_wtable *t, const struct bf_value *rows,
                    size_t n, bool *inserted, struct bf_error *err) {
  int rc = w->ops->ensure(w, t, err);
  if (rc == 0) rc = w->ops->begin(w, err);
  if (rc == 0) rc = w->ops->insert(w, t, rows, n, inserted, err);
  if (rc == 0) rc = w->ops->commit(w, err);
  if (rc) w->ops->rollback(w);
  return rc;
}

static const struct bf_feed_type *feed_type(const struct bf_warehouse_config *wh,
                                            struct bf_error *err) {
  const struct bf_source_type *t = bf_source_type_find(wh->type);
  if (t && t->feed) return t->feed;
  bf_error_set(err, BF_E_CONFIG,
               "%s:%d:%d: warehouse '%s' (%s) cannot be followed live; 'schedule: live' needs a "
               "sqlite or postgres warehouse",
               wh->loc.file, wh->loc.line, wh->loc.col, wh->name, wh->type);
  return NULL;
}

int bf_feed_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                 const struct bf_feed_spec *spec, struct bf_feed **out, struct bf_error *err) {
  const struct bf_feed_type *ft = feed_type(wh, err);
  return ft ? ft->open(wh, cfg, spec, out, err) : BF_E_CONFIG;
}

void bf_feed_close(struct bf_feed *f) {
  if (f) f->ops->close(f);
}

int bf_feed_setup(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                  const struct bf_feed_spec *spec, struct bf_error *err) {
  const struct bf_feed_type *ft = feed_type(wh, err);
  return !ft ? BF_E_CONFIG : ft->setup ? ft->setup(wh, cfg, spec, err) : 0;
}

int bf_feed_teardown(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                     const struct bf_feed_spec *spec, struct bf_error *err) {
  const struct bf_feed_type *ft = feed_type(wh, err);
  return !ft ? BF_E_CONFIG : ft->teardown ? ft->teardown(wh, cfg, spec, err) : 0;
}

void bf_cursor_free(struct bf_cursor *cur) {
  if (cur) cur->ops->free(cur);
}

void bf_cursor_release_names(struct bf_cursor *cur) {
  for (size_t i = 0; cur->column_names && i < cur->ncols; i++) free(cur->column_names[i]);
  free(cur->column_names);
}

/* Chunks travel from the reader to the consumer through a FIFO queue and
 * come back through a pool. The reader may run STEADY_CHUNKS ahead of the
 * consumer; until the consumer asks for its first chunk (it is loading the
 * state) it may run STARTUP_CHUNKS ahead, so the scan does not stall behind
 * the load, and the extra chunks are freed as they come back. */
#define STEADY_CHUNKS  8
#define STARTUP_CHUNKS 64

struct bf_prefetch {
  struct bf_cursor *cur;
  size_t chunk_rows, prep_bytes;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct bf_rowbuf *queue[STARTUP_CHUNKS]; /* filled, oldest at head */
  size_t head, queued;
  struct bf_rowbuf *pool[STARTUP_CHUNKS]; /* empty, ready for the reader */
  size_t pooled;
  size_t chunks;               /* in existence: queued + pooled + held + the reader's */
  struct bf_rowbuf *held;      /* the chunk the consumer has */
  struct bf_rowbuf *preparing; /* the chunk the reader is preparing */
  bool started;                /* the consumer asked for a chunk */
  bf_prepare_fn prepare;
  void *prepare_ctx;
  bool done, failed, stop;
  struct bf_error err;
};

static size_t chunk_limit(const struct bf_prefetch *pf) {
  return pf->started ? STEADY_CHUNKS : STARTUP_CHUNKS;
}

static struct bf_rowbuf *chunk_new(const struct bf_prefetch *pf) {
  struct bf_rowbuf *rb = bf_xmalloc(sizeof *rb);
  bf_rowbuf_init(rb, pf->cur->ncols, pf->chunk_rows);
  if (pf->prep_bytes) rb->prep = bf_xcalloc(1, pf->prep_bytes);
  return rb;
}

static void chunk_free(struct bf_rowbuf *rb) {
  if (!rb) return;
  bf_rowbuf_release(rb);
  free(rb);
}

/* With the lock held: the newest queued chunk nobody prepared yet (the one
 * the consumer reaches last), or NULL. */
static struct bf_rowbuf *chunk_to_prepare(const struct bf_prefetch *pf) {
  if (!pf->prepare) return NULL;
  for (size_t k = pf->queued; k-- > 0;) {
    struct bf_rowbuf *rb = pf->queue[(pf->head + k) % STARTUP_CHUNKS];
    if (!rb->prepared) return rb;
  }
  return NULL;
}

/* With the lock held; releases it while the step runs. */
static void prepare_one(struct bf_prefetch *pf, struct bf_rowbuf *rb) {
  pf->preparing = rb;
  pthread_mutex_unlock(&pf->mu);
  pf->prepare(rb, pf->prepare_ctx);
  pthread_mutex_lock(&pf->mu);
  rb->prepared = true;
  pf->preparing = NULL;
  pthread_cond_broadcast(&pf->cv);
}

static void *prefetch_main(void *arg) {
  struct bf_prefetch *pf = arg;
  for (;;) {
    pthread_mutex_lock(&pf->mu);
    struct bf_rowbuf *rb = NULL;
    bool fresh = false;
    while (!pf->stop) {
      if (pf->pooled) {
        rb = pf->pool[--pf->pooled];
        break;
      }
      if (pf->chunks < chunk_limit(pf)) {
        pf->chunks++;
        fresh = true;
        break;
      }
      /* As far ahead as allowed: do the consumer's per-chunk step rather
       * than wait. */
      struct bf_rowbuf *todo = chunk_to_prepare(pf);
      if (todo)
        prepare_one(pf, todo);
      else
        pthread_cond_wait(&pf->cv, &pf->mu);
    }
    bool stop = pf->stop; /* if set, the loop ended before taking a chunk */
    pthread_mutex_unlock(&pf->mu);
    if (stop) break;
    if (fresh) rb = chunk_new(pf);
    bf_rowbuf_clear(rb);
    struct bf_error err = {0};
    int n = pf->cur->ops->next_chunk(pf->cur, rb, &err);
    pthread_mutex_lock(&pf->mu);
    if (n > 0) {
      pf->queue[(pf->head + pf->queued++) % STARTUP_CHUNKS] = rb;
    } else {
      pf->pool[pf->pooled++] = rb;
      pf->done = true;
      if (n < 0) {
        pf->failed = true;
        pf->err = err;
      }
    }
    pthread_cond_broadcast(&pf->cv);
    if (pf->done) {
      /* Everything is read: help with the chunks still queued. */
      struct bf_rowbuf *todo;
      while (!pf->stop && !pf->failed && (todo = chunk_to_prepare(pf))) prepare_one(pf, todo);
      pthread_mutex_unlock(&pf->mu);
      break;
    }
    pthread_mutex_unlock(&pf->mu);
  }
  return NULL;
}

struct bf_prefetch *bf_prefetch_new(struct bf_cursor *cur, size_t chunk_rows, size_t prep_bytes) {
  struct bf_prefetch *pf = bf_xcalloc(1, sizeof *pf);
  pf->cur = cur;
  pf->chunk_rows = chunk_rows;
  pf->prep_bytes = prep_bytes;
  pthread_mutex_init(&pf->mu, NULL);
  pthread_cond_init(&pf->cv, NULL);
  if (pthread_create(&pf->thread, NULL, prefetch_main, pf) != 0)
    BF_BUG("cannot start the reader thread");
  return pf;
}

void bf_prefetch_set_prepare(struct bf_prefetch *pf, bf_prepare_fn prepare, void *ctx) {
  pthread_mutex_lock(&pf->mu);
  pf->prepare = prepare;
  pf->prepare_ctx = ctx;
  pthread_cond_broadcast(&pf->cv); /* a waiting reader may have work now */
  pthread_mutex_unlock(&pf->mu);
}

struct bf_rowbuf *bf_prefetch_next(struct bf_prefetch *pf, bool *failed, struct bf_error *err) {
  pthread_mutex_lock(&pf->mu);
  pf->started = true;
  if (pf->held) { /* give back the previous chunk; startup extras are freed */
    if (pf->chunks > chunk_limit(pf)) {
      chunk_free(pf->held);
      pf->chunks--;
    } else {
      pf->pool[pf->pooled++] = pf->held;
    }
    pf->held = NULL;
    pthread_cond_broadcast(&pf->cv);
  }
  while ((!pf->queued && !pf->done) || (pf->queued && pf->queue[pf->head] == pf->preparing))
    pthread_cond_wait(&pf->cv, &pf->mu);
  struct bf_rowbuf *out = NULL;
  *failed = false;
  if (pf->queued) {
    out = pf->queue[pf->head];
    pf->head = (pf->head + 1) % STARTUP_CHUNKS;
    pf->queued--;
    pf->held = out;
  } else if (pf->failed) {
    *failed = true;
    if (err) *err = pf->err;
  }
  pthread_mutex_unlock(&pf->mu);
  return out;
}

void bf_prefetch_free(struct bf_prefetch *pf) {
  if (!pf) return;
  pthread_mutex_lock(&pf->mu);
  pf->stop = true;
  pthread_cond_broadcast(&pf->cv);
  pthread_mutex_unlock(&pf->mu);
  pthread_join(pf->thread, NULL);
  for (size_t k = 0; k < pf->queued; k++) chunk_free(pf->queue[(pf->head + k) % STARTUP_CHUNKS]);
  for (size_t k = 0; k < pf->pooled; k++) chunk_free(pf->pool[k]);
  chunk_free(pf->held);
  pthread_mutex_destroy(&pf->mu);
  pthread_cond_destroy(&pf->cv);
  bf_cursor_free(pf->cur);
  free(pf);
}

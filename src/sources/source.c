/* Source registry, row chunks and the prefetching reader thread. */
#include "sources/source.h"

#include <pthread.h>
#include <string.h>

const struct bf_source_type *const bf_source_types[] = {
    &bf_source_sqlite,
    &bf_source_postgres,
    NULL,
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

void bf_cursor_free(struct bf_cursor *cur) {
  if (cur) cur->ops->free(cur);
}

void bf_cursor_release_names(struct bf_cursor *cur) {
  for (size_t i = 0; cur->column_names && i < cur->ncols; i++) free(cur->column_names[i]);
  free(cur->column_names);
}

/* A ring of chunks: the reader fills them in order while the consumer reads
 * behind it; several chunks of slack let the reader run ahead while the
 * consumer is busy elsewhere (loading state, sending a batch). */
#define PREFETCH_CHUNKS 8

struct bf_prefetch {
  struct bf_cursor *cur;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct bf_rowbuf bufs[PREFETCH_CHUNKS];
  int ready[PREFETCH_CHUNKS]; /* 1 = filled, waiting for the consumer */
  int consumer_idx;           /* buffer the consumer holds, or -1 */
  int next_idx;               /* buffer the consumer reads next */
  int preparing;              /* buffer the reader is preparing, or -1 */
  bf_prepare_fn prepare;
  void *prepare_ctx;
  bool done, failed, stop;
  struct bf_error err;
};

/* With the lock held: the newest filled chunk nobody prepared yet (the one
 * the consumer reaches last), or -1. */
static int chunk_to_prepare(const struct bf_prefetch *pf, int newest) {
  if (!pf->prepare) return -1;
  for (int k = 0, i = newest; k < PREFETCH_CHUNKS; k++) {
    if (!pf->ready[i]) return -1; /* older chunks than this were taken */
    if (!pf->bufs[i].prepared) return i;
    i = (i + PREFETCH_CHUNKS - 1) % PREFETCH_CHUNKS;
  }
  return -1;
}

/* With the lock held; releases it while the step runs. */
static void prepare_one(struct bf_prefetch *pf, int i) {
  pf->preparing = i;
  pthread_mutex_unlock(&pf->mu);
  pf->prepare(&pf->bufs[i], pf->prepare_ctx);
  pthread_mutex_lock(&pf->mu);
  pf->bufs[i].prepared = true;
  pf->preparing = -1;
  pthread_cond_broadcast(&pf->cv);
}

static void *prefetch_main(void *arg) {
  struct bf_prefetch *pf = arg;
  int idx = 0;
  for (;;) {
    pthread_mutex_lock(&pf->mu);
    while ((pf->ready[idx] || pf->consumer_idx == idx) && !pf->stop) {
      /* Ring full: do the consumer's per-chunk step rather than wait. */
      int i = chunk_to_prepare(pf, (idx + PREFETCH_CHUNKS - 1) % PREFETCH_CHUNKS);
      if (i >= 0)
        prepare_one(pf, i);
      else
        pthread_cond_wait(&pf->cv, &pf->mu);
    }
    bool stop = pf->stop;
    pthread_mutex_unlock(&pf->mu);
    if (stop) break;
    struct bf_rowbuf *rb = &pf->bufs[idx];
    bf_rowbuf_clear(rb);
    struct bf_error err = {0};
    int n = pf->cur->ops->next_chunk(pf->cur, rb, &err);
    pthread_mutex_lock(&pf->mu);
    if (n < 0) {
      pf->failed = true;
      pf->err = err;
      pf->done = true;
    } else if (n == 0) {
      pf->done = true;
    } else {
      pf->ready[idx] = 1;
    }
    pthread_cond_broadcast(&pf->cv);
    if (pf->done) {
      /* Everything is read: help with the chunks still queued. */
      int i;
      while (!pf->stop && !pf->failed &&
             (i = chunk_to_prepare(pf, (idx + PREFETCH_CHUNKS - 1) % PREFETCH_CHUNKS)) >= 0)
        prepare_one(pf, i);
      pthread_mutex_unlock(&pf->mu);
      break;
    }
    pthread_mutex_unlock(&pf->mu);
    idx = (idx + 1) % PREFETCH_CHUNKS;
  }
  return NULL;
}

struct bf_prefetch *bf_prefetch_new(struct bf_cursor *cur, size_t chunk_rows, size_t prep_bytes) {
  struct bf_prefetch *pf = bf_xcalloc(1, sizeof *pf);
  pf->cur = cur;
  pthread_mutex_init(&pf->mu, NULL);
  pthread_cond_init(&pf->cv, NULL);
  for (int i = 0; i < PREFETCH_CHUNKS; i++) {
    bf_rowbuf_init(&pf->bufs[i], cur->ncols, chunk_rows);
    if (prep_bytes) pf->bufs[i].prep = bf_xcalloc(1, prep_bytes);
  }
  pf->consumer_idx = -1;
  pf->preparing = -1;
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
  if (pf->consumer_idx >= 0) {
    pf->consumer_idx = -1; /* give back the previous chunk */
    pthread_cond_broadcast(&pf->cv);
  }
  while ((!pf->ready[pf->next_idx] && !pf->done) || pf->preparing == pf->next_idx)
    pthread_cond_wait(&pf->cv, &pf->mu);
  struct bf_rowbuf *out = NULL;
  *failed = false;
  if (pf->ready[pf->next_idx]) {
    pf->ready[pf->next_idx] = 0;
    pf->consumer_idx = pf->next_idx;
    out = &pf->bufs[pf->next_idx];
    pf->next_idx = (pf->next_idx + 1) % PREFETCH_CHUNKS;
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
  for (int i = 0; i < PREFETCH_CHUNKS; i++) bf_rowbuf_release(&pf->bufs[i]);
  pthread_mutex_destroy(&pf->mu);
  pthread_cond_destroy(&pf->cv);
  bf_cursor_free(pf->cur);
  free(pf);
}

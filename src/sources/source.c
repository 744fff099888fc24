/* Source registry, row chunks and the prefetching reader thread. */
#include "sources/source.h"

#include <pthread.h>
#include <string.h>

const struct bf_source_type *const bf_source_types[] = {
    &bf_source_sqlite,
    &bf_source_postgres,
    NULL,
};

void bf_rowbuf_init(struct bf_rowbuf *rb, size_t ncols, size_t cap_rows) {
  memset(rb, 0, sizeof *rb);
  rb->ncols = ncols;
  rb->cap_rows = cap_rows;
  rb->values = bf_xcalloc(ncols * cap_rows, sizeof *rb->values);
}

void bf_rowbuf_release(struct bf_rowbuf *rb) {
  free(rb->values);
  free(rb->data);
  memset(rb, 0, sizeof *rb);
}

void bf_rowbuf_clear(struct bf_rowbuf *rb) {
  rb->nrows = 0;
  rb->data_len = 0;
}

size_t bf_rowbuf_put_bytes(struct bf_rowbuf *rb, const void *p, size_t n) {
  if (rb->data_len + n > rb->data_cap) {
    size_t cap = rb->data_cap ? rb->data_cap : 64 * 1024;
    while (cap < rb->data_len + n) cap *= 2;
    rb->data = bf_xrealloc(rb->data, cap);
    rb->data_cap = cap;
  }
  size_t off = rb->data_len;
  if (n) memcpy(rb->data + off, p, n);
  rb->data_len += n;
  return off;
}

void bf_rowbuf_finish(struct bf_rowbuf *rb) {
  size_t n = rb->nrows * rb->ncols;
  for (size_t i = 0; i < n; i++) {
    struct bf_value *v = &rb->values[i];
    if (v->type == BF_TEXT || v->type == BF_BLOB) v->u.s = rb->data + v->u.off;
  }
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
  bool done, failed, stop;
  struct bf_error err;
};

static void *prefetch_main(void *arg) {
  struct bf_prefetch *pf = arg;
  int idx = 0;
  for (;;) {
    pthread_mutex_lock(&pf->mu);
    while ((pf->ready[idx] || pf->consumer_idx == idx) && !pf->stop)
      pthread_cond_wait(&pf->cv, &pf->mu);
    bool stop = pf->stop;
    pthread_mutex_unlock(&pf->mu);
    if (stop) break;
    struct bf_rowbuf *rb = &pf->bufs[idx];
    bf_rowbuf_clear(rb);
    struct bf_error err = {0};
    int n = pf->cur->ops->next_chunk(pf->cur, rb, &err);
    if (n > 0) bf_rowbuf_finish(rb);
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
    bool finished = pf->done;
    pthread_mutex_unlock(&pf->mu);
    if (finished) break;
    idx = (idx + 1) % PREFETCH_CHUNKS;
  }
  return NULL;
}

struct bf_prefetch *bf_prefetch_new(struct bf_cursor *cur, size_t chunk_rows) {
  struct bf_prefetch *pf = bf_xcalloc(1, sizeof *pf);
  pf->cur = cur;
  pthread_mutex_init(&pf->mu, NULL);
  pthread_cond_init(&pf->cv, NULL);
  for (int i = 0; i < PREFETCH_CHUNKS; i++) bf_rowbuf_init(&pf->bufs[i], cur->ncols, chunk_rows);
  pf->consumer_idx = -1;
  if (pthread_create(&pf->thread, NULL, prefetch_main, pf) != 0)
    BF_BUG("cannot start the reader thread");
  return pf;
}

const struct bf_rowbuf *bf_prefetch_next(struct bf_prefetch *pf, bool *failed,
                                         struct bf_error *err) {
  pthread_mutex_lock(&pf->mu);
  if (pf->consumer_idx >= 0) {
    pf->consumer_idx = -1; /* give back the previous chunk */
    pthread_cond_broadcast(&pf->cv);
  }
  while (!pf->ready[pf->next_idx] && !pf->done) pthread_cond_wait(&pf->cv, &pf->mu);
  const struct bf_rowbuf *out = NULL;
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

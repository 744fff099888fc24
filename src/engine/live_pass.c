/* One live pass: a burst of changed keys through the runner's path
 * (runner_internal.h). Keys are coalesced by keyed hash (a key changed 100
 * times is looked up and pushed once, with the row as it is now), the model
 * is evaluated for them only, and in mirror mode a key the model no longer
 * has is deleted at the destination, exactly as a full run would. */
#include "engine/live_pass.h"

#include <string.h>

/* Keys per lookup query: well under every warehouse's parameter limit. */
#define KEYS_PER_QUERY 500

struct keyset {
  unsigned char (*hash)[16];
  const struct bf_value **values;
  size_t n, cap;
  size_t *slots; /* open addressing over hash; index + 1, 0 empty */
  size_t n_slots;
};

static size_t slot_of(const unsigned char h[16], size_t n_slots) {
  uint64_t v;
  memcpy(&v, h, 8);
  return (size_t)(v & (n_slots - 1));
}

static void keyset_build(struct keyset *ks, const struct run *r, const struct bf_value *keys,
                         size_t n) {
  memset(ks, 0, sizeof *ks);
  ks->n_slots = 16;
  while (ks->n_slots < n * 2) ks->n_slots *= 2;
  ks->slots = bf_xcalloc(ks->n_slots, sizeof *ks->slots);
  ks->hash = bf_xmalloc((n ? n : 1) * sizeof *ks->hash);
  ks->values = bf_xmalloc((n ? n : 1) * sizeof *ks->values);
  struct bf_buf bytes = {0};
  for (size_t i = 0; i < n; i++) {
    if (!bf_mapping_key_bytes(&keys[i], &bytes)) continue; /* a NULL key names no row */
    unsigned char h[16];
    bf_prf_key(&r->prf, bytes.data, bytes.len, h);
    size_t s = slot_of(h, ks->n_slots);
    while (ks->slots[s] && memcmp(ks->hash[ks->slots[s] - 1], h, 16))
      s = (s + 1) & (ks->n_slots - 1);
    if (ks->slots[s]) continue;
    memcpy(ks->hash[ks->n], h, 16);
    ks->values[ks->n] = &keys[i];
    ks->slots[s] = ++ks->n;
  }
  bf_buf_release(&bytes);
}

static void keyset_release(struct keyset *ks) {
  free(ks->hash);
  free(ks->values);
  free(ks->slots);
}

/* Rows of the model for keys[from, to). */
static int lookup(struct run *r, const struct keyset *ks, size_t from, size_t to,
                  struct bf_error *err) {
  size_t n = to - from;
  struct bf_value *vals = bf_xmalloc(n * sizeof *vals);
  for (size_t i = 0; i < n; i++) vals[i] = *ks->values[from + i];
  struct bf_cursor *cur = NULL;
  int rc = bf_source_query_keys(r->src, r->model->sql, r->model->primary_key, vals, n, &cur, err);
  free(vals);
  if (rc)
    return bf_error_prefix(err, "%s:%d:%d: model '%s': looking up changed keys",
                           r->model->sql_loc.file, r->model->sql_loc.line, r->model->sql_loc.col,
                           r->model->name);
  cur->wanted = r->wanted;
  struct bf_rowbuf rb;
  bf_rowbuf_init(&rb, cur->ncols, CHUNK_ROWS);
  rb.prep = bf_xcalloc(1, sizeof(struct chunk_prep));
  for (;;) {
    bf_rowbuf_clear(&rb);
    int got = cur->ops->next_chunk(cur, &rb, err);
    if (got < 0) {
      rc = bf_error_prefix(err, "%s:%d:%d: model '%s'", r->model->sql_loc.file,
                           r->model->sql_loc.line, r->model->sql_loc.col, r->model->name);
      break;
    }
    if (got == 0) break;
    bf_run_prepare_chunk(&rb, r);
    struct chunk_prep *cp = rb.prep;
    for (size_t i = 0; i < rb.nrows && rc == 0; i++)
      rc = bf_run_process_row(r, bf_rowbuf_row(&rb, i),
                              cp->status[i] & PREP_HAS_KEY ? cp->key[i] : NULL,
                              cp->status[i] & PREP_ROW_OK, cp->fp[i], err);
    if (rc) break;
  }
  bf_rowbuf_release(&rb);
  bf_cursor_free(cur);
  return rc;
}

int bf_live_pass(struct run *r, const struct bf_value *keys, size_t n, struct bf_error *err) {
  struct keyset ks;
  keyset_build(&ks, r, keys, n);
  int rc = 0;
  for (size_t from = 0; from < ks.n && rc == 0; from += KEYS_PER_QUERY)
    rc = lookup(r, &ks, from, from + KEYS_PER_QUERY < ks.n ? from + KEYS_PER_QUERY : ks.n, err);
  if (rc == 0) rc = bf_run_flush_batch(r, err);
  if (rc == 0 && r->sync->mode == BF_MODE_MIRROR) {
    /* Keys that changed and are no longer in the model: removed. */
    unsigned char(*gone)[16] = bf_xmalloc((ks.n ? ks.n : 1) * sizeof *gone);
    size_t n_gone = 0;
    for (size_t i = 0; i < ks.n; i++) {
      struct bf_state_entry *e = bf_state_find(r->state, ks.hash[i]);
      if (e && (e->flags & BF_ST_PERSISTED) && !bf_state_seen(r->state, e))
        memcpy(gone[n_gone++], ks.hash[i], 16);
    }
    rc = bf_run_remove_keys(r, (const unsigned char(*)[16])gone, n_gone, err);
    free(gone);
  }
  /* The next pass starts with nothing seen. */
  for (size_t i = 0; i < ks.n; i++) {
    struct bf_state_entry *e = bf_state_find(r->state, ks.hash[i]);
    if (e) bf_state_unsee(r->state, e);
  }
  keyset_release(&ks);
  return rc;
}

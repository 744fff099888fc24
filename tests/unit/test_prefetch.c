/* Tests for the row chunks and the prefetching reader of
 * src/sources/source.c, driven by a fake cursor: every row arrives once and
 * in order, the reader thread prepares chunks for a slow consumer without
 * racing it, text bytes survive the block arena, a cursor error reaches the
 * consumer, and freeing the prefetcher early neither hangs nor leaks. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sources/source.h"

#define NCOLS 3 /* id (int), derived (int), text */

/* The fake warehouse: row r has id r, derived r * 3 + 1 and a text value of
 * text_len(r) bytes, text_byte(r, j) each. */
struct fake_cursor {
  struct bf_cursor base;
  size_t total;    /* rows the query returns */
  size_t next_row; /* next row to hand out */
  size_t fail_at;  /* next_chunk fails on reaching this row (SIZE_MAX: never) */
  size_t (*text_len)(size_t row);
  long chunk_delay_ns; /* slow warehouse: sleep this long per chunk */
  atomic_int *freed;   /* counts calls of free */
};

static atomic_int cursors_freed;

static void sleep_ns(long ns) {
  struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static char text_byte(size_t row, size_t j) { return (char)('a' + (row * 7 + j * 13) % 26); }

static size_t short_text(size_t row) { return 1 + row % 12; }

static int fake_next_chunk(struct bf_cursor *cur_, struct bf_rowbuf *rb, struct bf_error *err) {
  struct fake_cursor *cur = (struct fake_cursor *)cur_;
  if (cur->chunk_delay_ns) sleep_ns(cur->chunk_delay_ns);
  char tmp[256];
  while (rb->nrows < rb->cap_rows && cur->next_row < cur->total) {
    size_t r = cur->next_row;
    if (r == cur->fail_at)
      return bf_error_set(err, BF_E_WAREHOUSE, "fake warehouse: disk I/O error at row %zu", r);
    struct bf_value *row = rb->values + rb->nrows * rb->ncols;
    row[0] = (struct bf_value){.type = BF_INT, .u.i = (int64_t)r};
    row[1] = (struct bf_value){.type = BF_INT, .u.i = (int64_t)r * 3 + 1};
    size_t n = cur->text_len(r);
    /* The source's bytes are transient, as sqlite3_value_text's are. */
    char *src = n <= sizeof tmp ? tmp : bf_xmalloc(n);
    for (size_t j = 0; j < n; j++) src[j] = text_byte(r, j);
    row[2] = (struct bf_value){.type = BF_TEXT, .len = (uint32_t)n};
    row[2].u.s = bf_rowbuf_put_bytes(rb, src, n);
    memset(src, '#', n);
    if (src != tmp) free(src);
    rb->nrows++;
    cur->next_row++;
  }
  return (int)rb->nrows;
}

static void fake_free(struct bf_cursor *cur_) {
  struct fake_cursor *cur = (struct fake_cursor *)cur_;
  atomic_fetch_add(cur->freed, 1);
  bf_cursor_release_names(&cur->base);
  free(cur);
}

static const struct bf_cursor_ops fake_ops = {fake_next_chunk, fake_free};

static struct fake_cursor *fake_new(size_t total) {
  struct fake_cursor *cur = bf_xcalloc(1, sizeof *cur);
  cur->base.ops = &fake_ops;
  cur->base.ncols = NCOLS;
  cur->base.column_names = bf_xcalloc(NCOLS, sizeof(char *));
  cur->base.column_names[0] = bf_xstrdup("id");
  cur->base.column_names[1] = bf_xstrdup("derived");
  cur->base.column_names[2] = bf_xstrdup("label");
  cur->total = total;
  cur->fail_at = SIZE_MAX;
  cur->text_len = short_text;
  cur->freed = &cursors_freed;
  return cur;
}

/* Checks row i of rb is warehouse row r, text bytes included. */
static void assert_row(const struct bf_rowbuf *rb, size_t i, size_t r, size_t (*text_len)(size_t)) {
  const struct bf_value *row = bf_rowbuf_row(rb, i);
  cr_assert_eq(row[0].type, BF_INT);
  cr_assert_eq(row[0].u.i, (int64_t)r, "row %zu of the chunk is %lld, expected %zu", i,
               (long long)row[0].u.i, r);
  cr_assert_eq(row[1].type, BF_INT);
  cr_assert_eq(row[1].u.i, (int64_t)r * 3 + 1);
  cr_assert_eq(row[2].type, BF_TEXT);
  size_t n = text_len(r);
  cr_assert_eq(row[2].len, n, "row %zu: text of %u bytes, expected %zu", r, row[2].len, n);
  for (size_t j = 0; j < n; j++)
    if (row[2].u.s[j] != text_byte(r, j))
      cr_assert_fail("row %zu: text byte %zu of %zu is %d, expected %d", r, j, n, row[2].u.s[j],
                     text_byte(r, j));
}

/* Reads pf to the end; checks every chunk row by row. Returns the chunks. */
static size_t drain_in_order(struct bf_prefetch *pf, size_t total, size_t chunk_rows,
                             size_t (*text_len)(size_t)) {
  size_t expect = 0, chunks = 0;
  bool failed = true;
  struct bf_error err = {0};
  struct bf_rowbuf *rb;
  while ((rb = bf_prefetch_next(pf, &failed, &err))) {
    cr_assert_not(failed);
    cr_assert_gt(rb->nrows, 0);
    cr_assert_leq(rb->nrows, chunk_rows);
    /* Only the warehouse's last chunk may be short. */
    if (rb->nrows < chunk_rows) cr_assert_eq(expect + rb->nrows, total);
    for (size_t i = 0; i < rb->nrows; i++) assert_row(rb, i, expect + i, text_len);
    expect += rb->nrows;
    chunks++;
  }
  cr_assert_not(failed, "%s", err.msg);
  cr_assert_eq(err.code, 0);
  cr_assert_eq(expect, total, "%zu rows arrived, expected %zu", expect, total);
  /* The end is sticky. */
  cr_assert_null(bf_prefetch_next(pf, &failed, &err));
  cr_assert_not(failed);
  return chunks;
}

Test(prefetch, every_row_arrives_once_in_order) {
  const size_t total = 10007, chunk_rows = 64; /* 156 full chunks and one of 23 rows */
  struct bf_prefetch *pf = bf_prefetch_new(&fake_new(total)->base, chunk_rows, 0);
  size_t chunks = drain_in_order(pf, total, chunk_rows, short_text);
  cr_assert_eq(chunks, (total + chunk_rows - 1) / chunk_rows);
  bf_prefetch_free(pf);
  cr_assert_eq(atomic_load(&cursors_freed), 1);
}

Test(prefetch, exact_multiple_of_the_chunk_size_and_empty_query) {
  struct bf_prefetch *pf = bf_prefetch_new(&fake_new(64 * 20)->base, 64, 0);
  cr_assert_eq(drain_in_order(pf, 64 * 20, 64, short_text), 20);
  bf_prefetch_free(pf);

  pf = bf_prefetch_new(&fake_new(0)->base, 64, 0);
  cr_assert_eq(drain_in_order(pf, 0, 64, short_text), 0);
  bf_prefetch_free(pf);
  cr_assert_eq(atomic_load(&cursors_freed), 2);
}

Test(prefetch, slow_warehouse_fast_consumer) {
  /* The consumer waits on the reader every time: nothing is lost either. */
  struct fake_cursor *cur = fake_new(1000);
  cur->chunk_delay_ns = 200 * 1000;
  struct bf_prefetch *pf = bf_prefetch_new(&cur->base, 64, 0);
  cr_assert_eq(drain_in_order(pf, 1000, 64, short_text), 16);
  bf_prefetch_free(pf);
}

/* --- the prepare step ---------------------------------------------------- */

#define PREP_CHUNK 64

struct sums {
  int64_t sum[PREP_CHUNK]; /* id + derived of each row */
  size_t nrows;            /* rows the step saw */
  int calls;               /* steps run on this chunk since the consumer last reset it */
};

struct prep_ctx {
  pthread_t consumer;
  atomic_int calls_by_reader, calls_by_consumer;
  atomic_int twice;   /* the step ran on a chunk already marked prepared */
  atomic_int on_held; /* the reader ran the step on the chunk the consumer holds */
  _Atomic(struct bf_rowbuf *) held;
  long delay_ns; /* slow step */
};

static void sum_rows(struct bf_rowbuf *rb, void *ctx_) {
  struct prep_ctx *ctx = ctx_;
  bool by_reader = !pthread_equal(pthread_self(), ctx->consumer);
  atomic_fetch_add(by_reader ? &ctx->calls_by_reader : &ctx->calls_by_consumer, 1);
  if (rb->prepared) atomic_fetch_add(&ctx->twice, 1);
  if (by_reader && atomic_load(&ctx->held) == rb) atomic_fetch_add(&ctx->on_held, 1);
  struct sums *s = rb->prep;
  for (size_t i = 0; i < rb->nrows; i++) {
    const struct bf_value *row = bf_rowbuf_row(rb, i);
    s->sum[i] = row[0].u.i + row[1].u.i;
  }
  s->nrows = rb->nrows;
  s->calls++;
  if (ctx->delay_ns) sleep_ns(ctx->delay_ns);
}

/* Consumes pf with a step that takes consumer_ns per chunk; every chunk's
 * prep must match its rows, whoever prepared it. Returns the chunks. */
static size_t consume_prepared(struct bf_prefetch *pf, struct prep_ctx *ctx, size_t total,
                               long consumer_ns, size_t *prepared_by_reader) {
  size_t expect = 0, chunks = 0;
  bool failed = false;
  struct bf_error err = {0};
  struct bf_rowbuf *rb;
  *prepared_by_reader = 0;
  while ((rb = bf_prefetch_next(pf, &failed, &err))) {
    atomic_store(&ctx->held, rb);
    struct sums *s = rb->prep;
    cr_assert_not_null(s);
    if (rb->prepared) {
      (*prepared_by_reader)++;
      cr_assert_eq(s->calls, 1, "chunk %zu prepared %d times", chunks, s->calls);
    } else {
      cr_assert_eq(s->calls, 0, "chunk %zu was prepared but not marked so", chunks);
      sum_rows(rb, ctx);
      rb->prepared = true;
    }
    cr_assert_eq(s->nrows, rb->nrows, "chunk %zu: prepared %zu rows of %zu", chunks, s->nrows,
                 rb->nrows);
    for (size_t i = 0; i < rb->nrows; i++) {
      assert_row(rb, i, expect + i, short_text);
      int64_t want = (int64_t)(expect + i) * 4 + 1;
      cr_assert_eq(s->sum[i], want, "chunk %zu row %zu: prep %lld, expected %lld", chunks, i,
                   (long long)s->sum[i], (long long)want);
    }
    if (consumer_ns) sleep_ns(consumer_ns); /* the consumer's own work */
    /* Poison the results so a chunk handed back unprepared cannot pass. */
    memset(s->sum, 0x5a, sizeof s->sum);
    s->nrows = SIZE_MAX;
    s->calls = 0;
    atomic_store(&ctx->held, NULL);
    expect += rb->nrows;
    chunks++;
  }
  cr_assert_not(failed, "%s", err.msg);
  cr_assert_eq(expect, total);
  return chunks;
}

static void assert_prepared_once_each(struct prep_ctx *ctx, size_t chunks, size_t by_reader) {
  cr_assert_eq(atomic_load(&ctx->twice), 0, "a chunk was prepared twice");
  cr_assert_eq(atomic_load(&ctx->on_held), 0, "the reader prepared the consumer's chunk");
  /* Every chunk exactly once: by the reader when it arrived prepared, by
   * the consumer otherwise; no step is wasted on a chunk nobody reads. */
  cr_assert_eq((size_t)atomic_load(&ctx->calls_by_reader), by_reader);
  cr_assert_eq((size_t)atomic_load(&ctx->calls_by_consumer), chunks - by_reader);
}

Test(prefetch, reader_prepares_chunks_for_a_slow_consumer) {
  const size_t total = 10007;
  struct prep_ctx ctx = {.consumer = pthread_self()};
  struct bf_prefetch *pf = bf_prefetch_new(&fake_new(total)->base, PREP_CHUNK, sizeof(struct sums));
  bf_prefetch_set_prepare(pf, sum_rows, &ctx);
  size_t by_reader;
  size_t chunks = consume_prepared(pf, &ctx, total, 300 * 1000, &by_reader);
  cr_assert_eq(chunks, (total + PREP_CHUNK - 1) / PREP_CHUNK);
  /* The consumer is slow: the ring fills and the reader has time. */
  cr_assert_geq(by_reader, 1, "the reader prepared no chunk");
  assert_prepared_once_each(&ctx, chunks, by_reader);
  bf_prefetch_free(pf);
  cr_assert_eq(atomic_load(&cursors_freed), 1);
}

Test(prefetch, slow_prepare_step_and_fast_consumer_share_the_work) {
  /* Each thread may find the other mid-step: the consumer must wait for a
   * chunk the reader is preparing rather than take it half done. */
  const size_t total = 3000;
  struct prep_ctx ctx = {.consumer = pthread_self(), .delay_ns = 100 * 1000};
  struct bf_prefetch *pf = bf_prefetch_new(&fake_new(total)->base, PREP_CHUNK, sizeof(struct sums));
  bf_prefetch_set_prepare(pf, sum_rows, &ctx);
  size_t by_reader;
  size_t chunks = consume_prepared(pf, &ctx, total, 0, &by_reader);
  cr_assert_eq(chunks, (total + PREP_CHUNK - 1) / PREP_CHUNK);
  assert_prepared_once_each(&ctx, chunks, by_reader);
  bf_prefetch_free(pf);
}

Test(prefetch, prepare_set_after_the_warehouse_is_read) {
  /* Three chunks fit the ring: the reader finishes (and may exit) before the
   * step is known; whatever it does, each chunk is prepared once. */
  struct prep_ctx ctx = {.consumer = pthread_self()};
  struct bf_prefetch *pf = bf_prefetch_new(&fake_new(150)->base, PREP_CHUNK, sizeof(struct sums));
  sleep_ns(20 * 1000 * 1000);
  bf_prefetch_set_prepare(pf, sum_rows, &ctx);
  size_t by_reader;
  size_t chunks = consume_prepared(pf, &ctx, 150, 1000 * 1000, &by_reader);
  cr_assert_eq(chunks, 3);
  assert_prepared_once_each(&ctx, chunks, by_reader);
  bf_prefetch_free(pf);
}

/* --- text bytes ---------------------------------------------------------- */

#define BIG_ROW 700
#define BIG_LEN (200u * 1000)

/* Lengths 0..40 (every small-copy path of put_bytes), a few hundred bytes
 * (a 512-row chunk spans several 64 KiB blocks) and one value of 200 000
 * bytes in the middle of a chunk. */
static size_t mixed_text(size_t row) {
  if (row == BIG_ROW) return BIG_LEN;
  if (row % 3 == 0) return row % 41;
  return (row * 37) % 700;
}

Test(prefetch, text_bytes_survive_blocks_and_a_value_larger_than_a_block) {
  const size_t total = 4000, chunk_rows = 512;
  struct fake_cursor *cur = fake_new(total);
  cur->text_len = mixed_text;
  struct bf_prefetch *pf = bf_prefetch_new(&cur->base, chunk_rows, 0);
  size_t expect = 0;
  bool failed = false;
  struct bf_error err = {0};
  struct bf_rowbuf *rb;
  while ((rb = bf_prefetch_next(pf, &failed, &err))) {
    for (size_t i = 0; i < rb->nrows; i++) assert_row(rb, i, expect + i, mixed_text);
    /* The reader fills other chunks meanwhile: the one held stays intact,
     * and every pointer of it stays valid until the next call. */
    sleep_ns(2 * 1000 * 1000);
    for (size_t i = 0; i < rb->nrows; i++) assert_row(rb, i, expect + i, mixed_text);
    expect += rb->nrows;
  }
  cr_assert_not(failed, "%s", err.msg);
  cr_assert_eq(expect, total);
  bf_prefetch_free(pf);
}

static size_t blocks_in(const struct bf_rowbuf *rb) {
  size_t n = 0;
  for (const struct bf_rowbuf_block *b = rb->first; b; b = b->next) n++;
  return n;
}

static bool in_blocks(const struct bf_rowbuf *rb, const char *p, size_t n) {
  for (const struct bf_rowbuf_block *b = rb->first; b; b = b->next)
    if (p >= b->bytes && p + n <= b->bytes + b->cap) return true;
  return false;
}

Test(rowbuf, put_bytes_keeps_earlier_values_and_reuses_blocks) {
  struct bf_rowbuf rb;
  bf_rowbuf_init(&rb, 1, 4096);
  const size_t big = 100 * 1024, nsmall = 3000;
  char *bigsrc = bf_xmalloc(big);
  size_t first_round_blocks = 0;
  for (int round = 0; round < 3; round++) {
    bf_rowbuf_clear(&rb);
    const char *ptrs[3001];
    size_t lens[3001];
    /* Small values first, so the big one does not fit what is left. */
    for (size_t k = 0; k < nsmall + 1; k++) {
      size_t row = k + (size_t)round * 11;
      size_t n = k == 1500 ? big : mixed_text(row) % 97;
      char *src = k == 1500 ? bigsrc : (char[97]){0};
      for (size_t j = 0; j < n; j++) src[j] = text_byte(row, j);
      ptrs[k] = bf_rowbuf_put_bytes(&rb, src, n);
      lens[k] = n;
      cr_assert(in_blocks(&rb, ptrs[k], n), "value %zu is outside the chunk's blocks", k);
      if (k == 1500) cr_assert_geq(rb.block->cap, big, "the big value's block is too small");
    }
    for (size_t k = 0; k < nsmall + 1; k++) {
      size_t row = k + (size_t)round * 11;
      for (size_t j = 0; j < lens[k]; j++)
        if (ptrs[k][j] != text_byte(row, j))
          cr_assert_fail("round %d value %zu byte %zu changed", round, k, j);
    }
    /* Values do not overlap: they are laid out one after another. */
    for (size_t k = 1; k < nsmall + 1; k++)
      if (ptrs[k] > ptrs[k - 1] && ptrs[k] < ptrs[k - 1] + lens[k - 1])
        cr_assert_fail("value %zu overlaps value %zu", k, k - 1);
    if (round == 0) first_round_blocks = blocks_in(&rb);
    /* ~100 KiB of small values and one of 100 KiB: more than two blocks. */
    cr_assert_geq(blocks_in(&rb), 3);
    /* Clearing keeps the blocks: later rounds need no new ones. */
    cr_assert_eq(blocks_in(&rb), first_round_blocks, "round %d grew the chain", round);
  }
  free(bigsrc);
  bf_rowbuf_release(&rb);
}

/* --- errors and early exits ---------------------------------------------- */

Test(prefetch, cursor_error_mid_stream_reaches_the_consumer) {
  const size_t fail_at = 1000, chunk_rows = 64; /* 15 good chunks, the 16th fails */
  struct fake_cursor *cur = fake_new(10007);
  cur->fail_at = fail_at;
  struct bf_prefetch *pf = bf_prefetch_new(&cur->base, chunk_rows, 0);
  size_t expect = 0;
  bool failed = false;
  struct bf_error err = {0};
  struct bf_rowbuf *rb;
  while ((rb = bf_prefetch_next(pf, &failed, &err))) {
    cr_assert_not(failed);
    for (size_t i = 0; i < rb->nrows; i++) assert_row(rb, i, expect + i, short_text);
    expect += rb->nrows;
  }
  /* Every full chunk before the failure, none of the failed one's rows. */
  cr_assert_eq(expect, fail_at / chunk_rows * chunk_rows);
  cr_assert(failed);
  cr_assert_eq(err.code, BF_E_WAREHOUSE);
  cr_assert_str_eq(err.msg, "fake warehouse: disk I/O error at row 1000");
  /* Asking again gives the same answer, not a hang or the end. */
  struct bf_error again = {0};
  failed = false;
  cr_assert_null(bf_prefetch_next(pf, &failed, &again));
  cr_assert(failed);
  cr_assert_str_eq(again.msg, err.msg);
  bf_prefetch_free(pf);
  cr_assert_eq(atomic_load(&cursors_freed), 1);
}

Test(prefetch, cursor_error_on_the_first_chunk) {
  struct fake_cursor *cur = fake_new(100);
  cur->fail_at = 0;
  struct bf_prefetch *pf = bf_prefetch_new(&cur->base, 64, sizeof(struct sums));
  struct prep_ctx ctx = {.consumer = pthread_self()};
  bf_prefetch_set_prepare(pf, sum_rows, &ctx);
  bool failed = false;
  struct bf_error err = {0};
  cr_assert_null(bf_prefetch_next(pf, &failed, &err));
  cr_assert(failed);
  cr_assert_str_eq(err.msg, "fake warehouse: disk I/O error at row 0");
  bf_prefetch_free(pf);
  cr_assert_eq(atomic_load(&ctx.calls_by_reader), 0);
}

/* The consumer stops after two chunks (a destination went away, say). */
static void stop_early(bool with_prepare, long warehouse_ns, long prepare_ns) {
  struct fake_cursor *cur = fake_new(1000 * 1000);
  cur->chunk_delay_ns = warehouse_ns;
  struct prep_ctx ctx = {.consumer = pthread_self(), .delay_ns = prepare_ns};
  struct bf_prefetch *pf = bf_prefetch_new(&cur->base, 64, with_prepare ? sizeof(struct sums) : 0);
  if (with_prepare) bf_prefetch_set_prepare(pf, sum_rows, &ctx);
  bool failed = false;
  struct bf_error err = {0};
  for (size_t c = 0; c < 2; c++) {
    struct bf_rowbuf *rb = bf_prefetch_next(pf, &failed, &err);
    cr_assert_not_null(rb);
    for (size_t i = 0; i < rb->nrows; i++) assert_row(rb, i, c * 64 + i, short_text);
  }
  /* Let the reader fill the ring and block (or sit in a step). */
  sleep_ns(5 * 1000 * 1000);
  bf_prefetch_free(pf);
  cr_assert_eq(atomic_load(&cursors_freed), 1);
  cr_assert_eq(atomic_load(&ctx.twice), 0);
}

Test(prefetch, free_after_two_chunks_with_a_full_ring, .timeout = 20) { stop_early(false, 0, 0); }

Test(prefetch, free_after_two_chunks_while_the_reader_prepares, .timeout = 20) {
  stop_early(true, 0, 2 * 1000 * 1000);
}

Test(prefetch, free_after_two_chunks_while_the_warehouse_is_slow, .timeout = 20) {
  stop_early(true, 3 * 1000 * 1000, 0);
}

Test(prefetch, free_before_reading_anything, .timeout = 20) {
  for (int i = 0; i < 50; i++) {
    struct bf_prefetch *pf = bf_prefetch_new(&fake_new(100000)->base, 64, sizeof(struct sums));
    struct prep_ctx ctx = {.consumer = pthread_self()};
    if (i % 2) bf_prefetch_set_prepare(pf, sum_rows, &ctx);
    bf_prefetch_free(pf);
  }
  cr_assert_eq(atomic_load(&cursors_freed), 50);
  bf_prefetch_free(NULL);
}

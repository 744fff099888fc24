/* pgoutput decoder: see pgoutput.h. Every read goes through struct reader,
 * which checks the bytes left first: input comes from the network. */
#include "sources/pgoutput.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Seconds from 1970-01-01 to 2000-01-01. */
#define PG_EPOCH_OFFSET_S 946684800LL

struct reader {
  const unsigned char *buf;
  size_t len, at;
  const char *what; /* the message being read, for errors */
  struct bf_error *err;
  bool failed;
};

static bool short_input(struct reader *r, const char *field) {
  if (!r->failed)
    bf_error_set(r->err, BF_E_WAREHOUSE, "pgoutput: %s message cut short in %s at byte %zu",
                 r->what, field, r->at);
  r->failed = true;
  return false;
}

static bool take(struct reader *r, size_t n, const char *field) {
  if (r->failed) return false;
  if (r->len - r->at < n) return short_input(r, field);
  return true;
}

static uint8_t u8(struct reader *r, const char *field) {
  if (!take(r, 1, field)) return 0;
  return r->buf[r->at++];
}

static uint16_t u16(struct reader *r, const char *field) {
  if (!take(r, 2, field)) return 0;
  uint16_t v = (uint16_t)((uint16_t)r->buf[r->at] << 8 | r->buf[r->at + 1]);
  r->at += 2;
  return v;
}

static uint32_t u32(struct reader *r, const char *field) {
  if (!take(r, 4, field)) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v = v << 8 | r->buf[r->at + (size_t)i];
  r->at += 4;
  return v;
}

static uint64_t u64(struct reader *r, const char *field) {
  if (!take(r, 8, field)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | r->buf[r->at + (size_t)i];
  r->at += 8;
  return v;
}

/* A NUL-terminated string inside the buffer. */
static const char *str(struct reader *r, const char *field) {
  if (r->failed) return "";
  const unsigned char *nul = memchr(r->buf + r->at, 0, r->len - r->at);
  if (!nul) {
    bf_error_set(r->err, BF_E_WAREHOUSE,
                 "pgoutput: %s message: %s at byte %zu has no terminating NUL", r->what, field,
                 r->at);
    r->failed = true;
    return "";
  }
  const char *s = (const char *)r->buf + r->at;
  r->at = (size_t)(nul - r->buf) + 1;
  return s;
}

static int finish(struct reader *r) {
  if (r->failed) return r->err ? r->err->code : BF_E_WAREHOUSE;
  if (r->at != r->len)
    return bf_error_set(r->err, BF_E_WAREHOUSE,
                        "pgoutput: %s message has %zu unexpected bytes after byte %zu", r->what,
                        r->len - r->at, r->at);
  return 0;
}

int bf_pgo_parse_copy(const unsigned char *buf, size_t len, struct bf_pgo_copy *out,
                      struct bf_error *err) {
  memset(out, 0, sizeof *out);
  struct reader r = {buf, len, 0, "CopyData", err, false};
  uint8_t kind = u8(&r, "kind");
  if (r.failed) return r.err ? err->code : BF_E_WAREHOUSE;
  if (kind == 'w') {
    r.what = "XLogData";
    out->kind = BF_PGO_XLOGDATA;
    out->wal_start = u64(&r, "start");
    out->wal_end = u64(&r, "end");
    out->send_time = (int64_t)u64(&r, "clock");
    if (r.failed) return err ? err->code : BF_E_WAREHOUSE;
    out->data = buf + r.at;
    out->len = len - r.at;
    return 0;
  }
  if (kind == 'k') {
    r.what = "keepalive";
    out->kind = BF_PGO_KEEPALIVE;
    out->wal_end = u64(&r, "end");
    out->send_time = (int64_t)u64(&r, "clock");
    out->reply_requested = u8(&r, "reply") != 0;
    return finish(&r);
  }
  return bf_error_set(err, BF_E_WAREHOUSE,
                      "pgoutput: unknown replication message kind 0x%02x at byte 0", kind);
}

static void put64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)(v & 0xff);
}

size_t bf_pgo_standby_status(unsigned char out[34], uint64_t written, uint64_t flushed,
                             uint64_t applied, int64_t now_us, bool reply) {
  out[0] = 'r';
  put64(out + 1, written);
  put64(out + 9, flushed);
  put64(out + 17, applied);
  put64(out + 25, (uint64_t)now_us);
  out[33] = reply ? 1 : 0;
  return 34;
}

int64_t bf_pgo_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((int64_t)ts.tv_sec - PG_EPOCH_OFFSET_S) * 1000000 + ts.tv_nsec / 1000;
}

long long bf_pgo_us_to_unix_ms(int64_t pg_us) {
  return (long long)(pg_us / 1000) + PG_EPOCH_OFFSET_S * 1000;
}

bool bf_pgo_parse_lsn(const char *text, uint64_t *out) {
  unsigned hi, lo;
  int used = 0;
  if (!text || sscanf(text, "%X/%X%n", &hi, &lo, &used) != 2 || text[used]) return false;
  *out = (uint64_t)hi << 32 | lo;
  return true;
}

void bf_pgo_format_lsn(uint64_t lsn, char out[24]) {
  snprintf(out, 24, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xffffffffu));
}

void bf_pgo_decoder_init(struct bf_pgo_decoder *d) { memset(d, 0, sizeof *d); }

void bf_pgo_decoder_release(struct bf_pgo_decoder *d) {
  free(d->vals);
  free(d->cols);
  free(d->relids);
  memset(d, 0, sizeof *d);
}

/* Grows *arr to hold n items of size each. */
static void *reserve(void *arr, size_t *cap, size_t n, size_t size) {
  if (n <= *cap) return arr;
  size_t c = *cap ? *cap : 16;
  while (c < n) c *= 2;
  *cap = c;
  return bf_xrealloc(arr, c * size);
}

/* TupleData into d->vals starting at slot first. */
static bool tuple(struct reader *r, struct bf_pgo_decoder *d, size_t first,
                  struct bf_pgo_tuple *t) {
  uint16_t n = u16(r, "column count");
  if (r->failed) return false;
  /* Each column takes at least one byte: a count beyond the bytes left is
   * refused before anything is allocated for it. */
  if (n > r->len - r->at) return short_input(r, "tuple columns");
  d->vals = reserve(d->vals, &d->vals_cap, first + n, sizeof *d->vals);
  t->ncols = n;
  for (uint16_t i = 0; i < n; i++) {
    struct bf_pgo_value *v = &d->vals[first + i];
    memset(v, 0, sizeof *v);
    v->kind = (char)u8(r, "column kind");
    if (r->failed) return false;
    switch (v->kind) {
    case 'n':
    case 'u': break;
    case 't':
    case 'b': {
      uint32_t len = u32(r, "value length");
      if (!take(r, len, "value")) return false;
      v->data = (const char *)r->buf + r->at;
      v->len = len;
      r->at += len;
      break;
    }
    default:
      bf_error_set(r->err, BF_E_WAREHOUSE,
                   "pgoutput: %s message: unknown column kind 0x%02x at "
                   "byte %zu",
                   r->what, (unsigned char)v->kind, r->at - 1);
      r->failed = true;
      return false;
    }
  }
  return true;
}

/* Pointers into d->vals are set once both tuples are read (the array may
 * move while the second one grows it). */
static void bind_tuples(struct bf_pgo_decoder *d, struct bf_pgo_msg *m, bool has_old) {
  if (has_old) {
    m->old_tuple.cols = d->vals;
    m->new_tuple.cols = d->vals + m->old_tuple.ncols;
  } else {
    m->new_tuple.cols = d->vals;
  }
}

int bf_pgo_decode(struct bf_pgo_decoder *d, const unsigned char *buf, size_t len,
                  struct bf_pgo_msg *out, struct bf_error *err) {
  memset(out, 0, sizeof *out);
  struct reader r = {buf, len, 0, "pgoutput", err, false};
  uint8_t kind = u8(&r, "kind");
  if (r.failed) return err ? err->code : BF_E_WAREHOUSE;
  out->kind = (enum bf_pgo_kind)kind;
  switch (kind) {
  case 'B':
    r.what = "Begin";
    out->lsn = u64(&r, "final LSN");
    out->commit_time = (int64_t)u64(&r, "commit time");
    out->xid = u32(&r, "xid");
    break;
  case 'C':
    r.what = "Commit";
    u8(&r, "flags");
    u64(&r, "commit LSN");
    out->lsn = u64(&r, "end LSN");
    out->commit_time = (int64_t)u64(&r, "commit time");
    break;
  case 'O':
    r.what = "Origin";
    u64(&r, "origin LSN");
    str(&r, "origin name");
    break;
  case 'Y':
    r.what = "Type";
    out->relid = u32(&r, "type oid");
    out->nspname = str(&r, "namespace");
    out->relname = str(&r, "type name");
    break;
  case 'M':
    r.what = "Message";
    u8(&r, "flags");
    u64(&r, "LSN");
    str(&r, "prefix");
    {
      uint32_t n = u32(&r, "content length");
      if (take(&r, n, "content")) r.at += n;
    }
    break;
  case 'R': {
    r.what = "Relation";
    out->relid = u32(&r, "relation oid");
    out->nspname = str(&r, "namespace");
    out->relname = str(&r, "relation name");
    out->replident = (char)u8(&r, "replica identity");
    uint16_t n = u16(&r, "column count");
    if (r.failed) break;
    /* at least 10 bytes per column */
    if ((size_t)n * 10 > r.len - r.at) {
      short_input(&r, "columns");
      break;
    }
    d->cols = reserve(d->cols, &d->cols_cap, n, sizeof *d->cols);
    out->ncolumns = n;
    out->columns = d->cols;
    for (uint16_t i = 0; i < n && !r.failed; i++) {
      d->cols[i].flags = u8(&r, "column flags");
      d->cols[i].name = str(&r, "column name");
      d->cols[i].type_oid = u32(&r, "column type");
      d->cols[i].typmod = (int32_t)u32(&r, "column typmod");
    }
    break;
  }
  case 'I': {
    r.what = "Insert";
    out->relid = u32(&r, "relation oid");
    if (u8(&r, "tuple marker") != 'N' && !r.failed) {
      r.failed = true;
      bf_error_set(err, BF_E_WAREHOUSE, "pgoutput: Insert message: expected 'N' at byte %zu",
                   r.at - 1);
      break;
    }
    if (tuple(&r, d, 0, &out->new_tuple)) bind_tuples(d, out, false);
    break;
  }
  case 'U': {
    r.what = "Update";
    out->relid = u32(&r, "relation oid");
    uint8_t marker = u8(&r, "tuple marker");
    bool has_old = marker == 'K' || marker == 'O';
    if (has_old) {
      out->old_kind = (char)marker;
      if (!tuple(&r, d, 0, &out->old_tuple)) break;
      marker = u8(&r, "tuple marker");
    }
    if (r.failed) break;
    if (marker != 'N') {
      r.failed = true;
      bf_error_set(err, BF_E_WAREHOUSE, "pgoutput: Update message: expected 'N' at byte %zu",
                   r.at - 1);
      break;
    }
    if (tuple(&r, d, has_old ? out->old_tuple.ncols : 0, &out->new_tuple))
      bind_tuples(d, out, has_old);
    break;
  }
  case 'D': {
    r.what = "Delete";
    out->relid = u32(&r, "relation oid");
    uint8_t marker = u8(&r, "tuple marker");
    if (r.failed) break;
    if (marker != 'K' && marker != 'O') {
      r.failed = true;
      bf_error_set(err, BF_E_WAREHOUSE, "pgoutput: Delete message: expected 'K' or 'O' at byte %zu",
                   r.at - 1);
      break;
    }
    out->old_kind = (char)marker;
    if (tuple(&r, d, 0, &out->old_tuple)) out->old_tuple.cols = d->vals;
    break;
  }
  case 'T': {
    r.what = "Truncate";
    uint32_t n = u32(&r, "relation count");
    out->truncate_options = u8(&r, "options");
    if (r.failed) break;
    if ((size_t)n > (r.len - r.at) / 4) {
      short_input(&r, "relation oids");
      break;
    }
    d->relids = reserve(d->relids, &d->relids_cap, n ? n : 1, sizeof *d->relids);
    out->nrelids = n;
    out->relids = d->relids;
    for (uint32_t i = 0; i < n; i++) d->relids[i] = u32(&r, "relation oid");
    break;
  }
  default:
    return bf_error_set(err, BF_E_WAREHOUSE, "pgoutput: unknown message kind 0x%02x at byte 0",
                        kind);
  }
  return finish(&r);
}

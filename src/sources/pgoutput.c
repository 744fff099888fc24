/* pgoutput decoder: see pgoutput.h. Every read goes through struct reader,
 * which checks the bytes left first: input comes from the network. After
 * the first failure every read returns 0 / "" and keeps the first error, so
 * a decoder reads its fields in a row and checks once. */
#include "sources/pgoutput.h"

#include <inttypes.h>
#include <stdarg.h>
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

static bool fail_at(struct reader *r, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error only: later ones follow from it. */
static bool fail_at(struct reader *r, size_t at, const char *fmt, ...) {
  if (r->failed) return false;
  r->failed = true;
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  bf_error_set(r->err, BF_E_WAREHOUSE, "pgoutput: %s message: %s at byte %zu", r->what, what, at);
  return false;
}

static bool take(struct reader *r, size_t n, const char *field) {
  if (r->failed) return false;
  if (r->len - r->at < n)
    return fail_at(r, r->at, "cut short in %s (%zu bytes needed, %zu left)", field, n,
                   r->len - r->at);
  return true;
}

static uint64_t be(struct reader *r, size_t n, const char *field) {
  if (!take(r, n, field)) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v << 8 | r->buf[r->at + i];
  r->at += n;
  return v;
}

static uint8_t u8(struct reader *r, const char *field) { return (uint8_t)be(r, 1, field); }
static uint16_t u16(struct reader *r, const char *field) { return (uint16_t)be(r, 2, field); }
static uint32_t u32(struct reader *r, const char *field) { return (uint32_t)be(r, 4, field); }
static uint64_t u64(struct reader *r, const char *field) { return be(r, 8, field); }

/* A NUL-terminated string inside the buffer: the caller gets a pointer into
 * it, so the NUL must be there, not assumed. */
static const char *str(struct reader *r, const char *field) {
  if (r->failed) return "";
  const unsigned char *nul = memchr(r->buf + r->at, 0, r->len - r->at);
  if (!nul) {
    fail_at(r, r->at, "%s has no terminating NUL", field);
    return "";
  }
  const char *s = (const char *)r->buf + r->at;
  r->at = (size_t)(nul - r->buf) + 1;
  return s;
}

static int finish(struct reader *r) {
  if (!r->failed && r->at != r->len)
    fail_at(r, r->at, "%zu unexpected trailing bytes", r->len - r->at);
  return r->failed ? BF_E_WAREHOUSE : 0;
}

int bf_pgo_parse_copy(const unsigned char *buf, size_t len, struct bf_pgo_copy *out,
                      struct bf_error *err) {
  memset(out, 0, sizeof *out);
  if (len == 0) return bf_error_set(err, BF_E_WAREHOUSE, "pgoutput: empty CopyData at byte 0");
  uint8_t kind = buf[0];
  struct reader r = {buf, len, 1, NULL, err, false};
  if (kind == 'w') {
    r.what = "XLogData";
    uint64_t start = u64(&r, "WAL start"), end = u64(&r, "WAL end");
    int64_t clock = (int64_t)u64(&r, "clock");
    if (r.failed) return BF_E_WAREHOUSE;
    *out = (struct bf_pgo_copy){.kind = BF_PGO_XLOGDATA,
                                .wal_start = start,
                                .wal_end = end,
                                .send_time = clock,
                                .data = buf + r.at,
                                .len = len - r.at};
    return 0;
  }
  if (kind == 'k') {
    /* Byte1 'k', Int64 end of WAL, Int64 clock, Byte1 reply: 18 bytes, no
     * start position (protocol-replication.html). */
    r.what = "keepalive";
    uint64_t end = u64(&r, "WAL end");
    int64_t clock = (int64_t)u64(&r, "clock");
    bool reply = u8(&r, "reply flag") != 0;
    if (finish(&r)) return BF_E_WAREHOUSE;
    *out = (struct bf_pgo_copy){
        .kind = BF_PGO_KEEPALIVE, .wal_end = end, .send_time = clock, .reply_requested = reply};
    return 0;
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
  /* Floor, not C's truncation toward zero: a time before 2000 must not
   * round up into the next millisecond. */
  int64_t ms = pg_us / 1000;
  if (pg_us % 1000 < 0) ms--;
  return (long long)ms + PG_EPOCH_OFFSET_S * 1000;
}

/* 1 to 8 hex digits, as PostgreSQL's pg_lsn input takes them. */
static size_t hex_run(const char *s, uint32_t *v) {
  size_t n = 0;
  uint32_t acc = 0;
  for (; n < 9; n++) {
    char c = s[n];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = (unsigned)(c - 'A' + 10);
    else
      break;
    acc = acc << 4 | d;
  }
  *v = acc;
  return n >= 1 && n <= 8 ? n : 0;
}

/* Hand-rolled rather than sscanf("%X/%X"), which also takes blanks, signs,
 * "0x" and out-of-range values: a position read back from the server or the
 * state store that is not exactly an LSN is refused. */
bool bf_pgo_parse_lsn(const char *text, uint64_t *out) {
  if (!text) return false;
  uint32_t hi, lo;
  size_t n1 = hex_run(text, &hi);
  if (!n1 || text[n1] != '/') return false;
  size_t n2 = hex_run(text + n1 + 1, &lo);
  if (!n2 || text[n1 + 1 + n2] != '\0') return false;
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

/* Grows arr to hold n items of size each. At least one, so an empty tuple or
 * column list still points at an array (never NULL + 0). The callers bound n
 * by the bytes of the message, so a hostile count cannot allocate more than
 * a small multiple of what was received. */
static void *reserve(void *arr, size_t *cap, size_t n, size_t size) {
  if (n == 0) n = 1;
  if (arr && n <= *cap) return arr;
  size_t c = *cap ? *cap : 16;
  while (c < n) c *= 2;
  arr = bf_xrealloc(arr, c * size);
  *cap = c;
  return arr;
}

/* TupleData into d->vals from slot first on; sets t->ncols only (t->cols is
 * bound once every tuple of the message is read: the array may move). */
static bool tuple(struct reader *r, struct bf_pgo_decoder *d, size_t first,
                  struct bf_pgo_tuple *t) {
  size_t at = r->at;
  uint16_t n = u16(r, "column count");
  if (r->failed) return false;
  /* Each column takes at least its kind byte: a count beyond the bytes left
   * is refused before anything is allocated for it. */
  if (n > r->len - r->at)
    return fail_at(r, at, "%u columns but %zu bytes left", (unsigned)n, r->len - r->at);
  d->vals = reserve(d->vals, &d->vals_cap, first + n, sizeof *d->vals);
  t->ncols = n;
  for (uint16_t i = 0; i < n; i++) {
    struct bf_pgo_value *v = &d->vals[first + i];
    *v = (struct bf_pgo_value){0};
    size_t kind_at = r->at;
    v->kind = (char)u8(r, "column kind");
    if (r->failed) return false;
    switch (v->kind) {
    case 'n':
    case 'u': break;
    case 't':
    case 'b': {
      uint32_t vlen = u32(r, "value length");
      if (!take(r, vlen, "value")) return false;
      v->data = (const char *)r->buf + r->at;
      v->len = vlen;
      r->at += vlen;
      break;
    }
    default: return fail_at(r, kind_at, "unknown column kind 0x%02x", (unsigned char)v->kind);
    }
  }
  return true;
}

static void relation(struct reader *r, struct bf_pgo_decoder *d, struct bf_pgo_msg *out) {
  out->relid = u32(r, "relation oid");
  out->nspname = str(r, "namespace");
  out->relname = str(r, "relation name");
  out->replident = (char)u8(r, "replica identity");
  size_t at = r->at;
  uint16_t n = u16(r, "column count");
  if (r->failed) return;
  /* Flags, an empty name's NUL, type oid and typmod: 10 bytes at least. */
  if ((size_t)n * 10 > r->len - r->at) {
    fail_at(r, at, "%u columns but %zu bytes left", (unsigned)n, r->len - r->at);
    return;
  }
  d->cols = reserve(d->cols, &d->cols_cap, n, sizeof *d->cols);
  for (uint16_t i = 0; i < n && !r->failed; i++) {
    struct bf_pgo_column *c = &d->cols[i];
    c->flags = u8(r, "column flags");
    c->name = str(r, "column name");
    c->type_oid = u32(r, "column type");
    c->typmod = (int32_t)u32(r, "column typmod");
  }
  out->ncolumns = n;
  out->columns = d->cols;
}

/* Insert: 'N' new. Update: ['K' key | 'O' old] then 'N' new. Delete: 'K' or
 * 'O'. Old values go first in d->vals, new ones after them. */
static void row_change(struct reader *r, struct bf_pgo_decoder *d, struct bf_pgo_msg *out) {
  out->relid = u32(r, "relation oid");
  size_t at = r->at;
  uint8_t marker = u8(r, "tuple marker");
  if (r->failed) return;
  if (out->kind != BF_PGO_INSERT && (marker == 'K' || marker == 'O')) {
    out->old_kind = (char)marker;
    if (!tuple(r, d, 0, &out->old_tuple)) return;
    if (out->kind == BF_PGO_DELETE) {
      out->old_tuple.cols = d->vals;
      return;
    }
    at = r->at;
    marker = u8(r, "tuple marker");
    if (r->failed) return;
  } else if (out->kind == BF_PGO_DELETE) {
    fail_at(r, at, "tuple marker 0x%02x, expected 'K' or 'O'", marker);
    return;
  }
  if (marker != 'N') {
    fail_at(r, at, "tuple marker 0x%02x, expected %s", marker,
            out->kind == BF_PGO_INSERT || out->old_kind ? "'N'" : "'K', 'O' or 'N'");
    return;
  }
  if (!tuple(r, d, out->old_tuple.ncols, &out->new_tuple)) return;
  if (out->old_kind) out->old_tuple.cols = d->vals;
  out->new_tuple.cols = d->vals + out->old_tuple.ncols;
}

int bf_pgo_decode(struct bf_pgo_decoder *d, const unsigned char *buf, size_t len,
                  struct bf_pgo_msg *out, struct bf_error *err) {
  memset(out, 0, sizeof *out);
  if (len == 0) return bf_error_set(err, BF_E_WAREHOUSE, "pgoutput: empty message at byte 0");
  uint8_t kind = buf[0];
  struct reader r = {buf, len, 1, NULL, err, false};
  /* Protocol version 1 only: Backflow asks for neither streaming (v2) nor
   * two-phase (v3) messages. */
  static const char *const names[256] = {
      ['B'] = "Begin",  ['C'] = "Commit", ['O'] = "Origin", ['R'] = "Relation", ['Y'] = "Type",
      ['I'] = "Insert", ['U'] = "Update", ['D'] = "Delete", ['T'] = "Truncate", ['M'] = "Message",
  };
  if (!names[kind])
    return bf_error_set(err, BF_E_WAREHOUSE, "pgoutput: unknown message kind 0x%02x at byte 0",
                        kind);
  r.what = names[kind];
  out->kind = (enum bf_pgo_kind)kind;
  switch (out->kind) {
  case BF_PGO_BEGIN:
    out->lsn = u64(&r, "final LSN");
    out->commit_time = (int64_t)u64(&r, "commit time");
    out->xid = u32(&r, "xid");
    break;
  case BF_PGO_COMMIT:
    u8(&r, "flags");
    u64(&r, "commit LSN");
    out->lsn = u64(&r, "end LSN");
    out->commit_time = (int64_t)u64(&r, "commit time");
    break;
  case BF_PGO_ORIGIN:
    u64(&r, "origin LSN");
    str(&r, "origin name");
    break;
  case BF_PGO_TYPE:
    /* The type's oid and names, in the fields a Relation uses. */
    out->relid = u32(&r, "type oid");
    out->nspname = str(&r, "namespace");
    out->relname = str(&r, "type name");
    break;
  case BF_PGO_MESSAGE: {
    u8(&r, "flags");
    u64(&r, "LSN");
    str(&r, "prefix");
    uint32_t n = u32(&r, "content length");
    if (take(&r, n, "content")) r.at += n;
    break;
  }
  case BF_PGO_RELATION: relation(&r, d, out); break;
  case BF_PGO_INSERT:
  case BF_PGO_UPDATE:
  case BF_PGO_DELETE: row_change(&r, d, out); break;
  case BF_PGO_TRUNCATE: {
    size_t at = r.at;
    uint32_t n = u32(&r, "relation count");
    out->truncate_options = u8(&r, "options");
    if (r.failed) break;
    if (n > (r.len - r.at) / 4) {
      fail_at(&r, at, "%" PRIu32 " relations but %zu bytes left", n, r.len - r.at);
      break;
    }
    d->relids = reserve(d->relids, &d->relids_cap, n, sizeof *d->relids);
    for (uint32_t i = 0; i < n; i++) d->relids[i] = u32(&r, "relation oid");
    out->nrelids = n;
    out->relids = d->relids;
    break;
  }
  }
  if (finish(&r)) {
    /* Half-decoded fields must not look usable. */
    memset(out, 0, sizeof *out);
    return BF_E_WAREHOUSE;
  }
  return 0;
}

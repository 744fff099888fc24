/* libFuzzer target: the logical replication decoder (sources/pgoutput.h).
 * The input is one CopyData payload, given to bf_pgo_parse_copy and, when it
 * is XLogData, its payload to bf_pgo_decode; the whole input also goes to
 * bf_pgo_decode directly (a raw pgoutput message, as the seeds hold).
 *
 * Properties, besides ASan/UBSan (libFuzzer's input is an exact-size heap
 * block, so any read past its end is caught):
 * - an error is BF_E_WAREHOUSE with a one-line "pgoutput: ... at byte N";
 * - XLogData's payload is the input after the 25-byte header; a keepalive
 *   is exactly 18 bytes;
 * - every decoded string and value lies inside the input, strings end with
 *   their NUL inside it, and tuple, column and relation counts match;
 * - re-encoding what was decoded gives back the input byte for byte (for
 *   the kinds whose every field the struct carries): nothing skipped or
 *   misread;
 * - messages are self-delimiting: a message that decodes does not decode
 *   with its last byte cut off or one byte more;
 * - LSNs round-trip through their text, and a text that parses is one. */
#include <stdint.h>

#include "fuzz_common.h"
#include "sources/pgoutput.h"

/* One decoder across inputs, as the live feed reuses one: growth and reuse
 * of its arrays are under test too. */
static struct bf_pgo_decoder dec;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_setup_env();
  bf_pgo_decoder_init(&dec);
  return 0;
}

static void check_error(const struct bf_error *err, int rc) {
  FUZZ_CHECK(rc == BF_E_WAREHOUSE, "rc %d", rc);
  FUZZ_CHECK(err->code == BF_E_WAREHOUSE, "code %d", err->code);
  FUZZ_CHECK(strncmp(err->msg, "pgoutput: ", 10) == 0, "message '%s'", err->msg);
  FUZZ_CHECK(strstr(err->msg, " at byte ") != NULL, "message '%s' names no byte", err->msg);
  FUZZ_CHECK(strchr(err->msg, '\n') == NULL, "message '%s' spans lines", err->msg);
}

static bool inside(const void *p, size_t n, const uint8_t *buf, size_t len) {
  const uint8_t *q = p;
  return q >= buf && q <= buf + len && n <= (size_t)(buf + len - q);
}

/* A string of the message: inside it, NUL-terminated inside it. */
static void check_str(const char *s, const uint8_t *buf, size_t len, const char *what) {
  FUZZ_CHECK(s != NULL, "%s is NULL", what);
  FUZZ_CHECK(inside(s, 1, buf, len), "%s outside the input", what);
  size_t left = (size_t)(buf + len - (const uint8_t *)s);
  FUZZ_CHECK(memchr(s, 0, left) != NULL, "%s has no NUL inside the input", what);
}

/* ---- re-encoding ------------------------------------------------------- */

struct enc {
  uint8_t *b;
  size_t n, cap;
  bool overflow;
};

static void put_be(struct enc *e, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) {
    if (e->n == e->cap) {
      e->overflow = true;
      return;
    }
    e->b[e->n++] = (uint8_t)(v >> (8 * i));
  }
}
static void put_raw(struct enc *e, const void *p, size_t n) {
  if (n > e->cap - e->n) {
    e->overflow = true;
    return;
  }
  memcpy(e->b + e->n, p, n);
  e->n += n;
}
static void put_str(struct enc *e, const char *s) { put_raw(e, s, strlen(s) + 1); }

static void put_tuple(struct enc *e, const struct bf_pgo_tuple *t) {
  put_be(e, t->ncols, 2);
  for (uint16_t i = 0; i < t->ncols; i++) {
    const struct bf_pgo_value *v = &t->cols[i];
    put_be(e, (uint8_t)v->kind, 1);
    if (v->kind == 't' || v->kind == 'b') {
      put_be(e, v->len, 4);
      put_raw(e, v->data, v->len);
    }
  }
}

/* Encodes m as the server would have sent it; false for the kinds whose
 * fields the struct does not all carry (Commit's flags and commit LSN,
 * Origin's name, Message's content). */
static bool encode(const struct bf_pgo_msg *m, struct enc *e) {
  put_be(e, (uint8_t)m->kind, 1);
  switch (m->kind) {
  case BF_PGO_BEGIN:
    put_be(e, m->lsn, 8);
    put_be(e, (uint64_t)m->commit_time, 8);
    put_be(e, m->xid, 4);
    return true;
  case BF_PGO_TYPE:
    put_be(e, m->relid, 4);
    put_str(e, m->nspname);
    put_str(e, m->relname);
    return true;
  case BF_PGO_RELATION:
    put_be(e, m->relid, 4);
    put_str(e, m->nspname);
    put_str(e, m->relname);
    put_be(e, (uint8_t)m->replident, 1);
    put_be(e, m->ncolumns, 2);
    for (uint16_t i = 0; i < m->ncolumns; i++) {
      put_be(e, m->columns[i].flags, 1);
      put_str(e, m->columns[i].name);
      put_be(e, m->columns[i].type_oid, 4);
      put_be(e, (uint32_t)m->columns[i].typmod, 4);
    }
    return true;
  case BF_PGO_INSERT:
  case BF_PGO_UPDATE:
  case BF_PGO_DELETE:
    put_be(e, m->relid, 4);
    if (m->old_kind) {
      put_be(e, (uint8_t)m->old_kind, 1);
      put_tuple(e, &m->old_tuple);
    }
    if (m->kind != BF_PGO_DELETE) {
      put_be(e, 'N', 1);
      put_tuple(e, &m->new_tuple);
    }
    return true;
  case BF_PGO_TRUNCATE:
    put_be(e, m->nrelids, 4);
    put_be(e, m->truncate_options, 1);
    for (uint32_t i = 0; i < m->nrelids; i++) put_be(e, m->relids[i], 4);
    return true;
  case BF_PGO_COMMIT:
  case BF_PGO_ORIGIN:
  case BF_PGO_MESSAGE: return false;
  }
  return false;
}

/* ---- the decoded message ----------------------------------------------- */

static void check_tuple(const struct bf_pgo_tuple *t, const uint8_t *buf, size_t len,
                        const char *which) {
  FUZZ_CHECK(t->cols != NULL, "%s tuple without columns array", which);
  /* A column takes at least its kind byte. */
  FUZZ_CHECK(t->ncols <= len, "%s tuple: %u columns in %zu bytes", which, (unsigned)t->ncols, len);
  for (uint16_t i = 0; i < t->ncols; i++) {
    const struct bf_pgo_value *v = &t->cols[i];
    switch (v->kind) {
    case 'n':
    case 'u':
      FUZZ_CHECK(v->data == NULL && v->len == 0, "%s column %u: '%c' with data", which, (unsigned)i,
                 v->kind);
      break;
    case 't':
    case 'b':
      FUZZ_CHECK(v->data != NULL, "%s column %u: no data", which, (unsigned)i);
      FUZZ_CHECK(inside(v->data, v->len, buf, len), "%s column %u: %u bytes outside the input",
                 which, (unsigned)i, v->len);
      break;
    default: FUZZ_CHECK(0, "%s column %u: kind 0x%02x", which, (unsigned)i, (uint8_t)v->kind);
    }
  }
}

static void check_msg(const struct bf_pgo_msg *m, const uint8_t *buf, size_t len) {
  FUZZ_CHECK(len >= 1 && (uint8_t)m->kind == buf[0], "kind 0x%02x for first byte 0x%02x",
             (unsigned)m->kind, len ? buf[0] : 0);
  switch (m->kind) {
  case BF_PGO_BEGIN: FUZZ_CHECK(len == 21, "Begin of %zu bytes", len); break;
  case BF_PGO_COMMIT: {
    FUZZ_CHECK(len == 26, "Commit of %zu bytes", len);
    uint64_t end = 0;
    for (int i = 10; i < 18; i++) end = end << 8 | buf[i];
    FUZZ_CHECK(m->lsn == end, "Commit lsn is not the end LSN");
    break;
  }
  case BF_PGO_ORIGIN: FUZZ_CHECK(len >= 10 && buf[len - 1] == 0, "Origin shape"); break;
  case BF_PGO_MESSAGE: FUZZ_CHECK(len >= 15, "Message of %zu bytes", len); break;
  case BF_PGO_TYPE:
  case BF_PGO_RELATION:
    check_str(m->nspname, buf, len, "namespace");
    check_str(m->relname, buf, len, "name");
    if (m->kind == BF_PGO_TYPE) break;
    FUZZ_CHECK(m->columns != NULL, "Relation without columns array");
    for (uint16_t i = 0; i < m->ncolumns; i++) check_str(m->columns[i].name, buf, len, "column");
    break;
  case BF_PGO_INSERT:
  case BF_PGO_UPDATE:
  case BF_PGO_DELETE:
    if (m->kind == BF_PGO_INSERT) FUZZ_CHECK(m->old_kind == 0, "Insert with old tuple");
    if (m->kind == BF_PGO_DELETE)
      FUZZ_CHECK(m->old_kind == 'K' || m->old_kind == 'O', "Delete old_kind 0x%02x",
                 (uint8_t)m->old_kind);
    else
      FUZZ_CHECK(m->old_kind == 0 || m->old_kind == 'K' || m->old_kind == 'O', "old_kind 0x%02x",
                 (uint8_t)m->old_kind);
    if (m->old_kind)
      check_tuple(&m->old_tuple, buf, len, "old");
    else
      FUZZ_CHECK(m->old_tuple.ncols == 0 && !m->old_tuple.cols, "old tuple without old_kind");
    if (m->kind != BF_PGO_DELETE)
      check_tuple(&m->new_tuple, buf, len, "new");
    else
      FUZZ_CHECK(m->new_tuple.ncols == 0 && !m->new_tuple.cols, "Delete with new tuple");
    /* The tuples do not overlap in the decoder's array. */
    if (m->old_kind && m->kind == BF_PGO_UPDATE)
      FUZZ_CHECK(m->new_tuple.cols >= m->old_tuple.cols + m->old_tuple.ncols, "tuples overlap");
    break;
  case BF_PGO_TRUNCATE:
    FUZZ_CHECK(m->relids != NULL, "Truncate without relids array");
    FUZZ_CHECK(len == 6 + (size_t)m->nrelids * 4, "Truncate of %u relations in %zu bytes",
               m->nrelids, len);
    break;
  default: FUZZ_CHECK(0, "unknown kind 0x%02x decoded", (unsigned)m->kind);
  }

  uint8_t *out = malloc(len + 1);
  struct enc e = {out, 0, len + 1, false};
  if (encode(m, &e)) {
    FUZZ_CHECK(!e.overflow && e.n == len, "re-encoded to %zu bytes (+%d), input %zu", e.n,
               (int)e.overflow, len);
    FUZZ_CHECK(memcmp(out, buf, len) == 0, "re-encoded bytes differ");
  }
  free(out);
}

/* Decodes buf[0..len) and checks the outcome; true when it decoded. */
static bool decode_and_check(const uint8_t *buf, size_t len) {
  struct bf_pgo_msg m;
  struct bf_error err = {0};
  int rc = bf_pgo_decode(&dec, buf, len, &m, &err);
  if (rc) {
    check_error(&err, rc);
    return false;
  }
  FUZZ_CHECK(err.code == 0, "success with an error set");
  check_msg(&m, buf, len);
  return true;
}

/* Decodes a copy of buf[0..n) in an exact-size block, so reading byte n is
 * caught. */
static bool decodes_as(const uint8_t *buf, size_t n, const uint8_t *extra) {
  uint8_t *copy = malloc(n + 1);
  memcpy(copy, buf, n);
  if (extra) copy[n] = *extra;
  struct bf_pgo_msg m;
  bool ok = bf_pgo_decode(&dec, copy, n + (extra ? 1 : 0), &m, NULL) == 0;
  free(copy);
  return ok;
}

static void check_message(const uint8_t *buf, size_t len) {
  if (!decode_and_check(buf, len)) return;
  FUZZ_CHECK(!decodes_as(buf, len - 1, NULL), "decodes with its last byte cut off");
  if (len > 1) FUZZ_CHECK(!decodes_as(buf, len / 2, NULL), "decodes cut in half");
  uint8_t extra = buf[len - 1];
  FUZZ_CHECK(!decodes_as(buf, len, &extra), "decodes with a byte more");
}

static void check_lsn(uint64_t v) {
  char text[24];
  bf_pgo_format_lsn(v, text);
  uint64_t back = ~v;
  FUZZ_CHECK(bf_pgo_parse_lsn(text, &back) && back == v, "LSN %s does not round-trip", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct bf_pgo_copy c;
  struct bf_error err = {0};
  int rc = bf_pgo_parse_copy(data, size, &c, &err);
  if (rc) {
    check_error(&err, rc);
  } else if (c.kind == BF_PGO_XLOGDATA) {
    FUZZ_CHECK(size >= 25 && data[0] == 'w', "XLogData from %zu bytes", size);
    FUZZ_CHECK(c.data == data + 25 && c.len == size - 25, "XLogData payload misplaced");
    check_lsn(c.wal_start);
    check_lsn(c.wal_end);
    check_message(c.data, c.len);
  } else {
    FUZZ_CHECK(c.kind == BF_PGO_KEEPALIVE, "copy kind %d", (int)c.kind);
    FUZZ_CHECK(size == 18 && data[0] == 'k', "keepalive from %zu bytes", size);
    FUZZ_CHECK(c.reply_requested == (data[17] != 0), "reply flag");
    FUZZ_CHECK(c.wal_start == 0 && c.data == NULL && c.len == 0, "keepalive with data");
    /* A status update carries the positions back byte for byte. */
    unsigned char st[34];
    FUZZ_CHECK(bf_pgo_standby_status(st, c.wal_end, c.wal_end, c.wal_end, c.send_time,
                                     c.reply_requested) == 34,
               "status length");
    FUZZ_CHECK(st[0] == 'r' && memcmp(st + 1, data + 1, 8) == 0 &&
                   memcmp(st + 25, data + 9, 8) == 0 && st[33] == (data[17] != 0),
               "status bytes");
  }

  check_message(data, size);

  /* The input as LSN text: what parses is hex/hex of 1 to 8 digits each. */
  char text[24];
  size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
  memcpy(text, data, n);
  text[n] = '\0';
  uint64_t v;
  if (bf_pgo_parse_lsn(text, &v)) {
    const char *slash = strchr(text, '/');
    FUZZ_CHECK(slash && slash > text && slash - text <= 8 && strlen(slash + 1) >= 1 &&
                   strlen(slash + 1) <= 8 &&
                   strspn(text, "0123456789abcdefABCDEF/") == strlen(text) &&
                   strchr(slash + 1, '/') == NULL,
               "'%s' parsed as an LSN", text);
    check_lsn(v);
  }
  return 0;
}

/* pgoutput decoder (src/sources/pgoutput.c): hand-built messages of every
 * kind, every truncation and malformation of them, and a stream captured
 * from a real PostgreSQL 15. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sources/pgoutput.h"

/* ---- a small message builder ------------------------------------------ */

struct mb {
  unsigned char b[8192];
  size_t n;
};

static void put_be(struct mb *m, uint64_t v, int bytes) {
  cr_assert_leq(m->n + (size_t)bytes, sizeof m->b);
  for (int i = bytes - 1; i >= 0; i--) m->b[m->n++] = (unsigned char)(v >> (8 * i));
}
static void put8(struct mb *m, uint8_t v) { put_be(m, v, 1); }
static void put16(struct mb *m, uint16_t v) { put_be(m, v, 2); }
static void put32(struct mb *m, uint32_t v) { put_be(m, v, 4); }
static void put64(struct mb *m, uint64_t v) { put_be(m, v, 8); }
static void put_raw(struct mb *m, const void *p, size_t n) {
  cr_assert_leq(m->n + n, sizeof m->b);
  memcpy(m->b + m->n, p, n);
  m->n += n;
}
/* A String: the bytes and their NUL. */
static void put_str(struct mb *m, const char *s) { put_raw(m, s, strlen(s) + 1); }
/* TupleData columns. */
static void col_text(struct mb *m, const char *s) {
  put8(m, 't');
  put32(m, (uint32_t)strlen(s));
  put_raw(m, s, strlen(s));
}
static void col_bin(struct mb *m, const void *p, uint32_t n) {
  put8(m, 'b');
  put32(m, n);
  put_raw(m, p, n);
}
static void col_null(struct mb *m) { put8(m, 'n'); }
static void col_toast(struct mb *m) { put8(m, 'u'); }

#define LSN_A    UINT64_C(0x00000016B374D848)
#define LSN_B    UINT64_C(0x00000016B374D900)
#define LSN_C    UINT64_C(0x00000016B374D9A0)
#define TS       INT64_C(0x0002C4A1B2C3D4E5)
#define RELID    UINT32_C(0x01020304)
#define BIN_DATA "\000\001\377\200"

static void msg_begin(struct mb *m) {
  put8(m, 'B');
  put64(m, LSN_A);
  put64(m, (uint64_t)TS);
  put32(m, 0xA1B2C3D4u);
}
static void msg_commit(struct mb *m) {
  put8(m, 'C');
  put8(m, 0);
  put64(m, LSN_A);
  put64(m, LSN_B);
  put64(m, (uint64_t)TS);
}
static void msg_origin(struct mb *m) {
  put8(m, 'O');
  put64(m, LSN_C);
  put_str(m, "upstream");
}
static void msg_type(struct mb *m) {
  put8(m, 'Y');
  put32(m, 16445);
  put_str(m, "public");
  put_str(m, "mood");
}
static void msg_relation(struct mb *m) {
  put8(m, 'R');
  put32(m, RELID);
  put_str(m, "crm");
  put_str(m, "people");
  put8(m, 'd');
  put16(m, 3);
  put8(m, 1);
  put_str(m, "id");
  put32(m, 23);
  put32(m, 0xFFFFFFFFu);
  put8(m, 0);
  put_str(m, "name");
  put32(m, 1043);
  put32(m, 68);
  put8(m, 0);
  put_str(m, ""); /* an empty name is still a String */
  put32(m, 17);
  put32(m, 0xFFFFFFFFu);
}
/* The four value kinds, in order: text "42", NULL, unchanged TOAST, binary. */
static void tuple4(struct mb *m) {
  put16(m, 4);
  col_text(m, "42");
  col_null(m);
  col_toast(m);
  col_bin(m, BIN_DATA, 4);
}
static void msg_insert(struct mb *m) {
  put8(m, 'I');
  put32(m, RELID);
  put8(m, 'N');
  tuple4(m);
}
static void msg_update_plain(struct mb *m) {
  put8(m, 'U');
  put32(m, RELID);
  put8(m, 'N');
  tuple4(m);
}
static void msg_update_key(struct mb *m) {
  put8(m, 'U');
  put32(m, RELID);
  put8(m, 'K');
  put16(m, 2);
  col_text(m, "7");
  col_null(m);
  put8(m, 'N');
  tuple4(m);
}
static void msg_update_old(struct mb *m) {
  put8(m, 'U');
  put32(m, RELID);
  put8(m, 'O');
  put16(m, 3);
  col_text(m, "7");
  col_text(m, "");
  col_text(m, "old name");
  put8(m, 'N');
  tuple4(m);
}
static void msg_delete_key(struct mb *m) {
  put8(m, 'D');
  put32(m, RELID);
  put8(m, 'K');
  put16(m, 2);
  col_text(m, "7");
  col_null(m);
}
static void msg_delete_old(struct mb *m) {
  put8(m, 'D');
  put32(m, RELID);
  put8(m, 'O');
  tuple4(m);
}
static void msg_truncate(struct mb *m) {
  put8(m, 'T');
  put32(m, 3);
  put8(m, 3);
  put32(m, 16451);
  put32(m, 16458);
  put32(m, 0xFEDCBA98u);
}
static void msg_message(struct mb *m) {
  put8(m, 'M');
  put8(m, 1);
  put64(m, LSN_C);
  put_str(m, "bf");
  put32(m, 5);
  put_raw(m, "hello", 5);
}

static void (*const valid_msgs[])(struct mb *) = {
    msg_begin,      msg_commit,       msg_origin,     msg_type,       msg_relation,
    msg_insert,     msg_update_plain, msg_update_key, msg_update_old, msg_delete_key,
    msg_delete_old, msg_truncate,     msg_message,
};
#define N_VALID (sizeof valid_msgs / sizeof valid_msgs[0])

/* Decodes a copy of buf in a heap block of exactly len bytes, so that
 * ASan and valgrind see any read past the end. */
static int decode_exact(struct bf_pgo_decoder *d, const unsigned char *buf, size_t len,
                        struct bf_pgo_msg *out, struct bf_error *err, unsigned char **copy) {
  *copy = malloc(len ? len : 1);
  cr_assert_not_null(*copy);
  if (len) memcpy(*copy, buf, len);
  return bf_pgo_decode(d, *copy, len, out, err);
}

static struct bf_pgo_msg decode_ok(struct bf_pgo_decoder *d, const struct mb *m) {
  struct bf_pgo_msg out;
  struct bf_error err = {0};
  int rc = bf_pgo_decode(d, m->b, m->n, &out, &err);
  cr_assert_eq(rc, 0, "decode failed: %s", err.msg);
  cr_assert_eq(err.code, 0);
  return out;
}

/* The error shape every caller relies on. */
static void assert_error_shape(const struct bf_error *err) {
  cr_assert_eq(err->code, BF_E_WAREHOUSE, "code %d: %s", err->code, err->msg);
  cr_assert(strncmp(err->msg, "pgoutput: ", 10) == 0, "message: %s", err->msg);
  cr_assert_not_null(strstr(err->msg, " at byte "), "message: %s", err->msg);
}

static void expect_decode_error(const unsigned char *buf, size_t len, const char *needle) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct bf_pgo_msg out;
  struct bf_error err = {0};
  unsigned char *copy;
  int rc = decode_exact(&d, buf, len, &out, &err, &copy);
  cr_assert_eq(rc, BF_E_WAREHOUSE, "len %zu: rc %d", len, rc);
  assert_error_shape(&err);
  if (needle) cr_assert_not_null(strstr(err.msg, needle), "'%s' not in: %s", needle, err.msg);
  /* Nothing half-decoded looks usable. */
  cr_assert_eq(out.new_tuple.cols, NULL);
  cr_assert_eq(out.old_tuple.cols, NULL);
  cr_assert_eq(out.columns, NULL);
  cr_assert_eq(out.relids, NULL);
  free(copy);
  bf_pgo_decoder_release(&d);
}

static void assert_text(const struct bf_pgo_value *v, const char *s) {
  cr_assert_eq(v->kind, 't');
  cr_assert_eq(v->len, strlen(s));
  cr_assert(memcmp(v->data, s, v->len) == 0);
}

/* tuple4's values, pointing into m's buffer. */
static void assert_tuple4(const struct bf_pgo_tuple *t, const struct mb *m) {
  cr_assert_eq(t->ncols, 4);
  assert_text(&t->cols[0], "42");
  cr_assert(t->cols[0].data >= (const char *)m->b &&
            t->cols[0].data + 2 <= (const char *)m->b + m->n);
  cr_assert_eq(t->cols[1].kind, 'n');
  cr_assert_eq(t->cols[1].data, NULL);
  cr_assert_eq(t->cols[2].kind, 'u');
  cr_assert_eq(t->cols[2].data, NULL);
  cr_assert_eq(t->cols[3].kind, 'b');
  cr_assert_eq(t->cols[3].len, 4);
  cr_assert(memcmp(t->cols[3].data, BIN_DATA, 4) == 0);
}

/* ---- CopyData envelope, status updates, clocks, LSN text --------------- */

Test(pgoutput, xlogdata_envelope) {
  struct mb m = {0};
  put8(&m, 'w');
  put64(&m, LSN_A);
  put64(&m, LSN_C);
  put64(&m, (uint64_t)TS);
  msg_begin(&m);
  struct bf_pgo_copy c;
  struct bf_error err = {0};
  cr_assert_eq(bf_pgo_parse_copy(m.b, m.n, &c, &err), 0, "%s", err.msg);
  cr_assert_eq(c.kind, BF_PGO_XLOGDATA);
  cr_assert_eq(c.wal_start, LSN_A);
  cr_assert_eq(c.wal_end, LSN_C);
  cr_assert_eq(c.send_time, TS);
  cr_assert_not(c.reply_requested);
  cr_assert_eq(c.data, m.b + 25);
  cr_assert_eq(c.len, m.n - 25);

  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct bf_pgo_msg msg;
  cr_assert_eq(bf_pgo_decode(&d, c.data, c.len, &msg, &err), 0, "%s", err.msg);
  cr_assert_eq(msg.kind, BF_PGO_BEGIN);
  cr_assert_eq(msg.lsn, LSN_A);
  bf_pgo_decoder_release(&d);

  /* Only the header: an empty payload is the decoder's to refuse. */
  cr_assert_eq(bf_pgo_parse_copy(m.b, 25, &c, &err), 0);
  cr_assert_eq(c.len, 0);
}

Test(pgoutput, keepalive) {
  for (int reply = 0; reply <= 1; reply++) {
    struct mb m = {0};
    put8(&m, 'k');
    put64(&m, LSN_B);
    put64(&m, (uint64_t)TS);
    put8(&m, (uint8_t)reply);
    cr_assert_eq(m.n, 18);
    struct bf_pgo_copy c;
    struct bf_error err = {0};
    cr_assert_eq(bf_pgo_parse_copy(m.b, m.n, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.kind, BF_PGO_KEEPALIVE);
    cr_assert_eq(c.wal_start, 0);
    cr_assert_eq(c.wal_end, LSN_B);
    cr_assert_eq(c.send_time, TS);
    cr_assert_eq(c.reply_requested, reply == 1);
    cr_assert_eq(c.data, NULL);
    cr_assert_eq(c.len, 0);
  }
}

static void expect_copy_error(const unsigned char *buf, size_t len, const char *needle) {
  unsigned char *copy = malloc(len ? len : 1);
  if (len) memcpy(copy, buf, len);
  struct bf_pgo_copy c;
  struct bf_error err = {0};
  cr_assert_eq(bf_pgo_parse_copy(copy, len, &c, &err), BF_E_WAREHOUSE, "len %zu", len);
  assert_error_shape(&err);
  if (needle) cr_assert_not_null(strstr(err.msg, needle), "'%s' not in: %s", needle, err.msg);
  free(copy);
}

Test(pgoutput, copy_errors) {
  struct mb k = {0};
  put8(&k, 'k');
  put64(&k, LSN_B);
  put64(&k, (uint64_t)TS);
  put8(&k, 1);
  for (size_t n = 0; n < k.n; n++)
    expect_copy_error(k.b, n, n ? "cut short" : "empty CopyData at byte 0");
  put8(&k, 0);
  expect_copy_error(k.b, k.n, "1 unexpected trailing bytes at byte 18");

  struct mb w = {0};
  put8(&w, 'w');
  put64(&w, 1);
  put64(&w, 2);
  put64(&w, 3);
  for (size_t n = 0; n < w.n; n++)
    expect_copy_error(w.b, n, n ? "cut short" : "empty CopyData at byte 0");
  expect_copy_error(w.b, 24,
                    "XLogData message: cut short in clock (8 bytes needed, 7 left) at byte 17");

  expect_copy_error((const unsigned char *)"r", 1,
                    "unknown replication message kind 0x72 at byte 0");
  expect_copy_error((const unsigned char *)"\0", 1, "kind 0x00");
  /* The keepalive's flag is a byte, not a 1+8+8+8+1 layout: 26 bytes of
   * 'k' are 8 too many. */
  struct mb k26 = {0};
  put8(&k26, 'k');
  put64(&k26, 1);
  put64(&k26, 2);
  put64(&k26, 3);
  put8(&k26, 1);
  expect_copy_error(k26.b, k26.n, "8 unexpected trailing bytes");
}

Test(pgoutput, standby_status_bytes) {
  unsigned char out[34];
  memset(out, 0xAA, sizeof out);
  size_t n = bf_pgo_standby_status(out, UINT64_C(0x0102030405060708), UINT64_C(0x1112131415161718),
                                   UINT64_C(0x2122232425262728), INT64_C(0x3132333435363738), true);
  static const unsigned char want[34] = {'r',  0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                         0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x21,
                                         0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x31, 0x32,
                                         0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x01};
  cr_assert_eq(n, 34);
  cr_assert(memcmp(out, want, 34) == 0);

  bf_pgo_standby_status(out, 0, 0, 0, -1, false);
  cr_assert_eq(out[0], 'r');
  for (int i = 1; i < 25; i++) cr_assert_eq(out[i], 0);
  for (int i = 25; i < 33; i++) cr_assert_eq(out[i], 0xFF); /* two's complement */
  cr_assert_eq(out[33], 0);
}

Test(pgoutput, clocks) {
  int64_t now = bf_pgo_now_us();
  long long unix_s = (long long)time(NULL);
  long long from_pg = bf_pgo_us_to_unix_ms(now) / 1000;
  cr_assert(from_pg >= unix_s - 2 && from_pg <= unix_s + 2, "%lld vs %lld", from_pg, unix_s);
  cr_assert_eq(bf_pgo_us_to_unix_ms(0), 946684800000LL);
  cr_assert_eq(bf_pgo_us_to_unix_ms(1999), 946684800001LL);
  cr_assert_eq(bf_pgo_us_to_unix_ms(-1), 946684799999LL); /* floor, before 2000 */
  cr_assert_eq(bf_pgo_us_to_unix_ms(-946684800000000LL), 0);
}

Test(pgoutput, lsn_text) {
  uint64_t v = 0;
  char buf[24];
  cr_assert(bf_pgo_parse_lsn("16/B374D848", &v));
  cr_assert_eq(v, UINT64_C(0x16B374D848));
  bf_pgo_format_lsn(v, buf);
  cr_assert_str_eq(buf, "16/B374D848");
  cr_assert(bf_pgo_parse_lsn("16/b374d848", &v)); /* PostgreSQL takes either case */
  cr_assert_eq(v, UINT64_C(0x16B374D848));

  static const uint64_t round[] = {0,
                                   1,
                                   UINT64_C(0xFFFFFFFF),
                                   UINT64_C(0x100000000),
                                   UINT64_C(0x0000000100000001),
                                   UINT64_C(0xFFFFFFFFFFFFFFFF),
                                   UINT64_C(0xABCDEF0012345678)};
  for (size_t i = 0; i < sizeof round / sizeof round[0]; i++) {
    bf_pgo_format_lsn(round[i], buf);
    cr_assert(bf_pgo_parse_lsn(buf, &v), "%s", buf);
    cr_assert_eq(v, round[i], "%s", buf);
  }
  bf_pgo_format_lsn(0, buf);
  cr_assert_str_eq(buf, "0/0");
  bf_pgo_format_lsn(UINT64_C(0xFFFFFFFFFFFFFFFF), buf);
  cr_assert_str_eq(buf, "FFFFFFFF/FFFFFFFF");
  bf_pgo_format_lsn(UINT64_C(0x100000000), buf);
  cr_assert_str_eq(buf, "1/0");

  static const char *const bad[] = {
      "",     "/",    "1",    "1/",  "/1",  "1/2/3", " 1/2",  "1/ 2",        "1/2 ",        "0x1/2",
      "-1/2", "1/-2", "+1/2", "g/1", "1/g", "1//2",  "1/2\n", "123456789/0", "0/123456789", "1.2"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    v = 77;
    cr_assert_not(bf_pgo_parse_lsn(bad[i], &v), "'%s' accepted", bad[i]);
    cr_assert_eq(v, 77, "'%s' wrote the output", bad[i]);
  }
  cr_assert_not(bf_pgo_parse_lsn(NULL, &v));
  cr_assert(bf_pgo_parse_lsn("00000000/00000001", &v)); /* 8 digits, leading zeros */
  cr_assert_eq(v, 1);
}

/* ---- every message kind ------------------------------------------------ */

Test(pgoutput, begin_commit_origin_type_message) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct mb m = {0};
  msg_begin(&m);
  struct bf_pgo_msg b = decode_ok(&d, &m);
  cr_assert_eq(b.kind, BF_PGO_BEGIN);
  cr_assert_eq(b.lsn, LSN_A); /* final LSN */
  cr_assert_eq(b.commit_time, TS);
  cr_assert_eq(b.xid, 0xA1B2C3D4u);

  m.n = 0;
  msg_commit(&m);
  struct bf_pgo_msg c = decode_ok(&d, &m);
  cr_assert_eq(c.kind, BF_PGO_COMMIT);
  cr_assert_eq(c.lsn, LSN_B); /* end LSN, not the commit LSN */
  cr_assert_eq(c.commit_time, TS);

  m.n = 0;
  msg_origin(&m);
  cr_assert_eq(decode_ok(&d, &m).kind, BF_PGO_ORIGIN);

  m.n = 0;
  msg_type(&m);
  struct bf_pgo_msg y = decode_ok(&d, &m);
  cr_assert_eq(y.kind, BF_PGO_TYPE);
  cr_assert_eq(y.relid, 16445);
  cr_assert_str_eq(y.nspname, "public");
  cr_assert_str_eq(y.relname, "mood");

  m.n = 0;
  msg_message(&m);
  cr_assert_eq(decode_ok(&d, &m).kind, BF_PGO_MESSAGE);
  bf_pgo_decoder_release(&d);
}

Test(pgoutput, relation) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct mb m = {0};
  msg_relation(&m);
  struct bf_pgo_msg r = decode_ok(&d, &m);
  cr_assert_eq(r.kind, BF_PGO_RELATION);
  cr_assert_eq(r.relid, RELID);
  cr_assert_str_eq(r.nspname, "crm");
  cr_assert_str_eq(r.relname, "people");
  cr_assert_eq(r.replident, 'd');
  cr_assert_eq(r.ncolumns, 3);
  cr_assert_eq(r.columns[0].flags, 1);
  cr_assert_str_eq(r.columns[0].name, "id");
  cr_assert_eq(r.columns[0].type_oid, 23);
  cr_assert_eq(r.columns[0].typmod, -1);
  cr_assert_eq(r.columns[1].flags, 0);
  cr_assert_str_eq(r.columns[1].name, "name");
  cr_assert_eq(r.columns[1].type_oid, 1043);
  cr_assert_eq(r.columns[1].typmod, 68);
  cr_assert_str_eq(r.columns[2].name, "");
  cr_assert_eq(r.columns[2].type_oid, 17);
  /* Names point into the buffer, not copies. */
  cr_assert(r.relname > (const char *)m.b && r.relname < (const char *)m.b + m.n);
  cr_assert(r.columns[1].name > (const char *)m.b && r.columns[1].name < (const char *)m.b + m.n);

  /* A relation without columns still has a column array to point at. */
  struct mb e = {0};
  put8(&e, 'R');
  put32(&e, 9);
  put_str(&e, "");
  put_str(&e, "t");
  put8(&e, 'n');
  put16(&e, 0);
  struct bf_pgo_msg r0 = decode_ok(&d, &e);
  cr_assert_eq(r0.ncolumns, 0);
  cr_assert_str_eq(r0.nspname, ""); /* pg_catalog */
  cr_assert_eq(r0.replident, 'n');
  bf_pgo_decoder_release(&d);
}

Test(pgoutput, insert_values_of_every_kind) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct mb m = {0};
  msg_insert(&m);
  struct bf_pgo_msg i = decode_ok(&d, &m);
  cr_assert_eq(i.kind, BF_PGO_INSERT);
  cr_assert_eq(i.relid, RELID);
  cr_assert_eq(i.old_kind, 0);
  cr_assert_eq(i.old_tuple.ncols, 0);
  assert_tuple4(&i.new_tuple, &m);

  /* Zero columns, and an empty text value (not NULL). */
  struct mb z = {0};
  put8(&z, 'I');
  put32(&z, 1);
  put8(&z, 'N');
  put16(&z, 0);
  struct bf_pgo_msg i0 = decode_ok(&d, &z);
  cr_assert_eq(i0.new_tuple.ncols, 0);
  struct mb e = {0};
  put8(&e, 'I');
  put32(&e, 1);
  put8(&e, 'N');
  put16(&e, 1);
  col_text(&e, "");
  struct bf_pgo_msg ie = decode_ok(&d, &e);
  cr_assert_eq(ie.new_tuple.cols[0].kind, 't');
  cr_assert_eq(ie.new_tuple.cols[0].len, 0);
  bf_pgo_decoder_release(&d);
}

Test(pgoutput, updates) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct mb m = {0};
  msg_update_plain(&m);
  struct bf_pgo_msg u = decode_ok(&d, &m);
  cr_assert_eq(u.kind, BF_PGO_UPDATE);
  cr_assert_eq(u.relid, RELID);
  cr_assert_eq(u.old_kind, 0);
  cr_assert_eq(u.old_tuple.ncols, 0);
  assert_tuple4(&u.new_tuple, &m);

  m.n = 0;
  msg_update_key(&m);
  u = decode_ok(&d, &m);
  cr_assert_eq(u.old_kind, 'K');
  cr_assert_eq(u.old_tuple.ncols, 2);
  assert_text(&u.old_tuple.cols[0], "7");
  cr_assert_eq(u.old_tuple.cols[1].kind, 'n');
  assert_tuple4(&u.new_tuple, &m);

  m.n = 0;
  msg_update_old(&m);
  u = decode_ok(&d, &m);
  cr_assert_eq(u.old_kind, 'O');
  cr_assert_eq(u.old_tuple.ncols, 3);
  assert_text(&u.old_tuple.cols[0], "7");
  assert_text(&u.old_tuple.cols[1], "");
  assert_text(&u.old_tuple.cols[2], "old name");
  assert_tuple4(&u.new_tuple, &m);
  /* The two tuples do not share slots. */
  cr_assert(u.new_tuple.cols >= u.old_tuple.cols + u.old_tuple.ncols);
  bf_pgo_decoder_release(&d);
}

Test(pgoutput, deletes) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct mb m = {0};
  msg_delete_key(&m);
  struct bf_pgo_msg x = decode_ok(&d, &m);
  cr_assert_eq(x.kind, BF_PGO_DELETE);
  cr_assert_eq(x.relid, RELID);
  cr_assert_eq(x.old_kind, 'K');
  cr_assert_eq(x.old_tuple.ncols, 2);
  assert_text(&x.old_tuple.cols[0], "7");
  cr_assert_eq(x.old_tuple.cols[1].kind, 'n');
  cr_assert_eq(x.new_tuple.ncols, 0);

  m.n = 0;
  msg_delete_old(&m);
  x = decode_ok(&d, &m);
  cr_assert_eq(x.old_kind, 'O');
  assert_tuple4(&x.old_tuple, &m);
  bf_pgo_decoder_release(&d);
}

Test(pgoutput, truncate) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct mb m = {0};
  msg_truncate(&m);
  struct bf_pgo_msg t = decode_ok(&d, &m);
  cr_assert_eq(t.kind, BF_PGO_TRUNCATE);
  cr_assert_eq(t.truncate_options, 3); /* CASCADE | RESTART IDENTITY */
  cr_assert_eq(t.nrelids, 3);
  cr_assert_eq(t.relids[0], 16451);
  cr_assert_eq(t.relids[1], 16458);
  cr_assert_eq(t.relids[2], 0xFEDCBA98u);

  /* 40 relations: the array grows past its first size. */
  struct mb big = {0};
  put8(&big, 'T');
  put32(&big, 40);
  put8(&big, 0);
  for (uint32_t i = 0; i < 40; i++) put32(&big, 1000 + i);
  t = decode_ok(&d, &big);
  cr_assert_eq(t.nrelids, 40);
  for (uint32_t i = 0; i < 40; i++) cr_assert_eq(t.relids[i], 1000 + i);

  struct mb none = {0};
  put8(&none, 'T');
  put32(&none, 0);
  put8(&none, 0);
  t = decode_ok(&d, &none);
  cr_assert_eq(t.nrelids, 0);
  bf_pgo_decoder_release(&d);
}

Test(pgoutput, decoder_reuse_and_growth) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  /* 300 columns each way: more than the first allocation. */
  struct mb m = {0};
  put8(&m, 'U');
  put32(&m, RELID);
  put8(&m, 'O');
  put16(&m, 300);
  char text[16];
  for (int i = 0; i < 300; i++) {
    snprintf(text, sizeof text, "o%d", i);
    col_text(&m, text);
  }
  put8(&m, 'N');
  put16(&m, 300);
  for (int i = 0; i < 300; i++) {
    snprintf(text, sizeof text, "n%d", i);
    if (i % 3 == 0)
      col_null(&m);
    else
      col_text(&m, text);
  }
  struct bf_pgo_msg u = decode_ok(&d, &m);
  cr_assert_eq(u.old_tuple.ncols, 300);
  cr_assert_eq(u.new_tuple.ncols, 300);
  for (int i = 0; i < 300; i++) {
    snprintf(text, sizeof text, "o%d", i);
    assert_text(&u.old_tuple.cols[i], text);
    snprintf(text, sizeof text, "n%d", i);
    if (i % 3 == 0)
      cr_assert_eq(u.new_tuple.cols[i].kind, 'n');
    else
      assert_text(&u.new_tuple.cols[i], text);
  }
  /* A smaller message after it decodes the same as on a fresh decoder. */
  for (size_t k = 0; k < N_VALID; k++) {
    struct mb v = {0};
    valid_msgs[k](&v);
    decode_ok(&d, &v);
  }
  struct mb ins = {0};
  msg_insert(&ins);
  struct bf_pgo_msg again = decode_ok(&d, &ins);
  assert_tuple4(&again.new_tuple, &ins);
  bf_pgo_decoder_release(&d);
  bf_pgo_decoder_release(&d); /* released twice is harmless */
}

/* ---- malformed input ---------------------------------------------------- */

Test(pgoutput, every_truncation_is_an_error) {
  for (size_t k = 0; k < N_VALID; k++) {
    struct mb m = {0};
    valid_msgs[k](&m);
    for (size_t n = 0; n < m.n; n++) expect_decode_error(m.b, n, NULL);
  }
}

Test(pgoutput, trailing_bytes_are_an_error) {
  for (size_t k = 0; k < N_VALID; k++) {
    struct mb m = {0};
    valid_msgs[k](&m);
    size_t n = m.n;
    put8(&m, 0);
    char want[64];
    snprintf(want, sizeof want, "1 unexpected trailing bytes at byte %zu", n);
    expect_decode_error(m.b, m.n, want);
  }
}

Test(pgoutput, error_messages_name_field_and_offset) {
  struct mb m = {0};
  msg_begin(&m);
  expect_decode_error(m.b, 10,
                      "pgoutput: Begin message: cut short in commit time (8 bytes needed, "
                      "1 left) at byte 9");
  expect_decode_error(m.b, 0, "pgoutput: empty message at byte 0");
  m.n = 0;
  msg_commit(&m);
  expect_decode_error(m.b, 17, "Commit message: cut short in end LSN");
}

Test(pgoutput, string_without_nul) {
  struct mb m = {0};
  put8(&m, 'O');
  put64(&m, 1);
  put_raw(&m, "upstream", 8); /* the NUL would be the last byte */
  expect_decode_error(m.b, m.n, "Origin message: origin name has no terminating NUL at byte 9");

  m.n = 0;
  put8(&m, 'R');
  put32(&m, 1);
  put_str(&m, "public");
  put_raw(&m, "people", 6);
  expect_decode_error(m.b, m.n, "relation name has no terminating NUL at byte 12");

  /* A column name that runs to the end of the message. */
  m.n = 0;
  put8(&m, 'R');
  put32(&m, 1);
  put_str(&m, "public");
  put_str(&m, "t");
  put8(&m, 'd');
  put16(&m, 1);
  put8(&m, 0);
  put_raw(&m, "abcdefghijklmn", 14);
  expect_decode_error(m.b, m.n, "column name has no terminating NUL");

  m.n = 0;
  put8(&m, 'M');
  put8(&m, 0);
  put64(&m, 1);
  put_raw(&m, "prefix", 6);
  expect_decode_error(m.b, m.n, "Message message: prefix has no terminating NUL");

  m.n = 0;
  put8(&m, 'Y');
  put32(&m, 1);
  put_raw(&m, "pg_catalog", 10);
  expect_decode_error(m.b, m.n, "namespace has no terminating NUL at byte 5");
}

Test(pgoutput, counts_larger_than_the_data) {
  /* Tuple: 5 columns announced, one sent. */
  struct mb m = {0};
  put8(&m, 'I');
  put32(&m, 1);
  put8(&m, 'N');
  put16(&m, 5);
  col_null(&m);
  expect_decode_error(m.b, m.n, "5 columns but 1 bytes left at byte 6");
  /* ... or enough bytes for the kind bytes but not the values. */
  m.n = 0;
  put8(&m, 'I');
  put32(&m, 1);
  put8(&m, 'N');
  put16(&m, 2);
  col_text(&m, "abc");
  expect_decode_error(m.b, m.n, "cut short in column kind");
  m.n = 0;
  put8(&m, 'I');
  put32(&m, 1);
  put8(&m, 'N');
  put16(&m, 0xFFFF);
  expect_decode_error(m.b, m.n, "65535 columns but 0 bytes left");

  /* A value longer than the message. */
  m.n = 0;
  put8(&m, 'I');
  put32(&m, 1);
  put8(&m, 'N');
  put16(&m, 1);
  put8(&m, 't');
  put32(&m, 0xFFFFFFFFu);
  put_raw(&m, "abc", 3);
  expect_decode_error(m.b, m.n, "cut short in value (4294967295 bytes needed, 3 left) at byte 13");

  /* Relation: 1000 columns announced. */
  m.n = 0;
  put8(&m, 'R');
  put32(&m, 1);
  put_str(&m, "s");
  put_str(&m, "t");
  put8(&m, 'd');
  put16(&m, 1000);
  put8(&m, 0);
  put_str(&m, "id");
  put32(&m, 23);
  put32(&m, 0xFFFFFFFFu);
  expect_decode_error(m.b, m.n, "1000 columns but 12 bytes left at byte 10");

  /* Truncate: 2^32-1 relations, nothing allocated for them. */
  m.n = 0;
  put8(&m, 'T');
  put32(&m, 0xFFFFFFFFu);
  put8(&m, 0);
  put32(&m, 1);
  expect_decode_error(m.b, m.n, "4294967295 relations but 4 bytes left at byte 1");

  /* Message: content length beyond the end. */
  m.n = 0;
  put8(&m, 'M');
  put8(&m, 0);
  put64(&m, 1);
  put_str(&m, "p");
  put32(&m, 100);
  put_raw(&m, "abc", 3);
  expect_decode_error(m.b, m.n, "cut short in content");
}

Test(pgoutput, unknown_kinds_and_markers) {
  /* Streaming (v2) and two-phase (v3) messages were not asked for. */
  static const char kinds[] = {'S', 'E', 'c', 'A', 'b', 'P', 'K', 'r', 'p', 'w', 'k', 'x', 0};
  for (size_t i = 0; i < sizeof kinds; i++) {
    unsigned char buf[32] = {(unsigned char)kinds[i]};
    char want[64];
    snprintf(want, sizeof want, "unknown message kind 0x%02x at byte 0", (unsigned char)kinds[i]);
    expect_decode_error(buf, sizeof buf, want);
    expect_decode_error(buf, 1, want);
  }

  struct mb m = {0};
  put8(&m, 'I');
  put32(&m, 1);
  put8(&m, 'N');
  put16(&m, 2);
  col_null(&m);
  put8(&m, 'x');
  expect_decode_error(m.b, m.n, "Insert message: unknown column kind 0x78 at byte 9");

  m.n = 0;
  put8(&m, 'I');
  put32(&m, 1);
  put8(&m, 'K'); /* an insert has no old row */
  put16(&m, 0);
  expect_decode_error(m.b, m.n, "tuple marker 0x4b, expected 'N' at byte 5");

  m.n = 0;
  put8(&m, 'D');
  put32(&m, 1);
  put8(&m, 'N'); /* a delete has no new row */
  put16(&m, 0);
  expect_decode_error(m.b, m.n, "tuple marker 0x4e, expected 'K' or 'O' at byte 5");

  m.n = 0;
  put8(&m, 'U');
  put32(&m, 1);
  put8(&m, 'X');
  put16(&m, 0);
  expect_decode_error(m.b, m.n, "expected 'K', 'O' or 'N' at byte 5");

  m.n = 0;
  put8(&m, 'U');
  put32(&m, 1);
  put8(&m, 'K');
  put16(&m, 0);
  put8(&m, 'K'); /* two old tuples */
  put16(&m, 0);
  expect_decode_error(m.b, m.n, "tuple marker 0x4b, expected 'N' at byte 8");

  /* An update with only an old tuple. */
  m.n = 0;
  put8(&m, 'U');
  put32(&m, 1);
  put8(&m, 'O');
  put16(&m, 1);
  col_null(&m);
  expect_decode_error(m.b, m.n, "cut short in tuple marker");

  /* Errors with no struct bf_error to fill still return the code. */
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct bf_pgo_msg out;
  cr_assert_eq(bf_pgo_decode(&d, m.b, m.n, &out, NULL), BF_E_WAREHOUSE);
  cr_assert_eq(bf_pgo_decode(&d, (const unsigned char *)"S", 1, &out, NULL), BF_E_WAREHOUSE);
  struct bf_pgo_copy c;
  cr_assert_eq(bf_pgo_parse_copy((const unsigned char *)"k", 1, &c, NULL), BF_E_WAREHOUSE);
  cr_assert_eq(bf_pgo_parse_copy((const unsigned char *)"?", 1, &c, NULL), BF_E_WAREHOUSE);
  bf_pgo_decoder_release(&d);
}

/* A server's bytes may hold anything: a newline in a name or value must
 * not reach the one-line error message. */
Test(pgoutput, error_message_stays_one_line) {
  struct mb m = {0};
  put8(&m, 'O');
  put64(&m, 1);
  put_raw(&m, "evil\nname", 9);
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  struct bf_pgo_msg out;
  struct bf_error err = {0};
  cr_assert_eq(bf_pgo_decode(&d, m.b, m.n, &out, &err), BF_E_WAREHOUSE);
  cr_assert_null(strchr(err.msg, '\n'));
  bf_pgo_decoder_release(&d);
}

/* ---- a stream captured from PostgreSQL 15 ------------------------------- */

/* pg_logical_slot_peek_binary_changes('slot', NULL, NULL, 'proto_version',
 * '1', 'publication_names', 'pub', 'messages', 'true') after:
 *   CREATE TYPE mood AS ENUM ('sad','ok','happy');
 *   CREATE TABLE people (id int PRIMARY KEY, name text, note text, m mood);
 *   ALTER TABLE people ALTER COLUMN note SET STORAGE EXTERNAL;
 *   CREATE TABLE other (x int PRIMARY KEY);
 *   CREATE PUBLICATION pub FOR TABLE people, other;
 *   INSERT INTO people VALUES (1, 'Ada', NULL, 'happy');
 *   INSERT INTO people VALUES (2, 'Bob', repeat('x', 2100), 'ok');
 *   UPDATE people SET name = 'Bobby' WHERE id = 2;  -- note: unchanged TOAST
 *   UPDATE people SET id = 3 WHERE id = 1;          -- key change: 'K'
 *   DELETE FROM people WHERE id = 3;                -- 'K'
 *   ALTER TABLE people REPLICA IDENTITY FULL;
 *   UPDATE people SET name = 'Robert' WHERE id = 2; -- 'O'
 *   DELETE FROM people WHERE id = 2;                -- 'O'
 *   INSERT INTO other VALUES (7);
 *   TRUNCATE people, other RESTART IDENTITY;
 *   SELECT pg_logical_emit_message(true, 'bf', 'hello');
 *   -- then, in a session with replication origin 'upstream' set up and
 *   -- pg_replication_origin_xact_setup('1/2345', now()):
 *   INSERT INTO other VALUES (8);
 * Each row: the lsn and xid columns, then the data. */
struct captured {
  const char *lsn;
  uint32_t xid;
  const char *bytes;
  size_t len;
};
#define CAPTURED(lsn, xid, s)                                                                      \
  { lsn, xid, s, sizeof(s) - 1 }
static const struct captured capture[] = {
    CAPTURED("0/1D8C1C8", 768,
             "B\000\000\000\000\001\330\302\260\000\003\005\011\353\221\277;\000\000\003\000"),
    CAPTURED("0/1D8C1C8", 768, "Y\000\000@=public\000mood\000"),
    CAPTURED("0/1D8C1C8", 768,
             "R\000\000@Cpublic\000people\000d\000\004\001id\000\000\000\000\027\377\377\377\377"
             "\000name\000\000\000\000\031\377\377\377\377\000note\000\000\000\000\031\377\377\377"
             "\377\000m\000\000\000@=\377\377\377\377"),
    CAPTURED("0/1D8C1C8", 768,
             "I\000\000@CN\000\004t\000\000\000\0011t\000\000\000\003Adant\000\000\000\005happy"),
    CAPTURED("0/1D8C2E0", 768,
             "C\000\000\000\000\000\001\330\302\260\000\000\000\000\001\330\302\340\000\003\005"
             "\011\353\221\277;"),
    CAPTURED("0/1D8CC80", 769,
             "B\000\000\000\000\001\330\315\030\000\003\005\011\353\221\303K\000\000\003\001"),
    CAPTURED("0/1D8CC80", 769,
             "I\000\000@CN\000\004t\000\000\000\0012t\000\000\000\003Bobt\000\000\0104xxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxt\000\000"
             "\000\002ok"),
    CAPTURED("0/1D8CD48", 769,
             "C\000\000\000\000\000\001\330\315\030\000\000\000\000\001\330\315H\000\003\005\011"
             "\353\221\303K"),
    CAPTURED("0/1D8CD80", 770,
             "B\000\000\000\000\001\330\315\350\000\003\005\011\353\221\307\225\000\000\003\002"),
    CAPTURED("0/1D8CD80", 770,
             "U\000\000@CN\000\004t\000\000\000\0012t\000\000\000\005Bobbyut\000\000\000\002ok"),
    CAPTURED("0/1D8CE18", 770,
             "C\000\000\000\000\000\001\330\315\350\000\000\000\000\001\330\316\030\000\003\005"
             "\011\353\221\307\225"),
    CAPTURED("0/1D8CE18", 771,
             "B\000\000\000\000\001\330\316\260\000\003\005\011\353\221\310\351\000\000\003\003"),
    CAPTURED("0/1D8CE18", 771,
             "U\000\000@CK\000\004t\000\000\000\0011nnnN\000\004t\000\000\000\0013t\000\000\000"
             "\003Adant\000\000\000\005happy"),
    CAPTURED("0/1D8CEE0", 771,
             "C\000\000\000\000\000\001\330\316\260\000\000\000\000\001\330\316\340\000\003\005"
             "\011\353\221\310\351"),
    CAPTURED("0/1D8CEE0", 772,
             "B\000\000\000\000\001\330\317 \000\003\005\011\353\221\312\007\000\000\003\004"),
    CAPTURED("0/1D8CEE0", 772, "D\000\000@CK\000\004t\000\000\000\0013nnn"),
    CAPTURED("0/1D8CF50", 772,
             "C\000\000\000\000\000\001\330\317 \000\000\000\000\001\330\317P\000\003\005\011\353"
             "\221\312\007"),
    CAPTURED("0/1D8D140", 774,
             "B\000\000\000\000\001\330\331\370\000\003\005\011\353\221\314\336\000\000\003\006"),
    CAPTURED("0/1D8D140", 774, "Y\000\000@=public\000mood\000"),
    CAPTURED("0/1D8D140", 774,
             "R\000\000@Cpublic\000people\000f\000\004\001id\000\000\000\000\027\377\377\377\377"
             "\001name\000\000\000\000\031\377\377\377\377\001note\000\000\000\000\031\377\377\377"
             "\377\001m\000\000\000@=\377\377\377\377"),
    CAPTURED("0/1D8D140", 774,
             "U\000\000@CO\000\004t\000\000\000\0012t\000\000\000\005Bobbyt\000\000\0104xxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxt\000\000"
             "\000\002okN\000\004t\000\000\000\0012t\000\000\000\006Robertut\000\000\000\002ok"),
    CAPTURED("0/1D8DA28", 774,
             "C\000\000\000\000\000\001\330\331\370\000\000\000\000\001\330\332(\000\003\005\011"
             "\353\221\314\336"),
    CAPTURED("0/1D8DA28", 775,
             "B\000\000\000\000\001\330\3438\000\003\005\011\353\221\316\035\000\000\003\007"),
    CAPTURED("0/1D8DA28", 775,
             "D\000\000@CO\000\004t\000\000\000\0012t\000\000\000\006Robertt\000\000\0104xxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxt\000\000"
             "\000\002ok"),
    CAPTURED("0/1D8E368", 775,
             "C\000\000\000\000\000\001\330\3438\000\000\000\000\001\330\343h\000\003\005\011\353"
             "\221\316\035"),
    CAPTURED("0/1D8E368", 776,
             "B\000\000\000\000\001\330\344H\000\003\005\011\353\221\320R\000\000\003\010"),
    CAPTURED("0/1D8E368", 776,
             "R\000\000@Jpublic\000other\000d\000\001\001x\000\000\000\000\027\377\377\377\377"),
    CAPTURED("0/1D8E368", 776, "I\000\000@JN\000\001t\000\000\000\0017"),
    CAPTURED("0/1D8E478", 776,
             "C\000\000\000\000\000\001\330\344H\000\000\000\000\001\330\344x\000\003\005\011\353"
             "\221\320R"),
    CAPTURED("0/1D8F570", 777,
             "B\000\000\000\000\001\330\365\240\000\003\005\011\353\221\330F\000\000\003\011"),
    CAPTURED("0/1D8F570", 777, "Y\000\000@=public\000mood\000"),
    CAPTURED("0/1D8F570", 777,
             "R\000\000@Cpublic\000people\000f\000\004\001id\000\000\000\000\027\377\377\377\377"
             "\001name\000\000\000\000\031\377\377\377\377\001note\000\000\000\000\031\377\377\377"
             "\377\001m\000\000\000@=\377\377\377\377"),
    CAPTURED("0/1D8F570", 777,
             "R\000\000@Jpublic\000other\000d\000\001\001x\000\000\000\000\027\377\377\377\377"),
    CAPTURED("0/1D8F570", 777, "T\000\000\000\002\002\000\000@C\000\000@J"),
    CAPTURED("0/1D8F7A8", 777,
             "C\000\000\000\000\000\001\330\365\240\000\000\000\000\001\330\367\250\000\003\005"
             "\011\353\221\330F"),
    CAPTURED("0/1D8F7E8", 778,
             "B\000\000\000\000\001\330\367\350\000\003\005\011\353\221\343\216\000\000\003\012"),
    CAPTURED("0/1D8F7E8", 778, "M\001\000\000\000\000\001\330\367\350bf\000\000\000\000\005hello"),
    CAPTURED("0/1D8F818", 778,
             "C\000\000\000\000\000\001\330\367\350\000\000\000\000\001\330\370\030\000\003\005"
             "\011\353\221\343\216"),
    CAPTURED("0/1D8FA70", 780,
             "B\000\000\000\000\001\330\373P\000\003\005\011\353\221\350\003\000\000\003\014"),
    CAPTURED("0/1D8FA70", 780, "O\000\000\000\001\000\000#Eupstream\000"),
    CAPTURED("0/1D8FA70", 780,
             "R\000\000@Jpublic\000other\000d\000\001\001x\000\000\000\000\027\377\377\377\377"),
    CAPTURED("0/1D8FA70", 780, "I\000\000@JN\000\001t\000\000\000\0018"),
    CAPTURED("0/1D8FB98", 780,
             "C\000\000\000\000\000\001\330\373P\000\000\000\000\001\330\373\230\000\003\005\011"
             "\353\221\350\003"),
};
#define N_CAPTURED (sizeof capture / sizeof capture[0])

#define PEOPLE 16451u
#define OTHER  16458u
#define MOOD   16445u

static const struct bf_pgo_value *cap_col(const struct bf_pgo_tuple *t, int i) {
  cr_assert_lt(i, t->ncols);
  return &t->cols[i];
}

static bool all_x(const struct bf_pgo_value *v) {
  if (v->kind != 't' || v->len != 2100) return false;
  for (uint32_t i = 0; i < v->len; i++)
    if (v->data[i] != 'x') return false;
  return true;
}

Test(pgoutput, captured_stream) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  char kinds[N_CAPTURED + 1];
  int relations = 0, updates = 0, deletes = 0, inserts = 0;
  for (size_t i = 0; i < N_CAPTURED; i++) {
    const struct captured *c = &capture[i];
    struct bf_pgo_msg m;
    struct bf_error err = {0};
    cr_assert_eq(bf_pgo_decode(&d, (const unsigned char *)c->bytes, c->len, &m, &err), 0,
                 "row %zu: %s", i, err.msg);
    kinds[i] = (char)m.kind;
    char lsn[24];
    switch (m.kind) {
    case BF_PGO_BEGIN: cr_assert_eq(m.xid, c->xid, "row %zu", i); break;
    case BF_PGO_COMMIT:
      /* The row's lsn column is the commit's end LSN: the position to confirm. */
      bf_pgo_format_lsn(m.lsn, lsn);
      cr_assert_str_eq(lsn, c->lsn, "row %zu", i);
      break;
    case BF_PGO_TYPE:
      cr_assert_eq(m.relid, MOOD);
      cr_assert_str_eq(m.nspname, "public");
      cr_assert_str_eq(m.relname, "mood");
      break;
    case BF_PGO_RELATION:
      relations++;
      cr_assert_str_eq(m.nspname, "public");
      if (m.relid == OTHER) {
        cr_assert_str_eq(m.relname, "other");
        cr_assert_eq(m.ncolumns, 1);
        cr_assert_str_eq(m.columns[0].name, "x");
        break;
      }
      cr_assert_eq(m.relid, PEOPLE);
      cr_assert_str_eq(m.relname, "people");
      cr_assert_eq(m.ncolumns, 4);
      static const char *const names[] = {"id", "name", "note", "m"};
      static const uint32_t types[] = {23, 25, 25, MOOD};
      for (int k = 0; k < 4; k++) {
        cr_assert_str_eq(m.columns[k].name, names[k]);
        cr_assert_eq(m.columns[k].type_oid, types[k]);
        cr_assert_eq(m.columns[k].typmod, -1);
        /* Default identity: the primary key; full: every column. */
        cr_assert_eq(m.columns[k].flags, m.replident == 'f' || k == 0 ? 1 : 0);
      }
      cr_assert(m.replident == 'd' || m.replident == 'f');
      break;
    case BF_PGO_INSERT:
      inserts++;
      if (m.relid == OTHER) {
        cr_assert_eq(m.new_tuple.ncols, 1);
        cr_assert(cap_col(&m.new_tuple, 0)->data[0] == '7' ||
                  cap_col(&m.new_tuple, 0)->data[0] == '8');
        break;
      }
      cr_assert_eq(m.relid, PEOPLE);
      if (inserts == 1) {
        assert_text(cap_col(&m.new_tuple, 0), "1");
        assert_text(cap_col(&m.new_tuple, 1), "Ada");
        cr_assert_eq(cap_col(&m.new_tuple, 2)->kind, 'n');
        assert_text(cap_col(&m.new_tuple, 3), "happy");
      } else {
        assert_text(cap_col(&m.new_tuple, 1), "Bob");
        cr_assert(all_x(cap_col(&m.new_tuple, 2)));
      }
      break;
    case BF_PGO_UPDATE:
      updates++;
      cr_assert_eq(m.relid, PEOPLE);
      if (updates == 1) {
        cr_assert_eq(m.old_kind, 0);
        assert_text(cap_col(&m.new_tuple, 1), "Bobby");
        cr_assert_eq(cap_col(&m.new_tuple, 2)->kind, 'u'); /* not sent */
      } else if (updates == 2) {
        cr_assert_eq(m.old_kind, 'K');
        assert_text(cap_col(&m.old_tuple, 0), "1");
        for (int k = 1; k < 4; k++) cr_assert_eq(cap_col(&m.old_tuple, k)->kind, 'n');
        assert_text(cap_col(&m.new_tuple, 0), "3");
        assert_text(cap_col(&m.new_tuple, 3), "happy");
      } else {
        cr_assert_eq(m.old_kind, 'O');
        assert_text(cap_col(&m.old_tuple, 1), "Bobby");
        cr_assert(all_x(cap_col(&m.old_tuple, 2)));
        assert_text(cap_col(&m.new_tuple, 1), "Robert");
        cr_assert_eq(cap_col(&m.new_tuple, 2)->kind, 'u');
      }
      break;
    case BF_PGO_DELETE:
      deletes++;
      cr_assert_eq(m.old_kind, deletes == 1 ? 'K' : 'O');
      assert_text(cap_col(&m.old_tuple, 0), deletes == 1 ? "3" : "2");
      if (deletes == 2) assert_text(cap_col(&m.old_tuple, 1), "Robert");
      break;
    case BF_PGO_TRUNCATE:
      cr_assert_eq(m.nrelids, 2);
      cr_assert_eq(m.relids[0], PEOPLE);
      cr_assert_eq(m.relids[1], OTHER);
      cr_assert_eq(m.truncate_options, 2); /* RESTART IDENTITY */
      break;
    case BF_PGO_ORIGIN:
    case BF_PGO_MESSAGE: break;
    }
  }
  kinds[N_CAPTURED] = '\0';
  cr_assert_str_eq(kinds, "BYRIC"
                          "BIC"
                          "BUC"
                          "BUC"
                          "BDC"
                          "BYRUC"
                          "BDC"
                          "BRIC"
                          "BYRRTC"
                          "BMC"
                          "BORIC");
  cr_assert_eq(relations, 6);
  bf_pgo_decoder_release(&d);
}

/* The same messages as START_REPLICATION sends them, in XLogData. */
Test(pgoutput, captured_stream_in_xlogdata) {
  struct bf_pgo_decoder d;
  bf_pgo_decoder_init(&d);
  for (size_t i = 0; i < N_CAPTURED; i++) {
    struct mb w = {0};
    put8(&w, 'w');
    put64(&w, LSN_A + i);
    put64(&w, LSN_C);
    put64(&w, (uint64_t)TS);
    put_raw(&w, capture[i].bytes, capture[i].len);
    struct bf_pgo_copy c;
    struct bf_pgo_msg m;
    struct bf_error err = {0};
    cr_assert_eq(bf_pgo_parse_copy(w.b, w.n, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.wal_start, LSN_A + i);
    cr_assert_eq(c.len, capture[i].len);
    cr_assert_eq(bf_pgo_decode(&d, c.data, c.len, &m, &err), 0, "row %zu: %s", i, err.msg);
    cr_assert_eq((char)m.kind, capture[i].bytes[0]);
  }
  bf_pgo_decoder_release(&d);
}

Test(pgoutput, captured_truncations_are_errors) {
  for (size_t i = 0; i < N_CAPTURED; i++)
    for (size_t n = 0; n < capture[i].len; n++)
      expect_decode_error((const unsigned char *)capture[i].bytes, n, NULL);
}

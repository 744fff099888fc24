/* Decoder of PostgreSQL's logical replication stream: the CopyData messages
 * of START_REPLICATION (XLogData 'w', primary keepalive 'k') and, inside
 * XLogData, the pgoutput plugin's messages of protocol version 1
 * (https://www.postgresql.org/docs/current/protocol-replication.html and
 * protocol-logicalrep-message-formats.html). No Debian C library decodes
 * pgoutput, so this one is hand-written and fuzzed (tests/fuzz/fuzz_pgoutput.c).
 *
 * Everything arrives from the network: every length is checked against the
 * buffer, a malformed message is an error value naming what was wrong and at
 * which byte offset, never a read out of bounds. Strings and column values
 * of a decoded message point into the caller's buffer (not copied). */
#ifndef BF_PGOUTPUT_H
#define BF_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* ---- CopyData envelope ------------------------------------------------ */

enum bf_pgo_copy_kind { BF_PGO_XLOGDATA, BF_PGO_KEEPALIVE };
struct bf_pgo_copy {
  enum bf_pgo_copy_kind kind;
  uint64_t wal_start;        /* 'w': start of the data; 'k': unused (0) */
  uint64_t wal_end;          /* the server's current end of WAL */
  int64_t send_time;         /* microseconds since 2000-01-01 00:00 UTC */
  bool reply_requested;      /* 'k': the server asks for a status update now */
  const unsigned char *data; /* 'w': the pgoutput message */
  size_t len;
};
/* Decodes one CopyData payload (as PQgetCopyData returns it). An unknown
 * first byte or a short message is BF_E_WAREHOUSE. */
int bf_pgo_parse_copy(const unsigned char *buf, size_t len, struct bf_pgo_copy *out,
                      struct bf_error *err);

/* Writes a Standby status update ('r', 34 bytes) into out: written, flushed
 * and applied positions, now (microseconds since 2000-01-01), and whether
 * the server should reply at once. Returns the length (34). */
size_t bf_pgo_standby_status(unsigned char out[34], uint64_t written, uint64_t flushed,
                             uint64_t applied, int64_t now_us, bool reply);

/* Microseconds since 2000-01-01 (PostgreSQL's epoch) <-> unix milliseconds. */
int64_t bf_pgo_now_us(void);
long long bf_pgo_us_to_unix_ms(int64_t pg_us);

/* "16/B374D848" <-> 64-bit position. bf_pgo_parse_lsn returns false on a
 * malformed text. */
bool bf_pgo_parse_lsn(const char *text, uint64_t *out);
void bf_pgo_format_lsn(uint64_t lsn, char out[24]);

/* ---- pgoutput messages ------------------------------------------------ */

enum bf_pgo_kind {
  BF_PGO_BEGIN = 'B',
  BF_PGO_COMMIT = 'C',
  BF_PGO_RELATION = 'R',
  BF_PGO_INSERT = 'I',
  BF_PGO_UPDATE = 'U',
  BF_PGO_DELETE = 'D',
  BF_PGO_TRUNCATE = 'T',
  BF_PGO_ORIGIN = 'O',
  BF_PGO_TYPE = 'Y',
  BF_PGO_MESSAGE = 'M', /* logical decoding message (pg_logical_emit_message) */
};

struct bf_pgo_value {
  char kind;        /* 'n' NULL, 'u' unchanged TOASTed value (not sent), 't' text, 'b' binary */
  const char *data; /* 't'/'b': the bytes (not NUL-terminated) */
  uint32_t len;
};
struct bf_pgo_tuple {
  uint16_t ncols;
  struct bf_pgo_value *cols; /* decoder-owned, valid until the next decode */
};
struct bf_pgo_column {
  uint8_t flags; /* 1: part of the replica identity key */
  const char *name;
  uint32_t type_oid;
  int32_t typmod;
};

struct bf_pgo_msg {
  enum bf_pgo_kind kind;
  /* BEGIN: final_lsn of the transaction; COMMIT: end_lsn (the position to
   * confirm once the transaction is handled). */
  uint64_t lsn;
  int64_t commit_time; /* BEGIN/COMMIT: microseconds since 2000-01-01 */
  uint32_t xid;        /* BEGIN */
  uint32_t relid;      /* RELATION, INSERT, UPDATE, DELETE */
  /* RELATION */
  const char *nspname, *relname;
  char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
  uint16_t ncolumns;
  struct bf_pgo_column *columns; /* decoder-owned */
  /* INSERT: new_tuple. UPDATE: old_kind 'K' (replica identity key columns;
   * others 'n') or 'O' (whole old row) when present (0 when absent), then
   * new_tuple. DELETE: old_kind 'K' or 'O' and old_tuple. */
  char old_kind;
  struct bf_pgo_tuple old_tuple, new_tuple;
  /* TRUNCATE */
  uint8_t truncate_options; /* 1 CASCADE, 2 RESTART IDENTITY */
  uint32_t nrelids;
  uint32_t *relids; /* decoder-owned */
};

/* Reusable decoder: owns the arrays a decoded message points to. */
struct bf_pgo_decoder {
  struct bf_pgo_value *vals;
  size_t vals_cap;
  struct bf_pgo_column *cols;
  size_t cols_cap;
  uint32_t *relids;
  size_t relids_cap;
};
void bf_pgo_decoder_init(struct bf_pgo_decoder *d);
void bf_pgo_decoder_release(struct bf_pgo_decoder *d);

/* Decodes one pgoutput message. out's pointers stay valid until the next
 * call with d, and while buf lives. Message kinds not listed above (stream
 * and two-phase messages, which Backflow does not ask for) are
 * BF_E_WAREHOUSE naming the byte. */
int bf_pgo_decode(struct bf_pgo_decoder *d, const unsigned char *buf, size_t len,
                  struct bf_pgo_msg *out, struct bf_error *err);

#endif

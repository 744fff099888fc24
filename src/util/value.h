/* Typed values as read from a warehouse row. Text values point into a
 * buffer owned by whoever produced them (a row chunk or a batch arena). */
#ifndef BF_VALUE_H
#define BF_VALUE_H

#include <stddef.h>
#include <stdint.h>

/* BF_JSON: text that is one JSON value (PostgreSQL json/jsonb and arrays),
 * written into JSON as it is rather than as a string. Values are never
 * renumbered: the fingerprint holds them. */
enum bf_type { BF_NULL = 0, BF_INT, BF_FLOAT, BF_TEXT, BF_BLOB, BF_BOOL, BF_JSON };

struct bf_value {
  enum bf_type type;
  uint32_t len; /* BF_TEXT / BF_BLOB / BF_JSON: bytes */
  union {
    int64_t i;     /* BF_INT, BF_BOOL (0/1) */
    double f;      /* BF_FLOAT */
    const char *s; /* BF_TEXT / BF_BLOB (not NUL-terminated) */
    size_t off;    /* while a batch is being filled: offset into its arena */
  } u;
};

const char *bf_type_name(enum bf_type t);

/* The value's bytes are at u.s (len of them). */
static inline int bf_value_has_bytes(enum bf_type t) {
  return t == BF_TEXT || t == BF_BLOB || t == BF_JSON;
}

#endif

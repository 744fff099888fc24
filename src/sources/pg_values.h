/* PostgreSQL's text output of a value -> a typed bf_value, by the column's
 * type OID (the warehouse and its keyed lookups share this).
 *
 * int2/4/8, oid -> int; float4/8 -> float; bool -> bool; bytea -> blob;
 * timestamps -> ISO 8601 text ("2024-05-01T12:00:00Z" for timestamptz);
 * json/jsonb -> BF_JSON (sent as the JSON value, not as a string); arrays of
 * the types above and of text/varchar/numeric/uuid/date -> BF_JSON arrays
 * ({a,b} -> ["a","b"], {1,NULL} -> [1,null]); numeric, date and everything
 * else -> text exactly as PostgreSQL prints it, so numeric keeps its scale
 * ("19.90") and is never rounded through a double. */
#ifndef BF_PG_VALUES_H
#define BF_PG_VALUES_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "util/jsonw.h"
#include "sources/source.h"

/* How one column is read: a kind, and for arrays their elements' kind. */
typedef uint16_t bf_pg_kind;

bf_pg_kind bf_pg_kind_of(Oid type);

/* Reusable buffers for rewriting arrays; the caller releases both. */
struct bf_pg_scratch {
  struct bf_buf copy, json;
};

/* Types one value. s is writable and has a byte to spare at s[n] (a
 * delimiter or the terminating NUL). */
void bf_pg_put_value(struct bf_rowbuf *rb, struct bf_value *v, bf_pg_kind kind, char *s, size_t n,
                     struct bf_pg_scratch *scratch);

/* 0-15 for a hex digit, else -1. */
int bf_pg_hexval(char c);

#endif

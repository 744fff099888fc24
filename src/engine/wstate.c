/* The warehouse state store (wstate.h): PostgreSQL dialect. Everything
 * that is PostgreSQL-specific about `state: warehouse` is in this file. */
#include "engine/wstate.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "clients/pg.h"
#include "util/jsonw.h"

struct removed {
  unsigned char key[16];
  char *ident_hex; /* sealed identifier, hex; NULL when none */
};

struct bf_wstate {
  PGconn *conn;
  char *sync;
  char *sync_lit; /* the sync name as an SQL literal */
  char *what;     /* "warehouse 'pg'" */
  const char *dsn;
  const struct bf_prf *prf;
  bool keep_ident, writable, exists;
  /* HMAC-SHA-256 pads (key XOR ipad / opad, 64 bytes each). */
  unsigned char key_ipad[64], key_opad[64], fp_ipad[64], fp_opad[64];
  /* Acknowledgements since the last commit, as PostgreSQL array text. */
  struct bf_buf ack_keys, ack_fps, del_keys;
  size_t n_acks, n_dels;
  struct removed *removed;
  size_t n_removed, cap_removed, next_removed;
};

static int fail(struct bf_wstate *ws, PGresult *res, const char *doing, struct bf_error *err) {
  char msg[768];
  bf_pg_error_text(ws->conn, res, ws->dsn, msg, sizeof msg);
  return bf_error_set(err, BF_E_WAREHOUSE, "%s: state of sync '%s': %s %s: %s", ws->what, ws->sync,
                      bf_pg_connection_lost(ws->conn, res) ? "connection lost" : "failed", doing,
                      msg);
}

static int exec(struct bf_wstate *ws, const char *sql, const char *doing, struct bf_error *err) {
  PGresult *res = PQexec(ws->conn, sql);
  int rc = 0;
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) rc = fail(ws, res, doing, err);
  PQclear(res);
  return rc;
}

/* Runs sql with text parameters; returns the result (caller clears) or NULL
 * with err set. */
static PGresult *exec_params(struct bf_wstate *ws, const char *sql, int n,
                             const char *const *params, const char *doing, struct bf_error *err) {
  PGresult *res = PQexecParams(ws->conn, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    fail(ws, res, doing, err);
    PQclear(res);
    return NULL;
  }
  return res;
}

static void hex_of(const unsigned char *p, size_t n, char *out) {
  sodium_bin2hex(out, n * 2 + 1, p, n);
}

bool bf_wstate_unhex(const char *hex, size_t hex_len, unsigned char *out, size_t n) {
  size_t got = 0;
  return hex_len == n * 2 && sodium_hex2bin(out, n, hex, hex_len, NULL, &got, NULL) == 0 &&
         got == n;
}

/* Two HMAC keys of their own, derived from the local PRF's subkeys (so from
 * the secret alone): the warehouse sees these, never the secret. */
static void derive_pads(const unsigned char *subkey, size_t len, const char *label,
                        unsigned char ipad[64], unsigned char opad[64]) {
  unsigned char key[32];
  crypto_generichash(key, sizeof key, (const unsigned char *)label, strlen(label), subkey, len);
  memset(ipad, 0x36, 64);
  memset(opad, 0x5c, 64);
  for (size_t i = 0; i < sizeof key; i++) {
    ipad[i] ^= key[i];
    opad[i] ^= key[i];
  }
  sodium_memzero(key, sizeof key);
}

static const char schema_sql[] =
    "SELECT pg_advisory_xact_lock(hashtext('backflow.schema'));\n"
    "CREATE SCHEMA IF NOT EXISTS backflow;\n"
    "CREATE TABLE IF NOT EXISTS backflow.sync_state (\n"
    "  sync text NOT NULL, key bytea NOT NULL, fp bytea, flags integer NOT NULL,\n"
    "  ident bytea, PRIMARY KEY (sync, key));\n"
    "CREATE TABLE IF NOT EXISTS backflow.sync_state_meta (\n"
    "  sync text PRIMARY KEY, key_check bytea NOT NULL);\n";

static int check_key(struct bf_wstate *ws, struct bf_error *err) {
  char check[BF_KEY_CHECK_BYTES * 2 + 3] = "\\x";
  hex_of(ws->prf->key_check, BF_KEY_CHECK_BYTES, check + 2);
  const char *params[2] = {ws->sync, check};
  if (ws->writable) {
    PGresult *res = exec_params(ws,
                                "INSERT INTO backflow.sync_state_meta (sync, key_check) "
                                "VALUES ($1, $2::bytea) ON CONFLICT (sync) DO NOTHING",
                                2, params, "recording the key check", err);
    if (!res) return err->code;
    PQclear(res);
  }
  PGresult *res = exec_params(ws,
                              "SELECT key_check = $2::bytea FROM backflow.sync_state_meta "
                              "WHERE sync = $1",
                              2, params, "reading the key check", err);
  if (!res) return err->code;
  int rc = 0;
  if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") != 0)
    rc = bf_error_set(err, BF_E_SECRET,
                      "%s: the state of sync '%s' (backflow.sync_state) was written under another "
                      "secret; nothing was read or sent. Use the secret it was written with, or "
                      "`backflow reset %s` to start over (a full resync)",
                      ws->what, ws->sync, ws->sync);
  PQclear(res);
  return rc;
}

int bf_wstate_open(const struct bf_warehouse_config *wh, const char *sync, const struct bf_prf *prf,
                   unsigned flags, struct bf_wstate **out, struct bf_error *err) {
  bool writable = flags & BF_WSTATE_WRITABLE;
  *out = NULL;
  if (strcmp(wh->type, "postgres") != 0)
    return bf_error_set(err, BF_E_CONFIG,
                        "%s:%d:%d: sync '%s' has 'state: warehouse', which needs a postgres "
                        "warehouse; warehouse '%s' is %s (Snowflake and BigQuery are not "
                        "supported yet: use 'state: local')",
                        wh->loc.file, wh->loc.line, wh->loc.col, sync, wh->name, wh->type);
  struct bf_wstate *ws = bf_xcalloc(1, sizeof *ws);
  ws->sync = bf_xstrdup(sync);
  ws->what = bf_xasprintf("warehouse '%s'", wh->name);
  ws->dsn = bf_node_get_str(wh->params, "dsn");
  ws->prf = prf;
  ws->keep_ident = flags & BF_WSTATE_KEEP_IDENT;
  ws->writable = writable;
  derive_pads(prf->key_hash_key, sizeof prf->key_hash_key, "backflow warehouse key v1",
              ws->key_ipad, ws->key_opad);
  derive_pads(prf->fingerprint_key, sizeof prf->fingerprint_key,
              "backflow warehouse fingerprint v1", ws->fp_ipad, ws->fp_opad);
  int rc = 0;
  ws->conn = bf_pg_connect(wh->params, ws->what, BF_E_WAREHOUSE, err);
  if (!ws->conn) {
    rc = err->code;
    goto fail;
  }
  char *lit = PQescapeLiteral(ws->conn, sync, strlen(sync));
  ws->sync_lit = bf_xstrdup(lit);
  PQfreemem(lit);
  if (writable) {
    /* A session lock: held until this connection closes, so a killed
     * process (or machine) lets go of it as soon as PostgreSQL notices. */
    const char *params[1] = {sync};
    PGresult *res = exec_params(ws,
                                "SELECT pg_try_advisory_lock(hashtext('backflow.sync'), "
                                "hashtext($1))",
                                1, params, "locking the sync", err);
    if (!res) {
      rc = err->code;
      goto fail;
    }
    bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!got) {
      rc = bf_error_set(err, BF_E_LOCKED,
                        "sync '%s': another run of this sync holds its lock in %s", sync, ws->what);
      goto fail;
    }
    if ((rc = exec(ws, "BEGIN", "starting a transaction", err)) ||
        (rc = exec(ws, schema_sql, "creating schema backflow", err)) ||
        (rc = exec(ws, "COMMIT", "creating schema backflow", err)))
      goto fail;
  }
  PGresult *res = PQexec(ws->conn, "SELECT to_regclass('backflow.sync_state') IS NOT NULL AND "
                                   "to_regclass('backflow.sync_state_meta') IS NOT NULL");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = fail(ws, res, "looking for backflow.sync_state", err);
    PQclear(res);
    goto fail;
  }
  ws->exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  if (ws->exists && !(flags & BF_WSTATE_NO_CHECK) && (rc = check_key(ws, err))) goto fail;
  *out = ws;
  return 0;
fail:
  bf_wstate_free(ws);
  return rc;
}

void bf_wstate_ignore_table(struct bf_wstate *ws) { ws->exists = false; }

void bf_wstate_free(struct bf_wstate *ws) {
  if (!ws) return;
  if (ws->conn) PQfinish(ws->conn);
  for (size_t i = 0; i < ws->n_removed; i++) free(ws->removed[i].ident_hex);
  free(ws->removed);
  bf_buf_release(&ws->ack_keys);
  bf_buf_release(&ws->ack_fps);
  bf_buf_release(&ws->del_keys);
  sodium_memzero(ws->key_ipad, sizeof ws->key_ipad);
  sodium_memzero(ws->key_opad, sizeof ws->key_opad);
  sodium_memzero(ws->fp_ipad, sizeof ws->fp_ipad);
  sodium_memzero(ws->fp_opad, sizeof ws->fp_opad);
  free(ws->sync);
  free(ws->sync_lit);
  free(ws->what);
  free(ws);
}

static void put_ident(struct bf_buf *b, const char *name) {
  bf_buf_putc(b, '"');
  for (const char *p = name; *p; p++) {
    if (*p == '"') bf_buf_putc(b, '"');
    bf_buf_putc(b, *p);
  }
  bf_buf_putc(b, '"');
}

static void put_bytea(struct bf_buf *b, const unsigned char *p, size_t n) {
  char hex[129];
  hex_of(p, n, hex);
  bf_buf_printf(b, "'\\x%s'::bytea", hex);
}

/* HMAC-SHA-256 of msg_sql (a bytea expression), truncated to out_bytes. */
static void put_hmac(struct bf_buf *b, const unsigned char ipad[64], const unsigned char opad[64],
                     const char *msg_sql, size_t msg_len, int out_bytes) {
  bf_buf_puts(b, "substr(sha256(");
  put_bytea(b, opad, 64);
  bf_buf_puts(b, " || sha256(");
  put_bytea(b, ipad, 64);
  bf_buf_puts(b, " || ");
  bf_buf_append(b, msg_sql, msg_len);
  bf_buf_printf(b, ")), 1, %d)", out_bytes);
}

char *bf_wstate_plan_sql(struct bf_wstate *ws, const char *model_sql, char *const *cols,
                         size_t ncols, size_t pk_col, const size_t *mapped, size_t n_mapped,
                         uint64_t signature, bool full_resync, bool removals) {
  size_t n = strlen(model_sql);
  while (n && (model_sql[n - 1] == ';' || model_sql[n - 1] == ' ' || model_sql[n - 1] == '\n' ||
               model_sql[n - 1] == '\t' || model_sql[n - 1] == '\r'))
    n--;
  struct bf_buf msg = {0}, q = {0};
  /* Key: the primary key's text. Fingerprint: the mapping's signature and
   * every mapped value, each length-prefixed, so no two rows collide by
   * shifting text between columns; NULL is its own token. */
  bf_buf_puts(&msg, "convert_to(src.");
  put_ident(&msg, cols[pk_col]);
  bf_buf_puts(&msg, "::text, 'UTF8')");
  bf_buf_puts(&q, "SELECT ");
  /* The model's columns first, in their order: the mapping's indexes hold. */
  struct bf_buf fp = {0};
  bf_buf_printf(&fp, "convert_to('%016llx'", (unsigned long long)signature);
  for (size_t i = 0; i < n_mapped; i++) {
    bf_buf_puts(&fp, " || coalesce('V' || length(src.");
    put_ident(&fp, cols[mapped[i]]);
    bf_buf_puts(&fp, "::text) || ':' || src.");
    put_ident(&fp, cols[mapped[i]]);
    bf_buf_puts(&fp, "::text, 'N')");
  }
  bf_buf_puts(&fp, ", 'UTF8')");
  /* Only the model's own columns leave, not the bytea keys in between. */
  for (size_t i = 0; i < ncols; i++) {
    bf_buf_puts(&q, "m.");
    put_ident(&q, cols[i]);
    bf_buf_puts(&q, ", ");
  }
  bf_buf_puts(&q, "encode(coalesce(m.__bf_kb, s.key), 'hex') AS __bf_k, "
                  "encode(m.__bf_fb, 'hex') AS __bf_f, encode(s.fp, 'hex') AS __bf_sf, "
                  "s.flags AS __bf_st, m.__bf_m, m.__bf_n, encode(s.ident, 'hex') AS __bf_id\n");
  bf_buf_puts(&q, "FROM (SELECT src.*, 1 AS __bf_m, ");
  put_hmac(&q, ws->key_ipad, ws->key_opad, msg.data, msg.len, 16);
  bf_buf_puts(&q, " AS __bf_kb, ");
  put_hmac(&q, ws->fp_ipad, ws->fp_opad, fp.data, fp.len, 8);
  bf_buf_puts(&q, " AS __bf_fb, count(*) OVER (PARTITION BY ");
  put_hmac(&q, ws->key_ipad, ws->key_opad, msg.data, msg.len, 16);
  bf_buf_printf(&q, ") AS __bf_n\n  FROM (\n%.*s\n) AS src) AS m\n", (int)n, model_sql);
  if (ws->exists)
    bf_buf_printf(&q,
                  "FULL OUTER JOIN (SELECT key, fp, flags, ident FROM backflow.sync_state "
                  "WHERE sync = %s) AS s ON s.key = m.__bf_kb\n",
                  ws->sync_lit);
  else /* plan before the first run: no table yet, and a plan creates none */
    bf_buf_puts(&q, "FULL OUTER JOIN (SELECT NULL::bytea AS key, NULL::bytea AS fp, "
                    "NULL::integer AS flags, NULL::bytea AS ident WHERE false) AS s "
                    "ON s.key = m.__bf_kb\n");
  /* Keys that left the model matter only to a mirror sync: the others keep
   * them in state without reading them back on every run. */
  const char *gone = removals ? "(m.__bf_m IS NULL AND (s.flags & 3) <> 0)" : "false";
  if (full_resync)
    bf_buf_printf(&q, "WHERE m.__bf_m IS NOT NULL OR %s", gone);
  else
    bf_buf_printf(&q,
                  "WHERE %s OR (m.__bf_m IS NOT NULL AND (m.__bf_kb IS NULL OR m.__bf_n > 1 OR "
                  "s.key IS NULL OR (s.flags & 2) <> 0 OR (s.flags & 1) = 0 OR "
                  "s.fp IS DISTINCT FROM m.__bf_fb))",
                  gone);
  bf_buf_release(&msg);
  bf_buf_release(&fp);
  bf_buf_cstr(&q);
  return q.data;
}

/* Appends an element to PostgreSQL array text ("{a,b}" without braces). */
static void array_add(struct bf_buf *b, const char *elem) {
  if (b->len) bf_buf_putc(b, ',');
  bf_buf_puts(b, elem);
}

static char *array_text(struct bf_buf *b) {
  char *s = bf_xasprintf("{%.*s}", (int)b->len, b->data ? b->data : "");
  return s;
}

int bf_wstate_pending(struct bf_wstate *ws, const struct bf_record *recs, size_t n,
                      struct bf_error *err) {
  struct bf_buf keys = {0}, idents = {0};
  for (size_t i = 0; i < n; i++) {
    char hex[33];
    hex_of(recs[i].key, 16, hex);
    array_add(&keys, hex);
    if (ws->keep_ident && recs[i].op != BF_OP_DELETE) {
      size_t sealed_len = 0;
      unsigned char *sealed =
          bf_prf_seal(ws->prf, recs[i].match_json, recs[i].match_json_len, &sealed_len);
      char *shex = bf_xmalloc(sealed_len * 2 + 1);
      hex_of(sealed, sealed_len, shex);
      array_add(&idents, shex);
      free(shex);
      free(sealed);
    } else {
      array_add(&idents, "NULL");
    }
  }
  char *k = array_text(&keys), *id = array_text(&idents);
  const char *params[3] = {ws->sync, k, id};
  /* Autocommit: the pending marks are durable before anything is sent. */
  PGresult *res = exec_params(ws,
                              "INSERT INTO backflow.sync_state AS st (sync, key, fp, flags, ident) "
                              "SELECT $1, decode(t.k, 'hex'), NULL, 2, decode(t.i, 'hex') "
                              "FROM unnest($2::text[], $3::text[]) AS t(k, i) "
                              "ON CONFLICT (sync, key) DO UPDATE SET flags = st.flags | 2, "
                              "ident = coalesce(EXCLUDED.ident, st.ident)",
                              3, params, "recording pending keys", err);
  int rc = res ? 0 : err->code;
  PQclear(res);
  free(k);
  free(id);
  bf_buf_release(&keys);
  bf_buf_release(&idents);
  return rc;
}

void bf_wstate_note_ack(struct bf_wstate *ws, const struct bf_record *rec) {
  if (!ws) return;
  char hex[33];
  hex_of(rec->key, 16, hex);
  if (rec->op == BF_OP_DELETE) {
    array_add(&ws->del_keys, hex);
    ws->n_dels++;
    return;
  }
  unsigned char fp[8];
  memcpy(fp, &rec->fp, 8);
  char fhex[17];
  hex_of(fp, 8, fhex);
  array_add(&ws->ack_keys, hex);
  array_add(&ws->ack_fps, fhex);
  ws->n_acks++;
}

int bf_wstate_commit(struct bf_wstate *ws, struct bf_error *err) {
  if (!ws || (ws->n_acks == 0 && ws->n_dels == 0)) return 0;
  char *k = array_text(&ws->ack_keys), *f = array_text(&ws->ack_fps),
       *d = array_text(&ws->del_keys);
  const char *up[3] = {ws->sync, k, f};
  const char *del[2] = {ws->sync, d};
  int rc = exec(ws, "BEGIN", "starting a transaction", err);
  PGresult *res = NULL;
  if (rc == 0 && ws->n_acks) {
    res = exec_params(ws,
                      "UPDATE backflow.sync_state AS st SET fp = decode(t.f, 'hex'), flags = 1 "
                      "FROM unnest($2::text[], $3::text[]) AS t(k, f) "
                      "WHERE st.sync = $1 AND st.key = decode(t.k, 'hex')",
                      3, up, "recording acknowledged records", err);
    if (!res) rc = err->code;
    PQclear(res);
  }
  if (rc == 0 && ws->n_dels) {
    res = exec_params(ws,
                      "DELETE FROM backflow.sync_state WHERE sync = $1 AND key IN "
                      "(SELECT decode(k, 'hex') FROM unnest($2::text[]) AS k)",
                      2, del, "recording deleted records", err);
    if (!res) rc = err->code;
    PQclear(res);
  }
  if (rc == 0) rc = exec(ws, "COMMIT", "committing acknowledged records", err);
  if (rc) {
    PGresult *rb = PQexec(ws->conn, "ROLLBACK");
    PQclear(rb);
  }
  free(k);
  free(f);
  free(d);
  bf_buf_reset(&ws->ack_keys);
  bf_buf_reset(&ws->ack_fps);
  bf_buf_reset(&ws->del_keys);
  ws->n_acks = ws->n_dels = 0;
  return rc;
}

void bf_wstate_add_removed(struct bf_wstate *ws, const unsigned char key[16], const char *ident_hex,
                           size_t hex_len) {
  if (ws->n_removed == ws->cap_removed) {
    ws->cap_removed = ws->cap_removed ? ws->cap_removed * 2 : 256;
    ws->removed = bf_xrealloc(ws->removed, ws->cap_removed * sizeof *ws->removed);
  }
  struct removed *r = &ws->removed[ws->n_removed++];
  memcpy(r->key, key, 16);
  r->ident_hex = ident_hex ? bf_xstrndup(ident_hex, hex_len) : NULL;
}

size_t bf_wstate_n_removed(const struct bf_wstate *ws) { return ws->n_removed; }

const unsigned char *bf_wstate_removed_key(const struct bf_wstate *ws, size_t i) {
  return ws->removed[i].key;
}

char *bf_wstate_ident(struct bf_wstate *ws, const unsigned char key[16], size_t *len) {
  if (!ws->keep_ident) {
    *len = 2;
    return bf_xstrdup("{}");
  }
  /* Asked in the order they were added: the next one is almost always it. */
  struct removed *found = NULL;
  if (ws->next_removed < ws->n_removed && !memcmp(ws->removed[ws->next_removed].key, key, 16))
    found = &ws->removed[ws->next_removed++];
  for (size_t i = 0; !found && i < ws->n_removed; i++)
    if (!memcmp(ws->removed[i].key, key, 16)) found = &ws->removed[i];
  if (!found || !found->ident_hex) return NULL;
  size_t hex_len = strlen(found->ident_hex), n = hex_len / 2;
  unsigned char *sealed = bf_xmalloc(n ? n : 1);
  char *plain = NULL;
  if (bf_wstate_unhex(found->ident_hex, hex_len, sealed, n))
    plain = bf_prf_open(ws->prf, sealed, n, len);
  free(sealed);
  return plain;
}

int bf_wstate_clear(struct bf_wstate *ws, struct bf_error *err) {
  if (!ws->exists) return 0;
  const char *params[1] = {ws->sync};
  PGresult *res = exec_params(ws,
                              "WITH gone AS (DELETE FROM backflow.sync_state WHERE sync = $1) "
                              "DELETE FROM backflow.sync_state_meta WHERE sync = $1",
                              1, params, "clearing the state", err);
  if (!res) return err->code;
  PQclear(res);
  return 0;
}

long long bf_wstate_count(struct bf_wstate *ws, struct bf_error *err) {
  if (!ws->exists) return 0;
  const char *params[1] = {ws->sync};
  PGresult *res = exec_params(ws,
                              "SELECT count(*) FROM backflow.sync_state WHERE sync = $1 AND "
                              "flags & 3 <> 0",
                              1, params, "counting the state", err);
  if (!res) return -1;
  long long n = atoll(PQgetvalue(res, 0, 0));
  PQclear(res);
  return n;
}

/* PostgreSQL change feed: logical replication with the pgoutput plugin
 * over libpq's replication protocol (design.md §8).
 *
 * Objects, named after the sync (backflow_<sync>, lower case):
 *   publication  FOR TABLE <the model's live tables>
 *   slot         logical, pgoutput; its confirmed_flush_lsn is the feed's
 *                only memory: it advances only through ack(), so a restart
 *                of either side replays every change not yet acknowledged.
 * pgoutput (protocol 1) sends a transaction only once it committed, so a
 * Commit message closes a unit: its end LSN is the position handed out.
 * A key comes from the changed row's `key` column: the new row for INSERT
 * and UPDATE (and the old one when the key itself changed), the old row's
 * replica identity for DELETE. */
#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <time.h>
#include <string.h>

#include <libpq-fe.h>

#include "util/jsonw.h"
#include "util/log.h"
#include "util/clock.h"
#include "clients/pg.h"
#include "sources/pgoutput.h"
#include "sources/source.h"

#define MAX_BATCH_KEYS  10000
#define STATUS_EVERY_MS 10000
#define ACK_EVERY_MS    1000

struct watched {
  uint32_t oid;
  char *name; /* schema.table, for messages */
  const char *key;
  int key_col; /* index in the Relation message's columns; -1 until one came */
};

struct pg_feed {
  struct bf_feed base;
  PGconn *conn; /* replication=database: slot commands and the stream */
  PGconn *sql;  /* plain: catalog queries and visibility checks (a
                 * replication connection takes no parameterised queries) */
  char *what;   /* "warehouse 'pg'" */
  char *dsn;
  char *slot, *publication;
  struct watched *tables;
  size_t n_tables;
  struct bf_pgo_decoder dec;
  /* keys of the batch being gathered; text bytes in key_bytes (offsets in
   * u.off until the batch is handed out) */
  struct bf_value *keys;
  size_t n_keys, cap_keys, txn_first_key;
  struct bf_buf key_bytes;
  bool resync, txn_resync, in_txn;
  uint64_t position; /* end LSN of the last commit read */
  long long commit_ms;
  uint64_t acked, server_end;
  uint64_t reported;           /* acked as of the last status update */
  long long oldest_unacked_ms; /* commit time of the oldest commit read but not acked */
  long long last_status_ms;
  uint32_t *xids; /* transactions whose changes the batch holds */
  size_t n_xids, cap_xids;
  char *copybuf; /* from PQgetCopyData, freed with PQfreemem */
};

static long long now_ms(void) { return bf_now_ms(); }

/* backflow_<sync> in the characters a slot name may hold. Caller frees. */
static char *object_name(const char *sync) {
  char *out = bf_xasprintf("backflow_%s", sync);
  for (char *c = out; *c; c++) *c = isalnum((unsigned char)*c) ? (char)tolower(*c) : '_';
  if (strlen(out) > 63) out[63] = 0;
  return out;
}

static int fail(struct pg_feed *f, PGconn *conn, const PGresult *res, const char *doing,
                struct bf_error *err) {
  char msg[768];
  bf_pg_error_text(conn, res, f->dsn, msg, sizeof msg);
  return bf_error_set(err, BF_E_WAREHOUSE, "%s: live feed: %s: %s", f->what, doing, msg);
}

static bool sqlstate_is(const PGresult *res, const char *code) {
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  return st && !strcmp(st, code);
}

/* One-row, one-column query with text parameters; *out is NULL when there
 * is no row. Caller frees *out. */
static int query_value(struct pg_feed *f, const char *sql, int nparams, const char *const *params,
                       char **out, struct bf_error *err) {
  *out = NULL;
  PGresult *res = PQexecParams(f->sql, sql, nparams, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    int rc = fail(f, f->sql, res, "reading the catalog", err);
    PQclear(res);
    return rc;
  }
  if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) *out = bf_xstrdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  return 0;
}

static int check_settings(struct pg_feed *f, struct bf_error *err) {
  char *level = NULL, *role = NULL, *can = NULL;
  int rc = query_value(f, "SELECT current_setting('wal_level')", 0, NULL, &level, err);
  if (rc == 0 && level && strcmp(level, "logical"))
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s: live syncs need wal_level = logical (it is '%s'): run ALTER SYSTEM SET "
                      "wal_level = logical (or set it in postgresql.conf) and restart PostgreSQL",
                      f->what, level);
  if (rc == 0) rc = query_value(f, "SELECT current_user", 0, NULL, &role, err);
  if (rc == 0)
    rc = query_value(f,
                     "SELECT (rolreplication OR rolsuper)::text FROM pg_roles WHERE rolname = "
                     "current_user",
                     0, NULL, &can, err);
  if (rc == 0 && (!can || strcmp(can, "true"))) {
    char *ident = PQescapeIdentifier(f->sql, role ? role : "", strlen(role ? role : ""));
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s: role '%s' may not use logical replication: run ALTER ROLE %s "
                      "REPLICATION; (as a superuser)",
                      f->what, role ? role : "?", ident ? ident : "...");
    PQfreemem(ident);
  }
  free(level);
  free(role);
  free(can);
  return rc;
}

/* Resolves each live table and checks that deletes can name their key. */
static int resolve_tables(struct pg_feed *f, const struct bf_feed_spec *spec,
                          struct bf_error *err) {
  f->tables = bf_xcalloc(spec->n_tables, sizeof *f->tables);
  for (size_t i = 0; i < spec->n_tables; i++) {
    const struct bf_live_table *t = &spec->tables[i];
    struct watched *w = &f->tables[f->n_tables++];
    w->key = t->key;
    w->key_col = -1;
    const char *p1[] = {t->table};
    char *row = NULL;
    int rc = query_value(f,
                         "SELECT c.oid::text || ' ' || c.relreplident::text || ' ' || "
                         "quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = "
                         "to_regclass($1)",
                         1, p1, &row, err);
    if (rc) return rc;
    if (!row)
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: live table '%s' of sync '%s' does not exist in %s",
                          t->loc.file, t->loc.line, t->loc.col, t->table, spec->sync, f->what);
    char ident = 'd';
    unsigned long oid = 0;
    int used = 0;
    sscanf(row, "%lu %c %n", &oid, &ident, &used);
    w->oid = (uint32_t)oid;
    w->name = bf_xstrdup(row + used);
    free(row);
    char oidtext[16];
    snprintf(oidtext, sizeof oidtext, "%lu", oid);
    const char *p2[] = {oidtext, t->key};
    /* in_identity: the column is sent in a DELETE's old row */
    rc = query_value(
        f,
        "SELECT CASE c.relreplident WHEN 'f' THEN 'yes' WHEN 'n' THEN 'no' ELSE "
        "COALESCE((SELECT 'yes' FROM pg_index i WHERE i.indrelid = c.oid AND a.attnum = "
        "ANY(i.indkey) AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' "
        "AND i.indisreplident)) LIMIT 1), 'no') END FROM pg_class c JOIN pg_attribute a ON "
        "a.attrelid = c.oid WHERE c.oid = $1::oid AND a.attname = $2 AND NOT a.attisdropped",
        2, p2, &row, err);
    if (rc) return rc;
    if (!row)
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: live table %s has no column '%s' (the 'key' of sync '%s')",
                          t->loc.file, t->loc.line, t->loc.col, w->name, t->key, spec->sync);
    bool in_identity = !strcmp(row, "yes");
    free(row);
    if (spec->need_deletes && !in_identity)
      return bf_error_set(
          err, BF_E_CONFIG,
          "%s:%d:%d: mirror sync '%s' cannot see which row a DELETE on %s removed: its REPLICA "
          "IDENTITY does not include column '%s'; run ALTER TABLE %s REPLICA IDENTITY FULL (or "
          "make '%s' its primary key)",
          t->loc.file, t->loc.line, t->loc.col, spec->sync, w->name, t->key, w->name, t->key);
  }
  return 0;
}

static int privilege_error(struct pg_feed *f, const PGresult *res, const char *doing,
                           struct bf_error *err) {
  char msg[768];
  bf_pg_error_text(f->sql, res, f->dsn, msg, sizeof msg);
  return bf_error_set(err, BF_E_CONFIG,
                      "%s: live feed: %s: %s; the role needs to own the live tables and CREATE "
                      "on the database (GRANT CREATE ON DATABASE <db> TO <role>), or a superuser "
                      "can create it: CREATE PUBLICATION %s FOR TABLE ...",
                      f->what, doing, msg, f->publication);
}

/* Makes sure publication and slot exist; *created when either had to be. */
static int ensure_objects(struct pg_feed *f, bool *created, struct bf_error *err) {
  *created = false;
  const char *pn[] = {f->publication};
  char *exists = NULL;
  int rc =
      query_value(f, "SELECT 'yes' FROM pg_publication WHERE pubname = $1", 1, pn, &exists, err);
  if (rc) return rc;
  const char *sn[] = {f->slot};
  char *slot_db = NULL;
  if ((rc = query_value(f,
                        "SELECT coalesce(database, '') || ' ' || active::text FROM "
                        "pg_replication_slots WHERE slot_name = $1",
                        1, sn, &slot_db, err))) {
    free(exists);
    return rc;
  }
  struct bf_buf sql = {0};
  PGresult *res = NULL;
  if (!exists) {
    /* A slot streams through the publication as it was at each change:
     * a slot older than a new publication would fail, so both start anew. */
    if (slot_db && !strstr(slot_db, " true")) {
      res = PQexecParams(f->sql, "SELECT pg_drop_replication_slot($1)", 1, NULL, sn, NULL, NULL, 0);
      PQclear(res);
      free(slot_db);
      slot_db = NULL;
    }
    char *pub = PQescapeIdentifier(f->sql, f->publication, strlen(f->publication));
    bf_buf_printf(&sql, "CREATE PUBLICATION %s FOR TABLE ", pub);
    PQfreemem(pub);
    for (size_t i = 0; i < f->n_tables; i++)
      bf_buf_printf(&sql, "%s%s", i ? ", " : "", f->tables[i].name);
    res = PQexec(f->sql, bf_buf_cstr(&sql));
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      rc = sqlstate_is(res, "42501") ? privilege_error(f, res, "creating the publication", err)
                                     : fail(f, f->sql, res, "creating the publication", err);
    }
    PQclear(res);
    *created = true;
  } else {
    /* Tables added to the model's live list since the publication was made. */
    for (size_t i = 0; i < f->n_tables && rc == 0; i++) {
      char oidtext[16];
      snprintf(oidtext, sizeof oidtext, "%u", f->tables[i].oid);
      const char *pp[] = {f->publication, oidtext};
      char *has = NULL;
      rc = query_value(f,
                       "SELECT 'yes' FROM pg_publication_rel r JOIN pg_publication p ON p.oid = "
                       "r.prpubid WHERE p.pubname = $1 AND r.prrelid = $2::oid",
                       2, pp, &has, err);
      if (rc == 0 && !has) {
        char *pub = PQescapeIdentifier(f->sql, f->publication, strlen(f->publication));
        bf_buf_reset(&sql);
        bf_buf_printf(&sql, "ALTER PUBLICATION %s ADD TABLE %s", pub, f->tables[i].name);
        PQfreemem(pub);
        res = PQexec(f->sql, bf_buf_cstr(&sql));
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
          rc = privilege_error(f, res, "adding a table to the publication", err);
        PQclear(res);
        *created = true; /* changes of that table so far were not followed */
      }
      free(has);
    }
  }
  free(exists);
  if (rc == 0 && !slot_db) {
    char *slot = PQescapeIdentifier(f->conn, f->slot, strlen(f->slot));
    bf_buf_reset(&sql);
    bf_buf_printf(&sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput NOEXPORT_SNAPSHOT", slot);
    PQfreemem(slot);
    res = PQexec(f->conn, bf_buf_cstr(&sql));
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      if (sqlstate_is(res, "42501"))
        rc = bf_error_set(err, BF_E_CONFIG,
                          "%s: live feed: the role may not create replication slots: run ALTER "
                          "ROLE <role> REPLICATION;",
                          f->what);
      else if (sqlstate_is(res, "55000"))
        rc = bf_error_set(err, BF_E_CONFIG,
                          "%s: live feed: creating the replication slot: %s (check wal_level = "
                          "logical and max_replication_slots)",
                          f->what, PQresultErrorMessage(res));
      else
        rc = fail(f, f->conn, res, "creating the replication slot", err);
    }
    PQclear(res);
    *created = true;
  }
  free(slot_db);
  bf_buf_release(&sql);
  return rc;
}

static int start_streaming(struct pg_feed *f, struct bf_error *err) {
  char *slot = PQescapeIdentifier(f->conn, f->slot, strlen(f->slot));
  char *pub = PQescapeLiteral(f->conn, f->publication, strlen(f->publication));
  char *sql = bf_xasprintf(
      "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s)", slot, pub);
  PQfreemem(slot);
  PQfreemem(pub);
  PGresult *res = PQexec(f->conn, sql);
  free(sql);
  int rc = 0;
  if (PQresultStatus(res) != PGRES_COPY_BOTH) {
    if (sqlstate_is(res, "55006")) /* object in use: another follower, or one that just died */
      rc = bf_error_set(err, BF_E_WAREHOUSE,
                        "%s: live feed: replication slot %s is in use by another process", f->what,
                        f->slot);
    else
      rc = fail(f, f->conn, res, "starting replication", err);
  }
  PQclear(res);
  return rc;
}

static int send_status(struct pg_feed *f, bool reply, struct bf_error *err) {
  unsigned char msg[34];
  size_t n = bf_pgo_standby_status(msg, f->position > f->acked ? f->position : f->acked, f->acked,
                                   f->acked, bf_pgo_now_us(), reply);
  if (PQputCopyData(f->conn, (const char *)msg, (int)n) != 1 || PQflush(f->conn) < 0)
    return fail(f, f->conn, NULL, "sending a status update", err);
  f->last_status_ms = now_ms();
  f->reported = f->acked;
  return 0;
}

static struct watched *watched_by_oid(struct pg_feed *f, uint32_t oid) {
  for (size_t i = 0; i < f->n_tables; i++)
    if (f->tables[i].oid == oid) return &f->tables[i];
  return NULL;
}

static void add_key(struct pg_feed *f, const struct bf_pgo_value *v) {
  if (f->n_keys == f->cap_keys) {
    f->cap_keys = f->cap_keys ? f->cap_keys * 2 : 256;
    f->keys = bf_xrealloc(f->keys, f->cap_keys * sizeof *f->keys);
  }
  struct bf_value *k = &f->keys[f->n_keys++];
  k->type = BF_TEXT;
  k->len = v->len;
  k->u.off = f->key_bytes.len;
  bf_buf_append(&f->key_bytes, v->data, v->len);
}

/* The key value of tuple t, or NULL when the tuple does not carry it. */
static const struct bf_pgo_value *key_of(const struct watched *w, const struct bf_pgo_tuple *t) {
  if (w->key_col < 0 || w->key_col >= t->ncols) return NULL;
  const struct bf_pgo_value *v = &t->cols[w->key_col];
  return v->kind == 't' ? v : NULL;
}

static void on_row_change(struct pg_feed *f, const struct bf_pgo_msg *m) {
  struct watched *w = watched_by_oid(f, m->relid);
  if (!w) return;
  const struct bf_pgo_value *now = m->kind == BF_PGO_DELETE ? NULL : key_of(w, &m->new_tuple);
  const struct bf_pgo_value *before = m->old_kind ? key_of(w, &m->old_tuple) : NULL;
  if (now) add_key(f, now);
  if (before && (!now || now->len != before->len || memcmp(now->data, before->data, now->len)))
    add_key(f, before);
  /* A delete that does not name its key (replica identity without it), or a
   * key sent as an unchanged TOAST value: only a full run can tell. */
  if (m->kind == BF_PGO_DELETE ? !before : !now && !before) f->txn_resync = true;
}

/* Applies one pgoutput message; *committed when it closed a transaction. */
static int on_message(struct pg_feed *f, const unsigned char *data, size_t len, bool *committed,
                      struct bf_error *err) {
  struct bf_pgo_msg m;
  int rc = bf_pgo_decode(&f->dec, data, len, &m, err);
  if (rc) return bf_error_prefix(err, "%s: live feed", f->what);
  switch (m.kind) {
  case BF_PGO_BEGIN:
    if (f->n_xids == f->cap_xids) {
      f->cap_xids = f->cap_xids ? f->cap_xids * 2 : 64;
      f->xids = bf_xrealloc(f->xids, f->cap_xids * sizeof *f->xids);
    }
    f->xids[f->n_xids++] = m.xid;
    f->in_txn = true;
    f->txn_first_key = f->n_keys;
    f->txn_resync = false;
    break;
  case BF_PGO_COMMIT:
    f->in_txn = false;
    f->position = m.lsn;
    f->commit_ms = bf_pgo_us_to_unix_ms(m.commit_time);
    if (!f->oldest_unacked_ms) f->oldest_unacked_ms = f->commit_ms;
    f->resync |= f->txn_resync;
    *committed = true;
    break;
  case BF_PGO_RELATION: {
    struct watched *w = watched_by_oid(f, m.relid);
    if (!w) break;
    w->key_col = -1;
    for (uint16_t i = 0; i < m.ncolumns; i++)
      if (!strcmp(m.columns[i].name, w->key)) w->key_col = i;
    if (w->key_col < 0) f->txn_resync = true; /* the key column was dropped or renamed */
    break;
  }
  case BF_PGO_INSERT:
  case BF_PGO_UPDATE:
  case BF_PGO_DELETE: on_row_change(f, &m); break;
  case BF_PGO_TRUNCATE:
    for (uint32_t i = 0; i < m.nrelids; i++)
      if (watched_by_oid(f, m.relids[i])) f->txn_resync = true;
    break;
  default: break;
  }
  return 0;
}

static int wait_readable(struct pg_feed *f, long long ms) {
  struct pollfd pfd = {.fd = PQsocket(f->conn), .events = POLLIN};
  if (pfd.fd < 0) return -1;
  return poll(&pfd, 1, ms > 1000 ? 1000 : (int)ms);
}

/* A commit is sent to us once its record is flushed, but it becomes
 * visible to other sessions a moment later (ProcArrayEndTransaction runs
 * after the WAL flush): a lookup in between would read the old rows, find
 * nothing changed and let the change be acknowledged unsent. So the batch
 * goes out only once every one of its transactions is visible. Only the
 * low 32 bits of an xid are sent; the epoch comes from the snapshot's xmax
 * (an xid at or past xmax is not visible yet). */
static const char visible_sql[] =
    "SELECT coalesce(bool_and(CASE WHEN ((x - xmax_low) & 4294967295) < 2147483648 THEN false "
    "ELSE pg_visible_in_snapshot((xmax - ((xmax_low - x) & 4294967295))::text::xid8, snap) END),"
    " true)::text FROM (SELECT s AS snap, pg_snapshot_xmax(s)::text::bigint AS xmax,"
    " pg_snapshot_xmax(s)::text::bigint & 4294967295 AS xmax_low FROM pg_current_snapshot() s) c,"
    " unnest($1::bigint[]) x";

static int wait_visible(struct pg_feed *f, struct bf_error *err) {
  if (f->n_xids == 0) return 0;
  struct bf_buf arr = {0};
  bf_buf_putc(&arr, '{');
  for (size_t i = 0; i < f->n_xids; i++) bf_buf_printf(&arr, "%s%u", i ? "," : "", f->xids[i]);
  bf_buf_putc(&arr, '}');
  const char *params[] = {bf_buf_cstr(&arr)};
  int rc = 0;
  for (int attempt = 0;; attempt++) {
    char *visible = NULL;
    if ((rc = query_value(f, visible_sql, 1, params, &visible, err))) break;
    bool ok = visible && !strcmp(visible, "true");
    free(visible);
    if (ok) break;
    if (attempt == 5000) { /* ~5 s: a commit that never shows is a server problem */
      rc = bf_error_set(err, BF_E_WAREHOUSE,
                        "%s: live feed: a committed transaction did not become visible", f->what);
      break;
    }
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  bf_buf_release(&arr);
  f->n_xids = 0;
  return rc;
}

static void hand_out(struct pg_feed *f, struct bf_change_batch *out) {
  for (size_t i = 0; i < f->n_keys; i++) f->keys[i].u.s = f->key_bytes.data + f->keys[i].u.off;
  out->keys = f->keys;
  out->n = f->n_keys;
  out->position = f->position;
  out->commit_ms = f->commit_ms;
  out->resync = f->resync;
}

static int feed_next(struct bf_feed *f_, long long wait_ms, struct bf_change_batch *out,
                     struct bf_error *err) {
  struct pg_feed *f = (struct pg_feed *)f_;
  memset(out, 0, sizeof *out);
  f->n_keys = 0;
  f->resync = false;
  bf_buf_reset(&f->key_bytes);
  long long deadline = now_ms() + wait_ms;
  bool any_commit = false;
  for (;;) {
    if (f->copybuf) {
      PQfreemem(f->copybuf);
      f->copybuf = NULL;
    }
    int n = PQgetCopyData(f->conn, &f->copybuf, 1);
    if (n > 0) {
      struct bf_pgo_copy c;
      int rc = bf_pgo_parse_copy((const unsigned char *)f->copybuf, (size_t)n, &c, err);
      if (rc) return bf_error_prefix(err, "%s: live feed", f->what);
      if (c.wal_end > f->server_end) f->server_end = c.wal_end;
      if (c.kind == BF_PGO_KEEPALIVE) {
        if (c.reply_requested && (rc = send_status(f, false, err))) return rc;
        continue;
      }
      bool committed = false;
      if ((rc = on_message(f, c.data, c.len, &committed, err))) return rc;
      any_commit |= committed;
      /* A transaction larger than a batch still goes out whole: its
       * position can only be confirmed once all of it is handled. */
      if (committed && f->n_keys >= MAX_BATCH_KEYS) break;
      continue;
    }
    if (n == -1 || n == -2) {
      PGresult *res = PQgetResult(f->conn);
      int rc = fail(f, f->conn, res, "connection lost while streaming", err);
      PQclear(res);
      return rc;
    }
    /* Nothing buffered: a complete commit is ready to go. */
    if (any_commit && !f->in_txn) break;
    if (now_ms() - f->last_status_ms >= (f->acked > f->reported ? ACK_EVERY_MS : STATUS_EVERY_MS)) {
      int rc = send_status(f, false, err);
      if (rc) return rc;
    }
    long long left = deadline - now_ms();
    if (left <= 0 && !f->in_txn) break;
    if (left <= 0) left = 50; /* finish the transaction being read */
    if (wait_readable(f, left) < 0 || !PQconsumeInput(f->conn)) {
      PGresult *res = PQgetResult(f->conn);
      int rc = fail(f, f->conn, res, "connection lost while streaming", err);
      PQclear(res);
      return rc;
    }
  }
  /* Keys of a transaction not yet committed are never handed out. */
  if (f->in_txn) BF_BUG("pg feed: handing out an open transaction");
  int rc = f->n_keys || f->resync ? wait_visible(f, err) : 0;
  f->n_xids = 0;
  if (rc) return rc;
  hand_out(f, out);
  return 0;
}

static int feed_ack(struct bf_feed *f_, uint64_t position, struct bf_error *err) {
  struct pg_feed *f = (struct pg_feed *)f_;
  if (position <= f->acked) return 0;
  f->acked = position;
  f->oldest_unacked_ms = position >= f->position ? 0 : f->oldest_unacked_ms;
  /* The server learns it at the next status update (at most a second
   * away, or at once when it asks): one per commit would double the
   * messages at high rates for nothing. */
  if (now_ms() - f->last_status_ms >= ACK_EVERY_MS) return send_status(f, false, err);
  return 0;
}

static void feed_lag(struct bf_feed *f_, double *seconds, long long *bytes) {
  struct pg_feed *f = (struct pg_feed *)f_;
  *seconds = f->oldest_unacked_ms ? (double)(now_ms() - f->oldest_unacked_ms) / 1000.0 : 0.0;
  if (*seconds < 0) *seconds = 0;
  *bytes = f->server_end > f->acked && f->acked ? (long long)(f->server_end - f->acked) : 0;
}

static void feed_close(struct bf_feed *f_) {
  struct pg_feed *f = (struct pg_feed *)f_;
  if (!f) return;
  struct bf_error ignored = {0};
  if (f->conn && f->acked > f->reported && PQstatus(f->conn) == CONNECTION_OK)
    send_status(f, false, &ignored); /* a clean stop confirms what was done */
  if (f->copybuf) PQfreemem(f->copybuf);
  PQfinish(f->conn);
  PQfinish(f->sql);
  for (size_t i = 0; i < f->n_tables; i++) free(f->tables[i].name);
  free(f->tables);
  bf_pgo_decoder_release(&f->dec);
  free(f->keys);
  free(f->xids);
  bf_buf_release(&f->key_bytes);
  free(f->what);
  free(f->dsn);
  free(f->slot);
  free(f->publication);
  free(f);
}

static const struct bf_feed_ops pg_feed_ops = {feed_next, feed_ack, feed_lag, feed_close};

/* Connects and checks; the caller closes f on failure. */
static int feed_connect(const struct bf_warehouse_config *wh, const struct bf_feed_spec *spec,
                        struct pg_feed **out, struct bf_error *err) {
  struct pg_feed *f = bf_xcalloc(1, sizeof *f);
  *out = f;
  f->base.ops = &pg_feed_ops;
  f->what = bf_xasprintf("warehouse '%s'", wh->name);
  const char *dsn = bf_node_get_str(wh->params, "dsn");
  f->dsn = bf_xstrdup(dsn ? dsn : "");
  f->slot = object_name(spec->sync);
  f->publication = object_name(spec->sync);
  bf_pgo_decoder_init(&f->dec);
  f->sql = bf_pg_connect(wh->params, f->what, BF_E_WAREHOUSE, err);
  if (!f->sql) return err->code;
  /* Settings first: without them the replication connection is refused
   * with a message that does not say what to change. */
  int rc = check_settings(f, err);
  if (rc == 0) rc = resolve_tables(f, spec, err);
  if (rc) return rc;
  f->conn = bf_pg_connect_replication(wh->params, f->what, BF_E_WAREHOUSE, err);
  return f->conn ? 0 : err->code;
}

static int pg_feed_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                        const struct bf_feed_spec *spec, struct bf_feed **out,
                        struct bf_error *err) {
  struct pg_feed *f = NULL;
  bool created = false;
  int rc = feed_connect(wh, spec, &f, err);
  if (rc == 0) rc = ensure_objects(f, &created, err);
  if (rc == 0) {
    char *lsn = NULL;
    const char *sn[] = {f->slot};
    rc = query_value(f,
                     "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE "
                     "slot_name = $1",
                     1, sn, &lsn, err);
    if (rc == 0 && lsn) bf_pgo_parse_lsn(lsn, &f->acked);
    free(lsn);
  }
  if (rc == 0) rc = start_streaming(f, err);
  if (rc) {
    feed_close(&f->base);
    return rc;
  }
  f->base.created = created;
  f->last_status_ms = now_ms();
  *out = &f->base;
  return 0;
}

static int pg_feed_setup(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                         const struct bf_feed_spec *spec, struct bf_error *err) {
  struct pg_feed *f = NULL;
  bool created;
  int rc = feed_connect(wh, spec, &f, err);
  if (rc == 0) rc = ensure_objects(f, &created, err);
  feed_close(&f->base);
  return rc;
}

static int pg_feed_teardown(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                            const struct bf_feed_spec *spec, struct bf_error *err) {
  struct pg_feed *f = bf_xcalloc(1, sizeof *f);
  f->what = bf_xasprintf("warehouse '%s'", wh->name);
  const char *dsn = bf_node_get_str(wh->params, "dsn");
  f->dsn = bf_xstrdup(dsn ? dsn : "");
  f->slot = object_name(spec->sync);
  f->publication = object_name(spec->sync);
  bf_pgo_decoder_init(&f->dec);
  f->sql = bf_pg_connect(wh->params, f->what, BF_E_WAREHOUSE, err);
  int rc = f->sql ? 0 : err->code;
  if (rc == 0) {
    const char *sn[] = {f->slot};
    PGresult *res = PQexecParams(f->sql,
                                 "SELECT pg_drop_replication_slot(slot_name) FROM "
                                 "pg_replication_slots WHERE slot_name = $1",
                                 1, NULL, sn, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
      rc = fail(f, f->sql, res, "dropping the replication slot (stop the live sync first)", err);
    PQclear(res);
  }
  if (rc == 0) {
    char *pub = PQescapeIdentifier(f->sql, f->publication, strlen(f->publication));
    char *sql = bf_xasprintf("DROP PUBLICATION IF EXISTS %s", pub);
    PQfreemem(pub);
    PGresult *res = PQexec(f->sql, sql);
    free(sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
      rc = fail(f, f->sql, res, "dropping the publication", err);
    PQclear(res);
  }
  feed_close(&f->base);
  return rc;
}

const struct bf_feed_type bf_feed_postgres = {pg_feed_open, pg_feed_setup, pg_feed_teardown};

/* SQLite change feed (design.md §8). SQLite has no change stream, so
 * `backflow live setup SYNC` installs, in the warehouse file:
 *   "_backflow_changes_<sync>"  (seq INTEGER PRIMARY KEY AUTOINCREMENT, key,
 *                                changed_ms)    one row per changed key
 *   "_backflow_<sync>_<table>_ins|upd|del"      AFTER triggers that insert
 *                                               NEW.key / OLD.key
 * The feed notices commits of other connections through PRAGMA
 * data_version (it changes only when another connection committed), reads
 * the rows after the last one it returned, and deletes them once acked: the
 * capture table is the feed's whole memory, so a restart loses nothing.
 * AUTOINCREMENT keeps seq growing even after the table is emptied. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "util/jsonw.h"
#include "util/clock.h"
#include "sources/source.h"

#define MAX_BATCH_KEYS 10000
#define POLL_MS        2
#define TRIM_EVERY_MS  1000

struct sqlite_feed {
  struct bf_feed base;
  sqlite3 *db;
  char *path, *what;
  sqlite3_stmt *version, *read, *trim, *pending;
  long long last_version;
  long long last_seq; /* highest seq handed out */
  long long acked, trimmed, last_trim_ms;
  bool first, more; /* first call reads at once; more: the last read was full */
  struct bf_value *keys;
  size_t cap_keys;
  struct bf_buf bytes;
};

/* "name" with "" doubled, appended to b. */
static void quoted(struct bf_buf *b, const char *name) {
  bf_buf_putc(b, '"');
  for (const char *c = name; *c; c++) {
    if (*c == '"') bf_buf_putc(b, '"');
    bf_buf_putc(b, *c);
  }
  bf_buf_putc(b, '"');
}

static void capture_table(struct bf_buf *b, const char *sync) {
  char *name = bf_xasprintf("_backflow_changes_%s", sync);
  quoted(b, name);
  free(name);
}

static void trigger_name(struct bf_buf *b, const char *sync, const char *table, const char *op) {
  char *name = bf_xasprintf("_backflow_%s_%s_%s", sync, table, op);
  quoted(b, name);
  free(name);
}

static int open_db(const struct bf_warehouse_config *wh, const struct bf_config *cfg, sqlite3 **db,
                   char **path, struct bf_error *err) {
  const char *p = bf_node_get_str(wh->params, "path");
  if (!p)
    return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: warehouse '%s' (sqlite) needs 'path'",
                        wh->loc.file, wh->loc.line, wh->loc.col, wh->name);
  *path = bf_config_path(cfg, p);
  /* Read-write, but never created: a missing file is a configuration error. */
  int rc = sqlite3_open_v2(*path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s': cannot open %s for live capture: %s",
                 wh->name, *path, *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
    sqlite3_close(*db);
    *db = NULL;
    return BF_E_WAREHOUSE;
  }
  sqlite3_busy_timeout(*db, 10000);
  return 0;
}

static int exec(sqlite3 *db, const char *sql, const char *wh, const char *path, const char *doing,
                struct bf_error *err) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
  int rc = bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s' (%s): %s: %s", wh, path, doing,
                        msg ? msg : sqlite3_errmsg(db));
  sqlite3_free(msg);
  return rc;
}

static const char *const trigger_ops[] = {"ins", "upd", "del"};
static const char *const trigger_events[] = {"INSERT", "UPDATE", "DELETE"};

static int sql_fail(sqlite3 *db, const char *wh, const char *path, const char *doing,
                    struct bf_error *err) {
  return bf_error_set(err, BF_E_WAREHOUSE, "warehouse '%s' (%s): %s: %s", wh, path, doing,
                      sqlite3_errmsg(db));
}

/* Checks that t names a base table of the file with column t->key: a
 * trigger cannot follow a view, and a key column that is not there would
 * only fail at the application's next write. */
static int check_table(sqlite3 *db, const char *wh, const char *path, const char *sync,
                       const struct bf_live_table *t, struct bf_error *err) {
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_prepare_v2(db,
                         "SELECT type FROM sqlite_master WHERE type IN ('table', 'view') AND "
                         "name = ?1 COLLATE NOCASE",
                         -1, &st, NULL) != SQLITE_OK)
    return sql_fail(db, wh, path, "reading the schema", err);
  sqlite3_bind_text(st, 1, t->table, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  if (step == SQLITE_DONE)
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: sync '%s': live table '%s' is not in %s; set 'table' to a table "
                      "of that file",
                      t->loc.file, t->loc.line, t->loc.col, sync, t->table, path);
  else if (step != SQLITE_ROW)
    rc = sql_fail(db, wh, path, "reading the schema", err);
  else if (strcmp((const char *)sqlite3_column_text(st, 0), "view") == 0)
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: sync '%s': live table '%s' is a view; set 'table' to a table it "
                      "reads (triggers cannot follow a view)",
                      t->loc.file, t->loc.line, t->loc.col, sync, t->table);
  sqlite3_finalize(st);
  if (rc) return rc;

  if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1)", -1, &st, NULL) != SQLITE_OK)
    return sql_fail(db, wh, path, "reading the columns", err);
  sqlite3_bind_text(st, 1, t->table, -1, SQLITE_STATIC);
  struct bf_buf columns = {0}; /* for the message */
  bool found = false;
  int n = 0;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    if (sqlite3_stricmp(name, t->key) == 0) found = true; /* SQLite names ignore case */
    if (n++ < 20) bf_buf_printf(&columns, "%s%s", n > 1 ? ", " : "", name);
  }
  if (step != SQLITE_DONE)
    rc = sql_fail(db, wh, path, "reading the columns", err);
  else if (!found)
    rc = bf_error_set(err, BF_E_CONFIG,
                      "%s:%d:%d: sync '%s': live table '%s' has no column '%s'; set 'key' to its "
                      "column holding the model's primary key (it has %s%s)",
                      t->loc.file, t->loc.line, t->loc.col, sync, t->table, t->key,
                      bf_buf_cstr(&columns), n > 20 ? ", ..." : "");
  sqlite3_finalize(st);
  bf_buf_release(&columns);
  return rc;
}

enum trigger_owner { TRIGGER_NONE, TRIGGER_OURS, TRIGGER_OTHER };

/* Who owns the trigger called name: ours writes into the sync's capture
 * table. Another one can share the name, as "<sync>_<table>" runs sync and
 * table together (sync a_b on table c, sync a on table b_c). */
static int trigger_owner(sqlite3 *db, const char *sync, const char *name, enum trigger_owner *out) {
  struct bf_buf ref = {0};
  capture_table(&ref, sync);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT instr(sql, ?2) > 0 FROM sqlite_master WHERE type = 'trigger' "
                              "AND name = ?1 COLLATE NOCASE",
                              -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, bf_buf_cstr(&ref), -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? (sqlite3_column_int(st, 0) ? TRIGGER_OURS : TRIGGER_OTHER)
                            : TRIGGER_NONE;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  sqlite3_finalize(st);
  bf_buf_release(&ref);
  return rc;
}

/* Appends a DROP for every trigger that writes into the sync's capture
 * table, the configured tables' and those of tables since taken out of
 * `live`: dropping the table under one would make every write to its table
 * fail ("no such table"), in the application, not in Backflow. */
static int drop_our_triggers(sqlite3 *db, const char *sync, struct bf_buf *q) {
  struct bf_buf ref = {0};
  capture_table(&ref, sync);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(
      db, "SELECT name FROM sqlite_master WHERE type = 'trigger' AND instr(sql, ?1) > 0", -1, &st,
      NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, bf_buf_cstr(&ref), -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      bf_buf_puts(q, "DROP TRIGGER IF EXISTS ");
      quoted(q, (const char *)sqlite3_column_text(st, 0));
      bf_buf_puts(q, ";\n");
    }
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  sqlite3_finalize(st);
  bf_buf_release(&ref);
  return rc;
}

/* Appends the three triggers of t. */
static void create_triggers(struct bf_buf *q, const char *sync, const struct bf_live_table *t) {
  static const char now_ms[] = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
  for (int k = 0; k < 3; k++) {
    bf_buf_puts(q, "CREATE TRIGGER ");
    trigger_name(q, sync, t->table, trigger_ops[k]);
    bf_buf_printf(q, " AFTER %s ON ", trigger_events[k]);
    quoted(q, t->table);
    bf_buf_puts(q, " BEGIN INSERT INTO ");
    capture_table(q, sync);
    bf_buf_printf(q, " (key, changed_ms) SELECT %s", k == 2 ? "OLD." : "NEW.");
    quoted(q, t->key);
    bf_buf_printf(q, ", %s", now_ms);
    if (k == 1) { /* the key itself changed: the row under the old key is gone */
      bf_buf_puts(q, " UNION ALL SELECT OLD.");
      quoted(q, t->key);
      bf_buf_printf(q, ", %s WHERE OLD.", now_ms);
      quoted(q, t->key);
      bf_buf_puts(q, " IS NOT NEW.");
      quoted(q, t->key);
    }
    bf_buf_puts(q, "; END;\n");
  }
}

/* Ends the transaction open on db, if any, without its changes. */
static void rollback(sqlite3 *db) {
  if (db && !sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static int sqlite_feed_setup(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                             const struct bf_feed_spec *spec, struct bf_error *err) {
  sqlite3 *db = NULL;
  char *path = NULL;
  struct bf_buf q = {0};
  int rc = open_db(wh, cfg, &db, &path, err);
  /* The checks run inside the transaction, so the schema cannot change
   * between them and the triggers built on them. */
  if (rc == 0) rc = exec(db, "BEGIN IMMEDIATE", wh->name, path, "installing live capture", err);
  for (size_t i = 0; rc == 0 && i < spec->n_tables; i++)
    rc = check_table(db, wh->name, path, spec->sync, &spec->tables[i], err);
  for (size_t i = 0; rc == 0 && i < spec->n_tables; i++) {
    const struct bf_live_table *t = &spec->tables[i];
    for (int k = 0; rc == 0 && k < 3; k++) {
      char *name = bf_xasprintf("_backflow_%s_%s_%s", spec->sync, t->table, trigger_ops[k]);
      enum trigger_owner owner;
      if (trigger_owner(db, spec->sync, name, &owner) != SQLITE_OK)
        rc = sql_fail(db, wh->name, path, "reading the schema", err);
      else if (owner == TRIGGER_OTHER)
        rc = bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: sync '%s': %s already has a trigger named '%s' that is not "
                          "this sync's (another sync's name and table run together the same "
                          "way?); rename the sync",
                          t->loc.file, t->loc.line, t->loc.col, spec->sync, path, name);
      free(name);
    }
  }
  if (rc == 0) {
    /* key has no declared type on purpose: "ANY" outside a STRICT table
     * means NUMERIC affinity, which would store the text key '007' as 7. */
    bf_buf_puts(&q, "CREATE TABLE IF NOT EXISTS ");
    capture_table(&q, spec->sync);
    bf_buf_puts(&q,
                " (seq INTEGER PRIMARY KEY AUTOINCREMENT, key, changed_ms INTEGER NOT NULL);\n");
    /* Drop and create rather than IF NOT EXISTS: a setup after the key or
     * the tables changed must replace the triggers, not keep the old ones. */
    if (drop_our_triggers(db, spec->sync, &q) != SQLITE_OK)
      rc = sql_fail(db, wh->name, path, "reading the schema", err);
    for (size_t i = 0; rc == 0 && i < spec->n_tables; i++)
      create_triggers(&q, spec->sync, &spec->tables[i]);
    if (rc == 0) bf_buf_puts(&q, "COMMIT;");
  }
  if (rc == 0) rc = exec(db, bf_buf_cstr(&q), wh->name, path, "installing live capture", err);
  rollback(db);
  bf_buf_release(&q);
  sqlite3_close(db);
  free(path);
  return rc;
}

static int sqlite_feed_teardown(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                                const struct bf_feed_spec *spec, struct bf_error *err) {
  sqlite3 *db = NULL;
  char *path = NULL;
  struct bf_buf q = {0};
  int rc = open_db(wh, cfg, &db, &path, err);
  if (rc == 0) rc = exec(db, "BEGIN IMMEDIATE", wh->name, path, "removing live capture", err);
  if (rc == 0 && drop_our_triggers(db, spec->sync, &q) != SQLITE_OK)
    rc = sql_fail(db, wh->name, path, "reading the schema", err);
  if (rc == 0) {
    bf_buf_puts(&q, "DROP TABLE IF EXISTS ");
    capture_table(&q, spec->sync);
    bf_buf_puts(&q, ";\nCOMMIT;");
    rc = exec(db, bf_buf_cstr(&q), wh->name, path, "removing live capture", err);
  }
  rollback(db);
  bf_buf_release(&q);
  sqlite3_close(db);
  free(path);
  return rc;
}

static int fail(struct sqlite_feed *f, const char *doing, struct bf_error *err) {
  return bf_error_set(err, BF_E_WAREHOUSE, "%s (%s): live feed: %s: %s", f->what, f->path, doing,
                      sqlite3_errmsg(f->db));
}

static int data_version(struct sqlite_feed *f, long long *out, struct bf_error *err) {
  sqlite3_reset(f->version);
  if (sqlite3_step(f->version) != SQLITE_ROW) return fail(f, "reading data_version", err);
  *out = sqlite3_column_int64(f->version, 0);
  sqlite3_reset(f->version);
  return 0;
}

static void sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int feed_next(struct bf_feed *f_, long long wait_ms, struct bf_change_batch *out,
                     struct bf_error *err) {
  struct sqlite_feed *f = (struct sqlite_feed *)f_;
  memset(out, 0, sizeof *out);
  out->position = (uint64_t)f->last_seq;
  int rc;
  if (!f->first && !f->more) {
    long long deadline = bf_now_ms() + wait_ms, v = f->last_version;
    while (v == f->last_version) {
      if ((rc = data_version(f, &v, err))) return rc;
      if (v != f->last_version || bf_now_ms() >= deadline) break;
      sleep_ms(POLL_MS);
    }
    if (v == f->last_version) return 0;
    f->last_version = v;
  }
  f->first = false;
  bf_buf_reset(&f->bytes);
  size_t n = 0, rows = 0;
  sqlite3_reset(f->read);
  sqlite3_bind_int64(f->read, 1, f->last_seq);
  sqlite3_bind_int(f->read, 2, MAX_BATCH_KEYS);
  while ((rc = sqlite3_step(f->read)) == SQLITE_ROW) {
    rows++;
    f->last_seq = sqlite3_column_int64(f->read, 0);
    long long ms = sqlite3_column_int64(f->read, 2);
    if (ms > out->commit_ms) out->commit_ms = ms;
    sqlite3_value *v = sqlite3_column_value(f->read, 1);
    int type = sqlite3_value_type(v);
    if (type == SQLITE_NULL) continue; /* a NULL key names no row of the model */
    if (n == f->cap_keys) {
      f->cap_keys = f->cap_keys ? f->cap_keys * 2 : 256;
      f->keys = bf_xrealloc(f->keys, f->cap_keys * sizeof *f->keys);
    }
    struct bf_value *k = &f->keys[n++];
    memset(k, 0, sizeof *k);
    switch (type) {
    case SQLITE_INTEGER:
      k->type = BF_INT;
      k->u.i = sqlite3_value_int64(v);
      break;
    case SQLITE_FLOAT:
      k->type = BF_FLOAT;
      k->u.f = sqlite3_value_double(v);
      break;
    default: {
      bool text = type == SQLITE_TEXT;
      const void *p = text ? (const void *)sqlite3_value_text(v) : sqlite3_value_blob(v);
      k->type = text ? BF_TEXT : BF_BLOB;
      k->len = (uint32_t)sqlite3_value_bytes(v);
      k->u.off = f->bytes.len;
      if (k->len) bf_buf_append(&f->bytes, p, k->len); /* an empty blob's p is NULL */
    }
    }
  }
  if (rc != SQLITE_DONE) return fail(f, "reading captured changes", err);
  sqlite3_reset(f->read);
  for (size_t i = 0; i < n; i++)
    if (f->keys[i].type == BF_TEXT || f->keys[i].type == BF_BLOB)
      f->keys[i].u.s = f->keys[i].len ? f->bytes.data + f->keys[i].u.off : "";
  /* A full read means more may be waiting: the next call reads at once. */
  f->more = rows >= MAX_BATCH_KEYS;
  out->keys = f->keys;
  out->n = n;
  out->position = (uint64_t)f->last_seq;
  return 0;
}

/* Deletes the acked rows. A write to the warehouse contends with the
 * application's own writers, so it is done at most every TRIM_EVERY_MS (a
 * crash in between replays a few acked changes: at least once). */
static int trim(struct sqlite_feed *f, struct bf_error *err) {
  if (f->acked <= f->trimmed) return 0;
  sqlite3_reset(f->trim);
  sqlite3_bind_int64(f->trim, 1, f->acked);
  int rc = sqlite3_step(f->trim);
  sqlite3_reset(f->trim);
  if (rc != SQLITE_DONE) return fail(f, "trimming captured changes", err);
  f->trimmed = f->acked;
  f->last_trim_ms = bf_now_ms();
  return 0;
}

static int feed_ack(struct bf_feed *f_, uint64_t position, struct bf_error *err) {
  struct sqlite_feed *f = (struct sqlite_feed *)f_;
  if ((long long)position > f->acked) f->acked = (long long)position;
  if (bf_now_ms() - f->last_trim_ms < TRIM_EVERY_MS && f->acked - f->trimmed < MAX_BATCH_KEYS)
    return 0;
  return trim(f, err);
}

static void feed_lag(struct bf_feed *f_, double *seconds, long long *rows) {
  struct sqlite_feed *f = (struct sqlite_feed *)f_;
  *seconds = 0;
  *rows = 0;
  sqlite3_reset(f->pending);
  sqlite3_bind_int64(f->pending, 1, f->acked);
  if (sqlite3_step(f->pending) == SQLITE_ROW) {
    *rows = sqlite3_column_int64(f->pending, 0);
    if (*rows > 0 && sqlite3_column_type(f->pending, 1) != SQLITE_NULL) {
      long long oldest = sqlite3_column_int64(f->pending, 1);
      *seconds = (double)(bf_now_ms() - oldest) / 1000.0;
      if (*seconds < 0) *seconds = 0;
    }
  }
  sqlite3_reset(f->pending);
}

static void feed_close(struct bf_feed *f_) {
  struct sqlite_feed *f = (struct sqlite_feed *)f_;
  if (!f) return;
  struct bf_error ignored = {0};
  if (f->trim) trim(f, &ignored); /* what is left is replayed: harmless */
  sqlite3_finalize(f->version);
  sqlite3_finalize(f->read);
  sqlite3_finalize(f->trim);
  sqlite3_finalize(f->pending);
  sqlite3_close(f->db);
  free(f->keys);
  bf_buf_release(&f->bytes);
  free(f->path);
  free(f->what);
  free(f);
}

static const struct bf_feed_ops sqlite_feed_ops = {feed_next, feed_ack, feed_lag, feed_close};

static int prepare(struct sqlite_feed *f, sqlite3_stmt **st, const char *head, const char *sync,
                   const char *tail, struct bf_error *err) {
  struct bf_buf q = {0};
  bf_buf_puts(&q, head);
  capture_table(&q, sync);
  bf_buf_puts(&q, tail);
  int rc = sqlite3_prepare_v2(f->db, bf_buf_cstr(&q), -1, st, NULL);
  bf_buf_release(&q);
  return rc == SQLITE_OK ? 0 : BF_E_WAREHOUSE;
}

/* Whether the capture table of sync and the triggers of every live table
 * are there: one trigger missing means changes go unseen. */
static int installed(struct sqlite_feed *f, const struct bf_feed_spec *spec, bool *out,
                     struct bf_error *err) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(f->db,
                         "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE "
                         "NOCASE",
                         -1, &st, NULL) != SQLITE_OK)
    return fail(f, "reading the schema", err);
  char *table = bf_xasprintf("_backflow_changes_%s", spec->sync);
  sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  free(table);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(f, "reading the schema", err);
  *out = rc == SQLITE_ROW;
  for (size_t i = 0; *out && i < spec->n_tables; i++)
    for (int k = 0; *out && k < 3; k++) {
      char *name =
          bf_xasprintf("_backflow_%s_%s_%s", spec->sync, spec->tables[i].table, trigger_ops[k]);
      enum trigger_owner owner;
      rc = trigger_owner(f->db, spec->sync, name, &owner);
      free(name);
      if (rc != SQLITE_OK) return fail(f, "reading the schema", err);
      *out = owner == TRIGGER_OURS;
    }
  return 0;
}

static int sqlite_feed_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                            const struct bf_feed_spec *spec, struct bf_feed **out,
                            struct bf_error *err) {
  struct sqlite_feed *f = bf_xcalloc(1, sizeof *f);
  f->base.ops = &sqlite_feed_ops;
  f->what = bf_xasprintf("warehouse '%s'", wh->name);
  f->first = true;
  bool ok = false;
  int rc = open_db(wh, cfg, &f->db, &f->path, err);
  if (rc == 0) rc = installed(f, spec, &ok, err);
  if (rc == 0 && !ok)
    rc = bf_error_set(err, BF_E_CONFIG,
                      "sync '%s': live capture is not installed in %s (or the model's live tables "
                      "changed); run `backflow live setup %s`",
                      spec->sync, f->path, spec->sync);
  if (rc == 0 &&
      ((rc = prepare(f, &f->read, "SELECT seq, key, changed_ms FROM ", spec->sync,
                     " WHERE seq > ?1 ORDER BY seq LIMIT ?2", err)) ||
       (rc = prepare(f, &f->trim, "DELETE FROM ", spec->sync, " WHERE seq <= ?1", err)) ||
       (rc = prepare(f, &f->pending, "SELECT count(*), min(changed_ms) FROM ", spec->sync,
                     " WHERE seq > ?1", err)) ||
       sqlite3_prepare_v2(f->db, "PRAGMA data_version", -1, &f->version, NULL) != SQLITE_OK))
    rc = fail(f, "preparing the capture queries", err);
  if (rc == 0) rc = data_version(f, &f->last_version, err);
  if (rc) {
    feed_close(&f->base);
    return rc;
  }
  *out = &f->base;
  return 0;
}

const struct bf_feed_type bf_feed_sqlite = {sqlite_feed_open, sqlite_feed_setup,
                                            sqlite_feed_teardown};

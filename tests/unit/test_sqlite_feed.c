/* Tests for the SQLite change feed (src/sources/sqlite_feed.c) and keyed
 * lookups (query_keys in src/sources/sqlite.c), on a real file in a
 * temporary folder with a config parsed from YAML. The application's writes
 * come from a second connection, as they would from another process: the
 * feed notices them through PRAGMA data_version, which ignores its own. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "util/jsonw.h"
#include "engine/runlog.h"
#include "sources/source.h"

#define CAPTURE "_backflow_changes_u"

/* Two live tables: users keyed by its integer id, things by an untyped
 * column k that holds keys of every type. */
#define LIVE_USERS  "      - {table: users, key: id}\n"
#define LIVE_THINGS "      - {table: things, key: k}\n"

static char dir[64];
static char db_path[128];
static struct bf_config *cfg;
static sqlite3 *app; /* the application's connection */
static struct bf_feed_spec spec;

static void app_exec(const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(app, sql, NULL, NULL, &msg);
  cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "");
}

static long long app_count(const char *sql) {
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_prepare_v2(app, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
               sqlite3_errmsg(app));
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  long long n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

/* Parses a project whose model `users` has the given live list and sync
 * `sync`; cfg->dir is the temporary folder. */
static void load_config(const char *sync, const char *live) {
  bf_config_free(cfg);
  char *yaml = bf_xasprintf("version: 1\n"
                            "warehouses:\n"
                            "  local: {type: sqlite, path: warehouse.db}\n"
                            "models:\n"
                            "  users:\n"
                            "    warehouse: local\n"
                            "    sql: SELECT id, email FROM users\n"
                            "    primary_key: id\n"
                            "    live:\n"
                            "%s"
                            "destinations:\n"
                            "  out: {type: file, path: out.jsonl}\n"
                            "syncs:\n"
                            "  %s:\n"
                            "    model: users\n"
                            "    destination: out\n"
                            "    match: {user_id: id}\n"
                            "    schedule: live\n",
                            live, sync);
  struct bf_error err = {0};
  cfg = NULL;
  int rc = bf_config_parse("t.yml", yaml, strlen(yaml), dir, &cfg, &err);
  free(yaml);
  cr_assert_eq(rc, 0, "config: %s", err.msg);
  spec = (struct bf_feed_spec){
      .sync = cfg->syncs[0].name, .tables = cfg->models[0].live, .n_tables = cfg->models[0].n_live};
}

static void fixture_init(void) {
  strcpy(dir, "/tmp/bf_sqlite_feed_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(db_path, sizeof db_path, "%s/warehouse.db", dir);
  cr_assert_eq(sqlite3_open(db_path, &app), SQLITE_OK);
  sqlite3_busy_timeout(app, 10000);
  app_exec("PRAGMA journal_mode = WAL;"
           "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);"
           "CREATE TABLE things (k, v);"
           "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL);");
  load_config("u", LIVE_USERS LIVE_THINGS);
}

static void fixture_fini(void) {
  sqlite3_close(app);
  app = NULL;
  bf_config_free(cfg);
  cfg = NULL;
  char *cmd = bf_xasprintf("rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  free(cmd);
}

TestSuite(sqlite_feed, .init = fixture_init, .fini = fixture_fini, .timeout = 60);

static const struct bf_warehouse_config *wh(void) { return &cfg->warehouses[0]; }

static void setup_ok(void) {
  struct bf_error err = {0};
  int rc = bf_feed_setup(wh(), cfg, &spec, &err);
  cr_assert_eq(rc, 0, "setup: %s", err.msg);
}

static struct bf_feed *open_ok(void) {
  struct bf_error err = {0};
  struct bf_feed *f = NULL;
  int rc = bf_feed_open(wh(), cfg, &spec, &f, &err);
  cr_assert_eq(rc, 0, "open: %s", err.msg);
  cr_assert_not(f->created);
  return f;
}

/* A copy of the keys the feed returned, which outlives the next call. */
struct key {
  enum bf_type type;
  long long i;
  double f;
  char s[32];
  size_t len;
};
struct keys {
  struct key *k;
  size_t n, cap;
  uint64_t position;
  long long commit_ms;
  int batches;
};

static void keys_add(struct keys *ks, const struct bf_change_batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    if (ks->n == ks->cap) {
      ks->cap = ks->cap ? ks->cap * 2 : 64;
      ks->k = bf_xrealloc(ks->k, ks->cap * sizeof *ks->k);
    }
    struct key *k = &ks->k[ks->n++];
    memset(k, 0, sizeof *k);
    k->type = b->keys[i].type;
    if (k->type == BF_INT) k->i = b->keys[i].u.i;
    if (k->type == BF_FLOAT) k->f = b->keys[i].u.f;
    if (k->type == BF_TEXT || k->type == BF_BLOB) {
      cr_assert_lt(b->keys[i].len, sizeof k->s);
      cr_assert_not_null(b->keys[i].u.s);
      memcpy(k->s, b->keys[i].u.s, b->keys[i].len);
      k->len = b->keys[i].len;
    }
  }
  cr_assert_geq(b->position, ks->position, "position went back");
  ks->position = b->position;
  if (b->commit_ms > ks->commit_ms) ks->commit_ms = b->commit_ms;
  if (b->n) ks->batches++;
}

/* Reads the feed until at least want keys came (waiting on the condition,
 * with a generous deadline rather than a fixed sleep). */
static void read_until(struct bf_feed *f, size_t want, struct keys *ks) {
  long long deadline = bf_now_ms() + 20000;
  while (ks->n < want) {
    cr_assert_lt(bf_now_ms(), deadline, "only %zu of %zu keys arrived", ks->n, want);
    struct bf_change_batch b;
    struct bf_error err = {0};
    int rc = f->ops->next(f, 200, &b, &err);
    cr_assert_eq(rc, 0, "next: %s", err.msg);
    cr_assert_not(b.resync);
    keys_add(ks, &b);
  }
}

static void assert_int_key(const struct keys *ks, size_t i, long long v) {
  cr_assert_lt(i, ks->n);
  cr_assert_eq(ks->k[i].type, BF_INT, "key %zu has type %d, expected an integer", i, ks->k[i].type);
  cr_assert_eq(ks->k[i].i, v, "key %zu is %lld, expected %lld", i, ks->k[i].i, v);
}

static bool has_object(const char *name) {
  char *sql = bf_xasprintf("SELECT count(*) FROM sqlite_master WHERE name = '%s'", name);
  bool found = app_count(sql) > 0;
  free(sql);
  return found;
}

static long long pending_rows(void) { return app_count("SELECT count(*) FROM " CAPTURE); }

Test(sqlite_feed, setup_twice_installs_one_table_and_three_triggers_per_table) {
  setup_ok();
  app_exec("INSERT INTO users VALUES (1, 'a@x')");
  setup_ok(); /* idempotent: the captured change stays, triggers are not doubled */
  cr_assert(has_object(CAPTURE));
  const char *triggers[] = {"_backflow_u_users_ins",  "_backflow_u_users_upd",
                            "_backflow_u_users_del",  "_backflow_u_things_ins",
                            "_backflow_u_things_upd", "_backflow_u_things_del"};
  for (size_t i = 0; i < sizeof triggers / sizeof *triggers; i++)
    cr_assert(has_object(triggers[i]), "no trigger %s", triggers[i]);
  cr_assert_eq(app_count("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 6);
  app_exec("INSERT INTO users VALUES (2, 'b@x')");
  cr_assert_eq(pending_rows(), 2, "each change captured once");
}

Test(sqlite_feed, follows_inserts_updates_and_deletes_in_order_with_their_types) {
  setup_ok();
  struct bf_feed *f = open_ok();
  struct keys ks = {0};
  read_until(f, 0, &ks);
  long long before = bf_now_ms();
  app_exec("INSERT INTO users VALUES (7, 'a@x')");
  app_exec("UPDATE users SET email = 'b@x' WHERE id = 7");
  app_exec("DELETE FROM users WHERE id = 7");
  app_exec("BEGIN; INSERT INTO things VALUES ('abc', 1); INSERT INTO things VALUES (2.5, 2);"
           "INSERT INTO things VALUES (x'00ff', 3); INSERT INTO things VALUES (NULL, 4);"
           "INSERT INTO things VALUES ('', 5); INSERT INTO things VALUES ('007', 6); COMMIT");
  read_until(f, 8, &ks);
  long long after = bf_now_ms();
  cr_assert_eq(ks.n, 8, "%zu keys (a NULL key is skipped)", ks.n);
  assert_int_key(&ks, 0, 7);
  assert_int_key(&ks, 1, 7);
  assert_int_key(&ks, 2, 7);
  cr_assert_eq(ks.k[3].type, BF_TEXT);
  cr_assert_eq(ks.k[3].len, 3);
  cr_assert_eq(memcmp(ks.k[3].s, "abc", 3), 0);
  cr_assert_eq(ks.k[4].type, BF_FLOAT);
  cr_assert_float_eq(ks.k[4].f, 2.5, 1e-12);
  cr_assert_eq(ks.k[5].type, BF_BLOB);
  cr_assert_eq(ks.k[5].len, 2);
  cr_assert_eq(memcmp(ks.k[5].s, "\x00\xff", 2), 0);
  cr_assert_eq(ks.k[6].type, BF_TEXT, "an empty text key stays text");
  cr_assert_eq(ks.k[6].len, 0);
  cr_assert_eq(ks.k[7].type, BF_TEXT, "'007' is not turned into the number 7");
  cr_assert_eq(memcmp(ks.k[7].s, "007", 3), 0);
  /* 9 capture rows, the NULL key's included: position covers them all. */
  cr_assert_eq(ks.position, (uint64_t)app_count("SELECT max(seq) FROM " CAPTURE));
  cr_assert_geq(ks.commit_ms, before - 1000, "commit_ms %lld, before %lld", ks.commit_ms, before);
  cr_assert_leq(ks.commit_ms, after + 1000, "commit_ms %lld, after %lld", ks.commit_ms, after);
  free(ks.k);
  bf_feed_close(f);
}

Test(sqlite_feed, an_update_of_the_key_yields_the_new_and_the_old_key) {
  app_exec("INSERT INTO users VALUES (1, 'a@x')");
  setup_ok();
  struct bf_feed *f = open_ok();
  struct keys ks = {0};
  app_exec("UPDATE users SET id = 5 WHERE id = 1");
  read_until(f, 2, &ks);
  cr_assert_eq(ks.n, 2);
  assert_int_key(&ks, 0, 5);
  assert_int_key(&ks, 1, 1);
  app_exec("UPDATE users SET email = NULL WHERE id = 5"); /* key unchanged: once */
  read_until(f, 3, &ks);
  struct bf_change_batch b;
  struct bf_error err = {0};
  cr_assert_eq(f->ops->next(f, 20, &b, &err), 0, "%s", err.msg);
  cr_assert_eq(ks.n + b.n, 3);
  assert_int_key(&ks, 2, 5);
  free(ks.k);
  bf_feed_close(f);
}

Test(sqlite_feed, a_burst_arrives_in_several_batches_without_waiting_between_them) {
  setup_ok();
  struct bf_feed *f = open_ok();
  struct keys ks = {0};
  read_until(f, 0, &ks);
  app_exec("BEGIN");
  sqlite3_stmt *ins = NULL;
  cr_assert_eq(sqlite3_prepare_v2(app, "INSERT INTO users (id) VALUES (?1)", -1, &ins, NULL),
               SQLITE_OK);
  for (int i = 1; i <= 25000; i++) {
    sqlite3_bind_int(ins, 1, i);
    cr_assert_eq(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  app_exec("COMMIT");
  /* One commit, hence one change of data_version: the batches after a full
   * one must come without it, or the second call would time out empty. */
  size_t sizes[3];
  for (int i = 0; i < 3; i++) {
    struct bf_change_batch b;
    struct bf_error err = {0};
    cr_assert_eq(f->ops->next(f, 5000, &b, &err), 0, "%s", err.msg);
    sizes[i] = b.n;
    keys_add(&ks, &b);
  }
  cr_assert_eq(sizes[0], 10000);
  cr_assert_eq(sizes[1], 10000, "the batch after a full one came with %zu keys", sizes[1]);
  cr_assert_eq(sizes[2], 5000);
  for (size_t i = 0; i < ks.n; i++)
    if (ks.k[i].type != BF_INT || ks.k[i].i != (long long)i + 1)
      cr_assert_fail("key %zu is %lld, expected %zu", i, ks.k[i].i, i + 1);
  free(ks.k);
  bf_feed_close(f);
}

Test(sqlite_feed, ack_trims_what_was_consumed_and_lag_counts_the_rest) {
  setup_ok();
  struct bf_feed *f = open_ok();
  struct keys ks = {0};
  app_exec("INSERT INTO users VALUES (1, 'a'); INSERT INTO users VALUES (2, 'b');"
           "INSERT INTO users VALUES (3, 'c')");
  read_until(f, 3, &ks);
  double seconds = -1;
  long long rows = -1;
  f->ops->lag(f, &seconds, &rows);
  cr_assert_eq(rows, 3);
  cr_assert_geq(seconds, 0);
  app_exec("INSERT INTO users VALUES (4, 'd'); INSERT INTO users VALUES (5, 'e')"); /* unread */
  struct bf_error err = {0};
  cr_assert_eq(f->ops->ack(f, ks.position, &err), 0, "%s", err.msg);
  cr_assert_eq(pending_rows(), 2, "the 3 acked rows are trimmed, the 2 unread kept");
  f->ops->lag(f, &seconds, &rows);
  cr_assert_eq(rows, 2);
  read_until(f, 5, &ks);
  cr_assert_eq(f->ops->ack(f, ks.position, &err), 0, "%s", err.msg);
  f->ops->lag(f, &seconds, &rows);
  cr_assert_eq(rows, 0);
  cr_assert_eq(seconds, 0);
  bf_feed_close(f); /* a trim the ack put off happens at close */
  cr_assert_eq(pending_rows(), 0);
  free(ks.k);
}

Test(sqlite_feed, changes_made_while_no_feed_is_open_come_with_the_next_open) {
  setup_ok();
  app_exec("INSERT INTO users VALUES (1, 'a'); INSERT INTO users VALUES (2, 'b')");
  struct bf_feed *f = open_ok();
  struct bf_change_batch b;
  struct bf_error err = {0};
  /* The first call reads at once: no commit will announce these. */
  cr_assert_eq(f->ops->next(f, 0, &b, &err), 0, "%s", err.msg);
  cr_assert_eq(b.n, 2);
  cr_assert_eq(b.keys[0].u.i, 1);
  cr_assert_eq(b.keys[1].u.i, 2);
  bf_feed_close(f); /* not acked: delivered again */
  app_exec("DELETE FROM users WHERE id = 1");
  f = open_ok();
  struct keys ks = {0};
  read_until(f, 3, &ks);
  assert_int_key(&ks, 0, 1);
  assert_int_key(&ks, 1, 2);
  assert_int_key(&ks, 2, 1);
  cr_assert_eq(f->ops->ack(f, ks.position, &err), 0, "%s", err.msg);
  bf_feed_close(f);
  f = open_ok();
  cr_assert_eq(f->ops->next(f, 0, &b, &err), 0, "%s", err.msg);
  cr_assert_eq(b.n, 0, "acked changes are not delivered again");
  bf_feed_close(f);
  free(ks.k);
}

Test(sqlite_feed, next_returns_empty_when_nothing_changes) {
  setup_ok();
  struct bf_feed *f = open_ok();
  struct bf_change_batch b;
  struct bf_error err = {0};
  cr_assert_eq(f->ops->next(f, 50, &b, &err), 0, "%s", err.msg); /* the first read */
  cr_assert_eq(b.n, 0);
  long long start = bf_now_ms();
  cr_assert_eq(f->ops->next(f, 50, &b, &err), 0, "%s", err.msg);
  cr_assert_eq(b.n, 0);
  cr_assert_not(b.resync);
  cr_assert_lt(bf_now_ms() - start, 10000, "next() overslept its wait");
  /* A commit that changes nothing captured wakes the feed, and it still
   * returns nothing. */
  app_exec("INSERT INTO orders VALUES (1, 1, 9.5)");
  cr_assert_eq(f->ops->next(f, 50, &b, &err), 0, "%s", err.msg);
  cr_assert_eq(b.n, 0);
  bf_feed_close(f);
}

Test(sqlite_feed, teardown_removes_triggers_and_table_and_writes_still_work) {
  setup_ok();
  struct bf_error err = {0};
  cr_assert_eq(bf_feed_teardown(wh(), cfg, &spec, &err), 0, "%s", err.msg);
  cr_assert_eq(app_count("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_backflow%' "
                         "ESCAPE '\\'"),
               0);
  cr_assert_eq(bf_feed_teardown(wh(), cfg, &spec, &err), 0, "twice: %s", err.msg);
  app_exec("INSERT INTO users VALUES (1, 'a'); INSERT INTO things VALUES (1, 1)");
}

Test(sqlite_feed, a_table_taken_out_of_live_loses_its_triggers) {
  setup_ok();
  load_config("u", LIVE_USERS); /* things is no longer followed */
  setup_ok();
  cr_assert_not(has_object("_backflow_u_things_ins"), "stale trigger kept by setup");
  cr_assert(has_object("_backflow_u_users_ins"));
  load_config("u", LIVE_USERS LIVE_THINGS);
  setup_ok();
  load_config("u", LIVE_USERS);
  struct bf_error err = {0};
  cr_assert_eq(bf_feed_teardown(wh(), cfg, &spec, &err), 0, "%s", err.msg);
  /* A trigger left on things would now write into a dropped table. */
  app_exec("INSERT INTO things VALUES (1, 1)");
  cr_assert_eq(app_count("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 0);
}

Test(sqlite_feed, open_without_setup_says_to_run_live_setup) {
  struct bf_error err = {0};
  struct bf_feed *f = NULL;
  int rc = bf_feed_open(wh(), cfg, &spec, &f, &err);
  cr_assert_eq(rc, BF_E_CONFIG, "%d: %s", rc, err.msg);
  cr_assert_null(f);
  cr_assert_not_null(strstr(err.msg, "run `backflow live setup u`"), "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, db_path), "%s", err.msg);
  /* One trigger dropped by hand is as bad as none. */
  setup_ok();
  app_exec("DROP TRIGGER \"_backflow_u_things_del\"");
  rc = bf_feed_open(wh(), cfg, &spec, &f, &err);
  cr_assert_eq(rc, BF_E_CONFIG, "%d: %s", rc, err.msg);
  cr_assert_not_null(strstr(err.msg, "backflow live setup u"), "%s", err.msg);
}

Test(sqlite_feed, setup_on_a_missing_table_or_column_names_the_live_entry) {
  load_config("u", LIVE_USERS "      - {table: carts, key: id}\n");
  struct bf_error err = {0};
  int rc = bf_feed_setup(wh(), cfg, &spec, &err);
  cr_assert_eq(rc, BF_E_CONFIG, "%d: %s", rc, err.msg);
  char loc[64];
  snprintf(loc, sizeof loc, "t.yml:%d:%d: ", spec.tables[1].loc.line, spec.tables[1].loc.col);
  cr_assert_eq(spec.tables[1].loc.line, 11);
  cr_assert_eq(strncmp(err.msg, loc, strlen(loc)), 0, "'%s' does not start with %s", err.msg, loc);
  cr_assert_not_null(strstr(err.msg, "'carts' is not in"), "%s", err.msg);
  cr_assert_not(has_object(CAPTURE), "nothing is installed when a check fails");

  load_config("u", "      - {table: users, key: user_id}\n");
  rc = bf_feed_setup(wh(), cfg, &spec, &err);
  cr_assert_eq(rc, BF_E_CONFIG, "%d: %s", rc, err.msg);
  cr_assert_eq(strncmp(err.msg, "t.yml:10:", 9), 0, "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, "no column 'user_id'"), "%s", err.msg);
  cr_assert_not_null(strstr(err.msg, "id, email"), "lists the columns: %s", err.msg);

  app_exec("CREATE VIEW vip AS SELECT * FROM users");
  load_config("u", "      - {table: vip, key: id}\n");
  rc = bf_feed_setup(wh(), cfg, &spec, &err);
  cr_assert_eq(rc, BF_E_CONFIG, "%d: %s", rc, err.msg);
  cr_assert_not_null(strstr(err.msg, "is a view"), "%s", err.msg);

  load_config("u", "      - {table: USERS, key: ID}\n"); /* SQLite names ignore case */
  setup_ok();
}

Test(sqlite_feed, names_that_run_together_do_not_take_another_syncs_triggers) {
  app_exec("CREATE TABLE b_c (id INTEGER PRIMARY KEY); CREATE TABLE c (id INTEGER PRIMARY KEY)");
  load_config("a", "      - {table: b_c, key: id}\n"); /* _backflow_a_b_c_ins */
  setup_ok();
  load_config("a_b", "      - {table: c, key: id}\n"); /* _backflow_a_b_c_ins too */
  struct bf_error err = {0};
  int rc = bf_feed_setup(wh(), cfg, &spec, &err);
  cr_assert_eq(rc, BF_E_CONFIG, "%d: %s", rc, err.msg);
  cr_assert_not_null(strstr(err.msg, "rename the sync"), "%s", err.msg);
  cr_assert_eq(bf_feed_teardown(wh(), cfg, &spec, &err), 0, "%s", err.msg);
  cr_assert(has_object("_backflow_a_b_c_ins"), "teardown of a_b dropped sync a's trigger");
  struct bf_feed *f = NULL;
  cr_assert_eq(bf_feed_open(wh(), cfg, &spec, &f, &err), BF_E_CONFIG, "%s", err.msg);
}

/* ---- query_keys ---- */

static struct bf_source *src;

/* Runs query_keys and returns the rows as "v1|v2\n" lines (NULL as ~). */
static char *lookup(const char *sql, const char *key_column, const struct bf_value *keys, size_t n,
                    const bool *wanted) {
  struct bf_error err = {0};
  if (!src) cr_assert_eq(bf_source_open(wh(), cfg, &src, &err), 0, "%s", err.msg);
  struct bf_cursor *cur = NULL;
  int rc = bf_source_query_keys(src, sql, key_column, keys, n, &cur, &err);
  cr_assert_eq(rc, 0, "%s: %s", sql, err.msg);
  cur->wanted = wanted;
  struct bf_rowbuf rb;
  bf_rowbuf_init(&rb, cur->ncols, 2); /* small chunks: several next_chunk calls */
  struct bf_buf out = {0};
  int got;
  do {
    bf_rowbuf_clear(&rb);
    got = cur->ops->next_chunk(cur, &rb, &err);
    cr_assert_geq(got, 0, "%s", err.msg);
    for (size_t r = 0; r < rb.nrows; r++) {
      const struct bf_value *row = bf_rowbuf_row(&rb, r);
      for (size_t c = 0; c < rb.ncols; c++) {
        if (c) bf_buf_putc(&out, '|');
        const struct bf_value *v = &row[c];
        if (v->type == BF_INT) bf_buf_printf(&out, "%lld", (long long)v->u.i);
        if (v->type == BF_FLOAT) bf_buf_printf(&out, "%g", v->u.f);
        if (v->type == BF_TEXT) bf_buf_printf(&out, "%.*s", (int)v->len, v->u.s);
        if (v->type == BF_NULL) bf_buf_putc(&out, '~');
      }
      bf_buf_putc(&out, '\n');
    }
  } while (got > 0);
  bf_rowbuf_release(&rb);
  bf_cursor_free(cur);
  char *s = bf_xstrdup(bf_buf_cstr(&out));
  bf_buf_release(&out);
  return s;
}

#define assert_lookup(sql, key_column, keys, wanted, expected)                                     \
  do {                                                                                             \
    char *got_ = lookup(sql, key_column, keys, sizeof keys / sizeof *keys, wanted);                \
    cr_assert_str_eq(got_, expected, "%s", sql);                                                   \
    free(got_);                                                                                    \
  } while (0)

static void users_and_orders(void) {
  app_exec("INSERT INTO users VALUES (1, 'a@x'), (2, 'b@x'), (3, 'o''brien@x'), (4, 'd@x');"
           "INSERT INTO orders VALUES (10, 1, 5.5), (11, 2, 7), (12, 2, 1), (13, 4, 2)");
}

static struct bf_value int_key(long long i) { return (struct bf_value){.type = BF_INT, .u.i = i}; }
static struct bf_value text_key(const char *s) {
  return (struct bf_value){.type = BF_TEXT, .len = (uint32_t)strlen(s), .u.s = s};
}

Test(sqlite_feed, query_keys_returns_the_rows_of_integer_keys) {
  users_and_orders();
  struct bf_value keys[] = {int_key(3), int_key(1), int_key(99)};
  assert_lookup("SELECT id, email FROM users;\n", "id", keys, NULL, "1|a@x\n3|o'brien@x\n");
  /* A trailing comment, and the key column spelled in another case. */
  assert_lookup("SELECT id, email FROM users -- all of them", "ID", keys, NULL,
                "1|a@x\n3|o'brien@x\n");
  bf_source_close(src);
}

Test(sqlite_feed, query_keys_returns_the_rows_of_text_keys_bound_not_spliced) {
  users_and_orders();
  struct bf_value keys[] = {text_key("o'brien@x"), text_key("b@x")};
  assert_lookup("SELECT email, id FROM users", "email", keys, NULL, "b@x|2\no'brien@x|3\n");
  struct bf_value hostile[] = {text_key("x') OR 1=1 --"), text_key("' OR '1'='1"),
                               text_key("1) OR 1=1 --")};
  assert_lookup("SELECT email, id FROM users", "email", hostile, NULL, "");
  assert_lookup("SELECT id, email FROM users", "id", hostile, NULL, "");
  bf_source_close(src);
}

Test(sqlite_feed, query_keys_on_a_join_and_on_an_expression_key) {
  users_and_orders();
  struct bf_value ids[] = {int_key(2), int_key(4)};
  assert_lookup("SELECT u.id, u.email, sum(o.total) AS spent FROM users u JOIN orders o ON "
                "o.user_id = u.id GROUP BY u.id",
                "id", ids, NULL, "2|b@x|8\n4|d@x|2\n");
  /* An expression has no affinity: keys match only with their own type,
   * which is why each key is bound as what it is. */
  struct bf_value uids[] = {text_key("u-3"), text_key("u-1")};
  assert_lookup("SELECT 'u-' || id AS uid, email FROM users", "uid", uids, NULL,
                "u-1|a@x\nu-3|o'brien@x\n");
  struct bf_value tens[] = {int_key(20), int_key(40)};
  assert_lookup("SELECT id * 10 AS k, email FROM users", "k", tens, NULL, "20|b@x\n40|d@x\n");
  bf_source_close(src);
}

Test(sqlite_feed, query_keys_keeps_its_parameters_when_only_some_columns_are_wanted) {
  users_and_orders();
  struct bf_value keys[] = {int_key(2)};
  /* Projection pushdown must not drop the WHERE ... IN of the bound keys. */
  static const bool wanted[] = {true, false};
  assert_lookup("SELECT id, email FROM users", "id", keys, wanted, "2|~\n");
  bf_source_close(src);
}

Test(sqlite_feed, query_keys_takes_many_keys_at_once) {
  users_and_orders();
  struct bf_value keys[2000];
  for (size_t i = 0; i < 2000; i++) keys[i] = int_key(i % 2 ? (long long)i + 100 : 4);
  assert_lookup("SELECT id FROM users", "id", keys, NULL, "4\n");
  bf_source_close(src);
}

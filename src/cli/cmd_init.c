/* backflow init [DIR]: an example project on the embedded SQLite warehouse. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli/cli.h"

static const char example_config[] =
    "# Backflow project: see the README's configuration reference.\n"
    "version: 1\n"
    "state_dir: .backflow          # diff state: keyed hashes only, no personal data\n"
    "warehouses:\n"
    "  local: {type: sqlite, path: warehouse.db}\n"
    "models:\n"
    "  customers:\n"
    "    warehouse: local\n"
    "    sql: SELECT id, email, first_name, last_name, country, plan, ltv FROM users\n"
    "    primary_key: id\n"
    "    pii: {email: email, first_name: name, last_name: name}\n"
    "destinations:\n"
    "  out: {type: file, path: out/customers.jsonl}\n"
    "syncs:\n"
    "  customers_to_file:\n"
    "    model: customers\n"
    "    destination: out\n"
    "    mode: mirror               # upsert + delete rows that leave the model\n"
    "    match: {customer_id: id}\n"
    "    fields: {email: email, first_name: first_name, country: country, plan: plan, "
    "lifetime_value: ltv}\n"
    "    constants: {source: backflow}\n"
    "    pii_policy: {first_name: allow, email: allow}\n";

static const char *const first_names[] = {
    "Ada",   "Grace", "Alan",   "Edsger",  "Barbara", "Ken",    "Dennis",  "Margaret",
    "Linus", "Radia", "Donald", "Frances", "John",    "Leslie", "Niklaus", "Sophie"};
static const char *const last_names[] = {
    "Lovelace", "Hopper",  "Turing", "Dijkstra", "Liskov",   "Thompson", "Ritchie", "Hamilton",
    "Torvalds", "Perlman", "Knuth",  "Allen",    "McCarthy", "Lamport",  "Wirth",   "Wilson"};
static const char *const countries[] = {"US", "GB", "DE", "FR", "NL", "SE", "JP", "BR", "IN", "CA"};
static const char *const plans[] = {"free", "starter", "pro", "enterprise"};

static uint64_t next_random(uint64_t *s) { /* splitmix64: reproducible example data */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static int create_warehouse(const char *path, long rows, struct bf_error *err) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int rc = 0;
  if (sqlite3_open(path, &db) != SQLITE_OK) goto fail;
  if (sqlite3_exec(
          db,
          "PRAGMA journal_mode=WAL;"
          "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, last_name TEXT,"
          " country TEXT, plan TEXT, ltv REAL, updated_at TEXT);"
          "BEGIN;",
          NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, datetime('now'))", -1,
                         &st, NULL) != SQLITE_OK)
    goto fail;
  uint64_t seed = 42;
  for (long id = 1; id <= rows; id++) {
    const char *first = first_names[next_random(&seed) % 16];
    const char *last = last_names[next_random(&seed) % 16];
    char email[128];
    snprintf(email, sizeof email, "%s.%s.%ld@example.com", first, last, id);
    for (char *c = email; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, email, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, first, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, last, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, countries[next_random(&seed) % 10], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, plans[next_random(&seed) % 4], -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 7, (double)(next_random(&seed) % 500000) / 100.0);
    if (sqlite3_step(st) != SQLITE_DONE) goto fail;
    sqlite3_reset(st);
  }
  if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto fail;
  goto out;
fail:
  rc = bf_error_set(err, BF_E_IO, "%s: cannot create the example warehouse: %s", path,
                    db ? sqlite3_errmsg(db) : "out of memory");
out:
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rc;
}

int bf_cmd_init(struct bf_cli *cli, struct bf_error *err) {
  long long rows = 5000;
  if (bf_cli_int_option(cli, "--rows", 1, 100000000, &rows, err) ||
      bf_cli_no_more_options(cli, NULL, err))
    return 2;
  if (cli->argc > 1) return bf_error_set(err, BF_E_USAGE, "init takes at most one folder"), 2;
  const char *dir = cli->argc ? cli->argv[0] : ".";
  if (mkdir(dir, 0755) < 0 && errno != EEXIST)
    return bf_error_set(err, BF_E_IO, "%s: cannot create: %s", dir, strerror(errno)), 2;
  char *config = bf_xasprintf("%s/backflow.yml", dir);
  char *warehouse = bf_xasprintf("%s/warehouse.db", dir);
  int status = 0;
  if (access(config, F_OK) == 0 || access(warehouse, F_OK) == 0) {
    bf_error_set(err, BF_E_USAGE, "%s already holds a project; choose an empty folder", dir);
    status = 2;
    goto out;
  }
  FILE *f = fopen(config, "w");
  if (!f || fputs(example_config, f) < 0 || fclose(f) != 0) {
    bf_error_set(err, BF_E_IO, "%s: cannot write: %s", config, strerror(errno));
    status = 2;
    goto out;
  }
  if (create_warehouse(warehouse, rows, err)) {
    status = 2;
    goto out;
  }
  printf("created %s and %s (%lld customers)\n", config, warehouse, rows);
  printf("next: backflow -p %s plan customers_to_file && backflow -p %s run customers_to_file\n",
         dir, dir);
out:
  free(config);
  free(warehouse);
  return status;
}

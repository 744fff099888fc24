/* Benchmark warehouse generator.
 *
 *   gen_warehouse DB --rows N        (re)creates DB with users(...) holding N customers
 *   gen_warehouse DB --change EVERY  changes every EVERY-th row (id % EVERY = 0): ltv and
 * updated_at
 *
 * The rows are reproducible (splitmix64 from a fixed seed) and a little more varied than the
 * demo's, so that row widths look like a real customer table (~100 bytes of text per row).
 * Filled in one transaction with one prepared statement, journal_mode=OFF, synchronous=OFF.
 * Progress goes to stderr; a one-line summary to stdout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

static const char *const first_names[] = {
    "Ada",   "Grace",     "Alan",   "Edsger",  "Barbara", "Ken",    "Dennis",  "Margaret",
    "Linus", "Radia",     "Donald", "Frances", "John",    "Leslie", "Niklaus", "Sophie",
    "Tim",   "Guido",     "Bjarne", "Anita",   "Jean",    "Shafi",  "Silvio",  "Adele",
    "Hedy",  "Katherine", "Mary",   "Dorothy", "Claude",  "Vint",   "Robert",  "Whitfield"};
static const char *const last_names[] = {
    "Lovelace",   "Hopper",   "Turing",   "Dijkstra", "Liskov",     "Thompson", "Ritchie",
    "Hamilton",   "Torvalds", "Perlman",  "Knuth",    "Allen",      "McCarthy", "Lamport",
    "Wirth",      "Wilson",   "Berners",  "Rossum",   "Stroustrup", "Borg",     "Bartik",
    "Goldwasser", "Micali",   "Goldberg", "Lamarr",   "Johnson",    "Keller",   "Vaughan",
    "Shannon",    "Cerf",     "Kahn",     "Diffie"};
static const char *const domains[] = {"example.com", "example.org", "mail.example.net",
                                      "corp.example.io"};
static const char *const countries[] = {"US", "GB", "DE", "FR", "NL", "SE", "JP", "BR",
                                        "IN", "CA", "ES", "IT", "AU", "MX", "PL", "KR"};
static const char *const plans[] = {"free", "starter", "pro", "enterprise"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t next_random(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lower(char *s) {
  for (; *s; s++)
    if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

/* An ISO-8601 UTC timestamp some time in 2023-2024, from seconds since 2023-01-01. */
static void timestamp(char *out, size_t cap, uint64_t secs) {
  time_t t = (time_t)(1672531200 + secs % (2 * 365 * 86400));
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int fail(sqlite3 *db, const char *what) {
  fprintf(stderr, "gen_warehouse: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
  sqlite3_close(db);
  return 1;
}

static int generate(const char *path, long long rows) {
  char side[4096];
  unlink(path);
  snprintf(side, sizeof side, "%s-journal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);

  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  if (sqlite3_open(path, &db) != SQLITE_OK) return fail(db, path);
  if (sqlite3_exec(
          db,
          "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;"
          "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, last_name TEXT,"
          " country TEXT, plan TEXT, ltv REAL, updated_at TEXT);"
          "BEGIN;",
          NULL, NULL, NULL) != SQLITE_OK)
    return fail(db, "create table");
  if (sqlite3_prepare_v2(db, "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) !=
      SQLITE_OK)
    return fail(db, "prepare insert");

  uint64_t seed = 20240501;
  double start = now_s();
  long long step = rows / 10 > 0 ? rows / 10 : 1;
  for (long long id = 1; id <= rows; id++) {
    uint64_t r1 = next_random(&seed), r2 = next_random(&seed);
    const char *first = first_names[r1 % N_OF(first_names)];
    const char *last_name = last_names[(r1 >> 8) % N_OF(last_names)];
    char email[160], when[32];
    int elen = snprintf(email, sizeof email, "%s.%s.%lld@%s", first, last_name, id,
                        domains[(r1 >> 16) % N_OF(domains)]);
    lower(email);
    timestamp(when, sizeof when, r2 >> 20);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, email, elen, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, first, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, last_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, countries[(r1 >> 24) % N_OF(countries)], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, plans[(r1 >> 32) % N_OF(plans)], -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 7, (double)(r2 % 500000) / 100.0);
    sqlite3_bind_text(st, 8, when, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
      sqlite3_finalize(st);
      return fail(db, "insert");
    }
    sqlite3_reset(st);
    if (id % step == 0 || id == rows)
      fprintf(stderr, "gen_warehouse: %lld/%lld rows (%.0f%%, %.1fs)\n", id, rows,
              100.0 * (double)id / (double)rows, now_s() - start);
  }
  sqlite3_finalize(st);
  if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) return fail(db, "commit");
  sqlite3_close(db);
  printf("generated %lld rows into %s in %.2fs\n", rows, path, now_s() - start);
  return 0;
}

static int change(const char *path, long long every) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  if (sqlite3_open(path, &db) != SQLITE_OK) return fail(db, path);
  if (sqlite3_exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;", NULL, NULL, NULL) !=
      SQLITE_OK)
    return fail(db, "pragma");
  if (sqlite3_prepare_v2(
          db,
          "UPDATE users SET ltv = ltv + 1.0, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now')"
          " WHERE id % ? = 0",
          -1, &st, NULL) != SQLITE_OK)
    return fail(db, "prepare update");
  double start = now_s();
  sqlite3_bind_int64(st, 1, every);
  if (sqlite3_step(st) != SQLITE_DONE) {
    sqlite3_finalize(st);
    return fail(db, "update");
  }
  long long n = sqlite3_changes64(db);
  sqlite3_finalize(st);
  sqlite3_close(db);
  printf("changed %lld rows (id %% %lld = 0) in %.2fs\n", n, every, now_s() - start);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[2], "--rows") && atoll(argv[3]) > 0)
    return generate(argv[1], atoll(argv[3]));
  if (argc == 4 && !strcmp(argv[2], "--change") && atoll(argv[3]) > 0)
    return change(argv[1], atoll(argv[3]));
  fprintf(stderr, "usage: gen_warehouse DB --rows N | gen_warehouse DB --change EVERY\n");
  return 2;
}

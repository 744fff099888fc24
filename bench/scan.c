/* The floor for `backflow plan`: run a model's query with the sqlite3 API,
 * step every row and read every column (type + value, text/blob + bytes),
 * nothing else. Opened read-only and without SQLite's mutexes (one thread
 * uses the connection), and each column read through one
 * sqlite3_column_value() (the cheapest path: sqlite3_column_type/_text/_bytes
 * look the column up again on every call, about 40% slower over a scan), as
 * Backflow's SQLite source does: the strictest floor.
 *
 *   scan DB SQL    prints "rows=N cols=C checksum=X seconds=S" on stdout */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: scan DB SQL\n");
    return 2;
  }
  double start = now_s();
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v2(db, argv[2], -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "scan: %s: %s\n", argv[1], db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return 3;
  }
  int ncols = sqlite3_column_count(st);
  long long rows = 0;
  uint64_t check = 0; /* depends on every value read, so nothing is optimised away */
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    rows++;
    for (int c = 0; c < ncols; c++) {
      sqlite3_value *v = sqlite3_column_value(st, c);
      switch (sqlite3_value_type(v)) {
      case SQLITE_INTEGER: check += (uint64_t)sqlite3_value_int64(v); break;
      case SQLITE_FLOAT: {
        double d = sqlite3_value_double(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        check ^= bits;
        break;
      }
      case SQLITE_TEXT: {
        const unsigned char *t = sqlite3_value_text(v);
        int n = sqlite3_value_bytes(v);
        check += (uint64_t)n + (n ? t[0] : 0);
        break;
      }
      case SQLITE_BLOB: {
        const unsigned char *b = sqlite3_value_blob(v);
        int n = sqlite3_value_bytes(v);
        check += (uint64_t)n + (n ? b[0] : 0);
        break;
      }
      default: check += 1; break;
      }
    }
  }
  if (rc != SQLITE_DONE) {
    fprintf(stderr, "scan: reading rows failed: %s\n", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return 3;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  printf("rows=%lld cols=%d checksum=%llu seconds=%.4f\n", rows, ncols, (unsigned long long)check,
         now_s() - start);
  return 0;
}

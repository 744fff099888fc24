#include "core/vault.h"

#include <sys/stat.h>

#include <sqlite3.h>

struct bf_vault {
  sqlite3 *db;
  char *path;
  const struct bf_prf *prf;
  sqlite3_stmt *put, *get, *del;
};

static int vault_error(struct bf_vault *v, struct bf_error *err) {
  return bf_error_set(err, BF_E_STATE, "%s: %s", v->path, sqlite3_errmsg(v->db));
}

int bf_vault_open(const char *sync_dir, const struct bf_prf *prf, struct bf_vault **out,
                  struct bf_error *err) {
  struct bf_vault *v = bf_xcalloc(1, sizeof *v);
  v->path = bf_xasprintf("%s/vault.db", sync_dir);
  v->prf = prf;
  int rc = 0;
  if (sqlite3_open_v2(v->path, &v->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
      sqlite3_exec(v->db,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                   "CREATE TABLE IF NOT EXISTS ids (key BLOB PRIMARY KEY, sealed BLOB NOT NULL) WITHOUT ROWID;",
                   NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(v->db, "INSERT OR REPLACE INTO ids VALUES (?, ?)", -1, &v->put, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(v->db, "SELECT sealed FROM ids WHERE key = ?", -1, &v->get, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(v->db, "DELETE FROM ids WHERE key = ?", -1, &v->del, NULL) != SQLITE_OK) {
    rc = vault_error(v, err);
    bf_vault_close(v);
    return rc;
  }
  chmod(v->path, 0600);
  *out = v;
  return 0;
}

void bf_vault_close(struct bf_vault *v) {
  if (!v) return;
  sqlite3_finalize(v->put);
  sqlite3_finalize(v->get);
  sqlite3_finalize(v->del);
  sqlite3_close(v->db);
  free(v->path);
  free(v);
}

int bf_vault_begin(struct bf_vault *v, struct bf_error *err) {
  return sqlite3_exec(v->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : vault_error(v, err);
}

int bf_vault_commit(struct bf_vault *v, struct bf_error *err) {
  return sqlite3_exec(v->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : vault_error(v, err);
}

int bf_vault_put(struct bf_vault *v, const unsigned char key[16], const char *plain, size_t len,
                 struct bf_error *err) {
  size_t sealed_len;
  unsigned char *sealed = bf_prf_seal(v->prf, plain, len, &sealed_len);
  sqlite3_bind_blob(v->put, 1, key, 16, SQLITE_STATIC);
  sqlite3_bind_blob(v->put, 2, sealed, (int)sealed_len, SQLITE_STATIC);
  int rc = sqlite3_step(v->put) == SQLITE_DONE ? 0 : vault_error(v, err);
  sqlite3_reset(v->put);
  free(sealed);
  return rc;
}

int bf_vault_delete(struct bf_vault *v, const unsigned char key[16], struct bf_error *err) {
  sqlite3_bind_blob(v->del, 1, key, 16, SQLITE_STATIC);
  int rc = sqlite3_step(v->del) == SQLITE_DONE ? 0 : vault_error(v, err);
  sqlite3_reset(v->del);
  return rc;
}

char *bf_vault_get(struct bf_vault *v, const unsigned char key[16], size_t *len) {
  sqlite3_bind_blob(v->get, 1, key, 16, SQLITE_STATIC);
  char *out = NULL;
  if (sqlite3_step(v->get) == SQLITE_ROW)
    out = bf_prf_open(v->prf, sqlite3_column_blob(v->get, 0), (size_t)sqlite3_column_bytes(v->get, 0), len);
  sqlite3_reset(v->get);
  return out;
}

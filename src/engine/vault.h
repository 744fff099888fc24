/* The identifier vault: for destinations that can delete a record only by
 * its match values (webhook, file), a mirror sync keeps those values sealed
 * (XSalsa20-Poly1305 under a key derived from the project secret), indexed
 * by keyed hash, in <sync state>/vault.bin. Nothing else is kept. */
#ifndef BF_VAULT_H
#define BF_VAULT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"
#include "util/prf.h"

struct bf_vault;

/* Caller frees with bf_vault_close(). */
/* durable: every commit is fsynced (durability: power). */
int bf_vault_open(const char *sync_dir, const struct bf_prf *prf, bool durable,
                  struct bf_vault **out, struct bf_error *err);
void bf_vault_close(struct bf_vault *v);
/* Identifiers held in the vault at path, read without opening it for
 * writing (a run may hold it) and without the secret; -1 when it cannot be
 * read. */
long long bf_vault_live_entries(const char *path);
/* Checks sync_dir/vault.bin (key check, records written whole) without
 * changing it; a missing vault is fine. */
int bf_vault_check(const char *sync_dir, const struct bf_prf *prf, struct bf_error *err);

/* Stores (replaces) the identifier of key inside the current transaction. */
int bf_vault_begin(struct bf_vault *v, struct bf_error *err);
int bf_vault_put(struct bf_vault *v, const unsigned char key[16], const char *plain, size_t len,
                 struct bf_error *err);
int bf_vault_delete(struct bf_vault *v, const unsigned char key[16], struct bf_error *err);
int bf_vault_commit(struct bf_vault *v, struct bf_error *err);
/* The identifier of key (new NUL-terminated string the caller frees), or
 * NULL when absent or unreadable. */
char *bf_vault_get(struct bf_vault *v, const unsigned char key[16], size_t *len);

#endif

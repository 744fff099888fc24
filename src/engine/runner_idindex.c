/* The runner's side of the identifier index (idindex.h): which columns are
 * indexed, the pairs of every record sent, and the upgrade of a sync that
 * ran before the index existed (its unchanged records are indexed, and
 * their match values sealed, as the run reads them). */
#include <string.h>

#include "engine/idindex.h"
#include "engine/runner_internal.h"
#include "util/log.h"

/* Commit the upgrade's work every so many records: a stopped run keeps it. */
#define BACKFILL_COMMIT 4096

static int kind_of(const char *pii_kind) {
  if (!strcmp(pii_kind, "email")) return BF_FORGOTTEN_EMAIL;
  if (!strcmp(pii_kind, "phone")) return BF_FORGOTTEN_PHONE;
  return 0;
}

void bf_run_index_columns(struct run *r, char *const *columns, size_t ncols) {
  const struct bf_model_config *m = r->model;
  r->id_cols = bf_xcalloc(m->pii.n ? m->pii.n : 1, sizeof *r->id_cols);
  r->id_kinds = bf_xcalloc(m->pii.n ? m->pii.n : 1, sizeof *r->id_kinds);
  /* The cursor's names do not outlive a live session's setup: the
   * fingerprint of the indexed columns is taken now. */
  char **names = bf_xcalloc(m->pii.n ? m->pii.n : 1, sizeof *names);
  for (size_t i = 0; i < m->pii.n; i++) {
    int kind = kind_of(m->pii.items[i].value);
    if (!kind) continue;
    for (size_t c = 0; c < ncols; c++) {
      if (strcmp(columns[c], m->pii.items[i].key)) continue;
      names[r->n_id] = columns[c];
      r->id_kinds[r->n_id] = kind;
      r->id_cols[r->n_id++] = c;
      r->wanted[c] = true;
      break;
    }
  }
  r->id_columns_fp = bf_idindex_columns_fp(names, r->id_kinds, r->n_id);
  free(names);
}

int bf_run_index_open(struct run *r, struct bf_error *err) {
  if (!r->n_id) return 0;
  bool complete;
  int rc = bf_idindex_open(r->sync_dir, &r->prf, r->p->cfg->durability_power, r->id_columns_fp,
                           &complete, &r->idindex, err);
  r->id_backfill = rc == 0 && !complete;
  if (r->id_backfill)
    bf_log_info("[sync %s] indexing the identifiers of records sent before: this run reads "
                "every row's email and phone once (docs/privacy.md)",
                r->sync->name);
  return rc;
}

void bf_run_index_note(struct run *r, const unsigned char key[16], const struct bf_value *row) {
  if (!r->idindex) return;
  for (size_t i = 0; i < r->n_id; i++) {
    unsigned char ident[16];
    if (bf_forgotten_value_hash(&r->prf, r->id_kinds[i], &row[r->id_cols[i]], ident))
      bf_idindex_add(r->idindex, ident, key);
  }
}

int bf_run_index_commit(struct run *r, struct bf_error *err) {
  int rc = 0;
  if (r->vault && r->backfill_sealed) {
    rc = bf_vault_commit(r->vault, err);
    r->backfill_sealed = 0;
  }
  if (rc == 0 && r->idindex) rc = bf_idindex_commit(r->idindex, false, err);
  return rc;
}

int bf_run_vault(struct run *r, struct bf_error *err) {
  if (r->vault || !r->vault_on_demand) return 0;
  r->vault_on_demand = false;
  return bf_vault_open(r->sync_dir, &r->prf, r->p->cfg->durability_power, &r->vault, err);
}

int bf_run_index_backfill(struct run *r, const unsigned char key[16], const struct bf_value *row,
                          struct bf_error *err) {
  if (!r->id_backfill) return 0;
  int rc = bf_run_vault(r, err);
  if (rc) return rc;
  bf_run_index_note(r, key, row);
  if (r->vault) {
    /* A record sent before the upgrade: its match values are sealed now,
     * so that an erasure can name it after the row is gone. */
    if (r->backfill_sealed == 0 && bf_vault_begin(r->vault, err)) return err->code;
    bf_mapping_match_json(&r->map, row, &r->tmp);
    rc = bf_vault_put(r->vault, key, r->tmp.data, r->tmp.len, err);
    if (rc) return rc;
    r->backfill_sealed++;
  }
  if (r->backfill_sealed >= BACKFILL_COMMIT || bf_idindex_queued(r->idindex) >= BACKFILL_COMMIT)
    return bf_run_index_commit(r, err);
  return 0;
}

int bf_run_index_end(struct run *r, bool whole_model, struct bf_error *err) {
  if (!r->idindex) return 0;
  int rc = bf_run_index_commit(r, err);
  if (rc == 0 && whole_model && r->id_backfill) {
    rc = bf_idindex_commit(r->idindex, true, err);
    if (rc == 0) r->id_backfill = false;
  }
  return rc;
}

void bf_run_index_free(struct run *r) {
  bf_idindex_close(r->idindex);
  r->idindex = NULL;
  free(r->id_cols);
  free(r->id_kinds);
  r->id_cols = NULL;
  r->id_kinds = NULL;
  r->n_id = 0;
}

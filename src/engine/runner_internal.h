/* The runner's working set, shared by the batch run (runner.c) and the live
 * session (live_pass.c), which drive the same rows -> diff -> batch -> outcome
 * path. Internal to the engine. */
#ifndef BF_RUNNER_INTERNAL_H
#define BF_RUNNER_INTERNAL_H

#include "engine/forgotten.h"
#include "engine/idindex.h"
#include "spec/mapping.h"
#include "engine/outcomes.h"
#include "util/prf.h"
#include "engine/runner.h"
#include "engine/state.h"
#include "engine/vault.h"
#include "engine/wstate.h"
#include "destinations/destination.h"
#include "sources/source.h"

#define CHUNK_ROWS 2048

/* What can be computed from a row alone, before the state is consulted:
 * either thread computes it (bf_prefetch_set_prepare). */
enum { PREP_HAS_KEY = 1, PREP_ROW_OK = 2 };
struct chunk_prep {
  unsigned char key[CHUNK_ROWS][16]; /* keyed hash of the primary key */
  uint64_t fp[CHUNK_ROWS];           /* fingerprint of the mapped values */
  unsigned char status[CHUNK_ROWS];  /* PREP_* */
};

/* A batch being filled: values and strings are copied out of the row chunk
 * (which the reader thread reuses), offsets are turned into pointers just
 * before the push. */
struct pending_batch {
  struct bf_record *records;
  struct bf_value *values; /* nvals per record */
  size_t *match_off;       /* offset of each record's match JSON in arena */
  size_t n, cap, nvals;
  struct bf_buf arena;
};

struct run {
  struct bf_project *p;
  const struct bf_sync_config *sync;
  const struct bf_model_config *model;
  const struct bf_run_options *opts;
  struct bf_run_result *res;
  struct bf_state *state;
  struct bf_vault *vault;
  struct bf_forgotten_filter *forgotten; /* NULL unless someone was erased (backflow forget) */
  /* The identifier index (runner_idindex.c): NULL when the model declares
   * no email or phone column, or for a plan. */
  struct bf_idindex *idindex;
  size_t *id_cols, n_id;  /* the indexed columns of the rows */
  int *id_kinds;          /* BF_FORGOTTEN_EMAIL | BF_FORGOTTEN_PHONE */
  uint64_t id_columns_fp; /* bf_idindex_columns_fp of the indexed columns */
  bool id_backfill;       /* the index is not complete: unchanged records join it */
  size_t backfill_sealed; /* identifiers put in the vault, not yet committed */
  bool vault_on_demand;   /* the vault is opened by bf_run_vault when first needed */
  struct bf_runlog *log;
  struct bf_outcomes *outcomes; /* NULL without write-back */
  struct bf_destination *dest;
  struct bf_mapping map;
  struct bf_prf prf;
  size_t batch_size;
  unsigned record_retries;
  struct pending_batch batch;
  struct bf_buf jsonbuf, tmp;
  long long started_ms, last_progress_ms;
  long long sent;
  size_t sampled;
  bool *wanted;     /* columns the reader must fetch */
  bool resync_last; /* a full resync's last upsert batch is next */
  bool scanned;     /* every row of the model was read */
  /* Resources of bf_run_begin, released by bf_run_end. */
  bool keyed; /* a live session: no prefetching reader, the model cursor is freed */
  struct bf_source *src;
  struct bf_cursor *cur;
  struct bf_prefetch *pf;
  char *sync_dir;
  bool logged;              /* a run log row is open (res->run_id) */
  struct bf_wstate *wstate; /* `state: warehouse`: the state's store (r->state is scratch) */
};

/* Opens everything a run of r->opts needs (r->p, r->opts and r->res set by
 * the caller, the rest zero): sync, mapping, state (locked), run log row,
 * vault, destination; a batch run also starts the prefetching reader
 * (r->pf); a keyed session (r->keyed) frees the model cursor once the
 * mapping is built. On failure, call bf_run_end all the same. */
int bf_run_begin(struct run *r, const char *sync_name, struct bf_error *err);
/* Folds the state, finishes the run log row, releases everything begin
 * opened; rc is how the run went. Returns rc, or the fold/log failure. */
int bf_run_end(struct run *r, int rc, struct bf_error *err);

/* bf_prepare_fn: keyed hashes and fingerprints of a chunk's rows. */
void bf_run_prepare_chunk(struct bf_rowbuf *rb, void *ctx);
/* Diffs one row and adds it to the batch (sent when full). */
int bf_run_process_row(struct run *r, const struct bf_value *row, const unsigned char *key,
                       bool row_ok, uint64_t fp, struct bf_error *err);
/* At most every 250 ms (always when final): the counts so far into the run
 * log row, and a progress line on stderr with opts->progress
 * (run_progress.c). */
void bf_run_progress(struct run *r, bool final);
/* Sends what the batch holds. */
int bf_run_flush_batch(struct run *r, struct bf_error *err);
/* Deletes keys (mirror) at the destination, by the identifiers the vault kept. */
int bf_run_remove_keys(struct run *r, const unsigned char (*keys)[16], size_t n,
                       struct bf_error *err);
/* ---- the identifier index (runner_idindex.c) ---- */
/* Picks the model's email and phone columns among the cursor's and marks
 * them wanted (before the reader starts). */
void bf_run_index_columns(struct run *r, char *const *columns, size_t ncols);
/* Opens the index when there are such columns (sync_dir and prf set). */
int bf_run_index_open(struct run *r, struct bf_error *err);
/* Queues the pairs of a record about to be sent. */
void bf_run_index_note(struct run *r, const unsigned char key[16], const struct bf_value *row);
/* An unchanged record: joins the index (and the vault) while the index
 * is being completed. */
int bf_run_index_backfill(struct run *r, const unsigned char key[16], const struct bf_value *row,
                          struct bf_error *err);
/* Opens the vault of a sync that keeps identifiers for erasures only, the
 * first time the run has one to keep. */
int bf_run_vault(struct run *r, struct bf_error *err);
/* Makes what was queued durable (before a batch is sent). */
int bf_run_index_commit(struct run *r, struct bf_error *err);
/* Commits the rest; whole_model: every row was read, the index is complete. */
int bf_run_index_end(struct run *r, bool whole_model, struct bf_error *err);
void bf_run_index_free(struct run *r);
/* runner_scrub.c: reason with every value of recs[0..n_recs) replaced by
 * "[value]" (new string the caller frees). */
char *bf_run_scrub_reason(const struct run *r, const struct bf_record *recs, size_t n_recs,
                          const char *reason);

/* `state: warehouse` (wstate_run.c). begin: after the mapping is built,
 * replaces r->cur by the plan statement and opens r->wstate; open_state:
 * the scratch state in place of the sync's local one; scan and removals in
 * place of the local ones. */
int bf_wstate_run_begin(struct run *r, struct bf_error *err);
int bf_wstate_run_open_state(struct run *r, struct bf_error *err);
int bf_wstate_run_scan(struct run *r, struct bf_error *err);
int bf_wstate_run_removals(struct run *r, struct bf_error *err);

/* Run status from the counts and rc: succeeded | partial | failed | planned. */
const char *bf_run_status(const struct run *r, int rc);

#endif

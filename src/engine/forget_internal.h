/* Shared by the files of `backflow forget` (forget*.c): a batch of requests
 * (`forget --from`). Internal to the engine. */
#ifndef BF_FORGET_INTERNAL_H
#define BF_FORGET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "destinations/destination.h"
#include "engine/forget.h"
#include "engine/idindex.h"
#include "engine/state.h"
#include "engine/vault.h"
#include "sources/source.h"

/* A sync's state, vault and destination kept open from one request of a
 * batch to the next: each is opened (the state loaded, the vault indexed)
 * once per batch, not once per person; the sync's lock is held until the
 * batch ends, and the state is folded then. */
struct bf_forget_held {
  char *sync;
  struct bf_state *st;
  struct bf_vault *vault;
  struct bf_destination *dest;
  bool changed; /* journal records to fold */
  struct bf_idindex_snapshot *index; /* read on first use */
};

/* The rows of a model whose email or phone is one of the batch's people,
 * read in one pass over the model (instead of one query per person). */
struct bf_forget_rows {
  char *model;
  char **cols;
  size_t ncols;
  struct bf_rowbuf rb; /* grows: values are reallocated, bytes never move */
  bool loaded;
};

/* The batch's erasure lock (a descriptor, -1 until taken), held from its
 * first request to bf_forget_batch_free; NULL without a batch. */
int *bf_forget_batch_lock(struct bf_forget_batch *b);
/* True when the audit log is to be verified before a request: always
 * without a batch, once in a batch (the batch holds the erasure lock
 * throughout, so nothing else appends in between). */
bool bf_forget_batch_verify_audit(struct bf_forget_batch *b);
/* The batch's held syncs; NULL when b is NULL (no batch). Never fails. */
struct bf_forget_held *bf_forget_batch_held(struct bf_forget_batch *b, const char *sync);
/* The rows of model m that may belong to the batch's people (read on first
 * use; the caller still checks each row); *out is NULL when b is NULL or
 * holds no identifier. */
int bf_forget_batch_rows(struct bf_forget_batch *b, struct bf_project *p,
                         const struct bf_model_config *m, const struct bf_forget_rows **out,
                         struct bf_error *err);

#endif

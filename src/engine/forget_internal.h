/* Shared by the files of `backflow forget` (forget*.c): a batch of requests
 * (`forget --from`). Internal to the engine. */
#ifndef BF_FORGET_INTERNAL_H
#define BF_FORGET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "destinations/destination.h"
#include "engine/forget.h"
#include "engine/idindex.h"
#include "engine/state.h"
#include "engine/vault.h"
#include "sources/source.h"
#include "spec/mapping.h"

#define PENDING_MAGIC_V1     "BFERASE1"
#define PENDING_MAGIC        "BFERASE2"
#define SEND_ATTEMPTS        3
#define DEFAULT_LOCK_WAIT_MS 60000

enum phase { PH_LOOKUP, PH_DELETE, PH_DONE };

/* Who is erased. Plaintext: in memory, or sealed in the pending file while a
 * lookup is still to be done; never elsewhere. */
struct person {
  char *key_model, *key_value; /* BF_FORGET_KEY */
  char **emails;               /* normalised (bf_pii_meta_email) */
  size_t n_emails;
  char **phones; /* normalised (bf_pii_meta_phone) */
  size_t n_phones;
  char *typed;  /* the email or phone as typed (trimmed) */
  bool chained; /* KEY: the key's row was read for its emails and phones */
};

struct target {
  bool has_key;
  unsigned char key[16];
  char *match; /* the record's match JSON; NULL: to resolve from the vault */
  char *guess; /* KEY whose row is gone: the match JSON made from the key, if the vault has none */
};

struct item {
  char *sync_name;
  const struct bf_sync_config *sync; /* NULL when the sync left the configuration */
  int phase;
  struct target *t;
  size_t nt;
  long long found, deleted;
  const char *status;
  char *reason;
  int exit;     /* this invocation's verdict: 0, 1, 2, 3, 4 */
  bool fresh;   /* worked on in this invocation (gets an audit entry) */
  bool indexed; /* the sync's identifier index covers every record it sent */
};

struct request {
  uint64_t id;
  int kind;
  char hash[33];
  char *model;           /* KEY */
  struct person *person; /* NULL when loaded after its lookups were done */
  struct item *items;
  size_t n;
};

struct store {
  struct request **rq;
  size_t n;
};

/* ---- forget.c: memory and small helpers ---- */
void bf_forget_free_secret(char *s);
void bf_forget_person_free(struct person *ps);
void bf_forget_targets_free(struct item *it);
void bf_forget_request_free(struct request *rq);
void bf_forget_store_release(struct store *st);
bool bf_forget_add_unique(char ***list, size_t *n, const char *s);
void bf_forget_set_reason(struct item *it, const char *reason);
struct target *bf_forget_add_target(struct item *it, const unsigned char *key, char *match);
void bf_forget_iso_now(char out[32]);
void bf_forget_sleep_ms(long long ms);
const char *bf_forget_pii_kind(const struct bf_model_config *m, const char *column);
char *bf_forget_scrub(const struct request *rq, const struct item *it, const char *reason);

/* ---- forget_store.c ---- */
void bf_forget_audit_head(struct bf_buf *b, const struct request *rq, const char *event);
int bf_forget_audit_request(const struct bf_project *p, const struct request *rq,
                            struct bf_error *err);
int bf_forget_audit_item(const struct bf_project *p, const struct request *rq,
                         const struct item *it, bool retry, struct bf_error *err);
int bf_forget_store_save(const struct bf_project *p, struct store *st, struct bf_error *err);
int bf_forget_store_load(struct bf_project *p, struct store *st, struct bf_error *err);
bool bf_forget_request_has_lookups(const struct request *rq);

/* ---- forget_lookup.c ---- */
void bf_forget_item_pending(struct item *it, int exit, const char *reason);
void bf_forget_item_done(struct item *it, const char *status, int exit, const char *reason);
void bf_forget_lookup_item(struct bf_project *p, struct request *rq, struct item *it,
                           struct bf_forget_batch *batch);
int bf_forget_config_mapping(const struct bf_config *cfg, const struct bf_sync_config *s,
                             const struct bf_model_config *m, struct bf_mapping *map,
                             struct bf_error *err);

/* ---- forget_deliver.c ---- */
void bf_forget_deliver(struct bf_project *p, struct request *rq, struct item *it,
                       long long lock_wait, struct bf_forget_batch *batch);

/* ---- forget_lookup.c ---- */
int bf_forget_chain_lookup(struct bf_project *p, struct request *rq, struct bf_error *err);

/* ---- forget_batch.c ---- */

/* A sync's state, vault and destination kept open from one request of a
 * batch to the next: each is opened (the state loaded, the vault indexed)
 * once per batch, not once per person; the sync's lock is held until the
 * batch ends, and the state is folded then. */
struct bf_forget_held {
  char *sync;
  struct bf_state *st;
  struct bf_vault *vault;
  struct bf_destination *dest;
  bool changed;                      /* journal records to fold */
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

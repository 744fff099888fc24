/* Destinations. Each is a const table of operations (struct
 * bf_destination_type) plus a private context; the registry lists them all.
 * A push reports one outcome per record: ok, retry (429, 5xx, timeouts:
 * worth sending again), or reject (the destination refused it, with its
 * reason). Only ok records advance the sync's state. */
#ifndef BF_DESTINATION_H
#define BF_DESTINATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/config.h"
#include "spec/mapping.h"
#include "spec/params.h"

enum bf_op { BF_OP_UPSERT, BF_OP_UPDATE, BF_OP_INSERT, BF_OP_DELETE };
const char *bf_op_name(enum bf_op op);

enum bf_change { BF_CHANGE_ADD, BF_CHANGE_CHANGE, BF_CHANGE_REMOVE };

struct bf_record {
  enum bf_op op;
  enum bf_change change;
  unsigned char key[16];
  uint64_t fp;
  unsigned attempts;
  const char *match_json; /* {"user_id":7}; owned by the batch */
  size_t match_json_len;
  /* n_match + n_fields values as read (before PII policy); NULL for deletes.
   * Text points into the batch's arena. Constants come from the mapping. */
  const struct bf_value *values;
};

/* Every record of a batch must get an outcome. The zero value is UNSET, so
 * a destination that forgets one (outcomes are calloc'ed) never has it
 * counted as acknowledged: bf_outcomes_settle() turns it into a retry and
 * says so. */
enum bf_outcome_status { BF_OUT_UNSET = 0, BF_OUT_OK, BF_OUT_RETRY, BF_OUT_REJECT };
struct bf_outcome {
  enum bf_outcome_status status;
  char *reason; /* malloc'd or NULL; freed by the runner */
};

/* After a push or remove: each UNSET outcome becomes RETRY with a reason
 * naming the destination, and a warning is logged. Returns how many were
 * unset (a bug in that destination). */
size_t bf_outcomes_settle(const char *dest_name, struct bf_outcome *outcomes, size_t n);

/* Where a batch stands in a full resync of a mirror sync (the upserts of
 * `run --full-resync`: every row of the model is sent). */
enum bf_resync {
  BF_RESYNC_NONE = 0, /* a normal run, removals, or not a mirror sync */
  BF_RESYNC_BATCH,    /* one batch of the full resync's upserts */
  BF_RESYNC_LAST,     /* the last one (n may be 0): the model has been sent whole */
};

struct bf_batch {
  const char *sync_name;
  const char *object; /* sync's `object:`, may be NULL */
  const struct bf_mapping *mapping;
  size_t n;
  struct bf_record *records;
  /* Lets a destination that can replace a whole audience at once do so
   * (meta_audience: usersreplace) instead of adding to it; every
   * destination may ignore it. */
  enum bf_resync resync;
};

struct bf_destination;
struct bf_destination_type {
  const char *name;
  const struct bf_param_spec *params; /* config keys besides `type` */
  size_t max_batch;                   /* the API's hard limit */
  size_t default_batch;
  /* Deletes need the record's match values, which the state holds only
   * sealed (design.md §2); true makes mirror syncs keep them. */
  bool needs_identifier_for_delete;
  int (*open)(const struct bf_destination_config *dc, const struct bf_config *cfg,
              struct bf_destination **out, struct bf_error *err);
  /* Cheap authenticated call proving the destination is reachable. */
  int (*check)(struct bf_destination *d, struct bf_error *err);
  /* Sends batch (upserts/updates/inserts) and fills outcomes[batch->n].
   * Returns 0 when every record has an outcome, BF_E_DESTINATION when the
   * destination is unavailable after retries (the run stops; nothing lost).
   * Reasons set before a failure are freed by the runner either way. */
  int (*push)(struct bf_destination *d, const struct bf_batch *batch, struct bf_outcome *outcomes,
              struct bf_error *err);
  /* Same for deletes. */
  int (*remove)(struct bf_destination *d, const struct bf_batch *batch, struct bf_outcome *outcomes,
                struct bf_error *err);
  void (*close)(struct bf_destination *d);
  /* Optional (NULL: fields are free text): appends the fields a record of
   * object (NULL: the type's default) can set, as a JSON array of
   * {"name", "type"}, to out (the studio's mapping editor). */
  int (*list_fields)(struct bf_destination *d, const char *object, struct bf_buf *out,
                     struct bf_error *err);
};

struct bf_destination {
  const struct bf_destination_type *type;
  char *name;
};

/* Looks up dc->type (unknown -> "did you mean"), checks its params and opens
 * it. Caller closes with bf_destination_close(). */
int bf_destination_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                        struct bf_destination **out, struct bf_error *err);
void bf_destination_close(struct bf_destination *d);
const struct bf_destination_type *bf_destination_find(const char *name);
/* 0, or a configuration error at the sync's batch_size when it is above the
 * destination type's max_batch: a larger batch would be refused by the API,
 * and quietly sending smaller ones would hide the mistake (decisions.md). */
int bf_destination_check_batch_size(const struct bf_sync_config *s,
                                    const struct bf_destination_type *type, struct bf_error *err);
/* NULL-terminated list of every destination type. */
extern const struct bf_destination_type *const bf_destination_types[];

/* Writes one record as the webhook/file JSON object:
 * {"op":..,"sync":..,"key":{..},"fields":{..}} */
void bf_record_json(const struct bf_batch *batch, const struct bf_record *rec, struct bf_buf *out,
                    struct bf_buf *tmp);

/* Standard Webhooks signature "v1,<base64 HMAC-SHA256(key, id.ts.body)>". */
void bf_webhook_signature(const unsigned char *key, size_t key_len, const char *id, long long ts,
                          const char *body, size_t body_len, char *out, size_t cap);

/* The webhook receiver's answer to a 2xx POST of n records -> outcomes[n]:
 * every record ok unless content_type names JSON and body (body_len bytes,
 * need not be NUL-terminated) is {"results":[...]} with per-record statuses;
 * malformed JSON or a wrong count makes every record retry. Reasons are
 * malloc'd; the caller frees them. name and url_shown are for the warning. */
void bf_webhook_parse_results(const char *name, const char *url_shown, const char *content_type,
                              const char *body, size_t body_len, size_t n,
                              struct bf_outcome *outcomes);

extern const struct bf_destination_type bf_destination_file;
extern const struct bf_destination_type bf_destination_webhook;
extern const struct bf_destination_type bf_destination_postgres;
extern const struct bf_destination_type bf_destination_redis;
extern const struct bf_destination_type bf_destination_hubspot;
extern const struct bf_destination_type bf_destination_salesforce;
extern const struct bf_destination_type bf_destination_zendesk;
extern const struct bf_destination_type bf_destination_meta_audience;
extern const struct bf_destination_type bf_destination_google_customer_match;
extern const struct bf_destination_type bf_destination_mailchimp;
extern const struct bf_destination_type bf_destination_braze;
extern const struct bf_destination_type bf_destination_klaviyo;

#endif

/* Mapping: how a model row becomes a destination record (match, fields,
 * constants, PII policy), resolved once against the query's columns. */
#ifndef BF_MAPPING_H
#define BF_MAPPING_H

#include <stdbool.h>
#include <stdint.h>

#include "spec/config.h"
#include "util/jsonw.h"
#include "util/prf.h"
#include "util/value.h"

struct bf_mapping {
  size_t pk_col;
  size_t n_match, n_fields, n_constants;
  const char **match_names; /* borrowed from the config */
  size_t *match_cols;
  const char **match_pii_kinds; /* pii kind of a match column hashed by pii_policy, else NULL */
  const char **field_names;
  size_t *field_cols;
  enum bf_pii_action *field_actions; /* allow | hash (drop fields are left out) */
  const char **field_pii_kinds;      /* "email", ... or NULL */
  const char **constant_names;
  struct bf_value *constant_values; /* strings owned by the mapping */
  uint64_t signature;               /* hash of the mapping definition: changing it resends */
  bool has_hashed_fields;
};

/* Resolves sync's mapping against the columns of model's query. A missing
 * column names the config place and lists the columns there are.
 * Caller releases out with bf_mapping_release(). */
int bf_mapping_build(const struct bf_config *cfg, const struct bf_sync_config *sync,
                     const struct bf_model_config *model, char *const *columns, size_t ncols,
                     struct bf_mapping *out, struct bf_error *err);
void bf_mapping_release(struct bf_mapping *m);

/* Canonical bytes of a primary-key value (ints as decimal text, so 7 and
 * '7' are the same key). Returns false for NULL. */
bool bf_mapping_key_bytes(const struct bf_value *v, struct bf_buf *out);
/* Bytes the fingerprint is taken over: signature + every mapped value. */
void bf_mapping_fingerprint_bytes(const struct bf_mapping *m, const struct bf_value *row,
                                  struct bf_buf *out);
/* {"user_id":7}: the match object of a row (a match column under
 * `pii_policy: hash` holds the SHA-256 of its normalised value). */
void bf_mapping_match_json(const struct bf_mapping *m, const struct bf_value *row,
                           struct bf_buf *out);
/* A field value as sent: applies the PII policy (hash -> hex SHA-256 of the
 * normalised value). tmp holds bytes for the returned value. */
struct bf_value bf_mapping_field_value(const struct bf_mapping *m, size_t field,
                                       const struct bf_value *v, struct bf_buf *tmp);

/* Checks that every field to be hashed normalises (a malformed email or
 * phone is a row-level error, never the hash of garbage). Returns 0, or -1
 * with the offending field's index and a reason that quotes no value. */
int bf_mapping_check_row(const struct bf_mapping *m, const struct bf_value *row, size_t *bad_field,
                         const char **why);

#endif

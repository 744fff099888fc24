/* Change feeds: what a warehouse tells a live sync (design.md §8).
 *
 * A feed yields, in commit order, the values of the model's primary key for
 * rows that changed in the model's `live` tables, and a position. Acking a
 * position tells the warehouse that every change up to it was handled (the
 * destination acknowledged it): PostgreSQL then advances the replication
 * slot's confirmed flush position, SQLite trims its capture table. A change
 * never acked is delivered again after a restart (at-least-once), so a feed
 * needs no state of Backflow's own.
 *
 * The feed only says *which* keys changed; the engine re-evaluates the model
 * for those keys, so a change's content is always read from the warehouse
 * as it is now, and many changes of one key collapse into one push. */
#ifndef BF_FEED_H
#define BF_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/config.h"
#include "util/error.h"
#include "util/value.h"

/* What to follow: names the feed's objects (slot, publication, capture
 * table and triggers are all named after the sync). */
struct bf_feed_spec {
  const char *sync;                   /* sync name */
  const struct bf_live_table *tables; /* the model's live tables (config-owned) */
  size_t n_tables;
  bool need_deletes; /* mirror sync: a deleted row's key must be known */
};

/* One step of the feed. keys[i] (BF_TEXT values point into memory owned by
 * the feed) stay valid until the next call of next() or close(). */
struct bf_change_batch {
  struct bf_value *keys; /* in commit order; the same key may repeat */
  size_t n;
  uint64_t position;   /* ack(position) consumes everything returned so far */
  long long commit_ms; /* unix ms of the newest commit in the batch; 0 = unknown */
  /* The feed cannot tell which keys changed (TRUNCATE, a slot that had to
   * be recreated, a capture table cleared by hand): a full run is needed
   * before position is acked. keys may still hold some. */
  bool resync;
};

struct bf_feed;
struct bf_feed_ops {
  /* Waits up to wait_ms for changes. Returns 0 with out->n == 0 and
   * !out->resync when none came; a negative bf_code when the feed failed
   * (BF_E_WAREHOUSE: connection lost, the caller reopens the feed after a
   * pause; BF_E_CONFIG: a setting or privilege is missing, err says which). */
  int (*next)(struct bf_feed *f, long long wait_ms, struct bf_change_batch *out,
              struct bf_error *err);
  /* Everything up to position is done. */
  int (*ack)(struct bf_feed *f, uint64_t position, struct bf_error *err);
  /* Lag behind the warehouse: seconds since the oldest commit not yet acked
   * (0 when caught up) and bytes (PostgreSQL: WAL bytes between the server's
   * end of WAL and the confirmed position; SQLite: rows waiting in the
   * capture table). */
  void (*lag)(struct bf_feed *f, double *seconds, long long *bytes);
  void (*close)(struct bf_feed *f);
};
struct bf_feed {
  const struct bf_feed_ops *ops;
  /* The feed's objects were created by this open (first start, or a slot
   * that had been dropped): changes before now are unknown, so the engine
   * runs a full run before following. */
  bool created;
};

/* Opens the feed of spec on warehouse wh. Caller closes with bf_feed_close.
 * A warehouse type without live support is BF_E_CONFIG naming it. */
int bf_feed_open(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                 const struct bf_feed_spec *spec, struct bf_feed **out, struct bf_error *err);
void bf_feed_close(struct bf_feed *f);

/* `backflow live setup|teardown SYNC`: installs or removes what the feed
 * needs in the warehouse (SQLite: capture table and triggers). A type whose
 * feed needs nothing installed returns 0 (PostgreSQL creates its slot and
 * publication when the feed opens; teardown drops them). */
int bf_feed_setup(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                  const struct bf_feed_spec *spec, struct bf_error *err);
int bf_feed_teardown(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                     const struct bf_feed_spec *spec, struct bf_error *err);

/* Per-type entry points, reached through bf_source_type (source.h). */
struct bf_feed_type {
  int (*open)(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
              const struct bf_feed_spec *spec, struct bf_feed **out, struct bf_error *err);
  int (*setup)(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
               const struct bf_feed_spec *spec, struct bf_error *err);
  int (*teardown)(const struct bf_warehouse_config *wh, const struct bf_config *cfg,
                  const struct bf_feed_spec *spec, struct bf_error *err);
};
extern const struct bf_feed_type bf_feed_sqlite;
extern const struct bf_feed_type bf_feed_postgres;

#endif

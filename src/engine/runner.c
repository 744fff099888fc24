#include "engine/runner.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/crashpoint.h"
#include "spec/sync_keys.h"
#include "util/log.h"
#include "engine/runner_internal.h"
#include "engine/writeback.h"

static void reject_row(struct run *r, const unsigned char *key, const char *column,
                       const char *reason) {
  r->res->counts.rejected++;
  bf_run_result_add_reason(r->res, column, reason);
  if (r->opts->plan_only) return;
  char hex[33] = "";
  if (key) bf_key_hex(key, hex);
  bf_runlog_add_error(r->log, r->res->run_id, hex, column, reason);
  bf_outcomes_add(r->outcomes, r->res->run_id, key, "rejected", reason);
}

static void batch_reserve(struct pending_batch *b) {
  if (b->n < b->cap) return;
  b->cap = b->cap ? b->cap * 2 : 64;
  b->records = bf_xrealloc(b->records, b->cap * sizeof *b->records);
  b->values = bf_xrealloc(b->values, b->cap * (b->nvals ? b->nvals : 1) * sizeof *b->values);
  b->match_off = bf_xrealloc(b->match_off, b->cap * sizeof *b->match_off);
}

static void batch_add(struct run *r, enum bf_op op, enum bf_change change,
                      const unsigned char key[16], uint64_t fp, const struct bf_value *row,
                      const char *match_json, size_t match_len, unsigned attempts) {
  struct pending_batch *b = &r->batch;
  batch_reserve(b);
  struct bf_record *rec = &b->records[b->n];
  memset(rec, 0, sizeof *rec);
  rec->op = op;
  rec->change = change;
  memcpy(rec->key, key, 16);
  rec->fp = fp;
  rec->attempts = attempts;
  rec->match_json_len = match_len;
  b->match_off[b->n] = b->arena.len;
  bf_buf_append(&b->arena, match_json, match_len);
  if (row) {
    bf_outcomes_note_key(r->outcomes, key, &row[r->map.pk_col]);
    bf_run_index_note(r, key, row);
    struct bf_value *vals = b->values + b->n * b->nvals;
    for (size_t i = 0; i < b->nvals; i++) {
      const struct bf_value *src = i < r->map.n_match ? &row[r->map.match_cols[i]]
                                                      : &row[r->map.field_cols[i - r->map.n_match]];
      vals[i] = *src;
      if (bf_value_has_bytes(src->type)) {
        vals[i].u.off = b->arena.len;
        bf_buf_append(&b->arena, src->u.s, src->len);
      }
    }
    rec->values = vals; /* marks "has values"; fixed up before the push */
  }
  b->n++;
}

static void batch_fixup(struct pending_batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    struct bf_record *rec = &b->records[i];
    rec->match_json = b->arena.data + b->match_off[i];
    if (!rec->values) continue;
    struct bf_value *vals = b->values + i * b->nvals;
    for (size_t k = 0; k < b->nvals; k++)
      if (bf_value_has_bytes(vals[k].type)) vals[k].u.s = b->arena.data + vals[k].u.off;
    rec->values = vals;
  }
}

static void batch_clear(struct pending_batch *b) {
  b->n = 0;
  bf_buf_reset(&b->arena);
}

static void sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static bool full_mirror_resync(const struct run *r) {
  return r->opts->full_resync && r->sync->mode == BF_MODE_MIRROR;
}

/* Sends the batch; records the destination asks to retry go again (a new
 * batch) up to record_retries times. Returns non-zero when the destination
 * is unavailable or the state cannot be written: the run must stop. */
int bf_run_flush_batch(struct run *r, struct bf_error *err) {
  struct pending_batch *b = &r->batch;
  if (b->n == 0) return 0;
  /* The upserts of a full resync of a mirror sync are the whole model: the
   * destination may make the audience exactly them (BF_RESYNC_*). */
  enum bf_resync stage = BF_RESYNC_NONE;
  if (full_mirror_resync(r) && b->records[0].op != BF_OP_DELETE) {
    stage = r->resync_last ? BF_RESYNC_LAST : BF_RESYNC_BATCH;
    r->resync_last = false; /* retried records that follow are not the last batch */
  }
  batch_fixup(b);
  /* 1. What the destination may hold from now on must be known first. */
  int rc = bf_run_index_commit(r, err);
  if (rc || (rc = bf_run_vault(r, err))) return rc;
  if (r->vault) {
    if ((rc = bf_vault_begin(r->vault, err))) return rc;
    for (size_t i = 0; i < b->n && !rc; i++)
      if (b->records[i].op != BF_OP_DELETE)
        rc = bf_vault_put(r->vault, b->records[i].key, b->records[i].match_json,
                          b->records[i].match_json_len, err);
    if (rc) return rc;
    if ((rc = bf_vault_commit(r->vault, err))) return rc;
  }
  for (size_t i = 0; i < b->n; i++) bf_state_mark_pending(r->state, b->records[i].key);
  if ((rc = bf_state_flush(r->state, r->p->cfg->durability_power, err))) return rc;
  if (r->wstate && (rc = bf_wstate_pending(r->wstate, b->records, b->n, err))) return rc;

  /* 2. Send. */
  struct bf_batch batch = {r->sync->name, r->sync->object, &r->map, b->n, b->records, stage};
  struct bf_outcome *outcomes = bf_xcalloc(b->n, sizeof *outcomes);
  bool deletes = b->records[0].op == BF_OP_DELETE;
  bf_crashpoint("before-push");
  rc = deletes ? r->dest->type->remove(r->dest, &batch, outcomes, err)
               : r->dest->type->push(r->dest, &batch, outcomes, err);
  if (rc) {
    r->res->counts.failed += (long long)b->n;
    for (size_t i = 0; i < b->n; i++) {
      char hex[33];
      bf_key_hex(b->records[i].key, hex);
      bf_runlog_add_failure(r->log, r->res->run_id, hex,
                            "not sent: the destination was unavailable and the run stopped");
      free(outcomes[i].reason); /* any a partial push set */
    }
    free(outcomes);
    batch_clear(b);
    return rc;
  }

  bf_crashpoint("after-push");
  bf_outcomes_settle(r->dest->name, outcomes, b->n);
  /* 3. Record outcomes; keep retries aside (they reference the arena). */
  size_t n_retry = 0;
  size_t *retry_idx = bf_xcalloc(b->n, sizeof *retry_idx);
  const char *shared_raw = NULL;
  char *shared_scrubbed = NULL;
  bool whole_batch = b->n > 1;
  for (size_t i = 0; i < b->n && whole_batch; i++)
    whole_batch = outcomes[i].status == BF_OUT_REJECT && outcomes[i].reason &&
                  !strcmp(outcomes[i].reason, outcomes[0].reason);
  for (size_t i = 0; i < b->n; i++) {
    struct bf_record *rec = &b->records[i];
    struct bf_run_counts *c = &r->res->counts;
    switch (outcomes[i].status) {
    case BF_OUT_OK:
      bf_wstate_note_ack(r->wstate, rec);
      if (rec->op == BF_OP_DELETE) {
        bf_state_mark_deleted(r->state, rec->key);
        c->removed++;
      } else {
        bf_state_mark_acked(r->state, rec->key, rec->fp);
        if (rec->change == BF_CHANGE_ADD)
          c->added++;
        else
          c->changed++;
      }
      bf_outcomes_add(r->outcomes, r->res->run_id, rec->key,
                      rec->op == BF_OP_DELETE        ? "removed"
                      : rec->change == BF_CHANGE_ADD ? "added"
                                                     : "changed",
                      NULL);
      r->sent++;
      break;
    case BF_OUT_REJECT: {
      /* A row's reason is scrubbed of that row's values only: other rows'
       * values, matched inside Backflow's own words, garbled reasons
       * ("not an ema[value]address", issue 13). Only an answer for the whole
       * batch (every record refused with one reason, a 4xx to the request)
       * may quote any record, so it is scrubbed against all of them, once. */
      bool shared = whole_batch;
      char *reason;
      if (shared && shared_raw && !strcmp(shared_raw, outcomes[i].reason)) {
        reason = bf_xstrdup(shared_scrubbed);
      } else {
        reason = shared ? bf_run_scrub_reason(r, b->records, b->n, outcomes[i].reason)
                        : bf_run_scrub_reason(r, rec, 1, outcomes[i].reason);
        if (shared) {
          free(shared_scrubbed);
          shared_raw = outcomes[i].reason;
          shared_scrubbed = bf_xstrdup(reason);
        }
      }
      reject_row(r, rec->key, NULL, reason);
      free(reason);
      break;
    }
    case BF_OUT_UNSET: /* settled above: never reached */
    case BF_OUT_RETRY:
      if (rec->attempts + 1 < r->record_retries) {
        retry_idx[n_retry++] = i;
      } else {
        char *reason = bf_run_scrub_reason(r, rec, 1, outcomes[i].reason);
        char *msg = bf_xasprintf("not accepted after %u attempts: %s", rec->attempts + 1, reason);
        c->failed++;
        char hex[33];
        bf_key_hex(rec->key, hex);
        bf_runlog_add_failure(r->log, r->res->run_id, hex, msg);
        bf_outcomes_add(r->outcomes, r->res->run_id, rec->key, "failed", msg);
        free(msg);
        free(reason);
      }
      break;
    }
  }
  free(shared_scrubbed);
  /* Under durability: power the deletions must be durable in the journal
   * before their identifiers leave the vault, or a power cut would leave
   * pending keys nobody can name any more. */
  bool sync_acks = deletes && r->vault && r->p->cfg->durability_power;
  if ((rc = bf_state_flush(r->state, sync_acks, err)) == 0) rc = bf_wstate_commit(r->wstate, err);
  if (rc == 0) rc = bf_runlog_flush(r->log, err);
  if (rc == 0 && deletes && r->vault) {
    /* The identifier is no longer needed once the destination let go of it. */
    rc = bf_vault_begin(r->vault, err);
    for (size_t i = 0; i < b->n && rc == 0; i++)
      if (outcomes[i].status == BF_OUT_OK) rc = bf_vault_delete(r->vault, b->records[i].key, err);
    if (rc == 0) rc = bf_vault_commit(r->vault, err);
  }
  for (size_t i = 0; i < b->n; i++) free(outcomes[i].reason);
  free(outcomes);
  bf_outcomes_flush(r->outcomes, BF_OUTCOMES_FLUSH_ROWS);
  bf_run_progress(r, false);

  if (rc == 0 && n_retry > 0) {
    /* Move the retried records into a fresh batch and send it after a pause. */
    struct pending_batch old = *b;
    memset(b, 0, sizeof *b);
    b->nvals = old.nvals;
    unsigned attempt = 0;
    for (size_t k = 0; k < n_retry; k++) {
      struct bf_record *rec = &old.records[retry_idx[k]];
      attempt = rec->attempts + 1;
      batch_add(r, rec->op, rec->change, rec->key, rec->fp, NULL, rec->match_json,
                rec->match_json_len, attempt);
      if (rec->values) {
        /* copy the values verbatim (they are already resolved pointers) */
        struct bf_value *vals = b->values + (b->n - 1) * b->nvals;
        for (size_t v = 0; v < b->nvals; v++) {
          vals[v] = rec->values[v];
          if (bf_value_has_bytes(vals[v].type)) {
            vals[v].u.off = b->arena.len;
            bf_buf_append(&b->arena, rec->values[v].u.s, rec->values[v].len);
          }
        }
        b->records[b->n - 1].values = vals;
      }
    }
    free(old.records);
    free(old.values);
    free(old.match_off);
    bf_buf_release(&old.arena);
    sleep_ms(100LL << (attempt < 6 ? attempt : 6));
    rc = bf_run_flush_batch(r, err);
  } else {
    batch_clear(b);
  }
  free(retry_idx);
  return rc;
}

static void add_sample(struct run *r, enum bf_op op, const struct bf_value *row,
                       const char *match_json, size_t match_len) {
  struct bf_buf *s = &r->res->sample;
  if (r->sampled >= r->opts->sample_limit) return;
  r->sampled++;
  struct bf_record rec = {.op = op, .match_json = match_json, .match_json_len = match_len};
  struct bf_value *vals = NULL;
  if (row) {
    size_t nvals = r->map.n_match + r->map.n_fields;
    vals = bf_xcalloc(nvals ? nvals : 1, sizeof *vals);
    for (size_t i = 0; i < nvals; i++)
      vals[i] = i < r->map.n_match ? row[r->map.match_cols[i]]
                                   : row[r->map.field_cols[i - r->map.n_match]];
    rec.values = vals;
  }
  struct bf_batch batch = {r->sync->name, r->sync->object, &r->map, 1, &rec, BF_RESYNC_NONE};
  bf_record_json(&batch, &rec, s, &r->tmp);
  bf_buf_putc(s, '\n'); /* separator, turned into commas by the caller */
  free(vals);
}

/* key is NULL when the row's primary key is NULL; fp is valid when row_ok
 * (the row passed bf_mapping_check_row). */
int bf_run_process_row(struct run *r, const struct bf_value *row, const unsigned char *key,
                       bool row_ok, uint64_t fp, struct bf_error *err) {
  struct bf_run_counts *c = &r->res->counts;
  c->rows_read++;
  if (!key) {
    reject_row(r, NULL, r->model->primary_key, "primary key is NULL");
    return 0;
  }
  const char *erased = r->forgotten ? bf_forgotten_filter_match(r->forgotten, row, key) : NULL;
  if (erased) { /* an erased person is never sent again: skipped, named in the run's errors */
    c->skipped++;
    if (!r->opts->plan_only) {
      char hex[33];
      bf_key_hex(key, hex);
      bf_runlog_add_error(r->log, r->res->run_id, hex, NULL, erased);
    }
    return 0;
  }
  struct bf_state_entry *e = bf_state_upsert(r->state, key);
  if (bf_state_see(r->state, e)) {
    reject_row(r, key, r->model->primary_key,
               "duplicate primary key: an earlier row with this key was kept");
    return 0;
  }
  size_t bad_field = SIZE_MAX;
  const char *why = "invalid value";
  if (!row_ok) {
    bf_mapping_check_row(&r->map, row, &bad_field, &why); /* again, for the reason */
    /* Seen (so mirror keeps it), not sent, state untouched: it goes once the
     * value is fixed in the warehouse. */
    char *reason = bf_xasprintf("cannot hash for pii_policy: %s", why);
    reject_row(r, key, bad_field == SIZE_MAX ? "(match)" : r->map.field_names[bad_field], reason);
    free(reason);
    return 0;
  }
  bool present = e->flags & BF_ST_PRESENT, pending = e->flags & BF_ST_PENDING;
  if (present && !pending && e->fp == fp && !r->opts->full_resync) {
    c->unchanged++;
    return r->id_backfill ? bf_run_index_backfill(r, key, row, err) : 0;
  }
  enum bf_change change = present ? BF_CHANGE_CHANGE : BF_CHANGE_ADD;
  enum bf_op op = BF_OP_UPSERT;
  switch (r->sync->mode) {
  case BF_MODE_INSERT:
    if (change == BF_CHANGE_CHANGE) {
      c->skipped++;
      return 0;
    }
    op = BF_OP_INSERT;
    break;
  case BF_MODE_UPDATE: op = BF_OP_UPDATE; break;
  default: break;
  }
  if (r->opts->plan_only) {
    if (change == BF_CHANGE_ADD)
      c->added++;
    else
      c->changed++;
    if (r->sampled < r->opts->sample_limit) {
      bf_mapping_match_json(&r->map, row, &r->jsonbuf);
      add_sample(r, op, row, r->jsonbuf.data, r->jsonbuf.len);
    }
    return 0;
  }
  /* A full mirror resync holds a full batch until the next row comes, so
   * that its last batch is never empty and can be marked BF_RESYNC_LAST. */
  bool hold = full_mirror_resync(r);
  int rc = 0;
  if (hold && r->batch.n >= r->batch_size) {
    rc = bf_run_flush_batch(r, err);
    if (rc == 0 && bf_stop_requested)
      rc = bf_error_set(err, BF_E_INTERRUPTED,
                        "interrupted; the run stopped after the batch in flight");
    if (rc) return rc;
  }
  bf_mapping_match_json(&r->map, row, &r->jsonbuf);
  batch_add(r, op, change, key, fp, row, r->jsonbuf.data, r->jsonbuf.len, 0);
  if (hold || r->batch.n < r->batch_size) return 0;
  rc = bf_run_flush_batch(r, err);
  if (rc == 0 && bf_stop_requested)
    rc = bf_error_set(err, BF_E_INTERRUPTED,
                      "interrupted; the run stopped after the batch in flight");
  return rc;
}

int bf_run_remove_keys(struct run *r, const unsigned char (*keys)[16], size_t n,
                       struct bf_error *err) {
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (r->opts->plan_only) {
      r->res->counts.removed++;
      if (r->sampled < r->opts->sample_limit) {
        /* plan reads nothing sealed: the record is named by its keyed hash */
        char hex[33], named[64];
        bf_key_hex(keys[i], hex);
        int len = snprintf(named, sizeof named, "{\"key_hash\":\"%s\"}", hex);
        add_sample(r, BF_OP_DELETE, NULL, named, (size_t)len);
      }
      continue;
    }
    char *match = NULL;
    size_t len = 0;
    if (r->vault || r->wstate) {
      match = r->vault ? bf_vault_get(r->vault, keys[i], &len)
                       : bf_wstate_ident(r->wstate, keys[i], &len);
      if (!match) {
        reject_row(
            r, keys[i], NULL,
            "cannot delete: its identifier was not kept (the sync was not in mirror mode when "
            "the record was sent); run `backflow reset` and a full resync");
        continue;
      }
    }
    batch_add(r, BF_OP_DELETE, BF_CHANGE_REMOVE, keys[i], 0, NULL, match ? match : "{}",
              match ? len : 2, 0);
    free(match);
    if (r->batch.n >= r->batch_size) rc = bf_run_flush_batch(r, err);
    if (bf_stop_requested && rc == 0)
      rc = bf_error_set(err, BF_E_INTERRUPTED,
                        "interrupted; the run stopped after the batch in flight");
  }
  if (rc == 0 && !r->opts->plan_only) rc = bf_run_flush_batch(r, err);
  return rc;
}

/* Keys in state that this run's model did not have. */
static int removals(struct run *r, struct bf_error *err) {
  size_t cursor = 0;
  struct bf_state_entry *e;
  /* Collect first: flushing journals into the table we are walking. */
  size_t n = 0, cap = 0;
  unsigned char(*keys)[16] = NULL;
  while ((e = bf_state_next(r->state, &cursor))) {
    if (!(e->flags & BF_ST_PERSISTED) || bf_state_seen(r->state, e)) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 256;
      keys = bf_xrealloc(keys, cap * sizeof *keys);
    }
    memcpy(keys[n++], e->key, 16);
  }
  int rc = bf_run_remove_keys(r, (const unsigned char(*)[16])keys, n, err);
  free(keys);
  return rc;
}

/* bf_prepare_fn: hashes every key and fingerprints every row of a chunk.
 * Reads only the mapping and the keys, which no thread changes during the
 * scan, and writes only rb->prep. */
void bf_run_prepare_chunk(struct bf_rowbuf *rb, void *ctx) {
  const struct run *r = ctx;
  struct chunk_prep *cp = rb->prep;
  struct bf_buf keybuf = {0}, fpbuf = {0};
  for (size_t i = 0; i < rb->nrows; i++) {
    const struct bf_value *row = bf_rowbuf_row(rb, i);
    unsigned char status = 0;
    if (bf_mapping_key_bytes(&row[r->map.pk_col], &keybuf)) {
      bf_prf_key(&r->prf, keybuf.data, keybuf.len, cp->key[i]);
      status |= PREP_HAS_KEY;
      size_t bad_field;
      const char *why;
      if (bf_mapping_check_row(&r->map, row, &bad_field, &why) == 0) {
        bf_mapping_fingerprint_bytes(&r->map, row, &fpbuf);
        cp->fp[i] = bf_prf_fingerprint(&r->prf, fpbuf.data, fpbuf.len);
        status |= PREP_ROW_OK;
      }
    }
    cp->status[i] = status;
  }
  bf_buf_release(&keybuf);
  bf_buf_release(&fpbuf);
}

static int scan(struct run *r, struct bf_prefetch *pf, struct bf_error *err) {
  struct bf_rowbuf *rb;
  bool failed = false;
  int rc = 0;
  struct bf_error read_err = {0};
  while (rc == 0 && (rb = bf_prefetch_next(pf, &failed, &read_err))) {
    struct chunk_prep *cp = rb->prep;
    if (!rb->prepared) bf_run_prepare_chunk(rb, r);
    /* Every index slot of the chunk, then every entry, is asked for before
     * any is used: the state lookups' cache misses overlap, not queue. */
    for (size_t i = 0; i < rb->nrows; i++)
      if (cp->status[i] & PREP_HAS_KEY) bf_state_prefetch(r->state, cp->key[i]);
    for (size_t i = 0; i < rb->nrows; i++)
      if (cp->status[i] & PREP_HAS_KEY) bf_state_prefetch_entry(r->state, cp->key[i]);
    for (size_t i = 0; i < rb->nrows && rc == 0; i++)
      rc = bf_run_process_row(r, bf_rowbuf_row(rb, i),
                              cp->status[i] & PREP_HAS_KEY ? cp->key[i] : NULL,
                              cp->status[i] & PREP_ROW_OK, cp->fp[i], err);
    bf_run_progress(r, false);
    if (rc == 0 && bf_stop_requested)
      rc = bf_error_set(err, BF_E_INTERRUPTED,
                        "interrupted; the run stopped after the batch in flight");
  }
  if (rc == 0 && failed) {
    *err = read_err;
    rc = bf_error_prefix(err, "%s:%d:%d: model '%s'", r->model->sql_loc.file,
                         r->model->sql_loc.line, r->model->sql_loc.col, r->model->name);
  }
  if (rc == 0 && !r->opts->plan_only) {
    r->resync_last = true; /* every row was read: the model is whole */
    rc = bf_run_flush_batch(r, err);
    r->resync_last = false;
  }
  return rc;
}

const char *bf_run_status(const struct run *r, int rc) {
  if (r->opts->plan_only) return rc ? "failed" : "planned";
  if (rc == BF_E_INTERRUPTED) return "cancelled";
  if (rc == BF_E_LOCKED) return "skipped";
  if (rc) return "failed";
  const struct bf_run_counts *c = &r->res->counts;
  if ((c->rejected || c->failed) &&
      !bf_sync_rejects_tolerated(r->sync, c->rejected, c->failed, c->rows_read))
    return "partial";
  return "succeeded";
}

int bf_run_begin(struct run *r, const char *sync_name, struct bf_error *err) {
  struct bf_project *p = r->p;
  const struct bf_run_options *opts = r->opts;
  struct bf_run_result *res = r->res;
  int rc = 0;
  r->started_ms = bf_now_ms();
  r->sync = bf_project_find_sync(p, sync_name, err);
  if (!r->sync) return err->code;
  if ((rc = bf_config_require_sync(p->cfg, sync_name, err))) return rc;
  r->model = bf_config_model(p->cfg, r->sync->model);
  const struct bf_warehouse_config *wh = bf_config_warehouse(p->cfg, r->model->warehouse);
  const struct bf_destination_config *dc = bf_config_destination(p->cfg, r->sync->destination);
  const struct bf_destination_type *dtype = bf_destination_find(dc->type);
  r->record_retries = opts->record_retries ? opts->record_retries : 3;

  /* Configuration problems first, before anything is touched. */
  if (!dtype) {
    struct bf_destination *unused = NULL;
    rc = bf_destination_open(dc, p->cfg, &unused, err); /* reports the unknown type */
    bf_destination_close(unused);
    return rc ? rc : bf_error_set(err, BF_E_CONFIG, "unknown destination type");
  }
  char *what = bf_xasprintf("destination '%s' (%s)", dc->name, dc->type);
  rc = bf_params_check(dc->params, dtype->params, what, err);
  free(what);
  if (rc || (rc = bf_destination_check_batch_size(r->sync, dtype, err))) return rc;
  if (!opts->plan_only) {
    /* Before the model's query, so that the model may JOIN its outcomes
     * from the first run on. */
    r->outcomes = bf_outcomes_new(p->cfg, sync_name);
    bf_outcomes_prepare(r->outcomes);
  }
  if ((rc = bf_source_open(wh, p->cfg, &r->src, err))) return rc;
  if ((rc = bf_source_query(r->src, r->model->sql, &r->cur, err)))
    return bf_error_prefix(err, "%s:%d:%d: model '%s': SQL error", r->model->sql_loc.file,
                           r->model->sql_loc.line, r->model->sql_loc.col, r->model->name);
  struct bf_cursor *cur = r->cur;
  if ((rc = bf_mapping_build(p->cfg, r->sync, r->model, cur->column_names, cur->ncols, &r->map,
                             err)))
    return rc;
  if ((rc = bf_forgotten_filter_open(p->state_dir, &r->prf, r->model, cur->column_names, cur->ncols,
                                     &r->forgotten, err)))
    return rc;
  /* Only the key and mapped columns are read from each row. */
  r->wanted = bf_xcalloc(cur->ncols, sizeof *r->wanted);
  r->wanted[r->map.pk_col] = true;
  for (size_t i = 0; i < r->map.n_match; i++) r->wanted[r->map.match_cols[i]] = true;
  for (size_t i = 0; i < r->map.n_fields; i++) r->wanted[r->map.field_cols[i]] = true;
  if (r->forgotten) memset(r->wanted, 1, cur->ncols); /* erasure checks look at pii columns */
  if (!opts->plan_only && dtype->needs_identifier_for_delete)
    bf_run_index_columns(r, cur->column_names, cur->ncols);
  cur->wanted = r->wanted;
  if (r->sync->state_warehouse && (rc = bf_wstate_run_begin(r, err))) return rc;
  cur = r->cur; /* the plan statement's, with state: warehouse */
  if (r->keyed) {
    /* A session looks rows up by key later; this cursor only named the columns. */
    bf_cursor_free(r->cur);
  } else {
    /* Start reading now: the warehouse streams while the state loads. */
    r->pf = bf_prefetch_new(cur, CHUNK_ROWS, sizeof(struct chunk_prep));
  }
  r->cur = NULL; /* owned by the prefetcher, or freed */
  r->batch.nvals = r->map.n_match + r->map.n_fields;
  r->batch_size = r->sync->batch_size ? (size_t)r->sync->batch_size : dtype->default_batch;

  int secret_rc = bf_project_secret(p, !opts->plan_only, err);
  if (secret_rc < 0) return secret_rc;
  if (secret_rc == 1) {
    /* Plan before the first run: there is no state, any key will do. */
    unsigned char ephemeral[32];
    randombytes_buf(ephemeral, sizeof ephemeral);
    bf_prf_init(&r->prf, ephemeral, sizeof ephemeral, err);
  } else {
    r->prf = p->prf;
  }
  /* Keys and mapping are fixed from here on: the reader may prepare chunks
   * (while the state loads, among other times). */
  if (r->pf && !r->wstate) bf_prefetch_set_prepare(r->pf, bf_run_prepare_chunk, r);
  r->sync_dir = bf_project_sync_dir(p, r->sync->name);
  if (!opts->plan_only) {
    char *syncs = bf_xasprintf("%s/syncs", p->state_dir);
    mkdir(p->state_dir, 0700);
    mkdir(syncs, 0700);
    free(syncs);
  }
  rc = r->wstate ? bf_wstate_run_open_state(r, err)
                 : bf_state_open(r->sync_dir, !opts->plan_only, &r->prf, &r->state, err);
  if (rc) return rc;

  if (!opts->plan_only) {
    if ((rc = bf_runlog_open(p->state_dir, &r->log, err))) return rc;
    bf_runlog_mark_crashed(r->log, r->sync->name);
    if (!r->keyed) { /* a session opens its rows as changes come */
      if ((rc = bf_runlog_begin(r->log, r->sync->name, &res->run_id, err))) return rc;
      r->logged = true;
    }
    if ((rc = bf_run_index_open(r, err))) return rc;
    /* Identifiers are kept for deletes: a mirror's removals, an erasure. */
    bool keep_identifiers = r->sync->mode == BF_MODE_MIRROR || r->idindex;
    bool vault = keep_identifiers && dtype->needs_identifier_for_delete && !r->wstate;
    /* A mirror reads identifiers back for its removals: opened now. For an
     * erasure only, the vault is opened when the run first has one to keep:
     * a run that sends nothing never reads it. */
    if (vault && r->sync->mode != BF_MODE_MIRROR)
      r->vault_on_demand = true;
    else if (vault &&
             (rc = bf_vault_open(r->sync_dir, &r->prf, p->cfg->durability_power, &r->vault, err)))
      return rc;
    if ((rc = bf_destination_open(dc, p->cfg, &r->dest, err))) return rc;
  }
  return 0;
}

/* A run that found the sync locked did nothing; the history says so (the
 * lock holder's own run is the one that sends). Best effort: a failure to
 * write it is a warning, the exit status already tells. */
static void log_skipped(struct run *r, const char *why) {
  struct bf_runlog *log = NULL;
  struct bf_error log_err = {0};
  long long id = 0;
  if (bf_runlog_open(r->p->state_dir, &log, &log_err) == 0 &&
      bf_runlog_begin(log, r->sync->name, &id, &log_err) == 0 &&
      bf_runlog_finish(log, id, "skipped", &r->res->counts, why, &log_err) == 0)
    r->res->run_id = id;
  if (log_err.code)
    bf_log_warn("[sync %s] cannot log the skipped run: %s", r->sync->name, log_err.msg);
  bf_runlog_close(log);
}

int bf_run_end(struct run *r, int rc, struct bf_error *err) {
  const struct bf_run_options *opts = r->opts;
  struct bf_run_result *res = r->res;
  bf_prefetch_free(r->pf); /* stops the reader before the source closes */
  r->pf = NULL;
  if (r->idindex && !opts->plan_only) {
    struct bf_error ix_err = {0};
    if (bf_run_index_end(r, rc == 0 && !r->keyed && r->scanned, &ix_err) && rc == 0) {
      *err = ix_err;
      rc = ix_err.code;
    }
  }
  if (r->state && !opts->plan_only) {
    struct bf_error fold_err = {0};
    /* A warehouse-state sync's scratch is emptied: the next run starts lean. */
    if ((r->wstate ? bf_state_clear(r->state, &fold_err) : bf_state_fold(r->state, &fold_err)) &&
        rc == 0) {
      *err = fold_err;
      rc = fold_err.code;
    }
  }
  bf_run_progress(r, true);
  res->duration_ms = bf_now_ms() - r->started_ms;
  res->code = rc;
  res->status = bf_run_status(r, rc);
  if (r->logged) {
    struct bf_error log_err = {0};
    if (bf_runlog_finish(r->log, res->run_id, res->status, &res->counts, rc ? err->msg : NULL,
                         &log_err) &&
        rc == 0) {
      *err = log_err;
      rc = log_err.code;
    }
  }
  if (rc == BF_E_LOCKED && !r->logged && !opts->plan_only && !r->keyed && opts->log_skipped)
    log_skipped(r, err->msg);
  bf_outcomes_free(r->outcomes);
  r->outcomes = NULL;
  bf_destination_close(r->dest);
  bf_run_index_free(r);
  bf_vault_close(r->vault);
  bf_forgotten_filter_free(r->forgotten);
  bf_runlog_close(r->log);
  bf_state_free(r->state);
  bf_wstate_free(r->wstate);
  bf_cursor_free(r->cur);
  bf_source_close(r->src);
  bf_mapping_release(&r->map);
  free(r->wanted);
  free(r->batch.records);
  free(r->batch.values);
  free(r->batch.match_off);
  bf_buf_release(&r->batch.arena);
  bf_buf_release(&r->jsonbuf);
  bf_buf_release(&r->tmp);
  sodium_memzero(&r->prf, sizeof r->prf);
  free(r->sync_dir);
  if (r->logged) bf_writeback_run(r->p, r->sync->name); /* warns on failure, never fails the run */
  return rc;
}

int bf_sync_run(struct bf_project *p, const char *sync_name, const struct bf_run_options *opts,
                struct bf_run_result *res, struct bf_error *err) {
  memset(res, 0, sizeof *res);
  struct run r = {.p = p, .opts = opts, .res = res};
  int rc = bf_run_begin(&r, sync_name, err);
  if (rc == 0) rc = r.wstate ? bf_wstate_run_scan(&r, err) : scan(&r, r.pf, err);
  r.scanned = rc == 0;
  /* Removals only after a complete scan: a partial read says nothing about
   * which keys left the model. */
  if (rc == 0 && r.sync->mode == BF_MODE_MIRROR)
    rc = r.wstate ? bf_wstate_run_removals(&r, err) : removals(&r, err);
  return bf_run_end(&r, rc, err);
}

void bf_run_result_release(struct bf_run_result *res) {
  bf_buf_release(&res->sample);
  for (size_t i = 0; i < res->n_reasons; i++) free(res->reasons[i].reason);
  free(res->reasons);
  res->reasons = NULL;
  res->n_reasons = 0;
}

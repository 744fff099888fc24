/* Per-record outcomes (see outcomes.h). */
#include "engine/outcomes.h"

#include <string.h>

#include "util/jsonw.h"
#include "util/log.h"
#include "spec/mapping.h"
#include "util/prf.h"
#include "engine/runlog.h"
#include "engine/writeback.h"
#include "sources/source.h"

/* Past this many unwritten rows (the warehouse has been down a long time)
 * the oldest are dropped: memory stays bounded, the run log keeps the
 * counts and errors. */
#define MAX_BUFFERED 1000000

enum { C_SYNC, C_RUN, C_HASH, C_KEY, C_OUTCOME, C_REASON, C_AT, NCOLS };
static const struct bf_wcol cols[NCOLS] = {
    {"sync", BF_WCOL_TEXT, true},      {"run_id", BF_WCOL_INT, true},
    {"key_hash", BF_WCOL_TEXT, false}, {"key", BF_WCOL_TEXT, false},
    {"outcome", BF_WCOL_TEXT, true},   {"reason", BF_WCOL_TEXT, false},
    {"at", BF_WCOL_TIME, true},
};

void bf_outcomes_table(const char *schema, struct bf_wtable *t) {
  *t = (struct bf_wtable){schema, "outcomes", cols, NCOLS, NULL, 0, false};
}

#define NONE ((size_t)-1)

struct row {
  long long run_id, at;
  char hash[33];              /* "" without a key */
  const char *outcome;        /* static */
  size_t key_off, reason_off; /* into arena, NONE for NULL */
  size_t key_len;
};

/* Key hash -> primary key text, for records sent and not yet answered. */
struct slot {
  unsigned char key[16];
  size_t off, len;
  unsigned char state; /* 0 empty, 1 used, 2 removed */
};

struct bf_outcomes {
  const struct bf_config *cfg;
  struct bf_writeback_target target;
  char *sync;
  bool with_keys;
  bool midrun_failed; /* a flush during the run failed: wait for the end */
  struct bf_writer *w;
  struct row *rows;
  size_t n, cap;
  struct bf_buf arena; /* key texts and reasons of rows */
  struct slot *slots;
  size_t n_slots, used; /* used counts removed slots too */
  struct bf_buf keys;   /* key texts of slots */
  struct bf_buf tmp;
};

struct bf_outcomes *bf_outcomes_new(const struct bf_config *cfg, const char *sync) {
  struct bf_writeback_target t;
  if (!bf_writeback_target(cfg, sync, &t)) return NULL;
  struct bf_outcomes *o = bf_xcalloc(1, sizeof *o);
  o->cfg = cfg;
  o->target = t;
  o->sync = bf_xstrdup(sync);
  const struct bf_model_config *m = t.sync ? bf_config_model(cfg, t.sync->model) : NULL;
  o->with_keys = m && !strcmp(m->warehouse, t.wh->name);
  return o;
}

static bool connect(struct bf_outcomes *o) {
  if (o->w) return true;
  struct bf_error err = {0};
  struct bf_wtable t;
  bf_outcomes_table(o->target.schema, &t);
  if (bf_writer_open(o->target.wh, o->cfg, &o->w, &err) == 0 &&
      o->w->ops->ensure(o->w, &t, &err) == 0)
    return true;
  bf_log_warn("[sync %s] outcomes write-back to warehouse '%s': %s (kept for the next attempt)",
              o->sync, o->target.wh->name, err.msg);
  bf_writer_close(o->w);
  o->w = NULL;
  return false;
}

void bf_outcomes_prepare(struct bf_outcomes *o) {
  if (o) connect(o);
}

static size_t slot_of(const struct bf_outcomes *o, const unsigned char key[16]) {
  uint64_t v;
  memcpy(&v, key, 8);
  return (size_t)(v & (o->n_slots - 1));
}

static void slots_grow(struct bf_outcomes *o) {
  struct slot *old = o->slots;
  size_t n_old = o->n_slots;
  size_t live = 0;
  for (size_t i = 0; i < n_old; i++) live += old[i].state == 1;
  o->n_slots = 1024;
  while (o->n_slots < live * 4) o->n_slots *= 2;
  o->slots = bf_xcalloc(o->n_slots, sizeof *o->slots);
  o->used = 0;
  /* The texts of live entries move to a fresh buffer, so a long live
   * session does not keep every key it ever sent. */
  struct bf_buf keys = {0};
  for (size_t i = 0; i < n_old; i++) {
    if (old[i].state != 1) continue;
    size_t s = slot_of(o, old[i].key);
    while (o->slots[s].state) s = (s + 1) & (o->n_slots - 1);
    o->slots[s] = old[i];
    o->slots[s].off = keys.len;
    bf_buf_append(&keys, o->keys.data + old[i].off, old[i].len);
    o->used++;
  }
  bf_buf_release(&o->keys);
  o->keys = keys;
  free(old);
}

void bf_outcomes_note_key(struct bf_outcomes *o, const unsigned char key[16],
                          const struct bf_value *pk) {
  if (!o || !o->with_keys || !bf_mapping_key_bytes(pk, &o->tmp)) return;
  if ((o->used + 1) * 4 > o->n_slots * 3) slots_grow(o);
  size_t s = slot_of(o, key);
  while (o->slots[s].state && !(o->slots[s].state == 1 && !memcmp(o->slots[s].key, key, 16)))
    s = (s + 1) & (o->n_slots - 1);
  struct slot *sl = &o->slots[s];
  if (sl->state != 1) o->used++;
  memcpy(sl->key, key, 16);
  sl->state = 1;
  sl->off = o->keys.len;
  sl->len = o->tmp.len;
  bf_buf_append(&o->keys, o->tmp.data, o->tmp.len);
}

/* Takes the noted key text of key into the row buffer's arena. */
static void take_key(struct bf_outcomes *o, const unsigned char key[16], struct row *row) {
  if (!o->n_slots) return;
  for (size_t s = slot_of(o, key); o->slots[s].state; s = (s + 1) & (o->n_slots - 1)) {
    struct slot *sl = &o->slots[s];
    if (sl->state == 1 && !memcmp(sl->key, key, 16)) {
      row->key_off = o->arena.len;
      row->key_len = sl->len;
      bf_buf_append(&o->arena, o->keys.data + sl->off, sl->len);
      sl->state = 2;
      return;
    }
  }
}

void bf_outcomes_add(struct bf_outcomes *o, long long run_id, const unsigned char *key,
                     const char *outcome, const char *reason) {
  if (!o) return;
  if (o->n >= MAX_BUFFERED) {
    bf_log_warn("[sync %s] outcomes write-back: %d rows could not be written; the oldest are "
                "dropped",
                o->sync, MAX_BUFFERED);
    o->n = 0;
    bf_buf_reset(&o->arena);
  }
  if (o->n == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 256;
    o->rows = bf_xrealloc(o->rows, o->cap * sizeof *o->rows);
  }
  struct row *row = &o->rows[o->n++];
  row->run_id = run_id;
  row->at = bf_now_ms();
  row->outcome = outcome;
  row->hash[0] = 0;
  row->key_off = row->reason_off = NONE;
  row->key_len = 0;
  if (key) {
    bf_key_hex(key, row->hash);
    take_key(o, key, row);
  }
  if (reason) {
    row->reason_off = o->arena.len;
    bf_buf_append(&o->arena, reason, strlen(reason) + 1);
  }
}

void bf_outcomes_flush(struct bf_outcomes *o, size_t min_rows) {
  if (!o || o->n == 0 || o->n < min_rows) return;
  /* A SQLite warehouse without WAL cannot commit while the model is being
   * read from it: one wait for the busy timeout is enough to know. */
  if (min_rows > 1 && o->midrun_failed) return;
  if (!connect(o)) {
    o->midrun_failed |= min_rows > 1;
    return;
  }
  struct bf_value *vals = bf_xcalloc(o->n * NCOLS, sizeof *vals);
  for (size_t i = 0; i < o->n; i++) {
    const struct row *row = &o->rows[i];
    struct bf_value *v = vals + i * NCOLS;
    v[C_SYNC] = bf_wtext(o->sync);
    v[C_RUN] = bf_wint(row->run_id);
    v[C_HASH] = bf_wtext(row->hash[0] ? row->hash : NULL);
    if (row->key_off != NONE) {
      v[C_KEY].type = BF_TEXT;
      v[C_KEY].len = (uint32_t)row->key_len;
      v[C_KEY].u.s = o->arena.data + row->key_off;
    }
    v[C_OUTCOME] = bf_wtext(row->outcome);
    v[C_REASON] = bf_wtext(row->reason_off != NONE ? o->arena.data + row->reason_off : NULL);
    v[C_AT] = bf_wint(row->at);
  }
  struct bf_wtable t;
  bf_outcomes_table(o->target.schema, &t);
  struct bf_error err = {0};
  if (bf_writer_write(o->w, &t, vals, o->n, NULL, &err)) {
    bf_log_warn("[sync %s] outcomes write-back to warehouse '%s': %s (kept for the next attempt)",
                o->sync, o->target.wh->name, err.msg);
    bf_writer_close(o->w); /* reconnect next time: the connection may be what failed */
    o->w = NULL;
    o->midrun_failed |= min_rows > 1;
  } else {
    o->n = 0;
    bf_buf_reset(&o->arena);
  }
  free(vals);
}

void bf_outcomes_free(struct bf_outcomes *o) {
  if (!o) return;
  bf_outcomes_flush(o, 1);
  bf_writer_close(o->w);
  free(o->rows);
  free(o->slots);
  free(o->sync);
  bf_buf_release(&o->arena);
  bf_buf_release(&o->keys);
  bf_buf_release(&o->tmp);
  free(o);
}

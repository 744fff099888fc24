/* Sending an erasure's deletes to a sync's destination (forget.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "destinations/destination.h"
#include "engine/audit_log.h"
#include "engine/forget.h"
#include "engine/forget_internal.h"
#include "engine/forgotten.h"
#include "engine/idindex.h"
#include "engine/runlog.h"
#include "engine/state.h"
#include "engine/vault.h"
#include "sources/source.h"
#include "spec/mapping.h"
#include "util/crashpoint.h"
#include "util/fsutil.h"
#include "util/keyfile.h"
#include "util/pii_normalize.h"

static void remove_target(struct item *it, size_t i) {
  bf_forget_free_secret(it->t[i].match);
  bf_forget_free_secret(it->t[i].guess);
  it->t[i] = it->t[--it->nt];
}

/* Sends the deletes of an item's targets to its destination; what was
 * acknowledged leaves the sync's state and vault. */
void bf_forget_deliver(struct bf_project *p, struct request *rq, struct item *it,
                       long long lock_wait, struct bf_forget_batch *batch) {
  const struct bf_sync_config *s = it->sync;
  const struct bf_model_config *m = bf_config_model(p->cfg, s->model);
  const struct bf_destination_config *dc = bf_config_destination(p->cfg, s->destination);
  char *dir = bf_project_sync_dir(p, s->name);
  char *vault_path = bf_xasprintf("%s/vault.bin", dir);
  struct bf_state *st = NULL;
  struct bf_vault *vault = NULL;
  struct bf_destination *dest = NULL;
  struct bf_mapping map = {0};
  bool mapped = false;
  struct bf_error err = {0};
  size_t unresolvable = 0;
  bool *acked = NULL;
  struct bf_record *recs = NULL;
  struct bf_outcome *outs = NULL;
  size_t *todo = NULL, *next = NULL;
  char *pending_reason = NULL;
  int pending_exit = 0;
  int rc;
  struct bf_forget_held *kept = bf_forget_batch_held(batch, s->name);
  if (access(dir, F_OK) != 0) {
    bf_forget_item_done(it, "not_found", 0,
                        "the sync never ran: its destination holds nothing from it");
    goto out;
  }
  if (kept && kept->st) {
    st = kept->st;
    vault = kept->vault;
    dest = kept->dest;
    goto opened;
  }
  long long deadline = bf_now_ms() + lock_wait;
  for (;;) {
    memset(&err, 0, sizeof err);
    rc = bf_state_open(dir, true, &p->prf, &st, &err);
    if (rc != BF_E_LOCKED || bf_now_ms() >= deadline) break;
    bf_forget_sleep_ms(100);
  }
  if (rc == BF_E_LOCKED) {
    bf_forget_item_pending(
        it, 4, "a run of this sync held its lock; `backflow forget --retry` completes the erasure");
    goto out;
  }
  if (rc) {
    bf_forget_item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  if (access(vault_path, F_OK) == 0 &&
      (rc = bf_vault_open(dir, &p->prf, p->cfg->durability_power, &vault, &err))) {
    bf_forget_item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  if (kept) {
    kept->st = st;
    kept->vault = vault;
  }
opened:
  /* Every target needs its match values. A row found in the warehouse gave
   * them; a key whose row is gone is sent only when the destination holds
   * it (the state says so, or the vault still names it), by the vault's
   * identifier or else by the key itself when the sync matches by it. */
  for (size_t i = 0; i < it->nt;) {
    struct target *t = &it->t[i];
    if (!t->match && t->has_key) {
      size_t len;
      struct bf_state_entry *e = bf_state_find(st, t->key);
      bool held = e && (e->flags & BF_ST_PERSISTED);
      if (vault) t->match = bf_vault_get(vault, t->key, &len);
      if (!t->match && held && t->guess) {
        t->match = t->guess;
        t->guess = NULL;
      }
      if (!t->match) {
        if (held)
          unresolvable++; /* held, but nothing names it */
        else
          it->found--; /* the destination never got it, or let go of it */
        remove_target(it, i);
        continue;
      }
    }
    i++;
  }
  if ((rc = bf_forget_config_mapping(p->cfg, s, m, &map, &err))) {
    bf_forget_item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  mapped = true;
  if (it->nt && !dest && (rc = bf_destination_open(dc, p->cfg, &dest, &err))) {
    bf_forget_item_pending(it, bf_code_exit_status(rc), err.msg);
    goto out;
  }
  if (kept) kept->dest = dest;
  const struct bf_destination_type *dt = dest ? dest->type : NULL;
  size_t bs = dt ? (s->batch_size ? (size_t)s->batch_size : dt->default_batch) : 1;
  if (dt && bs > dt->max_batch) bs = dt->max_batch;
  if (bs == 0) bs = 1;
  acked = bf_xcalloc(it->nt + 1, sizeof *acked);
  todo = bf_xcalloc(it->nt + 1, sizeof *todo);
  next = bf_xcalloc(it->nt + 1, sizeof *next);
  recs = bf_xcalloc(bs, sizeof *recs);
  outs = bf_xcalloc(bs, sizeof *outs);
  size_t n_todo = it->nt;
  for (size_t i = 0; i < n_todo; i++) todo[i] = i;
  bool unavailable = false;
  for (int attempt = 0; attempt < SEND_ATTEMPTS && n_todo && !unavailable; attempt++) {
    if (attempt) bf_forget_sleep_ms(100LL << attempt);
    size_t n_next = 0;
    for (size_t start = 0; start < n_todo && !unavailable; start += bs) {
      size_t n = n_todo - start < bs ? n_todo - start : bs;
      for (size_t k = 0; k < n; k++) {
        struct target *t = &it->t[todo[start + k]];
        memset(&recs[k], 0, sizeof recs[k]);
        recs[k].op = BF_OP_DELETE;
        recs[k].change = BF_CHANGE_REMOVE;
        if (t->has_key) memcpy(recs[k].key, t->key, 16);
        recs[k].attempts = (unsigned)attempt;
        recs[k].match_json = t->match;
        recs[k].match_json_len = strlen(t->match);
        memset(&outs[k], 0, sizeof outs[k]);
      }
      struct bf_batch deletes = {s->name, s->object, &map, n, recs, BF_RESYNC_NONE};
      struct bf_error derr = {0};
      bf_crashpoint("forget-before-push");
      rc = dt->remove(dest, &deletes, outs, &derr);
      bf_crashpoint("forget-after-push");
      if (rc) {
        unavailable = true;
        free(pending_reason);
        pending_reason = bf_forget_scrub(rq, it, derr.msg);
        pending_exit = bf_code_exit_status(rc);
        for (size_t k = 0; k < n; k++) {
          free(outs[k].reason); /* any a partial remove set */
          outs[k].reason = NULL;
        }
        break;
      }
      bf_outcomes_settle(dest->name, outs, n);
      for (size_t k = 0; k < n; k++) {
        size_t idx = todo[start + k];
        if (outs[k].status == BF_OUT_OK) {
          acked[idx] = true;
        } else if (outs[k].status == BF_OUT_RETRY && attempt + 1 < SEND_ATTEMPTS) {
          next[n_next++] = idx;
        } else {
          char *why = bf_forget_scrub(rq, it, outs[k].reason);
          free(pending_reason);
          if (outs[k].status == BF_OUT_REJECT) {
            pending_reason = bf_xasprintf("the destination refused the delete: %s", why);
            if (pending_exit == 0) pending_exit = 1;
          } else {
            pending_reason = bf_xasprintf("not accepted after %d attempts: %s", SEND_ATTEMPTS, why);
            pending_exit = 4;
          }
          free(why);
        }
        free(outs[k].reason);
        outs[k].reason = NULL;
      }
    }
    memcpy(todo, next, n_next * sizeof *todo);
    n_todo = n_next;
  }
  /* What the destination let go of leaves the state, then the vault (the
   * journal is durable first, as in the runner). */
  size_t n_acked = 0;
  for (size_t i = 0; i < it->nt; i++) {
    if (!acked[i]) continue;
    n_acked++;
    struct bf_state_entry *e = it->t[i].has_key ? bf_state_find(st, it->t[i].key) : NULL;
    if (e && (e->flags & BF_ST_PERSISTED)) bf_state_mark_deleted(st, it->t[i].key);
  }
  struct bf_error serr = {0};
  int src = n_acked ? bf_state_flush(st, true, &serr) : 0;
  if (src == 0 && n_acked && vault) {
    src = bf_vault_begin(vault, &serr);
    for (size_t i = 0; i < it->nt && src == 0; i++)
      if (acked[i] && it->t[i].has_key) src = bf_vault_delete(vault, it->t[i].key, &serr);
    if (src == 0) src = bf_vault_commit(vault, &serr);
  }
  if (src == 0 && n_acked && kept)
    kept->changed = true; /* folded when the batch ends */
  else if (src == 0 && n_acked)
    src = bf_state_fold(st, &serr);
  for (size_t i = it->nt; i-- > 0;)
    if (acked[i]) remove_target(it, i);
  it->deleted += (long long)n_acked;
  char *why = NULL;
  if (unresolvable)
    why = bf_xasprintf(
        "%zu record(s) cannot be deleted: the row left the warehouse and the sync kept "
        "no identifier for it (it was sent before the sync's identifier index was complete); "
        "delete it at the destination by hand",
        unresolvable);
  if (it->nt) {
    char *r =
        why ? bf_xasprintf("%s; %s", pending_reason ? pending_reason : "not acknowledged", why)
            : bf_xstrdup(pending_reason ? pending_reason : "not acknowledged");
    bf_forget_item_pending(it, pending_exit ? pending_exit : 4, r);
    free(r);
  } else if (unresolvable) {
    bf_forget_item_done(it, "failed", 1, why);
  } else {
    bf_forget_item_done(it, it->found ? "deleted" : "not_found", 0, NULL);
  }
  free(why);
  if (src) {
    /* The destination deleted; only our own bookkeeping failed. */
    char *r =
        bf_xasprintf("%s%s%s", it->reason ? it->reason : "", it->reason ? "; " : "", serr.msg);
    bf_forget_set_reason(it, r);
    free(r);
    if (it->exit == 0 || it->exit == 1) it->exit = 2;
  }
out:
  if (outs) {
    for (size_t k = 0; k < bs; k++) free(outs[k].reason);
  }
  free(outs);
  free(recs);
  free(todo);
  free(next);
  free(acked);
  free(pending_reason);
  if (mapped) bf_mapping_release(&map);
  if (!kept) {
    bf_destination_close(dest);
    bf_vault_close(vault);
    bf_state_free(st);
  }
  free(vault_path);
  free(dir);
}

/* The group commit of /hooks (hook_events.h). Each warehouse that receives
 * events has one committer thread and one connection, through the
 * warehouse type's write path (sources/source.h). A request queues its
 * events and waits; the committer takes everything queued, writes it in one
 * transaction and wakes the requests, which answer only then. While one
 * commit runs the next batch gathers, so under load a commit carries many
 * deliveries, and a lone delivery is committed at once (no timer):
 * the wait is one commit, well within the second the sender is promised. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "engine/runlog.h"
#include "engine/writeback.h"
#include "server/hook_events.h"
#include "sources/source.h"

enum { E_RECEIVED, E_DEST, E_EVENT, E_PERSON, E_PAYLOAD, E_WID, E_SEQ, E_NCOLS };
static const struct bf_wcol event_cols[E_NCOLS] = {
    {"received_at", BF_WCOL_TIME, true}, {"destination", BF_WCOL_TEXT, true},
    {"event", BF_WCOL_TEXT, true},       {"person_hash", BF_WCOL_TEXT, false},
    {"payload", BF_WCOL_TEXT, true},     {"webhook_id", BF_WCOL_TEXT, true},
    {"seq", BF_WCOL_INT, true},
};
static const size_t event_key[] = {E_DEST, E_WID, E_SEQ};

struct ticket {
  const char *dest, *webhook_id;
  const struct bf_hook_event *evs;
  size_t n;
  long long received_ms;
  /* set by the committer */
  bool done;
  int rc;
  long long stored;
  char why[BF_ERROR_MSG_MAX];
  struct ticket *next;
};

struct committer {
  struct bf_hook_store *s;
  const struct bf_warehouse_config *wh;
  const char *schema;
  pthread_t thread;
  bool started, stop;
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  struct ticket *head, **tail;
  struct bf_writer *w; /* NULL until needed, and after a failure */
};

struct bf_hook_store {
  const struct bf_config *cfg;
  bf_hook_nudge_fn nudge;
  void *ctx;
  struct committer *c;
  size_t n;
};

static void table_of(const struct committer *c, struct bf_wtable *t) {
  *t = (struct bf_wtable){c->schema, "events", event_cols, E_NCOLS, event_key, 3, true};
}

/* Where destination's events go: the write-back warehouse of the first sync
 * that feeds it, else that sync's own warehouse, else the project's
 * write_back, else the first warehouse that can be written. */
static const struct bf_warehouse_config *target_of(const struct bf_config *cfg, const char *dest,
                                                   const char **schema) {
  *schema = "backflow";
  for (size_t i = 0; i < cfg->n_syncs; i++) {
    const struct bf_sync_config *sc = &cfg->syncs[i];
    if (strcmp(sc->destination, dest)) continue;
    struct bf_writeback_target t;
    if (bf_writeback_target(cfg, sc->name, &t)) {
      *schema = t.schema;
      return t.wh;
    }
    const struct bf_model_config *m = bf_config_model(cfg, sc->model);
    const struct bf_warehouse_config *w = m ? bf_config_warehouse(cfg, m->warehouse) : NULL;
    const struct bf_source_type *st = w ? bf_source_type_find(w->type) : NULL;
    if (st && st->write) return w;
  }
  const struct bf_node *wb = bf_node_get(cfg->root, "write_back");
  const char *name = wb && wb->kind == BF_NODE_MAP ? bf_node_get_str(wb, "warehouse") : NULL;
  const struct bf_warehouse_config *w = name ? bf_config_warehouse(cfg, name) : NULL;
  if (w) {
    const char *sch = bf_node_get_str(wb, "schema");
    if (sch && *sch) *schema = sch;
    return w;
  }
  for (size_t i = 0; i < cfg->n_warehouses; i++) {
    const struct bf_source_type *st = bf_source_type_find(cfg->warehouses[i].type);
    if (st && st->write) return &cfg->warehouses[i];
  }
  return NULL;
}

static struct committer *committer_of(struct bf_hook_store *s, const char *dest) {
  const char *schema;
  const struct bf_warehouse_config *wh = target_of(s->cfg, dest, &schema);
  for (size_t i = 0; wh && i < s->n; i++)
    if (s->c[i].wh == wh && !strcmp(s->c[i].schema, schema)) return &s->c[i];
  return NULL;
}

/* Writes the tickets in one transaction; returns 0 or fills err. */
static int commit(struct committer *c, struct ticket *list, struct bf_error *err) {
  size_t rows = 0;
  for (struct ticket *t = list; t; t = t->next) rows += t->n;
  struct bf_value *v = bf_xcalloc((rows ? rows : 1) * E_NCOLS, sizeof *v);
  bool *fresh = bf_xcalloc(rows ? rows : 1, sizeof *fresh);
  size_t r = 0;
  for (struct ticket *t = list; t; t = t->next)
    for (size_t i = 0; i < t->n; i++, r++) {
      struct bf_value *row = v + r * E_NCOLS;
      row[E_RECEIVED] = bf_wint(t->received_ms);
      row[E_DEST] = bf_wtext(t->dest);
      row[E_EVENT] = bf_wtext(t->evs[i].event);
      row[E_PERSON] = bf_wtext(t->evs[i].person_hash[0] ? t->evs[i].person_hash : NULL);
      row[E_PAYLOAD] = bf_wtext(t->evs[i].payload ? t->evs[i].payload : "{}");
      row[E_WID] = bf_wtext(t->webhook_id);
      row[E_SEQ] = bf_wint((long long)i);
    }
  int rc = 0;
  if (!c->w) rc = bf_writer_open(c->wh, c->s->cfg, &c->w, err);
  struct bf_wtable tab;
  table_of(c, &tab);
  if (rc == 0) rc = bf_writer_write(c->w, &tab, v, rows, fresh, err);
  if (rc) {
    bf_writer_close(c->w); /* reconnect next time: the connection may be what failed */
    c->w = NULL;
  } else {
    r = 0;
    for (struct ticket *t = list; t; t = t->next) {
      t->stored = 0;
      for (size_t i = 0; i < t->n; i++, r++) t->stored += fresh[r];
    }
  }
  free(v);
  free(fresh);
  return rc;
}

static void nudge_new(struct committer *c, struct ticket *list) {
  if (!c->s->nudge) return;
  for (struct ticket *t = list; t; t = t->next) {
    if (t->rc || !t->stored) continue;
    const char **idents = bf_xcalloc(t->n, sizeof *idents);
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++)
      if (t->evs[i].ident) idents[k++] = t->evs[i].ident;
    if (k) c->s->nudge(c->s->ctx, t->dest, idents, k);
    free(idents);
  }
}

static void *committer_main(void *arg) {
  struct committer *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->head && !c->stop) pthread_cond_wait(&c->work, &c->mu);
    if (!c->head) break;
    struct ticket *list = c->head;
    c->head = NULL;
    c->tail = &c->head;
    pthread_mutex_unlock(&c->mu);
    struct bf_error err = {0};
    long long t0 = bf_now_ms();
    int rc = commit(c, list, &err);
    if (rc)
      bf_log_error("hooks: cannot store events in warehouse '%s': %s", c->wh->name, err.msg);
    else
      bf_log_debug("hooks: group commit into warehouse '%s' in %lld ms", c->wh->name,
                   bf_now_ms() - t0);
    for (struct ticket *t = list; t; t = t->next) {
      t->rc = rc ? 503 : 0;
      if (rc) snprintf(t->why, sizeof t->why, "%s", err.msg);
    }
    /* Before the answers: the events are committed, and the senders'
     * tickets (with the identifiers) live until they are woken. */
    nudge_new(c, list);
    pthread_mutex_lock(&c->mu);
    for (struct ticket *t = list; t; t = t->next) t->done = true;
    pthread_cond_broadcast(&c->done);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

struct bf_hook_store *bf_hook_store_new(const struct bf_config *cfg, bf_hook_nudge_fn nudge,
                                        void *ctx) {
  struct bf_hook_store *s = bf_xcalloc(1, sizeof *s);
  s->cfg = cfg;
  s->nudge = nudge;
  s->ctx = ctx;
  s->c = bf_xcalloc(cfg->n_destinations ? cfg->n_destinations : 1, sizeof *s->c);
  for (size_t i = 0; i < cfg->n_destinations; i++) {
    const char *schema;
    const struct bf_warehouse_config *wh = target_of(cfg, cfg->destinations[i].name, &schema);
    if (!wh || committer_of(s, cfg->destinations[i].name)) continue;
    struct committer *c = &s->c[s->n++];
    c->s = s;
    c->wh = wh;
    c->schema = schema;
    c->tail = &c->head;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->done, NULL);
    /* The table exists before any model runs, so a model may JOIN it from
     * its first run; a warehouse down now is retried by the first commit. */
    struct bf_error err = {0};
    struct bf_wtable tab;
    table_of(c, &tab);
    if (bf_writer_open(wh, cfg, &c->w, &err) || c->w->ops->ensure(c->w, &tab, &err)) {
      bf_log_warn("hooks: warehouse '%s' cannot take events yet: %s", wh->name, err.msg);
      bf_writer_close(c->w);
      c->w = NULL;
    }
    c->started = pthread_create(&c->thread, NULL, committer_main, c) == 0;
    if (!c->started) bf_log_error("hooks: cannot start the committer of '%s'", wh->name);
  }
  return s;
}

void bf_hook_store_free(struct bf_hook_store *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) {
    struct committer *c = &s->c[i];
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    if (c->started) pthread_join(c->thread, NULL);
    bf_writer_close(c->w);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->done);
  }
  free(s->c);
  free(s);
}

int bf_hook_store_put(struct bf_hook_store *s, const char *destination, const char *webhook_id,
                      const struct bf_hook_event *evs, size_t n, long long *stored, char *why,
                      size_t cap) {
  *stored = 0;
  struct committer *c = committer_of(s, destination);
  if (!c || !c->started) {
    snprintf(why, cap, "no warehouse of this project can hold events");
    return 501;
  }
  struct ticket t = {destination, webhook_id, evs, n, bf_now_ms(), false, 0, 0, "", NULL};
  pthread_mutex_lock(&c->mu);
  if (c->stop) {
    pthread_mutex_unlock(&c->mu);
    snprintf(why, cap, "the server is stopping");
    return 503;
  }
  *c->tail = &t;
  c->tail = &t.next;
  pthread_cond_signal(&c->work);
  while (!t.done) pthread_cond_wait(&c->done, &c->mu);
  pthread_mutex_unlock(&c->mu);
  *stored = t.stored;
  if (t.rc) snprintf(why, cap, "%s", t.why);
  return t.rc;
}

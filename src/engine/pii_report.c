/* The PII footprint per destination (`backflow pii`, GET /api/pii). For every sync:
 * which of its model's PII columns (models' `pii:`) reach which destination
 * fields and how (in clear, hashed, dropped), how many records the
 * destination holds (the sync's state), and whether sealed identifiers are
 * kept for it (the vault). Then the suppression list and pending erasures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/pii_report.h"
#include "engine/forget.h"
#include "engine/idindex.h"
#include "engine/forgotten.h"
#include "util/fsutil.h"
#include "engine/state.h"
#include "engine/vault.h"

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

struct dest_use {
  const char *field;
  const char *role;       /* match | field */
  const char *policy;     /* allow | hash | drop: what is done */
  const char *configured; /* pii_policy as written, when it does not apply */
};

static size_t uses_of(const struct bf_sync_config *s, const char *column, struct dest_use *out) {
  size_t n = 0;
  const char *configured = bf_pairs_get(&s->pii_policy, column);
  for (size_t i = 0; i < s->match.n; i++) {
    if (strcmp(s->match.items[i].value, column)) continue;
    /* A match value identifies the record: sent as it is, or as its hash
     * (config refuses `drop` on a match column). */
    bool hashed = configured && !strcmp(configured, "hash");
    out[n++] = (struct dest_use){s->match.items[i].key, "match", hashed ? "hash" : "allow", NULL};
  }
  for (size_t i = 0; i < s->fields.n; i++) {
    if (strcmp(s->fields.items[i].value, column)) continue;
    out[n++] =
        (struct dest_use){s->fields.items[i].key, "field", configured ? configured : "allow", NULL};
  }
  return n;
}

static const char *summary(const struct dest_use *u, size_t n) {
  if (n == 0) return "not_mapped";
  bool clear = false, hashed = false;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(u[i].policy, "allow")) clear = true;
    if (!strcmp(u[i].policy, "hash")) hashed = true;
  }
  return clear ? "clear" : hashed ? "hashed" : "dropped";
}

/* The first problem is the report's error. */
static void note(struct bf_error *err, const struct bf_error *e) {
  if (!err->code) *err = *e;
}

int bf_pii_report(struct bf_project *p, struct bf_buf *json, struct bf_buf *text,
                  struct bf_error *err) {
  const struct bf_config *cfg = p->cfg;
  struct bf_buf out = {0}, scratch = {0};
  if (!text) text = &scratch;
  int status = 0;
  bf_buf_puts(&out, "{\"syncs\":[");
  for (size_t si = 0; si < cfg->n_syncs; si++) {
    const struct bf_sync_config *s = &cfg->syncs[si];
    const struct bf_model_config *m = bf_config_model(cfg, s->model);
    const struct bf_destination_config *dc = bf_config_destination(cfg, s->destination);
    char *dir = bf_project_sync_dir(p, s->name);
    long long records = -1, vault = -1, indexed = -1;
    bool index_complete = false;
    if (access(dir, F_OK) == 0) {
      struct bf_state *st = NULL;
      struct bf_error serr = {0};
      if (bf_state_open(dir, false, p->has_secret ? &p->prf : NULL, &st, &serr) == 0)
        records = (long long)bf_state_count(st);
      else
        note(err, &serr);
      bf_state_free(st);
      char *vp = bf_xasprintf("%s/vault.bin", dir);
      vault = bf_vault_live_entries(vp);
      free(vp);
      struct bf_error ierr = {0};
      if (bf_idindex_check(dir, p->has_secret ? &p->prf : NULL, &indexed, &index_complete, &ierr)) {
        note(err, &ierr);
        status = 2;
      }
    }
    free(dir);
    if (si) bf_buf_putc(&out, ',');
    bf_buf_puts(&out, "{\"sync\":");
    bf_json_cstr(&out, s->name);
    bf_buf_puts(&out, ",\"model\":");
    bf_json_cstr(&out, m->name);
    bf_buf_puts(&out, ",\"destination\":");
    bf_json_cstr(&out, dc->name);
    bf_buf_puts(&out, ",\"destination_type\":");
    bf_json_cstr(&out, dc->type);
    bf_buf_puts(&out, ",\"mode\":");
    bf_json_cstr(&out, bf_sync_mode_name(s->mode));
    bf_buf_puts(&out, ",\"records\":");
    if (records >= 0)
      bf_buf_printf(&out, "%lld", records);
    else
      bf_buf_puts(&out, "null");
    bf_buf_puts(&out, ",\"vault\":");
    if (vault >= 0)
      bf_buf_printf(&out, "{\"entries\":%lld}", vault);
    else
      bf_buf_puts(&out, "null");
    bf_buf_puts(&out, ",\"identifier_index\":");
    if (indexed >= 0)
      bf_buf_printf(&out, "{\"pairs\":%lld,\"complete\":%s}", indexed,
                    index_complete ? "true" : "false");
    else
      bf_buf_puts(&out, "null");
    {
      bf_buf_printf(text, "%s: model %s -> %s (%s), mode %s, ", s->name, m->name, dc->name,
                    dc->type, bf_sync_mode_name(s->mode));
      if (records >= 0)
        bf_buf_printf(text, "%lld record(s) at the destination\n", records);
      else
        bf_buf_printf(text, "never ran\n");
    }
    bf_buf_puts(&out, ",\"pii\":[");
    struct dest_use *uses = bf_xcalloc(s->match.n + s->fields.n + 1, sizeof *uses);
    for (size_t ci = 0; ci < m->pii.n; ci++) {
      const char *column = m->pii.items[ci].key, *kind = m->pii.items[ci].value;
      size_t n = uses_of(s, column, uses);
      if (ci) bf_buf_putc(&out, ',');
      bf_buf_puts(&out, "{\"column\":");
      bf_json_cstr(&out, column);
      bf_buf_puts(&out, ",\"kind\":");
      bf_json_cstr(&out, kind);
      bf_buf_puts(&out, ",\"sent\":");
      bf_json_cstr(&out, summary(uses, n));
      bf_buf_puts(&out, ",\"destination_fields\":[");
      for (size_t k = 0; k < n; k++) {
        if (k) bf_buf_putc(&out, ',');
        bf_buf_puts(&out, "{\"field\":");
        bf_json_cstr(&out, uses[k].field);
        bf_buf_puts(&out, ",\"role\":");
        bf_json_cstr(&out, uses[k].role);
        bf_buf_puts(&out, ",\"policy\":");
        bf_json_cstr(&out, uses[k].policy);
        if (uses[k].configured) {
          bf_buf_puts(&out, ",\"configured_policy\":");
          bf_json_cstr(&out, uses[k].configured);
        }
        bf_buf_putc(&out, '}');
      }
      bf_buf_puts(&out, "]}");
      {
        bf_buf_printf(text, "  %s (%s): ", column, kind);
        if (n == 0) bf_buf_printf(text, "not mapped: never leaves the warehouse");
        for (size_t k = 0; k < n; k++) {
          const char *how = !strcmp(uses[k].policy, "allow") ? "in clear"
                            : !strcmp(uses[k].policy, "hash")
                                ? "hashed (SHA-256 of the normalised value)"
                                : "dropped (never sent)";
          bf_buf_printf(text, "%s%s %s %s", k ? "; " : "", uses[k].role, uses[k].field, how);
          if (uses[k].configured)
            bf_buf_printf(text, " (pii_policy '%s' does not apply to a match column)",
                          uses[k].configured);
        }
        bf_buf_printf(text, "\n");
      }
    }
    free(uses);
    bf_buf_puts(&out, "]}");
    {
      if (m->pii.n == 0) bf_buf_printf(text, "  (model %s declares no pii columns)\n", m->name);
      if (vault >= 0)
        bf_buf_printf(text, "  sealed identifiers kept for deletes (vault): %lld\n", vault);
      if (indexed >= 0)
        bf_buf_printf(text,
                      "  identifier index (email/phone keyed hash -> record): %lld pair(s)%s\n",
                      indexed, index_complete ? "" : ", being completed by the next run");
    }
  }
  bf_buf_puts(&out, "]");
  /* The suppression list and the pending erasures. */
  struct bf_forgotten_entry *fe = NULL;
  size_t n_fe = 0, n_requests = 0;
  struct bf_error ferr = {0};
  if (bf_forgotten_read(p->state_dir, p->has_secret ? &p->prf : NULL, &fe, &n_fe, &ferr)) {
    note(err, &ferr);
    status = 2;
  }
  uint64_t *ids = bf_xcalloc(n_fe + 1, sizeof *ids);
  for (size_t i = 0; i < n_fe; i++) ids[i] = fe[i].request;
  qsort(ids, n_fe, sizeof *ids, cmp_u64);
  for (size_t i = 0; i < n_fe; i++) n_requests += i == 0 || ids[i] != ids[i - 1];
  free(ids);
  free(fe);
  size_t pend_items = 0, pend_requests = 0;
  struct bf_error perr = {0};
  if (bf_forget_pending_count(p, &pend_items, &pend_requests, &perr)) {
    note(err, &perr);
    status = 2;
  }
  bf_buf_printf(&out,
                ",\"suppression\":{\"entries\":%zu,\"requests\":%zu},"
                "\"pending_erasures\":{\"requests\":%zu,\"syncs\":%zu}}\n",
                n_fe, n_requests, pend_requests, pend_items);
  {
    bf_buf_printf(
        text, "erased people (suppression list, keyed hashes only): %zu request(s), %zu hash(es)\n",
        n_requests, n_fe);
    if (pend_requests)
      bf_buf_printf(
          text,
          "pending erasures: %zu request(s) over %zu sync(s), identifiers sealed until done: "
          "`backflow forget --retry`\n",
          pend_requests, pend_items);
  }
  bf_buf_append(json, out.data, out.len);
  bf_buf_release(&out);
  bf_buf_release(&scratch);
  return status ? err->code : 0;
}

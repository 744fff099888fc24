/* backflow errors SYNC --reveal: the primary keys behind a run's row-level
 * errors. The run log names rows only by keyed hash (design.md §2); here the
 * model is read again and every key hashed with the project secret, locally,
 * and the keys whose hash matches an error are printed. Nothing is written:
 * the plaintext keys exist only in this process and on its stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/jsonw.h"
#include "spec/mapping.h"
#include "engine/runlog.h"
#include "sources/source.h"

#define REVEAL_CHUNK_ROWS 1024

struct wanted_hash {
  const char *hex; /* borrowed from the error */
  size_t error;    /* index of the first error with it */
};

static int cmp_hash(const void *a, const void *b) {
  return strcmp(((const struct wanted_hash *)a)->hex, ((const struct wanted_hash *)b)->hex);
}

/* Scans the model and fills keys[i] (the canonical text of the primary key,
 * caller frees) and types[i] for each error i whose hash some row has. */
static int find_keys(struct bf_project *p, const struct bf_sync_config *s,
                     const struct bf_run_error *errs, size_t n, char **keys, enum bf_type *types,
                     struct bf_error *err) {
  const struct bf_config *cfg = p->cfg;
  const struct bf_model_config *m = bf_config_model(cfg, s->model);
  struct wanted_hash *want = bf_xcalloc(n ? n : 1, sizeof *want);
  size_t n_want = 0;
  for (size_t i = 0; i < n; i++)
    if (errs[i].key_hash[0]) want[n_want++] = (struct wanted_hash){errs[i].key_hash, i};
  qsort(want, n_want, sizeof *want, cmp_hash);
  struct bf_source *src = NULL;
  struct bf_cursor *cur = NULL;
  bool *wanted_cols = NULL;
  struct bf_rowbuf rb = {0};
  struct bf_buf keybuf = {0};
  bool rb_ready = false;
  int rc = bf_source_open(bf_config_warehouse(cfg, m->warehouse), cfg, &src, err);
  if (rc || n_want == 0) goto out;
  if ((rc = bf_source_query(src, m->sql, &cur, err))) {
    bf_error_prefix(err, "%s:%d:%d: model '%s': SQL error", m->sql_loc.file, m->sql_loc.line,
                    m->sql_loc.col, m->name);
    goto out;
  }
  size_t pk = 0;
  while (pk < cur->ncols && strcmp(cur->column_names[pk], m->primary_key)) pk++;
  if (pk == cur->ncols) {
    rc = bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: model '%s' has no column '%s' (primary_key)",
                      m->primary_key_loc.file, m->primary_key_loc.line, m->primary_key_loc.col,
                      m->name, m->primary_key);
    goto out;
  }
  wanted_cols = bf_xcalloc(cur->ncols, sizeof *wanted_cols);
  wanted_cols[pk] = true; /* only the key is read */
  cur->wanted = wanted_cols;
  bf_rowbuf_init(&rb, cur->ncols, REVEAL_CHUNK_ROWS);
  rb_ready = true;
  for (;;) {
    bf_rowbuf_clear(&rb);
    int got = cur->ops->next_chunk(cur, &rb, err);
    if (got < 0) {
      rc = got;
      break;
    }
    if (got == 0) break;
    for (size_t r = 0; r < rb.nrows; r++) {
      const struct bf_value *v = &bf_rowbuf_row(&rb, r)[pk];
      if (!bf_mapping_key_bytes(v, &keybuf)) continue;
      unsigned char key[BF_KEY_HASH_BYTES];
      char hex[33];
      bf_prf_key(&p->prf, keybuf.data, keybuf.len, key);
      bf_key_hex(key, hex);
      struct wanted_hash probe = {hex, 0};
      const struct wanted_hash *hit = bsearch(&probe, want, n_want, sizeof *want, cmp_hash);
      if (!hit) continue;
      /* Every error with this hash (a key can be rejected more than once). */
      for (const struct wanted_hash *h = hit; h > want && !strcmp(h[-1].hex, hex);) hit = --h;
      for (; hit < want + n_want && !strcmp(hit->hex, hex); hit++) {
        if (keys[hit->error]) continue;
        keys[hit->error] = bf_xstrndup(keybuf.data, keybuf.len);
        types[hit->error] = v->type;
      }
    }
  }
out:
  if (rb_ready) bf_rowbuf_release(&rb);
  bf_buf_release(&keybuf);
  bf_cursor_free(cur);
  free(wanted_cols);
  bf_source_close(src);
  free(want);
  return rc;
}

int bf_cli_errors_reveal(struct bf_cli *cli, struct bf_project *p, const char *sync,
                         long long run_id, const struct bf_run_error *errs, size_t n,
                         struct bf_error *err) {
  const struct bf_sync_config *s = bf_config_sync(p->cfg, sync);
  int rc = bf_config_require_sync(p->cfg, sync, err);
  if (rc) return bf_code_exit_status(rc);
  rc = bf_project_secret(p, false, err);
  if (rc == 1) rc = bf_error_set(err, BF_E_USAGE, "sync '%s' has no runs yet", sync);
  if (rc) return bf_code_exit_status(rc);
  char **keys = bf_xcalloc(n ? n : 1, sizeof *keys);
  enum bf_type *types = bf_xcalloc(n ? n : 1, sizeof *types);
  int status = 0;
  if ((rc = find_keys(p, s, errs, n, keys, types, err))) {
    status = bf_code_exit_status(rc);
    goto out;
  }
  size_t found = 0;
  for (size_t i = 0; i < n; i++) found += keys[i] != NULL;
  if (cli->json) {
    struct bf_buf out = {0};
    bf_buf_puts(&out, "{\"sync\":");
    bf_json_cstr(&out, sync);
    bf_buf_printf(&out, ",\"run_id\":%lld,\"revealed\":%zu,\"errors\":[", run_id, found);
    for (size_t i = 0; i < n; i++) {
      bf_buf_puts(&out, i ? ",{\"key\":" : "{\"key\":");
      if (keys[i]) {
        struct bf_value v = {.type = types[i] == BF_INT ? BF_INT : BF_TEXT};
        if (v.type == BF_INT)
          v.u.i = strtoll(keys[i], NULL, 10);
        else
          v.u.s = keys[i], v.len = (uint32_t)strlen(keys[i]);
        bf_json_value(&out, &v);
      } else {
        bf_buf_puts(&out, "null");
      }
      bf_buf_puts(&out, ",\"key_hash\":");
      bf_json_cstr(&out, errs[i].key_hash);
      bf_buf_puts(&out, ",\"column\":");
      if (errs[i].column)
        bf_json_cstr(&out, errs[i].column);
      else
        bf_buf_puts(&out, "null");
      bf_buf_puts(&out, ",\"reason\":");
      bf_json_cstr(&out, errs[i].reason);
      bf_buf_putc(&out, '}');
    }
    bf_buf_puts(&out, "]}\n");
    fwrite(out.data, 1, out.len, stdout);
    bf_buf_release(&out);
  } else {
    const struct bf_model_config *m = bf_config_model(p->cfg, s->model);
    printf("run %lld of %s: %zu row-level error%s, %zu with the key found in model %s\n", run_id,
           sync, n, n == 1 ? "" : "s", found, m->name);
    printf("  %-24s %-12s %s\n", m->primary_key, "COLUMN", "REASON");
    for (size_t i = 0; i < n; i++) {
      const char *shown = keys[i]                ? keys[i]
                          : !errs[i].key_hash[0] ? "(NULL)"
                                                 : "(not in the model now)";
      printf("  %-24s %-12s %s\n", shown, errs[i].column ? errs[i].column : "-", errs[i].reason);
    }
  }
out:
  for (size_t i = 0; i < n; i++) free(keys[i]);
  free(keys);
  free(types);
  return status;
}

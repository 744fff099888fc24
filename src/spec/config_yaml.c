/* backflow.yml text -> struct bf_node tree, from libyaml's event API (not its
 * document API) so that anchors and aliases can be refused before they are
 * expanded, nesting and node counts can be capped, and every node keeps its
 * own file:line:col; ${NAME} is substituted here (config.c checks the tree). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "spec/config_internal.h"

/* ---------------------------------------------------------------------- */
/* YAML -> tree */

struct yparse {
  yaml_parser_t yp;
  const char *file;
  const unsigned char *text;
  size_t len;
  size_t n_nodes;
  struct bf_error *err;
};

static struct bf_loc mark_loc(const struct yparse *p, yaml_mark_t m) {
  return (struct bf_loc){p->file, (int)m.line + 1, (int)m.column + 1};
}

/* libyaml's reader errors carry a byte offset, not a mark. */
static struct bf_loc offset_loc(const struct yparse *p, size_t offset) {
  struct bf_loc loc = {p->file, 1, 1};
  for (size_t i = 0; i < offset && i < p->len; i++) {
    if (p->text[i] == '\n') {
      loc.line++;
      loc.col = 1;
    } else if ((p->text[i] & 0xC0) != 0x80) {
      loc.col++;
    }
  }
  return loc;
}

static int yaml_fail(struct yparse *p) {
  yaml_parser_t *y = &p->yp;
  if (y->error == YAML_MEMORY_ERROR)
    return bf_error_set(p->err, BF_E_NOMEM, "%s: out of memory while reading YAML", p->file);
  if (y->error == YAML_READER_ERROR)
    return bf_config_loc_error(p->err, offset_loc(p, y->problem_offset),
                               "invalid YAML: %s (byte 0x%02x); expected UTF-8 text",
                               y->problem ? y->problem : "unreadable input",
                               (unsigned)(y->problem_value & 0xff));
  const char *problem = y->problem ? y->problem : "malformed document";
  if (y->context) {
    struct bf_loc ctx = mark_loc(p, y->context_mark);
    return bf_config_loc_error(p->err, mark_loc(p, y->problem_mark),
                               "invalid YAML: %s (%s that starts at line %d, column %d)", problem,
                               y->context, ctx.line, ctx.col);
  }
  return bf_config_loc_error(p->err, mark_loc(p, y->problem_mark), "invalid YAML: %s", problem);
}

static int next_event(struct yparse *p, yaml_event_t *ev) {
  if (!yaml_parser_parse(&p->yp, ev)) {
    memset(ev, 0, sizeof *ev);
    return yaml_fail(p);
  }
  return 0;
}

static int node_new(struct yparse *p, enum bf_node_kind kind, yaml_mark_t m, struct bf_node **out) {
  if (++p->n_nodes > CONFIG_MAX_NODES)
    return bf_config_loc_error(p->err, mark_loc(p, m),
                               "too many YAML values (more than %d); expected a configuration of "
                               "reasonable size",
                               CONFIG_MAX_NODES);
  struct bf_node *n = bf_xcalloc(1, sizeof *n);
  n->kind = kind;
  n->loc = mark_loc(p, m);
  *out = n;
  return 0;
}

/* Anchors, aliases and tags other than the plain ones are refused: aliases
 * make a small file expand into a huge tree ("billion laughs") and make
 * "where was this written" ambiguous. */
static int check_props(struct yparse *p, yaml_mark_t m, const yaml_char_t *anchor,
                       const yaml_char_t *tag, const char *plain_tag) {
  struct shown b;
  if (anchor)
    return bf_config_loc_error(p->err, mark_loc(p, m),
                               "YAML anchors (&%s) are not supported; expected each value written "
                               "out in full",
                               bf_config_show_text(&b, (const char *)anchor, false));
  if (tag && strcmp((const char *)tag, "!") && strcmp((const char *)tag, plain_tag))
    return bf_config_loc_error(
        p->err, mark_loc(p, m),
        "YAML tags (%s) are not supported; expected a plain value without a tag",
        bf_config_show_text(&b, (const char *)tag, false));
  return 0;
}

/* Replaces ${NAME} with getenv("NAME") and $${ with a literal ${. Two
 * passes (measure, then write) so the result is allocated once and no
 * partial copies of a secret are left in freed memory. A variable that is
 * not set is not an error here: *unset_var names it and the value becomes
 * "", and only a command that needs the value refuses it (config_env.c). */
static int substitute(struct yparse *p, const char *in, size_t len, struct bf_loc loc, char **out,
                      bool *from_env, char **unset_var) {
  *out = NULL;
  *from_env = false;
  *unset_var = NULL;
  for (int pass = 0; pass < 2; pass++) {
    size_t o = 0;
    char *buf = *out;
    for (size_t i = 0; i < len;) {
      if (in[i] == '$' && i + 2 < len && in[i + 1] == '$' && in[i + 2] == '{') {
        if (buf) memcpy(buf + o, "${", 2);
        o += 2;
        i += 3;
        continue;
      }
      if (in[i] != '$' || i + 1 >= len || in[i + 1] != '{') {
        if (buf) buf[o] = in[i];
        o++;
        i++;
        continue;
      }
      const char *name = in + i + 2;
      const char *end = memchr(name, '}', len - i - 2);
      if (!end)
        return bf_config_loc_error(
            p->err, loc, "unterminated '${'; expected ${NAME} (write $${ for a literal ${)");
      size_t name_len = (size_t)(end - name);
      bool ok = name_len > 0 && bf_config_is_name_start(name[0]);
      for (size_t k = 1; ok && k < name_len; k++) ok = bf_config_is_name_char(name[k]);
      char *var = bf_xstrndup(name, name_len);
      if (!ok) {
        struct shown b;
        int rc =
            bf_config_loc_error(p->err, loc,
                                "invalid environment variable reference ${%s}; expected ${NAME} "
                                "with NAME made of letters, digits and '_', not starting with a "
                                "digit (write $${ for a literal ${)",
                                bf_config_show_text(&b, var, false));
        free(var);
        return rc;
      }
      const char *value = getenv(var);
      if (!value && !*unset_var) {
        *unset_var = var;
        var = NULL;
      }
      free(var);
      if (!value) {
        *from_env = true;
        i += 2 + name_len + 1;
        continue;
      }
      size_t vlen = strlen(value);
      if (buf) memcpy(buf + o, value, vlen);
      o += vlen;
      i += 2 + name_len + 1;
      *from_env = true;
    }
    if (buf) {
      buf[o] = '\0';
    } else {
      *out = bf_xmalloc(o + 1);
    }
  }
  return 0;
}

static int build_node(struct yparse *p, yaml_event_t *ev, int depth, struct bf_node **out);

static int build_scalar(struct yparse *p, yaml_event_t *ev, struct bf_node **out) {
  int rc =
      check_props(p, ev->start_mark, ev->data.scalar.anchor, ev->data.scalar.tag, YAML_STR_TAG);
  if (rc) return rc;
  const char *value = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  if (memchr(value, '\0', len))
    return bf_config_loc_error(p->err, mark_loc(p, ev->start_mark),
                               "value contains a NUL character; expected text");
  struct bf_node *n;
  if ((rc = node_new(p, BF_NODE_SCALAR, ev->start_mark, &n))) return rc;
  *out = n;
  n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
              ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  rc = substitute(p, value, len, n->loc, &n->scalar, &n->from_env, &n->unset_var);
  if (n->unset_var && n->scalar) { /* scalar is NULL after an error */
    /* Nothing of a half-resolved value is kept (it may hold a secret). */
    explicit_bzero(n->scalar, strlen(n->scalar));
    n->scalar[0] = '\0';
  }
  return rc;
}

static int check_depth(struct yparse *p, yaml_mark_t m, int depth) {
  if (depth > CONFIG_MAX_DEPTH)
    return bf_config_loc_error(p->err, mark_loc(p, m),
                               "values are nested more than %d levels deep; expected a flatter "
                               "configuration",
                               CONFIG_MAX_DEPTH);
  return 0;
}

static void grow(struct bf_node *n, size_t *cap) {
  if (n->n < *cap) return;
  *cap = *cap ? 2 * *cap : 4;
  n->items = bf_xrealloc(n->items, *cap * sizeof *n->items);
  if (n->kind == BF_NODE_MAP) {
    n->keys = bf_xrealloc(n->keys, *cap * sizeof *n->keys);
    n->key_locs = bf_xrealloc(n->key_locs, *cap * sizeof *n->key_locs);
  }
}

static int build_seq(struct yparse *p, yaml_event_t *ev, int depth, struct bf_node **out) {
  int rc = check_props(p, ev->start_mark, ev->data.sequence_start.anchor,
                       ev->data.sequence_start.tag, YAML_SEQ_TAG);
  if (rc || (rc = check_depth(p, ev->start_mark, depth))) return rc;
  struct bf_node *n;
  if ((rc = node_new(p, BF_NODE_SEQ, ev->start_mark, &n))) return rc;
  *out = n;
  size_t cap = 0;
  for (;;) {
    yaml_event_t item;
    if ((rc = next_event(p, &item))) return rc;
    if (item.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&item);
      return 0;
    }
    grow(n, &cap);
    n->items[n->n++] = NULL; /* attached before it is built: freed with n */
    rc = build_node(p, &item, depth + 1, &n->items[n->n - 1]);
    yaml_event_delete(&item);
    if (rc) return rc;
  }
}

static int check_key(struct yparse *p, yaml_event_t *ev) {
  struct bf_loc loc = mark_loc(p, ev->start_mark);
  struct shown b;
  switch (ev->type) {
  case YAML_ALIAS_EVENT:
    return bf_config_loc_error(p->err, loc,
                               "YAML aliases (*%s) are not supported; expected each value written "
                               "out in full",
                               bf_config_show_text(&b, (const char *)ev->data.alias.anchor, false));
  case YAML_MAPPING_START_EVENT:
  case YAML_SEQUENCE_START_EVENT:
    return bf_config_loc_error(p->err, loc, "found %s used as a key; expected a string key",
                               ev->type == YAML_MAPPING_START_EVENT ? "a mapping" : "a sequence");
  case YAML_SCALAR_EVENT: break;
  default: return bf_config_loc_error(p->err, loc, "unexpected YAML structure; expected a key");
  }
  int rc =
      check_props(p, ev->start_mark, ev->data.scalar.anchor, ev->data.scalar.tag, YAML_STR_TAG);
  if (rc) return rc;
  const char *key = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  if (plain && !strcmp(key, "<<"))
    return bf_config_loc_error(p->err, loc,
                               "YAML merge keys (<<) are not supported; expected each key written "
                               "out in full");
  if (memchr(key, '\0', len))
    return bf_config_loc_error(p->err, loc, "key contains a NUL character; expected text");
  if (len == 0 || (plain && (!strcmp(key, "~") || !strcmp(key, "null") || !strcmp(key, "Null") ||
                             !strcmp(key, "NULL"))))
    return bf_config_loc_error(p->err, loc,
                               "found an empty (null) key; expected a name before ':'");
  return 0;
}

static int build_map(struct yparse *p, yaml_event_t *ev, int depth, struct bf_node **out) {
  int rc = check_props(p, ev->start_mark, ev->data.mapping_start.anchor, ev->data.mapping_start.tag,
                       YAML_MAP_TAG);
  if (rc || (rc = check_depth(p, ev->start_mark, depth))) return rc;
  struct bf_node *n;
  if ((rc = node_new(p, BF_NODE_MAP, ev->start_mark, &n))) return rc;
  *out = n;
  struct strset seen = {0};
  size_t cap = 0;
  for (;;) {
    yaml_event_t kev;
    if ((rc = next_event(p, &kev))) break;
    if (kev.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&kev);
      break;
    }
    rc = check_key(p, &kev);
    struct bf_loc key_loc = mark_loc(p, kev.start_mark);
    char *key = rc ? NULL : bf_xstrdup((const char *)kev.data.scalar.value);
    yaml_event_delete(&kev);
    if (rc) break;
    if (++p->n_nodes > CONFIG_MAX_NODES) {
      free(key);
      rc = bf_config_loc_error(p->err, key_loc,
                               "too many YAML values (more than %d); expected a configuration of "
                               "reasonable size",
                               CONFIG_MAX_NODES);
      break;
    }
    size_t first;
    if (bf_strset_add(&seen, key, n->n, &first)) {
      struct shown b;
      rc = bf_config_loc_error(
          p->err, key_loc,
          "duplicate key %s (first given at line %d, column %d); expected each "
          "key once in a mapping",
          bf_config_show_text(&b, key, true), n->key_locs[first].line, n->key_locs[first].col);
      free(key);
      break;
    }
    grow(n, &cap);
    n->keys[n->n] = key;
    n->key_locs[n->n] = key_loc;
    n->items[n->n++] = NULL;
    yaml_event_t vev;
    if ((rc = next_event(p, &vev))) break;
    rc = build_node(p, &vev, depth + 1, &n->items[n->n - 1]);
    yaml_event_delete(&vev);
    if (rc) break;
  }
  bf_strset_free(&seen);
  return rc;
}

static int build_node(struct yparse *p, yaml_event_t *ev, int depth, struct bf_node **out) {
  struct shown b;
  switch (ev->type) {
  case YAML_SCALAR_EVENT: return build_scalar(p, ev, out);
  case YAML_SEQUENCE_START_EVENT: return build_seq(p, ev, depth, out);
  case YAML_MAPPING_START_EVENT: return build_map(p, ev, depth, out);
  case YAML_ALIAS_EVENT:
    return bf_config_loc_error(p->err, mark_loc(p, ev->start_mark),
                               "YAML aliases (*%s) are not supported; expected each value written "
                               "out in full",
                               bf_config_show_text(&b, (const char *)ev->data.alias.anchor, false));
  default:
    return bf_config_loc_error(p->err, mark_loc(p, ev->start_mark),
                               "unexpected YAML structure; expected a value");
  }
}

int bf_config_parse_tree(const char *file, const char *text, size_t len, struct bf_node **root,
                         struct bf_error *err) {
  struct yparse p = {.file = file, .text = (const unsigned char *)text, .len = len, .err = err};
  *root = NULL;
  if (!yaml_parser_initialize(&p.yp))
    return bf_error_set(err, BF_E_NOMEM, "%s: out of memory while reading YAML", file);
  yaml_parser_set_input_string(&p.yp, p.text, len);
  yaml_event_t ev;
  int rc = next_event(&p, &ev); /* STREAM-START */
  yaml_event_delete(&ev);
  if (rc || (rc = next_event(&p, &ev))) goto out;
  if (ev.type == YAML_STREAM_END_EVENT) {
    yaml_event_delete(&ev);
    rc = bf_config_loc_error(err, (struct bf_loc){file, 1, 1},
                             "the configuration is empty; expected a mapping starting with "
                             "'version: 1'");
    goto out;
  }
  yaml_event_delete(&ev); /* DOCUMENT-START */
  if ((rc = next_event(&p, &ev))) goto out;
  rc = build_node(&p, &ev, 1, root);
  yaml_event_delete(&ev);
  if (rc || (rc = next_event(&p, &ev))) goto out; /* DOCUMENT-END */
  yaml_event_delete(&ev);
  if ((rc = next_event(&p, &ev))) goto out;
  if (ev.type == YAML_DOCUMENT_START_EVENT)
    rc = bf_config_loc_error(err, mark_loc(&p, ev.start_mark),
                             "found a second YAML document; expected one document per file");
  yaml_event_delete(&ev);
out:
  yaml_parser_delete(&p.yp);
  if (rc) {
    bf_node_free(*root);
    *root = NULL;
  }
  return rc;
}

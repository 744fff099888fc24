/* `include:` (issue 18): the studio writes models/NAME.yml and
 * syncs/NAME.yml, and backflow.yml includes them, so UI edits and hand edits
 * live side by side as reviewable files. An included file holds `models:`,
 * `syncs:` and/or `destinations:` maps; their entries join the main file's
 * as if written there, keeping their own file:line:col for messages. */
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <string.h>

#include "spec/config_internal.h"
#include "util/fsutil.h"

#define MAX_INCLUDED_FILES 2000

/* Set for the duration of one bf_config_load_overlay() call on this thread. */
static _Thread_local const struct bf_config_overlay *overlay;

static const char *const mergeable[] = {"models", "syncs", "destinations", NULL};

static bool has_glob(const char *s) { return strpbrk(s, "*?[") != NULL; }

/* Relative, inside the project: no leading '/', no ".." segment. */
static bool inside_project(const char *s) {
  if (s[0] == '/') return false;
  for (const char *p = s; (p = strstr(p, "..")); p += 2)
    if ((p == s || p[-1] == '/') && (p[2] == 0 || p[2] == '/')) return false;
  return true;
}

static struct bf_node *map_item(struct bf_node *map, const char *key, size_t *index) {
  for (size_t i = 0; map && map->kind == BF_NODE_MAP && i < map->n; i++)
    if (!strcmp(map->keys[i], key)) {
      if (index) *index = i;
      return map->items[i];
    }
  return NULL;
}

static void map_push(struct bf_node *map, char *key, struct bf_loc key_loc, struct bf_node *v) {
  map->keys = bf_xrealloc(map->keys, (map->n + 1) * sizeof *map->keys);
  map->key_locs = bf_xrealloc(map->key_locs, (map->n + 1) * sizeof *map->key_locs);
  map->items = bf_xrealloc(map->items, (map->n + 1) * sizeof *map->items);
  map->keys[map->n] = key;
  map->key_locs[map->n] = key_loc;
  map->items[map->n] = v;
  map->n++;
}

static bool is_empty(const struct bf_node *n) {
  return n->kind == BF_NODE_SCALAR && !n->quoted &&
         (!n->scalar[0] || !strcmp(n->scalar, "~") || !strcmp(n->scalar, "null"));
}

/* Moves the entries of the included root inc into cfg->root. */
static int merge(struct bf_config *cfg, struct bf_node *inc, struct bf_error *err) {
  if (is_empty(inc)) return 0;
  if (inc->kind != BF_NODE_MAP)
    return bf_config_loc_error(err, inc->loc,
                               "an included file must be a mapping with models, syncs and/or "
                               "destinations");
  int rc = bf_node_check_keys(inc, "an included file", mergeable, err);
  if (rc) return rc;
  for (size_t k = 0; k < inc->n; k++) {
    struct bf_node *part = inc->items[k];
    if (is_empty(part)) continue;
    if (part->kind != BF_NODE_MAP)
      return bf_config_loc_error(err, part->loc, "expected a mapping for '%s'", inc->keys[k]);
    size_t at = 0;
    struct bf_node *dst = map_item(cfg->root, inc->keys[k], &at);
    if (!dst || is_empty(dst)) {
      /* Take the whole map over (replacing an empty `models:`). */
      if (dst) {
        bf_node_free(dst);
        cfg->root->items[at] = part;
      } else {
        map_push(cfg->root, bf_xstrdup(inc->keys[k]), inc->key_locs[k], part);
      }
      inc->items[k] = NULL;
      continue;
    }
    if (dst->kind != BF_NODE_MAP) continue; /* check_config reports the main file's mistake */
    for (size_t i = 0; i < part->n; i++) {
      size_t j;
      if (map_item(dst, part->keys[i], &j))
        return bf_config_loc_error(err, part->key_locs[i],
                                   "'%s' is already defined in '%s' at %s:%d:%d; names must be "
                                   "unique across included files",
                                   part->keys[i], inc->keys[k], dst->key_locs[j].file,
                                   dst->key_locs[j].line, dst->key_locs[j].col);
      map_push(dst, part->keys[i], part->key_locs[i], part->items[i]);
      part->keys[i] = NULL;
      part->items[i] = NULL;
    }
  }
  return 0;
}

static int include_file(struct bf_config *cfg, const char *path, struct bf_loc from,
                        struct bf_error *err) {
  if (cfg->n_include_files >= MAX_INCLUDED_FILES)
    return bf_config_loc_error(err, from, "more than %d included files", MAX_INCLUDED_FILES);
  for (size_t i = 0; i < cfg->n_include_files; i++)
    if (!strcmp(cfg->include_files[i], path)) return 0; /* listed twice: read once */
  unsigned char *text = NULL;
  size_t len = 0;
  char *ov_path = overlay ? bf_xasprintf("%s/%s", cfg->dir, overlay->rel) : NULL;
  bool from_overlay = ov_path && !strcmp(ov_path, path);
  free(ov_path);
  if (from_overlay) {
    len = strlen(overlay->text);
    text = (unsigned char *)bf_xstrdup(overlay->text);
  } else if (bf_read_file(path, &text, &len))
    return bf_config_loc_error(err, from, "cannot read included file %s: %s", path,
                               strerror(errno));
  if (len > CONFIG_MAX_BYTES) {
    free(text);
    return bf_config_loc_error(err, from, "included file %s is larger than 4 MiB", path);
  }
  cfg->include_files =
      bf_xrealloc(cfg->include_files, (cfg->n_include_files + 1) * sizeof *cfg->include_files);
  char *name = cfg->include_files[cfg->n_include_files++] = bf_xstrdup(path);
  struct bf_node *inc = NULL;
  int rc = bf_config_parse_tree(name, (const char *)text, len, &inc, err);
  free(text);
  if (!rc) rc = merge(cfg, inc, err);
  bf_node_free(inc);
  return rc;
}

int bf_config_expand_includes(struct bf_config *cfg, struct bf_error *err) {
  const struct bf_node *list = bf_node_get(cfg->root, "include");
  int rc = 0;
  bool overlay_done = false;
  if (!list || is_empty(list)) {
    if (!overlay) return 0;
    char *path = bf_xasprintf("%s/%s", cfg->dir, overlay->rel);
    rc = include_file(cfg, path, cfg->root->loc, err);
    free(path);
    return rc;
  }
  if (list->kind != BF_NODE_SEQ)
    return bf_config_loc_error(err, list->loc,
                               "'include' must be a list of files or patterns, e.g. "
                               "[models/*.yml, syncs/*.yml]");
  for (size_t i = 0; i < list->n && !rc; i++) {
    const struct bf_node *it = list->items[i];
    if (it->kind != BF_NODE_SCALAR || !it->scalar[0])
      return bf_config_loc_error(err, it->loc, "expected a file name or pattern in 'include'");
    if (!inside_project(it->scalar)) {
      struct shown b;
      return bf_config_loc_error(err, it->loc,
                                 "include %s: expected a path inside the project folder "
                                 "(relative, without '..')",
                                 bf_config_show_text(&b, it->scalar, true));
    }
    char *pattern = bf_xasprintf("%s/%s", cfg->dir, it->scalar);
    if (!has_glob(it->scalar)) {
      rc = include_file(cfg, pattern, it->loc, err);
    } else {
      glob_t g = {0};
      int grc = glob(pattern, 0, NULL, &g); /* a folder not there yet matches nothing */
      if (grc && grc != GLOB_NOMATCH)
        rc = bf_config_loc_error(err, it->loc, "cannot list include pattern '%s'", it->scalar);
      for (size_t j = 0; !rc && grc == 0 && j < g.gl_pathc; j++)
        rc = include_file(cfg, g.gl_pathv[j], it->loc, err);
      globfree(&g);
    }
    /* The overlay's file may not exist yet: it joins the first entry that
     * would list it. */
    if (!rc && overlay && !overlay_done && fnmatch(it->scalar, overlay->rel, FNM_PATHNAME) == 0) {
      overlay_done = true;
      char *path = bf_xasprintf("%s/%s", cfg->dir, overlay->rel);
      rc = include_file(cfg, path, it->loc, err);
      free(path);
    }
    free(pattern);
  }
  if (!rc && overlay && !overlay_done)
    rc = bf_config_loc_error(err, list->loc, "%s does not match any entry of 'include'",
                             overlay->rel);
  return rc;
}

int bf_config_load_overlay(const char *path, const struct bf_config_overlay *ov,
                           struct bf_config **out, struct bf_error *err) {
  overlay = ov;
  int rc = bf_config_load(path, out, err);
  overlay = NULL;
  return rc;
}

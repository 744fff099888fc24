/* What config.c and config_yaml.c share; not for other modules. */
#ifndef BF_CONFIG_INTERNAL_H
#define BF_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "spec/config.h"

/* Limits that keep a hostile or broken file from exhausting memory, stack
 * (the tree builder recurses once per nesting level) or CPU. */
#define CONFIG_MAX_BYTES ((size_t)4 * 1024 * 1024)
#define CONFIG_MAX_DEPTH 64
#define CONFIG_MAX_NODES 200000
#define NAME_MAX_LEN     128
#define SHOW_MAX         60  /* bytes of a value or key echoed in a message */
#define LIST_MAX         400 /* bytes of a "(known: ...)" list */

/* Text of a value for a message (config.c). */
struct shown {
  char s[SHOW_MAX + 16];
};
/* One line, at most SHOW_MAX bytes, not cut inside a UTF-8 sequence; quoted
 * as 'text' when quote is set. Returns b->s. */
const char *bf_config_show_text(struct shown *b, const char *s, bool quote);
/* "file:l:c: <message>" as a BF_E_CONFIG error; returns the code. */
int bf_config_loc_error(struct bf_error *err, struct bf_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Small string set (open addressing) so that duplicate checks stay linear
 * in the size of a map even for a large hostile one. Keys are borrowed;
 * release with bf_strset_free(). */
struct strset {
  size_t cap, n;
  const char **keys;
  size_t *vals;
};
/* Adds key -> val. If key is already there, returns true and its value in
 * *existing and leaves the set unchanged. */
bool bf_strset_add(struct strset *s, const char *key, size_t val, size_t *existing);
bool bf_strset_get(const struct strset *s, const char *key, size_t *val);
void bf_strset_free(struct strset *s);

/* Letters, digits and '_' (not a digit first): ${NAME}s and config names. */
static inline bool bf_config_is_name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
static inline bool bf_config_is_name_char(char c) {
  return bf_config_is_name_start(c) || (c >= '0' && c <= '9');
}

/* Frees a node and everything under it (wiping values from the environment). */
void bf_node_free(struct bf_node *n);

/* Parses text (len bytes; file names it in messages) into *root, which the
 * caller frees with bf_node_free() (config_yaml.c). */
int bf_config_parse_tree(const char *file, const char *text, size_t len, struct bf_node **root,
                         struct bf_error *err);

/* Reads the files the top-level `include:` list names (paths or globs
 * relative to the project folder) and merges their `models`, `syncs` and
 * `destinations` into cfg->root (config_include.c). */
int bf_config_expand_includes(struct bf_config *cfg, struct bf_error *err);

/* Checks server.tokens (srv: the `server` map, may be NULL) into
 * cfg->server_tokens, which bf_config_free() releases (config_tokens.c). */
int bf_config_load_tokens(struct bf_config *cfg, const struct bf_node *srv, struct bf_error *err);

/* Reads `coordinator:` once warehouses and syncs are loaded (config_coord.c). */
int bf_config_load_coordinator(struct bf_config *cfg, struct bf_error *err);

#endif

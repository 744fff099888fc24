/* libFuzzer target: ${NAME} substitution. The input's first byte picks the
 * place a value is written in an otherwise valid backflow.yml, the rest is
 * the value (UTF-8 text, written as an escaped double-quoted YAML scalar so
 * libyaml hands the parser exactly these bytes). The environment holds
 * the variables of fuzz_common.h: a secret, an empty value, a value that
 * itself looks like ${...}, UTF-8, a newline; BF_FUZZ_UNSET is unset.
 *
 * Properties: at state_dir the result equals a reference substitution
 * (${NAME} -> value, $${ -> ${, never substituted twice; unterminated,
 * malformed references are errors, and so are unset ones where a command
 * needs the value: state_dir always, a sync's values when it runs) and the node is marked
 * from_env exactly when something was substituted; anywhere, a failure is
 * one line naming the file and no message shows the secret's value. */
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "spec/config.h"
#include "util/jsonw.h"
#include "spec/mapping.h"
#include "destinations/destination.h"
#include "fuzz_common.h"

#define FILE_NAME "env.yml"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_setup_env();
  return 0;
}

static bool name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
static bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

/* The documented rules, written out once more. Returns false on an error. */
static bool reference(const char *in, size_t n, struct bf_buf *out, bool *substituted) {
  *substituted = false;
  for (size_t i = 0; i < n;) {
    if (n - i >= 3 && !memcmp(in + i, "$${", 3)) {
      bf_buf_append(out, "${", 2);
      i += 3;
    } else if (n - i >= 2 && !memcmp(in + i, "${", 2)) {
      size_t j = i + 2;
      while (j < n && in[j] != '}') j++;
      if (j == n || j == i + 2 || !name_start(in[i + 2])) return false;
      for (size_t k = i + 2; k < j; k++)
        if (!name_char(in[k])) return false;
      char name[256];
      if (j - i - 2 >= sizeof name) return false; /* no such variable here */
      memcpy(name, in + i + 2, j - i - 2);
      name[j - i - 2] = '\0';
      const char *v = getenv(name);
      if (!v) return false;
      bf_buf_puts(out, v);
      *substituted = true;
      i = j + 1;
    } else {
      bf_buf_putc(out, in[i++]);
    }
  }
  return true;
}

/* value as the inside of a YAML double-quoted scalar, ASCII only. */
static void yaml_quote(struct bf_buf *b, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned c = p[i], cp, len;
    if (c < 0x80)
      cp = c, len = 1;
    else if (c < 0xE0)
      cp = c & 0x1F, len = 2;
    else if (c < 0xF0)
      cp = c & 0x0F, len = 3;
    else
      cp = c & 0x07, len = 4;
    for (unsigned k = 1; k < len; k++) cp = (cp << 6) | (p[i + k] & 0x3F);
    i += len;
    if (cp == '"' || cp == '\\')
      bf_buf_printf(b, "\\%c", (char)cp);
    else if (cp >= 0x20 && cp < 0x7F)
      bf_buf_putc(b, (char)cp);
    else
      bf_buf_printf(b, "\\U%08X", cp);
  }
}

static const char prefix[] = "version: 1\n"
                             "warehouses:\n"
                             "  local: {type: sqlite, path: warehouse.db}\n"
                             "models:\n"
                             "  users:\n"
                             "    warehouse: local\n"
                             "    sql: SELECT id, email FROM users\n"
                             "    primary_key: id\n"
                             "    pii: {email: email}\n"
                             "destinations:\n"
                             "  hook: {type: webhook, url: \"http://127.0.0.1:9/in\"}\n";

/* Where the value goes: %s is the quoted value. */
static const char *const places[] = {
    "state_dir: \"%s\"\n",
    "version: \"%s\"\n",
    "server: {listen: \"%s\", token: \"%s\"}\n",
    "durability: \"%s\"\n",
    "syncs:\n  s: {model: users, destination: hook, match: {id: id}, mode: \"%s\"}\n",
    "syncs:\n  s: {model: \"%s\", destination: hook, match: {id: id}}\n",
    "syncs:\n  s: {model: users, destination: hook, match: {id: id}, schedule: {cron: \"%s\"}}\n",
    "syncs:\n  s: {model: users, destination: hook, match: {id: id}, schedule: {every: \"%s\"}}\n",
    "syncs:\n  s: {model: users, destination: hook, match: {id: id}, schedule: {after: \"%s\"}}\n",
    "syncs:\n  s: {model: users, destination: hook, match: {id: id}, schedule: \"%s\"}\n",
    ("syncs:\n  s: {model: users, destination: hook, match: {id: id}, pii_policy: {email: "
     "\"%s\"}}\n"),
    "syncs:\n  s: {model: users, destination: hook, match: {id: id}, batch_size: \"%s\"}\n",
    "syncs:\n  s: {model: users, destination: hook, match: {id: id}, constants: {c: \"%s\"}}\n",
    "syncs:\n  s: {model: users, destination: \"%s\", match: {id: id}}\n",
    "syncs:\n  s: {model: users, destination: hook, match: {id: \"%s\"}}\n",
    "syncs:\n  s: {model: users, destination: hook, match: {id: id}, fields: {f: \"%s\"}}\n",
    "destinations2: \"%s\"\n", /* an unknown key: its value must not matter */
    "syncs:\n  s: {model: users, destination: hook, match: {id: id}}\nwrite_back: \"%s\"\n",
};
#define N_PLACES (sizeof places / sizeof *places)

static void check_message(const struct bf_error *err, const uint8_t *data, size_t size,
                          const char *doc, const char *what) {
  FUZZ_CHECK(err->msg[0] && !strchr(err->msg, '\n'), "%s: message: %s", what, err->msg);
  if (!fuzz_contains(data, size, FUZZ_SECRET) && !strstr(doc, FUZZ_SECRET))
    FUZZ_CHECK(!strstr(err->msg, FUZZ_SECRET), "%s: message shows a secret: %s", what, err->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096) return -1;
  size_t place = data[0] % N_PLACES;
  const char *value = (const char *)data + 1;
  size_t n = size - 1;
  /* YAML carries text: only valid UTF-8 without NUL can be written. */
  json_t *valid = json_stringn(value, n);
  if (!valid || memchr(value, '\0', n)) {
    json_decref(valid);
    return -1;
  }
  json_decref(valid);

  struct bf_buf quoted = {0}, doc = {0}, want = {0};
  yaml_quote(&quoted, value, n);
  bf_buf_cstr(&quoted);
  bf_buf_puts(&doc, prefix);
  bf_buf_printf(&doc, places[place], quoted.data, quoted.data);
  bf_buf_cstr(&doc);

  struct bf_config *cfg = NULL;
  struct bf_error err = {0};
  int rc = bf_config_parse(FILE_NAME, doc.data, doc.len, "/proj", &cfg, &err);
  if (rc) {
    FUZZ_CHECK(rc == BF_E_CONFIG && err.code == rc && !cfg, "code %d: %s", rc, err.msg);
    FUZZ_CHECK(!strncmp(err.msg, FILE_NAME ":", strlen(FILE_NAME ":")), "no file in: %s", err.msg);
    check_message(&err, data, size, doc.data, "parse");
  }

  if (place == 0) {
    bool substituted;
    bool ok = reference(value, n, &want, &substituted);
    bf_buf_cstr(&want);
    if (!ok || want.len == 0) {
      FUZZ_CHECK(rc == BF_E_CONFIG, "'%.*s' should fail (reference %s), parsed", (int)n, value,
                 ok ? "gives an empty value" : "rejects it");
    } else {
      FUZZ_CHECK(rc == 0, "'%.*s' should give '%s': %s", (int)n, value, want.data, err.msg);
      FUZZ_CHECK(!strcmp(cfg->state_dir, want.data), "'%.*s' gave '%s', reference '%s'", (int)n,
                 value, cfg->state_dir, want.data);
      const struct bf_node *node = bf_node_get(cfg->root, "state_dir");
      FUZZ_CHECK(node->from_env == substituted, "from_env %d for '%.*s'", node->from_env, (int)n,
                 value);
    }
  }
  if (!rc) {
    /* What runs next on a parsed config: destination keys and mappings. */
    for (size_t i = 0; i < cfg->n_destinations; i++) {
      const struct bf_destination_type *t = bf_destination_find(cfg->destinations[i].type);
      struct bf_error perr = {0};
      if (t && !cfg->destinations[i].unset &&
          bf_params_check(cfg->destinations[i].params, t->params, "destination", &perr))
        check_message(&perr, data, size, doc.data, "destination params");
    }
    for (size_t i = 0; i < cfg->n_syncs; i++) {
      const struct bf_sync_config *s = &cfg->syncs[i];
      char *cols[] = {"id", "email"};
      struct bf_mapping map;
      struct bf_error merr = {0};
      /* An unset ${NAME} is refused where a command needs it, naming it. */
      if (bf_config_require_sync(cfg, s->name, &merr)) {
        FUZZ_CHECK(strstr(merr.msg, "is not set"), "require: %s", merr.msg);
        check_message(&merr, data, size, doc.data, "unset variable");
        continue;
      }
      if (bf_mapping_build(cfg, s, bf_config_model(cfg, s->model), cols, 2, &map, &merr) == 0)
        bf_mapping_release(&map);
      else
        check_message(&merr, data, size, doc.data, "mapping");
    }
    bf_config_free(cfg);
  }
  bf_buf_release(&quoted);
  bf_buf_release(&doc);
  bf_buf_release(&want);
  return 0;
}

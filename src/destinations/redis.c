/* redis: one hash per record, for online feature serving.
 *
 *   {type: redis, url: "redis://[user:password@]host:port/db", prefix: "user:", ttl: 0s}
 *
 * Key: <prefix><match value> (several match columns are joined with ':').
 * Upsert: HSET key field value ... for the non-NULL fields and constants,
 * HDEL key for the NULL ones, PEXPIRE key ttl when a ttl is set. Insert and
 * update modes run the same through a small Lua script so the existence
 * check and the write are one atomic step. Delete: DEL key.
 * A batch is one pipeline: every command is appended, then every reply read;
 * each record's outcome comes from its own replies. Values are written as
 * text: ints in decimal, floats with 17 significant digits, bools as
 * "true"/"false", blobs as raw bytes.
 * Server-side "try again" errors (OOM, LOADING, BUSY, READONLY...) retry the
 * record; other error replies reject it with Redis's message. A lost
 * connection reconnects with backoff and resends the batch (HSET/DEL are
 * idempotent); after max_retries the run stops (destination unavailable). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <hiredis.h>
#include <jansson.h>

#include "util/log.h"
#include "destinations/destination.h"

static const struct bf_param_spec redis_params[] = {
    {"url", BF_PARAM_STRING, NULL, true, true, "redis://[user:password@]host:port/db"},
    {"prefix", BF_PARAM_STRING, "", false, false, "key prefix, e.g. \"user:\""},
    {"ttl", BF_PARAM_DURATION, "0s", false, false,
     "expire each written key after this long (0: never)"},
    {"password", BF_PARAM_STRING, NULL, false, true, "password (overrides the one in url)"},
    {"timeout", BF_PARAM_DURATION, "10s", false, false,
     "time allowed to connect and for each reply"},
    {"max_retries", BF_PARAM_INT, "5", false, false,
     "reconnects/resends of a batch when the connection drops"},
    {"retry_base", BF_PARAM_DURATION, "500ms", false, false, "first backoff; doubles each retry"},
    {NULL, 0, NULL, false, false, NULL},
};

/* KEYS[1] = key; ARGV = mode ('i' insert: only when absent, 'u' update:
 * only when present), ttl ms, n pairs, pairs..., fields to delete... */
static const char write_script[] =
    "local e = redis.call('EXISTS', KEYS[1])\n"
    "if ARGV[1] == 'u' and e == 0 then return 0 end\n"
    "if ARGV[1] == 'i' and e == 1 then return 1 end\n"
    "local n = tonumber(ARGV[3])\n"
    "if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n)) end\n"
    "if #ARGV > 3 + 2 * n then redis.call('HDEL', KEYS[1], unpack(ARGV, 4 + 2 * n)) end\n"
    "local ttl = tonumber(ARGV[2])\n"
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "return 1\n";

struct redisdest {
  struct bf_destination base;
  char *name;
  char *host, *user, *password, *url_shown;
  int port, db;
  char *prefix;
  long long ttl_ms, timeout_ms, max_retries, retry_base_ms;
  redisContext *c;
  char script_sha[41];
  char msg[512];
  /* Per-batch argument storage: argv pointers into arena (offsets while
   * filling, since the arena may move). */
  struct bf_buf arena, tmp;
  size_t *arg_off, *arg_len;
  size_t nargs, cap_args;
  size_t *cmd_first, *cmd_nargs, *cmd_record; /* per command */
  size_t ncmds, cap_cmds;
  const char **argv;
  size_t cap_argv;
};

static void sleep_ms(long long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int hexv(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static char *pct_decode(const char *s, size_t n) {
  char *out = bf_xmalloc(n + 1), *w = out;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
      *w++ = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
      i += 2;
    } else {
      *w++ = s[i];
    }
  }
  *w = '\0';
  return out;
}

/* redis://[user[:password]@]host[:port][/db] */
static int parse_url(struct redisdest *d, const char *url, const struct bf_node *node,
                     struct bf_error *err) {
  if (strncmp(url, "redis://", 8) != 0)
    return bf_error_set(
        err, BF_E_CONFIG, "%s:%d:%d: destination '%s': url must look like redis://host:port/db%s",
        node->loc.file, node->loc.line, node->loc.col, d->name,
        strncmp(url, "rediss://", 9) == 0 ? " (TLS, rediss://, is not supported yet)" : "");
  const char *p = url + 8;
  const char *end = p + strcspn(p, "/?#");
  const char *at = NULL;
  for (const char *q = p; q < end; q++)
    if (*q == '@') at = q;
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon) {
      if (colon > p) d->user = pct_decode(p, (size_t)(colon - p));
      d->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
    } else if (at > p) {
      d->password = pct_decode(p, (size_t)(at - p)); /* redis://password@host */
    }
    p = at + 1;
  }
  const char *colon = memchr(p, ':', (size_t)(end - p));
  const char *host_end = colon ? colon : end;
  d->host = host_end > p ? bf_xstrndup(p, (size_t)(host_end - p)) : bf_xstrdup("127.0.0.1");
  d->port = 6379;
  if (colon) {
    char *e;
    long port = strtol(colon + 1, &e, 10);
    if (e != end || port <= 0 || port > 65535)
      return bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: destination '%s': bad port in url",
                          node->loc.file, node->loc.line, node->loc.col, d->name);
    d->port = (int)port;
  }
  d->db = 0;
  if (*end == '/' && end[1] && end[1] != '?') {
    char *e;
    long db = strtol(end + 1, &e, 10);
    if ((*e && *e != '?') || db < 0 || db > 100000)
      return bf_error_set(err, BF_E_CONFIG,
                          "%s:%d:%d: destination '%s': the url's path must be a database number",
                          node->loc.file, node->loc.line, node->loc.col, d->name);
    d->db = (int)db;
  }
  d->url_shown =
      bf_xasprintf("redis://%s%s%s%s:%d/%d", d->user ? d->user : "", d->password ? ":***" : "",
                   d->user || d->password ? "@" : "", d->host, d->port, d->db);
  return 0;
}

static void disconnect(struct redisdest *d) {
  if (d->c) redisFree(d->c);
  d->c = NULL;
}

/* Runs one command and checks for an error reply; fills d->msg. */
static redisReply *command(struct redisdest *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(d->c, fmt, ap);
  va_end(ap);
  if (!r) {
    snprintf(d->msg, sizeof d->msg, "%s", d->c->errstr[0] ? d->c->errstr : "connection lost");
    return NULL;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    snprintf(d->msg, sizeof d->msg, "%.*s", (int)r->len, r->str);
    freeReplyObject(r);
    return NULL;
  }
  return r;
}

static int connect_redis(struct redisdest *d, struct bf_error *err) {
  disconnect(d);
  struct timeval tv = {d->timeout_ms / 1000, (d->timeout_ms % 1000) * 1000};
  d->c = redisConnectWithTimeout(d->host, d->port, tv);
  if (!d->c || d->c->err) {
    snprintf(d->msg, sizeof d->msg, "%s", d->c ? d->c->errstr : "cannot allocate a connection");
    goto fail;
  }
  redisSetTimeout(d->c, tv);
  redisReply *r = NULL;
  if (d->password) {
    r = d->user ? command(d, "AUTH %s %s", d->user, d->password)
                : command(d, "AUTH %s", d->password);
    if (!r) goto fail;
    freeReplyObject(r);
  }
  if (d->db && !(r = command(d, "SELECT %d", d->db))) goto fail;
  if (d->db) freeReplyObject(r);
  if (!(r = command(d, "SCRIPT LOAD %s", write_script))) goto fail;
  if (r->type == REDIS_REPLY_STRING && r->len == 40) memcpy(d->script_sha, r->str, 41);
  freeReplyObject(r);
  return 0;
fail:
  disconnect(d);
  return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (redis, %s): %s", d->name,
                      d->url_shown, d->msg);
}

/* ---- building the pipeline ------------------------------------------- */

static void arg_bytes(struct redisdest *d, const void *p, size_t n) {
  if (d->nargs == d->cap_args) {
    d->cap_args = d->cap_args ? d->cap_args * 2 : 256;
    d->arg_off = bf_xrealloc(d->arg_off, d->cap_args * sizeof *d->arg_off);
    d->arg_len = bf_xrealloc(d->arg_len, d->cap_args * sizeof *d->arg_len);
  }
  d->arg_off[d->nargs] = d->arena.len;
  d->arg_len[d->nargs] = n;
  d->nargs++;
  bf_buf_append(&d->arena, p, n);
}

static void arg_str(struct redisdest *d, const char *s) { arg_bytes(d, s, strlen(s)); }

static void value_text(struct bf_buf *b, const struct bf_value *v) {
  char num[40];
  switch (v->type) {
  case BF_NULL: break;
  case BF_INT:
    bf_buf_append(b, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v->u.i));
    break;
  case BF_BOOL: bf_buf_puts(b, v->u.i ? "true" : "false"); break;
  case BF_FLOAT:
    if (isnan(v->u.f))
      bf_buf_puts(b, "nan");
    else if (isinf(v->u.f))
      bf_buf_puts(b, v->u.f > 0 ? "inf" : "-inf");
    else
      bf_buf_append(b, num, bf_double_text(num, v->u.f));
    break;
  case BF_TEXT:
  case BF_JSON:
  case BF_BLOB: bf_buf_append(b, v->u.s, v->len); break;
  }
}

static void arg_value(struct redisdest *d, const struct bf_value *v) {
  bf_buf_reset(&d->tmp);
  value_text(&d->tmp, v);
  arg_bytes(d, d->tmp.data ? d->tmp.data : "", d->tmp.len);
}

static void begin_cmd(struct redisdest *d, size_t record) {
  if (d->ncmds == d->cap_cmds) {
    d->cap_cmds = d->cap_cmds ? d->cap_cmds * 2 : 64;
    d->cmd_first = bf_xrealloc(d->cmd_first, d->cap_cmds * sizeof *d->cmd_first);
    d->cmd_nargs = bf_xrealloc(d->cmd_nargs, d->cap_cmds * sizeof *d->cmd_nargs);
    d->cmd_record = bf_xrealloc(d->cmd_record, d->cap_cmds * sizeof *d->cmd_record);
  }
  d->cmd_first[d->ncmds] = d->nargs;
  d->cmd_record[d->ncmds] = record;
  d->ncmds++;
}

static void end_cmd(struct redisdest *d) {
  d->cmd_nargs[d->ncmds - 1] = d->nargs - d->cmd_first[d->ncmds - 1];
}

/* The record's key, from its values (upserts) or its match JSON (deletes).
 * Returns -1 with a reason when a match value is NULL or unreadable. */
static int record_key(struct redisdest *d, const struct bf_batch *b, const struct bf_record *rec,
                      struct bf_buf *key, const char **why) {
  const struct bf_mapping *m = b->mapping;
  bf_buf_reset(key);
  bf_buf_puts(key, d->prefix);
  json_t *obj = NULL;
  if (!rec->values) {
    obj = json_loadb(rec->match_json, rec->match_json_len, 0, NULL);
    if (!json_is_object(obj)) {
      json_decref(obj);
      *why = "cannot read the record's match values";
      return -1;
    }
  }
  int rc = 0;
  for (size_t i = 0; i < m->n_match && rc == 0; i++) {
    if (i) bf_buf_putc(key, ':');
    if (rec->values) {
      if (rec->values[i].type == BF_NULL) {
        *why = "a match value is NULL: no key can be made";
        rc = -1;
      } else {
        value_text(key, &rec->values[i]);
      }
      continue;
    }
    json_t *v = json_object_get(obj, m->match_names[i]);
    char num[40];
    if (json_is_string(v))
      bf_buf_append(key, json_string_value(v), json_string_length(v));
    else if (json_is_integer(v))
      bf_buf_append(key, num,
                    (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)));
    else if (json_is_real(v))
      bf_buf_append(key, num, bf_double_text(num, json_real_value(v)));
    else if (json_is_boolean(v))
      bf_buf_puts(key, json_is_true(v) ? "true" : "false");
    else {
      *why = "a match value is NULL: no key can be made";
      rc = -1;
    }
  }
  json_decref(obj);
  return rc;
}

static struct bf_value field_value(const struct bf_mapping *m, const struct bf_record *rec,
                                   size_t f, struct bf_buf *tmp) {
  return f < m->n_fields ? bf_mapping_field_value(m, f, &rec->values[m->n_match + f], tmp)
                         : m->constant_values[f - m->n_fields];
}

/* Appends "field value" pairs of the non-NULL fields (set) or the names of
 * the NULL ones (!set). */
static void add_fields(struct redisdest *d, const struct bf_mapping *m, const struct bf_record *rec,
                       bool set, struct bf_buf *tmp) {
  for (size_t f = 0; f < m->n_fields + m->n_constants; f++) {
    struct bf_value v = field_value(m, rec, f, tmp);
    if ((v.type != BF_NULL) != set) continue;
    arg_str(d, f < m->n_fields ? m->field_names[f] : m->constant_names[f - m->n_fields]);
    if (set) arg_value(d, &v);
  }
}

static void build_pipeline(struct redisdest *d, const struct bf_batch *b, bool deletes,
                           struct bf_outcome *outcomes, bool *skip) {
  const struct bf_mapping *m = b->mapping;
  struct bf_buf key = {0}, fieldtmp = {0};
  bf_buf_reset(&d->arena);
  d->nargs = d->ncmds = 0;
  char ttl[32];
  snprintf(ttl, sizeof ttl, "%lld", d->ttl_ms);
  for (size_t i = 0; i < b->n; i++) {
    const struct bf_record *rec = &b->records[i];
    const char *why = NULL;
    skip[i] = false;
    if (record_key(d, b, rec, &key, &why) < 0) {
      outcomes[i].status = BF_OUT_REJECT;
      outcomes[i].reason = bf_xstrdup(why);
      skip[i] = true;
      continue;
    }
    if (deletes || rec->op == BF_OP_DELETE) {
      begin_cmd(d, i);
      arg_str(d, "DEL");
      arg_bytes(d, key.data, key.len);
      end_cmd(d);
      continue;
    }
    /* Field values after the PII policy; constants last. */
    size_t nf = m->n_fields + m->n_constants;
    size_t n_set = 0;
    for (size_t f = 0; f < nf; f++) n_set += field_value(m, rec, f, &fieldtmp).type != BF_NULL;
    if (rec->op == BF_OP_INSERT || rec->op == BF_OP_UPDATE) {
      char nbuf[32];
      begin_cmd(d, i);
      arg_str(d, "EVALSHA");
      arg_str(d, d->script_sha);
      arg_str(d, "1");
      arg_bytes(d, key.data, key.len);
      arg_str(d, rec->op == BF_OP_INSERT ? "i" : "u");
      arg_str(d, ttl);
      snprintf(nbuf, sizeof nbuf, "%zu", n_set);
      arg_str(d, nbuf);
      add_fields(d, m, rec, true, &fieldtmp);
      add_fields(d, m, rec, false, &fieldtmp);
      end_cmd(d);
      continue;
    }
    if (n_set > 0) {
      begin_cmd(d, i);
      arg_str(d, "HSET");
      arg_bytes(d, key.data, key.len);
      add_fields(d, m, rec, true, &fieldtmp);
      end_cmd(d);
    }
    if (n_set < nf) {
      begin_cmd(d, i);
      arg_str(d, "HDEL");
      arg_bytes(d, key.data, key.len);
      add_fields(d, m, rec, false, &fieldtmp);
      end_cmd(d);
    }
    if (d->ttl_ms > 0 && n_set > 0) {
      begin_cmd(d, i);
      arg_str(d, "PEXPIRE");
      arg_bytes(d, key.data, key.len);
      arg_str(d, ttl);
      end_cmd(d);
    }
  }
  bf_buf_release(&key);
  bf_buf_release(&fieldtmp);
}

static bool retryable_error(const char *s, size_t n) {
  static const char *const prefixes[] = {"OOM",      "LOADING",     "BUSY",
                                         "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN",
                                         "READONLY", "NOREPLICAS",  NULL};
  for (size_t i = 0; prefixes[i]; i++) {
    size_t l = strlen(prefixes[i]);
    if (n >= l && !memcmp(s, prefixes[i], l)) return true;
  }
  return false;
}

/* Sends the pipeline and reads every reply. Returns 0, or -1 when the
 * connection failed (d->msg), or -2 when the script must be loaded again. */
static int send_pipeline(struct redisdest *d, const struct bf_batch *b, struct bf_outcome *outcomes,
                         const bool *skip) {
  size_t max_args = 0;
  for (size_t k = 0; k < d->ncmds; k++)
    if (d->cmd_nargs[k] > max_args) max_args = d->cmd_nargs[k];
  if (max_args > d->cap_argv) {
    d->cap_argv = max_args;
    d->argv = bf_xrealloc(d->argv, d->cap_argv * sizeof *d->argv);
  }
  size_t *lens = bf_xcalloc(max_args ? max_args : 1, sizeof *lens);
  for (size_t k = 0; k < d->ncmds; k++) {
    for (size_t a = 0; a < d->cmd_nargs[k]; a++) {
      d->argv[a] = d->arena.data + d->arg_off[d->cmd_first[k] + a];
      lens[a] = d->arg_len[d->cmd_first[k] + a];
    }
    if (redisAppendCommandArgv(d->c, (int)d->cmd_nargs[k], d->argv, lens) != REDIS_OK) {
      snprintf(d->msg, sizeof d->msg, "%s",
               d->c->errstr[0] ? d->c->errstr : "cannot queue a command");
      free(lens);
      return -1;
    }
  }
  free(lens);
  for (size_t i = 0; i < b->n; i++)
    if (!skip[i] && outcomes[i].status != BF_OUT_OK) outcomes[i].status = BF_OUT_OK;
  int rc = 0;
  for (size_t k = 0; k < d->ncmds; k++) {
    void *reply_ = NULL;
    if (redisGetReply(d->c, &reply_) != REDIS_OK || !reply_) {
      snprintf(d->msg, sizeof d->msg, "%s", d->c->errstr[0] ? d->c->errstr : "connection lost");
      return -1;
    }
    redisReply *r = reply_;
    size_t i = d->cmd_record[k];
    if (r->type == REDIS_REPLY_ERROR && outcomes[i].status == BF_OUT_OK) {
      if (r->len >= 8 && !memcmp(r->str, "NOSCRIPT", 8)) rc = -2;
      outcomes[i].status = retryable_error(r->str, r->len) ? BF_OUT_RETRY : BF_OUT_REJECT;
      outcomes[i].reason = bf_xasprintf("redis: %.*s", (int)r->len, r->str);
    } else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0 &&
               b->records[i].op == BF_OP_UPDATE && d->cmd_nargs[k] > 2 &&
               d->arg_len[d->cmd_first[k]] == 7 &&
               !memcmp(d->arena.data + d->arg_off[d->cmd_first[k]], "EVALSHA", 7)) {
      outcomes[i].status = BF_OUT_REJECT;
      outcomes[i].reason = bf_xstrdup("no such key (mode update only changes existing hashes)");
    }
    freeReplyObject(r);
  }
  return rc;
}

static int redis_write(struct bf_destination *d_, const struct bf_batch *b,
                       struct bf_outcome *outcomes, bool deletes, struct bf_error *err) {
  struct redisdest *d = (struct redisdest *)d_;
  bool *skip = bf_xcalloc(b->n ? b->n : 1, sizeof *skip);
  int rc = 0;
  for (long long attempt = 0;; attempt++) {
    if (attempt > 0) {
      long long wait = d->retry_base_ms << (attempt - 1 < 5 ? attempt - 1 : 5);
      bf_log_warn("[sync %s → redis:%s] %s; retrying in %lld ms (%lld of %lld)", b->sync_name,
                  d->name, d->msg, wait, attempt, d->max_retries);
      sleep_ms(wait);
    }
    for (size_t i = 0; i < b->n; i++) {
      free(outcomes[i].reason);
      outcomes[i].reason = NULL;
      outcomes[i].status = BF_OUT_RETRY;
    }
    struct bf_error cerr = {0};
    if (!d->c && connect_redis(d, &cerr)) {
      if (attempt < d->max_retries) continue;
      rc = bf_error_set(err, BF_E_DESTINATION, "%s (gave up after %lld retries)", cerr.msg,
                        d->max_retries);
      break;
    }
    build_pipeline(d, b, deletes, outcomes, skip);
    int s = send_pipeline(d, b, outcomes, skip);
    if (s == 0) break;
    if (s == -2) {
      /* The server forgot the script (restart, SCRIPT FLUSH): load it and resend. */
      disconnect(d);
      if (attempt < d->max_retries) continue;
      break;
    }
    disconnect(d);
    if (attempt >= d->max_retries) {
      rc = bf_error_set(err, BF_E_DESTINATION,
                        "destination '%s' (redis, %s): unavailable after %lld retries: %s", d->name,
                        d->url_shown, d->max_retries, d->msg);
      break;
    }
  }
  free(skip);
  return rc;
}

static int redis_push(struct bf_destination *d, const struct bf_batch *b,
                      struct bf_outcome *outcomes, struct bf_error *err) {
  return redis_write(d, b, outcomes, false, err);
}

static int redis_remove(struct bf_destination *d, const struct bf_batch *b,
                        struct bf_outcome *outcomes, struct bf_error *err) {
  return redis_write(d, b, outcomes, true, err);
}

static int redis_check(struct bf_destination *d_, struct bf_error *err) {
  struct redisdest *d = (struct redisdest *)d_;
  if (!d->c && connect_redis(d, err)) return BF_E_DESTINATION;
  redisReply *r = command(d, "PING");
  if (!r) {
    disconnect(d);
    return bf_error_set(err, BF_E_DESTINATION, "destination '%s' (redis, %s): %s", d->name,
                        d->url_shown, d->msg);
  }
  freeReplyObject(r);
  return 0;
}

static void redis_close(struct bf_destination *d_) {
  struct redisdest *d = (struct redisdest *)d_;
  if (!d) return;
  disconnect(d);
  free(d->name);
  free(d->host);
  free(d->user);
  if (d->password) {
    memset(d->password, 0, strlen(d->password));
    free(d->password);
  }
  free(d->url_shown);
  free(d->prefix);
  bf_buf_release(&d->arena);
  bf_buf_release(&d->tmp);
  free(d->arg_off);
  free(d->arg_len);
  free(d->cmd_first);
  free(d->cmd_nargs);
  free(d->cmd_record);
  free(d->argv);
  free(d);
}

static int redis_open(const struct bf_destination_config *dc, const struct bf_config *cfg,
                      struct bf_destination **out, struct bf_error *err) {
  struct redisdest *d = bf_xcalloc(1, sizeof *d);
  d->name = bf_xstrdup(dc->name);
  int rc = parse_url(d, bf_params_str(dc->params, redis_params, "url"),
                     bf_node_get(dc->params, "url"), err);
  if (rc) goto fail;
  const char *pw = bf_params_str(dc->params, redis_params, "password");
  if (pw) {
    free(d->password);
    d->password = bf_xstrdup(pw);
  }
  d->prefix = bf_xstrdup(bf_params_str(dc->params, redis_params, "prefix"));
  d->ttl_ms = bf_params_duration_ms(dc->params, redis_params, "ttl");
  d->timeout_ms = bf_params_duration_ms(dc->params, redis_params, "timeout");
  if (d->timeout_ms <= 0) d->timeout_ms = 10000;
  d->max_retries = bf_params_int(dc->params, redis_params, "max_retries");
  d->retry_base_ms = bf_params_duration_ms(dc->params, redis_params, "retry_base");
  if ((rc = connect_redis(d, err))) goto fail;
  *out = &d->base;
  return 0;
fail:
  redis_close(&d->base);
  return rc;
}

const struct bf_destination_type bf_destination_redis = {
    .name = "redis",
    .params = redis_params,
    .max_batch = 100000,
    .default_batch = 2000,
    .needs_identifier_for_delete = true,
    .open = redis_open,
    .check = redis_check,
    .push = redis_push,
    .remove = redis_remove,
    .close = redis_close,
};

/* PostgreSQL connections, shared by the postgres warehouse, the postgres
 * destination, the live feed and write-back (declared in clients/pg.h). */
#include "clients/pg.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* The password as libpq would read it from dsn, or NULL. Caller frees. */
static char *dsn_password(const char *dsn) {
  if (!dsn) return NULL;
  PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
  char *pw = NULL;
  for (PQconninfoOption *o = opts; o && o->keyword; o++)
    if (!strcmp(o->keyword, "password") && o->val && *o->val) pw = bf_xstrdup(o->val);
  PQconninfoFree(opts);
  return pw;
}

static void replace_all(char **s, const char *needle, const char *with) {
  size_t nl = strlen(needle);
  if (nl == 0) return;
  char *hit;
  size_t from = 0;
  while ((hit = strstr(*s + from, needle))) {
    size_t at = (size_t)(hit - *s);
    char *joined = bf_xasprintf("%.*s%s%s", (int)at, *s, with, hit + nl);
    free(*s);
    *s = joined;
    from = at + strlen(with);
  }
}

char *bf_pg_redact_dsn(const char *dsn) {
  if (!dsn) return bf_xstrdup("");
  char *out = bf_xstrdup(dsn);
  const char *scheme = strstr(out, "://");
  if (scheme && (!strncmp(out, "postgresql://", 13) || !strncmp(out, "postgres://", 11))) {
    /* URI: user:password@host... -> user:***@host... */
    char *auth = (char *)scheme + 3;
    char *auth_end = auth + strcspn(auth, "/?");
    char *at = NULL;
    for (char *p = auth; p < auth_end; p++)
      if (*p == '@') at = p;
    if (at) {
      char *colon = memchr(auth, ':', (size_t)(at - auth));
      if (colon) {
        char *joined = bf_xasprintf("%.*s***%s", (int)(colon + 1 - out), out, at);
        free(out);
        out = joined;
      }
    }
    /* ?password=... in the query string */
    char *q = strchr(out, '?');
    char *pw = q ? strstr(q, "password=") : NULL;
    if (pw) {
      char *v = pw + 9;
      char *end = v + strcspn(v, "&");
      char *joined = bf_xasprintf("%.*s***%s", (int)(v - out), out, end);
      free(out);
      out = joined;
    }
  } else {
    /* key=value: password = 'quoted \' value' or bare */
    char *p = out;
    while ((p = strstr(p, "password"))) {
      bool at_word = p == out || isspace((unsigned char)p[-1]);
      char *v = p + 8;
      while (isspace((unsigned char)*v)) v++;
      if (!at_word || *v != '=') {
        p += 8;
        continue;
      }
      v++;
      while (isspace((unsigned char)*v)) v++;
      char *end = v;
      if (*end == '\'') {
        for (end++; *end && *end != '\''; end++)
          if (*end == '\\' && end[1]) end++;
        if (*end) end++;
      } else {
        while (*end && !isspace((unsigned char)*end)) end++;
      }
      char *joined = bf_xasprintf("%.*s***%s", (int)(v - out), out, end);
      size_t off = (size_t)(v - out) + 3;
      free(out);
      out = joined;
      p = out + off;
    }
  }
  /* Belt and braces: any other spelling of the password (percent-encoded
   * forms decode to the same value) is taken out too. */
  char *pw = dsn_password(dsn);
  if (pw && strlen(pw) >= 3) replace_all(&out, pw, "***");
  free(pw);
  return out;
}

static void one_line(char *s) {
  char *w = s;
  bool space = false;
  for (char *r = s; *r; r++) {
    if (*r == '\n' || *r == '\r' || *r == '\t' || *r == ' ') {
      space = true;
      continue;
    }
    if (space && w != s) *w++ = ' ';
    space = false;
    *w++ = *r;
  }
  *w = '\0';
}

void bf_pg_error_text(PGconn *conn, const PGresult *res, const char *dsn, char *out, size_t cap) {
  char *text;
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  if (primary) {
    /* DETAIL is left out: servers quote row values there ("Failing row
     * contains (...)"), and errors must not carry values. */
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* The column, when the server names it: directly, or in a COPY context
     * ("COPY t, line 1, column ltv: "<value>"": only the name is kept). */
    char column[96] = "";
    const char *col = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
    const char *ctx = PQresultErrorField(res, PG_DIAG_CONTEXT);
    const char *at = !col && ctx ? strstr(ctx, ", column ") : NULL;
    if (col)
      snprintf(column, sizeof column, " (column %s)", col);
    else if (at)
      snprintf(column, sizeof column, " (column %.*s)", (int)strcspn(at + 9, ":\n"), at + 9);
    text = bf_xasprintf("%s%s%s%s%s%s%s", primary, column, hint ? " (hint: " : "", hint ? hint : "",
                        hint ? ")" : "", state ? " [SQLSTATE " : "", state ? state : "");
    if (state) {
      char *t = bf_xasprintf("%s]", text);
      free(text);
      text = t;
    }
  } else {
    const char *m = res ? PQresultErrorMessage(res) : NULL;
    if (!m || !*m) m = conn ? PQerrorMessage(conn) : "";
    if (!m || !*m) m = "unknown error";
    text = bf_xstrdup(m);
  }
  one_line(text);
  char *pw = dsn_password(dsn);
  if (pw && strlen(pw) >= 3) replace_all(&text, pw, "***");
  free(pw);
  snprintf(out, cap, "%s", text);
  free(text);
}

bool bf_pg_connection_lost(PGconn *conn, const PGresult *res) {
  if (!conn || PQstatus(conn) == CONNECTION_BAD) return true;
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (!state) return false;
  return !strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
         !strcmp(state, "57P03");
}

static void exec_ignore(PGconn *conn, const char *sql) { PQclear(PQexec(conn, sql)); }

/* Server notices ("... does not exist, skipping") are not for our users. */
static void ignore_notice(void *arg, const char *message) {}

static PGconn *connect_with(const struct bf_node *params, const char *what, int code,
                            bool replication, struct bf_error *err) {
  const char *dsn = bf_node_get_str(params, "dsn");
  if (!dsn || !*dsn) {
    bf_error_set(err, BF_E_CONFIG, "%s:%d:%d: %s needs 'dsn' (a libpq connection string)",
                 params ? params->loc.file : "?", params ? params->loc.line : 0,
                 params ? params->loc.col : 0, what);
    return NULL;
  }
  const char *keys[12], *vals[12];
  size_t n = 0;
  keys[n] = "dbname", vals[n++] = dsn;
  static const char *const passthrough[] = {"sslmode", "sslrootcert", "sslcert", "sslkey", NULL};
  for (size_t i = 0; passthrough[i]; i++) {
    const char *v = bf_node_get_str(params, passthrough[i]);
    if (v && *v) keys[n] = passthrough[i], vals[n++] = v;
  }
  long long timeout_ms = 10000;
  const struct bf_node *tn = bf_node_get(params, "connect_timeout");
  if (tn) bf_node_as_duration_ms(tn, &timeout_ms, NULL);
  char timeout_s[32];
  snprintf(timeout_s, sizeof timeout_s, "%lld", timeout_ms <= 0 ? 0 : (timeout_ms + 999) / 1000);
  keys[n] = "connect_timeout", vals[n++] = timeout_s;
  keys[n] = "fallback_application_name", vals[n++] = "backflow";
  keys[n] = "client_encoding", vals[n++] = "UTF8";
  if (replication) keys[n] = "replication", vals[n++] = "database";
  keys[n] = NULL, vals[n] = NULL;
  PGconn *conn = PQconnectdbParams(keys, vals, 1);
  if (!conn || PQstatus(conn) != CONNECTION_OK) {
    char msg[768];
    bf_pg_error_text(conn, NULL, dsn, msg, sizeof msg);
    char *shown = bf_pg_redact_dsn(dsn);
    bf_error_set(err, code, "%s (%s): cannot connect: %s", what, shown, msg);
    free(shown);
    PQfinish(conn);
    return NULL;
  }
  PQsetNoticeProcessor(conn, ignore_notice, NULL);
  /* Text output we can parse without guessing; settings a server does not
   * know (Redshift lacks some) are simply skipped. */
  exec_ignore(conn, "SET datestyle TO 'ISO, YMD'");
  exec_ignore(conn, "SET timezone TO 'UTC'");
  exec_ignore(conn, "SET intervalstyle TO 'iso_8601'");
  exec_ignore(conn, "SET extra_float_digits TO 3");
  exec_ignore(conn, "SET bytea_output TO 'hex'");
  return conn;
}

PGconn *bf_pg_connect(const struct bf_node *params, const char *what, int code,
                      struct bf_error *err) {
  return connect_with(params, what, code, false, err);
}

PGconn *bf_pg_connect_replication(const struct bf_node *params, const char *what, int code,
                                  struct bf_error *err) {
  return connect_with(params, what, code, true, err);
}

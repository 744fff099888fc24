/* Values taken out of a destination's reasons before they are stored
 * (design.md §2): only the values of the records the reason is about, and
 * only as whole tokens, so Backflow's own words stay readable. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/runner_internal.h"

/* Part of a word: a value quoted in a reason stands between non-word
 * characters. Bytes of multi-byte UTF-8 count as word characters so that a
 * match never splits a letter. */
static bool word_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' ||
         c >= 0x80;
}

/* The next case-insensitive occurrence of needle in hay[from..] that is a
 * whole token (destinations often echo a value normalised, e.g. lower-cased):
 * it must not continue a word on either side, so the value "il" is found in
 * "state il invalid" but not inside "email". */
static char *find_token_ci(char *hay, size_t from, const char *needle, size_t n) {
  size_t hay_len = strlen(hay);
  bool word_start = word_byte((unsigned char)needle[0]);
  bool word_end = word_byte((unsigned char)needle[n - 1]);
  for (size_t i = from; i + n <= hay_len; i++) {
    if (strncasecmp(hay + i, needle, n) != 0) continue;
    if (word_start && i > 0 && word_byte((unsigned char)hay[i - 1])) continue;
    if (word_end && i + n < hay_len && word_byte((unsigned char)hay[i + n])) continue;
    return hay + i;
  }
  return NULL;
}

static char *replace_token(char *out, const char *s, size_t len) {
  if (len < 3) return out; /* too short to identify anyone */
  size_t from = 0;
  for (char *hit; (hit = find_token_ci(out, from, s, len));) {
    size_t at = (size_t)(hit - out);
    char *joined = bf_xasprintf("%.*s[value]%s", (int)at, out, hit + len);
    free(out);
    out = joined;
    from = at + 7; /* past "[value]" */
  }
  return out;
}

/* A value and, when it has padding, its trimmed form (which is what an API
 * that trims before it validates quotes back). */
static char *replace_all(char *out, const char *s, size_t len) {
  out = replace_token(out, s, len);
  size_t a = 0, b = len;
  while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r')) a++;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\n' || s[b - 1] == '\r'))
    b--;
  if (a > 0 || b < len) out = replace_token(out, s + a, b - a);
  return out;
}

/* A destination's reason may quote a value it refused: every value of the
 * given records is taken out before the reason is stored (design.md §2). */
char *bf_run_scrub_reason(const struct run *r, const struct bf_record *recs, size_t n_recs,
                          const char *reason) {
  char *out = bf_xstrdup(reason ? reason : "rejected");
  size_t nvals = r->map.n_match + r->map.n_fields;
  for (size_t k = 0; k < n_recs; k++) {
    const struct bf_record *rec = &recs[k];
    for (size_t i = 0; rec->values && i < nvals; i++) {
      const struct bf_value *v = &rec->values[i];
      char num[48];
      if (v->type == BF_TEXT || v->type == BF_JSON) {
        out = replace_all(out, v->u.s, v->len);
      } else if (v->type == BF_INT) {
        out = replace_all(out, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v->u.i));
      } else if (v->type == BF_FLOAT) {
        out = replace_all(out, num, (size_t)snprintf(num, sizeof num, "%.17g", v->u.f));
        if (isfinite(v->u.f)) out = replace_all(out, num, bf_double_text(num, v->u.f));
        out = replace_all(out, num, (size_t)snprintf(num, sizeof num, "%.15g", v->u.f));
        out = replace_all(out, num, (size_t)snprintf(num, sizeof num, "%g", v->u.f));
      }
    }
    /* The match JSON holds the identifiers, also for deletes (no values). */
    if (!rec->values && rec->match_json) {
      const char *p = rec->match_json, *end = rec->match_json + rec->match_json_len;
      while (p < end) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (!colon) break;
        const char *v = colon + 1, *ve = v;
        while (ve < end && *ve != ',' && *ve != '}') ve++;
        if (*v == '"' && ve - v >= 2)
          out = replace_all(out, v + 1, (size_t)(ve - v - 2));
        else
          out = replace_all(out, v, (size_t)(ve - v));
        p = ve;
      }
    }
  }
  return out;
}

/* The payload builders and response parsers of the ad-audience and
 * email-platform destinations (src/destinations/ads_internal.h): exact
 * request bodies, and the vendors' answers as they document them
 * (success, partial failure, malformed) mapped to per-record outcomes.
 * Hashes were computed independently with Python's hashlib
 * (sha256(normalised.encode()).hexdigest(), md5 for Mailchimp). */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"
#include "util/log.h"
#include "spec/mapping.h"
#include "destinations/ads_internal.h"

/* The destinations start a parsed answer from every record ok. */
static void all_ok(struct bf_outcome *o, size_t n) {
  for (size_t i = 0; i < n; i++) o[i] = (struct bf_outcome){BF_OUT_OK, NULL};
}

static void init(void) {
  cr_assert(sodium_init() >= 0);
  bf_log_level = BF_LOG_ERROR; /* the parsers' warnings are expected here */
}

/* ---- fixtures ------------------------------------------------------------ */

#define MAXF 8
static enum bf_pii_action allow[MAXF]; /* BF_PII_ALLOW == 0 */

/* A mapping with match keys then field keys (values in that order). */
static struct bf_mapping mapping(const char **match, size_t n_match, const char **fields,
                                 size_t n_fields) {
  struct bf_mapping m = {0};
  m.n_match = n_match;
  m.match_names = match;
  m.n_fields = n_fields;
  m.field_names = fields;
  m.field_actions = allow;
  return m;
}

static struct bf_value T(const char *s) {
  return (struct bf_value){.type = BF_TEXT, .len = (uint32_t)strlen(s), .u.s = s};
} static struct bf_value I(int64_t i) {
  return (struct bf_value){.type = BF_INT, .u.i = i};
} static const struct bf_value N = {.type = BF_NULL};

static struct bf_record upsert(const struct bf_value *values) {
  return (struct bf_record){.op = BF_OP_UPSERT,
                            .change = BF_CHANGE_ADD,
                            .values = values,
                            .match_json = "{}",
                            .match_json_len = 2};
}
static struct bf_record removal(const char *match_json) {
  return (struct bf_record){.op = BF_OP_DELETE,
                            .change = BF_CHANGE_REMOVE,
                            .match_json = match_json,
                            .match_json_len = strlen(match_json)};
}

static struct bf_batch batch_of(const struct bf_mapping *m, struct bf_record *recs, size_t n) {
  return (struct bf_batch){.sync_name = "s", .mapping = m, .n = n, .records = recs};
}

static void outcomes_free(struct bf_outcome *o, size_t n) {
  for (size_t i = 0; i < n; i++) free(o[i].reason);
}

static struct bf_http_response response(long status, const char *body) {
  struct bf_http_response r = {.status = status, .retry_after_ms = -1};
  if (body) bf_buf_puts(&r.body, body);
  return r;
}

/* Independent SHA-256 values (Python hashlib) of normalised identifiers. */
#define H_JANE                                                                                     \
  "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d" /* jane.doe@example.com */
#define H_PHONE                                                                                    \
  "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"              /* 16505551212   \
                                                                                   */
#define H_JOSE "d994e1d001886fe5b45b1267bd1fa2b752ac50742579bd3dad7b2a2aa0ed6866" /* josé */
#define H_US   "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621" /* us */
#define H_BOB                                                                                      \
  "5ff860bf1190596c7188ab851db691f0f3169c453936e9e1eba2f9a47f7a0018" /* bob@example.com */
#define H_OBRIEN "b4cb6cb33fe4b865868de825023a1e2790dc12ac01ecc8d7c5afe8254071c8ba" /* obrien */
#define H_GB     "0b407281768f0e833afef47ed464b6571d01ca4d53c12ce5c51d1462f4ad6677" /* gb */
#define H_UKPHONE                                                                                  \
  "35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823" /* 442079460958 */
#define H_CLOUDY                                                                                     \
  "223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4" /* cloudysanfrancisco@gmail.com \
                                                                      */
#define H_E164                                                                                     \
  "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30" /* +18005550100               \
                                                                      */
#define H_MARYANN                                                                                  \
  "343b97011010c3549fe7fcd6c226ed9431ea37b0b77ed78f6300a0098925faf1"               /* mary ann     \
                                                                                    */
#define H_ONEIL "67a42a846e98e3c1a96cd6ba14883a5ea05990cd93964ce8b832aa9497ca785c" /* oneil */
#define H_NYC                                                                                      \
  "f109a2a632fbcea5fc82049f50beed3d8621bf9034399f437fb622222acccdac" /* user.name+nyc@example.com  \
                                                                      */

TestSuite(meta, .init = init);
TestSuite(google, .init = init);
TestSuite(mailchimp, .init = init);
TestSuite(braze, .init = init);
TestSuite(klaviyo, .init = init);

/* ---- meta_audience --------------------------------------------------------- */

static const char *meta_match[] = {"EMAIL"};
static const char *meta_fields[] = {"PHONE", "FN", "COUNTRY", "EXTERN_ID"};

/* Builds the rows of batch b into t; returns the number of rows kept. */
static size_t meta_build(struct bf_meta_rows *t, const struct bf_batch *b, bool adds,
                         struct bf_outcome *out, size_t *row_of) {
  struct bf_error err = {0};
  cr_assert_eq(bf_meta_rows_schema(t, b, adds, &err), 0, "%s", err.msg);
  bf_meta_rows_reset(t, b->n);
  size_t n_rows = 0;
  for (size_t i = 0; i < b->n; i++) {
    out[i] = (struct bf_outcome){BF_OUT_OK, NULL};
    char *reason = bf_meta_rows_add(t, b, &b->records[i], n_rows);
    if (reason) {
      out[i] = (struct bf_outcome){BF_OUT_REJECT, reason};
      row_of[i] = (size_t)-1;
    } else {
      row_of[i] = n_rows++;
    }
  }
  return n_rows;
}

Test(meta, add_body_is_the_multi_key_schema_with_hashes_and_clear_ids) {
  struct bf_mapping m = mapping(meta_match, 1, meta_fields, 4);
  struct bf_value v0[] = {T(" Jane.Doe@Example.COM "), T("+1 (650) 555-1212"), T("José"), T("USA"),
                          T(" crm-1 ")};
  struct bf_value v1[] = {T("bob@example.com"), N, T("O'Brien"), T("United Kingdom"),
                          T("crm-\"2\"")};
  struct bf_value v2[] = {T("not an email"), T("+16505551212"), N, N, N};
  struct bf_value v3[] = {T("   "), T("+44 20 7946 0958"), N, N, N};
  struct bf_value v4[] = {N, N, N, N, N};
  struct bf_record recs[] = {upsert(v0), upsert(v1), upsert(v2), upsert(v3), upsert(v4)};
  struct bf_batch b = batch_of(&m, recs, 5);
  struct bf_meta_rows t = {0};
  struct bf_outcome out[5];
  size_t row_of[5];
  size_t n_rows = meta_build(&t, &b, true, out, row_of);
  cr_assert_eq(n_rows, 3);

  /* Invalid value: the row is refused naming the key and the rule, never the value. */
  cr_assert_eq(out[2].status, BF_OUT_REJECT);
  cr_assert_str_eq(out[2].reason, "EMAIL: not an email address");
  /* Blank is missing, not invalid; a row with no identifier at all is refused. */
  cr_assert_eq(out[3].status, BF_OUT_OK);
  cr_assert_str_eq(out[4].reason, "no identifier: every mapped Meta key is empty");

  struct bf_buf body = {0};
  bf_meta_write_payload(&t, n_rows, &body);
  bf_meta_write_session(&body, 42, 3, false);
  cr_assert_str_eq(
      bf_buf_cstr(&body),
      "{\"payload\":{\"schema\":[\"EMAIL\",\"PHONE\",\"FN\",\"COUNTRY\",\"EXTERN_ID\"],"
      "\"data\":[[\"" H_JANE "\",\"" H_PHONE "\",\"" H_JOSE "\",\"" H_US "\",\"crm-1\"],"
      "[\"" H_BOB "\",\"\",\"" H_OBRIEN "\",\"" H_GB "\",\"crm-\\\"2\\\"\"],"
      "[\"\",\"" H_UKPHONE "\",\"\",\"\",\"\"]]},"
      "\"session\":{\"session_id\":42,\"batch_seq\":3,\"last_batch_flag\":false}}");
  cr_assert_str_eq(bf_meta_rows_key(&t, 4), "EXTERN_ID");
  cr_assert_str_eq(bf_meta_rows_cell(&t, 1, 0), H_BOB);
  bf_buf_release(&body);
  bf_meta_rows_release(&t);
  outcomes_free(out, 5);
}

Test(meta, removals_send_only_match_keys_read_from_the_sealed_match_json) {
  static const char *match[] = {"EMAIL", "EXTERN_ID"};
  struct bf_mapping m = mapping(match, 2, meta_fields, 2);
  struct bf_record recs[] = {removal("{\"EMAIL\":\"Bob@Example.com\",\"EXTERN_ID\":7}"),
                             removal("{\"EMAIL\":null,\"EXTERN_ID\":\"x-1\"}"),
                             removal("not json at all")};
  struct bf_batch b = batch_of(&m, recs, 3);
  struct bf_meta_rows t = {0};
  struct bf_outcome out[3];
  size_t row_of[3];
  size_t n_rows = meta_build(&t, &b, false, out, row_of);
  cr_assert_eq(n_rows, 2);
  cr_assert_str_eq(out[2].reason, "no identifier: every mapped Meta key is empty");
  struct bf_buf body = {0};
  bf_meta_write_payload(&t, n_rows, &body);
  bf_meta_write_session(&body, 9223372036854775807ULL, 1, true);
  cr_assert_str_eq(bf_buf_cstr(&body),
                   "{\"payload\":{\"schema\":[\"EMAIL\",\"EXTERN_ID\"],"
                   "\"data\":[[\"" H_BOB "\",\"7\"],[\"\",\"x-1\"]]},"
                   "\"session\":{\"session_id\":9223372036854775807,\"batch_seq\":1,"
                   "\"last_batch_flag\":true}}");
  bf_buf_release(&body);
  bf_meta_rows_release(&t);
  outcomes_free(out, 3);
}

Test(meta, a_single_key_schema_is_a_string) {
  struct bf_mapping m = mapping(meta_match, 1, NULL, 0);
  struct bf_value v0[] = {T("jane.doe@example.com")};
  struct bf_record recs[] = {upsert(v0)};
  struct bf_batch b = batch_of(&m, recs, 1);
  struct bf_meta_rows t = {0};
  struct bf_outcome out[1];
  size_t row_of[1];
  cr_assert_eq(meta_build(&t, &b, true, out, row_of), 1);
  struct bf_buf body = {0};
  bf_meta_write_payload(&t, 1, &body);
  cr_assert_str_eq(bf_buf_cstr(&body),
                   "{\"payload\":{\"schema\":\"EMAIL\",\"data\":[[\"" H_JANE "\"]]}");
  bf_buf_release(&body);
  bf_meta_rows_release(&t);
}

Test(meta, unknown_or_repeated_schema_keys_are_configuration_errors) {
  static const char *bad[] = {"EMAIL", "email_sha"};
  struct bf_mapping m = mapping(bad, 2, NULL, 0);
  struct bf_batch b = batch_of(&m, NULL, 0);
  struct bf_meta_rows t = {0};
  struct bf_error err = {0};
  cr_assert_eq(bf_meta_rows_schema(&t, &b, true, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "'email_sha' is not a Meta audience schema key (known: EMAIL, PHONE"),
            "%s", err.msg);
  static const char *twice[] = {"EMAIL"};
  static const char *fields[] = {"EMAIL"};
  m = mapping(twice, 1, fields, 1);
  b = batch_of(&m, NULL, 0);
  cr_assert_eq(bf_meta_rows_schema(&t, &b, true, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "schema key 'EMAIL' is mapped twice"), "%s", err.msg);
  /* Removals ignore field keys, so the same mapping is fine for them. */
  cr_assert_eq(bf_meta_rows_schema(&t, &b, false, &err), 0);
  bf_meta_rows_release(&t);
}

/* Three rows sent (records 0, 1, 3), record 2 refused before sending. */
struct meta_sent {
  struct bf_mapping m;
  struct bf_value v[4][5];
  struct bf_record recs[4];
  struct bf_batch b;
  struct bf_meta_rows t;
  struct bf_outcome out[4];
  size_t row_of[4];
};

static void meta_sent_init(struct meta_sent *s) {
  memset(s, 0, sizeof *s);
  s->m = mapping(meta_match, 1, meta_fields, 4);
  const char *emails[] = {"jane.doe@example.com", "bob@example.com", "bad", "x@example.org"};
  for (int i = 0; i < 4; i++) {
    s->v[i][0] = T(emails[i]);
    for (int k = 1; k < 5; k++) s->v[i][k] = N;
    s->recs[i] = upsert(s->v[i]);
  }
  s->b = batch_of(&s->m, s->recs, 4);
  cr_assert_eq(meta_build(&s->t, &s->b, true, s->out, s->row_of), 3);
}

static void meta_sent_free(struct meta_sent *s) {
  bf_meta_rows_release(&s->t);
  outcomes_free(s->out, 4);
}

Test(meta, a_full_answer_leaves_every_sent_row_ok) {
  struct meta_sent s;
  meta_sent_init(&s);
  const char *ans =
      "{\"audience_id\":\"23850000000000001\",\"session_id\":\"42\",\"num_received\":3,"
      "\"num_invalid_entries\":0,\"invalid_entry_samples\":{}}";
  bf_meta_apply_answer("fb", &s.t, ans, strlen(ans), s.row_of, 4, 3, s.out);
  cr_assert_eq(s.out[0].status, BF_OUT_OK);
  cr_assert_eq(s.out[1].status, BF_OUT_OK);
  cr_assert_eq(s.out[2].status, BF_OUT_REJECT);
  cr_assert_eq(s.out[3].status, BF_OUT_OK);
  meta_sent_free(&s);
}

Test(meta, invalid_entry_samples_reject_the_rows_holding_the_sampled_hash) {
  struct meta_sent s;
  meta_sent_init(&s);
  const char *ans =
      "{\"audience_id\":\"23850000000000001\",\"session_id\":\"42\",\"num_received\":3,"
      "\"num_invalid_entries\":2,\"invalid_entry_samples\":{\"" H_BOB "\":\"Invalid format\"}}";
  bf_meta_apply_answer("fb", &s.t, ans, strlen(ans), s.row_of, 4, 3, s.out);
  cr_assert_eq(s.out[0].status, BF_OUT_OK);
  cr_assert_eq(s.out[1].status, BF_OUT_REJECT);
  cr_assert_str_eq(s.out[1].reason, "Meta: invalid EMAIL entry: Invalid format");
  cr_assert_eq(s.out[3].status, BF_OUT_OK); /* counted, not named: counts as sent */
  meta_sent_free(&s);
}

Test(meta, a_short_or_unreadable_answer_makes_the_sent_rows_retry) {
  const char *answers[] = {
      "{\"num_received\":2,\"num_invalid_entries\":0}", /* a lost row */
      "{\"num_received\":\"3\"}",                       /* not a number */
      "{\"error\":{\"message\":\"x\",\"code\":1}}",     /* an error in a 200 */
      "[3]",
      "",
      "not json",
      "{\"num_received\":3", /* truncated */
  };
  for (size_t a = 0; a < sizeof answers / sizeof *answers; a++) {
    struct meta_sent s;
    meta_sent_init(&s);
    bf_meta_apply_answer("fb", &s.t, answers[a], strlen(answers[a]), s.row_of, 4, 3, s.out);
    for (int i = 0; i < 4; i++) {
      if (i == 2) {
        cr_assert_eq(s.out[i].status, BF_OUT_REJECT, "answer %zu: unsent row untouched", a);
        continue;
      }
      cr_assert_eq(s.out[i].status, BF_OUT_RETRY, "answer %zu, record %d", a, i);
      cr_assert(!strncmp(s.out[i].reason, "Meta answered num_received ", 27), "%s",
                s.out[i].reason);
    }
    meta_sent_free(&s);
  }
  struct meta_sent s;
  meta_sent_init(&s);
  bf_meta_apply_answer("fb", &s.t, NULL, 0, s.row_of, 4, 3, s.out);
  cr_assert_str_eq(s.out[0].reason, "Meta answered num_received -1 for 3 rows");
  meta_sent_free(&s);
}

Test(meta, graph_errors_are_read_and_classified) {
  long long code, sub;
  bool transient;
  char msg[200];
  const char *throttle =
      "{\"error\":{\"message\":\"(#17) User request limit reached\",\"type\":"
      "\"OAuthException\",\"is_transient\":true,\"code\":17,\"error_subcode\":2446079,"
      "\"fbtrace_id\":\"AbCdEf\"}}";
  cr_assert(
      bf_meta_graph_error(throttle, strlen(throttle), &code, &sub, msg, sizeof msg, &transient));
  cr_assert_eq(code, 17);
  cr_assert_eq(sub, 2446079);
  cr_assert(transient);
  cr_assert_str_eq(msg, "(#17) User request limit reached");
  /* Meta's documented answer for a flagged audience (operation_status 471). */
  const char *flagged =
      "{\"error\":{\"message\":\"Invalid parameter\",\"code\":100,\"error_subcode\":1713230,"
      "\"error_user_title\":\"Audience Upload Blocked\"}}";
  cr_assert(
      bf_meta_graph_error(flagged, strlen(flagged), &code, &sub, msg, sizeof msg, &transient));
  cr_assert_eq(code, 100);
  cr_assert_eq(sub, 1713230);
  cr_assert(!transient);
  const char *not_graph[] = {"", "<html>502</html>", "{\"error\":\"x\"}", "{\"error\":{\"code\":"};
  for (size_t i = 0; i < 4; i++) {
    cr_assert(!bf_meta_graph_error(not_graph[i], strlen(not_graph[i]), &code, &sub, msg, sizeof msg,
                                   &transient));
    cr_assert_eq(code, 0);
    cr_assert_str_eq(msg, "");
  }
  /* A tiny message buffer truncates, never overflows. */
  char tiny[6];
  cr_assert(
      bf_meta_graph_error(throttle, strlen(throttle), &code, &sub, tiny, sizeof tiny, &transient));
  cr_assert_str_eq(tiny, "(#17)");

  struct {
    long status;
    const char *body;
    bool retry;
  } cases[] = {
      {400, throttle, true},
      {400,
       "{\"error\":{\"code\":613,\"error_subcode\":1487742,\"message\":\"Calls to this api have "
       "exceeded the rate limit.\"}}",
       true},
      {400,
       "{\"error\":{\"code\":80003,\"message\":\"There have been too many calls to this "
       "ad-account.\"}}",
       true},
      {500,
       "{\"error\":{\"code\":2,\"is_transient\":true,\"message\":\"Service temporarily "
       "unavailable\"}}",
       true},
      {400, flagged, false},
      {400, "{\"error\":{\"code\":190,\"message\":\"Invalid OAuth 2.0 Access Token\"}}", false},
      {400, "not json", false},
      {429, "", true},
      {503, "", true},
      {0, NULL, true},
      {200, throttle, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct bf_http_response r = response(cases[i].status, cases[i].body);
    cr_assert_eq(bf_meta_retryable(&r, NULL), cases[i].retry, "case %zu", i);
    bf_http_response_release(&r);
  }
}

/* ---- google_customer_match -------------------------------------------------- */

static const char *gcm_match[] = {"email"};
static const char *gcm_fields[] = {"phone",       "first_name", "last_name", "country_code",
                                   "postal_code", "crm_id",     "mobile_id"};

Test(google, create_operation_has_one_identifier_per_key_address_in_clear_parts) {
  struct bf_mapping m = mapping(gcm_match, 1, gcm_fields, 7);
  struct bf_value v[] = {T(" Cloudy.SanFrancisco+Shopping@Gmail.com "),
                         T("+1 (800) 555-0100"),
                         T("Mary  Ann"),
                         T("O'Neil"),
                         T("us"),
                         T(" 94043 "),
                         T(" c-1 "),
                         T("AB-cd-1")};
  struct bf_record rec = upsert(v);
  struct bf_batch b = batch_of(&m, &rec, 1);
  int col[BF_GCM_N_KEYS];
  struct bf_error err = {0};
  cr_assert_eq(bf_gcm_resolve_keys(&b, true, col, &err), 0, "%s", err.msg);
  struct bf_buf out = {0};
  char *reason = bf_gcm_write_operation(col, &b, &rec, true, &out);
  cr_assert_null(reason, "%s", reason);
  cr_assert_str_eq(bf_buf_cstr(&out),
                   "{\"create\":{\"userIdentifiers\":[{\"hashedEmail\":\"" H_CLOUDY "\"},"
                   "{\"hashedPhoneNumber\":\"" H_E164 "\"},"
                   "{\"addressInfo\":{\"hashedFirstName\":\"" H_MARYANN
                   "\",\"hashedLastName\":\"" H_ONEIL "\","
                   "\"countryCode\":\"US\",\"postalCode\":\"94043\"}},"
                   "{\"thirdPartyUserId\":\"c-1\"},{\"mobileId\":\"AB-cd-1\"}]}}");
  bf_buf_release(&out);
}

Test(google, address_info_needs_all_four_parts_and_bad_values_refuse_the_row) {
  struct bf_mapping m = mapping(gcm_match, 1, gcm_fields, 7);
  int col[BF_GCM_N_KEYS];
  struct bf_error err = {0};
  struct bf_batch b = batch_of(&m, NULL, 0);
  cr_assert_eq(bf_gcm_resolve_keys(&b, true, col, &err), 0);
  struct bf_buf out = {0};
  /* Address without a postal code: no addressInfo, and nothing else -> no identifier. */
  struct bf_value v0[] = {N, N, T("Mary"), T("Smith"), T("US"), N, N, N};
  struct bf_record r0 = upsert(v0);
  char *reason = bf_gcm_write_operation(col, &b, &r0, true, &out);
  cr_assert_str_eq(reason, "no identifier: needs email, phone, crm_id, mobile_id, or first_name + "
                           "last_name + country_code + postal_code");
  cr_assert_eq(out.len, 0);
  free(reason);
  /* A phone that is not one: the row is refused, nothing appended. */
  struct bf_value v1[] = {T("a@example.com"), T("call after 5"), N, N, N, N, N, N};
  struct bf_record r1 = upsert(v1);
  reason = bf_gcm_write_operation(col, &b, &r1, true, &out);
  cr_assert_str_eq(reason, "phone: is too short for a phone number with its country code");
  cr_assert_eq(out.len, 0);
  free(reason);
  bf_buf_release(&out);
}

Test(google, remove_operation_reads_the_match_json) {
  struct bf_mapping m = mapping(gcm_match, 1, gcm_fields, 7);
  struct bf_record rec = removal("{\"email\":\"user.name+NYC@Example.com\"}");
  struct bf_batch b = batch_of(&m, &rec, 1);
  int col[BF_GCM_N_KEYS];
  struct bf_error err = {0};
  cr_assert_eq(bf_gcm_resolve_keys(&b, false, col, &err), 0);
  cr_assert_eq(col[1], -1, "removals ignore field keys");
  struct bf_buf out = {0};
  char *reason = bf_gcm_write_operation(col, &b, &rec, false, &out);
  cr_assert_null(reason);
  cr_assert_str_eq(bf_buf_cstr(&out),
                   "{\"remove\":{\"userIdentifiers\":[{\"hashedEmail\":\"" H_NYC "\"}]}}");
  bf_buf_release(&out);
}

Test(google, unknown_and_repeated_keys_are_configuration_errors) {
  static const char *bad[] = {"EMAIL"};
  struct bf_mapping m = mapping(bad, 1, NULL, 0);
  struct bf_batch b = batch_of(&m, NULL, 0);
  int col[BF_GCM_N_KEYS];
  struct bf_error err = {0};
  cr_assert_eq(bf_gcm_resolve_keys(&b, true, col, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "'EMAIL' is not a Customer Match key"), "%s", err.msg);
  static const char *f[] = {"email"};
  m = mapping(gcm_match, 1, f, 1);
  b = batch_of(&m, NULL, 0);
  cr_assert_eq(bf_gcm_resolve_keys(&b, true, col, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "'email' is mapped twice"), "%s", err.msg);
}

Test(google, partial_failures_reject_the_operations_they_index) {
  /* The shape of a Google Ads partialFailureError (GoogleAdsFailure details). */
  const char *ans =
      "{\"partialFailureError\":{\"code\":3,\"message\":\"Multiple errors in 'details'. First "
      "error: "
      "The SHA256 encoded value is malformed., at "
      "operations[1].create.user_identifiers[0].hashed_email\","
      "\"details\":[{\"@type\":\"type.googleapis.com/"
      "google.ads.googleads.v21.errors.GoogleAdsFailure\","
      "\"errors\":[{\"errorCode\":{\"offlineUserDataJobError\":\"INVALID_SHA256_FORMAT\"},"
      "\"message\":\"The SHA256 encoded value is malformed.\",\"location\":{\"fieldPathElements\":"
      "[{\"fieldName\":\"operations\",\"index\":1},{\"fieldName\":\"create\"},"
      "{\"fieldName\":\"user_identifiers\",\"index\":0},{\"fieldName\":\"hashed_email\"}]}},"
      "{\"errorCode\":{\"collectionSizeError\":\"TOO_MANY\"},\"message\":\"out of range\","
      "\"location\":{\"fieldPathElements\":[{\"fieldName\":\"operations\",\"index\":9}]}},"
      "{\"errorCode\":{\"x\":\"NO_LOCATION\"},\"message\":\"no location\"}],"
      "\"requestId\":\"r1\"}]}}";
  json_t *res = json_loads(ans, 0, NULL);
  cr_assert_not_null(res);
  size_t rec_of_op[] = {0, 2, 3};
  struct bf_outcome out[4];
  all_ok(out, 4); /* as the destination does before parsing */
  cr_assert_eq(bf_gcm_partial_failures(res, rec_of_op, 3, out), 1);
  cr_assert_eq(out[2].status, BF_OUT_REJECT);
  cr_assert_str_eq(out[2].reason,
                   "Google: INVALID_SHA256_FORMAT: The SHA256 encoded value is malformed.");
  cr_assert_eq(out[0].status, BF_OUT_OK);
  cr_assert_eq(out[3].status, BF_OUT_OK);
  json_decref(res);
  outcomes_free(out, 4);
  /* No partial failure, or one of the wrong shape: nothing rejected. */
  const char *others[] = {
      "{}", "{\"partialFailureError\":[]}", "{\"partialFailureError\":{\"details\":{}}}",
      ("{\"partialFailureError\":{\"details\":[{\"errors\":[{\"location\":{\"fieldPathElements\":"
       "[{\"index\":\"1\"}]}}]}]}}")};
  for (size_t i = 0; i < 4; i++) {
    res = json_loads(others[i], 0, NULL);
    struct bf_outcome o[3];
    all_ok(o, 3); /* as the destination does before parsing */
    cr_assert_eq(bf_gcm_partial_failures(res, rec_of_op, 3, o), 0, "case %zu", i);
    json_decref(res);
  }
  struct bf_outcome o[3];
  all_ok(o, 3); /* as the destination does before parsing */
  cr_assert_eq(bf_gcm_partial_failures(NULL, rec_of_op, 3, o), 0);
}

Test(google, error_answers_and_job_status) {
  char msg[240], status[48];
  struct bf_http_response r =
      response(401, "{\"error\":{\"code\":401,\"message\":\"Request is missing required "
                    "authentication credential.\",\"status\":\"UNAUTHENTICATED\"}}");
  bf_gcm_google_error(&r, msg, sizeof msg, status, sizeof status);
  cr_assert_str_eq(msg, "Request is missing required authentication credential.");
  cr_assert_str_eq(status, "UNAUTHENTICATED");
  cr_assert(!bf_gcm_retryable(&r, NULL));
  bf_http_response_release(&r);
  /* The GoogleAdsFailure message says more than the generic one. */
  r = response(
      409,
      "{\"error\":{\"code\":409,\"message\":\"Multiple requests were attempting to modify the same "
      "resource at once.\",\"status\":\"ABORTED\",\"details\":[{\"@type\":\"type.googleapis.com/"
      "google.ads.googleads.v21.errors.GoogleAdsFailure\",\"errors\":[{\"errorCode\":{"
      "\"databaseError\":"
      "\"CONCURRENT_MODIFICATION\"},\"message\":\"Multiple requests were attempting to modify the "
      "same "
      "resource at once. Retry the request.\"}]}]}}");
  bf_gcm_google_error(&r, msg, sizeof msg, status, sizeof status);
  cr_assert_str_eq(
      msg,
      "Multiple requests were attempting to modify the same resource at once. Retry the request.");
  cr_assert_str_eq(status, "ABORTED");
  cr_assert(bf_gcm_retryable(&r, NULL));
  bf_http_response_release(&r);
  r = response(400,
               "{\"error\":{\"code\":400,\"status\":\"INVALID_ARGUMENT\",\"message\":\"bad\"}}");
  cr_assert(!bf_gcm_retryable(&r, NULL));
  bf_http_response_release(&r);
  r = response(
      400, "{\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\",\"message\":\"quota\"}}");
  cr_assert(bf_gcm_retryable(&r, NULL));
  bf_http_response_release(&r);
  r = response(502, "<html>bad gateway</html>");
  bf_gcm_google_error(&r, msg, sizeof msg, status, sizeof status);
  cr_assert_str_eq(msg, "");
  cr_assert_str_eq(status, "");
  cr_assert(bf_gcm_retryable(&r, NULL));
  bf_http_response_release(&r);

  char why[200] = "";
  json_t *res = json_loads("{\"results\":[{\"offlineUserDataJob\":{\"resourceName\":\"customers/1/"
                           "offlineUserDataJobs/2\",\"status\":\"SUCCESS\"}}],\"fieldMask\":\"x\"}",
                           0, NULL);
  cr_assert_eq(bf_gcm_job_status(res, status, sizeof status, why, sizeof why), 1);
  json_decref(res);
  res = json_loads("{\"results\":[{\"offlineUserDataJob\":{\"status\":\"FAILED\",\"failureReason\":"
                   "\"INSUFFICIENT_MATCHED_TRANSACTIONS\"}}]}",
                   0, NULL);
  cr_assert_eq(bf_gcm_job_status(res, status, sizeof status, why, sizeof why), 0);
  cr_assert_str_eq(why, "Google: job FAILED: INSUFFICIENT_MATCHED_TRANSACTIONS");
  json_decref(res);
  res = json_loads("{\"results\":[{\"offlineUserDataJob\":{\"status\":\"RUNNING\"}}]}", 0, NULL);
  cr_assert_eq(bf_gcm_job_status(res, status, sizeof status, why, sizeof why), 2);
  cr_assert_str_eq(status, "RUNNING");
  json_decref(res);
  res = json_loads("{\"results\":[]}", 0, NULL);
  cr_assert_eq(bf_gcm_job_status(res, status, sizeof status, why, sizeof why), 2);
  cr_assert_str_eq(status, "");
  json_decref(res);
  cr_assert_eq(bf_gcm_job_status(NULL, status, sizeof status, why, sizeof why), 2);
}

/* ---- mailchimp ------------------------------------------------------------------ */

Test(mailchimp, subscriber_hash_is_md5_of_the_lowercased_email) {
  char h[33];
  /* Mailchimp's documented example. */
  bf_mc_subscriber_hash("urist.mcvankab@freddiesjokes.com", 32, h);
  cr_assert_str_eq(h, "62eeb292278cc15f5817cb78f7790b08");
  bf_mc_subscriber_hash("person3@example.com", 19, h);
  cr_assert_str_eq(h, "efd59671aafc2cec38941a0bb9606943");
}

Test(mailchimp, member_body_puts_member_keys_merge_fields_and_tags_in_place) {
  static const char *match[] = {"email_address"};
  static const char *fields[] = {"FNAME", "status", "vip", "tags", "LNAME"};
  struct bf_mapping m = mapping(match, 1, fields, 5);
  static const char *cnames[] = {"SOURCE"};
  struct bf_value cvals[] = {T("backflow")};
  m.n_constants = 1;
  m.constant_names = cnames;
  m.constant_values = cvals;
  struct bf_value v[] = {T(" Person3@Example.com "), T("Ann"), T("pending"), T("true"),
                         T(" vip , ,early "),        N};
  struct bf_record rec = upsert(v);
  struct bf_batch b = batch_of(&m, &rec, 1);
  struct bf_error err = {0};
  int col = bf_mc_email_column(&b, &err);
  cr_assert_eq(col, 0);
  char email[BF_PII_MAX], lower[BF_PII_MAX];
  cr_assert_null(bf_mc_record_email(&b, &rec, col, email, lower));
  cr_assert_str_eq(email, "Person3@Example.com");
  cr_assert_str_eq(lower, "person3@example.com");
  struct bf_buf body = {0}, tmp = {0};
  bf_mc_write_member(&b, &rec, email, "subscribed", &body, &tmp);
  cr_assert_str_eq(bf_buf_cstr(&body),
                   "{\"email_address\":\"Person3@Example.com\",\"status\":\"pending\",\"vip\":true,"
                   "\"merge_fields\":{\"FNAME\":\"Ann\",\"LNAME\":\"\",\"SOURCE\":\"backflow\"},"
                   "\"tags\":[\"vip\",\"early\"]}");
  /* No status column: the destination's default; no merge field, no tags. */
  static const char *few[] = {"vip"};
  m = mapping(match, 1, few, 1);
  struct bf_value v2[] = {T("a@b.co"), I(0)};
  struct bf_record r2 = upsert(v2);
  b = batch_of(&m, &r2, 1);
  bf_buf_reset(&body);
  bf_mc_write_member(&b, &r2, "a@b.co", "subscribed", &body, &tmp);
  cr_assert_str_eq(bf_buf_cstr(&body),
                   "{\"email_address\":\"a@b.co\",\"vip\":false,\"status\":\"subscribed\"}");
  bf_buf_release(&body);
  bf_buf_release(&tmp);
}

Test(mailchimp, emails_that_are_not_emails_are_refused_and_the_match_key_is_required) {
  static const char *match[] = {"email"};
  struct bf_mapping m = mapping(match, 1, NULL, 0);
  struct bf_value v[] = {T("no-at-sign")};
  struct bf_record recs[] = {upsert(v), removal("{\"email\":\"Gone@Example.com\"}"),
                             removal("{\"email\":7}")};
  struct bf_batch b = batch_of(&m, recs, 3);
  char email[BF_PII_MAX], lower[BF_PII_MAX];
  char *reason = bf_mc_record_email(&b, &recs[0], 0, email, lower);
  cr_assert_str_eq(reason, "email: not an email address");
  free(reason);
  cr_assert_null(bf_mc_record_email(&b, &recs[1], 0, email, lower));
  cr_assert_str_eq(lower, "gone@example.com");
  reason = bf_mc_record_email(&b, &recs[2], 0, email, lower);
  cr_assert_str_eq(reason, "email: is empty");
  free(reason);
  static const char *other[] = {"id"};
  m = mapping(other, 1, NULL, 0);
  struct bf_error err = {0};
  cr_assert_eq(bf_mc_email_column(&b, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "a mailchimp sync needs match: {email_address: <column>}"), "%s",
            err.msg);
}

Test(mailchimp, errors_in_the_200_answer_reject_records_by_email) {
  char lower[4][BF_PII_MAX] = {"a@example.com", "bad@example.com", "c@example.com",
                               "bad@example.com"};
  struct bf_outcome out[4];
  all_ok(out, 4); /* as the destination does before parsing */
  /* Records 1..2 are this request's; record 3 (same email) belongs to another. */
  const char *ans =
      "{\"new_members\":[{\"id\":\"x\",\"email_address\":\"c@example.com\",\"status\":"
      "\"subscribed\"}],"
      "\"updated_members\":[],\"errors\":[{\"email_address\":\"Bad@Example.com\",\"error\":"
      "\"Bad@Example.com looks fake or invalid, please enter a real email address.\","
      "\"error_code\":\"ERROR_GENERIC\"},{\"email_address\":\"nobody@example.com\",\"error\":\"x\"}"
      ","
      "{\"email_address\":42},{\"error\":\"no address\"}],"
      "\"total_created\":1,\"total_updated\":0,\"error_count\":4}";
  bf_mc_apply_answer(ans, strlen(ans), lower, 1, 2, out);
  cr_assert_eq(out[0].status, BF_OUT_OK);
  cr_assert_eq(out[1].status, BF_OUT_REJECT);
  cr_assert_str_eq(out[1].reason,
                   "Mailchimp: ERROR_GENERIC: Bad@Example.com looks fake or invalid, please "
                   "enter a real email address.");
  cr_assert_eq(out[2].status, BF_OUT_OK);
  cr_assert_eq(out[3].status, BF_OUT_OK);
  outcomes_free(out, 4);
  /* No errors[] (or no JSON): the request's records are sent again. */
  const char *bad[] = {"{\"new_members\":[]}", "", "<html>", "{\"errors\":{}}"};
  for (size_t i = 0; i < 4; i++) {
    struct bf_outcome o[4];
    all_ok(o, 4); /* as the destination does before parsing */
    o[2] = (struct bf_outcome){BF_OUT_REJECT, strdup("earlier")};
    bf_mc_apply_answer(bad[i], strlen(bad[i]), lower, 0, 3, o);
    cr_assert_eq(o[0].status, BF_OUT_RETRY, "case %zu", i);
    cr_assert_str_eq(o[0].reason, "Mailchimp: answer without errors[]");
    cr_assert_str_eq(o[2].reason, "earlier", "a refused record stays refused");
    cr_assert_eq(o[3].status, BF_OUT_OK, "outside the request");
    outcomes_free(o, 4);
  }
}

Test(mailchimp, problem_json_and_retry_verdicts) {
  char msg[240];
  struct bf_http_response r =
      response(401, "{\"type\":\"https://mailchimp.com/developer/marketing/docs/errors/\","
                    "\"title\":\"API Key Invalid\",\"status\":401,\"detail\":\"Your API key may "
                    "be invalid, or you've attempted to access the wrong datacenter.\","
                    "\"instance\":\"abc\"}");
  bf_mc_problem(&r, msg, sizeof msg);
  cr_assert_str_eq(
      msg, "API Key Invalid: Your API key may be invalid, or you've attempted to access the "
           "wrong datacenter.");
  bf_http_response_release(&r);
  r = response(403, "{\"title\":\"Forbidden\",\"status\":403,\"detail\":\"no access\"}");
  cr_assert(!bf_mc_retryable(&r, NULL), "a 403 with a problem body is a refusal");
  bf_http_response_release(&r);
  r = response(403, NULL);
  cr_assert(bf_mc_retryable(&r, NULL), "a bare 403 is Mailchimp shedding load");
  bf_mc_problem(&r, msg, sizeof msg);
  cr_assert_str_eq(msg, "");
  bf_http_response_release(&r);
  r = response(429, "{\"title\":\"Too Many Requests\"}");
  cr_assert(bf_mc_retryable(&r, NULL));
  bf_http_response_release(&r);
  r = response(400, "{\"detail\":\"only a detail\"}");
  bf_mc_problem(&r, msg, sizeof msg);
  cr_assert_str_eq(msg, "only a detail");
  cr_assert(!bf_mc_retryable(&r, NULL));
  bf_http_response_release(&r);
}

/* ---- braze ----------------------------------------------------------------------- */

static const char *braze_ext[] = {"external_id"};
static const char *braze_alias[] = {"user_alias"};
static const char *braze_fields[] = {"email", "first_name", "plan"};

Test(braze, track_body_by_external_id_with_null_clearing_and_constants) {
  struct bf_mapping m = mapping(braze_ext, 1, braze_fields, 3);
  static const char *cnames[] = {"source"};
  struct bf_value cvals[] = {T("backflow")};
  m.n_constants = 1;
  m.constant_names = cnames;
  m.constant_values = cvals;
  struct bf_value v0[] = {I(7), T("a@example.com"), T("Ann \"A\""), N};
  struct bf_value v1[] = {T("   "), T("b@example.com"), N, N};
  struct bf_value v2[] = {T(" u-8 "), N, N, T("pro")};
  struct bf_record recs[] = {upsert(v0), upsert(v1), upsert(v2)};
  struct bf_batch b = batch_of(&m, recs, 3);
  int kind = -1;
  struct bf_error err = {0};
  int col = bf_braze_identifier(&b, &kind, &err);
  cr_assert_eq(col, 0);
  cr_assert_eq(kind, 0);
  struct bf_buf body = {0}, tmp = {0};
  size_t rec_of[3];
  struct bf_outcome out[3];
  all_ok(out, 3); /* as the destination does before parsing */
  size_t n = bf_braze_track_body(&b, col, kind, "email", 0, 3, &body, rec_of, out, &tmp);
  cr_assert_eq(n, 2);
  cr_assert_eq(rec_of[0], 0);
  cr_assert_eq(rec_of[1], 2);
  cr_assert_str_eq(out[1].reason, "external_id: is empty");
  cr_assert_str_eq(bf_buf_cstr(&body),
                   "{\"attributes\":[{\"external_id\":\"7\",\"email\":\"a@example.com\",\"first_"
                   "name\":\"Ann \\\"A\\\"\","
                   "\"plan\":null,\"source\":\"backflow\"},{\"external_id\":\"u-8\",\"email\":null,"
                   "\"first_name\":null,\"plan\":\"pro\",\"source\":\"backflow\"}]}");
  bf_buf_release(&body);
  bf_buf_release(&tmp);
  outcomes_free(out, 3);
}

Test(braze, track_and_delete_by_user_alias) {
  struct bf_mapping m = mapping(braze_alias, 1, braze_fields, 1);
  struct bf_value v0[] = {T("a@example.com"), T("a@example.com")};
  struct bf_record recs[] = {upsert(v0)};
  struct bf_batch b = batch_of(&m, recs, 1);
  int kind;
  struct bf_error err = {0};
  int col = bf_braze_identifier(&b, &kind, &err);
  cr_assert_eq(kind, 1);
  struct bf_buf body = {0}, tmp = {0};
  size_t rec_of[2];
  struct bf_outcome out[2];
  all_ok(out, 2); /* as the destination does before parsing */
  cr_assert_eq(bf_braze_track_body(&b, col, kind, "email", 0, 1, &body, rec_of, out, &tmp), 1);
  cr_assert_str_eq(bf_buf_cstr(&body),
                   "{\"attributes\":[{\"user_alias\":{\"alias_name\":\"a@example.com\",\"alias_"
                   "label\":\"email\"},"
                   "\"_update_existing_only\":false,\"email\":\"a@example.com\"}]}");
  struct bf_record dels[] = {removal("{\"user_alias\":\"a@example.com\"}"),
                             removal("{\"user_alias\":\"b@x.io\"}")};
  b = batch_of(&m, dels, 2);
  bf_buf_reset(&body);
  cr_assert_eq(bf_braze_delete_body(&b, col, kind, "crm", 0, 2, &body, rec_of, out), 2);
  cr_assert_str_eq(bf_buf_cstr(&body),
                   "{\"user_aliases\":[{\"alias_name\":\"a@example.com\",\"alias_label\":\"crm\"},"
                   "{\"alias_name\":\"b@x.io\",\"alias_label\":\"crm\"}]}");
  bf_buf_release(&body);
  bf_buf_release(&tmp);
}

Test(braze, delete_body_by_external_id_skips_records_without_one) {
  struct bf_mapping m = mapping(braze_ext, 1, NULL, 0);
  struct bf_record dels[] = {removal("{\"external_id\":7}"), removal("{\"external_id\":null}"),
                             removal("{\"external_id\":\"u-9\"}")};
  struct bf_batch b = batch_of(&m, dels, 3);
  struct bf_buf body = {0};
  size_t rec_of[3];
  struct bf_outcome out[3];
  all_ok(out, 3); /* as the destination does before parsing */
  cr_assert_eq(bf_braze_delete_body(&b, 0, 0, "email", 0, 3, &body, rec_of, out), 2);
  cr_assert_str_eq(bf_buf_cstr(&body), "{\"external_ids\":[\"7\",\"u-9\"]}");
  cr_assert_str_eq(out[1].reason, "external_id: is empty");
  cr_assert_eq(rec_of[1], 2);
  /* A range that refuses everything still closes the JSON. */
  bf_buf_reset(&body);
  cr_assert_eq(bf_braze_delete_body(&b, 0, 0, "email", 1, 2, &body, rec_of, out), 0);
  cr_assert_str_eq(bf_buf_cstr(&body), "{\"external_ids\":[]}");
  bf_buf_release(&body);
  outcomes_free(out, 3);
  static const char *none[] = {"email"};
  m = mapping(none, 1, NULL, 0);
  b = batch_of(&m, dels, 3);
  struct bf_error err = {0};
  int kind;
  cr_assert_eq(bf_braze_identifier(&b, &kind, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "match: {external_id: <column>} or {user_alias: <column>}"), "%s",
            err.msg);
}

Test(braze, non_fatal_errors_reject_the_objects_they_index) {
  size_t rec_of[] = {0, 2, 5};
  struct bf_outcome out[6];
  all_ok(out, 6); /* as the destination does before parsing */
  const char *ans =
      "{\"message\":\"success\",\"attributes_processed\":2,\"errors\":["
      "{\"type\":\"'external_id' or 'braze_id' or 'user_alias' is required\",\"input_array\":"
      "\"attributes\",\"index\":1},"
      "{\"type\":\"out of range\",\"input_array\":\"attributes\",\"index\":3},"
      "{\"type\":\"negative\",\"input_array\":\"attributes\",\"index\":-1},"
      "{\"type\":\"an event\",\"input_array\":\"events\",\"index\":0},"
      "{\"type\":\"no index\",\"input_array\":\"attributes\"}]}";
  bf_braze_track_answer(ans, strlen(ans), rec_of, 3, out);
  cr_assert_eq(out[0].status, BF_OUT_OK);
  cr_assert_eq(out[2].status, BF_OUT_REJECT);
  cr_assert_str_eq(out[2].reason, "Braze: 'external_id' or 'braze_id' or 'user_alias' is required");
  cr_assert_eq(out[5].status, BF_OUT_OK);
  outcomes_free(out, 6);
}

Test(braze, a_fatal_or_unreadable_answer_makes_the_request_retry) {
  size_t rec_of[] = {1, 3};
  const char *answers[] = {
      "{\"message\":\"Valid data must be provided in the 'attributes', 'events', or 'purchases' "
      "fields.\","
      "\"errors\":[{\"type\":\"x\",\"input_array\":\"attributes\",\"index\":0}]}",
      "{\"errors\":[]}", "", "[\"success\"]", "{\"message\":\"succ"};
  const char *want[] = {
      "Braze: Valid data must be provided in the 'attributes', 'events', or 'purchases' fields.",
      "Braze: answer without a message", "Braze: answer without a message",
      "Braze: answer without a message", "Braze: answer without a message"};
  for (size_t a = 0; a < 5; a++) {
    struct bf_outcome out[4];
    all_ok(out, 4); /* as the destination does before parsing */
    bf_braze_track_answer(answers[a], strlen(answers[a]), rec_of, 2, out);
    cr_assert_eq(out[0].status, BF_OUT_OK);
    cr_assert_eq(out[1].status, BF_OUT_RETRY, "answer %zu", a);
    cr_assert_str_eq(out[1].reason, want[a]);
    cr_assert_eq(out[3].status, BF_OUT_RETRY);
    outcomes_free(out, 4);
  }
  char msg[200];
  struct bf_http_response r = response(401, "{\"message\":\"Invalid API Key\"}");
  bf_braze_message(&r, msg, sizeof msg);
  cr_assert_str_eq(msg, "Invalid API Key");
  bf_http_response_release(&r);
  r = response(500, "oops");
  bf_braze_message(&r, msg, sizeof msg);
  cr_assert_str_eq(msg, "");
  bf_http_response_release(&r);
}

/* ---- klaviyo ------------------------------------------------------------------------ */

static const char *kl_match[] = {"email"};
static const char *kl_fields[] = {"phone_number", "first_name", "city", "latitude", "plan", "ltv"};

/* Builds a job of recs and returns it (profiles refused get their reason). */
static void kl_build(struct bf_klaviyo_job *job, const struct bf_batch *b, struct bf_outcome *out,
                     const char *list_id) {
  struct bf_buf tmp = {0};
  bf_klaviyo_job_begin(job);
  for (size_t i = 0; i < b->n; i++) {
    out[i] = (struct bf_outcome){BF_OUT_OK, NULL};
    char *reason = bf_klaviyo_add_profile(job, b, i, &tmp);
    if (reason) out[i] = (struct bf_outcome){BF_OUT_REJECT, reason};
  }
  bf_klaviyo_job_end(job, list_id);
  bf_buf_release(&tmp);
}

Test(klaviyo, job_body_has_normalised_identifiers_attributes_location_and_properties) {
  struct bf_mapping m = mapping(kl_match, 1, kl_fields, 6);
  static const char *cnames[] = {"source"};
  struct bf_value cvals[] = {T("backflow")};
  m.n_constants = 1;
  m.constant_names = cnames;
  m.constant_values = cvals;
  struct bf_value v0[] = {T(" Jane.Doe@Example.COM "),
                          T("+1 (650) 555-1212"),
                          T("Jane \"J\""),
                          T("Paris"),
                          (struct bf_value){.type = BF_FLOAT, .u.f = 48.5},
                          T("pro"),
                          I(120)};
  struct bf_value v1[] = {T("bob@example.com"), N, N, N, N, N, N}; /* NULLs are left out */
  struct bf_value v2[] = {T("no-at-sign"), N, N, N, N, N, N};
  struct bf_value v3[] = {N, N, T("Nobody"), N, N, N, N};
  struct bf_record recs[] = {upsert(v0), upsert(v1), upsert(v2), upsert(v3)};
  struct bf_batch b = batch_of(&m, recs, 4);
  struct bf_error err = {0};
  cr_assert_eq(bf_klaviyo_check_mapping(&b, &err), 0, "%s", err.msg);
  struct bf_klaviyo_job job = {0};
  struct bf_outcome out[4];
  kl_build(&job, &b, out, "Y6nRLr");
  cr_assert_eq(job.n, 2);
  cr_assert_str_eq(out[2].reason, "email: not an email address");
  cr_assert_str_eq(out[3].reason, "no identifier: needs email, phone_number or external_id");
  cr_assert_str_eq(
      bf_buf_cstr(&job.body),
      "{\"data\":{\"type\":\"profile-bulk-import-job\",\"attributes\":{\"profiles\":{\"data\":["
      "{\"type\":\"profile\",\"attributes\":{\"email\":\"jane.doe@example.com\","
      "\"phone_number\":\"+16505551212\",\"first_name\":\"Jane \\\"J\\\"\","
      "\"location\":{\"city\":\"Paris\",\"latitude\":48.5},"
      "\"properties\":{\"plan\":\"pro\",\"ltv\":120,\"source\":\"backflow\"}}},"
      "{\"type\":\"profile\",\"attributes\":{\"email\":\"bob@example.com\","
      "\"properties\":{\"source\":\"backflow\"}}}]}},"
      "\"relationships\":{\"lists\":{\"data\":[{\"type\":\"list\",\"id\":\"Y6nRLr\"}]}}}}");
  /* Without a list there is no relationships member. */
  struct bf_record one[] = {upsert(v1)};
  b = batch_of(&m, one, 1);
  kl_build(&job, &b, out, NULL);
  cr_assert_str_eq(
      bf_buf_cstr(&job.body),
      "{\"data\":{\"type\":\"profile-bulk-import-job\",\"attributes\":{\"profiles\":{\"data\":["
      "{\"type\":\"profile\",\"attributes\":{\"email\":\"bob@example.com\","
      "\"properties\":{\"source\":\"backflow\"}}}]}}}}");
  bf_klaviyo_job_release(&job);
  outcomes_free(out, 4);
}

Test(klaviyo, a_profile_over_100_kb_is_refused_and_the_mapping_needs_an_identifier) {
  static const char *f[] = {"bio"};
  struct bf_mapping m = mapping(kl_match, 1, f, 1);
  char *big = malloc(120001);
  memset(big, 'x', 120000);
  big[120000] = '\0';
  struct bf_value v[] = {T("a@example.com"), T(big)};
  struct bf_record recs[] = {upsert(v)};
  struct bf_batch b = batch_of(&m, recs, 1);
  struct bf_klaviyo_job job = {0};
  struct bf_outcome out[1];
  kl_build(&job, &b, out, NULL);
  cr_assert_eq(job.n, 0);
  cr_assert_str_eq(out[0].reason, "profile is larger than Klaviyo's 100 KB limit");
  cr_assert_str_eq(bf_buf_cstr(&job.body),
                   "{\"data\":{\"type\":\"profile-bulk-import-job\",\"attributes\":"
                   "{\"profiles\":{\"data\":[]}}}}");
  free(big);
  bf_klaviyo_job_release(&job);
  outcomes_free(out, 1);
  static const char *no_id[] = {"id"};
  m = mapping(no_id, 1, kl_match, 1); /* email only as a field: removals could not find anyone */
  b = batch_of(&m, NULL, 0);
  struct bf_error err = {0};
  cr_assert_eq(bf_klaviyo_check_mapping(&b, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "a klaviyo sync needs match: {email: <column>}"), "%s", err.msg);
  static const char *twice[] = {"email", "phone_number"};
  static const char *again[] = {"email"};
  m = mapping(twice, 2, again, 1);
  b = batch_of(&m, NULL, 0);
  cr_assert_eq(bf_klaviyo_check_mapping(&b, &err), BF_E_CONFIG);
  cr_assert(strstr(err.msg, "'email' is mapped twice"), "%s", err.msg);
}

/* A job of three profiles: records 0, 2, 3 (record 1 refused locally). */
static void kl_three(struct bf_klaviyo_job *job, struct bf_outcome *out) {
  static const char *match[] = {"email", "external_id"};
  static struct bf_mapping m;
  m = mapping(match, 2, NULL, 0);
  static struct bf_value v[4][2];
  v[0][0] = T("a@example.com"), v[0][1] = T("ext-a");
  v[1][0] = T("bad"), v[1][1] = N;
  v[2][0] = T("B@Example.com"), v[2][1] = N;
  v[3][0] = N, v[3][1] = T("ext-d");
  static struct bf_record recs[4];
  for (int i = 0; i < 4; i++) recs[i] = upsert(v[i]);
  struct bf_batch b = batch_of(&m, recs, 4);
  kl_build(job, &b, out, NULL);
  cr_assert_eq(job->n, 3);
}

Test(klaviyo, a_refusal_rejects_the_profiles_its_pointers_name) {
  struct bf_klaviyo_job job = {0};
  struct bf_outcome out[4];
  kl_three(&job, out);
  /* Klaviyo's synchronous validation answer (JSON:API errors). */
  const char *ans =
      "{\"errors\":[{\"id\":\"e1\",\"status\":400,\"code\":\"invalid\",\"title\":\"Invalid "
      "input.\","
      "\"detail\":\"B@Example.com is not a valid email address.\",\"source\":{\"pointer\":"
      "\"/data/attributes/profiles/data/1/attributes/email\"}},"
      "{\"status\":400,\"code\":\"invalid\",\"detail\":\"out of range\",\"source\":{\"pointer\":"
      "\"/data/attributes/profiles/data/7\"}},"
      "{\"status\":400,\"code\":\"invalid\",\"detail\":\"not a profile\",\"source\":{\"pointer\":"
      "\"/data/attributes/profiles/data/1x\"}}]}";
  cr_assert_eq(bf_klaviyo_refusal(&job, ans, strlen(ans), out), 1);
  cr_assert_eq(out[0].status, BF_OUT_OK);
  cr_assert_eq(out[2].status, BF_OUT_REJECT);
  cr_assert_str_eq(out[2].reason, "Klaviyo: invalid: B@Example.com is not a valid email address.");
  cr_assert_eq(out[3].status, BF_OUT_OK);
  /* A refusal about the list names no profile. */
  const char *list =
      "{\"errors\":[{\"status\":400,\"code\":\"invalid\",\"title\":\"Invalid input.\",\"detail\":"
      "\"List relationship is "
      "invalid.\",\"source\":{\"pointer\":\"/data/relationships/lists/data/0/id\"}}]}";
  cr_assert_eq(bf_klaviyo_refusal(&job, list, strlen(list), out), 0);
  char msg[100];
  bf_klaviyo_error_text(list, strlen(list), msg, sizeof msg);
  cr_assert_str_eq(msg, "invalid: List relationship is invalid.");
  const char *junk[] = {"", "<html>", "{\"errors\":{}}", "{\"errors\":[1,\"x\",{}]}"};
  for (size_t i = 0; i < 4; i++) {
    cr_assert_eq(bf_klaviyo_refusal(&job, junk[i], strlen(junk[i]), out), 0);
    bf_klaviyo_error_text(junk[i], strlen(junk[i]), msg, sizeof msg);
  }
  bf_klaviyo_job_release(&job);
  outcomes_free(out, 4);
}

Test(klaviyo, job_id_and_status_answers) {
  const char *created =
      "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"ZXhhbXBsZQ-1_x\",\"attributes\":"
      "{\"status\":\"queued\",\"total_count\":3,\"completed_count\":0,\"failed_count\":0}}}";
  char *id = bf_klaviyo_job_id(created, strlen(created));
  cr_assert_str_eq(id, "ZXhhbXBsZQ-1_x");
  free(id);
  const char *no[] = {"{\"data\":{\"type\":\"profile\",\"id\":\"x\"}}",
                      ("{\"data\":{\"type\":\"profile-bulk-import-job\","
                       "\"id\":\"../../x\"}}"),
                      "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":7}}", "", "[]"};
  for (size_t i = 0; i < 5; i++)
    cr_assert_null(bf_klaviyo_job_id(no[i], strlen(no[i])), "case %zu", i);
  long long failed;
  const char *done =
      "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"j\",\"attributes\":{\"status\":"
      "\"complete\",\"total_count\":3,\"completed_count\":2,\"failed_count\":1,\"completed_at\":"
      "\"2025-01-15T10:00:00+00:00\"}}}";
  cr_assert_eq(bf_klaviyo_job_status(done, strlen(done), &failed), BF_KLAVIYO_COMPLETE);
  cr_assert_eq(failed, 1);
  const char *cancelled =
      "{\"data\":{\"attributes\":{\"status\":\"cancelled\",\"failed_count\":null}}}";
  cr_assert_eq(bf_klaviyo_job_status(cancelled, strlen(cancelled), &failed), BF_KLAVIYO_CANCELLED);
  cr_assert_eq(failed, 0);
  const char *pending[] = {
      "{\"data\":{\"attributes\":{\"status\":\"processing\",\"failed_count\":0}}}",
      "{\"data\":{\"attributes\":{\"status\":\"queued\"}}}", "", "{\"data\":[]}"};
  for (size_t i = 0; i < 4; i++)
    cr_assert_eq(bf_klaviyo_job_status(pending[i], strlen(pending[i]), &failed),
                 BF_KLAVIYO_PENDING);
}

Test(klaviyo, import_errors_are_matched_by_pointer_else_by_original_payload) {
  struct bf_klaviyo_job job = {0};
  struct bf_outcome out[4];
  kl_three(&job, out);
  const char *page =
      "{\"data\":[{\"type\":\"import-error\",\"id\":\"e1\",\"attributes\":{\"code\":\"invalid\","
      "\"title\":"
      "\"Invalid input.\",\"detail\":\"Invalid phone number format\",\"source\":{\"pointer\":"
      "\"/data/attributes/profiles/data/0/attributes/"
      "phone_number\"},\"original_payload\":{\"email\":"
      "\"a@example.com\"}}},"
      "{\"type\":\"import-error\",\"id\":\"e2\",\"attributes\":{\"code\":\"invalid\",\"title\":"
      "\"Invalid input.\","
      "\"original_payload\":{\"external_id\":\"ext-d\"}}},"
      "{\"type\":\"import-error\",\"id\":\"e3\",\"attributes\":{\"code\":\"invalid\",\"detail\":"
      "\"who?\","
      "\"original_payload\":{\"email\":\"nobody@example.com\"}}},"
      "{\"type\":\"import-error\",\"id\":\"e4\"}],"
      "\"links\":{\"self\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/j/"
      "import-errors\",\"next\":"
      "\"https://a.klaviyo.com/api/profile-bulk-import-jobs/j/"
      "import-errors?page%5Bcursor%5D=abc\"}}";
  char *next = NULL;
  cr_assert_eq(bf_klaviyo_import_errors(&job, page, strlen(page), out, &next), 2);
  cr_assert_str_eq(out[0].reason, "Klaviyo: invalid: Invalid phone number format");
  cr_assert_str_eq(out[3].reason, "Klaviyo: invalid: Invalid input.");
  cr_assert_eq(out[2].status, BF_OUT_OK);
  cr_assert_str_eq(
      next,
      "https://a.klaviyo.com/api/profile-bulk-import-jobs/j/import-errors?page%5Bcursor%5D=abc");
  free(next);
  /* The identifiers of original_payload are normalised before comparing. */
  const char *last =
      "{\"data\":[{\"type\":\"import-error\",\"attributes\":{\"code\":\"invalid\",\"detail\":\"x\","
      "\"original_payload\":{\"attributes\":{\"email\":\" "
      "b@EXAMPLE.com\"}}}}],\"links\":{\"next\":null}}";
  cr_assert_eq(bf_klaviyo_import_errors(&job, last, strlen(last), out, &next), 1);
  cr_assert_eq(out[2].status, BF_OUT_REJECT);
  cr_assert_null(next);
  const char *junk[] = {"", "{\"data\":{}}", "{\"data\":[null,1,{\"attributes\":[]}],\"links\":[]}",
                        "{"};
  for (size_t i = 0; i < 4; i++) {
    cr_assert_eq(bf_klaviyo_import_errors(&job, junk[i], strlen(junk[i]), out, &next), 0,
                 "case %zu", i);
    cr_assert_null(next);
  }
  bf_klaviyo_job_release(&job);
  outcomes_free(out, 4);
}

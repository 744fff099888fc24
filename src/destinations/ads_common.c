/* Helpers shared by the ad-audience and email-platform destinations. */
#include <ctype.h>

#include "destinations/ads_internal.h"

bool bf_ads_json_text(json_t *v, char *buf, size_t cap, const char **s, size_t *n) {
  if (json_is_string(v)) {
    *s = json_string_value(v);
    *n = json_string_length(v);
    return true;
  }
  struct bf_value bv = {.type = BF_NULL};
  if (json_is_integer(v))
    bv = (struct bf_value){.type = BF_INT, .u.i = json_integer_value(v)};
  else if (json_is_real(v))
    bv = (struct bf_value){.type = BF_FLOAT, .u.f = json_real_value(v)};
  else if (json_is_boolean(v))
    bv = (struct bf_value){.type = BF_BOOL, .u.i = json_is_true(v)};
  return bf_pii_value_text(&bv, buf, cap, s, n);
}

bool bf_ads_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isspace((unsigned char)s[i])) return false;
  return true;
}

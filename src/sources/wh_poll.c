/* Polling and cancelling the statements of HTTP warehouses. */
#include "sources/wh_poll.h"

#include <sodium.h>

#include "util/stop.h"
#include "clients/http_transport.h"

#define POLL_FIRST_MS 20
#define POLL_MAX_MS   1000

void bf_wh_poll_start(struct bf_wh_poll *p, const char *what, long long statement_timeout_ms) {
  p->what = what;
  p->started_ms = bf_http_now_ms();
  p->wait_ms = POLL_FIRST_MS;
  p->limit_ms = statement_timeout_ms;
}

int bf_wh_poll_wait(struct bf_wh_poll *p, void (*cancel)(void *arg), void *arg, const char *subject,
                    struct bf_error *err) {
  if (bf_stop_requested) {
    cancel(arg);
    return bf_error_set(err, BF_E_INTERRUPTED, "%s: stopped; %s was cancelled", p->what, subject);
  }
  if (p->limit_ms > 0 && bf_http_now_ms() - p->started_ms > (double)p->limit_ms) {
    cancel(arg);
    return bf_error_set(err, BF_E_WAREHOUSE,
                        "%s: %s ran longer than statement_timeout (%lld ms) and was cancelled",
                        p->what, subject, p->limit_ms);
  }
  bf_http_sleep_ms(p->wait_ms);
  p->wait_ms = p->wait_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : p->wait_ms * 2;
  return 0;
}

char *bf_wh_request_id(void) {
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  return bf_xasprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                      b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                      b[13], b[14], b[15]);
}

/* The process-wide stop request: set by the CLI's and the server's signal
 * handlers, read by every loop that waits (HTTP retries, job polling, live
 * follows, runs between batches) so a stop ends them after the batch in
 * flight. It lives at the bottom layer so plugins can read it without
 * reaching up into the engine. */
#ifndef BF_STOP_H
#define BF_STOP_H

#include <signal.h>

extern volatile sig_atomic_t bf_stop_requested;

#endif

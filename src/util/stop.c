#include "util/stop.h"

volatile sig_atomic_t bf_stop_requested;

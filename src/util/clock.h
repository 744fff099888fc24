/* Wall-clock time in milliseconds, the unit of run history and timeouts. */
#ifndef BF_CLOCK_H
#define BF_CLOCK_H

long long bf_now_ms(void);

#endif

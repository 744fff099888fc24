/* Crash points for the crash tests: BACKFLOW_CRASH_AT=<point>:<n> makes the
 * process SIGKILL itself the n-th time it reaches <point>. Points:
 * before-push, after-push (the destination acknowledged, the journal does
 * not know yet), journal-write, fold-base, fold-journal, and for `backflow
 * forget` forget-before-push, forget-after-push. Unset: a no-op. */
#ifndef BF_CRASHPOINT_H
#define BF_CRASHPOINT_H

void bf_crashpoint(const char *point);

#endif

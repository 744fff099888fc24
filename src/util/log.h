/* Logging to stderr. The macros test the level before evaluating their
 * arguments. Never pass secrets or row values: name rows by keyed hash. */
#ifndef BF_LOG_H
#define BF_LOG_H

enum bf_log_level { BF_LOG_ERROR, BF_LOG_WARN, BF_LOG_INFO, BF_LOG_DEBUG };
extern enum bf_log_level bf_log_level;

void bf_log_write(enum bf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define bf_log_at(level, ...)                                                                      \
  do {                                                                                             \
    if ((level) <= bf_log_level) bf_log_write((level), __VA_ARGS__);                               \
  } while (0)
#define bf_log_error(...) bf_log_at(BF_LOG_ERROR, __VA_ARGS__)
#define bf_log_warn(...)  bf_log_at(BF_LOG_WARN, __VA_ARGS__)
#define bf_log_info(...)  bf_log_at(BF_LOG_INFO, __VA_ARGS__)
#define bf_log_debug(...) bf_log_at(BF_LOG_DEBUG, __VA_ARGS__)

#endif

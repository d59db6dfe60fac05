/*
 * log.h -- the relay's log: one line per event, to stderr.
 *
 * Only I/O modules log; pure modules return errors and let their caller decide.
 * Messages are whole, greppable strings in PostgreSQL's style: lowercase, no
 * trailing period, identifiers in double quotes, LSNs as %X/%X.  Each line is
 * "TIME LEVEL message", TIME in RFC 3339 UTC with milliseconds.
 */
#ifndef RELAY_LOG_H
#define RELAY_LOG_H

#include "config.h"

/* Set the lowest level that is written; the default is RELAY_LOG_INFO. */
void log_set_level(enum relay_log_level level);

/* True when a message at level would be written (to skip building costly ones). */
int log_enabled(enum relay_log_level level);

/* Write one line.  Never fails visibly: a failed write to stderr is ignored. */
void log_msg(enum relay_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(RELAY_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(RELAY_LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(RELAY_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(RELAY_LOG_ERROR, __VA_ARGS__)

#endif /* RELAY_LOG_H */

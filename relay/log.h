/*
 * log.h -- the relay's log: one line per event, to stderr.
 *
 * Only I/O modules log; pure modules return errors and let their caller decide.
 * Messages are whole, greppable strings in PostgreSQL's style: lowercase, no
 * trailing period, identifiers in double quotes, LSNs as %X/%X.
 *
 * Two formats (log.format, see logline.h): "text", each line
 * "TIME LEVEL message key=value ...", TIME in RFC 3339 UTC with milliseconds; and
 * "json", one object per line with "time", "level", "msg" and, when the message
 * carries structured context, "fields".  log_msg() writes a message alone;
 * log_fields() adds key/value fields to it:
 *
 *   log_fields(RELAY_LOG_INFO,
 *              LOG_FIELDS(LF_STR("slot", slot), LF_LSN("confirmed_lsn", lsn)),
 *              "confirmed slot \"%s\" at " LSN_FMT, slot, LSN_ARGS(lsn));
 *
 * The message stays a whole sentence (text logs and grep need it); fields repeat
 * what a machine wants to select on without parsing the sentence.
 *
 * Secrets never reach stderr: every line is scrubbed of the values in the set
 * given to log_set_secrets() (the DSN's passwords, the secret Kafka properties)
 * before it is written, whoever produced the message.
 *
 * Thread safety: log_msg() and log_fields() may be called from any thread
 * (librdkafka's log callback calls them from its own); the log_set_*() functions
 * must be called before other threads start logging.
 */
#ifndef RELAY_LOG_H
#define RELAY_LOG_H

#include <stddef.h>

#include "config.h"
#include "logline.h"
#include "redact.h"

/* Set the lowest level that is written; the default is RELAY_LOG_INFO. */
void log_set_level(enum relay_log_level level);

/* Set the line format; the default is RELAY_LOG_FORMAT_TEXT. */
void log_set_format(enum relay_log_format format);

/*
 * Scrub every later line of the secrets in set (NULL: none).  The set is
 * borrowed: it must stay alive, unchanged, until log_set_secrets(NULL) or the end
 * of the process.
 */
void log_set_secrets(const redact_set *set);

/* True when a message at level would be written (to skip building costly ones). */
int log_enabled(enum relay_log_level level);

/* Write one line.  Never fails visibly: a failed write to stderr is ignored. */
void log_msg(enum relay_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Write one line with nfields structured fields (borrowed, read during the call
 * only).  String field values are scrubbed like the message.  Never fails
 * visibly.  Use LOG_FIELDS() to pass a literal list.
 */
void log_fields(enum relay_log_level level, const struct log_field *fields, size_t nfields,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The two arguments fields, nfields of log_fields() from a list of LF_*() values. */
#define LOG_FIELDS(...)                                                                            \
    ((const struct log_field[]){__VA_ARGS__}),                                                     \
        (sizeof((const struct log_field[]){__VA_ARGS__}) / sizeof(struct log_field))

#define log_debug(...) log_msg(RELAY_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(RELAY_LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(RELAY_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(RELAY_LOG_ERROR, __VA_ARGS__)

#endif /* RELAY_LOG_H */

/*
 * logline.h -- one log line rendered as text or as JSON, with structured fields.
 *
 * log.c takes the time, formats the message and writes the line; this module
 * decides what the line looks like, so that the format can be unit-tested without
 * capturing stderr.  Two formats (log.format):
 *
 *   text   2024-05-01T12:00:00.123Z INFO message key=value key2="a value"
 *   json   {"time":"2024-05-01T12:00:00.123Z","level":"info","msg":"message",
 *           "fields":{"key":"value","key2":"a value"}}          (on one line)
 *
 * "fields" is present only when the message has fields.  JSON strings are escaped
 * as RFC 8259 wants (quotes, backslashes, control characters); bytes that are not
 * valid UTF-8 are written as \u00XX so that the line stays valid JSON.  Text lines
 * keep the message as it is (as they always have) and quote a field value that is
 * empty or holds spaces, quotes, '=' or control characters.
 *
 * Pure: no I/O, no clock, no logging.
 */
#ifndef RELAY_LOGLINE_H
#define RELAY_LOGLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "jsonbuf.h"

/* The longest message kept; longer ones are clipped (at a UTF-8 boundary) with "...". */
#define LOGLINE_MSG_MAX 8192

/* The longest string field value kept, clipped the same way. */
#define LOGLINE_VALUE_MAX 2048

enum log_field_type {
    LOG_FIELD_STR,    /* v.s, a C string; NULL is written as null (text: -) */
    LOG_FIELD_INT,    /* v.i */
    LOG_FIELD_UINT,   /* v.u */
    LOG_FIELD_BOOL,   /* v.b */
    LOG_FIELD_LSN,    /* v.u, written as the string "%X/%X" */
    LOG_FIELD_DOUBLE, /* v.d; NaN and infinities are written as null */
};

/* One key/value of structured context.  Borrowed: nothing is copied or freed. */
struct log_field {
    const char *key; /* lowercase snake_case by convention: "slot", "lag_bytes" */
    enum log_field_type type;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        bool b;
        double d;
    } v;
};

/* Field constructors, for use in LOG_FIELDS(...) (log.h). */
#define LF_STR(k, val) ((struct log_field){.key = (k), .type = LOG_FIELD_STR, .v.s = (val)})
#define LF_INT(k, val) ((struct log_field){.key = (k), .type = LOG_FIELD_INT, .v.i = (val)})
#define LF_UINT(k, val) ((struct log_field){.key = (k), .type = LOG_FIELD_UINT, .v.u = (val)})
#define LF_BOOL(k, val) ((struct log_field){.key = (k), .type = LOG_FIELD_BOOL, .v.b = (val)})
#define LF_LSN(k, val) ((struct log_field){.key = (k), .type = LOG_FIELD_LSN, .v.u = (val)})
#define LF_DOUBLE(k, val) ((struct log_field){.key = (k), .type = LOG_FIELD_DOUBLE, .v.d = (val)})

/*
 * Format a time (milliseconds since the Unix epoch, UTC) as RFC 3339 with
 * milliseconds, "2024-05-01T12:00:00.123Z", into buf (at least 32 bytes).
 * Returns buf.
 */
char *logline_time(int64_t time_ms, char *buf, size_t size);

/*
 * Append one whole line, '\n' included, to b: the time, the level, the message
 * msg and the nfields fields, in format.  A level outside enum relay_log_level
 * is written as "?", a NULL msg as "".  Out of memory follows jbuf's sticky rule:
 * check b->oom.
 */
void logline_render(struct jbuf *b, enum relay_log_format format, int64_t time_ms,
                    enum relay_log_level level, const char *msg, const struct log_field *fields,
                    size_t nfields);

#endif /* RELAY_LOGLINE_H */

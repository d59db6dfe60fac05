/*
 * log.c -- writes the relay's log lines to stderr.
 *
 * The message is formatted into a stack buffer, scrubbed of secrets, rendered
 * whole (logline.c) and written with one write(2), so lines from the relay never
 * interleave mid-line with anything else writing to the same stderr (librdkafka's
 * own log callback is routed here too, from its threads: nothing here is shared
 * mutable state once the log_set_*() calls at start are done).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "jsonbuf.h"

/* Most fields one line may carry; more are dropped (a programming error). */
#define LOG_MAX_FIELDS 16

static enum relay_log_level min_level = RELAY_LOG_INFO;
static enum relay_log_format line_format = RELAY_LOG_FORMAT_TEXT;
static const redact_set *secrets;

void log_set_level(enum relay_log_level level)
{
    min_level = level;
}

void log_set_format(enum relay_log_format format)
{
    line_format = format;
}

void log_set_secrets(const redact_set *set)
{
    secrets = set;
}

int log_enabled(enum relay_log_level level)
{
    return level >= min_level;
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);

        if (w <= 0)
            return; /* nowhere left to report it */
        p += w;
        n -= (size_t)w;
    }
}

static void vlog(enum relay_log_level level, const struct log_field *fields, size_t nfields,
                 const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void vlog(enum relay_log_level level, const struct log_field *fields, size_t nfields,
                 const char *fmt, va_list ap)
{
    /* Room for LOGLINE_MSG_MAX plus the masks that may replace short secrets. */
    char raw[LOGLINE_MSG_MAX + 1], msg[LOGLINE_MSG_MAX + 64];
    struct log_field clean[LOG_MAX_FIELDS];
    char *values = NULL; /* the scrubbed string values, one after the other */
    size_t vsize = 0, vused = 0;
    struct jbuf line;
    struct timeval tv;
    int n;

    if (level < min_level)
        return;
    gettimeofday(&tv, NULL);
    n = vsnprintf(raw, sizeof(raw), fmt, ap);
    if (n < 0)
        raw[0] = '\0';
    /* A clipped message is marked by logline's "..." once it is longer than the limit. */
    redact_set_scrub(secrets, raw, strlen(raw), msg, sizeof(msg));
    if (n >= (int)sizeof(raw) && strlen(msg) + 4 < sizeof(msg))
        strcat(msg, "...");

    /*
     * String values are scrubbed into one heap block (not the stack: librdkafka's
     * threads call this too, and their stacks may be small).  A value that scrubbing
     * lengthens past its room is clipped; logline clips long values anyway.
     */
    if (nfields > LOG_MAX_FIELDS)
        nfields = LOG_MAX_FIELDS;
    for (size_t i = 0; i < nfields; i++) {
        if (fields[i].type == LOG_FIELD_STR && fields[i].v.s != NULL)
            vsize += strnlen(fields[i].v.s, LOGLINE_VALUE_MAX + 1) + 64;
    }
    if (vsize > 0 && (values = malloc(vsize)) == NULL)
        nfields = 0;
    for (size_t i = 0; i < nfields; i++) {
        clean[i] = fields[i];
        if (fields[i].type == LOG_FIELD_STR && fields[i].v.s != NULL) {
            size_t room = strnlen(fields[i].v.s, LOGLINE_VALUE_MAX + 1) + 64;

            redact_set_scrub(secrets, fields[i].v.s, strnlen(fields[i].v.s, LOGLINE_VALUE_MAX + 1),
                             values + vused, room);
            clean[i].v.s = values + vused;
            vused += room;
        }
    }

    jbuf_init(&line);
    logline_render(&line, line_format, (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, level, msg,
                   clean, nfields);
    if (line.oom || line.data == NULL)
        write_all("log: out of memory\n", strlen("log: out of memory\n"));
    else
        write_all(line.data, line.len);
    jbuf_free(&line);
    free(values);
}

void log_msg(enum relay_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void log_fields(enum relay_log_level level, const struct log_field *fields, size_t nfields,
                const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(level, fields, nfields, fmt, ap);
    va_end(ap);
}

/*
 * logline.c -- render one log line, as text or as JSON.
 *
 * Everything here appends to a struct jbuf, whose JSON string escaping (control
 * characters, quotes, invalid UTF-8 as \u00XX) is the one the event formats use.
 * Messages and string values are clipped before they are escaped, at a UTF-8
 * character boundary, so a line has a bounded length whatever it is given.
 */
#include "logline.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lsn.h"

static const char *const level_text[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const level_json[] = {"debug", "info", "warn", "error"};

char *logline_time(int64_t time_ms, char *buf, size_t size)
{
    time_t secs = (time_t)(time_ms / 1000);
    int ms = (int)(time_ms % 1000);
    struct tm tm;
    size_t n;

    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    if (size == 0)
        return buf;
    buf[0] = '\0';
    if (gmtime_r(&secs, &tm) == NULL)
        return buf;
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n > 0)
        snprintf(buf + n, size - n, ".%03dZ", ms);
    return buf;
}

/*
 * How many bytes of s[0..len) to keep so that it is at most max bytes, cut at a
 * character boundary: a cut never leaves the first bytes of a UTF-8 sequence.
 */
static size_t clip_len(const char *s, size_t len, size_t max)
{
    size_t n;

    if (len <= max)
        return len;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* s as a JSON string, clipped to max bytes with "..." inside the quotes. */
static void put_json_clipped(struct jbuf *b, const char *s, size_t max)
{
    size_t len = strlen(s), n = clip_len(s, len, max);

    jbuf_putc(b, '"');
    jbuf_put_json_chars(b, s, n);
    if (n < len)
        jbuf_puts(b, "...");
    jbuf_putc(b, '"');
}

/* Does a text-format value need quotes to read back as one value? */
static bool needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            return true;
    }
    return false;
}

/* A string value in the text format: as it is, or quoted with JSON's escapes. */
static void put_text_value(struct jbuf *b, const char *s)
{
    size_t len = strlen(s), n = clip_len(s, len, LOGLINE_VALUE_MAX);

    if (!needs_quotes(s)) {
        jbuf_put(b, s, n);
        if (n < len)
            jbuf_puts(b, "...");
        return;
    }
    put_json_clipped(b, s, LOGLINE_VALUE_MAX);
}

/* A field's value; json says which format (strings are quoted differently). */
static void put_value(struct jbuf *b, const struct log_field *f, bool json)
{
    char lsn[LSN_STRLEN];

    switch (f->type) {
    case LOG_FIELD_STR:
        if (f->v.s == NULL)
            jbuf_puts(b, json ? "null" : "-");
        else if (json)
            put_json_clipped(b, f->v.s, LOGLINE_VALUE_MAX);
        else
            put_text_value(b, f->v.s);
        return;
    case LOG_FIELD_INT:
        jbuf_printf(b, "%" PRId64, f->v.i);
        return;
    case LOG_FIELD_UINT:
        jbuf_printf(b, "%" PRIu64, f->v.u);
        return;
    case LOG_FIELD_BOOL:
        jbuf_puts(b, f->v.b ? "true" : "false");
        return;
    case LOG_FIELD_LSN:
        lsn_format(f->v.u, lsn);
        if (json)
            jbuf_printf(b, "\"%s\"", lsn);
        else
            jbuf_puts(b, lsn);
        return;
    case LOG_FIELD_DOUBLE:
        if (isfinite(f->v.d))
            jbuf_printf(b, "%.17g", f->v.d);
        else
            jbuf_puts(b, json ? "null" : "-");
        return;
    }
    jbuf_puts(b, "null");
}

void logline_render(struct jbuf *b, enum relay_log_format format, int64_t time_ms,
                    enum relay_log_level level, const char *msg, const struct log_field *fields,
                    size_t nfields)
{
    bool known = (int)level >= RELAY_LOG_DEBUG && level <= RELAY_LOG_ERROR;
    char when[40];
    size_t len, n;

    if (msg == NULL)
        msg = "";
    logline_time(time_ms, when, sizeof(when));

    if (format == RELAY_LOG_FORMAT_JSON) {
        jbuf_printf(b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", when,
                    known ? level_json[level] : "?");
        put_json_clipped(b, msg, LOGLINE_MSG_MAX);
        if (nfields > 0) {
            jbuf_puts(b, ",\"fields\":{");
            for (size_t i = 0; i < nfields; i++) {
                if (i > 0)
                    jbuf_putc(b, ',');
                put_json_clipped(b, fields[i].key != NULL ? fields[i].key : "", 256);
                jbuf_putc(b, ':');
                put_value(b, &fields[i], true);
            }
            jbuf_putc(b, '}');
        }
        jbuf_puts(b, "}\n");
        return;
    }

    /* Text: the line the relay has always written, fields appended as key=value. */
    jbuf_printf(b, "%s %s ", when, known ? level_text[level] : "?");
    len = strlen(msg);
    n = clip_len(msg, len, LOGLINE_MSG_MAX);
    jbuf_put(b, msg, n);
    if (n < len)
        jbuf_puts(b, "...");
    for (size_t i = 0; i < nfields; i++) {
        jbuf_putc(b, ' ');
        jbuf_puts(b, fields[i].key != NULL ? fields[i].key : "");
        jbuf_putc(b, '=');
        put_value(b, &fields[i], false);
    }
    jbuf_putc(b, '\n');
}

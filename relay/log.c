/*
 * log.c -- writes the relay's log lines to stderr.
 *
 * A line is formatted whole into a stack buffer and written with one write(2), so
 * lines from the relay never interleave mid-line with anything else writing to the
 * same stderr (librdkafka's own log callback is routed here too).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum relay_log_level min_level = RELAY_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_set_level(enum relay_log_level level)
{
    min_level = level;
}

int log_enabled(enum relay_log_level level)
{
    return level >= min_level;
}

void log_msg(enum relay_log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;
    int r;

    if (level < min_level)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03dZ %s ", (int)(tv.tv_usec / 1000),
                 level_names[level]);
    if (r > 0)
        n += (size_t)r;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (r > 0)
        n += (size_t)r;
    if (n >= sizeof(line) - 1) {
        /* Truncated: keep the line whole and mark it. */
        n = sizeof(line) - 5;
        memcpy(line + n, "...", 3);
        n += 3;
    }
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to report it. */
    }
}

/*
 * sink_stdout.c -- the stdout sink: one JSON event per line, for development,
 * debugging and piping into other tools.
 *
 * A message's value (a structured CloudEvent, by default) is written to standard
 * output followed by a newline, with one write(2) per line so that lines never
 * interleave.  A line counts as delivered once write(2) has taken all of it; the
 * report is queued and handed to the relay from sink_poll(), like Kafka's, so the
 * checkpoint logic is the same for every sink.  A failed write (the reader went
 * away: EPIPE) is reported as a failure, which stops the relay without confirming
 * past the line.
 */
#include "sink_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_schema.h"

/* This sink's registry row, at the end of the file. */
extern const struct sink_type sink_type_stdout;

/* The "stdout" section of the configuration; its presence selects this sink. */
struct stdout_settings {
    struct sink_common common; /* format; no destination, no dead-letter destination */
};

static const struct relay_option stdout_options[] = {
    {.section = "stdout", .key = "format", .type = OPT_ENUM,
     .offset = offsetof(struct stdout_settings, common.format), .def = "cloudevents-structured",
     .choices = relay_format_choices},
};

static const struct relay_sink_config stdout_config = {
    .name = "stdout",
    .section = "stdout",
    .options = stdout_options,
    .noptions = sizeof(stdout_options) / sizeof(stdout_options[0]),
    .settings_size = sizeof(struct stdout_settings),
    .common_offset = offsetof(struct stdout_settings, common),
    .section_selects = true,
};

struct stdout_sink {
    struct sink base; /* first: a struct stdout_sink * is a sink * */
    int fd;
    uint64_t *pending; /* tags of written, unreported lines */
    size_t npending, cap;
    char *line;        /* value + '\n' */
    size_t linecap;
    bool broken;
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int stdout_produce(sink *base, const struct out_msg *msg, uint64_t tag,
                          char *errstr, size_t errstr_size)
{
    struct stdout_sink *s = (struct stdout_sink *)base;
    size_t n = msg->value ? msg->value_len : 4;
    int rc;

    if (s->npending == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        uint64_t *np = realloc(s->pending, ncap * sizeof(*np));

        if (!np) {
            snprintf(errstr, errstr_size, "out of memory");
            return -EIO;
        }
        s->pending = np;
        s->cap = ncap;
    }
    if (n + 1 > s->linecap) {
        char *nl = realloc(s->line, n + 1);

        if (!nl) {
            snprintf(errstr, errstr_size, "out of memory");
            return -EIO;
        }
        s->line = nl;
        s->linecap = n + 1;
    }
    memcpy(s->line, msg->value ? msg->value : "null", n);
    s->line[n] = '\n';
    if ((rc = write_all(s->fd, s->line, n + 1)) < 0) {
        snprintf(errstr, errstr_size, "cannot write to standard output: %s", strerror(-rc));
        s->broken = true;
        return -EIO;
    }
    s->pending[s->npending++] = tag;
    sink_wakeup(&s->base);
    return 0;
}

static int stdout_poll(sink *base)
{
    struct stdout_sink *s = (struct stdout_sink *)base;
    size_t n = s->npending;

    /* Reports may not produce (they run the checkpoint only), so the array is stable. */
    for (size_t i = 0; i < n; i++) {
        struct sink_report r = {.tag = s->pending[i], .outcome = SINK_DELIVERED, .code = "",
                                .err = "", .destination = ""};

        sink_report(&s->base, &r);
    }
    s->npending = 0;
    return (int)n;
}

static bool stdout_fatal(const sink *base)
{
    return ((const struct stdout_sink *)base)->broken;
}

static void stdout_flush(sink *base, int timeout_ms)
{
    (void)timeout_ms;
    stdout_poll(base);
}

static int stdout_reset(sink *base, char *errstr, size_t errstr_size)
{
    struct stdout_sink *s = (struct stdout_sink *)base;

    if (s->broken) {
        snprintf(errstr, errstr_size, "standard output is closed");
        return -EPIPE;
    }
    s->npending = 0;
    return 0;
}

static void stdout_destroy(sink *base)
{
    struct stdout_sink *s = (struct stdout_sink *)base;

    free(s->pending);
    free(s->line);
}

static const struct sink_ops stdout_ops = {
    .produce = stdout_produce,
    .poll = stdout_poll,
    .fatal = stdout_fatal,
    .flush = stdout_flush,
    .reset = stdout_reset,
    .destroy = stdout_destroy,
};

static sink *stdout_create(const struct relay_config *cfg, sink_report_fn *report,
                           void *opaque, char *errstr, size_t errstr_size)
{
    struct stdout_sink *s = calloc(1, sizeof(*s));

    (void)cfg;
    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->fd = STDOUT_FILENO;
    if (sink_base_init(&s->base, &sink_type_stdout, &stdout_ops, report, opaque, errstr,
                       errstr_size) < 0) {
        free(s);
        return NULL;
    }
    return &s->base;
}

static void stdout_plan(const struct relay_config *cfg,
                        void (*item)(void *ctx, const char *label, const char *text), void *ctx)
{
    char text[96];

    snprintf(text, sizeof(text), "stdout, format %s",
             relay_choice_name(relay_format_choices, (int)relay_config_sink_common(cfg)->format));
    item(ctx, "sink", text);
}

const struct sink_type sink_type_stdout = {
    .name = "stdout",
    .config = &stdout_config,
    .create = stdout_create,
    .plan = stdout_plan,
    .caps =
        {
            .keeps_key_order = true, /* one line after another */
            .max_destination = 0,
            .destination_chars = NULL,
            .destination_word = "destination",
            .message_overhead = 16,
            .header_overhead = 0,
            .unreachable = "standard output closed",
        },
};

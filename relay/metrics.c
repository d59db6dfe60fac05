/*
 * metrics.c -- the relay's metrics, rendered in Prometheus text format 0.0.4.
 *
 * The renderer is a straight sequence of families, each "# HELP", "# TYPE" and its
 * samples, in the order docs/metrics.md lists them.  The histogram keeps
 * per-bucket counts and cumulates them while rendering, so an observation touches
 * one bucket only.
 *
 * Numbers never go through a locale-dependent path unchecked: integers are printed
 * with integer conversions, and a double is printed with %g and then has whatever
 * the locale uses as decimal separator replaced by '.', because Prometheus only
 * reads '.'.  (The relay never calls setlocale(), so this is a belt for the braces.)
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double commit_to_ack_bounds[METRICS_COMMIT_TO_ACK_NBOUNDS] = {
    METRICS_COMMIT_TO_ACK_BOUNDS};

void metrics_init(struct relay_metrics *m, const char *version)
{
    memset(m, 0, sizeof(*m));
    m->slot_lag_bytes = -1;
    m->version = version;
}

void metrics_observe_commit_to_ack(struct relay_metrics *m, double seconds)
{
    struct metrics_histogram *h = &m->commit_to_ack;
    size_t i;

    if (isnan(seconds))
        return;
    if (seconds < 0)
        seconds = 0;
    /* Bounds are inclusive ("le"): the first bound not below the value. */
    for (i = 0; i < METRICS_COMMIT_TO_ACK_NBOUNDS; i++)
        if (seconds <= commit_to_ack_bounds[i])
            break;
    h->buckets[i]++;
    h->sum += seconds;
    h->count++;
}

void metrics_note_ack(struct relay_metrics *m, int64_t commit_time_us, int64_t now_us)
{
    m->events_published++;
    if (commit_time_us <= 0)
        return;
    metrics_observe_commit_to_ack(m, ((double)now_us - (double)commit_time_us) / 1e6);
    metrics_note_caught_up(m, commit_time_us);
}

void metrics_note_caught_up(struct relay_metrics *m, int64_t commit_time_us)
{
    if (commit_time_us > m->newest_ack_commit_us)
        m->newest_ack_commit_us = commit_time_us;
}

double metrics_source_lag_seconds(const struct relay_metrics *m, int64_t now_us)
{
    if (m->newest_ack_commit_us <= 0 || now_us <= m->newest_ack_commit_us)
        return 0;
    return ((double)now_us - (double)m->newest_ack_commit_us) / 1e6;
}

/*
 * Replace the decimal separator of the current locale, if it is not '.', by '.'.
 * %g writes only digits, a sign, 'e' and the separator (which may be more than one
 * byte), so the separator is the one run of other bytes.
 */
static void fix_decimal_point(char *s)
{
    char *p = s, *q;

    while (*p && (strchr("0123456789+-eE", *p) != NULL))
        p++;
    if (!*p)
        return;
    q = p + 1;
    while (*q && !strchr("0123456789+-eE", *q))
        q++;
    *p = '.';
    memmove(p + 1, q, strlen(q) + 1);
}

void metrics_put_double(struct jbuf *out, double v)
{
    char tmp[64];
    int prec;

    if (isnan(v)) {
        jbuf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        jbuf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Integers below 2^53 are exact in a double: print every digit, no exponent. */
    if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v) {
        jbuf_printf(out, "%" PRId64, (int64_t)v); /* also turns -0 into "0" */
        return;
    }
    /*
     * The shortest %g form that reads back as v.  strtod() reads what snprintf()
     * wrote in the same locale, so the round trip is exact whatever the locale; the
     * separator is normalised afterwards.
     */
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    fix_decimal_point(tmp);
    jbuf_puts(out, tmp);
}

/* "# HELP name help\n# TYPE name type\n".  help is a constant with nothing to escape. */
static void put_family(struct jbuf *out, const char *name, const char *type, const char *help)
{
    jbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_u64(struct jbuf *out, const char *name, const char *type, const char *help,
                    uint64_t v)
{
    put_family(out, name, type, help);
    jbuf_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void put_f64(struct jbuf *out, const char *name, const char *type, const char *help,
                    double v)
{
    put_family(out, name, type, help);
    jbuf_printf(out, "%s ", name);
    metrics_put_double(out, v);
    jbuf_putc(out, '\n');
}

/* A label value: backslash, double quote and newline escaped, as the format wants. */
static void put_label_value(struct jbuf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            jbuf_puts(out, "\\\\");
        else if (*s == '"')
            jbuf_puts(out, "\\\"");
        else if (*s == '\n')
            jbuf_puts(out, "\\n");
        else
            jbuf_putc(out, *s);
    }
}

static void put_histogram(struct jbuf *out, const char *name, const char *help,
                          const struct metrics_histogram *h)
{
    uint64_t cumulative = 0;
    size_t i;

    put_family(out, name, "histogram", help);
    for (i = 0; i < METRICS_COMMIT_TO_ACK_NBOUNDS; i++) {
        cumulative += h->buckets[i];
        jbuf_printf(out, "%s_bucket{le=\"", name);
        metrics_put_double(out, commit_to_ack_bounds[i]);
        jbuf_printf(out, "\"} %" PRIu64 "\n", cumulative);
    }
    cumulative += h->buckets[METRICS_COMMIT_TO_ACK_NBOUNDS];
    /* The +Inf bucket equals _count by definition; both come from the same sum. */
    jbuf_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
    jbuf_printf(out, "%s_sum ", name);
    metrics_put_double(out, h->sum);
    jbuf_printf(out, "\n%s_count %" PRIu64 "\n", name, h->count);
}

int metrics_render(const struct relay_metrics *m, int64_t now_us, struct jbuf *out)
{
    put_family(out, "outbox_relay_build_info", "gauge",
               "Build information of the running relay; the value is always 1.");
    jbuf_puts(out, "outbox_relay_build_info{version=\"");
    put_label_value(out, m->version ? m->version : "unknown");
    jbuf_puts(out, "\"} 1\n");

    put_u64(out, "outbox_relay_ready", "gauge",
            "Whether the relay is streaming from its source (1) or not (0).", m->ready ? 1 : 0);

    put_u64(out, "outbox_relay_events_received_total", "counter",
            "Events read from the source and handed to the sink, replays included.",
            m->events_received);
    put_u64(out, "outbox_relay_events_published_total", "counter",
            "Events acknowledged by the broker.", m->events_published);
    put_u64(out, "outbox_relay_publish_errors_total", "counter",
            "Failed deliveries, permanent or retried by a replay.", m->publish_errors);
    /* Every reason has a sample, 0 included, so that rate() sees the first one. */
    put_family(out, "outbox_relay_dead_letter_total", "counter",
               "Events set aside to a dead-letter destination, by reason; not published.");
    for (int i = 0; i < DL_NREASONS; i++)
        jbuf_printf(out, "outbox_relay_dead_letter_total{reason=\"%s\"} %" PRIu64 "\n",
                    dl_reason_name((enum dl_reason)i), m->dead_letter[i]);
    put_u64(out, "outbox_relay_replays_total", "counter",
            "Pipeline rebuilds: replays from the confirmed position after a failure.", m->replays);
    put_u64(out, "outbox_relay_reconnects_total", "counter",
            "Source connections made after the first one.", m->reconnects);
    put_u64(out, "outbox_relay_heartbeats_total", "counter",
            "Heartbeat messages written to the source database.", m->heartbeats);

    put_u64(out, "outbox_relay_inflight_events", "gauge",
            "Events handed to the sink and not yet acknowledged.", m->inflight_events);
    put_u64(out, "outbox_relay_inflight_bytes", "gauge",
            "Bytes of the events handed to the sink and not yet acknowledged.", m->inflight_bytes);
    put_u64(out, "outbox_relay_confirmed_lsn", "gauge",
            "Flush position last confirmed to PostgreSQL, as a number.", m->confirmed_lsn);

    put_family(out, "outbox_relay_replication_slot_lag_bytes", "gauge",
               "WAL bytes the replication slot retains behind the server's position.");
    if (m->slot_lag_bytes >= 0)
        jbuf_printf(out, "outbox_relay_replication_slot_lag_bytes %" PRId64 "\n",
                    m->slot_lag_bytes);

    put_f64(out, "outbox_relay_source_lag_seconds", "gauge",
            "Now minus the commit time of the newest acknowledged event (0 before the first).",
            metrics_source_lag_seconds(m, now_us));

    put_histogram(out, "outbox_relay_commit_to_ack_seconds",
                  "Time from commit in PostgreSQL to acknowledgement by the broker.",
                  &m->commit_to_ack);

    return out->oom ? -ENOMEM : 0;
}

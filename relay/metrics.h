/*
 * metrics.h -- the relay's metrics, and their Prometheus text exposition.
 *
 * struct relay_metrics is a plain struct that the poll loop owns and updates as
 * things happen: a counter is a field it increments, a gauge a field it sets.  Only
 * the two updates that involve arithmetic have helpers (metrics_note_ack() and
 * metrics_observe_commit_to_ack()).  The loop is single-threaded, so there are no
 * atomics and no locks: the admin endpoint renders the struct on the same thread,
 * between two turns of the loop.
 *
 * metrics_render() writes the Prometheus text exposition format, version 0.0.4
 * (Content-Type METRICS_CONTENT_TYPE): a "# HELP" and a "# TYPE" line per metric,
 * names prefixed "outbox_relay_", base units (seconds, bytes).  Numbers are written
 * without the C library's locale: the decimal separator is always '.', and
 * infinities are "+Inf" / "-Inf" as Prometheus spells them.  docs/metrics.md lists
 * every metric with suggested alert rules.
 *
 * Time: commit times come from PostgreSQL (the committing server's clock) and "now"
 * from the relay host's wall clock (CLOCK_REALTIME), both in microseconds since the
 * Unix epoch.  A difference that comes out negative is clock skew between the two
 * hosts, and is counted as 0.
 *
 * Pure: no I/O, no logging, no clock (callers pass "now").  Nothing here allocates
 * except the caller's output buffer growing.
 */
#ifndef RELAY_METRICS_H
#define RELAY_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "deadletter.h"
#include "jsonbuf.h"
#include "lsn.h"

/* The Content-Type of what metrics_render() writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Upper bounds (seconds, inclusive) of the commit-to-acknowledgement histogram's
 * buckets, in increasing order; the +Inf bucket comes on top of these.  From 1 ms
 * (a relay keeping up with a local broker) to 60 s (a broker outage, or a backlog
 * being worked off after a restart).
 */
#define METRICS_COMMIT_TO_ACK_BOUNDS                                                               \
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0
#define METRICS_COMMIT_TO_ACK_NBOUNDS 15

/* A histogram with the bounds above: per-bucket counts, not yet cumulative. */
struct metrics_histogram {
    uint64_t buckets[METRICS_COMMIT_TO_ACK_NBOUNDS + 1]; /* last one: above every bound */
    double sum;                                          /* of every observation, seconds */
    uint64_t count;                                      /* observations */
};

/*
 * Every metric the relay exports.  Counters only grow (a process restart resets
 * them, which Prometheus's rate() handles); gauges are set to the current value.
 * The metric each field becomes is named beside it.
 */
struct relay_metrics {
    /* Counters. */
    uint64_t events_received;  /* outbox_relay_events_received_total: events taken from
                                  the source and handed to the sink (replays count again) */
    uint64_t events_published; /* outbox_relay_events_published_total: acknowledged by the
                                  broker (metrics_note_ack() counts them) */
    uint64_t publish_errors;   /* outbox_relay_publish_errors_total: failed deliveries, both
                                  permanent ones and those retried by a replay */
    /*
     * outbox_relay_dead_letter_total{reason}: events set aside to a dead-letter
     * destination (deadletter.h), by reason; they do not count as published.
     */
    uint64_t dead_letter[DL_NREASONS]; /* indexed by enum dl_reason */
    uint64_t replays;          /* outbox_relay_replays_total: pipeline rebuilds, i.e. replays
                                  from the confirmed position after a delivery failure */
    uint64_t reconnects;       /* outbox_relay_reconnects_total: source connections made
                                  after the first one */
    uint64_t heartbeats;       /* outbox_relay_heartbeats_total: heartbeat messages emitted */

    /* Gauges. */
    uint64_t inflight_events;     /* outbox_relay_inflight_events: handed to the sink, not yet
                                     acknowledged */
    uint64_t inflight_bytes;      /* outbox_relay_inflight_bytes: the bytes of those */
    lsn_t confirmed_lsn;          /* outbox_relay_confirmed_lsn: flush position last confirmed
                                     to PostgreSQL, as a number */
    int64_t slot_lag_bytes;       /* outbox_relay_replication_slot_lag_bytes: WAL the slot
                                     retains behind the server's current position; negative
                                     means unknown (not measured yet, or the polling source),
                                     and then the metric has no sample */
    int64_t newest_ack_commit_us; /* commit time of the newest acknowledged event, or 0 when
                                     none was: outbox_relay_source_lag_seconds is now minus
                                     this (0 while nothing was acknowledged) */
    bool ready;                   /* outbox_relay_ready: 1 when streaming, 0 otherwise */

    /* outbox_relay_commit_to_ack_seconds: commit in PostgreSQL to broker acknowledgement. */
    struct metrics_histogram commit_to_ack;

    /* outbox_relay_build_info{version="..."}: borrowed, must outlive the struct. */
    const char *version;
};

/*
 * Make *m all zeros, except slot_lag_bytes (unknown, -1) and version (borrowed; NULL
 * is written as "unknown").  Cannot fail; owns nothing, so there is no _free.
 */
void metrics_init(struct relay_metrics *m, const char *version);

/*
 * Count one observation of the commit-to-acknowledgement latency, in seconds.  A
 * negative value (clock skew) counts as 0; NaN is ignored.  Cannot fail.
 */
void metrics_observe_commit_to_ack(struct relay_metrics *m, double seconds);

/*
 * The broker acknowledged one event whose transaction committed at commit_time_us;
 * now_us is the relay's wall clock.  Counts it as published, observes its
 * commit-to-acknowledgement latency, and moves newest_ack_commit_us forward (never
 * back: acknowledgements arrive out of commit order).  Cannot fail.
 *
 * A commit_time_us of 0 or less means "unknown" (the polling source may not know
 * it): the event is counted, nothing else changes.
 */
void metrics_note_ack(struct relay_metrics *m, int64_t commit_time_us, int64_t now_us);

/*
 * Everything committed up to commit_time_us is acknowledged, though no event says
 * so: a transaction without events (a heartbeat, a keepalive's position) was
 * confirmed.  Moves newest_ack_commit_us forward (never back) without counting an
 * event, so that outbox_relay_source_lag_seconds stays small while the outbox is
 * idle instead of growing with the age of the last event.  Cannot fail.
 */
void metrics_note_caught_up(struct relay_metrics *m, int64_t commit_time_us);

/*
 * The source lag at now_us, in seconds: now_us minus newest_ack_commit_us, 0 when
 * nothing was acknowledged yet or when the clocks disagree.  Cannot fail.
 */
double metrics_source_lag_seconds(const struct relay_metrics *m, int64_t now_us);

/*
 * Append the whole exposition of *m to out, as it stands at now_us (wall clock,
 * microseconds since the Unix epoch, for outbox_relay_source_lag_seconds).  The
 * caller owns out and usually jbuf_reset()s it first; a buffer reused for every
 * scrape stops allocating after the first.  Returns 0, or -ENOMEM when out ran out
 * of memory (out->oom is set and its text is incomplete).
 */
int metrics_render(const struct relay_metrics *m, int64_t now_us, struct jbuf *out);

/*
 * Append v to out as a Prometheus sample value: integers exactly when they are, other
 * values in the shortest form (at most 17 significant digits) that reads back as
 * the same double, always with '.' as the decimal separator; "+Inf", "-Inf", "NaN".
 * Exposed for tests.  Same failure rules as jbuf_put().
 */
void metrics_put_double(struct jbuf *out, double v);

#endif /* RELAY_METRICS_H */

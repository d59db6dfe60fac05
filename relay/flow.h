/*
 * flow.h -- the pipeline's timing and flow decisions, as pure functions.
 *
 * How far the relay may confirm, when it must stop reading, how often it reports to
 * the walsender, how often it records its position, and how long it waits before
 * trying again: each is a small rule with a reason behind it (given beside each
 * function), and each used to sit inside the loop that applies it.  Here they take
 * plain values and return plain values, so the unit tests (tests/unit/test_flow.c)
 * can pin every case down.  No I/O, no clock, no randomness of their own: the caller
 * passes the time and a random number.
 */
#ifndef RELAY_FLOW_H
#define RELAY_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

/* Send a status update this soon after the confirmed position moves, not sooner. */
#define FLOW_STATUS_MIN_INTERVAL_MS 100
/* Caught up (nothing in flight): confirm this soon, so a burst's end is confirmed at once. */
#define FLOW_STATUS_CAUGHT_UP_MS 20
/* Back-pressured, the relay reads no keepalive requests: it answers in advance. */
#define FLOW_STATUS_BACKPRESSURE_MS 1000
/* Record the position at least this often while events are delivered... */
#define FLOW_STATE_EAGER_MS 200
/* ...or when the acknowledged position ran this far ahead of the record. */
#define FLOW_STATE_EAGER_BYTES (64 * 1024)

/*
 * Back-pressure: stop reading the source when max_events events are unacknowledged
 * (by the checkpoint tracker's count or the sink's) or max_bytes bytes are held.
 */
bool flow_backpressured(int64_t max_events, int64_t max_bytes, uint64_t tracker_events,
                        uint64_t sink_events, int64_t bytes);

/* What flow_confirmable() decides from. */
struct flow_confirm {
    lsn_t acked;          /* the tracker's safe position: everything before it acknowledged */
    lsn_t recorded;       /* the position recorded in the state table */
    bool history_check;   /* postgres.history_check: confirm no further than the record */
    bool reply_due;       /* the server asked for a reply */
    bool server_stopping; /* the server refuses connections because it is shutting down */
    bool idle;            /* no transaction open and none in flight */
};

/*
 * The position the relay may confirm: everything acknowledged, but with the history
 * check on, no further than the state table records.  One exception: a server
 * shutting down ("fast" mode) first ends every ordinary connection, so the record can
 * no longer be written, and then has its walsenders wait until the client confirms
 * the end of WAL before it can stop.  When the server asks for a reply, refuses
 * connections because it is shutting down, and nothing is in flight, the relay may
 * confirm without a record (the next connection records it).
 */
lsn_t flow_confirmable(const struct flow_confirm *c);

/*
 * The longest the relay may stay silent towards the walsender: postgres.status_interval,
 * but at most FLOW_STATUS_BACKPRESSURE_MS while not reading, because then the
 * walsender's keepalive requests sit unread behind the data and any
 * wal_sender_timeout of 2 s or more must still be met.
 */
int64_t flow_status_period(int64_t status_interval_ms, bool reading);

/*
 * The least time between two status updates that move the confirmed position:
 * FLOW_STATUS_CAUGHT_UP_MS when nothing received waits for the sink (the end of a
 * burst is confirmed at once), FLOW_STATUS_MIN_INTERVAL_MS otherwise.
 */
int64_t flow_status_min_interval(bool caught_up);

/*
 * Whether a status update is due: forced, asked for, the confirmed position moved
 * and min_interval passed since the last one, or the period passed.
 */
bool flow_status_due(bool force, bool reply_due, bool moved, int64_t since_last_ms,
                     int64_t min_interval_ms, int64_t period_ms);

/*
 * How long to wait between two writes of the state record: at once
 * (FLOW_STATUS_CAUGHT_UP_MS) when delivered events leave nothing in flight; every
 * FLOW_STATE_EAGER_MS while events are delivered, the position ran
 * FLOW_STATE_EAGER_BYTES ahead or the server waits for a reply; otherwise once per
 * status interval, so that the WAL of the write itself, which keepalives then report,
 * does not keep an idle relay writing.
 */
int64_t flow_state_interval(bool delivering, bool caught_up, uint64_t ahead_bytes,
                            bool reply_due, int64_t status_interval_ms);

/*
 * Exponential backoff with jitter, for reconnects and rebuilds: the first wait is
 * min_ms, each next one doubles up to max_ms, and each is moved by up to +-20% (rnd
 * is any random number) so that relays restarted together do not retry in lockstep.
 */
struct flow_backoff {
    int64_t min_ms;
    int64_t max_ms;
    int64_t next_ms; /* 0: start at min_ms */
};

/* The next wait, in ms; advances b.  Cannot fail. */
int64_t flow_backoff_next(struct flow_backoff *b, unsigned rnd);

/* Progress was made: the next wait is min_ms again. */
void flow_backoff_reset(struct flow_backoff *b);

#endif /* RELAY_FLOW_H */

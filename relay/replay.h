/*
 * replay.h -- `outbox-relay replay`: send dead-lettered events back where they were
 * going, once their cause is mended.
 *
 * The records come from the dead-letter table (dead_letter.table, sql/006 and 008),
 * oldest first, and from the dead-letter topic (kafka.dlq_topic), from its beginning,
 * filtered by the options; each goes through the configuration's own sink (so a
 * mended setting applies) to its original destination, with its key, its headers
 * (the dead-letter ones removed, an outbox_replay_count header added) and its value,
 * and its event id unchanged.  A value left out of its record (too large) is rebuilt
 * from its outbox row when the row still exists.  Progress is committed in
 * PostgreSQL after each acknowledged event -- in the table's own row, or for a topic's
 * record in replay.state_table (sql/009) -- and a record that has failed
 * replay.max_replays times is parked instead of sent again.
 */
#ifndef RELAY_REPLAY_H
#define RELAY_REPLAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

struct replay_options {
    bool dry_run;       /* list what would be sent; change nothing */
    const char *since;  /* dead_at >= since (a timestamptz PostgreSQL reads); NULL: any */
    const char *until;  /* dead_at < until; NULL: any */
    const char *reason; /* only this reason ("too-large", "rejected", ...); NULL: any */
    const char *type;   /* only events of this type; NULL: any */
    int64_t max;        /* at most this many records; 0: no limit */
    const char *from;   /* "table" or "topic"; NULL: every dead-letter destination
                           configured, the table first */
};

/* What a replay did. */
struct replay_summary {
    long sent, skipped, parked, failed;
};

/*
 * Replay the records opts selects, one line per record on out, then the summary.
 * Returns 0 when it ran (the summary says how it went), or -1 with errstr set when it
 * could not: no dead-letter table or topic configured, PostgreSQL unreachable, the
 * table lacking 008's columns (the state table for a topic: 009), the topic missing,
 * the sink refusing the relay.  A byte on stop_fd (-1: none)
 * stops it after the event in flight.
 */
int replay_run(const struct relay_config *cfg, const struct replay_options *opts, int stop_fd,
               FILE *out, struct replay_summary *sum, char *errstr, size_t errstr_size);

#endif /* RELAY_REPLAY_H */

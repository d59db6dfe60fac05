/*
 * pipeline.h -- the one loop every source feeds: events in, sink, reports, checkpoint.
 *
 * The pipeline owns everything between a source and the broker: the sink, the
 * checkpoint tracker, the table of messages in flight, the formatter, the dead-letter
 * destinations, the observer (metrics, /healthz, /readyz, systemd) and the stop pipe.
 * It runs THE poll() loop of the process over the stop pipe, the sink's wakeup
 * descriptor, the source's descriptors and the admin endpoint's, and decides
 * back-pressure, rebuilds (replay from the checkpoint after a failed delivery, with
 * backoff and jitter), poison events (dead-letter or stop, by pipeline.on_bad_event)
 * and shutdown.
 *
 * A source (logical replication: source_repl.c; polling: source_poll.c) implements
 * struct source_ops and calls back into the pipeline as it reads:
 *
 *     pipeline_begin()          a transaction (or polled batch) starts
 *     pipeline_event()          an event of it: rendered, checked, handed to the sink
 *     pipeline_bad_input()      something of it that cannot become an event
 *     pipeline_commit()         it ends; its end position is confirmed once every
 *                               event of it and before it is acknowledged
 *
 * and asks pipeline_confirmed() how far it may confirm to PostgreSQL.  Sources do
 * their own I/O; the pipeline never touches PostgreSQL except to write dead-letter
 * records to dead_letter.table on a connection of its own.
 */
#ifndef RELAY_PIPELINE_H
#define RELAY_PIPELINE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "flow.h"
#include "lsn.h"
#include "metrics.h"

typedef struct pipeline pipeline;

/* The most descriptors a source may add to the loop's poll() set. */
#define SOURCE_MAX_POLLFDS 4

/*
 * What a source does for the pipeline.  Every operation is called on the loop's
 * thread; src is the source's own state.
 */
struct source_ops {
    const char *name; /* "replication", "polling": for messages */
    /*
     * Add the source's descriptors to fds (at most max); returns how many.  A source
     * that is not reading leaves its socket out of POLLIN, so TCP pushes back.
     */
    size_t (*pollfds)(void *src, struct pollfd *fds, size_t max);
    /* Milliseconds until the source wants a turn without any descriptor ready. */
    int64_t (*timeout)(void *src, int64_t now_ms);
    /*
     * One turn, after the sink's reports were served: connect if due, read what
     * arrived (calling pipeline_begin/event/bad_input/commit), confirm what
     * pipeline_confirmed() allows.  fds are the entries pollfds() filled.
     */
    void (*turn)(void *src, const struct pollfd *fds, size_t n);
    /*
     * A delivery failed: forget everything received after the checkpoint, so that it
     * is read again (replay).  The pipeline resets the sink and the tracker after.
     */
    void (*rebuild)(void *src);
    /* A transaction or batch is half received: a stop waits for its end. */
    bool (*busy)(const void *src);
    /* The source has a live connection (a stop with none has nothing to finish). */
    bool (*live)(const void *src);
    /* Why the source is not ready (a static string), or NULL when it streams. */
    const char *(*not_ready)(const void *src);
    /* Bring the source's gauges up to date (confirmed position, slot lag). */
    void (*refresh)(void *src, struct relay_metrics *m);
    /*
     * The loop is over: confirm what was acknowledged and close.  fatal says whether
     * it ended on a permanent error.
     */
    void (*shutdown)(void *src, bool fatal);
};

/*
 * Create the pipeline: the sink the configuration names, the tracker, the observer
 * (the admin endpoint starts listening).  cfg is borrowed and must outlive the
 * pipeline; stop_fd is the read end of the stop pipe (signal handlers write to it).
 * first_confirmed is where the tracker starts (the polling source counts batches from
 * 0).  Returns NULL with errstr set.
 */
pipeline *pipeline_new(const struct relay_config *cfg, int stop_fd, lsn_t first_confirmed,
                       char *errstr, size_t errstr_size);

/*
 * Run the loop with the source until a stop or a permanent error, then shut down.
 * Returns 0 after a clean stop, or -1 with errstr set to the permanent error.
 */
int pipeline_run(pipeline *p, const struct source_ops *ops, void *src, char *errstr,
                 size_t errstr_size);

/* Free the pipeline (the sink first: its last reports still find the tracker). */
void pipeline_free(pipeline *p);

/*
 * The formatter needs the database's name (the CloudEvents source); a source calls
 * this once it is connected.  Returns 0, or -1 after pipeline_fatal().
 */
int pipeline_set_database(pipeline *p, const char *dbname);

/*
 * A transaction (or a polled batch) begins.  pos carries what the source knows of it
 * (system, timeline, commit LSN, xid, commit time); events of it carry their own.
 * Returns 0, or -1 after pipeline_fatal() (a Begin inside a transaction, no memory).
 */
int pipeline_begin(pipeline *p, const struct event_pos *pos);

/*
 * One event of the open transaction.  It is rendered, its destination checked against
 * the sink's rules and handed to the sink; a poison event (cannot be rendered, no
 * valid destination, too large) is dead-lettered or stops the relay, by
 * pipeline.on_bad_event.  Errors are the pipeline's to handle: the source carries on
 * while pipeline_reading() says so.
 */
void pipeline_event(pipeline *p, const struct event *ev);

/* Something in the source that cannot become an event (pipeline_bad_input()). */
struct bad_input {
    int reason;                    /* enum dl_reason: DL_BAD_ROW or DL_BAD_MESSAGE */
    const char *error;             /* why, one line */
    const struct event *ev;        /* what event_from_*() filled (id, key), or NULL */
    const struct rel_desc *rel;    /* the row's table, with tuple: the row as JSON */
    const struct pgo_tuple *tuple;
    const char *raw;               /* or the raw content (a logical message) */
    size_t raw_len;
    struct event_pos pos;          /* where it is */
    const char *what;              /* "outbox row", "change of table \"s.t\"", ... */
};

/* Dead-letter the bad input, or stop with a message naming it (pipeline.on_bad_event). */
void pipeline_bad_input(pipeline *p, const struct bad_input *b);

/*
 * The open transaction ends at end_lsn (the end of its commit record; for a batch,
 * its number).  Returns 0, or -1 after pipeline_fatal().
 */
int pipeline_commit(pipeline *p, lsn_t end_lsn);

/* Whether a transaction is open. */
bool pipeline_in_txn(const pipeline *p);

/* A keepalive said the server sent everything up to wal_end (see ckpt_keepalive()). */
void pipeline_keepalive(pipeline *p, lsn_t wal_end);

/* The position safe to confirm: every event at or before it acknowledged or set aside. */
lsn_t pipeline_confirmed(pipeline *p);

/* Transactions begun and not yet confirmed (the open one included). */
size_t pipeline_inflight_txns(const pipeline *p);

/* Set the tracker's position after a connection (see ckpt_keepalive(), ckpt_restart()). */
void pipeline_source_started(pipeline *p, lsn_t start, bool history_changed);

/*
 * Whether the source should read now: no stop pending (or a transaction to finish),
 * no permanent error, no rebuild pending or backing off, not back-pressured.
 */
bool pipeline_reading(const pipeline *p);

/* Nothing received waits for the sink: the end of a burst. */
bool pipeline_caught_up(const pipeline *p);

/* A stop was requested. */
bool pipeline_stopping(const pipeline *p);

/* A rebuild was asked for and has not happened yet: what is read now is thrown away. */
bool pipeline_rebuild_pending(const pipeline *p);

/* A permanent error was recorded: the loop ends at its next turn. */
bool pipeline_failed(const pipeline *p);

/*
 * The source lost its connection: let what is in flight be acknowledged (within
 * pipeline.shutdown_timeout) so the replay starts as late as possible, then forget
 * the in-flight state; what the sink did not acknowledge is purged.  The source
 * closes its connection between the two halves: pipeline_drain() then
 * pipeline_forget().
 */
void pipeline_drain(pipeline *p);
void pipeline_forget(pipeline *p);

/* Record a permanent error (the first one wins); the loop ends at its next turn. */
void pipeline_fatal(pipeline *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ask for a rebuild (replay from the checkpoint), saying why once. */
void pipeline_request_rebuild(pipeline *p, const char *why);

/* The metrics, for the source's counters (reconnects, heartbeats, ...). */
struct relay_metrics *pipeline_metrics(pipeline *p);

/* Milliseconds of CLOCK_MONOTONIC, the clock every timer of the relay runs on. */
int64_t pipeline_now_ms(void);

/* A random number for backoff jitter. */
unsigned pipeline_random(void);

#endif /* RELAY_PIPELINE_H */

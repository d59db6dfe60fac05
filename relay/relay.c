/*
 * relay.c -- the poll() loop that ties the pipeline together.
 *
 * One thread, one loop, over the stop pipe written by signal handlers, the sink's
 * wakeup pipe (librdkafka signals queued delivery reports through it), the
 * replication socket, the side connection's socket while it has a query out (state
 * record, heartbeat), and the admin endpoint's sockets (observe.c).  Each turn:
 *
 *   1. serves delivery reports -> the checkpoint tracker learns what is acknowledged;
 *   2. while reading, drains every complete CopyData frame libpq holds:
 *      pgoutput message -> event -> rendered message -> sink, transaction
 *      boundaries -> tracker;
 *   3. records the acknowledged position in the state table (history check), then
 *      sends a standby status update confirming no further than the record, when
 *      the position moved, when the server asked for one, or when the period passed.
 *
 * Back-pressure (kafka.max_inflight_events unacknowledged) stops reading: the
 * socket is not even polled for input, so TCP pushes back on the walsender and the
 * backlog stays in PostgreSQL, not in our memory.  Reports keep being served and
 * status updates go out every second, which keeps wal_sender_timeout from tripping
 * although the walsender's keepalive requests sit unread behind the data.
 *
 * Failures never guess.  A lost connection drains what is in flight and reconnects
 * from the checkpoint; a failed delivery or a fatal producer error tears the
 * pipeline down to the checkpoint and replays from the slot; a bad row or a
 * permanently undeliverable event stops the relay with a message naming the row,
 * without confirming past it.
 */
#include "relay.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "checkpoint.h"
#include "event.h"
#include "format.h"
#include "jsonbuf.h"
#include "log.h"
#include "observe.h"
#include "pgoutput.h"
#include "replication.h"
#include "sink.h"

/* Send a status update this soon after the confirmed position moves, not sooner. */
#define STATUS_MIN_INTERVAL_MS 100
/* Caught up (nothing in flight): confirm this soon, so a burst's end is confirmed at once. */
#define STATUS_CAUGHT_UP_MS 20
/* Back-pressured, the relay reads no keepalive requests: it answers in advance. */
#define STATUS_BACKPRESSURE_MS 1000
/* First reconnection delay; doubles up to postgres.retry_interval. */
#define RETRY_MIN_MS 100
/* How long a graceful close may wait for the server's answer. */
#define CLOSE_TIMEOUT_MS 2000

struct relay {
    const struct relay_config *cfg;
    int stop_fd;
    bool stopping;         /* a stop was requested */
    int64_t stop_deadline_ms;

    sink *sink;
    ckpt_tracker *ckpt;
    pgo_decoder *dec;
    relcache *rels;
    formatter *fmt;
    struct jbuf msgbuf;      /* unescaped strings of the logical message being handled */
    const char **cdc_schemas; /* cdc.tables, as the relation cache wants them */
    const char **cdc_tables;
    char **cdc_keys;          /* their primary keys, as replication found them */

    repl_conn *conn;
    struct repl_info info;   /* of the current (or last) connection */
    bool have_info;
    int64_t retry_at_ms;     /* when to try connecting again */
    int64_t retry_delay_ms;
    bool rebuild;            /* a delivery failed: replay from the confirmed position */

    /* The transaction being received. */
    bool in_txn;
    uint64_t txn_seq;
    struct event_pos pos;

    lsn_t received;          /* highest WAL position received: the "write" we report */
    lsn_t sent_flush;        /* the flush position last reported */
    int64_t last_status_ms;
    bool reply_due;          /* the server asked for a status update */

    lsn_t server_wal_end;    /* the server's WAL end, as its last frame said */

    struct observer obs;     /* metrics, /healthz, /readyz, systemd */

    /*
     * The side connection: a second, ordinary connection for two jobs, one query at
     * a time.  Heartbeats: a transactional logical message when the outbox has been
     * idle for postgres.heartbeat_interval, so that the slot advances even when the
     * server sends no keepalive, and a reading of the slot's lag for the warning.
     * State: the position about to be confirmed is written to the state table
     * first (postgres.history_check), so the slot is never ahead of the record.
     * Never fatal: a failure closes it, and the next job reconnects.
     */
    PGconn *side;
    enum { SIDE_IDLE, SIDE_HEARTBEAT, SIDE_STATE } side_job; /* the query in flight */
    int64_t hb_due_ms;
    uint64_t hb_produced;    /* events_received at the last beat */
    bool lag_warned;
    lsn_t state_lsn;         /* recorded in the state table: confirm no further... */
    bool server_stopping;    /* ...unless the server refuses connections while shutting
                                down: see confirmable() */
    lsn_t unrecorded;        /* the highest position confirmed without a record */
    int64_t side_retry_at_ms; /* after a failed connect: not before this */
    int64_t side_retry_delay_ms;
    lsn_t state_sending;     /* the position being written */
    int64_t state_sent_ms;   /* when the last write was sent */
    uint64_t state_delivered; /* r->obs.m.events_published at the last write */

    int fatal;               /* a permanent error: stop */
    char errstr[1024];
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_fatal(struct relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record the first permanent error; the loop stops at its next turn. */
static void set_fatal(struct relay *r, const char *fmt, ...)
{
    va_list ap;

    if (r->fatal)
        return;
    r->fatal = 1;
    va_start(ap, fmt);
    vsnprintf(r->errstr, sizeof(r->errstr), fmt, ap);
    va_end(ap);
}

/* Ask for a rebuild (replay from the checkpoint), saying why once. */
static void request_rebuild(struct relay *r, const char *why)
{
    if (!r->rebuild)
        log_warn("%s; replaying from " LSN_FMT, why, LSN_ARGS(ckpt_confirmed(r->ckpt)));
    r->rebuild = true;
}

/* Delivery report from the sink, on our thread, inside sink_poll()/sink_flush(). */
static void on_report(void *opaque, uint64_t txn_seq, enum sink_outcome outcome,
                      const char *topic, const char *id, const char *err)
{
    struct relay *r = opaque;
    char msg[768];

    if (outcome == SINK_DELIVERED) {
        int64_t commit_us = ckpt_commit_time(r->ckpt, txn_seq);

        if (ckpt_ack(r->ckpt, txn_seq) == 0) {
            observe_delivered(&r->obs, r->cfg, topic, commit_us);
        }
        return;
    }
    if (ckpt_fail(r->ckpt, txn_seq) == -ENOENT)
        return; /* a report from a pipeline already discarded */
    r->obs.m.publish_errors++;
    if (outcome == SINK_FAILED_PERMANENT) {
        set_fatal(r,
                  "event \"%s\" cannot be delivered to topic \"%s\": %s; stopping without "
                  "confirming past it (%s)",
                  id, topic, err,
                  r->cfg->kafka.dlq_topic[0] ? "the dead-letter topic did not take it either"
                                             : "no dead-letter topic is configured");
        return;
    }
    snprintf(msg, sizeof(msg), "delivery of event \"%s\" to topic \"%s\" failed: %s", id,
             topic, err);
    request_rebuild(r, msg);
}

/*
 * The position the relay may confirm to the slot: everything acknowledged, but with
 * the history check on, no further than the state table records.
 *
 * One exception.  A server shutting down ("fast" mode) first ends every ordinary
 * connection, so the record can no longer be written, and then has its walsenders
 * wait until the client confirms the end of WAL -- its own shutdown checkpoint
 * included -- before it can stop.  When the server asks for a reply, refuses new
 * connections because it is shutting down (r->server_stopping, nothing weaker), and
 * nothing is in flight (so the relay knows the range holds no event of its own), the
 * relay confirms without a record; send_status() remembers the position
 * (r->unrecorded) and the next connection records it (repl_open()).
 */
static lsn_t confirmable(struct relay *r)
{
    lsn_t c = ckpt_confirmed(r->ckpt);

    if (!r->cfg->postgres.history_check || c <= r->state_lsn)
        return c;
    if (r->reply_due && r->server_stopping && !r->in_txn && ckpt_inflight_txns(r->ckpt) == 0)
        return c;
    return r->state_lsn;
}

/* kafka.max_inflight_events reached: stop reading WAL until acknowledgements arrive. */
static bool backpressured(const struct relay *r)
{
    int64_t limit = r->cfg->kafka.max_inflight_events;

    return ckpt_inflight_events(r->ckpt) >= (uint64_t)limit ||
           sink_outstanding(r->sink) >= limit ||
           sink_outstanding_bytes(r->sink) >= r->cfg->kafka.max_inflight_bytes;
}

/* Nothing received is waiting for Kafka: the end of a burst. */
static bool caught_up(const struct relay *r)
{
    return !r->in_txn && sink_outstanding(r->sink) == 0;
}

/* The least time between two status updates that move the confirmed position. */
static int64_t status_min_interval(const struct relay *r)
{
    return caught_up(r) ? STATUS_CAUGHT_UP_MS : STATUS_MIN_INTERVAL_MS;
}

/* Whether the loop takes frames from PostgreSQL now. */
static bool reading(const struct relay *r)
{
    return r->conn && !r->fatal && !r->rebuild && !sink_fatal(r->sink) && !backpressured(r) &&
           !(r->stopping && !r->in_txn);
}

/*
 * Close the connection and forget the in-flight pipeline state: the next connection
 * starts from the checkpoint.  Returns what repl_close() says of a graceful close.
 */
static bool drop_connection(struct relay *r, bool graceful)
{
    bool ok = repl_close(r->conn, graceful, CLOSE_TIMEOUT_MS);

    r->conn = NULL;
    r->in_txn = false;
    (void)ckpt_confirmed(r->ckpt);
    ckpt_reset(r->ckpt);
    return ok;
}

static void schedule_retry(struct relay *r)
{
    int64_t delay = r->retry_delay_ms;
    int64_t jitter = delay / 5;

    /* +-20% so that several relays restarted together do not retry in lockstep. */
    if (jitter > 0)
        delay += (rand() % (2 * jitter + 1)) - jitter;
    r->retry_at_ms = now_ms() + delay;
    r->retry_delay_ms *= 2;
    if (r->retry_delay_ms > r->cfg->postgres.retry_interval_ms)
        r->retry_delay_ms = r->cfg->postgres.retry_interval_ms;
}

/*
 * A transient source failure: let what is in flight be acknowledged (so the replay
 * starts as late as possible), close, and reconnect after a pause.  Whatever Kafka
 * does not acknowledge within kafka.shutdown_timeout is purged, so the replay cannot
 * pile new messages on top of old ones.
 */
static void source_lost(struct relay *r, const char *why)
{
    char err[512];
    int left;

    log_warn("%s; reconnecting", why);
    left = sink_flush(r->sink, (int)r->cfg->kafka.shutdown_timeout_ms);
    /* Forget the pipeline first, so the purge's reports are recognised as stale. */
    drop_connection(r, false);
    if (left > 0 && sink_reset(r->sink, err, sizeof(err)) < 0)
        set_fatal(r, "%s", err);
    log_info("will replay from " LSN_FMT, LSN_ARGS(ckpt_confirmed(r->ckpt)));
    if (!r->stopping)
        schedule_retry(r);
}

static void try_connect(struct relay *r)
{
    char err[1024];
    struct repl_info info;
    int rc = repl_open(r->cfg, ckpt_confirmed(r->ckpt), r->unrecorded,
                       r->have_info ? &r->info : NULL,
                       r->cdc_keys, &r->conn, &info, err, sizeof(err));

    if (rc == -EPERM) {
        set_fatal(r, "%s", err);
        return;
    }
    if (rc < 0) {
        log_warn("%s; retrying in %lld ms", err, (long long)r->retry_delay_ms);
        schedule_retry(r);
        return;
    }
    if (r->have_info)
        r->obs.m.reconnects++;
    r->info = info;
    r->have_info = true;
    if (!r->fmt && !(r->fmt = formatter_from_config(r->cfg, info.dbname, err, sizeof(err)))) {
        set_fatal(r, "%s", err);
        drop_connection(r, false);
        return;
    }
    r->retry_delay_ms = RETRY_MIN_MS;
    if (info.hint_ignored) {
        /* Another server history: our old positions mean nothing there. */
        ckpt_restart(r->ckpt, info.start_lsn);
    } else {
        /* The server has nothing for us before the start position: the ring is empty. */
        ckpt_keepalive(r->ckpt, info.start_lsn);
    }
    r->received = info.start_lsn;
    r->server_wal_end = info.server_lsn;
    r->sent_flush = info.slot_confirmed;
    r->state_lsn = info.state_lsn;
    r->last_status_ms = 0;
    r->reply_due = false;
    log_info("streaming from slot \"%s\" at " LSN_FMT " (system %s, timeline %u, database "
             "\"%s\")",
             r->cfg->postgres.slot, LSN_ARGS(info.start_lsn), info.system_id, info.timeline,
             info.dbname);
}

/* Stop with a clear message naming the row: nothing is skipped silently. */
static void bad_row(struct relay *r, const struct event *ev, const char *why)
{
    if (ev->change.op) {
        set_fatal(r,
                  "bad change of table \"%s.%s\" (id " LSN_FMT ":%u) in transaction %u: %s; "
                  "stopping without confirming past it",
                  ev->rel->nspname, ev->rel->relname, LSN_ARGS(r->pos.commit_lsn), r->pos.index,
                  r->pos.xid, why);
        return;
    }

    int idlen = ev->id.p ? (int)(ev->id.len < 64 ? ev->id.len : 64) : 6;

    set_fatal(r,
              "bad outbox row id \"%.*s\" in transaction %u at " LSN_FMT ": %s; stopping "
              "without confirming past it",
              idlen, ev->id.p ? ev->id.p : "(null)", r->pos.xid, LSN_ARGS(r->pos.commit_lsn),
              why);
}

/* Render an event and hand it to the sink; a bad event stops the relay. */
static void publish(struct relay *r, const struct event *ev)
{
    struct out_msg msg;
    char err[512];
    int rc;

    if (formatter_render(r->fmt, ev, &msg, err, sizeof(err)) < 0) {
        bad_row(r, ev, err);
        return;
    }
    rc = sink_produce(r->sink, &msg, r->txn_seq, err, sizeof(err));
    if (rc == -EMSGSIZE) {
        bad_row(r, ev, err);
        return;
    }
    if (rc < 0) {
        /* Queue full or a producer in trouble: never spin, never skip -- replay. */
        request_rebuild(r, err);
        return;
    }
    ckpt_add_event(r->ckpt);
    r->obs.m.events_received++;
    r->pos.index++;
}

/* A table-less outbox event: pg_logical_emit_message(true, prefix, json). */
static void handle_logical_message(struct relay *r, const struct pgo_message *m)
{
    struct event ev;
    char err[512];

    if (strcmp(m->prefix, r->cfg->outbox.messages_prefix) != 0)
        return; /* somebody else's message */
    if (!m->transactional || !r->in_txn) {
        /* Not part of a transaction: no commit position to confirm it by. */
        log_warn("ignoring non-transactional message with prefix \"%s\" at " LSN_FMT
                 ": use pg_logical_emit_message(true, ...)",
                 m->prefix, LSN_ARGS(m->lsn));
        return;
    }
    if (event_from_message(m->content, m->content_len, &r->pos, &r->msgbuf, &ev, err,
                           sizeof(err)) < 0) {
        set_fatal(r,
                  "bad outbox message in transaction %u at " LSN_FMT ": %s; stopping without "
                  "confirming past it",
                  r->pos.xid, LSN_ARGS(m->lsn), err);
        return;
    }
    publish(r, &ev);
}

/* A change of a cdc table. */
static void handle_change(struct relay *r, const struct rel_desc *rel, char op,
                          const struct pgo_tuple *newtuple, char old_kind,
                          const struct pgo_tuple *oldtuple)
{
    struct event ev;
    char err[512];

    if (!r->in_txn) {
        set_fatal(r, "protocol error: change outside a transaction after " LSN_FMT,
                  LSN_ARGS(r->received));
        return;
    }
    if (event_from_change(rel, op, newtuple, old_kind, oldtuple, &r->pos, &ev, err,
                          sizeof(err)) < 0) {
        set_fatal(r,
                  "bad change of table \"%s.%s\" in transaction %u at " LSN_FMT ": %s; "
                  "stopping without confirming past it",
                  rel->nspname, rel->relname, r->pos.xid, LSN_ARGS(r->pos.commit_lsn), err);
        return;
    }
    publish(r, &ev);
}

/* The description of relid; a relation never described is a protocol error. */
static const struct rel_desc *relation(struct relay *r, pgo_oid_t relid)
{
    const struct rel_desc *rel = relcache_get(r->rels, relid);

    if (!rel)
        set_fatal(r, "protocol error: change of relation %u, never described, at " LSN_FMT,
                  relid, LSN_ARGS(r->pos.commit_lsn));
    return rel;
}

static void handle_insert(struct relay *r, const struct pgo_insert *ins)
{
    const struct rel_desc *rel = relcache_get(r->rels, ins->relid);
    struct event ev;
    char err[512];

    if (!rel) {
        set_fatal(r, "protocol error: insert for relation %u, never described, at " LSN_FMT,
                  ins->relid, LSN_ARGS(r->pos.commit_lsn));
        return;
    }
    if (rel->is_cdc) {
        handle_change(r, rel, 'c', &ins->newtuple, 0, NULL);
        return;
    }
    if (!rel->is_outbox)
        return; /* another table in a shared publication: not ours */
    if (!r->in_txn) {
        set_fatal(r, "protocol error: insert outside a transaction after " LSN_FMT,
                  LSN_ARGS(r->received));
        return;
    }
    if (event_from_outbox_row(rel, &ins->newtuple, &r->pos, &ev, err, sizeof(err)) < 0) {
        bad_row(r, &ev, err);
        return;
    }
    publish(r, &ev);
}

/* One pgoutput message. */
static void handle_message(struct relay *r, const char *data, size_t len)
{
    struct pgo_msg m;
    char err[512];
    int rc;

    if (pgo_decode(r->dec, data, len, false, &m, err, sizeof(err)) < 0) {
        set_fatal(r, "cannot decode pgoutput message after " LSN_FMT ": %s",
                  LSN_ARGS(r->received), err);
        return;
    }
    switch (m.kind) {
    case PGO_BEGIN:
        if ((rc = ckpt_begin(r->ckpt, &r->txn_seq)) < 0) {
            set_fatal(r, "%s at " LSN_FMT,
                      rc == -ENOMEM ? "out of memory" : "protocol error: begin inside a "
                                                        "transaction",
                      LSN_ARGS(m.u.begin.final_lsn));
            return;
        }
        r->in_txn = true;
        r->pos.system_id = r->info.system_id;
        r->pos.timeline = r->info.timeline;
        r->pos.commit_lsn = m.u.begin.final_lsn;
        r->pos.xid = m.u.begin.xid;
        r->pos.commit_time_us = pgo_timestamp_to_unix_us(m.u.begin.commit_time);
        ckpt_set_commit_time(r->ckpt, r->pos.commit_time_us);
        r->pos.index = 0;
        break;
    case PGO_COMMIT:
        if (ckpt_commit(r->ckpt, m.u.commit.end_lsn) < 0) {
            set_fatal(r, "protocol error: commit outside a transaction at " LSN_FMT,
                      LSN_ARGS(m.u.commit.commit_lsn));
            return;
        }
        r->in_txn = false;
        break;
    case PGO_RELATION:
        if (relcache_update(r->rels, &m.u.relation, err, sizeof(err)) < 0)
            set_fatal(r, "%s", err);
        break;
    case PGO_INSERT:
        handle_insert(r, &m.u.insert);
        break;
    case PGO_MESSAGE:
        handle_logical_message(r, &m.u.message);
        break;
    case PGO_UPDATE: {
        const struct rel_desc *rel = relation(r, m.u.update.relid);

        if (rel && rel->is_cdc)
            handle_change(r, rel, 'u', &m.u.update.newtuple, m.u.update.old_kind,
                          &m.u.update.oldtuple);
        break;
    }
    case PGO_DELETE: {
        const struct rel_desc *rel = relation(r, m.u.del.relid);

        if (rel && rel->is_cdc)
            handle_change(r, rel, 'd', NULL, m.u.del.old_kind, &m.u.del.oldtuple);
        break;
    }
    case PGO_TRUNCATE:
        for (uint32_t i = 0; i < m.u.truncate.nrelids && !r->fatal; i++) {
            const struct rel_desc *rel = relation(r, m.u.truncate.relids[i]);

            if (rel && rel->is_cdc)
                handle_change(r, rel, 't', NULL, 0, NULL);
        }
        break;
    default:
        /*
         * Type and Origin carry nothing for the relay.
         */
        break;
    }
}

/* Drain every complete frame libpq has buffered, while reading. */
static void read_stream(struct relay *r)
{
    struct wal_frame f;
    char err[512];
    int rc;

    while (reading(r)) {
        rc = repl_read(r->conn, &f, err, sizeof(err));
        if (rc == 0)
            return;
        if (rc == -EBADMSG) {
            set_fatal(r, "bad replication frame after " LSN_FMT ": %s", LSN_ARGS(r->received),
                      err);
            return;
        }
        if (rc == -EPERM) {
            set_fatal(r, "%s", err);
            return;
        }
        if (rc < 0) {
            source_lost(r, err);
            return;
        }
        if (f.wal_end > r->server_wal_end)
            r->server_wal_end = f.wal_end;
        if (f.type == 'w') {
            if (f.data_start > r->received)
                r->received = f.data_start;
            handle_message(r, f.data, f.len);
        } else {
            /* Keepalive: with nothing in flight, everything up to wal_end is done. */
            if (f.wal_end > r->received && !r->in_txn && ckpt_inflight_txns(r->ckpt) == 0) {
                r->received = f.wal_end;
                /* Nothing in flight: every commit up to now is done (source lag 0). */
                metrics_note_caught_up(&r->obs.m, observe_now_us());
            }
            ckpt_keepalive(r->ckpt, f.wal_end);
            if (f.reply_requested)
                r->reply_due = true;
        }
    }
}

/*
 * How long the relay may stay silent.  While not reading it cannot see the
 * walsender's keepalive requests (they sit behind unread data), so it reports at
 * least every second, which keeps any wal_sender_timeout of 2 s or more from
 * tripping.
 */
static int64_t status_period(const struct relay *r)
{
    int64_t p = r->cfg->postgres.status_interval_ms;

    return !reading(r) && p > STATUS_BACKPRESSURE_MS ? STATUS_BACKPRESSURE_MS : p;
}

static void send_status(struct relay *r, bool force)
{
    lsn_t flush = confirmable(r);
    int64_t now = now_ms();
    char err[512];

    if (!r->conn)
        return;
    if (!force && !r->reply_due &&
        !(flush != r->sent_flush && now - r->last_status_ms >= status_min_interval(r)) &&
        now - r->last_status_ms < status_period(r))
        return;
    if (repl_send_status(r->conn, r->received > flush ? r->received : flush, flush, false, err,
                         sizeof(err)) < 0) {
        source_lost(r, err);
        return;
    }
    if (r->cfg->postgres.history_check && flush > r->state_lsn && flush > r->unrecorded) {
        r->unrecorded = flush;
        log_info("confirmed " LSN_FMT " without recording it: the server is shutting down",
                 LSN_ARGS(flush));
    }
    if (flush != r->sent_flush)
        log_debug("confirmed " LSN_FMT " (%llu events delivered)", LSN_ARGS(flush),
                  (unsigned long long)r->obs.m.events_published);
    r->sent_flush = flush;
    r->last_status_ms = now;
    r->reply_due = false;
}

static void side_close(struct relay *r, const char *why)
{
    if (why)
        log_warn("side connection: %s", why);
    if (r->side)
        PQfinish(r->side);
    r->side = NULL;
    r->side_job = SIDE_IDLE;
}

/* The side connection, opened when needed; NULL (and a warning) when it cannot be. */
static PGconn *side_conn(struct relay *r)
{
    PGresult *res;

    if (r->side)
        return r->side;
    if (now_ms() < r->side_retry_at_ms)
        return NULL;
    r->side = repl_connect(r->cfg->postgres.dsn, "outbox-relay-side", 5, false);
    if (PQstatus(r->side) == CONNECTION_OK) {
        /*
         * synchronous_commit=local: if the relay's own walsender counts as a synchronous
         * standby, a commit waiting for it would wait for the relay, which waits for the
         * commit.  The timeouts keep a lock on the record from stalling confirmation.
         */
        res = PQexec(r->side, "SET synchronous_commit TO local; "
                              "SET statement_timeout TO '5s'; SET lock_timeout TO '2s'");
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            PQsetnonblocking(r->side, 1);
            PQsetNoticeProcessor(r->side, repl_notice_to_log, NULL);
            r->side_retry_delay_ms = 0;
            r->server_stopping = false;
            return r->side;
        }
        PQclear(res);
    }
    /* "the database system is shutting down": the evidence confirmable() wants. */
    r->server_stopping = strstr(PQerrorMessage(r->side), "shutting down") != NULL;
    r->side_retry_delay_ms = r->side_retry_delay_ms == 0 ? RETRY_MIN_MS
                             : r->side_retry_delay_ms * 2 > r->cfg->postgres.retry_interval_ms
                                 ? r->cfg->postgres.retry_interval_ms
                                 : r->side_retry_delay_ms * 2;
    r->side_retry_at_ms = now_ms() + r->side_retry_delay_ms;
    side_close(r, PQerrorMessage(r->side));
    return NULL;
}

/* Send a heartbeat if one is due and the outbox was idle. */
static void heartbeat_send(struct relay *r)
{
    char sql[512];
    char *slot;

    if (r->cfg->postgres.heartbeat_interval_ms == 0 || !r->conn || r->side_job != SIDE_IDLE ||
        now_ms() < r->hb_due_ms)
        return;
    r->hb_due_ms = now_ms() + r->cfg->postgres.heartbeat_interval_ms;
    if (r->obs.m.events_received != r->hb_produced) {
        r->hb_produced = r->obs.m.events_received; /* events flowed: they advance the slot themselves */
        return;
    }
    if (!side_conn(r))
        return;
    slot = PQescapeLiteral(r->side, r->cfg->postgres.slot, strlen(r->cfg->postgres.slot));
    /* The message is transactional, so its commit gives the relay a position to confirm. */
    snprintf(sql, sizeof(sql),
             "SELECT pg_catalog.pg_logical_emit_message(true, 'outbox-relay-heartbeat', ''), "
             "(SELECT pg_catalog.pg_current_wal_lsn() - confirmed_flush_lsn FROM "
             "pg_catalog.pg_replication_slots WHERE slot_name = %s), "
             "pg_catalog.pg_current_wal_lsn()",
             slot ? slot : "''");
    PQfreemem(slot);
    if (!PQsendQuery(r->side, sql)) {
        side_close(r, PQerrorMessage(r->side));
        return;
    }
    r->side_job = SIDE_HEARTBEAT;
    r->obs.m.heartbeats++;
}

/* The heartbeat's answer: warn about slot lag. */
static void heartbeat_done(struct relay *r, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("heartbeat failed: %s", PQresultErrorMessage(res));
    } else if (!PQgetisnull(res, 0, 1)) {
        long long lag = atoll(PQgetvalue(res, 0, 1));
        long long limit = (long long)r->cfg->postgres.slot_lag_warning;

        lsn_t end;

        if (lsn_parse(PQgetvalue(res, 0, 2), &end) && end > r->server_wal_end)
            r->server_wal_end = end;
        if (limit > 0 && lag > limit && !r->lag_warned) {
            log_warn("replication slot \"%s\" lags %lld bytes behind the server (more than "
                     "postgres.slot_lag_warning, %lld): WAL is piling up",
                     r->cfg->postgres.slot, lag, limit);
            r->lag_warned = true;
        } else if (lag <= limit && r->lag_warned) {
            log_info("replication slot \"%s\" lag is back to %lld bytes",
                     r->cfg->postgres.slot, lag);
            r->lag_warned = false;
        }
    }
}

/*
 * The statement that records lsn for the slot, with its parameters.  It never moves
 * the record back: with two relays on one slot, only the one streaming writes, but
 * a late write of the one that lost the slot must not undo the other's.
 */
#define STATE_PARAMS 4
static void state_statement(const struct relay *r, PGconn *conn, lsn_t lsn, char *sql,
                            size_t sqlsize, char (*bufs)[32], const char **vals)
{
    const char *nsp = r->cfg->postgres.state_schema, *rel = r->cfg->postgres.state_table;
    char *qn = PQescapeIdentifier(conn, nsp, strlen(nsp));
    char *qr = PQescapeIdentifier(conn, rel, strlen(rel));

    snprintf(sql, sqlsize,
             "INSERT INTO %s.%s AS s (slot_name, system_identifier, timeline, confirmed_lsn) "
             "VALUES ($1, $2, $3, $4::pg_lsn) ON CONFLICT (slot_name) DO UPDATE SET "
             "system_identifier = excluded.system_identifier, timeline = excluded.timeline, "
             "confirmed_lsn = excluded.confirmed_lsn, updated_at = now() "
             "WHERE s.confirmed_lsn <= excluded.confirmed_lsn "
             "RETURNING pg_catalog.pg_current_wal_lsn()",
             qn ? qn : "\"\"", qr ? qr : "\"\"");
    PQfreemem(qn);
    PQfreemem(qr);
    snprintf(bufs[0], 32, "%u", r->info.timeline);
    snprintf(bufs[1], 32, LSN_FMT, LSN_ARGS(lsn));
    vals[0] = r->cfg->postgres.slot;
    vals[1] = r->info.system_id;
    vals[2] = bufs[0];
    vals[3] = bufs[1];
}

/*
 * Record the acknowledged position in the state table, so that it can be confirmed.
 * At once (STATUS_CAUGHT_UP_MS) when delivered events leave nothing in flight, the
 * end of a burst; every STATE_EAGER_MS while events are delivered, the position ran
 * far ahead or the server waits for a reply; otherwise once per status interval, so
 * that the WAL of the write itself, which keepalives then report, does not keep the
 * relay writing while idle.
 */
#define STATE_EAGER_MS 200
#define STATE_EAGER_BYTES (64 * 1024)
static void state_send(struct relay *r)
{
    lsn_t c = ckpt_confirmed(r->ckpt);
    int64_t now = now_ms(), every;
    char sql[1024], bufs[2][32];
    const char *vals[STATE_PARAMS];
    bool delivering;

    if (!r->cfg->postgres.history_check || !r->conn || r->side_job != SIDE_IDLE ||
        c <= r->state_lsn)
        return;
    delivering = r->obs.m.events_published != r->state_delivered;
    if (delivering && caught_up(r))
        every = STATUS_CAUGHT_UP_MS;
    else if (delivering || c - r->state_lsn >= STATE_EAGER_BYTES || r->reply_due)
        every = STATE_EAGER_MS;
    else
        every = r->cfg->postgres.status_interval_ms;
    if (now - r->state_sent_ms < every || !side_conn(r))
        return;
    state_statement(r, r->side, c, sql, sizeof(sql), bufs, vals);
    if (!PQsendQueryParams(r->side, sql, STATE_PARAMS, NULL, vals, NULL, NULL, 0)) {
        side_close(r, PQerrorMessage(r->side));
        return;
    }
    r->side_job = SIDE_STATE;
    r->state_sending = c;
    r->state_sent_ms = now;
    r->state_delivered = r->obs.m.events_published;
}

static void state_done(struct relay *r, const PGresult *res)
{
    lsn_t end;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("cannot record position " LSN_FMT " in the relay's state table: %s",
                 LSN_ARGS(r->state_sending), PQresultErrorMessage(res));
        return;
    }
    /* RETURNING pg_current_wal_lsn(): the server's WAL end, for the slot-lag metric. */
    if (PQntuples(res) == 1 && lsn_parse(PQgetvalue(res, 0, 0), &end) &&
        end > r->server_wal_end)
        r->server_wal_end = end;
    if (r->state_sending > r->state_lsn)
        r->state_lsn = r->state_sending;
}

/* Read the side connection's answer when it is there. */
static void side_receive(struct relay *r)
{
    PGresult *res;

    if (!r->side || r->side_job == SIDE_IDLE)
        return;
    if (!PQconsumeInput(r->side)) {
        side_close(r, PQerrorMessage(r->side));
        return;
    }
    /* All results read: PQgetResult() returns NULL and the connection is free again. */
    while (!PQisBusy(r->side)) {
        if (!(res = PQgetResult(r->side))) {
            r->side_job = SIDE_IDLE;
            break;
        }
        if (r->side_job == SIDE_HEARTBEAT)
            heartbeat_done(r, res);
        else
            state_done(r, res);
        PQclear(res);
    }
}

/*
 * At shutdown: record what was acknowledged, waiting for it (the final status update
 * confirms no further than the record).
 */
static void state_flush(struct relay *r)
{
    lsn_t c = ckpt_confirmed(r->ckpt);
    char sql[1024], bufs[2][32];
    const char *vals[STATE_PARAMS];
    PGresult *res;

    if (!r->cfg->postgres.history_check || !r->have_info || c <= r->state_lsn)
        return;
    if (r->side && r->side_job != SIDE_IDLE) {
        /* Blocking now: let the query in flight finish. */
        while ((res = PQgetResult(r->side))) {
            if (r->side_job == SIDE_STATE)
                state_done(r, res);
            PQclear(res);
        }
        r->side_job = SIDE_IDLE;
    }
    if (!side_conn(r))
        return;
    state_statement(r, r->side, c, sql, sizeof(sql), bufs, vals);
    r->state_sending = c;
    res = PQexecParams(r->side, sql, STATE_PARAMS, NULL, vals, NULL, NULL, 0);
    state_done(r, res);
    PQclear(res);
}

/* Tear down to the confirmed position after a failed delivery; replay from the slot. */
static void rebuild(struct relay *r)
{
    char err[512];

    log_warn("rebuilding the pipeline: replaying from " LSN_FMT,
             LSN_ARGS(ckpt_confirmed(r->ckpt)));
    r->obs.m.replays++;
    send_status(r, true);
    drop_connection(r, r->conn != NULL);
    if (sink_reset(r->sink, err, sizeof(err)) < 0) {
        set_fatal(r, "%s", err);
        return;
    }
    r->rebuild = false;
    r->retry_at_ms = 0;
}

/*
 * Whether the loop is done.  A stop request first lets the transaction being
 * received finish, then waits for Kafka to acknowledge everything in flight -- all
 * within kafka.shutdown_timeout, and all while status updates keep flowing -- so
 * that the final status update confirms everything and a restart replays nothing.
 */
static bool loop_done(const struct relay *r)
{
    if (r->fatal)
        return true;
    if (!r->stopping)
        return false;
    if (!r->conn || now_ms() >= r->stop_deadline_ms)
        return true;
    if (r->in_txn)
        return false;
    return sink_outstanding(r->sink) == 0;
}

static int poll_timeout(struct relay *r)
{
    int64_t t = 1000, now = now_ms();

    if (!r->conn) {
        t = r->retry_at_ms - now;
    } else {
        int64_t due = r->last_status_ms + status_period(r) - now;

        if (due < t)
            t = due;
        if ((confirmable(r) != r->sent_flush || ckpt_confirmed(r->ckpt) > r->state_lsn) &&
            t > status_min_interval(r))
            t = status_min_interval(r);
    }
    if (r->stopping && r->stop_deadline_ms - now < t)
        t = r->stop_deadline_ms - now;
    if (t < 0)
        t = 0;
    if (t > 1000)
        t = 1000;
    return (int)t;
}

/* Bring the gauges up to date (before /metrics and /readyz answer). */
static void refresh_metrics(void *opaque, struct relay_metrics *m)
{
    struct relay *r = opaque;

    m->inflight_events = ckpt_inflight_events(r->ckpt);
    m->inflight_bytes = (uint64_t)sink_outstanding_bytes(r->sink);
    m->confirmed_lsn = r->sent_flush;
    /* The server's WAL end, as the stream's frames and the heartbeats last said. */
    if (r->have_info)
        m->slot_lag_bytes = r->server_wal_end > r->sent_flush
                                ? (int64_t)(r->server_wal_end - r->sent_flush)
                                : 0;
}

/* Ready: streaming from PostgreSQL, and the sink can reach its brokers. */
static void update_ready(struct relay *r)
{
    if (r->stopping)
        observe_ready(&r->obs, false, "stopping");
    else if (!r->conn)
        observe_ready(&r->obs, false, r->have_info ? "reconnecting to postgresql (or waiting "
                                                     "for the replication slot)"
                                                   : "connecting to postgresql (or waiting "
                                                     "for the replication slot)");
    else if (!sink_connected(r->sink))
        observe_ready(&r->obs, false, "kafka brokers unreachable");
    else
        observe_ready(&r->obs, true, NULL);
}

static void on_stop_request(struct relay *r)
{
    char buf[16];

    while (read(r->stop_fd, buf, sizeof(buf)) > 0)
        ;
    if (r->stopping) {
        /* A second signal: stop waiting for the transaction and for Kafka. */
        log_warn("second stop request: not waiting any longer");
        r->stop_deadline_ms = now_ms();
        return;
    }
    r->stopping = true;
    r->stop_deadline_ms = now_ms() + r->cfg->kafka.shutdown_timeout_ms;
    observe_stopping(&r->obs);
    log_info("stopping: finishing transaction %s, waiting for %d events to be acknowledged",
             r->in_txn ? "in progress" : "(none)", sink_outstanding(r->sink));
}

static void loop(struct relay *r)
{
    while (!loop_done(r)) {
        struct pollfd fds[4 + OBSERVE_MAX_POLLFDS];
        size_t nobs;
        char err[512];

        if (!r->conn && !r->stopping && now_ms() >= r->retry_at_ms) {
            try_connect(r);
            continue;
        }
        /* Fixed slots 0-3 (fd -1 when unused: poll() skips it), then the observer's. */
        fds[0] = (struct pollfd){.fd = r->stop_fd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = sink_fd(r->sink), .events = POLLIN};
        fds[2] = (struct pollfd){.fd = -1};
        fds[3] = (struct pollfd){.fd = -1};
        if (r->conn) {
            /* Not reading: leave the data in the socket, so TCP pushes back. */
            fds[2] = (struct pollfd){.fd = repl_socket(r->conn),
                                     .events = (short)((reading(r) ? POLLIN : 0) |
                                                       (repl_want_write(r->conn) ? POLLOUT : 0))};
        }
        if (r->side && r->side_job != SIDE_IDLE)
            fds[3] = (struct pollfd){.fd = PQsocket(r->side), .events = POLLIN};
        nobs = observe_pollfds(&r->obs, fds + 4, OBSERVE_MAX_POLLFDS);
        if (poll(fds, (nfds_t)(4 + nobs), observe_timeout(&r->obs, poll_timeout(r))) < 0 &&
            errno != EINTR) {
            set_fatal(r, "poll: %s", strerror(errno));
            break;
        }
        observe_turn(&r->obs, fds + 4, nobs);
        update_ready(r);
        if (fds[0].revents)
            on_stop_request(r);
        if (fds[1].revents)
            sink_drain_fd(r->sink);
        if (fds[3].revents)
            side_receive(r);
        sink_poll(r->sink);
        if (sink_fatal(r->sink))
            request_rebuild(r, "kafka producer failed");
        if (r->rebuild) {
            rebuild(r);
            continue;
        }
        if (!r->conn)
            continue;
        if ((fds[2].revents & (POLLIN | POLLERR | POLLHUP)) &&
            repl_consume(r->conn, err, sizeof(err)) < 0) {
            source_lost(r, err);
            continue;
        }
        if ((fds[2].revents & POLLOUT) && repl_flush(r->conn, err, sizeof(err)) < 0) {
            source_lost(r, err);
            continue;
        }
        read_stream(r);
        if (r->conn && !r->fatal) {
            state_send(r);
            send_status(r, false);
            heartbeat_send(r);
        }
    }
}

/* Confirm what was acknowledged and close; after a permanent error, drain first. */
static void shutdown_pipeline(struct relay *r)
{
    int left;

    if (r->fatal)
        sink_flush(r->sink, (int)r->cfg->kafka.shutdown_timeout_ms);
    left = sink_outstanding(r->sink);
    if (left > 0)
        log_warn("%d events still unacknowledged at shutdown: they will be replayed", left);
    if (r->conn) {
        lsn_t flush;

        state_flush(r);
        flush = confirmable(r);
        send_status(r, true);
        if (!drop_connection(r, true))
            log_warn("the server did not confirm the final status update: the slot may "
                     "stay before " LSN_FMT " and a restart may replay events delivered "
                     "after it",
                     LSN_ARGS(flush));
    }
    log_info("stopped: %llu events produced, %llu delivered, confirmed " LSN_FMT,
             (unsigned long long)r->obs.m.events_received, (unsigned long long)r->obs.m.events_published,
             LSN_ARGS(confirmable(r)));
}

int relay_run(const struct relay_config *cfg, int stop_fd, char *errstr, size_t errstr_size)
{
    struct relay r;
    int rc = -1;

    memset(&r, 0, sizeof(r));
    r.cfg = cfg;
    r.stop_fd = stop_fd;
    r.retry_delay_ms = RETRY_MIN_MS;
    srand((unsigned)getpid());

    jbuf_init(&r.msgbuf);
    r.ckpt = ckpt_new(LSN_INVALID);
    r.dec = pgo_decoder_new();
    if (!r.ckpt || !r.dec) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    if (!(r.rels = relcache_from_config(cfg, errstr, errstr_size)))
        goto out;
    r.cdc_schemas = calloc(cfg->cdc.ntables + 1, sizeof(*r.cdc_schemas));
    r.cdc_tables = calloc(cfg->cdc.ntables + 1, sizeof(*r.cdc_tables));
    r.cdc_keys = calloc(cfg->cdc.ntables + 1, sizeof(*r.cdc_keys));
    if (!r.cdc_schemas || !r.cdc_tables || !r.cdc_keys) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg->cdc.ntables; i++) {
        r.cdc_schemas[i] = cfg->cdc.tables[i].schema;
        r.cdc_tables[i] = cfg->cdc.tables[i].table;
    }
    relcache_set_cdc_tables(r.rels, r.cdc_schemas, r.cdc_tables, r.cdc_keys, cfg->cdc.ntables);
    if (!(r.sink = sink_from_config(cfg, on_report, &r, errstr, errstr_size)))
        goto out;
    if (observe_open(&r.obs, cfg, refresh_metrics, &r, errstr, errstr_size) < 0)
        goto out;

    loop(&r);
    shutdown_pipeline(&r);
    if (r.fatal) {
        snprintf(errstr, errstr_size, "%s", r.errstr);
        goto out;
    }
    rc = 0;

out:
    side_close(&r, NULL);
    observe_close(&r.obs);
    sink_free(r.sink);
    formatter_free(r.fmt);
    relcache_free(r.rels);
    pgo_decoder_free(r.dec);
    ckpt_free(r.ckpt);
    jbuf_free(&r.msgbuf);
    free(r.cdc_schemas);
    free(r.cdc_tables);
    for (size_t i = 0; r.cdc_keys && i < cfg->cdc.ntables; i++)
        free(r.cdc_keys[i]);
    free(r.cdc_keys);
    return rc;
}

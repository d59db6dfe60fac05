/*
 * relay.c -- the poll() loop that ties the pipeline together.
 *
 * One thread, one loop, three file descriptors: the PostgreSQL socket, the sink's
 * wakeup pipe (librdkafka signals queued delivery reports through it) and the stop
 * pipe written by signal handlers.  Each turn of the loop:
 *
 *   1. serves delivery reports -> the checkpoint tracker learns what is acknowledged;
 *   2. unless back-pressured, drains every complete CopyData frame libpq holds:
 *      pgoutput message -> event -> rendered message -> sink, transaction
 *      boundaries -> tracker;
 *   3. sends a standby status update when the confirmed position moved, when the
 *      server asked for one, or when postgres.status_interval passed.
 *
 * Back-pressure (kafka.max_inflight_events reached) stops step 2 only: reports keep
 * being served and status updates keep flowing, so wal_sender_timeout never trips.
 *
 * Failures never guess.  A lost connection, a failed delivery or a fatal producer
 * error tears the pipeline down to the confirmed position and replays from the slot;
 * a bad row or a permanently undeliverable event stops the relay with a message
 * naming the row, without confirming past it.
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

#include "checkpoint.h"
#include "event.h"
#include "format.h"
#include "log.h"
#include "pgoutput.h"
#include "replication.h"
#include "sink.h"

/* Send a status update this soon after the confirmed position moves, not sooner. */
#define STATUS_MIN_INTERVAL_MS 100
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

    repl_conn *conn;
    struct repl_info info;
    int64_t retry_at_ms;   /* when to try connecting again */
    int64_t retry_delay_ms;
    bool rebuild;          /* a delivery failed: replay from the confirmed position */

    /* The transaction being received. */
    bool in_txn;
    uint64_t txn_seq;
    struct event_pos pos;

    lsn_t received;        /* highest WAL position received: the "write" we report */
    lsn_t sent_flush;      /* the flush position last reported */
    int64_t last_status_ms;
    bool reply_due;        /* the server asked for a status update */

    uint64_t produced;
    uint64_t delivered;

    int fatal;             /* a permanent error: stop */
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

/* Delivery report from the sink, on our thread, inside sink_poll()/sink_flush(). */
static void on_report(void *opaque, uint64_t txn_seq, enum sink_outcome outcome,
                      const char *topic, const char *id, const char *err)
{
    struct relay *r = opaque;
    char msg[768];

    if (outcome == SINK_DELIVERED) {
        if (ckpt_ack(r->ckpt, txn_seq) == 0)
            r->delivered++;
        return;
    }
    if (ckpt_fail(r->ckpt, txn_seq) == -ENOENT)
        return; /* a report from a pipeline already discarded */
    if (outcome == SINK_FAILED_PERMANENT) {
        snprintf(msg, sizeof(msg),
                 "event \"%s\" cannot be delivered to topic \"%s\": %s; stopping without "
                 "confirming past it (no dead-letter topic is configured)",
                 id, topic, err);
        set_fatal(r, "%s", msg);
        return;
    }
    if (!r->rebuild)
        log_warn("delivery of event \"%s\" to topic \"%s\" failed: %s; replaying from " LSN_FMT,
                 id, topic, err, LSN_ARGS(ckpt_confirmed(r->ckpt)));
    r->rebuild = true;
}

/* Forget the in-flight pipeline state; the next connection replays from the slot. */
static void drop_connection(struct relay *r, bool graceful)
{
    repl_close(r->conn, graceful, CLOSE_TIMEOUT_MS);
    r->conn = NULL;
    r->in_txn = false;
    (void)ckpt_confirmed(r->ckpt);
    ckpt_reset(r->ckpt);
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

/* A transient source failure: log once, close, wait, reconnect. */
static void source_lost(struct relay *r, const char *why)
{
    log_warn("%s; reconnecting from " LSN_FMT, why, LSN_ARGS(ckpt_confirmed(r->ckpt)));
    /*
     * Let what is in flight be acknowledged first, so that the replay starts as late
     * as possible (fewer duplicates).
     */
    sink_flush(r->sink, (int)r->cfg->kafka.shutdown_timeout_ms);
    drop_connection(r, false);
    schedule_retry(r);
}

static void try_connect(struct relay *r)
{
    char err[1024];
    lsn_t start = ckpt_confirmed(r->ckpt);
    int rc = repl_open(r->cfg, start, &r->conn, &r->info, err, sizeof(err));

    if (rc == -EPERM) {
        set_fatal(r, "%s", err);
        return;
    }
    if (rc < 0) {
        log_warn("%s; retrying in %lld ms", err, (long long)r->retry_delay_ms);
        schedule_retry(r);
        return;
    }
    if (!r->fmt) {
        char source[256];

        /* CloudEvents "source": which database and table the event came from. */
        snprintf(source, sizeof(source), "/%s/%s.%s", r->info.dbname, r->cfg->outbox.schema,
                 r->cfg->outbox.table);
        r->fmt = formatter_new(r->cfg->kafka.topic, source, err, sizeof(err));
        if (!r->fmt) {
            set_fatal(r, "%s", err);
            drop_connection(r, false);
            return;
        }
    }
    r->retry_delay_ms = RETRY_MIN_MS;
    /* The server has nothing for us before the start position: the ring is empty. */
    ckpt_keepalive(r->ckpt, r->info.start_lsn);
    r->received = r->info.start_lsn;
    r->sent_flush = r->info.slot_confirmed;
    r->last_status_ms = 0;
    r->reply_due = false;
    log_info("streaming from slot \"%s\" at " LSN_FMT " (system %s, timeline %u, database "
             "\"%s\")",
             r->cfg->postgres.slot, LSN_ARGS(r->info.start_lsn), r->info.system_id,
             r->info.timeline, r->info.dbname);
}

/* Stop with a clear message naming the row: nothing is skipped silently. */
static void bad_row(struct relay *r, const struct event *ev, const char *why)
{
    char msg[1024];
    int idlen = ev->id.p ? (int)(ev->id.len < 64 ? ev->id.len : 64) : 6;

    snprintf(msg, sizeof(msg),
             "bad outbox row id \"%.*s\" in transaction %u at " LSN_FMT ": %s; stopping "
             "without confirming past it",
             idlen, ev->id.p ? ev->id.p : "(null)", r->pos.xid, LSN_ARGS(r->pos.commit_lsn),
             why);
    set_fatal(r, "%s", msg);
}

static void handle_insert(struct relay *r, const struct pgo_insert *ins)
{
    const struct rel_desc *rel = relcache_get(r->rels, ins->relid);
    struct event ev;
    struct out_msg msg;
    char err[512];
    int rc;

    if (!rel) {
        set_fatal(r, "%s", "protocol error: insert for a relation never described");
        return;
    }
    if (!rel->is_outbox)
        return; /* another table in a shared publication: not ours */
    if (!r->in_txn) {
        set_fatal(r, "%s", "protocol error: insert outside a transaction");
        return;
    }
    if (event_from_outbox_row(rel, &ins->newtuple, &r->pos, &ev, err, sizeof(err)) < 0 ||
        formatter_render(r->fmt, &ev, &msg, err, sizeof(err)) < 0) {
        bad_row(r, &ev, err);
        return;
    }
    while ((rc = sink_produce(r->sink, &msg, r->txn_seq, err, sizeof(err))) == -EAGAIN) {
        /* librdkafka's queue is full despite our limit: let deliveries drain it. */
        sink_poll(r->sink);
        usleep(1000);
    }
    if (rc < 0) {
        bad_row(r, &ev, err);
        return;
    }
    ckpt_add_event(r->ckpt);
    r->produced++;
    r->pos.index++;
}

/* One pgoutput message. */
static void handle_message(struct relay *r, const char *data, size_t len)
{
    struct pgo_msg m;
    char err[512];

    if (pgo_decode(r->dec, data, len, false, &m, err, sizeof(err)) < 0) {
        set_fatal(r, "cannot decode pgoutput message: %s", err);
        return;
    }
    switch (m.kind) {
    case PGO_BEGIN:
        if (ckpt_begin(r->ckpt, &r->txn_seq) < 0) {
            set_fatal(r, "%s", "protocol error: begin inside a transaction");
            return;
        }
        r->in_txn = true;
        r->pos.commit_lsn = m.u.begin.final_lsn;
        r->pos.xid = m.u.begin.xid;
        r->pos.commit_time_us = pgo_timestamp_to_unix_us(m.u.begin.commit_time);
        r->pos.index = 0;
        break;
    case PGO_COMMIT:
        if (ckpt_commit(r->ckpt, m.u.commit.end_lsn) < 0) {
            set_fatal(r, "%s", "protocol error: commit outside a transaction");
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
    default:
        /*
         * Type, Origin, Update, Delete, Truncate and non-outbox messages carry nothing
         * for the outbox: the publication publishes inserts only.
         */
        break;
    }
}

/* kafka.max_inflight_events reached: stop reading WAL until acknowledgements arrive. */
static bool backpressured(const struct relay *r)
{
    return ckpt_inflight_events(r->ckpt) >= (uint64_t)r->cfg->kafka.max_inflight_events;
}

/* Drain every complete frame libpq has buffered, unless back-pressured. */
static void read_stream(struct relay *r)
{
    struct wal_frame f;
    char err[512];
    int rc;

    while (r->conn && !r->fatal && !r->rebuild && !backpressured(r) &&
           !(r->stopping && !r->in_txn)) {
        rc = repl_read(r->conn, &f, err, sizeof(err));
        if (rc == 0)
            return;
        if (rc < 0) {
            source_lost(r, err);
            return;
        }
        if (f.type == 'w') {
            if (f.data_start > r->received)
                r->received = f.data_start;
            handle_message(r, f.data, f.len);
        } else {
            /* Keepalive: with nothing in flight, everything up to wal_end is done. */
            if (f.wal_end > r->received && !r->in_txn && ckpt_inflight_txns(r->ckpt) == 0)
                r->received = f.wal_end;
            ckpt_keepalive(r->ckpt, f.wal_end);
            if (f.reply_requested)
                r->reply_due = true;
        }
    }
}

/* Back-pressured, the relay reads no keepalive requests: it answers in advance. */
#define STATUS_BACKPRESSURE_MS 1000

/*
 * How long the relay may stay silent.  While back-pressured it cannot see the
 * walsender's keepalive requests (they sit behind unread data), so it reports at
 * least every second, which keeps any wal_sender_timeout of 2 s or more from
 * tripping.
 */
static int64_t status_period(const struct relay *r)
{
    int64_t p = r->cfg->postgres.status_interval_ms;

    return backpressured(r) && p > STATUS_BACKPRESSURE_MS ? STATUS_BACKPRESSURE_MS : p;
}

static void send_status(struct relay *r, bool force)
{
    lsn_t flush = ckpt_confirmed(r->ckpt);
    int64_t now = now_ms();
    char err[512];

    if (!r->conn)
        return;
    if (!force && !r->reply_due &&
        !(flush != r->sent_flush && now - r->last_status_ms >= STATUS_MIN_INTERVAL_MS) &&
        now - r->last_status_ms < status_period(r))
        return;
    if (repl_send_status(r->conn, r->received > flush ? r->received : flush, flush, false, err,
                         sizeof(err)) < 0) {
        source_lost(r, err);
        return;
    }
    if (flush != r->sent_flush)
        log_debug("confirmed " LSN_FMT " (%llu events delivered)", LSN_ARGS(flush),
                  (unsigned long long)r->delivered);
    r->sent_flush = flush;
    r->last_status_ms = now;
    r->reply_due = false;
}

/* Tear down to the confirmed position after a failed delivery; replay from the slot. */
static void rebuild(struct relay *r)
{
    char err[512];

    log_warn("rebuilding the pipeline: replaying from " LSN_FMT,
             LSN_ARGS(ckpt_confirmed(r->ckpt)));
    send_status(r, true);
    drop_connection(r, false);
    if (sink_reset(r->sink, err, sizeof(err)) < 0) {
        set_fatal(r, "%s", err);
        return;
    }
    r->rebuild = false;
    r->retry_at_ms = 0;
}

static int poll_timeout(const struct relay *r)
{
    int64_t t = 1000, now = now_ms();

    if (!r->conn) {
        t = r->retry_at_ms - now;
    } else {
        int64_t due = r->last_status_ms + status_period(r) - now;

        if (due < t)
            t = due;
        if (ckpt_confirmed(r->ckpt) != r->sent_flush && t > STATUS_MIN_INTERVAL_MS)
            t = STATUS_MIN_INTERVAL_MS;
    }
    if (t < 0)
        t = 0;
    if (t > 1000)
        t = 1000;
    return (int)t;
}

/*
 * Whether the loop is done.  A stop request lets the transaction being received
 * finish (within kafka.shutdown_timeout), so that its events are confirmed and a
 * restart after a clean stop replays nothing.
 */
static bool loop_done(const struct relay *r)
{
    if (r->fatal)
        return true;
    if (!r->stopping)
        return false;
    return !r->conn || !r->in_txn || now_ms() >= r->stop_deadline_ms;
}

static void loop(struct relay *r)
{
    while (!loop_done(r)) {
        struct pollfd fds[3];
        int nfds = 2;
        char err[512];

        if (!r->conn && !r->stopping && now_ms() >= r->retry_at_ms) {
            try_connect(r);
            continue;
        }
        fds[0] = (struct pollfd){.fd = r->stop_fd, .events = r->stopping ? 0 : POLLIN};
        fds[1] = (struct pollfd){.fd = sink_fd(r->sink), .events = POLLIN};
        if (r->conn) {
            fds[2] = (struct pollfd){.fd = repl_socket(r->conn), .events = POLLIN};
            if (repl_want_write(r->conn))
                fds[2].events |= POLLOUT;
            nfds = 3;
        }
        if (poll(fds, (nfds_t)nfds, poll_timeout(r)) < 0 && errno != EINTR) {
            set_fatal(r, "poll: %s", strerror(errno));
            break;
        }
        if (fds[0].revents && !r->stopping) {
            char buf[16];

            while (read(r->stop_fd, buf, sizeof(buf)) > 0)
                ;
            r->stopping = true;
            r->stop_deadline_ms = now_ms() + r->cfg->kafka.shutdown_timeout_ms;
            if (r->in_txn)
                log_info("stopping after the current transaction (%u)", r->pos.xid);
            continue;
        }
        if (fds[1].revents)
            sink_drain_fd(r->sink);
        sink_poll(r->sink);
        if (sink_fatal(r->sink))
            r->rebuild = true;
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
        if (r->conn && !r->fatal)
            send_status(r, false);
    }
}

/* Stop reading, flush what is in flight, confirm what was acknowledged, close. */
static void shutdown_pipeline(struct relay *r)
{
    int left;

    left = sink_flush(r->sink, (int)r->cfg->kafka.shutdown_timeout_ms);
    if (left > 0)
        log_warn("%d events still unacknowledged at shutdown: they will be replayed", left);
    if (r->conn) {
        send_status(r, true);
        drop_connection(r, r->conn != NULL);
    }
    log_info("stopped: %llu events produced, %llu delivered, confirmed " LSN_FMT,
             (unsigned long long)r->produced, (unsigned long long)r->delivered,
             LSN_ARGS(ckpt_confirmed(r->ckpt)));
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

    r.ckpt = ckpt_new(LSN_INVALID);
    r.dec = pgo_decoder_new();
    r.rels = relcache_new(cfg->outbox.schema, cfg->outbox.table);
    if (!r.ckpt || !r.dec || !r.rels) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    r.sink = sink_kafka_new(cfg, on_report, &r, errstr, errstr_size);
    if (!r.sink)
        goto out;

    loop(&r);
    shutdown_pipeline(&r);
    if (r.fatal) {
        snprintf(errstr, errstr_size, "%s", r.errstr);
        goto out;
    }
    rc = 0;

out:
    sink_free(r.sink);
    formatter_free(r.fmt);
    relcache_free(r.rels);
    pgo_decoder_free(r.dec);
    ckpt_free(r.ckpt);
    return rc;
}

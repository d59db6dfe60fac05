/*
 * source_repl.c -- the logical replication source: pgoutput from a slot, into the
 * pipeline.
 *
 * It adds to the pipeline's poll() loop the replication socket and, while it has a
 * query out, the side connection's (state record, heartbeat).  Each turn:
 *
 *   1. connects when due (replication.c does the setup: publication, slot, history
 *      check, START_REPLICATION);
 *   2. while the pipeline is reading, drains every complete CopyData frame libpq
 *      holds: pgoutput message -> event -> pipeline_event(), transaction boundaries
 *      -> pipeline_begin() / pipeline_commit();
 *   3. records the acknowledged position in the state table (history check), then
 *      sends a standby status update confirming no further than the record, when
 *      the position moved, when the server asked for one, or when the period passed
 *      (flow.c holds the rules).
 *
 * Back-pressured, the source does not even poll the socket for input, so TCP pushes
 * back on the walsender and the backlog stays in PostgreSQL, not in our memory;
 * status updates go out every second, which keeps wal_sender_timeout from tripping
 * although the walsender's keepalive requests sit unread behind the data.
 *
 * Failures never guess.  A lost connection lets what is in flight be acknowledged and
 * reconnects from the checkpoint; a rebuild (the pipeline's, after a failed delivery)
 * closes the connection and replays from the slot; a row that cannot become an event
 * goes to pipeline_bad_input(), which sets it aside or stops, by
 * pipeline.on_bad_event.
 */
#include "source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "deadletter.h"
#include "event.h"
#include "flow.h"
#include "history.h"
#include "jsonbuf.h"
#include "log.h"
#include "observe.h"
#include "pgoutput.h"
#include "pipeline.h"
#include "replication.h"

/* First reconnection delay; doubles up to postgres.retry_interval. */
#define RETRY_MIN_MS 100
/* How long a graceful close may wait for the server's answer. */
#define CLOSE_TIMEOUT_MS 2000

struct repl_source {
    const struct relay_config *cfg;
    pipeline *p;

    pgo_decoder *dec;
    relcache *rels;
    struct jbuf msgbuf;       /* unescaped strings of the logical message being handled */
    const char **cdc_schemas; /* cdc.tables, as the relation cache wants them */
    const char **cdc_tables;
    char **cdc_keys;          /* their primary keys, as replication found them */

    repl_conn *conn;
    struct repl_info info;    /* of the current (or last) connection */
    bool have_info;
    int64_t retry_at_ms;      /* when to try connecting again */
    struct flow_backoff retry;

    struct event_pos pos;     /* of the transaction being received */

    lsn_t received;           /* highest WAL position received: the "write" we report */
    lsn_t sent_flush;         /* the flush position last reported */
    int64_t last_status_ms;
    bool reply_due;           /* the server asked for a status update */
    lsn_t server_wal_end;     /* the server's WAL end, as its last frame said */

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
    uint64_t hb_produced;     /* events_received at the last beat */
    bool lag_warned;
    lsn_t state_lsn;          /* recorded in the state table: confirm no further... */
    bool server_stopping;     /* ...unless the server refuses connections while shutting
                                 down: see flow_confirmable() */
    lsn_t unrecorded;         /* the highest position confirmed without a record */
    int64_t side_retry_at_ms; /* after a failed connect: not before this */
    struct flow_backoff side_retry;
    lsn_t state_sending;      /* the position being written */
    int64_t state_sent_ms;    /* when the last write was sent */
    uint64_t state_delivered; /* events_published at the last write */
};

static void source_lost(struct repl_source *r, const char *why);

/*
 * Confirming
 */

/* The position the relay may confirm to the slot (flow_confirmable()). */
static lsn_t confirmable(struct repl_source *r)
{
    struct flow_confirm c = {
        .acked = pipeline_confirmed(r->p),
        .recorded = r->state_lsn,
        .history_check = r->cfg->postgres.history_check != 0,
        .reply_due = r->reply_due,
        .server_stopping = r->server_stopping,
        .idle = !pipeline_in_txn(r->p) && pipeline_inflight_txns(r->p) == 0,
    };

    return flow_confirmable(&c);
}

static bool reading(const struct repl_source *r)
{
    return r->conn && pipeline_reading(r->p);
}

static int64_t status_period(const struct repl_source *r)
{
    return flow_status_period(r->cfg->postgres.status_interval_ms, reading(r));
}

static int64_t status_min_interval(const struct repl_source *r)
{
    return flow_status_min_interval(pipeline_caught_up(r->p));
}

static void send_status(struct repl_source *r, bool force)
{
    lsn_t flush = confirmable(r);
    int64_t now = pipeline_now_ms();
    char err[512];

    if (!r->conn)
        return;
    if (!flow_status_due(force, r->reply_due, flush != r->sent_flush, now - r->last_status_ms,
                         status_min_interval(r), status_period(r)))
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
                  (unsigned long long)pipeline_metrics(r->p)->events_published);
    r->sent_flush = flush;
    r->last_status_ms = now;
    r->reply_due = false;
}

/*
 * Connecting
 */

/* Close the connection; the pipeline forgets what was in flight separately. */
static bool drop_connection(struct repl_source *r, bool graceful)
{
    bool ok = repl_close(r->conn, graceful, CLOSE_TIMEOUT_MS);

    r->conn = NULL;
    return ok;
}

static void schedule_retry(struct repl_source *r)
{
    r->retry.max_ms = r->cfg->postgres.retry_interval_ms;
    r->retry_at_ms = pipeline_now_ms() + flow_backoff_next(&r->retry, pipeline_random());
}

/*
 * A transient source failure: let what is in flight be acknowledged (so the replay
 * starts as late as possible), close, and reconnect after a pause.  Whatever the sink
 * does not acknowledge within pipeline.shutdown_timeout is purged, so the replay
 * cannot pile new messages on top of old ones.
 */
static void source_lost(struct repl_source *r, const char *why)
{
    log_warn("%s; reconnecting", why);
    pipeline_drain(r->p);
    drop_connection(r, false);
    pipeline_forget(r->p);
    if (!pipeline_stopping(r->p))
        schedule_retry(r);
}

static void try_connect(struct repl_source *r)
{
    char err[1024];
    struct repl_info info;
    int rc = repl_open(r->cfg, pipeline_confirmed(r->p), r->unrecorded,
                       r->have_info ? &r->info : NULL, r->cdc_keys, &r->conn, &info, err,
                       sizeof(err));

    if (rc == -EPERM) {
        pipeline_fatal(r->p, "%s", err);
        return;
    }
    if (rc < 0) {
        schedule_retry(r);
        log_warn("%s; retrying in %lld ms", err,
                 (long long)(r->retry_at_ms - pipeline_now_ms()));
        return;
    }
    if (r->have_info)
        pipeline_metrics(r->p)->reconnects++;
    r->info = info;
    r->have_info = true;
    if (pipeline_set_database(r->p, info.dbname) < 0) {
        drop_connection(r, false);
        return;
    }
    flow_backoff_reset(&r->retry);
    pipeline_source_started(r->p, info.start_lsn, info.hint_ignored);
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

/*
 * Decoding
 */

/* The row cannot become an event: the pipeline sets it aside or stops. */
static void bad_row(struct repl_source *r, const struct event *ev, const struct rel_desc *rel,
                    const struct pgo_tuple *tuple, const char *why)
{
    char what[300] = "outbox row";
    struct bad_input b = {
        .reason = DL_BAD_ROW,
        .error = why,
        .ev = ev,
        .rel = rel,
        .tuple = tuple,
        .pos = r->pos,
        .what = what,
    };

    if (rel->is_cdc)
        snprintf(what, sizeof(what), "change of table \"%s.%s\"", rel->nspname, rel->relname);
    pipeline_bad_input(r->p, &b);
    r->pos.index++;
}

/* Hand an event to the pipeline; its index in the transaction counts it. */
static void publish(struct repl_source *r, const struct event *ev)
{
    pipeline_event(r->p, ev);
    r->pos.index++;
}

/* A table-less outbox event: pg_logical_emit_message(true, prefix, json). */
static void handle_logical_message(struct repl_source *r, const struct pgo_message *m)
{
    struct event ev;
    char err[512];

    if (strcmp(m->prefix, r->cfg->outbox.messages_prefix) != 0)
        return; /* somebody else's message */
    if (!m->transactional || !pipeline_in_txn(r->p)) {
        /* Not part of a transaction: no commit position to confirm it by. */
        log_warn("ignoring non-transactional message with prefix \"%s\" at " LSN_FMT
                 ": use pg_logical_emit_message(true, ...)",
                 m->prefix, LSN_ARGS(m->lsn));
        return;
    }
    memset(&ev, 0, sizeof(ev));
    if (event_from_message(m->content, m->content_len, &r->pos, &r->msgbuf, &ev, err,
                           sizeof(err)) < 0) {
        struct bad_input b = {
            .reason = DL_BAD_MESSAGE,
            .error = err,
            .ev = &ev,
            .raw = m->content,
            .raw_len = m->content_len,
            .pos = r->pos,
            .what = "outbox message",
        };

        pipeline_bad_input(r->p, &b);
        r->pos.index++;
        return;
    }
    publish(r, &ev);
}

/* A change of a cdc table. */
static void handle_change(struct repl_source *r, const struct rel_desc *rel, char op,
                          const struct pgo_tuple *newtuple, char old_kind,
                          const struct pgo_tuple *oldtuple)
{
    struct event ev;
    char err[512];

    if (!pipeline_in_txn(r->p)) {
        pipeline_fatal(r->p, "protocol error: change outside a transaction after " LSN_FMT,
                       LSN_ARGS(r->received));
        return;
    }
    memset(&ev, 0, sizeof(ev));
    if (event_from_change(rel, op, newtuple, old_kind, oldtuple, &r->pos, &ev, err,
                          sizeof(err)) < 0) {
        bad_row(r, &ev, rel, newtuple ? newtuple : oldtuple, err);
        return;
    }
    publish(r, &ev);
}

/* The description of relid; a relation never described is a protocol error. */
static const struct rel_desc *relation(struct repl_source *r, pgo_oid_t relid)
{
    const struct rel_desc *rel = relcache_get(r->rels, relid);

    if (!rel)
        pipeline_fatal(r->p,
                       "protocol error: change of relation %u, never described, at " LSN_FMT,
                       relid, LSN_ARGS(r->pos.commit_lsn));
    return rel;
}

static void handle_insert(struct repl_source *r, const struct pgo_insert *ins)
{
    const struct rel_desc *rel = relation(r, ins->relid);
    struct event ev;
    char err[512];

    if (!rel)
        return;
    if (rel->is_cdc) {
        handle_change(r, rel, 'c', &ins->newtuple, 0, NULL);
        return;
    }
    if (!rel->is_outbox)
        return; /* another table in a shared publication: not ours */
    if (!pipeline_in_txn(r->p)) {
        pipeline_fatal(r->p, "protocol error: insert outside a transaction after " LSN_FMT,
                       LSN_ARGS(r->received));
        return;
    }
    memset(&ev, 0, sizeof(ev));
    if (event_from_outbox_row(rel, &ins->newtuple, &r->pos, &ev, err, sizeof(err)) < 0) {
        bad_row(r, &ev, rel, &ins->newtuple, err);
        return;
    }
    publish(r, &ev);
}

/* One pgoutput message. */
static void handle_message(struct repl_source *r, const char *data, size_t len)
{
    struct pgo_msg m;
    char err[512];

    if (pgo_decode(r->dec, data, len, false, &m, err, sizeof(err)) < 0) {
        pipeline_fatal(r->p, "cannot decode pgoutput message after " LSN_FMT ": %s",
                       LSN_ARGS(r->received), err);
        return;
    }
    switch (m.kind) {
    case PGO_BEGIN:
        r->pos.system_id = r->info.system_id;
        r->pos.timeline = r->info.timeline;
        r->pos.commit_lsn = m.u.begin.final_lsn;
        r->pos.xid = m.u.begin.xid;
        r->pos.commit_time_us = pgo_timestamp_to_unix_us(m.u.begin.commit_time);
        r->pos.index = 0;
        pipeline_begin(r->p, &r->pos);
        break;
    case PGO_COMMIT:
        pipeline_commit(r->p, m.u.commit.end_lsn);
        break;
    case PGO_RELATION:
        if (relcache_update(r->rels, &m.u.relation, err, sizeof(err)) < 0)
            pipeline_fatal(r->p, "%s", err);
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
        for (uint32_t i = 0; i < m.u.truncate.nrelids && !pipeline_failed(r->p); i++) {
            const struct rel_desc *rel = relation(r, m.u.truncate.relids[i]);

            if (rel && rel->is_cdc)
                handle_change(r, rel, 't', NULL, 0, NULL);
        }
        break;
    default:
        /* Type and Origin carry nothing for the relay. */
        break;
    }
}

/* Drain every complete frame libpq has buffered, while reading. */
static void read_stream(struct repl_source *r)
{
    struct wal_frame f;
    char err[512];
    int rc;

    while (reading(r)) {
        rc = repl_read(r->conn, &f, err, sizeof(err));
        if (rc == 0)
            return;
        if (rc == -EBADMSG) {
            pipeline_fatal(r->p, "bad replication frame after " LSN_FMT ": %s",
                           LSN_ARGS(r->received), err);
            return;
        }
        if (rc == -EPERM) {
            pipeline_fatal(r->p, "%s", err);
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
            if (f.wal_end > r->received && !pipeline_in_txn(r->p) &&
                pipeline_inflight_txns(r->p) == 0) {
                r->received = f.wal_end;
                /* Nothing in flight: every commit up to now is done (source lag 0). */
                metrics_note_caught_up(pipeline_metrics(r->p), observe_now_us());
            }
            pipeline_keepalive(r->p, f.wal_end);
            if (f.reply_requested)
                r->reply_due = true;
        }
    }
}

/*
 * The side connection: heartbeats and the state record
 */

static void side_close(struct repl_source *r, const char *why)
{
    if (why)
        log_warn("side connection: %s", why);
    if (r->side)
        PQfinish(r->side);
    r->side = NULL;
    r->side_job = SIDE_IDLE;
}

/* The side connection, opened when needed; NULL (and a warning) when it cannot be. */
static PGconn *side_conn(struct repl_source *r)
{
    char err[512];

    if (r->side)
        return r->side;
    if (pipeline_now_ms() < r->side_retry_at_ms)
        return NULL;
    /* A refusal because the server is shutting down: the evidence flow_confirmable() wants. */
    r->side = repl_connect_side(r->cfg->postgres.dsn, "outbox-relay-side", &r->server_stopping,
                                err, sizeof(err));
    if (r->side) {
        PQsetnonblocking(r->side, 1);
        flow_backoff_reset(&r->side_retry);
        return r->side;
    }
    r->side_retry.max_ms = r->cfg->postgres.retry_interval_ms;
    r->side_retry_at_ms = pipeline_now_ms() + flow_backoff_next(&r->side_retry, pipeline_random());
    side_close(r, err);
    return NULL;
}

/* Send a heartbeat if one is due and the outbox was idle. */
static void heartbeat_send(struct repl_source *r)
{
    struct relay_metrics *m = pipeline_metrics(r->p);
    char sql[512];
    char *slot;

    if (r->cfg->postgres.heartbeat_interval_ms == 0 || !r->conn || r->side_job != SIDE_IDLE ||
        pipeline_now_ms() < r->hb_due_ms)
        return;
    r->hb_due_ms = pipeline_now_ms() + r->cfg->postgres.heartbeat_interval_ms;
    if (m->events_received != r->hb_produced) {
        r->hb_produced = m->events_received; /* events flowed: they advance the slot */
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
    m->heartbeats++;
}

/* The heartbeat's answer: warn about slot lag. */
static void heartbeat_done(struct repl_source *r, const PGresult *res)
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
 * The statement that records lsn for the slot (history_record_sql(): the same one
 * replication.c writes the first record with).  Returns 0, or -1 when out of memory.
 */
static int state_statement(const struct repl_source *r, PGconn *conn, lsn_t lsn, char *sql,
                           size_t sqlsize)
{
    char *table = repl_quote_table(conn, r->cfg->postgres.state_schema,
                                   r->cfg->postgres.state_table);
    char *slot = PQescapeLiteral(conn, r->cfg->postgres.slot, strlen(r->cfg->postgres.slot));
    char *sys = PQescapeLiteral(conn, r->info.system_id, strlen(r->info.system_id));
    int rc = -1;

    if (table && slot && sys)
        rc = history_record_sql(sql, sqlsize, table, slot, sys, r->info.timeline, lsn) < 0 ? -1
                                                                                          : 0;
    free(table);
    PQfreemem(slot);
    PQfreemem(sys);
    return rc;
}

/* Record the acknowledged position in the state table, when flow_state_interval() says. */
static void state_send(struct repl_source *r)
{
    lsn_t c = pipeline_confirmed(r->p);
    int64_t now = pipeline_now_ms(), every;
    char sql[1024];
    uint64_t published = pipeline_metrics(r->p)->events_published;

    if (!r->cfg->postgres.history_check || !r->conn || r->side_job != SIDE_IDLE ||
        c <= r->state_lsn)
        return;
    every = flow_state_interval(published != r->state_delivered, pipeline_caught_up(r->p),
                                c - r->state_lsn, r->reply_due,
                                r->cfg->postgres.status_interval_ms);
    if (now - r->state_sent_ms < every || !side_conn(r))
        return;
    if (state_statement(r, r->side, c, sql, sizeof(sql)) < 0)
        return;
    if (!PQsendQuery(r->side, sql)) {
        side_close(r, PQerrorMessage(r->side));
        return;
    }
    r->side_job = SIDE_STATE;
    r->state_sending = c;
    r->state_sent_ms = now;
    r->state_delivered = published;
}

static void state_done(struct repl_source *r, const PGresult *res)
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
static void side_receive(struct repl_source *r)
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
static void state_flush(struct repl_source *r)
{
    lsn_t c = pipeline_confirmed(r->p);
    char sql[1024];
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
    if (state_statement(r, r->side, c, sql, sizeof(sql)) < 0)
        return;
    r->state_sending = c;
    res = PQexec(r->side, sql);
    state_done(r, res);
    PQclear(res);
}

/*
 * The source's operations (pipeline.h)
 */

static size_t repl_pollfds(void *src, struct pollfd *fds, size_t max)
{
    struct repl_source *r = src;
    size_t n = 0;

    if (r->conn && n < max)
        /* Not reading: leave the data in the socket, so TCP pushes back. */
        fds[n++] = (struct pollfd){.fd = repl_socket(r->conn),
                                   .events = (short)((reading(r) ? POLLIN : 0) |
                                                     (repl_want_write(r->conn) ? POLLOUT : 0))};
    if (r->side && r->side_job != SIDE_IDLE && n < max)
        fds[n++] = (struct pollfd){.fd = PQsocket(r->side), .events = POLLIN};
    return n;
}

static int64_t repl_timeout(void *src, int64_t now)
{
    struct repl_source *r = src;
    int64_t t = 1000;

    if (!r->conn)
        return pipeline_stopping(r->p) ? 1000 : r->retry_at_ms - now;
    t = r->last_status_ms + status_period(r) - now;
    if ((confirmable(r) != r->sent_flush || pipeline_confirmed(r->p) > r->state_lsn) &&
        t > status_min_interval(r))
        t = status_min_interval(r);
    return t;
}

static void repl_turn(void *src, const struct pollfd *fds, size_t n)
{
    struct repl_source *r = src;
    char err[512];
    short conn_ev = 0;

    if (!r->conn) {
        if (!pipeline_stopping(r->p) && pipeline_now_ms() >= r->retry_at_ms)
            try_connect(r);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (fds[i].fd == repl_socket(r->conn))
            conn_ev = fds[i].revents;
        else if (r->side && fds[i].fd == PQsocket(r->side) && fds[i].revents)
            side_receive(r);
    }
    if ((conn_ev & (POLLIN | POLLERR | POLLHUP)) && repl_consume(r->conn, err, sizeof(err)) < 0) {
        source_lost(r, err);
        return;
    }
    if ((conn_ev & POLLOUT) && repl_flush(r->conn, err, sizeof(err)) < 0) {
        source_lost(r, err);
        return;
    }
    read_stream(r);
    if (r->conn && !pipeline_failed(r->p)) {
        state_send(r);
        send_status(r, false);
        heartbeat_send(r);
    }
}

static void repl_rebuild(void *src)
{
    struct repl_source *r = src;

    send_status(r, true);
    drop_connection(r, r->conn != NULL);
    r->retry_at_ms = 0;
}

static bool repl_busy(const void *src)
{
    const struct repl_source *r = src;

    return r->conn && pipeline_in_txn(r->p);
}

static bool repl_live(const void *src)
{
    return ((const struct repl_source *)src)->conn != NULL;
}

static const char *repl_not_ready(const void *src)
{
    const struct repl_source *r = src;

    if (r->conn)
        return NULL;
    return r->have_info ? "reconnecting to postgresql (or waiting for the replication slot)"
                        : "connecting to postgresql (or waiting for the replication slot)";
}

static void repl_refresh(void *src, struct relay_metrics *m)
{
    struct repl_source *r = src;

    m->confirmed_lsn = r->sent_flush;
    /* The server's WAL end, as the stream's frames and the heartbeats last said. */
    if (r->have_info)
        m->slot_lag_bytes = r->server_wal_end > r->sent_flush
                                ? (int64_t)(r->server_wal_end - r->sent_flush)
                                : 0;
}

/* Confirm what was acknowledged and close. */
static void repl_shutdown(void *src, bool fatal)
{
    struct repl_source *r = src;

    (void)fatal;
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
    log_info("confirmed " LSN_FMT " to slot \"%s\"", LSN_ARGS(confirmable(r)),
             r->cfg->postgres.slot);
}

static const struct source_ops repl_ops = {
    .name = "replication",
    .pollfds = repl_pollfds,
    .timeout = repl_timeout,
    .turn = repl_turn,
    .rebuild = repl_rebuild,
    .busy = repl_busy,
    .live = repl_live,
    .not_ready = repl_not_ready,
    .refresh = repl_refresh,
    .shutdown = repl_shutdown,
};

int source_repl_run(const struct relay_config *cfg, int stop_fd, char *errstr,
                    size_t errstr_size)
{
    struct repl_source r;
    int rc = -1;

    memset(&r, 0, sizeof(r));
    r.cfg = cfg;
    r.retry = (struct flow_backoff){RETRY_MIN_MS, cfg->postgres.retry_interval_ms, 0};
    r.side_retry = r.retry;
    jbuf_init(&r.msgbuf);
    if (!(r.dec = pgo_decoder_new())) {
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
    if (!(r.p = pipeline_new(cfg, stop_fd, LSN_INVALID, errstr, errstr_size)))
        goto out;
    rc = pipeline_run(r.p, &repl_ops, &r, errstr, errstr_size);

out:
    side_close(&r, NULL);
    /* The pipeline first: its sink's last reports still reach it. */
    pipeline_free(r.p);
    if (r.conn)
        drop_connection(&r, false);
    relcache_free(r.rels);
    pgo_decoder_free(r.dec);
    jbuf_free(&r.msgbuf);
    free(r.cdc_schemas);
    free(r.cdc_tables);
    for (size_t i = 0; r.cdc_keys && i < cfg->cdc.ntables; i++)
        free(r.cdc_keys[i]);
    free(r.cdc_keys);
    return rc;
}

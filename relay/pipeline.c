/*
 * pipeline.c -- the loop every source feeds, and what happens to each event in it.
 *
 * One thread, one poll() over the stop pipe (signal handlers write to it), the sink's
 * wakeup descriptor (librdkafka signals queued delivery reports through it), the
 * source's descriptors and the admin endpoint's.  Each turn:
 *
 *   1. serves the sink's reports: the checkpoint tracker learns what was acknowledged,
 *      a failed delivery asks for a rebuild, an undeliverable event is set aside;
 *   2. rebuilds when asked: the source forgets what it received after the
 *      checkpoint, the sink drops what it holds, and reading resumes after a backoff
 *      (doubling from 100 ms to postgres.retry_interval, with jitter, until an
 *      acknowledgement arrives);
 *   3. gives the source its turn: it reads (unless back-pressured), turning what it
 *      reads into pipeline_begin/event/bad_input/commit calls, and confirms what
 *      pipeline_confirmed() allows.
 *
 * Back-pressure (pipeline.max_inflight_events events or pipeline.max_inflight_bytes
 * bytes unacknowledged) stops the source from reading; reports keep being served.
 *
 * Poison events are set aside, never a halt (docs/events.md, "Bad input").  An event
 * that cannot be rendered, whose destination the sink does not take, that the sink
 * finds too large, or that the broker refuses for good becomes a dead-letter record
 * (deadletter.h) sent to the sink's dead-letter destination (kafka.dlq_topic) or
 * written to dead_letter.table -- and the tracker counts the record, not the event:
 * the source position moves past the event only once its record is acknowledged or
 * committed.  With pipeline.on_bad_event "stop", or no dead-letter destination, the
 * relay stops instead, without confirming past the event.
 *
 * The shutdown: a stop request lets the source finish the transaction it is
 * receiving, then waits for the sink to acknowledge everything in flight, all within
 * pipeline.shutdown_timeout and all while the source keeps confirming; then the
 * source confirms and closes.  A second signal cuts the wait short.
 */
#include "pipeline.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cdcjson.h"
#include "checkpoint.h"
#include "deadletter.h"
#include "format.h"
#include "inflight.h"
#include "jsonbuf.h"
#include "log.h"
#include "observe.h"
#include "replication.h"
#include "sink.h"

/* The first wait after a rebuild; doubles up to postgres.retry_interval. */
#define REBUILD_BACKOFF_MIN_MS 100

struct pipeline {
    const struct relay_config *cfg;
    const struct sink_type *type;
    int stop_fd;
    bool stopping;
    int64_t stop_deadline_ms;

    sink *sink;
    ckpt_tracker *ckpt;
    inflight_table *inflight;
    formatter *fmt;
    struct observer obs;

    const struct source_ops *ops;
    void *src;

    bool in_txn;
    uint64_t txn_seq;

    char dest_ok[FORMAT_TOPIC_MAX + 1]; /* the last destination the sink's rules took */

    bool rebuild;
    struct flow_backoff backoff;
    int64_t resume_at_ms; /* after a rebuild: no reading before this; 0 once passed */
    int left_after_drain; /* pipeline_drain(): messages the sink still held */

    /* Dead letters: where they go, and what rendering them needs. */
    bool set_aside;       /* pipeline.on_bad_event: dead-letter (else stop) */
    const char *dl_dest;  /* on the sink; "" none */
    char dl_table[300];   /* dead_letter.table as messages name it, "schema.table"; "" none */
    char *dl_qtable;      /* the same quoted for SQL, once connected */
    const char *dl_source; /* what the records name as their source */
    PGconn *dl_conn;
    struct jbuf dl_value;  /* a row as JSON */
    struct jbuf dl_hdrs;   /* headers as JSON */

    int fatal;
    char errstr[1024];
};

int64_t pipeline_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned pipeline_random(void)
{
    return (unsigned)rand();
}

void pipeline_fatal(pipeline *p, const char *fmt, ...)
{
    va_list ap;

    if (p->fatal)
        return;
    p->fatal = 1;
    va_start(ap, fmt);
    vsnprintf(p->errstr, sizeof(p->errstr), fmt, ap);
    va_end(ap);
}

void pipeline_request_rebuild(pipeline *p, const char *why)
{
    /* A sink that refuses the relay stops it: no replay to announce. */
    if (!p->rebuild && !sink_refused(p->sink))
        log_warn("%s; replaying from " LSN_FMT, why, LSN_ARGS(ckpt_confirmed(p->ckpt)));
    p->rebuild = true;
}

struct relay_metrics *pipeline_metrics(pipeline *p)
{
    return &p->obs.m;
}

bool pipeline_failed(const pipeline *p)
{
    return p->fatal != 0;
}

bool pipeline_rebuild_pending(const pipeline *p)
{
    return p->rebuild;
}

bool pipeline_stopping(const pipeline *p)
{
    return p->stopping;
}

bool pipeline_in_txn(const pipeline *p)
{
    return p->in_txn;
}

/*
 * Dead letters
 */

/* What a message costs while the sink holds it (pipeline.max_inflight_bytes). */
static int64_t msg_cost(const pipeline *p, const struct out_msg *m)
{
    int64_t n = (int64_t)(m->key_len + m->value_len) + p->type->caps.message_overhead;

    for (int i = 0; i < m->nheaders; i++)
        n += (int64_t)(strlen(m->headers[i].name) + m->headers[i].len) +
             p->type->caps.header_overhead;
    return n;
}

static void dl_close(pipeline *p)
{
    PQfinish(p->dl_conn);
    p->dl_conn = NULL;
    free(p->dl_qtable);
    p->dl_qtable = NULL;
}

/*
 * Write rec to dead_letter.table and commit it (synchronous_commit local: durable on
 * the server, and never waiting for the relay's own walsender).  Blocking, which is
 * acceptable for what should be rare.  Returns 0; -EAGAIN when the server cannot be
 * reached (the caller replays, which writes it again: the insert ignores a record
 * already there); -EINVAL for an error that will recur (no such table, no privilege),
 * with errstr set.
 */
static int dl_write_table(pipeline *p, const struct dl_record *rec, char *errstr,
                          size_t errstr_size)
{
    char sql[1024], id[256];
    struct dl_params params;
    struct dl_record r = *rec;
    PGresult *res;
    int rc = 0;

    if (!p->dl_conn) {
        bool stopping;

        p->dl_conn = repl_connect_side(p->cfg->postgres.dsn, "outbox-relay-dead-letter",
                                       &stopping, errstr, errstr_size);
        if (!p->dl_conn)
            return -EAGAIN;
        if (!(p->dl_qtable = repl_quote_table(p->dl_conn, p->cfg->dead_letter.schema,
                                              p->cfg->dead_letter.table))) {
            dl_close(p);
            snprintf(errstr, errstr_size, "out of memory");
            return -EAGAIN;
        }
    }
    /* The id goes as text: a C string, cut at 255 bytes (ids are far shorter). */
    snprintf(id, sizeof(id), "%.*s", (int)(r.event_id_len < 255 ? r.event_id_len : 255),
             r.event_id ? r.event_id : "");
    r.event_id = id;
    r.event_id_len = strlen(id);
    jbuf_reset(&p->dl_hdrs);
    if (r.nheaders > 0) {
        dl_headers_json(r.headers, r.nheaders, &p->dl_hdrs);
        jbuf_putc(&p->dl_hdrs, '\0');
    }
    if (p->dl_hdrs.oom) {
        snprintf(errstr, errstr_size, "out of memory");
        return -EAGAIN;
    }
    if (dl_table_sql(p->dl_qtable, sql, sizeof(sql)) < 0) {
        snprintf(errstr, errstr_size, "dead-letter table name too long");
        return -EINVAL;
    }
    for (bool with_headers = r.nheaders > 0;; with_headers = false) {
        const char *state;

        dl_table_params(&r, p->dl_source, with_headers ? p->dl_hdrs.data : NULL, &params);
        res = PQexecParams(p->dl_conn, sql, DL_TABLE_PARAMS, NULL, params.values,
                           params.lengths, params.formats, 0);
        if (PQresultStatus(res) == PGRES_COMMAND_OK)
            break;
        /*
         * Class 22, a data exception: the one field PostgreSQL may refuse is the headers
         * object (jsonb takes no \u0000; header values are the event's bytes).  The
         * record goes in without them rather than stopping the relay: key, value and
         * the rest are bytea or the relay's own text.
         */
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (with_headers && state && strncmp(state, "22", 2) == 0) {
            repl_first_line(PQresultErrorMessage(res), errstr, errstr_size);
            log_warn("dead-letter record of event \"%s\": headers refused by the table (%s): "
                     "written without them",
                     r.event_id, errstr);
            PQclear(res);
            continue;
        }
        repl_first_line(PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                                                     : PQerrorMessage(p->dl_conn),
                        errstr, errstr_size);
        rc = PQstatus(p->dl_conn) == CONNECTION_OK ? -EINVAL : -EAGAIN;
        if (rc == -EAGAIN)
            dl_close(p);
        break;
    }
    PQclear(res);
    return rc;
}

/* Say what was set aside, where, and why: one warning per event, so nothing is silent. */
static void log_set_aside(const struct dl_record *rec, const char *where)
{
    log_warn("%s: event \"%.*s\" (commit " LSN_FMT ", xid %u, index %u) set aside to %s: %s",
             dl_reason_name(rec->reason), (int)(rec->event_id_len > 128 ? 128 : rec->event_id_len),
             rec->event_id ? rec->event_id : "", LSN_ARGS(rec->commit_lsn), rec->xid, rec->index,
             where, rec->error);
}

static void count_dead_letter(pipeline *p, enum dl_reason reason)
{
    if ((unsigned)reason < DL_NREASONS)
        p->obs.m.dead_letter[reason]++;
}

/* Why the relay stops at a poison event instead of setting it aside. */
static const char *stop_reason(const pipeline *p)
{
    if (p->set_aside)
        return "the dead-letter destination did not take it either";
    if (p->dl_dest[0] || p->dl_table[0])
        return "pipeline.on_bad_event is \"stop\"";
    return "no dead-letter destination is configured";
}

/*
 * Send rec to the dead-letter destination on the sink, under tag (an entry already in
 * flight for the event, whose tracker count it keeps) or, with tag INFLIGHT_NONE, as
 * a new entry of the open transaction.  A record too large with the event's value is
 * sent again without it.  Returns 0 when the sink took it; -EMSGSIZE when it is too
 * large even so, -EACCES when the destination refuses it for good (the caller tries
 * the table); another negative errno, with errstr set, when the sink is in trouble
 * (the caller replays).
 */
static int dl_send(pipeline *p, const struct dl_record *rec, uint64_t tag, char *errstr,
                   size_t errstr_size)
{
    struct dl_record r = *rec;
    struct out_msg msg;
    int rc;

    for (;;) {
        uint64_t t = tag;
        int64_t cost;

        if (dl_render_message(&r, p->dl_dest, &msg) == -E2BIG)
            log_warn("dead-letter record of event \"%.*s\": too many headers, its own dropped",
                     (int)r.event_id_len, r.event_id ? r.event_id : "");
        cost = msg_cost(p, &msg);
        if (t == INFLIGHT_NONE &&
            (t = inflight_add(p->inflight, p->txn_seq, cost, r.event_id, r.event_id_len,
                              r.commit_lsn, r.xid, r.index, 0)) == INFLIGHT_NONE) {
            snprintf(errstr, errstr_size, "out of memory");
            return -ENOMEM;
        }
        {
            struct inflight_msg *m = inflight_get(p->inflight, t);

            m->dead_letter = true;
            m->reason = r.reason;
            inflight_set_bytes(p->inflight, m, cost);
        }
        if ((rc = sink_produce(p->sink, &msg, t, errstr, errstr_size)) == 0) {
            if (tag == INFLIGHT_NONE)
                ckpt_add_event(p->ckpt);
            return 0;
        }
        if (tag == INFLIGHT_NONE)
            inflight_remove(p->inflight, t);
        /* Too large with the value: once more without it. */
        if (rc != -EMSGSIZE || r.value_omitted || !r.value)
            return rc;
        r.value_omitted = true;
    }
}

/*
 * Set an event aside: rec to the sink's dead-letter destination, else (or when that
 * refuses it too) to the table.  tag names the event's entry when it is in flight
 * (a broker's rejection), INFLIGHT_NONE when it never reached the sink.  With neither
 * destination, or on_bad_event "stop", the relay stops; what names the input ("outbox
 * row") when it never became an event, NULL otherwise, for that message.
 */
static void set_aside(pipeline *p, const struct dl_record *rec, uint64_t tag, bool via_sink,
                      const char *what)
{
    struct inflight_msg *m = tag != INFLIGHT_NONE ? inflight_get(p->inflight, tag) : NULL;
    uint64_t txn = m ? m->txn_seq : p->txn_seq;
    char err[512] = "", where[sizeof(p->dl_table) + 300];
    int rc;

    if (!p->set_aside) {
        char pos[128];

        /* Polling has no commit LSN: its position is the transaction and the row's seq. */
        if (rec->commit_lsn != LSN_INVALID)
            snprintf(pos, sizeof(pos), "in transaction %u at " LSN_FMT, rec->xid,
                     LSN_ARGS(rec->commit_lsn));
        else
            snprintf(pos, sizeof(pos), "in transaction %u (seq %u)", rec->xid, rec->index);
        if (what)
            pipeline_fatal(p, "bad %s%s%.*s%s %s: %s; stopping without confirming past it (%s)",
                           what, rec->event_id_len ? " id \"" : "",
                           (int)(rec->event_id_len > 128 ? 128 : rec->event_id_len),
                           rec->event_id ? rec->event_id : "", rec->event_id_len ? "\"" : "",
                           pos, rec->error, stop_reason(p));
        else
            pipeline_fatal(p,
                           "event \"%.*s\" %s cannot be delivered to %s \"%s\": %s; stopping "
                           "without confirming past it (%s)",
                           (int)(rec->event_id_len > 128 ? 128 : rec->event_id_len),
                           rec->event_id ? rec->event_id : "", pos,
                           p->type->caps.destination_word, rec->destination, rec->error,
                           stop_reason(p));
        return;
    }
    if (via_sink && p->dl_dest[0]) {
        if ((rc = dl_send(p, rec, tag, err, sizeof(err))) == 0) {
            snprintf(where, sizeof(where), "%s \"%s\"", p->type->caps.destination_word,
                     p->dl_dest);
            log_set_aside(rec, where);
            return;
        }
        if (rc != -EMSGSIZE && rc != -EACCES) {
            /* The sink is in trouble (queue full, no producer): replay, never skip. */
            char why[700];

            snprintf(why, sizeof(why), "cannot send a dead-letter record to %s \"%s\": %s",
                     p->type->caps.destination_word, p->dl_dest, err);
            if (m)
                ckpt_fail(p->ckpt, txn);
            pipeline_request_rebuild(p, why);
            return;
        }
        if (!p->dl_table[0]) {
            pipeline_fatal(p,
                           "cannot send the dead-letter record of event \"%.*s\" to %s \"%s\": "
                           "%s; stopping without confirming past it",
                           (int)rec->event_id_len, rec->event_id ? rec->event_id : "",
                           p->type->caps.destination_word, p->dl_dest, err);
            return;
        }
    }
    if (!p->dl_table[0]) {
        pipeline_fatal(p,
                       "the dead-letter record of event \"%.*s\" was refused by %s \"%s\" (%s); "
                       "stopping without confirming past it",
                       (int)rec->event_id_len, rec->event_id ? rec->event_id : "",
                       p->type->caps.destination_word, p->dl_dest, rec->error);
        return;
    }
    rc = dl_write_table(p, rec, err, sizeof(err));
    if (rc == -EINVAL) {
        pipeline_fatal(p,
                       "cannot write the dead-letter record of event \"%.*s\" to table %s: %s "
                       "(apply sql/006_dead_letter.sql); stopping without confirming past it",
                       (int)rec->event_id_len, rec->event_id ? rec->event_id : "", p->dl_table,
                       err);
        return;
    }
    if (rc < 0) {
        char why[900]; /* room for the table's name and the whole error */

        snprintf(why, sizeof(why), "cannot write a dead-letter record to table %s: %s",
                 p->dl_table, err);
        if (m)
            ckpt_fail(p->ckpt, txn);
        pipeline_request_rebuild(p, why);
        return;
    }
    snprintf(where, sizeof(where), "table %s", p->dl_table);
    log_set_aside(rec, where);
    count_dead_letter(p, rec->reason);
    if (m) {
        /* The record is durable: it stands for the event in the tracker. */
        ckpt_ack(p->ckpt, txn);
        inflight_remove(p->inflight, tag);
    }
}

/*
 * Reports
 */

static void on_report(void *opaque, const struct sink_report *r)
{
    pipeline *p = opaque;
    struct inflight_msg *m = inflight_get(p->inflight, r->tag);
    char msg[768];

    if (!m)
        return; /* a message of a pipeline already discarded */
    if (!ckpt_holds(p->ckpt, m->txn_seq)) {
        inflight_remove(p->inflight, r->tag); /* its transaction was forgotten: replayed */
        return;
    }
    switch (r->outcome) {
    case SINK_DELIVERED:
        ckpt_ack(p->ckpt, m->txn_seq);
        if (m->dead_letter)
            count_dead_letter(p, m->reason);
        else
            observe_delivered(&p->obs, m->commit_time_us);
        flow_backoff_reset(&p->backoff);
        inflight_remove(p->inflight, r->tag);
        return;
    case SINK_RETRY:
        p->obs.m.publish_errors++;
        ckpt_fail(p->ckpt, m->txn_seq);
        snprintf(msg, sizeof(msg), "delivery of event \"%s\" to %s \"%s\" failed: %s",
                 inflight_id(m), p->type->caps.destination_word,
                 r->destination ? r->destination : "", r->err);
        inflight_remove(p->inflight, r->tag);
        pipeline_request_rebuild(p, msg);
        return;
    case SINK_UNDELIVERABLE:
    default: {
        struct dl_record rec = {
            .reason = r->too_large ? DL_TOO_LARGE : DL_REJECTED,
            .code = r->code,
            .error = r->err,
            .destination = r->msg ? r->msg->topic : "",
            .event_id = inflight_id(m),
            .event_id_len = strlen(inflight_id(m)),
            .key = r->msg ? r->msg->key : NULL,
            .key_len = r->msg ? r->msg->key_len : 0,
            .value = r->msg ? r->msg->value : NULL,
            .value_len = r->msg ? r->msg->value_len : 0,
            .value_omitted = r->too_large,
            .headers = r->msg ? r->msg->headers : NULL,
            .nheaders = r->msg ? r->msg->nheaders : 0,
            .commit_lsn = m->commit_lsn,
            .xid = m->xid,
            .index = m->index,
            .time_us = observe_now_us(),
            .version = RELAY_VERSION,
        };

        p->obs.m.publish_errors++;
        /* The dead-letter copy itself was refused: only the table is left. */
        set_aside(p, &rec, r->tag, !m->dead_letter, NULL);
        return;
    }
    }
}

/*
 * Events in
 */

int pipeline_set_database(pipeline *p, const char *dbname)
{
    char err[512];

    if (p->fmt)
        return 0;
    if (!(p->fmt = formatter_from_config(p->cfg, dbname, err, sizeof(err)))) {
        pipeline_fatal(p, "%s", err);
        return -1;
    }
    return 0;
}

int pipeline_begin(pipeline *p, const struct event_pos *pos)
{
    int rc = ckpt_begin(p->ckpt, &p->txn_seq);

    if (rc < 0) {
        pipeline_fatal(p, "%s at " LSN_FMT,
                       rc == -ENOMEM ? "out of memory" : "protocol error: begin inside a "
                                                         "transaction",
                       LSN_ARGS(pos->commit_lsn));
        return -1;
    }
    ckpt_set_commit_time(p->ckpt, pos->commit_time_us);
    p->in_txn = true;
    return 0;
}

int pipeline_commit(pipeline *p, lsn_t end_lsn)
{
    if (ckpt_commit(p->ckpt, end_lsn) < 0) {
        pipeline_fatal(p, "protocol error: commit outside a transaction at " LSN_FMT,
                       LSN_ARGS(end_lsn));
        return -1;
    }
    p->in_txn = false;
    return 0;
}

/*
 * Set aside an event whose rendered message the sink refused before taking it: its
 * destination, its size, or a destination the broker refuses for good.
 */
static void set_aside_rendered(pipeline *p, const struct event *ev, const struct out_msg *msg,
                               enum dl_reason reason, const char *code, const char *error)
{
    struct dl_record rec = {
        .reason = reason,
        .code = code,
        .error = error,
        .destination = msg->topic,
        .event_id = msg->id,
        .event_id_len = msg->id_len,
        .key = msg->key,
        .key_len = msg->key_len,
        .value = msg->value,
        .value_len = msg->value_len,
        .value_omitted = reason == DL_TOO_LARGE, /* the value is what was too large */
        .headers = msg->headers,
        .nheaders = msg->nheaders,
        .commit_lsn = ev->pos.commit_lsn,
        .xid = ev->pos.xid,
        .index = ev->pos.index,
        .time_us = observe_now_us(),
        .version = RELAY_VERSION,
    };

    /* A rejection names the event; the others are about the row that made it. */
    set_aside(p, &rec, INFLIGHT_NONE, true,
              reason == DL_REJECTED ? NULL : ev->change.op ? "change" : "outbox row");
}

/*
 * Whether the sink takes dest as a destination name.  The last name it took is
 * remembered: most events go where the one before went, and a comparison is cheaper
 * than the sink's rules.
 */
static bool destination_ok(pipeline *p, const char *dest, char *err, size_t err_size)
{
    if (p->dest_ok[0] && strcmp(dest, p->dest_ok) == 0)
        return true;
    if (sink_destination_check(p->type, dest, err, err_size) < 0)
        return false;
    snprintf(p->dest_ok, sizeof(p->dest_ok), "%s", dest);
    return true;
}

void pipeline_event(pipeline *p, const struct event *ev)
{
    struct out_msg msg;
    char err[512];
    uint64_t tag;
    int rc;

    if ((rc = formatter_render(p->fmt, ev, &msg, err, sizeof(err))) == -ENOMEM) {
        pipeline_fatal(p, "out of memory");
        return;
    }
    if (rc < 0) {
        /* What the formatter could not render is the row's fault (or its template's). */
        struct bad_input b = {
            .reason = rc == -EDESTADDRREQ ? DL_BAD_DESTINATION : DL_BAD_ROW,
            .error = err,
            .ev = ev,
            .rel = ev->rel,
            .tuple = ev->tuple ? ev->tuple : ev->change.newtuple,
            .pos = ev->pos,
            .what = ev->change.op ? "change" : "outbox row",
        };

        if (!b.tuple) {
            b.raw = ev->payload.p;
            b.raw_len = ev->payload.len;
        }
        pipeline_bad_input(p, &b);
        return;
    }
    if (!destination_ok(p, msg.topic, err, sizeof(err))) {
        set_aside_rendered(p, ev, &msg, DL_BAD_DESTINATION, "INVALID_DESTINATION", err);
        return;
    }
    tag = inflight_add(p->inflight, p->txn_seq, msg_cost(p, &msg), msg.id, msg.id_len,
                       ev->pos.commit_lsn, ev->pos.xid, ev->pos.index, ev->pos.commit_time_us);
    if (tag == INFLIGHT_NONE) {
        pipeline_fatal(p, "out of memory");
        return;
    }
    if ((rc = sink_produce(p->sink, &msg, tag, err, sizeof(err))) == 0) {
        ckpt_add_event(p->ckpt);
        p->obs.m.events_received++;
        return;
    }
    inflight_remove(p->inflight, tag);
    if (rc == -EMSGSIZE)
        set_aside_rendered(p, ev, &msg, DL_TOO_LARGE, "MSG_SIZE_TOO_LARGE", err);
    else if (rc == -EACCES)
        set_aside_rendered(p, ev, &msg, DL_REJECTED, "REJECTED", err);
    else
        /* Queue full or a producer in trouble: never spin, never skip -- replay. */
        pipeline_request_rebuild(p, err);
}

/* A row as a JSON object: typed by its columns when it can be, else every value a string. */
static void row_json(pipeline *p, const struct rel_desc *rel, const struct pgo_tuple *t)
{
    jbuf_reset(&p->dl_value);
    if (cdc_row_to_json(&p->dl_value, rel, t, NULL, NULL, 0) == 0)
        return;
    jbuf_reset(&p->dl_value);
    jbuf_putc(&p->dl_value, '{');
    for (uint16_t i = 0; i < rel->ncols && i < t->ncols; i++) {
        const struct pgo_value *v = &t->cols[i];

        if (i)
            jbuf_putc(&p->dl_value, ',');
        jbuf_put_json_string(&p->dl_value, rel->cols[i].name, strlen(rel->cols[i].name));
        jbuf_putc(&p->dl_value, ':');
        if (v->kind == PGO_VALUE_NULL || v->kind == PGO_VALUE_UNCHANGED_TOAST)
            jbuf_puts(&p->dl_value, "null");
        else
            jbuf_put_json_string(&p->dl_value, v->data, v->len);
    }
    jbuf_putc(&p->dl_value, '}');
}

void pipeline_bad_input(pipeline *p, const struct bad_input *b)
{
    const struct event *ev = b->ev;
    static const char *const codes[] = {"INVALID_ROW", "INVALID_MESSAGE", "INVALID_DESTINATION"};
    struct dl_record rec = {
        .reason = (enum dl_reason)b->reason,
        .code = (unsigned)b->reason < 3 ? codes[b->reason] : "INVALID",
        .error = b->error,
        .destination = "",
        .event_id = ev && ev->id.p ? ev->id.p : "",
        .event_id_len = ev && ev->id.p ? ev->id.len : 0,
        .key = ev ? ev->aggregateid.p : NULL,
        .key_len = ev && ev->aggregateid.p ? ev->aggregateid.len : 0,
        .commit_lsn = b->pos.commit_lsn,
        .xid = b->pos.xid,
        .index = b->pos.index,
        .time_us = observe_now_us(),
        .version = RELAY_VERSION,
    };

    if (b->rel && b->tuple) {
        row_json(p, b->rel, b->tuple);
        if (p->dl_value.oom) {
            pipeline_fatal(p, "out of memory");
            return;
        }
        rec.value = p->dl_value.data;
        rec.value_len = p->dl_value.len;
        rec.value_is_row = true;
    } else {
        rec.value = b->raw;
        rec.value_len = b->raw_len;
    }
    set_aside(p, &rec, INFLIGHT_NONE, true, b->what);
}

/*
 * Flow
 */

void pipeline_keepalive(pipeline *p, lsn_t wal_end)
{
    ckpt_keepalive(p->ckpt, wal_end);
}

lsn_t pipeline_confirmed(pipeline *p)
{
    return ckpt_confirmed(p->ckpt);
}

size_t pipeline_inflight_txns(const pipeline *p)
{
    return ckpt_inflight_txns(p->ckpt);
}

void pipeline_source_started(pipeline *p, lsn_t start, bool history_changed)
{
    if (history_changed)
        ckpt_restart(p->ckpt, start); /* another server history: old positions mean nothing */
    else
        ckpt_keepalive(p->ckpt, start); /* nothing for us before the start: the ring is empty */
}

static bool backpressured(const pipeline *p)
{
    return flow_backpressured(p->cfg->pipeline.max_inflight_events,
                              p->cfg->pipeline.max_inflight_bytes,
                              ckpt_inflight_events(p->ckpt), (uint64_t)sink_outstanding(p->sink),
                              inflight_bytes(p->inflight));
}

bool pipeline_reading(const pipeline *p)
{
    return !p->fatal && !p->rebuild && !sink_fatal(p->sink) && !backpressured(p) &&
           p->resume_at_ms == 0 && !(p->stopping && !p->in_txn);
}

bool pipeline_caught_up(const pipeline *p)
{
    return !p->in_txn && sink_outstanding(p->sink) == 0;
}

void pipeline_drain(pipeline *p)
{
    p->left_after_drain = sink_flush(p->sink, (int)p->cfg->pipeline.shutdown_timeout_ms);
}

void pipeline_forget(pipeline *p)
{
    char err[512];

    p->in_txn = false;
    (void)ckpt_confirmed(p->ckpt);
    ckpt_reset(p->ckpt);
    /* The tracker forgot first, so the purge's reports are recognised as stale. */
    if (p->left_after_drain > 0 && sink_reset(p->sink, err, sizeof(err)) < 0)
        pipeline_fatal(p, "%s", err);
    p->left_after_drain = 0;
    if (sink_outstanding(p->sink) == 0)
        inflight_clear(p->inflight);
    log_info("will replay from " LSN_FMT, LSN_ARGS(ckpt_confirmed(p->ckpt)));
}

/* Tear down to the confirmed position after a failed delivery; replay after a backoff. */
static void rebuild(pipeline *p)
{
    char err[512];
    int64_t delay;

    log_warn("rebuilding the pipeline: replaying from " LSN_FMT,
             LSN_ARGS(ckpt_confirmed(p->ckpt)));
    p->obs.m.replays++;
    p->ops->rebuild(p->src);
    p->in_txn = false;
    ckpt_reset(p->ckpt);
    if (sink_reset(p->sink, err, sizeof(err)) < 0) {
        pipeline_fatal(p, "%s", err);
        return;
    }
    inflight_clear(p->inflight);
    p->rebuild = false;
    p->backoff.max_ms = p->cfg->postgres.retry_interval_ms;
    delay = flow_backoff_next(&p->backoff, pipeline_random());
    p->resume_at_ms = pipeline_now_ms() + delay;
    log_info("reading again in %lld ms", (long long)delay);
}

/*
 * The loop
 */

static bool loop_done(const pipeline *p)
{
    if (p->fatal)
        return true;
    if (!p->stopping)
        return false;
    if (pipeline_now_ms() >= p->stop_deadline_ms || !p->ops->live(p->src))
        return true;
    return !p->ops->busy(p->src) && sink_outstanding(p->sink) == 0;
}

static int poll_timeout(const pipeline *p)
{
    int64_t now = pipeline_now_ms(), t = p->ops->timeout(p->src, now);

    if (p->resume_at_ms > now && p->resume_at_ms - now < t)
        t = p->resume_at_ms - now;
    if (p->stopping && p->stop_deadline_ms - now < t)
        t = p->stop_deadline_ms - now;
    return t < 0 ? 0 : t > 1000 ? 1000 : (int)t;
}

/* Bring the gauges up to date (before /metrics and /readyz answer). */
static void refresh_metrics(void *opaque, struct relay_metrics *m)
{
    pipeline *p = opaque;

    m->inflight_events = ckpt_inflight_events(p->ckpt);
    m->inflight_bytes = (uint64_t)inflight_bytes(p->inflight);
    p->ops->refresh(p->src, m);
}

/* Ready: the source streams and the sink can reach its broker. */
static void update_ready(pipeline *p)
{
    const char *why;

    if (p->stopping)
        observe_ready(&p->obs, false, "stopping");
    else if ((why = p->ops->not_ready(p->src)))
        observe_ready(&p->obs, false, why);
    else if (!sink_connected(p->sink))
        observe_ready(&p->obs, false, p->type->caps.unreachable);
    else
        observe_ready(&p->obs, true, NULL);
}

static void on_stop_request(pipeline *p)
{
    char buf[16];

    while (read(p->stop_fd, buf, sizeof(buf)) > 0)
        ;
    if (p->stopping) {
        /* A second signal: stop waiting for the transaction and for the sink. */
        log_warn("second stop request: not waiting any longer");
        p->stop_deadline_ms = pipeline_now_ms();
        return;
    }
    p->stopping = true;
    p->stop_deadline_ms = pipeline_now_ms() + p->cfg->pipeline.shutdown_timeout_ms;
    observe_stopping(&p->obs);
    log_info("stopping: finishing %s, waiting for %d events to be acknowledged",
             p->ops->busy(p->src) ? "the transaction in progress" : "nothing",
             sink_outstanding(p->sink));
}

static void loop(pipeline *p)
{
    while (!loop_done(p)) {
        struct pollfd fds[2 + SOURCE_MAX_POLLFDS + OBSERVE_MAX_POLLFDS + SINK_MAX_POLLFDS];
        size_t nsrc, nobs, nsink;

        fds[0] = (struct pollfd){.fd = p->stop_fd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = sink_fd(p->sink), .events = POLLIN};
        nsrc = p->ops->pollfds(p->src, fds + 2, SOURCE_MAX_POLLFDS);
        nobs = observe_pollfds(&p->obs, fds + 2 + nsrc, OBSERVE_MAX_POLLFDS);
        /* Last: nothing below looks at their revents; sink_poll() runs every turn. */
        nsink = sink_pollfds(p->sink, fds + 2 + nsrc + nobs, SINK_MAX_POLLFDS);
        if (poll(fds, (nfds_t)(2 + nsrc + nobs + nsink),
                 observe_timeout(&p->obs, poll_timeout(p))) < 0 &&
            errno != EINTR) {
            pipeline_fatal(p, "poll: %s", strerror(errno));
            break;
        }
        /* A rebuild's pause ends here, so pipeline_reading() (every frame) needs no clock. */
        if (p->resume_at_ms != 0 && pipeline_now_ms() >= p->resume_at_ms)
            p->resume_at_ms = 0;
        observe_turn(&p->obs, fds + 2 + nsrc, nobs);
        update_ready(p);
        if (fds[0].revents)
            on_stop_request(p);
        if (fds[1].revents)
            sink_drain_fd(p->sink);
        sink_poll(p->sink);
        if (sink_refused(p->sink))
            pipeline_fatal(p, "%s", sink_refused(p->sink));
        if (sink_fatal(p->sink))
            pipeline_request_rebuild(p, "the sink failed");
        if (p->rebuild && !p->fatal) {
            rebuild(p);
            continue;
        }
        p->ops->turn(p->src, fds + 2, nsrc);
    }
}

int pipeline_run(pipeline *p, const struct source_ops *ops, void *src, char *errstr,
                 size_t errstr_size)
{
    int left;

    p->ops = ops;
    p->src = src;
    loop(p);
    /* Deliver what can still be delivered -- unless the broker refuses us outright. */
    if (p->fatal && !sink_refused(p->sink))
        sink_flush(p->sink, (int)p->cfg->pipeline.shutdown_timeout_ms);
    left = sink_outstanding(p->sink);
    if (left > 0)
        log_warn("%d events still unacknowledged at shutdown: they will be replayed", left);
    ops->shutdown(src, p->fatal != 0);
    {
        uint64_t dead = 0;

        for (size_t i = 0; i < DL_NREASONS; i++)
            dead += p->obs.m.dead_letter[i];
        log_info("stopped: %llu events produced, %llu delivered, %llu set aside",
                 (unsigned long long)p->obs.m.events_received,
                 (unsigned long long)p->obs.m.events_published, (unsigned long long)dead);
    }
    if (p->fatal) {
        snprintf(errstr, errstr_size, "%s", p->errstr);
        return -1;
    }
    return 0;
}

pipeline *pipeline_new(const struct relay_config *cfg, int stop_fd, lsn_t first_confirmed,
                       char *errstr, size_t errstr_size)
{
    pipeline *p = calloc(1, sizeof(*p));
    const char *dest;

    if (!p) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->stop_fd = stop_fd;
    p->backoff = (struct flow_backoff){REBUILD_BACKOFF_MIN_MS, cfg->postgres.retry_interval_ms, 0};
    jbuf_init(&p->dl_value);
    jbuf_init(&p->dl_hdrs);
    srand((unsigned)getpid());
    if (!(p->type = sink_type_of(cfg))) {
        snprintf(errstr, errstr_size, "no such sink");
        goto fail;
    }
    dest = p->type->dead_letter_destination ? p->type->dead_letter_destination(cfg) : NULL;
    p->dl_dest = dest ? dest : "";
    p->dl_source = cfg->postgres.mode == RELAY_MODE_POLLING ? cfg->outbox.table
                                                            : cfg->postgres.slot;
    if (cfg->dead_letter.table && cfg->dead_letter.table[0])
        snprintf(p->dl_table, sizeof(p->dl_table), "%s.%s", cfg->dead_letter.schema,
                 cfg->dead_letter.table);
    p->set_aside = cfg->pipeline.on_bad_event == RELAY_BAD_EVENT_DEAD_LETTER &&
                   (p->dl_dest[0] || p->dl_table[0]);
    if (!(p->ckpt = ckpt_new(first_confirmed)) || !(p->inflight = inflight_new())) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    if (!(p->sink = sink_from_config(cfg, on_report, p, errstr, errstr_size)))
        goto fail;
    if (observe_open(&p->obs, cfg, refresh_metrics, p, errstr, errstr_size) < 0)
        goto fail;
    return p;

fail:
    pipeline_free(p);
    return NULL;
}

void pipeline_free(pipeline *p)
{
    if (!p)
        return;
    observe_close(&p->obs);
    /* The sink first: its last reports still find the tracker and the table. */
    sink_free(p->sink);
    p->sink = NULL;
    dl_close(p);
    formatter_free(p->fmt);
    inflight_free(p->inflight);
    ckpt_free(p->ckpt);
    jbuf_free(&p->dl_value);
    jbuf_free(&p->dl_hdrs);
    free(p);
}

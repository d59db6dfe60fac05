/*
 * poller.c -- the polling source: outbox rows read with SELECT, for databases where
 * logical replication is not available (no REPLICATION privilege, wal_level not
 * logical, a managed service that forbids slots).
 *
 * The technique (docs/polling.md): the relay never keeps a cursor.  Each poll reads
 * the unpublished rows that are visible now, oldest first (ORDER BY seq), publishes
 * them, and once Kafka has acknowledged every one of them deletes them (or marks
 * them published).  A transaction that took a low seq but commits late is simply
 * seen by a later poll: no row can fall behind a cursor and be skipped, which is how
 * "id > last_id" pollers lose rows.  A batch is confirmed as a whole, through the
 * same checkpoint tracker the replication source uses (one batch = one
 * "transaction").
 *
 * One poller per outbox table: the active instance holds a session-level advisory
 * lock; others stand by, retrying every second, and take over as soon as the lock
 * is released -- which PostgreSQL does when the active instance's session ends,
 * however it ends.  The poller wakes on NOTIFY (sql/004_polling.sql installs the
 * trigger) and polls every polling.interval regardless; a full batch is followed
 * by the next one at once, so a backlog drains back to back.
 *
 * Everything downstream -- event model, formats, sinks, checkpoint -- is shared
 * with the replication source.
 */
#include "poller.h"

#include <errno.h>
#include <inttypes.h>
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
#include "log.h"
#include "observe.h"
#include "replication.h"
#include "sink.h"

#define STANDBY_RETRY_MS 1000
#define RETENTION_EVERY_MS 60000

struct poller {
    const struct relay_config *cfg;
    int stop_fd;
    bool stopping;
    int64_t stop_deadline_ms;

    PGconn *conn;
    bool locked;            /* this instance holds the advisory lock */
    bool standby_logged;
    char *select_sql;       /* the batch query */
    char *lock_sql;
    int64_t retry_at_ms;
    int64_t retry_delay_ms;
    int64_t next_poll_ms;
    int64_t next_retention_ms;
    bool more;              /* the last batch was full: poll again at once */

    sink *sink;
    ckpt_tracker *ckpt;
    relcache *rels;
    formatter *fmt;
    char sysid[32];

    /* The batch in flight. */
    bool in_batch;
    uint64_t batch_seq;     /* the tracker's sequence number for it */
    lsn_t batch_no;         /* its "end LSN" in the tracker: a counter */
    PGresult *batch;        /* the rows: events borrow from it until confirmed */
    char *seqs;             /* "{1,2,3}": the rows' seq values, for DELETE/UPDATE */
    size_t seqs_len, seqs_cap;
    bool rebuild;

    uint64_t batches;
    bool has_published;     /* the table has published_at (and so the partial index) */
    struct observer obs;    /* metrics, /healthz, /readyz, systemd */
    int fatal;
    char errstr[1024];
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_fatal(struct poller *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_fatal(struct poller *p, const char *fmt, ...)
{
    va_list ap;

    if (p->fatal)
        return;
    p->fatal = 1;
    va_start(ap, fmt);
    vsnprintf(p->errstr, sizeof(p->errstr), fmt, ap);
    va_end(ap);
}

static void on_report(void *opaque, uint64_t txn_seq, enum sink_outcome outcome,
                      const char *topic, const char *id, const char *err)
{
    struct poller *p = opaque;

    if (outcome == SINK_DELIVERED) {
        int64_t commit_us = ckpt_commit_time(p->ckpt, txn_seq);

        if (ckpt_ack(p->ckpt, txn_seq) == 0) {
            observe_delivered(&p->obs, p->cfg, topic, commit_us);
        }
        return;
    }
    if (ckpt_fail(p->ckpt, txn_seq) == -ENOENT)
        return;
    p->obs.m.publish_errors++;
    if (outcome == SINK_FAILED_PERMANENT) {
        set_fatal(p,
                  "event \"%s\" cannot be delivered to topic \"%s\": %s; stopping without "
                  "marking it published (no dead-letter topic is configured)",
                  id, topic, err);
        return;
    }
    if (!p->rebuild)
        log_warn("delivery of event \"%s\" to topic \"%s\" failed: %s; the batch will be "
                 "polled again",
                 id, topic, err);
    p->rebuild = true;
}

static void pg_error_line(PGconn *conn, const PGresult *res, char *buf, size_t size)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";

    repl_first_line(msg[0] ? msg : PQerrorMessage(conn), buf, size);
}

/* Forget the batch in flight: its rows stay unpublished and are read again. */
static void drop_batch(struct poller *p)
{
    PQclear(p->batch);
    p->batch = NULL;
    p->in_batch = false;
    ckpt_reset(p->ckpt);
}

static void disconnect(struct poller *p, const char *why)
{
    if (p->conn) {
        log_warn("%s; reconnecting", why);
        PQfinish(p->conn);
        p->conn = NULL;
    }
    /* The lock went with the session: whatever is in flight may be re-read by another. */
    p->locked = false;
    if (p->in_batch) {
        sink_flush(p->sink, (int)p->cfg->kafka.shutdown_timeout_ms);
        drop_batch(p);
    }
    p->retry_at_ms = now_ms() + p->retry_delay_ms;
    p->retry_delay_ms = p->retry_delay_ms * 2 > p->cfg->postgres.retry_interval_ms
                            ? p->cfg->postgres.retry_interval_ms
                            : p->retry_delay_ms * 2;
}

static PGresult *exec(struct poller *p, const char *sql, ExecStatusType want, const char *what)
{
    PGresult *res = PQexec(p->conn, sql);
    char msg[512];

    if (PQresultStatus(res) == want)
        return res;
    pg_error_line(p->conn, res, msg, sizeof(msg));
    PQclear(res);
    if (PQstatus(p->conn) != CONNECTION_OK) {
        char why[700];

        snprintf(why, sizeof(why), "%s: %s", what, msg);
        disconnect(p, why);
    } else {
        set_fatal(p, "%s: %s", what, msg);
    }
    return NULL;
}

/* Build the batch query once: the columns the table has decide it. */
static int prepare_queries(struct poller *p)
{
    const struct relay_config *cfg = p->cfg;
    char *nsp = PQescapeIdentifier(p->conn, cfg->outbox.schema, strlen(cfg->outbox.schema));
    char *rel = PQescapeIdentifier(p->conn, cfg->outbox.table, strlen(cfg->outbox.table));
    char *nsp_lit = PQescapeLiteral(p->conn, cfg->outbox.schema, strlen(cfg->outbox.schema));
    char *rel_lit = PQescapeLiteral(p->conn, cfg->outbox.table, strlen(cfg->outbox.table));
    char sql[1024], lockname[300];
    char *lock_lit = NULL;
    PGresult *res = NULL;
    bool has_seq = false, has_created = false, has_published = false;
    int rc = -1;

    if (!nsp || !rel || !nsp_lit || !rel_lit)
        goto out;
    snprintf(sql, sizeof(sql),
             "SELECT a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON "
             "c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
             "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
             nsp_lit, rel_lit);
    if (!(res = exec(p, sql, PGRES_TUPLES_OK, "cannot read the outbox table's columns")))
        goto out;
    if (PQntuples(res) == 0) {
        set_fatal(p, "outbox table \"%s.%s\" does not exist: create it (see sql/)",
                  cfg->outbox.schema, cfg->outbox.table);
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *col = PQgetvalue(res, i, 0);

        has_seq |= strcmp(col, "seq") == 0;
        has_created |= strcmp(col, "created_at") == 0;
        has_published |= strcmp(col, "published_at") == 0;
    }
    p->has_published = has_published;
    if (!has_seq || (cfg->polling.after_publish == RELAY_AFTER_MARK && !has_published)) {
        set_fatal(p,
                  "outbox table \"%s.%s\" lacks the column \"%s\" polling mode needs: apply "
                  "sql/001_outbox_table.sql and sql/004_polling.sql",
                  cfg->outbox.schema, cfg->outbox.table, !has_seq ? "seq" : "published_at");
        goto out;
    }
    /*
     * xmin names the inserting transaction (the event's position with seq), and the
     * row's created_at is its time.  In mark mode only unpublished rows qualify.
     */
    snprintf(sql, sizeof(sql),
             "SELECT o.xmin::text AS \"__xid\", %s AS \"__time_us\", o.* FROM %s.%s o %s "
             "ORDER BY o.seq LIMIT %lld",
             has_created ? "(extract(epoch FROM o.created_at) * 1000000)::int8"
                         : "(extract(epoch FROM now()) * 1000000)::int8",
             nsp, rel,
             /* With the column, the partial index of sql/004 serves both modes. */
             has_published ? "WHERE o.published_at IS NULL" : "",
             (long long)cfg->polling.batch_size);
    free(p->select_sql);
    p->select_sql = strdup(sql);
    /* One poller per table, across all relays and databases of the cluster. */
    snprintf(lockname, sizeof(lockname), "outbox-relay:%s.%s", cfg->outbox.schema,
             cfg->outbox.table);
    lock_lit = PQescapeLiteral(p->conn, lockname, strlen(lockname));
    if (!lock_lit)
        goto out;
    snprintf(sql, sizeof(sql), "SELECT pg_catalog.pg_try_advisory_lock(hashtext(%s))", lock_lit);
    free(p->lock_sql);
    p->lock_sql = strdup(sql);
    rc = p->select_sql && p->lock_sql ? 0 : -1;

out:
    PQclear(res);
    PQfreemem(nsp);
    PQfreemem(rel);
    PQfreemem(nsp_lit);
    PQfreemem(rel_lit);
    PQfreemem(lock_lit);
    return rc;
}

static void try_connect(struct poller *p)
{
    char sql[256], msg[512], err[512];
    char *chan;
    PGresult *res;

    p->conn = repl_connect(p->cfg->postgres.dsn, "outbox-relay", 10, false);
    if (PQstatus(p->conn) != CONNECTION_OK) {
        pg_error_line(p->conn, NULL, msg, sizeof(msg));
        PQfinish(p->conn);
        p->conn = NULL;
        if (repl_connect_error_permanent(msg)) {
            set_fatal(p, "cannot connect to postgresql: %s", msg);
            return;
        }
        log_warn("cannot connect to postgresql: %s; retrying in %lld ms", msg,
                 (long long)p->retry_delay_ms);
        p->retry_at_ms = now_ms() + p->retry_delay_ms;
        p->retry_delay_ms = p->retry_delay_ms * 2 > p->cfg->postgres.retry_interval_ms
                                ? p->cfg->postgres.retry_interval_ms
                                : p->retry_delay_ms * 2;
        return;
    }
    PQsetNoticeProcessor(p->conn, repl_notice_to_log, NULL);
    /*
     * The batch query must walk the partial index in seq order and stop after
     * batch_size rows.  On a table whose statistics are missing or stale (a backlog
     * written since the last ANALYZE) the planner prefers to fetch every unpublished
     * row and sort them: 100 ms a batch with 200,000 waiting, instead of 1 ms.  This
     * connection runs only the relay's own queries, none of which needs a sort.
     */
    if (!(res = exec(p, "SET enable_sort TO off", PGRES_COMMAND_OK,
                     "cannot set up the polling connection")))
        return;
    PQclear(res);
    if (prepare_queries(p) < 0)
        return;
    if (!(res = exec(p, "SELECT system_identifier::text FROM pg_catalog.pg_control_system()",
                     PGRES_TUPLES_OK, "cannot read the system identifier")))
        return;
    snprintf(p->sysid, sizeof(p->sysid), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    chan = PQescapeIdentifier(p->conn, p->cfg->polling.notify_channel,
                              strlen(p->cfg->polling.notify_channel));
    snprintf(sql, sizeof(sql), "LISTEN %s", chan ? chan : "outbox_relay");
    PQfreemem(chan);
    if (!(res = exec(p, sql, PGRES_COMMAND_OK, "cannot LISTEN")))
        return;
    PQclear(res);
    if (!p->fmt && !(p->fmt = formatter_from_config(p->cfg, PQdb(p->conn), err, sizeof(err)))) {
        set_fatal(p, "%s", err);
        return;
    }
    p->retry_delay_ms = 100;
    p->standby_logged = false;
    p->next_poll_ms = 0;
    log_info("connected to database \"%s\" for polling \"%s.%s\"", PQdb(p->conn),
             p->cfg->outbox.schema, p->cfg->outbox.table);
}

/* Take the advisory lock, or stand by. */
static void try_lock(struct poller *p)
{
    PGresult *res = exec(p, p->lock_sql, PGRES_TUPLES_OK, "cannot take the advisory lock");

    if (!res)
        return;
    p->locked = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (p->locked) {
        log_info("holding the polling lock for \"%s.%s\": this instance publishes",
                 p->cfg->outbox.schema, p->cfg->outbox.table);
        p->next_poll_ms = 0;
    } else {
        if (!p->standby_logged)
            log_info("another instance polls \"%s.%s\": standing by",
                     p->cfg->outbox.schema, p->cfg->outbox.table);
        p->standby_logged = true;
        p->retry_at_ms = now_ms() + STANDBY_RETRY_MS;
    }
}

static void append_seq(struct poller *p, const char *seq)
{
    size_t n = strlen(seq);

    if (p->seqs_len + n + 3 > p->seqs_cap) {
        size_t cap = (p->seqs_cap ? p->seqs_cap * 2 : 4096) + n;
        char *s = realloc(p->seqs, cap);

        if (!s) {
            set_fatal(p, "out of memory");
            return;
        }
        p->seqs = s;
        p->seqs_cap = cap;
    }
    p->seqs[p->seqs_len] = p->seqs_len == 0 ? '{' : ',';
    p->seqs_len++;
    memcpy(p->seqs + p->seqs_len, seq, n);
    p->seqs_len += n;
    p->seqs[p->seqs_len] = '\0';
}

/* Read a batch and hand its events to the sink. */
static void poll_batch(struct poller *p)
{
    PGresult *res = exec(p, p->select_sql, PGRES_TUPLES_OK, "cannot read the outbox");
    struct pgo_relation_column *cols = NULL;
    struct pgo_value *vals = NULL;
    int nfields, ntuples, seq_col;
    char err[512];

    if (!res)
        return;
    ntuples = PQntuples(res);
    p->more = ntuples >= p->cfg->polling.batch_size;
    p->next_poll_ms = now_ms() + p->cfg->polling.interval_ms;
    if (ntuples == 0) {
        PQclear(res);
        return;
    }
    /* Columns 0 and 1 are ours (__xid, __time_us); the table's follow. */
    nfields = PQnfields(res) - 2;
    seq_col = PQfnumber(res, "seq");
    cols = calloc((size_t)nfields, sizeof(*cols));
    vals = calloc((size_t)nfields, sizeof(*vals));
    if (!cols || !vals) {
        set_fatal(p, "out of memory");
        goto out;
    }
    for (int i = 0; i < nfields; i++) {
        cols[i].name = PQfname(res, i + 2);
        cols[i].type_oid = PQftype(res, i + 2);
        cols[i].type_mod = PQfmod(res, i + 2);
    }
    {
        struct pgo_relation r = {.relid = PQftable(res, 2), .nspname = p->cfg->outbox.schema,
                                 .relname = p->cfg->outbox.table, .replident = 'd',
                                 .ncols = (uint16_t)nfields, .cols = cols};

        if (relcache_update(p->rels, &r, err, sizeof(err)) < 0) {
            set_fatal(p, "%s", err);
            goto out;
        }
    }
    p->batch_no++;
    if (ckpt_begin(p->ckpt, &p->batch_seq) < 0) {
        set_fatal(p, "out of memory");
        goto out;
    }
    p->batch = res;
    p->in_batch = true;
    p->seqs_len = 0;
    /* Latency metrics: a batch counts from its oldest row's time (column 1). */
    if (ntuples > 0)
        ckpt_set_commit_time(p->ckpt, strtoll(PQgetvalue(res, 0, 1), NULL, 10));
    for (int row = 0; row < ntuples && !p->fatal && !p->rebuild; row++) {
        const struct rel_desc *rel = relcache_get(p->rels, PQftable(res, 2));
        struct pgo_tuple tuple = {(uint16_t)nfields, vals};
        struct event_pos pos = {.system_id = p->sysid,
                                .xid = (uint32_t)strtoul(PQgetvalue(res, row, 0), NULL, 10),
                                .index = (uint32_t)strtoul(PQgetvalue(res, row, seq_col), NULL,
                                                           10),
                                .commit_time_us = strtoll(PQgetvalue(res, row, 1), NULL, 10)};
        struct event ev;
        struct out_msg msg;
        int rc;

        for (int i = 0; i < nfields; i++) {
            bool null = PQgetisnull(res, row, i + 2);

            vals[i].kind = null ? PGO_VALUE_NULL : PGO_VALUE_TEXT;
            vals[i].data = null ? NULL : PQgetvalue(res, row, i + 2);
            vals[i].len = null ? 0 : (uint32_t)PQgetlength(res, row, i + 2);
        }
        if (event_from_outbox_row(rel, &tuple, &pos, &ev, err, sizeof(err)) < 0 ||
            formatter_render(p->fmt, &ev, &msg, err, sizeof(err)) < 0 ||
            (rc = sink_produce(p->sink, &msg, p->batch_seq, err, sizeof(err))) == -EMSGSIZE) {
            set_fatal(p,
                      "bad outbox row id \"%s\" (seq %s): %s; stopping without marking it "
                      "published",
                      ev.id.p ? PQgetvalue(res, row, PQfnumber(res, "id")) : "(null)",
                      PQgetvalue(res, row, seq_col), err);
            break;
        }
        if (rc < 0) {
            log_warn("%s; the batch will be polled again", err);
            p->rebuild = true;
            break;
        }
        ckpt_add_event(p->ckpt);
        append_seq(p, PQgetvalue(res, row, seq_col));
        p->obs.m.events_received++;
    }
    ckpt_commit(p->ckpt, p->batch_no);
    if (p->seqs_len) {
        p->seqs[p->seqs_len++] = '}';
        p->seqs[p->seqs_len] = '\0';
    }
    res = NULL; /* owned by p->batch until the batch is confirmed */

out:
    PQclear(res);
    free(cols);
    free(vals);
}

/* Kafka acknowledged the whole batch: delete its rows, or mark them published. */
static void finish_batch(struct poller *p)
{
    const char *params[1] = {p->seqs};
    char sql[512];
    char *nsp = PQescapeIdentifier(p->conn, p->cfg->outbox.schema, strlen(p->cfg->outbox.schema));
    char *rel = PQescapeIdentifier(p->conn, p->cfg->outbox.table, strlen(p->cfg->outbox.table));
    PGresult *res;

    if (p->cfg->polling.after_publish == RELAY_AFTER_MARK)
        snprintf(sql, sizeof(sql),
                 "UPDATE %s.%s SET published_at = now() WHERE seq = ANY ($1::int8[]) "
                 "AND published_at IS NULL",
                 nsp, rel);
    else
        snprintf(sql, sizeof(sql), "DELETE FROM %s.%s WHERE seq = ANY ($1::int8[])%s", nsp, rel,
                 p->has_published ? " AND published_at IS NULL" : "");
    PQfreemem(nsp);
    PQfreemem(rel);
    res = PQexecParams(p->conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char msg[512];

        pg_error_line(p->conn, res, msg, sizeof(msg));
        PQclear(res);
        /* Not finished: the rows will be published again (at least once). */
        if (PQstatus(p->conn) != CONNECTION_OK)
            disconnect(p, msg);
        else
            set_fatal(p, "cannot mark published outbox rows: %s", msg);
        return;
    }
    PQclear(res);
    p->batches++;
    log_debug("published batch %llu", (unsigned long long)p->batch_no);
    PQclear(p->batch);
    p->batch = NULL;
    p->in_batch = false;
}

static void retention(struct poller *p)
{
    char sql[512];
    char *nsp, *rel;
    PGresult *res;

    /* Every minute, or sooner for a short retention. */
    p->next_retention_ms =
        now_ms() + (p->cfg->polling.retention_ms > 0 &&
                            p->cfg->polling.retention_ms < RETENTION_EVERY_MS
                        ? p->cfg->polling.retention_ms
                        : RETENTION_EVERY_MS);
    if (p->cfg->polling.after_publish != RELAY_AFTER_MARK || p->cfg->polling.retention_ms == 0)
        return;
    nsp = PQescapeIdentifier(p->conn, p->cfg->outbox.schema, strlen(p->cfg->outbox.schema));
    rel = PQescapeIdentifier(p->conn, p->cfg->outbox.table, strlen(p->cfg->outbox.table));
    snprintf(sql, sizeof(sql),
             "DELETE FROM %s.%s WHERE published_at < now() - interval '%lld milliseconds'", nsp,
             rel, (long long)p->cfg->polling.retention_ms);
    PQfreemem(nsp);
    PQfreemem(rel);
    if ((res = exec(p, sql, PGRES_COMMAND_OK, "cannot delete old published rows")))
        PQclear(res);
}

/* Drain NOTIFYs; true when one arrived. */
static bool notified(struct poller *p)
{
    PGnotify *n;
    bool any = false;

    if (!PQconsumeInput(p->conn)) {
        disconnect(p, "connection lost");
        return false;
    }
    while ((n = PQnotifies(p->conn)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

/* Bring the gauges up to date (before /metrics and /readyz answer). */
static void refresh_metrics(void *opaque, struct relay_metrics *m)
{
    struct poller *p = opaque;

    m->inflight_events = ckpt_inflight_events(p->ckpt);
    m->inflight_bytes = (uint64_t)sink_outstanding_bytes(p->sink);
}

/* Ready: holding the advisory lock on a live connection, and the brokers reachable. */
static void update_ready(struct poller *p)
{
    if (p->stopping)
        observe_ready(&p->obs, false, "stopping");
    else if (!p->conn)
        observe_ready(&p->obs, false, "connecting to postgresql");
    else if (!p->locked)
        observe_ready(&p->obs, false, "standby: another instance holds the outbox lock");
    else if (!sink_connected(p->sink))
        observe_ready(&p->obs, false, "kafka brokers unreachable");
    else
        observe_ready(&p->obs, true, NULL);
}

static void loop(struct poller *p)
{
    while (!p->fatal) {
        struct pollfd fds[3 + OBSERVE_MAX_POLLFDS];
        size_t nobs;
        int timeout;
        int64_t now = now_ms();

        if (p->stopping && (!p->in_batch || now >= p->stop_deadline_ms))
            break;
        if (!p->stopping) {
            if (!p->conn && now >= p->retry_at_ms) {
                try_connect(p);
                continue;
            }
            if (p->conn && !p->locked && now >= p->retry_at_ms) {
                try_lock(p);
                continue;
            }
        }
        if (p->conn && p->locked && p->in_batch && !p->rebuild &&
            ckpt_confirmed(p->ckpt) >= p->batch_no) {
            finish_batch(p);
            continue;
        }
        if (p->conn && p->locked && !p->in_batch && !p->stopping &&
            (p->more || now >= p->next_poll_ms)) {
            poll_batch(p);
            continue;
        }
        fds[0] = (struct pollfd){.fd = p->stop_fd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = sink_fd(p->sink), .events = POLLIN};
        fds[2] = (struct pollfd){.fd = p->conn ? PQsocket(p->conn) : -1, .events = POLLIN};
        nobs = observe_pollfds(&p->obs, fds + 3, OBSERVE_MAX_POLLFDS);
        timeout = 1000;
        if (p->conn && p->locked && !p->in_batch && p->next_poll_ms - now < timeout)
            timeout = (int)(p->next_poll_ms - now);
        if ((!p->conn || !p->locked) && p->retry_at_ms - now < timeout)
            timeout = (int)(p->retry_at_ms - now);
        if (timeout < 0)
            timeout = 0;
        if (poll(fds, (nfds_t)(3 + nobs), observe_timeout(&p->obs, timeout)) < 0 &&
            errno != EINTR) {
            set_fatal(p, "poll: %s", strerror(errno));
            break;
        }
        observe_turn(&p->obs, fds + 3, nobs);
        update_ready(p);
        if (fds[0].revents) {
            char buf[16];

            while (read(p->stop_fd, buf, sizeof(buf)) > 0)
                ;
            if (!p->stopping) {
                p->stopping = true;
                p->stop_deadline_ms = now_ms() + p->cfg->kafka.shutdown_timeout_ms;
                observe_stopping(&p->obs);
                log_info("stopping: waiting for the batch in flight to be acknowledged");
            } else {
                p->stop_deadline_ms = now_ms();
            }
        }
        if (fds[1].revents)
            sink_drain_fd(p->sink);
        sink_poll(p->sink);
        if (sink_fatal(p->sink))
            p->rebuild = true;
        if (p->rebuild) {
            char err[512];

            /* Start over from what the table says is unpublished. */
            if (sink_reset(p->sink, err, sizeof(err)) < 0) {
                set_fatal(p, "%s", err);
                break;
            }
            if (p->in_batch)
                drop_batch(p);
            p->rebuild = false;
            p->next_poll_ms = now_ms() + p->retry_delay_ms;
            continue;
        }
        /* A wake-up during a batch is kept: the next poll follows the batch at once. */
        if (p->conn && (fds[2].revents & (POLLIN | POLLERR | POLLHUP)) && notified(p))
            p->next_poll_ms = 0;
        if (p->conn && p->locked && now_ms() >= p->next_retention_ms && !p->in_batch)
            retention(p);
    }
}

int poller_run(const struct relay_config *cfg, int stop_fd, char *errstr, size_t errstr_size)
{
    struct poller p;
    int rc = -1;

    memset(&p, 0, sizeof(p));
    p.cfg = cfg;
    p.stop_fd = stop_fd;
    p.retry_delay_ms = 100;
    p.ckpt = ckpt_new(0);
    if (!p.ckpt) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    if (!(p.rels = relcache_from_config(cfg, errstr, errstr_size)) ||
        !(p.sink = sink_from_config(cfg, on_report, &p, errstr, errstr_size)) ||
        observe_open(&p.obs, cfg, refresh_metrics, &p, errstr, errstr_size) < 0)
        goto out;

    loop(&p);
    if (p.in_batch) {
        sink_flush(p.sink, (int)cfg->kafka.shutdown_timeout_ms);
        if (p.conn && ckpt_confirmed(p.ckpt) >= p.batch_no)
            finish_batch(&p);
        else
            log_warn("the last batch was not acknowledged in time: it will be published "
                     "again");
    }
    log_info("stopped: %llu events produced, %llu delivered, %llu batches finished",
             (unsigned long long)p.obs.m.events_received, (unsigned long long)p.obs.m.events_published,
             (unsigned long long)p.batches);
    if (p.fatal) {
        snprintf(errstr, errstr_size, "%s", p.errstr);
        goto out;
    }
    rc = 0;

out:
    observe_close(&p.obs);
    sink_free(p.sink);
    PQclear(p.batch);
    if (p.conn)
        PQfinish(p.conn);
    formatter_free(p.fmt);
    relcache_free(p.rels);
    ckpt_free(p.ckpt);
    free(p.select_sql);
    free(p.lock_sql);
    free(p.seqs);
    return rc;
}

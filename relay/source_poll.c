/*
 * source_poll.c -- the polling source: outbox rows read with SELECT, for databases where
 * logical replication is not available (no REPLICATION privilege, wal_level not
 * logical, a managed service that forbids slots).
 *
 * The technique (docs/polling.md): the relay never keeps a cursor.  Each poll reads
 * the unpublished rows that are visible now, oldest first (ORDER BY seq), publishes
 * them, and once the sink has acknowledged every one of them (or the pipeline has set
 * a poison row aside, docs/events.md "Bad input") deletes them (or marks
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
 * Everything downstream -- the pipeline: event model, formats, sinks, checkpoint,
 * dead letters -- is shared with the replication source.
 */
#include "source.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "deadletter.h"
#include "event.h"
#include "flow.h"
#include "log.h"
#include "pipeline.h"
#include "replication.h"

#define STANDBY_RETRY_MS 1000
#define RETENTION_EVERY_MS 60000

struct poller {
    const struct relay_config *cfg;
    pipeline *pl;

    PGconn *conn;
    bool locked;            /* this instance holds the advisory lock */
    bool standby_logged;
    char *select_sql;       /* the batch query */
    char *lock_sql;
    int64_t retry_at_ms;
    struct flow_backoff retry;
    int64_t next_poll_ms;
    int64_t next_retention_ms;
    bool more;              /* the last batch was full: poll again at once */

    relcache *rels;
    char sysid[32];

    /* The batch in flight. */
    bool in_batch;
    lsn_t batch_no;         /* its "end LSN" in the tracker: a counter */
    PGresult *batch;        /* the rows: events borrow from it until confirmed */
    char *seqs;             /* "{1,2,3}": the rows' seq values, for DELETE/UPDATE */
    size_t seqs_len, seqs_cap;

    uint64_t batches;
    bool has_published;     /* the table has published_at (and so the partial index) */
};

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
}

static void schedule_retry(struct poller *p)
{
    p->retry.max_ms = p->cfg->postgres.retry_interval_ms;
    p->retry_at_ms = pipeline_now_ms() + flow_backoff_next(&p->retry, pipeline_random());
}

static void disconnect(struct poller *p, const char *why)
{
    if (p->in_batch)
        pipeline_drain(p->pl);
    if (p->conn) {
        log_warn("%s; reconnecting", why);
        PQfinish(p->conn);
        p->conn = NULL;
    }
    /* The lock went with the session: whatever is in flight may be re-read by another. */
    p->locked = false;
    if (p->in_batch) {
        drop_batch(p);
        pipeline_forget(p->pl);
    }
    schedule_retry(p);
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
        pipeline_fatal(p->pl, "%s: %s", what, msg);
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
        pipeline_fatal(p->pl, "outbox table \"%s.%s\" does not exist: create it (see sql/)",
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
        pipeline_fatal(p->pl,
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
    char sql[256], msg[512];
    char *chan;
    PGresult *res;

    p->conn = repl_connect(p->cfg->postgres.dsn, "outbox-relay", 10, false);
    if (PQstatus(p->conn) != CONNECTION_OK) {
        pg_error_line(p->conn, NULL, msg, sizeof(msg));
        PQfinish(p->conn);
        p->conn = NULL;
        if (repl_connect_error_permanent(msg)) {
            pipeline_fatal(p->pl, "cannot connect to postgresql: %s", msg);
            return;
        }
        schedule_retry(p);
        log_warn("cannot connect to postgresql: %s; retrying in %lld ms", msg,
                 (long long)(p->retry_at_ms - pipeline_now_ms()));
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
    if (pipeline_set_database(p->pl, PQdb(p->conn)) < 0)
        return;
    if (p->batches > 0 || pipeline_metrics(p->pl)->events_received > 0)
        pipeline_metrics(p->pl)->reconnects++;
    flow_backoff_reset(&p->retry);
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
        p->retry_at_ms = pipeline_now_ms() + STANDBY_RETRY_MS;
    }
}

static void append_seq(struct poller *p, const char *seq)
{
    size_t n = strlen(seq);

    if (p->seqs_len + n + 3 > p->seqs_cap) {
        size_t cap = (p->seqs_cap ? p->seqs_cap * 2 : 4096) + n;
        char *s = realloc(p->seqs, cap);

        if (!s) {
            pipeline_fatal(p->pl, "out of memory");
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
    p->next_poll_ms = pipeline_now_ms() + p->cfg->polling.interval_ms;
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
        pipeline_fatal(p->pl, "out of memory");
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
            pipeline_fatal(p->pl, "%s", err);
            goto out;
        }
    }
    p->batch_no++;
    {
        /* A batch is the tracker's "transaction"; its time is its oldest row's. */
        struct event_pos bpos = {.system_id = p->sysid,
                                 .commit_time_us = strtoll(PQgetvalue(res, 0, 1), NULL, 10)};

        if (pipeline_begin(p->pl, &bpos) < 0)
            goto out;
    }
    p->batch = res;
    p->in_batch = true;
    p->seqs_len = 0;
    for (int row = 0; row < ntuples && !pipeline_failed(p->pl) && !pipeline_rebuild_pending(p->pl);
         row++) {
        const struct rel_desc *rel = relcache_get(p->rels, PQftable(res, 2));
        struct pgo_tuple tuple = {(uint16_t)nfields, vals};
        struct event_pos pos = {.system_id = p->sysid,
                                .xid = (uint32_t)strtoul(PQgetvalue(res, row, 0), NULL, 10),
                                .index = (uint32_t)strtoul(PQgetvalue(res, row, seq_col), NULL,
                                                           10),
                                .commit_time_us = strtoll(PQgetvalue(res, row, 1), NULL, 10)};
        struct event ev;

        for (int i = 0; i < nfields; i++) {
            bool null = PQgetisnull(res, row, i + 2);

            vals[i].kind = null ? PGO_VALUE_NULL : PGO_VALUE_TEXT;
            vals[i].data = null ? NULL : PQgetvalue(res, row, i + 2);
            vals[i].len = null ? 0 : (uint32_t)PQgetlength(res, row, i + 2);
        }
        memset(&ev, 0, sizeof(ev));
        if (event_from_outbox_row(rel, &tuple, &pos, &ev, err, sizeof(err)) < 0) {
            struct bad_input b = {.reason = DL_BAD_ROW, .error = err, .ev = &ev, .rel = rel,
                                  .tuple = &tuple, .pos = pos, .what = "outbox row"};

            pipeline_bad_input(p->pl, &b);
        } else {
            pipeline_event(p->pl, &ev);
        }
        /* Handed to the sink or set aside: either way the row is done with the batch. */
        if (!pipeline_failed(p->pl))
            append_seq(p, PQgetvalue(res, row, seq_col));
    }
    pipeline_commit(p->pl, p->batch_no);
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

/* The sink acknowledged the whole batch: delete its rows, or mark them published. */
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
            pipeline_fatal(p->pl, "cannot mark published outbox rows: %s", msg);
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
        pipeline_now_ms() + (p->cfg->polling.retention_ms > 0 &&
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

/*
 * The source's operations (pipeline.h)
 */

static size_t poll_pollfds(void *src, struct pollfd *fds, size_t max)
{
    struct poller *p = src;

    if (!p->conn || max == 0)
        return 0;
    fds[0] = (struct pollfd){.fd = PQsocket(p->conn), .events = POLLIN};
    return 1;
}

static int64_t poll_timeout(void *src, int64_t now)
{
    struct poller *p = src;

    if (!p->conn || !p->locked)
        return p->retry_at_ms - now;
    if (p->in_batch)
        return pipeline_confirmed(p->pl) >= p->batch_no ? 0 : 1000;
    /* Not reading (back-pressure, a rebuild's backoff): the pipeline knows when to wake. */
    if (pipeline_stopping(p->pl) || !pipeline_reading(p->pl))
        return 1000;
    return p->more ? 0 : p->next_poll_ms - now;
}

static void poll_turn(void *src, const struct pollfd *fds, size_t n)
{
    struct poller *p = src;
    int64_t now = pipeline_now_ms();

    if (!p->conn) {
        if (!pipeline_stopping(p->pl) && now >= p->retry_at_ms)
            try_connect(p);
        return;
    }
    /* A wake-up during a batch is kept: the next poll follows the batch at once. */
    if (n > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) && notified(p))
        p->next_poll_ms = 0;
    if (!p->conn)
        return;
    if (!p->locked) {
        if (!pipeline_stopping(p->pl) && now >= p->retry_at_ms)
            try_lock(p);
        return;
    }
    if (p->in_batch && pipeline_confirmed(p->pl) >= p->batch_no)
        finish_batch(p);
    if (p->conn && !p->in_batch && pipeline_reading(p->pl) &&
        (p->more || pipeline_now_ms() >= p->next_poll_ms))
        poll_batch(p);
    if (p->conn && !p->in_batch && pipeline_now_ms() >= p->next_retention_ms)
        retention(p);
}

static void poll_rebuild(void *src)
{
    struct poller *p = src;

    /* Start over from what the table says is unpublished. */
    if (p->in_batch)
        drop_batch(p);
    p->next_poll_ms = 0;
}

static bool poll_busy(const void *src)
{
    return ((const struct poller *)src)->in_batch;
}

static bool poll_live(const void *src)
{
    return ((const struct poller *)src)->conn != NULL;
}

/* Ready: holding the advisory lock on a live connection. */
static const char *poll_not_ready(const void *src)
{
    const struct poller *p = src;

    if (!p->conn)
        return "connecting to postgresql";
    if (!p->locked)
        return "standby: another instance holds the outbox lock";
    return NULL;
}

static void poll_refresh(void *src, struct relay_metrics *m)
{
    (void)src;
    (void)m;
}

static void poll_shutdown(void *src, bool fatal)
{
    struct poller *p = src;

    if (!p->in_batch)
        return;
    /* After a poison row with on_bad_event "stop", the batch must not be finished. */
    if (!fatal)
        pipeline_drain(p->pl);
    if (!fatal && p->conn && pipeline_confirmed(p->pl) >= p->batch_no)
        finish_batch(p);
    else
        log_warn("the last batch was not acknowledged in time: it will be published again");
    log_info("%llu batches finished", (unsigned long long)p->batches);
}

static const struct source_ops poll_ops = {
    .name = "polling",
    .pollfds = poll_pollfds,
    .timeout = poll_timeout,
    .turn = poll_turn,
    .rebuild = poll_rebuild,
    .busy = poll_busy,
    .live = poll_live,
    .not_ready = poll_not_ready,
    .refresh = poll_refresh,
    .shutdown = poll_shutdown,
};

int source_poll_run(const struct relay_config *cfg, int stop_fd, char *errstr,
                    size_t errstr_size)
{
    struct poller p;
    int rc = -1;

    memset(&p, 0, sizeof(p));
    p.cfg = cfg;
    p.retry = (struct flow_backoff){100, cfg->postgres.retry_interval_ms, 0};
    if (!(p.rels = relcache_from_config(cfg, errstr, errstr_size)))
        goto out;
    /* The tracker counts batches from 0: a batch's "end LSN" is its number. */
    if (!(p.pl = pipeline_new(cfg, stop_fd, 0, errstr, errstr_size)))
        goto out;
    rc = pipeline_run(p.pl, &poll_ops, &p, errstr, errstr_size);

out:
    /* The pipeline first: its sink's last reports still reach it. */
    pipeline_free(p.pl);
    PQclear(p.batch);
    if (p.conn)
        PQfinish(p.conn);
    relcache_free(p.rels);
    free(p.select_sql);
    free(p.lock_sql);
    free(p.seqs);
    return rc;
}

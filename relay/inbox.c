/*
 * inbox.c -- the inbox relay: broker -> the consuming service's PostgreSQL (inbox.h).
 *
 * The core; the brokers are sources (inbox_source.h: Kafka in inbox_kafka.c, NATS
 * JetStream in inbox_nats.c, Redis Streams in inbox_redis.c, RabbitMQ streams in
 * inbox_rabbitmq.c).  One thread, one poll() loop over the stop pipe, the source's
 * descriptor and the admin endpoint.  Messages
 * are read into a batch of at most inbox.batch_size; the batch is written when full,
 * or when inbox.batch_wait has passed since its first message, as ONE SQL statement:
 *
 *   WITH ins AS (INSERT INTO inbox ... VALUES ... ON CONFLICT DO NOTHING RETURNING 1),
 *        dl  AS (INSERT INTO inbox_dead_letter ... ON CONFLICT DO NOTHING RETURNING 1),
 *        pos AS (INSERT INTO inbox_position ... ON CONFLICT DO UPDATE
 *                SET next_offset = GREATEST(...))
 *   SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM dl), pg_notify(...)
 *
 * A statement is its own transaction: the events, the set-aside messages and the
 * positions become visible together or not at all.  Only then is the broker told
 * (offsets committed, messages acknowledged).  A source starts each topic-partition
 * where inbox_position says (inbox_core_positions()); so after any crash the relay
 * resumes exactly where the last committed batch ended, and a message redelivered
 * anyway (a zombie member after a rebalance, the outbox side's own duplicates) is a
 * no-op on the primary key.  Positions only move forward (GREATEST), so a late writer
 * cannot move one back.
 *
 * A statement that PostgreSQL refuses for one row's content (a time that is not a
 * timestamp, an id too long for the index) is replayed row by row inside one
 * transaction with a savepoint per row; the rows it refuses go to the dead-letter
 * table with PostgreSQL's message.  A connection failure keeps the batch and retries
 * it after postgres.retry_interval, reading nothing meanwhile (back-pressure: the
 * broker keeps the messages).  A missing table or privilege stops the relay.
 *
 * A row holds the message as its source delivered it (the source's handle) until the
 * batch is written: a message set aside keeps its exact key, value and headers, and
 * nothing is copied for the others.
 */
#include "inbox.h"
#include "inbox_source.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "admin.h"
#include "inbox_event.h"
#include "jsonbuf.h"
#include "log.h"
#include "metrics.h"
#include "redact.h"
#include "replication.h"

/* How often processed rows are looked for when inbox.retention is set. */
#define RETENTION_PERIOD_MS 60000
/* Rows deleted per statement, and statements per round. */
#define RETENTION_BATCH 1000
#define RETENTION_ROUNDS 20

/* One message of a batch: an event, or a message set aside with its reason. */
struct row {
    const char *topic; /* borrowed from the source: valid while the row holds handle */
    int32_t partition;
    int64_t offset;
    bool event;
    struct inbox_event ev; /* event */
    char *reason;          /* not an event: "not-an-event" or "refused" */
    char *error;
    /* The message as read: the source's handle, and its bytes (borrowed from it). */
    void *handle;
    const void *key, *value;
    size_t key_len, value_len;
    struct inbox_header *hdrs; /* the header array, copied; names and values borrowed */
    size_t nhdrs;
    bool unreadable;
    /* Those bytes as the dead-letter record keeps them: set when the row is set aside. */
    char *key_hex, *value_hex, *headers;
};

struct counters {
    uint64_t inserted, duplicates, dead_letters, batches, batch_errors, retention_deleted;
};

struct inbox {
    const struct relay_config *cfg;
    const struct inbox_source_ops *ops;
    void *src;
    PGconn *db;
    char *q_inbox, *q_position, *q_dead;
    admin_server *admin;
    struct row *rows;
    size_t nrows;
    int64_t batch_started_ms;
    int64_t retry_at_ms;     /* database down: when to try again; 0: up */
    int64_t retention_at_ms; /* next retention round */
    bool joined;             /* a first assignment happened */
    int assigned;            /* partitions assigned now */
    int stop_fd;             /* a byte here asks the relay to stop */
    bool stop_seen;          /* a stop was asked for inside a callback */
    bool fatal;
    char errstr[1024];
    struct counters n;
    struct jbuf sql;
    char **params;
    size_t nparams, cparams;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t inbox_now_ms(void)
{
    return now_ms();
}

void inbox_backoff(int64_t retry_at, int wait_ms)
{
    int64_t left = retry_at - now_ms();

    if (left > 0)
        poll(NULL, 0, (int)(left < wait_ms ? left : wait_ms));
}

static void row_free(struct inbox *ib, struct row *r)
{
    inbox_event_free(&r->ev);
    free(r->reason);
    free(r->error);
    free(r->key_hex);
    free(r->value_hex);
    free(r->headers);
    free(r->hdrs);
    if (r->handle)
        ib->ops->release(ib->src, r->handle);
    memset(r, 0, sizeof(*r));
}

/*
 * The message as its dead-letter record keeps it: key and value as bytea hex, every
 * header (values as hex, so the exact bytes survive).  Done only for a message set
 * aside, from the message the row holds; again is a no-op.  Returns 0 or -1 (out of
 * memory).
 */
static int keep_raw(struct row *r)
{
    struct jbuf b;

    if (r->headers)
        return 0;
    jbuf_init(&b);
    jbuf_putc(&b, '{');
    for (size_t i = 0; i < r->nhdrs; i++) {
        const struct inbox_header *h = &r->hdrs[i];

        if (i)
            jbuf_putc(&b, ',');
        inbox_put_json_text(&b, h->name, strlen(h->name), false);
        jbuf_putc(&b, ':');
        if (h->value)
            inbox_put_json_text(&b, h->value, h->value_len, true);
        else
            jbuf_puts(&b, "null");
    }
    jbuf_putc(&b, '}');
    r->key_hex = r->key ? inbox_hex(r->key, r->key_len) : NULL;
    r->value_hex = r->value ? inbox_hex(r->value, r->value_len) : NULL;
    r->headers = b.oom ? NULL : strndup(b.data, b.len);
    jbuf_free(&b);
    return !r->headers || (r->key && !r->key_hex) || (r->value && !r->value_hex) ? -1 : 0;
}

/* Mark r as set aside for reason, saying why in the log. */
static int set_aside(struct row *r, const char *reason, const char *why)
{
    r->event = false;
    r->reason = strdup(reason);
    r->error = strdup(why);
    if (!r->reason || !r->error || keep_raw(r) < 0)
        return -1;
    log_warn("inbox: message at %s [%d] offset %lld set aside (%s): %s", r->topic,
             (int)r->partition, (long long)r->offset, reason, why);
    return 0;
}

static void batch_clear(struct inbox *ib)
{
    for (size_t i = 0; i < ib->nrows; i++)
        row_free(ib, &ib->rows[i]);
    ib->nrows = 0;
}

void inbox_core_fail(struct inbox *ib, const char *fmt, ...)
{
    va_list ap;

    if (ib->fatal)
        return;
    va_start(ap, fmt);
    vsnprintf(ib->errstr, sizeof(ib->errstr), fmt, ap);
    va_end(ap);
    ib->fatal = true;
}

/*
 * Database
 */

static void db_close(struct inbox *ib)
{
    PQfinish(ib->db);
    ib->db = NULL;
    free(ib->q_inbox);
    free(ib->q_position);
    free(ib->q_dead);
    ib->q_inbox = ib->q_position = ib->q_dead = NULL;
}

/* Connect (blocking, 5 s at most).  Returns 0, or -1 with the reason logged. */
static int db_open(struct inbox *ib)
{
    const struct relay_config *cfg = ib->cfg;

    if (ib->db && PQstatus(ib->db) == CONNECTION_OK)
        return 0;
    db_close(ib);
    ib->db = repl_connect(cfg->inbox.dsn, "outbox-relay inbox", 5, false);
    if (!ib->db || PQstatus(ib->db) != CONNECTION_OK) {
        char line[512];

        repl_first_line(ib->db ? PQerrorMessage(ib->db) : "out of memory", line, sizeof(line));
        log_warn("inbox: cannot connect to the inbox database: %s; retrying in %lld ms", line,
                 (long long)cfg->postgres.retry_interval_ms);
        db_close(ib);
        return -1;
    }
    /*
     * UTF-8 text whatever the database's default, and no statement waiting forever on a
     * lock the service holds (the loop would stop serving the broker and /healthz).
     */
    if (PQsetClientEncoding(ib->db, "UTF8") != 0)
        log_warn("inbox: cannot set the client encoding to UTF8: %s", PQerrorMessage(ib->db));
    PQclear(PQexec(ib->db, "SET statement_timeout = '60s'"));
    ib->q_inbox = repl_quote_table(ib->db, cfg->inbox.schema, cfg->inbox.table);
    ib->q_position = repl_quote_table(ib->db, cfg->inbox.position_schema,
                                      cfg->inbox.position_table);
    ib->q_dead = repl_quote_table(ib->db, cfg->inbox.dead_letter_schema,
                                  cfg->inbox.dead_letter_table);
    if (!ib->q_inbox || !ib->q_position || !ib->q_dead) {
        db_close(ib);
        return -1;
    }
    return 0;
}

/* The failure's SQLSTATE class: "08" connection, "22" data, ... ("" when none). */
static const char *sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    return s ? s : "";
}

/* A failure a row's content caused: another row would not cause it. */
static bool row_fault(const char *state)
{
    return strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
           strncmp(state, "54", 2) == 0;
}

/* A failure that waiting cures: the connection, the server, a conflict, a timeout. */
static bool transient(const PGresult *res, PGconn *db)
{
    const char *s = sqlstate(res);

    /* No SQLSTATE on a live connection is libpq refusing the request itself: not cured. */
    return PQstatus(db) != CONNECTION_OK || strncmp(s, "08", 2) == 0 ||
           strncmp(s, "40", 2) == 0 || strncmp(s, "53", 2) == 0 || strncmp(s, "57", 2) == 0 ||
           strcmp(s, "55P03") == 0;
}

static int param(struct inbox *ib, const char *value)
{
    if (ib->nparams == ib->cparams) {
        size_t nc = ib->cparams ? ib->cparams * 2 : 256;
        char **np = realloc(ib->params, nc * sizeof(*np));

        if (!np)
            return -1;
        ib->params = np;
        ib->cparams = nc;
    }
    ib->params[ib->nparams++] = (char *)value;
    jbuf_printf(&ib->sql, "$%zu", ib->nparams);
    return 0;
}

/* Append "(p, p, ...)" for the values, each followed by its cast. */
static int values(struct inbox *ib, const char *const *v, const char *const *casts, size_t n)
{
    jbuf_putc(&ib->sql, '(');
    for (size_t i = 0; i < n; i++) {
        if (i)
            jbuf_putc(&ib->sql, ',');
        if (param(ib, v[i]) < 0)
            return -1;
        jbuf_puts(&ib->sql, casts[i]);
    }
    jbuf_putc(&ib->sql, ')');
    return 0;
}

/* A partition's next offset in a batch. */
struct position {
    const char *topic;
    int32_t partition;
    int64_t next;
    char part[16], offset[24];
};

/*
 * Build the statement for rows[0..n): the events (unless !events: they are written
 * already) and the dead letters, with the positions when with_positions.  Numbers are
 * formatted into nums (n * 48 bytes).  Returns 0 or -1 (out of memory).
 */
static int build(struct inbox *ib, const struct row *rows, size_t n, char *nums,
                 struct position *pos, size_t npos, bool with_positions, bool events)
{
    static const char *const ev_casts[] = {"::text", "::text", "::text", "::text", "::text",
                                           "::timestamptz", "::text", "::jsonb", "::text",
                                           "::jsonb", "::bytea", "::text", "::int",
                                           "::bigint"};
    static const char *const dl_casts[] = {"::text", "::text", "::int", "::bigint", "::text",
                                           "::text", "::text", "::bytea", "::bytea", "::jsonb"};
    const char *consumer = ib->cfg->inbox.consumer;
    bool any_ev = false, any_dl = false;

    jbuf_reset(&ib->sql);
    ib->nparams = 0;
    for (size_t i = 0; i < n; i++) {
        char *part = nums + i * 48, *off = part + 16;

        snprintf(part, 16, "%d", (int)rows[i].partition);
        snprintf(off, 32, "%lld", (long long)rows[i].offset);
        if (rows[i].event && events) {
            const struct inbox_event *e = &rows[i].ev;
            const char *v[] = {consumer, e->id, e->type, e->source, e->subject, e->time,
                               e->key, e->headers, e->content_type, e->payload, e->payload_hex,
                               rows[i].topic, part, off};

            jbuf_puts(&ib->sql, any_ev ? ",\n" : "WITH ins AS (INSERT INTO ");
            if (!any_ev)
                jbuf_printf(&ib->sql, "%s (consumer, event_id, type, source, subject, "
                                      "event_time, key, headers, content_type, payload, "
                                      "payload_bytes, topic, partition, \"offset\") VALUES\n",
                            ib->q_inbox);
            any_ev = true;
            if (values(ib, v, ev_casts, 14) < 0)
                return -1;
        }
    }
    if (any_ev)
        jbuf_puts(&ib->sql, "\nON CONFLICT (consumer, event_id) DO NOTHING RETURNING 1)");
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].event) {
            const struct row *r = &rows[i];
            const char *v[] = {consumer, r->topic, nums + i * 48, nums + i * 48 + 16, r->reason,
                               r->error, r->ev.id, r->key_hex, r->value_hex, r->headers};

            if (!any_dl)
                jbuf_printf(&ib->sql, "%s dl AS (INSERT INTO %s (consumer, topic, partition, "
                                      "\"offset\", reason, error, event_id, key, value, "
                                      "headers) VALUES\n",
                            any_ev ? "," : "WITH", ib->q_dead);
            else
                jbuf_puts(&ib->sql, ",\n");
            any_dl = true;
            if (values(ib, v, dl_casts, 10) < 0)
                return -1;
        }
    }
    if (any_dl)
        jbuf_puts(&ib->sql, "\nON CONFLICT DO NOTHING RETURNING 1)");
    if (with_positions && npos > 0) {
        static const char *const pos_casts[] = {"::text", "::text", "::int", "::bigint"};

        jbuf_printf(&ib->sql, "%s pos AS (INSERT INTO %s AS p (consumer, topic, partition, "
                              "next_offset) VALUES\n",
                    any_ev || any_dl ? "," : "WITH", ib->q_position);
        for (size_t i = 0; i < npos; i++) {
            const char *v[] = {consumer, pos[i].topic, pos[i].part, pos[i].offset};

            if (i)
                jbuf_puts(&ib->sql, ",\n");
            if (values(ib, v, pos_casts, 4) < 0)
                return -1;
        }
        jbuf_puts(&ib->sql, "\nON CONFLICT (consumer, topic, partition) DO UPDATE SET "
                            "next_offset = GREATEST(p.next_offset, EXCLUDED.next_offset), "
                            "updated_at = now())");
    }
    jbuf_printf(&ib->sql, "\nSELECT %s, %s", any_ev ? "(SELECT count(*) FROM ins)" : "0",
                any_dl ? "(SELECT count(*) FROM dl)" : "0");
    if (with_positions && ib->cfg->inbox.notify_channel[0]) {
        jbuf_puts(&ib->sql, ", pg_notify(");
        if (param(ib, ib->cfg->inbox.notify_channel) < 0)
            return -1;
        jbuf_puts(&ib->sql, ", ");
        if (param(ib, consumer) < 0)
            return -1;
        jbuf_puts(&ib->sql, ")");
    }
    return ib->sql.oom ? -1 : 0;
}

static PGresult *exec(struct inbox *ib)
{
    return PQexecParams(ib->db, ib->sql.data, (int)ib->nparams, NULL,
                        (const char *const *)ib->params, NULL, NULL, 0);
}

/* The batch's positions, one per partition (the offset after its last message). */
static size_t positions(const struct inbox *ib, struct position *pos)
{
    size_t npos = 0;

    for (size_t i = 0; i < ib->nrows; i++) {
        const struct row *r = &ib->rows[i];
        size_t k;

        for (k = 0; k < npos; k++)
            if (pos[k].partition == r->partition && strcmp(pos[k].topic, r->topic) == 0)
                break;
        if (k == npos) {
            pos[npos].topic = r->topic;
            pos[npos].partition = r->partition;
            pos[npos].next = r->offset + 1;
            npos++;
        } else if (r->offset + 1 > pos[k].next) {
            pos[k].next = r->offset + 1;
        }
    }
    for (size_t k = 0; k < npos; k++) {
        snprintf(pos[k].part, sizeof(pos[k].part), "%d", (int)pos[k].partition);
        snprintf(pos[k].offset, sizeof(pos[k].offset), "%lld", (long long)pos[k].next);
    }
    return npos;
}

/* Turn row r into a dead letter for PostgreSQL's reason msg (its raw bytes are kept). */
static int refuse_row(struct row *r, const char *msg)
{
    char line[600], text[640];
    size_t n;

    repl_first_line(msg, line, sizeof(line));
    /* Cut on a character: the message may quote the value, cut mid-character. */
    n = strlen(line);
    while (n > 0 && !json_utf8_valid(line, n))
        n--;
    line[n] = '\0';
    snprintf(text, sizeof(text), "PostgreSQL refused it: %s", line);
    free(r->reason);
    free(r->error);
    r->reason = r->error = NULL;
    return set_aside(r, "refused", text);
}

/*
 * The slow path, after a statement failed for one row's content: each event alone
 * under a savepoint, the refused ones set aside, then the rest in the same
 * transaction.  Returns 0 (committed), 1 (transient failure), -1 (fatal, set).
 */
static int write_row_by_row(struct inbox *ib, char *nums, struct position *pos, size_t npos,
                            long long *inserted, long long *dead)
{
    PGresult *res = PQexec(ib->db, "BEGIN");
    int rc = 0;

    *inserted = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = 1;
    PQclear(res);
    for (size_t i = 0; rc == 0 && i < ib->nrows; i++) {
        struct row *r = &ib->rows[i];

        if (!r->event)
            continue;
        res = PQexec(ib->db, "SAVEPOINT row");
        PQclear(res);
        if (build(ib, r, 1, nums + i * 48, NULL, 0, false, true) < 0) {
            inbox_core_fail(ib, "inbox: out of memory");
            rc = -1;
            break;
        }
        res = exec(ib);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            *inserted += atoll(PQgetvalue(res, 0, 0));
            PQclear(PQexec(ib->db, "RELEASE SAVEPOINT row"));
        } else if (row_fault(sqlstate(res))) {
            PQclear(PQexec(ib->db, "ROLLBACK TO SAVEPOINT row"));
            if (refuse_row(r, PQresultErrorMessage(res)) < 0) {
                inbox_core_fail(ib, "inbox: out of memory");
                rc = -1;
            }
        } else {
            rc = transient(res, ib->db) ? 1 : -1;
            if (rc < 0)
                inbox_core_fail(ib, "inbox: writing event \"%s\" failed: %s", r->ev.id,
                     PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    /* The dead letters (the refused rows among them) and the positions. */
    if (rc == 0 && build(ib, ib->rows, ib->nrows, nums, pos, npos, true, false) < 0) {
        inbox_core_fail(ib, "inbox: out of memory");
        rc = -1;
    } else if (rc == 0) {
        res = exec(ib);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            *dead = atoll(PQgetvalue(res, 0, 1));
        } else {
            rc = transient(res, ib->db) ? 1 : -1;
            if (rc < 0)
                inbox_core_fail(ib, "inbox: writing the batch failed: %s",
                                PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    res = PQexec(ib->db, rc == 0 ? "COMMIT" : "ROLLBACK");
    if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = 1;
    PQclear(res);
    return rc;
}

/*
 * Write the batch.  Returns 0 (written, or nothing to write), 1 (the database is
 * down: the batch is kept, retry_at set), -1 (fatal: errstr set).
 */
static int flush(struct inbox *ib)
{
    struct position *pos;
    char *nums;
    PGresult *res;
    long long inserted = 0, dead = 0, events = 0;
    size_t npos;
    int rc = 0;

    if (ib->nrows == 0) {
        /* Nothing to write (a revoke dropped it): the database is up when it connects. */
        if (ib->retry_at_ms && db_open(ib) < 0) {
            ib->retry_at_ms = now_ms() + ib->cfg->postgres.retry_interval_ms;
            return 1;
        }
        ib->retry_at_ms = 0;
        return 0;
    }
    if (db_open(ib) < 0) {
        ib->retry_at_ms = now_ms() + ib->cfg->postgres.retry_interval_ms;
        return 1;
    }
    pos = calloc(ib->nrows, sizeof(*pos));
    nums = malloc(ib->nrows * 48);
    if (!pos || !nums) {
        free(pos);
        free(nums);
        inbox_core_fail(ib, "inbox: out of memory");
        return -1;
    }
    npos = positions(ib, pos);
    for (size_t i = 0; i < ib->nrows; i++)
        events += ib->rows[i].event;
    if (build(ib, ib->rows, ib->nrows, nums, pos, npos, true, true) < 0) {
        inbox_core_fail(ib, "inbox: out of memory");
        rc = -1;
        goto out;
    }
    res = exec(ib);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        inserted = atoll(PQgetvalue(res, 0, 0));
        dead = atoll(PQgetvalue(res, 0, 1));
    } else if (row_fault(sqlstate(res))) {
        char line[300];

        repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
        log_info("inbox: PostgreSQL refused a batch of %zu messages (%s): writing them one by "
                 "one",
                 ib->nrows, line);
        rc = write_row_by_row(ib, nums, pos, npos, &inserted, &dead);
        events = 0;
        for (size_t i = 0; i < ib->nrows; i++)
            events += ib->rows[i].event;
    } else if (transient(res, ib->db)) {
        char line[300];

        repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
        log_warn("inbox: writing a batch of %zu messages failed: %s; retrying in %lld ms",
                 ib->nrows, line, (long long)ib->cfg->postgres.retry_interval_ms);
        rc = 1;
    } else {
        char line[600];

        repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
        inbox_core_fail(ib,
                        "inbox: writing into %s failed: %s (has sql/007_inbox.sql been run in "
                        "that database, and may the relay's role write its tables?)",
                        ib->q_inbox, line);
        rc = -1;
    }
    PQclear(res);
    if (rc == 1) {
        ib->n.batch_errors++;
        if (PQstatus(ib->db) != CONNECTION_OK)
            db_close(ib);
        ib->retry_at_ms = now_ms() + ib->cfg->postgres.retry_interval_ms;
        goto out;
    }
    if (rc < 0)
        goto out;
    ib->retry_at_ms = 0;
    ib->n.batches++;
    ib->n.inserted += (uint64_t)inserted;
    ib->n.duplicates += (uint64_t)(events - inserted);
    ib->n.dead_letters += (uint64_t)dead;
    {
        struct inbox_pos *told = calloc(npos ? npos : 1, sizeof(*told));

        /* Told to the broker only: the database has them already. */
        for (size_t k = 0; told && k < npos; k++)
            told[k] = (struct inbox_pos){pos[k].topic, pos[k].partition, pos[k].next};
        if (told && ib->ops->written)
            ib->ops->written(ib->src, told, npos);
        free(told);
    }
    log_debug("inbox: batch of %zu messages: %lld inserted, %lld duplicates, %lld set aside",
              ib->nrows, inserted, events - inserted, dead);
    batch_clear(ib);
out:
    free(pos);
    free(nums);
    return rc;
}

/*
 * Messages
 */

/* Count row r (the last one filled) into the batch. */
static void commit_row(struct inbox *ib)
{
    if (ib->nrows == 0)
        ib->batch_started_ms = now_ms();
    ib->nrows++;
}

int inbox_core_add(struct inbox *ib, const struct inbox_in *in)
{
    struct row *r = &ib->rows[ib->nrows];
    char why[300];
    int rc;

    if (ib->nrows >= (size_t)ib->cfg->inbox.batch_size) {
        /* A source's bug: read() was given the room left; never past the array. */
        inbox_core_fail(ib, "inbox: internal error: the %s source read past the batch's room",
                        ib->ops->broker);
        return -1;
    }
    memset(r, 0, sizeof(*r));
    r->partition = in->partition;
    r->offset = in->offset;
    r->key = in->m.key;
    r->key_len = in->m.key_len;
    r->value = in->m.value;
    r->value_len = in->m.value_len;
    r->nhdrs = in->m.nheaders;
    r->unreadable = in->unreadable != NULL;
    r->topic = in->topic;
    if (r->nhdrs && !(r->hdrs = malloc(r->nhdrs * sizeof(*r->hdrs)))) {
        row_free(ib, r);
        inbox_core_fail(ib, "inbox: out of memory");
        return -1;
    }
    if (r->nhdrs)
        memcpy(r->hdrs, in->m.headers, r->nhdrs * sizeof(*r->hdrs));
    if (in->unreadable) {
        snprintf(why, sizeof(why), "%s", in->unreadable);
        rc = INBOX_NOT_AN_EVENT;
    } else if (in->m.nheaders > INBOX_MAX_HEADERS) {
        /* Not one header dropped in silence: the message is set aside whole. */
        snprintf(why, sizeof(why), "more than %d headers", INBOX_MAX_HEADERS);
        rc = INBOX_NOT_AN_EVENT;
    } else {
        rc = inbox_event_parse(&in->m, &r->ev, why, sizeof(why));
    }
    r->event = rc == 0;
    if (rc < 0 ||
        (rc > 0 && set_aside(r, in->unreadable ? "unreadable" : "not-an-event", why) < 0)) {
        row_free(ib, r);
        inbox_core_fail(ib, "inbox: out of memory");
        return -1;
    }
    r->handle = in->handle;
    commit_row(ib);
    return 0;
}

void inbox_core_assigned(struct inbox *ib, int partitions)
{
    ib->assigned = partitions;
}

void inbox_core_joined(struct inbox *ib)
{
    ib->joined = true;
}

int inbox_core_flush(struct inbox *ib)
{
    return ib->nrows > 0 ? flush(ib) : 0;
}

void inbox_core_drop(struct inbox *ib)
{
    if (ib->nrows > 0)
        log_warn("inbox: %zu messages not written before the revoke: the next owner reads "
                 "them again",
                 ib->nrows);
    batch_clear(ib);
}

/*
 * Positions
 */

static int render(void *opaque, const char *path, struct jbuf *body, const char **content_type);

/*
 * Wait ms, answering the admin endpoint meanwhile (a wait inside a librdkafka
 * callback must not leave /healthz and /readyz unanswered).  Returns true when a stop
 * is asked for.
 */
static bool wait_serving(struct inbox *ib, int ms)
{
    int64_t until = now_ms() + ms;

    for (;;) {
        struct pollfd fds[1 + ADMIN_MAX_POLLFDS];
        size_t nadmin = ib->admin ? admin_pollfds(ib->admin, fds + 1, ADMIN_MAX_POLLFDS) : 0;
        int64_t left = until - now_ms();
        int timeout = (int)left;

        if (left <= 0)
            return false;
        if (ib->admin && admin_timeout_ms(ib->admin) >= 0 && admin_timeout_ms(ib->admin) < timeout)
            timeout = admin_timeout_ms(ib->admin);
        fds[0] = (struct pollfd){.fd = ib->stop_fd, .events = POLLIN};
        if (poll(fds, (nfds_t)(1 + nadmin), timeout) < 0 && errno != EINTR)
            return false;
        if (fds[0].revents)
            return true;
        if (ib->admin)
            admin_handle(ib->admin, fds + 1, nadmin, render, ib);
    }
}

/*
 * The database's positions.  The database must answer first: a source's own idea
 * (a group's offset) could have expired, and the broker's default would then decide
 * where to start.  So this waits, retrying every postgres.retry_interval, until it
 * does -- or until a stop is asked for -- with the admin endpoint answering meanwhile
 * (/readyz: the database is down).
 */
int inbox_core_positions(struct inbox *ib, void (*each)(void *arg, const struct inbox_pos *pos),
                         void *arg)
{
    const char *params[1] = {ib->cfg->inbox.consumer};
    PGresult *res = NULL;
    char sql[600];

    for (;;) {
        char line[300];

        if (db_open(ib) == 0) {
            snprintf(sql, sizeof(sql),
                     "SELECT topic, partition, next_offset FROM %s WHERE consumer = $1",
                     ib->q_position);
            res = PQexecParams(ib->db, sql, 1, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(res) == PGRES_TUPLES_OK) {
                ib->retry_at_ms = 0;
                break;
            }
            repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
            log_warn("inbox: cannot read %s (%s): the partitions wait for it; retrying in "
                     "%lld ms",
                     ib->q_position, line, (long long)ib->cfg->postgres.retry_interval_ms);
            PQclear(res);
            res = NULL;
            if (PQstatus(ib->db) != CONNECTION_OK)
                db_close(ib);
        } else {
            log_info("inbox: the assigned partitions wait for the inbox database");
        }
        ib->retry_at_ms = now_ms() + ib->cfg->postgres.retry_interval_ms;
        if (wait_serving(ib, (int)ib->cfg->postgres.retry_interval_ms)) {
            ib->stop_seen = true;
            return 1; /* stopping: nothing will be read */
        }
    }
    for (int i = 0; i < PQntuples(res); i++) {
        struct inbox_pos pos = {PQgetvalue(res, i, 0), atoi(PQgetvalue(res, i, 1)),
                                atoll(PQgetvalue(res, i, 2))};

        each(arg, &pos);
    }
    PQclear(res);
    return 0;
}

/*
 * Admin endpoint
 */

static int render(void *opaque, const char *path, struct jbuf *body, const char **content_type)
{
    struct inbox *ib = opaque;
    bool db_up = ib->retry_at_ms == 0 && ib->db && PQstatus(ib->db) == CONNECTION_OK;

    if (strcmp(path, "/healthz") == 0) {
        jbuf_puts(body, "ok\n");
        return 200;
    }
    if (strcmp(path, "/readyz") == 0) {
        if (ib->joined && db_up) {
            jbuf_puts(body, "ready\n");
            return 200;
        }
        jbuf_printf(body, "not ready: %s\n",
                    !ib->joined ? "not yet in the consumer group" : "the database is down");
        return 503;
    }
    if (strcmp(path, "/metrics") == 0) {
        *content_type = METRICS_CONTENT_TYPE;
        jbuf_printf(body,
                    "# HELP outbox_relay_inbox_messages_total Messages read, by what became "
                    "of them.\n"
                    "# TYPE outbox_relay_inbox_messages_total counter\n"
                    "outbox_relay_inbox_messages_total{outcome=\"inserted\"} %llu\n"
                    "outbox_relay_inbox_messages_total{outcome=\"duplicate\"} %llu\n"
                    "outbox_relay_inbox_messages_total{outcome=\"dead_letter\"} %llu\n"
                    "# HELP outbox_relay_inbox_batches_total Batches committed.\n"
                    "# TYPE outbox_relay_inbox_batches_total counter\n"
                    "outbox_relay_inbox_batches_total %llu\n"
                    "# HELP outbox_relay_inbox_batch_errors_total Batches that failed and "
                    "were retried.\n"
                    "# TYPE outbox_relay_inbox_batch_errors_total counter\n"
                    "outbox_relay_inbox_batch_errors_total %llu\n"
                    "# HELP outbox_relay_inbox_retention_deleted_total Processed rows deleted "
                    "by inbox.retention.\n"
                    "# TYPE outbox_relay_inbox_retention_deleted_total counter\n"
                    "outbox_relay_inbox_retention_deleted_total %llu\n"
                    "# HELP outbox_relay_inbox_partitions_assigned Partitions assigned now (Kafka), "
                    "or the topics read (the other brokers).\n"
                    "# TYPE outbox_relay_inbox_partitions_assigned gauge\n"
                    "outbox_relay_inbox_partitions_assigned %d\n"
                    "# HELP outbox_relay_inbox_database_up 1 while the inbox database "
                    "takes batches.\n"
                    "# TYPE outbox_relay_inbox_database_up gauge\n"
                    "outbox_relay_inbox_database_up %d\n",
                    (unsigned long long)ib->n.inserted, (unsigned long long)ib->n.duplicates,
                    (unsigned long long)ib->n.dead_letters, (unsigned long long)ib->n.batches,
                    (unsigned long long)ib->n.batch_errors,
                    (unsigned long long)ib->n.retention_deleted, ib->assigned, db_up ? 1 : 0);
        return 200;
    }
    return 0;
}

/*
 * Retention: processed rows older than inbox.retention, RETENTION_BATCH at a time.
 */
static void retention(struct inbox *ib)
{
    char sql[1024], age[32];
    const char *params[2] = {ib->cfg->inbox.consumer, age};

    ib->retention_at_ms = now_ms() + RETENTION_PERIOD_MS;
    if (ib->cfg->inbox.retention_ms <= 0 || ib->retry_at_ms != 0 || db_open(ib) < 0)
        return;
    snprintf(age, sizeof(age), "%lld milliseconds", (long long)ib->cfg->inbox.retention_ms);
    snprintf(sql, sizeof(sql),
             "DELETE FROM %s WHERE ctid = ANY (ARRAY (SELECT ctid FROM %s WHERE consumer = $1 "
             "AND processed_at < now() - $2::interval LIMIT %d))",
             ib->q_inbox, ib->q_inbox, RETENTION_BATCH);
    for (int round = 0; round < RETENTION_ROUNDS; round++) {
        PGresult *res = PQexecParams(ib->db, sql, 2, NULL, params, NULL, NULL, 0);
        long long n = PQresultStatus(res) == PGRES_COMMAND_OK ? atoll(PQcmdTuples(res)) : -1;

        if (n < 0) {
            char line[300];

            repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
            log_warn("inbox: retention: %s", line);
        }
        PQclear(res);
        if (n <= 0)
            break;
        ib->n.retention_deleted += (uint64_t)n;
        if (n < RETENTION_BATCH)
            break;
    }
}

/*
 * The loop
 */

/* The source inbox.broker names. */
static const struct inbox_source_ops *source_of(const struct relay_config *cfg)
{
    if (strcmp(cfg->inbox.broker, "nats") == 0)
        return &inbox_source_nats;
    if (strcmp(cfg->inbox.broker, "redis") == 0)
        return &inbox_source_redis;
    if (strcmp(cfg->inbox.broker, "rabbitmq") == 0)
        return &inbox_source_rabbitmq;
    return &inbox_source_kafka;
}

static int open_all(struct inbox *ib, char *errstr, size_t errstr_size)
{
    const struct relay_config *cfg = ib->cfg;

    if (!(ib->src = ib->ops->open(cfg, ib, errstr, errstr_size)))
        return -1;
    if (cfg->admin.listen[0] && !(ib->admin = admin_open(cfg->admin.listen, errstr, errstr_size)))
        return -1;
    if (ib->admin)
        log_info("admin endpoint listening on %s (port %d): /metrics, /healthz, /readyz",
                 cfg->admin.listen, admin_port(ib->admin));
    return 0;
}

static void close_all(struct inbox *ib)
{
    if (ib->src) {
        if (ib->ops->leave)
            ib->ops->leave(ib->src);
        /* The rows hold the source's messages: they go before the source does. */
        batch_clear(ib);
        ib->ops->close(ib->src);
        ib->src = NULL;
    }
    batch_clear(ib);
    free(ib->rows);
    free(ib->params);
    jbuf_free(&ib->sql);
    admin_close(ib->admin);
    db_close(ib);
}

int inbox_run(const struct relay_config *cfg, int stop_fd, char *errstr, size_t errstr_size)
{
    struct inbox ib = {.cfg = cfg, .ops = source_of(cfg), .stop_fd = stop_fd};
    char redacted[512];
    bool stopping = false;

    jbuf_init(&ib.sql);
    redact_dsn(cfg->inbox.dsn, redacted, sizeof(redacted));
    log_info("outbox-relay %s inbox starting: consumer \"%s\", %zu topics on %s, table "
             "\"%s.%s\", dsn \"%s\"",
             RELAY_VERSION, cfg->inbox.consumer, cfg->inbox.ntopics, ib.ops->broker,
             cfg->inbox.schema, cfg->inbox.table, redacted);
    ib.rows = calloc((size_t)cfg->inbox.batch_size, sizeof(*ib.rows));
    if (!ib.rows) {
        snprintf(errstr, errstr_size, "inbox: out of memory");
        return -1;
    }
    if (open_all(&ib, errstr, errstr_size) < 0) {
        close_all(&ib);
        return -1;
    }
    if (db_open(&ib) < 0)
        ib.retry_at_ms = now_ms() + cfg->postgres.retry_interval_ms;
    ib.retention_at_ms = now_ms() + 1000;
    while (!ib.fatal && !stopping) {
        struct pollfd fds[2 + ADMIN_MAX_POLLFDS];
        size_t nadmin = ib.admin ? admin_pollfds(ib.admin, fds + 2, ADMIN_MAX_POLLFDS) : 0;
        int64_t now = now_ms();
        int timeout = 1000; /* the consumer is polled at least this often */
        int sfd = ib.ops->fd ? ib.ops->fd(ib.src) : -1, read_wait = 0;

        if (ib.retry_at_ms)
            timeout = (int)(ib.retry_at_ms > now ? ib.retry_at_ms - now : 0);
        else if (ib.nrows > 0)
            timeout = (int)(ib.batch_started_ms + cfg->inbox.batch_wait_ms > now
                                ? ib.batch_started_ms + cfg->inbox.batch_wait_ms - now
                                : 0);
        if (timeout > 1000)
            timeout = 1000;
        /* A batch filled up with messages left in the queue: no wakeup will come for them. */
        if (!ib.retry_at_ms && ib.ops->pending && ib.ops->pending(ib.src))
            timeout = 0;
        if (ib.admin && admin_timeout_ms(ib.admin) >= 0 && admin_timeout_ms(ib.admin) < timeout)
            timeout = admin_timeout_ms(ib.admin);
        /* A source without a descriptor waits inside its read, a little at a time. */
        if (sfd < 0 && !ib.retry_at_ms) {
            read_wait = timeout < 200 ? timeout : 200;
            timeout = 0;
        }
        fds[0] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
        if (poll(fds, (nfds_t)(2 + nadmin), timeout) < 0 && errno != EINTR) {
            inbox_core_fail(&ib, "poll: %s", strerror(errno));
            break;
        }
        if (ib.admin)
            admin_handle(ib.admin, fds + 2, nadmin, render, &ib);
        if (fds[0].revents || ib.stop_seen) {
            log_info("inbox: stopping: writing the %zu messages in hand", ib.nrows);
            stopping = true;
        }
        now = now_ms();
        if (ib.retry_at_ms) {
            /* The database was down: the batch in hand first, nothing read meanwhile. */
            if (now < ib.retry_at_ms && !stopping)
                continue;
            if (flush(&ib) != 0)
                continue;
            log_info("inbox: the database takes batches again");
        }
        if (!stopping && ib.nrows < (size_t)cfg->inbox.batch_size)
            ib.ops->read(ib.src, (size_t)cfg->inbox.batch_size - ib.nrows, read_wait);
        if (ib.nrows > 0 && (stopping || ib.nrows >= (size_t)cfg->inbox.batch_size ||
                             now - ib.batch_started_ms >= cfg->inbox.batch_wait_ms))
            flush(&ib);
        if (!stopping && now >= ib.retention_at_ms)
            retention(&ib);
    }
    if (ib.fatal) {
        snprintf(errstr, errstr_size, "%s", ib.errstr);
        batch_clear(&ib);
    }
    close_all(&ib);
    log_info("inbox stopped: %llu events inserted, %llu duplicates, %llu set aside",
             (unsigned long long)ib.n.inserted, (unsigned long long)ib.n.duplicates,
             (unsigned long long)ib.n.dead_letters);
    return ib.fatal ? -1 : 0;
}

/*
 * check
 */

int inbox_check(const struct relay_config *cfg, int timeout_ms, FILE *out)
{
    struct inbox ib = {.cfg = cfg, .ops = source_of(cfg)};
    /*
     * What the relay does to each table: the inbox gets its rows (and loses processed
     * ones to retention), the positions are read at every assignment and upserted,
     * the dead letters get rows numbered by their sequence.
     */
    const struct {
        const char *what;
        char **table;
        const char *columns;
        const char *privileges[4];
        const char *sequence_column; /* whose sequence the role must use; NULL: none */
    } tables[] = {
        {"inbox table", &ib.q_inbox,
         "consumer, event_id, type, source, subject, event_time, key, headers, content_type, "
         "payload, payload_bytes, topic, partition, \"offset\", received_at, processed_at",
         {"INSERT", "SELECT", cfg->inbox.retention_ms > 0 ? "DELETE" : NULL}, NULL},
        {"position table", &ib.q_position, "consumer, topic, partition, next_offset",
         {"SELECT", "INSERT", "UPDATE"}, NULL},
        {"dead-letter table", &ib.q_dead,
         "consumer, topic, partition, \"offset\", reason, error, event_id, key, value, "
         "headers",
         {"INSERT"}, "id"},
    };
    int failed = 0;

    if (db_open(&ib) < 0) {
        fprintf(out, "FAIL inbox database: cannot connect (see the log line above)\n");
        failed++;
    } else {
        fprintf(out, "ok   inbox database: connected\n");
        for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
            char sql[800];
            PGresult *res;
            bool ok;

            char lacking[80] = "";

            /* Read every column the relay writes (no row), then ask for the privileges. */
            snprintf(sql, sizeof(sql), "SELECT %s FROM %s WHERE false", tables[i].columns,
                     *tables[i].table);
            res = PQexec(ib.db, sql);
            ok = PQresultStatus(res) == PGRES_TUPLES_OK;
            for (int k = 0; ok && k < 4 && tables[i].privileges[k]; k++) {
                const char *params[2] = {*tables[i].table, tables[i].privileges[k]};

                PQclear(res);
                res = PQexecParams(ib.db, "SELECT has_table_privilege($1, $2)", 2, NULL,
                                   params, NULL, NULL, 0);
                ok = PQresultStatus(res) == PGRES_TUPLES_OK &&
                     strcmp(PQgetvalue(res, 0, 0), "t") == 0;
                if (!ok)
                    snprintf(lacking, sizeof(lacking), "the role lacks the %s privilege on it",
                             tables[i].privileges[k]);
            }
            if (ok && tables[i].sequence_column) {
                const char *params[2] = {*tables[i].table, tables[i].sequence_column};

                PQclear(res);
                res = PQexecParams(ib.db, "SELECT coalesce(has_sequence_privilege("
                                          "pg_get_serial_sequence($1, $2), 'USAGE'), true)",
                                   2, NULL, params, NULL, NULL, 0);
                ok = PQresultStatus(res) == PGRES_TUPLES_OK &&
                     strcmp(PQgetvalue(res, 0, 0), "t") == 0;
                if (!ok)
                    snprintf(lacking, sizeof(lacking), "the role may not use the sequence of "
                                                       "its %s column",
                             tables[i].sequence_column);
            }
            if (ok) {
                fprintf(out, "ok   %s %s: present, writable\n", tables[i].what,
                        *tables[i].table);
            } else {
                char line[300];

                repl_first_line(PQresultStatus(res) == PGRES_TUPLES_OK ? lacking
                                                                       : PQresultErrorMessage(res),
                                line, sizeof(line));
                fprintf(out, "FAIL %s %s: %s (run sql/007_inbox.sql in that database)\n",
                        tables[i].what, *tables[i].table, line);
                failed++;
            }
            PQclear(res);
        }
    }
    db_close(&ib);
    failed += ib.ops->check(cfg, timeout_ms, out);
    return failed ? -1 : 0;
}

/*
 * status
 */

/* The first value of a one-row query with the consumer as $1, or NULL (errstr set). */
static PGresult *query_consumer(struct inbox *ib, const char *sql, char *errstr,
                                size_t errstr_size)
{
    const char *params[1] = {ib->cfg->inbox.consumer};
    PGresult *res = PQexecParams(ib->db, sql, 1, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char line[300];

        repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
        snprintf(errstr, errstr_size, "%s (has sql/007_inbox.sql been run?)", line);
        PQclear(res);
        return NULL;
    }
    return res;
}

int inbox_status(const struct relay_config *cfg, bool json, int timeout_ms, FILE *out,
                 char *errstr, size_t errstr_size)
{
    struct inbox ib = {.cfg = cfg, .ops = source_of(cfg)};
    PGresult *rows = NULL, *dead = NULL, *pos = NULL;
    void *st = NULL;
    char sql[700];
    int rc = -1;
    struct jbuf b;

    jbuf_init(&b);
    if (db_open(&ib) < 0) {
        snprintf(errstr, errstr_size, "cannot connect to the inbox database (inbox.dsn)");
        goto out;
    }
    snprintf(sql, sizeof(sql),
             "SELECT count(*), count(*) FILTER (WHERE processed_at IS NULL), "
             "coalesce(to_char(min(received_at) FILTER (WHERE processed_at IS NULL) AT TIME "
             "ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') FROM %s WHERE consumer = $1",
             ib.q_inbox);
    if (!(rows = query_consumer(&ib, sql, errstr, errstr_size)))
        goto out;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE consumer = $1", ib.q_dead);
    if (!(dead = query_consumer(&ib, sql, errstr, errstr_size)))
        goto out;
    snprintf(sql, sizeof(sql),
             "SELECT topic, partition, next_offset FROM %s WHERE consumer = $1 ORDER BY 1, 2",
             ib.q_position);
    if (!(pos = query_consumer(&ib, sql, errstr, errstr_size)))
        goto out;
    /* The broker's end of each partition, for the lag; without it, positions alone. */
    st = ib.ops->status_open ? ib.ops->status_open(cfg) : NULL;
    if (json) {
        jbuf_puts(&b, "{\"consumer\":");
        jbuf_put_json_string(&b, cfg->inbox.consumer, strlen(cfg->inbox.consumer));
        jbuf_printf(&b, ",\"rows\":%s,\"pending\":%s,\"oldest_pending\":",
                    PQgetvalue(rows, 0, 0), PQgetvalue(rows, 0, 1));
        if (PQgetvalue(rows, 0, 2)[0])
            jbuf_put_json_string(&b, PQgetvalue(rows, 0, 2), strlen(PQgetvalue(rows, 0, 2)));
        else
            jbuf_puts(&b, "null");
        jbuf_printf(&b, ",\"dead_letters\":%s,\"partitions\":[", PQgetvalue(dead, 0, 0));
    } else {
        fprintf(out, "inbox \"%s\" (%s.%s): %s rows, %s pending%s%s%s, %s dead letters\n",
                cfg->inbox.consumer, cfg->inbox.schema, cfg->inbox.table,
                PQgetvalue(rows, 0, 0), PQgetvalue(rows, 0, 1),
                PQgetvalue(rows, 0, 2)[0] ? " (oldest received " : "", PQgetvalue(rows, 0, 2),
                PQgetvalue(rows, 0, 2)[0] ? ")" : "", PQgetvalue(dead, 0, 0));
    }
    for (int i = 0; i < PQntuples(pos); i++) {
        const char *topic = PQgetvalue(pos, i, 0);
        int part = atoi(PQgetvalue(pos, i, 1));
        long long at = atoll(PQgetvalue(pos, i, 2));
        int64_t hi = ib.ops->status_end ? ib.ops->status_end(st, topic, part, timeout_ms) : -1;
        bool end = hi >= 0;

        if (json) {
            jbuf_puts(&b, i ? ",{\"topic\":" : "{\"topic\":");
            jbuf_put_json_string(&b, topic, strlen(topic));
            jbuf_printf(&b, ",\"partition\":%d,\"position\":%lld", part, at);
            if (end)
                jbuf_printf(&b, ",\"end\":%lld,\"lag\":%lld}", (long long)hi,
                            (long long)hi - at);
            else
                jbuf_puts(&b, ",\"end\":null,\"lag\":null}");
        } else if (end) {
            fprintf(out, "  %s [%d]: position %lld, end %lld, lag %lld\n", topic, part, at,
                    (long long)hi, (long long)hi - at);
        } else {
            fprintf(out, "  %s [%d]: position %lld (the broker did not tell its end)\n",
                    topic, part, at);
        }
    }
    if (json) {
        jbuf_puts(&b, "]}\n");
        fwrite(b.data, 1, b.len, out);
    } else if (PQntuples(pos) == 0) {
        fprintf(out, "  no position yet: the inbox has not written a batch\n");
    }
    rc = 0;
out:
    if (ib.ops->status_close)
        ib.ops->status_close(st);
    PQclear(rows);
    PQclear(dead);
    PQclear(pos);
    jbuf_free(&b);
    db_close(&ib);
    return rc;
}

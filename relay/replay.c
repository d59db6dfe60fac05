/*
 * replay.c -- `outbox-relay replay`: dead letters sent back through the sink (replay.h).
 *
 * The engine and the table source.  One record at a time, oldest first: a source
 * reads it (the table here, the topic in replay_topic.c), the engine decides whether
 * it can be sent (a row that never became an event cannot; nor a record without a
 * destination; nor a value left out whose outbox row is gone), sends it through the
 * configuration's sink and waits for the sink's report, then has the source record
 * the outcome -- in the record's own row (sql/008_dead_letter_replay.sql), or in the
 * replay's state table for a topic's record (sql/009) -- before the next one.  So the
 * progress is in PostgreSQL: a replay interrupted anywhere and run again sends at
 * most the event that was in flight a second time, with its id unchanged for the
 * consumers to deduplicate.
 *
 * A record refused again is "failed", and the next replay tries it again; one that
 * has failed replay.max_replays times is "parked": no replay takes it any more.
 * Transient sink failures (a broker away) are retried a few times within the run
 * before the record counts as failed; a sink that refuses the relay itself (bad
 * credentials) stops the replay with its reason.
 */
#include "replay.h"
#include "replay_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "format.h"
#include "jsonbuf.h"
#include "jsonscan.h"
#include "log.h"
#include "replication.h"
#include "sink.h"

/* Records read per query. */
#define PAGE 100
/* Attempts at a record whose sink failure is transient, and the wait between them. */
#define ATTEMPTS 3
#define ATTEMPT_WAIT_MS 1000
/* How long one record may wait for the sink's report. */
#define REPORT_TIMEOUT_MS 30000

/* The report awaited: the attempt's tag; a late report for an earlier one is ignored. */
static void on_report(void *opaque, const struct sink_report *r)
{
    struct replay_outcome *o = opaque;

    if (r->tag != o->tag)
        return;
    o->reported = true;
    o->outcome = r->outcome;
    snprintf(o->err, sizeof(o->err), "%s", r->err ? r->err : "");
}

char *replay_unhex(const char *hex, size_t *n)
{
    size_t len = strlen(hex) / 2;
    char *out = malloc(len + 1);

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned v;

        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[len] = '\0';
    *n = len;
    return out;
}

bool replay_stop_requested(int stop_fd)
{
    struct pollfd p = {.fd = stop_fd, .events = POLLIN};

    return stop_fd >= 0 && poll(&p, 1, 0) > 0;
}

/*
 * Headers
 */

char *replay_dup(const void *p, size_t len)
{
    char *s = malloc(len + 1);

    if (s) {
        if (len)
            memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

int replay_headers_add(struct replay_headers *h, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    char *n, *v = NULL;

    if ((name_len >= 4 && memcmp(name, "dlq_", 4) == 0) ||
        (name_len == strlen(REPLAY_COUNT_HEADER) &&
         memcmp(name, REPLAY_COUNT_HEADER, name_len) == 0))
        return 0;
    /* One place stays for the replay count. */
    if (h->n >= FORMAT_MAX_HEADERS - 1)
        return -1;
    if (!(n = replay_dup(name, name_len)) || (value && !(v = replay_dup(value, value_len)))) {
        free(n);
        return -1;
    }
    h->names[h->n] = n;
    h->values[h->n] = v;
    h->lens[h->n] = value ? value_len : 0;
    h->n++;
    return 0;
}

void replay_headers_free(struct replay_headers *h)
{
    for (int i = 0; i < h->n; i++) {
        free(h->names[i]);
        free(h->values[i]);
    }
    h->n = 0;
}

/* A JSON string's body unescaped into tmp; returns 0 or -1. */
static int unescaped(struct ev_str raw, struct jbuf *tmp, struct ev_str *text)
{
    jbuf_reset(tmp);
    return json_string_unescape(raw, tmp, text);
}

/*
 * The dead-letter table's headers (a JSON object of strings, or "") into r->headers;
 * r->headers_bad when they are not that.
 */
static void headers_from_json(struct replay_record *r, const char *json)
{
    struct json_iter it;
    struct ev_str key, value;
    struct jbuf nbuf, vbuf;

    if (!json[0])
        return;
    if (!json_valid(json, strlen(json)) || json_iter_object(&it, json, strlen(json)) != 0) {
        r->headers_bad = true;
        return;
    }
    jbuf_init(&nbuf);
    jbuf_init(&vbuf);
    while (json_iter_next(&it, &key, &value) == 1) {
        struct ev_str name, text = {NULL, 0};
        bool null = value.len == 4 && memcmp(value.p, "null", 4) == 0;

        if (unescaped(key, &nbuf, &name) < 0 || (!null && !json_raw_is_string(value)) ||
            (!null && unescaped((struct ev_str){value.p + 1, value.len - 2}, &vbuf, &text) < 0) ||
            replay_headers_add(&r->headers, name.p, name.len, null ? NULL : text.p,
                               text.len) < 0) {
            r->headers_bad = true;
            break;
        }
    }
    jbuf_free(&nbuf);
    jbuf_free(&vbuf);
}

/*
 * Sending
 */

/*
 * Send r through the sink and wait for its report.  Returns 0 delivered, 1 refused
 * (err says why), -1 the sink refuses the relay itself (err says why).
 */
static int send_one(struct replay_ctx *c, const struct replay_record *r, char *err,
                    size_t err_size)
{
    const struct replay_headers *hs = &r->headers;
    struct replay_outcome *o = &c->o;
    struct out_msg *m = calloc(1, sizeof(*m));
    char count[16];
    int rc = 1;

    if (!m) {
        snprintf(err, err_size, "out of memory");
        return 1;
    }
    snprintf(count, sizeof(count), "%d", r->replay_count + 1);
    snprintf(m->topic, sizeof(m->topic), "%s", r->destination);
    m->id = r->event_id;
    m->id_len = strlen(r->event_id);
    m->key = r->key;
    m->key_len = r->key_len;
    m->value = r->value;
    m->value_len = r->value_len;
    for (int i = 0; i < hs->n; i++)
        m->headers[i] = (struct msg_header){hs->names[i], hs->values[i], hs->lens[i]};
    m->headers[hs->n] = (struct msg_header){REPLAY_COUNT_HEADER, count, strlen(count)};
    m->nheaders = hs->n + 1;
    for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
        int prc;

        memset(o, 0, sizeof(*o));
        o->tag = ++c->next_tag;
        prc = sink_produce(c->s, m, o->tag, err, err_size);
        if (prc == -EMSGSIZE || prc == -EACCES) {
            rc = 1;
            break;
        }
        if (prc == 0) {
            sink_flush(c->s, REPORT_TIMEOUT_MS);
            if (sink_refused(c->s)) {
                snprintf(err, err_size, "%s", sink_refused(c->s));
                rc = -1;
                break;
            }
            if (o->reported && o->outcome == SINK_DELIVERED) {
                rc = 0;
                break;
            }
            snprintf(err, err_size, "%s", o->reported ? o->err : "no answer from the sink");
            if (o->reported && o->outcome == SINK_UNDELIVERABLE) {
                rc = 1;
                break;
            }
        }
        /* Transient: the broker away, a full queue.  Start afresh after a pause. */
        if (attempt < ATTEMPTS)
            poll(NULL, 0, ATTEMPT_WAIT_MS);
        /*
         * Nothing of this attempt may linger into the next record's: a message still
         * queued could be delivered later, twice.
         */
        if (sink_outstanding(c->s) > 0) {
            char rerr[256];

            sink_reset(c->s, rerr, sizeof(rerr));
        }
    }
    if (rc == 0)
        err[0] = '\0';
    free(m);
    return rc;
}

/*
 * The value of a record whose value was left out: the outbox row's payload, which is
 * the message's value in the cloudevents and debezium formats.  Returns 0 (set), 1
 * (why says why it cannot be), -1 (errstr set).
 */
static int rebuild(PGconn *db, const struct relay_config *cfg, struct replay_record *r, char *why,
                   size_t why_size, char *errstr, size_t errstr_size)
{
    char sql[600];
    const char *params[1] = {r->event_id};
    PGresult *res;
    char *qt;

    if (relay_config_sink_common(cfg)->format == RELAY_FORMAT_CLOUDEVENTS_STRUCTURED) {
        snprintf(why, why_size, "its value was left out (too large), and in the structured "
                                "format the value is not the outbox row's payload");
        return 1;
    }
    if (!(qt = repl_quote_table(db, cfg->outbox.schema, cfg->outbox.table))) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    /* The id as the column's own type (uuid): its index serves the lookup. */
    snprintf(sql, sizeof(sql), "SELECT payload::text FROM %s WHERE id = $1", qt);
    free(qt);
    res = PQexecParams(db, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_FATAL_ERROR &&
        strncmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res,
                PG_DIAG_SQLSTATE) : "", "22", 2) == 0) {
        /* An id the column cannot hold: no row has it. */
        snprintf(why, why_size, "its value was left out (too large) and no outbox row has "
                                "its id");
        PQclear(res);
        return 1;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char line[300];

        repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
        snprintf(errstr, errstr_size, "reading the outbox row of event \"%s\": %s",
                 r->event_id, line);
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 0) {
        snprintf(why, why_size, "its value was left out (too large) and its outbox row is "
                                "gone");
        PQclear(res);
        return 1;
    }
    r->value_len = (size_t)PQgetlength(res, 0, 0);
    r->value = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
    r->rebuilt = true;
    if (!PQgetisnull(res, 0, 0) && !r->value) {
        PQclear(res);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    PQclear(res);
    return 0;
}

static void record_free(struct replay_record *r)
{
    free(r->key);
    free(r->value);
    r->key = r->value = NULL;
    replay_headers_free(&r->headers);
}

int replay_one(struct replay_ctx *c, struct replay_record *r)
{
    const struct relay_config *cfg = c->cfg;
    struct replay_summary *sum = c->sum;
    char why[600] = "";
    const char *state = NULL;
    int rc = 0;

    if (r->value_is_row) {
        snprintf(why, sizeof(why), "a row that could not become an event: mend it and "
                                   "insert it into the outbox again");
    } else if (!r->destination[0] || !r->event_id[0]) {
        snprintf(why, sizeof(why), "it has no %s",
                 r->destination[0] ? "event id" : "destination");
    } else if (r->replay_count >= (int)cfg->replay.max_replays) {
        state = "parked";
        snprintf(why, sizeof(why), "replayed %d times already (replay.max_replays)",
                 r->replay_count);
    } else if (r->value_omitted && !r->value) {
        rc = rebuild(c->db, cfg, r, why, sizeof(why), c->errstr, c->errstr_size);
    }
    if (rc < 0) {
        record_free(r);
        return -1;
    }
    if (why[0] && !state)
        state = "not-replayable";
    if (c->opts->dry_run) {
        fprintf(c->out, "%-14s %s event \"%s\" to \"%s\" (%s, %s, set aside %s, %zu "
                        "bytes%s)%s%s\n",
                state ? state : "would send", r->label, r->event_id, r->destination,
                r->reason, r->type[0] ? r->type : "no type", r->dead_at, r->value_len,
                r->rebuilt ? ", rebuilt from the outbox row" : "", why[0] ? ": " : "", why);
        if (!state)
            sum->sent++;
        else if (strcmp(state, "parked") == 0)
            sum->parked++;
        else
            sum->skipped++;
    } else if (state) {
        rc = c->mark(c, r, state, why, false);
        fprintf(c->out, "%-14s %s event \"%s\": %s\n", state, r->label, r->event_id, why);
        if (strcmp(state, "parked") == 0)
            sum->parked++;
        else
            sum->skipped++;
    } else {
        int sent;

        if (r->headers_bad) {
            snprintf(why, sizeof(why), "the record's headers are not a JSON object of "
                                       "strings");
            sent = 1;
        } else {
            sent = send_one(c, r, why, sizeof(why));
        }
        if (sent < 0) {
            snprintf(c->errstr, c->errstr_size, "%s", why);
            rc = -1;
        } else {
            rc = c->mark(c, r, sent == 0 ? "sent" : "failed", why, true);
            fprintf(c->out, "%-14s %s event \"%s\" to \"%s\"%s%s%s\n",
                    sent == 0 ? "sent" : "failed", r->label, r->event_id, r->destination,
                    r->rebuilt ? " (value rebuilt from the outbox row)" : "", sent ? ": " : "",
                    sent ? why : "");
            if (sent == 0)
                sum->sent++;
            else
                sum->failed++;
        }
    }
    fflush(c->out);
    record_free(r);
    return rc;
}

/*
 * The dead-letter table
 */

struct table_source {
    const char *qt; /* quoted, schema-qualified */
    long long id;   /* the record in hand */
};

/* Record the outcome in the record's own row. */
static int mark_table(struct replay_ctx *c, const struct replay_record *r, const char *state,
                      const char *error, bool counted)
{
    const struct table_source *t = c->source;
    char sql[600], idtext[32];
    const char *params[3] = {idtext, state, error && *error ? error : NULL};
    PGresult *res;
    int rc = 0;

    (void)r;
    snprintf(idtext, sizeof(idtext), "%lld", t->id);
    snprintf(sql, sizeof(sql),
             "UPDATE %s SET replay_count = replay_count + %d, replayed_at = now(), "
             "replay_state = $2, replay_error = $3 WHERE id = $1",
             t->qt, counted ? 1 : 0);
    res = PQexecParams(c->db, sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char line[300];

        repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
        snprintf(c->errstr, c->errstr_size, "recording the replay of record %lld: %s", t->id,
                 line);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* Replay the table's selected records, oldest first.  Returns 0 or -1 (errstr set). */
static int replay_table(struct replay_ctx *c, const char *qt, int stop_fd, bool *stopped)
{
    const struct replay_options *opts = c->opts;
    struct table_source t = {.qt = qt};
    char sql[2048], after[32], limit[32];
    const char *params[6];
    long long last = 0;
    int rc = 0;

    c->mark = mark_table;
    c->source = &t;
    snprintf(sql, sizeof(sql),
             "SELECT id, coalesce(event_id, ''), coalesce(destination, ''), reason, "
             "encode(key, 'hex'), encode(value, 'hex'), value_omitted_size IS NOT NULL, "
             "value_is_row, replay_count, coalesce(headers::text, ''), "
             "coalesce(headers->>'ce_type', headers->>'type', headers->>'eventType', ''), "
             "dead_at FROM %s "
             "WHERE (replay_state IS NULL OR replay_state = 'failed') AND id > $1 "
             "AND ($2::timestamptz IS NULL OR dead_at >= $2) "
             "AND ($3::timestamptz IS NULL OR dead_at < $3) "
             "AND ($4::text IS NULL OR reason = $4) "
             "AND ($5::text IS NULL OR coalesce(headers->>'ce_type', headers->>'type', "
             "headers->>'eventType') = $5) "
             "ORDER BY id LIMIT $6",
             qt);
    while (rc == 0 && !*stopped && c->left > 0) {
        PGresult *res;
        int n;

        snprintf(after, sizeof(after), "%lld", last);
        snprintf(limit, sizeof(limit), "%lld", (long long)(c->left < PAGE ? c->left : PAGE));
        params[0] = after;
        params[1] = opts->since;
        params[2] = opts->until;
        params[3] = opts->reason;
        params[4] = opts->type;
        params[5] = limit;
        res = PQexecParams(c->db, sql, 6, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            char line[300];

            repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
            snprintf(c->errstr, c->errstr_size, "reading %s: %s (has "
                                                "sql/008_dead_letter_replay.sql been run?)",
                     qt, line);
            PQclear(res);
            return -1;
        }
        n = PQntuples(res);
        for (int i = 0; i < n && rc == 0; i++) {
            struct replay_record r = {
                .event_id = PQgetvalue(res, i, 1),
                .destination = PQgetvalue(res, i, 2),
                .reason = PQgetvalue(res, i, 3),
                .value_omitted = strcmp(PQgetvalue(res, i, 6), "t") == 0,
                .value_is_row = strcmp(PQgetvalue(res, i, 7), "t") == 0,
                .replay_count = atoi(PQgetvalue(res, i, 8)),
                .type = PQgetvalue(res, i, 10),
                .dead_at = PQgetvalue(res, i, 11),
            };

            t.id = last = atoll(PQgetvalue(res, i, 0));
            snprintf(r.label, sizeof(r.label), "#%lld", t.id);
            c->left--;
            if ((!PQgetisnull(res, i, 4) &&
                 !(r.key = replay_unhex(PQgetvalue(res, i, 4), &r.key_len))) ||
                (!PQgetisnull(res, i, 5) &&
                 !(r.value = replay_unhex(PQgetvalue(res, i, 5), &r.value_len)))) {
                free(r.key);
                snprintf(c->errstr, c->errstr_size, "out of memory");
                rc = -1;
                break;
            }
            headers_from_json(&r, PQgetvalue(res, i, 9));
            rc = replay_one(c, &r);
            if (rc == 0 && replay_stop_requested(stop_fd))
                *stopped = true;
            if (*stopped)
                break;
        }
        PQclear(res);
        if (n == 0)
            break;
    }
    return rc;
}

/*
 * The command
 */

/* One replay at a time per source: two would each send every record.  0 or -1. */
static int lock_source(struct replay_ctx *c, const char *what)
{
    const char *lp[1] = {what};
    PGresult *lock = PQexecParams(c->db, "SELECT pg_try_advisory_lock(hashtext('outbox-relay "
                                         "replay ' || $1))",
                                  1, NULL, lp, NULL, NULL, 0);
    bool got = PQresultStatus(lock) == PGRES_TUPLES_OK && strcmp(PQgetvalue(lock, 0, 0), "t") == 0;

    PQclear(lock);
    if (!got) {
        snprintf(c->errstr, c->errstr_size, "another replay of %s is running (or PostgreSQL "
                                            "refused its advisory lock)",
                 what);
        return -1;
    }
    return 0;
}

int replay_run(const struct relay_config *cfg, const struct replay_options *opts, int stop_fd,
               FILE *out, struct replay_summary *sum, char *errstr, size_t errstr_size)
{
    const struct sink_common *common = relay_config_sink_common(cfg);
    const char *topic = common->dead_letter && common->dead_letter[0] ? common->dead_letter
                                                                      : NULL;
    bool want_table = !opts->from || strcmp(opts->from, "table") == 0;
    bool want_topic = !opts->from || strcmp(opts->from, "topic") == 0;
    bool is_kafka = strcmp(relay_config_sink_name(cfg), "kafka") == 0;
    struct replay_ctx c = {
        .cfg = cfg, .opts = opts, .out = out, .sum = sum,
        .left = opts->max > 0 ? opts->max : INT64_MAX,
        .errstr = errstr, .errstr_size = errstr_size,
    };
    char *qt = NULL, topic_lock[300];
    bool stopped = false;
    int rc = 0;

    memset(sum, 0, sizeof(*sum));
    want_table = want_table && cfg->dead_letter.table;
    want_topic = want_topic && topic && is_kafka;
    if (!want_table && !want_topic) {
        if (opts->from && strcmp(opts->from, "topic") == 0)
            snprintf(errstr, errstr_size, "no dead-letter topic to replay from: set "
                                          "kafka.dlq_topic (the %s sink's dead-letter "
                                          "destination cannot be read back; use "
                                          "dead_letter.table)",
                     relay_config_sink_name(cfg));
        else if (opts->from)
            snprintf(errstr, errstr_size, "no dead-letter table to replay from: set "
                                          "dead_letter.table (docs/operations.md)");
        else
            snprintf(errstr, errstr_size, "no dead-letter table or topic to replay from: set "
                                          "dead_letter.table or kafka.dlq_topic "
                                          "(docs/operations.md)");
        return -1;
    }
    c.db = repl_connect(cfg->postgres.dsn, "outbox-relay replay", 10, false);
    if (!c.db || PQstatus(c.db) != CONNECTION_OK) {
        char line[300];

        repl_first_line(c.db ? PQerrorMessage(c.db) : "out of memory", line, sizeof(line));
        snprintf(errstr, errstr_size, "cannot connect to PostgreSQL: %s", line);
        PQfinish(c.db);
        return -1;
    }
    if (want_table &&
        !(qt = repl_quote_table(c.db, cfg->dead_letter.schema, cfg->dead_letter.table))) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = -1;
        goto out;
    }
    snprintf(topic_lock, sizeof(topic_lock), "topic %s", topic ? topic : "");
    if (!opts->dry_run && ((want_table && lock_source(&c, qt) < 0) ||
                           (want_topic && lock_source(&c, topic_lock) < 0))) {
        rc = -1;
        goto out;
    }
    if (!opts->dry_run &&
        !(c.s = sink_from_config(cfg, on_report, &c.o, errstr, errstr_size))) {
        rc = -1;
        goto out;
    }
    if (want_table)
        rc = replay_table(&c, qt, stop_fd, &stopped);
    if (rc == 0 && want_topic && !stopped && c.left > 0)
        rc = replay_topic(&c, topic, stop_fd, &stopped);
out:
    if (c.s)
        sink_free(c.s);
    free(qt);
    PQfinish(c.db);
    if (rc == 0)
        fprintf(out, "%s%s: %ld %s, %ld skipped, %ld %s, %ld failed\n",
                opts->dry_run ? "dry run" : "replay", stopped ? " (stopped)" : "", sum->sent,
                opts->dry_run ? "would be sent" : "sent", sum->skipped, sum->parked,
                opts->dry_run ? "would be parked" : "parked", sum->failed);
    return rc;
}

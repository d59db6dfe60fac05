/*
 * replay.c -- `outbox-relay replay`: dead letters sent back through the sink (replay.h).
 *
 * One record at a time, oldest first: read it, decide whether it can be sent (a row
 * that never became an event cannot; nor a record without a destination; nor a value
 * left out whose outbox row is gone), send it through the configuration's sink and
 * wait for the sink's report, then record the outcome in the record's own row
 * (sql/008_dead_letter_replay.sql) before the next one.  So the progress is the
 * table: a replay interrupted anywhere and run again sends at most the event that was
 * in flight a second time, with its id unchanged for the consumers to deduplicate.
 *
 * A record refused again is "failed", and the next replay tries it again; one that
 * has failed replay.max_replays times is "parked": no replay takes it any more.
 * Transient sink failures (a broker away) are retried a few times within the run
 * before the record counts as failed; a sink that refuses the relay itself (bad
 * credentials) stops the replay with its reason.
 */
#include "replay.h"

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

#define REPLAY_COUNT_HEADER "outbox_replay_count"

/* The report awaited: the record's tag; a late report for an earlier one is ignored. */
struct outcome {
    uint64_t tag;
    bool reported;
    enum sink_outcome outcome;
    char err[512];
};

static void on_report(void *opaque, const struct sink_report *r)
{
    struct outcome *o = opaque;

    if (r->tag != o->tag)
        return;
    o->reported = true;
    o->outcome = r->outcome;
    snprintf(o->err, sizeof(o->err), "%s", r->err ? r->err : "");
}

/* Bytes from PostgreSQL's hex text into a new buffer; *n its length.  NULL: no memory. */
static char *unhex(const char *hex, size_t *n)
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

/* A record as read, and what is to be sent. */
struct record {
    long long id;
    const char *event_id, *destination, *reason, *type, *dead_at;
    char *key, *value;
    size_t key_len, value_len;
    bool value_omitted, value_is_row, rebuilt;
    int replay_count;
    const char *headers; /* JSON object text, or "" */
};

/* The event's headers without the dead-letter ones, plus the replay count. */
struct headers {
    char *names[FORMAT_MAX_HEADERS], *values[FORMAT_MAX_HEADERS];
    size_t lens[FORMAT_MAX_HEADERS];
    int n;
    char count[16];
};

static void headers_free(struct headers *h)
{
    for (int i = 0; i < h->n; i++) {
        free(h->names[i]);
        free(h->values[i]);
    }
    h->n = 0;
}

static char *unescaped(struct ev_str raw, size_t *len)
{
    struct jbuf tmp;
    struct ev_str text;
    char *s = NULL;

    jbuf_init(&tmp);
    if (json_string_unescape(raw, &tmp, &text) == 0 && (s = malloc(text.len + 1))) {
        memcpy(s, text.p, text.len);
        s[text.len] = '\0';
        *len = text.len;
    }
    jbuf_free(&tmp);
    return s;
}

/* Returns 0, or -1 (out of memory, too many headers, not an object of strings). */
static int headers_read(struct headers *h, const char *json, int replays)
{
    struct json_iter it;
    struct ev_str key, value;

    h->n = 0;
    if (json[0] && json_valid(json, strlen(json)) &&
        json_iter_object(&it, json, strlen(json)) == 0) {
        while (json_iter_next(&it, &key, &value) == 1) {
            size_t nlen = 0, vlen = 0;
            char *name, *val = NULL;

            if (h->n >= FORMAT_MAX_HEADERS - 1)
                return -1;
            if (!(name = unescaped(key, &nlen)))
                return -1;
            if (strncmp(name, "dlq_", 4) == 0 || strcmp(name, REPLAY_COUNT_HEADER) == 0) {
                free(name);
                continue;
            }
            if (json_raw_is_string(value)) {
                struct ev_str body = {value.p + 1, value.len - 2};

                if (!(val = unescaped(body, &vlen))) {
                    free(name);
                    return -1;
                }
            } else if (!(value.len == 4 && memcmp(value.p, "null", 4) == 0)) {
                free(name);
                return -1;
            }
            h->names[h->n] = name;
            h->values[h->n] = val;
            h->lens[h->n] = vlen;
            h->n++;
        }
    }
    snprintf(h->count, sizeof(h->count), "%d", replays);
    return 0;
}

/*
 * Send r through the sink and wait for its report.  Returns 0 delivered, 1 refused
 * (err says why), -1 the sink refuses the relay itself (err says why).
 */
static int send_one(sink *s, struct outcome *o, const struct record *r, char *err,
                    size_t err_size)
{
    struct headers hs;
    struct out_msg *m = calloc(1, sizeof(*m));
    int rc = 1;

    if (!m) {
        snprintf(err, err_size, "out of memory");
        return 1;
    }
    if (headers_read(&hs, r->headers, r->replay_count + 1) < 0) {
        headers_free(&hs);
        free(m);
        snprintf(err, err_size, "the record's headers are not a JSON object of strings");
        return 1;
    }
    snprintf(m->topic, sizeof(m->topic), "%s", r->destination);
    m->id = r->event_id;
    m->id_len = strlen(r->event_id);
    m->key = r->key;
    m->key_len = r->key_len;
    m->value = r->value;
    m->value_len = r->value_len;
    for (int i = 0; i < hs.n; i++)
        m->headers[i] = (struct msg_header){hs.names[i], hs.values[i], hs.lens[i]};
    m->headers[hs.n] = (struct msg_header){REPLAY_COUNT_HEADER, hs.count, strlen(hs.count)};
    m->nheaders = hs.n + 1;
    for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
        int prc;

        memset(o, 0, sizeof(*o));
        o->tag = (uint64_t)r->id;
        prc = sink_produce(s, m, (uint64_t)r->id, err, err_size);
        if (prc == -EMSGSIZE || prc == -EACCES) {
            rc = 1;
            break;
        }
        if (prc == 0) {
            sink_flush(s, REPORT_TIMEOUT_MS);
            if (sink_refused(s)) {
                snprintf(err, err_size, "%s", sink_refused(s));
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
         * queued could be delivered later and be taken for that record's answer.
         */
        if (sink_outstanding(s) > 0) {
            char rerr[256];

            sink_reset(s, rerr, sizeof(rerr));
        }
    }
    if (rc == 0)
        err[0] = '\0';
    headers_free(&hs);
    free(m);
    return rc;
}

/* Record the outcome of a record; returns 0 or -1 (errstr set). */
static int mark(PGconn *db, const char *qtable, long long id, const char *state,
                const char *error, bool counted, char *errstr, size_t errstr_size)
{
    char sql[600], idtext[32];
    const char *params[3] = {idtext, state, error && *error ? error : NULL};
    PGresult *res;
    int rc = 0;

    snprintf(idtext, sizeof(idtext), "%lld", id);
    snprintf(sql, sizeof(sql),
             "UPDATE %s SET replay_count = replay_count + %d, replayed_at = now(), "
             "replay_state = $2, replay_error = $3 WHERE id = $1",
             qtable, counted ? 1 : 0);
    res = PQexecParams(db, sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char line[300];

        repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
        snprintf(errstr, errstr_size, "recording the replay of record %lld: %s", id, line);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/*
 * The value of a record whose value was left out: the outbox row's payload, which is
 * the message's value in the cloudevents and debezium formats.  Returns 0 (set), 1
 * (why says why it cannot be), -1 (errstr set).
 */
static int rebuild(PGconn *db, const struct relay_config *cfg, struct record *r, char *why,
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

static bool stop_requested(int stop_fd)
{
    struct pollfd p = {.fd = stop_fd, .events = POLLIN};

    return stop_fd >= 0 && poll(&p, 1, 0) > 0;
}

int replay_run(const struct relay_config *cfg, const struct replay_options *opts, int stop_fd,
               FILE *out, struct replay_summary *sum, char *errstr, size_t errstr_size)
{
    char sql[2048], after[32], limit[32];
    const char *params[6];
    long long last = 0;
    int64_t left = opts->max > 0 ? opts->max : INT64_MAX;
    struct outcome o;
    PGconn *db;
    char *qt = NULL;
    sink *s = NULL;
    int rc = 0;
    bool stop = false;

    memset(sum, 0, sizeof(*sum));
    if (!cfg->dead_letter.table) {
        snprintf(errstr, errstr_size, "no dead-letter table to replay from: set "
                                      "dead_letter.table (docs/operations.md)");
        return -1;
    }
    db = repl_connect(cfg->postgres.dsn, "outbox-relay replay", 10, false);
    if (!db || PQstatus(db) != CONNECTION_OK) {
        char line[300];

        repl_first_line(db ? PQerrorMessage(db) : "out of memory", line, sizeof(line));
        snprintf(errstr, errstr_size, "cannot connect to PostgreSQL: %s", line);
        PQfinish(db);
        return -1;
    }
    if (!(qt = repl_quote_table(db, cfg->dead_letter.schema, cfg->dead_letter.table))) {
        snprintf(errstr, errstr_size, "out of memory");
        rc = -1;
        goto out;
    }
    /* One replay at a time per table: two would each send every record. */
    if (!opts->dry_run) {
        const char *lp[1] = {qt};
        PGresult *lock = PQexecParams(db, "SELECT pg_try_advisory_lock(hashtext('outbox-relay "
                                          "replay ' || $1))",
                                      1, NULL, lp, NULL, NULL, 0);
        bool got = PQresultStatus(lock) == PGRES_TUPLES_OK &&
                   strcmp(PQgetvalue(lock, 0, 0), "t") == 0;

        PQclear(lock);
        if (!got) {
            snprintf(errstr, errstr_size, "another replay of %s is running (or PostgreSQL "
                                          "refused its advisory lock)",
                     qt);
            rc = -1;
            goto out;
        }
    }
    if (!opts->dry_run &&
        !(s = sink_from_config(cfg, on_report, &o, errstr, errstr_size))) {
        rc = -1;
        goto out;
    }
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
    while (rc == 0 && !stop && left > 0) {
        PGresult *res;
        int n;

        snprintf(after, sizeof(after), "%lld", last);
        snprintf(limit, sizeof(limit), "%lld", (long long)(left < PAGE ? left : PAGE));
        params[0] = after;
        params[1] = opts->since;
        params[2] = opts->until;
        params[3] = opts->reason;
        params[4] = opts->type;
        params[5] = limit;
        res = PQexecParams(db, sql, 6, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            char line[300];

            repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
            snprintf(errstr, errstr_size, "reading %s: %s (has sql/008_dead_letter_replay.sql "
                                          "been run?)",
                     qt, line);
            PQclear(res);
            rc = -1;
            break;
        }
        n = PQntuples(res);
        for (int i = 0; i < n && rc == 0; i++) {
            struct record r = {
                .id = atoll(PQgetvalue(res, i, 0)),
                .event_id = PQgetvalue(res, i, 1),
                .destination = PQgetvalue(res, i, 2),
                .reason = PQgetvalue(res, i, 3),
                .value_omitted = strcmp(PQgetvalue(res, i, 6), "t") == 0,
                .value_is_row = strcmp(PQgetvalue(res, i, 7), "t") == 0,
                .replay_count = atoi(PQgetvalue(res, i, 8)),
                .headers = PQgetvalue(res, i, 9),
                .type = PQgetvalue(res, i, 10),
                .dead_at = PQgetvalue(res, i, 11),
            };
            char why[600] = "";
            const char *state = NULL;
            int sent;

            last = r.id;
            left--;
            if ((!PQgetisnull(res, i, 4) && !(r.key = unhex(PQgetvalue(res, i, 4), &r.key_len))) ||
                (!PQgetisnull(res, i, 5) &&
                 !(r.value = unhex(PQgetvalue(res, i, 5), &r.value_len)))) {
                snprintf(errstr, errstr_size, "out of memory");
                rc = -1;
            } else if (r.value_is_row) {
                snprintf(why, sizeof(why), "a row that could not become an event: mend it and "
                                           "insert it into the outbox again");
            } else if (!r.destination[0] || !r.event_id[0]) {
                snprintf(why, sizeof(why), "it has no %s",
                         r.destination[0] ? "event id" : "destination");
            } else if (r.replay_count >= (int)cfg->replay.max_replays) {
                state = "parked";
            } else if (r.value_omitted && !r.value) {
                rc = rebuild(db, cfg, &r, why, sizeof(why), errstr, errstr_size) < 0 ? -1 : 0;
            }
            if (rc < 0) {
                free(r.key);
                free(r.value);
                break;
            }
            if (why[0])
                state = "not-replayable";
            if (state && strcmp(state, "parked") == 0) {
                snprintf(why, sizeof(why), "replayed %d times already (replay.max_replays)",
                         r.replay_count);
            }
            if (opts->dry_run) {
                fprintf(out, "%-14s #%lld event \"%s\" to \"%s\" (%s, %s, set aside %s, %zu "
                             "bytes%s)%s%s\n",
                        state ? state : "would send", r.id, r.event_id, r.destination, r.reason,
                        r.type[0] ? r.type : "no type", r.dead_at, r.value_len,
                        r.rebuilt ? ", rebuilt from the outbox row" : "", why[0] ? ": " : "",
                        why);
                if (!state)
                    sum->sent++;
                else if (strcmp(state, "parked") == 0)
                    sum->parked++;
                else
                    sum->skipped++;
            } else if (state) {
                rc = mark(db, qt, r.id, state, why, false, errstr, errstr_size);
                fprintf(out, "%-14s #%lld event \"%s\": %s\n", state, r.id, r.event_id, why);
                if (strcmp(state, "parked") == 0)
                    sum->parked++;
                else
                    sum->skipped++;
            } else {
                sent = send_one(s, &o, &r, why, sizeof(why));
                if (sent < 0) {
                    snprintf(errstr, errstr_size, "%s", why);
                    rc = -1;
                } else {
                    rc = mark(db, qt, r.id, sent == 0 ? "sent" : "failed", why, true, errstr,
                              errstr_size);
                    fprintf(out, "%-14s #%lld event \"%s\" to \"%s\"%s%s%s\n",
                            sent == 0 ? "sent" : "failed", r.id, r.event_id, r.destination,
                            r.rebuilt ? " (value rebuilt from the outbox row)" : "",
                            sent ? ": " : "", sent ? why : "");
                    if (sent == 0)
                        sum->sent++;
                    else
                        sum->failed++;
                }
            }
            fflush(out);
            free(r.key);
            free(r.value);
            if (stop_requested(stop_fd)) {
                stop = true;
                break;
            }
        }
        PQclear(res);
        if (n == 0)
            break;
    }
out:
    if (s)
        sink_free(s);
    free(qt);
    PQfinish(db);
    if (rc == 0)
        fprintf(out, "%s%s: %ld %s, %ld skipped, %ld %s, %ld failed\n",
                opts->dry_run ? "dry run" : "replay", stop ? " (stopped)" : "", sum->sent,
                opts->dry_run ? "would be sent" : "sent", sum->skipped, sum->parked,
                opts->dry_run ? "would be parked" : "parked", sum->failed);
    return rc;
}

/*
 * replay_topic.c -- the replay's second source: the dead-letter topic (kafka.dlq_topic).
 *
 * A topic's records cannot be marked, and a consumer group's offset cannot be the
 * replay's progress: a record a filter leaves out (--reason, --type, --since) would be
 * passed for every later replay too.  So every replay reads the topic from its
 * beginning to where it ended when the replay started (records set aside meanwhile
 * wait for the next replay), each partition in its order, and keeps the state of each
 * record it dealt with in replay.state_table (sql/009_dead_letter_topic_replay.sql),
 * keyed by (topic, partition, offset): a record already sent, parked or found not
 * replayable is passed over; one never replayed or failed is selected by the filters
 * and handed to the engine (replay.c), whose outcome is written here before the next.
 *
 * The record's dlq_* headers (deadletter.h) say where it was going, why it was set
 * aside, when, its event id and whether its value was left out; the other headers are
 * the event's own.  The reader uses the kafka section's connection properties
 * (kafka_conf.c), assigns the partitions itself and commits nothing to Kafka.
 */
#include "replay_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "kafka_conf.h"
#include "log.h"
#include "replication.h"

/* How long the topic may send nothing while partitions are unfinished. */
#define IDLE_TIMEOUT_MS 60000
/* Metadata and watermark requests. */
#define REQUEST_TIMEOUT_MS 10000

struct topic_source {
    const char *topic;
    char *qstate;      /* the state table, quoted and schema-qualified */
    char part[16];     /* the record in hand: partition and offset, as text */
    char offset[24];
};

/* A partition to read: its end when the replay started. */
struct part {
    int32_t id;
    int64_t end;
    bool done;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pg_error(struct replay_ctx *c, PGresult *res, const char *doing)
{
    char line[300];

    repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
    snprintf(c->errstr, c->errstr_size, "%s: %s", doing, line);
}

/* Record the outcome in the state table: one row per record, counts added up. */
static int mark_topic(struct replay_ctx *c, const struct replay_record *r, const char *state,
                      const char *error, bool counted)
{
    const struct topic_source *t = c->source;
    const char *params[7] = {t->topic, t->part, t->offset, r->event_id, counted ? "1" : "0",
                             state, error && *error ? error : NULL};
    char sql[700];
    PGresult *res;
    int rc = 0;

    snprintf(sql, sizeof(sql),
             "INSERT INTO %s AS s (topic, \"partition\", \"offset\", event_id, replay_count, "
             "replay_state, replay_error) VALUES ($1, $2, $3, nullif($4, ''), $5, $6, $7) "
             "ON CONFLICT (topic, \"partition\", \"offset\") DO UPDATE SET replay_count = "
             "s.replay_count + EXCLUDED.replay_count, replayed_at = now(), replay_state = "
             "EXCLUDED.replay_state, replay_error = EXCLUDED.replay_error",
             t->qstate);
    res = PQexecParams(c->db, sql, 7, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char doing[200];

        snprintf(doing, sizeof(doing), "recording the replay of %s", r->label);
        pg_error(c, res, doing);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* What the record's headers say; every string owned, "" when absent. */
struct dlq_fields {
    char *destination, *reason, *event_id, *time, *type;
    bool has_type_rank; /* type came from a header; rank says which */
    int type_rank;      /* ce_type 0, type 1, eventType 2 */
    bool value_omitted, value_is_row;
};

static void fields_free(struct dlq_fields *f)
{
    free(f->destination);
    free(f->reason);
    free(f->event_id);
    free(f->time);
    free(f->type);
}

/* Set *slot to a copy of the value (replacing an earlier one).  0 or -1 (no memory). */
static int take(char **slot, const void *val, size_t size)
{
    char *s = replay_dup(val ? val : "", val ? size : 0);

    if (!s)
        return -1;
    free(*slot);
    *slot = s;
    return 0;
}

/*
 * The record's headers: the dlq_* ones into f, the event's own into r->headers
 * (r->headers_bad when they do not fit).  Returns 0, or -1: out of memory.
 */
static int read_headers(const rd_kafka_message_t *msg, struct dlq_fields *f,
                        struct replay_record *r)
{
    static const char *const type_names[] = {"ce_type", "type", "eventType"};
    rd_kafka_headers_t *hdrs = NULL;
    const char *name;
    const void *val;
    size_t size;

    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        int rc = 0;

        if (strcmp(name, "dlq_original_topic") == 0)
            rc = take(&f->destination, val, size);
        else if (strcmp(name, "dlq_reason") == 0)
            rc = take(&f->reason, val, size);
        else if (strcmp(name, "dlq_event_id") == 0)
            rc = take(&f->event_id, val, size);
        else if (strcmp(name, "dlq_time") == 0)
            rc = take(&f->time, val, size);
        else if (strcmp(name, "dlq_value_omitted_size") == 0)
            f->value_omitted = true;
        else if (strcmp(name, "dlq_value") == 0)
            f->value_is_row = val && size == 3 && memcmp(val, "row", 3) == 0;
        for (int k = 0; k < 3 && rc == 0; k++) {
            if (strcmp(name, type_names[k]) == 0 && (!f->has_type_rank || k < f->type_rank)) {
                rc = take(&f->type, val, size);
                f->has_type_rank = true;
                f->type_rank = k;
            }
        }
        if (rc < 0)
            return -1;
        if (!r->headers_bad &&
            replay_headers_add(&r->headers, name, strlen(name), val, size) < 0)
            r->headers_bad = true;
    }
    return 0;
}

/*
 * Whether dlq_time could be an RFC 3339 time; anything else is not passed to
 * PostgreSQL (a record without a readable time is selected only when no time filter
 * is set).
 */
static bool looks_like_time(const char *s)
{
    size_t n = strlen(s);

    if (n < 20 || n > 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789-:.TZ+ ", s[i]))
            return false;
    return true;
}

/*
 * Deal with one message: hand it to the engine when it is selected (counted against
 * --max), pass it over otherwise.  Returns 0, or -1 with c->errstr set.
 */
static int one_message(struct replay_ctx *c, struct topic_source *t,
                       const rd_kafka_message_t *msg)
{
    const struct replay_options *opts = c->opts;
    struct dlq_fields f = {0};
    struct replay_record r = {0};
    const char *params[6];
    bool selected;
    char sql[700];
    PGresult *res;
    int rc = 0;

    snprintf(t->part, sizeof(t->part), "%d", (int)msg->partition);
    snprintf(t->offset, sizeof(t->offset), "%lld", (long long)msg->offset);
    if (read_headers(msg, &f, &r) < 0 ||
        (!f.destination && !(f.destination = replay_dup("", 0))) ||
        (!f.reason && !(f.reason = replay_dup("", 0))) ||
        (!f.event_id && !(f.event_id = replay_dup("", 0))) ||
        (!f.time && !(f.time = replay_dup("", 0))) || (!f.type && !(f.type = replay_dup("", 0)))) {
        snprintf(c->errstr, c->errstr_size, "out of memory");
        rc = -1;
        goto out;
    }
    /* Filters the record itself answers. */
    if ((opts->reason && strcmp(f.reason, opts->reason) != 0) ||
        (opts->type && strcmp(f.type, opts->type) != 0))
        goto out;
    /* Its state, and the time window (PostgreSQL reads --since and --until). */
    params[0] = t->topic;
    params[1] = t->part;
    params[2] = t->offset;
    params[3] = looks_like_time(f.time) ? f.time : NULL;
    params[4] = opts->since;
    params[5] = opts->until;
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(s.replay_state, ''), coalesce(s.replay_count, 0), "
             "coalesce(($5::timestamptz IS NULL OR $4::timestamptz >= $5::timestamptz) AND "
             "($6::timestamptz IS NULL OR $4::timestamptz < $6::timestamptz), false) "
             "FROM (VALUES (1)) AS one (x) LEFT JOIN %s AS s ON s.topic = $1 AND "
             "s.\"partition\" = $2::integer AND s.\"offset\" = $3::bigint",
             t->qstate);
    res = PQexecParams(c->db, sql, 6, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK && params[3] &&
        strncmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res,
                PG_DIAG_SQLSTATE) : "", "22", 2) == 0) {
        /* A dlq_time PostgreSQL does not take (a 13th month): read as no time at all. */
        PQclear(res);
        params[3] = NULL;
        res = PQexecParams(c->db, sql, 6, NULL, params, NULL, NULL, 0);
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_error(c, res, "reading the replay's state");
        PQclear(res);
        rc = -1;
        goto out;
    }
    {
        const char *state = PQgetvalue(res, 0, 0);
        bool in_window = strcmp(PQgetvalue(res, 0, 2), "t") == 0;

        r.replay_count = atoi(PQgetvalue(res, 0, 1));
        selected = in_window && (!state[0] || strcmp(state, "failed") == 0);
    }
    PQclear(res);
    if (!selected)
        goto out;
    c->left--;
    snprintf(r.label, sizeof(r.label), "%s[%s]@%s", t->topic, t->part, t->offset);
    r.event_id = f.event_id;
    r.destination = f.destination;
    r.reason = f.reason[0] ? f.reason : "not a dead-letter record";
    r.type = f.type;
    r.dead_at = f.time;
    r.value_omitted = f.value_omitted;
    r.value_is_row = f.value_is_row;
    if ((msg->key && !(r.key = replay_dup(msg->key, msg->key_len))) ||
        (msg->payload && !(r.value = replay_dup(msg->payload, msg->len)))) {
        snprintf(c->errstr, c->errstr_size, "out of memory");
        rc = -1;
        goto out;
    }
    r.key_len = msg->key ? msg->key_len : 0;
    r.value_len = msg->payload ? msg->len : 0;
    rc = replay_one(c, &r); /* frees what r owns */
    fields_free(&f);
    return rc;
out:
    free(r.key);
    free(r.value);
    replay_headers_free(&r.headers);
    fields_free(&f);
    return rc;
}

/* The partitions and their ends.  Returns the count (0: an empty topic), -1 (errstr). */
static int partitions(struct replay_ctx *c, rd_kafka_t *rk, const char *topic,
                      struct part **parts, rd_kafka_topic_partition_list_t **assignment)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err;
    int n = 0, np;

    if (!rkt) {
        snprintf(c->errstr, c->errstr_size, "the dead-letter topic \"%s\": %s", topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    err = rd_kafka_metadata(rk, 0, rkt, &md, REQUEST_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
        snprintf(c->errstr, c->errstr_size, "reading the dead-letter topic \"%s\"'s metadata: "
                                            "%s",
                 topic, rd_kafka_err2str(err));
        if (md)
            rd_kafka_metadata_destroy(md);
        return -1;
    }
    if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(c->errstr, c->errstr_size, "the dead-letter topic \"%s\": %s", topic,
                 rd_kafka_err2str(md->topics[0].err));
        rd_kafka_metadata_destroy(md);
        return -1;
    }
    np = md->topics[0].partition_cnt;
    *parts = calloc((size_t)(np > 0 ? np : 1), sizeof(**parts));
    *assignment = rd_kafka_topic_partition_list_new(np > 0 ? np : 1);
    for (int i = 0; *parts && i < np; i++) {
        int32_t id = md->topics[0].partitions[i].id;
        int64_t lo, hi;

        err = rd_kafka_query_watermark_offsets(rk, topic, id, &lo, &hi, REQUEST_TIMEOUT_MS);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(c->errstr, c->errstr_size, "reading the ends of \"%s\" [%d]: %s", topic,
                     (int)id, rd_kafka_err2str(err));
            n = -1;
            break;
        }
        if (hi <= lo)
            continue;
        (*parts)[n++] = (struct part){.id = id, .end = hi};
        rd_kafka_topic_partition_list_add(*assignment, topic, id)->offset = lo;
    }
    rd_kafka_metadata_destroy(md);
    if (!*parts) {
        snprintf(c->errstr, c->errstr_size, "out of memory");
        return -1;
    }
    return n;
}

static struct part *find(struct part *parts, int n, int32_t id)
{
    for (int i = 0; i < n; i++)
        if (parts[i].id == id)
            return &parts[i];
    return NULL;
}

int replay_topic(struct replay_ctx *c, const char *topic, int stop_fd, bool *stopped)
{
    struct topic_source t = {.topic = topic};
    rd_kafka_topic_partition_list_t *assignment = NULL;
    struct part *parts = NULL;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    char kerr[512], doing[300];
    int64_t last_ms;
    int n, left;
    PGresult *res;
    int rc = 0;

    if (!(t.qstate = repl_quote_table(c->db, c->cfg->replay.state_schema,
                                      c->cfg->replay.state_table))) {
        snprintf(c->errstr, c->errstr_size, "out of memory");
        return -1;
    }
    /* The state table first: without it, nothing can be known or recorded. */
    snprintf(doing, sizeof(doing), "SELECT 1 FROM %s LIMIT 0", t.qstate);
    res = PQexec(c->db, doing);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char line[300];

        repl_first_line(PQresultErrorMessage(res), line, sizeof(line));
        snprintf(c->errstr, c->errstr_size, "reading %s: %s (has "
                                            "sql/009_dead_letter_topic_replay.sql been run?)",
                 t.qstate, line);
        PQclear(res);
        free(t.qstate);
        return -1;
    }
    PQclear(res);
    c->mark = mark_topic;
    c->source = &t;
    conf = kafka_consumer_conf(c->cfg, "replay", "outbox-relay-replay", NULL, 0, c->errstr,
                               c->errstr_size);
    /* A group id the client wants for assign(); nothing is ever committed to it. */
    if (!conf ||
        kafka_conf_set(conf, "group.id", "outbox-relay-replay", c->errstr, c->errstr_size) < 0 ||
        kafka_conf_set(conf, "enable.auto.commit", "false", c->errstr, c->errstr_size) < 0 ||
        kafka_conf_set(conf, "enable.auto.offset.store", "false", c->errstr, c->errstr_size) <
            0 ||
        kafka_conf_set(conf, "enable.partition.eof", "true", c->errstr, c->errstr_size) < 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        free(t.qstate);
        return -1;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr)))) {
        snprintf(c->errstr, c->errstr_size, "cannot create a kafka client: %s", kerr);
        rd_kafka_conf_destroy(conf);
        free(t.qstate);
        return -1;
    }
    rd_kafka_poll_set_consumer(rk);
    n = partitions(c, rk, topic, &parts, &assignment);
    if (n < 0) {
        rc = -1;
        goto out;
    }
    log_info("replay: reading %d partition(s) of the dead-letter topic \"%s\"", n, topic);
    if (n > 0 && rd_kafka_assign(rk, assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(c->errstr, c->errstr_size, "cannot read the dead-letter topic \"%s\"", topic);
        rc = -1;
        goto out;
    }
    left = n;
    last_ms = now_ms();
    while (left > 0 && c->left > 0 && !*stopped) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 500);
        struct part *p;

        if (replay_stop_requested(stop_fd)) {
            /* Stopped: the message in hand waits for the next replay. */
            *stopped = true;
            if (msg)
                rd_kafka_message_destroy(msg);
            break;
        }
        if (!msg) {
            if (now_ms() - last_ms > IDLE_TIMEOUT_MS) {
                snprintf(c->errstr, c->errstr_size, "the dead-letter topic \"%s\" sent "
                                                    "nothing for %d s with %d partition(s) "
                                                    "unfinished",
                         topic, IDLE_TIMEOUT_MS / 1000, left);
                rc = -1;
            }
            if (rc < 0)
                break;
            continue;
        }
        last_ms = now_ms();
        p = find(parts, n, msg->partition);
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (p && !p->done) {
                p->done = true;
                left--;
            }
        } else if (msg->err) {
            log_warn("replay: reading \"%s\": %s", topic, rd_kafka_message_errstr(msg));
        } else if (p && !p->done && msg->offset < p->end) {
            rc = one_message(c, &t, msg);
            if (msg->offset + 1 >= p->end) {
                p->done = true;
                left--;
            }
        }
        rd_kafka_message_destroy(msg);
        if (rc < 0)
            break;
    }
out:
    if (assignment)
        rd_kafka_topic_partition_list_destroy(assignment);
    free(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(t.qstate);
    return rc;
}

/*
 * inbox_kafka.c -- the inbox's Kafka source (inbox_source.h).
 *
 * A consumer of the consumer group inbox.consumer, subscribed to inbox.topics, with
 * the kafka section's connection (kafka_conf.c) and inbox.properties.  librdkafka's
 * consumer queue writes a byte to a pipe when it fills, and the inbox's poll() loop
 * watches the pipe.  On every assignment each partition starts where the database
 * says (inbox_core_positions(), which waits for the database); a partition without a
 * row starts at the group's committed offset, which is never ahead of the database (it
 * is committed after it), or at the beginning.  On a revoke the batch in hand is
 * written first, or dropped unwritten when the database is down (its position did not
 * move: the next owner reads it again).  Offsets are committed after each batch's
 * transaction, asynchronously: they are informative, for lag tools; the database's
 * positions are the truth.
 *
 * The rebalance callback assigns and revokes whole assignments: the eager protocol; a
 * cooperative strategy in the properties is refused at start.
 */
#include "inbox_source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "kafka_conf.h"
#include "log.h"
#include "sink_kafka.h"

struct kafka_in {
    struct inbox *core;
    const struct relay_config *cfg;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    int pipe[2];
};

/*
 * The consumer's configuration: the kafka section's (kafka_conf.c), inbox.properties,
 * then what the guarantee rests on.
 */
static rd_kafka_conf_t *consumer_conf(const struct relay_config *cfg, char *errstr,
                                      size_t errstr_size)
{
    const struct kafka_settings *k = relay_config_sink_settings(cfg, "kafka");
    rd_kafka_conf_t *conf = kafka_consumer_conf(cfg, "inbox", "outbox-relay-inbox",
                                                cfg->inbox.properties, cfg->inbox.nproperties,
                                                errstr, errstr_size);

    if (!conf)
        return NULL;
    /*
     * The rebalance callback assigns and revokes whole assignments: the eager protocol.
     * A cooperative strategy would leave the relay assigned nothing, in silence.
     */
    for (size_t i = 0; i < cfg->inbox.nproperties + k->nproperties; i++) {
        const struct relay_kv *kv = i < k->nproperties ? &k->properties[i]
                                                       : &cfg->inbox.properties[i - k->nproperties];

        if ((strcmp(kv->key, "partition.assignment.strategy") == 0 &&
             strstr(kv->value, "cooperative")) ||
            (strcmp(kv->key, "group.protocol") == 0 && strcmp(kv->value, "classic") != 0)) {
            snprintf(errstr, errstr_size,
                     "inbox: kafka property \"%s\" = \"%s\": the inbox needs the eager "
                     "protocol (range or roundrobin)",
                     kv->key, kv->value);
            goto fail;
        }
    }
    /* Offsets only after the database, by the relay. */
    if (kafka_conf_set(conf, "group.id", cfg->inbox.consumer, errstr, errstr_size) < 0 ||
        kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) < 0 ||
        kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) < 0 ||
        kafka_conf_set(conf, "enable.partition.eof", "false", errstr, errstr_size) < 0)
        goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/*
 * Rebalances
 */

/* A database position onto the assignment, when the partition is in it. */
static void seed(void *arg, const struct inbox_pos *pos)
{
    rd_kafka_topic_partition_t *p =
        rd_kafka_topic_partition_list_find(arg, pos->topic, pos->partition);

    if (p)
        p->offset = pos->next;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_in *k = opaque;
    char list[512];
    size_t o = 0;

    list[0] = '\0';
    for (int i = 0; i < parts->cnt && o < sizeof(list) - 64; i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s[%d]", i ? " " : "",
                              parts->elems[i].topic, (int)parts->elems[i].partition);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_resp_err_t aerr;

        /* A stop during the wait: nothing is taken, nothing will be read. */
        if (inbox_core_positions(k->core, seed, parts) != 0)
            return;
        if ((aerr = rd_kafka_assign(rk, parts)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            inbox_core_fail(k->core, "inbox: cannot take the assigned partitions: %s",
                            rd_kafka_err2str(aerr));
            return;
        }
        inbox_core_joined(k->core);
        inbox_core_assigned(k->core, parts->cnt);
        log_info("inbox: assigned %d partitions: %s", parts->cnt, list);
        return;
    }
    /* Revoked (or an error): write what is in hand first, or drop it unwritten. */
    if (inbox_core_flush(k->core) != 0)
        inbox_core_drop(k->core);
    rd_kafka_assign(rk, NULL);
    inbox_core_assigned(k->core, 0);
    log_info("inbox: revoked %d partitions: %s", parts->cnt, list);
}

/*
 * The source
 */

static void kafka_close(void *src)
{
    struct kafka_in *k = src;

    if (k->queue)
        rd_kafka_queue_destroy(k->queue);
    if (k->rk)
        rd_kafka_destroy(k->rk);
    for (int i = 0; i < 2; i++)
        if (k->pipe[i] >= 0)
            close(k->pipe[i]);
    free(k);
}

static void *kafka_open(const struct relay_config *cfg, struct inbox *core, char *errstr,
                        size_t errstr_size)
{
    struct kafka_in *k = calloc(1, sizeof(*k));
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_conf_t *conf;
    rd_kafka_resp_err_t err;

    if (!k) {
        snprintf(errstr, errstr_size, "inbox: out of memory");
        return NULL;
    }
    k->core = core;
    k->cfg = cfg;
    k->pipe[0] = k->pipe[1] = -1;
    if (!(conf = consumer_conf(cfg, errstr, errstr_size)))
        goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, k);
    if (!(k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_poll_set_consumer(k->rk);
    k->queue = rd_kafka_queue_get_consumer(k->rk);
    if (pipe(k->pipe) < 0) {
        snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(k->pipe[i], F_SETFL, fcntl(k->pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(k->pipe[i], F_SETFD, FD_CLOEXEC);
    }
    rd_kafka_queue_io_event_enable(k->queue, k->pipe[1], "1", 1);
    topics = rd_kafka_topic_partition_list_new((int)cfg->inbox.ntopics);
    for (size_t i = 0; i < cfg->inbox.ntopics; i++)
        rd_kafka_topic_partition_list_add(topics, cfg->inbox.topics[i], RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(k->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        snprintf(errstr, errstr_size, "inbox: subscribing to the topics: %s",
                 rd_kafka_err2str(err));
        goto fail;
    }
    return k;
fail:
    kafka_close(k);
    return NULL;
}

static int kafka_fd(void *src)
{
    return ((struct kafka_in *)src)->pipe[0];
}

static bool kafka_pending(void *src)
{
    return rd_kafka_queue_length(((struct kafka_in *)src)->queue) > 0;
}

/* Message m to the batch; returns true when the batch holds it now. */
static bool add(struct kafka_in *k, rd_kafka_message_t *m, const char *unreadable)
{
    struct inbox_header few[INBOX_MAX_HEADERS + 1], *hs = few;
    /* An unreadable message's payload is librdkafka's error text: no value is kept. */
    struct inbox_in in = {.topic = rd_kafka_topic_name(m->rkt), .partition = m->partition,
                          .offset = m->offset, .unreadable = unreadable, .handle = m,
                          .m = {.key = m->key, .key_len = m->key_len,
                                .value = unreadable ? NULL : m->payload,
                                .value_len = unreadable ? 0 : m->len}};
    rd_kafka_headers_t *hdrs = NULL;
    bool held;

    /* An unreadable message's headers are not to be trusted: none are kept. */
    if (!unreadable && rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = rd_kafka_header_cnt(hdrs);
        const char *name;
        const void *val;
        size_t size;

        /* Every header, so that one set aside for having too many keeps them all. */
        if (n > INBOX_MAX_HEADERS + 1 && !(hs = malloc(n * sizeof(*hs)))) {
            inbox_core_fail(k->core, "inbox: out of memory");
            return false;
        }
        while (in.m.nheaders < n &&
               rd_kafka_header_get_all(hdrs, in.m.nheaders, &name, &val, &size) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR) {
            hs[in.m.nheaders] = (struct inbox_header){name, val, size};
            in.m.nheaders++;
        }
    }
    in.m.headers = hs;
    held = inbox_core_add(k->core, &in) == 0;
    if (hs != few)
        free(hs);
    return held;
}

static void kafka_read(void *src, size_t room, int wait_ms)
{
    struct kafka_in *k = src;
    rd_kafka_message_t *m;
    char buf[256];

    (void)wait_ms; /* the pipe says when there is something */
    while (read(k->pipe[0], buf, sizeof(buf)) > 0) {
    }
    while (room > 0 && (m = rd_kafka_consumer_poll(k->rk, 0)) != NULL) {
        bool held = false;

        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                char why[512];

                rd_kafka_fatal_error(k->rk, why, sizeof(why));
                inbox_core_fail(k->core, "inbox: kafka: %s", why);
            } else if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                       m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
                inbox_core_fail(k->core, "inbox: kafka refused the relay: %s",
                                rd_kafka_message_errstr(m));
            } else if ((m->err == RD_KAFKA_RESP_ERR__BAD_MSG ||
                        m->err == RD_KAFKA_RESP_ERR__BAD_COMPRESSION) &&
                       m->rkt && m->partition >= 0 && m->offset >= 0) {
                /* librdkafka goes on with the next message: this one must not vanish. */
                held = add(k, m, rd_kafka_message_errstr(m));
                room--;
            } else {
                log_warn("inbox: kafka: %s", rd_kafka_message_errstr(m));
            }
        } else {
            held = add(k, m, NULL);
            room--;
        }
        if (!held)
            rd_kafka_message_destroy(m);
    }
}

/* Tell Kafka the positions the database now holds (informative: lag tools read them). */
static void kafka_written(void *src, const struct inbox_pos *pos, size_t npos)
{
    struct kafka_in *k = src;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)npos);

    for (size_t i = 0; i < npos; i++)
        rd_kafka_topic_partition_list_add(list, pos[i].topic, pos[i].partition)->offset =
            pos[i].next;
    rd_kafka_commit(k->rk, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
}

static void kafka_release(void *src, void *handle)
{
    (void)src;
    rd_kafka_message_destroy(handle);
}

/* Leave the group: the revoke writes what is in hand (the database permitting). */
static void kafka_leave(void *src)
{
    rd_kafka_consumer_close(((struct kafka_in *)src)->rk);
}

/*
 * check and status
 */

static int kafka_check(const struct relay_config *cfg, int timeout_ms, FILE *out)
{
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    char errstr[512];
    int failed = 0;

    if (!(conf = consumer_conf(cfg, errstr, sizeof(errstr))) ||
        !(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        fprintf(out, "FAIL kafka consumer: %s\n", errstr);
        return 1;
    }
    for (size_t i = 0; i < cfg->inbox.ntopics; i++) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, cfg->inbox.topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;

        if (!t) {
            fprintf(out, "FAIL kafka topic \"%s\": %s\n", cfg->inbox.topics[i],
                    rd_kafka_err2str(rd_kafka_last_error()));
            failed++;
            continue;
        }
        err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
        if (!err && md->topic_cnt < 1)
            err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        else if (!err)
            err = md->topics[0].err;
        if (err) {
            fprintf(out, "FAIL kafka topic \"%s\": %s\n", cfg->inbox.topics[i],
                    rd_kafka_err2str(err));
            failed++;
        } else {
            fprintf(out, "ok   kafka topic \"%s\": %d partitions\n", cfg->inbox.topics[i],
                    md->topics[0].partition_cnt);
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
    }
    rd_kafka_destroy(rk);
    return failed;
}

static void *kafka_status_open(const struct relay_config *cfg)
{
    char kerr[256];
    rd_kafka_conf_t *conf = consumer_conf(cfg, kerr, sizeof(kerr));
    rd_kafka_t *rk = NULL;

    if (conf && !(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr))))
        rd_kafka_conf_destroy(conf);
    return rk;
}

static int64_t kafka_status_end(void *st, const char *topic, int32_t partition, int timeout_ms)
{
    int64_t lo = 0, hi = -1;

    return st && rd_kafka_query_watermark_offsets(st, topic, partition, &lo, &hi,
                                                  timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR
               ? hi
               : -1;
}

static void kafka_status_close(void *st)
{
    if (st)
        rd_kafka_destroy(st);
}

const struct inbox_source_ops inbox_source_kafka = {
    .broker = "kafka",
    .open = kafka_open,
    .fd = kafka_fd,
    .pending = kafka_pending,
    .read = kafka_read,
    .written = kafka_written,
    .release = kafka_release,
    .leave = kafka_leave,
    .close = kafka_close,
    .check = kafka_check,
    .status_open = kafka_status_open,
    .status_end = kafka_status_end,
    .status_close = kafka_status_close,
};

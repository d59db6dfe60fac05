/*
 * sink_kafka.c -- the Kafka sink: librdkafka's idempotent producer.
 *
 * Delivery guarantees come from three settings the relay insists on:
 * enable.idempotence=true (no duplicates or reordering from librdkafka's own
 * retries), acks=all (a message is acknowledged only once every in-sync replica has
 * it) and the partitioner murmur2_random (the one the Java client uses, so a key
 * lands on the same partition whichever client wrote it -- and on the same one
 * after a restart).  Two defaults matter as much but may be overridden:
 * message.timeout.ms=0 (never give up on a message: an outage becomes
 * back-pressure, not a failure; with a finite timeout a later message of the same
 * key can be delivered before an earlier one that timed out and is replayed) and
 * linger.ms=5.  Anything else in kafka.properties is passed through untouched.
 *
 * Throughput settings (measured in docs/performance.md): linger.ms=5 batches what a
 * commit brings without adding more than a few milliseconds to the latency (p99
 * commit -> acknowledgement 16 ms at 5,000 events/s); batch.num.messages and
 * batch.size keep librdkafka's defaults (10,000 messages, 1 MB: a drain fills 1 MB
 * batches, the broker's default message.max.bytes); compression stays off, because
 * lz4 cost 14% more relay CPU per event for 5x fewer bytes on the wire -- worth it
 * over a real network, set compression.type then.
 *
 * librdkafka calls the log callback from its own threads; log_msg() is safe there
 * (one write(2) per line, no shared mutable state).  Every other callback runs on the
 * relay's thread.
 *
 * librdkafka runs its own network threads; delivery reports wait on its main queue
 * until we call rd_kafka_poll() on the relay's thread.  The queue is made pollable
 * with rd_kafka_queue_io_event_enable(): librdkafka writes a byte to a pipe when the
 * queue becomes non-empty, and the relay's poll() loop watches the pipe.
 */
#include "sink_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "log.h"

/*
 * Topic handles kept for the producer's life, so that a message names its topic by
 * handle.  Producing by name makes librdkafka create a topic object without asking
 * the cluster about it: its metadata is then requested by the one-second topic scan,
 * and the first messages to a topic waited up to a second for it (measured: 1.0 s
 * before the first acknowledgement of a drain).  rd_kafka_topic_new() asks at once.
 * Topics come from a template, so there are few; past TOPIC_CACHE_MAX of them the
 * rest are produced by name, which is only slower for their first message.
 */
#define TOPIC_CACHE_MAX 64

/*
 * What the sink remembers of a message librdkafka holds: its transaction and what it
 * counts in outstanding_bytes.  The message's opaque is its slot's index, so that a
 * delivery report finds both without walking the message's headers again (that walk
 * was 4% of the relay thread's instructions in a drain).  Slots are reused through a
 * free list and the array only grows, to the most messages ever held at once (bounded
 * by queue.buffering.max.messages): no allocation per message once warm.
 */
struct inflight {
    uint64_t txn_seq; /* free: the index of the next free slot */
    int64_t bytes;    /* free: -1 */
};

#define SLOT_NONE UINT32_MAX
#define SLOTS_INITIAL 1024

struct kafka_sink {
    struct sink base; /* first: a struct kafka_sink * is a sink * */
    const struct relay_config *cfg;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    bool fatal;
    rd_kafka_topic_t *topics[TOPIC_CACHE_MAX];
    int ntopics;
    int last_topic; /* index of the topic used last: most messages go to the same one */
    struct inflight *slots; /* one per message librdkafka holds; see struct inflight */
    uint32_t nslots;        /* slots ever handed out (since the last reset) */
    uint32_t cap;
    uint32_t free_head;     /* first free slot below nslots, or SLOT_NONE */
};

/* Properties the relay's guarantee depends on: a user value must agree. */
static const struct {
    const char *name;
    const char *value;
    const char *alt; /* another spelling of the same value, or NULL */
} enforced[] = {
    {"enable.idempotence", "true", NULL},
    {"acks", "all", "-1"},
    {"partitioner", "murmur2_random", NULL},
};

/* Defaults the user may override. */
static const struct {
    const char *name;
    const char *value;
} defaults[] = {
    {"client.id", "outbox-relay"},
    {"message.timeout.ms", "0"},
    {"linger.ms", "5"},
    {"compression.type", "none"}, /* the CPU-for-bytes trade is the deployment's */
    /* librdkafka backs off up to 10 s between reconnects; a relay wants its broker back. */
    {"reconnect.backoff.max.ms", "1000"},
    /* Statistics tell /readyz when a broker is back (on_stats). */
    {"statistics.interval.ms", "5000"},
};

/*
 * Errors that no retry or rebuild can cure for this message: it is too big, the
 * topic name is invalid, or we may not write to it.  Everything else is treated as
 * transient, which means replay.
 */
static bool is_permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return true;
    default:
        return false;
    }
}

/*
 * What a message costs in memory while librdkafka holds it, roughly: key, value,
 * header names and values, plus librdkafka's own bookkeeping per message and per
 * header (measured: about 250 and 30 bytes).  kafka.max_inflight_bytes counts this.
 */
#define MSG_OVERHEAD 256
#define HEADER_OVERHEAD 32

/* A slot for a new message, or SLOT_NONE when out of memory. */
static uint32_t slot_get(struct kafka_sink *s, uint64_t txn_seq, int64_t bytes)
{
    uint32_t i = s->free_head;

    if (i != SLOT_NONE) {
        s->free_head = (uint32_t)s->slots[i].txn_seq;
    } else {
        if (s->nslots == s->cap) {
            uint32_t ncap = s->cap ? s->cap * 2 : SLOTS_INITIAL;
            struct inflight *n;

            if (ncap <= s->cap || !(n = realloc(s->slots, (size_t)ncap * sizeof(*n))))
                return SLOT_NONE;
            s->slots = n;
            s->cap = ncap;
        }
        i = s->nslots++;
    }
    s->slots[i].txn_seq = txn_seq;
    s->slots[i].bytes = bytes;
    return i;
}

static void slot_put(struct kafka_sink *s, uint32_t i)
{
    s->slots[i].txn_seq = s->free_head;
    s->slots[i].bytes = -1;
    s->free_head = i;
}

/* The slot a message's opaque names, or NULL when it names none in use. */
static struct inflight *slot_of(struct kafka_sink *s, const rd_kafka_message_t *m)
{
    uintptr_t i = (uintptr_t)m->_private;

    return i < s->nslots && s->slots[i].bytes >= 0 ? &s->slots[i] : NULL;
}

/*
 * Send a permanently failed message to kafka.dlq_topic: the same key, value and
 * headers, plus headers saying what failed -- dlq_original_topic, dlq_error,
 * dlq_error_code, dlq_time -- (the source position travels in the event's own
 * headers or envelope).  The dead-letter copy takes over the original's slot (and so
 * its transaction sequence number), so its acknowledgement counts as the event's.
 * Returns 0 when the copy was produced.
 */
static int dead_letter(struct kafka_sink *s, const rd_kafka_message_t *m, struct inflight *slot)
{
    rd_kafka_headers_t *orig = NULL, *hdrs;
    const char *name = rd_kafka_err2name(m->err);
    const char *text = rd_kafka_err2str(m->err);
    char when[40];
    struct timespec ts;
    rd_kafka_resp_err_t err;

    clock_gettime(CLOCK_REALTIME, &ts);
    format_rfc3339((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, when, sizeof(when));
    hdrs = rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR
               ? rd_kafka_headers_copy(orig)
               : rd_kafka_headers_new(4);
    rd_kafka_header_add(hdrs, "dlq_original_topic", -1, rd_kafka_topic_name(m->rkt), -1);
    rd_kafka_header_add(hdrs, "dlq_error", -1, text, -1);
    rd_kafka_header_add(hdrs, "dlq_error_code", -1, name, -1);
    rd_kafka_header_add(hdrs, "dlq_time", -1, when, -1);
    err = rd_kafka_producev(s->rk, RD_KAFKA_V_TOPIC(s->cfg->kafka.dlq_topic),
                            RD_KAFKA_V_KEY(m->key, m->key_len),
                            RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_HEADERS(hdrs),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_OPAQUE(m->_private), RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(hdrs);
        log_error("cannot produce to dead-letter topic \"%s\": %s", s->cfg->kafka.dlq_topic,
                  rd_kafka_err2str(err));
        return -EIO;
    }
    s->base.outstanding++;
    /* The copy keeps the original's slot; its bytes: the original's plus four headers. */
    slot->bytes += (int64_t)(strlen("dlq_original_topic") + strlen(rd_kafka_topic_name(m->rkt)) +
                             strlen("dlq_error") + strlen(text) + strlen("dlq_error_code") +
                             strlen(name) + strlen("dlq_time") + strlen(when) +
                             4 * HEADER_OVERHEAD);
    s->base.outstanding_bytes += slot->bytes;
    return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_sink *s = opaque;
    rd_kafka_headers_t *hdrs = NULL;
    char id[128] = "";
    enum sink_outcome outcome = SINK_DELIVERED;
    const char *errtext = NULL;
    struct inflight *slot = slot_of(s, m);
    uint64_t txn_seq;

    (void)rk;
    if (!slot)
        return; /* not one of this producer's messages: cannot happen */
    txn_seq = slot->txn_seq;
    s->base.outstanding--;
    s->base.outstanding_bytes -= slot->bytes;
    if (!m->err)
        s->base.unreachable = false;
    if (m->err) {
        const void *v;
        size_t len;

        outcome = is_permanent(m->err) ? SINK_FAILED_PERMANENT : SINK_FAILED;
        errtext = rd_kafka_err2str(m->err);
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(hdrs, "ce_id", &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            v) {
            if (len >= sizeof(id))
                len = sizeof(id) - 1;
            memcpy(id, v, len);
            id[len] = '\0';
        }
    }
    /* A permanent failure goes to the dead-letter topic, if there is one (not twice). */
    if (outcome == SINK_FAILED_PERMANENT && s->cfg->kafka.dlq_topic[0] && m->rkt &&
        strcmp(rd_kafka_topic_name(m->rkt), s->cfg->kafka.dlq_topic) != 0) {
        log_warn("event \"%s\" cannot be delivered to topic \"%s\": %s; sending it to the "
                 "dead-letter topic \"%s\"",
                 id, rd_kafka_topic_name(m->rkt), errtext, s->cfg->kafka.dlq_topic);
        if (dead_letter(s, m, slot) == 0)
            return;
    }
    slot_put(s, (uint32_t)(slot - s->slots));
    s->base.report(s->base.opaque, txn_seq, outcome, m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                   id, errtext);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_sink *s = opaque;

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));

        log_error("kafka producer fatal error: %s: %s", rd_kafka_err2name(orig), buf);
        s->fatal = true;
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        s->base.unreachable = true;
    log_warn("kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/*
 * librdkafka's statistics (every statistics.interval.ms): the only place it says that
 * a broker is up again when nothing is being delivered.  Any broker in state "UP" will
 * do; the JSON is not parsed further.  Returns 0: librdkafka frees the string.
 */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct kafka_sink *s = opaque;

    (void)rk;
    (void)len;
    s->base.unreachable = strstr(json, "\"state\":\"UP\"") == NULL;
    return 0;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    log_msg(level <= 3 ? RELAY_LOG_ERROR
            : level == 4 ? RELAY_LOG_WARN
            : level <= 6 ? RELAY_LOG_INFO
                         : RELAY_LOG_DEBUG,
            "kafka: %s: %s", fac, buf);
}

static int set_prop(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                    size_t errstr_size)
{
    char err[256];

    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "kafka property \"%s\": %s", name, err);
        return -EINVAL;
    }
    return 0;
}

/*
 * Build the producer configuration: defaults, then the user's properties (checked
 * against the enforced ones), then the enforced ones.  Returns NULL with errstr set
 * when a property is unknown, has a bad value, or contradicts the relay's guarantee.
 */
static rd_kafka_conf_t *build_conf(const struct relay_config *cfg, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char qmax[32], qkb[32];

    for (size_t j = 0; j < sizeof(defaults) / sizeof(defaults[0]); j++)
        if (set_prop(conf, defaults[j].name, defaults[j].value, errstr, errstr_size) < 0)
            goto fail;
    /*
     * Polling hands over a whole batch at once, and the next batch waits until this
     * one is acknowledged: the batch already is the batching, and lingering would only
     * add its wait to every batch (20,000 -> 30,000 events/s drained at batch 1000,
     * docs/performance.md).  A kafka.properties entry still wins.
     */
    if (cfg->postgres.mode == RELAY_MODE_POLLING &&
        set_prop(conf, "linger.ms", "0", errstr, errstr_size) < 0)
        goto fail;
    /* Room for every event the relay lets be in flight, so produce never blocks. */
    snprintf(qmax, sizeof(qmax), "%lld", (long long)cfg->kafka.max_inflight_events + 1024);
    /* And for every byte: the relay stops at kafka.max_inflight_bytes first. */
    snprintf(qkb, sizeof(qkb), "%lld", (long long)cfg->kafka.max_inflight_bytes / 1024 + 4096);
    if (set_prop(conf, "bootstrap.servers", cfg->kafka.brokers, errstr, errstr_size) < 0 ||
        set_prop(conf, "queue.buffering.max.messages", qmax, errstr, errstr_size) < 0 ||
        set_prop(conf, "queue.buffering.max.kbytes", qkb, errstr, errstr_size) < 0)
        goto fail;
    for (size_t i = 0; i < cfg->kafka.nproperties; i++) {
        const struct relay_kv *kv = &cfg->kafka.properties[i];

        for (size_t j = 0; j < sizeof(enforced) / sizeof(enforced[0]); j++) {
            if (strcmp(kv->key, enforced[j].name) == 0 &&
                strcasecmp(kv->value, enforced[j].value) != 0 &&
                !(enforced[j].alt && strcmp(kv->value, enforced[j].alt) == 0)) {
                snprintf(errstr, errstr_size,
                         "kafka property \"%s\" must be \"%s\": the relay's delivery "
                         "guarantee depends on it",
                         kv->key, enforced[j].value);
                goto fail;
            }
        }
        if (strcmp(kv->key, "queue.buffering.max.messages") == 0 &&
            strtoll(kv->value, NULL, 10) < cfg->kafka.max_inflight_events) {
            snprintf(errstr, errstr_size,
                     "kafka property \"queue.buffering.max.messages\" (%s) must be at least "
                     "kafka.max_inflight_events (%lld)",
                     kv->value, (long long)cfg->kafka.max_inflight_events);
            goto fail;
        }
        if (set_prop(conf, kv->key, kv->value, errstr, errstr_size) < 0)
            goto fail;
    }
    for (size_t j = 0; j < sizeof(enforced) / sizeof(enforced[0]); j++)
        if (set_prop(conf, enforced[j].name, enforced[j].value, errstr, errstr_size) < 0)
            goto fail;
    return conf;

fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int sink_kafka_check(const struct relay_config *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = build_conf(cfg, errstr, errstr_size);

    if (!conf)
        return -EINVAL;
    rd_kafka_conf_destroy(conf);
    return 0;
}

static int producer_create(struct kafka_sink *s, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = build_conf(s->cfg, errstr, errstr_size);
    char err[512];

    if (!conf)
        return -EINVAL;
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_stats_cb(conf, on_stats);

    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!s->rk) {
        snprintf(errstr, errstr_size, "cannot create kafka producer: %s", err);
        rd_kafka_conf_destroy(conf);
        return -EINVAL;
    }
    /* conf is owned by s->rk from here on. */
    s->mainq = rd_kafka_queue_get_main(s->rk);
    rd_kafka_queue_io_event_enable(s->mainq, s->base.pipefd[1], "1", 1);
    s->fatal = false;
    return 0;
}

static void producer_destroy(struct kafka_sink *s)
{
    if (!s->rk)
        return;
    rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    /* Serve the purge reports so that the counters and the tracker see them. */
    rd_kafka_poll(s->rk, 0);
    /* Our references only: messages still held keep their topic alive. */
    for (int i = 0; i < s->ntopics; i++)
        rd_kafka_topic_destroy(s->topics[i]);
    s->ntopics = 0;
    s->last_topic = 0;
    rd_kafka_queue_io_event_enable(s->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(s->mainq);
    s->mainq = NULL;
    rd_kafka_destroy(s->rk);
    s->rk = NULL;
    s->base.outstanding = 0;
    s->base.outstanding_bytes = 0;
    /* Every message is gone with the producer: every slot is free. */
    s->nslots = 0;
    s->free_head = SLOT_NONE;
}

/* The handle of topic name (see TOPIC_CACHE_MAX), or NULL: produce by name. */
static rd_kafka_topic_t *topic_handle(struct kafka_sink *s, const char *name)
{
    rd_kafka_topic_t *rkt;

    if (s->ntopics > 0 && strcmp(rd_kafka_topic_name(s->topics[s->last_topic]), name) == 0)
        return s->topics[s->last_topic];
    for (int i = 0; i < s->ntopics; i++) {
        if (strcmp(rd_kafka_topic_name(s->topics[i]), name) == 0) {
            s->last_topic = i;
            return s->topics[i];
        }
    }
    if (s->ntopics == TOPIC_CACHE_MAX || !(rkt = rd_kafka_topic_new(s->rk, name, NULL)))
        return NULL;
    s->last_topic = s->ntopics;
    s->topics[s->ntopics++] = rkt;
    return rkt;
}

static int kafka_produce(sink *base, const struct out_msg *msg, uint64_t txn_seq, char *errstr,
                         size_t errstr_size)
{
    struct kafka_sink *s = (struct kafka_sink *)base;
    rd_kafka_headers_t *hdrs;
    rd_kafka_resp_err_t err;
    rd_kafka_vu_t vu[6];
    rd_kafka_error_t *error;
    int64_t bytes = (int64_t)(msg->value_len + msg->key_len) + MSG_OVERHEAD;
    uint32_t slot;

    if (!s->rk) {
        snprintf(errstr, errstr_size, "no kafka producer");
        return -EIO;
    }
    /* librdkafka's API allocates headers; they are the message's once it is taken. */
    hdrs = rd_kafka_headers_new((size_t)msg->nheaders);
    for (int i = 0; i < msg->nheaders; i++) {
        size_t namelen = strlen(msg->headers[i].name);

        rd_kafka_header_add(hdrs, msg->headers[i].name, (ssize_t)namelen, msg->headers[i].value,
                            (ssize_t)msg->headers[i].len);
        bytes += (int64_t)(namelen + msg->headers[i].len) + HEADER_OVERHEAD;
    }
    vu[0].u.rkt = topic_handle(s, msg->topic);
    if (vu[0].u.rkt) {
        vu[0].vtype = RD_KAFKA_VTYPE_RKT;
    } else {
        vu[0].vtype = RD_KAFKA_VTYPE_TOPIC;
        vu[0].u.cstr = msg->topic;
    }
    vu[1].vtype = RD_KAFKA_VTYPE_KEY;
    vu[1].u.mem.ptr = (void *)msg->key;
    vu[1].u.mem.size = msg->key_len;
    vu[2].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[2].u.mem.ptr = (void *)msg->value;
    vu[2].u.mem.size = msg->value_len;
    vu[3].vtype = RD_KAFKA_VTYPE_HEADERS;
    vu[3].u.headers = hdrs;
    vu[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[4].u.i = RD_KAFKA_MSG_F_COPY;
    if ((slot = slot_get(s, txn_seq, bytes)) == SLOT_NONE) {
        rd_kafka_headers_destroy(hdrs);
        snprintf(errstr, errstr_size, "cannot produce to topic \"%s\": out of memory",
                 msg->topic);
        return -EIO;
    }
    vu[5].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[5].u.ptr = (void *)(uintptr_t)slot;
    error = rd_kafka_produceva(s->rk, vu, sizeof(vu) / sizeof(vu[0]));
    err = error ? rd_kafka_error_code(error) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (error)
        rd_kafka_error_destroy(error);
    if (err) {
        /* On failure the headers stay ours. */
        rd_kafka_headers_destroy(hdrs);
        slot_put(s, slot);
        snprintf(errstr, errstr_size, "cannot produce to topic \"%s\": %s", msg->topic,
                 rd_kafka_err2str(err));
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return -EAGAIN;
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
            return -EMSGSIZE; /* larger than message.max.bytes: no retry helps */
        return -EIO;
    }
    s->base.outstanding++;
    s->base.outstanding_bytes += bytes;
    return 0;
}

static int kafka_poll(sink *base)
{
    struct kafka_sink *s = (struct kafka_sink *)base;

    return s->rk ? rd_kafka_poll(s->rk, 0) : 0;
}

static bool kafka_fatal(const sink *base)
{
    const struct kafka_sink *s = (const struct kafka_sink *)base;

    return s->fatal || !s->rk;
}

static void kafka_flush(sink *base, int timeout_ms)
{
    struct kafka_sink *s = (struct kafka_sink *)base;

    if (!s->rk)
        return;
    /* rd_kafka_flush() serves delivery reports while it waits. */
    rd_kafka_flush(s->rk, timeout_ms);
    rd_kafka_poll(s->rk, 0);
}

static int kafka_reset(sink *base, char *errstr, size_t errstr_size)
{
    struct kafka_sink *s = (struct kafka_sink *)base;

    producer_destroy(s);
    return producer_create(s, errstr, errstr_size);
}

static void kafka_destroy(sink *base)
{
    struct kafka_sink *s = (struct kafka_sink *)base;

    producer_destroy(s);
    free(s->slots);
    s->slots = NULL;
}

static const struct sink_ops kafka_ops = {
    .produce = kafka_produce,
    .poll = kafka_poll,
    .fatal = kafka_fatal,
    .flush = kafka_flush,
    .reset = kafka_reset,
    .destroy = kafka_destroy,
};

sink *sink_kafka_new(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                     char *errstr, size_t errstr_size)
{
    struct kafka_sink *s = calloc(1, sizeof(*s));

    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->free_head = SLOT_NONE;
    if (sink_base_init(&s->base, &kafka_ops, report, opaque, errstr, errstr_size) < 0) {
        free(s);
        return NULL;
    }
    if (producer_create(s, errstr, errstr_size) < 0) {
        sink_free(&s->base);
        return NULL;
    }
    return &s->base;
}

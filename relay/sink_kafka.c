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
#include "sink_kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "config_schema.h"
#include "kafka_conf.h"
#include "log.h"
#include "redact.h"

/* This sink's registry row, at the end of the file. */
extern const struct sink_type sink_type_kafka;


static int check_dlq_topic(struct parser_ctx *ctx, const char *name, const char *value,
                           struct relay_pos pos);

#define KFIELD(f) offsetof(struct kafka_settings, f)
#define CFIELD(f) offsetof(struct relay_config, f)

/* clang-format off */
static const struct relay_option kafka_options[] = {
    {.section = "kafka", .key = "brokers", .type = OPT_STRING,
     .offset = KFIELD(brokers), .required = true, .check = relay_config_check_nonempty},
    {.section = "kafka", .key = "topic", .type = OPT_STRING,
     .offset = KFIELD(common.destination), .def = "outbox.event.{aggregatetype}",
     .check = relay_config_check_template},
    {.section = "kafka", .key = "dlq_topic", .type = OPT_STRING,
     .offset = KFIELD(common.dead_letter), .def = "", .check = check_dlq_topic},
    {.section = "kafka", .key = "properties", .type = OPT_PROPERTIES,
     .offset = KFIELD(properties), .offset2 = KFIELD(nproperties)},
    {.section = "kafka", .key = "format", .type = OPT_ENUM,
     .offset = KFIELD(common.format), .def = "cloudevents", .choices = relay_format_choices},
    /* The pipeline's keys lived here before the pipeline section: kept as aliases. */
    {.section = "kafka", .key = "max_inflight_events", .type = OPT_INTEGER, .core = true,
     .offset = CFIELD(pipeline.max_inflight_events), .min = 1, .max = 10000000,
     .alias_of = "pipeline.max_inflight_events"},
    {.section = "kafka", .key = "max_inflight_bytes", .type = OPT_INTEGER, .core = true,
     .offset = CFIELD(pipeline.max_inflight_bytes), .min = 1048576,
     .max = INT64_C(17179869184), .alias_of = "pipeline.max_inflight_bytes"},
    {.section = "kafka", .key = "shutdown_timeout", .type = OPT_DURATION, .core = true,
     .offset = CFIELD(pipeline.shutdown_timeout_ms), .min = 0,
     .alias_of = "pipeline.shutdown_timeout"},
};
/* clang-format on */

static const struct relay_sink_config kafka_config = {
    .name = "kafka",
    .section = "kafka",
    .options = kafka_options,
    .noptions = sizeof(kafka_options) / sizeof(kafka_options[0]),
    .settings_size = sizeof(struct kafka_settings),
    .common_offset = offsetof(struct kafka_settings, common),
};

/* kafka.dlq_topic: empty (no dead-letter topic) or a literal Kafka topic name. */
static int check_dlq_topic(struct parser_ctx *ctx, const char *name, const char *value,
                           struct relay_pos pos)
{
    size_t n = strlen(value);
    char shown[96];

    if (n == 0)
        return 0;
    if (n > 249 || strcmp(value, ".") == 0 || strcmp(value, "..") == 0 ||
        strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
        return relay_config_fail(ctx, pos,
                                 "bad topic name \"%s\" for \"%s\": use 1 to 249 letters, "
                                 "digits, '.', '_' and '-'",
                                 relay_config_show(shown, sizeof(shown), value), name);
    return 0;
}

/* This sink's settings in a loaded configuration. */
static const struct kafka_settings *settings_of(const struct relay_config *cfg)
{
    return relay_config_sink_settings(cfg, "kafka");
}

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
 * A message's opaque is the pipeline's tag for it (sink.h): the tag is all the sink
 * keeps of a message, librdkafka keeps the rest.  Tags are 64-bit; so are pointers on
 * every platform the relay is built for.
 */
_Static_assert(sizeof(void *) >= sizeof(uint64_t), "a message opaque must hold a 64-bit tag");

struct kafka_sink {
    struct sink base; /* first: a struct kafka_sink * is a sink * */
    const struct relay_config *cfg;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    bool fatal;
    rd_kafka_topic_t *topics[TOPIC_CACHE_MAX];
    int ntopics;
    int last_topic; /* index of the topic used last: most messages go to the same one */
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
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return true;
    default:
        return false;
    }
}

static bool is_too_large(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
           err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/*
 * What a message costs in memory while librdkafka holds it, beyond its key, value and
 * header bytes: librdkafka's own bookkeeping per message and per header (measured:
 * about 250 and 30 bytes).  The pipeline counts it against
 * pipeline.max_inflight_bytes (sink_caps).
 */
#define MSG_OVERHEAD 256
#define HEADER_OVERHEAD 32

/*
 * The message as librdkafka held it, for the dead-letter record of one it could not
 * deliver: topic, key, value and headers (out borrows from m).
 */
static void message_view(const rd_kafka_message_t *m, struct out_msg *out)
{
    rd_kafka_headers_t *hdrs = NULL;
    const char *name;
    const void *v;
    size_t len;

    snprintf(out->topic, sizeof(out->topic), "%s", m->rkt ? rd_kafka_topic_name(m->rkt) : "");
    out->key = m->key;
    out->key_len = m->key ? m->key_len : 0;
    out->value = m->payload;
    out->value_len = m->payload ? m->len : 0;
    out->id = NULL;
    out->id_len = 0;
    out->nheaders = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    for (size_t i = 0; out->nheaders < FORMAT_MAX_HEADERS &&
                       rd_kafka_header_get_all(hdrs, i, &name, &v, &len) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
         i++)
        out->headers[out->nheaders++] = (struct msg_header){name, v, v ? len : 0};
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_sink *s = opaque;
    struct sink_report r = {.tag = (uint64_t)(uintptr_t)m->_private, .code = "", .err = ""};
    struct out_msg view;

    (void)rk;
    if (!m->err) {
        s->base.unreachable = false;
        r.outcome = SINK_DELIVERED;
    } else if (is_permanent(m->err)) {
        r.outcome = SINK_UNDELIVERABLE;
        r.too_large = is_too_large(m->err);
        message_view(m, &view);
        r.msg = &view;
    } else {
        r.outcome = SINK_RETRY;
    }
    if (m->err) {
        r.code = rd_kafka_err2name(m->err);
        r.err = rd_kafka_err2str(m->err);
    }
    /*
     * A topic that does not exist, on a cluster that does not create topics on demand:
     * a deployment to mend, not a message to give up on.  Said plainly, and retried
     * (with the pipeline's backoff) until someone creates it.
     */
    if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
        m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        r.err = "the topic does not exist and the cluster does not create topics on demand: "
                "create it (events wait in PostgreSQL meanwhile)";
    r.destination = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    sink_report(&s->base, &r);
}

/*
 * librdkafka before 2.6.1 repeats the client nonce in SCRAM's final message; Apache
 * Kafka 4 brokers check the nonce strictly and refuse it, right password or not (Kafka
 * 3.8.1 to 3.9 tolerate it).  Debian 12 ships 2.0.2.  The error cannot tell a wrong
 * password from the defect, so both are named.
 */
#define SCRAM_DEFECT_HINT                                                                   \
    "; if the password is right: this relay's librdkafka predates 2.6.1, whose SCRAM "   \
    "nonce defect Apache Kafka 4 brokers refuse -- against Kafka 4 use SASL PLAIN over " \
    "TLS, OAUTHBEARER or client certificates, or a build with librdkafka 2.6.1 or later " \
    "(docs/security.md)"

static bool scram_defect(const char *reason)
{
    return rd_kafka_version() < 0x020601ff && strstr(reason, "SCRAM") != NULL;
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
    /*
     * A broker that refuses our credentials or whose certificate does not verify
     * refuses every later attempt too: librdkafka would retry forever, and the relay
     * would look merely slow.  Stop with what to mend, as Kafka's Java client fails a
     * send on an authentication exception.  (A connection lost mid-handshake is
     * __TRANSPORT, not __SSL: brokers restarting stay transient.)
     */
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        sink_refuse(&s->base,
                    "kafka refused the relay's credentials: %s (check sasl.mechanisms, "
                    "sasl.username and sasl.password in kafka.properties)%s",
                    reason, scram_defect(reason) ? SCRAM_DEFECT_HINT : "");
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__SSL) {
        sink_refuse(&s->base,
                    "TLS with kafka failed: %s (check ssl.ca.location in kafka.properties "
                    "against the CA that signed the brokers' certificates, and that the "
                    "certificates name the address in kafka.brokers)",
                    reason);
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

/*
 * Build the producer configuration: defaults, then the user's properties (checked
 * against the enforced ones), then the enforced ones.  Returns NULL with errstr set
 * when a property is unknown, has a bad value, or contradicts the relay's guarantee.
 */
static rd_kafka_conf_t *build_conf(const struct relay_config *cfg, char *errstr,
                                   size_t errstr_size)
{
    const struct kafka_settings *k = settings_of(cfg);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char qmax[32], qkb[32];

    for (size_t j = 0; j < sizeof(defaults) / sizeof(defaults[0]); j++)
        if (kafka_conf_set(conf, defaults[j].name, defaults[j].value, errstr, errstr_size) < 0)
            goto fail;
    /*
     * Polling hands over a whole batch at once, and the next batch waits until this
     * one is acknowledged: the batch already is the batching, and lingering would only
     * add its wait to every batch (20,000 -> 30,000 events/s drained at batch 1000,
     * docs/performance.md).  A kafka.properties entry still wins.
     */
    if (cfg->postgres.mode == RELAY_MODE_POLLING &&
        kafka_conf_set(conf, "linger.ms", "0", errstr, errstr_size) < 0)
        goto fail;
    /* Room for every event the relay lets be in flight, so produce never blocks. */
    snprintf(qmax, sizeof(qmax), "%lld", (long long)cfg->pipeline.max_inflight_events + 1024);
    /* And for every byte: the relay stops at pipeline.max_inflight_bytes first. */
    snprintf(qkb, sizeof(qkb), "%lld", (long long)cfg->pipeline.max_inflight_bytes / 1024 + 4096);
    if (kafka_conf_set(conf, "bootstrap.servers", k->brokers, errstr, errstr_size) < 0 ||
        kafka_conf_set(conf, "queue.buffering.max.messages", qmax, errstr, errstr_size) < 0 ||
        kafka_conf_set(conf, "queue.buffering.max.kbytes", qkb, errstr, errstr_size) < 0)
        goto fail;
    for (size_t i = 0; i < k->nproperties; i++) {
        const struct relay_kv *kv = &k->properties[i];

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
            strtoll(kv->value, NULL, 10) < cfg->pipeline.max_inflight_events) {
            snprintf(errstr, errstr_size,
                     "kafka property \"queue.buffering.max.messages\" (%s) must be at least "
                     "pipeline.max_inflight_events (%lld)",
                     kv->value, (long long)cfg->pipeline.max_inflight_events);
            goto fail;
        }
        if (kafka_conf_set(conf, kv->key, kv->value, errstr, errstr_size) < 0)
            goto fail;
    }
    for (size_t j = 0; j < sizeof(enforced) / sizeof(enforced[0]); j++)
        if (kafka_conf_set(conf, enforced[j].name, enforced[j].value, errstr, errstr_size) < 0)
            goto fail;
    return conf;

fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
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
    rd_kafka_conf_set_log_cb(conf, kafka_log);
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

static int kafka_produce(sink *base, const struct out_msg *msg, uint64_t tag, char *errstr,
                         size_t errstr_size)
{
    struct kafka_sink *s = (struct kafka_sink *)base;
    rd_kafka_headers_t *hdrs;
    rd_kafka_resp_err_t err;
    rd_kafka_vu_t vu[6];
    rd_kafka_error_t *error;

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
    vu[5].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[5].u.ptr = (void *)(uintptr_t)tag;
    error = rd_kafka_produceva(s->rk, vu, sizeof(vu) / sizeof(vu[0]));
    err = error ? rd_kafka_error_code(error) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (error)
        rd_kafka_error_destroy(error);
    if (err) {
        /* On failure the headers stay ours. */
        rd_kafka_headers_destroy(hdrs);
        snprintf(errstr, errstr_size, "cannot produce to topic \"%s\": %s", msg->topic,
                 rd_kafka_err2str(err));
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return -EAGAIN;
        if (is_too_large(err))
            return -EMSGSIZE; /* larger than message.max.bytes: no retry helps */
        /*
         * A topic the cluster refused for good (authorization, invalid): librdkafka
         * remembers it and refuses every message to it at once.  Replaying would meet the
         * same refusal forever, a halt in disguise: the pipeline sets the event aside.
         */
        if (is_permanent(err))
            return -EACCES;
        return -EIO;
    }
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
}

static const struct sink_ops kafka_ops = {
    .produce = kafka_produce,
    .poll = kafka_poll,
    .fatal = kafka_fatal,
    .flush = kafka_flush,
    .reset = kafka_reset,
    .destroy = kafka_destroy,
};

static sink *kafka_create(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                          char *errstr, size_t errstr_size)
{
    struct kafka_sink *s = calloc(1, sizeof(*s));

    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    if (sink_base_init(&s->base, &sink_type_kafka, &kafka_ops, report, opaque, errstr,
                       errstr_size) < 0) {
        free(s);
        return NULL;
    }
    if (producer_create(s, errstr, errstr_size) < 0) {
        sink_free(&s->base);
        return NULL;
    }
    return &s->base;
}

/*
 * outbox-relay check
 */

struct kafka_probe {
    char last_error[512];
    bool refused; /* a login or TLS failure: no point waiting for the timeout */
};

static void kafka_quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* check prints its own findings; librdkafka's lines would only repeat them. */
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

static void kafka_on_probe_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_probe *p = opaque;

    (void)rk;
    snprintf(p->last_error, sizeof(p->last_error), "%s", reason);
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL)
        p->refused = true;
}

static bool topic_in(const struct rd_kafka_metadata *md, const char *topic)
{
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0 && md->topics[i].err == 0)
            return true;
    }
    return false;
}

static void say(const struct sink_check_out *out, enum sink_check_level level, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));

static void say(const struct sink_check_out *out, enum sink_check_level level, const char *fmt,
                ...)
{
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    out->line(out->ctx, level, text);
}

static int kafka_check(const struct relay_config *cfg, int timeout_ms,
                       const struct sink_check_out *out)
{
    const struct kafka_settings *k = settings_of(cfg);
    struct kafka_probe probe = {.last_error = ""};
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512], heading[600];
    rd_kafka_resp_err_t err;
    rd_kafka_t *rk;

    snprintf(heading, sizeof(heading), "kafka (brokers \"%s\"):", k->brokers);
    out->heading(out->ctx, heading);
    /* The properties were validated already (check_config); set them as the relay does. */
    bool set_ok = kafka_conf_set(conf, "client.id", "outbox-relay-check", errstr,
                                 sizeof(errstr)) == 0 &&
                  kafka_conf_set(conf, "bootstrap.servers", k->brokers, errstr,
                                 sizeof(errstr)) == 0;

    for (size_t i = 0; set_ok && i < k->nproperties; i++)
        set_ok = kafka_conf_set(conf, k->properties[i].key, k->properties[i].value, errstr,
                                sizeof(errstr)) == 0;
    if (!set_ok) {
        say(out, SINK_CHECK_FAIL, "%s", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_quiet_log);
    rd_kafka_conf_set_error_cb(conf, kafka_on_probe_error);
    rd_kafka_conf_set_opaque(conf, &probe);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        say(out, SINK_CHECK_FAIL, "cannot create a kafka client: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    /*
     * Ask in slices, serving error callbacks in between: a refused login or
     * certificate ends the wait at once, as it ends `run`, instead of at timeout_ms.
     */
    for (int waited = 0;;) {
        int slice = timeout_ms - waited < 500 ? timeout_ms - waited : 500;

        err = rd_kafka_metadata(rk, 1, NULL, &md, slice);
        rd_kafka_poll(rk, 0); /* serve error callbacks: they say why */
        waited += slice;
        if (err != RD_KAFKA_RESP_ERR__TIMED_OUT || probe.refused || waited >= timeout_ms)
            break;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && probe.refused) {
        say(out, SINK_CHECK_FAIL, "kafka at \"%s\" refused the relay: %s%s", k->brokers,
            probe.last_error, scram_defect(probe.last_error) ? SCRAM_DEFECT_HINT : "");
        rd_kafka_destroy(rk);
        return 1;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        say(out, SINK_CHECK_FAIL,
            "cannot get metadata from kafka at \"%s\" within %d ms: %s%s%s", k->brokers,
            timeout_ms, rd_kafka_err2str(err), probe.last_error[0] ? "; " : "",
            probe.last_error);
        rd_kafka_destroy(rk);
        return 1;
    }
    say(out, SINK_CHECK_OK, "metadata from %d broker(s), cluster has %d topic(s)",
        md->broker_cnt, md->topic_cnt);
    if (strchr(k->common.destination, '{') == NULL && !topic_in(md, k->common.destination))
        say(out, SINK_CHECK_WARN,
            "topic \"%s\" does not exist (yet): it is created only if the cluster "
            "auto-creates topics",
            k->common.destination);
    if (k->common.dead_letter[0] != '\0' && !topic_in(md, k->common.dead_letter))
        say(out, SINK_CHECK_WARN,
            "dead-letter topic \"%s\" does not exist (yet): it is created only if "
            "the cluster auto-creates topics",
            k->common.dead_letter);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return 0;
}

static int kafka_check_config(const struct relay_config *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = build_conf(cfg, errstr, errstr_size);

    if (!conf)
        return -EINVAL;
    rd_kafka_conf_destroy(conf);
    return 0;
}


static void kafka_plan(const struct relay_config *cfg,
                       void (*item)(void *ctx, const char *label, const char *text), void *ctx)
{
    const struct kafka_settings *k = settings_of(cfg);
    char text[1024];

    snprintf(text, sizeof(text), "kafka at \"%s\", format %s", k->brokers,
             relay_choice_name(relay_format_choices, (int)k->common.format));
    item(ctx, "sink", text);
    snprintf(text, sizeof(text), "\"%s\"", k->common.destination);
    item(ctx, "topic", text);
    for (size_t i = 0; i < k->nproperties; i++) {
        snprintf(text, sizeof(text), "%s = %s", k->properties[i].key,
                 redact_property(k->properties[i].key, k->properties[i].value));
        item(ctx, "property", text);
    }
}

static const char *kafka_dead_letter(const struct relay_config *cfg)
{
    return settings_of(cfg)->common.dead_letter;
}

const struct sink_type sink_type_kafka = {
    .name = "kafka",
    .config = &kafka_config,
    .create = kafka_create,
    .check_config = kafka_check_config,
    .check = kafka_check,
    .plan = kafka_plan,
    .dead_letter_destination = kafka_dead_letter,
    .caps =
        {
            .keeps_key_order = true, /* idempotent producer, one partition per key */
            .max_destination = 249,  /* Kafka's limit on a topic name */
            .destination_chars = "._-",
            .destination_word = "topic",
            .message_overhead = MSG_OVERHEAD,
            .header_overhead = HEADER_OVERHEAD,
            .unreachable = "kafka brokers unreachable",
        },
};

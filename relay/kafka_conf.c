/*
 * kafka_conf.c -- the librdkafka configuration every Kafka client of the relay shares
 * (kafka_conf.h).
 *
 * librdkafka calls the log callback from its own threads; log_msg() is safe there
 * (one write(2) per line, no shared mutable state).
 */
#include "kafka_conf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sink_kafka.h"

/* Producer properties a consumer would refuse or ignore: not passed to consumers. */
static const char *const producer_only[] = {
    "acks", "linger.ms", "enable.idempotence", "compression.type", "batch.size",
    "message.timeout.ms", "queue.buffering.max.ms", "queue.buffering.max.messages",
    "queue.buffering.max.kbytes", "max.in.flight.requests.per.connection", "retries",
    "message.send.max.retries", "transactional.id"};

int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                   size_t errstr_size)
{
    char err[256];

    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "kafka property \"%s\": %s", name, err);
        return -EINVAL;
    }
    return 0;
}

static bool producer_property(const char *name)
{
    for (size_t j = 0; j < sizeof(producer_only) / sizeof(producer_only[0]); j++)
        if (strcmp(name, producer_only[j]) == 0)
            return true;
    return false;
}

rd_kafka_conf_t *kafka_consumer_conf(const struct relay_config *cfg, const char *who,
                                     const char *client_id, const struct relay_kv *extra,
                                     size_t nextra, char *errstr, size_t errstr_size)
{
    const struct kafka_settings *k = relay_config_sink_settings(cfg, "kafka");
    rd_kafka_conf_t *conf;

    if (!k || !k->brokers || !k->brokers[0]) {
        snprintf(errstr, errstr_size, "%s: kafka.brokers is not set (the %s reads the broker "
                                      "of the kafka section)",
                 who, who);
        return NULL;
    }
    conf = rd_kafka_conf_new();
    /*
     * Defaults a property may change: start a partition never read at its beginning
     * (a reader must not skip what was published before it first ran), and prefetch
     * 8 MiB per partition rather than librdkafka's 64 MiB: the relay stays small.
     */
    if (kafka_conf_set(conf, "bootstrap.servers", k->brokers, errstr, errstr_size) < 0 ||
        kafka_conf_set(conf, "client.id", client_id, errstr, errstr_size) < 0 ||
        kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errstr_size) < 0 ||
        kafka_conf_set(conf, "queued.max.messages.kbytes", "8192", errstr, errstr_size) < 0)
        goto fail;
    for (size_t i = 0; i < k->nproperties; i++)
        if (!producer_property(k->properties[i].key) &&
            kafka_conf_set(conf, k->properties[i].key, k->properties[i].value, errstr,
                           errstr_size) < 0)
            goto fail;
    for (size_t i = 0; i < nextra; i++)
        if (kafka_conf_set(conf, extra[i].key, extra[i].value, errstr, errstr_size) < 0)
            goto fail;
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    log_msg(level <= 3 ? RELAY_LOG_ERROR
            : level == 4 ? RELAY_LOG_WARN
            : level <= 6 ? RELAY_LOG_INFO
                         : RELAY_LOG_DEBUG,
            "kafka: %s: %s", fac, buf);
}

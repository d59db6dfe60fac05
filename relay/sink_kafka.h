/*
 * sink_kafka.h -- the Kafka sink's settings: the "kafka" section of the configuration,
 * as config.c fills it from the rows in sink_kafka.c.  Only the sink and its tests
 * read it (through relay_config_sink_settings(cfg, "kafka")); every key is in
 * docs/configuration.md.
 */
#ifndef RELAY_SINK_KAFKA_H
#define RELAY_SINK_KAFKA_H

#include <stddef.h>

#include "config.h"

struct kafka_settings {
    struct sink_common common;   /* topic, format, dlq_topic */
    char *brokers;               /* required when the sink is kafka; bootstrap.servers */
    struct relay_kv *properties; /* passed to librdkafka as they are */
    size_t nproperties;
};

#endif /* RELAY_SINK_KAFKA_H */

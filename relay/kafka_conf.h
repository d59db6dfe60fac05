/*
 * kafka_conf.h -- the librdkafka configuration every Kafka client of the relay shares.
 *
 * The relay talks to Kafka in three roles: the sink's producer (sink_kafka.c), the
 * inbox's consumer group (inbox.c) and the replay's reader of the dead-letter topic
 * (replay_topic.c).  All three take the broker list and the connection's properties
 * (TLS, SASL, timeouts) from the kafka section, so a file that publishes can also
 * consume without saying anything twice; each then adds what its role needs.  This
 * module holds that common part and the log callback that routes librdkafka's lines
 * into the relay's log.
 */
#ifndef RELAY_KAFKA_CONF_H
#define RELAY_KAFKA_CONF_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

/*
 * Set one property.  Returns 0, or -EINVAL with errstr naming the property and
 * librdkafka's complaint (an unknown name, a bad value).
 */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                   size_t errstr_size);

/*
 * A consumer's configuration: kafka.brokers, client.id = client_id, a partition never
 * read starting at its beginning, 8 MiB of prefetch per partition, then the kafka
 * section's properties except the producer-only ones, then extra[0..nextra) (a role's
 * own properties, such as inbox.properties), and the log callback.  who names the
 * role in errors ("inbox", "replay").  Returns a configuration the caller owns
 * (rd_kafka_new takes it, or rd_kafka_conf_destroy frees it), or NULL with errstr set:
 * no kafka section or brokers, a property librdkafka refuses.
 */
rd_kafka_conf_t *kafka_consumer_conf(const struct relay_config *cfg, const char *who,
                                     const char *client_id, const struct relay_kv *extra,
                                     size_t nextra, char *errstr, size_t errstr_size);

/* librdkafka's log callback: its lines in the relay's log, at the matching level. */
void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif /* RELAY_KAFKA_CONF_H */

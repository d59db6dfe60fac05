/*
 * inbox.h -- `outbox-relay inbox`: the consuming half of the pattern.
 *
 * Reads events from the broker inbox.broker names -- Kafka (kafka.brokers,
 * kafka.properties, then inbox.properties) as the consumer group inbox.consumer, NATS
 * JetStream, Redis Streams or RabbitMQ stream queues (their sinks' sections) -- and
 * writes them, a batch per transaction,
 * into the consuming service's inbox table (sql/007_inbox.sql) together with the
 * position after the batch; a message that is not an event goes to the inbox's
 * dead-letter table in the same transaction.  The broker is told (offsets committed,
 * messages acknowledged) only after that transaction, and reading always starts where
 * the database says: after any crash, nothing is skipped and nothing is written twice.
 * docs/consumers.md says how a service takes work from the table.
 */
#ifndef RELAY_INBOX_H
#define RELAY_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

/*
 * Run the inbox relay until a byte arrives on stop_fd; the batch in hand is then
 * written (the database permitting) before it returns.  Returns 0 after a clean stop,
 * or -1 with errstr set for a
 * permanent error: the tables missing or not writable, the broker refusing the relay,
 * a consumer setting the client refuses.  Database and broker outages are waited out.
 */
int inbox_run(const struct relay_config *cfg, int stop_fd, char *errstr, size_t errstr_size);

/*
 * `outbox-relay check` for the inbox side: connect to inbox.dsn, check that the three
 * tables exist with the columns the relay writes and that the role may write them,
 * and that the broker answers with the topics.  One line per check on out.  Returns
 * 0 when all passed, -1 otherwise.  Blocks up to about timeout_ms per server.
 */
int inbox_check(const struct relay_config *cfg, int timeout_ms, FILE *out);

/*
 * `outbox-relay status` for the inbox side: the rows (pending, oldest pending), the
 * dead letters, and each partition's position against the broker's end (the lag), as
 * text or (json) one JSON object, on out.  Returns 0, or -1 with errstr set when the
 * database cannot be read; partitions whose end the broker does not tell within
 * timeout_ms are shown without one.
 */
int inbox_status(const struct relay_config *cfg, bool json, int timeout_ms, FILE *out,
                 char *errstr, size_t errstr_size);

#endif /* RELAY_INBOX_H */

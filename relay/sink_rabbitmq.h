/*
 * sink_rabbitmq.h -- what the RabbitMQ sink's file offers the inbox's RabbitMQ source:
 * a connection to the broker the rabbitmq section configures (amqp:// or amqps://,
 * the certificate verified as the sink does, the login from rabbitmq.url), so that
 * both sides connect and complain alike.
 */
#ifndef RELAY_SINK_RABBITMQ_H
#define RELAY_SINK_RABBITMQ_H

#include <stdbool.h>
#include <stddef.h>

#include <amqp.h>

#include "config.h"

/*
 * Connect and log in, channel 1 open (not in confirm mode), blocking up to timeout_ms
 * per step.  Returns the connection (amqp_destroy_connection() frees it), or NULL with
 * why set and *refused true when no retry cures it (a bad rabbitmq.url, a refused
 * login, a certificate that does not verify).
 */
amqp_connection_state_t sink_rabbitmq_connect(const struct relay_config *cfg, int timeout_ms,
                                              char *why, size_t why_size, bool *refused);

/* What a failed call's reply says, in out ("404 NOT_FOUND - no queue ..."). */
void sink_rabbitmq_reply_text(amqp_rpc_reply_t r, char *out, size_t size);

#endif /* RELAY_SINK_RABBITMQ_H */

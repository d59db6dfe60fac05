/*
 * sink_nats.h -- what the NATS sink's section offers the inbox's NATS source: the
 * connection options the nats section configures (URL, TLS, credentials), and how a
 * failed connection is told, so that both sides connect and complain alike.
 */
#ifndef RELAY_SINK_NATS_H
#define RELAY_SINK_NATS_H

#include <stdbool.h>
#include <stddef.h>

#include <nats/nats.h>

#include "config.h"

/*
 * The nats section's connection options (reconnecting forever, timeout_ms per
 * attempt).  Returns options the caller destroys, or NULL with errstr set: no
 * nats.url, an unreadable CA, certificate or credentials file.
 */
natsOptions *sink_nats_options(const struct relay_config *cfg, int timeout_ms, char *errstr,
                               size_t errstr_size);

/*
 * Say why a connection failed with st, in why (the URL without its password).  Returns
 * true for a refusal no retry cures (a rejected login, a certificate that does not
 * verify), false for a failure worth retrying.
 */
bool sink_nats_refusal(const struct relay_config *cfg, natsStatus st, char *why, size_t size);

#endif /* RELAY_SINK_NATS_H */

/*
 * poller.h -- the polling source (postgres.mode: polling).
 *
 * For databases without logical replication: reads unpublished outbox rows with
 * SELECT, publishes them through the same event model, formats and sinks as the
 * replication source, and deletes (or marks) them once the sink acknowledged them.
 * docs/polling.md describes the technique and its guarantees.
 */
#ifndef RELAY_POLLER_H
#define RELAY_POLLER_H

#include <stddef.h>

#include "config.h"

/*
 * Run until stopped, as relay_run() does: stop_fd is the stop pipe; returns 0 after
 * a clean stop, -1 with errstr set after a permanent error.  Transient errors
 * (PostgreSQL or Kafka unreachable, a failed delivery) never make it return.  cfg
 * is borrowed and must outlive the call.
 */
int poller_run(const struct relay_config *cfg, int stop_fd, char *errstr, size_t errstr_size);

#endif /* RELAY_POLLER_H */

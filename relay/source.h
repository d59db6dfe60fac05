/*
 * source.h -- the sources that feed the pipeline, as main.c starts them.
 *
 * Each source reads committed outbox rows from PostgreSQL its own way and hands them
 * to the one pipeline (pipeline.h), which owns the loop, the sink and the checkpoint:
 *
 *   source_repl.c   logical replication from a slot (postgres.mode: replication)
 *   source_poll.c   SELECT from the outbox table (postgres.mode: polling)
 */
#ifndef RELAY_SOURCE_H
#define RELAY_SOURCE_H

#include <stddef.h>

#include "config.h"

/*
 * Relay committed outbox rows from the replication slot until a stop is requested
 * through stop_fd (a byte written to it; a second byte cuts the shutdown short) or a
 * permanent error occurs.  cfg is borrowed.  Returns 0 after a clean stop, or -1 with
 * errstr set.  Transient errors (PostgreSQL or the broker unreachable) are retried
 * inside, never returned.
 */
int source_repl_run(const struct relay_config *cfg, int stop_fd, char *errstr,
                    size_t errstr_size);

/* The same, polling the outbox table (docs/polling.md).  Same contract. */
int source_poll_run(const struct relay_config *cfg, int stop_fd, char *errstr,
                    size_t errstr_size);

#endif /* RELAY_SOURCE_H */

/*
 * relay.h -- the relay's event loop: source -> events -> sink -> checkpoint.
 *
 * relay_run() owns everything for the life of the process: the replication
 * connection, the decoder, the relation cache, the formatter, the sink and the
 * checkpoint tracker.  It runs one poll() loop on the caller's thread and returns
 * when told to stop through stop_fd or when a permanent error leaves nothing to
 * retry.
 */
#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include <stddef.h>

#include "config.h"

/*
 * Run until stopped.  stop_fd is the read end of a pipe: any byte written to it
 * (by a signal handler) starts a clean shutdown -- stop reading WAL, flush the sink
 * within kafka.shutdown_timeout, confirm what was acknowledged, close.
 *
 * Returns 0 after a clean shutdown, or -1 with errstr set after a permanent error
 * (after the same clean shutdown of whatever was in flight).  Transient errors --
 * PostgreSQL or Kafka unreachable, walsender terminated, a failed delivery -- never
 * make it return: it reconnects and replays from the confirmed position.
 * cfg is borrowed and must outlive the call.
 */
int relay_run(const struct relay_config *cfg, int stop_fd, char *errstr, size_t errstr_size);

#endif /* RELAY_RELAY_H */

/*
 * status.h -- the `check` and `status` commands: what the relay would do, and
 * where it is.
 *
 * `outbox-relay check` answers "will it work?" before a deployment: with a valid
 * configuration (main.c has loaded it), it connects to PostgreSQL as the
 * configured role and to Kafka with the configured properties, checks everything
 * the relay needs there -- server version, wal_level, the role's REPLICATION and
 * table privileges, the outbox table, the publication, the slot, the relay's
 * state table -- and prints what the relay would do: mode, slot to use or create,
 * publication and its tables, topics, format, sink.  Each finding is one line,
 * "ok", "warn" or "FAIL"; a FAIL is something that would stop the relay.
 *
 * `outbox-relay status` answers "where is it?" for an operator or a script: the
 * slot's state and lag, the publication's tables and the checkpoint the relay
 * recorded in postgres.state_table -- or, in polling mode, the outbox's backlog.
 * It reads; it changes nothing, and works while the relay runs.
 *
 * Everything printed passes through the configuration's secret set (redact.h):
 * connection strings are shown masked, and any password that a server message
 * quotes back is scrubbed.
 *
 * I/O module: libpq and librdkafka; writes only to the FILEs it is given.
 */
#ifndef RELAY_STATUS_H
#define RELAY_STATUS_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/*
 * Print the plan -- what the relay would do with cfg -- to out, with no server
 * contacted (`check --offline`).  Cannot fail.
 */
void relay_check_plan(const struct relay_config *cfg, FILE *out);

/*
 * Run every check against the servers, waiting at most timeout_ms for each
 * connection (PostgreSQL's connect_timeout, unless the DSN sets one; Kafka's
 * metadata request), and print the findings and the plan to out.  Each failure is
 * also written to err as "outbox-relay: check failed: reason".  Returns 0 when
 * nothing failed (warnings allowed), 1 when a check failed or a server could not
 * be reached.
 */
int relay_check(const struct relay_config *cfg, int timeout_ms, FILE *out, FILE *err);

/*
 * Print the relay's state as PostgreSQL has it to out: human-readable lines, or
 * with json one JSON object followed by a newline.  Returns 0 when the state was
 * read (a missing slot, state table or row is state, reported as such), 1 when
 * PostgreSQL could not be reached or queried, with errstr set (and, with json, an
 * object {"error": "..."} printed all the same, so a script always gets JSON).
 */
int relay_status(const struct relay_config *cfg, bool json, int timeout_ms, FILE *out, char *errstr,
                 size_t errstr_size);

#endif /* RELAY_STATUS_H */

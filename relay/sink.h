/*
 * sink.h -- where rendered messages go, and how their fate comes back.
 *
 * A sink accepts messages tagged with the sequence number of their transaction and
 * later reports, one call per message, whether it was delivered.  Reports are
 * delivered only from inside sink_poll() / sink_flush(), on the caller's thread, so
 * the relay needs no locks.  Each sink is a sink_*.c file implementing the
 * operations of sink_impl.h: sink_kafka.c (librdkafka) and sink_stdout.c.
 */
#ifndef RELAY_SINK_H
#define RELAY_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "format.h"

enum sink_outcome {
    SINK_DELIVERED = 0,
    SINK_FAILED = 1,           /* transient or unknown: rebuild the pipeline and replay */
    SINK_FAILED_PERMANENT = 2, /* this message can never be delivered as it is */
};

/*
 * A delivery report.  id is the event id (for messages), err a one-line reason when
 * the outcome is not SINK_DELIVERED.  Both are valid only during the call.
 */
typedef void(sink_report_fn)(void *opaque, uint64_t txn_seq, enum sink_outcome outcome,
                             const char *topic, const char *id, const char *err);

typedef struct sink sink;

/*
 * Create the Kafka sink from the configuration.  report is called for every message
 * produced.  cfg is borrowed and must outlive the sink (sink_reset() reads it
 * again).  Returns NULL with errstr set when librdkafka rejects a property or the
 * producer cannot be created.  Connecting to the brokers happens in the background:
 * an unreachable cluster is not an error here.
 */
sink *sink_kafka_new(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                     char *errstr, size_t errstr_size);

/*
 * Create the stdout sink, writing one line per message (the message's value) to fd.
 * report is called for every line, from sink_poll(), once write(2) took it whole.
 * Returns NULL with errstr set when out of memory or out of file descriptors.
 */
sink *sink_stdout_new(int fd, sink_report_fn *report, void *opaque, char *errstr,
                      size_t errstr_size);

/*
 * The sink cfg->sink names: sink_kafka_new() or sink_stdout_new(STDOUT_FILENO, ...).
 * Same contract as those.
 */
sink *sink_from_config(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                       char *errstr, size_t errstr_size);

/*
 * Check kafka.* of cfg as sink_kafka_new() would, without creating a producer.
 * Returns 0, or -EINVAL with errstr naming the offending property.
 */
int sink_kafka_check(const struct relay_config *cfg, char *errstr, size_t errstr_size);

/*
 * Hand one message to the sink; the sink copies what it needs.  Returns 0, or with
 * errstr set: -EAGAIN when the sink's queue is full; -EMSGSIZE when the message is
 * larger than the sink accepts (permanent: no retry helps); -EIO for anything else
 * (treat as transient: rebuild and replay).
 */
int sink_produce(sink *s, const struct out_msg *msg, uint64_t txn_seq, char *errstr,
                 size_t errstr_size);

/* Serve pending delivery reports without blocking.  Returns how many were served. */
int sink_poll(sink *s);

/*
 * True when the sink hit an error that no retry cures (librdkafka's fatal
 * idempotent-producer state), or has no producer after a failed sink_reset(): the
 * caller must rebuild the pipeline with sink_reset().
 */
bool sink_fatal(const sink *s);

/*
 * A file descriptor that becomes readable when reports are waiting, for poll(2).
 * Read and discard its bytes before calling sink_poll().
 */
int sink_fd(const sink *s);

/* Drain the wakeup descriptor returned by sink_fd(). */
void sink_drain_fd(sink *s);

/*
 * Wait up to timeout_ms for every outstanding message to be reported, serving
 * reports meanwhile.  Returns the number still outstanding.
 */
int sink_flush(sink *s, int timeout_ms);

/*
 * Abandon every outstanding message: each is reported as failed (a late report is
 * harmless: the checkpoint tracker ignores reports for forgotten transactions), and
 * the sink is recreated so that a fatal producer state does not outlive the
 * rebuild.  Returns 0, or a negative errno with errstr set.
 */
int sink_reset(sink *s, char *errstr, size_t errstr_size);

/*
 * Memory held by messages produced and not yet reported: keys, values, headers and
 * the sink's estimate of its bookkeeping (a reset clears it).
 */
int64_t sink_outstanding_bytes(const sink *s);

/* Messages produced and not yet reported (by this producer: a reset clears it). */
int sink_outstanding(const sink *s);

/*
 * Whether the sink can reach its destination, as far as it knows: for Kafka, false
 * from "all brokers down" until a delivery succeeds or librdkafka's statistics show
 * a broker up again.  For /readyz; never a reason to stop or retry.
 */
bool sink_connected(const sink *s);

/* Destroy the sink; outstanding messages are purged.  sink_free(NULL) is a no-op. */
void sink_free(sink *s);

#endif /* RELAY_SINK_H */

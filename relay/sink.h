/*
 * sink.h -- the contract between the pipeline and a sink, and the registry of sinks.
 *
 * A sink takes rendered messages (struct out_msg: destination, key, headers, value,
 * event id), each with a 64-bit tag the pipeline chose, and later reports every
 * message exactly once, with its tag, as
 *   SINK_DELIVERED      the broker acknowledged it;
 *   SINK_RETRY          it failed in a way that a later attempt may cure (the broker
 *                       is away, a leader moved): the pipeline rebuilds from the
 *                       checkpoint and replays;
 *   SINK_UNDELIVERABLE  this message can never be delivered as it is (too large,
 *                       refused for good): the pipeline dead-letters it or stops, by
 *                       pipeline.on_bad_event.
 * Reports are delivered only from inside sink_poll(), sink_flush() and sink_reset(),
 * on the caller's thread, so the relay needs no locks.  A sink exposes a descriptor
 * that becomes readable when reports wait (sink_fd()), which the pipeline's poll()
 * loop watches.
 *
 * Each sink is one file, relay/sink_<name>.c, that defines a struct sink_type: its
 * name, constructor, connectivity check (outbox-relay check) and capabilities (whether
 * it keeps per-key order, what destination names it takes, what a message costs while
 * held).  sink.c lists the types; nothing outside a sink's file and its registry row
 * knows a broker exists (docs/architecture.md, "Adding a sink").
 */
#ifndef RELAY_SINK_H
#define RELAY_SINK_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "format.h"

enum sink_outcome {
    SINK_DELIVERED = 0,
    SINK_RETRY = 1,         /* transient or unknown: rebuild the pipeline and replay */
    SINK_UNDELIVERABLE = 2, /* this message can never be delivered as it is */
};

/* One report.  Everything it points to is valid only during the call. */
struct sink_report {
    uint64_t tag;
    enum sink_outcome outcome;
    /*
     * With SINK_UNDELIVERABLE: the message as the sink held it (destination, key,
     * value, headers; its id is not set), for the dead-letter record; NULL otherwise.
     */
    const struct out_msg *msg;
    bool too_large;   /* with SINK_UNDELIVERABLE: refused for its size */
    const char *code; /* the broker's or library's short name of the error; "" if none */
    const char *err;  /* one line; "" when delivered */
    const char *destination; /* where the message was going; "" when unknown */
};

typedef void(sink_report_fn)(void *opaque, const struct sink_report *r);

typedef struct sink sink;

/* What a sink can and cannot do; the pipeline adapts to it. */
struct sink_caps {
    /* Messages with the same key reach the broker in the order produced. */
    bool keeps_key_order;
    /* Longest destination name, in bytes (at most FORMAT_TOPIC_MAX); 0: any. */
    size_t max_destination;
    /* Bytes a destination name may hold, besides letters and digits; NULL: any but controls. */
    const char *destination_chars;
    /* What to call a destination in messages: "topic", "stream", "subject". */
    const char *destination_word;
    /* Memory a held message costs beyond its key, value and headers, and per header. */
    int message_overhead;
    int header_overhead;
    /* /readyz reason while the sink cannot reach its broker (static string). */
    const char *unreachable;
};

/* Where `outbox-relay check` writes what a sink's check found. */
enum sink_check_level { SINK_CHECK_OK, SINK_CHECK_WARN, SINK_CHECK_FAIL };
struct sink_check_out {
    void (*line)(void *ctx, enum sink_check_level level, const char *text);
    void (*heading)(void *ctx, const char *text);
    void *ctx;
};

/* A registry row: everything the core knows of a kind of sink. */
struct sink_type {
    const char *name; /* "kafka": the value of the configuration's "sink" key */
    /* Its configuration section: rows, settings struct (config_schema.h). */
    const struct relay_sink_config *config;
    /*
     * Create the sink from the configuration (borrowed: it must outlive the sink).
     * report is called for every message produced.  Returns NULL with errstr set when
     * the configuration is refused or resources are missing; reaching the broker
     * happens in the background: an unreachable broker is not an error here.
     */
    sink *(*create)(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                    char *errstr, size_t errstr_size);
    /*
     * Check the sink's settings as create() would, without connecting.  Returns 0, or
     * -EINVAL with errstr set.  NULL: nothing to check beyond the configuration file.
     */
    int (*check_config)(const struct relay_config *cfg, char *errstr, size_t errstr_size);
    /*
     * outbox-relay check: connect within timeout_ms, test that the destinations the
     * configuration names exist and may be written, and say so through out.  Returns
     * the number of failures.  NULL: nothing to connect to.
     */
    int (*check)(const struct relay_config *cfg, int timeout_ms, const struct sink_check_out *out);
    /*
     * The plan outbox-relay check prints: one call of item per line (label, text), the
     * sink's address, format, destination, dead-letter destination and settings, with
     * secrets masked.
     */
    void (*plan)(const struct relay_config *cfg,
                 void (*item)(void *ctx, const char *label, const char *text), void *ctx);
    /* The destination a dead-letter record goes to on this sink; "" or NULL: none. */
    const char *(*dead_letter_destination)(const struct relay_config *cfg);
    struct sink_caps caps;
};

/* The type the configuration selects (cfg->sink), or NULL when none is registered so. */
const struct sink_type *sink_type_of(const struct relay_config *cfg);

/* The type called name, or NULL. */
const struct sink_type *sink_type_find(const char *name);

/* The registry: every type, in order; *n is set to their number. */
const struct sink_type *const *sink_types(size_t *n);

/*
 * Tell the configuration loader every registered sink's section (the first is the
 * default sink).  Call once before loading a configuration.  Returns 0 or -E2BIG.
 */
int sink_register_config(void);

/* The sink the configuration selects: sink_type_of(cfg)->create(...). */
sink *sink_from_config(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                       char *errstr, size_t errstr_size);

/* The type of a sink (never NULL). */
const struct sink_type *sink_get_type(const sink *s);

/*
 * Whether dest is a destination name the sink takes, by its capabilities: not empty,
 * not longer than max_destination, only letters, digits and destination_chars, and
 * not "." or "..".  Returns 0, or -EDESTADDRREQ with errstr saying what is wrong.
 */
int sink_destination_check(const struct sink_type *t, const char *dest, char *errstr,
                           size_t errstr_size);

/*
 * Hand one message to the sink with its tag; the sink copies what it needs.  Returns
 * 0, or with errstr set: -EAGAIN when the sink's queue is full; -EMSGSIZE when the
 * message is larger than the sink accepts, -EACCES when the broker refused its
 * destination for good (both permanent: no retry helps); -EIO for anything else
 * (treat as transient: rebuild and replay).  No report follows an error.
 */
int sink_produce(sink *s, const struct out_msg *msg, uint64_t tag, char *errstr,
                 size_t errstr_size);

/* Serve pending reports without blocking.  Returns how many were served. */
int sink_poll(sink *s);

/*
 * True when the sink hit an error that no retry cures (librdkafka's fatal
 * idempotent-producer state), or has no connection object after a failed
 * sink_reset(): the caller must rebuild the pipeline with sink_reset().
 */
bool sink_fatal(const sink *s);

/*
 * Why the broker refuses this relay for good (authentication failed, its certificate
 * does not verify), or NULL while it does not.  Not cured by sink_reset(): the caller
 * stops with the reason, which names what to mend, rather than retry in silence.
 */
const char *sink_refused(const sink *s);

/*
 * A file descriptor that becomes readable when reports are waiting, for poll(2).
 * Call sink_drain_fd() when it is, then sink_poll().
 */
int sink_fd(const sink *s);

/*
 * The sink's own sockets for the loop's poll(2), at most max (SINK_MAX_POLLFDS), with
 * the events it wants now; 0 for a sink whose library wakes sink_fd() instead.
 */
#define SINK_MAX_POLLFDS 2
size_t sink_pollfds(sink *s, struct pollfd *fds, size_t max);

/* Drain the wakeup descriptor returned by sink_fd(). */
void sink_drain_fd(sink *s);

/*
 * Wait up to timeout_ms for every outstanding message to be reported, serving
 * reports meanwhile.  Returns the number still outstanding.
 */
int sink_flush(sink *s, int timeout_ms);

/*
 * Abandon every outstanding message (a sink may report them as SINK_RETRY from inside
 * this call, as Kafka's purge does; the pipeline forgets them either way) and recreate
 * the sink's connection, so that a fatal state does not outlive the rebuild.  Returns
 * 0, or a negative errno with errstr set.
 */
int sink_reset(sink *s, char *errstr, size_t errstr_size);

/* Messages produced and not yet reported. */
int sink_outstanding(const sink *s);

/*
 * Whether the sink can reach its broker, as far as it knows.  For /readyz; never a
 * reason to stop or retry.
 */
bool sink_connected(const sink *s);

/*
 * Destroy the sink.  Outstanding messages are abandoned; a sink may report them (as
 * SINK_RETRY, Kafka's purge does) from inside this call, so the report callback's
 * state must still be valid.  NULL is a no-op.
 */
void sink_free(sink *s);

#endif /* RELAY_SINK_H */

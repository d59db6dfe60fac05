/*
 * inbox_source.h -- what the inbox relay (inbox.c) needs from a broker, and what it
 * offers the broker's code in return.
 *
 * The inbox's core -- the batch, the one statement that writes it with its positions,
 * the database's outages, the admin endpoint, retention -- is the same whatever the
 * broker; a source reads messages and says where each one is: a topic (a Kafka topic,
 * a JetStream subject filter, a Redis stream key, a RabbitMQ stream queue), a
 * partition (0 where the broker has none) and an offset (the Kafka offset, the
 * JetStream stream sequence, the Redis entry ID as inbox_redis_id_encode() makes it a
 * number, the RabbitMQ stream offset).  The position after a committed batch
 * is stored in inbox_position in the batch's own transaction, and a source starts
 * each of its topics where the database says (inbox_core_positions()), so after any
 * crash nothing is skipped and a message read again is a no-op on the primary key.
 * After the transaction the source may tell the broker (commit offsets, ack).
 *
 * Every source function runs on the inbox's one thread.  Internal to the inbox's files.
 */
#ifndef RELAY_INBOX_SOURCE_H
#define RELAY_INBOX_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "inbox_event.h"

/* An event has at most this many headers; a message with more is set aside whole. */
#define INBOX_MAX_HEADERS 64

/* The inbox's core, as a source sees it. */
struct inbox;

/*
 * One message as a source read it; everything borrowed until the source's release()
 * of handle -- the topic too (a source's own name for it, or the configuration's).
 */
struct inbox_in {
    const char *topic;
    int32_t partition;
    int64_t offset;
    struct inbox_message m;   /* key, value and every header (more than
                                 INBOX_MAX_HEADERS: set aside whole) */
    const char *unreadable;   /* non-NULL: the client could not read it (why) */
    void *handle;             /* what release() frees once the row is gone */
};

/* A topic-partition's next position, as the database or a batch says. */
struct inbox_pos {
    const char *topic;
    int32_t partition;
    int64_t next;
};

struct inbox_source_ops {
    const char *broker; /* its section's name: "kafka", "nats", "redis", "rabbitmq" */
    /*
     * Connect and subscribe to inbox.topics.  Returns the source, or NULL with errstr
     * set (a setting the client refuses; an unreachable broker is waited out instead).
     */
    void *(*open)(const struct relay_config *cfg, struct inbox *core, char *errstr,
                  size_t errstr_size);
    /*
     * A descriptor readable when messages wait, or -1 (or no function): read() is
     * called on a short timer and waits inside.
     */
    int (*fd)(void *src);
    /* Whether messages wait already read (poll() would not wake for them); optional. */
    bool (*pending)(void *src);
    /*
     * Hand at most room messages to inbox_core_add() -- never more: the batch has no
     * room beyond -- waiting at most wait_ms for the first.  Errors go to
     * inbox_core_fail() (permanent) or the log (passing).
     */
    void (*read)(void *src, size_t room, int wait_ms);
    /*
     * The batch ending at these positions is committed: tell the broker.  pos is
     * valid during the call only.
     */
    void (*written)(void *src, const struct inbox_pos *pos, size_t npos); /* optional */
    /* Free a message the batch no longer holds. */
    void (*release)(void *src, void *handle);
    /*
     * Leave (a consumer group's revoke may write the batch in hand); free nothing yet.
     * Optional.
     */
    void (*leave)(void *src);
    /* Free the source; every handle has been released. */
    void (*close)(void *src);
    /* `check`: the broker answers and has the topics; one line each on out; failures. */
    int (*check)(const struct relay_config *cfg, int timeout_ms, FILE *out);
    /*
     * `status`: a handle (NULL when the broker cannot be reached: the others then take
     * NULL), the end of a topic-partition (the next position to be written) or -1 when
     * unknown, and closing the handle.  Optional: without them no lag is shown.
     */
    void *(*status_open)(const struct relay_config *cfg);
    int64_t (*status_end)(void *st, const char *topic, int32_t partition, int timeout_ms);
    void (*status_close)(void *st);
};

/* The sources: Kafka (inbox_kafka.c), NATS JetStream (inbox_nats.c), Redis Streams
 * (inbox_redis.c), RabbitMQ stream queues (inbox_rabbitmq.c). */
extern const struct inbox_source_ops inbox_source_kafka;
extern const struct inbox_source_ops inbox_source_nats;
extern const struct inbox_source_ops inbox_source_redis;
extern const struct inbox_source_ops inbox_source_rabbitmq;

/*
 * Add a message to the batch, as an event or set aside.  Returns 0 (the batch holds
 * in->handle now) or -1 (out of memory, the inbox failed; the handle is still the
 * caller's).
 */
int inbox_core_add(struct inbox *core, const struct inbox_in *in);

/*
 * The database's positions for this consumer, each passed to each() (pos valid during
 * that call only).  Waits for the database (retrying every postgres.retry_interval,
 * the admin endpoint answering meanwhile).  Returns 0, or 1 when a stop was asked for
 * first.
 */
int inbox_core_positions(struct inbox *core,
                         void (*each)(void *arg, const struct inbox_pos *pos), void *arg);

/*
 * Write the batch in hand now (a revoke).  Returns 0 (written, or nothing in hand), 1
 * (the database is down: the batch is kept), -1 (the inbox failed).
 */
int inbox_core_flush(struct inbox *core);

/* Drop the batch in hand unwritten (a revoke while the database is down). */
void inbox_core_drop(struct inbox *core);

/* Stop the inbox for a permanent error; the first one is kept. */
void inbox_core_fail(struct inbox *core, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Count the partitions the source reads now (the metric). */
void inbox_core_assigned(struct inbox *core, int partitions);

/* The first join happened (readiness). */
void inbox_core_joined(struct inbox *core);

/* The monotonic clock, in milliseconds. */
int64_t inbox_now_ms(void);

/*
 * For a source without a descriptor that is waiting to reconnect: sleep what the loop
 * allowed its read (wait_ms), but not past retry_at (inbox_now_ms() time).  The loop
 * polls such a source without waiting, so its read must wait instead of spinning.
 */
void inbox_backoff(int64_t retry_at, int wait_ms);

#endif /* RELAY_INBOX_SOURCE_H */

/*
 * inbox_rabbitmq.c -- the inbox's RabbitMQ source (inbox_source.h), for stream queues.
 *
 * Each of inbox.topics is a RabbitMQ *stream* queue (x-queue-type: stream) bound to the
 * exchange the RabbitMQ sink publishes to.  A stream keeps its messages, and each
 * has an offset: the relay consumes every queue from the offset after the last one
 * written (the database's position: topic = the queue, partition 0, next_offset; the
 * stream's first message for a queue never written), with the x-stream-offset
 * consumer argument, and each delivery says its own offset in its x-stream-offset
 * header.  So after any crash the inbox resumes exactly where the last committed
 * batch ended, as with Kafka.  Classic and quorum queues have no offsets and are not
 * read (docs/consumers.md says why).
 *
 * Stream consumers need a prefetch and acknowledgements, which only give credit back
 * (a stream deletes nothing): everything read is acknowledged once a batch is
 * committed.  The CloudEvents attributes arrive as cloudEvents:* headers and the
 * content type as the content_type property (the AMQP binding, as the sink writes
 * them); they are handed to the parser as ce_* and content-type headers.
 *
 * librabbitmq blocks: the inbox's loop calls read() with a short wait, and
 * amqp_consume_message waits for the first message at most that long.  A lost
 * connection is made again, and the consumers start again from the database's
 * positions; messages held in the batch may be read twice, a no-op on the key.  A
 * refused login, a certificate that does not verify, or a queue that is missing or not
 * a stream stops the inbox.
 */
#include "inbox_source.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <amqp.h>

#include "log.h"
#include "sink_rabbitmq.h"

#define CONNECT_TIMEOUT_MS 2000
#define CHANNEL 1
#define OFFSET_HEADER "x-stream-offset"

struct queue {
    const char *name; /* borrowed from the configuration */
    int64_t start;    /* the database's next offset (-1: the stream's first message) */
    char tag[48];     /* the consumer tag of its consumer */
};

struct rmq_in {
    struct inbox *core;
    const struct relay_config *cfg;
    amqp_connection_state_t conn;
    struct queue *queues;
    size_t n;
    uint64_t last_tag;   /* the last delivery read on this connection; 0: none (a new
                            connection's tags start again: an old one is never acked) */
    int64_t retry_at_ms;
};

/* A message held by the batch: the envelope, and its header names made text. */
struct held {
    amqp_envelope_t env;
    char *names;
};


static void seed(void *arg, const struct inbox_pos *pos)
{
    struct rmq_in *x = arg;

    for (size_t i = 0; i < x->n; i++)
        if (pos->partition == 0 && strcmp(pos->topic, x->queues[i].name) == 0)
            x->queues[i].start = pos->next;
}

static void disconnect(struct rmq_in *x)
{
    if (x->conn)
        amqp_destroy_connection(x->conn);
    x->conn = NULL;
    x->last_tag = 0;
}

/* Why the last call on x->conn failed, into why. */
static void last_failure(struct rmq_in *x, char *why, size_t size)
{
    sink_rabbitmq_reply_text(amqp_get_rpc_reply(x->conn), why, size);
}

/*
 * Connect and start a consumer on every queue at the database's positions.  Returns
 * 0, or -1 (retry later, or the inbox failed for good, or a stop came).
 */
static int subscribe(struct rmq_in *x)
{
    char why[700];
    bool refused;

    if (!(x->conn = sink_rabbitmq_connect(x->cfg, CONNECT_TIMEOUT_MS, why, sizeof(why),
                                          &refused))) {
        if (refused) {
            inbox_core_fail(x->core, "inbox: %s", why);
        } else {
            log_warn("inbox: %s; retrying in %lld ms", why,
                     (long long)x->cfg->postgres.retry_interval_ms);
            x->retry_at_ms = inbox_now_ms() + x->cfg->postgres.retry_interval_ms;
        }
        return -1;
    }
    for (size_t i = 0; i < x->n; i++)
        x->queues[i].start = -1;
    if (inbox_core_positions(x->core, seed, x) != 0) {
        disconnect(x);
        return -1; /* stopping */
    }
    /* Stream consumers need a prefetch; twice a batch keeps one coming while one is written. */
    amqp_basic_qos(x->conn, CHANNEL, 0,
                   (uint16_t)(x->cfg->inbox.batch_size * 2 < 65535 ? x->cfg->inbox.batch_size * 2
                                                                   : 65535),
                   0);
    if (amqp_get_rpc_reply(x->conn).reply_type != AMQP_RESPONSE_NORMAL)
        goto failed;
    for (size_t i = 0; i < x->n; i++) {
        struct queue *q = &x->queues[i];
        amqp_table_entry_t arg = {.key = amqp_cstring_bytes(OFFSET_HEADER)};
        amqp_table_t args = {.num_entries = 1, .entries = &arg};

        if (q->start >= 0) {
            arg.value.kind = AMQP_FIELD_KIND_I64;
            arg.value.value.i64 = q->start;
        } else {
            arg.value.kind = AMQP_FIELD_KIND_UTF8;
            arg.value.value.bytes = amqp_cstring_bytes("first");
        }
        snprintf(q->tag, sizeof(q->tag), "outbox-relay-inbox-%zu", i);
        amqp_basic_consume(x->conn, CHANNEL, amqp_cstring_bytes(q->name),
                           amqp_cstring_bytes(q->tag), 0, 0, 0, args);
        if (amqp_get_rpc_reply(x->conn).reply_type != AMQP_RESPONSE_NORMAL) {
            char text[400];

            last_failure(x, text, sizeof(text));
            /* A missing queue (404), one that is not a stream (406), no permission (403). */
            if (strncmp(text, "404", 3) == 0 || strncmp(text, "406", 3) == 0 ||
                strncmp(text, "403", 3) == 0) {
                inbox_core_fail(x->core, "inbox: rabbitmq refused a consumer of queue \"%s\": "
                                         "%s (the inbox reads stream queues: x-queue-type "
                                         "stream)",
                                q->name, text);
                disconnect(x);
                return -1;
            }
            goto failed;
        }
        if (q->start >= 0)
            log_info("inbox: reading stream queue \"%s\" at offset %lld", q->name,
                     (long long)q->start);
        else
            log_info("inbox: reading stream queue \"%s\" from its first message", q->name);
    }
    x->retry_at_ms = 0;
    inbox_core_joined(x->core);
    inbox_core_assigned(x->core, (int)x->n);
    return 0;
failed:
    last_failure(x, why, sizeof(why));
    log_warn("inbox: rabbitmq: %s; retrying in %lld ms", why,
             (long long)x->cfg->postgres.retry_interval_ms);
    disconnect(x);
    x->retry_at_ms = inbox_now_ms() + x->cfg->postgres.retry_interval_ms;
    return -1;
}

static void rmq_close(void *src)
{
    struct rmq_in *x = src;

    disconnect(x);
    free(x->queues);
    free(x);
}

static void *rmq_open(const struct relay_config *cfg, struct inbox *core, char *errstr,
                      size_t errstr_size)
{
    struct rmq_in *x = calloc(1, sizeof(*x));

    if (!x || !(x->queues = calloc(cfg->inbox.ntopics, sizeof(*x->queues)))) {
        free(x);
        snprintf(errstr, errstr_size, "inbox: out of memory");
        return NULL;
    }
    x->core = core;
    x->cfg = cfg;
    x->n = cfg->inbox.ntopics;
    for (size_t i = 0; i < x->n; i++)
        x->queues[i].name = cfg->inbox.topics[i];
    /* Connected at the first read: the database's positions come first. */
    return x;
}

static bool rmq_pending(void *src)
{
    struct rmq_in *x = src;

    return x->conn && amqp_data_in_buffer(x->conn);
}

static struct queue *queue_of(struct rmq_in *x, amqp_bytes_t tag)
{
    for (size_t i = 0; i < x->n; i++)
        if (tag.len == strlen(x->queues[i].tag) && memcmp(tag.bytes, x->queues[i].tag, tag.len) == 0)
            return &x->queues[i];
    return NULL;
}

/* A table value as header text; false for kinds that have none (it is left out). */
static bool value_text(const amqp_field_value_t *v, char *num, size_t num_size,
                       const void **p, size_t *len)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        *p = v->value.bytes.bytes;
        *len = v->value.bytes.len;
        return true;
    case AMQP_FIELD_KIND_I64:
        *len = (size_t)snprintf(num, num_size, "%lld", (long long)v->value.i64);
        break;
    case AMQP_FIELD_KIND_U64:
        *len = (size_t)snprintf(num, num_size, "%llu", (unsigned long long)v->value.u64);
        break;
    case AMQP_FIELD_KIND_I32:
        *len = (size_t)snprintf(num, num_size, "%d", (int)v->value.i32);
        break;
    case AMQP_FIELD_KIND_BOOLEAN:
        *len = (size_t)snprintf(num, num_size, "%s", v->value.boolean ? "true" : "false");
        break;
    default:
        return false;
    }
    *p = num;
    return true;
}

/*
 * The delivery in h to the batch.  Returns true when the batch holds it now.  The
 * header names made text, and numbers rendered as text, live in h->names: the batch
 * borrows them with the rest of the delivery.
 */
static bool add(struct rmq_in *x, struct queue *q, struct held *h)
{
    const amqp_basic_properties_t *p = &h->env.message.properties;
    const amqp_table_t *t = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
    size_t n = t ? (size_t)t->num_entries : 0, nh = 0, used = 0, room;
    struct inbox_in in = {.topic = q->name, .handle = h, .offset = -1};
    struct inbox_header *hs = malloc((n + 1) * sizeof(*hs));
    bool held;

    /* Names as text ("cloudEvents:x" as "ce_x"), numbers as text: one buffer. */
    room = 64;
    for (size_t i = 0; i < n; i++)
        room += t->entries[i].key.len + 2 + 24;
    if (!hs || !(h->names = malloc(room))) {
        free(hs);
        inbox_core_fail(x->core, "inbox: out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        const char *k = e->key.bytes;
        size_t klen = e->key.len;
        char *name = h->names + used;
        const void *val;
        size_t vlen;

        if (klen == strlen(OFFSET_HEADER) && memcmp(k, OFFSET_HEADER, klen) == 0) {
            if (e->value.kind == AMQP_FIELD_KIND_I64)
                in.offset = e->value.value.i64;
            else if (e->value.kind == AMQP_FIELD_KIND_U64)
                in.offset = (int64_t)e->value.value.u64;
            continue;
        }
        if (klen > 12 && memcmp(k, "cloudEvents:", 12) == 0) {
            memcpy(name, "ce_", 3);
            memcpy(name + 3, k + 12, klen - 12);
            name[klen - 9] = '\0';
            used += klen - 9 + 1;
        } else {
            memcpy(name, k, klen);
            name[klen] = '\0';
            used += klen + 1;
        }
        if (!value_text(&e->value, h->names + used, 24, &val, &vlen))
            continue;
        if (val == h->names + used)
            used += vlen + 1;
        hs[nh++] = (struct inbox_header){name, val, vlen};
    }
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        hs[nh++] = (struct inbox_header){"content-type", p->content_type.bytes,
                                         p->content_type.len};
    if (in.offset < 0) {
        free(hs);
        inbox_core_fail(x->core, "inbox: a delivery from queue \"%s\" without an %s header: "
                                 "is it a stream queue?",
                        q->name, OFFSET_HEADER);
        return false;
    }
    in.m.value = h->env.message.body.bytes;
    in.m.value_len = h->env.message.body.len;
    in.m.headers = hs;
    in.m.nheaders = nh;
    held = inbox_core_add(x->core, &in) == 0;
    free(hs);
    return held;
}

static void held_free(struct held *h)
{
    amqp_destroy_envelope(&h->env);
    free(h->names);
    free(h);
}

static void rmq_read(void *src, size_t room, int wait_ms)
{
    struct rmq_in *x = src;

    if (!x->conn && inbox_now_ms() < x->retry_at_ms) {
        inbox_backoff(x->retry_at_ms, wait_ms);
        return;
    }
    if (!x->conn && subscribe(x) < 0)
        return;
    while (room > 0) {
        struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};
        struct held *h = calloc(1, sizeof(*h));
        amqp_rpc_reply_t r;
        struct queue *q;
        char why[400];

        if (!h) {
            inbox_core_fail(x->core, "inbox: out of memory");
            return;
        }
        amqp_maybe_release_buffers(x->conn);
        r = amqp_consume_message(x->conn, &h->env, &tv, 0);
        wait_ms = 0; /* one wait per read */
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT) {
            free(h);
            return;
        }
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            free(h);
            sink_rabbitmq_reply_text(r, why, sizeof(why));
            log_warn("inbox: reading rabbitmq: %s; consuming again from the database's "
                     "positions in %lld ms",
                     r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                             r.library_error == AMQP_STATUS_UNEXPECTED_STATE
                         ? "the broker closed the channel"
                         : why,
                     (long long)x->cfg->postgres.retry_interval_ms);
            disconnect(x);
            x->retry_at_ms = inbox_now_ms() + x->cfg->postgres.retry_interval_ms;
            return;
        }
        x->last_tag = h->env.delivery_tag;
        if (!(q = queue_of(x, h->env.consumer_tag)) || !add(x, q, h)) {
            held_free(h);
            if (!q)
                continue;
            return;
        }
        room--;
    }
}

/* The batch is committed: everything read on this connection is acknowledged. */
static void rmq_written(void *src, const struct inbox_pos *pos, size_t npos)
{
    struct rmq_in *x = src;

    (void)pos;
    (void)npos;
    if (x->conn && x->last_tag)
        amqp_basic_ack(x->conn, CHANNEL, x->last_tag, 1);
    x->last_tag = 0;
}

static void rmq_release(void *src, void *handle)
{
    (void)src;
    held_free(handle);
}

/*
 * check
 */

/*
 * Whether the queue exists, by a passive declare (which tells neither a stream's type
 * nor its length); 0 or -1 (why set).
 */
static int queue_exists(amqp_connection_state_t c, const char *name, char *why, size_t size)
{
    if (!amqp_queue_declare(c, CHANNEL, amqp_cstring_bytes(name), 1, 0, 0, 0,
                            amqp_empty_table)) {
        sink_rabbitmq_reply_text(amqp_get_rpc_reply(c), why, size);
        return -1;
    }
    return 0;
}

static int rmq_check(const struct relay_config *cfg, int timeout_ms, FILE *out)
{
    char why[700];
    bool refused;
    amqp_connection_state_t c = sink_rabbitmq_connect(cfg, timeout_ms, why, sizeof(why),
                                                      &refused);
    int failed = 0;

    if (!c) {
        fprintf(out, "FAIL rabbitmq: %s\n", why);
        return 1;
    }
    for (size_t i = 0; i < cfg->inbox.ntopics; i++) {
        if (queue_exists(c, cfg->inbox.topics[i], why, sizeof(why)) < 0) {
            fprintf(out, "FAIL rabbitmq queue \"%s\": %s\n", cfg->inbox.topics[i], why);
            failed++;
            break; /* the channel is closed */
        }
        fprintf(out, "ok   rabbitmq queue \"%s\": exists (the inbox reads stream queues only)\n",
                cfg->inbox.topics[i]);
    }
    amqp_destroy_connection(c);
    return failed;
}

const struct inbox_source_ops inbox_source_rabbitmq = {
    .broker = "rabbitmq",
    .open = rmq_open,
    .pending = rmq_pending,
    .read = rmq_read,
    .written = rmq_written,
    .release = rmq_release,
    .close = rmq_close,
    .check = rmq_check,
};

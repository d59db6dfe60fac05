/*
 * sink_rabbitmq.c -- the RabbitMQ sink: each event a persistent message published to
 * rabbitmq.exchange with the routing key the rabbitmq.routing_key template names,
 * delivered when the broker has confirmed it (publisher confirms).
 *
 * One worker thread owns the AMQP 0-9-1 connection (librabbitmq 0.11, Debian 12's)
 * and one channel in confirm mode; the relay's thread hands it copies of the messages
 * and takes back reports through a queue, woken by the sink's pipe, as the webhook
 * sink does: the poll() loop, keepalives and the admin endpoint never wait on the
 * broker, even when RabbitMQ blocks publishers (a memory or disk alarm) and a publish
 * sits in the kernel's send buffer.
 *
 * Messages are published in the order produced on the one channel, with mandatory
 * set, and stay held until the broker answers:
 *   basic.ack               delivered (RabbitMQ has routed it to every queue bound for
 *                           it and, for durable queues, written it to disk);
 *   basic.return + ack      no queue is bound for its routing key: undeliverable, set
 *                           aside (the "unroutable");
 *   basic.nack, a closed connection or channel, no confirm within ack_timeout: the
 *                           worker reconnects after a backoff and publishes every
 *                           unconfirmed message again, in order -- the checkpoint
 *                           waits, nothing is confirmed to PostgreSQL meanwhile;
 *   channel closed for one message: a routing key that a topic permission denies
 *                           (403) or a message over the broker's max_message_size
 *                           (406): that message is set aside, the others are
 *                           published again;
 *   login refused, a vhost not allowed, a certificate that does not verify, an exchange
 *                           of another type: the relay stops (sink_refuse()).
 *
 * Each message carries message_id = the event id (what consumers deduplicate on,
 * stable across redeliveries), delivery_mode 2 (persistent), app_id "outbox-relay",
 * and the event's headers in the AMQP headers table -- the CloudEvents attributes as
 * "cloudEvents:<name>" and datacontenttype as the content_type property, as
 * CloudEvents' AMQP binding has them in binary mode.
 */
#include "sink_impl.h"
#include "sink_rabbitmq.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config_schema.h"
#include "log.h"

extern const struct sink_type sink_type_rabbitmq;

/* The "rabbitmq" section of the configuration. */
struct rabbitmq_settings {
    struct sink_common common; /* routing key template, format, dead-letter routing key */
    char *url;
    char *exchange;
    int exchange_type; /* enum exchange_type */
    int declare_exchange;
    int64_t ack_timeout_ms;
    int64_t heartbeat_ms;
    char *ca_file;
    char *cert_file;
    char *key_file;
};

#define QFIELD(f) offsetof(struct rabbitmq_settings, f)

enum exchange_type { EX_TOPIC, EX_DIRECT, EX_FANOUT, EX_HEADERS };
static const struct relay_choice exchange_types[] = {
    {"topic", EX_TOPIC}, {"direct", EX_DIRECT}, {"fanout", EX_FANOUT}, {"headers", EX_HEADERS},
    {NULL, 0},
};
static const struct relay_choice yes_no[] = {{"true", 1}, {"false", 0}, {NULL, 0}};

static int check_url(struct parser_ctx *ctx, const char *name, const char *value,
                     struct relay_pos pos);

/* clang-format off */
static const struct relay_option rabbitmq_options[] = {
    {.section = "rabbitmq", .key = "url", .type = OPT_STRING, .offset = QFIELD(url),
     .required = true, .check = check_url, .secret = RELAY_SECRET_URL},
    {.section = "rabbitmq", .key = "exchange", .type = OPT_STRING, .offset = QFIELD(exchange),
     .def = "outbox"},
    {.section = "rabbitmq", .key = "exchange_type", .type = OPT_ENUM,
     .offset = QFIELD(exchange_type), .def = "topic", .choices = exchange_types},
    {.section = "rabbitmq", .key = "declare_exchange", .type = OPT_ENUM,
     .offset = QFIELD(declare_exchange), .def = "true", .choices = yes_no},
    {.section = "rabbitmq", .key = "routing_key", .type = OPT_STRING,
     .offset = QFIELD(common.destination), .def = "{aggregatetype}.{type}",
     .check = relay_config_check_template},
    {.section = "rabbitmq", .key = "dlq_routing_key", .type = OPT_STRING,
     .offset = QFIELD(common.dead_letter), .def = ""},
    {.section = "rabbitmq", .key = "ack_timeout", .type = OPT_DURATION,
     .offset = QFIELD(ack_timeout_ms), .def = "30s", .min = 100},
    {.section = "rabbitmq", .key = "heartbeat", .type = OPT_DURATION,
     .offset = QFIELD(heartbeat_ms), .def = "10s", .min = 0},
    {.section = "rabbitmq", .key = "ca_file", .type = OPT_STRING, .offset = QFIELD(ca_file),
     .def = ""},
    {.section = "rabbitmq", .key = "cert_file", .type = OPT_STRING, .offset = QFIELD(cert_file),
     .def = ""},
    {.section = "rabbitmq", .key = "key_file", .type = OPT_STRING, .offset = QFIELD(key_file),
     .def = ""},
    {.section = "rabbitmq", .key = "format", .type = OPT_ENUM,
     .offset = QFIELD(common.format), .def = "cloudevents", .choices = relay_format_choices},
};
/* clang-format on */

static const struct relay_sink_config rabbitmq_config = {
    .name = "rabbitmq",
    .section = "rabbitmq",
    .options = rabbitmq_options,
    .noptions = sizeof(rabbitmq_options) / sizeof(rabbitmq_options[0]),
    .settings_size = sizeof(struct rabbitmq_settings),
    .common_offset = offsetof(struct rabbitmq_settings, common),
    .section_selects = false,
};

/* A parsed rabbitmq.url: info points into buf. */
struct amqp_url {
    char *buf;
    struct amqp_connection_info info;
};

/* Parse url into u (free u->buf).  Returns 0, or -1 with *why set. */
static int parse_url(const char *url, struct amqp_url *u, const char **why)
{
    *why = "must look like amqp://user:password@host:port/vhost (or amqps://)";
    if (strncasecmp(url, "amqp://", 7) != 0 && strncasecmp(url, "amqps://", 8) != 0)
        return -1;
    if (!(u->buf = strdup(url))) {
        *why = "out of memory";
        return -1;
    }
    amqp_default_connection_info(&u->info);
    if (amqp_parse_url(u->buf, &u->info) != AMQP_STATUS_OK || !u->info.host[0]) {
        free(u->buf);
        u->buf = NULL;
        return -1;
    }
    return 0;
}

static int check_url(struct parser_ctx *ctx, const char *name, const char *value,
                     struct relay_pos pos)
{
    struct amqp_url u;
    const char *why;

    if (parse_url(value, &u, &why) < 0)
        return relay_config_fail(ctx, pos, "%s %s", name, why);
    free(u.buf);
    return 0;
}

/* A message the worker published (or will publish again) and the broker has not confirmed. */
struct flight {
    struct sink_held *held;
    uint64_t seq;        /* the channel's delivery tag; 0: to be published (again) */
    bool settled;        /* reported; the slot waits to be compacted away */
    bool returned;       /* came back unroutable: undeliverable when its ack comes */
    int64_t sent_ms;
    char why[400];       /* with returned */
};

struct rmq_sink {
    struct sink base; /* first */
    const struct rabbitmq_settings *k;
    struct amqp_url url;
    pthread_t thread;
    bool running;
    int kick[2]; /* the relay's thread wakes the worker: new input, or stop */
    pthread_mutex_t mu;
    pthread_cond_t exited_cv;
    /* Under mu: */
    struct sink_fifo in; /* to publish, oldest first */
    bool stop, exited, failing;
    int sockfd; /* the connection's socket while the worker has one; else -1 */
    /* The worker's alone: */
    amqp_connection_state_t conn;
    struct flight *fl; /* fl[fhead .. ftail), in publish order */
    size_t fhead, ftail, fcap;
    uint64_t next_seq;
    bool refused;
    char names[FORMAT_MAX_HEADERS][160]; /* header names of the message being published */
    struct sink_notes notes; /* reports, warnings and a refusal for the relay's thread */
};

static const struct rabbitmq_settings *settings_of(const struct relay_config *cfg)
{
    return relay_config_sink_settings(cfg, "rabbitmq");
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A warning for the relay's log; the sink is failing until it connects again. */
static void note_log(struct rmq_sink *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note_log(struct rmq_sink *s, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->mu);
    s->failing = true;
    pthread_mutex_unlock(&s->mu);
    sink_note_log(&s->base, &s->notes, "%s", line);
}

/* The broker refuses the relay for good: the worker stops trying, the relay stops. */
static void refuse(struct rmq_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct rmq_sink *s, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->refused = true;
    sink_note_refuse(&s->base, &s->notes, "%s", line);
}

static bool stopping(struct rmq_sink *s)
{
    bool stop;

    pthread_mutex_lock(&s->mu);
    stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* Wait until ms have passed, or stop; kicks (new input) do not end it.  True: stop. */
static bool pause_for(struct rmq_sink *s, int64_t ms)
{
    int64_t until = now_ms() + ms;

    while (!stopping(s)) {
        struct pollfd p = {.fd = s->kick[0], .events = POLLIN};
        int64_t left = until - now_ms();
        char buf[64];

        if (left <= 0)
            return false;
        if (poll(&p, 1, (int)left) > 0)
            while (read(s->kick[0], buf, sizeof(buf)) > 0)
                ;
    }
    return true;
}

/* Report one message in flight and mark it settled. */
static void settle(struct rmq_sink *s, struct flight *f, enum sink_outcome outcome,
                   bool too_large, const char *code, const char *why)
{
    sink_note_report(&s->base, &s->notes, f->held, outcome, too_large, code, why);
    f->held = NULL;
    f->settled = true;
}

static void compact(struct rmq_sink *s)
{
    while (s->fhead < s->ftail && s->fl[s->fhead].settled)
        s->fhead++;
    if (s->fhead == s->ftail)
        s->fhead = s->ftail = 0;
}

/* The text of an AMQP reply, for messages. */
static void reply_text(amqp_rpc_reply_t r, char *out, size_t size)
{
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *c = r.reply.decoded;

        snprintf(out, size, "%u %.*s", c->reply_code, (int)c->reply_text.len,
                 (const char *)c->reply_text.bytes);
    } else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
               r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *c = r.reply.decoded;

        snprintf(out, size, "%u %.*s", c->reply_code, (int)c->reply_text.len,
                 (const char *)c->reply_text.bytes);
    } else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        snprintf(out, size, "%s", amqp_error_string2(r.library_error));
    } else {
        snprintf(out, size, "no answer");
    }
}

static int reply_code(amqp_rpc_reply_t r)
{
    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION)
        return 0;
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD)
        return ((const amqp_connection_close_t *)r.reply.decoded)->reply_code;
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
        return ((const amqp_channel_close_t *)r.reply.decoded)->reply_code;
    return 0;
}

/* Drop the connection; every unconfirmed message will be published again. */
static void drop_connection(struct rmq_sink *s)
{
    if (!s->conn)
        return;
    pthread_mutex_lock(&s->mu);
    s->sockfd = -1;
    pthread_mutex_unlock(&s->mu);
    amqp_destroy_connection(s->conn);
    s->conn = NULL;
    for (size_t i = s->fhead; i < s->ftail; i++) {
        s->fl[i].seq = 0;
        s->fl[i].returned = false;
    }
}

/*
 * Open a connection to ci with k's TLS files, log in, open channel 1 (in confirm mode
 * when confirm) and declare the exchange (or look it up, with declare_exchange false).
 * Returns the connection; or NULL with why set and *refused true when no retry can
 * cure it (a login refused, a vhost not allowed, a certificate that does not verify,
 * an exchange of another type).  Blocks up to timeout_ms per step.
 */
static amqp_connection_state_t open_connection(const struct rabbitmq_settings *k,
                                               const struct amqp_connection_info *ci,
                                               bool confirm, int timeout_ms, char *why,
                                               size_t why_size, bool *refused)
{
    amqp_connection_state_t c = amqp_new_connection();
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    amqp_socket_t *sock;
    amqp_rpc_reply_t r;
    const char *step;
    char text[300];
    int rc;

    *refused = false;
    if (!c) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    sock = ci->ssl ? amqp_ssl_socket_new(c) : amqp_tcp_socket_new(c);
    if (!sock) {
        snprintf(why, why_size, "cannot create a socket");
        goto fail;
    }
    if (ci->ssl) {
        amqp_ssl_socket_set_verify_peer(sock, 1);
        amqp_ssl_socket_set_verify_hostname(sock, 1);
        if (k->ca_file[0] && (rc = amqp_ssl_socket_set_cacert(sock, k->ca_file)) != 0) {
            snprintf(why, why_size, "rabbitmq.ca_file \"%s\": %s", k->ca_file,
                     amqp_error_string2(rc));
            *refused = true;
            goto fail;
        }
        if (k->cert_file[0] &&
            (rc = amqp_ssl_socket_set_key(sock, k->cert_file, k->key_file)) != 0) {
            snprintf(why, why_size, "rabbitmq.cert_file / key_file: %s", amqp_error_string2(rc));
            *refused = true;
            goto fail;
        }
    }
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    rc = amqp_socket_open_noblock(sock, ci->host, ci->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(why, why_size, "cannot connect to %s:%d: %s", ci->host, ci->port,
                 amqp_error_string2(rc));
        if (rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
            rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
            snprintf(why, why_size, "the certificate of %s:%d does not verify (%s): give the "
                     "CA that signed it in rabbitmq.ca_file", ci->host, ci->port,
                     amqp_error_string2(rc));
            *refused = true;
        }
        goto fail;
    }
    step = "login";
    r = amqp_login(c, ci->vhost, 0, 131072, (int)(k->heartbeat_ms / 1000), AMQP_SASL_METHOD_PLAIN,
                   ci->user, ci->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        int code = reply_code(r);

        reply_text(r, text, sizeof(text));
        if (code == 403 || code == 530 ||
            (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
             r.library_error == AMQP_STATUS_CONNECTION_CLOSED)) {
            snprintf(why, why_size, "rabbitmq at %s:%d refused user \"%s\" on vhost \"%s\": %s "
                     "(check rabbitmq.url's user, password and vhost)", ci->host, ci->port,
                     ci->user, ci->vhost, text);
            *refused = true;
        } else {
            snprintf(why, why_size, "rabbitmq at %s:%d, %s: %s", ci->host, ci->port, step, text);
        }
        goto fail;
    }
    step = "channel.open";
    amqp_channel_open(c, 1);
    r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL && confirm) {
        step = "confirm.select";
        amqp_confirm_select(c, 1);
        r = amqp_get_rpc_reply(c);
    }
    if (r.reply_type == AMQP_RESPONSE_NORMAL && k->exchange[0]) {
        step = k->declare_exchange ? "exchange.declare" : "exchange.declare (passive)";
        amqp_exchange_declare(c, 1, amqp_cstring_bytes(k->exchange),
                              amqp_cstring_bytes(relay_choice_name(exchange_types,
                                                                   k->exchange_type)),
                              !k->declare_exchange, 1, 0, 0, amqp_empty_table);
        r = amqp_get_rpc_reply(c);
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        int code = reply_code(r);

        reply_text(r, text, sizeof(text));
        if (code == 404)
            snprintf(why, why_size, "exchange \"%s\" does not exist on vhost \"%s\": declare it "
                     "or set rabbitmq.declare_exchange: true (events wait in PostgreSQL "
                     "meanwhile)", k->exchange, ci->vhost);
        else
            snprintf(why, why_size, "rabbitmq at %s:%d, %s: %s", ci->host, ci->port, step, text);
        /* Another type or arguments (406), no permission (403): the settings must change. */
        *refused = code == 406 || code == 403;
        goto fail;
    }
    return c;
fail:
    amqp_destroy_connection(c);
    return NULL;
}

/* Connect for the worker.  Returns 0, or -1 after noting why. */
static int connect_worker(struct rmq_sink *s)
{
    char why[512];
    bool refused;

    s->conn = open_connection(s->k, &s->url.info, true, 5000, why, sizeof(why), &refused);
    if (!s->conn) {
        if (refused)
            refuse(s, "%s", why);
        else
            note_log(s, "%s", why);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    s->sockfd = amqp_get_sockfd(s->conn);
    s->failing = false;
    pthread_mutex_unlock(&s->mu);
    s->next_seq = 1;
    return 0;
}

/* Take what the relay's thread queued into the flight table.  Returns how many. */
static size_t take_input(struct rmq_sink *s)
{
    size_t n = 0;

    pthread_mutex_lock(&s->mu);
    while (sink_fifo_len(&s->in) > 0) {
        if (s->ftail == s->fcap) {
            size_t ncap = s->fcap ? s->fcap * 2 : 1024;
            struct flight *f;

            if (s->fhead > 0) {
                memmove(s->fl, s->fl + s->fhead, (s->ftail - s->fhead) * sizeof(*s->fl));
                s->ftail -= s->fhead;
                s->fhead = 0;
                continue;
            }
            if (!(f = realloc(s->fl, ncap * sizeof(*f))))
                break; /* they wait in the input queue */
            s->fl = f;
            s->fcap = ncap;
        }
        s->fl[s->ftail++] = (struct flight){.held = sink_fifo_pop(&s->in)};
        n++;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

/*
 * Publish f.  Returns 0; 1 when the message cannot be sent in AMQP at all (settled as
 * undeliverable); -1 when the connection failed (dropped).
 */
static int publish(struct rmq_sink *s, struct flight *f)
{
    char (*names)[160] = s->names;
    amqp_table_entry_t ents[FORMAT_MAX_HEADERS];
    amqp_basic_properties_t p;
    struct out_msg m;
    char why[300];
    int n = 0, rc;

    sink_held_view(f->held, &m);
    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
               AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
    p.delivery_mode = 2; /* persistent */
    p.message_id = (amqp_bytes_t){.len = m.id_len, .bytes = (void *)m.id};
    p.app_id = amqp_cstring_bytes("outbox-relay");
    if (m.id_len > 255) {
        snprintf(why, sizeof(why), "the event id is %zu bytes; an AMQP message_id holds 255",
                 m.id_len);
        settle(s, f, SINK_UNDELIVERABLE, false, "message-id", why);
        return 1;
    }
    for (int i = 0; i < m.nheaders; i++) {
        const struct msg_header *hd = &m.headers[i];
        amqp_bytes_t v = {.len = hd->value ? hd->len : 0, .bytes = (void *)hd->value};

        if (strcasecmp(hd->name, "content-type") == 0) {
            p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
            p.content_type = v;
            continue;
        }
        /* CloudEvents' AMQP binding, binary mode: ce_type is cloudEvents:type. */
        if (strncmp(hd->name, "ce_", 3) == 0)
            rc = snprintf(names[n], sizeof(s->names[n]), "cloudEvents:%s", hd->name + 3);
        else
            rc = snprintf(names[n], sizeof(s->names[n]), "%s", hd->name);
        if (rc <= 0 || (size_t)rc >= sizeof(s->names[n])) {
            snprintf(why, sizeof(why), "header \"%.64s\" is too long for AMQP", hd->name);
            settle(s, f, SINK_UNDELIVERABLE, false, "header", why);
            return 1;
        }
        ents[n].key = amqp_cstring_bytes(names[n]);
        ents[n].value.kind = AMQP_FIELD_KIND_UTF8;
        ents[n].value.value.bytes = v;
        n++;
    }
    p.headers.num_entries = n;
    p.headers.entries = ents;
    rc = amqp_basic_publish(s->conn, 1, amqp_cstring_bytes(s->k->exchange),
                            amqp_cstring_bytes(m.topic), 1, 0, &p,
                            (amqp_bytes_t){.len = m.value ? m.value_len : 0,
                                           .bytes = (void *)m.value});
    if (rc != AMQP_STATUS_OK) {
        note_log(s, "rabbitmq: publish failed: %s; reconnecting", amqp_error_string2(rc));
        drop_connection(s);
        return -1;
    }
    f->seq = s->next_seq++;
    f->sent_ms = now_ms();
    return 0;
}

/* Publish every message not yet on this connection, in order.  Returns -1 when dropped. */
static int publish_pending(struct rmq_sink *s)
{
    for (size_t i = s->fhead; i < s->ftail && s->conn; i++) {
        if (!s->fl[i].settled && s->fl[i].seq == 0 && publish(s, &s->fl[i]) < 0)
            return -1;
    }
    compact(s);
    return s->conn ? 0 : -1;
}

/* basic.ack or basic.nack for tag (and every earlier one with multiple). */
static void on_confirm(struct rmq_sink *s, uint64_t tag, bool multiple, bool ack)
{
    bool again = false;

    for (size_t i = s->fhead; i < s->ftail; i++) {
        struct flight *f = &s->fl[i];

        if (f->settled || f->seq == 0)
            continue;
        if (f->seq > tag)
            break;
        if (f->seq != tag && !multiple)
            continue;
        if (!ack) {
            /* The broker could not take it (an internal error): publish it again. */
            f->seq = 0;
            again = true;
        } else if (f->returned) {
            settle(s, f, SINK_UNDELIVERABLE, false, "NO_ROUTE", f->why);
        } else {
            settle(s, f, SINK_DELIVERED, false, "", "");
        }
    }
    if (again)
        note_log(s, "rabbitmq: the broker nacked messages; publishing them again");
    compact(s);
}

/* basic.return: the message with this id and routing key found no queue. */
static int on_return(struct rmq_sink *s, const amqp_frame_t *frame)
{
    const amqp_basic_return_t *r = frame->payload.method.decoded;
    char key[256], why[600];
    amqp_message_t msg;
    amqp_rpc_reply_t rep;

    snprintf(key, sizeof(key), "%.*s", (int)r->routing_key.len,
             (const char *)r->routing_key.bytes);
    snprintf(why, sizeof(why), "unroutable: no queue is bound for routing key \"%s\" on "
             "exchange \"%s\" (%u %.*s)", key, s->k->exchange, r->reply_code,
             (int)r->reply_text.len, (const char *)r->reply_text.bytes);
    rep = amqp_read_message(s->conn, frame->channel, &msg, 0);
    if (rep.reply_type != AMQP_RESPONSE_NORMAL)
        return -1;
    for (size_t i = s->fhead; i < s->ftail; i++) {
        struct flight *f = &s->fl[i];
        struct out_msg m;

        if (f->settled || f->seq == 0 || f->returned)
            continue;
        sink_held_view(f->held, &m);
        if (strcmp(m.topic, key) == 0 && msg.properties.message_id.len == m.id_len &&
            memcmp(msg.properties.message_id.bytes, m.id, m.id_len) == 0) {
            f->returned = true;
            snprintf(f->why, sizeof(f->why), "%.*s", (int)sizeof(f->why) - 1, why);
            break;
        }
    }
    amqp_destroy_message(&msg);
    return 0;
}

/*
 * The broker closed the channel or the connection with code and text.  Finds the one
 * message that caused it, when there is one (a topic permission denied, a message over
 * max_message_size), and sets it aside; the rest are published again on a new
 * connection.  A permission on the exchange or vhost stops the relay.
 */
static void on_close(struct rmq_sink *s, int code, const char *text)
{
    const char *p;

    if (code == 403 && (p = strstr(text, "to topic '"))) {
        char key[256];
        size_t n;

        p += strlen("to topic '");
        n = strcspn(p, "'");
        snprintf(key, sizeof(key), "%.*s", (int)(n < 255 ? n : 255), p);
        for (size_t i = s->fhead; i < s->ftail; i++) {
            struct flight *f = &s->fl[i];

            if (!f->settled && f->seq != 0 && strcmp(f->held->data, key) == 0) {
                settle(s, f, SINK_UNDELIVERABLE, false, "ACCESS_REFUSED", text);
                break;
            }
        }
    } else if (code == 406 && (p = strstr(text, "larger than configured max size "))) {
        size_t max = strtoull(p + strlen("larger than configured max size "), NULL, 10);

        for (size_t i = s->fhead; i < s->ftail; i++) {
            struct flight *f = &s->fl[i];

            if (!f->settled && f->seq != 0 && f->held->value_len > max) {
                settle(s, f, SINK_UNDELIVERABLE, true, "PRECONDITION_FAILED", text);
                break;
            }
        }
    } else if (code == 403) {
        refuse(s, "rabbitmq refused the relay: %s (grant user \"%s\" write permission on "
               "exchange \"%s\")", text, s->url.info.user, s->k->exchange);
    } else {
        note_log(s, "rabbitmq closed the %s: %s; reconnecting",
                 code >= 300 && code < 600 ? "connection" : "channel", text);
    }
    compact(s);
    drop_connection(s);
}

/* One frame from the broker.  Returns -1 when the connection must go. */
static int on_frame(struct rmq_sink *s, amqp_frame_t *frame)
{
    char text[400];

    if (frame->frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (frame->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = frame->payload.method.decoded;

        on_confirm(s, a->delivery_tag, a->multiple, true);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *a = frame->payload.method.decoded;

        on_confirm(s, a->delivery_tag, a->multiple, false);
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD:
        return on_return(s, frame);
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *c = frame->payload.method.decoded;
        amqp_channel_close_ok_t ok = {0};
        int code = c->reply_code;

        snprintf(text, sizeof(text), "%d %.*s", code, (int)c->reply_text.len,
                 (const char *)c->reply_text.bytes);
        amqp_send_method(s->conn, frame->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        on_close(s, code, text);
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *c = frame->payload.method.decoded;
        amqp_connection_close_ok_t ok = {0};
        int code = c->reply_code;

        snprintf(text, sizeof(text), "%d %.*s", code, (int)c->reply_text.len,
                 (const char *)c->reply_text.bytes);
        amqp_send_method(s->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        on_close(s, code, text);
        return -1;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        const amqp_connection_blocked_t *b = frame->payload.method.decoded;

        note_log(s, "rabbitmq blocks publishing (%.*s): events wait in PostgreSQL",
                 (int)b->reason.len, (const char *)b->reason.bytes);
        return 0;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        pthread_mutex_lock(&s->mu);
        s->failing = false;
        pthread_mutex_unlock(&s->mu);
        return 0;
    default:
        return 0;
    }
}

/* Read every frame that waits, then release the connection's buffers. */
static void serve_frames(struct rmq_sink *s)
{
    static const struct timeval zero = {0, 0};

    while (s->conn) {
        amqp_frame_t frame;
        int rc = amqp_simple_wait_frame_noblock(s->conn, &frame, &zero);

        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            note_log(s, "rabbitmq: connection lost: %s; reconnecting", amqp_error_string2(rc));
            drop_connection(s);
            return;
        }
        if (on_frame(s, &frame) < 0) {
            drop_connection(s);
            return;
        }
    }
    if (s->conn)
        amqp_maybe_release_buffers(s->conn);
}

static void *worker(void *opaque)
{
    struct rmq_sink *s = opaque;
    int64_t backoff = 100;
    char buf[64];

    while (!stopping(s)) {
        struct pollfd fds[2] = {{.fd = s->kick[0], .events = POLLIN}, {.fd = -1}};
        size_t n = take_input(s);
        int timeout;

        if (s->refused) {
            pause_for(s, 3600 * 1000); /* the relay stops on the refusal */
            continue;
        }
        if (!s->conn && s->fhead < s->ftail) {
            if (connect_worker(s) < 0) {
                pause_for(s, backoff);
                backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
                continue;
            }
            backoff = 100;
        }
        if (s->conn && publish_pending(s) < 0)
            continue;
        if (s->conn && s->fhead < s->ftail &&
            now_ms() - s->fl[s->fhead].sent_ms > s->k->ack_timeout_ms &&
            s->fl[s->fhead].seq != 0) {
            note_log(s, "rabbitmq: no confirm within %lld ms; reconnecting",
                     (long long)s->k->ack_timeout_ms);
            drop_connection(s);
            continue;
        }
        timeout = n > 0 ? 0 : s->fhead < s->ftail ? 100 : 1000;
        if (s->conn) {
            fds[1] = (struct pollfd){.fd = amqp_get_sockfd(s->conn), .events = POLLIN};
            if (amqp_frames_enqueued(s->conn) || amqp_data_in_buffer(s->conn))
                timeout = 0;
        }
        if (poll(fds, s->conn ? 2 : 1, timeout) > 0 && (fds[0].revents & POLLIN))
            while (read(s->kick[0], buf, sizeof(buf)) > 0)
                ;
        serve_frames(s); /* also sends heartbeats when due */
    }
    if (s->conn) {
        /* A clean goodbye when the broker still answers; the socket is shut otherwise. */
        amqp_channel_close(s->conn, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(s->conn, AMQP_REPLY_SUCCESS);
    }
    drop_connection(s);
    pthread_mutex_lock(&s->mu);
    s->exited = true;
    pthread_cond_broadcast(&s->exited_cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void kick(struct rmq_sink *s)
{
    ssize_t rc = write(s->kick[1], "", 1); /* full: the worker is awake already */

    (void)rc;
}

static int start_worker(struct rmq_sink *s, char *errstr, size_t errstr_size)
{
    int rc;

    s->stop = s->exited = s->refused = false;
    if ((rc = pthread_create(&s->thread, NULL, worker, s)) != 0) {
        snprintf(errstr, errstr_size, "cannot start the rabbitmq thread: %s", strerror(rc));
        return -rc;
    }
    s->running = true;
    return 0;
}

/*
 * Stop the worker and drop every message it held: say goodbye to the broker for up to
 * two seconds, then shut its socket (a publish blocked by a broker that stopped
 * reading ends there).
 */
static void stop_worker(struct rmq_sink *s)
{
    if (s->running) {
        struct timespec until;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 2;
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_mutex_unlock(&s->mu);
        kick(s);
        pthread_mutex_lock(&s->mu);
        while (!s->exited && pthread_cond_timedwait(&s->exited_cv, &s->mu, &until) != ETIMEDOUT)
            ;
        if (!s->exited && s->sockfd >= 0)
            shutdown(s->sockfd, SHUT_RDWR);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->running = false;
    }
    for (size_t i = s->fhead; i < s->ftail; i++)
        free(s->fl[i].held);
    s->fhead = s->ftail = 0;
    sink_fifo_clear(&s->in);
    sink_notes_clear(&s->notes);
    s->failing = false;
}

static int rabbitmq_produce(sink *base, const struct out_msg *msg, uint64_t tag, char *errstr,
                            size_t errstr_size)
{
    struct rmq_sink *s = (struct rmq_sink *)base;
    struct sink_held *h = sink_hold(msg, tag);
    int rc = 0;

    if (!h) {
        snprintf(errstr, errstr_size, "out of memory");
        return -EIO;
    }
    pthread_mutex_lock(&s->mu);
    if (sink_fifo_push(&s->in, h) < 0)
        rc = -EIO;
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        free(h);
        snprintf(errstr, errstr_size, "out of memory");
        return rc;
    }
    kick(s);
    return 0;
}

static int rabbitmq_poll(sink *base)
{
    struct rmq_sink *s = (struct rmq_sink *)base;

    pthread_mutex_lock(&s->mu);
    s->base.unreachable = s->failing;
    pthread_mutex_unlock(&s->mu);
    return sink_notes_serve(&s->base, &s->notes, NULL);
}

static bool rabbitmq_fatal(const sink *base)
{
    (void)base;
    return false; /* the worker reconnects and publishes again by itself */
}

static void rabbitmq_flush(sink *base, int timeout_ms)
{
    sink_wait_reports(base, timeout_ms);
}

static int rabbitmq_reset(sink *base, char *errstr, size_t errstr_size)
{
    struct rmq_sink *s = (struct rmq_sink *)base;

    stop_worker(s);
    return start_worker(s, errstr, errstr_size);
}

static void rabbitmq_destroy(sink *base)
{
    struct rmq_sink *s = (struct rmq_sink *)base;

    stop_worker(s);
    sink_fifo_free(&s->in);
    sink_notes_destroy(&s->notes);
    free(s->fl);
    free(s->url.buf);
    close(s->kick[0]);
    close(s->kick[1]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->exited_cv);
}

static const struct sink_ops rabbitmq_ops = {
    .produce = rabbitmq_produce,
    .poll = rabbitmq_poll,
    .fatal = rabbitmq_fatal,
    .flush = rabbitmq_flush,
    .reset = rabbitmq_reset,
    .destroy = rabbitmq_destroy,
};

static sink *rabbitmq_create(const struct relay_config *cfg, sink_report_fn *report,
                             void *opaque, char *errstr, size_t errstr_size)
{
    struct rmq_sink *s = calloc(1, sizeof(*s));
    const char *why;

    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->k = settings_of(cfg);
    s->sockfd = -1;
    if (parse_url(s->k->url, &s->url, &why) < 0) {
        snprintf(errstr, errstr_size, "rabbitmq.url %s", why);
        free(s);
        return NULL;
    }
    if (pipe(s->kick) < 0) {
        snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
        free(s->url.buf);
        free(s);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(s->kick[i], F_SETFD, FD_CLOEXEC);
        fcntl(s->kick[i], F_SETFL, fcntl(s->kick[i], F_GETFL) | O_NONBLOCK);
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->exited_cv, NULL);
    sink_notes_init(&s->notes);
    if (sink_base_init(&s->base, &sink_type_rabbitmq, &rabbitmq_ops, report, opaque, errstr,
                       errstr_size) < 0 ||
        start_worker(s, errstr, errstr_size) < 0) {
        close(s->kick[0]);
        close(s->kick[1]);
        sink_notes_destroy(&s->notes);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->exited_cv);
        free(s->url.buf);
        free(s);
        return NULL;
    }
    return &s->base;
}

static int rabbitmq_check(const struct relay_config *cfg, int timeout_ms,
                          const struct sink_check_out *out)
{
    const struct rabbitmq_settings *k = settings_of(cfg);
    struct amqp_url u;
    amqp_connection_state_t c;
    const char *why;
    char heading[400], line[600];
    bool refused;

    if (parse_url(k->url, &u, &why) < 0) {
        snprintf(line, sizeof(line), "rabbitmq.url %s", why);
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        return 1;
    }
    snprintf(heading, sizeof(heading), "rabbitmq (%s:%d, vhost \"%s\", %s):", u.info.host,
             u.info.port, u.info.vhost, u.info.ssl ? "TLS" : "plain");
    out->heading(out->ctx, heading);
    c = open_connection(k, &u.info, true, timeout_ms, line, sizeof(line), &refused);
    free(u.buf);
    if (!c) {
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        return 1;
    }
    snprintf(line, sizeof(line), "logged in, publisher confirms on, exchange \"%s\" %s",
             k->exchange, !k->exchange[0] ? "(the default exchange)"
                          : k->declare_exchange ? "declared" : "exists");
    out->line(out->ctx, SINK_CHECK_OK, line);
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    return 0;
}

static void rabbitmq_plan(const struct relay_config *cfg,
                          void (*item)(void *ctx, const char *label, const char *text), void *ctx)
{
    const struct rabbitmq_settings *k = settings_of(cfg);
    struct amqp_url u;
    const char *why;
    char text[700];

    if (parse_url(k->url, &u, &why) < 0)
        return;
    snprintf(text, sizeof(text), "rabbitmq at %s:%d, vhost \"%s\", user \"%s\", password "
             "********%s, format %s, confirms within %lld ms", u.info.host, u.info.port,
             u.info.vhost, u.info.user, u.info.ssl ? ", TLS" : "",
             relay_choice_name(relay_format_choices, (int)k->common.format),
             (long long)k->ack_timeout_ms);
    item(ctx, "sink", text);
    snprintf(text, sizeof(text), "exchange \"%s\" (%s%s), routing key \"%s\"", k->exchange,
             relay_choice_name(exchange_types, k->exchange_type),
             k->declare_exchange ? ", declared durable" : ", must exist", k->common.destination);
    item(ctx, "destination", text);
    free(u.buf);
}

static const char *rabbitmq_dead_letter(const struct relay_config *cfg)
{
    return settings_of(cfg)->common.dead_letter;
}

const struct sink_type sink_type_rabbitmq = {
    .name = "rabbitmq",
    .config = &rabbitmq_config,
    .create = rabbitmq_create,
    .check = rabbitmq_check,
    .plan = rabbitmq_plan,
    .dead_letter_destination = rabbitmq_dead_letter,
    .caps =
        {
            .keeps_key_order = true, /* one channel, published and confirmed in order */
            .max_destination = FORMAT_TOPIC_MAX, /* a routing key is a shortstr */
            .destination_chars = NULL,
            .destination_word = "routing key",
            .message_overhead = 160,
            .header_overhead = 32,
            .unreachable = "rabbitmq unreachable",
        },
};

/*
 * For the inbox's RabbitMQ source (inbox_rabbitmq.c), which reads stream queues of
 * the broker this section configures.
 */

amqp_connection_state_t sink_rabbitmq_connect(const struct relay_config *cfg, int timeout_ms,
                                              char *why, size_t why_size, bool *refused)
{
    const struct rabbitmq_settings *k = settings_of(cfg);
    amqp_connection_state_t c;
    struct amqp_url u;
    const char *bad;

    *refused = true;
    if (!k || !k->url || !k->url[0]) {
        snprintf(why, why_size, "rabbitmq.url is not set (the inbox reads the broker of the "
                                "rabbitmq section)");
        return NULL;
    }
    if (parse_url(k->url, &u, &bad) < 0) {
        snprintf(why, why_size, "rabbitmq.url %s", bad);
        return NULL;
    }
    c = open_connection(k, &u.info, false, timeout_ms, why, why_size, refused);
    free(u.buf);
    return c;
}

void sink_rabbitmq_reply_text(amqp_rpc_reply_t r, char *out, size_t size)
{
    reply_text(r, out, size);
}

/*
 * sink_redis.c -- the Redis Streams sink: each event an entry (XADD) of a stream
 * named by the redis.stream template, acknowledged by the XADD's reply.
 *
 * One connection, commands pipelined in the order produced, replies read in the same
 * order: Redis executes a connection's commands one after another, so per-key order
 * holds, and an entry is reported delivered only when its XADD's reply (the entry's
 * id) has come back -- the checkpoint never runs ahead of Redis.  The sink does its
 * own I/O on the relay's thread: hiredis 0.14 (Debian 12) builds commands and parses
 * replies on a non-blocking socket, and the pipeline's poll() loop watches that
 * socket (sink_pollfds()); there is no thread.
 *
 * An entry's fields, in order: "id" (the event id, what consumers deduplicate on),
 * "key", then one field per message header (the CloudEvents attributes in binary
 * mode, the outbox's own headers), then "value" (absent for a NULL payload).
 *
 * Failures: a reply WRONGTYPE (the stream's name holds another type) or NOPERM (an ACL
 * denies it) is permanent for that entry (set aside); any other error reply, and any
 * connection failure, fails the entry for a retry (the pipeline rebuilds: a new
 * connection, a replay from the checkpoint).  A refused AUTH or SELECT stops the
 * relay (sink_refuse()).
 *
 * TLS (rediss://): Debian 12's hiredis 0.14 has none, so the sink does the transport
 * itself and keeps hiredis for what it does well -- formatting commands into the
 * context's output buffer and parsing replies with its reader.  OpenSSL runs over
 * the context's non-blocking socket: the handshake, writes and reads are driven by the
 * pipeline's poll() loop like the plain socket, SSL_ERROR_WANT_READ / WANT_WRITE
 * telling which events to wait for.  The server's certificate is verified (redis.ca_file
 * or the system's CAs) and its name or IP address checked against the URL's host; a
 * client certificate (redis.cert_file, redis.key_file) answers tls-auth-clients.  A
 * certificate that does not verify, or a TLS handshake the server refuses, stops the
 * relay like a refused password.
 */
#include "sink_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "config_schema.h"
#include "log.h"

extern const struct sink_type sink_type_redis;

/* The "redis" section of the configuration. */
struct redis_settings {
    struct sink_common common; /* stream template, format, dead-letter stream */
    char *url;
    int64_t maxlen;
    char *ca_file;   /* rediss://: the CA of the server's certificate ("": the system's) */
    char *cert_file; /* rediss://: a client certificate, for tls-auth-clients */
    char *key_file;
};

#define RFIELD(f) offsetof(struct redis_settings, f)

static int check_url(struct parser_ctx *ctx, const char *name, const char *value,
                     struct relay_pos pos);

/* clang-format off */
static const struct relay_option redis_options[] = {
    {.section = "redis", .key = "url", .type = OPT_STRING, .offset = RFIELD(url),
     .required = true, .check = check_url, .secret = RELAY_SECRET_URL},
    {.section = "redis", .key = "stream", .type = OPT_STRING,
     .offset = RFIELD(common.destination), .def = "outbox.{aggregatetype}",
     .check = relay_config_check_template},
    {.section = "redis", .key = "maxlen", .type = OPT_INTEGER, .offset = RFIELD(maxlen),
     .def = "0", .min = 0, .max = INT64_C(1000000000000)},
    {.section = "redis", .key = "dlq_stream", .type = OPT_STRING,
     .offset = RFIELD(common.dead_letter), .def = ""},
    {.section = "redis", .key = "format", .type = OPT_ENUM, .offset = RFIELD(common.format),
     .def = "cloudevents", .choices = relay_format_choices},
    {.section = "redis", .key = "ca_file", .type = OPT_STRING, .offset = RFIELD(ca_file),
     .def = ""},
    {.section = "redis", .key = "cert_file", .type = OPT_STRING, .offset = RFIELD(cert_file),
     .def = ""},
    {.section = "redis", .key = "key_file", .type = OPT_STRING, .offset = RFIELD(key_file),
     .def = ""},
};
/* clang-format on */

static const struct relay_sink_config redis_config = {
    .name = "redis",
    .section = "redis",
    .options = redis_options,
    .noptions = sizeof(redis_options) / sizeof(redis_options[0]),
    .settings_size = sizeof(struct redis_settings),
    .common_offset = offsetof(struct redis_settings, common),
    .section_selects = false,
};

/* The parts of redis.url: redis[s]://[[user]:password@]host[:port][/db]. */
struct redis_url {
    char host[256];
    int port;
    char user[128];
    char password[256];
    int db;
    bool tls; /* rediss:// */
};

/* Parse url into u.  Returns 0, or -1 with why set. */
static int parse_url(const char *url, struct redis_url *u, const char **why)
{
    const char *p, *at, *slash, *colon, *hostend;
    size_t n;

    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (strncasecmp(url, "rediss://", 9) == 0) {
        u->tls = true;
        p = url + 9;
    } else if (strncasecmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else {
        *why = "must start with redis:// or rediss:// (TLS)";
        return -1;
    }
    slash = strchr(p, '/');
    at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    if (at) {
        const char *c = memchr(p, ':', (size_t)(at - p));

        if (!c) {
            *why = "credentials must be user:password@ or :password@";
            return -1;
        }
        if ((size_t)(c - p) >= sizeof(u->user) || (size_t)(at - c - 1) >= sizeof(u->password)) {
            *why = "user or password too long";
            return -1;
        }
        memcpy(u->user, p, (size_t)(c - p));
        memcpy(u->password, c + 1, (size_t)(at - c - 1));
        p = at + 1;
    }
    hostend = slash ? slash : p + strlen(p);
    colon = memchr(p, ':', (size_t)(hostend - p));
    n = (size_t)((colon ? colon : hostend) - p);
    if (n == 0 || n >= sizeof(u->host)) {
        *why = "no host";
        return -1;
    }
    memcpy(u->host, p, n);
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);

        if (end != hostend || port < 1 || port > 65535) {
            *why = "bad port";
            return -1;
        }
        u->port = (int)port;
    }
    if (slash && slash[1] != '\0') {
        char *end;
        long db = strtol(slash + 1, &end, 10);

        if (*end != '\0' || db < 0 || db > 100000) {
            *why = "bad database number";
            return -1;
        }
        u->db = (int)db;
    }
    return 0;
}

static int check_url(struct parser_ctx *ctx, const char *name, const char *value,
                     struct relay_pos pos)
{
    struct redis_url u;
    const char *why = NULL;

    if (parse_url(value, &u, &why) < 0)
        return relay_config_fail(ctx, pos, "%s: %s", name, why);
    return 0;
}

struct redis_sink {
    struct sink base; /* first */
    const struct redis_settings *k;
    struct redis_url url;
    redisContext *c;
    SSL_CTX *tls_ctx; /* rediss:// only */
    SSL *ssl;         /* over c->fd while connected with TLS */
    bool handshaken;
    short tls_want;   /* poll events the TLS layer waits for */
    int setup_replies; /* replies of AUTH/SELECT still to come, before any XADD's */
    struct sink_fifo q; /* held messages, in the order of their XADDs */
    bool broken;
    char maxlen[24];
};

static const struct redis_settings *settings_of(const struct relay_config *cfg)
{
    return relay_config_sink_settings(cfg, "redis");
}

/*
 * A TLS client context for k: peer verification on, against k->ca_file or the system's
 * CAs; k's client certificate when given.  Returns NULL with errstr set.
 */
static SSL_CTX *tls_context(const struct redis_settings *k, char *errstr, size_t errstr_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *what = NULL;

    if (!ctx) {
        snprintf(errstr, errstr_size, "redis: cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (k->ca_file[0] ? SSL_CTX_load_verify_locations(ctx, k->ca_file, NULL) != 1
                      : SSL_CTX_set_default_verify_paths(ctx) != 1)
        what = "redis.ca_file";
    else if (k->cert_file[0] &&
             (SSL_CTX_use_certificate_chain_file(ctx, k->cert_file) != 1 ||
              SSL_CTX_use_PrivateKey_file(ctx, k->key_file[0] ? k->key_file : k->cert_file,
                                          SSL_FILETYPE_PEM) != 1))
        what = "redis.cert_file / redis.key_file";
    if (what) {
        char e[256];

        ERR_error_string_n(ERR_get_error(), e, sizeof(e));
        snprintf(errstr, errstr_size, "redis: cannot load %s: %s", what, e);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* A TLS session over fd for the URL's host (name or address checked).  NULL: no memory. */
static SSL *tls_session(SSL_CTX *ctx, int fd, const char *host)
{
    unsigned char addr[16];
    SSL *ssl = SSL_new(ctx);

    if (!ssl)
        return NULL;
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    } else {
        SSL_set1_host(ssl, host);
        SSL_set_tlsext_host_name(ssl, host);
    }
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    return ssl;
}

/*
 * Why a TLS operation failed (err from SSL_get_error), into why; true when it is a
 * refusal no retry cures: a certificate that does not verify, a handshake the server
 * refuses.  A closed or reset connection is not.
 */
static bool tls_failure(SSL *ssl, int err, bool handshake, char *why, size_t size)
{
    long v = SSL_get_verify_result(ssl);
    char e[256];

    if (err == SSL_ERROR_SSL && v != X509_V_OK) {
        snprintf(why, size, "the server's certificate does not verify (%s): give the CA that "
                 "signed it in redis.ca_file", X509_verify_cert_error_string(v));
        return true;
    }
    if (err == SSL_ERROR_SSL) {
        ERR_error_string_n(ERR_get_error(), e, sizeof(e));
        snprintf(why, size, "TLS %s failed: %s", handshake ? "handshake" : "connection", e);
        return handshake;
    }
    if (err == SSL_ERROR_ZERO_RETURN)
        snprintf(why, size, "the server closed the TLS connection");
    else
        snprintf(why, size, "TLS connection lost: %s", errno ? strerror(errno) : "end of file");
    return false;
}

/* Start connecting (non-blocking) and queue AUTH and SELECT.  0 or -1 with errstr. */
static int connect_start(struct redis_sink *s, char *errstr, size_t errstr_size)
{
    s->c = redisConnectNonBlock(s->url.host, s->url.port);
    if (!s->c || s->c->err) {
        snprintf(errstr, errstr_size, "cannot connect to redis at %s:%d: %s", s->url.host,
                 s->url.port, s->c ? s->c->errstr : "out of memory");
        if (s->c)
            redisFree(s->c);
        s->c = NULL;
        return -1;
    }
    if (s->url.tls) {
        s->handshaken = false;
        s->tls_want = POLLOUT;
        if (!(s->ssl = tls_session(s->tls_ctx, s->c->fd, s->url.host))) {
            snprintf(errstr, errstr_size, "redis: out of memory");
            redisFree(s->c);
            s->c = NULL;
            return -1;
        }
    }
    s->setup_replies = 0;
    if (s->url.password[0]) {
        if (s->url.user[0])
            redisAppendCommand(s->c, "AUTH %s %s", s->url.user, s->url.password);
        else
            redisAppendCommand(s->c, "AUTH %s", s->url.password);
        s->setup_replies++;
    }
    if (s->url.db != 0) {
        redisAppendCommand(s->c, "SELECT %d", s->url.db);
        s->setup_replies++;
    }
    s->broken = false;
    return 0;
}

/* Report the oldest held message with outcome, and forget it. */
static void report_oldest(struct redis_sink *s, enum sink_outcome outcome, const char *code,
                          const char *err)
{
    struct sink_held *h = sink_fifo_pop(&s->q);
    struct out_msg m;
    struct sink_report r = {.tag = h->tag, .outcome = outcome, .code = code, .err = err,
                            .destination = h->data};

    if (outcome == SINK_UNDELIVERABLE) {
        sink_held_view(h, &m);
        r.msg = &m;
    }
    sink_report(&s->base, &r);
    free(h);
}

/* Every held message fails (for a retry): the connection is gone. */
static void fail_all(struct redis_sink *s, const char *why)
{
    while (sink_fifo_len(&s->q) > 0)
        report_oldest(s, SINK_RETRY, "connection", why);
}

/* Free the TLS session (if any), then the context and its socket. */
static void close_connection(struct redis_sink *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
}

static void disconnect(struct redis_sink *s, const char *why)
{
    if (!s->broken && why)
        log_warn("redis at %s:%d: %s", s->url.host, s->url.port, why);
    s->broken = true;
    s->base.unreachable = true;
    fail_all(s, why ? why : "disconnected");
    close_connection(s);
}

static int redis_produce(sink *base, const struct out_msg *msg, uint64_t tag, char *errstr,
                         size_t errstr_size)
{
    struct redis_sink *s = (struct redis_sink *)base;
    const char *argv[8 + 2 * (FORMAT_MAX_HEADERS + 3)];
    size_t len[8 + 2 * (FORMAT_MAX_HEADERS + 3)];
    int argc = 0;
    struct sink_held *h;

#define ARG(p, n) (argv[argc] = (p), len[argc] = (n), argc++)
    if (s->broken) {
        snprintf(errstr, errstr_size, "the connection to redis failed");
        return -EIO;
    }
    /* Connected on the first message after a (re)start: after the pipeline's backoff. */
    if (!s->c && connect_start(s, errstr, errstr_size) < 0) {
        s->base.unreachable = true;
        return -EIO;
    }
    ARG("XADD", 4);
    ARG(msg->topic, strlen(msg->topic));
    if (s->k->maxlen > 0) {
        ARG("MAXLEN", 6);
        ARG("~", 1);
        ARG(s->maxlen, strlen(s->maxlen));
    }
    ARG("*", 1);
    ARG("id", 2);
    ARG(msg->id, msg->id_len);
    ARG("key", 3);
    ARG(msg->key ? msg->key : "", msg->key ? msg->key_len : 0);
    for (int i = 0; i < msg->nheaders; i++) {
        ARG(msg->headers[i].name, strlen(msg->headers[i].name));
        ARG(msg->headers[i].value ? msg->headers[i].value : "", msg->headers[i].len);
    }
    if (msg->value) {
        ARG("value", 5);
        ARG(msg->value, msg->value_len);
    }
#undef ARG
    if (!(h = sink_hold(msg, tag)) || sink_fifo_push(&s->q, h) < 0) {
        free(h);
        snprintf(errstr, errstr_size, "out of memory");
        return -EIO;
    }
    if (redisAppendCommandArgv(s->c, argc, argv, len) != REDIS_OK) {
        free(sink_fifo_unpush(&s->q));
        snprintf(errstr, errstr_size, "redis: %s", s->c->errstr);
        return -EIO;
    }
    return 0;
}

/* An XADD's error reply: permanent for this entry, or worth a retry? */
static bool permanent(const char *err)
{
    return strncmp(err, "WRONGTYPE", 9) == 0 || strncmp(err, "NOPERM", 6) == 0;
}

static void on_reply(struct redis_sink *s, redisReply *r)
{
    if (s->setup_replies > 0) {
        s->setup_replies--;
        if (r->type == REDIS_REPLY_ERROR)
            sink_refuse(&s->base, "redis at %s:%d refused the relay: %s (check redis.url's "
                        "user, password and database)",
                        s->url.host, s->url.port, r->str);
        return;
    }
    if (sink_fifo_len(&s->q) == 0)
        return; /* a reply to nothing we hold: cannot happen on one connection */
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOAUTH", 6) == 0)
            sink_refuse(&s->base, "redis at %s:%d wants a password: %s (set it in redis.url)",
                        s->url.host, s->url.port, r->str);
        report_oldest(s, permanent(r->str) ? SINK_UNDELIVERABLE : SINK_RETRY, "redis", r->str);
        return;
    }
    s->base.unreachable = false;
    report_oldest(s, SINK_DELIVERED, "", "");
}

/*
 * The TLS transport: finish the handshake, write what hiredis queued, feed what
 * arrived to its reader.  Returns 0, or -1 with why set (the connection must go;
 * *refused when no retry cures it).
 */
static int tls_io(struct redis_sink *s, char *why, size_t size, bool *refused)
{
    redisContext *c = s->c;
    char buf[16384];
    int n, err;

    *refused = false;
    s->tls_want = 0;
    if (!s->handshaken) {
        errno = 0;
        if ((n = SSL_do_handshake(s->ssl)) != 1) {
            err = SSL_get_error(s->ssl, n);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                s->tls_want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                return 0;
            }
            *refused = tls_failure(s->ssl, err, true, why, size);
            return -1;
        }
        s->handshaken = true;
    }
    while (sdslen(c->obuf) > 0) {
        errno = 0;
        n = SSL_write(s->ssl, c->obuf, (int)(sdslen(c->obuf) > 65536 ? 65536 : sdslen(c->obuf)));
        if (n > 0) {
            sdsrange(c->obuf, n, -1);
            continue;
        }
        err = SSL_get_error(s->ssl, n);
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
            s->tls_want |= err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            break;
        }
        tls_failure(s->ssl, err, false, why, size);
        return -1;
    }
    for (;;) {
        errno = 0;
        n = SSL_read(s->ssl, buf, sizeof(buf));
        if (n > 0) {
            if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
                snprintf(why, size, "redis: cannot parse the server's reply");
                return -1;
            }
            continue;
        }
        err = SSL_get_error(s->ssl, n);
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err == SSL_ERROR_WANT_WRITE) {
            s->tls_want |= POLLOUT;
            break;
        }
        tls_failure(s->ssl, err, false, why, size);
        return -1;
    }
    return 0;
}

static int redis_poll(sink *base)
{
    struct redis_sink *s = (struct redis_sink *)base;
    int served = 0, done = 0;
    void *reply;

    if (!s->c || s->broken)
        return 0;
    if (s->ssl) {
        char why[512];
        bool refused;

        if (tls_io(s, why, sizeof(why), &refused) < 0) {
            if (refused)
                sink_refuse(&s->base, "redis at %s:%d: %s", s->url.host, s->url.port, why);
            disconnect(s, why);
            return 0;
        }
    } else if (s->c->obuf[0] != '\0' && redisBufferWrite(s->c, &done) != REDIS_OK) {
        disconnect(s, s->c->errstr);
        return 0;
    } else if (redisBufferRead(s->c) != REDIS_OK) {
        disconnect(s, s->c->errstr);
        return 0;
    }
    for (;;) {
        if (redisGetReplyFromReader(s->c, &reply) != REDIS_OK) {
            disconnect(s, s->c->errstr);
            break;
        }
        if (!reply)
            break;
        on_reply(s, reply);
        freeReplyObject(reply);
        served++;
    }
    return served;
}

static size_t redis_pollfds(sink *base, struct pollfd *fds, size_t max)
{
    struct redis_sink *s = (struct redis_sink *)base;

    if (!s->c || s->broken || max == 0)
        return 0;
    if (s->ssl)
        fds[0] = (struct pollfd){
            .fd = s->c->fd,
            .events = (short)(POLLIN | s->tls_want |
                              (s->handshaken && sdslen(s->c->obuf) > 0 ? POLLOUT : 0))};
    else
        fds[0] = (struct pollfd){.fd = s->c->fd,
                                 .events = (short)(POLLIN | (s->c->obuf[0] ? POLLOUT : 0))};
    return 1;
}

/* Broken: the connection failed; the pipeline rebuilds, and sink_reset() clears it. */
static bool redis_fatal(const sink *base)
{
    return ((const struct redis_sink *)base)->broken;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void redis_flush(sink *base, int timeout_ms)
{
    struct redis_sink *s = (struct redis_sink *)base;
    int64_t deadline = now_ms() + timeout_ms;

    while (s->c && !s->broken && sink_fifo_len(&s->q) > 0) {
        struct pollfd fd;
        int64_t left = deadline - now_ms();

        if (left <= 0 || redis_pollfds(base, &fd, 1) == 0)
            break;
        if (poll(&fd, 1, (int)(left > 100 ? 100 : left)) < 0 && errno != EINTR)
            break;
        redis_poll(base);
    }
}

static int redis_reset(sink *base, char *errstr, size_t errstr_size)
{
    struct redis_sink *s = (struct redis_sink *)base;

    close_connection(s);
    fail_all(s, "abandoned");
    (void)errstr;
    (void)errstr_size;
    /*
     * No connection now: the next message makes one, once the pipeline's backoff has
     * passed -- a refused connection here would only rebuild again at once.
     */
    s->broken = false;
    return 0;
}

static void redis_destroy(sink *base)
{
    struct redis_sink *s = (struct redis_sink *)base;

    close_connection(s);
    fail_all(s, "abandoned");
    sink_fifo_free(&s->q);
    SSL_CTX_free(s->tls_ctx);
}

static const struct sink_ops redis_ops = {
    .produce = redis_produce,
    .poll = redis_poll,
    .fatal = redis_fatal,
    .flush = redis_flush,
    .reset = redis_reset,
    .destroy = redis_destroy,
    .pollfds = redis_pollfds,
};

static sink *redis_create(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                          char *errstr, size_t errstr_size)
{
    struct redis_sink *s = calloc(1, sizeof(*s));
    const char *why = NULL;

    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->k = settings_of(cfg);
    if (parse_url(s->k->url, &s->url, &why) < 0) {
        snprintf(errstr, errstr_size, "redis.url: %s", why);
        free(s);
        return NULL;
    }
    snprintf(s->maxlen, sizeof(s->maxlen), "%lld", (long long)s->k->maxlen);
    if (s->url.tls && !(s->tls_ctx = tls_context(s->k, errstr, errstr_size))) {
        free(s);
        return NULL;
    }
    if (sink_base_init(&s->base, &sink_type_redis, &redis_ops, report, opaque, errstr,
                       errstr_size) < 0) {
        SSL_CTX_free(s->tls_ctx);
        free(s);
        return NULL;
    }
    /* Unreachable now is not an error: the first message connects (redis_produce). */
    if (connect_start(s, errstr, errstr_size) < 0) {
        log_warn("%s", errstr);
        s->base.unreachable = true;
    }
    return &s->base;
}

/* One command on a blocking connection, over TLS when ssl is set.  NULL on failure. */
static redisReply *check_command(redisContext *c, SSL *ssl, const char *fmt, ...)
{
    char buf[16384], *cmd = NULL;
    void *reply = NULL;
    va_list ap;
    int len, off = 0;

    va_start(ap, fmt);
    if (!ssl) {
        reply = redisvCommand(c, fmt, ap);
        va_end(ap);
        return reply;
    }
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    while (off < len) {
        int n = SSL_write(ssl, cmd + off, len - off);

        if (n <= 0) {
            free(cmd);
            return NULL;
        }
        off += n;
    }
    free(cmd);
    while (redisReaderGetReply(c->reader, &reply) == REDIS_OK && !reply) {
        int n = SSL_read(ssl, buf, sizeof(buf));

        if (n <= 0 || redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK)
            return NULL;
    }
    return reply;
}

/*
 * outbox-relay check: connect (TLS included), authenticate, PING; the stream's type
 * when the template is literal.
 */
static int redis_check(const struct relay_config *cfg, int timeout_ms,
                       const struct sink_check_out *out)
{
    const struct redis_settings *k = settings_of(cfg);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct redis_url u;
    const char *why = NULL;
    redisContext *c;
    redisReply *r;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    char heading[320], line[600];
    int failures = 0;

    if (parse_url(k->url, &u, &why) < 0) {
        snprintf(line, sizeof(line), "redis.url: %s", why);
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        return 1;
    }
    snprintf(heading, sizeof(heading), "redis (%s:%d, database %d%s):", u.host, u.port, u.db,
             u.tls ? ", TLS" : "");
    out->heading(out->ctx, heading);
    c = redisConnectWithTimeout(u.host, u.port, tv);
    if (!c || c->err) {
        snprintf(line, sizeof(line), "cannot connect: %s", c ? c->errstr : "out of memory");
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        if (c)
            redisFree(c);
        return 1;
    }
    redisSetTimeout(c, tv);
    if (u.tls) {
        char failure[512];
        int rc;

        if (!(ctx = tls_context(k, line, sizeof(line))) ||
            !(ssl = tls_session(ctx, c->fd, u.host))) {
            out->line(out->ctx, SINK_CHECK_FAIL, ctx ? "out of memory" : line);
            SSL_CTX_free(ctx);
            redisFree(c);
            return 1;
        }
        errno = 0;
        if ((rc = SSL_connect(ssl)) != 1) {
            tls_failure(ssl, SSL_get_error(ssl, rc), true, failure, sizeof(failure));
            snprintf(line, sizeof(line), "cannot connect: %s", failure);
            out->line(out->ctx, SINK_CHECK_FAIL, line);
            SSL_free(ssl);
            SSL_CTX_free(ctx);
            redisFree(c);
            return 1;
        }
    }
    if (u.password[0]) {
        r = u.user[0] ? check_command(c, ssl, "AUTH %s %s", u.user, u.password)
                      : check_command(c, ssl, "AUTH %s", u.password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(line, sizeof(line), "authentication refused: %s",
                     r ? r->str : c->errstr);
            out->line(out->ctx, SINK_CHECK_FAIL, line);
            failures++;
        }
        freeReplyObject(r);
    }
    if (!failures && u.db != 0) {
        r = check_command(c, ssl, "SELECT %d", u.db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(line, sizeof(line), "SELECT %d refused: %s", u.db, r ? r->str : c->errstr);
            out->line(out->ctx, SINK_CHECK_FAIL, line);
            failures++;
        }
        freeReplyObject(r);
    }
    if (!failures) {
        r = check_command(c, ssl, "PING");
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(line, sizeof(line), "PING failed: %s", r ? r->str : c->errstr);
            out->line(out->ctx, SINK_CHECK_FAIL, line);
            failures++;
        } else {
            out->line(out->ctx, SINK_CHECK_OK, ssl ? "connected over TLS (certificate verified), "
                                                     "PING answered"
                                                   : "connected, PING answered");
        }
        freeReplyObject(r);
    }
    if (!failures && strchr(k->common.destination, '{') == NULL) {
        r = check_command(c, ssl, "TYPE %s", k->common.destination);
        if (r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "stream") != 0 &&
            strcmp(r->str, "none") != 0) {
            snprintf(line, sizeof(line), "\"%s\" holds a %s, not a stream: every event would "
                     "be set aside", k->common.destination, r->str);
            out->line(out->ctx, SINK_CHECK_FAIL, line);
            failures++;
        }
        freeReplyObject(r);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    redisFree(c);
    return failures;
}

static void redis_plan(const struct relay_config *cfg,
                       void (*item)(void *ctx, const char *label, const char *text), void *ctx)
{
    const struct redis_settings *k = settings_of(cfg);
    struct redis_url u;
    const char *why = NULL;
    char text[600];

    if (parse_url(k->url, &u, &why) < 0)
        return;
    snprintf(text, sizeof(text), "redis at %s:%d, database %d%s%s, format %s", u.host, u.port,
             u.db, u.tls ? ", TLS" : "", u.password[0] ? ", password ********" : "",
             relay_choice_name(relay_format_choices, (int)k->common.format));
    item(ctx, "sink", text);
    snprintf(text, sizeof(text), "stream \"%s\"%s", k->common.destination,
             k->maxlen > 0 ? ", trimmed to about redis.maxlen entries" : "");
    item(ctx, "destination", text);
}

static const char *redis_dead_letter(const struct relay_config *cfg)
{
    return settings_of(cfg)->common.dead_letter;
}

const struct sink_type sink_type_redis = {
    .name = "redis",
    .config = &redis_config,
    .create = redis_create,
    .check = redis_check,
    .plan = redis_plan,
    .dead_letter_destination = redis_dead_letter,
    .caps =
        {
            .keeps_key_order = true, /* one connection, replies in order */
            .max_destination = FORMAT_TOPIC_MAX,
            .destination_chars = NULL,
            .destination_word = "stream",
            .message_overhead = 96,
            .header_overhead = 24,
            .unreachable = "redis unreachable",
        },
};

/*
 * sink_redis.c -- the Redis Streams sink: each event an entry (XADD) of a stream
 * named by the redis.stream template, acknowledged by the XADD's reply.
 *
 * One connection, commands pipelined in the order produced, replies read in the same
 * order: Redis executes a connection's commands one after another, so per-key order
 * holds, and an entry is reported delivered only when its XADD's reply (the entry's
 * id) has come back -- the checkpoint never runs ahead of Redis.  The sink does its
 * own I/O on the relay's thread, on a non-blocking socket the pipeline's poll() loop
 * watches (sink_pollfds()); there is no thread.
 *
 * Who does what.  hiredis 0.14 (Debian 12) has no TLS, so it is kept for what it does
 * well: it opens the non-blocking TCP socket (redisConnectNonBlock), formats commands
 * into the context's output buffer (redisAppendCommandArgv) and parses replies with the
 * context's reader (redisReaderFeed, redisGetReplyFromReader).  The bytes in between
 * move through one path of this file, struct conn and conn_io(), for redis:// and
 * rediss:// alike: plain read(2)/write(2), or OpenSSL over the same socket, its
 * handshake driven by the poll() loop like the rest (SSL_ERROR_WANT_READ / WANT_WRITE
 * become POLLIN / POLLOUT).  outbox-relay check goes the same way, waiting in its own
 * poll() until its deadline.
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
 * TLS (rediss://): the server's certificate is verified (redis.ca_file, or the
 * system's CAs) and its name or IP address checked against the URL's host; a client
 * certificate (redis.cert_file, redis.key_file) answers tls-auth-clients.  A
 * certificate that does not verify, a client certificate the server refuses or misses,
 * or a TLS handshake the server refuses stops the relay like a refused password; a
 * connection lost later is retried like a plain one.
 */
#include "sink_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config_schema.h"
#include "log.h"
#include "sink_redis.h"

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

static const struct redis_settings *settings_of(const struct relay_config *cfg)
{
    return relay_config_sink_settings(cfg, "redis");
}

/*
 * A TLS client context for k: peer verification on, against k->ca_file or the system's
 * CAs; k's client certificate when given.  Returns NULL with errstr set.  The caller
 * owns the context (SSL_CTX_free()).
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
    /*
     * Partial writes: SSL_write() returns what one record took, and the sink drops
     * that much from hiredis's output buffer.  Moving buffer: a write that waited is
     * retried from that buffer, which new commands may have reallocated meanwhile.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    ERR_clear_error();
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

        ERR_error_string_n(ERR_peek_last_error(), e, sizeof(e));
        ERR_clear_error();
        snprintf(errstr, errstr_size, "redis: cannot load %s: %s", what, e);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/*
 * A TLS session over fd for host: the certificate must name it (an IP address for an
 * address, else a DNS name, also sent as SNI).  NULL when out of memory -- never a
 * session that would skip the name check.  The caller owns it (SSL_free()).
 */
static SSL *tls_session(SSL_CTX *ctx, int fd, const char *host)
{
    unsigned char addr[16];
    SSL *ssl = SSL_new(ctx);
    bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;

    if (!ssl)
        return NULL;
    if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
            : SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1) ||
        SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/*
 * One connection to Redis: hiredis's context -- the socket, the output buffer commands
 * are formatted into, the reader replies are parsed by -- and, for rediss://, a TLS
 * session over that socket.  conn_io() moves the bytes, through OpenSSL or plain
 * read(2) and write(2): the sink's one I/O path, for the relay's poll() loop and for
 * outbox-relay check alike.  hiredis's own I/O (redisBufferRead/Write) is never used.
 */
struct conn {
    redisContext *c;
    SSL *ssl;         /* rediss:// only */
    const char *host; /* the URL's host, borrowed: for messages */
    bool ready;       /* plain: at once; TLS: once the handshake is done */
    short want;       /* poll events the transport waits for (POLLIN is always watched) */
};

/*
 * Whether a TLS alert the server sent says it refused the relay's client certificate,
 * or wanted one (tls-auth-clients yes).  Under TLS 1.3 it comes after the client's
 * side of the handshake has finished, with the first read: a refusal all the same.
 */
static bool client_cert_alert(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return false;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        return true;
    default:
        return false;
    }
}

/*
 * Why a TLS operation on x failed (err from SSL_get_error()), into why; true when it is
 * a refusal no retry cures: a certificate that does not verify, a client certificate
 * the server refuses or misses, a handshake the server refuses.  A closed or reset
 * connection is not.  Clears OpenSSL's error queue.
 */
static bool tls_failure(const struct conn *x, int err, bool handshake, char *why, size_t size)
{
    long v = SSL_get_verify_result(x->ssl);
    unsigned long e = ERR_peek_last_error();
    bool refused = false;
    char text[256];

    ERR_error_string_n(e, text, sizeof(text));
    if (err == SSL_ERROR_SSL && v != X509_V_OK &&
        (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)) {
        snprintf(why, size, "the server's certificate does not verify (%s): it is not for "
                 "\"%s\"; name the server in redis.url as its certificate does",
                 X509_verify_cert_error_string(v), x->host);
        refused = true;
    } else if (err == SSL_ERROR_SSL && v != X509_V_OK) {
        snprintf(why, size, "the server's certificate does not verify (%s): give the CA that "
                 "signed it in redis.ca_file", X509_verify_cert_error_string(v));
        refused = true;
    } else if (err == SSL_ERROR_SSL && client_cert_alert(e)) {
        if (SSL_get_certificate(x->ssl))
            snprintf(why, size, "the server refused the relay's client certificate (%s): "
                     "give one its tls-ca-cert-file trusts in redis.cert_file", text);
        else
            snprintf(why, size, "the server wants a client certificate (%s): set "
                     "redis.cert_file and redis.key_file", text);
        refused = true;
    } else if (err == SSL_ERROR_SSL) {
        bool plain = ERR_GET_LIB(e) == ERR_LIB_SSL &&
                     ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER;

        snprintf(why, size, "TLS %s failed: %s%s", handshake ? "handshake" : "connection",
                 text, plain ? " (does the server speak TLS on this port?)" : "");
        refused = handshake;
    } else if (err == SSL_ERROR_ZERO_RETURN) {
        snprintf(why, size, "the server closed the TLS connection");
    } else {
        snprintf(why, size, "TLS connection lost: %s", errno ? strerror(errno) : "end of file");
    }
    ERR_clear_error();
    return refused;
}

/*
 * Start connecting to u, without blocking (name resolution aside); over TLS with ctx
 * for rediss://.  Returns 0, or -1 with errstr set and nothing left open.  u must
 * outlive the connection.  Close it with conn_close().
 */
static int conn_open(struct conn *x, const struct redis_url *u, SSL_CTX *ctx, char *errstr,
                     size_t errstr_size)
{
    memset(x, 0, sizeof(*x));
    x->host = u->host;
    x->c = redisConnectNonBlock(u->host, u->port);
    if (!x->c || x->c->err) {
        snprintf(errstr, errstr_size, "cannot connect to redis at %s:%d: %s", u->host, u->port,
                 x->c ? x->c->errstr : "out of memory");
        if (x->c)
            redisFree(x->c);
        x->c = NULL;
        return -1;
    }
    x->ready = !u->tls;
    if (u->tls) {
        x->want = POLLOUT; /* the TCP connection first */
        if (!(x->ssl = tls_session(ctx, x->c->fd, u->host))) {
            snprintf(errstr, errstr_size, "redis: out of memory");
            redisFree(x->c);
            x->c = NULL;
            return -1;
        }
    }
    return 0;
}

/* Close x (the TLS session, then the context and its socket).  A closed x is a no-op. */
static void conn_close(struct conn *x)
{
    SSL_free(x->ssl);
    x->ssl = NULL;
    if (x->c)
        redisFree(x->c);
    x->c = NULL;
}

/* The events to poll x's socket for. */
static short conn_events(const struct conn *x)
{
    return (short)(POLLIN | x->want | (x->ready && sdslen(x->c->obuf) > 0 ? POLLOUT : 0));
}

/*
 * Send up to n bytes of buf.  Returns how many went, 0 when the socket would block
 * (*want: the event to wait for), or -1 with why set (*refused when no retry cures it).
 */
static ssize_t conn_send(struct conn *x, const char *buf, size_t n, short *want, char *why,
                         size_t size, bool *refused)
{
    ssize_t k;
    int err;

    if (!x->ssl) {
        if ((k = write(x->c->fd, buf, n)) > 0)
            return k;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            *want = POLLOUT;
            return 0;
        }
        snprintf(why, size, "%s", k < 0 ? strerror(errno) : "no progress");
        return -1;
    }
    ERR_clear_error();
    errno = 0;
    if ((k = SSL_write(x->ssl, buf, n > INT_MAX ? INT_MAX : (int)n)) > 0)
        return k;
    err = SSL_get_error(x->ssl, (int)k);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        *want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return 0;
    }
    *refused = tls_failure(x, err, false, why, size);
    return -1;
}

/* Receive up to n bytes into buf; returns as conn_send() does. */
static ssize_t conn_recv(struct conn *x, char *buf, size_t n, short *want, char *why,
                         size_t size, bool *refused)
{
    ssize_t k;
    int err;

    if (!x->ssl) {
        if ((k = read(x->c->fd, buf, n)) > 0)
            return k;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            *want = POLLIN;
            return 0;
        }
        if (k == 0)
            snprintf(why, size, "the server closed the connection");
        else
            snprintf(why, size, "%s", strerror(errno));
        return -1;
    }
    ERR_clear_error();
    errno = 0;
    if ((k = SSL_read(x->ssl, buf, n > INT_MAX ? INT_MAX : (int)n)) > 0)
        return k;
    err = SSL_get_error(x->ssl, (int)k);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        *want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return 0;
    }
    *refused = tls_failure(x, err, false, why, size);
    return -1;
}

/*
 * After a write on x failed: whether the server said why before it reset the
 * connection.  Under TLS 1.3 a server that wants a client certificate sends its alert
 * after the client's side of the handshake is done, and closes; the relay's first
 * command can then meet the reset before anything was read, although the alert waits
 * in the socket.  Reads what is there (replies are dropped: the connection goes
 * anyway); a refusal found replaces why and sets *refused.
 */
static void refusal_before_reset(struct conn *x, char *why, size_t size, bool *refused)
{
    char buf[4096], alert[512];
    bool is_refusal = false;
    short want;
    ssize_t n;

    do
        n = conn_recv(x, buf, sizeof(buf), &want, alert, sizeof(alert), &is_refusal);
    while (n > 0);
    if (n < 0 && is_refusal) {
        snprintf(why, size, "%s", alert);
        *refused = true;
    }
}

/*
 * Move what can move without blocking: finish the TLS handshake, write what hiredis
 * formatted into the context's output buffer, feed what arrived to its reader (take the
 * replies with redisGetReplyFromReader()).  Returns 0, or -1 with why set: the
 * connection must go, and *refused says no retry cures it.
 */
static int conn_io(struct conn *x, char *why, size_t size, bool *refused)
{
    redisContext *c = x->c;
    char buf[16384];
    short want = 0;
    ssize_t n;

    *refused = false;
    x->want = 0;
    if (!x->ready) {
        int rc, err;

        ERR_clear_error();
        errno = 0;
        if ((rc = SSL_do_handshake(x->ssl)) != 1) {
            err = SSL_get_error(x->ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                x->want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                return 0;
            }
            *refused = tls_failure(x, err, true, why, size);
            return -1;
        }
        x->ready = true;
    }
    while (sdslen(c->obuf) > 0) {
        n = conn_send(x, c->obuf, sdslen(c->obuf) > 65536 ? 65536 : sdslen(c->obuf), &want,
                      why, size, refused);
        if (n < 0) {
            if (x->ssl && !*refused)
                refusal_before_reset(x, why, size, refused);
            return -1;
        }
        if (n == 0) {
            x->want |= want;
            break;
        }
        sdsrange(c->obuf, n, -1);
    }
    for (;;) {
        n = conn_recv(x, buf, sizeof(buf), &want, why, size, refused);
        if (n < 0)
            return -1;
        if (n == 0) {
            x->want |= (short)(want & ~POLLIN);
            break;
        }
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
            snprintf(why, size, "cannot parse the server's reply: %s", c->reader->errstr);
            return -1;
        }
    }
    return 0;
}

struct redis_sink {
    struct sink base; /* first */
    const struct redis_settings *k;
    struct redis_url url;
    struct conn conn;  /* conn.c == NULL: not connected */
    SSL_CTX *tls_ctx;  /* rediss:// only */
    int setup_replies; /* replies of AUTH/SELECT still to come, before any XADD's */
    struct sink_fifo q; /* held messages, in the order of their XADDs */
    bool broken;
    char maxlen[24];
};

/* Start connecting and queue AUTH and SELECT.  0 or -1 with errstr. */
static int connect_start(struct redis_sink *s, char *errstr, size_t errstr_size)
{
    if (conn_open(&s->conn, &s->url, s->tls_ctx, errstr, errstr_size) < 0)
        return -1;
    s->setup_replies = 0;
    if (s->url.password[0]) {
        if (s->url.user[0])
            redisAppendCommand(s->conn.c, "AUTH %s %s", s->url.user, s->url.password);
        else
            redisAppendCommand(s->conn.c, "AUTH %s", s->url.password);
        s->setup_replies++;
    }
    if (s->url.db != 0) {
        redisAppendCommand(s->conn.c, "SELECT %d", s->url.db);
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

static void disconnect(struct redis_sink *s, const char *why)
{
    if (!s->broken && why)
        log_warn("redis at %s:%d: %s", s->url.host, s->url.port, why);
    s->broken = true;
    s->base.unreachable = true;
    fail_all(s, why ? why : "disconnected");
    conn_close(&s->conn);
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
    if (!s->conn.c && connect_start(s, errstr, errstr_size) < 0) {
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
    if (redisAppendCommandArgv(s->conn.c, argc, argv, len) != REDIS_OK) {
        free(sink_fifo_unpush(&s->q));
        snprintf(errstr, errstr_size, "redis: %s", s->conn.c->errstr);
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
 * Serve the replies the reader holds.  Returns how many; *bad is set when the reader
 * found a protocol error (its message in s->conn.c->errstr).
 */
static int serve_replies(struct redis_sink *s, bool *bad)
{
    int served = 0;
    void *reply;

    *bad = false;
    for (;;) {
        if (redisGetReplyFromReader(s->conn.c, &reply) != REDIS_OK) {
            *bad = true;
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

static int redis_poll(sink *base)
{
    struct redis_sink *s = (struct redis_sink *)base;
    int served;
    char why[512];
    bool refused, bad;

    if (!s->conn.c || s->broken)
        return 0;
    if (conn_io(&s->conn, why, sizeof(why), &refused) < 0) {
        /*
         * What was read before the connection went counts first: a -WRONGPASS can
         * arrive in the same read as the server's close, and must not be lost to it.
         */
        served = serve_replies(s, &bad);
        if (refused)
            sink_refuse(&s->base, "redis at %s:%d: %s", s->url.host, s->url.port, why);
        disconnect(s, why);
        return served;
    }
    served = serve_replies(s, &bad);
    if (bad)
        disconnect(s, s->conn.c->errstr);
    return served;
}

static size_t redis_pollfds(sink *base, struct pollfd *fds, size_t max)
{
    struct redis_sink *s = (struct redis_sink *)base;

    if (!s->conn.c || s->broken || max == 0)
        return 0;
    fds[0] = (struct pollfd){.fd = s->conn.c->fd, .events = conn_events(&s->conn)};
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

    while (s->conn.c && !s->broken && sink_fifo_len(&s->q) > 0) {
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

    conn_close(&s->conn);
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

    conn_close(&s->conn);
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

/*
 * outbox-relay check: one command on the check's connection, through conn_io() like the
 * sink's, waiting until deadline (now_ms()).  Returns the reply (the caller frees it with
 * freeReplyObject()), or NULL with why set -- the connection's failure, or no answer in
 * time.
 */
/*
 * The reply to the command appended last, waiting until deadline; as check_command().
 * *refused says a failure is one no retry cures (a certificate that does not verify).
 */
static redisReply *await_reply(struct conn *x, int64_t deadline, char *why, size_t size,
                               bool *refused)
{
    void *reply = NULL;

    for (;;) {
        struct pollfd fd;
        int64_t left;

        if (conn_io(x, why, size, refused) < 0)
            return NULL;
        if (redisGetReplyFromReader(x->c, &reply) != REDIS_OK) {
            snprintf(why, size, "%s", x->c->errstr);
            return NULL;
        }
        if (reply)
            return reply;
        if ((left = deadline - now_ms()) <= 0) {
            snprintf(why, size, "no answer in time");
            return NULL;
        }
        fd = (struct pollfd){.fd = x->c->fd, .events = conn_events(x)};
        if (poll(&fd, 1, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR) {
            snprintf(why, size, "poll: %s", strerror(errno));
            return NULL;
        }
    }
}

static redisReply *check_command(struct conn *x, int64_t deadline, char *why, size_t size,
                                 const char *fmt, ...)
{
    va_list ap;
    bool refused;

    va_start(ap, fmt);
    if (redisvAppendCommand(x->c, fmt, ap) != REDIS_OK) {
        va_end(ap);
        snprintf(why, size, "%s", x->c->errstr);
        return NULL;
    }
    va_end(ap);
    return await_reply(x, deadline, why, size, &refused);
}

/*
 * outbox-relay check: connect (TLS included: the certificate verified as the sink does),
 * authenticate, select, PING; the stream's type when the template is literal.  The
 * first command carries the connection and the handshake, so its failure says "cannot
 * connect".
 */
static int redis_check(const struct relay_config *cfg, int timeout_ms,
                       const struct sink_check_out *out)
{
    const struct redis_settings *k = settings_of(cfg);
    int64_t deadline = now_ms() + timeout_ms;
    struct redis_url u;
    struct conn x = {0};
    const char *why = NULL;
    SSL_CTX *ctx = NULL;
    redisReply *r = NULL;
    char heading[320], line[800], err[512];
    bool first = true;
    int failures = 0;

    if (parse_url(k->url, &u, &why) < 0) {
        snprintf(line, sizeof(line), "redis.url: %s", why);
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        return 1;
    }
    snprintf(heading, sizeof(heading), "redis (%s:%d, database %d%s):", u.host, u.port, u.db,
             u.tls ? ", TLS" : "");
    out->heading(out->ctx, heading);
    if ((u.tls && !(ctx = tls_context(k, line, sizeof(line)))) ||
        conn_open(&x, &u, ctx, line, sizeof(line)) < 0) {
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        SSL_CTX_free(ctx);
        return 1;
    }
    /* A failed command: what failed, or that the connection did when it was the first. */
#define FAILED(what)                                                                         \
    do {                                                                                     \
        if (r)                                                                               \
            snprintf(line, sizeof(line), "%s refused: %s", what, r->str);                    \
        else                                                                                 \
            snprintf(line, sizeof(line), "%s: %s", first ? "cannot connect" : what, err);     \
        out->line(out->ctx, SINK_CHECK_FAIL, line);                                          \
        failures++;                                                                          \
    } while (0)
    if (u.password[0]) {
        r = u.user[0] ? check_command(&x, deadline, err, sizeof(err), "AUTH %s %s", u.user,
                                      u.password)
                      : check_command(&x, deadline, err, sizeof(err), "AUTH %s", u.password);
        if (!r || r->type == REDIS_REPLY_ERROR)
            FAILED("authentication");
        first = false;
        freeReplyObject(r);
    }
    if (!failures && u.db != 0) {
        r = check_command(&x, deadline, err, sizeof(err), "SELECT %d", u.db);
        if (!r || r->type == REDIS_REPLY_ERROR)
            FAILED("SELECT");
        first = false;
        freeReplyObject(r);
    }
    if (!failures) {
        r = check_command(&x, deadline, err, sizeof(err), "PING");
        if (!r || r->type == REDIS_REPLY_ERROR)
            FAILED("PING");
        else
            out->line(out->ctx, SINK_CHECK_OK,
                      x.ssl ? "connected over TLS (certificate verified), PING answered"
                            : "connected, PING answered");
        freeReplyObject(r);
    }
    r = NULL;
    if (!failures && strchr(k->common.destination, '{') == NULL) {
        r = check_command(&x, deadline, err, sizeof(err), "TYPE %s", k->common.destination);
        if (r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "stream") != 0 &&
            strcmp(r->str, "none") != 0) {
            snprintf(line, sizeof(line), "\"%s\" holds a %s, not a stream: every event would "
                     "be set aside", k->common.destination, r->str);
            out->line(out->ctx, SINK_CHECK_FAIL, line);
            failures++;
        }
        freeReplyObject(r);
    }
#undef FAILED
    conn_close(&x);
    SSL_CTX_free(ctx);
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

/*
 * A blocking client of the redis section's server, for the inbox's Redis source
 * (inbox_redis.c): the sink's connection (TLS included), one command at a time.
 */

struct sink_redis_client {
    struct redis_url u;
    struct conn x;
    SSL_CTX *ctx;
};

void sink_redis_client_close(struct sink_redis_client *cl)
{
    if (!cl)
        return;
    conn_close(&cl->x);
    SSL_CTX_free(cl->ctx);
    free(cl);
}

struct sink_redis_client *sink_redis_client_open(const struct relay_config *cfg, int timeout_ms,
                                                 char *errstr, size_t errstr_size,
                                                 bool *refused)
{
    const struct redis_settings *k = settings_of(cfg);
    struct sink_redis_client *cl = calloc(1, sizeof(*cl));
    int64_t deadline = now_ms() + timeout_ms;
    const char *why = NULL;
    redisReply *r = NULL;
    char err[512];

    *refused = false;
    if (!cl) {
        snprintf(errstr, errstr_size, "redis: out of memory");
        return NULL;
    }
    if (!k || !k->url || !k->url[0] || parse_url(k->url, &cl->u, &why) < 0) {
        snprintf(errstr, errstr_size, "redis.url: %s", why ? why : "not set (the inbox reads "
                                                                   "the redis section's server)");
        *refused = true;
        free(cl);
        return NULL;
    }
    if ((cl->u.tls && !(cl->ctx = tls_context(k, errstr, errstr_size))) ||
        conn_open(&cl->x, &cl->u, cl->ctx, errstr, errstr_size) < 0) {
        *refused = cl->u.tls && !cl->ctx;
        sink_redis_client_close(cl);
        return NULL;
    }
    if (cl->u.password[0]) {
        r = cl->u.user[0] ? check_command(&cl->x, deadline, err, sizeof(err), "AUTH %s %s",
                                          cl->u.user, cl->u.password)
                          : check_command(&cl->x, deadline, err, sizeof(err), "AUTH %s",
                                          cl->u.password);
        if (r && r->type == REDIS_REPLY_ERROR)
            *refused = true;
    } else {
        r = check_command(&cl->x, deadline, err, sizeof(err), "PING");
    }
    if (r && r->type != REDIS_REPLY_ERROR && cl->u.db != 0) {
        freeReplyObject(r);
        r = check_command(&cl->x, deadline, err, sizeof(err), "SELECT %d", cl->u.db);
        if (r && r->type == REDIS_REPLY_ERROR)
            *refused = true;
    }
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis at %s:%d: %s", cl->u.host, cl->u.port,
                 r ? r->str : err);
        freeReplyObject(r);
        sink_redis_client_close(cl);
        return NULL;
    }
    freeReplyObject(r);
    return cl;
}

redisReply *sink_redis_client_command(struct sink_redis_client *cl, int timeout_ms, char *why,
                                      size_t size, int argc, const char **argv,
                                      const size_t *lens)
{
    bool refused;

    if (redisAppendCommandArgv(cl->x.c, argc, argv, lens) != REDIS_OK) {
        snprintf(why, size, "%s", cl->x.c->errstr);
        return NULL;
    }
    return await_reply(&cl->x, now_ms() + timeout_ms, why, size, &refused);
}

/*
 * admin.c -- a small non-blocking HTTP/1.1 server for the poll() loop, and a probe.
 *
 * Each connection lives in one slot of a fixed table and moves through three
 * states: READING the request into its fixed ADMIN_MAX_REQUEST-byte buffer, WRITING
 * the response from its output buffer (partial writes resume on POLLOUT), and
 * DRAINING -- after the response, our side is shut down for writing and whatever the
 * client still sends is read and dropped until it closes.  That last state is the
 * "lingering close" of larger servers: closing a socket with unread input makes the
 * kernel send a reset, which can destroy the response before the client read it.
 *
 * Nothing grows with the client's behaviour: the request buffer is fixed, the
 * response is whatever the relay renders (a few KiB), the number of slots is fixed,
 * and every connection has a deadline.
 *
 * Nor can clients starve the endpoint (a liveness probe must be answered while
 * anyone else holds connections open).  Three rules do it.  The listener is always
 * polled, and each turn accepts what the kernel's backlog holds (up to
 * ACCEPT_PER_TURN).  When every slot is taken, a new connection evicts one that has
 * not yet sent a whole request: the oldest silent one, or, among connections younger
 * than EVICT_GRACE_MS (a burst), the youngest -- a connection being answered is never
 * evicted, and a probe, whose request follows its connect at once, is read as soon
 * as it is accepted and again before any eviction, and is not pushed out by a burst
 * of connections that came after it, so it is served rather than evicted.  And a request must
 * arrive whole within ADMIN_REQUEST_TIMEOUT_MS of the accept (408 otherwise), so a
 * client trickling a byte a second holds a slot for a second at most.  Measured in
 * docs/architecture.md ("The admin endpoint under load").  If accept() runs out of
 * descriptors, accepting pauses briefly: the listener would otherwise stay readable
 * and spin the loop.
 *
 * Requests are parsed only once the blank line ending the header block has
 * arrived; HTTP/1.0 and 1.1 request lines are accepted, leading empty lines are
 * skipped, a bare LF is accepted as a line end (RFC 9112, section 2.2).  Bodies are
 * never read: a request that announces one is answered 413.
 */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Pending connections the kernel may queue for us. */
#define LISTEN_BACKLOG 256
/* Most connections accepted in one loop turn (the rest wait for the next turn). */
#define ACCEPT_PER_TURN 256
/*
 * A connection younger than this is evicted only by the newest-first rule (see
 * slot_for_newcomer()): time for a client's request to follow its connect.
 */
#define EVICT_GRACE_MS 100
/* After the response is sent, how long the client may keep us draining its input. */
#define LINGER_MS 1000
/* How long accepting pauses after running out of descriptors. */
#define ACCEPT_PAUSE_MS 100
/* A buffer larger than this is freed after use instead of being kept for the next. */
#define OUT_KEEP_CAP (64 * 1024)

#define DEFAULT_CONTENT_TYPE "text/plain; charset=utf-8"

enum conn_state {
    CONN_FREE,
    CONN_READING,
    CONN_WRITING,
    CONN_DRAINING,
};

struct admin_conn {
    int fd;
    enum conn_state state;
    int64_t deadline_ms;            /* CLOCK_MONOTONIC */
    int64_t accepted_ms;            /* when it was accepted: the oldest reader is evicted */
    size_t inlen;                   /* bytes of request in in[] */
    size_t scanned;                 /* in[0..scanned) is whole lines already looked at */
    bool have_line;                 /* the request line is among them */
    char in[ADMIN_MAX_REQUEST + 1]; /* +1: room for a NUL while parsing */
    struct jbuf out;                /* the response */
    size_t outoff;                  /* bytes of out already sent */
};

struct admin_server {
    int fd; /* the listener */
    int port;
    int timeout_ms;
    int request_timeout_ms;         /* from accept to a whole request */
    uint64_t evicted;               /* connections closed to make room for a newer one */
    int64_t accept_paused_until_ms; /* 0: not paused */
    size_t nconns;                  /* slots not CONN_FREE */
    struct jbuf body;               /* scratch for the render callback */
    /* What each entry of the last admin_pollfds() was: -1 the listener, else a slot. */
    int polled[ADMIN_MAX_POLLFDS];
    int polled_fd[ADMIN_MAX_POLLFDS];
    size_t npolled;
    struct admin_conn conns[ADMIN_MAX_CONNS];
};

static struct admin_conn *slot_for_newcomer(admin_server *a, bool evict, admin_render_fn fn,
                                            void *opaque);

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

/*
 * Split "host:port" / "[v6]:port" into host (without brackets; may be empty) and
 * port (decimal digits, at most 65535).  Returns 0, or -1 with errstr set.
 */
static int split_listen(const char *listen, char *host, size_t hostsz, char *port, size_t portsz,
                        char *errstr, size_t errsz)
{
    const char *colon, *p;
    size_t hlen;
    long v = 0;

    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');

        if (!close || close[1] != ':') {
            snprintf(errstr, errsz, "invalid listen address \"%s\": expected \"[ipv6]:port\"",
                     listen);
            return -1;
        }
        hlen = (size_t)(close - listen - 1);
        if (hlen == 0) {
            snprintf(errstr, errsz, "invalid listen address \"%s\": empty IPv6 address", listen);
            return -1;
        }
        p = listen + 1;
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            snprintf(errstr, errsz, "invalid listen address \"%s\": expected \"host:port\"",
                     listen);
            return -1;
        }
        if (memchr(listen, ':', (size_t)(colon - listen))) {
            snprintf(errstr, errsz,
                     "invalid listen address \"%s\": an IPv6 address must be in brackets, "
                     "as in \"[::1]:9187\"",
                     listen);
            return -1;
        }
        hlen = (size_t)(colon - listen);
        p = listen;
    }
    if (hlen >= hostsz) {
        snprintf(errstr, errsz, "invalid listen address \"%s\": host name too long", listen);
        return -1;
    }
    memcpy(host, p, hlen);
    host[hlen] = '\0';

    p = colon + 1;
    if (*p == '\0') {
        snprintf(errstr, errsz, "invalid listen address \"%s\": expected a port number after \":\"",
                 listen);
        return -1;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            snprintf(errstr, errsz, "invalid listen address \"%s\": port is not a number", listen);
            return -1;
        }
        if (v <= 65535) /* stop counting past the range: no overflow however long */
            v = v * 10 + (*p - '0');
    }
    if (v > 65535) {
        snprintf(errstr, errsz, "invalid listen address \"%s\": port \"%s\" is out of range",
                 listen, colon + 1);
        return -1;
    }
    if (portsz < 6) {
        snprintf(errstr, errsz, "invalid listen address \"%s\"", listen);
        return -1;
    }
    snprintf(port, portsz, "%hu", (unsigned short)v);
    return 0;
}

/* Bind and listen on one resolved address; returns the socket or -1 (errno set). */
static int listen_on(const struct addrinfo *ai)
{
    int fd, one = 1, saved;

    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    /* Rebinding while old connections sit in TIME_WAIT; a live listener still conflicts. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        set_nonblock_cloexec(fd) < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

admin_server *admin_open(const char *listen, char *errstr, size_t errstr_size)
{
    char host[256], port[8];
    struct addrinfo hints, *res = NULL, *ai;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    admin_server *a = NULL;
    int fd = -1, rc, pass, err = 0;
    size_t i;

    if (split_listen(listen, host, sizeof(host), port, sizeof(port), errstr, errstr_size) < 0)
        return NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(errstr, errstr_size, "could not resolve listen address \"%s\": %s", listen,
                 gai_strerror(rc));
        return NULL;
    }
    /*
     * One listener.  IPv4 first, so that "localhost:port" and ":port" mean the same
     * thing on every host whatever the resolver's order; "[::1]" or "[::]" ask for
     * IPv6 explicitly.
     */
    for (pass = 0; pass < 2 && fd < 0; pass++) {
        for (ai = res; ai && fd < 0; ai = ai->ai_next) {
            if ((ai->ai_family == AF_INET) != (pass == 0))
                continue;
            fd = listen_on(ai);
            if (fd < 0)
                err = errno;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "could not listen on \"%s\": %s", listen,
                 strerror(err ? err : EADDRNOTAVAIL));
        return NULL;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        snprintf(errstr, errstr_size, "could not read the address of \"%s\": %s", listen,
                 strerror(errno));
        close(fd);
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(errstr, errstr_size, "out of memory");
        close(fd);
        return NULL;
    }
    a->fd = fd;
    a->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    a->timeout_ms = ADMIN_DEFAULT_TIMEOUT_MS;
    a->request_timeout_ms = ADMIN_REQUEST_TIMEOUT_MS;
    jbuf_init(&a->body);
    for (i = 0; i < ADMIN_MAX_CONNS; i++) {
        a->conns[i].fd = -1;
        a->conns[i].state = CONN_FREE;
        jbuf_init(&a->conns[i].out);
    }
    return a;
}

static void conn_close(admin_server *a, struct admin_conn *c)
{
    if (c->state == CONN_FREE)
        return;
    close(c->fd);
    c->fd = -1;
    c->state = CONN_FREE;
    c->inlen = 0;
    c->outoff = 0;
    /* Keep a typical response's capacity for the next client; drop an unusual one. */
    if (c->out.cap > OUT_KEEP_CAP)
        jbuf_free(&c->out);
    else
        jbuf_reset(&c->out);
    a->nconns--;
}

void admin_close(admin_server *a)
{
    size_t i;

    if (!a)
        return;
    for (i = 0; i < ADMIN_MAX_CONNS; i++) {
        conn_close(a, &a->conns[i]);
        jbuf_free(&a->conns[i].out);
    }
    jbuf_free(&a->body);
    close(a->fd);
    free(a);
}

int admin_port(const admin_server *a)
{
    return a->port;
}

void admin_set_timeout(admin_server *a, int timeout_ms)
{
    a->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    if (a->request_timeout_ms > a->timeout_ms)
        a->request_timeout_ms = a->timeout_ms;
}

void admin_set_request_timeout(admin_server *a, int timeout_ms)
{
    a->request_timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
}

uint64_t admin_evicted(const admin_server *a)
{
    return a->evicted;
}

size_t admin_pollfds(admin_server *a, struct pollfd *fds, size_t max)
{
    size_t n = 0, i;

    if (a->accept_paused_until_ms && now_ms() >= a->accept_paused_until_ms)
        a->accept_paused_until_ms = 0;
    /*
     * Even with every slot taken, as long as one holds a connection that has not sent
     * its request: a newcomer evicts the oldest such.
     */
    if (n < max && !a->accept_paused_until_ms && slot_for_newcomer(a, false, NULL, NULL)) {
        fds[n] = (struct pollfd){.fd = a->fd, .events = POLLIN};
        a->polled[n] = -1;
        a->polled_fd[n] = a->fd;
        n++;
    }
    for (i = 0; i < ADMIN_MAX_CONNS && n < max; i++) {
        struct admin_conn *c = &a->conns[i];

        if (c->state == CONN_FREE)
            continue;
        fds[n] =
            (struct pollfd){.fd = c->fd, .events = c->state == CONN_WRITING ? POLLOUT : POLLIN};
        a->polled[n] = (int)i;
        a->polled_fd[n] = c->fd;
        n++;
    }
    a->npolled = n;
    return n;
}

int admin_timeout_ms(const admin_server *a)
{
    int64_t now = now_ms(), first = -1;
    size_t i;

    if (a->accept_paused_until_ms)
        first = a->accept_paused_until_ms;
    for (i = 0; i < ADMIN_MAX_CONNS; i++)
        if (a->conns[i].state != CONN_FREE && (first < 0 || a->conns[i].deadline_ms < first))
            first = a->conns[i].deadline_ms;
    if (first < 0)
        return -1;
    if (first <= now)
        return 0;
    return first - now > INT32_MAX ? INT32_MAX : (int)(first - now);
}

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {503, "Service Unavailable"},
};

/* The reason phrase of a status line (clients ignore it; people read it). */
static const char *reason_phrase(int status)
{
    size_t i;

    for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return status < 300   ? "OK"
           : status < 400 ? "Redirect"
           : status < 500 ? "Client Error"
                          : "Server Error";
}

/*
 * Try to send the rest of c->out.  When all of it is gone, shut our side down and
 * start draining; on an error the connection is closed.
 */
static void conn_write(admin_server *a, struct admin_conn *c)
{
    while (c->outoff < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(a, c);
            return; /* wait for POLLOUT */
        }
        c->outoff += (size_t)w;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_DRAINING;
    if (c->deadline_ms > now_ms() + LINGER_MS)
        c->deadline_ms = now_ms() + LINGER_MS;
}

/*
 * Queue a response of status with body[0..bodylen) (the body is not sent for HEAD)
 * and start writing it.  extra is more header lines, each ending in CRLF, or NULL.
 */
static void respond(admin_server *a, struct admin_conn *c, int status, const char *ctype,
                    const char *body, size_t bodylen, bool head, const char *extra)
{
    jbuf_reset(&c->out);
    jbuf_printf(&c->out,
                "HTTP/1.1 %d %s\r\n"
                "Content-Type: %s\r\n"
                "Content-Length: %zu\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n"
                "%s"
                "\r\n",
                status, reason_phrase(status), ctype, bodylen, extra ? extra : "");
    if (!head)
        jbuf_put(&c->out, body, bodylen);
    if (c->out.oom) {
        conn_close(a, c); /* not even the error page fits: give up on this client */
        return;
    }
    c->outoff = 0;
    c->state = CONN_WRITING;
    /* A whole request arrived: the client now has the full timeout to read the answer. */
    c->deadline_ms = c->accepted_ms + a->timeout_ms;
    conn_write(a, c);
}

static void respond_error(admin_server *a, struct admin_conn *c, int status, bool head)
{
    char body[96];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, reason_phrase(status));

    respond(a, c, status, DEFAULT_CONTENT_TYPE, body, (size_t)n, head,
            status == 405 ? "Allow: GET, HEAD\r\n" : NULL);
}

/* RFC 9110 tchar: the characters of a method or a header field name. */
static bool is_tchar(char ch)
{
    unsigned char u = (unsigned char)ch;

    if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z'))
        return true;
    return u != 0 && strchr("!#$%&'*+-.^_`|~", u) != NULL;
}

/*
 * Find the end of the header block in c->in[0..inlen): returns the offset just past
 * the blank line, or 0 when it has not arrived yet.  Resumes where the previous call
 * stopped (at the first incomplete line), so a client sending one byte at a time
 * costs linear time, not quadratic.  Sets c->have_line once the request line is
 * complete (to choose between 414 and 431 when the buffer fills up).
 */
static size_t find_header_end(struct admin_conn *c)
{
    for (;;) {
        const char *nl = memchr(c->in + c->scanned, '\n', c->inlen - c->scanned);
        size_t linelen;

        if (!nl)
            return 0;
        linelen = (size_t)(nl - (c->in + c->scanned));
        if (linelen > 0 && nl[-1] == '\r')
            linelen--;
        c->scanned = (size_t)(nl - c->in) + 1;
        if (linelen == 0) {
            if (c->have_line)
                return c->scanned;
            continue; /* an empty line before the request line is ignored */
        }
        c->have_line = true;
    }
}

/*
 * Parse the complete request in buf[0..end) (end is past the blank line; buf may be
 * modified, and buf[end] is writable).  On success returns 0 with *path pointing
 * into buf (NUL-terminated) and *head set; otherwise the HTTP status to answer.
 */
static int parse_request(char *buf, size_t end, char **path, bool *head)
{
    char *p = buf, *lim = buf + end, *line_end, *sp1, *sp2, *target, *q;
    size_t mlen;

    *head = false;
    if (memchr(buf, '\0', end))
        return 400;
    buf[end] = '\0';
    /* Skip empty lines (CRLF or LF) before the request line, as find_header_end() does. */
    while (*p == '\n' || (p[0] == '\r' && p[1] == '\n'))
        p += *p == '\n' ? 1 : 2;

    /* Request line: method SP request-target SP HTTP-version. */
    line_end = strchr(p, '\n');
    if (!line_end)
        return 400;
    *line_end = '\0';
    if (line_end > p && line_end[-1] == '\r')
        line_end[-1] = '\0';
    sp1 = strchr(p, ' ');
    if (!sp1)
        return 400;
    sp2 = strchr(sp1 + 1, ' ');
    if (!sp2 || sp2 == sp1 + 1)
        return 400;
    mlen = (size_t)(sp1 - p);
    for (q = p; q < sp1; q++)
        if (!is_tchar(*q))
            return 400;
    if (mlen == 0)
        return 400;
    if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp2[8] < '0' || sp2[8] > '9' || sp2[9] != '\0')
        return 400;
    target = sp1 + 1;
    *sp2 = '\0';
    for (q = target; *q; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q == 0x7f)
            return 400;

    /* Headers: only whether a body is announced matters. */
    for (q = line_end + 1; q < lim;) {
        char *nl = strchr(q, '\n'), *colon, *v, *e;
        size_t nlen;

        if (!nl)
            break;
        *nl = '\0';
        if (nl > q && nl[-1] == '\r')
            nl[-1] = '\0';
        if (*q == '\0')
            break; /* the blank line */
        if (*q == ' ' || *q == '\t')
            return 400; /* obsolete line folding (RFC 9112, 5.2) */
        colon = strchr(q, ':');
        if (!colon || colon == q)
            return 400;
        for (e = q; e < colon; e++)
            if (!is_tchar(*e))
                return 400; /* includes whitespace before the colon */
        nlen = (size_t)(colon - q);
        v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (nlen == 17 && strncasecmp(q, "transfer-encoding", 17) == 0)
            return 413;
        if (nlen == 14 && strncasecmp(q, "content-length", 14) == 0) {
            bool nonzero = false, digits = false;

            for (e = v; *e >= '0' && *e <= '9'; e++) {
                digits = true;
                nonzero |= *e != '0';
            }
            while (*e == ' ' || *e == '\t')
                e++;
            if (!digits || *e != '\0')
                return 400;
            if (nonzero)
                return 413;
        }
        q = nl + 1;
    }

    /* Method: known but unsupported ones and unknown ones alike get 405. */
    if (mlen == 4 && memcmp(p, "HEAD", 4) == 0)
        *head = true;
    else if (!(mlen == 3 && memcmp(p, "GET", 3) == 0))
        return 405;

    /* origin-form "/path?query", or absolute-form "http://host/path?query". */
    if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
        char *slash = strchr(strchr(target, ':') + 3, '/');

        if (!slash) {
            target[0] = '/';
            target[1] = '\0';
        } else {
            target = slash;
        }
    }
    if (target[0] != '/')
        return 400;
    target[strcspn(target, "?#")] = '\0';
    *path = target;
    return 0;
}

/* A complete request is in c->in[0..end): parse, render, respond. */
static void conn_serve(admin_server *a, struct admin_conn *c, size_t end, admin_render_fn fn,
                       void *opaque)
{
    const char *ctype = NULL;
    char *path = NULL;
    bool head = false;
    int status = parse_request(c->in, end, &path, &head);

    if (status != 0) {
        respond_error(a, c, status, head);
        return;
    }
    jbuf_reset(&a->body);
    status = fn ? fn(opaque, path, &a->body, &ctype) : 0;
    if (status == 0) {
        respond_error(a, c, 404, head);
        return;
    }
    if (status < 100 || status > 599 || a->body.oom) {
        respond_error(a, c, 500, head);
        return;
    }
    /* A content type that would break the header block is not trusted. */
    if (!ctype || strpbrk(ctype, "\r\n"))
        ctype = DEFAULT_CONTENT_TYPE;
    respond(a, c, status, ctype, a->body.data ? a->body.data : "", a->body.len, head, NULL);
    if (a->body.cap > OUT_KEEP_CAP)
        jbuf_free(&a->body); /* an unusual size: do not keep it for every later request */
}

/* Read what the client sent; serve the request once its header block is complete. */
static void conn_read(admin_server *a, struct admin_conn *c, admin_render_fn fn, void *opaque)
{
    for (;;) {
        size_t room = ADMIN_MAX_REQUEST - c->inlen, end;
        ssize_t r;

        if (room == 0) {
            respond_error(a, c, c->have_line ? 431 : 414, false);
            return;
        }
        r = recv(c->fd, c->in + c->inlen, room, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            /* The client hung up (or failed) before finishing its request. */
            conn_close(a, c);
            return;
        }
        c->inlen += (size_t)r;
        end = find_header_end(c);
        if (end) {
            conn_serve(a, c, end, fn, opaque);
            return;
        }
    }
}

/* After the response: read and drop until the client closes. */
static void conn_drain(admin_server *a, struct admin_conn *c)
{
    char scratch[1024];

    for (;;) {
        ssize_t r = recv(c->fd, scratch, sizeof(scratch), 0);

        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(a, c);
        return;
    }
}

/* What a connection gets that did not send its request in time (or was evicted). */
static const char timeout_response[] = "HTTP/1.1 408 Request Timeout\r\n"
                                       "Content-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";

/*
 * The slot for a new connection: a free one, or else (with evict) one holding a
 * connection that has not sent a whole request, which is answered 408 and closed.
 * NULL when every slot is being answered or drained: they end within their
 * deadlines, and newcomers wait in the backlog meanwhile.
 */
static struct admin_conn *slot_for_newcomer(admin_server *a, bool evict, admin_render_fn fn,
                                            void *opaque)
{
    struct admin_conn *victim = NULL;
    int64_t now = now_ms();
    int best = -1;
    size_t i;

    for (i = 0; i < ADMIN_MAX_CONNS; i++) {
        struct admin_conn *c = &a->conns[i];
        int64_t age;
        int rank;

        if (c->state == CONN_FREE)
            return c;
        /*
         * Before choosing a victim, read what each reader has sent: a probe whose
         * request has arrived is served (and so no longer a candidate), not evicted.
         */
        if (evict && c->state == CONN_READING)
            conn_read(a, c, fn, opaque);
        if (c->state == CONN_FREE)
            return c;
        if (c->state != CONN_READING)
            continue;
        /*
         * Who goes: past the grace period, the oldest silent connection, then the
         * oldest with part of a request; within it -- a burst of newcomers -- the
         * youngest, so that a connection accepted a moment before the burst (a probe
         * whose request is on its way) is not pushed out by the burst.
         */
        age = now - c->accepted_ms;
        if (age >= EVICT_GRACE_MS)
            rank = c->inlen == 0 ? 3 : 2;
        else
            rank = c->inlen == 0 ? 1 : 0;
        if (!victim || rank > best ||
            (rank == best && (rank >= 2 ? c->accepted_ms < victim->accepted_ms
                                        : c->accepted_ms >= victim->accepted_ms))) {
            victim = c;
            best = rank;
        }
    }
    if (victim && evict) {
        /* The same answer as a deadline gives: one try, never waiting. */
        (void)send(victim->fd, timeout_response, sizeof(timeout_response) - 1,
                   MSG_NOSIGNAL | MSG_DONTWAIT);
        conn_close(a, victim);
        a->evicted++;
    }
    return victim;
}

static void accept_all(admin_server *a, admin_render_fn fn, void *opaque)
{
    for (int k = 0; k < ACCEPT_PER_TURN && slot_for_newcomer(a, false, NULL, NULL); k++) {
        struct admin_conn *c;
        int fd = accept(a->fd, NULL, NULL);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                a->accept_paused_until_ms = now_ms() + ACCEPT_PAUSE_MS;
            return;
        }
        if (set_nonblock_cloexec(fd) < 0 || !(c = slot_for_newcomer(a, true, fn, opaque))) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->state = CONN_READING;
        c->inlen = 0;
        c->scanned = 0;
        c->have_line = false;
        c->outoff = 0;
        c->accepted_ms = now_ms();
        c->deadline_ms = c->accepted_ms + a->request_timeout_ms;
        a->nconns++;
        /*
         * Read at once: a client that sends its request with its connect (every probe)
         * is answered before a later arrival in this same loop could evict it.
         */
        conn_read(a, c, fn, opaque);
    }
}

/* Close connections past their deadline; a request still incomplete gets 408 if it can. */
static void enforce_deadlines(admin_server *a)
{
    int64_t now = now_ms();
    size_t i;

    for (i = 0; i < ADMIN_MAX_CONNS; i++) {
        struct admin_conn *c = &a->conns[i];

        if (c->state == CONN_FREE || now < c->deadline_ms)
            continue;
        if (c->state == CONN_READING) {
            /* One try, never waiting: the client has had its time. */
            (void)send(c->fd, timeout_response, sizeof(timeout_response) - 1,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        conn_close(a, c);
    }
}

void admin_handle(admin_server *a, const struct pollfd *fds, size_t n, admin_render_fn fn,
                  void *opaque)
{
    bool accept_ready = false;
    size_t i;

    if (n > a->npolled)
        n = a->npolled;
    for (i = 0; i < n; i++) {
        struct admin_conn *c;

        if (fds[i].fd != a->polled_fd[i] || !fds[i].revents)
            continue;
        if (a->polled[i] < 0) {
            accept_ready = true;
            continue;
        }
        c = &a->conns[a->polled[i]];
        if (c->fd != fds[i].fd)
            continue; /* closed since */
        switch (c->state) {
        case CONN_READING:
            conn_read(a, c, fn, opaque);
            break;
        case CONN_WRITING:
            conn_write(a, c);
            break;
        case CONN_DRAINING:
            conn_drain(a, c);
            break;
        case CONN_FREE:
            break;
        }
    }
    a->npolled = 0; /* the entries are spent: a second call must not act on them again */
    /* Accept last, so that a slot freed above is not confused with its new tenant. */
    if (accept_ready)
        accept_all(a, fn, opaque);
    enforce_deadlines(a);
}

/* ---- admin_probe: one blocking GET ---- */

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();

    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Wait until fd is ready for events or the deadline passes; 1, 0 (timeout) or -1. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, remaining_ms(deadline));

        if (rc < 0 && errno == EINTR)
            continue;
        return rc < 0 ? -1 : rc;
    }
}

/* Connect to one address before the deadline; the socket, or -1 with errno set. */
static int probe_connect(const struct addrinfo *ai, int64_t deadline)
{
    int fd, err = 0, rc;
    socklen_t len = sizeof(err);

    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (set_nonblock_cloexec(fd) < 0)
        goto fail;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS)
        goto fail;
    rc = wait_fd(fd, POLLOUT, deadline);
    if (rc <= 0) {
        if (rc == 0)
            errno = ETIMEDOUT;
        goto fail;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        goto fail;
    if (err != 0) {
        errno = err;
        goto fail;
    }
    return fd;
fail:
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

int admin_probe(const char *listen, const char *path, int timeout_ms, char *errstr,
                size_t errstr_size)
{
    char host[256], port[8], req[1024], resp[512];
    const char *connect_host;
    struct addrinfo hints, *res = NULL, *ai;
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int fd = -1, rc, status = -1, err = 0, reqlen;
    size_t sent = 0, got = 0;
    bool v6;

    if (split_listen(listen, host, sizeof(host), port, sizeof(port), errstr, errstr_size) < 0)
        return -1;
    if (path[0] != '/' || strpbrk(path, " \t\r\n")) {
        snprintf(errstr, errstr_size,
                 "invalid path \"%s\": must start with \"/\" and contain "
                 "no whitespace",
                 path);
        return -1;
    }
    /* A wildcard listener is reachable on the loopback address of its family. */
    connect_host = host;
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
        connect_host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        connect_host = "::1";
    v6 = strchr(connect_host, ':') != NULL;
    reqlen = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: outbox-relay\r\n"
                      "Connection: close\r\n\r\n",
                      path, v6 ? "[" : "", connect_host, v6 ? "]" : "", port);
    if (reqlen < 0 || (size_t)reqlen >= sizeof(req)) {
        snprintf(errstr, errstr_size, "path \"%s\" is too long", path);
        return -1;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(connect_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(errstr, errstr_size, "could not resolve \"%s\": %s", listen, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = probe_connect(ai, deadline);
        if (fd < 0)
            err = errno;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "could not connect to \"%s\": %s", listen,
                 strerror(err ? err : EADDRNOTAVAIL));
        return -1;
    }

    while (sent < (size_t)reqlen) {
        ssize_t w = send(fd, req + sent, (size_t)reqlen - sent, MSG_NOSIGNAL);

        if (w >= 0) {
            sent += (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_fd(fd, POLLOUT, deadline) <= 0) {
            err = errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno;
            snprintf(errstr, errstr_size, "could not send request to \"%s\": %s", listen,
                     strerror(err));
            goto out;
        }
    }

    /* Only the status line matters: "HTTP/1.x NNN ...". */
    while (got < sizeof(resp) - 1 && !memchr(resp, '\n', got)) {
        ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);

        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            snprintf(errstr, errstr_size, "could not read response from \"%s\": %s", listen,
                     strerror(errno));
            goto out;
        }
        rc = wait_fd(fd, POLLIN, deadline);
        if (rc <= 0) {
            snprintf(errstr, errstr_size, "no response from \"%s\" within %d ms", listen,
                     timeout_ms);
            goto out;
        }
    }
    resp[got] = '\0';
    if (got >= 12 && strncmp(resp, "HTTP/1.", 7) == 0 && resp[8] == ' ' && resp[9] >= '1' &&
        resp[9] <= '5' && resp[10] >= '0' && resp[10] <= '9' && resp[11] >= '0' &&
        resp[11] <= '9' && (got == 12 || resp[12] == ' ' || resp[12] == '\r' || resp[12] == '\n'))
        status = (resp[9] - '0') * 100 + (resp[10] - '0') * 10 + (resp[11] - '0');
    else
        snprintf(errstr, errstr_size, "invalid response from \"%s\"", listen);
out:
    close(fd);
    return status;
}

/*
 * test_admin.c -- tests for the admin HTTP endpoint (relay/admin.c) over real
 * loopback sockets.
 *
 * The server runs inside the test's own poll loop (serve_turn()), exactly as the
 * relay would run it, while the test plays one or many clients on non-blocking
 * sockets.  Checked: the callback's status, content type and body reach the client
 * with a correct Content-Length and "Connection: close"; HEAD; the module's own
 * 400/404/405/408/413/414/431 answers; that a stalled client neither delays another
 * nor outlives its deadline; that more clients than connection slots are all
 * served; that a large response to a slow reader never blocks the loop; that a
 * client hanging up mid-response costs nothing (no SIGPIPE, the slot is freed);
 * that bytes sent after the request do not turn the close into a reset; and
 * admin_probe(), which blocks and therefore runs in a forked child while the parent
 * serves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "admin.h"

#define BIG_SIZE (4 * 1024 * 1024)

/* What the render callback saw and how it answers. */
struct app {
    int calls;
    char last_path[256];
    bool ready;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int render(void *opaque, const char *path, struct jbuf *body, const char **content_type)
{
    struct app *app = opaque;

    app->calls++;
    snprintf(app->last_path, sizeof(app->last_path), "%s", path);
    if (strcmp(path, "/metrics") == 0) {
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        jbuf_puts(body, "outbox_relay_ready 1\n");
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        jbuf_puts(body, "ok\n");
        return 200;
    }
    if (strcmp(path, "/readyz") == 0) {
        jbuf_puts(body, app->ready ? "ready\n" : "not ready\n");
        return app->ready ? 200 : 503;
    }
    if (strcmp(path, "/big") == 0) {
        static char big[BIG_SIZE];
        size_t i;

        if (!big[0])
            for (i = 0; i < BIG_SIZE; i++)
                big[i] = (char)('a' + i % 26);
        *content_type = "application/octet-stream";
        jbuf_put(body, big, BIG_SIZE);
        return 200;
    }
    if (strcmp(path, "/evil") == 0) {
        *content_type = "text/plain\r\nSet-Cookie: x=1";
        jbuf_puts(body, "x");
        return 200;
    }
    return 0;
}

static struct app app;
static int64_t longest_turn_ms;

/* One turn of the loop: poll (at most wait_ms) and let the server handle what happened. */
static void serve_turn(admin_server *a, int wait_ms)
{
    struct pollfd fds[ADMIN_MAX_POLLFDS];
    size_t n = admin_pollfds(a, fds, ADMIN_MAX_POLLFDS);
    int t = admin_timeout_ms(a);
    int64_t start;

    assert_true(n <= ADMIN_MAX_POLLFDS);
    if (t < 0 || t > wait_ms)
        t = wait_ms;
    assert_true(poll(fds, (nfds_t)n, t) >= 0);
    start = now_ms();
    admin_handle(a, fds, n, render, &app);
    if (now_ms() - start > longest_turn_ms)
        longest_turn_ms = now_ms() - start;
}

static admin_server *open_server(void)
{
    char err[256];
    admin_server *a = admin_open("127.0.0.1:0", err, sizeof(err));

    if (!a)
        fail_msg("admin_open: %s", err);
    memset(&app, 0, sizeof(app));
    longest_turn_ms = 0;
    return a;
}

/* A client connected to the server (the kernel completes the handshake from the backlog). */
static int client(admin_server *a)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)admin_port(a));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* A response being collected by a client. */
struct resp {
    int fd;
    struct jbuf data;
    bool eof;
    bool reset;
};

/* Read what is there; returns true once the server closed the connection. */
static bool resp_read(struct resp *r)
{
    char buf[65536];

    while (!r->eof) {
        ssize_t n = recv(r->fd, buf, sizeof(buf), 0);

        if (n > 0) {
            jbuf_put(&r->data, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n < 0 && errno == ECONNRESET)
            r->reset = true;
        r->eof = true;
    }
    return r->eof;
}

/* Serve until every response is complete (server closed), within 5 s. */
static void collect(admin_server *a, struct resp *rs, size_t n)
{
    int64_t deadline = now_ms() + 5000;

    for (;;) {
        size_t i, done = 0;

        for (i = 0; i < n; i++)
            done += resp_read(&rs[i]);
        if (done == n)
            return;
        assert_true(now_ms() < deadline);
        serve_turn(a, 10);
    }
}

/* Serve until the server holds no connection, within 2 s. */
static void settle(admin_server *a)
{
    int64_t deadline = now_ms() + 2000;

    while (admin_timeout_ms(a) != -1) {
        assert_true(now_ms() < deadline);
        serve_turn(a, 10);
    }
}

/* Send req on a new connection and return the whole response (caller frees). */
static char *exchange(admin_server *a, const char *req, size_t len)
{
    struct resp r = {.fd = client(a)};
    char *s;

    jbuf_init(&r.data);
    send_all(r.fd, req, len);
    collect(a, &r, 1);
    assert_false(r.reset);
    close(r.fd);
    jbuf_putc(&r.data, '\0'); /* an empty response is still a string */
    s = r.data.data;
    return s;
}

#define EXCHANGE(a, lit) exchange(a, lit, sizeof(lit) - 1)

static int status_of(const char *resp)
{
    int status = -1;

    assert_int_equal(sscanf(resp, "HTTP/1.1 %d ", &status), 1);
    return status;
}

/* The body after the header block; checks that Content-Length says its length. */
static const char *body_of(const char *resp, size_t *content_length)
{
    const char *end = strstr(resp, "\r\n\r\n"), *cl = strstr(resp, "\r\nContent-Length: ");

    assert_non_null(end);
    assert_non_null(cl);
    assert_true(cl < end);
    *content_length = strtoul(cl + 18, NULL, 10);
    return end + 4;
}

static bool has_header(const char *resp, const char *line)
{
    const char *end = strstr(resp, "\r\n\r\n"), *p = strstr(resp, line);

    return p && end && p < end && p[-1] == '\n' && p[strlen(line)] == '\r';
}

static void test_get_ok(void **state)
{
    admin_server *a = open_server();
    size_t cl;
    char *r;
    const char *body;

    (void)state;
    r = EXCHANGE(a, "GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n");
    assert_int_equal(status_of(r), 200);
    assert_true(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_true(has_header(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert_true(has_header(r, "Connection: close"));
    body = body_of(r, &cl);
    assert_string_equal(body, "outbox_relay_ready 1\n");
    assert_int_equal(cl, strlen(body));
    assert_int_equal(app.calls, 1);
    free(r);

    /* Query and fragment are not part of the path; the default content type. */
    r = EXCHANGE(a, "GET /healthz?verbose=1 HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(app.last_path, "/healthz");
    assert_true(has_header(r, "Content-Type: text/plain; charset=utf-8"));
    free(r);

    /* The callback's own status, bare LF line ends, leading empty line, absolute form. */
    r = EXCHANGE(a, "\r\nGET http://localhost:9187/readyz HTTP/1.1\nHost: x\n\n");
    assert_int_equal(status_of(r), 503);
    assert_string_equal(body_of(r, &cl), "not ready\n");
    assert_string_equal(app.last_path, "/readyz");
    free(r);

    /* A content type that would inject a header is replaced by the default. */
    r = EXCHANGE(a, "GET /evil HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(r), 200);
    assert_null(strstr(r, "Set-Cookie"));
    free(r);

    /* After all of them, no connection is left behind (the last one closes soon). */
    settle(a);
    admin_close(a);
}

static void test_head(void **state)
{
    admin_server *a = open_server();
    size_t cl;
    char *r;

    (void)state;
    r = EXCHANGE(a, "HEAD /healthz HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r, &cl), ""); /* no body ... */
    assert_int_equal(cl, 3);                  /* ... but the length of the GET's */
    free(r);

    r = EXCHANGE(a, "HEAD /nope HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(r), 404);
    assert_string_equal(body_of(r, &cl), "");
    free(r);
    admin_close(a);
}

static void test_errors(void **state)
{
    admin_server *a = open_server();
    size_t cl;
    char *r;

    (void)state;
    r = EXCHANGE(a, "GET /nope HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(r), 404);
    assert_string_equal(body_of(r, &cl), "404 Not Found\n");
    free(r);

    r = EXCHANGE(a, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(status_of(r), 405);
    assert_true(has_header(r, "Allow: GET, HEAD"));
    free(r);
    r = EXCHANGE(a, "DELETE /metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(r), 405);
    free(r);
    r = EXCHANGE(a, "get /metrics HTTP/1.1\r\n\r\n"); /* methods are case-sensitive */
    assert_int_equal(status_of(r), 405);
    free(r);

    /* Garbage of several kinds: 400, and the callback is never asked. */
    app.calls = 0;
    r = EXCHANGE(a, "hello\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    r = EXCHANGE(a, "GET /metrics\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    r = EXCHANGE(a, "GET /metrics HTTP/2.0\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    r = EXCHANGE(a, "GET metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    r = EXCHANGE(a, "GET  /metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    r = EXCHANGE(a, "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    r = EXCHANGE(a, "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    r = EXCHANGE(a, "GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    r = EXCHANGE(a, "GET /metrics HTTP/1.1\r\nContent-Length: abc\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    r = EXCHANGE(a, "GET /me\0trics HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(r), 400);
    free(r);
    assert_int_equal(app.calls, 0);

    /* Bodies are not read. */
    r = EXCHANGE(a, "GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(status_of(r), 413);
    free(r);
    r = EXCHANGE(a, "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_int_equal(status_of(r), 413);
    free(r);
    r = EXCHANGE(a, "GET /metrics HTTP/1.1\r\ncontent-length: 000\r\n\r\n");
    assert_int_equal(status_of(r), 200);
    free(r);
    admin_close(a);
}

static void test_oversized(void **state)
{
    admin_server *a = open_server();
    static char req[3 * ADMIN_MAX_REQUEST];
    size_t n = sizeof(req), i;
    char *r;

    (void)state;
    /* A header block that never ends within the limit: 431. */
    i = (size_t)sprintf(req, "GET /metrics HTTP/1.1\r\n");
    while (i + 40 < n)
        i += (size_t)sprintf(req + i, "X-Filler-%06zu: aaaaaaaaaaaaaaaa\r\n", i);
    r = exchange(a, req, i);
    assert_int_equal(status_of(r), 431);
    free(r);

    /* A request line that never ends within the limit: 414. */
    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', n - 5);
    r = exchange(a, req, n);
    assert_int_equal(status_of(r), 414);
    free(r);

    /* Just under the limit is fine. */
    i = (size_t)sprintf(req, "GET /metrics HTTP/1.1\r\nX-Pad: ");
    memset(req + i, 'b', ADMIN_MAX_REQUEST - i - 4);
    memcpy(req + ADMIN_MAX_REQUEST - 4, "\r\n\r\n", 4);
    r = exchange(a, req, ADMIN_MAX_REQUEST);
    assert_int_equal(status_of(r), 200);
    free(r);
    assert_int_equal(app.calls, 1);
    admin_close(a);
}

/* A request that arrives one byte at a time is parsed as it grows. */
static void test_byte_at_a_time(void **state)
{
    static const char req[] = "\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    admin_server *a = open_server();
    struct resp r = {0};
    size_t i, cl;

    (void)state;
    r.fd = client(a);
    jbuf_init(&r.data);
    for (i = 0; i < sizeof(req) - 1; i++) {
        send_all(r.fd, req + i, 1);
        serve_turn(a, 5);
        if (i + 2 < sizeof(req) - 1)
            assert_int_equal(app.calls, 0); /* not before the blank line is complete */
    }
    collect(a, &r, 1);
    jbuf_putc(&r.data, '\0');
    assert_int_equal(status_of(r.data.data), 200);
    assert_string_equal(body_of(r.data.data, &cl), "ok\n");
    assert_int_equal(app.calls, 1);
    close(r.fd);
    jbuf_free(&r.data);
    admin_close(a);
}

/* A client that stalls mid-request delays nobody and is cut off at its deadline. */
static void test_stalled_client(void **state)
{
    admin_server *a = open_server();
    struct resp slow = {0}, fast = {0};
    int64_t start;

    (void)state;
    admin_set_timeout(a, 1000);
    jbuf_init(&slow.data);
    jbuf_init(&fast.data);
    slow.fd = client(a);
    send_all(slow.fd, "GET /metr", 9);
    serve_turn(a, 10);
    serve_turn(a, 10);
    assert_true(admin_timeout_ms(a) > 0 && admin_timeout_ms(a) <= 1000);

    start = now_ms();
    fast.fd = client(a);
    send_all(fast.fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
    collect(a, &fast, 1);
    assert_true(now_ms() - start < 500); /* well before the slow one's deadline */
    jbuf_putc(&fast.data, '\0');
    assert_int_equal(status_of(fast.data.data), 200);
    close(fast.fd);
    assert_false(resp_read(&slow)); /* still open, nothing sent to it */
    assert_int_equal(slow.data.len, 0);

    /* At its deadline it gets 408 and is closed. */
    collect(a, &slow, 1);
    assert_true(now_ms() - start >= 800);
    jbuf_putc(&slow.data, '\0');
    assert_int_equal(status_of(slow.data.data), 408);
    close(slow.fd);
    settle(a);
    assert_true(longest_turn_ms < 1000);

    jbuf_free(&slow.data);
    jbuf_free(&fast.data);
    admin_close(a);
}

/* Far more clients than slots: all served, never more than the slots at once. */
static void test_many_connections(void **state)
{
    enum { N = 48 }; /* above the slots, below the listen backlog (64) */
    admin_server *a = open_server();
    struct resp rs[N];
    size_t i;

    (void)state;
    for (i = 0; i < N; i++) {
        rs[i] = (struct resp){.fd = client(a)};
        jbuf_init(&rs[i].data);
        send_all(rs[i].fd, "GET /healthz HTTP/1.1\r\n\r\n", 25);
    }
    collect(a, rs, N);
    for (i = 0; i < N; i++) {
        size_t cl;

        assert_false(rs[i].reset);
        jbuf_putc(&rs[i].data, '\0');
        assert_int_equal(status_of(rs[i].data.data), 200);
        assert_string_equal(body_of(rs[i].data.data, &cl), "ok\n");
        close(rs[i].fd);
        jbuf_free(&rs[i].data);
    }
    assert_int_equal(app.calls, N);
    admin_close(a);
}

/*
 * Every slot held by a silent client: the listener is still polled, the next client
 * evicts the oldest of them (which gets 408) and is served at once; the others get
 * 408 at their deadline.
 */
static void test_slots_exhausted(void **state)
{
    admin_server *a = open_server();
    struct resp hog[ADMIN_MAX_CONNS], late = {0};
    struct pollfd fds[ADMIN_MAX_POLLFDS];
    size_t i;
    int64_t start;

    (void)state;
    admin_set_timeout(a, 300);
    for (i = 0; i < ADMIN_MAX_CONNS; i++) {
        hog[i] = (struct resp){.fd = client(a)};
        jbuf_init(&hog[i].data);
        serve_turn(a, 10); /* accepted one by one: hog[0] is the oldest */
    }
    /* All slots taken by readers: the listener is polled all the same. */
    assert_int_equal(admin_pollfds(a, fds, ADMIN_MAX_POLLFDS), ADMIN_MAX_CONNS + 1);
    admin_handle(a, fds, 0, render, &app);

    late.fd = client(a);
    jbuf_init(&late.data);
    send_all(late.fd, "GET /healthz HTTP/1.1\r\n\r\n", 25);
    start = now_ms();
    collect(a, &late, 1);
    jbuf_putc(&late.data, '\0');
    assert_int_equal(status_of(late.data.data), 200);
    /* Served long before any hog's deadline (300 ms): it did not wait for a slot. */
    assert_true(now_ms() - start < 250);
    assert_int_equal(admin_evicted(a), 1);
    for (i = 0; i < ADMIN_MAX_CONNS; i++) {
        collect(a, &hog[i], 1);
        jbuf_putc(&hog[i].data, '\0');
        assert_int_equal(status_of(hog[i].data.data), 408);
        close(hog[i].fd);
        jbuf_free(&hog[i].data);
    }
    close(late.fd);
    jbuf_free(&late.data);
    admin_close(a);
}

/*
 * A flood: many more idle connections than slots, and a client trickling its request
 * a byte at a time.  Probes with fresh connections are answered at once, the
 * trickler is cut off at the request deadline, and nothing grows: every connection
 * ever opened is either served, evicted or timed out.
 */
static void test_flood_and_trickle(void **state)
{
    enum { IDLE = 200, PROBES = 20 };
    admin_server *a = open_server();
    int idle[IDLE];
    struct resp trickle = {0};
    static const char req[] = "GET /healthz HTTP/1.1\r\n\r\n";
    size_t sent = 0, i;
    int64_t start, worst = 0;

    (void)state;
    admin_set_request_timeout(a, 400);
    for (i = 0; i < IDLE; i++) {
        idle[i] = client(a);
        if (i % 16 == 0)
            serve_turn(a, 0);
    }
    trickle.fd = client(a);
    jbuf_init(&trickle.data);
    start = now_ms();
    for (i = 0; i < PROBES; i++) {
        struct resp probe = {0};
        int64_t t0 = now_ms();

        /* The trickler sends one more byte between probes. */
        if (sent < sizeof(req) - 1)
            (void)send(trickle.fd, req + sent++, 1, MSG_NOSIGNAL);
        probe.fd = client(a);
        jbuf_init(&probe.data);
        send_all(probe.fd, req, sizeof(req) - 1);
        collect(a, &probe, 1);
        jbuf_putc(&probe.data, '\0');
        assert_int_equal(status_of(probe.data.data), 200);
        if (now_ms() - t0 > worst)
            worst = now_ms() - t0;
        close(probe.fd);
        jbuf_free(&probe.data);
        /* More idle clients keep coming. */
        idle[i] = (close(idle[i]), client(a));
        while (now_ms() - t0 < 25)
            serve_turn(a, 5);
    }
    /* Each probe within a second, however many idle connections were waiting. */
    assert_true(worst < 1000);
    /* The idle clients were evicted to make room: at least all but the slots' worth. */
    assert_true(admin_evicted(a) >= IDLE - ADMIN_MAX_CONNS);
    /* The trickler, 20 bytes in over 500 ms, never finished: cut off with 408. */
    collect(a, &trickle, 1);
    jbuf_putc(&trickle.data, '\0');
    assert_true(trickle.reset || status_of(trickle.data.data) == 408);
    assert_true(now_ms() - start >= 400);
    for (i = 0; i < IDLE; i++)
        close(idle[i]);
    close(trickle.fd);
    jbuf_free(&trickle.data);
    admin_close(a);
}

/* An evicted connection is the oldest idle one, never one being answered. */
static void test_eviction_order(void **state)
{
    admin_server *a = open_server();
    struct resp slow = {0}, idle[ADMIN_MAX_CONNS - 1], late = {0};
    int rcvbuf = 4096;
    size_t i;

    (void)state;
    admin_set_timeout(a, 3000);
    /* One client asks for a large response and does not read it: being answered. */
    slow.fd = client(a);
    jbuf_init(&slow.data);
    assert_int_equal(setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    send_all(slow.fd, "GET /big HTTP/1.1\r\n\r\n", 21);
    serve_turn(a, 10);
    for (i = 0; i < ADMIN_MAX_CONNS - 1; i++) {
        idle[i] = (struct resp){.fd = client(a)};
        jbuf_init(&idle[i].data);
        serve_turn(a, 10);
    }
    late.fd = client(a);
    jbuf_init(&late.data);
    send_all(late.fd, "GET /healthz HTTP/1.1\r\n\r\n", 25);
    collect(a, &late, 1);
    jbuf_putc(&late.data, '\0');
    assert_int_equal(status_of(late.data.data), 200);
    assert_int_equal(admin_evicted(a), 1);
    /* The oldest idle one went, with a 408; the slow reader is still being served. */
    collect(a, &idle[0], 1);
    jbuf_putc(&idle[0].data, '\0');
    assert_int_equal(status_of(idle[0].data.data), 408);
    {
        char buf[256];

        assert_true(recv(slow.fd, buf, sizeof(buf), MSG_DONTWAIT) > 0);
    }
    for (i = 0; i < ADMIN_MAX_CONNS - 1; i++) {
        close(idle[i].fd);
        jbuf_free(&idle[i].data);
    }
    close(slow.fd);
    close(late.fd);
    jbuf_free(&slow.data);
    jbuf_free(&late.data);
    admin_close(a);
}

/* A 4 MiB response to a client that does not read: the loop keeps turning. */
static void test_slow_reader(void **state)
{
    admin_server *a = open_server();
    struct resp r = {0};
    struct pollfd fds[ADMIN_MAX_POLLFDS];
    int rcvbuf = 65536;
    size_t cl, i;
    const char *body;
    int64_t start;

    (void)state;
    admin_set_timeout(a, 20000);
    r.fd = client(a);
    jbuf_init(&r.data);
    assert_int_equal(setsockopt(r.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    send_all(r.fd, "GET /big HTTP/1.1\r\n\r\n", 21);
    start = now_ms();
    /*
     * The client reads nothing meanwhile: a server that blocked on send() would hang
     * here for good.  The bound on a turn is loose because the machine may be busy.
     */
    while (now_ms() - start < 200)
        serve_turn(a, 10);
    assert_true(longest_turn_ms < 1000);
    /* Still sending: the connection waits for POLLOUT with most of the body unsent. */
    assert_int_equal(admin_pollfds(a, fds, ADMIN_MAX_POLLFDS), 2);
    assert_int_equal(fds[1].events, POLLOUT);
    admin_handle(a, fds, 0, render, &app);

    collect(a, &r, 1);
    assert_false(r.reset);
    jbuf_putc(&r.data, '\0');
    assert_int_equal(status_of(r.data.data), 200);
    body = body_of(r.data.data, &cl);
    assert_int_equal(cl, BIG_SIZE);
    assert_int_equal(r.data.len - 1 - (size_t)(body - r.data.data), BIG_SIZE);
    for (i = 0; i < BIG_SIZE; i += 4099)
        assert_int_equal(body[i], 'a' + i % 26);
    close(r.fd);
    jbuf_free(&r.data);
    admin_close(a);
}

/* A client hanging up before the response is sent: no SIGPIPE, slot freed. */
static void test_client_hangs_up(void **state)
{
    admin_server *a = open_server();
    int fd;

    (void)state;
    fd = client(a);
    send_all(fd, "GET /big HTTP/1.1\r\n\r\n", 21);
    serve_turn(a, 10);
    serve_turn(a, 10);
    close(fd);
    settle(a);
    /* And one that hangs up mid-request. */
    fd = client(a);
    send_all(fd, "GET /heal", 9);
    serve_turn(a, 10);
    close(fd);
    settle(a);
    assert_int_equal(app.calls, 1);
    admin_close(a);
}

/* Bytes after the request (a pipelined one, junk) do not reset the response away. */
static void test_extra_bytes(void **state)
{
    admin_server *a = open_server();
    char req[32768];
    size_t cl;
    int n;
    char *r;

    (void)state;
    n = sprintf(req, "GET /metrics HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
    memset(req + n, 'z', sizeof(req) - (size_t)n);
    r = exchange(a, req, sizeof(req) - 1);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r, &cl), "outbox_relay_ready 1\n");
    assert_int_equal(app.calls, 1); /* one request per connection */
    free(r);
    admin_close(a);
}

static void test_open_errors(void **state)
{
    char err[256], addr[64];
    admin_server *a, *b;

    (void)state;
    assert_null(admin_open("127.0.0.1", err, sizeof(err)));
    assert_string_equal(err, "invalid listen address \"127.0.0.1\": expected \"host:port\"");
    assert_null(admin_open("127.0.0.1:", err, sizeof(err)));
    assert_non_null(strstr(err, "expected a port number"));
    assert_null(admin_open("127.0.0.1:99999", err, sizeof(err)));
    assert_string_equal(err, "invalid listen address \"127.0.0.1:99999\": port \"99999\" is out "
                             "of range");
    assert_null(admin_open("127.0.0.1:123456789012345678901234567890", err, sizeof(err)));
    assert_non_null(strstr(err, "is out of range"));
    assert_null(admin_open("127.0.0.1:80x", err, sizeof(err)));
    assert_non_null(strstr(err, "port is not a number"));
    assert_null(admin_open("::1:9187", err, sizeof(err)));
    assert_non_null(strstr(err, "must be in brackets"));
    assert_null(admin_open("[::1:9187", err, sizeof(err)));
    assert_non_null(strstr(err, "expected \"[ipv6]:port\""));
    assert_null(admin_open("no-such-host.invalid:9187", err, sizeof(err)));
    assert_non_null(strstr(err, "could not resolve listen address \"no-such-host.invalid:9187\""));

    /* Address in use: the message names the address and the reason. */
    a = admin_open("127.0.0.1:0", err, sizeof(err));
    assert_non_null(a);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", admin_port(a));
    b = admin_open(addr, err, sizeof(err));
    assert_null(b);
    assert_non_null(strstr(err, "could not listen on \""));
    assert_non_null(strstr(err, addr));
    assert_non_null(strstr(err, "Address already in use"));
    admin_close(a);
    admin_close(NULL);

    /* Other spellings of a loopback address. */
    a = admin_open("localhost:0", err, sizeof(err));
    assert_non_null(a);
    assert_true(admin_port(a) > 0);
    admin_close(a);
    a = admin_open("[::1]:0", err, sizeof(err));
    if (a) {
        assert_true(admin_port(a) > 0);
        admin_close(a);
    } else {
        print_message("no IPv6 loopback here (%s)\n", err);
    }
}

/* Run admin_probe() in a child while this process serves; returns the probe's result. */
static int probe_forked(admin_server *a, const char *listen, const char *path, int timeout_ms,
                        char *err, size_t errsz)
{
    int pipefd[2], status = 0, rc;
    pid_t pid;
    struct {
        int rc;
        char err[256];
    } out;
    ssize_t got = 0;
    int64_t deadline = now_ms() + 10000;

    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        memset(&out, 0, sizeof(out));
        out.rc = admin_probe(listen, path, timeout_ms, out.err, sizeof(out.err));
        if (write(pipefd[1], &out, sizeof(out)) != (ssize_t)sizeof(out))
            _exit(2);
        _exit(0);
    }
    close(pipefd[1]);
    for (;;) {
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};

        assert_true(now_ms() < deadline);
        if (poll(&p, 1, 0) > 0)
            break;
        if (a)
            serve_turn(a, 10);
        else
            usleep(10000);
    }
    while (got < (ssize_t)sizeof(out)) {
        ssize_t n = read(pipefd[0], (char *)&out + got, sizeof(out) - (size_t)got);

        assert_true(n > 0);
        got += n;
    }
    close(pipefd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rc = out.rc;
    snprintf(err, errsz, "%s", out.err);
    return rc;
}

static void test_probe(void **state)
{
    admin_server *a = open_server();
    char listen_addr[64], wildcard[64], err[256];
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int silent, port;
    int64_t start;

    (void)state;
    port = admin_port(a);
    snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%d", port);
    assert_int_equal(probe_forked(a, listen_addr, "/healthz", 2000, err, sizeof(err)), 200);
    assert_string_equal(app.last_path, "/healthz");
    assert_int_equal(probe_forked(a, listen_addr, "/readyz", 2000, err, sizeof(err)), 503);
    app.ready = true;
    assert_int_equal(probe_forked(a, listen_addr, "/readyz", 2000, err, sizeof(err)), 200);
    assert_int_equal(probe_forked(a, listen_addr, "/nope", 2000, err, sizeof(err)), 404);
    /* A wildcard host is probed on the loopback address. */
    snprintf(wildcard, sizeof(wildcard), ":%d", port);
    assert_int_equal(probe_forked(a, wildcard, "/healthz", 2000, err, sizeof(err)), 200);
    snprintf(wildcard, sizeof(wildcard), "0.0.0.0:%d", port);
    assert_int_equal(probe_forked(a, wildcard, "/healthz", 2000, err, sizeof(err)), 200);

    /* Bad arguments fail without a connection. */
    assert_int_equal(admin_probe(listen_addr, "healthz", 100, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "must start with \"/\""));
    assert_int_equal(admin_probe(listen_addr, "/a b", 100, err, sizeof(err)), -1);
    assert_int_equal(admin_probe("nonsense", "/healthz", 100, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "invalid listen address"));
    admin_close(a);

    /* Nobody listening any more: refused. */
    assert_int_equal(probe_forked(NULL, listen_addr, "/healthz", 2000, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "could not connect to \""));
    assert_non_null(strstr(err, "Connection refused"));

    /* A listener that never answers: a timeout, on time. */
    silent = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(silent, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(silent, 4), 0);
    assert_int_equal(getsockname(silent, (struct sockaddr *)&sin, &len), 0);
    snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%d", ntohs(sin.sin_port));
    start = now_ms();
    assert_int_equal(admin_probe(listen_addr, "/healthz", 300, err, sizeof(err)), -1);
    assert_true(now_ms() - start >= 250 && now_ms() - start < 2000);
    assert_non_null(strstr(err, "no response from \""));
    close(silent);
}

/* The probe on a server that answers something that is not HTTP. */
static void test_probe_not_http(void **state)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    char listen_addr[64], err[256];
    int lfd = socket(AF_INET, SOCK_STREAM, 0), status;
    pid_t pid;

    (void)state;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%d", ntohs(sin.sin_port));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int c = accept(lfd, NULL, NULL);
        const char junk[] = "SSH-2.0-OpenSSH_9.2\r\n";

        if (c < 0 || write(c, junk, sizeof(junk) - 1) < 0)
            _exit(1);
        close(c);
        _exit(0);
    }
    assert_int_equal(admin_probe(listen_addr, "/healthz", 2000, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "invalid response from \""));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_ok),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_stalled_client),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_slots_exhausted),
        cmocka_unit_test(test_flood_and_trickle),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_client_hangs_up),
        cmocka_unit_test(test_extra_bytes),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_probe_not_http),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

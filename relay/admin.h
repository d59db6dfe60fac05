/*
 * admin.h -- the admin HTTP endpoint (/metrics, /healthz, /readyz) inside the poll loop.
 *
 * A deliberately small HTTP/1.1 server that never blocks and never takes a thread:
 * the relay's poll() loop asks it which descriptors to watch (admin_pollfds()), polls
 * them with its own, and hands the results back (admin_handle()).  Every request is
 * a GET or HEAD without a body; every response carries Content-Length and
 * "Connection: close", and the connection is closed once it is sent.  What a path
 * answers is decided by a callback (admin_render_fn), so the relay, not this module,
 * knows what "ready" means; unknown paths, other methods, malformed and oversized
 * requests are answered here.
 *
 * Bounded by construction, so that a slow or hostile client can neither stall the
 * relay, grow its memory nor starve other clients: at most ADMIN_MAX_CONNS
 * connections, a newcomer evicting the oldest one that has not sent a whole request
 * when all are taken; at most ADMIN_MAX_REQUEST bytes of request per connection
 * (414 / 431 beyond); ADMIN_REQUEST_TIMEOUT_MS from accept for the request to arrive
 * whole (408 otherwise), and ADMIN_DEFAULT_TIMEOUT_MS for the whole exchange (a
 * response the client does not read is abandoned).  Sockets are non-blocking and
 * written with MSG_NOSIGNAL, so a client that hangs up never raises SIGPIPE.
 *
 * Also here: admin_probe(), a blocking one-request client for the
 * "outbox-relay healthcheck" subcommand (a container HEALTHCHECK) and for tests.
 *
 * Error messages follow the relay's style (lowercase, no trailing period, addresses
 * in double quotes).  This module never logs: the caller decides what to say.
 */
#ifndef RELAY_ADMIN_H
#define RELAY_ADMIN_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonbuf.h"

typedef struct admin_server admin_server;

/* Connections served at the same time. */
#define ADMIN_MAX_CONNS 16
/* Descriptors admin_pollfds() may fill: the listener and every connection. */
#define ADMIN_MAX_POLLFDS (1 + ADMIN_MAX_CONNS)
/* Largest request (request line and headers) accepted, in bytes. */
#define ADMIN_MAX_REQUEST 8192
/* Life of a connection, from accept to close, unless admin_set_timeout() says otherwise. */
#define ADMIN_DEFAULT_TIMEOUT_MS 5000
/*
 * How long a connection may take to send its whole request, from accept (a probe on
 * loopback or in a pod sends it in well under a millisecond).
 */
#define ADMIN_REQUEST_TIMEOUT_MS 1000

/*
 * Answer a GET or HEAD for path (NUL-terminated, starting with '/', query string and
 * fragment removed, not percent-decoded).  Append the body to body (empty, owned by
 * the server: do not keep the pointer), optionally point *content_type at a string
 * that lives until the next loop turn (default "text/plain; charset=utf-8"), and
 * return the HTTP status code.  Return 0 for a path it does not serve: the server
 * answers 404.  For HEAD the body is rendered all the same (its length goes into
 * Content-Length) but not sent.  Runs on the loop's thread, inside admin_handle().
 */
typedef int (*admin_render_fn)(void *opaque, const char *path, struct jbuf *body,
                               const char **content_type);

/*
 * Listen on listen, "host:port": an IPv4 literal ("127.0.0.1:9187"), a bracketed
 * IPv6 literal ("[::1]:9187"), a host name resolved once, now ("localhost:9187"),
 * or an empty host for every address (":9187").  Port 0 asks the kernel for a free
 * one (admin_port() tells which).  The listener is non-blocking and close-on-exec.
 *
 * Returns the server, or NULL with errstr set: an address that does not parse,
 * a host that does not resolve, or a failed bind/listen (address in use, permission
 * denied), naming the address.  Resolving may block (it is meant for start-up).  The
 * caller owns the server and releases it with admin_close().
 */
admin_server *admin_open(const char *listen, char *errstr, size_t errstr_size);

/* Close every connection and the listener, and free a.  admin_close(NULL) is a no-op. */
void admin_close(admin_server *a);

/* The port the listener is bound to (useful after asking for port 0). */
int admin_port(const admin_server *a);

/*
 * Change the per-connection deadline (milliseconds, at least 1) for connections
 * accepted from now on.  Tests use short ones.
 */
void admin_set_timeout(admin_server *a, int timeout_ms);

/*
 * Change how long a connection accepted from now on may take to send its whole
 * request (milliseconds, at least 1; default ADMIN_REQUEST_TIMEOUT_MS, never longer
 * than the per-connection deadline).  Tests use short ones.
 */
void admin_set_request_timeout(admin_server *a, int timeout_ms);

/* Connections closed so far to make room for newer ones (the oldest idle readers). */
uint64_t admin_evicted(const admin_server *a);

/*
 * Fill fds[0..] with what the server wants polled -- the listener unless every
 * connection slot is taken, and each connection for input or output -- and return
 * how many entries it filled (at most max; ADMIN_MAX_POLLFDS is always enough).  The
 * caller polls them and passes the same entries to admin_handle().
 */
size_t admin_pollfds(admin_server *a, struct pollfd *fds, size_t max);

/*
 * The poll timeout the server needs, in milliseconds: time to its earliest connection
 * deadline, or -1 when it has no connection (no deadline to watch).  The caller
 * polls for at most the smaller of this and its own timeout.
 */
int admin_timeout_ms(const admin_server *a);

/*
 * Serve what poll() reported in fds[0..n) (the entries admin_pollfds() filled, with
 * revents set): accept new connections, read requests, call fn for complete ones,
 * write responses, and close connections that are done or past their deadline.
 * Call it on every loop turn (also when poll() timed out, so that deadlines are
 * enforced); with n == 0 it only enforces deadlines.  Never blocks.  Failures are
 * per connection (the connection is closed) and are not reported; an out-of-memory
 * while rendering answers 500.
 */
void admin_handle(admin_server *a, const struct pollfd *fds, size_t n, admin_render_fn fn,
                  void *opaque);

/*
 * Send "GET path" to the server at listen (the same "host:port" syntax as
 * admin_open(); an empty or wildcard host means the loopback address) and return the
 * response's status code, or -1 with errstr set when there is no valid answer
 * within timeout_ms (refused, timed out, not HTTP).  Blocking; for the healthcheck
 * subcommand and tests, never for the relay's loop.
 */
int admin_probe(const char *listen, const char *path, int timeout_ms, char *errstr,
                size_t errstr_size);

#endif /* RELAY_ADMIN_H */

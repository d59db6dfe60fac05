/*
 * observe.h -- what a running relay shows the world: metrics, health, readiness and
 * systemd notifications.
 *
 * The pipeline (pipeline.c), whichever source feeds it, owns one struct observer.
 * It holds the metrics the loop updates (struct relay_metrics: plain fields), the
 * admin HTTP endpoint (admin.listen: /metrics, /healthz, /readyz) and the systemd
 * watchdog.  The loop adds the observer's descriptors to
 * its poll() set, lowers its timeout to observe_timeout(), and calls
 * observe_turn() on every turn, whatever poll() returned.
 *
 *   /healthz  200 whenever the loop answers: it is alive.  It depends on neither
 *             PostgreSQL nor Kafka, so a liveness probe never restarts a relay that
 *             is waiting for them.
 *   /readyz   200 while the relay streams (connected to PostgreSQL and the source
 *             is live) and the sink can reach its brokers; 503 with the reason
 *             otherwise.  A standby waiting for the slot is alive but not ready.
 *   /metrics  Prometheus text format (docs/metrics.md).
 *
 * systemd (only when $NOTIFY_SOCKET is set; main.c sends READY=1 when the loop
 * starts): STATUS= lines when readiness changes, WATCHDOG=1 every half watchdog
 * period from the loop itself (so a stuck loop is killed), STOPPING=1 at a stop.
 */
#ifndef RELAY_OBSERVE_H
#define RELAY_OBSERVE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin.h"
#include "config.h"
#include "metrics.h"

/* Descriptors the observer may add to a poll() set. */
#define OBSERVE_MAX_POLLFDS ADMIN_MAX_POLLFDS

/*
 * Called before /metrics or /readyz is answered, to bring the gauges (in-flight
 * counts, confirmed position, ready) up to date.  May be NULL.
 */
typedef void (*observe_refresh_fn)(void *opaque, struct relay_metrics *m);

struct observer {
    struct relay_metrics m;  /* the loop's metrics: update the fields directly */
    const char *not_ready;   /* why /readyz says 503 (static string), NULL when ready */
    admin_server *admin;     /* NULL when admin.listen is "" */
    observe_refresh_fn refresh;
    void *opaque;
    int64_t watchdog_ms;     /* 0: no systemd watchdog */
    int64_t watchdog_due_ms;
    bool was_ready;
};

/*
 * Set up: metrics initialised, the admin endpoint listening when admin.listen is
 * not empty, the watchdog interval read from the environment.  Returns 0, or -1
 * with errstr set when the endpoint cannot listen (the address is in use, say):
 * then nothing needs freeing.  o is the caller's; refresh/opaque may be NULL.
 */
int observe_open(struct observer *o, const struct relay_config *cfg, observe_refresh_fn refresh,
                 void *opaque, char *errstr, size_t errstr_size);

/* Fill up to max entries of fds with the observer's descriptors; returns how many. */
size_t observe_pollfds(struct observer *o, struct pollfd *fds, size_t max);

/* timeout_ms (as for poll(), -1 = none) lowered to what the observer needs. */
int observe_timeout(const struct observer *o, int timeout_ms);

/*
 * Serve the entries observe_pollfds() filled (revents set by poll()), and ping the
 * watchdog when due.  Call on every loop turn.
 */
void observe_turn(struct observer *o, const struct pollfd *fds, size_t n);

/*
 * Say whether the relay is ready; why is a short static reason when it is not
 * (ignored when ready).  Cheap when nothing changed: call it freely.
 */
void observe_ready(struct observer *o, bool ready, const char *why);

/*
 * One event was acknowledged by the broker on its own destination (a dead-lettered one
 * is counted in m.dead_letter instead); its transaction committed at commit_us (0:
 * unknown).  Counts it and observes its commit-to-ack latency.  Cannot fail.
 */
void observe_delivered(struct observer *o, int64_t commit_us);

/* A stop was requested: STOPPING=1 to systemd, and /readyz answers 503. */
void observe_stopping(struct observer *o);

/* Close the endpoint.  Safe on a zeroed or already closed observer. */
void observe_close(struct observer *o);

/* Wall-clock microseconds since the Unix epoch (what metrics compare commit times with). */
int64_t observe_now_us(void);

#endif /* RELAY_OBSERVE_H */

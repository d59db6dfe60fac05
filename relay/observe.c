/*
 * observe.c -- metrics, health, readiness and systemd notifications for a running
 * relay (see observe.h).  The HTTP work is admin.c's and the text format is
 * metrics.c's; this file decides what /healthz and /readyz answer and keeps the
 * systemd watchdog fed from the loop itself.
 */
#include "observe.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sdnotify.h"

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t observe_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int render(void *opaque, const char *path, struct jbuf *body, const char **content_type)
{
    struct observer *o = opaque;

    if (strcmp(path, "/healthz") == 0) {
        /* Answering at all proves the loop turns. */
        jbuf_puts(body, "ok\n");
        return 200;
    }
    if (o->refresh && (strcmp(path, "/readyz") == 0 || strcmp(path, "/metrics") == 0))
        o->refresh(o->opaque, &o->m);
    if (strcmp(path, "/readyz") == 0) {
        if (o->m.ready) {
            jbuf_puts(body, "ready\n");
            return 200;
        }
        jbuf_printf(body, "not ready: %s\n", o->not_ready ? o->not_ready : "starting");
        return 503;
    }
    if (strcmp(path, "/metrics") == 0) {
        *content_type = METRICS_CONTENT_TYPE;
        return metrics_render(&o->m, observe_now_us(), body) < 0 ? 500 : 200;
    }
    return 0;
}

int observe_open(struct observer *o, const struct relay_config *cfg, observe_refresh_fn refresh,
                 void *opaque, char *errstr, size_t errstr_size)
{
    memset(o, 0, sizeof(*o));
    metrics_init(&o->m, RELAY_VERSION);
    o->m.ready = false;
    o->not_ready = "starting";
    o->refresh = refresh;
    o->opaque = opaque;
    if (cfg->admin.listen && cfg->admin.listen[0]) {
        char err[256];

        if (!(o->admin = admin_open(cfg->admin.listen, err, sizeof(err)))) {
            snprintf(errstr, errstr_size, "admin endpoint (admin.listen): %s", err);
            return -1;
        }
        log_info("admin endpoint listening on %s (port %d): /metrics, /healthz, /readyz",
                 cfg->admin.listen, admin_port(o->admin));
    }
    o->watchdog_ms = sdnotify_watchdog_interval_ms();
    o->watchdog_due_ms = mono_ms();
    return 0;
}

size_t observe_pollfds(struct observer *o, struct pollfd *fds, size_t max)
{
    return o->admin ? admin_pollfds(o->admin, fds, max) : 0;
}

int observe_timeout(const struct observer *o, int timeout_ms)
{
    int t = timeout_ms;

    if (o->admin) {
        int a = admin_timeout_ms(o->admin);

        if (a >= 0 && (t < 0 || a < t))
            t = a;
    }
    if (o->watchdog_ms > 0) {
        int64_t w = o->watchdog_due_ms - mono_ms();

        if (w < 0)
            w = 0;
        if (t < 0 || w < t)
            t = (int)w;
    }
    return t;
}

void observe_turn(struct observer *o, const struct pollfd *fds, size_t n)
{
    if (o->admin)
        admin_handle(o->admin, fds, n, render, o);
    if (o->watchdog_ms > 0 && mono_ms() >= o->watchdog_due_ms) {
        sdnotify_watchdog();
        o->watchdog_due_ms = mono_ms() + o->watchdog_ms;
    }
}

void observe_ready(struct observer *o, bool ready, const char *why)
{
    o->m.ready = ready;
    o->not_ready = ready ? NULL : why;
    if (ready == o->was_ready)
        return;
    o->was_ready = ready;
    /*
     * Not READY=1: main.c sends that when the loop starts, because a standby waiting
     * for the slot is started all the same and must not be killed by systemd's start
     * timeout.  The status line says what it is doing.
     */
    sdnotify_status("%s", ready ? "streaming" : why);
}

void observe_delivered(struct observer *o, int64_t commit_us)
{
    metrics_note_ack(&o->m, commit_us, observe_now_us());
}

void observe_stopping(struct observer *o)
{
    sdnotify_stopping();
    observe_ready(o, false, "stopping");
}

void observe_close(struct observer *o)
{
    admin_close(o->admin);
    o->admin = NULL;
}

/*
 * sdnotify.c -- sd_notify(3) without libsystemd: a datagram to $NOTIFY_SOCKET.
 *
 * The socket is opened, used and closed for each message: a cached descriptor
 * would have to survive the manager restarting (systemctl daemon-reexec keeps the
 * path, not the peer) and would gain nothing at a few messages a minute.  Sends
 * use MSG_NOSIGNAL, and the socket is SOCK_CLOEXEC, so nothing leaks into a child
 * or raises SIGPIPE.
 */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdnotify_send_to(const char *path, const char *state)
{
    struct sockaddr_un addr;
    socklen_t addrlen;
    size_t plen;
    ssize_t sent;
    int fd, err = 0;

    if (path == NULL || state == NULL)
        return -EINVAL;
    if (strncmp(path, "vsock:", 6) == 0)
        return -EAFNOSUPPORT;
    plen = strlen(path);
    /* A path must be absolute; '@' is the abstract namespace, whose name may not be empty. */
    if (plen < 2 || (path[0] != '/' && path[0] != '@') || plen > sizeof(addr.sun_path) - 1)
        return -EINVAL;

    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, plen);
    if (path[0] == '@') {
        /* Abstract: a NUL first byte, and the length says where the name ends. */
        addr.sun_path[0] = '\0';
        addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    } else {
        addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
    }

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen);
    if (sent < 0)
        err = -errno;
    else if ((size_t)sent != strlen(state))
        err = -EMSGSIZE;
    close(fd);
    return err < 0 ? err : 1;
}

int sdnotify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");

    if (path == NULL || path[0] == '\0')
        return 0;
    return sdnotify_send_to(path, state);
}

int sdnotify_ready(void)
{
    return sdnotify_send("READY=1");
}

int sdnotify_stopping(void)
{
    return sdnotify_send("STOPPING=1");
}

int sdnotify_watchdog(void)
{
    return sdnotify_send("WATCHDOG=1");
}

int sdnotify_status(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int n;

    n = snprintf(msg, sizeof(msg), "STATUS=");
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    msg[strcspn(msg, "\n")] = '\0';
    return sdnotify_send(msg);
}

/* A positive decimal number with nothing around it; false otherwise. */
static bool parse_positive(const char *s, unsigned long long *out)
{
    unsigned long long n = 0;

    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        unsigned d = (unsigned)(*s - '0');

        if (*s < '0' || *s > '9' || n > (~0ULL - d) / 10)
            return false;
        n = n * 10 + d;
    }
    if (n == 0)
        return false;
    *out = n;
    return true;
}

int sdnotify_watchdog_parse(const char *usec, const char *pid, pid_t self, int64_t *interval_ms)
{
    unsigned long long timeout_us, owner;

    *interval_ms = 0;
    if (usec == NULL)
        return 0;
    if (!parse_positive(usec, &timeout_us))
        return -EINVAL;
    if (pid != NULL) {
        if (!parse_positive(pid, &owner))
            return -EINVAL;
        if (owner != (unsigned long long)self)
            return 0; /* the watchdog is another process's (a parent's) */
    }
    /* Half the timeout, so one late turn of the loop does not get us killed. */
    timeout_us /= 2;
    if (timeout_us / 1000 > (unsigned long long)INT64_MAX)
        *interval_ms = INT64_MAX;
    else
        *interval_ms = timeout_us < 1000 ? 1 : (int64_t)(timeout_us / 1000);
    return 0;
}

int64_t sdnotify_watchdog_interval_ms(void)
{
    int64_t ms;

    if (sdnotify_watchdog_parse(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), getpid(), &ms) < 0)
        return 0;
    return ms;
}

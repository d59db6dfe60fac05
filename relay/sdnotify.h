/*
 * sdnotify.h -- systemd's service notification protocol, spoken directly.
 *
 * Under systemd with Type=notify, the service manager passes the path of a unix
 * datagram socket in $NOTIFY_SOCKET and waits for "READY=1" on it before it
 * considers the service started; "STOPPING=1" says a stop is under way, "STATUS=..."
 * sets the line `systemctl status` shows, and with WatchdogSec= the manager
 * passes $WATCHDOG_USEC and kills the service when "WATCHDOG=1" does not arrive
 * at least that often.  This is the whole protocol the relay needs, so it is
 * implemented here in a few lines instead of linking libsystemd: each message is
 * one datagram, "KEY=VALUE" lines, sent to the socket ('@' at the start of the
 * path names the abstract namespace).
 *
 * Outside systemd (no $NOTIFY_SOCKET) every function is a cheap no-op returning
 * 0, so callers need not care where they run.  The functions read the
 * environment and open a socket per message (messages are rare: start, stop,
 * status changes, and a watchdog ping every few seconds), so they are meant for
 * the relay's own thread, not for signal handlers.
 */
#ifndef RELAY_SDNOTIFY_H
#define RELAY_SDNOTIFY_H

#include <stdint.h>
#include <sys/types.h>

/*
 * Send state (one or more "KEY=VALUE" lines) to the socket at path: a file system
 * path, or '@' then a name in the abstract namespace.  Returns 1 when sent;
 * -EINVAL for an empty, relative or too long path; -EAFNOSUPPORT for a socket
 * address systemd knows but we do not (vsock:); another negative errno when the
 * socket cannot be created or the datagram is not sent.
 */
int sdnotify_send_to(const char *path, const char *state);

/*
 * Send state to $NOTIFY_SOCKET.  Returns 0 when it is unset or empty (not under
 * systemd), otherwise as sdnotify_send_to().
 */
int sdnotify_send(const char *state);

/* "READY=1": startup is complete.  Same return as sdnotify_send(). */
int sdnotify_ready(void);

/* "STOPPING=1": a stop was requested and is under way.  Same return. */
int sdnotify_stopping(void);

/* "WATCHDOG=1": the main loop is alive.  Same return. */
int sdnotify_watchdog(void);

/*
 * "STATUS=<text>", text formatted like printf and cut at the first newline (a
 * newline would start another KEY=VALUE).  Same return as sdnotify_send().
 */
int sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Pure: from the values of WATCHDOG_USEC and WATCHDOG_PID (each NULL when unset)
 * and our own pid, the interval at which to send WATCHDOG=1, in milliseconds:
 * half the timeout, as sd_watchdog_enabled(3) advises, at least 1 ms.  *interval_ms
 * is 0 when there is no watchdog for us: WATCHDOG_USEC unset, or WATCHDOG_PID set
 * to another process.  Returns 0, or -EINVAL when a value is not a positive
 * decimal number (then *interval_ms is 0 too).
 */
int sdnotify_watchdog_parse(const char *usec, const char *pid, pid_t self, int64_t *interval_ms);

/*
 * sdnotify_watchdog_parse() on this process's environment and pid: the watchdog
 * interval in milliseconds, 0 when there is no watchdog (or its variables are
 * malformed, which systemd never does).
 */
int64_t sdnotify_watchdog_interval_ms(void);

#endif /* RELAY_SDNOTIFY_H */

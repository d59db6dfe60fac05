/*
 * test_sdnotify.c -- unit tests for relay/sdnotify.c against real sockets.
 *
 * Each test binds a unix datagram socket -- in a temporary directory, or in the
 * abstract namespace -- points NOTIFY_SOCKET at it as systemd would, sends, and
 * reads back exactly the datagram the service manager would receive.  The
 * watchdog tests cover the arithmetic and the WATCHDOG_PID rule.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sdnotify.h"

struct listener {
    int fd;
    char path[108]; /* as NOTIFY_SOCKET spells it: '@' first for the abstract namespace */
    char dir[64];
};

/* Bind a datagram socket: a file in a new temporary directory, or an abstract name. */
static void listen_on(struct listener *l, bool abstract)
{
    struct sockaddr_un addr;
    socklen_t len;

    memset(l, 0, sizeof(*l));
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd >= 0);
    if (abstract) {
        snprintf(l->path, sizeof(l->path), "@outbox-relay-test-%ld", (long)getpid());
        memcpy(addr.sun_path + 1, l->path + 1, strlen(l->path) - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(l->path));
    } else {
        snprintf(l->dir, sizeof(l->dir), "/tmp/sdnotify-test-XXXXXX");
        assert_non_null(mkdtemp(l->dir));
        snprintf(l->path, sizeof(l->path), "%s/notify", l->dir);
        memcpy(addr.sun_path, l->path, strlen(l->path));
        len = (socklen_t)sizeof(addr);
    }
    assert_int_equal(bind(l->fd, (struct sockaddr *)&addr, len), 0);
}

static void listener_close(struct listener *l)
{
    close(l->fd);
    if (l->dir[0] != '\0') {
        unlink(l->path);
        rmdir(l->dir);
    }
}

/* The next datagram, which must already be waiting, as a string. */
static void expect_datagram(const struct listener *l, const char *expected)
{
    char buf[1024];
    ssize_t n = recv(l->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    if (n < 0)
        fail_msg("no datagram: %s", strerror(errno));
    buf[n] = '\0';
    assert_string_equal(buf, expected);
}

static void expect_nothing(const struct listener *l)
{
    char buf[16];

    assert_int_equal(recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void test_messages(bool abstract)
{
    struct listener l;

    listen_on(&l, abstract);
    setenv("NOTIFY_SOCKET", l.path, 1);
    assert_int_equal(sdnotify_ready(), 1);
    expect_datagram(&l, "READY=1");
    assert_int_equal(sdnotify_watchdog(), 1);
    expect_datagram(&l, "WATCHDOG=1");
    assert_int_equal(sdnotify_stopping(), 1);
    expect_datagram(&l, "STOPPING=1");
    assert_int_equal(sdnotify_status("streaming from slot \"%s\"", "outbox_relay"), 1);
    expect_datagram(&l, "STATUS=streaming from slot \"outbox_relay\"");
    /* A newline would start another assignment: the status stops before it. */
    assert_int_equal(sdnotify_status("line one\nREADY=1"), 1);
    expect_datagram(&l, "STATUS=line one");
    assert_int_equal(sdnotify_send("READY=1\nSTATUS=two lines"), 1);
    expect_datagram(&l, "READY=1\nSTATUS=two lines");
    expect_nothing(&l);
    unsetenv("NOTIFY_SOCKET");
    listener_close(&l);
}

static void test_path_socket(void **state)
{
    (void)state;
    test_messages(false);
}

static void test_abstract_socket(void **state)
{
    (void)state;
    test_messages(true);
}

static void test_not_under_systemd(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sdnotify_ready(), 0);
    assert_int_equal(sdnotify_status("x"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(sdnotify_watchdog(), 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_bad_addresses(void **state)
{
    char longpath[200];

    (void)state;
    assert_int_equal(sdnotify_send_to("relative/path", "READY=1"), -EINVAL);
    assert_int_equal(sdnotify_send_to("@", "READY=1"), -EINVAL);
    assert_int_equal(sdnotify_send_to("", "READY=1"), -EINVAL);
    assert_int_equal(sdnotify_send_to(NULL, "READY=1"), -EINVAL);
    assert_int_equal(sdnotify_send_to("vsock:2:1234", "READY=1"), -EAFNOSUPPORT);
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(sdnotify_send_to(longpath, "READY=1"), -EINVAL);
    /* Nobody listening there: the error comes back, nothing crashes. */
    assert_int_equal(sdnotify_send_to("/nonexistent-dir/notify", "READY=1"), -ENOENT);
    setenv("NOTIFY_SOCKET", "/nonexistent-dir/notify", 1);
    assert_int_equal(sdnotify_ready(), -ENOENT);
    unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_parse(void **state)
{
    int64_t ms = -1;

    (void)state;
    /* No watchdog. */
    assert_int_equal(sdnotify_watchdog_parse(NULL, NULL, 100, &ms), 0);
    assert_int_equal(ms, 0);
    /* Half the timeout. */
    assert_int_equal(sdnotify_watchdog_parse("30000000", NULL, 100, &ms), 0);
    assert_int_equal(ms, 15000);
    assert_int_equal(sdnotify_watchdog_parse("3000", NULL, 100, &ms), 0);
    assert_int_equal(ms, 1);
    /* Under a millisecond still pings, every millisecond. */
    assert_int_equal(sdnotify_watchdog_parse("1", NULL, 100, &ms), 0);
    assert_int_equal(ms, 1);
    /* WATCHDOG_PID: ours, or another process's. */
    assert_int_equal(sdnotify_watchdog_parse("10000000", "100", 100, &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(sdnotify_watchdog_parse("10000000", "101", 100, &ms), 0);
    assert_int_equal(ms, 0);
    /* Malformed values. */
    assert_int_equal(sdnotify_watchdog_parse("", NULL, 100, &ms), -EINVAL);
    assert_int_equal(ms, 0);
    assert_int_equal(sdnotify_watchdog_parse("0", NULL, 100, &ms), -EINVAL);
    assert_int_equal(sdnotify_watchdog_parse("-5", NULL, 100, &ms), -EINVAL);
    assert_int_equal(sdnotify_watchdog_parse("10s", NULL, 100, &ms), -EINVAL);
    assert_int_equal(sdnotify_watchdog_parse("99999999999999999999999", NULL, 100, &ms), -EINVAL);
    assert_int_equal(sdnotify_watchdog_parse("1000", "x", 100, &ms), -EINVAL);
    /* The largest value systemd may pass does not overflow. */
    assert_int_equal(sdnotify_watchdog_parse("18446744073709551614", NULL, 100, &ms), 0);
    assert_int_equal(ms, INT64_C(9223372036854775));

    /* From the environment, with our own pid. */
    setenv("WATCHDOG_USEC", "4000000", 1);
    assert_int_equal(sdnotify_watchdog_interval_ms(), 2000);
    {
        char pid[32];

        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        setenv("WATCHDOG_PID", pid, 1);
        assert_int_equal(sdnotify_watchdog_interval_ms(), 2000);
        snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
        setenv("WATCHDOG_PID", pid, 1);
        assert_int_equal(sdnotify_watchdog_interval_ms(), 0);
    }
    setenv("WATCHDOG_USEC", "bogus", 1);
    unsetenv("WATCHDOG_PID");
    assert_int_equal(sdnotify_watchdog_interval_ms(), 0);
    unsetenv("WATCHDOG_USEC");
    assert_int_equal(sdnotify_watchdog_interval_ms(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),       cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_not_under_systemd), cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_watchdog_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * sink.c -- the sink interface, dispatched to an implementation.
 *
 * The functions of sink.h that every sink shares -- the wakeup pipe and the
 * outstanding count -- live here; the rest go through the implementation's
 * operations table (sink_kafka.c, sink_stdout.c).
 */
#include "sink_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sink_base_init(sink *s, const struct sink_ops *ops, sink_report_fn *report, void *opaque,
                   char *errstr, size_t errstr_size)
{
    s->ops = ops;
    s->report = report;
    s->opaque = opaque;
    s->outstanding = 0;
    s->outstanding_bytes = 0;
    if (pipe(s->pipefd) < 0) {
        snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
        s->pipefd[0] = s->pipefd[1] = -1;
        return -errno;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(s->pipefd[i], F_SETFL, fcntl(s->pipefd[i], F_GETFL) | O_NONBLOCK);
        fcntl(s->pipefd[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

void sink_wakeup(sink *s)
{
    char c = 1;

    if (write(s->pipefd[1], &c, 1) < 0) {
        /* Full: a wakeup is pending already. */
    }
}

sink *sink_from_config(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                       char *errstr, size_t errstr_size)
{
    if (cfg->sink == RELAY_SINK_STDOUT)
        return sink_stdout_new(STDOUT_FILENO, report, opaque, errstr, errstr_size);
    return sink_kafka_new(cfg, report, opaque, errstr, errstr_size);
}

int sink_produce(sink *s, const struct out_msg *msg, uint64_t txn_seq, char *errstr,
                 size_t errstr_size)
{
    return s->ops->produce(s, msg, txn_seq, errstr, errstr_size);
}

int sink_poll(sink *s)
{
    return s->ops->poll(s);
}

bool sink_fatal(const sink *s)
{
    return s->ops->fatal(s);
}

int sink_fd(const sink *s)
{
    return s->pipefd[0];
}

void sink_drain_fd(sink *s)
{
    char buf[256];

    while (read(s->pipefd[0], buf, sizeof(buf)) > 0)
        ;
}

int sink_flush(sink *s, int timeout_ms)
{
    s->ops->flush(s, timeout_ms);
    return s->outstanding;
}

int sink_reset(sink *s, char *errstr, size_t errstr_size)
{
    int rc = s->ops->reset(s, errstr, errstr_size);

    sink_drain_fd(s);
    return rc;
}

int sink_outstanding(const sink *s)
{
    return s->outstanding;
}

bool sink_connected(const sink *s)
{
    return !s->unreachable;
}

int64_t sink_outstanding_bytes(const sink *s)
{
    return s->outstanding_bytes;
}

void sink_free(sink *s)
{
    if (!s)
        return;
    s->ops->destroy(s);
    if (s->pipefd[0] >= 0)
        close(s->pipefd[0]);
    if (s->pipefd[1] >= 0)
        close(s->pipefd[1]);
    free(s);
}

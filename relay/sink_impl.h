/*
 * sink_impl.h -- what every sink implementation shares (private to relay/sink*.c).
 *
 * A sink is a struct sink at the start of an implementation's own struct, with a
 * table of operations.  The base part owns the wakeup pipe the pipeline's poll() loop
 * watches, the report callback, and the count of messages not yet reported.
 */
#ifndef RELAY_SINK_IMPL_H
#define RELAY_SINK_IMPL_H

#include "sink.h"

#include <poll.h>
#include <pthread.h>

struct sink_ops {
    int (*produce)(sink *s, const struct out_msg *msg, uint64_t tag, char *errstr,
                   size_t errstr_size);
    int (*poll)(sink *s);
    bool (*fatal)(const sink *s);
    void (*flush)(sink *s, int timeout_ms);
    int (*reset)(sink *s, char *errstr, size_t errstr_size);
    void (*destroy)(sink *s); /* frees the implementation's resources, not s itself */
    /*
     * Optional, for a sink that does its own I/O on the relay's thread (no library
     * thread to wake the loop): the sockets the loop must watch, at most max, with the
     * events wanted now.  The loop calls poll() after every turn, whatever happened.
     */
    size_t (*pollfds)(sink *s, struct pollfd *fds, size_t max);
};

struct sink {
    const struct sink_ops *ops;
    const struct sink_type *type;
    int pipefd[2];
    sink_report_fn *report;
    void *opaque;
    int outstanding;
    bool unreachable; /* the implementation knows it cannot reach its broker */
    char refused[1024]; /* "": not refused; else why the broker refuses us for good */
};

/* Set up the base part: a non-blocking close-on-exec pipe.  Returns 0 or -errno. */
int sink_base_init(sink *s, const struct sink_type *type, const struct sink_ops *ops,
                   sink_report_fn *report, void *opaque, char *errstr, size_t errstr_size);

/* Make sink_fd() readable (reports are waiting). */
void sink_wakeup(sink *s);

/*
 * The broker refuses this relay for good -- a wrong password, a certificate that does
 * not verify: no retry cures it, and retrying would only hide it.  Records why (the
 * first reason wins) for sink_refused(); the pipeline stops with it.
 */
void sink_refuse(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A copy of a message a sink keeps until its broker answers, in one allocation: what
 * a SINK_UNDELIVERABLE report must carry for the dead-letter record.  Free it with
 * free().
 */
struct sink_held {
    uint64_t tag;
    size_t id_len, key_len, value_len;
    bool has_value;
    int nheaders;
    /* Set by sink_note_report(): the report this message waits to deliver. */
    struct sink_held *next;
    enum sink_outcome outcome;
    bool too_large;
    char code[32];
    char *err; /* malloc'd, or the static text of a report whose error text found no memory */
    char data[]; /* destination\0 id key value, then per header: name\0 length bytes */
};

/* Copy m (tag with it).  Returns NULL when out of memory. */
struct sink_held *sink_hold(const struct out_msg *m, uint64_t tag);

/* The held message as an out_msg pointing into h (valid while h is). */
void sink_held_view(const struct sink_held *h, struct out_msg *m);

/*
 * A first-in first-out queue of held messages, for a sink's messages waiting to be
 * sent or answered.  No lock of its own: the owner serialises.  Zeroed is empty.
 */
struct sink_fifo {
    struct sink_held **v; /* v[head .. tail) */
    size_t head, tail, cap;
};

/* Append h.  Returns 0, or -1 when out of memory (h is not taken). */
int sink_fifo_push(struct sink_fifo *q, struct sink_held *h);

/* Take back the message appended last (its send failed at once); NULL when empty. */
struct sink_held *sink_fifo_unpush(struct sink_fifo *q);

/* Remove and return the oldest message; NULL when empty. */
struct sink_held *sink_fifo_pop(struct sink_fifo *q);

/* The oldest message, left in place; NULL when empty. */
static inline struct sink_held *sink_fifo_peek(const struct sink_fifo *q)
{
    return q->head < q->tail ? q->v[q->head] : NULL;
}

static inline size_t sink_fifo_len(const struct sink_fifo *q)
{
    return q->tail - q->head;
}

/* Free every message in q; q stays usable.  sink_fifo_free() also frees its array. */
void sink_fifo_clear(struct sink_fifo *q);
void sink_fifo_free(struct sink_fifo *q);

/*
 * Reports handed from a sink's own thread (a worker, or its library's callback thread)
 * to the relay's thread.  Posting a report never allocates a slot: the outcome travels
 * in the held message itself, chained in posting order, so no report is lost for want
 * of memory (only its error text can be: a fixed text replaces it).  Log lines and the
 * first refusal travel beside them; a log line that finds no memory is counted and
 * said later.  Its own mutex is a leaf: a sink may post while holding its own.
 */
struct sink_notes {
    pthread_mutex_t mu;
    struct sink_held *head, *tail; /* reported messages, oldest first */
    char **lines;                  /* log lines, oldest first */
    size_t nlines, cap, lost;
    char refused[768]; /* "": none; else why the broker refuses the relay (first wins) */
};

/* Initialise n (empty).  sink_notes_destroy() frees what is still in it. */
void sink_notes_init(struct sink_notes *n);
void sink_notes_destroy(struct sink_notes *n);

/* Free every report and line not yet served (a sink's reset): their messages are abandoned. */
void sink_notes_clear(struct sink_notes *n);

/*
 * From any thread: report h (taken: freed once served) with outcome, the broker's or
 * library's short code and one line of error ("" when delivered), and wake the relay's
 * thread.  Cannot fail.
 */
void sink_note_report(sink *s, struct sink_notes *n, struct sink_held *h,
                      enum sink_outcome outcome, bool too_large, const char *code,
                      const char *err);

/* From any thread: a warning for the relay's log (lost, and counted, without memory). */
void sink_note_log(sink *s, struct sink_notes *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* From any thread: the broker refuses the relay for good; sink_refuse() when served. */
void sink_note_refuse(sink *s, struct sink_notes *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * On the relay's thread (a sink's poll op): log the lines, apply the refusal, deliver
 * the reports in order through sink_report() and free their messages.  destination
 * names the destination of every report when the messages' own is not meaningful
 * (webhooks); NULL: each message's.  Returns the number of reports delivered.
 */
int sink_notes_serve(sink *s, struct sink_notes *n, const char *destination);

/*
 * For a sink whose reports come from another thread through sink_wakeup(): wait up to
 * timeout_ms for every outstanding message to be reported, serving reports with the
 * sink's own poll op meanwhile.  A flush op in one call.
 */
void sink_wait_reports(sink *s, int timeout_ms);

/* Report one message: outstanding goes down by one, then the callback runs. */
void sink_report(sink *s, const struct sink_report *r);

#endif /* RELAY_SINK_IMPL_H */

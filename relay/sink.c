/*
 * sink.c -- the registry of sinks, and the parts of the sink interface every sink
 * shares: the wakeup pipe, the outstanding count and destination-name rules.
 *
 * The registry is the list below, one X() row per sink type; each row names a
 * struct sink_type defined in relay/sink_<name>.c.  The first row is the default
 * sink.  Everything else dispatches through the implementation's operations table.
 */
#include "sink_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config_schema.h"
#include "log.h"

/* The registry: one row per sink type. */
#define SINK_TYPES \
    X(kafka)       \
    X(stdout)      \
    X(redis)       \
    X(webhook)     \
    X(nats)        \
    X(rabbitmq)    \
    X(sqs)

#define X(name) extern const struct sink_type sink_type_##name;
SINK_TYPES
#undef X

#define X(name) &sink_type_##name,
static const struct sink_type *const registry[] = {SINK_TYPES};
#undef X

const struct sink_type *const *sink_types(size_t *n)
{
    *n = sizeof(registry) / sizeof(registry[0]);
    return registry;
}

int sink_register_config(void)
{
    const struct relay_sink_config *list[sizeof(registry) / sizeof(registry[0])];

    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        list[i] = registry[i]->config;
    return relay_config_register_sinks(list, sizeof(registry) / sizeof(registry[0]));
}

const struct sink_type *sink_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

const struct sink_type *sink_type_of(const struct relay_config *cfg)
{
    return sink_type_find(relay_config_sink_name(cfg));
}

sink *sink_from_config(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                       char *errstr, size_t errstr_size)
{
    const struct sink_type *t = sink_type_of(cfg);

    if (!t) {
        snprintf(errstr, errstr_size, "no sink called \"%s\"", relay_config_sink_name(cfg));
        return NULL;
    }
    return t->create(cfg, report, opaque, errstr, errstr_size);
}

const struct sink_type *sink_get_type(const sink *s)
{
    return s->type;
}

int sink_destination_check(const struct sink_type *t, const char *dest, char *errstr,
                           size_t errstr_size)
{
    const struct sink_caps *c = &t->caps;
    size_t n = strlen(dest);

    if (n == 0) {
        snprintf(errstr, errstr_size, "%s name is empty", c->destination_word);
        return -EDESTADDRREQ;
    }
    if (c->max_destination && n > c->max_destination) {
        snprintf(errstr, errstr_size, "%s name longer than %zu bytes", c->destination_word,
                 c->max_destination);
        return -EDESTADDRREQ;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)dest[i];
        bool ok = c->destination_chars
                      ? (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                            (ch >= '0' && ch <= '9') ||
                            (ch && strchr(c->destination_chars, ch) != NULL)
                      : ch >= 0x20 && ch != 0x7f;

        if (!ok) {
            snprintf(errstr, errstr_size,
                     "%s name \"%.*s\" has a character %s does not allow: use letters, "
                     "digits%s%s",
                     c->destination_word, (int)(n > 100 ? 100 : n), dest, t->name,
                     c->destination_chars ? " and any of " : "",
                     c->destination_chars ? c->destination_chars : "");
            return -EDESTADDRREQ;
        }
    }
    if (strcmp(dest, ".") == 0 || strcmp(dest, "..") == 0) {
        snprintf(errstr, errstr_size, "%s name \"%s\" is not allowed", c->destination_word,
                 dest);
        return -EDESTADDRREQ;
    }
    return 0;
}

int sink_base_init(sink *s, const struct sink_type *type, const struct sink_ops *ops,
                   sink_report_fn *report, void *opaque, char *errstr, size_t errstr_size)
{
    s->ops = ops;
    s->type = type;
    s->report = report;
    s->opaque = opaque;
    s->outstanding = 0;
    s->refused[0] = '\0';
    if (pipe(s->pipefd) < 0) {
        int e = errno;

        snprintf(errstr, errstr_size, "pipe: %s", strerror(e));
        s->pipefd[0] = s->pipefd[1] = -1;
        return -e;
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

void sink_report(sink *s, const struct sink_report *r)
{
    s->outstanding--;
    s->report(s->opaque, r);
}

int sink_produce(sink *s, const struct out_msg *msg, uint64_t tag, char *errstr,
                 size_t errstr_size)
{
    int rc = s->ops->produce(s, msg, tag, errstr, errstr_size);

    if (rc == 0)
        s->outstanding++;
    return rc;
}

int sink_poll(sink *s)
{
    return s->ops->poll(s);
}

bool sink_fatal(const sink *s)
{
    return s->ops->fatal(s);
}

void sink_refuse(sink *s, const char *fmt, ...)
{
    va_list ap;

    if (s->refused[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(s->refused, sizeof(s->refused), fmt, ap);
    va_end(ap);
}

const char *sink_refused(const sink *s)
{
    return s->refused[0] != '\0' ? s->refused : NULL;
}

size_t sink_pollfds(sink *s, struct pollfd *fds, size_t max)
{
    return s->ops->pollfds ? s->ops->pollfds(s, fds, max) : 0;
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

int sink_fifo_push(struct sink_fifo *q, struct sink_held *h)
{
    if (q->tail == q->cap && q->head > 0) {
        memmove(q->v, q->v + q->head, (q->tail - q->head) * sizeof(*q->v));
        q->tail -= q->head;
        q->head = 0;
    }
    if (q->tail == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 1024;
        struct sink_held **n = realloc(q->v, ncap * sizeof(*n));

        if (!n)
            return -1;
        q->v = n;
        q->cap = ncap;
    }
    q->v[q->tail++] = h;
    return 0;
}

struct sink_held *sink_fifo_unpush(struct sink_fifo *q)
{
    return q->tail > q->head ? q->v[--q->tail] : NULL;
}

struct sink_held *sink_fifo_pop(struct sink_fifo *q)
{
    struct sink_held *h;

    if (q->head == q->tail)
        return NULL;
    h = q->v[q->head++];
    if (q->head == q->tail)
        q->head = q->tail = 0;
    return h;
}

void sink_fifo_clear(struct sink_fifo *q)
{
    while (q->head < q->tail)
        free(q->v[q->head++]);
    q->head = q->tail = 0;
}

void sink_fifo_free(struct sink_fifo *q)
{
    sink_fifo_clear(q);
    free(q->v);
    *q = (struct sink_fifo){0};
}

void sink_wait_reports(sink *s, int timeout_ms)
{
    struct timespec ts;
    int64_t deadline;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
    for (;;) {
        struct pollfd fd = {.fd = s->pipefd[0], .events = POLLIN};
        int64_t now;

        sink_drain_fd(s);
        s->ops->poll(s);
        if (s->outstanding == 0)
            return;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (now >= deadline)
            return;
        poll(&fd, 1, (int)(deadline - now > 100 ? 100 : deadline - now));
    }
}

int sink_flush(sink *s, int timeout_ms)
{
    s->ops->flush(s, timeout_ms);
    return s->outstanding;
}

int sink_reset(sink *s, char *errstr, size_t errstr_size)
{
    int rc = s->ops->reset(s, errstr, errstr_size);

    s->outstanding = 0;
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

void sink_notes_init(struct sink_notes *n)
{
    memset(n, 0, sizeof(*n));
    pthread_mutex_init(&n->mu, NULL);
}

static const char no_memory_text[] = "(the error's text was lost: out of memory)";

static void free_report(struct sink_held *h)
{
    if (h->err != no_memory_text)
        free(h->err);
    free(h);
}

void sink_notes_clear(struct sink_notes *n)
{
    pthread_mutex_lock(&n->mu);
    while (n->head) {
        struct sink_held *h = n->head;

        n->head = h->next;
        free_report(h);
    }
    n->tail = NULL;
    for (size_t i = 0; i < n->nlines; i++)
        free(n->lines[i]);
    n->nlines = 0;
    pthread_mutex_unlock(&n->mu);
}

void sink_notes_destroy(struct sink_notes *n)
{
    sink_notes_clear(n);
    free(n->lines);
    pthread_mutex_destroy(&n->mu);
}

void sink_note_report(sink *s, struct sink_notes *n, struct sink_held *h,
                      enum sink_outcome outcome, bool too_large, const char *code,
                      const char *err)
{
    h->next = NULL;
    h->outcome = outcome;
    h->too_large = too_large;
    snprintf(h->code, sizeof(h->code), "%s", code ? code : "");
    h->err = err && *err ? strdup(err) : NULL;
    if (err && *err && !h->err)
        h->err = (char *)no_memory_text;
    pthread_mutex_lock(&n->mu);
    if (n->tail)
        n->tail->next = h;
    else
        n->head = h;
    n->tail = h;
    pthread_mutex_unlock(&n->mu);
    sink_wakeup(s);
}

static void note_line(sink *s, struct sink_notes *n, bool refuse, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void note_line(sink *s, struct sink_notes *n, bool refuse, const char *fmt, va_list ap)
{
    char line[768];
    char *copy;

    vsnprintf(line, sizeof(line), fmt, ap);
    pthread_mutex_lock(&n->mu);
    if (refuse) {
        if (!n->refused[0])
            snprintf(n->refused, sizeof(n->refused), "%s", line);
    } else {
        if (n->nlines == n->cap) {
            size_t ncap = n->cap ? n->cap * 2 : 16;
            char **nl = realloc(n->lines, ncap * sizeof(*nl));

            if (nl)
                n->lines = nl, n->cap = ncap;
        }
        if (n->nlines < n->cap && (copy = strdup(line)))
            n->lines[n->nlines++] = copy;
        else
            n->lost++;
    }
    pthread_mutex_unlock(&n->mu);
    sink_wakeup(s);
}

void sink_note_log(sink *s, struct sink_notes *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    note_line(s, n, false, fmt, ap);
    va_end(ap);
}

void sink_note_refuse(sink *s, struct sink_notes *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    note_line(s, n, true, fmt, ap);
    va_end(ap);
}

int sink_notes_serve(sink *s, struct sink_notes *n, const char *destination)
{
    struct sink_held *h;
    char **lines, refused[sizeof(n->refused)];
    size_t nlines, lost;
    int served = 0;

    pthread_mutex_lock(&n->mu);
    h = n->head;
    n->head = n->tail = NULL;
    lines = n->lines;
    nlines = n->nlines;
    lost = n->lost;
    n->lines = NULL;
    n->nlines = n->cap = n->lost = 0;
    snprintf(refused, sizeof(refused), "%s", n->refused);
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < nlines; i++) {
        log_warn("%s", lines[i]);
        free(lines[i]);
    }
    free(lines);
    if (lost)
        log_warn("%s: %zu warnings lost for want of memory", s->type->name, lost);
    if (refused[0])
        sink_refuse(s, "%s", refused);
    while (h) {
        struct sink_held *next = h->next;
        struct sink_report r = {.tag = h->tag, .outcome = h->outcome, .too_large = h->too_large,
                                .code = h->code, .err = h->err ? h->err : "",
                                .destination = destination ? destination : h->data};
        struct out_msg m;

        if (r.outcome == SINK_UNDELIVERABLE) {
            sink_held_view(h, &m);
            r.msg = &m;
        }
        sink_report(s, &r);
        free_report(h);
        h = next;
        served++;
    }
    return served;
}

struct sink_held *sink_hold(const struct out_msg *m, uint64_t tag)
{
    size_t tlen = strlen(m->topic), n = tlen + 1 + m->id_len + m->key_len + m->value_len;
    struct sink_held *h;
    char *p;

    for (int i = 0; i < m->nheaders; i++)
        n += strlen(m->headers[i].name) + 1 + sizeof(size_t) + m->headers[i].len;
    if (!(h = malloc(sizeof(*h) + n)))
        return NULL;
    h->tag = tag;
    h->id_len = m->id_len;
    h->key_len = m->key ? m->key_len : 0;
    h->value_len = m->value ? m->value_len : 0;
    h->has_value = m->value != NULL;
    h->nheaders = m->nheaders;
    h->next = NULL;
    h->err = NULL;
    p = h->data;
    memcpy(p, m->topic, tlen + 1);
    p += tlen + 1;
    memcpy(p, m->id, m->id_len);
    p += m->id_len;
    if (h->key_len)
        memcpy(p, m->key, h->key_len);
    p += h->key_len;
    if (h->value_len)
        memcpy(p, m->value, h->value_len);
    p += h->value_len;
    for (int i = 0; i < m->nheaders; i++) {
        size_t nl = strlen(m->headers[i].name) + 1, vl = m->headers[i].len;

        memcpy(p, m->headers[i].name, nl);
        p += nl;
        memcpy(p, &vl, sizeof(vl));
        p += sizeof(vl);
        if (vl)
            memcpy(p, m->headers[i].value, vl);
        p += vl;
    }
    return h;
}

void sink_held_view(const struct sink_held *h, struct out_msg *m)
{
    const char *p = h->data;

    snprintf(m->topic, sizeof(m->topic), "%s", p);
    p += strlen(p) + 1;
    m->id = p;
    m->id_len = h->id_len;
    p += h->id_len;
    m->key = p;
    m->key_len = h->key_len;
    p += h->key_len;
    m->value = h->has_value ? p : NULL;
    m->value_len = h->value_len;
    p += h->value_len;
    m->nheaders = h->nheaders;
    for (int i = 0; i < h->nheaders; i++) {
        size_t vl;

        m->headers[i].name = p;
        p += strlen(p) + 1;
        memcpy(&vl, p, sizeof(vl));
        p += sizeof(vl);
        m->headers[i].value = p;
        m->headers[i].len = vl;
        p += vl;
    }
}

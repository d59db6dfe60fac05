/*
 * format.c -- topic templates and the CloudEvents binary-mode rendering.
 *
 * A topic template is split once, at start, into alternating literal and
 * placeholder segments; rendering an event walks the segments and copies bytes into
 * the message's fixed topic buffer.  Placeholder columns are looked up by name in the
 * event's relation each time (a handful of string compares) so that a Relation
 * message that reorders columns needs no cache invalidation here.
 */
#include "format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct segment {
    bool is_column;
    char *text; /* literal text, or the column name */
    size_t len;
};

struct formatter {
    struct segment *segs;
    size_t nsegs;
    char *source;
};

void formatter_free(formatter *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nsegs; i++)
        free(f->segs[i].text);
    free(f->segs);
    free(f->source);
    free(f);
}

static int add_segment(formatter *f, bool is_column, const char *s, size_t len)
{
    struct segment *n = realloc(f->segs, (f->nsegs + 1) * sizeof(*n));

    if (!n)
        return -ENOMEM;
    f->segs = n;
    n[f->nsegs].is_column = is_column;
    n[f->nsegs].len = len;
    n[f->nsegs].text = strndup(s, len);
    if (!n[f->nsegs].text)
        return -ENOMEM;
    f->nsegs++;
    return 0;
}

formatter *formatter_new(const char *topic_template, const char *source, char *errstr,
                         size_t errstr_size)
{
    formatter *f = calloc(1, sizeof(*f));
    const char *p = topic_template;

    if (!f || !(f->source = strdup(source)))
        goto nomem;
    while (*p) {
        const char *open = strchr(p, '{');
        const char *close;

        if (!open) {
            if (add_segment(f, false, p, strlen(p)) < 0)
                goto nomem;
            break;
        }
        if (open > p && add_segment(f, false, p, (size_t)(open - p)) < 0)
            goto nomem;
        close = strchr(open, '}');
        if (!close || close == open + 1) {
            snprintf(errstr, errstr_size, "bad placeholder in topic template \"%s\"",
                     topic_template);
            formatter_free(f);
            return NULL;
        }
        if (add_segment(f, true, open + 1, (size_t)(close - open - 1)) < 0)
            goto nomem;
        p = close + 1;
    }
    return f;

nomem:
    formatter_free(f);
    snprintf(errstr, errstr_size, "out of memory");
    return NULL;
}

static bool topic_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

static int render_topic(const formatter *f, const struct event *ev, char *topic,
                        char *errstr, size_t errstr_size)
{
    size_t n = 0;

    for (size_t i = 0; i < f->nsegs; i++) {
        const struct segment *s = &f->segs[i];
        const char *src = s->text;
        size_t len = s->len;

        if (s->is_column) {
            int ix = rel_column_index(ev->rel, s->text);
            const struct pgo_value *v;

            if (ix < 0) {
                snprintf(errstr, errstr_size,
                         "topic placeholder \"{%s}\" names no column of \"%s.%s\"", s->text,
                         ev->rel->nspname, ev->rel->relname);
                return -EINVAL;
            }
            v = &ev->tuple->cols[ix];
            if (v->kind != PGO_VALUE_TEXT) {
                snprintf(errstr, errstr_size, "topic placeholder \"{%s}\" is %s", s->text,
                         v->kind == PGO_VALUE_NULL            ? "null"
                         : v->kind == PGO_VALUE_UNCHANGED_TOAST ? "an unchanged toast value"
                                                                : "a binary value");
                return -EINVAL;
            }
            src = v->data;
            len = v->len;
        }
        if (len > FORMAT_TOPIC_MAX - n) {
            snprintf(errstr, errstr_size, "topic name longer than %d bytes", FORMAT_TOPIC_MAX);
            return -EINVAL;
        }
        if (len > 0)
            memcpy(topic + n, src, len);
        n += len;
    }
    topic[n] = '\0';
    if (n == 0) {
        snprintf(errstr, errstr_size, "topic name is empty");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!topic_char_ok(topic[i])) {
            snprintf(errstr, errstr_size,
                     "topic name \"%s\" has a character Kafka does not allow: use "
                     "letters, digits, '.', '_' and '-'",
                     topic);
            return -EINVAL;
        }
    }
    if (strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0) {
        snprintf(errstr, errstr_size, "topic name \"%s\" is not allowed", topic);
        return -EINVAL;
    }
    return 0;
}

size_t format_rfc3339(int64_t unix_us, char *buf, size_t size)
{
    time_t secs = (time_t)(unix_us / 1000000);
    int64_t frac = unix_us % 1000000;
    struct tm tm;
    size_t n;
    int r;

    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(buf + n, size - n, ".%06dZ", (int)frac);
    return n + (r > 0 ? (size_t)r : 0);
}

static void add_header(struct out_msg *out, const char *name, const char *value, size_t len)
{
    struct msg_header *h = &out->headers[out->nheaders++];

    h->name = name;
    h->value = value;
    h->len = len;
}

int formatter_render(const formatter *f, const struct event *ev, struct out_msg *out,
                     char *errstr, size_t errstr_size)
{
    char *s = out->scratch;
    size_t left = sizeof(out->scratch);
    size_t n;
    int r;

    if ((r = render_topic(f, ev, out->topic, errstr, errstr_size)) < 0)
        return r;
    out->key = ev->aggregateid.p;
    out->key_len = ev->aggregateid.len;
    out->value = ev->payload.p;
    out->value_len = ev->payload.len;
    out->nheaders = 0;

    add_header(out, "ce_specversion", "1.0", 3);
    add_header(out, "ce_id", ev->id.p, ev->id.len);
    add_header(out, "ce_source", f->source, strlen(f->source));
    add_header(out, "ce_type", ev->type.p, ev->type.len);
    add_header(out, "ce_subject", ev->aggregateid.p, ev->aggregateid.len);

    n = format_rfc3339(ev->pos.commit_time_us, s, left);
    add_header(out, "ce_time", s, n);
    s += n;
    left -= n;

    r = snprintf(s, left, LSN_FMT, LSN_ARGS(ev->pos.commit_lsn));
    add_header(out, "ce_pglsn", s, (size_t)r);
    s += r;
    left -= (size_t)r;

    r = snprintf(s, left, "%" PRIu32, ev->pos.xid);
    add_header(out, "ce_pgxid", s, (size_t)r);
    s += r;
    left -= (size_t)r;

    r = snprintf(s, left, "%" PRIu32, ev->pos.index);
    add_header(out, "ce_pgindex", s, (size_t)r);

    add_header(out, "content-type", "application/json", 16);
    return 0;
}

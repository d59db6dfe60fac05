/*
 * format.c -- topic templates, and events rendered as messages: CloudEvents binary
 * and structured mode and Debezium's formats, for outbox events and table changes.
 *
 * Every rendering writes into buffers the formatter owns and reuses (the structured
 * envelope, a change's data and key), so once warm no event allocates.  A topic
 * template is split once, at start, into alternating literal and placeholder
 * segments; rendering an event walks the segments and copies bytes into the
 * message's fixed topic buffer.  Placeholder columns are looked up by name in the
 * event's relation each time (a handful of string compares) so that a Relation
 * message that reorders columns needs no cache invalidation here.
 *
 * The position headers (commit time, LSN, xid, timeline) are the same for every event
 * of a transaction, so their text is made once per transaction and kept in the
 * formatter, and made without printf() or strftime(): formatting them with the C
 * library for every event was a third of the relay thread's instructions in a drain
 * (docs/performance.md).
 */
#include "format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdcjson.h"
#include "config.h"
#include "jsonbuf.h"
#include "jsonscan.h"

struct segment {
    bool is_column;
    char *text; /* literal text, or the placeholder's name */
    size_t len;
};

/* A topic template split into literal and placeholder segments. */
struct tmpl {
    struct segment *segs;
    size_t nsegs;
};

/* The position text of one transaction (render_pos()). */
struct pos_cache {
    bool valid;
    int64_t commit_time_us;
    lsn_t commit_lsn;
    pgo_xid_t xid;
    uint32_t timeline;
    char head[80]; /* "time\0lsn\0xid\0": at most 40 + 18 + 11 */
    size_t head_len;
    size_t time_len, lsn_len, xid_len;
    char timeline_text[12];
    size_t timeline_len;
};

struct formatter {
    struct tmpl topic;     /* outbox events */
    struct tmpl cdc_topic; /* table changes */
    char *source;
    char *cdc_source_prefix; /* "/<database>": a change's source is prefix/schema.table */
    enum format_kind kind;
    struct jbuf value;   /* the structured envelope, or a change's value */
    struct jbuf data;    /* a change's data object */
    struct jbuf key;     /* a change's key */
    struct jbuf aux;     /* a change's unchanged-TOAST column list */
    struct jbuf headers; /* unescaped names and values of a headers object */
    struct pos_cache pos; /* position text of the transaction rendered last */
};

void formatter_set_kind(formatter *f, enum format_kind kind)
{
    f->kind = kind;
}

static void tmpl_free(struct tmpl *t)
{
    for (size_t i = 0; i < t->nsegs; i++)
        free(t->segs[i].text);
    free(t->segs);
    t->segs = NULL;
    t->nsegs = 0;
}

void formatter_free(formatter *f)
{
    if (!f)
        return;
    tmpl_free(&f->topic);
    tmpl_free(&f->cdc_topic);
    free(f->source);
    free(f->cdc_source_prefix);
    jbuf_free(&f->value);
    jbuf_free(&f->data);
    jbuf_free(&f->key);
    jbuf_free(&f->aux);
    jbuf_free(&f->headers);
    free(f);
}

static int add_segment(struct tmpl *t, bool is_column, const char *s, size_t len)
{
    struct segment *n = realloc(t->segs, (t->nsegs + 1) * sizeof(*n));

    if (!n)
        return -ENOMEM;
    t->segs = n;
    n[t->nsegs].is_column = is_column;
    n[t->nsegs].len = len;
    n[t->nsegs].text = strndup(s, len);
    if (!n[t->nsegs].text)
        return -ENOMEM;
    t->nsegs++;
    return 0;
}

/* Split text into t.  Returns 0, -EINVAL (bad placeholder) or -ENOMEM; errstr set. */
static int tmpl_parse(struct tmpl *t, const char *text, char *errstr, size_t errstr_size)
{
    const char *p = text;

    while (*p) {
        const char *open = strchr(p, '{');
        const char *close;

        if (!open) {
            if (add_segment(t, false, p, strlen(p)) < 0)
                goto nomem;
            break;
        }
        if (open > p && add_segment(t, false, p, (size_t)(open - p)) < 0)
            goto nomem;
        close = strchr(open, '}');
        if (!close || close == open + 1) {
            snprintf(errstr, errstr_size, "bad placeholder in topic template \"%s\"", text);
            return -EINVAL;
        }
        if (add_segment(t, true, open + 1, (size_t)(close - open - 1)) < 0)
            goto nomem;
        p = close + 1;
    }
    return 0;

nomem:
    snprintf(errstr, errstr_size, "out of memory");
    return -ENOMEM;
}

formatter *formatter_new(const char *topic_template, const char *source, char *errstr,
                         size_t errstr_size)
{
    formatter *f = calloc(1, sizeof(*f));

    if (!f || !(f->source = strdup(source))) {
        formatter_free(f);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    jbuf_init(&f->value);
    jbuf_init(&f->data);
    jbuf_init(&f->key);
    jbuf_init(&f->aux);
    jbuf_init(&f->headers);
    if (tmpl_parse(&f->topic, topic_template, errstr, errstr_size) < 0 ||
        tmpl_parse(&f->cdc_topic, "cdc.{schema}.{table}", errstr, errstr_size) < 0) {
        formatter_free(f);
        return NULL;
    }
    return f;
}

formatter *formatter_from_config(const struct relay_config *cfg, const char *dbname,
                                 char *errstr, size_t errstr_size)
{
    char source[320];
    formatter *f;

    if (cfg->outbox.source && cfg->outbox.source[0])
        snprintf(source, sizeof(source), "%s", cfg->outbox.source);
    else
        snprintf(source, sizeof(source), "/%s/%s.%s", dbname, cfg->outbox.schema,
                 cfg->outbox.table);
    const struct sink_common *c = relay_config_sink_common(cfg);

    /* A sink without a destination of its own (stdout) still names one, as Kafka would. */
    if (!(f = formatter_new(c && c->destination ? c->destination : FORMAT_DEFAULT_DESTINATION,
                            source, errstr, errstr_size)))
        return NULL;
    snprintf(source, sizeof(source), "/%s", dbname);
    if (formatter_set_cdc(f, cfg->cdc.topic, source, errstr, errstr_size) < 0) {
        formatter_free(f);
        return NULL;
    }
    /* The two enums list the same formats in the same order. */
    f->kind = (enum format_kind)(c ? c->format : RELAY_FORMAT_CLOUDEVENTS);
    return f;
}

int formatter_set_cdc(formatter *f, const char *topic_template, const char *source_prefix,
                      char *errstr, size_t errstr_size)
{
    struct tmpl t = {NULL, 0};
    char *prefix = strdup(source_prefix);
    int rc;

    if (!prefix) {
        snprintf(errstr, errstr_size, "out of memory");
        return -ENOMEM;
    }
    if ((rc = tmpl_parse(&t, topic_template, errstr, errstr_size)) < 0) {
        free(prefix);
        tmpl_free(&t);
        return rc;
    }
    tmpl_free(&f->cdc_topic);
    f->cdc_topic = t;
    free(f->cdc_source_prefix);
    f->cdc_source_prefix = prefix;
    return 0;
}

/* An event field named by a placeholder: true when name is one (*p NULL if unset). */
static bool event_field(const struct event *ev, const char *name, const char **p, size_t *len)
{
    const struct ev_str *v;

    if (ev->change.op) {
        static const char *const ops[] = {"c", "u", "d", "t"};

        if (strcmp(name, "schema") == 0)
            *p = ev->rel->nspname;
        else if (strcmp(name, "table") == 0)
            *p = ev->rel->relname;
        else if (strcmp(name, "op") == 0)
            *p = ops[strchr("cudt", ev->change.op) - "cudt"];
        else
            return false;
        *len = strlen(*p);
        return true;
    }
    if (strcmp(name, "aggregatetype") == 0)
        v = &ev->aggregatetype;
    else if (strcmp(name, "type") == 0)
        v = &ev->type;
    else if (strcmp(name, "version") == 0)
        v = &ev->version;
    else if (strcmp(name, "id") == 0)
        v = &ev->id;
    else if (strcmp(name, "aggregateid") == 0)
        v = &ev->aggregateid;
    else
        return false;
    *p = v->p;
    *len = v->len;
    return true;
}

static int render_topic(const struct tmpl *t, const struct event *ev, char *topic,
                        char *errstr, size_t errstr_size)
{
    size_t n = 0;

    for (size_t i = 0; i < t->nsegs; i++) {
        const struct segment *s = &t->segs[i];
        const char *src = s->text;
        size_t len = s->len;

        if (s->is_column && event_field(ev, s->text, &src, &len)) {
            if (!src) {
                snprintf(errstr, errstr_size, "topic placeholder \"{%s}\" is null", s->text);
                return -EDESTADDRREQ;
            }
        } else if (s->is_column) {
            int ix = ev->tuple ? rel_column_index(ev->rel, s->text) : -1;
            const struct pgo_value *v;

            if (ix < 0 && !ev->tuple) {
                snprintf(errstr, errstr_size,
                         "topic placeholder \"{%s}\" is not a field of this event", s->text);
                return -EDESTADDRREQ;
            }
            if (ix < 0) {
                snprintf(errstr, errstr_size,
                         "topic placeholder \"{%s}\" names no column of \"%s.%s\"", s->text,
                         ev->rel->nspname, ev->rel->relname);
                return -EDESTADDRREQ;
            }
            v = &ev->tuple->cols[ix];
            if (v->kind != PGO_VALUE_TEXT) {
                snprintf(errstr, errstr_size, "topic placeholder \"{%s}\" is %s", s->text,
                         v->kind == PGO_VALUE_NULL            ? "null"
                         : v->kind == PGO_VALUE_UNCHANGED_TOAST ? "an unchanged toast value"
                                                                : "a binary value");
                return -EDESTADDRREQ;
            }
            src = v->data;
            len = v->len;
        }
        if (len > 0 && memchr(src, '\0', len)) {
            snprintf(errstr, errstr_size, "topic placeholder \"{%s}\" holds a NUL byte", s->text);
            return -EDESTADDRREQ;
        }
        if (len > FORMAT_TOPIC_MAX - n) {
            snprintf(errstr, errstr_size, "topic name longer than %d bytes", FORMAT_TOPIC_MAX);
            return -EDESTADDRREQ;
        }
        if (len > 0)
            memcpy(topic + n, src, len);
        n += len;
    }
    topic[n] = '\0';
    /* Whether the sink takes the name is the sink's to say (sink_destination_check()). */
    return 0;
}

/* Write n's decimal digits to buf (no NUL); returns how many (at most 10). */
static size_t put_u32(char *buf, uint32_t n)
{
    char tmp[10];
    size_t len = 0;

    do {
        tmp[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (size_t i = 0; i < len; i++)
        buf[i] = tmp[len - 1 - i];
    return len;
}

/* Write n as upper-case hex without padding, as "%X" does (no NUL); at most 8 bytes. */
static size_t put_hex32(char *buf, uint32_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    char tmp[8];
    size_t len = 0;

    do {
        tmp[len++] = digits[n & 0xF];
        n >>= 4;
    } while (n);
    for (size_t i = 0; i < len; i++)
        buf[i] = tmp[len - 1 - i];
    return len;
}

/* Two digits of v (0-99). */
static void put_2(char *buf, int v)
{
    buf[0] = (char)('0' + v / 10);
    buf[1] = (char)('0' + v % 10);
}

/*
 * format_rfc3339() without the C library, for four-digit years: civil date from days
 * since the epoch (the proleptic Gregorian algorithm of Howard Hinnant's "chrono-
 * compatible low-level date algorithms").  gmtime_r(), strftime() and snprintf()
 * cost some 2,000 instructions an event (measured with callgrind), this a few dozen.
 * Returns 0 when the year has another number of digits: the caller falls back.
 */
static size_t rfc3339_fast(int64_t secs, int frac, char *buf)
{
    int64_t days = secs / 86400, rem = secs % 86400;
    int64_t era, doe, yoe, doy, mp, y;
    int m, d;

    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    days += 719468; /* days from 0000-03-01 to 1970-01-01 */
    era = (days >= 0 ? days : days - 146096) / 146097;
    doe = days - era * 146097;                                   /* [0, 146096] */
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* [0, 365] */
    mp = (5 * doy + 2) / 153;                      /* [0, 11], March first */
    d = (int)(doy - (153 * mp + 2) / 5 + 1);
    m = (int)(mp < 10 ? mp + 3 : mp - 9);
    if (m <= 2)
        y++;
    if (y < 1000 || y > 9999)
        return 0;
    put_2(buf, (int)(y / 100));
    put_2(buf + 2, (int)(y % 100));
    buf[4] = '-';
    put_2(buf + 5, m);
    buf[7] = '-';
    put_2(buf + 8, d);
    buf[10] = 'T';
    put_2(buf + 11, (int)(rem / 3600));
    buf[13] = ':';
    put_2(buf + 14, (int)(rem / 60 % 60));
    buf[16] = ':';
    put_2(buf + 17, (int)(rem % 60));
    buf[19] = '.';
    for (int i = 25; i >= 20; i--) {
        buf[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    buf[26] = 'Z';
    buf[27] = '\0';
    return 27;
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
    if (size >= 28 && (n = rfc3339_fast((int64_t)secs, (int)frac, buf)) > 0)
        return n;
    gmtime_r(&secs, &tm);
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(buf + n, size - n, ".%06dZ", (int)frac);
    return n + (r > 0 ? (size_t)r : 0);
}

static int add_header(struct out_msg *out, const char *name, const char *value, size_t len,
                      char *errstr, size_t errstr_size)
{
    struct msg_header *h;

    if (out->nheaders >= FORMAT_MAX_HEADERS) {
        snprintf(errstr, errstr_size, "more than %d headers", FORMAT_MAX_HEADERS);
        return -EINVAL;
    }
    h = &out->headers[out->nheaders++];
    h->name = name;
    h->value = value;
    h->len = len;
    return 0;
}

/* Text of the positional attributes, kept in out->scratch. */
struct pos_text {
    const char *time, *lsn, *xid, *index, *timeline;
    size_t time_len, lsn_len, xid_len, index_len, timeline_len;
};

/*
 * Fill the formatter's cache of a transaction's position text: "time\0lsn\0xid\0" and
 * the timeline.  Every event of a transaction has the same, so a 100-row transaction
 * formats them once, not a hundred times.
 */
static void pos_cache_fill(struct pos_cache *c, const struct event_pos *pos)
{
    char *s = c->head;
    uint32_t hi = (uint32_t)(pos->commit_lsn >> 32), lo = (uint32_t)pos->commit_lsn;

    c->commit_time_us = pos->commit_time_us;
    c->commit_lsn = pos->commit_lsn;
    c->xid = pos->xid;
    c->timeline = pos->timeline;
    c->time_len = format_rfc3339(pos->commit_time_us, s, 40);
    s += c->time_len + 1;
    /* LSN_FMT, "%X/%X" */
    c->lsn_len = put_hex32(s, hi);
    s[c->lsn_len++] = '/';
    c->lsn_len += put_hex32(s + c->lsn_len, lo);
    s[c->lsn_len] = '\0';
    s += c->lsn_len + 1;
    c->xid_len = put_u32(s, pos->xid);
    s[c->xid_len] = '\0';
    s += c->xid_len + 1;
    c->head_len = (size_t)(s - c->head);
    c->timeline_len = put_u32(c->timeline_text, pos->timeline);
    c->timeline_text[c->timeline_len] = '\0';
    c->valid = true;
}

/*
 * The positional texts, laid out in out->scratch as "time\0lsn\0xid\0index\0timeline\0"
 * (a change's id is written after them).  At most 40 + 18 + 11 + 11 + 11 bytes of the
 * 256 bytes of scratch.
 */
static void render_pos(formatter *f, const struct event *ev, struct out_msg *out,
                       struct pos_text *t)
{
    struct pos_cache *c = &f->pos;
    char *s = out->scratch;

    if (!c->valid || c->commit_lsn != ev->pos.commit_lsn || c->xid != ev->pos.xid ||
        c->commit_time_us != ev->pos.commit_time_us || c->timeline != ev->pos.timeline)
        pos_cache_fill(c, &ev->pos);
    memcpy(s, c->head, c->head_len);
    t->time = s;
    t->time_len = c->time_len;
    t->lsn = s + c->time_len + 1;
    t->lsn_len = c->lsn_len;
    t->xid = t->lsn + c->lsn_len + 1;
    t->xid_len = c->xid_len;
    s += c->head_len;
    t->index = s;
    t->index_len = put_u32(s, ev->pos.index);
    s[t->index_len] = '\0';
    s += t->index_len + 1;
    t->timeline = s;
    t->timeline_len = c->timeline_len;
    memcpy(s, c->timeline_text, c->timeline_len + 1);
}

/*
 * The extra headers every format carries: configured columns, then the members of a
 * headers object (strings unescaped, other values as their JSON text, null as a
 * header without a value).
 */
static int add_extra_headers(formatter *f, const struct event *ev, struct out_msg *out,
                             char *errstr, size_t errstr_size)
{
    struct json_iter it;
    struct ev_str key, val, name, text;
    int err;

    for (int i = 0; i < ev->nextra; i++) {
        if (ev->extra[i].value.p &&
            (err = add_header(out, ev->extra[i].name, ev->extra[i].value.p, ev->extra[i].value.len,
                              errstr, errstr_size)) < 0)
            return err;
    }
    if (!ev->headers.p || json_iter_object(&it, ev->headers.p, ev->headers.len) < 0)
        return 0;
    /*
     * Names need a terminating NUL, values may need unescaping: both go to f->headers,
     * reserved up front (neither makes text longer than the object plus one NUL per
     * member) so that pointers into it stay valid.
     */
    jbuf_reset(&f->headers);
    for (size_t i = 0; i < 2 * ev->headers.len + 16; i++)
        jbuf_putc(&f->headers, 0);
    jbuf_reset(&f->headers);
    while (json_iter_next(&it, &key, &val) == 1) {
        size_t start = f->headers.len;

        if (json_string_unescape(key, &f->headers, &name) < 0)
            goto nomem;
        if (name.p != f->headers.data + start) /* borrowed: copy, to add the NUL */
            jbuf_put(&f->headers, name.p, name.len);
        jbuf_putc(&f->headers, '\0');
        name.p = f->headers.data + start;
        if (json_raw_is_string(val)) {
            struct ev_str body = {val.p + 1, val.len - 2};

            if (json_string_unescape(body, &f->headers, &text) < 0)
                goto nomem;
        } else if (val.len == 4 && memcmp(val.p, "null", 4) == 0) {
            text.p = NULL;
            text.len = 0;
        } else {
            text = val;
        }
        if (f->headers.oom)
            goto nomem;
        if ((err = add_header(out, name.p, text.p, text.len, errstr, errstr_size)) < 0)
            return err;
    }
    return 0;

nomem:
    snprintf(errstr, errstr_size, "out of memory");
    return -ENOMEM;
}

static void put_member(struct jbuf *b, const char *name, const char *v, size_t len)
{
    jbuf_putc(b, ',');
    jbuf_put_json_string(b, name, strlen(name));
    jbuf_putc(b, ':');
    jbuf_put_json_string(b, v, len);
}

static void put_raw_member(struct jbuf *b, const char *name, const char *v, size_t len)
{
    jbuf_putc(b, ',');
    jbuf_put_json_string(b, name, strlen(name));
    jbuf_putc(b, ':');
    jbuf_put(b, v, len);
}

/*
 * Embed JSON text.  Text with line breaks (a json or text payload keeps the
 * application's formatting; jsonb never has any) is copied without the whitespace
 * between tokens, so that an envelope is always one line -- the stdout sink writes
 * one event per line.
 */
static void put_json_oneline(struct jbuf *b, const char *p, size_t n)
{
    bool in_string = false;

    if (!memchr(p, '\n', n) && !memchr(p, '\r', n)) {
        jbuf_put(b, p, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = p[i];

        if (in_string) {
            if (c == '\\' && i + 1 < n) {
                jbuf_putc(b, c);
                c = p[++i];
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        }
        jbuf_putc(b, c);
    }
}

/* A version is a JSON number when it is all digits, else a string. */
static bool is_integer(const struct ev_str *v)
{
    size_t i = v->len > 0 && v->p[0] == '-' ? 1 : 0;

    if (i == v->len || v->len > 18)
        return false;
    if (v->p[i] == '0' && v->len > i + 1)
        return false; /* JSON numbers have no leading zeros: "01" stays a string */
    for (; i < v->len; i++)
        if (v->p[i] < '0' || v->p[i] > '9')
            return false;
    return true;
}

/* The application/cloudevents+json envelope, in f->value. */
static int render_structured(formatter *f, const struct event *ev, const struct pos_text *t,
                             char *errstr, size_t errstr_size)
{
    struct jbuf *b = &f->value;

    jbuf_reset(b);
    jbuf_puts(b, "{\"specversion\":\"1.0\"");
    put_member(b, "id", ev->id.p, ev->id.len);
    put_member(b, "source", f->source, strlen(f->source));
    put_member(b, "type", ev->type.p, ev->type.len);
    put_member(b, "subject", ev->aggregateid.p, ev->aggregateid.len);
    put_member(b, "time", t->time, t->time_len);
    put_member(b, "datacontenttype", "application/json", 16);
    if (is_integer(&ev->version))
        put_raw_member(b, "schemaversion", ev->version.p, ev->version.len);
    else
        put_member(b, "schemaversion", ev->version.p, ev->version.len);
    put_member(b, "pgsystemid", ev->pos.system_id ? ev->pos.system_id : "",
               ev->pos.system_id ? strlen(ev->pos.system_id) : 0);
    put_raw_member(b, "pgtimeline", t->timeline, t->timeline_len);
    put_member(b, "pglsn", t->lsn, t->lsn_len);
    put_raw_member(b, "pgxid", t->xid, t->xid_len);
    put_raw_member(b, "pgindex", t->index, t->index_len);
    if (ev->payload.p) {
        put_raw_member(b, "data", "", 0);
        put_json_oneline(b, ev->payload.p, ev->payload.len);
    }
    jbuf_putc(b, '}');
    if (b->oom) {
        snprintf(errstr, errstr_size, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static const char *op_name(char op)
{
    switch (op) {
    case 'c': return "created";
    case 'u': return "updated";
    case 'd': return "deleted";
    default: return "truncated";
    }
}

/* The change's "before" image: the old row, its key, or null. */
static int put_before(const struct event *ev, struct jbuf *b, char *errstr, size_t errstr_size)
{
    const struct event_change *c = &ev->change;

    if (c->old_kind == 'O')
        return cdc_row_to_json(b, ev->rel, c->oldtuple, NULL, errstr, errstr_size);
    if (c->old_kind == 'K')
        return cdc_key_to_json(b, ev->rel, c->oldtuple, errstr, errstr_size);
    jbuf_puts(b, "null");
    return 0;
}

/*
 * A table change: the data object {"op", "before", "after"[, "unchanged_toast"]},
 * keyed by the primary key as a JSON object, rendered in the chosen format.
 */
static int render_change(formatter *f, const struct event *ev, struct out_msg *out, char *errstr,
                         size_t errstr_size)
{
    const struct event_change *c = &ev->change;
    const struct pgo_tuple *keyt = c->op == 'd' ? c->oldtuple : c->newtuple;
    struct pos_text t;
    char table[260], source[320], type[320];
    char *id;
    size_t idlen;
    int r;

    if ((r = render_topic(&f->cdc_topic, ev, out->topic, errstr, errstr_size)) < 0)
        return r;
    out->nheaders = 0;
    render_pos(f, ev, out, &t);
    /* The id is the position: a redelivered change keeps it. */
    id = (char *)t.timeline + t.timeline_len + 1; /* after the position texts in scratch */
    memcpy(id, t.lsn, t.lsn_len);
    id[t.lsn_len] = ':';
    memcpy(id + t.lsn_len + 1, t.index, t.index_len);
    idlen = t.lsn_len + 1 + t.index_len;
    id[idlen] = '\0';
    out->id = id;
    out->id_len = idlen;

    jbuf_reset(&f->key);
    if (keyt && (r = cdc_key_to_json(&f->key, ev->rel, keyt, errstr, errstr_size)) < 0)
        return r;
    jbuf_reset(&f->data);
    jbuf_reset(&f->aux);
    jbuf_printf(&f->data, "{\"op\":\"%c\",\"before\":", c->op);
    if ((r = put_before(ev, &f->data, errstr, errstr_size)) < 0)
        return r;
    jbuf_puts(&f->data, ",\"after\":");
    if (c->newtuple) {
        if ((r = cdc_row_to_json(&f->data, ev->rel, c->newtuple, &f->aux, errstr,
                                 errstr_size)) < 0)
            return r;
        if (f->aux.len > 2) { /* not "[]" */
            jbuf_puts(&f->data, ",\"unchanged_toast\":");
            jbuf_put(&f->data, f->aux.data, f->aux.len);
        }
    } else {
        jbuf_puts(&f->data, "null");
    }
    jbuf_putc(&f->data, '}');
    if (f->data.oom || f->key.oom || f->aux.oom) {
        snprintf(errstr, errstr_size, "out of memory");
        return -ENOMEM;
    }
    /* No primary key (or a truncate): a null key, as Kafka has no better one. */
    out->key = keyt && !(f->key.len == 4 && memcmp(f->key.data, "null", 4) == 0) ? f->key.data
                                                                                : NULL;
    out->key_len = out->key ? f->key.len : 0;
    snprintf(table, sizeof(table), "%s.%s", ev->rel->nspname, ev->rel->relname);
    snprintf(source, sizeof(source), "%s/%s", f->cdc_source_prefix ? f->cdc_source_prefix : "",
             table);
    snprintf(type, sizeof(type), "%s.%s", table, op_name(c->op));

    switch (f->kind) {
    case FORMAT_DEBEZIUM: {
        /* Debezium's change event envelope, without schemas. */
        struct jbuf *b = &f->value;

        jbuf_reset(b);
        jbuf_puts(b, "{\"before\":");
        if ((r = put_before(ev, b, errstr, errstr_size)) < 0)
            return r;
        jbuf_puts(b, ",\"after\":");
        if (c->newtuple) {
            jbuf_reset(&f->aux);
            if ((r = cdc_row_to_json(b, ev->rel, c->newtuple, &f->aux, errstr, errstr_size)) < 0)
                return r;
            if (f->aux.len > 2) { /* never null for an unchanged TOAST value: name it */
                jbuf_puts(b, ",\"unchanged_toast\":");
                jbuf_put(b, f->aux.data, f->aux.len);
            }
        } else {
            jbuf_puts(b, "null");
        }
        jbuf_puts(b, ",\"source\":{\"connector\":\"postgresql\",\"name\":\"outbox-relay\"");
        put_member(b, "db", f->cdc_source_prefix ? f->cdc_source_prefix + 1 : "",
                   f->cdc_source_prefix ? strlen(f->cdc_source_prefix + 1) : 0);
        put_member(b, "schema", ev->rel->nspname, strlen(ev->rel->nspname));
        put_member(b, "table", ev->rel->relname, strlen(ev->rel->relname));
        put_raw_member(b, "txId", t.xid, t.xid_len);
        jbuf_printf(b, ",\"lsn\":%llu,\"ts_ms\":%lld}", (unsigned long long)ev->pos.commit_lsn,
                    (long long)(ev->pos.commit_time_us / 1000));
        jbuf_printf(b, ",\"op\":\"%c\",\"ts_ms\":%lld}", c->op,
                    (long long)(ev->pos.commit_time_us / 1000));
        if (b->oom)
            goto nomem;
        out->value = b->data;
        out->value_len = b->len;
        return 0;
    }
    case FORMAT_CLOUDEVENTS_STRUCTURED: {
        struct jbuf *b = &f->value;

        jbuf_reset(b);
        jbuf_puts(b, "{\"specversion\":\"1.0\"");
        put_member(b, "id", id, idlen);
        put_member(b, "source", source, strlen(source));
        put_member(b, "type", type, strlen(type));
        if (out->key)
            put_member(b, "subject", out->key, out->key_len);
        put_member(b, "time", t.time, t.time_len);
        put_member(b, "datacontenttype", "application/json", 16);
        put_member(b, "pgsystemid", ev->pos.system_id ? ev->pos.system_id : "",
                   ev->pos.system_id ? strlen(ev->pos.system_id) : 0);
        put_raw_member(b, "pgtimeline", t.timeline, t.timeline_len);
        put_member(b, "pglsn", t.lsn, t.lsn_len);
        put_raw_member(b, "pgxid", t.xid, t.xid_len);
        put_raw_member(b, "pgindex", t.index, t.index_len);
        put_member(b, "pgtable", table, strlen(table));
        put_raw_member(b, "data", f->data.data, f->data.len);
        jbuf_putc(b, '}');
        if (b->oom)
            goto nomem;
        out->value = b->data;
        out->value_len = b->len;
        return add_header(out, "content-type", "application/cloudevents+json; charset=UTF-8", 43,
                          errstr, errstr_size);
    }
    case FORMAT_CLOUDEVENTS:
    default: {
        /* The header values must outlive this call: keep them in f->aux after the list. */
        size_t table_off, source_off;
        const char *sysid = ev->pos.system_id ? ev->pos.system_id : "";

        jbuf_reset(&f->aux);
        jbuf_puts(&f->aux, type);
        jbuf_putc(&f->aux, '\0');
        table_off = f->aux.len;
        jbuf_puts(&f->aux, table);
        jbuf_putc(&f->aux, '\0');
        source_off = f->aux.len;
        jbuf_puts(&f->aux, source);
        if (f->aux.oom)
            goto nomem;
        {
            const struct msg_header hs[] = {
                {"ce_specversion", "1.0", 3},
                {"ce_id", id, idlen},
                {"ce_source", f->aux.data + source_off, strlen(source)},
                {"ce_type", f->aux.data, strlen(type)},
                {"ce_subject", out->key, out->key_len},
                {"ce_time", t.time, t.time_len},
                {"ce_pglsn", t.lsn, t.lsn_len},
                {"ce_pgxid", t.xid, t.xid_len},
                {"ce_pgindex", t.index, t.index_len},
                {"content-type", "application/json", 16},
                {"ce_pgsystemid", sysid, strlen(sysid)},
                {"ce_pgtimeline", t.timeline, t.timeline_len},
                {"ce_pgtable", f->aux.data + table_off, strlen(table)},
            };

            for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
                if (!hs[i].value)
                    continue; /* no subject for a truncate or a table without a key */
                if ((r = add_header(out, hs[i].name, hs[i].value, hs[i].len, errstr,
                                    errstr_size)) < 0)
                    return r;
            }
        }
        out->value = f->data.data;
        out->value_len = f->data.len;
        return 0;
    }
    }

nomem:
    snprintf(errstr, errstr_size, "out of memory");
    return -ENOMEM;
}

int formatter_render(formatter *f, const struct event *ev, struct out_msg *out, char *errstr,
                     size_t errstr_size)
{
    struct pos_text t;
    int r;

    if (ev->change.op)
        return render_change(f, ev, out, errstr, errstr_size);
    if ((r = render_topic(&f->topic, ev, out->topic, errstr, errstr_size)) < 0)
        return r;
    out->key = ev->aggregateid.p;
    out->key_len = ev->aggregateid.len;
    out->id = ev->id.p;
    out->id_len = ev->id.len;
    out->value = ev->payload.p;
    out->value_len = ev->payload.len;
    out->nheaders = 0;
    render_pos(f, ev, out, &t);

    switch (f->kind) {
    case FORMAT_CLOUDEVENTS_STRUCTURED:
        if ((r = render_structured(f, ev, &t, errstr, errstr_size)) < 0)
            return r;
        out->value = f->value.data;
        out->value_len = f->value.len;
        r = add_header(out, "content-type", "application/cloudevents+json; charset=UTF-8", 43,
                       errstr, errstr_size);
        break;
    case FORMAT_DEBEZIUM:
        r = add_header(out, "id", ev->id.p, ev->id.len, errstr, errstr_size);
        break;
    case FORMAT_CLOUDEVENTS:
    default: {
        const char *sysid = ev->pos.system_id ? ev->pos.system_id : "";
        const struct msg_header hs[] = {
            {"ce_specversion", "1.0", 3},
            {"ce_id", ev->id.p, ev->id.len},
            {"ce_source", f->source, strlen(f->source)},
            {"ce_type", ev->type.p, ev->type.len},
            {"ce_subject", ev->aggregateid.p, ev->aggregateid.len},
            {"ce_time", t.time, t.time_len},
            {"ce_pglsn", t.lsn, t.lsn_len},
            {"ce_pgxid", t.xid, t.xid_len},
            {"ce_pgindex", t.index, t.index_len},
            {"content-type", "application/json", 16},
            {"ce_schemaversion", ev->version.p, ev->version.len},
            {"ce_pgsystemid", sysid, strlen(sysid)},
            {"ce_pgtimeline", t.timeline, t.timeline_len},
        };

        for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]) && r == 0; i++)
            r = add_header(out, hs[i].name, hs[i].value, hs[i].len, errstr, errstr_size);
        break;
    }
    }
    if (r < 0)
        return r;
    return add_extra_headers(f, ev, out, errstr, errstr_size);
}

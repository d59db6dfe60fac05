/*
 * inbox_event.c -- a broker message read as an inbox row (see inbox_event.h).
 *
 * The three conventions are tried in a fixed order: a ce_id header means binary
 * CloudEvents; otherwise a structured content type, or a value that is a JSON object
 * with "specversion", means a CloudEvents envelope; otherwise an "id" header means
 * Debezium's outbox router.  The first that applies decides: a message with a ce_id
 * header but no ce_type is not an event, even if its value looks like an envelope.
 *
 * Text columns must be UTF-8 without NUL bytes (PostgreSQL's text refuses NUL); a
 * header value that is not is kept as bytea hex text rather than dropped, an
 * attribute that is not makes the message not an event.  Data that PostgreSQL's
 * jsonb would refuse (not JSON, or a \u0000 escape) goes to payload_hex.
 */
#include "inbox_event.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonbuf.h"
#include "jsonscan.h"

static bool text_ok(const void *p, size_t n)
{
    return json_utf8_valid(p, n) && memchr(p, '\0', n) == NULL;
}

static char *dupn(const void *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

char *inbox_hex(const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    char *s = malloc(2 * n + 3);

    if (!s)
        return NULL;
    s[0] = '\\';
    s[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        s[2 + 2 * i] = digits[b[i] >> 4];
        s[3 + 2 * i] = digits[b[i] & 15];
    }
    s[2 + 2 * n] = '\0';
    return s;
}

void inbox_event_free(struct inbox_event *ev)
{
    free(ev->id);
    free(ev->type);
    free(ev->source);
    free(ev->subject);
    free(ev->time);
    free(ev->key);
    free(ev->content_type);
    free(ev->headers);
    free(ev->payload);
    free(ev->payload_hex);
    memset(ev, 0, sizeof(*ev));
}

/*
 * The last header called name (Kafka keeps them all; the last one wins), or NULL.
 * "content-type" is matched in any case, as HTTP's header names are.
 */
static const struct inbox_header *header(const struct inbox_message *m, const char *name)
{
    bool any_case = strcmp(name, "content-type") == 0;

    for (size_t i = m->nheaders; i-- > 0;)
        if (any_case ? strcasecmp(m->headers[i].name, name) == 0
                     : strcmp(m->headers[i].name, name) == 0)
            return &m->headers[i];
    return NULL;
}

/* A CloudEvents attribute header: "ce_<attr>" or "ce-<attr>". */
static const struct inbox_header *attr_header(const struct inbox_message *m, const char *attr)
{
    char name[32];
    const struct inbox_header *h;

    snprintf(name, sizeof(name), "ce_%s", attr);
    if ((h = header(m, name)) != NULL)
        return h;
    snprintf(name, sizeof(name), "ce-%s", attr);
    return header(m, name);
}

static bool is_attr_header(const char *name, const char *attr)
{
    return (strncmp(name, "ce_", 3) == 0 || strncmp(name, "ce-", 3) == 0) &&
           strcmp(name + 3, attr) == 0;
}

/*
 * A header's value as a new string into *out: NULL for a header that is absent or has
 * no value when optional, else the text.  Returns 0, INBOX_NOT_AN_EVENT (why set) for
 * an absent, empty or non-text required value or a non-text optional one, -ENOMEM.
 */
static int header_text(const struct inbox_header *h, const char *what, bool required,
                       char **out, char *why, size_t why_size)
{
    *out = NULL;
    if (!h || !h->value) {
        if (!required)
            return 0;
        snprintf(why, why_size, "no %s header", what);
        return INBOX_NOT_AN_EVENT;
    }
    if (!text_ok(h->value, h->value_len) || (required && h->value_len == 0)) {
        snprintf(why, why_size, "the %s header is %s", what,
                 h->value_len == 0 ? "empty" : "not UTF-8 text");
        return INBOX_NOT_AN_EVENT;
    }
    return (*out = dupn(h->value, h->value_len)) ? 0 : -ENOMEM;
}

void inbox_put_json_text(struct jbuf *b, const void *p, size_t n, bool hex)
{
    char *h;

    if (!hex && text_ok(p, n)) {
        jbuf_put_json_string(b, p, n);
        return;
    }
    h = inbox_hex(p, n);
    jbuf_put_json_string(b, h ? h : "", h ? strlen(h) : 0);
    b->oom |= h == NULL;
    free(h);
}

/* Append "name": value (a string, bytea hex text, or null) to an open JSON object. */
static void put_member(struct jbuf *b, bool *first, const char *name, size_t name_len,
                       const void *value, size_t value_len)
{
    if (!*first)
        jbuf_putc(b, ',');
    *first = false;
    inbox_put_json_text(b, name, name_len, false);
    jbuf_putc(b, ':');
    if (value)
        inbox_put_json_text(b, value, value_len, false);
    else
        jbuf_puts(b, "null");
}

/* The message's headers, but those skip() says have a column, into b (open object). */
static void put_headers(struct jbuf *b, bool *first, const struct inbox_message *m,
                        bool (*skip)(const char *name))
{
    for (size_t i = 0; i < m->nheaders; i++) {
        const struct inbox_header *h = &m->headers[i];

        if (!skip(h->name))
            put_member(b, first, h->name, strlen(h->name), h->value, h->value_len);
    }
}

static bool skip_binary(const char *name)
{
    static const char *const attrs[] = {"id", "type", "source", "specversion", "subject",
                                        "time"};

    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
        if (is_attr_header(name, attrs[i]))
            return true;
    return strcasecmp(name, "content-type") == 0;
}

static bool skip_structured(const char *name)
{
    return strcasecmp(name, "content-type") == 0;
}

static bool skip_debezium(const char *name)
{
    return strcmp(name, "id") == 0;
}

static bool json_content(const char *ct)
{
    return ct == NULL || strncasecmp(ct, "application/json", 16) == 0 ||
           strstr(ct, "+json") != NULL;
}

/* PostgreSQL's jsonb refuses the NUL character, escaped or not. */
static bool jsonb_ok(const char *p, size_t n)
{
    /* An escape starts at a backslash that follows an even run of them. */
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\\') {
            run = 0;
            continue;
        }
        if (run % 2 == 0 && i + 6 <= n && memcmp(p + i, "\\u0000", 6) == 0)
            return false;
        run++;
    }
    return true;
}

/* The data: JSON text when it is JSON and the content type allows it, else hex. */
static int set_data(struct inbox_event *ev, const void *p, size_t n, bool may_be_json)
{
    if (!p)
        return 0;
    if (may_be_json && json_valid(p, n) && jsonb_ok(p, n))
        return (ev->payload = dupn(p, n)) ? 0 : -ENOMEM;
    return (ev->payload_hex = inbox_hex(p, n)) ? 0 : -ENOMEM;
}

static int finish_headers(struct inbox_event *ev, struct jbuf *b)
{
    jbuf_putc(b, '}');
    if (b->oom)
        return -ENOMEM;
    return (ev->headers = dupn(b->data, b->len)) ? 0 : -ENOMEM;
}

static int parse_binary(const struct inbox_message *m, struct inbox_event *ev, char *why,
                        size_t why_size)
{
    struct jbuf b;
    bool first = true;
    int rc;

    ev->mode = INBOX_CLOUDEVENTS_BINARY;
    if ((rc = header_text(attr_header(m, "id"), "ce_id", true, &ev->id, why, why_size)) ||
        (rc = header_text(attr_header(m, "type"), "ce_type", true, &ev->type, why,
                          why_size)) ||
        (rc = header_text(attr_header(m, "source"), "ce_source", true, &ev->source, why,
                          why_size)) ||
        (rc = header_text(attr_header(m, "subject"), "ce_subject", false, &ev->subject, why,
                          why_size)) ||
        (rc = header_text(attr_header(m, "time"), "ce_time", false, &ev->time, why,
                          why_size)) ||
        (rc = header_text(header(m, "content-type"), "content-type", false, &ev->content_type,
                          why, why_size)))
        return rc;
    jbuf_init(&b);
    jbuf_putc(&b, '{');
    put_headers(&b, &first, m, skip_binary);
    rc = finish_headers(ev, &b);
    jbuf_free(&b);
    if (rc < 0)
        return rc;
    return set_data(ev, m->value, m->value_len, json_content(ev->content_type));
}

static int parse_debezium(const struct inbox_message *m, struct inbox_event *ev, char *why,
                          size_t why_size)
{
    const struct inbox_header *t = header(m, "type") ? header(m, "type") : header(m, "eventType");
    struct jbuf b;
    bool first = true;
    int rc;

    ev->mode = INBOX_DEBEZIUM;
    if ((rc = header_text(header(m, "id"), "id", true, &ev->id, why, why_size)) ||
        (rc = header_text(t, "type", false, &ev->type, why, why_size)))
        return rc;
    if ((!ev->type && !(ev->type = dupn("", 0))) || !(ev->source = dupn("", 0)))
        return -ENOMEM;
    jbuf_init(&b);
    jbuf_putc(&b, '{');
    put_headers(&b, &first, m, skip_debezium);
    rc = finish_headers(ev, &b);
    jbuf_free(&b);
    if (rc < 0)
        return rc;
    return set_data(ev, m->value, m->value_len, true);
}

static int b64_digit(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decode padded base64 s[0..n) into out (n * 3 / 4 bytes at most); -1 if it is not. */
static long b64_decode(const char *s, size_t n, unsigned char *out)
{
    size_t o = 0;

    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int d[4];
        int pad = 0;

        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                d[k] = 0;
                pad++;
            } else if (pad || (d[k] = b64_digit((unsigned char)s[i + k])) < 0) {
                return -1;
            }
        }
        out[o++] = (unsigned char)(d[0] << 2 | d[1] >> 4);
        if (pad < 2)
            out[o++] = (unsigned char)((d[1] & 15) << 4 | d[2] >> 2);
        if (pad < 1)
            out[o++] = (unsigned char)((d[2] & 3) << 6 | d[3]);
    }
    return (long)o;
}

/* The text of a raw JSON string value into *out; INBOX_NOT_AN_EVENT if not a string. */
static int member_text(struct ev_str raw, const char *name, char **out, char *why,
                       size_t why_size)
{
    struct jbuf tmp;
    struct ev_str text;
    int rc = 0;

    if (!json_raw_is_string(raw)) {
        snprintf(why, why_size, "the envelope's \"%s\" is not a string", name);
        return INBOX_NOT_AN_EVENT;
    }
    jbuf_init(&tmp);
    raw.p++;
    raw.len -= 2;
    if (json_string_unescape(raw, &tmp, &text) < 0) {
        rc = -ENOMEM;
    } else if (!text_ok(text.p, text.len)) {
        snprintf(why, why_size, "the envelope's \"%s\" holds a NUL character", name);
        rc = INBOX_NOT_AN_EVENT;
    } else if (!(*out = dupn(text.p, text.len))) {
        rc = -ENOMEM;
    }
    jbuf_free(&tmp);
    return rc;
}

static int parse_structured(const struct inbox_message *m, struct inbox_event *ev, char *why,
                            size_t why_size)
{
    static const char *const names[] = {"id", "type", "source", "specversion", "subject",
                                        "time", "datacontenttype"};
    char *specversion = NULL;
    char **slots[] = {&ev->id, &ev->type, &ev->source, &specversion, &ev->subject,
                      &ev->time, &ev->content_type};
    struct ev_str key, value, data = {NULL, 0}, data64 = {NULL, 0};
    struct json_iter it;
    struct jbuf b;
    bool first = true;
    int rc = 0;

    ev->mode = INBOX_CLOUDEVENTS_STRUCTURED;
    if (!m->value || !json_valid(m->value, m->value_len) ||
        json_iter_object(&it, m->value, m->value_len) < 0) {
        snprintf(why, why_size, "a structured CloudEvents message whose value is not a JSON "
                                "object");
        return INBOX_NOT_AN_EVENT;
    }
    jbuf_init(&b);
    jbuf_putc(&b, '{');
    while (rc == 0 && json_iter_next(&it, &key, &value) == 1) {
        size_t k;

        for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (json_raw_plain(key) && key.len == strlen(names[k]) &&
                memcmp(key.p, names[k], key.len) == 0)
                break;
        if (k < sizeof(names) / sizeof(names[0])) {
            free(*slots[k]);
            *slots[k] = NULL;
            if (!(k >= 4 && value.len == 4 && memcmp(value.p, "null", 4) == 0))
                rc = member_text(value, names[k], slots[k], why, why_size);
        } else if (json_raw_plain(key) && key.len == 4 && memcmp(key.p, "data", 4) == 0) {
            data = value;
        } else if (json_raw_plain(key) && key.len == 11 && memcmp(key.p, "data_base64", 11) == 0) {
            data64 = value;
        } else {
            /* An extension attribute: kept among the headers, strings as their text. */
            struct jbuf tmp;
            struct ev_str name, text;

            jbuf_init(&tmp);
            if (json_string_unescape(key, &tmp, &name) < 0) {
                rc = -ENOMEM;
            } else {
                char *n = dupn(name.p, name.len);

                if (!n) {
                    rc = -ENOMEM;
                } else if (json_raw_is_string(value)) {
                    struct ev_str body = {value.p + 1, value.len - 2};

                    jbuf_reset(&tmp);
                    if (json_string_unescape(body, &tmp, &text) < 0)
                        rc = -ENOMEM;
                    else
                        put_member(&b, &first, n, strlen(n), text.p, text.len);
                } else {
                    put_member(&b, &first, n, strlen(n), value.p, value.len);
                }
                free(n);
            }
            jbuf_free(&tmp);
        }
    }
    if (rc == 0) {
        const char *missing = !ev->id ? "id" : !ev->type ? "type" : !ev->source ? "source"
                              : !specversion                 ? "specversion"
                                                             : NULL;

        if (missing || !ev->id[0]) {
            snprintf(why, why_size, "the CloudEvents envelope has no \"%s\"",
                     missing ? missing : "id");
            rc = INBOX_NOT_AN_EVENT;
        }
    }
    free(specversion);
    if (rc == 0) {
        put_headers(&b, &first, m, skip_structured);
        rc = finish_headers(ev, &b);
    }
    jbuf_free(&b);
    if (rc != 0)
        return rc;
    if (data.p) {
        if (!jsonb_ok(data.p, data.len))
            return (ev->payload_hex = inbox_hex(data.p, data.len)) ? 0 : -ENOMEM;
        return (ev->payload = dupn(data.p, data.len)) ? 0 : -ENOMEM;
    }
    if (data64.p) {
        unsigned char *bytes;
        long n;

        if (!json_raw_is_string(data64) || !json_raw_plain(data64)) {
            snprintf(why, why_size, "the envelope's \"data_base64\" is not a base64 string");
            return INBOX_NOT_AN_EVENT;
        }
        if (!(bytes = malloc(data64.len)))
            return -ENOMEM;
        n = b64_decode(data64.p + 1, data64.len - 2, bytes);
        if (n < 0) {
            free(bytes);
            snprintf(why, why_size, "the envelope's \"data_base64\" is not base64");
            return INBOX_NOT_AN_EVENT;
        }
        ev->payload_hex = inbox_hex(bytes, (size_t)n);
        free(bytes);
        return ev->payload_hex ? 0 : -ENOMEM;
    }
    return 0;
}

/* A value that is a JSON object with a "specversion" member: an envelope. */
static bool looks_structured(const struct inbox_message *m)
{
    struct json_iter it;
    struct ev_str key, value;

    if (!m->value || !json_valid(m->value, m->value_len) ||
        json_iter_object(&it, m->value, m->value_len) < 0)
        return false;
    while (json_iter_next(&it, &key, &value) == 1)
        if (key.len == 11 && memcmp(key.p, "specversion", 11) == 0)
            return true;
    return false;
}

int inbox_event_parse(const struct inbox_message *m, struct inbox_event *ev, char *why,
                      size_t why_size)
{
    const struct inbox_header *ct = header(m, "content-type");
    int rc;

    memset(ev, 0, sizeof(*ev));
    if (why_size)
        why[0] = '\0';
    if (attr_header(m, "id"))
        rc = parse_binary(m, ev, why, why_size);
    else if ((ct && ct->value && ct->value_len >= 28 &&
              strncasecmp((const char *)ct->value, "application/cloudevents+json", 28) == 0) ||
             looks_structured(m))
        rc = parse_structured(m, ev, why, why_size);
    else if (header(m, "id"))
        rc = parse_debezium(m, ev, why, why_size);
    else {
        snprintf(why, why_size, "no event id: neither CloudEvents (a ce_id header, or an "
                                "envelope with \"specversion\") nor an \"id\" header");
        return INBOX_NOT_AN_EVENT;
    }
    if (rc == 0 && m->key) {
        if (!text_ok(m->key, m->key_len)) {
            snprintf(why, why_size, "the key is not UTF-8 text");
            rc = INBOX_NOT_AN_EVENT;
        } else if (!(ev->key = dupn(m->key, m->key_len))) {
            rc = -ENOMEM;
        }
    }
    return rc;
}

int inbox_redis_id_encode(const char *id, int64_t *pos)
{
    uint64_t ms = 0, seq = 0;
    const char *p = id;
    int digits = 0;

    for (; *p >= '0' && *p <= '9' && digits < 20; p++, digits++)
        ms = ms * 10 + (uint64_t)(*p - '0');
    if (digits == 0 || *p++ != '-')
        return -1;
    for (digits = 0; *p >= '0' && *p <= '9' && digits < 20; p++, digits++)
        seq = seq * 10 + (uint64_t)(*p - '0');
    /* The largest pair would be INT64_MAX, whose next position does not exist. */
    if (digits == 0 || *p != '\0' || ms >= (UINT64_C(1) << 43) || seq >= (UINT64_C(1) << 20) ||
        (ms == (UINT64_C(1) << 43) - 1 && seq == (UINT64_C(1) << 20) - 1))
        return -1;
    *pos = (int64_t)(ms << 20 | seq);
    return 0;
}

void inbox_redis_id_decode(int64_t pos, char *buf, size_t size)
{
    snprintf(buf, size, "%llu-%llu", (unsigned long long)((uint64_t)pos >> 20),
             (unsigned long long)((uint64_t)pos & ((UINT64_C(1) << 20) - 1)));
}

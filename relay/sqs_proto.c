/*
 * sqs_proto.c -- the Amazon SQS sink's decisions, apart from its I/O: how an event
 * becomes an entry of a SendMessageBatch request (body, message attributes, FIFO group
 * and deduplication ids), how SQS's answers read (which entry succeeded, what an
 * error's code is), and which errors are for good, transient, or the credentials'.
 *
 * Pure: no I/O, no logging; the entry is written into the caller's buffer.  The sink
 * (sink_sqs.c) sends what this renders and acts on what this reads; the unit tests
 * (tests/unit/test_sqs_proto.c) pin each rule docs/sinks/sqs.md states.
 */
#include "sqs_proto.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonscan.h"

bool sqs_region_of_host(const char *host, char *out, size_t size)
{
    const char *dot;

    if (strncmp(host, "sqs.", 4) == 0 && (dot = strchr(host + 4, '.')) &&
        strncmp(dot, ".amazonaws.com", 14) == 0) {
        snprintf(out, size, "%.*s", (int)(dot - host - 4), host + 4);
        return dot > host + 4;
    }
    if ((dot = strstr(host, ".queue.amazonaws.com")) && dot > host) {
        snprintf(out, size, "%.*s", (int)(dot - host), host);
        return true;
    }
    return false;
}

/* Copy a JSON string's text (raw, between quotes) into out, unescaped as far as it goes. */
static void raw_string(struct ev_str v, char *out, size_t size)
{
    struct jbuf tmp;
    struct ev_str text;

    out[0] = '\0';
    if (!json_raw_is_string(v))
        return;
    v.p++;
    v.len -= 2;
    jbuf_init(&tmp);
    if (json_string_unescape(v, &tmp, &text) == 0)
        snprintf(out, size, "%.*s", (int)text.len, text.p);
    jbuf_free(&tmp);
}

/* The text between <tag> and </tag> in an XML error answer. */
static void xml_field(const char *body, const char *tag, char *out, size_t size)
{
    char open[32], close[32];
    const char *p, *q;

    out[0] = '\0';
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    if (!(p = strstr(body, open)) || !(q = strstr(p, close)))
        return;
    p += strlen(open);
    if (strncmp(p, "<![CDATA[", 9) == 0 && q - p >= 12 && strncmp(q - 3, "]]>", 3) == 0) {
        p += 9;
        q -= 3;
    }
    snprintf(out, size, "%.*s", (int)(q - p), p);
}

void sqs_parse_error(const char *body, size_t len, const char *query_error, char *code,
                     size_t code_size, char *message, size_t message_size)
{
    char *hash;

    code[0] = message[0] = '\0';
    if (!body)
        body = "", len = 0;
    if (len > 0 && body[0] == '{' && json_valid(body, len)) {
        struct json_iter it;
        struct ev_str k, v;

        if (json_iter_object(&it, body, len) == 0) {
            while (json_iter_next(&it, &k, &v)) {
                if ((k.len == 6 && memcmp(k.p, "__type", 6) == 0) ||
                    (k.len == 4 && memcmp(k.p, "code", 4) == 0 && !code[0]))
                    raw_string(v, code, code_size);
                else if (k.len == 7 && strncasecmp(k.p, "message", 7) == 0)
                    raw_string(v, message, message_size);
            }
        }
    } else if (strstr(body, "<Code>")) {
        xml_field(body, "Code", code, code_size);
        xml_field(body, "Message", message, message_size);
    }
    if ((hash = strrchr(code, '#')))
        memmove(code, hash + 1, strlen(hash + 1) + 1);
    if (!code[0] && query_error && query_error[0])
        snprintf(code, code_size, "%.*s", (int)strcspn(query_error, ";"), query_error);
}

bool sqs_auth_code(const char *code)
{
    static const char *const codes[] = {
        "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
        "IncompleteSignature",  "MissingAuthenticationToken", "InvalidSignatureException",
        "ExpiredToken",         "ExpiredTokenException", "InvalidAccessKeyId",
        "AccessDenied",         "AccessDeniedException", "AuthFailure",
        "InvalidSecurity",      "RequestExpired",
    };

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

bool sqs_transient_code(const char *code)
{
    return strstr(code, "Throttl") || strstr(code, "RequestThrottled") ||
           strstr(code, "ServiceUnavailable") || strstr(code, "InternalError") ||
           strstr(code, "InternalFailure") || strncmp(code, "Kms", 3) == 0 ||
           strncmp(code, "KMS", 3) == 0 || strstr(code, "OverLimit") ||
           strcmp(code, "QueueDoesNotExist") == 0 ||
           strcmp(code, "AWS.SimpleQueueService.NonExistentQueue") == 0 ||
           strstr(code, "QueueDeletedRecently") || strstr(code, "RequestTimeout");
}

bool sqs_size_code(const char *code, const char *message)
{
    return strstr(code, "TooLong") || strstr(message, "shorter than") ||
           strstr(message, "too long") || strstr(message, "must be shorter");
}

/* End of the JSON value at p (validated text), skipping strings and nesting. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;

    while (p < end) {
        char ch = *p;

        if (ch == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            p++;
            if (depth == 0)
                return p;
            continue;
        }
        if (ch == '{' || ch == '[')
            depth++;
        else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return p;
            if (--depth == 0)
                return p + 1;
        } else if (ch == ',' && depth == 0)
            return p;
        p++;
    }
    return end;
}

/* Read one Successful or Failed element into results (by its Id, 0..n-1). */
static void read_entry(struct ev_str obj, bool failed, struct sqs_entry_result *results, size_t n)
{
    struct json_iter it;
    struct ev_str k, v;
    char id[16] = "", code[64] = "", message[400] = "", fault[8] = "";
    char *endp;
    long i;

    if (json_iter_object(&it, obj.p, obj.len) < 0)
        return;
    while (json_iter_next(&it, &k, &v)) {
        if (k.len == 2 && memcmp(k.p, "Id", 2) == 0)
            raw_string(v, id, sizeof(id));
        else if (k.len == 4 && memcmp(k.p, "Code", 4) == 0)
            raw_string(v, code, sizeof(code));
        else if (k.len == 7 && memcmp(k.p, "Message", 7) == 0)
            raw_string(v, message, sizeof(message));
        else if (k.len == 11 && memcmp(k.p, "SenderFault", 11) == 0)
            snprintf(fault, sizeof(fault), "%.*s", (int)(v.len < 7 ? v.len : 7), v.p);
    }
    i = strtol(id, &endp, 10);
    if (!id[0] || *endp || i < 0 || (size_t)i >= n)
        return;
    results[i].state = failed ? 2 : 1;
    /* SenderFault is a boolean; some services send it as a string. */
    results[i].sender_fault = strncmp(fault, "true", 4) == 0 || strncmp(fault, "\"true", 5) == 0;
    snprintf(results[i].code, sizeof(results[i].code), "%s", code);
    snprintf(results[i].message, sizeof(results[i].message), "%s", message);
}

int sqs_parse_batch(const char *body, size_t len, struct sqs_entry_result *results, size_t n)
{
    struct json_iter it;
    struct ev_str k, v;

    memset(results, 0, n * sizeof(*results));
    if (!body || !json_valid(body, len) || json_iter_object(&it, body, len) < 0)
        return -1;
    while (json_iter_next(&it, &k, &v)) {
        bool failed = k.len == 6 && memcmp(k.p, "Failed", 6) == 0;
        const char *p, *end = v.p + v.len;

        if (!failed && !(k.len == 10 && memcmp(k.p, "Successful", 10) == 0))
            continue;
        if (v.len < 2 || v.p[0] != '[')
            continue;
        for (p = v.p + 1; p < end;) {
            const char *q;

            while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ','))
                p++;
            if (p >= end || *p != '{')
                break;
            q = skip_value(p, end);
            read_entry((struct ev_str){p, (size_t)(q - p)}, failed, results, n);
            p = q;
        }
    }
    return 0;
}

/* Whether SQS takes s as a FIFO id as it is: 1 to 128 of '!' .. '~'. */
static bool id_ok(const char *s, size_t n)
{
    if (n == 0 || n > SQS_MAX_ID)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* s as a FIFO id: itself when SQS takes it, else "sha256-<hex>". */
static void put_fifo_id(struct jbuf *b, const char *s, size_t n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 8];

    if (id_ok(s, n)) {
        jbuf_put_json_string(b, s, n);
        return;
    }
    if (!EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL)) {
        b->oom = true; /* the render fails as a whole */
        return;
    }
    memcpy(hex, "sha256-", 7);
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 7 + 2 * i, 3, "%02x", md[i]);
    jbuf_put_json_string(b, hex, 7 + 2 * (size_t)mdlen);
}

/* An attribute name SQS takes: [A-Za-z0-9_.-], no "AWS."/"Amazon." prefix, no "..". */
static bool attribute_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > SQS_MAX_ATTRIBUTE_NAME || name[0] == '.' || name[n - 1] == '.' ||
        strstr(name, "..") || strncasecmp(name, "AWS.", 4) == 0 ||
        strncasecmp(name, "Amazon.", 7) == 0 || strcmp(name, SQS_PACKED_ATTRIBUTE) == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* Whether every header can be its own String attribute. */
static bool headers_fit(const struct out_msg *m)
{
    if (m->nheaders > SQS_MAX_ATTRIBUTES)
        return false;
    for (int i = 0; i < m->nheaders; i++) {
        const struct msg_header *h = &m->headers[i];

        /* SQS refuses an empty value; a NULL header would lose its NULL-ness. */
        if (!attribute_name_ok(h->name) || !h->value || h->len == 0 ||
            !json_utf8_valid(h->value, h->len))
            return false;
        for (int j = 0; j < i; j++)
            if (strcmp(m->headers[j].name, h->name) == 0)
                return false; /* a repeated name: attributes are a map */
    }
    return true;
}

int sqs_render_entry(const struct out_msg *m, int64_t max_size, struct jbuf *b, size_t *size,
                     char *errstr, size_t errstr_size)
{
    size_t tl = strlen(m->topic), total;
    bool fifo = tl > 5 && strcmp(m->topic + tl - 5, ".fifo") == 0;
    /*
     * SQS takes no empty body: a message without a value (a NULL payload, a
     * dead-letter record whose value was left out) goes as the JSON null.
     */
    const char *body = m->value && m->value_len ? m->value : "null";
    size_t body_len = m->value && m->value_len ? m->value_len : 4;

    if (!json_utf8_valid(body, body_len)) {
        snprintf(errstr, errstr_size, "the message body is not valid UTF-8, which SQS requires");
        return -EACCES;
    }
    total = body_len;
    jbuf_puts(b, ",\"MessageBody\":");
    jbuf_put_json_string(b, body, body_len);
    if (m->nheaders > 0) {
        jbuf_puts(b, ",\"MessageAttributes\":{");
        if (headers_fit(m)) {
            for (int i = 0; i < m->nheaders; i++) {
                const struct msg_header *h = &m->headers[i];

                jbuf_puts(b, i ? "," : "");
                jbuf_put_json_string(b, h->name, strlen(h->name));
                jbuf_puts(b, ":{\"DataType\":\"String\",\"StringValue\":");
                jbuf_put_json_string(b, h->value, h->len);
                jbuf_putc(b, '}');
                total += strlen(h->name) + 6 + h->len;
            }
        } else {
            /* All of them, in order, as one JSON array: nothing dropped, nothing merged. */
            struct jbuf packed;

            jbuf_init(&packed);
            jbuf_putc(&packed, '[');
            for (int i = 0; i < m->nheaders; i++) {
                const struct msg_header *h = &m->headers[i];

                jbuf_puts(&packed, i ? ",[" : "[");
                jbuf_put_json_string(&packed, h->name, strlen(h->name));
                jbuf_putc(&packed, ',');
                if (h->value)
                    jbuf_put_json_string(&packed, h->value, h->len);
                else
                    jbuf_puts(&packed, "null");
                jbuf_putc(&packed, ']');
            }
            jbuf_putc(&packed, ']');
            if (packed.oom) {
                jbuf_free(&packed);
                snprintf(errstr, errstr_size, "out of memory");
                return -ENOMEM;
            }
            jbuf_puts(b, "\"" SQS_PACKED_ATTRIBUTE "\":{\"DataType\":\"String\",\"StringValue\":");
            jbuf_put_json_string(b, packed.data, packed.len);
            jbuf_putc(b, '}');
            total += strlen(SQS_PACKED_ATTRIBUTE) + 6 + packed.len;
            jbuf_free(&packed);
        }
        jbuf_putc(b, '}');
    }
    if (fifo) {
        jbuf_puts(b, ",\"MessageGroupId\":");
        if (m->key && m->key_len)
            put_fifo_id(b, m->key, m->key_len);
        else
            jbuf_puts(b, "\"" SQS_NO_KEY_GROUP "\"");
        jbuf_puts(b, ",\"MessageDeduplicationId\":");
        put_fifo_id(b, m->id, m->id_len);
    }
    jbuf_putc(b, '}');
    if (b->oom) {
        snprintf(errstr, errstr_size, "out of memory");
        return -ENOMEM;
    }
    if (total > (size_t)max_size) {
        snprintf(errstr, errstr_size,
                 "the message is %zu bytes with its attributes, more than SQS takes "
                 "(sqs.max_message_size %lld)",
                 total, (long long)max_size);
        return -EMSGSIZE;
    }
    *size = total;
    return 0;
}

void sqs_queue_attribute(const char *body, size_t len, const char *name, char *out,
                         size_t size)
{
    struct json_iter it, in;
    struct ev_str k, v, ik, iv;

    out[0] = '\0';
    if (!body || !json_valid(body, len) || json_iter_object(&it, body, len) < 0)
        return;
    while (json_iter_next(&it, &k, &v)) {
        if (k.len != 10 || memcmp(k.p, "Attributes", 10) != 0 ||
            json_iter_object(&in, v.p, v.len) < 0)
            continue;
        while (json_iter_next(&in, &ik, &iv))
            if (ik.len == strlen(name) && memcmp(ik.p, name, ik.len) == 0)
                raw_string(iv, out, size);
    }
}

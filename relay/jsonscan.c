/*
 * jsonscan.c -- members of a validated JSON object, as raw slices.
 *
 * Because the input was validated, skipping a value is simple: a string ends at the
 * first unescaped quote, an object or array at the bracket that brings the depth
 * back to zero (brackets inside strings do not count), and a literal or number at
 * the next delimiter.  Every loop is still bounded by the end pointer.
 */
#include "jsonscan.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "jsonbuf.h"

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at an opening quote; returns the position after the closing quote. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return end;
}

static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;

    if (p >= end)
        return end;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
               *p != '\n' && *p != '\r')
            p++;
        return p;
    }
    while (p < end) {
        if (*p == '"') {
            p = skip_string(p, end);
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            depth--;
        p++;
        if (depth == 0)
            return p;
    }
    return end;
}

int json_iter_object(struct json_iter *it, const char *s, size_t n)
{
    const char *end = s + n;
    const char *p = skip_ws(s, end);

    if (p >= end || *p != '{')
        return -EINVAL;
    it->p = p + 1;
    it->end = end;
    return 0;
}

int json_iter_next(struct json_iter *it, struct ev_str *key, struct ev_str *value)
{
    const char *p = skip_ws(it->p, it->end);
    const char *q;

    if (p < it->end && *p == ',')
        p = skip_ws(p + 1, it->end);
    if (p >= it->end || *p != '"') {
        it->p = it->end;
        return 0;
    }
    q = skip_string(p, it->end);
    key->p = p + 1;
    key->len = (size_t)(q - p) - (q > p + 1 ? 2 : 1);
    p = skip_ws(q, it->end);
    if (p < it->end && *p == ':')
        p = skip_ws(p + 1, it->end);
    q = skip_value(p, it->end);
    value->p = p;
    value->len = (size_t)(q - p);
    it->p = q;
    return 1;
}

bool json_raw_plain(struct ev_str raw)
{
    return memchr(raw.p, '\\', raw.len) == NULL;
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(struct jbuf *b, uint32_t cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    jbuf_put(b, u, n);
}

int json_string_unescape(struct ev_str raw, struct jbuf *out, struct ev_str *text)
{
    size_t start = out->len;
    const char *p = raw.p, *end = raw.p + raw.len;

    if (json_raw_plain(raw)) {
        *text = raw;
        return 0;
    }
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        uint32_t cp, lo;

        if (!bs) {
            jbuf_put(out, p, (size_t)(end - p));
            break;
        }
        jbuf_put(out, p, (size_t)(bs - p));
        if (bs + 1 >= end)
            break;
        switch (bs[1]) {
        case 'b': jbuf_putc(out, '\b'); p = bs + 2; break;
        case 'f': jbuf_putc(out, '\f'); p = bs + 2; break;
        case 'n': jbuf_putc(out, '\n'); p = bs + 2; break;
        case 'r': jbuf_putc(out, '\r'); p = bs + 2; break;
        case 't': jbuf_putc(out, '\t'); p = bs + 2; break;
        case 'u':
            if (end - bs < 6 || hex4(bs + 2, &cp) < 0) {
                p = end;
                break;
            }
            p = bs + 6;
            /* A high surrogate followed by an escaped low one makes one code point. */
            if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            put_utf8(out, cp);
            break;
        default: /* \" \\ \/ */
            jbuf_putc(out, bs[1]);
            p = bs + 2;
            break;
        }
    }
    if (out->oom)
        return -ENOMEM;
    text->p = out->data + start;
    text->len = out->len - start;
    return 0;
}

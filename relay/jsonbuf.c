/*
 * jsonbuf.c -- growable JSON text buffer, string escaping, UTF-8 and JSON validation.
 *
 * The buffer keeps one invariant: while data is not NULL, cap > len and
 * data[len] == '\0'.  Every write goes through jbuf_reserve(), which is also the
 * only place that sets oom; the writers then copy without further checks.
 *
 * The validators are byte-at-a-time scanners over [s, s + n).  UTF-8 follows the
 * table of well-formed byte sequences in the Unicode standard (chapter 3, table
 * 3-7), which rejects overlongs, surrogates and code points above U+10FFFF by
 * narrowing the range of the second byte after certain lead bytes.  The JSON
 * validator is a three-state machine with an explicit stack of one bit per level
 * (array or object), so hostile nesting costs 64 bytes of stack, not a crash.
 */
#include "jsonbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation; small enough to waste nothing, big enough for a typical key. */
#define JBUF_MIN_CAP 64

/* The largest allocation the buffer asks for. */
#define JBUF_MAX_CAP ((size_t)PTRDIFF_MAX)

void jbuf_init(struct jbuf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

void jbuf_free(struct jbuf *b)
{
    free(b->data);
    jbuf_init(b);
}

void jbuf_reset(struct jbuf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->data)
        b->data[0] = '\0';
}

void jbuf_truncate(struct jbuf *b, size_t len)
{
    if (len >= b->len)
        return;
    b->len = len;
    b->data[len] = '\0';
}

/*
 * Make room for n more bytes plus the NUL.  Returns false, with oom set, when that
 * is impossible; after that every later call fails too, so partial text is never
 * extended with bytes that would hide the gap.
 */
static bool jbuf_reserve(struct jbuf *b, size_t n)
{
    size_t need, cap;
    char *d;

    if (b->oom)
        return false;
    /*
     * No object may exceed PTRDIFF_MAX bytes (pointer differences within it must be
     * representable), so a larger request fails here, without asking realloc().
     */
    if (n > JBUF_MAX_CAP - 1 - b->len) {
        b->oom = true;
        return false;
    }
    need = b->len + n + 1;
    if (need <= b->cap)
        return true;
    cap = b->cap ? b->cap : JBUF_MIN_CAP;
    while (cap < need) {
        if (cap > JBUF_MAX_CAP / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void jbuf_put(struct jbuf *b, const void *p, size_t n)
{
    if (!jbuf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void jbuf_putc(struct jbuf *b, char c)
{
    if (!jbuf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void jbuf_puts(struct jbuf *b, const char *s)
{
    jbuf_put(b, s, strlen(s));
}

void jbuf_printf(struct jbuf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    size_t room;
    int n;

    if (!jbuf_reserve(b, 0))
        return;
    room = b->cap - b->len;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->data[b->len] = '\0';
        b->oom = true;
    } else if ((size_t)n >= room) {
        /* Too long for the space left: grow to fit and format again. */
        if (jbuf_reserve(b, (size_t)n)) {
            vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
            b->len += (size_t)n;
        } else {
            b->data[b->len] = '\0'; /* drop the truncated attempt */
        }
    } else {
        b->len += (size_t)n;
    }
    va_end(ap2);
}

/*
 * Length of the well-formed UTF-8 sequence at s (1 to 4), or 0 when the bytes at s
 * are not one: a stray continuation byte, a lead byte that can never appear (C0,
 * C1, F5..FF), an overlong form, a surrogate, a code point above U+10FFFF, or a
 * sequence cut short by the end of the input.  n must be at least 1.
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    size_t len;

    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0; /* continuation byte, or C0/C1 (overlong two-byte forms) */
    if (c < 0xE0) {
        len = 2;
    } else if (c < 0xF0) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* below is an overlong three-byte form */
        else if (c == 0xED)
            hi = 0x9F; /* above are the surrogates U+D800..U+DFFF */
    } else if (c < 0xF5) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* below is an overlong four-byte form */
        else if (c == 0xF4)
            hi = 0x8F; /* above is past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

bool json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t k;
        uint64_t w;

        /*
         * ASCII runs are the common case (ids, types, keys): skip them eight bytes at a
         * time while no byte has its high bit set, then byte by byte.
         */
        while (n - i >= 8) {
            memcpy(&w, p + i, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            i += 8;
        }
        if (i == n)
            break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        k = utf8_seq_len(p + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

static const char hexdigits[] = "0123456789abcdef";

/* Append \u00XX for the byte c. */
static void put_u00(struct jbuf *b, unsigned char c)
{
    char esc[6] = {'\\', 'u', '0', '0', hexdigits[c >> 4], hexdigits[c & 0xF]};

    jbuf_put(b, esc, sizeof(esc));
}

void jbuf_put_json_chars(struct jbuf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* p[run..i) is copied verbatim when a special byte comes */

    while (i < n) {
        unsigned char c = p[i];
        const char *named = NULL;

        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq_len(p + i, n - i);

            if (k > 0) {
                i += k;
                continue;
            }
        }
        /* p[i] must be escaped: flush the run before it. */
        if (i > run)
            jbuf_put(b, p + run, i - run);
        switch (c) {
        case '"':
            named = "\\\"";
            break;
        case '\\':
            named = "\\\\";
            break;
        case '\b':
            named = "\\b";
            break;
        case '\f':
            named = "\\f";
            break;
        case '\n':
            named = "\\n";
            break;
        case '\r':
            named = "\\r";
            break;
        case '\t':
            named = "\\t";
            break;
        default:
            break;
        }
        if (named)
            jbuf_put(b, named, 2);
        else
            put_u00(b, c); /* another control character, or a byte of invalid UTF-8 */
        i++;
        run = i;
    }
    if (i > run)
        jbuf_put(b, p + run, i - run);
}

void jbuf_put_json_string(struct jbuf *b, const char *s, size_t n)
{
    jbuf_putc(b, '"');
    jbuf_put_json_chars(b, s, n);
    jbuf_putc(b, '"');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Scan one JSON number starting at *pp, stopping at the first byte that cannot
 * continue it.  Returns false if what is there is not a number.  On success *pp
 * points just past it.
 */
static bool scan_number(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;

    if (p < end && *p == '-')
        p++;
    if (p == end || !is_digit(*p))
        return false;
    if (*p == '0') {
        p++; /* a leading zero stands alone: "01" is not a number */
    } else {
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end || !is_digit(*p))
            return false;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return false;
        while (p < end && is_digit(*p))
            p++;
    }
    *pp = p;
    return true;
}

bool json_number_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + n;

    return n > 0 && scan_number(&p, end) && p == end;
}

/* Value of four hex digits at p (p + 4 <= end checked by the caller), or -1. */
static long hex4(const unsigned char *p)
{
    long v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/*
 * Scan a JSON string whose opening quote is at *pp.  On success *pp points just past
 * the closing quote.
 */
static bool scan_string(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp + 1;

    while (p < end) {
        unsigned char c = *p;

        if (c == '"') {
            *pp = p + 1;
            return true;
        }
        if (c < 0x20)
            return false; /* control characters must be escaped */
        if (c == '\\') {
            long u, lo;

            if (end - p < 2)
                return false;
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                continue;
            case 'u':
                break;
            default:
                return false;
            }
            if (end - p < 6 || (u = hex4(p + 2)) < 0)
                return false;
            p += 6;
            if (u >= 0xDC00 && u <= 0xDFFF)
                return false; /* a low surrogate with no high one before it */
            if (u >= 0xD800 && u <= 0xDBFF) {
                /* A high surrogate needs an escaped low surrogate right after it. */
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                    return false;
                lo = hex4(p + 2);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                p += 6;
            }
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq_len(p, (size_t)(end - p));

            if (k == 0)
                return false;
            p += k;
            continue;
        }
        p++;
    }
    return false; /* unterminated */
}

static bool scan_literal(const unsigned char **pp, const unsigned char *end, const char *lit,
                         size_t len)
{
    if ((size_t)(end - *pp) < len || memcmp(*pp, lit, len) != 0)
        return false;
    *pp += len;
    return true;
}

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Whether the innermost open container (depth >= 1 of them) is an object. */
static bool top_is_object(const unsigned char *stack, size_t depth)
{
    return (stack[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1u;
}

bool json_valid(const char *s, size_t n)
{
    /* Nesting stack: bit set = object, clear = array; depth counts open containers. */
    unsigned char stack[JSON_MAX_DEPTH / 8];
    size_t depth = 0;
    enum { VALUE, KEY, AFTER } state = VALUE;
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + n;

    if (n == 0)
        return false;
    for (;;) {
        p = skip_ws(p, end);
        switch (state) {
        case VALUE: /* a value must come: at the top, after '[', ',' in an array, ':' */
            if (p == end)
                return false;
            switch (*p) {
            case '{':
            case '[': {
                bool object = *p == '{';

                if (depth == JSON_MAX_DEPTH)
                    return false;
                if (object)
                    stack[depth / 8] |= (unsigned char)(1u << (depth % 8));
                else
                    stack[depth / 8] &= (unsigned char)~(1u << (depth % 8));
                depth++;
                p = skip_ws(p + 1, end);
                if (p < end && *p == (object ? '}' : ']')) {
                    p++; /* empty container */
                    depth--;
                    state = AFTER;
                } else {
                    state = object ? KEY : VALUE;
                }
                break;
            }
            case '"':
                if (!scan_string(&p, end))
                    return false;
                state = AFTER;
                break;
            case 't':
                if (!scan_literal(&p, end, "true", 4))
                    return false;
                state = AFTER;
                break;
            case 'f':
                if (!scan_literal(&p, end, "false", 5))
                    return false;
                state = AFTER;
                break;
            case 'n':
                if (!scan_literal(&p, end, "null", 4))
                    return false;
                state = AFTER;
                break;
            default:
                if (!scan_number(&p, end))
                    return false;
                state = AFTER;
                break;
            }
            break;
        case KEY: /* an object member's name and colon: after '{' or ',' in an object */
            if (p == end || *p != '"' || !scan_string(&p, end))
                return false;
            p = skip_ws(p, end);
            if (p == end || *p != ':')
                return false;
            p++;
            state = VALUE;
            break;
        case AFTER: { /* a value ended: ',' or the container's close, or the end */
            bool in_object;

            if (depth == 0)
                return p == end;
            if (p == end)
                return false;
            in_object = top_is_object(stack, depth);
            if (*p == ',') {
                p++;
                state = in_object ? KEY : VALUE;
            } else if (*p == (in_object ? '}' : ']')) {
                p++;
                depth--;
            } else {
                return false;
            }
            break;
        }
        }
    }
}

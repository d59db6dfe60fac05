/*
 * cdcjson.c -- typed JSON rendering of replicated column values, rows and keys.
 *
 * A type OID is looked up in a small table of built-in types, which says how the
 * text is rendered (its "kind") and, for array types, the element type.  Types not
 * in the table are strings.  The OIDs are PostgreSQL's fixed catalog OIDs
 * (src/include/catalog/pg_type.dat); every array type listed uses ',' as its
 * element delimiter (box[] uses ';', which is why geometric arrays are left out
 * and come out as strings).
 *
 * Numbers are never converted: a value that is a valid JSON number is copied byte
 * for byte, which is what keeps a 40-digit numeric exact.  To avoid a second pass,
 * non-string values are appended to the output first and checked where they landed
 * (json_number_valid(), json_valid()); the rare value that must be rendered
 * differently (NaN, a bool's 't', an invalid value) is cut off again.
 *
 * Arrays arrive in array_out()'s text format: an optional dimension decoration
 * "[lb:ub][lb:ub]=" when a lower bound is not 1, then nested braces.  An element
 * is double-quoted when it is empty, is "NULL" in any case, or contains a brace,
 * '"', '\\', the delimiter or white space; inside quotes '"' and '\\' are
 * backslash-escaped.  An unquoted NULL is SQL NULL.  The parser follows array_in()'s
 * leniency (white space between tokens, a backslash escaping any byte) but not its
 * checks that every sub-array has the same length: the server sends only
 * well-formed arrays, and a ragged one still renders as valid JSON.
 *
 * Removing array escapes cannot break UTF-8: a backslash is ASCII, the whole text is
 * validated first, and in valid UTF-8 a backslash is never followed by a
 * continuation byte.  So an escaped element's pieces can be fed to the JSON string
 * escaper as they are.
 */
#include "cdcjson.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Built-in type OIDs (pg_type.dat). */
#define PG_TYPE_BOOL 16
#define PG_TYPE_BYTEA 17
#define PG_TYPE_CHAR 18
#define PG_TYPE_NAME 19
#define PG_TYPE_INT8 20
#define PG_TYPE_INT2 21
#define PG_TYPE_INT4 23
#define PG_TYPE_TEXT 25
#define PG_TYPE_OID 26
#define PG_TYPE_JSON 114
#define PG_TYPE_XML 142
#define PG_TYPE_CIDR 650
#define PG_TYPE_FLOAT4 700
#define PG_TYPE_FLOAT8 701
#define PG_TYPE_MACADDR8 774
#define PG_TYPE_MONEY 790
#define PG_TYPE_MACADDR 829
#define PG_TYPE_INET 869
#define PG_TYPE_BPCHAR 1042
#define PG_TYPE_VARCHAR 1043
#define PG_TYPE_DATE 1082
#define PG_TYPE_TIME 1083
#define PG_TYPE_TIMESTAMP 1114
#define PG_TYPE_TIMESTAMPTZ 1184
#define PG_TYPE_INTERVAL 1186
#define PG_TYPE_TIMETZ 1266
#define PG_TYPE_BIT 1560
#define PG_TYPE_VARBIT 1562
#define PG_TYPE_NUMERIC 1700
#define PG_TYPE_UUID 2950
#define PG_TYPE_JSONB 3802

/* Their array types. */
#define PG_TYPE_XML_ARRAY 143
#define PG_TYPE_JSON_ARRAY 199
#define PG_TYPE_CIDR_ARRAY 651
#define PG_TYPE_MACADDR8_ARRAY 775
#define PG_TYPE_MONEY_ARRAY 791
#define PG_TYPE_BOOL_ARRAY 1000
#define PG_TYPE_BYTEA_ARRAY 1001
#define PG_TYPE_CHAR_ARRAY 1002
#define PG_TYPE_NAME_ARRAY 1003
#define PG_TYPE_INT2_ARRAY 1005
#define PG_TYPE_INT4_ARRAY 1007
#define PG_TYPE_TEXT_ARRAY 1009
#define PG_TYPE_BPCHAR_ARRAY 1014
#define PG_TYPE_VARCHAR_ARRAY 1015
#define PG_TYPE_INT8_ARRAY 1016
#define PG_TYPE_FLOAT4_ARRAY 1021
#define PG_TYPE_FLOAT8_ARRAY 1022
#define PG_TYPE_OID_ARRAY 1028
#define PG_TYPE_MACADDR_ARRAY 1040
#define PG_TYPE_INET_ARRAY 1041
#define PG_TYPE_TIMESTAMP_ARRAY 1115
#define PG_TYPE_DATE_ARRAY 1182
#define PG_TYPE_TIME_ARRAY 1183
#define PG_TYPE_TIMESTAMPTZ_ARRAY 1185
#define PG_TYPE_INTERVAL_ARRAY 1187
#define PG_TYPE_NUMERIC_ARRAY 1231
#define PG_TYPE_TIMETZ_ARRAY 1270
#define PG_TYPE_BIT_ARRAY 1561
#define PG_TYPE_VARBIT_ARRAY 1563
#define PG_TYPE_UUID_ARRAY 2951
#define PG_TYPE_JSONB_ARRAY 3807

/* How a type's text becomes JSON. */
enum kind {
    KIND_STRING,  /* a JSON string of the text */
    KIND_INT,     /* a JSON number; the text must be one */
    KIND_NUMERIC, /* a JSON number, or NaN/Infinity/-Infinity as strings */
    KIND_FLOAT,   /* a JSON number, or a string when it is not one */
    KIND_BOOL,    /* t -> true, f -> false */
    KIND_JSON,    /* embedded when valid */
    KIND_ARRAY,   /* a JSON array of elem */
};

struct type_desc {
    pgo_oid_t oid;
    const char *name; /* for error messages */
    enum kind kind;
    pgo_oid_t elem; /* element type of an array, else 0 */
};

/*
 * The string types are listed only for their names in error messages; a type
 * missing here is a string too.  A linear scan: the table is short and the common
 * OIDs come first.
 */
static const struct type_desc types[] = {
    {PG_TYPE_INT4, "int4", KIND_INT, 0},
    {PG_TYPE_INT8, "int8", KIND_INT, 0},
    {PG_TYPE_INT2, "int2", KIND_INT, 0},
    {PG_TYPE_OID, "oid", KIND_INT, 0},
    {PG_TYPE_NUMERIC, "numeric", KIND_NUMERIC, 0},
    {PG_TYPE_FLOAT4, "float4", KIND_FLOAT, 0},
    {PG_TYPE_FLOAT8, "float8", KIND_FLOAT, 0},
    {PG_TYPE_BOOL, "bool", KIND_BOOL, 0},
    {PG_TYPE_JSON, "json", KIND_JSON, 0},
    {PG_TYPE_JSONB, "jsonb", KIND_JSON, 0},
    {PG_TYPE_TEXT, "text", KIND_STRING, 0},
    {PG_TYPE_VARCHAR, "varchar", KIND_STRING, 0},
    {PG_TYPE_UUID, "uuid", KIND_STRING, 0},
    {PG_TYPE_TIMESTAMPTZ, "timestamptz", KIND_STRING, 0},
    {PG_TYPE_TIMESTAMP, "timestamp", KIND_STRING, 0},
    {PG_TYPE_DATE, "date", KIND_STRING, 0},
    {PG_TYPE_TIME, "time", KIND_STRING, 0},
    {PG_TYPE_TIMETZ, "timetz", KIND_STRING, 0},
    {PG_TYPE_INTERVAL, "interval", KIND_STRING, 0},
    {PG_TYPE_BPCHAR, "bpchar", KIND_STRING, 0},
    {PG_TYPE_CHAR, "char", KIND_STRING, 0},
    {PG_TYPE_NAME, "name", KIND_STRING, 0},
    {PG_TYPE_BYTEA, "bytea", KIND_STRING, 0},
    {PG_TYPE_MONEY, "money", KIND_STRING, 0},
    {PG_TYPE_INET, "inet", KIND_STRING, 0},
    {PG_TYPE_CIDR, "cidr", KIND_STRING, 0},
    {PG_TYPE_MACADDR, "macaddr", KIND_STRING, 0},
    {PG_TYPE_MACADDR8, "macaddr8", KIND_STRING, 0},
    {PG_TYPE_BIT, "bit", KIND_STRING, 0},
    {PG_TYPE_VARBIT, "varbit", KIND_STRING, 0},
    {PG_TYPE_XML, "xml", KIND_STRING, 0},
    {PG_TYPE_INT4_ARRAY, "int4[]", KIND_ARRAY, PG_TYPE_INT4},
    {PG_TYPE_INT8_ARRAY, "int8[]", KIND_ARRAY, PG_TYPE_INT8},
    {PG_TYPE_INT2_ARRAY, "int2[]", KIND_ARRAY, PG_TYPE_INT2},
    {PG_TYPE_OID_ARRAY, "oid[]", KIND_ARRAY, PG_TYPE_OID},
    {PG_TYPE_NUMERIC_ARRAY, "numeric[]", KIND_ARRAY, PG_TYPE_NUMERIC},
    {PG_TYPE_FLOAT4_ARRAY, "float4[]", KIND_ARRAY, PG_TYPE_FLOAT4},
    {PG_TYPE_FLOAT8_ARRAY, "float8[]", KIND_ARRAY, PG_TYPE_FLOAT8},
    {PG_TYPE_BOOL_ARRAY, "bool[]", KIND_ARRAY, PG_TYPE_BOOL},
    {PG_TYPE_JSON_ARRAY, "json[]", KIND_ARRAY, PG_TYPE_JSON},
    {PG_TYPE_JSONB_ARRAY, "jsonb[]", KIND_ARRAY, PG_TYPE_JSONB},
    {PG_TYPE_TEXT_ARRAY, "text[]", KIND_ARRAY, PG_TYPE_TEXT},
    {PG_TYPE_VARCHAR_ARRAY, "varchar[]", KIND_ARRAY, PG_TYPE_VARCHAR},
    {PG_TYPE_BPCHAR_ARRAY, "bpchar[]", KIND_ARRAY, PG_TYPE_BPCHAR},
    {PG_TYPE_CHAR_ARRAY, "char[]", KIND_ARRAY, PG_TYPE_CHAR},
    {PG_TYPE_NAME_ARRAY, "name[]", KIND_ARRAY, PG_TYPE_NAME},
    {PG_TYPE_UUID_ARRAY, "uuid[]", KIND_ARRAY, PG_TYPE_UUID},
    {PG_TYPE_BYTEA_ARRAY, "bytea[]", KIND_ARRAY, PG_TYPE_BYTEA},
    {PG_TYPE_TIMESTAMP_ARRAY, "timestamp[]", KIND_ARRAY, PG_TYPE_TIMESTAMP},
    {PG_TYPE_TIMESTAMPTZ_ARRAY, "timestamptz[]", KIND_ARRAY, PG_TYPE_TIMESTAMPTZ},
    {PG_TYPE_DATE_ARRAY, "date[]", KIND_ARRAY, PG_TYPE_DATE},
    {PG_TYPE_TIME_ARRAY, "time[]", KIND_ARRAY, PG_TYPE_TIME},
    {PG_TYPE_TIMETZ_ARRAY, "timetz[]", KIND_ARRAY, PG_TYPE_TIMETZ},
    {PG_TYPE_INTERVAL_ARRAY, "interval[]", KIND_ARRAY, PG_TYPE_INTERVAL},
    {PG_TYPE_MONEY_ARRAY, "money[]", KIND_ARRAY, PG_TYPE_MONEY},
    {PG_TYPE_INET_ARRAY, "inet[]", KIND_ARRAY, PG_TYPE_INET},
    {PG_TYPE_CIDR_ARRAY, "cidr[]", KIND_ARRAY, PG_TYPE_CIDR},
    {PG_TYPE_MACADDR_ARRAY, "macaddr[]", KIND_ARRAY, PG_TYPE_MACADDR},
    {PG_TYPE_MACADDR8_ARRAY, "macaddr8[]", KIND_ARRAY, PG_TYPE_MACADDR8},
    {PG_TYPE_BIT_ARRAY, "bit[]", KIND_ARRAY, PG_TYPE_BIT},
    {PG_TYPE_VARBIT_ARRAY, "varbit[]", KIND_ARRAY, PG_TYPE_VARBIT},
    {PG_TYPE_XML_ARRAY, "xml[]", KIND_ARRAY, PG_TYPE_XML},
};

/* Stands for every type without an entry. */
static const struct type_desc string_type = {0, NULL, KIND_STRING, 0};

static const struct type_desc *type_lookup(pgo_oid_t oid)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (types[i].oid == oid)
            return &types[i];
    return &string_type;
}

/* A printable name for error messages: the table's, or "type <oid>". */
static const char *type_label(const struct type_desc *t, pgo_oid_t oid, char *buf, size_t size)
{
    if (t->name)
        return t->name;
    snprintf(buf, size, "type %u", (unsigned)oid);
    return buf;
}

static int set_error(char *errstr, size_t errstr_size, int rc, const char *fmt, ...)
    JBUF_PRINTF(4, 5);

/* Fill errstr (when there is one) and return rc. */
static int set_error(char *errstr, size_t errstr_size, int rc, const char *fmt, ...)
{
    va_list ap;

    if (errstr && errstr_size > 0) {
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The text values float and numeric use for non-finite numbers, or NULL. */
static const char *special_number(const char *s, size_t n)
{
    static const char *const words[] = {"NaN", "Infinity", "-Infinity"};

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0)
            return words[i];
    return NULL;
}

static void put_bytes(struct jbuf *b, const char *s, size_t n)
{
    jbuf_put(b, s, n);
}

/*
 * Append raw[0..n) through put, dropping array backslash escapes when escaped is
 * set.  A run is cut at each backslash and the next run starts at the escaped byte,
 * so a multibyte character is never split between two calls to put.  raw never
 * ends in an unpaired backslash (the array parser guarantees it).
 */
static void put_unescaped(struct jbuf *b, const char *raw, size_t n, bool escaped,
                          void (*put)(struct jbuf *, const char *, size_t))
{
    size_t i = 0, start = 0;

    if (!escaped) {
        put(b, raw, n);
        return;
    }
    while (i < n) {
        if (raw[i] == '\\') {
            if (i > start)
                put(b, raw + start, i - start);
            start = ++i; /* the escaped byte begins the next run, whatever it is */
            if (i < n)
                i++;
            continue;
        }
        i++;
    }
    if (i > start)
        put(b, raw + start, i - start);
}

static void put_string(struct jbuf *b, const char *raw, size_t n, bool escaped)
{
    jbuf_putc(b, '"');
    put_unescaped(b, raw, n, escaped, jbuf_put_json_chars);
    jbuf_putc(b, '"');
}

static int render_array(struct jbuf *b, const struct type_desc *t, const char *s, size_t n,
                        char *errstr, size_t errstr_size);

/*
 * Append the value whose text is raw[0..n) (with array escapes still in it when
 * escaped is set) as type t.  The text is valid UTF-8.  On error b may hold a
 * partial rendering; the public functions cut it off.
 */
static int render_text(struct jbuf *b, const struct type_desc *t, const char *raw, size_t n,
                       bool escaped, char *errstr, size_t errstr_size)
{
    size_t mark = b->len;
    const char *s, *special;
    size_t len;

    switch (t->kind) {
    case KIND_STRING:
        put_string(b, raw, n, escaped);
        return 0;
    case KIND_ARRAY:
        /* Array elements are never arrays themselves, so this is a column value. */
        return render_array(b, t, raw, n, errstr, errstr_size);
    default:
        break;
    }

    /* Copy the text as it is, then look at it where it landed. */
    put_unescaped(b, raw, n, escaped, put_bytes);
    if (b->oom)
        return set_error(errstr, errstr_size, -ENOMEM, "out of memory");
    s = b->data + mark;
    len = b->len - mark;

    switch (t->kind) {
    case KIND_INT:
        if (json_number_valid(s, len))
            return 0;
        break;
    case KIND_NUMERIC:
    case KIND_FLOAT:
        if (json_number_valid(s, len))
            return 0;
        special = special_number(s, len);
        if (special) {
            jbuf_truncate(b, mark);
            jbuf_put_json_string(b, special, strlen(special));
            return 0;
        }
        if (t->kind == KIND_FLOAT) {
            /* Not a float's output format, but keep the value rather than fail. */
            jbuf_truncate(b, mark);
            put_string(b, raw, n, escaped);
            return 0;
        }
        break;
    case KIND_BOOL:
        if (len == 1 && (s[0] == 't' || s[0] == 'f')) {
            bool v = s[0] == 't';

            jbuf_truncate(b, mark);
            jbuf_puts(b, v ? "true" : "false");
            return 0;
        }
        break;
    case KIND_JSON:
        if (json_valid(s, len))
            return 0;
        jbuf_truncate(b, mark);
        return set_error(errstr, errstr_size, -EINVAL, "invalid %s value: not valid json", t->name);
    default:
        break;
    }
    jbuf_truncate(b, mark);
    return set_error(errstr, errstr_size, -EINVAL,
                     "invalid %s value: not in the type's text format", t->name);
}

/* White space as array_in() skips it. */
static bool array_isspace(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static const char *skip_array_space(const char *p, const char *end)
{
    while (p < end && array_isspace(*p))
        p++;
    return p;
}

/* True when s[0..n) is "NULL" in any letter case. */
static bool is_null_word(const char *s, size_t n)
{
    static const char word[] = "null";

    if (n != 4)
        return false;
    for (size_t i = 0; i < 4; i++) {
        char c = s[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return false;
    }
    return true;
}

/*
 * Skip a dimension decoration, "[lb:ub]" (or "[ub]") once per dimension followed
 * by '=', if the text starts with one.  Returns the position after it, p itself when
 * there is none, or NULL when it is malformed.
 */
static const char *skip_dimensions(const char *p, const char *end)
{
    if (p == end || *p != '[')
        return p;
    while (p < end && *p == '[') {
        int bounds = 0;

        p++;
        for (;;) {
            const char *digits;

            if (p < end && (*p == '-' || *p == '+'))
                p++;
            digits = p;
            while (p < end && *p >= '0' && *p <= '9')
                p++;
            if (p == digits)
                return NULL;
            bounds++;
            if (p < end && *p == ':' && bounds == 1) {
                p++;
                continue;
            }
            break;
        }
        if (p == end || *p != ']')
            return NULL;
        p++;
    }
    if (p == end || *p != '=')
        return NULL;
    return p + 1;
}

/*
 * Parse one element starting at *pp (not white space, not a brace) and render it.
 * On success *pp points past it.
 */
static int render_element(struct jbuf *b, const struct type_desc *at, const struct type_desc *et,
                          const char **pp, const char *end, char *errstr, size_t errstr_size)
{
    const char *p = *pp, *start, *last;
    bool escaped = false;
    int rc;

    if (*p == '"') {
        start = ++p;
        while (p < end && *p != '"') {
            if (*p == '\\') {
                escaped = true;
                if (++p == end)
                    break;
            }
            p++;
        }
        if (p >= end)
            return set_error(errstr, errstr_size, -EINVAL,
                             "invalid %s value: unterminated quoted element", at->name);
        rc = render_text(b, et, start, (size_t)(p - start), escaped, errstr, errstr_size);
        p++; /* the closing quote */
    } else {
        /* Unquoted: up to ',' or '}', trailing white space not included. */
        start = last = p;
        while (p < end && *p != ',' && *p != '}') {
            if (*p == '{' || *p == '"')
                return set_error(errstr, errstr_size, -EINVAL,
                                 "invalid %s value: unexpected '%c' in element", at->name, *p);
            if (*p == '\\') {
                escaped = true;
                if (++p == end)
                    break;
                last = ++p;
                continue;
            }
            p++;
            if (!array_isspace(p[-1]))
                last = p;
        }
        if (p == end)
            return set_error(errstr, errstr_size, -EINVAL, "invalid %s value: missing '}'",
                             at->name);
        if (last == start)
            return set_error(errstr, errstr_size, -EINVAL, "invalid %s value: empty element",
                             at->name);
        if (!escaped && is_null_word(start, (size_t)(last - start))) {
            jbuf_put(b, "null", 4);
            rc = 0;
        } else {
            rc = render_text(b, et, start, (size_t)(last - start), escaped, errstr, errstr_size);
        }
    }
    *pp = p;
    return rc;
}

static int render_array(struct jbuf *b, const struct type_desc *at, const char *s, size_t n,
                        char *errstr, size_t errstr_size)
{
    const struct type_desc *et = type_lookup(at->elem);
    const char *p = s, *end = s + n;
    enum { OPENED, ELEMENT, AFTER } state = OPENED;
    size_t depth = 1;
    int rc;

    p = skip_dimensions(skip_array_space(p, end), end);
    if (!p)
        return set_error(errstr, errstr_size, -EINVAL,
                         "invalid %s value: malformed dimension decoration", at->name);
    p = skip_array_space(p, end);
    if (p == end || *p != '{')
        return set_error(errstr, errstr_size, -EINVAL, "invalid %s value: missing '{'", at->name);
    p++;
    jbuf_putc(b, '[');

    while (depth > 0) {
        p = skip_array_space(p, end);
        if (p == end)
            return set_error(errstr, errstr_size, -EINVAL, "invalid %s value: missing '}'",
                             at->name);
        if (state != ELEMENT && *p == '}') {
            jbuf_putc(b, ']');
            p++;
            depth--;
            state = AFTER;
            continue;
        }
        if (state == AFTER) {
            if (*p != ',')
                return set_error(errstr, errstr_size, -EINVAL,
                                 "invalid %s value: expected ',' or '}'", at->name);
            jbuf_putc(b, ',');
            p++;
            state = ELEMENT;
            continue;
        }
        if (*p == '{') {
            /* PostgreSQL allows 6 dimensions; depth only grows with input length. */
            jbuf_putc(b, '[');
            p++;
            depth++;
            state = OPENED;
            continue;
        }
        rc = render_element(b, at, et, &p, end, errstr, errstr_size);
        if (rc)
            return rc;
        state = AFTER;
    }
    p = skip_array_space(p, end);
    if (p != end)
        return set_error(errstr, errstr_size, -EINVAL, "invalid %s value: text after the final '}'",
                         at->name);
    return 0;
}

/* Append n bytes as a base64 (RFC 4648, padded) JSON string. */
static void put_base64_string(struct jbuf *b, const unsigned char *p, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[256];
    size_t o = 0, i = 0;

    jbuf_putc(b, '"');
    for (; i + 3 <= n; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];

        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
        if (o == sizeof(out)) {
            jbuf_put(b, out, o);
            o = 0;
        }
    }
    if (i < n) {
        unsigned long v = (unsigned long)p[i] << 16;

        if (i + 1 < n)
            v |= (unsigned long)p[i + 1] << 8;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    jbuf_put(b, out, o);
    jbuf_putc(b, '"');
}

int cdc_value_to_json(struct jbuf *b, pgo_oid_t type_oid, const struct pgo_value *v, char *errstr,
                      size_t errstr_size)
{
    size_t mark = b->len;
    const struct type_desc *t;
    char label[32];
    int rc;

    if (b->oom)
        return set_error(errstr, errstr_size, -ENOMEM, "out of memory");
    switch (v->kind) {
    case PGO_VALUE_NULL:
        jbuf_put(b, "null", 4);
        break;
    case PGO_VALUE_UNCHANGED_TOAST:
        return set_error(errstr, errstr_size, -ENODATA, "unchanged toast value was not sent");
    case PGO_VALUE_BINARY:
        put_base64_string(b, (const unsigned char *)v->data, v->len);
        break;
    case PGO_VALUE_TEXT:
        t = type_lookup(type_oid);
        if (!json_utf8_valid(v->data, v->len))
            return set_error(errstr, errstr_size, -EILSEQ, "%s value is not valid utf-8",
                             type_label(t, type_oid, label, sizeof(label)));
        rc = render_text(b, t, v->data, v->len, false, errstr, errstr_size);
        if (rc) {
            jbuf_truncate(b, mark);
            return rc;
        }
        break;
    default:
        return set_error(errstr, errstr_size, -EINVAL, "unknown value kind %d", (int)v->kind);
    }
    if (b->oom) {
        jbuf_truncate(b, mark);
        return set_error(errstr, errstr_size, -ENOMEM, "out of memory");
    }
    return 0;
}

/*
 * The body of cdc_row_to_json() and cdc_key_to_json(): every column, or only the
 * key columns when key_only is set (then unchanged is NULL).
 */
static int render_object(struct jbuf *b, const struct rel_desc *rel, const struct pgo_tuple *t,
                         bool key_only, struct jbuf *unchanged, char *errstr, size_t errstr_size)
{
    size_t mark = b->len, umark = unchanged ? unchanged->len : 0;
    bool first = true, ufirst = true, any_key = false;
    char inner[256];
    int rc;

    if (t->ncols != rel->ncols)
        return set_error(errstr, errstr_size, -EINVAL,
                         "tuple has %u columns but relation \"%s.%s\" has %u", (unsigned)t->ncols,
                         rel->nspname, rel->relname, (unsigned)rel->ncols);
    if (b->oom || (unchanged && unchanged->oom))
        return set_error(errstr, errstr_size, -ENOMEM, "out of memory");

    if (key_only) {
        for (uint16_t i = 0; i < rel->ncols; i++)
            if (rel->cols[i].flags & 1)
                any_key = true;
        if (!any_key) {
            jbuf_put(b, "null", 4);
            goto done;
        }
    }

    jbuf_putc(b, '{');
    if (unchanged)
        jbuf_putc(unchanged, '[');
    for (uint16_t i = 0; i < rel->ncols; i++) {
        const struct rel_col *c = &rel->cols[i];
        const struct pgo_value *v = &t->cols[i];

        if (key_only && !(c->flags & 1))
            continue;
        if (!key_only && v->kind == PGO_VALUE_UNCHANGED_TOAST) {
            if (unchanged) {
                if (!ufirst)
                    jbuf_putc(unchanged, ',');
                jbuf_put_json_string(unchanged, c->name, strlen(c->name));
                ufirst = false;
            }
            continue;
        }
        if (!first)
            jbuf_putc(b, ',');
        first = false;
        jbuf_put_json_string(b, c->name, strlen(c->name));
        jbuf_putc(b, ':');
        rc = cdc_value_to_json(b, c->type_oid, v, inner, sizeof(inner));
        if (rc) {
            set_error(errstr, errstr_size, rc, "%scolumn \"%s\": %s", key_only ? "key " : "",
                      c->name, inner);
            goto fail;
        }
    }
    jbuf_putc(b, '}');
    if (unchanged)
        jbuf_putc(unchanged, ']');

done:
    if (b->oom || (unchanged && unchanged->oom)) {
        rc = set_error(errstr, errstr_size, -ENOMEM, "out of memory");
        goto fail;
    }
    return 0;

fail:
    jbuf_truncate(b, mark);
    if (unchanged)
        jbuf_truncate(unchanged, umark);
    return rc;
}

int cdc_row_to_json(struct jbuf *b, const struct rel_desc *rel, const struct pgo_tuple *t,
                    struct jbuf *unchanged, char *errstr, size_t errstr_size)
{
    return render_object(b, rel, t, false, unchanged, errstr, errstr_size);
}

int cdc_key_to_json(struct jbuf *b, const struct rel_desc *rel, const struct pgo_tuple *t,
                    char *errstr, size_t errstr_size)
{
    return render_object(b, rel, t, true, NULL, errstr, errstr_size);
}

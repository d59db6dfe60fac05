/*
 * test_render.c -- unit tests for rendering events as messages (relay/format.c), in
 * each of the three formats, for every kind of event: outbox rows with a schema
 * version, header columns and a headers object; table-less outbox messages; and
 * table changes (insert, update, delete, truncate) of cdc tables.
 *
 * The events are made by the real event model (event_from_outbox_row,
 * event_from_message, event_from_change) from hand-built relations and tuples, so a
 * test exercises the path a decoded message takes through the relay.  Every
 * assertion is on exact bytes: the full list of headers in order, each name and
 * value; the whole structured envelope or Debezium value compared to a literal
 * (the same shapes as tests/golden/, with the position filled in instead of
 * masked); the key; the topic.  Every JSON value produced must also pass
 * json_valid().  Message contents are copied into heap blocks of exactly their
 * length, with no NUL after them, so an over-read trips AddressSanitizer.
 *
 * One position is used throughout: system id 7301234567890123456, timeline 1,
 * commit LSN 0/16B3748 (23803720), xid 731, index 3, commit time
 * 2023-11-14T22:13:20.123456Z (1700000000123456 us).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "event.h"
#include "format.h"
#include "jsonbuf.h"

/* PostgreSQL type OIDs (pg_type.dat). */
#define OID_INT8 20
#define OID_TEXT 25
#define OID_UUID 2950
#define OID_JSONB 3802

#define OUTBOX_RELID 16385
#define CUSTOMERS_RELID 16400
#define NOKEY_RELID 16410

#define SYSID "7301234567890123456"
#define TIME "2023-11-14T22:13:20.123456Z"
#define LSN "0/16B3748"
#define LSN_DEC "23803720"
#define TS_MS "1700000000123"
#define EV_ID "1f0e7c9a-0000-4000-8000-000000000001"
#define SOURCE "/shop/public.outbox"

static struct event_pos test_pos(void)
{
    struct event_pos p = {SYSID, 1, UINT64_C(0x16B3748), 731, 3, INT64_C(1700000000123456)};

    return p;
}

/* ---------------------------------------------------------------- helpers */

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* Header i is name: value; value NULL means a header without a value. */
static void assert_header(const struct out_msg *m, int i, const char *name, const char *value)
{
    if (i >= m->nheaders)
        fail_msg("header %d (%s) missing: only %d headers", i, name, m->nheaders);
    assert_non_null(m->headers[i].name);
    if (strcmp(m->headers[i].name, name) != 0)
        fail_msg("header %d: want name \"%s\", got \"%s\"", i, name, m->headers[i].name);
    if (!value) {
        if (m->headers[i].value != NULL || m->headers[i].len != 0)
            fail_msg("header %s: want no value, got \"%.*s\"", name, (int)m->headers[i].len,
                     m->headers[i].value);
        return;
    }
    assert_non_null(m->headers[i].value);
    if (m->headers[i].len != strlen(value) ||
        memcmp(m->headers[i].value, value, m->headers[i].len) != 0)
        fail_msg("header %s: want \"%s\", got \"%.*s\"", name, value, (int)m->headers[i].len,
                 m->headers[i].value);
}

static bool has_header(const struct out_msg *m, const char *name)
{
    for (int i = 0; i < m->nheaders; i++)
        if (strcmp(m->headers[i].name, name) == 0)
            return true;
    return false;
}

/* The message value is exactly want (a JSON text, also checked with json_valid). */
static void assert_value(const struct out_msg *m, const char *want)
{
    assert_non_null(m->value);
    if (m->value_len != strlen(want) || memcmp(m->value, want, m->value_len) != 0)
        fail_msg("value:\nwant %s\ngot  %.*s", want, (int)m->value_len, m->value);
    assert_true(json_valid(m->value, m->value_len));
}

static void assert_key(const struct out_msg *m, const char *want)
{
    assert_non_null(m->key);
    if (m->key_len != strlen(want) || memcmp(m->key, want, m->key_len) != 0)
        fail_msg("key: want %s, got %.*s", want, (int)m->key_len, m->key);
}

/* The CloudEvents binary-mode attribute headers 0..8 shared by every outbox event. */
static void assert_ce_head(const struct out_msg *m, const char *id, const char *source,
                           const char *type, const char *subject)
{
    assert_header(m, 0, "ce_specversion", "1.0");
    assert_header(m, 1, "ce_id", id);
    assert_header(m, 2, "ce_source", source);
    assert_header(m, 3, "ce_type", type);
    assert_header(m, 4, "ce_subject", subject);
    assert_header(m, 5, "ce_time", TIME);
    assert_header(m, 6, "ce_pglsn", LSN);
    assert_header(m, 7, "ce_pgxid", "731");
    assert_header(m, 8, "ce_pgindex", "3");
    assert_header(m, 9, "content-type", "application/json");
}

static formatter *new_formatter(const char *tmpl, enum format_kind kind)
{
    char err[256] = "";
    formatter *f = formatter_new(tmpl, SOURCE, err, sizeof(err));

    if (!f)
        fail_msg("formatter_new(\"%s\"): %s", tmpl, err);
    formatter_set_kind(f, kind);
    if (formatter_set_cdc(f, "cdc.{schema}.{table}", "/shop", err, sizeof(err)) != 0)
        fail_msg("formatter_set_cdc: %s", err);
    return f;
}

static struct pgo_value text_str(const char *s)
{
    struct pgo_value v = {PGO_VALUE_TEXT, (uint32_t)strlen(s), s};

    return v;
}

static struct pgo_value null_value(void)
{
    struct pgo_value v = {PGO_VALUE_NULL, 0, NULL};

    return v;
}

/* ---------------------------------------------------------------- outbox rows */

enum {
    COL_ID,
    COL_AGGTYPE,
    COL_AGGID,
    COL_TYPE,
    COL_PAYLOAD,
    COL_VERSION,
    COL_HEADERS,
    COL_TENANT,
    COL_TRACE,
    NCOLS
};

static const struct pgo_relation_column outbox_columns[NCOLS] = {
    {1, "id", OID_UUID, -1},          {0, "aggregatetype", OID_TEXT, -1},
    {0, "aggregateid", OID_TEXT, -1}, {0, "type", OID_TEXT, -1},
    {0, "payload", OID_JSONB, -1},    {0, "version", OID_TEXT, -1},
    {0, "headers", OID_JSONB, -1},    {0, "tenant", OID_TEXT, -1},
    {0, "trace", OID_TEXT, -1},
};

/* Configured header columns, in an order other than the table's. */
static char hc_trace[] = "trace";
static char hc_tenant[] = "tenant";
static char *const header_columns[] = {hc_trace, hc_tenant};

#define PAYLOAD "{\"total\": 12.50, \"items\": [ 1, 2 ]}"
#define HEADERS                                                                                    \
    "{\"traceparent\":\"00-4bf9\", \"note\":null, \"attempt\":3, \"quote\\\"d\":\"a\\\\nb\", "     \
    "\"obj\":{\"k\":[1, 2]}, \"flag\":true, \"uni\":\"caf\\u00e9\"}"

struct outbox_fx {
    relcache *rc;
    const struct rel_desc *rel;
    struct pgo_value vals[NCOLS];
    struct pgo_tuple tuple;
    struct event_pos pos;
    struct event ev;
    struct out_msg out;
    char err[256];
};

static void outbox_init(struct outbox_fx *f)
{
    const struct outbox_spec spec = {NULL, "version", "headers", header_columns, 2};
    struct pgo_relation r = {OUTBOX_RELID, "public", "outbox", 'd', NCOLS, outbox_columns};

    memset(f, 0, sizeof(*f));
    f->rc = relcache_new("public", "outbox");
    assert_non_null(f->rc);
    assert_int_equal(relcache_set_outbox_spec(f->rc, &spec, f->err, sizeof(f->err)), 0);
    assert_int_equal(relcache_update(f->rc, &r, f->err, sizeof(f->err)), 0);
    f->rel = relcache_get(f->rc, OUTBOX_RELID);
    assert_non_null(f->rel);
    f->vals[COL_ID] = text_str(EV_ID);
    f->vals[COL_AGGTYPE] = text_str("order");
    f->vals[COL_AGGID] = text_str("order-42");
    f->vals[COL_TYPE] = text_str("OrderCreated");
    f->vals[COL_PAYLOAD] = text_str(PAYLOAD);
    f->vals[COL_VERSION] = text_str("2");
    f->vals[COL_HEADERS] = text_str(HEADERS);
    f->vals[COL_TENANT] = text_str("acme");
    f->vals[COL_TRACE] = text_str("t-77");
    f->tuple.ncols = NCOLS;
    f->tuple.cols = f->vals;
    f->pos = test_pos();
}

/* Build the row's event and render it with fmt; both must succeed. */
static void outbox_render(struct outbox_fx *f, formatter *fmt)
{
    f->err[0] = '\0';
    if (event_from_outbox_row(f->rel, &f->tuple, &f->pos, &f->ev, f->err, sizeof(f->err)) != 0)
        fail_msg("event_from_outbox_row: %s", f->err);
    memset(&f->out, 0xA5, sizeof(f->out)); /* garbage in: render must set every field */
    if (formatter_render(fmt, &f->ev, &f->out, f->err, sizeof(f->err)) != 0)
        fail_msg("formatter_render: %s", f->err);
}

static void outbox_done(struct outbox_fx *f)
{
    relcache_free(f->rc);
}

/* The extra headers of the fixture's row, from index i on: columns, then the object. */
static void assert_extra_headers(const struct out_msg *m, int i)
{
    assert_header(m, i++, "trace", "t-77");
    assert_header(m, i++, "tenant", "acme");
    assert_header(m, i++, "traceparent", "00-4bf9");
    assert_header(m, i++, "note", NULL);
    assert_header(m, i++, "attempt", "3");
    assert_header(m, i++, "quote\"d", "a\\nb");
    assert_header(m, i++, "obj", "{\"k\":[1, 2]}");
    assert_header(m, i++, "flag", "true");
    assert_header(m, i++, "uni", "caf\xc3\xa9");
    assert_int_equal(m->nheaders, i);
}

static void test_ce_binary_outbox(void **state)
{
    struct outbox_fx f;
    formatter *fmt = new_formatter("outbox.event.{aggregatetype}", FORMAT_CLOUDEVENTS);

    (void)state;
    outbox_init(&f);
    outbox_render(&f, fmt);
    assert_string_equal(f.out.topic, "outbox.event.order");
    assert_key(&f.out, "order-42");
    /* Binary mode: the value is the payload itself, not a copy. */
    assert_ptr_equal(f.out.value, f.vals[COL_PAYLOAD].data);
    assert_int_equal(f.out.value_len, strlen(PAYLOAD));

    assert_int_equal(f.out.nheaders, 22);
    assert_ce_head(&f.out, EV_ID, SOURCE, "OrderCreated", "order-42");
    assert_header(&f.out, 10, "ce_schemaversion", "2");
    assert_header(&f.out, 11, "ce_pgsystemid", SYSID);
    assert_header(&f.out, 12, "ce_pgtimeline", "1");
    assert_extra_headers(&f.out, 13);
    /* No cdc-only header on an outbox event. */
    assert_false(has_header(&f.out, "ce_pgtable"));

    /* Rendering again starts a fresh header list, and the headers follow the row. */
    f.vals[COL_HEADERS] = text_str("{\"only\":\"one\"}");
    outbox_render(&f, fmt);
    assert_int_equal(f.out.nheaders, 16);
    assert_header(&f.out, 15, "only", "one");
    formatter_free(fmt);
    outbox_done(&f);
}

/* A NULL header column makes no header; a NULL headers object makes none either. */
static void test_ce_binary_null_extras(void **state)
{
    struct outbox_fx f;
    formatter *fmt = new_formatter("events", FORMAT_CLOUDEVENTS);

    (void)state;
    outbox_init(&f);
    f.vals[COL_TENANT] = null_value();
    outbox_render(&f, fmt);
    assert_non_null(f.ev.extra[1].name);
    assert_string_equal(f.ev.extra[1].name, "tenant");
    assert_null(f.ev.extra[1].value.p);
    assert_header(&f.out, 13, "trace", "t-77");
    assert_header(&f.out, 14, "traceparent", "00-4bf9");
    assert_int_equal(f.out.nheaders, 13 + 1 + 7);
    assert_false(has_header(&f.out, "tenant"));

    f.vals[COL_TENANT] = text_str("acme");
    f.vals[COL_TRACE] = null_value();
    f.vals[COL_HEADERS] = null_value();
    outbox_render(&f, fmt);
    assert_int_equal(f.out.nheaders, 14);
    assert_header(&f.out, 13, "tenant", "acme");

    /* An empty headers object adds nothing. */
    f.vals[COL_HEADERS] = text_str("{ }");
    outbox_render(&f, fmt);
    assert_int_equal(f.out.nheaders, 14);
    formatter_free(fmt);
    outbox_done(&f);
}

/* A headers object cannot push the list past FORMAT_MAX_HEADERS. */
static void test_ce_binary_header_limit(void **state)
{
    struct outbox_fx f;
    formatter *fmt = new_formatter("events", FORMAT_CLOUDEVENTS);
    struct jbuf h;
    /* 13 attributes + 2 columns: room for 49 members. */
    const int room = FORMAT_MAX_HEADERS - 15;

    (void)state;
    outbox_init(&f);
    jbuf_init(&h);
    jbuf_putc(&h, '{');
    for (int i = 0; i < room; i++)
        jbuf_printf(&h, "%s\"h%d\":\"v%d\"", i ? "," : "", i, i);
    jbuf_putc(&h, '}');
    assert_false(h.oom);
    f.vals[COL_HEADERS] = text_str(h.data);
    outbox_render(&f, fmt);
    assert_int_equal(f.out.nheaders, FORMAT_MAX_HEADERS);
    assert_header(&f.out, FORMAT_MAX_HEADERS - 1, "h48", "v48");

    /* One more member is refused, not silently dropped. */
    jbuf_truncate(&h, h.len - 1);
    jbuf_puts(&h, ",\"one_too_many\":1}");
    f.vals[COL_HEADERS] = text_str(h.data);
    assert_int_equal(event_from_outbox_row(f.rel, &f.tuple, &f.pos, &f.ev, f.err, sizeof(f.err)),
                     0);
    assert_int_equal(formatter_render(fmt, &f.ev, &f.out, f.err, sizeof(f.err)), -EINVAL);
    assert_contains(f.err, "64");
    jbuf_free(&h);
    formatter_free(fmt);
    outbox_done(&f);
}

#define STRUCTURED_HEAD                                                                            \
    "{\"specversion\":\"1.0\",\"id\":\"" EV_ID "\",\"source\":\"" SOURCE "\","                     \
    "\"type\":\"OrderCreated\",\"subject\":\"order-42\",\"time\":\"" TIME "\","                    \
    "\"datacontenttype\":\"application/json\","
#define STRUCTURED_TAIL                                                                            \
    "\"pgsystemid\":\"" SYSID "\",\"pgtimeline\":1,\"pglsn\":\"" LSN "\",\"pgxid\":731,"           \
    "\"pgindex\":3"

static void test_structured_outbox(void **state)
{
    struct outbox_fx f;
    formatter *fmt = new_formatter("outbox.event.{aggregatetype}", FORMAT_CLOUDEVENTS_STRUCTURED);

    (void)state;
    outbox_init(&f);
    f.vals[COL_TENANT] = null_value();
    f.vals[COL_TRACE] = null_value();
    f.vals[COL_HEADERS] = null_value();
    outbox_render(&f, fmt);
    assert_string_equal(f.out.topic, "outbox.event.order");
    assert_key(&f.out, "order-42");
    /* The payload is embedded raw under "data", inner whitespace and all. */
    assert_value(&f.out, "{\"specversion\":\"1.0\","
                         "\"id\":\"1f0e7c9a-0000-4000-8000-000000000001\","
                         "\"source\":\"/shop/public.outbox\",\"type\":\"OrderCreated\","
                         "\"subject\":\"order-42\",\"time\":\"2023-11-14T22:13:20.123456Z\","
                         "\"datacontenttype\":\"application/json\",\"schemaversion\":2,"
                         "\"pgsystemid\":\"7301234567890123456\",\"pgtimeline\":1,"
                         "\"pglsn\":\"0/16B3748\",\"pgxid\":731,\"pgindex\":3,"
                         "\"data\":{\"total\": 12.50, \"items\": [ 1, 2 ]}}");
    assert_int_equal(f.out.nheaders, 1);
    assert_header(&f.out, 0, "content-type", "application/cloudevents+json; charset=UTF-8");

    /* With header columns and a headers object: content-type, then the extras. */
    f.vals[COL_TENANT] = text_str("acme");
    f.vals[COL_TRACE] = text_str("t-77");
    f.vals[COL_HEADERS] = text_str(HEADERS);
    outbox_render(&f, fmt);
    assert_header(&f.out, 0, "content-type", "application/cloudevents+json; charset=UTF-8");
    assert_extra_headers(&f.out, 1);
    /* Headers are not attributes of the envelope. */
    assert_value(&f.out,
                 STRUCTURED_HEAD "\"schemaversion\":2," STRUCTURED_TAIL ",\"data\":" PAYLOAD "}");
    formatter_free(fmt);
    outbox_done(&f);
}

/* A NULL payload leaves out "data" altogether (not "data":null). */
static void test_structured_null_payload(void **state)
{
    struct outbox_fx f;
    formatter *fmt = new_formatter("events", FORMAT_CLOUDEVENTS_STRUCTURED);

    (void)state;
    outbox_init(&f);
    f.vals[COL_PAYLOAD] = null_value();
    f.vals[COL_VERSION] = null_value();
    outbox_render(&f, fmt);
    assert_value(&f.out, STRUCTURED_HEAD "\"schemaversion\":1," STRUCTURED_TAIL "}");
    formatter_free(fmt);
    outbox_done(&f);
}

/* schemaversion is a JSON number for integer text, a JSON string for anything else. */
static void test_structured_schemaversion(void **state)
{
    static const struct {
        const char *version;
        const char *member;
    } cases[] = {
        {"2", "\"schemaversion\":2,"},
        {"0", "\"schemaversion\":0,"},
        {"-3", "\"schemaversion\":-3,"},
        {"123456789012345678", "\"schemaversion\":123456789012345678,"},
        {"2.1", "\"schemaversion\":\"2.1\","},
        {"1e3", "\"schemaversion\":\"1e3\","},
        {"v2", "\"schemaversion\":\"v2\","},
        {"2a", "\"schemaversion\":\"2a\","},
        {"-", "\"schemaversion\":\"-\","},
        {"", "\"schemaversion\":\"\","},
        {" 2", "\"schemaversion\":\" 2\","},
        {"v\"2", "\"schemaversion\":\"v\\\"2\","},
    };
    struct outbox_fx f;
    formatter *fmt = new_formatter("events", FORMAT_CLOUDEVENTS_STRUCTURED);
    char want[1024];

    (void)state;
    outbox_init(&f);
    f.vals[COL_HEADERS] = null_value();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        f.vals[COL_VERSION] = text_str(cases[i].version);
        outbox_render(&f, fmt);
        snprintf(want, sizeof(want), "%s%s%s,\"data\":%s}", STRUCTURED_HEAD, cases[i].member,
                 STRUCTURED_TAIL, PAYLOAD);
        assert_value(&f.out, want);
        /* Binary mode carries the text as it is. */
        formatter_set_kind(fmt, FORMAT_CLOUDEVENTS);
        outbox_render(&f, fmt);
        assert_header(&f.out, 10, "ce_schemaversion", cases[i].version);
        formatter_set_kind(fmt, FORMAT_CLOUDEVENTS_STRUCTURED);
    }
    formatter_free(fmt);
    outbox_done(&f);
}

/*
 * Known defect (format.c is_integer()): a version with a leading zero, "01", passes
 * the all-digits test and is written raw, "schemaversion":01, which is not JSON
 * (RFC 8259 forbids leading zeros).  The envelope must stay valid JSON; keeping the
 * text as a string is the lossless choice.
 */
static void test_structured_schemaversion_leading_zero(void **state)
{
    struct outbox_fx f;
    formatter *fmt = new_formatter("events", FORMAT_CLOUDEVENTS_STRUCTURED);
    char want[1024], got[1024];
    size_t got_len;

    (void)state;
    outbox_init(&f);
    f.vals[COL_HEADERS] = null_value();
    f.vals[COL_VERSION] = text_str("01");
    outbox_render(&f, fmt);
    /* Copy the value out and free everything first: a failure here must not leak. */
    assert_true(f.out.value_len < sizeof(got));
    got_len = f.out.value_len;
    memcpy(got, f.out.value, got_len);
    got[got_len] = '\0';
    formatter_free(fmt);
    outbox_done(&f);

    if (!json_valid(got, got_len))
        fail_msg("structured value is not JSON: %s", got);
    snprintf(want, sizeof(want), "%s%s%s,\"data\":%s}", STRUCTURED_HEAD,
             "\"schemaversion\":\"01\",", STRUCTURED_TAIL, PAYLOAD);
    assert_string_equal(got, want);
}

/* Attributes are JSON-escaped in the envelope. */
static void test_structured_escaping(void **state)
{
    struct outbox_fx f;
    formatter *fmt = new_formatter("events", FORMAT_CLOUDEVENTS_STRUCTURED);

    (void)state;
    outbox_init(&f);
    f.vals[COL_HEADERS] = null_value();
    f.vals[COL_ID] = text_str("id\"1\\");
    f.vals[COL_TYPE] = text_str("Order\tCreated");
    f.vals[COL_AGGID] = text_str("caf\xc3\xa9\n");
    outbox_render(&f, fmt);
    assert_contains(f.out.value, "\"id\":\"id\\\"1\\\\\",");
    assert_contains(f.out.value, "\"type\":\"Order\\tCreated\",");
    assert_contains(f.out.value, "\"subject\":\"caf\xc3\xa9\\n\",");
    assert_true(json_valid(f.out.value, f.out.value_len));
    /* The key is the raw aggregate id. */
    assert_key(&f.out, "caf\xc3\xa9\n");
    formatter_free(fmt);
    outbox_done(&f);
}

static void test_debezium_outbox(void **state)
{
    struct outbox_fx f;
    formatter *fmt = new_formatter("outbox.event.{aggregatetype}", FORMAT_DEBEZIUM);

    (void)state;
    outbox_init(&f);
    outbox_render(&f, fmt);
    assert_string_equal(f.out.topic, "outbox.event.order");
    assert_key(&f.out, "order-42");
    assert_ptr_equal(f.out.value, f.vals[COL_PAYLOAD].data);
    assert_int_equal(f.out.value_len, strlen(PAYLOAD));
    assert_header(&f.out, 0, "id", EV_ID);
    assert_extra_headers(&f.out, 1);
    assert_false(has_header(&f.out, "ce_id"));

    /* Without extras: the id header alone; a NULL payload is a NULL value. */
    f.vals[COL_TENANT] = null_value();
    f.vals[COL_TRACE] = null_value();
    f.vals[COL_HEADERS] = null_value();
    f.vals[COL_PAYLOAD] = null_value();
    outbox_render(&f, fmt);
    assert_int_equal(f.out.nheaders, 1);
    assert_header(&f.out, 0, "id", EV_ID);
    assert_null(f.out.value);
    assert_int_equal(f.out.value_len, 0);
    formatter_free(fmt);
    outbox_done(&f);
}

/* The key follows the configured key column, in every format. */
static void test_render_key_column(void **state)
{
    static const struct pgo_relation_column cols[] = {
        {1, "id", OID_UUID, -1},          {0, "aggregatetype", OID_TEXT, -1},
        {0, "aggregateid", OID_TEXT, -1}, {0, "type", OID_TEXT, -1},
        {0, "payload", OID_JSONB, -1},    {0, "order_id", OID_TEXT, -1},
    };
    const struct outbox_spec spec = {"order_id", NULL, NULL, NULL, 0};
    struct pgo_relation r = {OUTBOX_RELID, "public", "outbox", 'd', 6, cols};
    struct pgo_value vals[6];
    struct pgo_tuple t = {6, vals};
    struct event_pos pos = test_pos();
    struct event ev;
    struct out_msg out;
    char err[256] = "";
    relcache *rc = relcache_new("public", "outbox");
    formatter *fmt = new_formatter("{aggregateid}", FORMAT_CLOUDEVENTS);

    (void)state;
    assert_int_equal(relcache_set_outbox_spec(rc, &spec, err, sizeof(err)), 0);
    assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), 0);
    vals[0] = text_str(EV_ID);
    vals[1] = text_str("order");
    vals[2] = text_str("not-the-key");
    vals[3] = text_str("OrderCreated");
    vals[4] = text_str("{}");
    vals[5] = text_str("o-77");
    assert_int_equal(
        event_from_outbox_row(relcache_get(rc, OUTBOX_RELID), &t, &pos, &ev, err, sizeof(err)), 0);
    assert_int_equal(formatter_render(fmt, &ev, &out, err, sizeof(err)), 0);
    assert_key(&out, "o-77");
    assert_header(&out, 4, "ce_subject", "o-77");
    /* {aggregateid} in a template is the event's key too. */
    assert_string_equal(out.topic, "o-77");
    /* No version column configured: version 1. */
    assert_header(&out, 10, "ce_schemaversion", "1");
    formatter_free(fmt);
    relcache_free(rc);
}

/* ---------------------------------------------------------------- messages */

struct msg_fx {
    char *content;
    struct jbuf scratch;
    struct event ev;
    struct out_msg out;
    char err[256];
};

/* Make the event of a logical message whose content is json; must succeed. */
static void msg_event(struct msg_fx *m, const char *json)
{
    size_t n = strlen(json);
    struct event_pos pos = test_pos();

    free(m->content);
    m->content = malloc(n ? n : 1);
    assert_non_null(m->content);
    memcpy(m->content, json, n);
    m->err[0] = '\0';
    if (event_from_message(m->content, n, &pos, &m->scratch, &m->ev, m->err, sizeof(m->err)) != 0)
        fail_msg("event_from_message(%s): %s", json, m->err);
    assert_null(m->ev.rel);
    assert_null(m->ev.tuple);
}

static int msg_render(struct msg_fx *m, formatter *fmt)
{
    m->err[0] = '\0';
    memset(&m->out, 0xA5, sizeof(m->out));
    return formatter_render(fmt, &m->ev, &m->out, m->err, sizeof(m->err));
}

static void msg_done(struct msg_fx *m)
{
    free(m->content);
    jbuf_free(&m->scratch);
}

#define MESSAGE                                                                                    \
    "{\"id\":\"m-1\", \"aggregatetype\":\"invoice\", \"aggregateid\":\"inv-\\\"2\\\"\", "          \
    "\"type\":\"Invoice\\u0049ssued\", \"version\":3, "                                            \
    "\"payload\":{\"invoice\": \"inv-1\", \"lines\": [1, 2, 3]}, "                                 \
    "\"headers\":{\"correlation_id\":\"corr-\\u00e9\", \"n\":null}}"

static void test_message_ce_binary(void **state)
{
    struct msg_fx m = {0};
    formatter *fmt = new_formatter("outbox.{aggregatetype}", FORMAT_CLOUDEVENTS);

    (void)state;
    jbuf_init(&m.scratch);
    msg_event(&m, MESSAGE);
    assert_int_equal(msg_render(&m, fmt), 0);
    assert_string_equal(m.out.topic, "outbox.invoice");
    assert_key(&m.out, "inv-\"2\"");
    assert_int_equal(m.out.value_len, strlen("{\"invoice\": \"inv-1\", \"lines\": [1, 2, 3]}"));
    assert_memory_equal(m.out.value, "{\"invoice\": \"inv-1\", \"lines\": [1, 2, 3]}",
                        m.out.value_len);
    assert_int_equal(m.out.nheaders, 15);
    assert_ce_head(&m.out, "m-1", SOURCE, "InvoiceIssued", "inv-\"2\"");
    assert_header(&m.out, 10, "ce_schemaversion", "3");
    assert_header(&m.out, 11, "ce_pgsystemid", SYSID);
    assert_header(&m.out, 12, "ce_pgtimeline", "1");
    assert_header(&m.out, 13, "correlation_id", "corr-\xc3\xa9");
    assert_header(&m.out, 14, "n", NULL);
    formatter_free(fmt);
    msg_done(&m);
}

static void test_message_structured_and_debezium(void **state)
{
    struct msg_fx m = {0};
    formatter *fmt = new_formatter("outbox.{aggregatetype}", FORMAT_CLOUDEVENTS_STRUCTURED);

    (void)state;
    jbuf_init(&m.scratch);
    msg_event(&m, MESSAGE);
    assert_int_equal(msg_render(&m, fmt), 0);
    assert_value(&m.out, "{\"specversion\":\"1.0\",\"id\":\"m-1\","
                         "\"source\":\"/shop/public.outbox\",\"type\":\"InvoiceIssued\","
                         "\"subject\":\"inv-\\\"2\\\"\",\"time\":\"" TIME "\","
                         "\"datacontenttype\":\"application/json\",\"schemaversion\":3,"
                         "\"pgsystemid\":\"" SYSID "\",\"pgtimeline\":1,\"pglsn\":\"" LSN "\","
                         "\"pgxid\":731,\"pgindex\":3,"
                         "\"data\":{\"invoice\": \"inv-1\", \"lines\": [1, 2, 3]}}");
    assert_int_equal(m.out.nheaders, 3);
    assert_header(&m.out, 0, "content-type", "application/cloudevents+json; charset=UTF-8");
    assert_header(&m.out, 1, "correlation_id", "corr-\xc3\xa9");
    assert_header(&m.out, 2, "n", NULL);

    /* A message with "payload": null, a string version and no aggregatetype. */
    formatter_free(fmt);
    fmt = new_formatter("events", FORMAT_CLOUDEVENTS_STRUCTURED);
    msg_event(&m, "{\"id\":\"m-2\",\"aggregateid\":\"a\",\"type\":\"T\",\"version\":\"v2\","
                  "\"payload\":null}");
    assert_int_equal(msg_render(&m, fmt), 0);
    assert_value(&m.out, "{\"specversion\":\"1.0\",\"id\":\"m-2\","
                         "\"source\":\"/shop/public.outbox\",\"type\":\"T\","
                         "\"subject\":\"a\",\"time\":\"" TIME "\","
                         "\"datacontenttype\":\"application/json\",\"schemaversion\":\"v2\","
                         "\"pgsystemid\":\"" SYSID "\",\"pgtimeline\":1,\"pglsn\":\"" LSN "\","
                         "\"pgxid\":731,\"pgindex\":3}");
    assert_int_equal(m.out.nheaders, 1);
    /* No aggregatetype: the template that needs it fails, saying so. */
    formatter_free(fmt);
    fmt = new_formatter("outbox.{aggregatetype}", FORMAT_DEBEZIUM);
    assert_int_equal(msg_render(&m, fmt), -EDESTADDRREQ);
    assert_contains(m.err, "{aggregatetype}");
    assert_contains(m.err, "null");
    formatter_free(fmt);

    fmt = new_formatter("outbox.{type}", FORMAT_DEBEZIUM);
    msg_event(&m, MESSAGE);
    assert_int_equal(msg_render(&m, fmt), 0);
    assert_string_equal(m.out.topic, "outbox.InvoiceIssued");
    assert_key(&m.out, "inv-\"2\"");
    assert_int_equal(m.out.nheaders, 3);
    assert_header(&m.out, 0, "id", "m-1");
    assert_header(&m.out, 1, "correlation_id", "corr-\xc3\xa9");
    assert_header(&m.out, 2, "n", NULL);
    formatter_free(fmt);
    msg_done(&m);
}

/* Every event-field placeholder works for a message; a column placeholder cannot. */
static void test_message_topic_placeholders(void **state)
{
    struct msg_fx m = {0};
    formatter *fmt =
        new_formatter("{aggregatetype}.{type}.v{version}.{id}.{aggregateid}", FORMAT_CLOUDEVENTS);

    (void)state;
    jbuf_init(&m.scratch);
    msg_event(&m, "{\"id\":\"m-1\",\"aggregatetype\":\"invoice\",\"aggregateid\":\"inv-1\","
                  "\"type\":\"Invoice\\u0049ssued\",\"version\":3,\"payload\":{}}");
    assert_int_equal(msg_render(&m, fmt), 0);
    assert_string_equal(m.out.topic, "invoice.InvoiceIssued.v3.m-1.inv-1");

    /* Version as a string, and the default when it is missing. */
    msg_event(&m, "{\"id\":\"m-1\",\"aggregatetype\":\"invoice\",\"aggregateid\":\"inv-1\","
                  "\"type\":\"T\",\"version\":\"7\"}");
    assert_int_equal(msg_render(&m, fmt), 0);
    assert_string_equal(m.out.topic, "invoice.T.v7.m-1.inv-1");
    msg_event(&m, "{\"id\":\"m-1\",\"aggregatetype\":\"invoice\",\"aggregateid\":\"inv-1\","
                  "\"type\":\"T\"}");
    assert_int_equal(msg_render(&m, fmt), 0);
    assert_string_equal(m.out.topic, "invoice.T.v1.m-1.inv-1");
    formatter_free(fmt);

    /* A placeholder that is no event field: a message has no columns to look in. */
    fmt = new_formatter("outbox.{tenant}", FORMAT_CLOUDEVENTS);
    assert_int_equal(msg_render(&m, fmt), -EDESTADDRREQ);
    assert_contains(m.err, "{tenant}");
    formatter_free(fmt);
    /* Placeholders of table changes are not fields of a message either. */
    fmt = new_formatter("outbox.{table}", FORMAT_CLOUDEVENTS);
    assert_int_equal(msg_render(&m, fmt), -EDESTADDRREQ);
    assert_contains(m.err, "{table}");
    formatter_free(fmt);
    msg_done(&m);
}

/* ---------------------------------------------------------------- table changes */

enum { K_ID, K_NAME, K_NOTES, KCOLS };

/* Every column flagged, as pgoutput sends them under REPLICA IDENTITY FULL. */
static const struct pgo_relation_column customer_columns[KCOLS] = {
    {1, "id", OID_INT8, -1},
    {1, "name", OID_TEXT, -1},
    {1, "notes", OID_TEXT, -1},
};

static const char *const cdc_schemas[] = {"public", "public"};
static const char *const cdc_tables[] = {"customers", "nokey"};
static char cdc_key_id[] = "id";
/* customers: key "id" (overrides the flags); nokey: the flags pgoutput sent. */
static char *const cdc_keys[] = {cdc_key_id, NULL};

struct cdc_fx {
    relcache *rc;
    const struct rel_desc *rel;
    formatter *fmt;
    struct pgo_value newv[KCOLS], oldv[KCOLS];
    struct pgo_tuple newt, oldt;
    struct event_pos pos;
    struct event ev;
    struct out_msg out;
    char err[256];
};

static void cdc_init(struct cdc_fx *c, enum format_kind kind)
{
    struct pgo_relation r = {CUSTOMERS_RELID, "public", "customers", 'f', KCOLS, customer_columns};

    memset(c, 0, sizeof(*c));
    c->rc = relcache_new("public", "outbox");
    assert_non_null(c->rc);
    relcache_set_cdc_tables(c->rc, cdc_schemas, cdc_tables, cdc_keys, 2);
    assert_int_equal(relcache_update(c->rc, &r, c->err, sizeof(c->err)), 0);
    c->rel = relcache_get(c->rc, CUSTOMERS_RELID);
    assert_non_null(c->rel);
    assert_true(c->rel->is_cdc);
    assert_false(c->rel->is_outbox);
    /* keys "id": only id is the key now. */
    assert_int_equal(c->rel->cols[K_ID].flags, 1);
    assert_int_equal(c->rel->cols[K_NAME].flags, 0);
    assert_int_equal(c->rel->cols[K_NOTES].flags, 0);
    c->fmt = new_formatter("outbox.event.{aggregatetype}", kind);
    c->newv[K_ID] = text_str("1");
    c->newv[K_NAME] = text_str("Ada");
    c->newv[K_NOTES] = null_value();
    c->oldv[K_ID] = text_str("1");
    c->oldv[K_NAME] = text_str("Ada L");
    c->oldv[K_NOTES] = text_str("old \"note\"");
    c->newt.ncols = KCOLS;
    c->newt.cols = c->newv;
    c->oldt.ncols = KCOLS;
    c->oldt.cols = c->oldv;
    c->pos = test_pos();
}

static void cdc_done(struct cdc_fx *c)
{
    formatter_free(c->fmt);
    relcache_free(c->rc);
}

/* Make the change event and render it; both must succeed. */
static void cdc_render(struct cdc_fx *c, char op, bool with_new, char old_kind)
{
    c->err[0] = '\0';
    if (event_from_change(c->rel, op, with_new ? &c->newt : NULL, old_kind,
                          old_kind ? &c->oldt : NULL, &c->pos, &c->ev, c->err, sizeof(c->err)) != 0)
        fail_msg("event_from_change: %s", c->err);
    memset(&c->out, 0xA5, sizeof(c->out));
    if (formatter_render(c->fmt, &c->ev, &c->out, c->err, sizeof(c->err)) != 0)
        fail_msg("formatter_render: %s", c->err);
}

/* The 13 (12 without a key) CloudEvents binary headers of a customers change. */
static void assert_cdc_ce_headers(const struct out_msg *m, const char *id, const char *type,
                                  const char *subject)
{
    int i = 0;

    assert_header(m, i++, "ce_specversion", "1.0");
    assert_header(m, i++, "ce_id", id);
    assert_header(m, i++, "ce_source", "/shop/public.customers");
    assert_header(m, i++, "ce_type", type);
    if (subject)
        assert_header(m, i++, "ce_subject", subject);
    assert_header(m, i++, "ce_time", TIME);
    assert_header(m, i++, "ce_pglsn", LSN);
    assert_header(m, i++, "ce_pgxid", "731");
    assert_header(m, i++, "ce_pgindex", "3");
    assert_header(m, i++, "content-type", "application/json");
    assert_header(m, i++, "ce_pgsystemid", SYSID);
    assert_header(m, i++, "ce_pgtimeline", "1");
    assert_header(m, i++, "ce_pgtable", "public.customers");
    assert_int_equal(m->nheaders, i);
    assert_false(has_header(m, "ce_schemaversion"));
}

#define AFTER_ADA "{\"id\":1,\"name\":\"Ada\",\"notes\":null}"
#define OLD_ROW "{\"id\":1,\"name\":\"Ada L\",\"notes\":\"old \\\"note\\\"\"}"

/* One change in all three formats. */
struct change_case {
    const char *what;
    char op;
    bool with_new;
    char old_kind;
    const char *type;   /* public.customers.<verb> */
    const char *key;    /* JSON, or NULL for no key */
    const char *before; /* JSON */
    const char *after;  /* JSON */
};

static const struct change_case change_cases[] = {
    {"insert", 'c', true, 0, "public.customers.created", "{\"id\":1}", "null", AFTER_ADA},
    {"update, no old row", 'u', true, 0, "public.customers.updated", "{\"id\":1}", "null",
     AFTER_ADA},
    {"update, old key", 'u', true, 'K', "public.customers.updated", "{\"id\":1}", "{\"id\":1}",
     AFTER_ADA},
    {"update, old row", 'u', true, 'O', "public.customers.updated", "{\"id\":1}", OLD_ROW,
     AFTER_ADA},
    {"delete, old key", 'd', false, 'K', "public.customers.deleted", "{\"id\":1}", "{\"id\":1}",
     "null"},
    {"delete, old row", 'd', false, 'O', "public.customers.deleted", "{\"id\":1}", OLD_ROW, "null"},
    {"truncate", 't', false, 0, "public.customers.truncated", NULL, "null", "null"},
};

static void test_cdc_ce_binary(void **state)
{
    struct cdc_fx c;
    char data[512];

    (void)state;
    cdc_init(&c, FORMAT_CLOUDEVENTS);
    for (size_t i = 0; i < sizeof(change_cases) / sizeof(change_cases[0]); i++) {
        const struct change_case *k = &change_cases[i];

        cdc_render(&c, k->op, k->with_new, k->old_kind);
        assert_string_equal(c.out.topic, "cdc.public.customers");
        if (k->key) {
            assert_key(&c.out, k->key);
        } else {
            assert_null(c.out.key);
            assert_int_equal(c.out.key_len, 0);
        }
        assert_cdc_ce_headers(&c.out, LSN ":3", k->type, k->key);
        snprintf(data, sizeof(data), "{\"op\":\"%c\",\"before\":%s,\"after\":%s}", k->op, k->before,
                 k->after);
        assert_value(&c.out, data);
    }
    cdc_done(&c);
}

static void test_cdc_structured(void **state)
{
    struct cdc_fx c;
    char want[1024], subject[128];

    (void)state;
    cdc_init(&c, FORMAT_CLOUDEVENTS_STRUCTURED);
    /* The insert in full, as a literal. */
    cdc_render(&c, 'c', true, 0);
    assert_value(&c.out, "{\"specversion\":\"1.0\",\"id\":\"0/16B3748:3\","
                         "\"source\":\"/shop/public.customers\","
                         "\"type\":\"public.customers.created\",\"subject\":\"{\\\"id\\\":1}\","
                         "\"time\":\"2023-11-14T22:13:20.123456Z\","
                         "\"datacontenttype\":\"application/json\","
                         "\"pgsystemid\":\"7301234567890123456\",\"pgtimeline\":1,"
                         "\"pglsn\":\"0/16B3748\",\"pgxid\":731,\"pgindex\":3,"
                         "\"pgtable\":\"public.customers\","
                         "\"data\":{\"op\":\"c\",\"before\":null,"
                         "\"after\":{\"id\":1,\"name\":\"Ada\",\"notes\":null}}}");
    assert_int_equal(c.out.nheaders, 1);
    assert_header(&c.out, 0, "content-type", "application/cloudevents+json; charset=UTF-8");

    for (size_t i = 0; i < sizeof(change_cases) / sizeof(change_cases[0]); i++) {
        const struct change_case *k = &change_cases[i];

        cdc_render(&c, k->op, k->with_new, k->old_kind);
        assert_string_equal(c.out.topic, "cdc.public.customers");
        /* The subject is the key's JSON text as a string; no key, no subject. */
        subject[0] = '\0';
        if (k->key)
            snprintf(subject, sizeof(subject), "\"subject\":\"{\\\"id\\\":1}\",");
        snprintf(want, sizeof(want),
                 "{\"specversion\":\"1.0\",\"id\":\"" LSN ":3\","
                 "\"source\":\"/shop/public.customers\",\"type\":\"%s\",%s"
                 "\"time\":\"" TIME "\",\"datacontenttype\":\"application/json\","
                 "\"pgsystemid\":\"" SYSID "\",\"pgtimeline\":1,\"pglsn\":\"" LSN "\","
                 "\"pgxid\":731,\"pgindex\":3,\"pgtable\":\"public.customers\","
                 "\"data\":{\"op\":\"%c\",\"before\":%s,\"after\":%s}}",
                 k->type, subject, k->op, k->before, k->after);
        assert_value(&c.out, want);
        if (k->key)
            assert_key(&c.out, k->key);
        else
            assert_null(c.out.key);
        assert_int_equal(c.out.nheaders, 1);
    }
    cdc_done(&c);
}

static void test_cdc_debezium(void **state)
{
    struct cdc_fx c;
    char want[1024];

    (void)state;
    cdc_init(&c, FORMAT_DEBEZIUM);
    cdc_render(&c, 'c', true, 0);
    assert_value(&c.out, "{\"before\":null,"
                         "\"after\":{\"id\":1,\"name\":\"Ada\",\"notes\":null},"
                         "\"source\":{\"connector\":\"postgresql\",\"name\":\"outbox-relay\","
                         "\"db\":\"shop\",\"schema\":\"public\",\"table\":\"customers\","
                         "\"txId\":731,\"lsn\":23803720,\"ts_ms\":1700000000123},"
                         "\"op\":\"c\",\"ts_ms\":1700000000123}");
    assert_int_equal(c.out.nheaders, 0);

    for (size_t i = 0; i < sizeof(change_cases) / sizeof(change_cases[0]); i++) {
        const struct change_case *k = &change_cases[i];

        cdc_render(&c, k->op, k->with_new, k->old_kind);
        assert_string_equal(c.out.topic, "cdc.public.customers");
        snprintf(want, sizeof(want),
                 "{\"before\":%s,\"after\":%s,"
                 "\"source\":{\"connector\":\"postgresql\",\"name\":\"outbox-relay\","
                 "\"db\":\"shop\",\"schema\":\"public\",\"table\":\"customers\","
                 "\"txId\":731,\"lsn\":" LSN_DEC ",\"ts_ms\":" TS_MS "},"
                 "\"op\":\"%c\",\"ts_ms\":" TS_MS "}",
                 k->before, k->after, k->op);
        assert_value(&c.out, want);
        if (k->key)
            assert_key(&c.out, k->key);
        else
            assert_null(c.out.key);
        assert_int_equal(c.out.nheaders, 0);
    }
    cdc_done(&c);
}

/* An update whose key changed: the key is the new one, "before" the old key. */
static void test_cdc_key_changed(void **state)
{
    struct cdc_fx c;

    (void)state;
    cdc_init(&c, FORMAT_CLOUDEVENTS);
    c.newv[K_ID] = text_str("2");
    /* A 'K' old tuple carries only the key; the other columns arrive as NULL. */
    c.oldv[K_NAME] = null_value();
    c.oldv[K_NOTES] = null_value();
    cdc_render(&c, 'u', true, 'K');
    assert_key(&c.out, "{\"id\":2}");
    assert_header(&c.out, 4, "ce_subject", "{\"id\":2}");
    assert_value(&c.out, "{\"op\":\"u\",\"before\":{\"id\":1},"
                         "\"after\":{\"id\":2,\"name\":\"Ada\",\"notes\":null}}");
    cdc_done(&c);
}

/* An unchanged TOAST column is left out of "after" and listed, never rendered null. */
static void test_cdc_unchanged_toast(void **state)
{
    struct cdc_fx c;
    const struct pgo_value toast = {PGO_VALUE_UNCHANGED_TOAST, 0, NULL};

    (void)state;
    cdc_init(&c, FORMAT_CLOUDEVENTS);
    c.newv[K_NOTES] = toast;
    cdc_render(&c, 'u', true, 0);
    assert_value(&c.out, "{\"op\":\"u\",\"before\":null,\"after\":{\"id\":1,\"name\":\"Ada\"},"
                         "\"unchanged_toast\":[\"notes\"]}");

    formatter_set_kind(c.fmt, FORMAT_CLOUDEVENTS_STRUCTURED);
    cdc_render(&c, 'u', true, 0);
    assert_contains(c.out.value,
                    ",\"data\":{\"op\":\"u\",\"before\":null,"
                    "\"after\":{\"id\":1,\"name\":\"Ada\"},\"unchanged_toast\":[\"notes\"]}}");
    assert_true(json_valid(c.out.value, c.out.value_len));

    /* Debezium's envelope has no place for the list, but must not invent a null. */
    formatter_set_kind(c.fmt, FORMAT_DEBEZIUM);
    cdc_render(&c, 'u', true, 0);
    assert_true(json_valid(c.out.value, c.out.value_len));
    assert_contains(c.out.value, "\"after\":{\"id\":1,\"name\":\"Ada\"}");
    assert_null(strstr(c.out.value, "\"notes\":null"));

    /* Two such columns, listed in column order; no list when none is unchanged. */
    formatter_set_kind(c.fmt, FORMAT_CLOUDEVENTS);
    c.newv[K_NAME] = toast;
    cdc_render(&c, 'u', true, 0);
    assert_value(&c.out, "{\"op\":\"u\",\"before\":null,\"after\":{\"id\":1},"
                         "\"unchanged_toast\":[\"name\",\"notes\"]}");
    c.newv[K_NAME] = text_str("Ada");
    c.newv[K_NOTES] = text_str("n");
    cdc_render(&c, 'u', true, 0);
    assert_value(
        &c.out,
        "{\"op\":\"u\",\"before\":null,\"after\":{\"id\":1,\"name\":\"Ada\",\"notes\":\"n\"}}");
    cdc_done(&c);
}

/* Topic templates of changes: {schema}, {table}, {op}. */
static void test_cdc_topic(void **state)
{
    static const struct {
        char op;
        bool with_new;
        char old_kind;
        const char *topic;
    } ops[] = {
        {'c', true, 0, "chg.public.customers.c"},
        {'u', true, 0, "chg.public.customers.u"},
        {'d', false, 'K', "chg.public.customers.d"},
        {'t', false, 0, "chg.public.customers.t"},
    };
    struct cdc_fx c;

    (void)state;
    cdc_init(&c, FORMAT_CLOUDEVENTS);
    assert_int_equal(
        formatter_set_cdc(c.fmt, "chg.{schema}.{table}.{op}", "/shop", c.err, sizeof(c.err)), 0);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        cdc_render(&c, ops[i].op, ops[i].with_new, ops[i].old_kind);
        assert_string_equal(c.out.topic, ops[i].topic);
    }

    /* A bad template is refused and the previous one stays. */
    assert_int_equal(formatter_set_cdc(c.fmt, "chg.{", "/other", c.err, sizeof(c.err)), -EINVAL);
    assert_contains(c.err, "chg.{");
    cdc_render(&c, 'c', true, 0);
    assert_string_equal(c.out.topic, "chg.public.customers.c");
    assert_header(&c.out, 2, "ce_source", "/shop/public.customers");

    /* Outbox-event placeholders are not fields of a change. */
    assert_int_equal(formatter_set_cdc(c.fmt, "cdc.{aggregatetype}", "/shop", c.err, sizeof(c.err)),
                     0);
    assert_int_equal(
        event_from_change(c.rel, 'c', &c.newt, 0, NULL, &c.pos, &c.ev, c.err, sizeof(c.err)), 0);
    assert_int_equal(formatter_render(c.fmt, &c.ev, &c.out, c.err, sizeof(c.err)),
                     -EDESTADDRREQ);
    assert_contains(c.err, "{aggregatetype}");
    cdc_done(&c);
}

/* The id is "<commit LSN>:<index>", the source "<prefix>/<schema>.<table>". */
static void test_cdc_id_and_source(void **state)
{
    struct cdc_fx c;

    (void)state;
    cdc_init(&c, FORMAT_CLOUDEVENTS);
    cdc_render(&c, 'c', true, 0);
    assert_header(&c.out, 1, "ce_id", "0/16B3748:3");
    assert_header(&c.out, 2, "ce_source", "/shop/public.customers");

    c.pos.commit_lsn = UINT64_C(0x16B374D848);
    c.pos.index = 0;
    cdc_render(&c, 'c', true, 0);
    assert_header(&c.out, 1, "ce_id", "16/B374D848:0");
    assert_header(&c.out, 6, "ce_pglsn", "16/B374D848");
    assert_header(&c.out, 8, "ce_pgindex", "0");

    c.pos.commit_lsn = UINT64_MAX;
    c.pos.index = UINT32_MAX;
    c.pos.xid = UINT32_MAX;
    c.pos.timeline = UINT32_MAX;
    cdc_render(&c, 'c', true, 0);
    assert_header(&c.out, 1, "ce_id", "FFFFFFFF/FFFFFFFF:4294967295");
    assert_header(&c.out, 11, "ce_pgtimeline", "4294967295");

    /* The id is the position: the same change redelivered has the same id. */
    formatter_set_kind(c.fmt, FORMAT_CLOUDEVENTS_STRUCTURED);
    cdc_render(&c, 'c', true, 0);
    assert_contains(c.out.value, "\"id\":\"FFFFFFFF/FFFFFFFF:4294967295\",");

    /* Another database prefix. */
    formatter_set_kind(c.fmt, FORMAT_CLOUDEVENTS);
    assert_int_equal(
        formatter_set_cdc(c.fmt, "cdc.{schema}.{table}", "/inventory", c.err, sizeof(c.err)), 0);
    cdc_render(&c, 'c', true, 0);
    assert_header(&c.out, 2, "ce_source", "/inventory/public.customers");
    formatter_set_kind(c.fmt, FORMAT_DEBEZIUM);
    cdc_render(&c, 'c', true, 0);
    assert_contains(c.out.value, "\"db\":\"inventory\"");
    cdc_done(&c);
}

/* A cdc table without a key (REPLICA IDENTITY NOTHING): a NULL key and no subject. */
static void test_cdc_no_key(void **state)
{
    static const struct pgo_relation_column cols[] = {{0, "a", OID_TEXT, -1},
                                                      {0, "b", OID_INT8, -1}};
    struct pgo_relation r = {NOKEY_RELID, "public", "nokey", 'n', 2, cols};
    struct pgo_value v[2];
    struct pgo_tuple t = {2, v};
    struct cdc_fx c;

    (void)state;
    cdc_init(&c, FORMAT_CLOUDEVENTS);
    assert_int_equal(relcache_update(c.rc, &r, c.err, sizeof(c.err)), 0);
    c.rel = relcache_get(c.rc, NOKEY_RELID);
    assert_true(c.rel->is_cdc);
    v[0] = text_str("x");
    v[1] = text_str("5");
    assert_int_equal(
        event_from_change(c.rel, 'c', &t, 0, NULL, &c.pos, &c.ev, c.err, sizeof(c.err)), 0);
    assert_int_equal(formatter_render(c.fmt, &c.ev, &c.out, c.err, sizeof(c.err)), 0);
    assert_string_equal(c.out.topic, "cdc.public.nokey");
    assert_null(c.out.key);
    assert_int_equal(c.out.key_len, 0);
    assert_false(has_header(&c.out, "ce_subject"));
    assert_header(&c.out, 3, "ce_type", "public.nokey.created");
    assert_header(&c.out, 11, "ce_pgtable", "public.nokey");
    assert_int_equal(c.out.nheaders, 12);
    assert_value(&c.out, "{\"op\":\"c\",\"before\":null,\"after\":{\"a\":\"x\",\"b\":5}}");
    cdc_done(&c);
}

/* A change whose tuple does not match the relation is refused by the event model. */
static void test_cdc_column_count(void **state)
{
    struct cdc_fx c;

    (void)state;
    cdc_init(&c, FORMAT_CLOUDEVENTS);
    c.newt.ncols = KCOLS - 1;
    assert_int_equal(
        event_from_change(c.rel, 'c', &c.newt, 0, NULL, &c.pos, &c.ev, c.err, sizeof(c.err)),
        -EINVAL);
    assert_contains(c.err, "public.customers");
    c.newt.ncols = KCOLS;
    c.oldt.ncols = KCOLS + 1;
    assert_int_equal(
        event_from_change(c.rel, 'd', NULL, 'O', &c.oldt, &c.pos, &c.ev, c.err, sizeof(c.err)),
        -EINVAL);
    cdc_done(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ce_binary_outbox),
        cmocka_unit_test(test_ce_binary_null_extras),
        cmocka_unit_test(test_ce_binary_header_limit),
        cmocka_unit_test(test_structured_outbox),
        cmocka_unit_test(test_structured_null_payload),
        cmocka_unit_test(test_structured_schemaversion),
        cmocka_unit_test(test_structured_escaping),
        cmocka_unit_test(test_debezium_outbox),
        cmocka_unit_test(test_render_key_column),
        cmocka_unit_test(test_message_ce_binary),
        cmocka_unit_test(test_message_structured_and_debezium),
        cmocka_unit_test(test_message_topic_placeholders),
        cmocka_unit_test(test_cdc_ce_binary),
        cmocka_unit_test(test_cdc_structured),
        cmocka_unit_test(test_cdc_debezium),
        cmocka_unit_test(test_cdc_key_changed),
        cmocka_unit_test(test_cdc_unchanged_toast),
        cmocka_unit_test(test_cdc_topic),
        cmocka_unit_test(test_cdc_id_and_source),
        cmocka_unit_test(test_cdc_no_key),
        cmocka_unit_test(test_cdc_column_count),
        /* Known defect, kept last so the other results print first: format.c. */
        cmocka_unit_test(test_structured_schemaversion_leading_zero),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_inbox_event.c -- which broker messages are events, and their inbox columns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inbox_event.h"

#define H(n, v) {(n), (v), sizeof(v) - 1}

static int parse(const char *key, const char *value, const struct inbox_header *hs, size_t n,
                 struct inbox_event *ev, char *why)
{
    struct inbox_message m = {.key = key, .key_len = key ? strlen(key) : 0,
                              .value = value, .value_len = value ? strlen(value) : 0,
                              .headers = hs, .nheaders = n};

    return inbox_event_parse(&m, ev, why, 256);
}

/* The relay's own output (binary CloudEvents): attributes to columns, the rest headers. */
static void test_binary(void **state)
{
    const struct inbox_header hs[] = {
        H("ce_specversion", "1.0"), H("ce_id", "e-1"), H("ce_source", "/app/public.outbox"),
        H("ce_type", "OrderCreated"), H("ce_subject", "order-7"),
        H("ce_time", "2026-12-05T10:00:00.123456Z"), H("ce_pglsn", "0/16B3748"),
        H("content-type", "application/json"), H("trace", "t-1"),
    };
    struct inbox_event ev;
    char why[256];

    (void)state;
    assert_int_equal(parse("order-7", "{\"n\": 1}", hs, 9, &ev, why), 0);
    assert_int_equal(ev.mode, INBOX_CLOUDEVENTS_BINARY);
    assert_string_equal(ev.id, "e-1");
    assert_string_equal(ev.type, "OrderCreated");
    assert_string_equal(ev.source, "/app/public.outbox");
    assert_string_equal(ev.subject, "order-7");
    assert_string_equal(ev.time, "2026-12-05T10:00:00.123456Z");
    assert_string_equal(ev.key, "order-7");
    assert_string_equal(ev.content_type, "application/json");
    assert_string_equal(ev.headers, "{\"ce_pglsn\":\"0/16B3748\",\"trace\":\"t-1\"}");
    assert_string_equal(ev.payload, "{\"n\": 1}");
    assert_null(ev.payload_hex);
    inbox_event_free(&ev);
    assert_null(ev.id);
    inbox_event_free(&ev); /* twice is safe */
}

/* Data that is not JSON, or that jsonb would refuse, is kept as bytes. */
static void test_binary_data(void **state)
{
    const struct inbox_header text[] = {H("ce_id", "e"), H("ce_source", "s"), H("ce_type", "t"),
                                        H("content-type", "text/plain")};
    const struct inbox_header json[] = {H("ce_id", "e"), H("ce_source", "s"), H("ce_type", "t")};
    struct inbox_event ev;
    char why[256];

    (void)state;
    assert_int_equal(parse(NULL, "{\"a\":1}", text, 4, &ev, why), 0);
    assert_null(ev.payload);
    assert_string_equal(ev.payload_hex, "\\x7b2261223a317d");
    assert_null(ev.key);
    inbox_event_free(&ev);
    assert_int_equal(parse(NULL, "not json", json, 3, &ev, why), 0);
    assert_string_equal(ev.payload_hex, "\\x6e6f74206a736f6e");
    inbox_event_free(&ev);
    assert_int_equal(parse(NULL, "{\"a\":\"x\\u0000y\"}", json, 3, &ev, why), 0);
    assert_null(ev.payload);
    assert_non_null(ev.payload_hex);
    inbox_event_free(&ev);
    /* An escaped backslash before "u0000" is not the NUL escape... */
    assert_int_equal(parse(NULL, "\"a\\\\u0000\"", json, 3, &ev, why), 0);
    assert_string_equal(ev.payload, "\"a\\\\u0000\"");
    inbox_event_free(&ev);
    /* ...but after an escaped backslash, a backslash starts one again. */
    assert_int_equal(parse(NULL, "\"a\\\\\\u0000\"", json, 3, &ev, why), 0);
    assert_null(ev.payload);
    assert_non_null(ev.payload_hex);
    inbox_event_free(&ev);
    /* Content-Type in any case decides, and is not kept among the headers. */
    {
        const struct inbox_header ct[] = {H("ce_id", "e"), H("ce_source", "s"),
                                          H("ce_type", "t"), H("Content-Type", "text/plain")};

        assert_int_equal(parse(NULL, "{}", ct, 4, &ev, why), 0);
        assert_string_equal(ev.content_type, "text/plain");
        assert_string_equal(ev.payload_hex, "\\x7b7d");
        assert_string_equal(ev.headers, "{}");
        inbox_event_free(&ev);
    }
    assert_int_equal(parse(NULL, NULL, json, 3, &ev, why), 0);
    assert_null(ev.payload);
    assert_null(ev.payload_hex);
    inbox_event_free(&ev);
}

/* A header value that is not text is kept as bytea hex; a header without one is null. */
static void test_binary_headers(void **state)
{
    const struct inbox_header hs[] = {
        H("ce-id", "e"), H("ce-source", "s"), H("ce-type", "t"),
        {"bin", "\xff\x00", 2}, {"none", NULL, 0}, H("q\"uote", "a\"b"),
    };
    struct inbox_event ev;
    char why[256];

    (void)state;
    assert_int_equal(parse(NULL, "1", hs, 6, &ev, why), 0);
    assert_string_equal(ev.id, "e");
    assert_string_equal(ev.headers, "{\"bin\":\"\\\\xff00\",\"none\":null,\"q\\\"uote\":\"a\\\"b\"}");
    inbox_event_free(&ev);
}

static void expect_not(const char *key, const char *value, const struct inbox_header *hs,
                       size_t n, const char *reason)
{
    struct inbox_event ev;
    char why[256];

    assert_int_equal(parse(key, value, hs, n, &ev, why), INBOX_NOT_AN_EVENT);
    if (!strstr(why, reason))
        fail_msg("reason \"%s\" does not say \"%s\"", why, reason);
    inbox_event_free(&ev);
}

static void test_not_events(void **state)
{
    const struct inbox_header no_type[] = {H("ce_id", "e"), H("ce_source", "s")};
    const struct inbox_header empty_id[] = {H("ce_id", ""), H("ce_source", "s"), H("ce_type", "t")};
    const struct inbox_header bin_id[] = {{"ce_id", "\xff", 1}, H("ce_source", "s"),
                                          H("ce_type", "t")};
    const struct inbox_header ok[] = {H("ce_id", "e"), H("ce_source", "s"), H("ce_type", "t")};
    const struct inbox_header other[] = {H("trace", "x")};

    (void)state;
    expect_not(NULL, "{}", no_type, 2, "no ce_type header");
    expect_not(NULL, "{}", empty_id, 3, "ce_id header is empty");
    expect_not(NULL, "{}", bin_id, 3, "ce_id header is not UTF-8");
    expect_not("\xc3", "{}", ok, 3, "key is not UTF-8");
    expect_not(NULL, "{\"n\":1}", other, 1, "no event id");
    expect_not(NULL, "garbage", NULL, 0, "no event id");
    expect_not(NULL, NULL, NULL, 0, "no event id");
}

/* A CloudEvents envelope in the value. */
static void test_structured(void **state)
{
    const struct inbox_header ct[] = {H("content-type", "application/cloudevents+json; charset=UTF-8"),
                                      H("trace", "t")};
    const char *env = "{\"specversion\":\"1.0\",\"id\":\"e\\u002d2\",\"source\":\"/s\","
                      "\"type\":\"T\",\"subject\":null,\"time\":\"2026-01-01T00:00:00Z\","
                      "\"datacontenttype\":\"application/json\",\"pglsn\":\"0/1\","
                      "\"seq\":5,\"data\":{\"n\":[1,2]}}";
    struct inbox_event ev;
    char why[256];

    (void)state;
    assert_int_equal(parse("k", env, ct, 2, &ev, why), 0);
    assert_int_equal(ev.mode, INBOX_CLOUDEVENTS_STRUCTURED);
    assert_string_equal(ev.id, "e-2");
    assert_string_equal(ev.type, "T");
    assert_string_equal(ev.source, "/s");
    assert_null(ev.subject);
    assert_string_equal(ev.time, "2026-01-01T00:00:00Z");
    assert_string_equal(ev.content_type, "application/json");
    assert_string_equal(ev.headers, "{\"pglsn\":\"0/1\",\"seq\":\"5\",\"trace\":\"t\"}");
    assert_string_equal(ev.payload, "{\"n\":[1,2]}");
    inbox_event_free(&ev);

    /* Without the content type, "specversion" in a JSON object is enough; base64 data. */
    assert_int_equal(parse(NULL, "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s\","
                                 "\"type\":\"t\",\"data_base64\":\"aGk=\"}",
                           NULL, 0, &ev, why), 0);
    assert_string_equal(ev.payload_hex, "\\x6869");
    assert_string_equal(ev.headers, "{}");
    inbox_event_free(&ev);
}

static void test_structured_not_events(void **state)
{
    const struct inbox_header ct[] = {H("content-type", "application/cloudevents+json")};

    (void)state;
    expect_not(NULL, "[1]", ct, 1, "not a JSON object");
    expect_not(NULL, "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s\"}", NULL, 0,
               "has no \"type\"");
    expect_not(NULL, "{\"specversion\":\"1.0\",\"id\":7,\"source\":\"s\",\"type\":\"t\"}", NULL,
               0, "\"id\" is not a string");
    expect_not(NULL, "{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"s\",\"type\":\"t\"}",
               NULL, 0, "has no \"id\"");
    expect_not(NULL, "{\"id\":\"x\",\"source\":\"s\",\"type\":\"t\"}", ct, 1,
               "has no \"specversion\"");
    expect_not(NULL, "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s\",\"type\":\"t\","
                     "\"data_base64\":\"a!==\"}",
               NULL, 0, "not base64");
}

/* Debezium's outbox router: the id header, the payload as the value. */
static void test_debezium(void **state)
{
    const struct inbox_header hs[] = {H("id", "9f0c"), H("eventType", "OrderCreated")};
    const struct inbox_header bare[] = {H("id", "9f0c")};
    struct inbox_event ev;
    char why[256];

    (void)state;
    assert_int_equal(parse("order-1", "{\"n\":1}", hs, 2, &ev, why), 0);
    assert_int_equal(ev.mode, INBOX_DEBEZIUM);
    assert_string_equal(ev.id, "9f0c");
    assert_string_equal(ev.type, "OrderCreated");
    assert_string_equal(ev.source, "");
    assert_string_equal(ev.headers, "{\"eventType\":\"OrderCreated\"}");
    assert_string_equal(ev.payload, "{\"n\":1}");
    inbox_event_free(&ev);
    assert_int_equal(parse("order-1", "{\"n\":1}", bare, 1, &ev, why), 0);
    assert_string_equal(ev.type, "");
    inbox_event_free(&ev);
}

static void test_hex(void **state)
{
    char *s = inbox_hex("\x00\x01\xab", 3);

    (void)state;
    assert_string_equal(s, "\\x0001ab");
    free(s);
    s = inbox_hex("", 0);
    assert_string_equal(s, "\\x");
    free(s);
}

/* Redis stream entry IDs as positions: exact both ways, in order, the limits refused. */
static void test_redis_ids(void **state)
{
    const char *ids[] = {"0-0", "0-1", "1-0", "1764960000000-0", "1764960000000-7",
                         "1764960000001-0", "8796093022207-1048574"};
    const char *bad[] = {"", "-", "1", "1-", "-1", "1-2-3", "a-1", "1-a", "8796093022208-0",
                         "1-1048576", "99999999999999999999-0",
                         "8796093022207-1048575"};
    int64_t prev = -1, pos;
    char back[48];

    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        assert_int_equal(inbox_redis_id_encode(ids[i], &pos), 0);
        assert_true(pos > prev);
        inbox_redis_id_decode(pos, back, sizeof(back));
        assert_string_equal(back, ids[i]);
        prev = pos;
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(inbox_redis_id_encode(bad[i], &pos), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary),     cmocka_unit_test(test_binary_data),
        cmocka_unit_test(test_binary_headers), cmocka_unit_test(test_not_events),
        cmocka_unit_test(test_structured), cmocka_unit_test(test_structured_not_events),
        cmocka_unit_test(test_debezium),   cmocka_unit_test(test_hex),
        cmocka_unit_test(test_redis_ids),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_deadletter.c -- unit tests for dead-letter records (relay/deadletter.c): the
 * message a dead-letter destination on the sink receives (the event's key, value and
 * headers, then the dlq_* headers), a value left out when it was too large, the row
 * itself as the value, the parameters and statement of the table record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "deadletter.h"
#include "jsonbuf.h"

static const char *header(const struct out_msg *m, const char *name, size_t *len)
{
    const char *v = NULL;

    for (int i = 0; i < m->nheaders; i++)
        if (strcmp(m->headers[i].name, name) == 0) {
            assert_null(v); /* each dlq_* header once */
            v = m->headers[i].value;
            *len = m->headers[i].len;
        }
    return v;
}

static void assert_header(const struct out_msg *m, const char *name, const char *want)
{
    size_t len = 0;
    const char *v = header(m, name, &len);

    if (!v)
        fail_msg("no header \"%s\"", name);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
}

static struct dl_record sample(void)
{
    static const struct msg_header hs[] = {{"ce_id", "ev-1", 4}, {"ce_type", "T", 1}};

    return (struct dl_record){
        .reason = DL_REJECTED,
        .code = "TOPIC_AUTHORIZATION_FAILED",
        .error = "Broker: Topic authorization failed",
        .destination = "outbox.event.order",
        .event_id = "ev-1xyz",
        .event_id_len = 4,
        .key = "order-1",
        .key_len = 7,
        .value = "{\"n\":1}",
        .value_len = 7,
        .headers = hs,
        .nheaders = 2,
        .commit_lsn = UINT64_C(0x16B374D848),
        .xid = 731,
        .index = 3,
        .time_us = INT64_C(1764892800123456),
        .version = "9.9.9",
    };
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(dl_reason_name(DL_BAD_ROW), "bad-row");
    assert_string_equal(dl_reason_name(DL_BAD_MESSAGE), "bad-message");
    assert_string_equal(dl_reason_name(DL_BAD_DESTINATION), "bad-destination");
    assert_string_equal(dl_reason_name(DL_TOO_LARGE), "too-large");
    assert_string_equal(dl_reason_name(DL_REJECTED), "rejected");
    assert_string_equal(dl_reason_name((enum dl_reason)99), "unknown");
}

static void test_message(void **state)
{
    struct dl_record rec = sample();
    struct out_msg m;
    size_t len;

    (void)state;
    assert_int_equal(dl_render_message(&rec, "outbox.dlq", &m), 0);
    assert_string_equal(m.topic, "outbox.dlq");
    assert_int_equal(m.key_len, 7);
    assert_memory_equal(m.key, "order-1", 7);
    assert_int_equal(m.value_len, 7);
    assert_memory_equal(m.value, "{\"n\":1}", 7);
    assert_int_equal(m.id_len, 4);
    /* The event's own headers first, unchanged. */
    assert_string_equal(m.headers[0].name, "ce_id");
    assert_string_equal(m.headers[1].name, "ce_type");
    assert_header(&m, "dlq_original_topic", "outbox.event.order");
    assert_header(&m, "dlq_reason", "rejected");
    assert_header(&m, "dlq_error", "Broker: Topic authorization failed");
    assert_header(&m, "dlq_error_code", "TOPIC_AUTHORIZATION_FAILED");
    assert_header(&m, "dlq_time", "2025-12-05T00:00:00.123456Z");
    assert_header(&m, "dlq_event_id", "ev-1");
    assert_header(&m, "dlq_commit_lsn", "16/B374D848");
    assert_header(&m, "dlq_xid", "731");
    assert_header(&m, "dlq_index", "3");
    assert_header(&m, "dlq_relay_version", "9.9.9");
    assert_null(header(&m, "dlq_value_omitted_size", &len));
    assert_null(header(&m, "dlq_value", &len));
}

static void test_message_value_omitted_and_row(void **state)
{
    struct dl_record rec = sample();
    struct out_msg m;
    size_t len;

    (void)state;
    rec.reason = DL_TOO_LARGE;
    rec.value_omitted = true;
    rec.value_len = 2097152;
    rec.commit_lsn = 0; /* polling: no commit LSN */
    assert_int_equal(dl_render_message(&rec, "dlq", &m), 0);
    assert_null(m.value);
    assert_int_equal(m.value_len, 0);
    assert_header(&m, "dlq_value_omitted_size", "2097152");
    assert_header(&m, "dlq_reason", "too-large");
    assert_null(header(&m, "dlq_commit_lsn", &len));

    rec = sample();
    rec.reason = DL_BAD_ROW;
    rec.value_is_row = true;
    rec.headers = NULL;
    rec.nheaders = 0;
    assert_int_equal(dl_render_message(&rec, "dlq", &m), 0);
    assert_header(&m, "dlq_value", "row");
    assert_string_equal(m.headers[0].name, "dlq_original_topic");
}

static void test_message_too_many_headers(void **state)
{
    struct msg_header many[FORMAT_MAX_HEADERS];
    struct dl_record rec = sample();
    struct out_msg m;

    (void)state;
    for (int i = 0; i < FORMAT_MAX_HEADERS; i++)
        many[i] = (struct msg_header){"h", "v", 1};
    rec.headers = many;
    rec.nheaders = FORMAT_MAX_HEADERS;
    /* The record's own headers always fit; the event's are dropped, and it says so. */
    assert_int_equal(dl_render_message(&rec, "dlq", &m), -E2BIG);
    assert_string_equal(m.headers[0].name, "dlq_original_topic");
    assert_header(&m, "dlq_reason", "rejected");
}

static void test_table(void **state)
{
    struct dl_record rec = sample();
    struct dl_params p;
    char sql[1024];

    (void)state;
    rec.event_id = "ev-1";
    dl_table_params(&rec, "outbox_relay", "{\"ce_id\":\"ev-1\"}", &p);
    assert_string_equal(p.values[0], "outbox_relay");
    assert_string_equal(p.values[1], "16/B374D848");
    assert_string_equal(p.values[2], "731");
    assert_string_equal(p.values[3], "3");
    assert_string_equal(p.values[4], "ev-1");
    assert_string_equal(p.values[5], "outbox.event.order");
    assert_string_equal(p.values[6], "rejected");
    assert_string_equal(p.values[7], "TOPIC_AUTHORIZATION_FAILED");
    /* Key and value go as binary (bytea): any bytes, exact lengths. */
    assert_int_equal(p.formats[9], 1);
    assert_int_equal(p.lengths[9], 7);
    assert_string_equal(p.values[10], "{\"ce_id\":\"ev-1\"}");
    assert_int_equal(p.formats[11], 1);
    assert_int_equal(p.lengths[11], 7);
    assert_null(p.values[12]);
    assert_string_equal(p.values[13], "false");
    assert_string_equal(p.values[14], "9.9.9");

    rec.value_omitted = true;
    rec.value_len = 123;
    rec.commit_lsn = 0;
    rec.key = NULL;
    dl_table_params(&rec, "public.outbox", NULL, &p);
    assert_string_equal(p.values[1], "0/0");
    assert_null(p.values[9]);
    assert_null(p.values[10]);
    assert_null(p.values[11]);
    assert_string_equal(p.values[12], "123");

    assert_true(dl_table_sql("\"public\".\"dl\"", sql, sizeof(sql)) > 0);
    assert_non_null(strstr(sql, "INSERT INTO \"public\".\"dl\" ("));
    assert_non_null(strstr(sql, "ON CONFLICT (source, commit_lsn, xid, event_index) DO NOTHING"));
    assert_int_equal(dl_table_sql("\"x\"", sql, 10), -ENAMETOOLONG);
}

static void test_headers_json(void **state)
{
    static const struct msg_header hs[] = {{"a", "x\"y", 3}, {"b", "\xff", 1}, {"c", NULL, 0}};
    struct jbuf b;

    (void)state;
    jbuf_init(&b);
    dl_headers_json(hs, 3, &b);
    jbuf_putc(&b, '\0');
    assert_string_equal(b.data, "{\"a\":\"x\\\"y\",\"b\":\"\\u00ff\",\"c\":\"\"}");
    assert_true(json_valid(b.data, strlen(b.data)));
    jbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_message_value_omitted_and_row),
        cmocka_unit_test(test_message_too_many_headers),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_headers_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

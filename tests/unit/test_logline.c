/*
 * test_logline.c -- unit tests for relay/logline.c: log lines as text and as JSON.
 *
 * Every JSON line is checked with the strict validator of jsonbuf.c (one RFC 8259
 * value, valid UTF-8) besides being compared whole, so escaping mistakes cannot
 * hide behind a matching expectation.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonbuf.h"
#include "logline.h"

/* 2024-05-01T12:34:56.789Z */
#define T0 INT64_C(1714566896789)

static char *render(enum relay_log_format fmt, enum relay_log_level level, const char *msg,
                    const struct log_field *fields, size_t n)
{
    struct jbuf b;
    char *out;

    jbuf_init(&b);
    logline_render(&b, fmt, T0, level, msg, fields, n);
    assert_false(b.oom);
    assert_non_null(b.data);
    /* One line, ending in its only newline. */
    assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
    assert_null(memchr(b.data, '\n', b.len - 1));
    if (fmt == RELAY_LOG_FORMAT_JSON && !json_valid(b.data, b.len - 1))
        fail_msg("not valid JSON: %s", b.data);
    out = strdup(b.data);
    jbuf_free(&b);
    return out;
}

static void expect(enum relay_log_format fmt, enum relay_log_level level, const char *msg,
                   const struct log_field *fields, size_t n, const char *expected)
{
    char *got = render(fmt, level, msg, fields, n);

    if (strcmp(got, expected) != 0) {
        fprintf(stderr, "got:      %sexpected: %s", got, expected);
        free(got);
        fail();
    }
    free(got);
}

static void test_time(void **state)
{
    char buf[40];

    (void)state;
    assert_string_equal(logline_time(T0, buf, sizeof(buf)), "2024-05-01T12:34:56.789Z");
    assert_string_equal(logline_time(0, buf, sizeof(buf)), "1970-01-01T00:00:00.000Z");
    assert_string_equal(logline_time(1005, buf, sizeof(buf)), "1970-01-01T00:00:01.005Z");
    /* Before the epoch: milliseconds stay in 0..999. */
    assert_string_equal(logline_time(-1, buf, sizeof(buf)), "1969-12-31T23:59:59.999Z");
}

static void test_text(void **state)
{
    const struct log_field fields[] = {
        LF_STR("slot", "outbox_relay"),
        LF_LSN("lsn", UINT64_C(0x16B374D848)),
        LF_INT("lag", -5),
        LF_UINT("events", UINT64_C(18446744073709551615)),
        LF_BOOL("active", true),
        LF_STR("reason", "a value with spaces"),
        LF_STR("empty", ""),
        LF_STR("none", NULL),
        LF_STR("eq", "a=b"),
        LF_DOUBLE("ratio", 0.5),
    };

    (void)state;
    /* Unchanged from before fields existed. */
    expect(RELAY_LOG_FORMAT_TEXT, RELAY_LOG_INFO, "relay started", NULL, 0,
           "2024-05-01T12:34:56.789Z INFO relay started\n");
    expect(RELAY_LOG_FORMAT_TEXT, RELAY_LOG_ERROR, "x", NULL, 0,
           "2024-05-01T12:34:56.789Z ERROR x\n");
    expect(RELAY_LOG_FORMAT_TEXT, RELAY_LOG_DEBUG, NULL, NULL, 0,
           "2024-05-01T12:34:56.789Z DEBUG \n");
    expect(RELAY_LOG_FORMAT_TEXT, RELAY_LOG_WARN, "confirmed", fields,
           sizeof(fields) / sizeof(fields[0]),
           "2024-05-01T12:34:56.789Z WARN confirmed slot=outbox_relay lsn=16/B374D848 lag=-5 "
           "events=18446744073709551615 active=true reason=\"a value with spaces\" empty=\"\" "
           "none=- eq=\"a=b\" ratio=0.5\n");
    /* A value with a newline stays on one line. */
    expect(RELAY_LOG_FORMAT_TEXT, RELAY_LOG_INFO, "m", (struct log_field[]){LF_STR("v", "a\nb")}, 1,
           "2024-05-01T12:34:56.789Z INFO m v=\"a\\nb\"\n");
}

static void test_json(void **state)
{
    const struct log_field fields[] = {
        LF_STR("slot", "outbox_relay"),
        LF_LSN("lsn", UINT64_C(0x16B374D848)),
        LF_INT("lag", -5),
        LF_UINT("events", 42),
        LF_BOOL("active", false),
        LF_STR("none", NULL),
        LF_DOUBLE("ratio", 0.25),
        LF_DOUBLE("nan", NAN),
    };

    (void)state;
    expect(RELAY_LOG_FORMAT_JSON, RELAY_LOG_INFO, "relay started", NULL, 0,
           "{\"time\":\"2024-05-01T12:34:56.789Z\",\"level\":\"info\",\"msg\":\"relay "
           "started\"}\n");
    expect(RELAY_LOG_FORMAT_JSON, RELAY_LOG_WARN, "confirmed", fields,
           sizeof(fields) / sizeof(fields[0]),
           "{\"time\":\"2024-05-01T12:34:56.789Z\",\"level\":\"warn\",\"msg\":\"confirmed\","
           "\"fields\":{\"slot\":\"outbox_relay\",\"lsn\":\"16/B374D848\",\"lag\":-5,"
           "\"events\":42,\"active\":false,\"none\":null,\"ratio\":0.25,\"nan\":null}}\n");
    expect(RELAY_LOG_FORMAT_JSON, RELAY_LOG_DEBUG, NULL, NULL, 0,
           "{\"time\":\"2024-05-01T12:34:56.789Z\",\"level\":\"debug\",\"msg\":\"\"}\n");
    expect(RELAY_LOG_FORMAT_JSON, RELAY_LOG_ERROR, "e", NULL, 0,
           "{\"time\":\"2024-05-01T12:34:56.789Z\",\"level\":\"error\",\"msg\":\"e\"}\n");
    expect(RELAY_LOG_FORMAT_JSON, (enum relay_log_level)7, "e", NULL, 0,
           "{\"time\":\"2024-05-01T12:34:56.789Z\",\"level\":\"?\",\"msg\":\"e\"}\n");
}

static void test_json_escaping(void **state)
{
    (void)state;
    /* Quotes, backslashes, control characters, DEL, multibyte UTF-8. */
    expect(RELAY_LOG_FORMAT_JSON, RELAY_LOG_INFO,
           "table \"public.outbox\" at C:\\x\n\ttab\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac", NULL, 0,
           "{\"time\":\"2024-05-01T12:34:56.789Z\",\"level\":\"info\",\"msg\":\"table "
           "\\\"public.outbox\\\" at C:\\\\x\\n\\ttab\\u0001\\u001f\x7f caf\xc3\xa9 "
           "\xe2\x82\xac\"}\n");
    /* Invalid UTF-8: each bad byte as \u00XX, the line still valid JSON. */
    expect(RELAY_LOG_FORMAT_JSON, RELAY_LOG_INFO, "bad \xff\xfe \xc3 end", NULL, 0,
           "{\"time\":\"2024-05-01T12:34:56.789Z\",\"level\":\"info\",\"msg\":\"bad "
           "\\u00ff\\u00fe \\u00c3 end\"}\n");
    /* Keys are escaped too, and string fields with invalid bytes stay valid. */
    expect(RELAY_LOG_FORMAT_JSON, RELAY_LOG_INFO, "m",
           (struct log_field[]){LF_STR("k\"ey", "v\x80")}, 1,
           "{\"time\":\"2024-05-01T12:34:56.789Z\",\"level\":\"info\",\"msg\":\"m\","
           "\"fields\":{\"k\\\"ey\":\"v\\u0080\"}}\n");
}

static void test_clipping(void **state)
{
    size_t big = LOGLINE_MSG_MAX + 100;
    char *msg = malloc(big + 1), *line;

    (void)state;
    /* A long message of 3-byte characters: cut at a character, marked with "...". */
    for (size_t i = 0; i + 3 <= big; i += 3)
        memcpy(msg + i, "\xe2\x82\xac", 3);
    msg[big - big % 3] = '\0';
    line = render(RELAY_LOG_FORMAT_JSON, RELAY_LOG_INFO, msg, NULL, 0);
    assert_non_null(strstr(line, "\xe2\x82\xac...\"}\n"));
    assert_true(strlen(line) < LOGLINE_MSG_MAX + 100);
    free(line);
    line = render(RELAY_LOG_FORMAT_TEXT, RELAY_LOG_INFO, msg, NULL, 0);
    assert_non_null(strstr(line, "\xe2\x82\xac...\n"));
    free(line);

    /* A long field value, clipped the same way. */
    msg[LOGLINE_VALUE_MAX + 30] = '\0';
    line = render(RELAY_LOG_FORMAT_JSON, RELAY_LOG_INFO, "m",
                  (struct log_field[]){LF_STR("v", msg)}, 1);
    assert_non_null(strstr(line, "\xe2\x82\xac...\"}}\n"));
    assert_true(strlen(line) < LOGLINE_VALUE_MAX + 200);
    free(line);
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time),     cmocka_unit_test(test_text),
        cmocka_unit_test(test_json),     cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_clipping),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

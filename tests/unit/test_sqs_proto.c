/*
 * test_sqs_proto.c -- unit tests for the Amazon SQS sink's decisions
 * (relay/sqs_proto.c): the entry an event becomes (FIFO ids, attributes, the packed
 * form, sizes), how SQS's answers and errors read, and which errors are for good;
 * and the "sqs" configuration section as relay/sink_sqs.c declares it.
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

#include "config.h"
#include "sink.h"
#include "sqs_proto.h"

static void msg_init(struct out_msg *m, const char *topic, const char *id, const char *key,
                     const char *value)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->topic, sizeof(m->topic), "%s", topic);
    m->id = id;
    m->id_len = strlen(id);
    m->key = key;
    m->key_len = key ? strlen(key) : 0;
    m->value = value;
    m->value_len = value ? strlen(value) : 0;
}

static void add_header(struct out_msg *m, const char *name, const char *value)
{
    m->headers[m->nheaders].name = name;
    m->headers[m->nheaders].value = value;
    m->headers[m->nheaders].len = value ? strlen(value) : 0;
    m->nheaders++;
}

/* Render m; returns the entry text (static) or NULL with the rc in *rc. */
static const char *render(const struct out_msg *m, int64_t max, size_t *size, int *rc)
{
    static char text[8192];
    struct jbuf b;
    char err[256];

    jbuf_init(&b);
    *rc = sqs_render_entry(m, max, &b, size, err, sizeof(err));
    snprintf(text, sizeof(text), "%s", b.data ? b.data : "");
    jbuf_free(&b);
    return *rc == 0 ? text : NULL;
}

static void test_fifo_entry(void **state)
{
    struct out_msg m;
    size_t size = 0;
    int rc;
    const char *e;

    (void)state;
    msg_init(&m, "https://sqs.eu-west-1.amazonaws.com/1/outbox.fifo", "id-1", "order-7",
             "{\"n\":1}");
    add_header(&m, "content-type", "application/json");
    add_header(&m, "trace", "tr-1");
    e = render(&m, 262144, &size, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(e, ",\"MessageBody\":\"{\\\"n\\\":1}\",\"MessageAttributes\":{"
                           "\"content-type\":{\"DataType\":\"String\",\"StringValue\":"
                           "\"application/json\"},\"trace\":{\"DataType\":\"String\","
                           "\"StringValue\":\"tr-1\"}},\"MessageGroupId\":\"order-7\","
                           "\"MessageDeduplicationId\":\"id-1\"}");
    /* Body 7; content-type 12 + 6 + 16; trace 5 + 6 + 4. */
    assert_int_equal(size, 7 + 34 + 15);
}

static void test_standard_queue_has_no_ids(void **state)
{
    struct out_msg m;
    size_t size;
    int rc;
    const char *e;

    (void)state;
    msg_init(&m, "https://sqs.eu-west-1.amazonaws.com/1/outbox", "id-1", "k", "x");
    e = render(&m, 262144, &size, &rc);
    assert_int_equal(rc, 0);
    assert_null(strstr(e, "MessageGroupId"));
    assert_null(strstr(e, "MessageDeduplicationId"));
    assert_null(strstr(e, "MessageAttributes"));
}

static void test_ids_sqs_refuses_are_hashed(void **state)
{
    struct out_msg m;
    char longid[200];
    size_t size;
    int rc;
    const char *e;

    (void)state;
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    /* A key with a space and no key at all; an id longer than 128. */
    msg_init(&m, "http://q/x.fifo", longid, "order 7", "x");
    e = render(&m, 262144, &size, &rc);
    assert_int_equal(rc, 0);
    /* SHA-256("order 7") and SHA-256 of 199 'a's, hex. */
    assert_non_null(strstr(e, "\"MessageGroupId\":\"sha256-"));
    assert_non_null(strstr(e, "\"MessageDeduplicationId\":\"sha256-"));
    assert_null(strstr(e, "order 7"));
    {
        const char *g = strstr(e, "\"MessageGroupId\":\"") + 18;

        assert_int_equal(strcspn(g, "\""), 7 + 64);
    }
    /* Stable: the same key gives the same group. */
    {
        char first[8192];

        snprintf(first, sizeof(first), "%s", e);
        e = render(&m, 262144, &size, &rc);
        assert_string_equal(first, e);
    }
    msg_init(&m, "http://q/x.fifo", "id", NULL, "x");
    e = render(&m, 262144, &size, &rc);
    assert_non_null(strstr(e, "\"MessageGroupId\":\"" SQS_NO_KEY_GROUP "\""));
    /* 128 printable characters are kept as they are. */
    memset(longid, '!', 128);
    longid[128] = '\0';
    msg_init(&m, "http://q/x.fifo", longid, "k", "x");
    e = render(&m, 262144, &size, &rc);
    assert_non_null(strstr(e, longid));
}

static void test_packed_headers(void **state)
{
    struct out_msg m;
    size_t size;
    int rc;
    const char *e;
    static const char *const names[] = {"h0", "h1", "h2", "h3", "h4", "h5",
                                        "h6", "h7", "h8", "h9", "h10"};

    (void)state;
    /* Eleven headers: one packed attribute, every header in order. */
    msg_init(&m, "http://q/x", "id", "k", "x");
    for (int i = 0; i < 11; i++)
        add_header(&m, names[i], "v");
    e = render(&m, 262144, &size, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(e, "\"MessageAttributes\":{\"" SQS_PACKED_ATTRIBUTE "\":{\"DataType\":"
                              "\"String\",\"StringValue\":\"[[\\\"h0\\\",\\\"v\\\"],"));
    assert_non_null(strstr(e, "[\\\"h10\\\",\\\"v\\\"]]\"}}"));
    /* A NULL value, a name SQS refuses, a repeated name: packed too, NULL kept. */
    msg_init(&m, "http://q/x", "id", "k", "x");
    add_header(&m, "note", NULL);
    e = render(&m, 262144, &size, &rc);
    assert_non_null(strstr(e, "[[\\\"note\\\",null]]"));
    msg_init(&m, "http://q/x", "id", "k", "x");
    add_header(&m, "quote\"d", "a");
    e = render(&m, 262144, &size, &rc);
    assert_non_null(strstr(e, SQS_PACKED_ATTRIBUTE));
    msg_init(&m, "http://q/x", "id", "k", "x");
    add_header(&m, "AWS.trace", "a");
    e = render(&m, 262144, &size, &rc);
    assert_non_null(strstr(e, SQS_PACKED_ATTRIBUTE));
    msg_init(&m, "http://q/x", "id", "k", "x");
    add_header(&m, "a", "1");
    add_header(&m, "a", "2");
    e = render(&m, 262144, &size, &rc);
    assert_non_null(strstr(e, "[[\\\"a\\\",\\\"1\\\"],[\\\"a\\\",\\\"2\\\"]]"));
}

static void test_body_and_size_limits(void **state)
{
    struct out_msg m;
    char big[2000];
    size_t size;
    int rc;
    const char *e;

    (void)state;
    /* No value: the body "null". */
    msg_init(&m, "http://q/x", "id", "k", NULL);
    e = render(&m, 262144, &size, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(e, "\"MessageBody\":\"null\""));
    /* Over max_size, attributes counted. */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    msg_init(&m, "http://q/x", "id", "k", big);
    render(&m, 2000, &size, &rc);
    assert_int_equal(rc, 0);
    add_header(&m, "h", "v");
    assert_null(render(&m, 2000, &size, &rc));
    assert_int_equal(rc, -EMSGSIZE);
    /* Not UTF-8. */
    msg_init(&m, "http://q/x", "id", "k", "\xff\xfe");
    assert_null(render(&m, 262144, &size, &rc));
    assert_int_equal(rc, -EACCES);
}

static void test_parse_batch(void **state)
{
    static const char answer[] =
        "{\"Successful\": [{\"Id\": \"0\", \"MessageId\": \"m\", \"MD5OfMessageBody\": \"x\"}, "
        "{\"Id\": \"2\", \"MessageId\": \"m2\"}], \"Failed\": [{\"Id\": \"1\", "
        "\"SenderFault\": true, \"Code\": \"InvalidMessageContents\", \"Message\": "
        "\"Invalid \\\"characters\\\"\"}]}";
    struct sqs_entry_result r[4];

    (void)state;
    assert_int_equal(sqs_parse_batch(answer, strlen(answer), r, 4), 0);
    assert_int_equal(r[0].state, 1);
    assert_int_equal(r[1].state, 2);
    assert_true(r[1].sender_fault);
    assert_string_equal(r[1].code, "InvalidMessageContents");
    assert_string_equal(r[1].message, "Invalid \"characters\"");
    assert_int_equal(r[2].state, 1);
    assert_int_equal(r[3].state, 0); /* nothing said of it: retried */
    assert_int_equal(sqs_parse_batch("<xml/>", 6, r, 4), -1);
    assert_int_equal(sqs_parse_batch("{\"Failed\":[{\"Id\":\"9\"}]}", 23, r, 4), 0);
    assert_int_equal(r[0].state, 0);
}

static void test_parse_error(void **state)
{
    static const char json[] = "{\"__type\":\"com.amazonaws.sqs#QueueDoesNotExist\","
                               "\"message\":\"The specified queue does not exist.\"}";
    static const char xml[] = "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>"
                              "<Message><![CDATA[The request signature ...]]></Message>"
                              "</Error></ErrorResponse>";
    char code[64], message[256];

    (void)state;
    sqs_parse_error(json, strlen(json), NULL, code, sizeof(code), message, sizeof(message));
    assert_string_equal(code, "QueueDoesNotExist");
    assert_string_equal(message, "The specified queue does not exist.");
    sqs_parse_error(xml, strlen(xml), NULL, code, sizeof(code), message, sizeof(message));
    assert_string_equal(code, "SignatureDoesNotMatch");
    assert_string_equal(message, "The request signature ...");
    sqs_parse_error("", 0, "AWS.SimpleQueueService.NonExistentQueue;Sender", code, sizeof(code),
                    message, sizeof(message));
    assert_string_equal(code, "AWS.SimpleQueueService.NonExistentQueue");
    assert_string_equal(message, "");
}

static void test_classification(void **state)
{
    (void)state;
    assert_true(sqs_auth_code("InvalidClientTokenId"));
    assert_true(sqs_auth_code("SignatureDoesNotMatch"));
    assert_true(sqs_auth_code("AccessDenied"));
    assert_false(sqs_auth_code("InvalidParameterValue"));
    assert_true(sqs_transient_code("ThrottlingException"));
    assert_true(sqs_transient_code("RequestThrottled"));
    assert_true(sqs_transient_code("KmsThrottled"));
    assert_true(sqs_transient_code("QueueDoesNotExist"));
    assert_true(sqs_transient_code("AWS.SimpleQueueService.NonExistentQueue"));
    assert_false(sqs_transient_code("InvalidMessageContents"));
    assert_false(sqs_transient_code("InvalidParameterValue"));
    assert_true(sqs_size_code("MessageTooLong", ""));
    assert_true(sqs_size_code("InvalidParameterValue",
                              "Reason: Message must be shorter than 4096 bytes."));
    assert_false(sqs_size_code("InvalidMessageContents", "Invalid characters"));
}

static void test_region_and_attributes(void **state)
{
    static const char attrs[] = "{\"Attributes\": {\"FifoQueue\": \"true\", "
                                "\"MaximumMessageSize\": \"4096\"}}";
    char out[64];

    (void)state;
    assert_true(sqs_region_of_host("sqs.eu-west-1.amazonaws.com", out, sizeof(out)));
    assert_string_equal(out, "eu-west-1");
    assert_true(sqs_region_of_host("sqs.cn-north-1.amazonaws.com.cn", out, sizeof(out)));
    assert_string_equal(out, "cn-north-1");
    assert_true(sqs_region_of_host("us-east-2.queue.amazonaws.com", out, sizeof(out)));
    assert_string_equal(out, "us-east-2");
    assert_false(sqs_region_of_host("localhost", out, sizeof(out)));
    assert_false(sqs_region_of_host("sqs..amazonaws.com", out, sizeof(out)));
    sqs_queue_attribute(attrs, strlen(attrs), "FifoQueue", out, sizeof(out));
    assert_string_equal(out, "true");
    sqs_queue_attribute(attrs, strlen(attrs), "MaximumMessageSize", out, sizeof(out));
    assert_string_equal(out, "4096");
    sqs_queue_attribute(attrs, strlen(attrs), "Policy", out, sizeof(out));
    assert_string_equal(out, "");
}

static struct relay_config *load(const char *text, char *err, size_t err_size)
{
    return relay_config_parse(text, strlen(text), "config.yaml", err, err_size);
}

static void test_config_section(void **state)
{
    static const char base[] = "postgres:\n  dsn: x\nsink: sqs\nsqs:\n"
                               "  queue_url: \"https://sqs.eu-west-1.amazonaws.com/1/o.fifo\"\n";
    char text[1024], err[512];
    struct relay_config *cfg;
    const struct sink_common *c;

    (void)state;
    cfg = load(base, err, sizeof(err));
    assert_non_null(cfg);
    c = relay_config_sink_common(cfg);
    assert_string_equal(c->destination, "https://sqs.eu-west-1.amazonaws.com/1/o.fifo");
    assert_int_equal(c->format, RELAY_FORMAT_CLOUDEVENTS_STRUCTURED);
    assert_string_equal(sink_type_of(cfg)->name, "sqs");
    /* The region comes from the URL; credentials from the keys. */
    setenv("SQS_T_SECRET", "s3cret", 1);
    relay_config_free(cfg);
    snprintf(text, sizeof(text), "%s  access_key_id: AKIA1\n"
             "  secret_access_key: \"${SQS_T_SECRET}\"\n", base);
    cfg = load(text, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(sink_type_of(cfg)->check_config(cfg, err, sizeof(err)), 0);
    relay_config_free(cfg);
    /* Binary CloudEvents would not fit SQS's 10 attributes: refused where it is said. */
    snprintf(text, sizeof(text), "%s  format: cloudevents\n", base);
    assert_null(load(text, err, sizeof(err)));
    assert_non_null(strstr(err, "config.yaml:6:11: "));
    assert_non_null(strstr(err, "needs 13 message attributes and SQS carries 10"));
    snprintf(text, sizeof(text), "postgres:\n  dsn: x\nsink: sqs\nsqs:\n  queue_url: q\n");
    assert_null(load(text, err, sizeof(err)));
    assert_non_null(strstr(err, "config.yaml:5:14: "));
    /* A host that names no region and no sqs.region: refused by check_config. */
    snprintf(text, sizeof(text), "postgres:\n  dsn: x\nsink: sqs\nsqs:\n"
             "  queue_url: \"http://127.0.0.1:4566/1/q\"\n  access_key_id: a\n"
             "  secret_access_key: b\n");
    cfg = load(text, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(sink_type_of(cfg)->check_config(cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "set sqs.region"));
    relay_config_free(cfg);
    /* One key of the pair without the other. */
    snprintf(text, sizeof(text), "%s  access_key_id: a\n", base);
    cfg = load(text, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(sink_type_of(cfg)->check_config(cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "go together"));
    relay_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_entry),
        cmocka_unit_test(test_standard_queue_has_no_ids),
        cmocka_unit_test(test_ids_sqs_refuses_are_hashed),
        cmocka_unit_test(test_packed_headers),
        cmocka_unit_test(test_body_and_size_limits),
        cmocka_unit_test(test_parse_batch),
        cmocka_unit_test(test_parse_error),
        cmocka_unit_test(test_classification),
        cmocka_unit_test(test_region_and_attributes),
        cmocka_unit_test(test_config_section),
    };

    if (sink_register_config() < 0)
        return 1;

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_config.c -- unit tests for relay/config.c: YAML -> struct relay_config.
 *
 * Each error test feeds a small YAML text to relay_config_parse() under the name
 * "config.yaml" and compares the whole message, position included, with the one
 * an operator should see.  The happy paths check every field, defaults included,
 * and the example files in config/ are loaded as they ship.  The tests are meant
 * to run under AddressSanitizer/LeakSanitizer too, which checks that the error
 * paths free what they allocated.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "sink.h"
#include "sink_kafka.h"

/* The sinks' sections, as the relay's registry declares them. */
#define KAFKA(cfg) ((const struct kafka_settings *)relay_config_sink_settings((cfg), "kafka"))
#define STDOUT_FORMAT(cfg)                                                                     \
    (((const struct sink_common *)relay_config_sink_settings((cfg), "stdout"))->format)

#define CONFIG_DIR FIXTURES_DIR "/../../config"

/* The minimal file from the issue, as config/outbox-relay.yaml holds it. */
static const char minimal[] = "postgres:\n"
                              "  dsn: \"host=127.0.0.1 port=5432 dbname=app user=postgres\"\n"
                              "  slot: outbox_relay\n"
                              "  publication: outbox_relay\n"
                              "outbox:\n"
                              "  table: public.outbox\n"
                              "kafka:\n"
                              "  brokers: \"127.0.0.1:9092\"\n"
                              "  topic: \"outbox.event.{aggregatetype}\"\n"
                              "  properties:            # any librdkafka property, passed through\n"
                              "    compression.type: lz4\n";

/* The required keys and nothing else; tests append a section to it. */
#define REQUIRED                                                                                   \
    "postgres:\n"                                                                                  \
    "  dsn: dbname=app\n"                                                                          \
    "kafka:\n"                                                                                     \
    "  brokers: localhost:9092\n"

/* The required keys in polling mode; tests append a section to it. */
#define POLLING                                                                                    \
    "postgres:\n"                                                                                  \
    "  dsn: dbname=app\n"                                                                          \
    "  mode: polling\n"                                                                            \
    "kafka:\n"                                                                                     \
    "  brokers: localhost:9092\n"

static char errbuf[512];

static struct relay_config *parse(const char *text)
{
    memset(errbuf, 'x', sizeof(errbuf) - 1);
    errbuf[sizeof(errbuf) - 1] = '\0';
    return relay_config_parse(text, strlen(text), "config.yaml", errbuf, sizeof(errbuf));
}

/* Parsing text must fail with exactly this message. */
static void expect_error(const char *text, const char *expected)
{
    struct relay_config *cfg = parse(text);

    if (cfg != NULL) {
        relay_config_free(cfg);
        fail_msg("parsed, expected error: %s", expected);
    }
    assert_string_equal(errbuf, expected);
}

/* Parsing text must succeed; the caller frees the config. */
static struct relay_config *expect_ok(const char *text)
{
    struct relay_config *cfg = parse(text);

    if (cfg == NULL)
        fail_msg("unexpected error: %s", errbuf);
    assert_string_equal(errbuf, "");
    return cfg;
}

/* The defaults of the keys for versioned events, formats, sinks, cdc and polling. */
static void assert_feature_defaults(const struct relay_config *cfg)
{
    assert_string_equal(cfg->outbox.key_column, "aggregateid");
    assert_string_equal(cfg->outbox.version_column, "version");
    assert_string_equal(cfg->outbox.headers_column, "headers");
    assert_null(cfg->outbox.header_columns);
    assert_int_equal(cfg->outbox.nheader_columns, 0);
    assert_string_equal(cfg->outbox.source, "");
    assert_string_equal(cfg->outbox.messages_prefix, "outbox");
    assert_int_equal(KAFKA(cfg)->common.format, RELAY_FORMAT_CLOUDEVENTS);
    assert_string_equal(relay_config_sink_name(cfg), "kafka");
    assert_int_equal(STDOUT_FORMAT(cfg), RELAY_FORMAT_CLOUDEVENTS_STRUCTURED);
    assert_null(cfg->cdc.tables);
    assert_int_equal(cfg->cdc.ntables, 0);
    assert_string_equal(cfg->cdc.topic, "cdc.{schema}.{table}");
    assert_string_equal(cfg->cdc.publication, "outbox_relay_cdc");
    assert_int_equal(cfg->postgres.mode, RELAY_MODE_REPLICATION);
    assert_int_equal(cfg->polling.interval_ms, 1000);
    assert_int_equal(cfg->polling.batch_size, 1000);
    assert_int_equal(cfg->polling.after_publish, RELAY_AFTER_DELETE);
    assert_int_equal(cfg->polling.retention_ms, INT64_C(24) * 3600 * 1000);
    assert_string_equal(cfg->polling.notify_channel, "outbox_relay");
}

/* Every default, and the values the minimal file sets. */
static void assert_minimal(const struct relay_config *cfg)
{
    assert_string_equal(cfg->postgres.dsn, "host=127.0.0.1 port=5432 dbname=app user=postgres");
    assert_string_equal(cfg->postgres.slot, "outbox_relay");
    assert_string_equal(cfg->postgres.publication, "outbox_relay");
    assert_int_equal(cfg->postgres.status_interval_ms, 10000);
    assert_int_equal(cfg->postgres.retry_interval_ms, 5000);
    assert_string_equal(cfg->outbox.schema, "public");
    assert_string_equal(cfg->outbox.table, "outbox");
    assert_string_equal(KAFKA(cfg)->brokers, "127.0.0.1:9092");
    assert_string_equal(KAFKA(cfg)->common.destination, "outbox.event.{aggregatetype}");
    assert_int_equal(cfg->pipeline.max_inflight_events, 100000);
    assert_int_equal(cfg->pipeline.shutdown_timeout_ms, 5000);
    assert_int_equal(cfg->log.level, RELAY_LOG_INFO);
    assert_int_equal(cfg->log.format, RELAY_LOG_FORMAT_TEXT);
    assert_string_equal(cfg->admin.listen, "127.0.0.1:9187");
    assert_feature_defaults(cfg);
}

/*
 * Happy paths
 */

static void test_minimal(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok(minimal);
    assert_minimal(cfg);
    assert_string_equal(cfg->path, "config.yaml");
    assert_int_equal(KAFKA(cfg)->nproperties, 1);
    assert_string_equal(KAFKA(cfg)->properties[0].key, "compression.type");
    assert_string_equal(KAFKA(cfg)->properties[0].value, "lz4");
    relay_config_free(cfg);
}

static void test_required_only(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok(REQUIRED);
    assert_string_equal(cfg->postgres.dsn, "dbname=app");
    assert_string_equal(KAFKA(cfg)->brokers, "localhost:9092");
    assert_string_equal(cfg->postgres.slot, "outbox_relay");
    assert_string_equal(cfg->postgres.publication, "outbox_relay");
    assert_int_equal(cfg->postgres.status_interval_ms, 10000);
    assert_int_equal(cfg->postgres.retry_interval_ms, 5000);
    assert_string_equal(cfg->outbox.schema, "public");
    assert_string_equal(cfg->outbox.table, "outbox");
    assert_string_equal(KAFKA(cfg)->common.destination, "outbox.event.{aggregatetype}");
    assert_null(KAFKA(cfg)->properties);
    assert_int_equal(KAFKA(cfg)->nproperties, 0);
    assert_int_equal(cfg->pipeline.max_inflight_events, 100000);
    assert_int_equal(cfg->pipeline.shutdown_timeout_ms, 5000);
    assert_int_equal(cfg->log.level, RELAY_LOG_INFO);
    assert_feature_defaults(cfg);
    relay_config_free(cfg);
}

static void test_every_key_set(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok("postgres:\n"
                    "  dsn: dbname=other\n"
                    "  slot: s_1\n"
                    "  publication: Pub-1\n"
                    "  status_interval: 250ms\n"
                    "  retry_interval: 1m30s\n"
                    "outbox:\n"
                    "  table: app.events\n"
                    "kafka:\n"
                    "  brokers: a:1,b:2\n"
                    "  topic: t.{aggregatetype}.{event_type2}\n"
                    "  max_inflight_events: 10000000\n"
                    "  shutdown_timeout: 0s\n"
                    "log:\n"
                    "  level: debug\n");
    assert_string_equal(cfg->postgres.dsn, "dbname=other");
    assert_string_equal(cfg->postgres.slot, "s_1");
    assert_string_equal(cfg->postgres.publication, "Pub-1");
    assert_int_equal(cfg->postgres.status_interval_ms, 250);
    assert_int_equal(cfg->postgres.retry_interval_ms, 90000);
    assert_string_equal(cfg->outbox.schema, "app");
    assert_string_equal(cfg->outbox.table, "events");
    assert_string_equal(KAFKA(cfg)->brokers, "a:1,b:2");
    assert_string_equal(KAFKA(cfg)->common.destination, "t.{aggregatetype}.{event_type2}");
    assert_int_equal(cfg->pipeline.max_inflight_events, 10000000);
    assert_int_equal(cfg->pipeline.shutdown_timeout_ms, 0);
    assert_int_equal(cfg->log.level, RELAY_LOG_DEBUG);
    relay_config_free(cfg);
}

static void test_log_levels(void **state)
{
    static const struct {
        const char *name;
        enum relay_log_level level;
    } cases[] = {
        {"debug", RELAY_LOG_DEBUG},
        {"info", RELAY_LOG_INFO},
        {"warn", RELAY_LOG_WARN},
        {"error", RELAY_LOG_ERROR},
    };
    char text[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct relay_config *cfg;

        snprintf(text, sizeof(text), REQUIRED "log:\n  level: %s\n", cases[i].name);
        cfg = expect_ok(text);
        assert_int_equal(cfg->log.level, cases[i].level);
        relay_config_free(cfg);
    }
    expect_error(REQUIRED "log:\n  level: verbose\n",
                 "config.yaml:6:10: \"log.level\" must be one of debug, info, warn, error, "
                 "got \"verbose\"");
    expect_error(REQUIRED "log:\n  level: INFO\n",
                 "config.yaml:6:10: \"log.level\" must be one of debug, info, warn, error, "
                 "got \"INFO\"");
}

/* Empty sections and an empty properties mapping are fine. */
static void test_empty_sections(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok(REQUIRED "  properties: {}\noutbox:\nlog: {}\n");
    assert_int_equal(KAFKA(cfg)->nproperties, 0);
    assert_string_equal(cfg->outbox.table, "outbox");
    relay_config_free(cfg);

    cfg = expect_ok(REQUIRED "  properties:\n");
    assert_int_equal(KAFKA(cfg)->nproperties, 0);
    relay_config_free(cfg);
}

static void test_example_files(void **state)
{
    struct relay_config *cfg, *full;
    char err[512];

    (void)state;
    cfg = relay_config_load(CONFIG_DIR "/outbox-relay.yaml", err, sizeof(err));
    if (cfg == NULL)
        fail_msg("%s", err);
    assert_minimal(cfg);
    assert_string_equal(cfg->path, CONFIG_DIR "/outbox-relay.yaml");
    assert_int_equal(KAFKA(cfg)->nproperties, 1);
    assert_string_equal(KAFKA(cfg)->properties[0].key, "compression.type");
    assert_string_equal(KAFKA(cfg)->properties[0].value, "lz4");

    /* full.yaml writes every default out: it must mean the same as leaving them out. */
    full = relay_config_load(CONFIG_DIR "/full.yaml", err, sizeof(err));
    if (full == NULL)
        fail_msg("%s", err);
    assert_minimal(full);
    assert_int_equal(KAFKA(full)->nproperties, 0);

    relay_config_free(full);
    relay_config_free(cfg);
}

/* The minimal file in config/ must be the one from the issue, byte for byte in its YAML. */
static void test_example_file_is_minimal(void **state)
{
    char buf[4096], *p;
    size_t n;
    FILE *f;

    (void)state;
    f = fopen(CONFIG_DIR "/outbox-relay.yaml", "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Comments come first; the YAML itself is the text above, verbatim. */
    p = strstr(buf, "postgres:\n");
    assert_non_null(p);
    assert_string_equal(p, minimal);
}

/*
 * kafka.properties
 */

static void test_properties_order(void **state)
{
    static const char *const want[][2] = {
        {"linger.ms", "5"},
        {"acks", "all"},
        {"enable.idempotence", "true"},
        {"compression.type", "zstd"},
        {"batch.size", "1.5"},
        {"client.id", ""},
        {"message.max.bytes", "1000000"},
    };
    struct relay_config *cfg;
    size_t i;

    (void)state;
    cfg = expect_ok(REQUIRED "  properties:\n"
                             "    linger.ms: 5\n"
                             "    acks: all\n"
                             "    enable.idempotence: true\n"
                             "    compression.type: 'zstd'\n"
                             "    batch.size: 1.5\n"
                             "    client.id:\n"
                             "    message.max.bytes: \"1000000\"\n");
    assert_int_equal(KAFKA(cfg)->nproperties, sizeof(want) / sizeof(want[0]));
    for (i = 0; i < KAFKA(cfg)->nproperties; i++) {
        assert_string_equal(KAFKA(cfg)->properties[i].key, want[i][0]);
        assert_string_equal(KAFKA(cfg)->properties[i].value, want[i][1]);
    }
    relay_config_free(cfg);
}

static void test_properties_errors(void **state)
{
    (void)state;
    expect_error(REQUIRED "  properties: lz4\n",
                 "config.yaml:5:15: \"kafka.properties\" must be a mapping, got \"lz4\"");
    expect_error(REQUIRED "  properties:\n    a: 1\n    b: [1, 2]\n",
                 "config.yaml:7:8: value of \"b\" in \"kafka.properties\" must be a scalar, "
                 "got a sequence");
    expect_error(REQUIRED "  properties:\n    a: {x: 1}\n",
                 "config.yaml:6:8: value of \"a\" in \"kafka.properties\" must be a scalar, "
                 "got a mapping");
    expect_error(REQUIRED "  properties:\n    acks: all\n    linger.ms: 5\n    acks: 1\n",
                 "config.yaml:8:5: duplicate key \"acks\" in \"kafka.properties\"");
}

/*
 * Errors: keys, sections and shapes
 */

static void test_unknown_key(void **state)
{
    (void)state;
    expect_error("postgres:\n"
                 "    dsn: a\n"
                 "    dns: b\n",
                 "config.yaml:3:5: unknown key \"dns\" in \"postgres\"");
    expect_error(REQUIRED "  Brokers: x\n",
                 "config.yaml:5:3: unknown key \"Brokers\" in \"kafka\"");
    expect_error(REQUIRED "postgress:\n  dsn: a\n",
                 "config.yaml:5:1: unknown section \"postgress\"");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    expect_error("postgres:\n"
                 "  dsn: a\n"
                 "  slot: one\n"
                 "  slot: two\n",
                 "config.yaml:4:3: duplicate key \"slot\" in \"postgres\"");
    expect_error(REQUIRED "postgres:\n  slot: x\n",
                 "config.yaml:5:1: duplicate section \"postgres\"");
}

static void test_missing_required(void **state)
{
    (void)state;
    /* The section is there: point at its mapping. */
    expect_error("kafka:\n"
                 "  brokers: b\n"
                 "postgres:\n"
                 "  slot: s\n",
                 "config.yaml:4:3: missing required key \"postgres.dsn\"");
    /* The whole section is missing: point at the start of the file. */
    expect_error("# comment\n"
                 "postgres:\n"
                 "  dsn: a\n",
                 "config.yaml:1:1: missing required key \"kafka.brokers\"");
    expect_error("log:\n  level: info\n", "config.yaml:1:1: missing required key \"postgres.dsn\"");
    /* An empty section: point at its key. */
    expect_error("kafka:\n"
                 "  brokers: b\n"
                 "postgres:\n",
                 "config.yaml:3:1: missing required key \"postgres.dsn\"");
}

static void test_shapes(void **state)
{
    (void)state;
    expect_error("- postgres\n- kafka\n",
                 "config.yaml:1:1: the top level must be a mapping of sections, got a sequence");
    expect_error("hello\n",
                 "config.yaml:1:1: the top level must be a mapping of sections, got \"hello\"");
    expect_error("postgres: dbname=app\n",
                 "config.yaml:1:11: \"postgres\" must be a mapping, got \"dbname=app\"");
    expect_error("postgres:\n  - dsn\n",
                 "config.yaml:2:3: \"postgres\" must be a mapping, got a sequence");
    expect_error("postgres:\n  dsn: [a, b]\n",
                 "config.yaml:2:8: \"postgres.dsn\" must be a string, got a sequence");
    expect_error("postgres:\n  dsn:\n",
                 "config.yaml:2:7: \"postgres.dsn\" must be a string, got null");
    expect_error(REQUIRED "  max_inflight_events: ~\n",
                 "config.yaml:5:24: \"kafka.max_inflight_events\" must be an integer, got null");
    expect_error("postgres:\n  ? [a]\n  : b\n",
                 "config.yaml:2:5: a key must be a scalar, got a sequence");
    /* "\0" is a valid YAML escape, but C strings cannot hold it. */
    expect_error("postgres:\n  dsn: \"a\\0b\"\n",
                 "config.yaml:2:8: a value must not contain a NUL character");
    expect_error("postgres:\n  \"dsn\\0\": a\n",
                 "config.yaml:2:3: a key must not contain a NUL character");
}

static void test_empty(void **state)
{
    (void)state;
    expect_error("", "config.yaml:1:1: configuration is empty");
    expect_error("# nothing but a comment\n\n", "config.yaml:1:1: configuration is empty");
    expect_error("---\n", "config.yaml:1:1: configuration is empty");
}

static void test_yaml_syntax(void **state)
{
    (void)state;
    expect_error("postgres:\n  dsn: a: b\n",
                 "config.yaml:2:9: invalid YAML: mapping values are not allowed in this context");
    expect_error("postgres:\n  dsn: [a\nkafka:\n",
                 "config.yaml:3:6: invalid YAML: did not find expected ',' or ']' "
                 "(while parsing a flow sequence at line 2 column 8)");
    expect_error("postgres:\n  dsn: \"abc\n",
                 "config.yaml:3:1: invalid YAML: found unexpected end of stream "
                 "(while scanning a quoted scalar at line 2 column 8)");
    expect_error("postgres:\n  dsn: \xff\n",
                 "config.yaml:2:8: invalid YAML: invalid leading UTF-8 octet (byte 0xFF)");
}

static void test_anchors_and_documents(void **state)
{
    (void)state;
    expect_error("postgres: &pg\n  dsn: a\n",
                 "config.yaml:1:11: anchors and aliases are not supported (\"&pg\")");
    expect_error("postgres:\n  dsn: &d a\n  slot: *d\n",
                 "config.yaml:2:8: anchors and aliases are not supported (\"&d\")");
    expect_error(REQUIRED "---\nlog: {}\n", "config.yaml:5:1: only one YAML document is allowed");
}

/*
 * Errors: values
 */

static void test_integer(void **state)
{
    struct relay_config *cfg;

    (void)state;
    expect_error(
        REQUIRED "  max_inflight_events: lots\n",
        "config.yaml:5:24: \"kafka.max_inflight_events\" must be an integer, got \"lots\"");
    expect_error(
        REQUIRED "  max_inflight_events: 100k\n",
        "config.yaml:5:24: \"kafka.max_inflight_events\" must be an integer, got \"100k\"");
    expect_error(
        REQUIRED "  max_inflight_events: 0x10\n",
        "config.yaml:5:24: \"kafka.max_inflight_events\" must be an integer, got \"0x10\"");
    expect_error(REQUIRED "  max_inflight_events: 1e5\n",
                 "config.yaml:5:24: \"kafka.max_inflight_events\" must be an integer, got \"1e5\"");
    expect_error(REQUIRED "  max_inflight_events: +5\n",
                 "config.yaml:5:24: \"kafka.max_inflight_events\" must be an integer, got \"+5\"");
    expect_error(REQUIRED "  max_inflight_events: \"\"\n",
                 "config.yaml:5:24: \"kafka.max_inflight_events\" must be an integer, got \"\"");
    expect_error(REQUIRED "  max_inflight_events: 0\n",
                 "config.yaml:5:24: \"kafka.max_inflight_events\" must be between 1 and 10000000, "
                 "got \"0\"");
    expect_error(REQUIRED "  max_inflight_events: -1\n",
                 "config.yaml:5:24: \"kafka.max_inflight_events\" must be between 1 and 10000000, "
                 "got \"-1\"");
    expect_error(REQUIRED "  max_inflight_events: 10000001\n",
                 "config.yaml:5:24: \"kafka.max_inflight_events\" must be between 1 and 10000000, "
                 "got \"10000001\"");
    expect_error(REQUIRED "  max_inflight_events: 99999999999999999999999\n",
                 "config.yaml:5:24: \"kafka.max_inflight_events\" must be between 1 and 10000000, "
                 "got \"99999999999999999999999\"");

    cfg = expect_ok(REQUIRED "  max_inflight_events: 1\n");
    assert_int_equal(cfg->pipeline.max_inflight_events, 1);
    relay_config_free(cfg);
    cfg = expect_ok(REQUIRED "  max_inflight_events: \"0042\"\n");
    assert_int_equal(cfg->pipeline.max_inflight_events, 42);
    relay_config_free(cfg);
}

static void test_duration_keys(void **state)
{
    struct relay_config *cfg;

    (void)state;
    expect_error("postgres:\n"
                 "  dsn: a\n"
                 "  status_interval: 10 parsecs\n",
                 "config.yaml:3:20: bad duration \"10 parsecs\" for \"postgres.status_interval\": "
                 "use a number with ms, s, m or h");
    expect_error("postgres:\n"
                 "  dsn: a\n"
                 "  retry_interval: 10\n",
                 "config.yaml:3:19: bad duration \"10\" for \"postgres.retry_interval\": "
                 "use a number with ms, s, m or h");
    expect_error(
        "postgres:\n"
        "  dsn: a\n"
        "  status_interval: 0s\n",
        "config.yaml:3:20: \"postgres.status_interval\" must be greater than 0, got \"0s\"");
    expect_error(
        "postgres:\n"
        "  dsn: a\n"
        "  retry_interval: 0ms\n",
        "config.yaml:3:19: \"postgres.retry_interval\" must be greater than 0, got \"0ms\"");
    expect_error(REQUIRED "  shutdown_timeout: -1s\n",
                 "config.yaml:5:21: bad duration \"-1s\" for \"kafka.shutdown_timeout\": "
                 "use a number with ms, s, m or h");

    cfg = expect_ok(REQUIRED "  shutdown_timeout: 1h\n");
    assert_int_equal(cfg->pipeline.shutdown_timeout_ms, 3600000);
    relay_config_free(cfg);
}

static void test_slot_and_publication(void **state)
{
    struct relay_config *cfg;
    char text[512];

    (void)state;
    expect_error("postgres:\n  dsn: a\n  slot: Outbox\n",
                 "config.yaml:3:9: bad slot name \"Outbox\" for \"postgres.slot\": use 1 to 63 "
                 "lowercase letters, digits and underscores");
    expect_error("postgres:\n  dsn: a\n  slot: out-box\n",
                 "config.yaml:3:9: bad slot name \"out-box\" for \"postgres.slot\": use 1 to 63 "
                 "lowercase letters, digits and underscores");
    expect_error("postgres:\n  dsn: a\n  slot: \"\"\n",
                 "config.yaml:3:9: bad slot name \"\" for \"postgres.slot\": use 1 to 63 "
                 "lowercase letters, digits and underscores");

    /* 63 bytes is the longest name PostgreSQL keeps. */
    snprintf(text, sizeof(text), "postgres:\n  dsn: a\n  slot: %063d\nkafka:\n  brokers: b\n", 0);
    cfg = expect_ok(text);
    assert_int_equal(strlen(cfg->postgres.slot), 63);
    relay_config_free(cfg);
    snprintf(text, sizeof(text), "postgres:\n  dsn: a\n  slot: %064d\n", 0);
    expect_error(text, "config.yaml:3:9: bad slot name "
                       "\"0000000000000000000000000000000000000000000000000000000000000000\" for "
                       "\"postgres.slot\": use 1 to 63 lowercase letters, digits and underscores");

    expect_error("postgres:\n  dsn: a\n  publication: ''\n",
                 "config.yaml:3:16: \"postgres.publication\" must not be empty");
    snprintf(text, sizeof(text), "postgres:\n  dsn: a\n  publication: P%063d\n", 0);
    expect_error(text,
                 "config.yaml:3:16: \"postgres.publication\" must be at most 63 bytes, got 64");
}

static void test_required_not_empty(void **state)
{
    (void)state;
    expect_error("postgres:\n  dsn: \"\"\nkafka:\n  brokers: b\n",
                 "config.yaml:2:8: \"postgres.dsn\" must not be empty");
    expect_error("postgres:\n  dsn: a\nkafka:\n  brokers: ''\n",
                 "config.yaml:4:12: \"kafka.brokers\" must not be empty");
}

static void test_outbox_table(void **state)
{
    static const struct {
        const char *yaml; /* the value as written in the file */
        const char *schema;
        const char *table;
    } ok[] = {
        {"events", "public", "events"},
        {"Events", "public", "events"},
        {"App.Outbox_1", "app", "outbox_1"},
        {"_a$.b$2", "_a$", "b$2"},
        {"'\"Sales\".\"Outbox\"'", "Sales", "Outbox"},
        {"'\"My Table\"'", "public", "My Table"},
        {"'\"a.b\".c'", "a.b", "c"},
        {"'app.\"Out\"\"box\"'", "app", "Out\"box"},
    };
    struct relay_config *cfg;
    char text[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), REQUIRED "outbox:\n  table: %s\n", ok[i].yaml);
        cfg = expect_ok(text);
        assert_string_equal(cfg->outbox.schema, ok[i].schema);
        assert_string_equal(cfg->outbox.table, ok[i].table);
        relay_config_free(cfg);
    }

    expect_error(REQUIRED "outbox:\n  table: a.b.c\n",
                 "config.yaml:6:10: bad table name \"a.b.c\" for \"outbox.table\": use table or "
                 "schema.table, with double quotes around names that are not plain identifiers");
    expect_error(REQUIRED "outbox:\n  table: 1abc\n",
                 "config.yaml:6:10: bad table name \"1abc\" for \"outbox.table\": use table or "
                 "schema.table, with double quotes around names that are not plain identifiers");
    expect_error(REQUIRED "outbox:\n  table: \"\"\n",
                 "config.yaml:6:10: bad table name \"\" for \"outbox.table\": use table or "
                 "schema.table, with double quotes around names that are not plain identifiers");
    expect_error(REQUIRED "outbox:\n  table: 'app.'\n",
                 "config.yaml:6:10: bad table name \"app.\" for \"outbox.table\": use table or "
                 "schema.table, with double quotes around names that are not plain identifiers");
    expect_error(REQUIRED "outbox:\n  table: '\"Sales'\n",
                 "config.yaml:6:10: bad table name \"\\\"Sales\" for \"outbox.table\": "
                 "unterminated quoted identifier");
    expect_error(REQUIRED "outbox:\n  table: '\"\".x'\n",
                 "config.yaml:6:10: bad table name \"\\\"\\\".x\" for \"outbox.table\": "
                 "zero-length quoted identifier");
    snprintf(text, sizeof(text), REQUIRED "outbox:\n  table: a%063d\n", 0);
    expect_error(text, "config.yaml:6:10: bad table name "
                       "\"a000000000000000000000000000000000000000000000000000000000000000\" for "
                       "\"outbox.table\": name longer than 63 bytes");

    /* A file, with the quoting an operator would write. */
    cfg = relay_config_load(FIXTURES_DIR "/config/quoted_table.yaml", errbuf, sizeof(errbuf));
    if (cfg == NULL)
        fail_msg("%s", errbuf);
    assert_string_equal(cfg->outbox.schema, "Sales");
    assert_string_equal(cfg->outbox.table, "Outbox \"v2\"");
    relay_config_free(cfg);
}

static void test_topic(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok(REQUIRED "  topic: plain.topic\n");
    assert_string_equal(KAFKA(cfg)->common.destination, "plain.topic");
    relay_config_free(cfg);
    cfg = expect_ok(REQUIRED "  topic: \"{aggregatetype}{_x1}-{b}\"\n");
    assert_string_equal(KAFKA(cfg)->common.destination, "{aggregatetype}{_x1}-{b}");
    relay_config_free(cfg);

    expect_error(REQUIRED "  topic: \"outbox.{aggregatetype\"\n",
                 "config.yaml:5:10: bad topic \"outbox.{aggregatetype\" for \"kafka.topic\": "
                 "unclosed \"{\"");
    expect_error(REQUIRED "  topic: \"outbox.{}\"\n",
                 "config.yaml:5:10: bad topic \"outbox.{}\" for \"kafka.topic\": "
                 "empty placeholder \"{}\"");
    expect_error(REQUIRED "  topic: \"outbox.{AggregateType}\"\n",
                 "config.yaml:5:10: bad topic \"outbox.{AggregateType}\" for \"kafka.topic\": "
                 "bad placeholder \"{AggregateType}\": use lowercase letters, digits and "
                 "underscores");
    expect_error(REQUIRED "  topic: \"outbox.{1st}\"\n",
                 "config.yaml:5:10: bad topic \"outbox.{1st}\" for \"kafka.topic\": "
                 "bad placeholder \"{1st}\": use lowercase letters, digits and underscores");
    expect_error(REQUIRED "  topic: \"outbox.{a{b}\"\n",
                 "config.yaml:5:10: bad topic \"outbox.{a{b}\" for \"kafka.topic\": "
                 "bad placeholder \"{a{b}\": use lowercase letters, digits and underscores");
    expect_error(REQUIRED "  topic: \"outbox}\"\n",
                 "config.yaml:5:10: bad topic \"outbox}\" for \"kafka.topic\": unmatched \"}\"");
    expect_error(REQUIRED "  topic: \"\"\n", "config.yaml:5:10: \"kafka.topic\" must not be empty");
}

/*
 * Outbox columns, source and message prefix
 */

static void test_outbox_feature_keys_set(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok(REQUIRED "outbox:\n"
                             "  table: app.events\n"
                             "  key_column: order_id\n"
                             "  version_column: schema_version\n"
                             "  headers_column: _extra_headers2\n"
                             "  header_columns:\n"
                             "    - tenant_id\n"
                             "    - trace_id\n"
                             "  source: \"/shop/orders\"\n"
                             "  messages_prefix: shop.events\n");
    assert_string_equal(cfg->outbox.schema, "app");
    assert_string_equal(cfg->outbox.table, "events");
    assert_string_equal(cfg->outbox.key_column, "order_id");
    assert_string_equal(cfg->outbox.version_column, "schema_version");
    assert_string_equal(cfg->outbox.headers_column, "_extra_headers2");
    assert_int_equal(cfg->outbox.nheader_columns, 2);
    assert_string_equal(cfg->outbox.header_columns[0], "tenant_id");
    assert_string_equal(cfg->outbox.header_columns[1], "trace_id");
    assert_string_equal(cfg->outbox.source, "/shop/orders");
    assert_string_equal(cfg->outbox.messages_prefix, "shop.events");
    relay_config_free(cfg);

    /* An explicit empty source means the same as leaving it out. */
    cfg = expect_ok(REQUIRED "outbox:\n  source: ''\n");
    assert_string_equal(cfg->outbox.source, "");
    relay_config_free(cfg);

    expect_error(REQUIRED "outbox:\n  messages_prefix: \"\"\n",
                 "config.yaml:6:20: \"outbox.messages_prefix\" must not be empty");
    expect_error(REQUIRED "outbox:\n  source:\n",
                 "config.yaml:6:10: \"outbox.source\" must be a string, got null");
}

static void test_column_names(void **state)
{
    static const char *const keys[] = {"key_column", "version_column", "headers_column"};
    static const char *const bad[] = {"AggregateId", "1st", "a-b", "a$", "\"\"", "'x y'", "é"};
    struct relay_config *cfg;
    char text[512], want[512];
    size_t i, j;

    (void)state;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        snprintf(text, sizeof(text), REQUIRED "outbox:\n  %s: _a1\n", keys[i]);
        cfg = expect_ok(text);
        assert_string_equal(i == 0   ? cfg->outbox.key_column
                            : i == 1 ? cfg->outbox.version_column
                                     : cfg->outbox.headers_column,
                            "_a1");
        relay_config_free(cfg);

        for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
            const char *v = bad[j];
            char shown[16];

            /* The message shows the value without the YAML quotes. */
            if (v[0] == '"' || v[0] == '\'')
                snprintf(shown, sizeof(shown), "%.*s", (int)strlen(v) - 2, v + 1);
            else
                snprintf(shown, sizeof(shown), "%s", v);
            snprintf(text, sizeof(text), REQUIRED "outbox:\n  %s: %s\n", keys[i], v);
            snprintf(want, sizeof(want),
                     "config.yaml:6:%zu: bad column name \"%s\" for \"outbox.%s\": use 1 to 63 "
                     "lowercase letters, digits and underscores, not starting with a digit",
                     strlen(keys[i]) + 5, shown, keys[i]);
            expect_error(text, want);
        }
    }

    /* 63 bytes is the longest name PostgreSQL keeps. */
    snprintf(text, sizeof(text), REQUIRED "outbox:\n  key_column: a%062d\n", 0);
    cfg = expect_ok(text);
    assert_int_equal(strlen(cfg->outbox.key_column), 63);
    relay_config_free(cfg);
    snprintf(text, sizeof(text), REQUIRED "outbox:\n  key_column: a%063d\n", 0);
    expect_error(text, "config.yaml:6:15: bad column name "
                       "\"a000000000000000000000000000000000000000000000000000000000000000\" for "
                       "\"outbox.key_column\": use 1 to 63 lowercase letters, digits and "
                       "underscores, not starting with a digit");

    /* Checked after expansion. */
    setenv("RELAY_T_COL", "Order_Id", 1);
    expect_error(REQUIRED "outbox:\n  key_column: ${RELAY_T_COL}\n",
                 "config.yaml:6:15: bad column name \"Order_Id\" for \"outbox.key_column\": use 1 "
                 "to 63 lowercase letters, digits and underscores, not starting with a digit");
    unsetenv("RELAY_T_COL");
}

static void test_header_columns(void **state)
{
    struct relay_config *cfg;

    (void)state;
    setenv("RELAY_T_COL", "trace_id", 1);
    unsetenv("RELAY_T_UNSET");

    /* Flow and block sequences, in file order, each entry expanded. */
    cfg = expect_ok(REQUIRED "outbox:\n"
                             "  header_columns: [tenant_id, \"${RELAY_T_COL}\", "
                             "'x_${RELAY_T_UNSET:-y}']\n");
    assert_int_equal(cfg->outbox.nheader_columns, 3);
    assert_string_equal(cfg->outbox.header_columns[0], "tenant_id");
    assert_string_equal(cfg->outbox.header_columns[1], "trace_id");
    assert_string_equal(cfg->outbox.header_columns[2], "x_y");
    relay_config_free(cfg);

    cfg = expect_ok(REQUIRED "outbox:\n"
                             "  header_columns:\n"
                             "  - ${RELAY_T_COL}\n"
                             "  - 'region'\n");
    assert_int_equal(cfg->outbox.nheader_columns, 2);
    assert_string_equal(cfg->outbox.header_columns[0], "trace_id");
    assert_string_equal(cfg->outbox.header_columns[1], "region");
    relay_config_free(cfg);

    /* [] and null are the empty list. */
    cfg = expect_ok(REQUIRED "outbox:\n  header_columns: []\n");
    assert_null(cfg->outbox.header_columns);
    assert_int_equal(cfg->outbox.nheader_columns, 0);
    relay_config_free(cfg);
    cfg = expect_ok(REQUIRED "outbox:\n  header_columns:\n");
    assert_int_equal(cfg->outbox.nheader_columns, 0);
    relay_config_free(cfg);

    /* Not a list. */
    expect_error(REQUIRED "outbox:\n  header_columns: tenant_id\n",
                 "config.yaml:6:19: \"outbox.header_columns\" must be a list of strings, "
                 "got \"tenant_id\"");
    expect_error(REQUIRED "outbox:\n  header_columns: \"a, b\"\n",
                 "config.yaml:6:19: \"outbox.header_columns\" must be a list of strings, "
                 "got \"a, b\"");
    expect_error(REQUIRED "outbox:\n  header_columns:\n    tenant_id: 1\n",
                 "config.yaml:7:5: \"outbox.header_columns\" must be a list of strings, "
                 "got a mapping");

    /* Errors in an entry point at that entry. */
    expect_error(REQUIRED "outbox:\n"
                          "  header_columns:\n"
                          "    - tenant_id\n"
                          "    - Trace-Id\n",
                 "config.yaml:8:7: bad column name \"Trace-Id\" for \"outbox.header_columns\": "
                 "use 1 to 63 lowercase letters, digits and underscores, not starting with a "
                 "digit");
    expect_error(REQUIRED "outbox:\n  header_columns: [a, b, 9c]\n",
                 "config.yaml:6:26: bad column name \"9c\" for \"outbox.header_columns\": "
                 "use 1 to 63 lowercase letters, digits and underscores, not starting with a "
                 "digit");
    expect_error(REQUIRED "outbox:\n  header_columns: [a, [b]]\n",
                 "config.yaml:6:23: entry 2 of \"outbox.header_columns\" must be a string, "
                 "got a sequence");
    expect_error(REQUIRED "outbox:\n"
                          "  header_columns:\n"
                          "    - a\n"
                          "    - {b: 1}\n",
                 "config.yaml:8:7: entry 2 of \"outbox.header_columns\" must be a string, "
                 "got a mapping");
    expect_error(REQUIRED "outbox:\n"
                          "  header_columns:\n"
                          "    -\n"
                          "    - a\n",
                 "config.yaml:7:6: entry 1 of \"outbox.header_columns\" must be a string, "
                 "got null");
    expect_error(REQUIRED "outbox:\n  header_columns:\n    - a\n    - x_${RELAY_T_UNSET}\n",
                 "config.yaml:8:9: environment variable \"RELAY_T_UNSET\" is not set");

    /* No duplicates, compared after expansion; the second one is reported. */
    expect_error(REQUIRED "outbox:\n  header_columns: [a, b, a]\n",
                 "config.yaml:6:26: duplicate entry \"a\" in \"outbox.header_columns\"");
    expect_error(REQUIRED "outbox:\n"
                          "  header_columns:\n"
                          "    - trace_id\n"
                          "    - ${RELAY_T_COL}\n",
                 "config.yaml:8:7: duplicate entry \"trace_id\" in \"outbox.header_columns\"");
    unsetenv("RELAY_T_COL");
}

/*
 * Formats and sinks
 */

static void test_formats(void **state)
{
    static const struct {
        const char *name;
        enum relay_format format;
    } cases[] = {
        {"cloudevents", RELAY_FORMAT_CLOUDEVENTS},
        {"cloudevents-structured", RELAY_FORMAT_CLOUDEVENTS_STRUCTURED},
        {"debezium", RELAY_FORMAT_DEBEZIUM},
    };
    struct relay_config *cfg;
    char text[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), REQUIRED "  format: %s\n", cases[i].name);
        cfg = expect_ok(text);
        assert_int_equal(KAFKA(cfg)->common.format, cases[i].format);
        assert_string_equal(relay_config_sink_name(cfg), "kafka");
        relay_config_free(cfg);

        snprintf(text, sizeof(text), "postgres:\n  dsn: a\nstdout:\n  format: %s\n", cases[i].name);
        cfg = expect_ok(text);
        assert_int_equal(STDOUT_FORMAT(cfg), cases[i].format);
        assert_int_equal(KAFKA(cfg)->common.format, RELAY_FORMAT_CLOUDEVENTS);
        relay_config_free(cfg);
    }

    expect_error(REQUIRED "  format: avro\n",
                 "config.yaml:5:11: \"kafka.format\" must be one of cloudevents, "
                 "cloudevents-structured, debezium, got \"avro\"");
    expect_error(REQUIRED "  format: CloudEvents\n",
                 "config.yaml:5:11: \"kafka.format\" must be one of cloudevents, "
                 "cloudevents-structured, debezium, got \"CloudEvents\"");
    expect_error(REQUIRED "  format: [debezium]\n",
                 "config.yaml:5:11: \"kafka.format\" must be a string, got a sequence");
    expect_error("postgres:\n  dsn: a\nstdout:\n  format: json\n",
                 "config.yaml:4:11: \"stdout.format\" must be one of cloudevents, "
                 "cloudevents-structured, debezium, got \"json\"");
}

static void test_sink(void **state)
{
    struct relay_config *cfg;

    (void)state;
    /* Written out, the default. */
    cfg = expect_ok(REQUIRED "sink: kafka\n");
    assert_string_equal(relay_config_sink_name(cfg), "kafka");
    relay_config_free(cfg);

    /* The stdout sink needs no kafka section at all. */
    cfg = expect_ok("postgres:\n  dsn: a\nsink: stdout\n");
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    assert_null(KAFKA(cfg)->brokers);
    assert_string_equal(KAFKA(cfg)->common.destination, "outbox.event.{aggregatetype}");
    assert_int_equal(STDOUT_FORMAT(cfg), RELAY_FORMAT_CLOUDEVENTS_STRUCTURED);
    relay_config_free(cfg);

    /* Nor brokers in a kafka section that is there. */
    cfg = expect_ok("sink: stdout\npostgres:\n  dsn: a\nkafka:\n  format: debezium\n");
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    assert_null(KAFKA(cfg)->brokers);
    assert_int_equal(KAFKA(cfg)->common.format, RELAY_FORMAT_DEBEZIUM);
    relay_config_free(cfg);

    /* A kafka section is allowed, and kept, with the stdout sink. */
    cfg = expect_ok(REQUIRED "sink: stdout\n");
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    assert_string_equal(KAFKA(cfg)->brokers, "localhost:9092");
    relay_config_free(cfg);

    /* A stdout section, even empty, selects the stdout sink. */
    cfg = expect_ok("postgres:\n  dsn: a\nstdout: {}\n");
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    relay_config_free(cfg);
    cfg = expect_ok("postgres:\n  dsn: a\nstdout:\n");
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    relay_config_free(cfg);
    cfg = expect_ok(REQUIRED "stdout:\n  format: debezium\n");
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    assert_int_equal(STDOUT_FORMAT(cfg), RELAY_FORMAT_DEBEZIUM);
    relay_config_free(cfg);
    cfg = expect_ok("stdout: {}\nsink: stdout\npostgres:\n  dsn: a\n");
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    relay_config_free(cfg);

    /* From the environment. */
    setenv("RELAY_T_SINK", "stdout", 1);
    cfg = expect_ok("postgres:\n  dsn: a\nsink: ${RELAY_T_SINK}\n");
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    relay_config_free(cfg);
    unsetenv("RELAY_T_SINK");

    /* The kafka sink still requires kafka.brokers, where it always did. */
    expect_error("postgres:\n  dsn: a\nsink: kafka\n",
                 "config.yaml:1:1: missing required key \"kafka.brokers\"");
    expect_error("postgres:\n  dsn: a\nkafka:\n  topic: t\n",
                 "config.yaml:4:3: missing required key \"kafka.brokers\"");
    expect_error("sink: kafka\npostgres:\n  dsn: a\nkafka:\n",
                 "config.yaml:4:1: missing required key \"kafka.brokers\"");
    /* The kafka section is checked even when unused. */
    expect_error("postgres:\n  dsn: a\nsink: stdout\nkafka:\n  brokers: \"\"\n",
                 "config.yaml:5:12: \"kafka.brokers\" must not be empty");
    /* postgres.dsn is required whatever the sink. */
    expect_error("sink: stdout\n", "config.yaml:1:1: missing required key \"postgres.dsn\"");

    /* "sink: kafka" and a stdout section contradict each other. */
    expect_error(REQUIRED "sink: kafka\nstdout:\n  format: debezium\n",
                 "config.yaml:5:7: \"sink\" is \"kafka\", but a \"stdout\" section selects the "
                 "stdout sink");
    expect_error("stdout: {}\npostgres:\n  dsn: a\nsink: 'kafka'\n",
                 "config.yaml:4:7: \"sink\" is \"kafka\", but a \"stdout\" section selects the "
                 "stdout sink");

    expect_error(REQUIRED "sink: file\n",
                 "config.yaml:5:7: \"sink\" must be one of kafka, stdout, redis, webhook, nats, "
                 "rabbitmq, sqs, got \"file\"");
    expect_error(REQUIRED "sink: Stdout\n",
                 "config.yaml:5:7: \"sink\" must be one of kafka, stdout, redis, webhook, nats, "
                 "rabbitmq, sqs, got \"Stdout\"");
    expect_error(REQUIRED "sink:\n  type: stdout\n",
                 "config.yaml:6:3: \"sink\" must be a string, got a mapping");
    expect_error(REQUIRED "sink:\n", "config.yaml:5:6: \"sink\" must be a string, got null");
    expect_error(REQUIRED "sink: stdout\nsink: stdout\n",
                 "config.yaml:6:1: duplicate key \"sink\"");
    expect_error(REQUIRED "stdout: on\n",
                 "config.yaml:5:9: \"stdout\" must be a mapping, got \"on\"");
    expect_error(REQUIRED "stdout:\n  fmt: debezium\n",
                 "config.yaml:6:3: unknown key \"fmt\" in \"stdout\"");
    expect_error(REQUIRED "stdout: {}\nstdout: {}\n",
                 "config.yaml:6:1: duplicate section \"stdout\"");
}

/*
 * cdc
 */

static void test_cdc(void **state)
{
    struct relay_config *cfg;
    char text[512];

    (void)state;
    cfg = expect_ok(REQUIRED "cdc:\n"
                             "  tables:\n"
                             "    - orders\n"
                             "    - App.Customers\n"
                             "    - '\"Sales\".\"Line Items\"'\n"
                             "    - '\"public\".\"Orders\"'\n"
                             "  topic: \"changes.{schema}.{table}\"\n"
                             "  publication: Cdc-Pub\n");
    assert_int_equal(cfg->cdc.ntables, 4);
    assert_string_equal(cfg->cdc.tables[0].schema, "public");
    assert_string_equal(cfg->cdc.tables[0].table, "orders");
    assert_string_equal(cfg->cdc.tables[1].schema, "app");
    assert_string_equal(cfg->cdc.tables[1].table, "customers");
    assert_string_equal(cfg->cdc.tables[2].schema, "Sales");
    assert_string_equal(cfg->cdc.tables[2].table, "Line Items");
    assert_string_equal(cfg->cdc.tables[3].schema, "public");
    assert_string_equal(cfg->cdc.tables[3].table, "Orders");
    assert_string_equal(cfg->cdc.topic, "changes.{schema}.{table}");
    assert_string_equal(cfg->cdc.publication, "Cdc-Pub");
    relay_config_free(cfg);

    /* Entries are expanded; an empty section or list is no cdc. */
    setenv("RELAY_T_SCHEMA", "shop", 1);
    cfg = expect_ok(REQUIRED "cdc:\n  tables: [\"${RELAY_T_SCHEMA}.orders\"]\n");
    assert_int_equal(cfg->cdc.ntables, 1);
    assert_string_equal(cfg->cdc.tables[0].schema, "shop");
    assert_string_equal(cfg->cdc.tables[0].table, "orders");
    relay_config_free(cfg);
    unsetenv("RELAY_T_SCHEMA");
    cfg = expect_ok(REQUIRED "cdc:\n  tables: []\n");
    assert_null(cfg->cdc.tables);
    assert_int_equal(cfg->cdc.ntables, 0);
    relay_config_free(cfg);
    cfg = expect_ok(REQUIRED "cdc:\n");
    assert_int_equal(cfg->cdc.ntables, 0);
    assert_string_equal(cfg->cdc.topic, "cdc.{schema}.{table}");
    relay_config_free(cfg);

    expect_error(REQUIRED "cdc:\n  tables: orders\n",
                 "config.yaml:6:11: \"cdc.tables\" must be a list of table names, got \"orders\"");
    expect_error(REQUIRED "cdc:\n  tables:\n    - orders\n    - a.b.c\n",
                 "config.yaml:8:7: bad table name \"a.b.c\" for \"cdc.tables\": use table or "
                 "schema.table, with double quotes around names that are not plain identifiers");
    expect_error(REQUIRED "cdc:\n  tables: [orders, '\"Items']\n",
                 "config.yaml:6:20: bad table name \"\\\"Items\" for \"cdc.tables\": "
                 "unterminated quoted identifier");
    expect_error(REQUIRED "cdc:\n  tables: [orders, ~]\n",
                 "config.yaml:6:20: entry 2 of \"cdc.tables\" must be a string, got null");

    /* Duplicates are compared as PostgreSQL names, and shown so. */
    expect_error(REQUIRED "cdc:\n  tables:\n    - Orders\n    - items\n    - public.orders\n",
                 "config.yaml:9:7: duplicate entry \"public.orders\" in \"cdc.tables\"");
    expect_error(
        REQUIRED "cdc:\n  tables: ['\"Sales\".\"Line \"\"A\"\"\"', "
                 "'\"Sales\".\"Line \"\"A\"\"\"']\n",
        "config.yaml:6:36: duplicate entry \"\\\"Sales\\\".\\\"Line \\\"\\\"A\\\"\\\"\\\"\" "
        "in \"cdc.tables\"");

    /* The outbox table, named in any way, is not a cdc table. */
    expect_error(REQUIRED "cdc:\n  tables: [orders, outbox]\n",
                 "config.yaml:6:20: \"public.outbox\" in \"cdc.tables\": outbox table cannot "
                 "also be a cdc table");
    expect_error(REQUIRED "cdc:\n"
                          "  tables:\n"
                          "    - orders\n"
                          "    - App.Events\n"
                          "outbox:\n"
                          "  table: app.events\n",
                 "config.yaml:8:7: \"app.events\" in \"cdc.tables\": outbox table cannot also be "
                 "a cdc table");
    expect_error(REQUIRED "outbox:\n"
                          "  table: '\"Sales\".\"Outbox\"'\n"
                          "cdc:\n"
                          "  tables: ['\"Sales\".\"Outbox\"']\n",
                 "config.yaml:8:12: \"\\\"Sales\\\".\\\"Outbox\\\"\" in \"cdc.tables\": outbox "
                 "table cannot also be a cdc table");
    /* Same names in another case are other tables. */
    cfg = expect_ok(REQUIRED "outbox:\n"
                             "  table: '\"Sales\".\"Outbox\"'\n"
                             "cdc:\n"
                             "  tables: [sales.outbox]\n");
    assert_int_equal(cfg->cdc.ntables, 1);
    relay_config_free(cfg);

    /* cdc.topic is a topic template, cdc.publication a publication name. */
    expect_error(REQUIRED "cdc:\n  topic: \"cdc.{Schema}.{table}\"\n",
                 "config.yaml:6:10: bad topic \"cdc.{Schema}.{table}\" for \"cdc.topic\": "
                 "bad placeholder \"{Schema}\": use lowercase letters, digits and underscores");
    expect_error(REQUIRED "cdc:\n  topic: \"cdc.{table\"\n",
                 "config.yaml:6:10: bad topic \"cdc.{table\" for \"cdc.topic\": unclosed \"{\"");
    expect_error(REQUIRED "cdc:\n  topic: ''\n",
                 "config.yaml:6:10: \"cdc.topic\" must not be empty");
    expect_error(REQUIRED "cdc:\n  publication: ''\n",
                 "config.yaml:6:16: \"cdc.publication\" must not be empty");
    snprintf(text, sizeof(text), REQUIRED "cdc:\n  publication: p%063d\n", 0);
    expect_error(text, "config.yaml:6:16: \"cdc.publication\" must be at most 63 bytes, got 64");
    expect_error(REQUIRED "cdc:\n  table: orders\n",
                 "config.yaml:6:3: unknown key \"table\" in \"cdc\"");
}

/* A file with the stdout sink, header columns and cdc tables, as an operator writes it. */
static void test_stdout_cdc_file(void **state)
{
    struct relay_config *cfg;
    char err[512];

    (void)state;
    cfg = relay_config_load(FIXTURES_DIR "/config/stdout_cdc.yaml", err, sizeof(err));
    if (cfg == NULL)
        fail_msg("%s", err);
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    assert_int_equal(STDOUT_FORMAT(cfg), RELAY_FORMAT_DEBEZIUM);
    assert_null(KAFKA(cfg)->brokers);
    assert_string_equal(cfg->outbox.key_column, "order_id");
    assert_int_equal(cfg->outbox.nheader_columns, 2);
    assert_string_equal(cfg->outbox.header_columns[0], "tenant_id");
    assert_string_equal(cfg->outbox.header_columns[1], "trace_id");
    assert_int_equal(cfg->cdc.ntables, 2);
    assert_string_equal(cfg->cdc.tables[0].schema, "public");
    assert_string_equal(cfg->cdc.tables[0].table, "orders");
    assert_string_equal(cfg->cdc.tables[1].schema, "Sales");
    assert_string_equal(cfg->cdc.tables[1].table, "Line Items");
    relay_config_free(cfg);
}

/*
 * Polling mode
 */

static void test_mode(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok("postgres:\n  dsn: a\n  mode: replication\nkafka:\n  brokers: b\n");
    assert_int_equal(cfg->postgres.mode, RELAY_MODE_REPLICATION);
    relay_config_free(cfg);

    /* Polling mode alone changes no other default. */
    cfg = expect_ok(POLLING);
    assert_int_equal(cfg->postgres.mode, RELAY_MODE_POLLING);
    assert_string_equal(cfg->postgres.slot, "outbox_relay");
    assert_string_equal(cfg->postgres.publication, "outbox_relay");
    assert_int_equal(cfg->polling.interval_ms, 1000);
    assert_int_equal(cfg->polling.batch_size, 1000);
    assert_int_equal(cfg->polling.after_publish, RELAY_AFTER_DELETE);
    assert_int_equal(cfg->polling.retention_ms, INT64_C(86400000));
    assert_string_equal(cfg->polling.notify_channel, "outbox_relay");
    relay_config_free(cfg);

    /* Slot and publication are unused in polling mode, but no error, and still checked. */
    cfg = expect_ok("postgres:\n"
                    "  dsn: a\n"
                    "  slot: old_slot\n"
                    "  mode: polling\n"
                    "  publication: old_pub\n"
                    "kafka:\n"
                    "  brokers: b\n");
    assert_int_equal(cfg->postgres.mode, RELAY_MODE_POLLING);
    assert_string_equal(cfg->postgres.slot, "old_slot");
    assert_string_equal(cfg->postgres.publication, "old_pub");
    relay_config_free(cfg);
    expect_error("postgres:\n  dsn: a\n  mode: polling\n  slot: Old\n",
                 "config.yaml:4:9: bad slot name \"Old\" for \"postgres.slot\": use 1 to 63 "
                 "lowercase letters, digits and underscores");

    /* A polling section does not select polling mode; it is kept, unused, in replication. */
    cfg = expect_ok(REQUIRED "polling:\n  batch_size: 5\n");
    assert_int_equal(cfg->postgres.mode, RELAY_MODE_REPLICATION);
    assert_int_equal(cfg->polling.batch_size, 5);
    relay_config_free(cfg);

    /* From the environment, and with the stdout sink. */
    setenv("RELAY_T_MODE", "polling", 1);
    cfg = expect_ok("postgres:\n  dsn: a\n  mode: ${RELAY_T_MODE}\nsink: stdout\n");
    assert_int_equal(cfg->postgres.mode, RELAY_MODE_POLLING);
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    relay_config_free(cfg);
    unsetenv("RELAY_T_MODE");

    expect_error("postgres:\n  dsn: a\n  mode: poll\n",
                 "config.yaml:3:9: \"postgres.mode\" must be one of replication, polling, "
                 "got \"poll\"");
    expect_error("postgres:\n  dsn: a\n  mode: Polling\n",
                 "config.yaml:3:9: \"postgres.mode\" must be one of replication, polling, "
                 "got \"Polling\"");
    expect_error("postgres:\n  dsn: a\n  mode: ''\n",
                 "config.yaml:3:9: \"postgres.mode\" must be one of replication, polling, "
                 "got \"\"");
    expect_error("postgres:\n  dsn: a\n  mode:\n",
                 "config.yaml:3:8: \"postgres.mode\" must be a string, got null");
    expect_error("postgres:\n  dsn: a\n  mode: polling\n  mode: polling\n",
                 "config.yaml:4:3: duplicate key \"mode\" in \"postgres\"");
}

static void test_polling_keys_set(void **state)
{
    struct relay_config *cfg;
    char text[512];

    (void)state;
    cfg = expect_ok(POLLING "polling:\n"
                            "  interval: 250ms\n"
                            "  batch_size: 100000\n"
                            "  after_publish: mark\n"
                            "  retention: 1h30m\n"
                            "  notify_channel: _shop_outbox2\n");
    assert_int_equal(cfg->postgres.mode, RELAY_MODE_POLLING);
    assert_int_equal(cfg->polling.interval_ms, 250);
    assert_int_equal(cfg->polling.batch_size, 100000);
    assert_int_equal(cfg->polling.after_publish, RELAY_AFTER_MARK);
    assert_int_equal(cfg->polling.retention_ms, 5400000);
    assert_string_equal(cfg->polling.notify_channel, "_shop_outbox2");
    relay_config_free(cfg);

    /* The other end of each range; 0s retention keeps marked rows forever. */
    cfg = expect_ok(POLLING "polling:\n"
                            "  interval: 1ms\n"
                            "  batch_size: 1\n"
                            "  after_publish: delete\n"
                            "  retention: 0s\n");
    assert_int_equal(cfg->polling.interval_ms, 1);
    assert_int_equal(cfg->polling.batch_size, 1);
    assert_int_equal(cfg->polling.after_publish, RELAY_AFTER_DELETE);
    assert_int_equal(cfg->polling.retention_ms, 0);
    relay_config_free(cfg);

    /* An empty section is the defaults. */
    cfg = expect_ok(POLLING "polling:\n");
    assert_int_equal(cfg->polling.interval_ms, 1000);
    assert_int_equal(cfg->polling.batch_size, 1000);
    relay_config_free(cfg);

    /* 63 bytes is the longest channel name PostgreSQL keeps. */
    snprintf(text, sizeof(text), POLLING "polling:\n  notify_channel: c%062d\n", 0);
    cfg = expect_ok(text);
    assert_int_equal(strlen(cfg->polling.notify_channel), 63);
    relay_config_free(cfg);

    /* From the environment. */
    setenv("RELAY_T_N", "250", 1);
    setenv("RELAY_T_AFTER", "mark", 1);
    cfg = expect_ok(POLLING "polling:\n"
                            "  batch_size: ${RELAY_T_N}\n"
                            "  interval: ${RELAY_T_N}ms\n"
                            "  after_publish: ${RELAY_T_AFTER}\n");
    assert_int_equal(cfg->polling.batch_size, 250);
    assert_int_equal(cfg->polling.interval_ms, 250);
    assert_int_equal(cfg->polling.after_publish, RELAY_AFTER_MARK);
    relay_config_free(cfg);
    unsetenv("RELAY_T_N");
    unsetenv("RELAY_T_AFTER");
}

static void test_polling_errors(void **state)
{
    char text[512];

    (void)state;
    /* polling.interval: a duration > 0. */
    expect_error(POLLING "polling:\n  interval: 0s\n",
                 "config.yaml:7:13: \"polling.interval\" must be greater than 0, got \"0s\"");
    expect_error(POLLING "polling:\n  interval: 5\n",
                 "config.yaml:7:13: bad duration \"5\" for \"polling.interval\": use a number "
                 "with ms, s, m or h");

    /* polling.batch_size: 1..100000. */
    expect_error(POLLING "polling:\n  batch_size: 0\n",
                 "config.yaml:7:15: \"polling.batch_size\" must be between 1 and 100000, "
                 "got \"0\"");
    expect_error(POLLING "polling:\n  batch_size: -1\n",
                 "config.yaml:7:15: \"polling.batch_size\" must be between 1 and 100000, "
                 "got \"-1\"");
    expect_error(POLLING "polling:\n  batch_size: 100001\n",
                 "config.yaml:7:15: \"polling.batch_size\" must be between 1 and 100000, "
                 "got \"100001\"");
    expect_error(POLLING "polling:\n  batch_size: 1k\n",
                 "config.yaml:7:15: \"polling.batch_size\" must be an integer, got \"1k\"");

    /* polling.after_publish: delete or mark. */
    expect_error(POLLING "polling:\n  after_publish: archive\n",
                 "config.yaml:7:18: \"polling.after_publish\" must be one of delete, mark, "
                 "got \"archive\"");
    expect_error(POLLING "polling:\n  after_publish: Mark\n",
                 "config.yaml:7:18: \"polling.after_publish\" must be one of delete, mark, "
                 "got \"Mark\"");
    expect_error(POLLING "polling:\n  after_publish: [mark]\n",
                 "config.yaml:7:18: \"polling.after_publish\" must be a string, got a sequence");

    /* polling.retention: a duration, 0s allowed. */
    expect_error(POLLING "polling:\n  retention: -1s\n",
                 "config.yaml:7:14: bad duration \"-1s\" for \"polling.retention\": use a number "
                 "with ms, s, m or h");
    expect_error(POLLING "polling:\n  retention: forever\n",
                 "config.yaml:7:14: bad duration \"forever\" for \"polling.retention\": use a "
                 "number with ms, s, m or h");

    /* polling.notify_channel: a lowercase identifier of at most 63 bytes. */
    expect_error(POLLING "polling:\n  notify_channel: Outbox\n",
                 "config.yaml:7:19: bad channel name \"Outbox\" for \"polling.notify_channel\": "
                 "use 1 to 63 lowercase letters, digits and underscores, not starting with a "
                 "digit");
    expect_error(POLLING "polling:\n  notify_channel: outbox-relay\n",
                 "config.yaml:7:19: bad channel name \"outbox-relay\" for "
                 "\"polling.notify_channel\": use 1 to 63 lowercase letters, digits and "
                 "underscores, not starting with a digit");
    expect_error(POLLING "polling:\n  notify_channel: 1st\n",
                 "config.yaml:7:19: bad channel name \"1st\" for \"polling.notify_channel\": "
                 "use 1 to 63 lowercase letters, digits and underscores, not starting with a "
                 "digit");
    expect_error(POLLING "polling:\n  notify_channel: ''\n",
                 "config.yaml:7:19: bad channel name \"\" for \"polling.notify_channel\": "
                 "use 1 to 63 lowercase letters, digits and underscores, not starting with a "
                 "digit");
    snprintf(text, sizeof(text), POLLING "polling:\n  notify_channel: c%063d\n", 0);
    expect_error(text, "config.yaml:7:19: bad channel name "
                       "\"c000000000000000000000000000000000000000000000000000000000000000\" for "
                       "\"polling.notify_channel\": use 1 to 63 lowercase letters, digits and "
                       "underscores, not starting with a digit");

    /* The section: a mapping of known keys, checked in replication mode too. */
    expect_error(POLLING "polling:\n  intervall: 1s\n",
                 "config.yaml:7:3: unknown key \"intervall\" in \"polling\"");
    expect_error(POLLING "polling: 1s\n",
                 "config.yaml:6:10: \"polling\" must be a mapping, got \"1s\"");
    expect_error(REQUIRED "polling:\n  batch_size: 0\n",
                 "config.yaml:6:15: \"polling.batch_size\" must be between 1 and 100000, "
                 "got \"0\"");
}

/* cdc reads table changes from the slot: there are none to read in polling mode. */
static void test_polling_cdc(void **state)
{
    struct relay_config *cfg;

    (void)state;
    /* The error points at the cdc.tables value: a block list at its first "-". */
    expect_error(POLLING "cdc:\n"
                         "  tables:\n"
                         "    - orders\n",
                 "config.yaml:8:5: \"cdc.tables\" needs \"postgres.mode: replication\"");
    expect_error(POLLING "cdc:\n  tables: [orders, app.items]\n",
                 "config.yaml:7:11: \"cdc.tables\" needs \"postgres.mode: replication\"");
    /* Wherever the mode is written. */
    expect_error("cdc:\n"
                 "  tables: [orders]\n"
                 "postgres:\n"
                 "  dsn: a\n"
                 "  mode: polling\n"
                 "sink: stdout\n",
                 "config.yaml:2:11: \"cdc.tables\" needs \"postgres.mode: replication\"");
    /* Before the outbox-table rule: in polling mode no cdc table is allowed at all. */
    expect_error(POLLING "cdc:\n  tables: [outbox]\n",
                 "config.yaml:7:11: \"cdc.tables\" needs \"postgres.mode: replication\"");

    /* No cdc tables is no conflict: an empty list, or only cdc.topic/publication. */
    cfg = expect_ok(POLLING "cdc:\n  tables: []\n  topic: \"c.{table}\"\n  publication: p\n");
    assert_int_equal(cfg->postgres.mode, RELAY_MODE_POLLING);
    assert_int_equal(cfg->cdc.ntables, 0);
    relay_config_free(cfg);
    cfg = expect_ok(POLLING "cdc:\n  tables:\n");
    assert_int_equal(cfg->cdc.ntables, 0);
    relay_config_free(cfg);

    /* Replication mode, written out, takes cdc tables as before. */
    cfg = expect_ok("postgres:\n  dsn: a\n  mode: replication\nsink: stdout\n"
                    "cdc:\n  tables: [orders]\n");
    assert_int_equal(cfg->cdc.ntables, 1);
    relay_config_free(cfg);
}

/*
 * Environment expansion
 */

static void test_env_expansion(void **state)
{
    struct relay_config *cfg;

    (void)state;
    setenv("RELAY_T_DSN", "host=db password=s3cr$t", 1);
    setenv("RELAY_T_EMPTY", "", 1);
    setenv("RELAY_T_MS", "250ms", 1);
    setenv("RELAY_T_N", "7", 1);
    unsetenv("RELAY_T_UNSET");

    cfg = expect_ok("postgres:\n"
                    "  dsn: \"${RELAY_T_DSN}\"\n"
                    "  slot: ${RELAY_T_UNSET:-from_default}\n"
                    "  publication: ${RELAY_T_EMPTY:-pub}\n"
                    "  status_interval: ${RELAY_T_MS}\n"
                    "  retry_interval: 1${RELAY_T_UNSET:-5}s\n"
                    "kafka:\n"
                    "  brokers: \"a:1,${RELAY_T_UNSET:-b:2}\"\n"
                    "  topic: \"cost.$$5.$x.a$\"\n"
                    "  max_inflight_events: ${RELAY_T_N}${RELAY_T_N}\n"
                    "  properties:\n"
                    "    client.id: pre-${RELAY_T_EMPTY}-post\n"
                    "    sasl.password: \"$${RELAY_T_DSN}\"\n"
                    "    ${RELAY_T_N}: $\n");
    assert_string_equal(cfg->postgres.dsn, "host=db password=s3cr$t"); /* no re-expansion */
    assert_string_equal(cfg->postgres.slot, "from_default");
    assert_string_equal(cfg->postgres.publication, "pub");
    assert_int_equal(cfg->postgres.status_interval_ms, 250);
    assert_int_equal(cfg->postgres.retry_interval_ms, 15000);
    assert_string_equal(KAFKA(cfg)->brokers, "a:1,b:2");
    assert_string_equal(KAFKA(cfg)->common.destination, "cost.$5.$x.a$");
    assert_int_equal(cfg->pipeline.max_inflight_events, 77);
    assert_int_equal(KAFKA(cfg)->nproperties, 3);
    assert_string_equal(KAFKA(cfg)->properties[0].value, "pre--post");
    assert_string_equal(KAFKA(cfg)->properties[1].value, "${RELAY_T_DSN}");
    /* Keys are not expanded. */
    assert_string_equal(KAFKA(cfg)->properties[2].key, "${RELAY_T_N}");
    assert_string_equal(KAFKA(cfg)->properties[2].value, "$");
    relay_config_free(cfg);

    /* An empty default is allowed. */
    cfg = expect_ok(REQUIRED "  properties:\n    x: \"${RELAY_T_UNSET:-}\"\n");
    assert_string_equal(KAFKA(cfg)->properties[0].value, "");
    relay_config_free(cfg);

    unsetenv("RELAY_T_DSN");
    unsetenv("RELAY_T_EMPTY");
    unsetenv("RELAY_T_MS");
    unsetenv("RELAY_T_N");
}

static void test_env_errors(void **state)
{
    (void)state;
    unsetenv("PGDSN");
    unsetenv("RELAY_T_UNSET");
    setenv("RELAY_T_BAD", "lots", 1);

    /* Errors point at the '$' when the scalar is written plainly, else at the scalar. */
    expect_error("postgres:\n  dsn: \"${PGDSN}\"\n",
                 "config.yaml:2:9: environment variable \"PGDSN\" is not set");
    expect_error("postgres:\n  dsn: ${PGDSN}\n",
                 "config.yaml:2:8: environment variable \"PGDSN\" is not set");
    expect_error("postgres:\n  dsn: host=x ${PGDSN}\n",
                 "config.yaml:2:15: environment variable \"PGDSN\" is not set");
    expect_error("postgres:\n  dsn: 'é ${PGDSN}'\n",
                 "config.yaml:2:11: environment variable \"PGDSN\" is not set");
    expect_error("postgres:\n  dsn: \"\\t${PGDSN}\"\n",
                 "config.yaml:2:8: environment variable \"PGDSN\" is not set");
    expect_error("postgres:\n  dsn: >\n    a\n    ${PGDSN}\n",
                 "config.yaml:2:8: environment variable \"PGDSN\" is not set");
    expect_error("postgres:\n  dsn: \"${PGDSN:-x}${RELAY_T_UNSET}\"\n",
                 "config.yaml:2:20: environment variable \"RELAY_T_UNSET\" is not set");
    expect_error(REQUIRED "  properties:\n    x: ${RELAY_T_UNSET}\n",
                 "config.yaml:6:8: environment variable \"RELAY_T_UNSET\" is not set");

    expect_error("postgres:\n  dsn: \"a ${PGDSN\"\n", "config.yaml:2:11: unterminated \"${\"");
    expect_error("postgres:\n  dsn: \"${}\"\n",
                 "config.yaml:2:9: bad environment reference \"${}\": use ${NAME} or "
                 "${NAME:-default}");
    expect_error("postgres:\n  dsn: \"${1X}\"\n",
                 "config.yaml:2:9: bad environment reference \"${1X}\": use ${NAME} or "
                 "${NAME:-default}");
    expect_error("postgres:\n  dsn: \"${PGDSN-x}\"\n",
                 "config.yaml:2:9: bad environment reference \"${PGDSN-x}\": use ${NAME} or "
                 "${NAME:-default}");

    /* Expansion comes before conversion, and the message shows the expanded value. */
    expect_error(
        REQUIRED "  max_inflight_events: ${RELAY_T_BAD}\n",
        "config.yaml:5:24: \"kafka.max_inflight_events\" must be an integer, got \"lots\"");
    expect_error(REQUIRED "  shutdown_timeout: ${RELAY_T_UNSET:-soon}\n",
                 "config.yaml:5:21: bad duration \"soon\" for \"kafka.shutdown_timeout\": "
                 "use a number with ms, s, m or h");
    unsetenv("RELAY_T_BAD");
}

static void test_env_file(void **state)
{
    struct relay_config *cfg;
    char err[512];

    (void)state;
    unsetenv("RELAY_TEST_INTERVAL");
    unsetenv("RELAY_TEST_BROKERS");
    unsetenv("RELAY_TEST_DSN");
    setenv("RELAY_TEST_SECRET", "hunter2", 1);

    cfg = relay_config_load(FIXTURES_DIR "/config/env.yaml", err, sizeof(err));
    assert_null(cfg);
    assert_string_equal(err, FIXTURES_DIR "/config/env.yaml:3:9: environment variable "
                                          "\"RELAY_TEST_DSN\" is not set");

    setenv("RELAY_TEST_DSN", "dbname=env", 1);
    cfg = relay_config_load(FIXTURES_DIR "/config/env.yaml", err, sizeof(err));
    if (cfg == NULL)
        fail_msg("%s", err);
    assert_string_equal(cfg->postgres.dsn, "dbname=env");
    assert_int_equal(cfg->postgres.status_interval_ms, 2000);
    assert_string_equal(KAFKA(cfg)->brokers, "localhost:9092");
    assert_int_equal(KAFKA(cfg)->nproperties, 2);
    assert_string_equal(KAFKA(cfg)->properties[0].key, "sasl.password");
    assert_string_equal(KAFKA(cfg)->properties[0].value, "hunter2");
    assert_string_equal(KAFKA(cfg)->properties[1].value, "relay-$1");
    relay_config_free(cfg);

    unsetenv("RELAY_TEST_DSN");
    unsetenv("RELAY_TEST_SECRET");
}

/*
 * relay_parse_duration()
 */

static void test_parse_duration(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"250ms", 250},
        {"10s", 10000},
        {"5m", 300000},
        {"1h", 3600000},
        {"1m30s", 90000},
        {"1h2m3s4ms", 3723004},
        {"0s", 0},
        {"0ms", 0},
        {"007s", 7000},
        {"9223372036854775807ms", INT64_MAX},
        {"2562047788015h", INT64_C(2562047788015) * 3600000},
    };
    static const char *const bad[] = {
        "10",
        "-1s",
        "1x",
        "",
        "s",
        "ms",
        "1.5s",
        "1 s",
        " 1s",
        "1s ",
        "1S",
        "+1s",
        "1sm",
        "1m30",
        "9223372036854775808ms",
        "9223372036854775807s",
        "2562047788016h",
        "9223372036854775807ms1ms",
        "99999999999999999999999s",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ms = -1;

        if (relay_parse_duration(ok[i].s, &ms) != 0)
            fail_msg("\"%s\" rejected", ok[i].s);
        assert_int_equal(ms, ok[i].ms);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 12345;

        if (relay_parse_duration(bad[i], &ms) != -EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(ms, 12345); /* untouched on error */
    }
}

/*
 * Files and buffers
 */

static void test_load_errors(void **state)
{
    char err[512];

    (void)state;
    assert_null(relay_config_load(FIXTURES_DIR "/config/no-such-file.yaml", err, sizeof(err)));
    assert_string_equal(err, FIXTURES_DIR "/config/no-such-file.yaml: cannot open: "
                                          "No such file or directory");

    assert_null(relay_config_load(FIXTURES_DIR "/config", err, sizeof(err)));
    assert_string_equal(err, FIXTURES_DIR "/config: cannot read: Is a directory");

    assert_null(relay_config_load(FIXTURES_DIR "/config/bad_duration.yaml", err, sizeof(err)));
    assert_string_equal(err, FIXTURES_DIR "/config/bad_duration.yaml:4:20: bad duration "
                                          "\"10 parsecs\" for \"postgres.status_interval\": use a "
                                          "number with ms, s, m or h");
}

static void test_buffers(void **state)
{
    char small[16];
    struct relay_config *cfg;

    (void)state;
    relay_config_free(NULL);

    /* The text need not be NUL-terminated: only len bytes are read. */
    cfg = relay_config_parse(REQUIRED "log: {level: error}\nGARBAGE: [",
                             strlen(REQUIRED "log: {level: error}\n"), "mem", small, sizeof(small));
    assert_non_null(cfg);
    assert_int_equal(cfg->log.level, RELAY_LOG_ERROR);
    assert_string_equal(cfg->path, "mem");
    relay_config_free(cfg);

    /* A short error buffer gets a truncated, terminated message. */
    assert_null(relay_config_parse("x: 1\n", 5, "config.yaml", small, sizeof(small)));
    assert_string_equal(small, "config.yaml:1:1");
    /* No buffer at all is allowed. */
    assert_null(relay_config_parse("x: 1\n", 5, "config.yaml", NULL, 0));

    /* Long and multi-line values are clipped and escaped in messages. */
    expect_error("postgres:\n  dsn: a\n  slot: \"line\\none\\t\\\"q\\\"\"\n",
                 "config.yaml:3:9: bad slot name \"line\\none\\t\\\"q\\\"\" for \"postgres.slot\": "
                 "use 1 to 63 lowercase letters, digits and underscores");
    expect_error(
        REQUIRED "log:\n  level: "
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        "config.yaml:6:10: \"log.level\" must be one of debug, info, warn, error, got "
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaa...\"");
}

static void test_dlq_topic(void **state)
{
    char err[512];
    const char *good = "postgres:\n  dsn: x\nkafka:\n  brokers: b\n  dlq_topic: outbox.dlq\n";
    const char *bad = "postgres:\n  dsn: x\nkafka:\n  brokers: b\n  dlq_topic: \"dlq/{x}\"\n";
    struct relay_config *cfg;

    (void)state;
    cfg = relay_config_parse(good, strlen(good), "c.yaml", err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(KAFKA(cfg)->common.dead_letter, "outbox.dlq");
    relay_config_free(cfg);
    cfg = relay_config_parse(bad, strlen(bad), "c.yaml", err, sizeof(err));
    assert_null(cfg);
    assert_string_equal(err,
                        "c.yaml:5:14: bad topic name \"dlq/{x}\" for \"kafka.dlq_topic\": use 1 "
                        "to 249 letters, digits, '.', '_' and '-'");
}

/*
 * log.format, admin.listen
 */

static void test_log_format_and_admin(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok(REQUIRED "log:\n  format: json\nadmin:\n  listen: \"[::1]:9000\"\n");
    assert_int_equal(cfg->log.format, RELAY_LOG_FORMAT_JSON);
    assert_string_equal(cfg->admin.listen, "[::1]:9000");
    relay_config_free(cfg);
    cfg = expect_ok(REQUIRED "admin:\n  listen: \"\"\n");
    assert_string_equal(cfg->admin.listen, "");
    assert_int_equal(cfg->log.format, RELAY_LOG_FORMAT_TEXT);
    relay_config_free(cfg);
    cfg = expect_ok(REQUIRED "admin:\n  listen: 0.0.0.0:0\n");
    assert_string_equal(cfg->admin.listen, "0.0.0.0:0");
    relay_config_free(cfg);

    expect_error(REQUIRED "log:\n  format: yaml\n",
                 "config.yaml:6:11: \"log.format\" must be one of text, json, got \"yaml\"");
    expect_error(REQUIRED "admin:\n  listen: 9187\n",
                 "config.yaml:6:11: bad listen address \"9187\" for \"admin.listen\": use "
                 "host:port, [ipv6]:port with a port from 0 to 65535, or \"\" to disable");
    expect_error(REQUIRED "admin:\n  listen: \"localhost:65536\"\n",
                 "config.yaml:6:11: bad listen address \"localhost:65536\" for \"admin.listen\": "
                 "use host:port, [ipv6]:port with a port from 0 to 65535, or \"\" to disable");
    expect_error(REQUIRED "admin:\n  listen: \"::1:9187\"\n",
                 "config.yaml:6:11: bad listen address \"::1:9187\" for \"admin.listen\": use "
                 "host:port, [ipv6]:port with a port from 0 to 65535, or \"\" to disable");
}

static void test_parse_listen(void **state)
{
    static const struct {
        const char *s;
        const char *host;
        int port;
    } good[] = {
        {"127.0.0.1:9187", "127.0.0.1", 9187},
        {"localhost:80", "localhost", 80},
        {"0.0.0.0:0", "0.0.0.0", 0},
        {"[::1]:9187", "::1", 9187},
        {"[::]:65535", "::", 65535},
        {"my-host.example_1:1", "my-host.example_1", 1},
        {"[::ffff:127.0.0.1]:8", "::ffff:127.0.0.1", 8},
        {":9187", "", 9187},
    };
    static const char *const bad[] = {
        "",         ":",       "host",      "host:", "host:x",    "host:65536",  "host:123456",
        "::1:9187", "[::1]",   "[::1]9187", "[]:1",  "[zz::1]:1", "[1.2.3.4]:5", "ho st:1",
        "host:-1",  "host:+1", "h:1:2",
    };
    char host[64];
    int port;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (relay_parse_listen(good[i].s, host, sizeof(host), &port) != 0)
            fail_msg("\"%s\" rejected", good[i].s);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (relay_parse_listen(bad[i], host, sizeof(host), &port) != -EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);
    }
    /* A host that does not fit the buffer. */
    assert_int_equal(relay_parse_listen("abcdefgh:1", host, 8, &port), -EINVAL);
    assert_int_equal(relay_parse_listen("abcdefg:1", host, 8, &port), 0);
}

/*
 * Configuration from the environment (relay_config_parse_env())
 */

/* Parse text (NULL: no file) with the environment envp; must succeed. */
static struct relay_config *env_ok(const char *text, char *const *envp)
{
    struct relay_config *cfg = relay_config_parse_env(
        text, text ? strlen(text) : 0, text ? "config.yaml" : NULL, envp, errbuf, sizeof(errbuf));

    if (cfg == NULL)
        fail_msg("unexpected error: %s", errbuf);
    return cfg;
}

static void env_error(const char *text, char *const *envp, const char *expected)
{
    struct relay_config *cfg = relay_config_parse_env(
        text, text ? strlen(text) : 0, text ? "config.yaml" : NULL, envp, errbuf, sizeof(errbuf));

    if (cfg != NULL) {
        relay_config_free(cfg);
        fail_msg("parsed, expected error: %s", expected);
    }
    assert_string_equal(errbuf, expected);
}

static void test_env_names(void **state)
{
    char buf[128];

    (void)state;
    assert_string_equal(relay_config_env_name("postgres", "dsn", buf, sizeof(buf)),
                        "OUTBOX_RELAY_POSTGRES_DSN");
    assert_string_equal(relay_config_env_name("kafka", "max_inflight_events", buf, sizeof(buf)),
                        "OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS");
    assert_string_equal(relay_config_env_name(NULL, "sink", buf, sizeof(buf)), "OUTBOX_RELAY_SINK");
    assert_string_equal(relay_config_env_name("log", "format", buf, 10), "OUTBOX_RE");

    assert_false(relay_config_env_present(NULL));
    assert_false(relay_config_env_present(
        (char *[]){"HOME=/root", "OUTBOX_RELAY_CONFIG=x", "OUTBOX_RELAY_VERSION=1", NULL}));
    assert_true(relay_config_env_present((char *[]){"OUTBOX_RELAY_LOG_LEVEL=debug", NULL}));
    assert_true(relay_config_env_present((char *[]){"OUTBOX_RELAY_POSTGRES_DSN_FILE=/x", NULL}));
    assert_true(
        relay_config_env_present((char *[]){"OUTBOX_RELAY_KAFKA_PROPERTIES_LINGER_MS=1", NULL}));
}

static void test_env_overrides(void **state)
{
    char *envp[] = {
        "HOME=/root",
        "OUTBOX_RELAY_POSTGRES_DSN=host=env dbname=app",
        "OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS=500",
        "OUTBOX_RELAY_POSTGRES_STATUS_INTERVAL=2s",
        "OUTBOX_RELAY_OUTBOX_TABLE=App.Events",
        "OUTBOX_RELAY_LOG_FORMAT=json",
        "OUTBOX_RELAY_LOG_LEVEL=debug",
        "OUTBOX_RELAY_ADMIN_LISTEN=",
        "OUTBOX_RELAY_KAFKA_TOPIC=t.{aggregatetype}",
        /* Not ours, or not a key: ignored. */
        "OUTBOX_RELAY_CONFIG=/etc/x.yaml",
        "OUTBOX_RELAY_VERSION=1.2",
        "OUTBOX_RELAYX=1",
        NULL,
    };
    struct relay_config *cfg;

    (void)state;
    /* The file's values of overridden keys are not even expanded: ${UNSET} is no error. */
    cfg = env_ok("postgres:\n"
                 "  dsn: \"${RELAY_TEST_SURELY_UNSET}\"\n"
                 "  slot: from_file\n"
                 "kafka:\n"
                 "  brokers: localhost:9092\n"
                 "  max_inflight_events: lots\n"
                 "log:\n"
                 "  level: warn\n",
                 envp);
    assert_string_equal(cfg->postgres.dsn, "host=env dbname=app");
    assert_string_equal(cfg->postgres.slot, "from_file");
    assert_int_equal(cfg->pipeline.max_inflight_events, 500);
    assert_int_equal(cfg->postgres.status_interval_ms, 2000);
    assert_string_equal(cfg->outbox.schema, "app");
    assert_string_equal(cfg->outbox.table, "events");
    assert_int_equal(cfg->log.format, RELAY_LOG_FORMAT_JSON);
    assert_int_equal(cfg->log.level, RELAY_LOG_DEBUG);
    assert_string_equal(cfg->admin.listen, "");
    assert_string_equal(KAFKA(cfg)->common.destination, "t.{aggregatetype}");
    assert_string_equal(KAFKA(cfg)->brokers, "localhost:9092");
    assert_string_equal(cfg->path, "config.yaml");
    relay_config_free(cfg);

    /* Values from the environment are not expanded. */
    cfg = env_ok(REQUIRED, (char *[]){"OUTBOX_RELAY_OUTBOX_SOURCE=${HOME}/$$", NULL});
    assert_string_equal(cfg->outbox.source, "${HOME}/$$");
    relay_config_free(cfg);

    /* No environment at all: relay_config_parse(). */
    cfg = env_ok(REQUIRED, NULL);
    assert_string_equal(cfg->postgres.dsn, "dbname=app");
    relay_config_free(cfg);
}

static void test_env_override_errors(void **state)
{
    (void)state;
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS=lots", NULL},
              "environment variable OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS: "
              "\"kafka.max_inflight_events\" must be an integer, got \"lots\"");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS=0", NULL},
              "environment variable OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS: "
              "\"kafka.max_inflight_events\" must be between 1 and 10000000, got \"0\"");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_POSTGRES_RETRY_INTERVAL=5", NULL},
              "environment variable OUTBOX_RELAY_POSTGRES_RETRY_INTERVAL: bad duration \"5\" "
              "for \"postgres.retry_interval\": use a number with ms, s, m or h");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_LOG_FORMAT=xml", NULL},
              "environment variable OUTBOX_RELAY_LOG_FORMAT: \"log.format\" must be one of "
              "text, json, got \"xml\"");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_POSTGRES_DSN=", NULL},
              "environment variable OUTBOX_RELAY_POSTGRES_DSN: \"postgres.dsn\" must not be "
              "empty");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_ADMIN_LISTEN=nowhere", NULL},
              "environment variable OUTBOX_RELAY_ADMIN_LISTEN: bad listen address \"nowhere\" "
              "for \"admin.listen\": use host:port, [ipv6]:port with a port from 0 to 65535, "
              "or \"\" to disable");
    /* A typo in a known section is refused; so is a mapping in one variable. */
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_POSTGRES_DNS=x", NULL},
              "environment variable OUTBOX_RELAY_POSTGRES_DNS: no such configuration key (see "
              "docs/configuration.md for the variables)");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_LOG_LEVEL_FILE_X=x", NULL},
              "environment variable OUTBOX_RELAY_LOG_LEVEL_FILE_X: no such configuration key "
              "(see docs/configuration.md for the variables)");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_KAFKA_PROPERTIES=a", NULL},
              "environment variable OUTBOX_RELAY_KAFKA_PROPERTIES: a mapping cannot be set from "
              "one variable: set each property with OUTBOX_RELAY_KAFKA_PROPERTIES_<NAME>");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_KAFKA_PROPERTIES_=a", NULL},
              "environment variable OUTBOX_RELAY_KAFKA_PROPERTIES_: bad kafka property "
              "variable: use OUTBOX_RELAY_KAFKA_PROPERTIES_<NAME>, NAME being the property "
              "with '.' written as '_', such as OUTBOX_RELAY_KAFKA_PROPERTIES_SASL_PASSWORD");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_KAFKA_PROPERTIES_A__B=a", NULL},
              "environment variable OUTBOX_RELAY_KAFKA_PROPERTIES_A__B: bad kafka property "
              "variable: use OUTBOX_RELAY_KAFKA_PROPERTIES_<NAME>, NAME being the property "
              "with '.' written as '_', such as OUTBOX_RELAY_KAFKA_PROPERTIES_SASL_PASSWORD");
    env_error(REQUIRED,
              (char *[]){"OUTBOX_RELAY_KAFKA_PROPERTIES_SASL_PASSWORD=a",
                         "OUTBOX_RELAY_KAFKA_PROPERTIES_sasl_password=b", NULL},
              "environment variable OUTBOX_RELAY_KAFKA_PROPERTIES_sasl_password: another "
              "variable sets kafka property \"sasl.password\" too");
    /* Both NAME and NAME_FILE. */
    env_error(REQUIRED,
              (char *[]){"OUTBOX_RELAY_POSTGRES_DSN=a", "OUTBOX_RELAY_POSTGRES_DSN_FILE=/x", NULL},
              "environment variable OUTBOX_RELAY_POSTGRES_DSN_FILE: OUTBOX_RELAY_POSTGRES_DSN is "
              "set too: set only one of them");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_POSTGRES_DSN_FILE=/nonexistent/dsn", NULL},
              "environment variable OUTBOX_RELAY_POSTGRES_DSN_FILE: cannot open file "
              "\"/nonexistent/dsn\": No such file or directory");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_POSTGRES_DSN_FILE=", NULL},
              "environment variable OUTBOX_RELAY_POSTGRES_DSN_FILE: the file name is empty");
    env_error(
        REQUIRED, (char *[]){"OUTBOX_RELAY_POSTGRES_DSN_FILE=" FIXTURES_DIR, NULL},
        "environment variable OUTBOX_RELAY_POSTGRES_DSN_FILE: cannot read file \"" FIXTURES_DIR
        "\": Is a directory");
    /* A rule between keys names the variable that brought the value. */
    env_error(POLLING, (char *[]){"OUTBOX_RELAY_CDC_TABLES=orders", NULL},
              "environment variable OUTBOX_RELAY_CDC_TABLES: \"cdc.tables\" needs "
              "\"postgres.mode: replication\"");
    env_error(REQUIRED "cdc:\n  tables: [orders]\n",
              (char *[]){"OUTBOX_RELAY_POSTGRES_MODE=polling", NULL},
              "config.yaml:6:11: \"cdc.tables\" needs \"postgres.mode: replication\"");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_CDC_TABLES=orders,public.outbox", NULL},
              "environment variable OUTBOX_RELAY_CDC_TABLES: \"public.outbox\" in "
              "\"cdc.tables\": outbox table cannot also be a cdc table");
}

/* Write text to a new file in /tmp; returns its path (static buffer per slot). */
static const char *temp_file(int slot, const char *text, size_t len)
{
    static char paths[4][64];
    FILE *f;

    snprintf(paths[slot], sizeof(paths[slot]), "/tmp/test_config_env_%ld_%d", (long)getpid(), slot);
    f = fopen(paths[slot], "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    return paths[slot];
}

static void test_env_files(void **state)
{
    char dsn_var[128], pw_var[128], lvl_var[128], nul_var[128];
    struct relay_config *cfg;

    (void)state;
    /* One trailing newline is dropped, not two, and not other whitespace. */
    snprintf(dsn_var, sizeof(dsn_var), "OUTBOX_RELAY_POSTGRES_DSN_FILE=%s",
             temp_file(0, "host=db password=s3cret\n", 24));
    snprintf(pw_var, sizeof(pw_var), "OUTBOX_RELAY_KAFKA_PROPERTIES_SASL_PASSWORD_FILE=%s",
             temp_file(1, "kafka pw \n\n", 11));
    snprintf(lvl_var, sizeof(lvl_var), "OUTBOX_RELAY_LOG_LEVEL_FILE=%s", temp_file(2, "warn", 4));
    cfg = env_ok("postgres:\n  dsn: \"${RELAY_TEST_SURELY_UNSET}\"\nkafka:\n  brokers: b:1\n",
                 (char *[]){dsn_var, pw_var, lvl_var, NULL});
    assert_string_equal(cfg->postgres.dsn, "host=db password=s3cret");
    assert_int_equal(cfg->log.level, RELAY_LOG_WARN);
    relay_config_free(cfg);

    /* The same through properties: the file's entry is replaced, others kept. */
    cfg = env_ok(
        "postgres:\n  dsn: x\nkafka:\n  brokers: b:1\n  properties:\n"
        "    sasl.password: \"${RELAY_TEST_SURELY_UNSET}\"\n    linger.ms: 7\n",
        (char *[]){pw_var, "OUTBOX_RELAY_KAFKA_PROPERTIES_SECURITY_PROTOCOL=sasl_ssl", NULL});
    assert_int_equal(KAFKA(cfg)->nproperties, 3);
    assert_string_equal(KAFKA(cfg)->properties[0].key, "linger.ms");
    assert_string_equal(KAFKA(cfg)->properties[0].value, "7");
    assert_string_equal(KAFKA(cfg)->properties[1].key, "sasl.password");
    assert_string_equal(KAFKA(cfg)->properties[1].value, "kafka pw \n");
    assert_string_equal(KAFKA(cfg)->properties[2].key, "security.protocol");
    assert_string_equal(KAFKA(cfg)->properties[2].value, "sasl_ssl");
    relay_config_free(cfg);

    /* A NUL byte in the file is an error, not a silently shorter value. */
    snprintf(nul_var, sizeof(nul_var), "OUTBOX_RELAY_POSTGRES_DSN_FILE=%s",
             temp_file(3, "a\0b", 3));
    {
        char expected[256];

        snprintf(expected, sizeof(expected),
                 "environment variable OUTBOX_RELAY_POSTGRES_DSN_FILE: file \"%s\" contains a "
                 "NUL byte",
                 nul_var + strlen("OUTBOX_RELAY_POSTGRES_DSN_FILE="));
        env_error(REQUIRED, (char *[]){nul_var, NULL}, expected);
    }
    for (int i = 0; i < 4; i++) {
        char path[64];

        snprintf(path, sizeof(path), "/tmp/test_config_env_%ld_%d", (long)getpid(), i);
        unlink(path);
    }
}

static void test_env_lists(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = env_ok(REQUIRED "outbox:\n  header_columns: [a, b, c]\n",
                 (char *[]){"OUTBOX_RELAY_OUTBOX_HEADER_COLUMNS= tenant_id ,trace_id", NULL});
    assert_int_equal(cfg->outbox.nheader_columns, 2);
    assert_string_equal(cfg->outbox.header_columns[0], "tenant_id");
    assert_string_equal(cfg->outbox.header_columns[1], "trace_id");
    relay_config_free(cfg);

    /* An empty value is an empty list, overriding the file's. */
    cfg = env_ok(REQUIRED "outbox:\n  header_columns: [a, b, c]\n",
                 (char *[]){"OUTBOX_RELAY_OUTBOX_HEADER_COLUMNS=", NULL});
    assert_int_equal(cfg->outbox.nheader_columns, 0);
    relay_config_free(cfg);

    /* A comma inside double quotes does not separate. */
    cfg = env_ok(REQUIRED,
                 (char *[]){"OUTBOX_RELAY_CDC_TABLES=orders, \"Sales\".\"a,b\" ,x.y", NULL});
    assert_int_equal(cfg->cdc.ntables, 3);
    assert_string_equal(cfg->cdc.tables[0].schema, "public");
    assert_string_equal(cfg->cdc.tables[0].table, "orders");
    assert_string_equal(cfg->cdc.tables[1].schema, "Sales");
    assert_string_equal(cfg->cdc.tables[1].table, "a,b");
    assert_string_equal(cfg->cdc.tables[2].schema, "x");
    relay_config_free(cfg);

    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_OUTBOX_HEADER_COLUMNS=a,,b", NULL},
              "environment variable OUTBOX_RELAY_OUTBOX_HEADER_COLUMNS: entry 2 of "
              "\"outbox.header_columns\" is empty");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_OUTBOX_HEADER_COLUMNS=a,", NULL},
              "environment variable OUTBOX_RELAY_OUTBOX_HEADER_COLUMNS: entry 2 of "
              "\"outbox.header_columns\" is empty");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_OUTBOX_HEADER_COLUMNS=a,A-B", NULL},
              "environment variable OUTBOX_RELAY_OUTBOX_HEADER_COLUMNS: bad column name \"A-B\" "
              "for \"outbox.header_columns\": use 1 to 63 lowercase letters, digits and "
              "underscores, not starting with a digit");
    env_error(REQUIRED, (char *[]){"OUTBOX_RELAY_CDC_TABLES=a,public.a", NULL},
              "environment variable OUTBOX_RELAY_CDC_TABLES: duplicate entry \"public.a\" in "
              "\"cdc.tables\"");
}

static void test_env_sink(void **state)
{
    struct relay_config *cfg;

    (void)state;
    /* The environment's sink wins over a stdout section, and over "sink: kafka". */
    cfg = env_ok(REQUIRED "stdout:\n  format: debezium\n",
                 (char *[]){"OUTBOX_RELAY_SINK=kafka", NULL});
    assert_string_equal(relay_config_sink_name(cfg), "kafka");
    assert_int_equal(STDOUT_FORMAT(cfg), RELAY_FORMAT_DEBEZIUM);
    relay_config_free(cfg);
    cfg =
        env_ok("postgres:\n  dsn: x\nsink: kafka\n", (char *[]){"OUTBOX_RELAY_SINK=stdout", NULL});
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    relay_config_free(cfg);
    /* Without a file, the stdout sink needs no brokers. */
    cfg = env_ok(NULL, (char *[]){"OUTBOX_RELAY_POSTGRES_DSN=dbname=x", "OUTBOX_RELAY_SINK=stdout",
                                  "OUTBOX_RELAY_STDOUT_FORMAT=debezium", NULL});
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    assert_int_equal(STDOUT_FORMAT(cfg), RELAY_FORMAT_DEBEZIUM);
    relay_config_free(cfg);
}

static void test_env_only(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = env_ok(NULL, (char *[]){"OUTBOX_RELAY_POSTGRES_DSN=host=h dbname=d",
                                  "OUTBOX_RELAY_KAFKA_BROKERS=k:9092",
                                  "OUTBOX_RELAY_KAFKA_PROPERTIES_COMPRESSION_TYPE=lz4", NULL});
    assert_string_equal(cfg->path, "environment");
    assert_string_equal(cfg->postgres.dsn, "host=h dbname=d");
    assert_string_equal(KAFKA(cfg)->brokers, "k:9092");
    assert_int_equal(KAFKA(cfg)->nproperties, 1);
    assert_string_equal(KAFKA(cfg)->properties[0].key, "compression.type");
    assert_string_equal(KAFKA(cfg)->properties[0].value, "lz4");
    /* Every default as with a file. */
    assert_string_equal(cfg->postgres.slot, "outbox_relay");
    assert_string_equal(cfg->admin.listen, "127.0.0.1:9187");
    assert_feature_defaults(cfg);
    relay_config_free(cfg);

    env_error(NULL, (char *[]){"OUTBOX_RELAY_KAFKA_BROKERS=k:9092", NULL},
              "environment: missing required key \"postgres.dsn\": set OUTBOX_RELAY_POSTGRES_DSN "
              "(or OUTBOX_RELAY_POSTGRES_DSN_FILE), or give a configuration file");
    env_error(NULL, (char *[]){"OUTBOX_RELAY_POSTGRES_DSN=x", NULL},
              "environment: missing required key \"kafka.brokers\": set "
              "OUTBOX_RELAY_KAFKA_BROKERS (or OUTBOX_RELAY_KAFKA_BROKERS_FILE), or give a "
              "configuration file");
}

/* What main() does: setenv() and the process environment, over a file. */
static void test_env_process(void **state)
{
    extern char **environ;
    struct relay_config *cfg;
    char err[512];

    (void)state;
    setenv("OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS", "1234", 1);
    setenv("OUTBOX_RELAY_KAFKA_PROPERTIES_COMPRESSION_TYPE", "zstd", 1);
    cfg = relay_config_load_env(CONFIG_DIR "/outbox-relay.yaml", environ, err, sizeof(err));
    if (cfg == NULL)
        fail_msg("%s", err);
    assert_int_equal(cfg->pipeline.max_inflight_events, 1234);
    assert_int_equal(KAFKA(cfg)->nproperties, 1);
    assert_string_equal(KAFKA(cfg)->properties[0].value, "zstd");
    relay_config_free(cfg);

    setenv("OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS", "many", 1);
    assert_null(relay_config_load_env(CONFIG_DIR "/outbox-relay.yaml", environ, err, sizeof(err)));
    assert_string_equal(err, "environment variable OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS: "
                             "\"kafka.max_inflight_events\" must be an integer, got \"many\"");
    /* relay_config_load() ignores the environment. */
    cfg = relay_config_load(CONFIG_DIR "/outbox-relay.yaml", err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->pipeline.max_inflight_events, 100000);
    relay_config_free(cfg);
    unsetenv("OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS");
    unsetenv("OUTBOX_RELAY_KAFKA_PROPERTIES_COMPRESSION_TYPE");
}


/*
 * pipeline.*, their kafka.* aliases, dead_letter.table, pipeline.on_bad_event
 */

static void test_pipeline_keys(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok(REQUIRED);
    assert_int_equal(cfg->pipeline.max_inflight_events, 100000);
    assert_int_equal(cfg->pipeline.max_inflight_bytes, 67108864);
    assert_int_equal(cfg->pipeline.shutdown_timeout_ms, 5000);
    /* No dead-letter destination: a poison event stops the relay, as it always did. */
    assert_int_equal(cfg->pipeline.on_bad_event, RELAY_BAD_EVENT_STOP);
    assert_null(cfg->dead_letter.table);
    relay_config_free(cfg);

    cfg = expect_ok(REQUIRED "pipeline:\n  max_inflight_events: 500\n"
                             "  max_inflight_bytes: 2097152\n  shutdown_timeout: 250ms\n");
    assert_int_equal(cfg->pipeline.max_inflight_events, 500);
    assert_int_equal(cfg->pipeline.max_inflight_bytes, 2097152);
    assert_int_equal(cfg->pipeline.shutdown_timeout_ms, 250);
    relay_config_free(cfg);
    expect_error(REQUIRED "pipeline:\n  max_inflight_events: 0\n",
                 "config.yaml:6:24: \"pipeline.max_inflight_events\" must be between 1 and "
                 "10000000, got \"0\"");
    expect_error(REQUIRED "pipeline:\n  flush: 1\n",
                 "config.yaml:6:3: unknown key \"flush\" in \"pipeline\"");
}

/* The keys the pipeline section took over keep working in "kafka" (old files). */
static void test_pipeline_aliases(void **state)
{
    struct relay_config *cfg;

    (void)state;
    cfg = expect_ok(REQUIRED "  max_inflight_events: 700\n  max_inflight_bytes: 3145728\n"
                             "  shutdown_timeout: 2s\n");
    assert_int_equal(cfg->pipeline.max_inflight_events, 700);
    assert_int_equal(cfg->pipeline.max_inflight_bytes, 3145728);
    assert_int_equal(cfg->pipeline.shutdown_timeout_ms, 2000);
    relay_config_free(cfg);
    /* The alias is checked as the key is. */
    expect_error(REQUIRED "  max_inflight_bytes: 10\n",
                 "config.yaml:5:23: \"kafka.max_inflight_bytes\" must be between 1048576 and "
                 "17179869184, got \"10\"");
    /* Both: the file says one thing twice; both places are named. */
    expect_error("pipeline:\n  max_inflight_events: 5\n" REQUIRED "  max_inflight_events: 6\n",
                 "config.yaml:7:24: \"kafka.max_inflight_events\" is the old name of "
                 "\"pipeline.max_inflight_events\", which is set too (line 2): keep one");
}

static void test_pipeline_aliases_env(void **state)
{
    struct relay_config *cfg;
    char err[512];
    char *const alias[] = {"OUTBOX_RELAY_KAFKA_SHUTDOWN_TIMEOUT=3s", NULL};
    char *const both[] = {"OUTBOX_RELAY_KAFKA_SHUTDOWN_TIMEOUT=3s",
                          "OUTBOX_RELAY_PIPELINE_SHUTDOWN_TIMEOUT=4s", NULL};

    (void)state;
    cfg = relay_config_parse_env(REQUIRED, strlen(REQUIRED), "c.yaml", alias, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->pipeline.shutdown_timeout_ms, 3000);
    relay_config_free(cfg);
    cfg = relay_config_parse_env(REQUIRED, strlen(REQUIRED), "c.yaml", both, err, sizeof(err));
    assert_null(cfg);
    assert_non_null(strstr(err, "OUTBOX_RELAY_KAFKA_SHUTDOWN_TIMEOUT"));
    assert_non_null(strstr(err, "is the old name of \"pipeline.shutdown_timeout\""));
}

static void test_dead_letter_and_policy(void **state)
{
    struct relay_config *cfg;

    (void)state;
    /* A dead-letter destination makes dead-letter the default... */
    cfg = expect_ok(REQUIRED "dead_letter:\n  table: ops.\"Dead Letters\"\n");
    assert_string_equal(cfg->dead_letter.schema, "ops");
    assert_string_equal(cfg->dead_letter.table, "Dead Letters");
    assert_int_equal(cfg->pipeline.on_bad_event, RELAY_BAD_EVENT_DEAD_LETTER);
    relay_config_free(cfg);
    cfg = expect_ok(REQUIRED "  dlq_topic: outbox.dlq\n");
    assert_int_equal(cfg->pipeline.on_bad_event, RELAY_BAD_EVENT_DEAD_LETTER);
    relay_config_free(cfg);
    cfg = expect_ok(REQUIRED "dead_letter:\n  table: dl\n");
    assert_string_equal(cfg->dead_letter.schema, "public");
    relay_config_free(cfg);
    /* ...which "stop" overrides... */
    cfg = expect_ok(REQUIRED "  dlq_topic: outbox.dlq\npipeline:\n  on_bad_event: stop\n");
    assert_int_equal(cfg->pipeline.on_bad_event, RELAY_BAD_EVENT_STOP);
    relay_config_free(cfg);
    /* ...and without one, "dead-letter" has nowhere to go. */
    expect_error(REQUIRED "pipeline:\n  on_bad_event: dead-letter\n",
                 "config.yaml:6:17: \"pipeline.on_bad_event\" is \"dead-letter\", but no "
                 "dead-letter destination is configured: set \"dead_letter.table\" or the "
                 "kafka sink's dead-letter key");
    expect_error(REQUIRED "pipeline:\n  on_bad_event: skip\n",
                 "config.yaml:6:17: \"pipeline.on_bad_event\" must be one of stop, "
                 "dead-letter, got \"skip\"");
    /* The stdout sink has no dead-letter destination of its own: kafka's does not count. */
    expect_error("postgres:\n  dsn: x\nkafka:\n  dlq_topic: d\nstdout:\n  format: debezium\n"
                 "pipeline:\n  on_bad_event: dead-letter\n",
                 "config.yaml:8:17: \"pipeline.on_bad_event\" is \"dead-letter\", but no "
                 "dead-letter destination is configured: set \"dead_letter.table\" or the "
                 "stdout sink's dead-letter key");
}

/* The redis section: url required when selected, a bad URL refused where it is written. */
static void test_redis_section(void **state)
{
    struct relay_config *cfg;

    (void)state;
    expect_error("postgres:\n  dsn: x\nsink: redis\n",
                 "config.yaml:1:1: missing required key \"redis.url\"");
    expect_error("postgres:\n  dsn: x\nsink: redis\nredis:\n  url: \"http://h:6380\"\n",
                 "config.yaml:5:8: redis.url: must start with redis:// or rediss:// (TLS)");
    expect_error("postgres:\n  dsn: x\nsink: redis\nredis:\n  url: \"redis://h:0\"\n",
                 "config.yaml:5:8: redis.url: bad port");
    expect_error("postgres:\n  dsn: x\nsink: redis\nredis:\n  url: \"redis://h/x\"\n",
                 "config.yaml:5:8: redis.url: bad database number");
    cfg = expect_ok("postgres:\n  dsn: x\nsink: redis\nredis:\n  url: \"redis://:pw@h:7000/2\"\n"
                    "  maxlen: 1000\n");
    assert_string_equal(relay_config_sink_name(cfg), "redis");
    assert_string_equal(relay_config_sink_common(cfg)->destination, "outbox.{aggregatetype}");
    assert_int_equal(relay_config_sink_common(cfg)->format, RELAY_FORMAT_CLOUDEVENTS);
    relay_config_free(cfg);
}

/* The webhook section: url and a Standard Webhooks secret, checked where written. */
static void test_webhook_section(void **state)
{
    struct relay_config *cfg;

    (void)state;
    expect_error("postgres:\n  dsn: x\nsink: webhook\nwebhook:\n  url: \"ftp://h/\"\n"
                 "  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
                 "config.yaml:5:8: webhook.url must start with http:// or https://");
    expect_error("postgres:\n  dsn: x\nsink: webhook\nwebhook:\n  url: \"http://h/\"\n"
                 "  secret: hunter2\n",
                 "config.yaml:6:11: webhook.secret must be \"whsec_\" and the base64 of at "
                 "least 16 bytes (the Standard Webhooks form)");
    expect_error("postgres:\n  dsn: x\nsink: webhook\nwebhook:\n  url: \"http://h/\"\n",
                 "config.yaml:5:3: missing required key \"webhook.secret\"");
    cfg = expect_ok("postgres:\n  dsn: x\nsink: webhook\nwebhook:\n  url: \"https://h/e\"\n"
                    "  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
    assert_string_equal(relay_config_sink_name(cfg), "webhook");
    assert_int_equal(relay_config_sink_common(cfg)->format, RELAY_FORMAT_CLOUDEVENTS_STRUCTURED);
    relay_config_free(cfg);
}

/* A sink's section is the sink's: its keys, its required keys, the "sink" key's values. */
static void test_sink_sections(void **state)
{
    struct relay_config *cfg;

    (void)state;
    expect_error(REQUIRED "  bootstrap: x\n",
                 "config.yaml:5:3: unknown key \"bootstrap\" in \"kafka\"");
    expect_error("postgres:\n  dsn: x\nsink: carrier-pigeon\n",
                 "config.yaml:3:7: \"sink\" must be one of kafka, stdout, redis, webhook, nats, "
                 "rabbitmq, sqs, got \"carrier-pigeon\"");
    /* kafka.brokers is required only when kafka is the sink; its section is checked anyway. */
    cfg = expect_ok("postgres:\n  dsn: x\nsink: stdout\nkafka:\n  topic: t\n");
    assert_string_equal(relay_config_sink_name(cfg), "stdout");
    assert_string_equal(KAFKA(cfg)->common.destination, "t");
    assert_int_equal(relay_config_sink_common(cfg)->format, RELAY_FORMAT_CLOUDEVENTS_STRUCTURED);
    assert_null(relay_config_sink_common(cfg)->destination);
    assert_null(relay_config_sink_settings(cfg, "carrier-pigeon"));
    relay_config_free(cfg);
    expect_error("postgres:\n  dsn: x\nkafka:\n  topic: t\n",
                 "config.yaml:4:3: missing required key \"kafka.brokers\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dlq_topic),
        cmocka_unit_test(test_pipeline_keys),
        cmocka_unit_test(test_pipeline_aliases),
        cmocka_unit_test(test_pipeline_aliases_env),
        cmocka_unit_test(test_dead_letter_and_policy),
        cmocka_unit_test(test_sink_sections),
        cmocka_unit_test(test_redis_section),
        cmocka_unit_test(test_webhook_section),
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_required_only),
        cmocka_unit_test(test_every_key_set),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_empty_sections),
        cmocka_unit_test(test_example_files),
        cmocka_unit_test(test_example_file_is_minimal),
        cmocka_unit_test(test_properties_order),
        cmocka_unit_test(test_properties_errors),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_yaml_syntax),
        cmocka_unit_test(test_anchors_and_documents),
        cmocka_unit_test(test_integer),
        cmocka_unit_test(test_duration_keys),
        cmocka_unit_test(test_slot_and_publication),
        cmocka_unit_test(test_required_not_empty),
        cmocka_unit_test(test_outbox_table),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_outbox_feature_keys_set),
        cmocka_unit_test(test_column_names),
        cmocka_unit_test(test_header_columns),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_sink),
        cmocka_unit_test(test_cdc),
        cmocka_unit_test(test_stdout_cdc_file),
        cmocka_unit_test(test_mode),
        cmocka_unit_test(test_polling_keys_set),
        cmocka_unit_test(test_polling_errors),
        cmocka_unit_test(test_polling_cdc),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_env_file),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_buffers),
        cmocka_unit_test(test_log_format_and_admin),
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_env_names),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_override_errors),
        cmocka_unit_test(test_env_files),
        cmocka_unit_test(test_env_lists),
        cmocka_unit_test(test_env_sink),
        cmocka_unit_test(test_env_only),
        cmocka_unit_test(test_env_process),
    };

    /* The sinks' sections, as the relay registers them (main.c). */
    if (sink_register_config() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}

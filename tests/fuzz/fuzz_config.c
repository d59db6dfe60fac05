/*
 * fuzz_config.c -- libFuzzer target for the configuration parser (relay/config.c).
 *
 * Each input is the text of a configuration file, handed to relay_config_parse() under
 * the name "fuzz.yaml" (the text is not NUL-terminated: libFuzzer gives an exactly
 * sized heap copy, so AddressSanitizer sees any read past its end).  What config.h
 * promises is checked, and a violation abort()s so that libFuzzer saves the input:
 *
 *   - on failure the message is one non-empty line, "fuzz.yaml:LINE:COLUMN: message"
 *     with 1-based numbers no larger than the input could hold, or "fuzz.yaml: message";
 *   - on success the relay "can trust every field": required strings are set, names
 *     follow their rules (slot, columns, channel, publications), numbers are within
 *     their ranges, enums hold one of their values, lists have no duplicates, cdc tables
 *     exclude the outbox table and need replication mode -- then relay_config_free();
 *   - a second parse of the same text with an error buffer of 12 bytes gives the same
 *     outcome, a prefix of the same message, NUL-terminated, and writes nothing past
 *     the buffer.
 *
 * A few environment variables are set for inputs to reference with "${NAME}" (the
 * seeds use them): a DSN, brokers, a duration, an integer, an empty one (for
 * "${NAME:-default}"), one with a newline and one longer than messages quote.
 *
 * With RELAY_FUZZ_EXPECT=ok (or =error) in the environment every input must also parse
 * (or fail to): the seed check in tests/fuzz/run_fuzz.cmake runs the good and the bad_*
 * seeds that way, so seeds that rot as keys change fail the test.  See docs/fuzzing.md.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sink.h"
#include "sink_kafka.h"

/* The sinks' sections, as the relay's registry declares them. */
#define KAFKA(cfg) ((const struct kafka_settings *)relay_config_sink_settings((cfg), "kafka"))
#define STDOUT_FORMAT(cfg)                                                                     \
    (((const struct sink_common *)relay_config_sink_settings((cfg), "stdout"))->format)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.yaml"
#define ERRSTR_SIZE 1024
#define SMALL_ERRSTR 12
#define CANARY 0x5a

/* What RELAY_FUZZ_EXPECT asks of every input. */
static enum { EXPECT_ANY, EXPECT_OK, EXPECT_ERROR } expect;

static void violation(int line, const char *what)
{
    fprintf(stderr, "fuzz_config.c:%d: invariant violated: %s\n", line, what);
    abort();
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            violation(__LINE__, #cond);                                                            \
    } while (0)

static bool nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* 1 to 63 bytes of [a-z0-9_] (a slot name); not starting with a digit if ident. */
static bool lower_name(const char *s, bool ident)
{
    size_t n;

    if (s == NULL)
        return false;
    n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_");
    return n > 0 && n <= 63 && s[n] == '\0' && !(ident && s[0] >= '0' && s[0] <= '9');
}

static bool pg_name(const char *s)
{
    return nonempty(s) && strlen(s) <= 63;
}

static void check_config(const struct relay_config *cfg)
{
    CHECK(cfg->path != NULL && strcmp(cfg->path, NAME) == 0);

    CHECK(nonempty(cfg->postgres.dsn));
    CHECK(cfg->postgres.mode == RELAY_MODE_REPLICATION || cfg->postgres.mode == RELAY_MODE_POLLING);
    CHECK(lower_name(cfg->postgres.slot, false));
    CHECK(pg_name(cfg->postgres.publication));
    CHECK(cfg->postgres.status_interval_ms > 0);
    CHECK(cfg->postgres.retry_interval_ms > 0);

    CHECK(pg_name(cfg->outbox.schema));
    CHECK(pg_name(cfg->outbox.table));
    CHECK(lower_name(cfg->outbox.key_column, true));
    CHECK(lower_name(cfg->outbox.version_column, true));
    CHECK(lower_name(cfg->outbox.headers_column, true));
    CHECK(cfg->outbox.nheader_columns == 0 || cfg->outbox.header_columns != NULL);
    for (size_t i = 0; i < cfg->outbox.nheader_columns; i++) {
        CHECK(lower_name(cfg->outbox.header_columns[i], true));
        for (size_t j = 0; j < i; j++) /* "No name twice" */
            CHECK(strcmp(cfg->outbox.header_columns[i], cfg->outbox.header_columns[j]) != 0);
    }
    CHECK(cfg->outbox.source != NULL);
    CHECK(nonempty(cfg->outbox.messages_prefix));

    CHECK(strcmp(relay_config_sink_name(cfg), "kafka") == 0 || strcmp(relay_config_sink_name(cfg), "stdout") == 0);
    if (strcmp(relay_config_sink_name(cfg), "kafka") == 0)
        CHECK(nonempty(KAFKA(cfg)->brokers));
    CHECK(nonempty(KAFKA(cfg)->common.destination));
    /* "" (no dead-letter topic) or 1 to 249 of [A-Za-z0-9._-], not "." or ".." */
    CHECK(KAFKA(cfg)->common.dead_letter != NULL && strlen(KAFKA(cfg)->common.dead_letter) <= 249);
    CHECK(strspn(KAFKA(cfg)->common.dead_letter, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789._-") == strlen(KAFKA(cfg)->common.dead_letter));
    CHECK(strcmp(KAFKA(cfg)->common.dead_letter, ".") != 0 && strcmp(KAFKA(cfg)->common.dead_letter, "..") != 0);
    CHECK(KAFKA(cfg)->nproperties == 0 || KAFKA(cfg)->properties != NULL);
    for (size_t i = 0; i < KAFKA(cfg)->nproperties; i++) {
        CHECK(KAFKA(cfg)->properties[i].key != NULL && KAFKA(cfg)->properties[i].value != NULL);
        for (size_t j = 0; j < i; j++) /* the same key twice is an error */
            CHECK(strcmp(KAFKA(cfg)->properties[i].key, KAFKA(cfg)->properties[j].key) != 0);
    }
    CHECK(cfg->pipeline.max_inflight_events >= 1 && cfg->pipeline.max_inflight_events <= 10000000);
    CHECK(cfg->pipeline.max_inflight_bytes >= 1048576 &&
          cfg->pipeline.max_inflight_bytes <= INT64_C(17179869184));
    CHECK(cfg->pipeline.shutdown_timeout_ms >= 0);
    CHECK(KAFKA(cfg)->common.format >= RELAY_FORMAT_CLOUDEVENTS &&
          KAFKA(cfg)->common.format <= RELAY_FORMAT_DEBEZIUM);
    CHECK(STDOUT_FORMAT(cfg) >= RELAY_FORMAT_CLOUDEVENTS &&
          STDOUT_FORMAT(cfg) <= RELAY_FORMAT_DEBEZIUM);

    CHECK(cfg->cdc.ntables == 0 || cfg->cdc.tables != NULL);
    CHECK(cfg->cdc.ntables == 0 || cfg->postgres.mode == RELAY_MODE_REPLICATION);
    for (size_t i = 0; i < cfg->cdc.ntables; i++) {
        const struct relay_table *t = &cfg->cdc.tables[i];

        CHECK(pg_name(t->schema) && pg_name(t->table));
        CHECK(strcmp(t->schema, cfg->outbox.schema) != 0 ||
              strcmp(t->table, cfg->outbox.table) != 0);
        for (size_t j = 0; j < i; j++) /* "No table twice" */
            CHECK(strcmp(t->schema, cfg->cdc.tables[j].schema) != 0 ||
                  strcmp(t->table, cfg->cdc.tables[j].table) != 0);
    }
    CHECK(nonempty(cfg->cdc.topic));
    CHECK(pg_name(cfg->cdc.publication));

    CHECK(cfg->polling.interval_ms > 0);
    CHECK(cfg->polling.batch_size >= 1 && cfg->polling.batch_size <= 100000);
    CHECK(cfg->polling.after_publish == RELAY_AFTER_DELETE ||
          cfg->polling.after_publish == RELAY_AFTER_MARK);
    CHECK(cfg->polling.retention_ms >= 0);
    CHECK(lower_name(cfg->polling.notify_channel, true));

    CHECK(cfg->log.level >= RELAY_LOG_DEBUG && cfg->log.level <= RELAY_LOG_ERROR);
}

/* A decimal number of at least one digit, not starting with 0; advances *s. */
static bool read_number(const char **s, size_t *out)
{
    size_t n = 0;

    if (**s < '1' || **s > '9')
        return false;
    for (; **s >= '0' && **s <= '9'; (*s)++) {
        if (n > SIZE_MAX / 10 - 1)
            return false;
        n = n * 10 + (size_t)(**s - '0');
    }
    *out = n;
    return true;
}

/* "fuzz.yaml:LINE:COLUMN: message" or "fuzz.yaml: message", on one line. */
static void check_error(const char *errstr, size_t size)
{
    const char *nul = memchr(errstr, '\0', ERRSTR_SIZE), *s;
    size_t line, column;

    CHECK(nul != NULL && nul > errstr);
    CHECK(strchr(errstr, '\n') == NULL && strchr(errstr, '\r') == NULL);
    CHECK(strncmp(errstr, NAME ":", strlen(NAME ":")) == 0);
    s = errstr + strlen(NAME ":");
    if (*s != ' ') {
        CHECK(read_number(&s, &line) && *s++ == ':');
        CHECK(read_number(&s, &column) && *s++ == ':');
        /* A line per byte at most, and one past the end for "at the end of the input". */
        CHECK(line <= size + 1 && column <= size + 1);
    }
    CHECK(s[0] == ' ' && s[1] != '\0' && s[1] != ' ');
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *e = getenv("RELAY_FUZZ_EXPECT");
    char long_value[300];

    (void)argc;
    (void)argv;
    if (sink_register_config() < 0)
        abort();
    if (e != NULL && strcmp(e, "ok") == 0)
        expect = EXPECT_OK;
    else if (e != NULL && strcmp(e, "error") == 0)
        expect = EXPECT_ERROR;

    memset(long_value, 'v', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    /* Referenced by the seeds; overwrite so a developer's environment cannot differ. */
    setenv("FUZZ_DSN", "host=127.0.0.1 port=5432 dbname=app user=relay", 1);
    setenv("FUZZ_BROKERS", "127.0.0.1:9092,127.0.0.1:9093", 1);
    setenv("FUZZ_DURATION", "1m30s", 1);
    setenv("FUZZ_INT", "4096", 1);
    setenv("FUZZ_EMPTY", "", 1);
    setenv("FUZZ_NEWLINE", "line one\nline \"two\"\t\x01", 1);
    setenv("FUZZ_LONG", long_value, 1);
    setenv("FUZZ_UTF8", "caf\xc3\xa9-\xe2\x9c\x93", 1);
    /* The names tests/fixtures/config/env.yaml and config/demo.yaml use. */
    setenv("RELAY_TEST_DSN", "dbname=app", 1);
    setenv("RELAY_TEST_SECRET", "s3cr$t", 1);
    unsetenv("RELAY_TEST_INTERVAL");
    unsetenv("RELAY_TEST_BROKERS");
    unsetenv("DEMO_PG_DSN");
    unsetenv("DEMO_BROKERS");
    unsetenv("FUZZ_UNSET");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errstr[ERRSTR_SIZE], small[SMALL_ERRSTR + 8];
    struct relay_config *cfg, *again;
    bool ok;

    memset(errstr, CANARY, sizeof errstr);
    cfg = relay_config_parse((const char *)data, size, NAME, errstr, sizeof errstr);
    ok = cfg != NULL;
    if (ok) {
        check_config(cfg);
        relay_config_free(cfg);
    } else {
        check_error(errstr, size);
    }
    if ((expect == EXPECT_OK && !ok) || (expect == EXPECT_ERROR && ok)) {
        fprintf(stderr, "fuzz_config: expected %s, got %s\n",
                expect == EXPECT_OK ? "a config" : "an error", ok ? "a config" : errstr);
        abort();
    }

    /* Same outcome with a small buffer: a prefix of the message, and no overrun. */
    memset(small, CANARY, sizeof small);
    again = relay_config_parse((const char *)data, size, NAME, small, SMALL_ERRSTR);
    CHECK((again != NULL) == ok);
    relay_config_free(again);
    if (!ok) {
        CHECK(memchr(small, '\0', SMALL_ERRSTR) != NULL);
        CHECK(strncmp(small, errstr, strlen(small)) == 0);
        CHECK(strlen(small) == SMALL_ERRSTR - 1 || strcmp(small, errstr) == 0);
    }
    for (size_t i = SMALL_ERRSTR; i < sizeof small; i++)
        CHECK((unsigned char)small[i] == CANARY);
    return 0;
}

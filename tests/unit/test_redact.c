/*
 * test_redact.c -- unit tests for relay/redact.c: secrets masked in connection
 * strings and properties, and scrubbed from free text.
 *
 * The masking cases are tables of (input, expected output) covering libpq's two
 * syntaxes: key=value with quoting and escapes, and postgresql:// URIs with the
 * password in the user part or in query parameters; then the malformed inputs,
 * where everything past the point of confusion must be masked; then the secret
 * set, which must mask every way a password can reappear in a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "redact.h"
#include "sink.h"

#define M REDACT_MASK

struct dsn_case {
    const char *in;
    const char *out;
};

static void check_dsn_cases(const struct dsn_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char out[512];
        size_t len = redact_dsn(cases[i].in, out, sizeof(out));

        if (strcmp(out, cases[i].out) != 0)
            fail_msg("redact_dsn(%s)\n  got      %s\n  expected %s", cases[i].in, out,
                     cases[i].out);
        assert_int_equal(len, strlen(cases[i].out));
    }
}

static void test_keyvalue(void **state)
{
    static const struct dsn_case cases[] = {
        /* Nothing secret: unchanged, spacing kept. */
        {"host=db port=5432 dbname=app user=relay", "host=db port=5432 dbname=app user=relay"},
        {"", ""},
        {"   ", "   "},
        {"dbname=app", "dbname=app"},
        /* The password, wherever it is. */
        {"host=db password=s3cret user=relay", "host=db password=" M " user=relay"},
        {"password=s3cret", "password=" M},
        {"host=db password=s3cret", "host=db password=" M},
        /* Spaces around '=' are allowed by libpq. */
        {"host=db password = s3cret user=relay", "host=db password = " M " user=relay"},
        {"password\t=\ts3cret", "password\t=\t" M},
        /* Quoted values, with escaped quotes, backslashes and spaces. */
        {"password='s3 cret' user=relay", "password=" M " user=relay"},
        {"password='it\\'s' user=relay", "password=" M " user=relay"},
        {"password='back\\\\slash' user=x", "password=" M " user=x"},
        {"password='' user=x", "password=" M " user=x"},
        /* An unquoted value with an escaped space continues past it. */
        {"password=a\\ b user=x", "password=" M " user=x"},
        /* Other secret keywords: sslpassword, and any keyword naming a secret. */
        {"sslpassword=pass sslkey=/k.pem", "sslpassword=" M " sslkey=/k.pem"},
        {"PASSWORD=x host=h", "PASSWORD=" M " host=h"},
        /* A quoted non-secret value that holds "password=..." is not a key. */
        {"application_name='password=x' host=h", "application_name='password=x' host=h"},
        /* Two passwords (libpq takes the last): both masked. */
        {"password=a password=b", "password=" M " password=" M},
    };

    (void)state;
    check_dsn_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_keyvalue_malformed(void **state)
{
    static const struct dsn_case cases[] = {
        /* An unterminated quote: the rest is masked, whatever the key. */
        {"password='s3cret user=relay", "password=" M},
        {"host='db password=s3cret", "host=" M},
        /* A word without '=': libpq refuses it; it and what follows are masked. */
        {"host=db password s3cret", "host=db " M},
        {"s3cret", M},
        /* '=' with nothing after it: an empty value, nothing to show. */
        {"password=", "password=" M},
        {"host=db password=", "host=db password=" M},
    };

    (void)state;
    check_dsn_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_uri(void **state)
{
    static const struct dsn_case cases[] = {
        {"postgresql://db/app", "postgresql://db/app"},
        {"postgresql://", "postgresql://"},
        {"postgresql://relay@db/app", "postgresql://relay@db/app"},
        {"postgresql://relay:s3cret@db:5432/app", "postgresql://relay:" M "@db:5432/app"},
        {"postgres://relay:s3cret@db/app", "postgres://relay:" M "@db/app"},
        /* Percent-encoded characters stay inside the mask. */
        {"postgresql://relay:p%40ss%2Fword@db/app", "postgresql://relay:" M "@db/app"},
        /* An empty password. */
        {"postgresql://relay:@db/app", "postgresql://relay:" M "@db/app"},
        /* Several hosts. */
        {"postgresql://u:pw@h1:5432,h2:5433/app?target_session_attrs=read-write",
         "postgresql://u:" M "@h1:5432,h2:5433/app?target_session_attrs=read-write"},
        /* Unencoded '@' or '/' in the password (libpq refuses these): still masked. */
        {"postgresql://u:p@ss@db/app", "postgresql://u:" M "@db/app"},
        {"postgresql://u:pa/ss@db/app", "postgresql://u:" M "@db/app"},
        /* Query parameters. */
        {"postgresql://db/app?password=s3cret", "postgresql://db/app?password=" M},
        {"postgresql://db/app?user=u&password=s3cret&sslmode=require",
         "postgresql://db/app?user=u&password=" M "&sslmode=require"},
        {"postgresql://db/app?sslpassword=k&password=p",
         "postgresql://db/app?sslpassword=" M "&password=" M},
        /* A percent-encoded parameter name is still the password. */
        {"postgresql://db/app?pass%77ord=s3cret", "postgresql://db/app?pass%77ord=" M},
        /* Both places at once. */
        {"postgresql://u:one@db/app?password=two", "postgresql://u:" M "@db/app?password=" M},
        /* '@' in a query value is not a user part. */
        {"postgresql://db/app?application_name=a@b", "postgresql://db/app?application_name=a@b"},
        /* A parameter without '=' is shown as it is (it holds no value). */
        {"postgresql://db/app?password", "postgresql://db/app?password"},
    };

    (void)state;
    check_dsn_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_dsn_buffers(void **state)
{
    char small[12];
    size_t n;

    (void)state;
    /* snprintf-like: clipped and terminated, the return value is the full length. */
    n = redact_dsn("host=db password=s3cret", small, sizeof(small));
    assert_int_equal(n, strlen("host=db password=" M));
    assert_string_equal(small, "host=db pas");
    n = redact_dsn("password=s3cret", NULL, 0);
    assert_int_equal(n, strlen("password=" M));
    /* NULL is the empty string. */
    n = redact_dsn(NULL, small, sizeof(small));
    assert_int_equal(n, 0);
    assert_string_equal(small, "");
    /* A clipped result never shows part of the secret. */
    n = redact_dsn("password=abcdefghij", small, 11);
    assert_string_equal(small, "password=*");
}

static void test_secret_keys(void **state)
{
    static const char *const secret[] = {
        "password",
        "sslpassword",
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "SASL.PASSWORD",
        "ssl.key.pem",
        "sasl.oauthbearer.config",
        "my.secret.thing",
        "some_passwd",
        "key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
    };
    static const char *const plain[] = {
        "host",
        "user",
        "sasl.username",
        "ssl.key.location",
        "ssl.certificate.pem",
        "bootstrap.servers",
        "compression.type",
        "sasl.mechanism",
        "passfile",
        "sslkey",
        "",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++) {
        if (!redact_is_secret_key(secret[i]))
            fail_msg("\"%s\" should be a secret", secret[i]);
        assert_string_equal(redact_property(secret[i], "v"), M);
    }
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        if (redact_is_secret_key(plain[i]))
            fail_msg("\"%s\" should not be a secret", plain[i]);
        assert_string_equal(redact_property(plain[i], "v"), "v");
    }
    assert_false(redact_is_secret_key(NULL));
}

/* Scrub text with set into a fresh buffer; the caller frees it. */
static char *scrub(const redact_set *set, const char *text)
{
    size_t need = redact_set_scrub(set, text, strlen(text), NULL, 0);
    char *out = malloc(need + 1);

    assert_non_null(out);
    assert_int_equal(redact_set_scrub(set, text, strlen(text), out, need + 1), need);
    return out;
}

static void assert_scrubbed(const redact_set *set, const char *text, const char *expected)
{
    char *got = scrub(set, text);

    if (strcmp(got, expected) != 0) {
        free(got);
        fail_msg("scrub(%s): expected %s", text, expected);
    }
    free(got);
}

static void test_set_scrub(void **state)
{
    redact_set *set = redact_set_new();

    (void)state;
    assert_non_null(set);
    /* An empty set copies. */
    assert_scrubbed(set, "nothing to hide", "nothing to hide");
    assert_int_equal(redact_set_add(set, "hunter2", 7), 0);
    assert_int_equal(redact_set_add(set, "hunter2", 7), 0); /* no duplicate */
    assert_int_equal(redact_set_count(set), 1);
    /* Too short to scrub from free text. */
    assert_int_equal(redact_set_add(set, "abc", 3), 0);
    assert_int_equal(redact_set_count(set), 1);

    assert_scrubbed(set, "password is hunter2", "password is " M);
    assert_scrubbed(set, "hunter2hunter2", M M);
    assert_scrubbed(set, "\"hunter2\" and 'hunter2'", "\"" M "\" and '" M "'");
    /* Text that ends inside a secret (a clipped message) shows none of it. */
    assert_scrubbed(set, "hunter", M);
    assert_scrubbed(set, "no match: hunte", "no match: " M);
    assert_scrubbed(set, "abc abc", "abc abc");

    /* The longest secret wins where two overlap. */
    assert_int_equal(redact_set_add(set, "hunter2-extended", 16), 0);
    assert_scrubbed(set, "x hunter2-extended y", "x " M " y");

    /* NULL set: a plain copy. */
    {
        char out[8];

        assert_int_equal(redact_set_scrub(NULL, "abcdef", 6, out, sizeof(out)), 6);
        assert_string_equal(out, "abcdef");
        /* Clipped and terminated. */
        assert_int_equal(redact_set_scrub(NULL, "abcdefghij", 10, out, sizeof(out)), 10);
        assert_string_equal(out, "abcdefg");
    }
    redact_set_free(set);
    redact_set_free(NULL);
}

static void test_set_from_dsn(void **state)
{
    redact_set *set = redact_set_new();

    (void)state;
    /* Quoted: the value as written and as libpq reads it. */
    assert_int_equal(redact_set_add_dsn(set, "host=db password='it\\'s secret' user=u"), 0);
    assert_scrubbed(set, "FATAL: bad password it's secret", "FATAL: bad password " M);
    assert_scrubbed(set, "conninfo: password='it\\'s secret'", "conninfo: password=" M);
    redact_set_free(set);

    /* A URI: raw and percent-decoded, user part and query parameter. */
    set = redact_set_new();
    assert_int_equal(
        redact_set_add_dsn(set, "postgresql://u:p%40ssword@db/app?sslpassword=keypass"), 0);
    assert_scrubbed(set, "p%40ssword p@ssword keypass", M " " M " " M);
    redact_set_free(set);

    /* Unparsed rest: collected too. */
    set = redact_set_new();
    assert_int_equal(redact_set_add_dsn(set, "host=db password 'unterminated"), 0);
    assert_scrubbed(set, "conninfo: password 'unterminated", "conninfo: " M);
    assert_int_equal(redact_set_add_dsn(set, NULL), 0);
    redact_set_free(set);
}

static void test_set_from_config(void **state)
{
    static const char text[] = "postgres:\n"
                               "  dsn: \"host=db user=relay password=pg-secret-1\"\n"
                               "kafka:\n"
                               "  brokers: localhost:9092\n"
                               "  properties:\n"
                               "    sasl.username: alice\n"
                               "    sasl.password: kafka-secret-2\n"
                               "    ssl.key.password: key-secret-3\n"
                               "    sasl.oauthbearer.client.secret: oauth-secret-4\n";
    char err[256];
    struct relay_config *cfg = relay_config_parse(text, strlen(text), "t.yaml", err, sizeof(err));
    redact_set *set = redact_set_new();

    (void)state;
    if (cfg == NULL)
        fail_msg("%s", err);
    assert_int_equal(redact_set_add_config(set, cfg), 0);
    assert_scrubbed(set, "pg-secret-1 kafka-secret-2 key-secret-3 oauth-secret-4 alice",
                    M " " M " " M " " M " alice");
    redact_set_free(set);
    relay_config_free(cfg);
}

/* The sinks' secrets: a token, a secret key, the password in a URL (the last '@'). */
static void test_set_from_sink_config(void **state)
{
    static const char *const texts[] = {
        "postgres:\n  dsn: x\nsink: rabbitmq\nrabbitmq:\n"
        "  url: \"amqps://relay:rabbit-pw9@mq:5671/%2f\"\n",
        "postgres:\n  dsn: x\nsink: nats\nnats:\n  url: \"tls://u:nats@pw@n:4222\"\n"
        "  token: nats-token-1\n",
        "postgres:\n  dsn: x\nsink: redis\nredis:\n  url: \"rediss://:redis-pw@r:6380/0\"\n",
        "postgres:\n  dsn: x\nsink: sqs\nsqs:\n"
        "  queue_url: \"https://sqs.eu-west-1.amazonaws.com/1/q.fifo\"\n"
        "  secret_access_key: sqs-secret-1\n  session_token: sqs-token-2\n",
        "postgres:\n  dsn: x\nsink: webhook\nwebhook:\n  url: \"https://h/e\"\n"
        "  secret: whsec_b3V0Ym94LXJlbGF5IHRlc3Qgc2VjcmV0IQ==\n",
    };
    static const char *const plain[] = {
        "rabbit-pw9 relay", "nats@pw nats-token-1 u", "redis-pw r", "sqs-secret-1 sqs-token-2",
        "whsec_b3V0Ym94LXJlbGF5IHRlc3Qgc2VjcmV0IQ== h",
    };
    static const char *const masked[] = {
        M " relay", M " " M " u", M " r", M " " M, M " h",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char err[256];
        struct relay_config *cfg =
            relay_config_parse(texts[i], strlen(texts[i]), "t.yaml", err, sizeof(err));
        redact_set *set = redact_set_new();

        if (cfg == NULL)
            fail_msg("%s", err);
        assert_int_equal(redact_set_add_config(set, cfg), 0);
        assert_scrubbed(set, plain[i], masked[i]);
        redact_set_free(set);
        relay_config_free(cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyvalue),     cmocka_unit_test(test_keyvalue_malformed),
        cmocka_unit_test(test_uri),          cmocka_unit_test(test_dsn_buffers),
        cmocka_unit_test(test_secret_keys),  cmocka_unit_test(test_set_scrub),
        cmocka_unit_test(test_set_from_dsn), cmocka_unit_test(test_set_from_config),
        cmocka_unit_test(test_set_from_sink_config),
    };

    /* The sinks' sections (kafka.properties), as the relay registers them. */
    if (sink_register_config() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_metrics.c -- unit tests for the metrics struct and its Prometheus rendering
 * (relay/metrics.c).
 *
 * The renderer's output is checked line by line (exact sample lines for every
 * counter and gauge, the build_info label, the slot-lag sample that appears only
 * when known), and as a whole against the text format's grammar: every line is a
 * comment or "name{labels} value", every sample is preceded by its family's HELP
 * and TYPE lines, every name carries the outbox_relay_ prefix.  The histogram is
 * checked on hand-picked values at the bucket boundaries and against a brute-force
 * count of random observations, which also proves the buckets cumulative.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <locale.h>
#include <math.h> /* INFINITY, NAN */
#include <stdio.h>
#include <string.h>

#include "metrics.h"

/* 2023-11-14T22:13:20Z, in microseconds: a plausible commit time. */
#define T0 INT64_C(1700000000000000)

static const double bounds[] = {METRICS_COMMIT_TO_ACK_BOUNDS};

/* Render m at now into a fresh string (caller frees). */
static char *render(const struct relay_metrics *m, int64_t now_us)
{
    struct jbuf b;
    char *s;

    jbuf_init(&b);
    assert_int_equal(metrics_render(m, now_us, &b), 0);
    assert_false(b.oom);
    assert_non_null(b.data);
    assert_int_equal(strlen(b.data), b.len);
    s = strdup(b.data);
    assert_non_null(s);
    jbuf_free(&b);
    return s;
}

/* Whether text contains line as a whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
        p++;
    }
    return false;
}

static void assert_line(const char *text, const char *line)
{
    if (!has_line(text, line))
        fail_msg("missing line \"%s\" in:\n%s", line, text);
}

/* The value of the sample line that starts with "prefix " (exact name and labels). */
static double sample_value(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *p = text;

    while ((p = strstr(p, prefix)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p++;
    }
    fail_msg("no sample \"%s\" in:\n%s", prefix, text);
    return 0;
}

static char *put_double(double v)
{
    struct jbuf b;
    char *s;

    jbuf_init(&b);
    metrics_put_double(&b, v);
    assert_false(b.oom);
    s = strdup(b.data);
    jbuf_free(&b);
    return s;
}

static void check_double(double v, const char *expected)
{
    char *s = put_double(v);

    assert_string_equal(s, expected);
    free(s);
}

static void test_put_double(void **state)
{
    double third = 1.0 / 3.0;
    char *s;

    (void)state;
    check_double(0, "0");
    check_double(-0.0, "0");
    check_double(1, "1");
    check_double(-7, "-7");
    check_double(60, "60");
    check_double(0.1, "0.1");
    check_double(0.001, "0.001");
    check_double(0.0025, "0.0025");
    check_double(2.5, "2.5");
    check_double(1e-9, "1e-09");
    check_double(1e300, "1e+300");
    check_double(18446744073709551616.0, "1.8446744073709552e+19");
    check_double(2251799813685248.5, "2251799813685248.5");
    check_double(INFINITY, "+Inf");
    check_double(-INFINITY, "-Inf");
    check_double(NAN, "NaN");

    /* Not representable in few digits: the text reads back as exactly the same double. */
    s = put_double(third);
    assert_true(strtod(s, NULL) == third);
    assert_true(strlen(s) <= 19);
    free(s);
}

/* A locale with a decimal comma must not leak into the output. */
static void test_put_double_locale(void **state)
{
    const char *locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8"};
    size_t i;
    bool switched = false;

    (void)state;
    for (i = 0; i < sizeof(locales) / sizeof(locales[0]) && !switched; i++)
        switched = setlocale(LC_NUMERIC, locales[i]) != NULL;
    if (switched) {
        char raw[16];

        /* The C library itself writes a comma now: the test is not vacuous. */
        snprintf(raw, sizeof(raw), "%g", 0.25);
        assert_string_not_equal(raw, "0.25");
    } else {
        /* No such locale installed: the test still runs in "C", which proves less. */
        print_message("no decimal-comma locale installed; checking in \"C\" only\n");
    }
    check_double(0.25, "0.25");
    check_double(1.5e-7, "1.5e-07");
    check_double(100.704, "100.704");
    setlocale(LC_NUMERIC, "C");
}

static void test_initial(void **state)
{
    struct relay_metrics m;
    char *text;

    (void)state;
    metrics_init(&m, "1.2.3");
    assert_int_equal(m.slot_lag_bytes, -1);
    text = render(&m, T0);

    assert_line(text, "# HELP outbox_relay_build_info Build information of the running relay; "
                      "the value is always 1.");
    assert_line(text, "# TYPE outbox_relay_build_info gauge");
    assert_line(text, "outbox_relay_build_info{version=\"1.2.3\"} 1");
    assert_line(text, "outbox_relay_ready 0");
    assert_line(text, "outbox_relay_events_published_total 0");
    assert_line(text, "outbox_relay_source_lag_seconds 0");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"+Inf\"} 0");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_sum 0");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_count 0");

    /* Slot lag unknown: the family is described but has no sample. */
    assert_line(text, "# TYPE outbox_relay_replication_slot_lag_bytes gauge");
    assert_null(strstr(text, "\noutbox_relay_replication_slot_lag_bytes "));
    free(text);
}

static void test_counters_and_gauges(void **state)
{
    struct relay_metrics m;
    char *text;

    (void)state;
    metrics_init(&m, "0.1.0");
    m.events_received = 1234;
    m.events_published = 1200;
    m.publish_errors = 7;
    m.dead_letter[3] = 2;
    m.dead_letter[4] = 1;
    m.replays = 3;
    m.reconnects = 4;
    m.heartbeats = 5;
    m.inflight_events = 34;
    m.inflight_bytes = 56789;
    m.confirmed_lsn = UINT64_C(0x16B374D848); /* 16/B374D848 */
    m.slot_lag_bytes = 1048576;
    m.ready = true;
    text = render(&m, T0);

    assert_line(text, "# TYPE outbox_relay_events_received_total counter");
    assert_line(text, "outbox_relay_events_received_total 1234");
    assert_line(text, "# TYPE outbox_relay_events_published_total counter");
    assert_line(text, "outbox_relay_events_published_total 1200");
    assert_line(text, "# TYPE outbox_relay_publish_errors_total counter");
    assert_line(text, "outbox_relay_publish_errors_total 7");
    assert_line(text, "# TYPE outbox_relay_dead_letter_total counter");
    assert_line(text, "outbox_relay_dead_letter_total{reason=\"too-large\"} 2");
    assert_line(text, "outbox_relay_dead_letter_total{reason=\"rejected\"} 1");
    assert_line(text, "outbox_relay_dead_letter_total{reason=\"bad-row\"} 0");
    assert_line(text, "outbox_relay_replays_total 3");
    assert_line(text, "outbox_relay_reconnects_total 4");
    assert_line(text, "outbox_relay_heartbeats_total 5");
    assert_line(text, "# TYPE outbox_relay_inflight_events gauge");
    assert_line(text, "outbox_relay_inflight_events 34");
    assert_line(text, "# TYPE outbox_relay_inflight_bytes gauge");
    assert_line(text, "outbox_relay_inflight_bytes 56789");
    assert_line(text, "# TYPE outbox_relay_confirmed_lsn gauge");
    assert_line(text, "outbox_relay_confirmed_lsn 97500059720");
    assert_line(text, "outbox_relay_replication_slot_lag_bytes 1048576");
    assert_line(text, "outbox_relay_ready 1");
    free(text);

    /* The largest LSN is printed in full, not rounded through a double. */
    m.confirmed_lsn = UINT64_MAX;
    text = render(&m, T0);
    assert_line(text, "outbox_relay_confirmed_lsn 18446744073709551615");
    free(text);
}

static void test_build_info_escaping(void **state)
{
    struct relay_metrics m;
    char *text;

    (void)state;
    metrics_init(&m, "1.0 \"dev\"\\x\nnext");
    text = render(&m, T0);
    assert_line(text, "outbox_relay_build_info{version=\"1.0 \\\"dev\\\"\\\\x\\nnext\"} 1");
    free(text);

    metrics_init(&m, NULL);
    text = render(&m, T0);
    assert_line(text, "outbox_relay_build_info{version=\"unknown\"} 1");
    free(text);
}

static void test_source_lag(void **state)
{
    struct relay_metrics m;
    char *text;

    (void)state;
    metrics_init(&m, "x");
    /* Nothing acknowledged yet: 0, however late it is. */
    assert_true(metrics_source_lag_seconds(&m, T0) == 0);

    metrics_note_ack(&m, T0, T0 + 20000); /* acknowledged 20 ms after commit */
    assert_int_equal(m.events_published, 1);
    assert_int_equal(m.newest_ack_commit_us, T0);
    text = render(&m, T0 + 2500000);
    assert_line(text, "outbox_relay_source_lag_seconds 2.5");
    free(text);

    /* An older transaction acknowledged later does not move the newest commit back. */
    metrics_note_ack(&m, T0 - 10000000, T0 + 30000);
    assert_int_equal(m.newest_ack_commit_us, T0);
    assert_int_equal(m.events_published, 2);
    metrics_note_ack(&m, T0 + 1000000, T0 + 1250000);
    assert_int_equal(m.newest_ack_commit_us, T0 + 1000000);
    text = render(&m, T0 + 1750000);
    assert_line(text, "outbox_relay_source_lag_seconds 0.75");
    free(text);

    /* The relay's clock behind PostgreSQL's: 0, not a negative lag. */
    text = render(&m, T0);
    assert_line(text, "outbox_relay_source_lag_seconds 0");
    free(text);

    /* An idle outbox: a confirmed heartbeat moves the lag's reference, no event counted. */
    metrics_note_caught_up(&m, T0 + 9000000);
    assert_int_equal(m.events_published, 2 + 1);
    assert_true(metrics_source_lag_seconds(&m, T0 + 9500000) == 0.5);
    metrics_note_caught_up(&m, T0); /* never back */
    assert_int_equal(m.newest_ack_commit_us, T0 + 9000000);

    /* An unknown commit time counts the event and nothing else. */
    metrics_note_ack(&m, 0, T0 + 5000000);
    assert_int_equal(m.events_published, 4);
    assert_int_equal(m.newest_ack_commit_us, T0 + 9000000);
    assert_int_equal(m.commit_to_ack.count, 3);
}

static void test_histogram_boundaries(void **state)
{
    struct relay_metrics m;
    char *text;

    (void)state;
    metrics_init(&m, "x");
    metrics_observe_commit_to_ack(&m, 0.001); /* on a bound: that bucket ("le") */
    metrics_observe_commit_to_ack(&m, -3);    /* clock skew: 0 */
    metrics_observe_commit_to_ack(&m, 0.25);
    metrics_observe_commit_to_ack(&m, 0.5);
    metrics_observe_commit_to_ack(&m, 2);
    metrics_observe_commit_to_ack(&m, 100); /* above every bound */
    metrics_observe_commit_to_ack(&m, NAN); /* ignored */
    assert_int_equal(m.commit_to_ack.count, 6);
    text = render(&m, T0);

    assert_line(text, "# TYPE outbox_relay_commit_to_ack_seconds histogram");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"0.001\"} 2");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"0.0025\"} 2");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"0.1\"} 2");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"0.25\"} 3");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"0.5\"} 4");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"1\"} 4");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"2.5\"} 5");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"60\"} 5");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"+Inf\"} 6");
    /* 0.001 + 0 + 0.25 + 0.5 + 2 + 100, summed in this order in doubles. */
    assert_line(text, "outbox_relay_commit_to_ack_seconds_sum 102.751");
    assert_line(text, "outbox_relay_commit_to_ack_seconds_count 6");
    free(text);
}

/* Random observations against a brute-force count per bound. */
static void test_histogram_cumulative(void **state)
{
    enum { N = 5000 };
    static const double decades[] = {1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100};
    static double obs[N];
    struct relay_metrics m;
    char *text, label[96];
    double sum = 0, prev = -1, v;
    size_t i, j;
    unsigned seed = 12345;

    (void)state;
    metrics_init(&m, "x");
    for (i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        /* 10 us to 1000 s over every decade, with some values exactly on a bound. */
        if (seed % 17 == 0)
            obs[i] = bounds[(seed >> 8) % METRICS_COMMIT_TO_ACK_NBOUNDS];
        else
            obs[i] = decades[(seed >> 20) % 8] * (1 + (double)((seed >> 8) % 900) / 100);
        metrics_observe_commit_to_ack(&m, obs[i]);
        sum += obs[i];
    }
    text = render(&m, T0);
    for (j = 0; j < METRICS_COMMIT_TO_ACK_NBOUNDS; j++) {
        char *le = put_double(bounds[j]);
        uint64_t expected = 0;

        for (i = 0; i < N; i++)
            expected += obs[i] <= bounds[j];
        snprintf(label, sizeof(label), "outbox_relay_commit_to_ack_seconds_bucket{le=\"%s\"}",
                 le);
        free(le);
        v = sample_value(text, label);
        assert_true(v == (double)expected);
        assert_true(v >= prev); /* cumulative: never decreasing */
        prev = v;
    }
    v = sample_value(text, "outbox_relay_commit_to_ack_seconds_bucket{le=\"+Inf\"}");
    assert_true(v == N);
    assert_true(v >= prev);
    assert_true(sample_value(text, "outbox_relay_commit_to_ack_seconds_count") == N);
    /* The rendered sum reads back as exactly the accumulated double. */
    assert_true(sample_value(text, "outbox_relay_commit_to_ack_seconds_sum") == sum);
    free(text);
}

/* Every line of the exposition follows the text format's grammar. */
static void test_format_grammar(void **state)
{
    struct relay_metrics m;
    char *text, *line, *save = NULL, *copy;
    char family[128] = "", typed[128] = "", helped[128] = "";
    int samples = 0, families = 0;

    (void)state;
    metrics_init(&m, "0.1.0");
    m.slot_lag_bytes = 0;
    metrics_note_ack(&m, T0, T0 + 3000);
    text = render(&m, T0 + 4000000);
    assert_true(text[strlen(text) - 1] == '\n');
    copy = strdup(text);
    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], *p = line, *end;
        size_t n = 0;

        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s", helped), 1);
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char type[32];

            assert_int_equal(sscanf(line + 7, "%127s %31s", typed, type), 2);
            assert_string_equal(typed, helped); /* HELP comes first */
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            /* Counters, and only counters, end in _total. */
            assert_int_equal(strcmp(type, "counter") == 0,
                             strlen(typed) > 6 && !strcmp(typed + strlen(typed) - 6, "_total"));
            snprintf(family, sizeof(family), "%s", typed);
            families++;
            continue;
        }
        assert_true(line[0] != '#');
        /* name: [a-zA-Z_:][a-zA-Z0-9_:]* */
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':' ||
               (n > 0 && *p >= '0' && *p <= '9'))
            name[n++] = *p++;
        name[n] = '\0';
        assert_true(n > 0);
        assert_int_equal(strncmp(name, "outbox_relay_", 13), 0);
        /* The sample belongs to the family just described (histograms add suffixes). */
        assert_int_equal(strncmp(name, family, strlen(family)), 0);
        if (*p == '{') {
            end = strchr(p, '}');
            assert_non_null(end);
            assert_non_null(strstr(p, "=\""));
            p = end + 1;
        }
        assert_true(*p == ' ');
        p++;
        if (strcmp(p, "+Inf") && strcmp(p, "-Inf") && strcmp(p, "NaN")) {
            (void)strtod(p, &end);
            assert_true(end != p && *end == '\0');
        }
        samples++;
    }
    /*
     * 15 families: 13 with one sample each, the dead-letter counter with one per reason,
     * the histogram with its bounds, +Inf, _sum, _count.
     */
    assert_int_equal(families, 15);
    assert_int_equal(samples,
                     13 + DL_NREASONS + (METRICS_COMMIT_TO_ACK_NBOUNDS + 3));
    free(copy);
    free(text);
}

/* A reused buffer gives the same text and stops allocating. */
static void test_buffer_reuse(void **state)
{
    struct relay_metrics m;
    struct jbuf b;
    char *first;
    size_t cap;
    char *data;

    (void)state;
    metrics_init(&m, "0.1.0");
    m.events_published = 42;
    jbuf_init(&b);
    assert_int_equal(metrics_render(&m, T0, &b), 0);
    first = strdup(b.data);
    cap = b.cap;
    data = b.data;
    jbuf_reset(&b);
    assert_int_equal(metrics_render(&m, T0, &b), 0);
    assert_string_equal(b.data, first);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.data, data);
    free(first);
    jbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_double),
        cmocka_unit_test(test_put_double_locale),
        cmocka_unit_test(test_initial),
        cmocka_unit_test(test_counters_and_gauges),
        cmocka_unit_test(test_build_info_escaping),
        cmocka_unit_test(test_source_lag),
        cmocka_unit_test(test_histogram_boundaries),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_format_grammar),
        cmocka_unit_test(test_buffer_reuse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

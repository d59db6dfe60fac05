/*
 * test_flow.c -- unit tests for the pipeline's flow rules (relay/flow.c): back-pressure,
 * how far the history check lets the relay confirm, status-update and state-record
 * timing, and backoff with jitter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "flow.h"

static void test_backpressure(void **state)
{
    (void)state;
    /* Below every limit: read. */
    assert_false(flow_backpressured(100, 1 << 20, 99, 99, (1 << 20) - 1));
    /* Any one limit reached stops reading: the tracker's count, the sink's, the bytes. */
    assert_true(flow_backpressured(100, 1 << 20, 100, 0, 0));
    assert_true(flow_backpressured(100, 1 << 20, 0, 100, 0));
    assert_true(flow_backpressured(100, 1 << 20, 0, 0, 1 << 20));
}

static void test_confirmable_history_check(void **state)
{
    struct flow_confirm c = {.acked = 0x500, .recorded = 0x300, .history_check = true};

    (void)state;
    /* With the history check, no further than the record... */
    assert_int_equal(flow_confirmable(&c), 0x300);
    /* ...the acknowledged position once the record caught up... */
    c.recorded = 0x500;
    assert_int_equal(flow_confirmable(&c), 0x500);
    c.recorded = 0x600;
    assert_int_equal(flow_confirmable(&c), 0x500);
    /* ...and without it, everything acknowledged. */
    c.recorded = 0x300;
    c.history_check = false;
    assert_int_equal(flow_confirmable(&c), 0x500);
}

static void test_confirmable_server_shutting_down(void **state)
{
    struct flow_confirm c = {.acked = 0x500, .recorded = 0x300, .history_check = true,
                             .reply_due = true, .server_stopping = true, .idle = true};

    (void)state;
    /* All three conditions: the shutting-down server may have the acknowledged position. */
    assert_int_equal(flow_confirmable(&c), 0x500);
    /* Any one missing: the record rules. */
    c.idle = false;
    assert_int_equal(flow_confirmable(&c), 0x300);
    c.idle = true;
    c.reply_due = false;
    assert_int_equal(flow_confirmable(&c), 0x300);
    c.reply_due = true;
    c.server_stopping = false;
    assert_int_equal(flow_confirmable(&c), 0x300);
}

static void test_status_timing(void **state)
{
    (void)state;
    /* Back-pressured: at least every second, whatever the interval. */
    assert_int_equal(flow_status_period(10000, false), FLOW_STATUS_BACKPRESSURE_MS);
    assert_int_equal(flow_status_period(10000, true), 10000);
    assert_int_equal(flow_status_period(500, false), 500);
    assert_int_equal(flow_status_min_interval(true), FLOW_STATUS_CAUGHT_UP_MS);
    assert_int_equal(flow_status_min_interval(false), FLOW_STATUS_MIN_INTERVAL_MS);
    /* Due: forced, asked for, moved and min interval passed, or period passed. */
    assert_true(flow_status_due(true, false, false, 0, 100, 10000));
    assert_true(flow_status_due(false, true, false, 0, 100, 10000));
    assert_false(flow_status_due(false, false, true, 99, 100, 10000));
    assert_true(flow_status_due(false, false, true, 100, 100, 10000));
    assert_false(flow_status_due(false, false, false, 9999, 100, 10000));
    assert_true(flow_status_due(false, false, false, 10000, 100, 10000));
}

static void test_state_interval(void **state)
{
    (void)state;
    assert_int_equal(flow_state_interval(true, true, 0, false, 10000), FLOW_STATUS_CAUGHT_UP_MS);
    assert_int_equal(flow_state_interval(true, false, 0, false, 10000), FLOW_STATE_EAGER_MS);
    assert_int_equal(flow_state_interval(false, false, FLOW_STATE_EAGER_BYTES, false, 10000),
                     FLOW_STATE_EAGER_MS);
    assert_int_equal(flow_state_interval(false, false, 10, true, 10000), FLOW_STATE_EAGER_MS);
    /* Idle: once per status interval, so the record's own WAL does not keep it writing. */
    assert_int_equal(flow_state_interval(false, false, 10, false, 10000), 10000);
}

static void test_backoff(void **state)
{
    struct flow_backoff b = {100, 1000, 0};
    int64_t want[] = {100, 200, 400, 800, 1000, 1000};

    (void)state;
    /* rnd chosen so that the jitter is 0: rnd % (2j + 1) == j. */
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int64_t j = want[i] / 5;

        assert_int_equal(flow_backoff_next(&b, (unsigned)j), want[i]);
    }
    flow_backoff_reset(&b);
    assert_int_equal(flow_backoff_next(&b, 20), 100);
    /* The jitter stays within +-20%, and covers both ends. */
    flow_backoff_reset(&b);
    for (unsigned r = 0; r <= 400; r++) {
        struct flow_backoff c = {1000, 1000, 0};
        int64_t d = flow_backoff_next(&c, r);

        assert_true(d >= 800 && d <= 1200);
        if (r == 0)
            assert_int_equal(d, 800);
        if (r == 400)
            assert_int_equal(d, 1200);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_confirmable_history_check),
        cmocka_unit_test(test_confirmable_server_shutting_down),
        cmocka_unit_test(test_status_timing),
        cmocka_unit_test(test_state_interval),
        cmocka_unit_test(test_backoff),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

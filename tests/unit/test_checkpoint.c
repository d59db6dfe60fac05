/*
 * test_checkpoint.c -- unit tests for the checkpoint rule (relay/checkpoint.c).
 *
 * The property under test: the confirmed position is the end LSN of the longest
 * commit-ordered prefix of complete, fully acknowledged transactions -- never the
 * LSN of whichever acknowledgement arrived last, and never decreasing.  Besides the
 * hand-written cases, a randomised test acknowledges events in random order and
 * compares the tracker against a straightforward model after every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>

#include "checkpoint.h"

static uint64_t begin_txn(ckpt_tracker *t, int nevents)
{
    uint64_t seq = 0;
    int i;

    assert_int_equal(ckpt_begin(t, &seq), 0);
    for (i = 0; i < nevents; i++)
        assert_int_equal(ckpt_add_event(t), 0);
    return seq;
}

static void test_in_order(void **state)
{
    ckpt_tracker *t = ckpt_new(0x100);
    uint64_t a, b;

    (void)state;
    assert_int_equal(ckpt_confirmed(t), 0x100);
    a = begin_txn(t, 2);
    assert_int_equal(ckpt_commit(t, 0x200), 0);
    b = begin_txn(t, 1);
    assert_int_equal(ckpt_commit(t, 0x300), 0);
    assert_int_equal(ckpt_inflight_events(t), 3);

    assert_int_equal(ckpt_ack(t, a), 0);
    assert_int_equal(ckpt_confirmed(t), 0x100); /* a has one event left */
    assert_int_equal(ckpt_ack(t, a), 0);
    assert_int_equal(ckpt_confirmed(t), 0x200);
    assert_int_equal(ckpt_ack(t, b), 0);
    assert_int_equal(ckpt_confirmed(t), 0x300);
    assert_int_equal(ckpt_inflight_events(t), 0);
    assert_int_equal(ckpt_inflight_txns(t), 0);
    ckpt_free(t);
}

/* A later transaction acknowledged first must not move the position past an earlier one. */
static void test_out_of_order_across_txns(void **state)
{
    ckpt_tracker *t = ckpt_new(0);
    uint64_t a, b, c;

    (void)state;
    a = begin_txn(t, 1);
    ckpt_commit(t, 0x10);
    b = begin_txn(t, 1);
    ckpt_commit(t, 0x20);
    c = begin_txn(t, 1);
    ckpt_commit(t, 0x30);

    assert_int_equal(ckpt_ack(t, c), 0);
    assert_int_equal(ckpt_confirmed(t), 0);
    assert_int_equal(ckpt_ack(t, b), 0);
    assert_int_equal(ckpt_confirmed(t), 0);
    assert_int_equal(ckpt_ack(t, a), 0);
    assert_int_equal(ckpt_confirmed(t), 0x30);
    ckpt_free(t);
}

/* A transaction without events (or whose events were filtered) completes at its Commit. */
static void test_empty_txn(void **state)
{
    ckpt_tracker *t = ckpt_new(0);
    uint64_t a;

    (void)state;
    begin_txn(t, 0);
    assert_int_equal(ckpt_confirmed(t), 0); /* not committed yet */
    ckpt_commit(t, 0x40);
    assert_int_equal(ckpt_confirmed(t), 0x40);

    /* An empty transaction behind an unacknowledged one waits for it. */
    a = begin_txn(t, 1);
    ckpt_commit(t, 0x50);
    begin_txn(t, 0);
    ckpt_commit(t, 0x60);
    assert_int_equal(ckpt_confirmed(t), 0x40);
    ckpt_ack(t, a);
    assert_int_equal(ckpt_confirmed(t), 0x60);
    ckpt_free(t);
}

/* An open transaction whose events are all acknowledged is still not confirmable. */
static void test_open_txn_blocks(void **state)
{
    ckpt_tracker *t = ckpt_new(0);
    uint64_t a;

    (void)state;
    a = begin_txn(t, 1);
    ckpt_ack(t, a);
    assert_int_equal(ckpt_confirmed(t), 0);
    ckpt_keepalive(t, 0x999); /* in flight: ignored */
    assert_int_equal(ckpt_confirmed(t), 0);
    ckpt_commit(t, 0x70);
    assert_int_equal(ckpt_confirmed(t), 0x70);
    ckpt_free(t);
}

static void test_keepalive(void **state)
{
    ckpt_tracker *t = ckpt_new(0x10);
    uint64_t a;

    (void)state;
    ckpt_keepalive(t, 0x80); /* idle: confirm the server's WAL end */
    assert_int_equal(ckpt_confirmed(t), 0x80);
    ckpt_keepalive(t, 0x40); /* never backwards */
    assert_int_equal(ckpt_confirmed(t), 0x80);

    a = begin_txn(t, 1);
    ckpt_commit(t, 0x90);
    ckpt_keepalive(t, 0x200); /* unacknowledged event: ignored */
    assert_int_equal(ckpt_confirmed(t), 0x80);
    ckpt_ack(t, a);
    ckpt_keepalive(t, 0x200); /* the transaction leaves first, then the ring is empty */
    assert_int_equal(ckpt_confirmed(t), 0x200);
    ckpt_free(t);
}

static void test_failure_and_reset(void **state)
{
    ckpt_tracker *t = ckpt_new(0);
    uint64_t a, b, c;

    (void)state;
    a = begin_txn(t, 1);
    ckpt_commit(t, 0x10);
    b = begin_txn(t, 2);
    ckpt_commit(t, 0x20);
    c = begin_txn(t, 1);
    ckpt_commit(t, 0x30);

    assert_int_equal(ckpt_ack(t, a), 0);
    assert_int_equal(ckpt_fail(t, b), 0);
    assert_true(ckpt_failed(t));
    assert_int_equal(ckpt_ack(t, b), 0);
    assert_int_equal(ckpt_ack(t, b), 0);
    assert_int_equal(ckpt_ack(t, c), 0);
    /* The failed transaction stops the position even though everything else was acked. */
    assert_int_equal(ckpt_confirmed(t), 0x10);

    ckpt_reset(t);
    assert_false(ckpt_failed(t));
    assert_int_equal(ckpt_inflight_txns(t), 0);
    assert_int_equal(ckpt_inflight_events(t), 0);
    assert_int_equal(ckpt_confirmed(t), 0x10);
    /* Late reports from the discarded pipeline are recognised. */
    assert_int_equal(ckpt_ack(t, b), -ENOENT);
    assert_int_equal(ckpt_ack(t, c), -ENOENT);
    assert_int_equal(ckpt_fail(t, c), -ENOENT);

    /* Replay: new sequence numbers, position advances again. */
    b = begin_txn(t, 1);
    assert_true(b > c);
    ckpt_commit(t, 0x20);
    ckpt_ack(t, b);
    assert_int_equal(ckpt_confirmed(t), 0x20);
    ckpt_free(t);
}

static void test_misuse(void **state)
{
    ckpt_tracker *t = ckpt_new(0);
    uint64_t a;

    (void)state;
    assert_int_equal(ckpt_add_event(t), -EINVAL);
    assert_int_equal(ckpt_commit(t, 1), -EINVAL);
    a = begin_txn(t, 1);
    assert_int_equal(ckpt_begin(t, &a), -EBUSY);
    assert_int_equal(ckpt_ack(t, a), 0);
    assert_int_equal(ckpt_ack(t, a), -ERANGE);
    assert_int_equal(ckpt_ack(t, a + 5), -ENOENT);
    ckpt_free(t);
    ckpt_free(NULL);
}

/*
 * Random interleavings across ring growth: many transactions with random event
 * counts, acknowledged in random order, compared after every step with a model that
 * scans all transactions from the start.
 */
#define NTX 2000

static void test_random_against_model(void **state)
{
    static uint32_t pending[NTX];
    static lsn_t end[NTX];
    static uint64_t seqs[NTX];
    ckpt_tracker *t = ckpt_new(0);
    uint64_t total = 0, acked = 0;
    uint64_t *order;
    int i;

    (void)state;
    srand(12345);
    for (i = 0; i < NTX; i++) {
        int n = rand() % 4; /* some empty */
        pending[i] = (uint32_t)n;
        end[i] = (lsn_t)(i + 1) * 0x100;
        seqs[i] = begin_txn(t, n);
        ckpt_commit(t, end[i]);
        total += (uint64_t)n;
    }
    order = malloc(total * sizeof(*order));
    assert_non_null(order);
    {
        uint64_t k = 0;
        for (i = 0; i < NTX; i++)
            for (uint32_t j = 0; j < pending[i]; j++)
                order[k++] = (uint64_t)i;
    }
    for (uint64_t k = total; k > 1; k--) {
        uint64_t r = (uint64_t)rand() % k, tmp = order[k - 1];
        order[k - 1] = order[r];
        order[r] = tmp;
    }
    while (acked < total) {
        int ix = (int)order[acked++];
        lsn_t model = 0;

        assert_int_equal(ckpt_ack(t, seqs[ix]), 0);
        pending[ix]--;
        for (i = 0; i < NTX && pending[i] == 0; i++)
            model = end[i];
        assert_int_equal(ckpt_confirmed(t), model);
    }
    assert_int_equal(ckpt_confirmed(t), end[NTX - 1]);
    assert_int_equal(ckpt_inflight_events(t), 0);
    free(order);
    ckpt_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_out_of_order_across_txns),
        cmocka_unit_test(test_empty_txn),
        cmocka_unit_test(test_open_txn_blocks),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_failure_and_reset),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

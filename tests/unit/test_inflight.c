/*
 * test_inflight.c -- unit tests for the table of messages in flight (relay/inflight.c):
 * tags name their entry until removed, a cleared table recognises no old tag, bytes
 * and counts add up, ids of any length survive, and entries are reused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <string.h>

#include "inflight.h"

static void test_add_get_remove(void **state)
{
    inflight_table *t = inflight_new();
    uint64_t a, b;
    struct inflight_msg *m;

    (void)state;
    a = inflight_add(t, 7, 100, "id-a", 4, 0x1000, 42, 3, 123);
    b = inflight_add(t, 8, 50, "id-b", 4, 0x2000, 43, 0, 0);
    assert_true(a != INFLIGHT_NONE && b != INFLIGHT_NONE && a != b);
    assert_int_equal(inflight_count(t), 2);
    assert_int_equal(inflight_bytes(t), 150);
    m = inflight_get(t, a);
    assert_non_null(m);
    assert_int_equal(m->txn_seq, 7);
    assert_int_equal(m->commit_lsn, 0x1000);
    assert_int_equal(m->xid, 42);
    assert_int_equal(m->index, 3);
    assert_string_equal(inflight_id(m), "id-a");
    assert_false(m->dead_letter);
    inflight_set_bytes(t, m, 30);
    assert_int_equal(inflight_bytes(t), 80);
    inflight_remove(t, a);
    assert_null(inflight_get(t, a));
    assert_int_equal(inflight_count(t), 1);
    assert_int_equal(inflight_bytes(t), 50);
    /* Removing twice, or an unknown tag, changes nothing. */
    inflight_remove(t, a);
    inflight_remove(t, INFLIGHT_NONE);
    assert_int_equal(inflight_count(t), 1);
    assert_string_equal(inflight_id(inflight_get(t, b)), "id-b");
    inflight_free(t);
}

static void test_clear_forgets_tags(void **state)
{
    inflight_table *t = inflight_new();
    uint64_t a, c;

    (void)state;
    a = inflight_add(t, 1, 10, "x", 1, 0, 0, 0, 0);
    inflight_clear(t);
    assert_int_equal(inflight_count(t), 0);
    assert_int_equal(inflight_bytes(t), 0);
    assert_null(inflight_get(t, a));
    /* The same slot is handed out again under a new generation: the old tag stays dead. */
    c = inflight_add(t, 2, 10, "y", 1, 0, 0, 0, 0);
    assert_true((uint32_t)c == (uint32_t)a);
    assert_true(c != a);
    assert_null(inflight_get(t, a));
    assert_non_null(inflight_get(t, c));
    inflight_free(t);
}

static void test_long_and_odd_ids(void **state)
{
    inflight_table *t = inflight_new();
    char longid[300];
    static const char withnul[] = {'a', 'b', '\0', 'c'};
    uint64_t a, b, c;

    (void)state;
    memset(longid, 'q', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    a = inflight_add(t, 1, 1, longid, strlen(longid), 0, 0, 0, 0);
    b = inflight_add(t, 1, 1, withnul, sizeof(withnul), 0, 0, 0, 0);
    c = inflight_add(t, 1, 1, NULL, 0, 0, 0, 0, 0);
    assert_string_equal(inflight_id(inflight_get(t, a)), longid);
    assert_string_equal(inflight_id(inflight_get(t, b)), "ab");
    assert_string_equal(inflight_id(inflight_get(t, c)), "");
    inflight_remove(t, a);
    inflight_free(t); /* frees the long ids still held (ASan checks) */
}

static void test_many_reused(void **state)
{
    inflight_table *t = inflight_new();
    uint64_t tags[5000];

    (void)state;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5000; i++) {
            tags[i] = inflight_add(t, (uint64_t)i, i, "e", 1, 0, 0, (uint32_t)i, 0);
            assert_true(tags[i] != INFLIGHT_NONE);
        }
        assert_int_equal(inflight_count(t), 5000);
        assert_int_equal(inflight_bytes(t), 4999 * 5000 / 2);
        /* Out of order, as delivery reports come. */
        for (int i = 4999; i >= 0; i -= 2)
            inflight_remove(t, tags[i]);
        for (int i = 0; i < 5000; i += 2) {
            assert_int_equal(inflight_get(t, tags[i])->index, i);
            inflight_remove(t, tags[i]);
        }
        assert_int_equal(inflight_count(t), 0);
        assert_int_equal(inflight_bytes(t), 0);
    }
    inflight_free(t);
    inflight_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_get_remove),
        cmocka_unit_test(test_clear_forgets_tags),
        cmocka_unit_test(test_long_and_odd_ids),
        cmocka_unit_test(test_many_reused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

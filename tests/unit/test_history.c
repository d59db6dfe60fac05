/*
 * test_history.c -- unit tests for the history check's decisions (relay/history.c):
 * each way the server, the slot and the state record can disagree, the cases that
 * are fine, and the one statement that writes the record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <string.h>

#include "history.h"

static struct history_facts agreeing(void)
{
    return (struct history_facts){
        .slot = "outbox_relay",
        .state_schema = "public",
        .state_table = "outbox_relay_state",
        .system_id = "7300000000000000001",
        .timeline = 1,
        .server_lsn = 0x5000,
        .slot_exists = true,
        .slot_confirmed = 0x3000,
        .state_found = true,
        .state_system_id = "7300000000000000001",
        .state_timeline = 1,
        .state_lsn = 0x3000,
        .unrecorded = LSN_INVALID,
    };
}

static void assert_refused(const struct history_facts *f, const char *words)
{
    char msg[1024];

    assert_int_equal(history_check(f, msg, sizeof(msg)), HISTORY_REFUSE);
    if (!strstr(msg, words))
        fail_msg("\"%s\" not in: %s", words, msg);
    /* Every refusal says how to accept the server's position. */
    assert_non_null(strstr(msg, "DELETE FROM public.outbox_relay_state WHERE slot_name = "
                                "'outbox_relay'"));
}

static void test_agreeing(void **state)
{
    struct history_facts f = agreeing();
    char msg[1024];

    (void)state;
    assert_int_equal(history_check(&f, msg, sizeof(msg)), HISTORY_OK);
    assert_string_equal(msg, "");
    assert_int_equal(history_identity(&f, msg, sizeof(msg)), HISTORY_OK);
}

static void test_first_start(void **state)
{
    struct history_facts f = agreeing();
    char msg[1024];

    (void)state;
    f.state_found = false;
    assert_int_equal(history_check(&f, msg, sizeof(msg)), HISTORY_RECORD_FIRST);
    /* No record and no slot yet: the slot will be created, nothing to record before. */
    f.slot_exists = false;
    assert_int_equal(history_check(&f, msg, sizeof(msg)), HISTORY_OK);
}

static void test_refusals(void **state)
{
    struct history_facts f;

    (void)state;
    f = agreeing();
    f.system_id = "7300000000000000002";
    assert_refused(&f, "another database cluster");
    f = agreeing();
    f.timeline = 2;
    assert_refused(&f, "failed over");
    f = agreeing();
    f.slot_exists = false;
    assert_refused(&f, "does not exist, but this relay published from it up to 0/3000");
    f = agreeing();
    f.server_lsn = 0x2000;
    assert_refused(&f, "restored from a backup");
    f = agreeing();
    f.slot_confirmed = 0x4000;
    assert_refused(&f, "recreated or advanced by another consumer");
    /* Identity comes first: on a promoted standby "failed over" is the better story. */
    f = agreeing();
    f.timeline = 2;
    f.slot_exists = false;
    assert_refused(&f, "failed over");
}

static void test_slot_ahead_by_our_own_confirmation(void **state)
{
    struct history_facts f = agreeing();
    char msg[1024];

    (void)state;
    f.slot_confirmed = 0x4000;
    f.unrecorded = 0x4000;
    assert_int_equal(history_check(&f, msg, sizeof(msg)), HISTORY_RECORD_CAUGHT_UP);
    assert_non_null(strstr(msg, "shutting down"));
    /* Further than what we confirmed ourselves: somebody else moved it. */
    f.unrecorded = 0x3800;
    assert_int_equal(history_check(&f, msg, sizeof(msg)), HISTORY_REFUSE);
}

static void test_slot_behind(void **state)
{
    struct history_facts f = agreeing();
    char msg[1024];

    (void)state;
    f.slot_confirmed = 0x2000;
    assert_int_equal(history_check(&f, msg, sizeof(msg)), HISTORY_SLOT_BEHIND);
    assert_non_null(strstr(msg, "starting from 0/3000"));
}

static void test_quoted_names(void **state)
{
    struct history_facts f = agreeing();
    char msg[1024];

    (void)state;
    f.state_table = "Relay State";
    f.timeline = 3;
    assert_int_equal(history_check(&f, msg, sizeof(msg)), HISTORY_REFUSE);
    assert_non_null(strstr(msg, "DELETE FROM public.\"Relay State\" WHERE"));
}

static void test_record_sql(void **state)
{
    char sql[1024];

    (void)state;
    assert_true(history_record_sql(sql, sizeof(sql), "\"public\".\"outbox_relay_state\"",
                                   "'outbox_relay'", "'7300'", 2, 0x16B374D848) > 0);
    assert_non_null(strstr(sql, "VALUES ('outbox_relay', '7300', 2, '16/B374D848')"));
    /* Never back: a late write of the instance that lost the slot changes nothing. */
    assert_non_null(strstr(sql, "WHERE s.confirmed_lsn <= excluded.confirmed_lsn"));
    assert_non_null(strstr(sql, "RETURNING pg_catalog.pg_current_wal_lsn()"));
    assert_int_equal(history_record_sql(sql, 20, "t", "'s'", "'1'", 1, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agreeing),
        cmocka_unit_test(test_first_start),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_slot_ahead_by_our_own_confirmation),
        cmocka_unit_test(test_slot_behind),
        cmocka_unit_test(test_quoted_names),
        cmocka_unit_test(test_record_sql),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

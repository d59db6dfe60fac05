/*
 * test_walproto.c -- unit tests for the replication frame reader and writer
 * (relay/walproto.c): XLogData and keepalive frames byte for byte, truncation, and
 * the standby status update layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "walproto.h"

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xFF);
}

static void test_xlogdata(void **state)
{
    unsigned char buf[30];
    struct wal_frame f;
    char err[128];

    (void)state;
    buf[0] = 'w';
    put64(buf + 1, 0x0000000116B37480ULL);
    put64(buf + 9, 0x00000001FFFFFFFFULL);
    put64(buf + 17, 123456789);
    memcpy(buf + 25, "Babcd", 5);
    assert_int_equal(wal_frame_parse((char *)buf, sizeof(buf), &f, err, sizeof(err)), 0);
    assert_int_equal(f.type, 'w');
    assert_int_equal(f.data_start, 0x0000000116B37480ULL);
    assert_int_equal(f.wal_end, 0x00000001FFFFFFFFULL);
    assert_int_equal(f.send_time, 123456789);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.data, "Babcd", 5);

    for (size_t n = 0; n < 25; n++)
        assert_int_equal(wal_frame_parse((char *)buf, n, &f, err, sizeof(err)), -EBADMSG);
}

static void test_keepalive(void **state)
{
    unsigned char buf[18];
    struct wal_frame f;
    char err[128];

    (void)state;
    buf[0] = 'k';
    put64(buf + 1, 0x2A00000010ULL);
    put64(buf + 9, 42);
    buf[17] = 1;
    assert_int_equal(wal_frame_parse((char *)buf, sizeof(buf), &f, err, sizeof(err)), 0);
    assert_int_equal(f.type, 'k');
    assert_int_equal(f.wal_end, 0x2A00000010ULL);
    assert_true(f.reply_requested);
    buf[17] = 0;
    assert_int_equal(wal_frame_parse((char *)buf, sizeof(buf), &f, err, sizeof(err)), 0);
    assert_false(f.reply_requested);
    assert_int_equal(wal_frame_parse((char *)buf, 17, &f, err, sizeof(err)), -EBADMSG);
    buf[0] = 'x';
    assert_int_equal(wal_frame_parse((char *)buf, sizeof(buf), &f, err, sizeof(err)), -EBADMSG);
    assert_string_equal(err, "unknown copydata frame type 0x78");
}

static void test_status(void **state)
{
    char out[WAL_STATUS_LEN];
    unsigned char want[WAL_STATUS_LEN];

    (void)state;
    wal_status_build(out, 0x300, 0x200, 0x200, 77, true);
    want[0] = 'r';
    put64(want + 1, 0x300);
    put64(want + 9, 0x200);
    put64(want + 17, 0x200);
    put64(want + 25, 77);
    want[33] = 1;
    assert_memory_equal(out, want, WAL_STATUS_LEN);
    assert_int_equal(wal_unix_to_pg_us(INT64_C(946684800000000)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xlogdata),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

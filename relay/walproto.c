/*
 * walproto.c -- read XLogData and keepalive frames, write standby status updates.
 *
 * All integers on the wire are big-endian.  Layouts (PostgreSQL documentation,
 * "Streaming Replication Protocol"):
 *   'w' Int64 dataStart, Int64 walEnd, Int64 sendTime, Byte[n] data
 *   'k' Int64 walEnd, Int64 sendTime, Byte1 replyRequested
 *   'r' Int64 write, Int64 flush, Int64 apply, Int64 clientTime, Byte1 replyRequested
 */
#include "walproto.h"

#include <errno.h>
#include <stdio.h>

static uint64_t get_u64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | u[i];
    return v;
}

static void put_u64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xFF);
        v >>= 8;
    }
}

int wal_frame_parse(const char *buf, size_t len, struct wal_frame *f, char *errstr,
                    size_t errstr_size)
{
    if (len < 1) {
        snprintf(errstr, errstr_size, "empty copydata frame");
        return -EBADMSG;
    }
    f->type = buf[0];
    f->reply_requested = false;
    f->data = NULL;
    f->len = 0;
    switch (buf[0]) {
    case 'w':
        if (len < 25) {
            snprintf(errstr, errstr_size, "truncated xlogdata frame: %zu bytes", len);
            return -EBADMSG;
        }
        f->data_start = get_u64(buf + 1);
        f->wal_end = get_u64(buf + 9);
        f->send_time = (int64_t)get_u64(buf + 17);
        f->data = buf + 25;
        f->len = len - 25;
        return 0;
    case 'k':
        if (len != 18) {
            snprintf(errstr, errstr_size, "bad keepalive frame: %zu bytes, expected 18", len);
            return -EBADMSG;
        }
        f->data_start = LSN_INVALID;
        f->wal_end = get_u64(buf + 1);
        f->send_time = (int64_t)get_u64(buf + 9);
        f->reply_requested = buf[17] != 0;
        return 0;
    default:
        snprintf(errstr, errstr_size, "unknown copydata frame type 0x%02x",
                 (unsigned char)buf[0]);
        return -EBADMSG;
    }
}

void wal_status_build(char out[WAL_STATUS_LEN], lsn_t write, lsn_t flush, lsn_t apply,
                      int64_t now_pg, bool reply)
{
    out[0] = 'r';
    put_u64(out + 1, write);
    put_u64(out + 9, flush);
    put_u64(out + 17, apply);
    put_u64(out + 25, (uint64_t)now_pg);
    out[33] = reply ? 1 : 0;
}

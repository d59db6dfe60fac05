/*
 * walproto.h -- the streaming replication protocol's CopyData frames.
 *
 * Inside START_REPLICATION's COPY BOTH stream the server sends XLogData ('w', a
 * header then one pgoutput message) and primary keepalives ('k'); the client sends
 * standby status updates ('r').  These pure functions read and write those frames;
 * the replication client does the I/O.  Reference: PostgreSQL documentation,
 * "Streaming Replication Protocol", and pg_recvlogical.c.
 */
#ifndef RELAY_WALPROTO_H
#define RELAY_WALPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

struct wal_frame {
    char type;              /* 'w' XLogData or 'k' keepalive */
    lsn_t data_start;       /* 'w': WAL position of the message's start */
    lsn_t wal_end;          /* current end of WAL on the server */
    int64_t send_time;      /* server clock, microseconds since 2000-01-01 */
    bool reply_requested;   /* 'k': answer at once or risk wal_sender_timeout */
    const char *data;       /* 'w': the pgoutput message, borrowed from the frame */
    size_t len;
};

/*
 * Parse one CopyData payload.  Returns 0, or -EBADMSG for an unknown type or a
 * truncated frame (errstr says which).  f->data borrows from buf.
 */
int wal_frame_parse(const char *buf, size_t len, struct wal_frame *f, char *errstr,
                    size_t errstr_size);

/* Size of a standby status update. */
#define WAL_STATUS_LEN 34

/*
 * Write a standby status update into out (WAL_STATUS_LEN bytes): write, flush and
 * apply positions, the client clock (microseconds since 2000-01-01) and whether the
 * server should reply at once.  The relay reports apply = flush.
 */
void wal_status_build(char out[WAL_STATUS_LEN], lsn_t write, lsn_t flush, lsn_t apply,
                      int64_t now_pg, bool reply);

/* Microseconds since 2000-01-01 00:00:00 UTC for a Unix time in microseconds. */
static inline int64_t wal_unix_to_pg_us(int64_t unix_us)
{
    return unix_us - INT64_C(946684800000000);
}

#endif /* RELAY_WALPROTO_H */

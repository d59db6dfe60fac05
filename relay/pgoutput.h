/*
 * pgoutput.h -- a pure decoder for PostgreSQL's logical replication protocol.
 *
 * The walsender, running the built-in "pgoutput" plugin, sends one message per
 * CopyData/XLogData frame: Begin, Relation, Insert, ..., Commit, and (with the
 * "messages" option) logical decoding messages.  This module turns the bytes of one
 * such message into a plain C struct.  It does no I/O, keeps no connection state and
 * never logs: the replication client hands it bytes, and the event model reads the
 * structs.  That keeps the whole protocol testable with byte fixtures.
 *
 * Zero copy: strings and column values in a decoded message point into the caller's
 * input buffer (names are NUL-terminated on the wire; column values are not and come
 * with a length).  Arrays (relation columns, tuple columns, truncated relids) live in
 * scratch space owned by the decoder and reused by the next call.  So a decoded
 * message is valid until the next pgo_decode() on the same decoder or until the
 * input buffer is released, whichever comes first.  Anything that must live longer
 * (a relation's description, say) is copied by the caller.
 *
 * Reference: PostgreSQL documentation, "Logical Replication Message Formats", and
 * src/backend/replication/logical/proto.c, the encoder this decoder mirrors.
 * Protocol versions 1 and 2 are understood; version 2 adds the streaming messages
 * and an xid in front of data messages sent inside a stream.
 */
#ifndef RELAY_PGOUTPUT_H
#define RELAY_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef uint32_t pgo_xid_t;
typedef uint32_t pgo_oid_t;

/* Message kinds; the value is the wire byte. */
enum pgo_kind {
    PGO_BEGIN = 'B',
    PGO_COMMIT = 'C',
    PGO_ORIGIN = 'O',
    PGO_RELATION = 'R',
    PGO_TYPE = 'Y',
    PGO_INSERT = 'I',
    PGO_UPDATE = 'U',
    PGO_DELETE = 'D',
    PGO_TRUNCATE = 'T',
    PGO_MESSAGE = 'M',
    PGO_STREAM_START = 'S',  /* protocol 2 */
    PGO_STREAM_STOP = 'E',   /* protocol 2 */
    PGO_STREAM_COMMIT = 'c', /* protocol 2 */
    PGO_STREAM_ABORT = 'A',  /* protocol 2 */
};

/* Kind byte of one column in a TupleData. */
enum pgo_value_kind {
    PGO_VALUE_NULL = 'n',
    PGO_VALUE_UNCHANGED_TOAST = 'u',
    PGO_VALUE_TEXT = 't',
    PGO_VALUE_BINARY = 'b',
};

/* One column of a tuple.  data points into the input buffer; not NUL-terminated. */
struct pgo_value {
    enum pgo_value_kind kind;
    uint32_t len; /* 0 unless kind is TEXT or BINARY */
    const char *data;
};

struct pgo_tuple {
    uint16_t ncols;
    const struct pgo_value *cols; /* decoder scratch */
};

/* Microseconds since 2000-01-01 00:00:00 UTC, PostgreSQL's TimestampTz. */
typedef int64_t pgo_timestamp_t;

struct pgo_begin {
    lsn_t final_lsn; /* LSN of the commit record */
    pgo_timestamp_t commit_time;
    pgo_xid_t xid;
};

struct pgo_commit {
    uint8_t flags;
    lsn_t commit_lsn; /* LSN of the commit record */
    lsn_t end_lsn;    /* end of the commit record: the position to confirm */
    pgo_timestamp_t commit_time;
};

struct pgo_origin {
    lsn_t commit_lsn;
    const char *name;
};

struct pgo_relation_column {
    uint8_t flags; /* 1 = part of the replica identity key */
    const char *name;
    pgo_oid_t type_oid;
    int32_t type_mod;
};

struct pgo_relation {
    pgo_oid_t relid;
    const char *nspname;
    const char *relname;
    char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
    uint16_t ncols;
    const struct pgo_relation_column *cols; /* decoder scratch */
};

struct pgo_type {
    pgo_oid_t oid;
    const char *nspname;
    const char *typname;
};

struct pgo_insert {
    pgo_oid_t relid;
    struct pgo_tuple newtuple;
};

struct pgo_update {
    pgo_oid_t relid;
    char old_kind; /* 0 = no old tuple, 'K' = key columns only, 'O' = whole old row */
    struct pgo_tuple oldtuple;
    struct pgo_tuple newtuple;
};

struct pgo_delete {
    pgo_oid_t relid;
    char old_kind; /* 'K' or 'O' */
    struct pgo_tuple oldtuple;
};

#define PGO_TRUNCATE_CASCADE 1
#define PGO_TRUNCATE_RESTART_IDENTITY 2

struct pgo_truncate {
    uint8_t options; /* PGO_TRUNCATE_* bits */
    uint32_t nrelids;
    const pgo_oid_t *relids; /* decoder scratch */
};

struct pgo_message {
    bool transactional;
    lsn_t lsn;
    const char *prefix;
    uint32_t content_len;
    const char *content; /* not NUL-terminated */
};

struct pgo_stream_start {
    pgo_xid_t xid;
    bool first_segment;
};

struct pgo_stream_commit {
    pgo_xid_t xid;
    uint8_t flags;
    lsn_t commit_lsn;
    lsn_t end_lsn;
    pgo_timestamp_t commit_time;
};

struct pgo_stream_abort {
    pgo_xid_t xid;
    pgo_xid_t subxid;
};

/* One decoded message. */
struct pgo_msg {
    enum pgo_kind kind;
    /*
     * Protocol 2 only: the transaction a data message (Relation, Type, Insert,
     * Update, Delete, Truncate, Message) belongs to when it was sent inside a
     * stream; 0 otherwise.
     */
    pgo_xid_t stream_xid;
    union {
        struct pgo_begin begin;
        struct pgo_commit commit;
        struct pgo_origin origin;
        struct pgo_relation relation;
        struct pgo_type type;
        struct pgo_insert insert;
        struct pgo_update update;
        struct pgo_delete del;
        struct pgo_truncate truncate;
        struct pgo_message message;
        struct pgo_stream_start stream_start;
        struct pgo_stream_commit stream_commit;
        struct pgo_stream_abort stream_abort;
    } u;
};

typedef struct pgo_decoder pgo_decoder;

/*
 * Create a decoder.  Returns NULL only when out of memory.  The decoder owns the
 * scratch arrays that decoded messages point into; free it with pgo_decoder_free().
 */
pgo_decoder *pgo_decoder_new(void);

/* Free a decoder and its scratch space.  pgo_decoder_free(NULL) is a no-op. */
void pgo_decoder_free(pgo_decoder *d);

/*
 * Decode one pgoutput message of len bytes at buf into *out.
 *
 * in_stream tells whether the message arrived between a Stream Start and a Stream
 * Stop (protocol 2): data messages then carry a leading xid, which is returned in
 * out->stream_xid.
 *
 * Returns 0 on success.  Returns -EBADMSG for a truncated, over-long or otherwise
 * malformed message, or an unknown message kind, and -ENOMEM when scratch space
 * cannot grow; in both cases errstr receives a one-line, lowercase description that
 * names the message kind and the byte offset ("truncated insert message: need 4
 * bytes at offset 5, have 2").  Never reads outside [buf, buf + len).  A message
 * with bytes left over after its last field is malformed.
 *
 * Ownership: *out borrows from buf and from the decoder (see the file comment).
 */
int pgo_decode(pgo_decoder *d, const char *buf, size_t len, bool in_stream, struct pgo_msg *out,
               char *errstr, size_t errstr_size);

/* Human-readable name of a message kind ("insert", "stream commit"), or "unknown". */
const char *pgo_kind_name(int kind);

/* Convert a pgoutput timestamp to microseconds since the Unix epoch. */
static inline int64_t pgo_timestamp_to_unix_us(pgo_timestamp_t t)
{
    /* 946684800 s separate 1970-01-01 and 2000-01-01. */
    return t + INT64_C(946684800000000);
}

#endif /* RELAY_PGOUTPUT_H */

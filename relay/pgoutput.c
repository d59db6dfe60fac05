/*
 * pgoutput.c -- decode one pgoutput logical replication message into a plain struct.
 *
 * This is the reading half of PostgreSQL's src/backend/replication/logical/proto.c,
 * rewritten to trust nothing: the bytes come from the network, so every field is read
 * through a bounds-checked cursor and any message that does not parse exactly -- too
 * short, too long, an unknown kind, a length that points past the end -- is rejected
 * with -EBADMSG and a message naming the kind and the byte offset.  The module is pure:
 * no I/O, no logging, no state between calls beyond the scratch arrays it reuses.
 *
 * The cursor's error is sticky.  The first failed read records the error and every read
 * after it returns zero without touching the buffer, so the per-message decoders read
 * their fields in wire order, straight down the page, and check the error only where a
 * value decides what happens next (a count before an allocation, a loop, a marker).  A
 * zero from a failed read is always harmless: a zero count allocates nothing.
 *
 * Scratch arrays grow with realloc and are never shrunk; each message fits the largest
 * seen so far.  Counts read from the wire are checked against the bytes left before
 * anything is allocated, so a hostile count cannot make the decoder allocate more than
 * a small multiple of the message's own size.
 */
#include "pgoutput.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pgo_decoder {
    struct pgo_relation_column *relcols; /* Relation columns */
    size_t relcols_cap;
    struct pgo_value *oldvals; /* old tuple of Update/Delete; never aliases newvals */
    size_t oldvals_cap;
    struct pgo_value *newvals; /* new tuple of Insert/Update */
    size_t newvals_cap;
    pgo_oid_t *relids; /* Truncate relations */
    size_t relids_cap;
};

/* A read position in one message; see the file comment for the sticky error. */
struct cursor {
    const char *buf;
    size_t len;
    size_t pos;
    const char *kind; /* message kind name for error messages: "insert" */
    int err;          /* 0, or the first error: -EBADMSG or -ENOMEM */
    char *errstr;
    size_t errstr_size;
};

/* Smallest wire size of one Relation column: flags, empty name's NUL, type oid, typmod. */
#define RELCOL_MIN_SIZE (1 + 1 + 4 + 4)

static void cur_fail(struct cursor *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first error; later ones are consequences of it and are dropped. */
static void cur_fail(struct cursor *c, int err, const char *fmt, ...)
{
    va_list ap;

    if (c->err)
        return;
    c->err = err;
    if (c->errstr && c->errstr_size > 0) {
        va_start(ap, fmt);
        vsnprintf(c->errstr, c->errstr_size, fmt, ap);
        va_end(ap);
    }
}

static size_t cur_left(const struct cursor *c)
{
    return c->len - c->pos;
}

/* True if n more bytes can be read; otherwise records a truncation error. */
static bool cur_need(struct cursor *c, size_t n)
{
    if (c->err)
        return false;
    if (n > cur_left(c)) {
        cur_fail(c, -EBADMSG, "truncated %s message: need %zu byte%s at offset %zu, have %zu",
                 c->kind, n, n == 1 ? "" : "s", c->pos, cur_left(c));
        return false;
    }
    return true;
}

/*
 * True if count items of at least min_size bytes each can still follow; otherwise
 * records a truncation error.  Called before growing a scratch array for them.
 */
static bool cur_fits(struct cursor *c, uint32_t count, size_t min_size, const char *what)
{
    if (c->err)
        return false;
    if (count > cur_left(c) / min_size) {
        cur_fail(c, -EBADMSG,
                 "truncated %s message: %" PRIu32 " %s need at least %" PRIu64
                 " bytes at offset %zu, "
                 "have %zu",
                 c->kind, count, what, (uint64_t)count * min_size, c->pos, cur_left(c));
        return false;
    }
    return true;
}

/*
 * An unexpected byte for an error message: "\"x\" (0x78)" when printable ASCII, else
 * "0x01".  buf must hold BYTE_DESC_SIZE bytes.
 */
#define BYTE_DESC_SIZE 16

static const char *describe_byte(uint8_t b, char *buf)
{
    if (b >= 0x20 && b < 0x7f)
        snprintf(buf, BYTE_DESC_SIZE, "\"%c\" (0x%02x)", b, b);
    else
        snprintf(buf, BYTE_DESC_SIZE, "0x%02x", b);
    return buf;
}

/* A wire Int32 read as unsigned, reinterpreted as the signed value it encodes. */
static int32_t as_int32(uint32_t u)
{
    int32_t v;

    memcpy(&v, &u, sizeof v);
    return v;
}

static uint8_t rd_u8(struct cursor *c)
{
    if (!cur_need(c, 1))
        return 0;
    return (uint8_t)c->buf[c->pos++];
}

/*
 * Big-endian unsigned integers of 2, 4 and 8 bytes: one unaligned load and a byte
 * swap on little-endian hosts (every column of a tuple has an Int32 length, so these
 * are hot).
 */
static uint16_t rd_u16(struct cursor *c)
{
    uint16_t v;

    if (!cur_need(c, 2))
        return 0;
    memcpy(&v, c->buf + c->pos, 2);
    c->pos += 2;
    return be16toh(v);
}

static uint32_t rd_u32(struct cursor *c)
{
    uint32_t v;

    if (!cur_need(c, 4))
        return 0;
    memcpy(&v, c->buf + c->pos, 4);
    c->pos += 4;
    return be32toh(v);
}

static uint64_t rd_u64(struct cursor *c)
{
    uint64_t v;

    if (!cur_need(c, 8))
        return 0;
    memcpy(&v, c->buf + c->pos, 8);
    c->pos += 8;
    return be64toh(v);
}

/* Int64 TimestampTz; two's complement on the wire as in memory. */
static int64_t rd_i64(struct cursor *c)
{
    uint64_t u = rd_u64(c);
    int64_t v;

    memcpy(&v, &u, sizeof v);
    return v;
}

/*
 * A NUL-terminated String.  Returns a pointer into the buffer, or NULL after an error.
 * The NUL must lie inside the message: a string running off the end is malformed.
 */
static const char *rd_string(struct cursor *c, const char *what)
{
    const char *s, *nul;

    if (c->err)
        return NULL;
    s = c->buf + c->pos;
    nul = memchr(s, '\0', cur_left(c));
    if (nul == NULL) {
        cur_fail(c, -EBADMSG, "unterminated %s string in %s message at offset %zu", what, c->kind,
                 c->pos);
        return NULL;
    }
    c->pos += (size_t)(nul - s) + 1;
    return s;
}

/* n raw bytes.  Returns a pointer into the buffer, or NULL after an error. */
static const char *rd_bytes(struct cursor *c, size_t n)
{
    const char *p;

    if (!cur_need(c, n))
        return NULL;
    p = c->buf + c->pos;
    c->pos += n;
    return p;
}

/*
 * An Int32 length.  A negative one is malformed; one larger than what is left is caught
 * as a truncation by the rd_bytes() that follows.
 */
static uint32_t rd_length(struct cursor *c, const char *what)
{
    size_t at = c->pos;
    uint32_t v = rd_u32(c);

    if (v > INT32_MAX) {
        cur_fail(c, -EBADMSG, "invalid %s length %" PRId32 " in %s message at offset %zu", what,
                 as_int32(v), c->kind, at);
        return 0;
    }
    return v;
}

/*
 * Capacity for need elements of elsize bytes, at least doubling cap; 0 on overflow.
 * Doubling keeps a slowly growing schema from reallocating on every message.
 */
static size_t next_capacity(size_t cap, size_t need, size_t elsize)
{
    size_t n = cap > 8 ? cap : 8;

    while (n < need) {
        if (n > SIZE_MAX / 2)
            return 0;
        n *= 2;
    }
    if (n > SIZE_MAX / elsize)
        return 0;
    return n;
}

static void fail_nomem(struct cursor *c, size_t n, const char *what)
{
    cur_fail(c, -ENOMEM, "out of memory for %zu %s in %s message", n, what, c->kind);
}

static bool reserve_values(struct cursor *c, struct pgo_value **arr, size_t *cap, size_t need)
{
    size_t n;
    struct pgo_value *p;

    if (need <= *cap)
        return true;
    n = next_capacity(*cap, need, sizeof **arr);
    p = n ? realloc(*arr, n * sizeof **arr) : NULL;
    if (p == NULL) {
        fail_nomem(c, need, "tuple columns");
        return false;
    }
    *arr = p;
    *cap = n;
    return true;
}

static bool reserve_relcols(struct cursor *c, pgo_decoder *d, size_t need)
{
    size_t n;
    struct pgo_relation_column *p;

    if (need <= d->relcols_cap)
        return true;
    n = next_capacity(d->relcols_cap, need, sizeof *d->relcols);
    p = n ? realloc(d->relcols, n * sizeof *d->relcols) : NULL;
    if (p == NULL) {
        fail_nomem(c, need, "relation columns");
        return false;
    }
    d->relcols = p;
    d->relcols_cap = n;
    return true;
}

static bool reserve_relids(struct cursor *c, pgo_decoder *d, size_t need)
{
    size_t n;
    pgo_oid_t *p;

    if (need <= d->relids_cap)
        return true;
    n = next_capacity(d->relids_cap, need, sizeof *d->relids);
    p = n ? realloc(d->relids, n * sizeof *d->relids) : NULL;
    if (p == NULL) {
        fail_nomem(c, need, "relation ids");
        return false;
    }
    d->relids = p;
    d->relids_cap = n;
    return true;
}

/*
 * TupleData into the scratch array *arr: Int16 column count, then per column a kind
 * byte and, for text and binary values, an Int32 length and that many bytes.  The count
 * is unsigned on the wire as proto.c's reader treats it.
 */
static void rd_tuple(struct cursor *c, struct pgo_value **arr, size_t *cap, struct pgo_tuple *t)
{
    uint16_t ncols = rd_u16(c); /* Int16 number of columns */

    /* Every column takes at least its kind byte. */
    if (!cur_fits(c, ncols, 1, "tuple columns") || !reserve_values(c, arr, cap, ncols))
        return;
    for (uint16_t i = 0; i < ncols && !c->err; i++) {
        struct pgo_value *v = &(*arr)[i];
        size_t at = c->pos;
        uint8_t kind = rd_u8(c); /* Byte1 'n', 'u', 't' or 'b' */
        char desc[BYTE_DESC_SIZE];

        v->len = 0;
        v->data = NULL;
        switch (kind) {
        case PGO_VALUE_NULL:
        case PGO_VALUE_UNCHANGED_TOAST:
            v->kind = (enum pgo_value_kind)kind;
            break;
        case PGO_VALUE_TEXT:
        case PGO_VALUE_BINARY:
            v->kind = (enum pgo_value_kind)kind;
            v->len = rd_length(c, "column value"); /* Int32 length */
            v->data = rd_bytes(c, v->len);         /* Byten value, not NUL-terminated */
            break;
        default:
            cur_fail(c, -EBADMSG, "invalid tuple column kind %s in %s message at offset %zu",
                     describe_byte(kind, desc), c->kind, at);
            break;
        }
    }
    t->ncols = ncols;
    t->cols = *arr;
}

/* A Byte1 tuple marker that must be one of the characters in allowed. */
static char rd_marker(struct cursor *c, const char *allowed, const char *expected)
{
    size_t at = c->pos;
    uint8_t m = rd_u8(c);
    char desc[BYTE_DESC_SIZE];

    if (c->err)
        return 0;
    if (m == 0 || strchr(allowed, m) == NULL) {
        cur_fail(c, -EBADMSG, "invalid tuple marker %s in %s message at offset %zu: expected %s",
                 describe_byte(m, desc), c->kind, at, expected);
        return 0;
    }
    return (char)m;
}

static void decode_begin(struct cursor *c, struct pgo_begin *m)
{
    m->final_lsn = rd_u64(c);   /* Int64 final LSN of the transaction */
    m->commit_time = rd_i64(c); /* Int64 commit timestamp */
    m->xid = rd_u32(c);         /* Int32 xid */
}

static void decode_commit(struct cursor *c, struct pgo_commit *m)
{
    m->flags = rd_u8(c);        /* Int8 flags, currently unused */
    m->commit_lsn = rd_u64(c);  /* Int64 LSN of the commit */
    m->end_lsn = rd_u64(c);     /* Int64 end LSN of the transaction */
    m->commit_time = rd_i64(c); /* Int64 commit timestamp */
}

static void decode_origin(struct cursor *c, struct pgo_origin *m)
{
    m->commit_lsn = rd_u64(c);             /* Int64 commit LSN on the origin */
    m->name = rd_string(c, "origin name"); /* String origin name */
}

static void decode_relation(struct cursor *c, pgo_decoder *d, struct pgo_relation *m)
{
    uint16_t ncols;

    m->relid = rd_u32(c);                       /* Int32 relation oid */
    m->nspname = rd_string(c, "namespace");     /* String, "" for pg_catalog */
    m->relname = rd_string(c, "relation name"); /* String */
    m->replident = (char)rd_u8(c);              /* Int8 relreplident */
    ncols = rd_u16(c);                          /* Int16 number of columns */

    if (!cur_fits(c, ncols, RELCOL_MIN_SIZE, "relation columns") || !reserve_relcols(c, d, ncols))
        return;
    for (uint16_t i = 0; i < ncols && !c->err; i++) {
        struct pgo_relation_column *col = &d->relcols[i];

        col->flags = rd_u8(c);                   /* Int8 flags, 1 = key column */
        col->name = rd_string(c, "column name"); /* String column name */
        col->type_oid = rd_u32(c);               /* Int32 type oid */
        col->type_mod = as_int32(rd_u32(c));     /* Int32 atttypmod */
    }
    m->ncols = ncols;
    m->cols = d->relcols;
}

static void decode_type(struct cursor *c, struct pgo_type *m)
{
    m->oid = rd_u32(c);                     /* Int32 type oid */
    m->nspname = rd_string(c, "namespace"); /* String, "" for pg_catalog */
    m->typname = rd_string(c, "type name"); /* String */
}

static void decode_insert(struct cursor *c, pgo_decoder *d, struct pgo_insert *m)
{
    m->relid = rd_u32(c);       /* Int32 relation oid */
    rd_marker(c, "N", "\"N\""); /* Byte1 'N': new tuple follows */
    rd_tuple(c, &d->newvals, &d->newvals_cap, &m->newtuple);
}

static void decode_update(struct cursor *c, pgo_decoder *d, struct pgo_update *m)
{
    char marker;

    m->relid = rd_u32(c); /* Int32 relation oid */
    /* Byte1 'K' (old key) or 'O' (old row) and a TupleData, or neither */
    marker = rd_marker(c, "KON", "\"K\", \"O\" or \"N\"");
    if (marker == 'K' || marker == 'O') {
        m->old_kind = marker;
        rd_tuple(c, &d->oldvals, &d->oldvals_cap, &m->oldtuple);
        rd_marker(c, "N", "\"N\""); /* Byte1 'N' */
    }
    /* the new TupleData, its 'N' read above */
    rd_tuple(c, &d->newvals, &d->newvals_cap, &m->newtuple);
}

static void decode_delete(struct cursor *c, pgo_decoder *d, struct pgo_delete *m)
{
    m->relid = rd_u32(c);                               /* Int32 relation oid */
    m->old_kind = rd_marker(c, "KO", "\"K\" or \"O\""); /* Byte1 'K' or 'O' */
    rd_tuple(c, &d->oldvals, &d->oldvals_cap, &m->oldtuple);
}

static void decode_truncate(struct cursor *c, pgo_decoder *d, struct pgo_truncate *m)
{
    size_t at = c->pos;
    uint32_t n = rd_u32(c); /* Int32 number of relations */

    if (n > INT32_MAX) {
        cur_fail(c, -EBADMSG, "invalid relation count %" PRId32 " in %s message at offset %zu",
                 as_int32(n), c->kind, at);
        return;
    }
    m->options = rd_u8(c); /* Int8 1 = CASCADE, 2 = RESTART IDENTITY */
    if (!cur_fits(c, n, 4, "relation ids") || !reserve_relids(c, d, n))
        return;
    for (uint32_t i = 0; i < n; i++)
        d->relids[i] = rd_u32(c); /* Int32 relation oid, n times */
    m->nrelids = n;
    m->relids = d->relids;
}

static void decode_message(struct cursor *c, struct pgo_message *m)
{
    m->transactional = (rd_u8(c) & 1) != 0;   /* Int8 flags, 1 = transactional */
    m->lsn = rd_u64(c);                       /* Int64 LSN of the message */
    m->prefix = rd_string(c, "prefix");       /* String prefix */
    m->content_len = rd_length(c, "content"); /* Int32 length of the content */
    m->content = rd_bytes(c, m->content_len); /* Byten content */
}

static void decode_stream_start(struct cursor *c, struct pgo_stream_start *m)
{
    m->xid = rd_u32(c);               /* Int32 xid */
    m->first_segment = rd_u8(c) == 1; /* Int8 1 = first segment for this xid */
}

static void decode_stream_commit(struct cursor *c, struct pgo_stream_commit *m)
{
    m->xid = rd_u32(c);         /* Int32 xid */
    m->flags = rd_u8(c);        /* Int8 flags, currently unused */
    m->commit_lsn = rd_u64(c);  /* Int64 LSN of the commit */
    m->end_lsn = rd_u64(c);     /* Int64 end LSN of the transaction */
    m->commit_time = rd_i64(c); /* Int64 commit timestamp */
}

static void decode_stream_abort(struct cursor *c, struct pgo_stream_abort *m)
{
    m->xid = rd_u32(c);    /* Int32 xid */
    m->subxid = rd_u32(c); /* Int32 subtransaction xid, = xid for the top level */
}

/* Data messages, which carry a leading xid when sent inside a stream (protocol 2). */
static bool kind_has_stream_xid(int kind)
{
    switch (kind) {
    case PGO_RELATION:
    case PGO_TYPE:
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
    case PGO_TRUNCATE:
    case PGO_MESSAGE:
        return true;
    default:
        return false;
    }
}

pgo_decoder *pgo_decoder_new(void)
{
    /* Scratch arrays start empty and grow on first use. */
    return calloc(1, sizeof(pgo_decoder));
}

void pgo_decoder_free(pgo_decoder *d)
{
    if (d == NULL)
        return;
    free(d->relcols);
    free(d->oldvals);
    free(d->newvals);
    free(d->relids);
    free(d);
}

int pgo_decode(pgo_decoder *d, const char *buf, size_t len, bool in_stream, struct pgo_msg *out,
               char *errstr, size_t errstr_size)
{
    struct cursor c = {
        .buf = buf,
        .len = len,
        .pos = 0,
        .kind = "unknown",
        .err = 0,
        .errstr = errstr,
        .errstr_size = errstr_size,
    };
    uint8_t kind;

    memset(out, 0, sizeof *out);
    if (len == 0) {
        cur_fail(&c, -EBADMSG, "truncated message: need 1 byte at offset 0, have 0");
        return c.err;
    }

    kind = rd_u8(&c); /* Byte1 message kind */
    c.kind = pgo_kind_name(kind);
    if (strcmp(c.kind, "unknown") == 0) {
        char desc[BYTE_DESC_SIZE];

        cur_fail(&c, -EBADMSG, "unknown message kind %s at offset 0", describe_byte(kind, desc));
        return c.err;
    }
    out->kind = (enum pgo_kind)kind;

    if (in_stream && kind_has_stream_xid(kind))
        out->stream_xid = rd_u32(&c); /* Int32 xid of the streamed transaction */

    switch (out->kind) {
    case PGO_BEGIN:
        decode_begin(&c, &out->u.begin);
        break;
    case PGO_COMMIT:
        decode_commit(&c, &out->u.commit);
        break;
    case PGO_ORIGIN:
        decode_origin(&c, &out->u.origin);
        break;
    case PGO_RELATION:
        decode_relation(&c, d, &out->u.relation);
        break;
    case PGO_TYPE:
        decode_type(&c, &out->u.type);
        break;
    case PGO_INSERT:
        decode_insert(&c, d, &out->u.insert);
        break;
    case PGO_UPDATE:
        decode_update(&c, d, &out->u.update);
        break;
    case PGO_DELETE:
        decode_delete(&c, d, &out->u.del);
        break;
    case PGO_TRUNCATE:
        decode_truncate(&c, d, &out->u.truncate);
        break;
    case PGO_MESSAGE:
        decode_message(&c, &out->u.message);
        break;
    case PGO_STREAM_START:
        decode_stream_start(&c, &out->u.stream_start);
        break;
    case PGO_STREAM_STOP:
        break; /* no fields */
    case PGO_STREAM_COMMIT:
        decode_stream_commit(&c, &out->u.stream_commit);
        break;
    case PGO_STREAM_ABORT:
        decode_stream_abort(&c, &out->u.stream_abort);
        break;
    }

    if (!c.err && c.pos != c.len)
        cur_fail(&c, -EBADMSG, "trailing data after %s message: %zu byte%s at offset %zu", c.kind,
                 cur_left(&c), cur_left(&c) == 1 ? "" : "s", c.pos);
    return c.err;
}

const char *pgo_kind_name(int kind)
{
    switch (kind) {
    case PGO_BEGIN:
        return "begin";
    case PGO_COMMIT:
        return "commit";
    case PGO_ORIGIN:
        return "origin";
    case PGO_RELATION:
        return "relation";
    case PGO_TYPE:
        return "type";
    case PGO_INSERT:
        return "insert";
    case PGO_UPDATE:
        return "update";
    case PGO_DELETE:
        return "delete";
    case PGO_TRUNCATE:
        return "truncate";
    case PGO_MESSAGE:
        return "message";
    case PGO_STREAM_START:
        return "stream start";
    case PGO_STREAM_STOP:
        return "stream stop";
    case PGO_STREAM_COMMIT:
        return "stream commit";
    case PGO_STREAM_ABORT:
        return "stream abort";
    default:
        return "unknown";
    }
}

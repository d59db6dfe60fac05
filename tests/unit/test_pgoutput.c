/*
 * test_pgoutput.c -- unit tests for the pgoutput decoder (relay/pgoutput.c).
 *
 * Fixtures are built byte by byte with a small big-endian writer that mirrors what
 * PostgreSQL 15's proto.c sends (pq_sendbyte, pq_sendint16/32/64, pq_sendstring), plus
 * two literal byte arrays that pin the writer itself to the wire layout.  Every fixture
 * is decoded from an exactly sized heap copy, so AddressSanitizer reports any read past
 * the end of the message.
 *
 * Beyond the per-message checks, every fixture is fed to the decoder truncated at every
 * byte offset and with a trailing byte appended; each of those must be rejected with
 * -EBADMSG and a lowercase error naming the message kind and an offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

/* Values used throughout the fixtures; distinct bytes so an endianness slip shows. */
#define XID 745u                                /* 00 00 02 e9 */
#define STREAM_XID 123456u                      /* 00 01 e2 40 */
#define SUBXID 123460u                          /* 00 01 e2 44 */
#define FINAL_LSN UINT64_C(0x0000000116B374D8)  /* 1/16B374D8 */
#define END_LSN UINT64_C(0x0000000116B37508)    /* 1/16B37508 */
#define ORIGIN_LSN UINT64_C(0x00000002ABCDEF01) /* 2/ABCDEF01 */
#define MSG_LSN UINT64_C(0x0000000116B37400)    /* 1/16B37400 */
#define COMMIT_TIME INT64_C(725846400123456)    /* 2023-01-01 00:00:00.123456 UTC */
#define RELID 16390u                            /* 00 00 40 06 */
#define RELID2 16395u
#define TYPE_OID 16400u

#define OID_UUID 2950u
#define OID_JSONB 3802u
#define OID_VARCHAR 1043u
#define OID_BYTEA 17u

/* ---- a big-endian writer, after PostgreSQL's pqformat.c ---- */

struct wbuf {
    unsigned char b[65536];
    size_t len;
};

static void w_reset(struct wbuf *w)
{
    w->len = 0;
}

static void w_mem(struct wbuf *w, const void *p, size_t n)
{
    assert_true(n <= sizeof w->b - w->len);
    memcpy(w->b + w->len, p, n);
    w->len += n;
}

static void w_u8(struct wbuf *w, unsigned v)
{
    unsigned char c = (unsigned char)v;

    w_mem(w, &c, 1);
}

static void w_be(struct wbuf *w, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--)
        w_u8(w, (unsigned)((v >> (8 * (i - 1))) & 0xff));
}

static void w_u16(struct wbuf *w, unsigned v)
{
    w_be(w, v, 2);
}

static void w_u32(struct wbuf *w, uint32_t v)
{
    w_be(w, v, 4);
}

static void w_u64(struct wbuf *w, uint64_t v)
{
    w_be(w, v, 8);
}

/* pq_sendstring: the bytes and their NUL. */
static void w_str(struct wbuf *w, const char *s)
{
    w_mem(w, s, strlen(s) + 1);
}

/* One column of a Relation message. */
static void w_relcol(struct wbuf *w, unsigned flags, const char *name, uint32_t type_oid,
                     int32_t type_mod)
{
    w_u8(w, flags);
    w_str(w, name);
    w_u32(w, type_oid);
    w_u32(w, (uint32_t)type_mod);
}

/* TupleData column parts; the Int16 count is written by the caller with w_u16(). */
static void w_null(struct wbuf *w)
{
    w_u8(w, 'n');
}

static void w_toast(struct wbuf *w)
{
    w_u8(w, 'u');
}

static void w_text(struct wbuf *w, const char *s)
{
    w_u8(w, 't');
    w_u32(w, (uint32_t)strlen(s));
    w_mem(w, s, strlen(s));
}

static void w_binary(struct wbuf *w, const void *p, uint32_t n)
{
    w_u8(w, 'b');
    w_u32(w, n);
    w_mem(w, p, n);
}

/* ---- fixtures: one message each, as proto.c writes it ---- */

static const unsigned char BIN_VALUE[] = {0x00, 0xde, 0xad, 0x00, 0xff};

static void fx_begin(struct wbuf *w)
{
    w_u8(w, 'B');
    w_u64(w, FINAL_LSN);
    w_u64(w, (uint64_t)COMMIT_TIME);
    w_u32(w, XID);
}

static void fx_commit(struct wbuf *w)
{
    w_u8(w, 'C');
    w_u8(w, 0);
    w_u64(w, FINAL_LSN);
    w_u64(w, END_LSN);
    w_u64(w, (uint64_t)COMMIT_TIME);
}

static void fx_origin(struct wbuf *w)
{
    w_u8(w, 'O');
    w_u64(w, ORIGIN_LSN);
    w_str(w, "pg_16385");
}

static void relation_body(struct wbuf *w)
{
    w_u32(w, RELID);
    w_str(w, "public");
    w_str(w, "outbox");
    w_u8(w, 'd');
    w_u16(w, 3);
    w_relcol(w, 1, "id", OID_UUID, -1);
    w_relcol(w, 0, "payload", OID_JSONB, -1);
    w_relcol(w, 0, "topic", OID_VARCHAR, 68); /* varchar(64): 64 + VARHDRSZ */
}

static void fx_relation(struct wbuf *w)
{
    w_u8(w, 'R');
    relation_body(w);
}

static void fx_relation_stream(struct wbuf *w)
{
    w_u8(w, 'R');
    w_u32(w, STREAM_XID);
    relation_body(w);
}

/* A pg_catalog relation (empty namespace) published with no columns. */
static void fx_relation_nocols(struct wbuf *w)
{
    w_u8(w, 'R');
    w_u32(w, RELID2);
    w_str(w, "");
    w_str(w, "empty");
    w_u8(w, 'n');
    w_u16(w, 0);
}

static void fx_type(struct wbuf *w)
{
    w_u8(w, 'Y');
    w_u32(w, TYPE_OID);
    w_str(w, "public");
    w_str(w, "mood");
}

static void fx_type_stream(struct wbuf *w)
{
    w_u8(w, 'Y');
    w_u32(w, STREAM_XID);
    w_u32(w, TYPE_OID);
    w_str(w, "");
    w_str(w, "int4");
}

/* text, binary, null, empty text */
static void insert_tuple(struct wbuf *w)
{
    w_u16(w, 4);
    w_text(w, "0f3c9a7e-1b2d-4c5e-8f90-a1b2c3d4e5f6");
    w_binary(w, BIN_VALUE, sizeof BIN_VALUE);
    w_null(w);
    w_text(w, "");
}

static void fx_insert(struct wbuf *w)
{
    w_u8(w, 'I');
    w_u32(w, RELID);
    w_u8(w, 'N');
    insert_tuple(w);
}

static void fx_insert_stream(struct wbuf *w)
{
    w_u8(w, 'I');
    w_u32(w, STREAM_XID);
    w_u32(w, RELID);
    w_u8(w, 'N');
    insert_tuple(w);
}

static void fx_insert_nocols(struct wbuf *w)
{
    w_u8(w, 'I');
    w_u32(w, RELID2);
    w_u8(w, 'N');
    w_u16(w, 0);
}

/* Update of a table with REPLICA IDENTITY DEFAULT whose key did not change. */
static void fx_update(struct wbuf *w)
{
    w_u8(w, 'U');
    w_u32(w, RELID);
    w_u8(w, 'N');
    w_u16(w, 3);
    w_text(w, "42");
    w_text(w, "{\"a\": 1}");
    w_toast(w);
}

/* Update that changed the key: the old key columns, others null. */
static void fx_update_key(struct wbuf *w)
{
    w_u8(w, 'U');
    w_u32(w, RELID);
    w_u8(w, 'K');
    w_u16(w, 3);
    w_text(w, "41");
    w_null(w);
    w_null(w);
    w_u8(w, 'N');
    w_u16(w, 3);
    w_text(w, "42");
    w_text(w, "{}");
    w_toast(w);
}

static void update_full_body(struct wbuf *w)
{
    w_u32(w, RELID);
    w_u8(w, 'O');
    w_u16(w, 2);
    w_text(w, "7");
    w_text(w, "old");
    w_u8(w, 'N');
    w_u16(w, 2);
    w_text(w, "7");
    w_binary(w, BIN_VALUE, sizeof BIN_VALUE);
}

/* Update of a REPLICA IDENTITY FULL table: the whole old row. */
static void fx_update_full(struct wbuf *w)
{
    w_u8(w, 'U');
    update_full_body(w);
}

static void fx_update_full_stream(struct wbuf *w)
{
    w_u8(w, 'U');
    w_u32(w, STREAM_XID);
    update_full_body(w);
}

static void fx_delete_key(struct wbuf *w)
{
    w_u8(w, 'D');
    w_u32(w, RELID);
    w_u8(w, 'K');
    w_u16(w, 3);
    w_text(w, "42");
    w_null(w);
    w_null(w);
}

static void delete_full_body(struct wbuf *w)
{
    w_u32(w, RELID);
    w_u8(w, 'O');
    w_u16(w, 3);
    w_text(w, "42");
    w_text(w, "{}");
    w_null(w);
}

static void fx_delete_full(struct wbuf *w)
{
    w_u8(w, 'D');
    delete_full_body(w);
}

static void fx_delete_full_stream(struct wbuf *w)
{
    w_u8(w, 'D');
    w_u32(w, STREAM_XID);
    delete_full_body(w);
}

static void fx_truncate(struct wbuf *w)
{
    w_u8(w, 'T');
    w_u32(w, 2);
    w_u8(w, PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY);
    w_u32(w, RELID);
    w_u32(w, RELID2);
}

static void fx_truncate_stream(struct wbuf *w)
{
    w_u8(w, 'T');
    w_u32(w, STREAM_XID);
    w_u32(w, 1);
    w_u8(w, 0);
    w_u32(w, RELID);
}

static const char MSG_CONTENT[] = "{\"id\": 1}\0tail"; /* embedded NUL on purpose */

static void fx_message(struct wbuf *w)
{
    w_u8(w, 'M');
    w_u8(w, 1);
    w_u64(w, MSG_LSN);
    w_str(w, "outbox");
    w_u32(w, sizeof MSG_CONTENT - 1);
    w_mem(w, MSG_CONTENT, sizeof MSG_CONTENT - 1);
}

static void fx_message_empty(struct wbuf *w)
{
    w_u8(w, 'M');
    w_u8(w, 0);
    w_u64(w, MSG_LSN);
    w_str(w, "");
    w_u32(w, 0);
}

static void fx_message_stream(struct wbuf *w)
{
    w_u8(w, 'M');
    w_u32(w, STREAM_XID);
    w_u8(w, 1);
    w_u64(w, MSG_LSN);
    w_str(w, "outbox");
    w_u32(w, 2);
    w_mem(w, "hi", 2);
}

static void fx_stream_start(struct wbuf *w)
{
    w_u8(w, 'S');
    w_u32(w, STREAM_XID);
    w_u8(w, 1);
}

static void fx_stream_stop(struct wbuf *w)
{
    w_u8(w, 'E');
}

static void fx_stream_commit(struct wbuf *w)
{
    w_u8(w, 'c');
    w_u32(w, STREAM_XID);
    w_u8(w, 0);
    w_u64(w, FINAL_LSN);
    w_u64(w, END_LSN);
    w_u64(w, (uint64_t)COMMIT_TIME);
}

static void fx_stream_abort(struct wbuf *w)
{
    w_u8(w, 'A');
    w_u32(w, STREAM_XID);
    w_u32(w, SUBXID);
}

struct fixture {
    const char *name;
    void (*build)(struct wbuf *w);
    bool in_stream;
    int kind;
};

static const struct fixture FIXTURES[] = {
    {"begin", fx_begin, false, PGO_BEGIN},
    {"commit", fx_commit, false, PGO_COMMIT},
    {"origin", fx_origin, false, PGO_ORIGIN},
    {"relation", fx_relation, false, PGO_RELATION},
    {"relation in stream", fx_relation_stream, true, PGO_RELATION},
    {"relation without columns", fx_relation_nocols, false, PGO_RELATION},
    {"type", fx_type, false, PGO_TYPE},
    {"type in stream", fx_type_stream, true, PGO_TYPE},
    {"insert", fx_insert, false, PGO_INSERT},
    {"insert in stream", fx_insert_stream, true, PGO_INSERT},
    {"insert without columns", fx_insert_nocols, false, PGO_INSERT},
    {"update", fx_update, false, PGO_UPDATE},
    {"update with key", fx_update_key, false, PGO_UPDATE},
    {"update with old row", fx_update_full, false, PGO_UPDATE},
    {"update in stream", fx_update_full_stream, true, PGO_UPDATE},
    {"delete with key", fx_delete_key, false, PGO_DELETE},
    {"delete with old row", fx_delete_full, false, PGO_DELETE},
    {"delete in stream", fx_delete_full_stream, true, PGO_DELETE},
    {"truncate", fx_truncate, false, PGO_TRUNCATE},
    {"truncate in stream", fx_truncate_stream, true, PGO_TRUNCATE},
    {"message", fx_message, false, PGO_MESSAGE},
    {"empty message", fx_message_empty, false, PGO_MESSAGE},
    {"message in stream", fx_message_stream, true, PGO_MESSAGE},
    {"stream start", fx_stream_start, false, PGO_STREAM_START},
    {"stream stop", fx_stream_stop, true, PGO_STREAM_STOP},
    {"stream commit", fx_stream_commit, false, PGO_STREAM_COMMIT},
    {"stream abort", fx_stream_abort, false, PGO_STREAM_ABORT},
};

#define NFIXTURES (sizeof FIXTURES / sizeof FIXTURES[0])

/* ---- per-test state: a decoder, an exactly sized copy of the input, an error buffer ---- */

struct ctx {
    pgo_decoder *d;
    char *copy;
    struct wbuf w;
    char errstr[256];
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);

    if (c == NULL)
        return -1;
    c->d = pgo_decoder_new();
    if (c->d == NULL) {
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;

    pgo_decoder_free(c->d);
    free(c->copy);
    free(c);
    return 0;
}

/*
 * Decode the first n bytes of b from a heap copy of exactly n bytes.  The copy stays
 * alive (decoded pointers borrow from it) until the next call or teardown.
 */
static int decode_bytes(struct ctx *c, const void *b, size_t n, bool in_stream, struct pgo_msg *m)
{
    free(c->copy);
    c->copy = malloc(n > 0 ? n : 1);
    assert_non_null(c->copy);
    if (n > 0)
        memcpy(c->copy, b, n);
    memset(c->errstr, 0, sizeof c->errstr);
    return pgo_decode(c->d, c->copy, n, in_stream, m, c->errstr, sizeof c->errstr);
}

static int decode_w(struct ctx *c, bool in_stream, struct pgo_msg *m)
{
    return decode_bytes(c, c->w.b, c->w.len, in_stream, m);
}

/* Build fixture fn into c->w and decode it; it must succeed. */
static void decode_ok(struct ctx *c, void (*fn)(struct wbuf *), bool in_stream, struct pgo_msg *m)
{
    int rc;

    w_reset(&c->w);
    fn(&c->w);
    rc = decode_w(c, in_stream, m);
    if (rc != 0)
        fail_msg("decode failed (%d): %s", rc, c->errstr);
}

/* Decode c->w; it must fail with -EBADMSG and an error containing want. */
static void decode_bad(struct ctx *c, bool in_stream, const char *want)
{
    struct pgo_msg m;

    assert_int_equal(decode_w(c, in_stream, &m), -EBADMSG);
    if (strstr(c->errstr, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", c->errstr, want);
}

static void assert_value(const struct pgo_value *v, enum pgo_value_kind kind, const void *data,
                         uint32_t len)
{
    assert_int_equal(v->kind, kind);
    assert_int_equal(v->len, len);
    if (kind == PGO_VALUE_TEXT || kind == PGO_VALUE_BINARY) {
        assert_non_null(v->data);
        if (len > 0)
            assert_memory_equal(v->data, data, len);
    }
}

static void assert_text(const struct pgo_value *v, const char *s)
{
    assert_value(v, PGO_VALUE_TEXT, s, (uint32_t)strlen(s));
}

/* ---- wire layout pinned by literal bytes ---- */

static void test_literal_begin(void **state)
{
    static const unsigned char bytes[] = {
        'B',  0x00, 0x00, 0x00, 0x01, 0x16, 0xb3, 0x74, 0xd8, /* final lsn 1/16B374D8 */
        0x00, 0x02, 0x94, 0x27, 0x48, 0xd7, 0x42, 0x40,       /* 2023-01-01 00:00:00.123456 */
        0x00, 0x00, 0x02, 0xe9,                               /* xid 745 */
    };
    struct ctx *c = *state;
    struct pgo_msg m;

    assert_int_equal(decode_bytes(c, bytes, sizeof bytes, false, &m), 0);
    assert_int_equal(m.kind, PGO_BEGIN);
    assert_true(m.u.begin.final_lsn == FINAL_LSN);
    assert_true(m.u.begin.commit_time == COMMIT_TIME);
    assert_int_equal(m.u.begin.xid, XID);

    /* The writer produces the same bytes. */
    w_reset(&c->w);
    fx_begin(&c->w);
    assert_int_equal(c->w.len, sizeof bytes);
    assert_memory_equal(c->w.b, bytes, sizeof bytes);
}

static void test_literal_insert(void **state)
{
    /* clang-format off */
    static const unsigned char bytes[] = {
        'I', 0x00, 0x00, 0x40, 0x06,            /* relid 16390 */
        'N', 0x00, 0x03,                        /* new tuple, 3 columns */
        't', 0x00, 0x00, 0x00, 0x02, '4', '2',  /* text "42" */
        'n',                                    /* null */
        'b', 0x00, 0x00, 0x00, 0x01, 0x80,      /* binary 0x80 */
    };
    /* clang-format on */
    struct ctx *c = *state;
    struct pgo_msg m;
    const unsigned char b80 = 0x80;

    assert_int_equal(decode_bytes(c, bytes, sizeof bytes, false, &m), 0);
    assert_int_equal(m.kind, PGO_INSERT);
    assert_int_equal(m.stream_xid, 0);
    assert_int_equal(m.u.insert.relid, RELID);
    assert_int_equal(m.u.insert.newtuple.ncols, 3);
    assert_text(&m.u.insert.newtuple.cols[0], "42");
    assert_value(&m.u.insert.newtuple.cols[1], PGO_VALUE_NULL, NULL, 0);
    assert_value(&m.u.insert.newtuple.cols[2], PGO_VALUE_BINARY, &b80, 1);
    /* Zero copy: the value points into the input buffer. */
    assert_ptr_equal(m.u.insert.newtuple.cols[0].data, c->copy + 13);
}

/* ---- one test per message kind ---- */

static void test_begin(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_begin, false, &m);
    assert_int_equal(m.kind, PGO_BEGIN);
    assert_int_equal(m.stream_xid, 0);
    assert_true(m.u.begin.final_lsn == FINAL_LSN);
    assert_true(m.u.begin.commit_time == COMMIT_TIME);
    assert_int_equal(m.u.begin.xid, XID);
}

static void test_commit(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_commit, false, &m);
    assert_int_equal(m.kind, PGO_COMMIT);
    assert_int_equal(m.u.commit.flags, 0);
    assert_true(m.u.commit.commit_lsn == FINAL_LSN);
    assert_true(m.u.commit.end_lsn == END_LSN);
    assert_true(m.u.commit.commit_time == COMMIT_TIME);
}

static void test_origin(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_origin, false, &m);
    assert_int_equal(m.kind, PGO_ORIGIN);
    assert_true(m.u.origin.commit_lsn == ORIGIN_LSN);
    assert_string_equal(m.u.origin.name, "pg_16385");
    assert_ptr_equal(m.u.origin.name, c->copy + 9);
}

static void check_outbox_relation(const struct pgo_relation *r)
{
    assert_int_equal(r->relid, RELID);
    assert_string_equal(r->nspname, "public");
    assert_string_equal(r->relname, "outbox");
    assert_int_equal(r->replident, 'd');
    assert_int_equal(r->ncols, 3);
    assert_int_equal(r->cols[0].flags, 1);
    assert_string_equal(r->cols[0].name, "id");
    assert_int_equal(r->cols[0].type_oid, OID_UUID);
    assert_int_equal(r->cols[0].type_mod, -1);
    assert_int_equal(r->cols[1].flags, 0);
    assert_string_equal(r->cols[1].name, "payload");
    assert_int_equal(r->cols[1].type_oid, OID_JSONB);
    assert_int_equal(r->cols[1].type_mod, -1);
    assert_int_equal(r->cols[2].flags, 0);
    assert_string_equal(r->cols[2].name, "topic");
    assert_int_equal(r->cols[2].type_oid, OID_VARCHAR);
    assert_int_equal(r->cols[2].type_mod, 68);
}

static void test_relation(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_relation, false, &m);
    assert_int_equal(m.kind, PGO_RELATION);
    assert_int_equal(m.stream_xid, 0);
    check_outbox_relation(&m.u.relation);
}

static void test_relation_stream(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_relation_stream, true, &m);
    assert_int_equal(m.kind, PGO_RELATION);
    assert_int_equal(m.stream_xid, STREAM_XID);
    check_outbox_relation(&m.u.relation);
}

static void test_relation_nocols(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_relation_nocols, false, &m);
    assert_int_equal(m.kind, PGO_RELATION);
    assert_int_equal(m.u.relation.relid, RELID2);
    assert_string_equal(m.u.relation.nspname, ""); /* pg_catalog */
    assert_string_equal(m.u.relation.relname, "empty");
    assert_int_equal(m.u.relation.replident, 'n');
    assert_int_equal(m.u.relation.ncols, 0);
}

static void test_type(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_type, false, &m);
    assert_int_equal(m.kind, PGO_TYPE);
    assert_int_equal(m.stream_xid, 0);
    assert_int_equal(m.u.type.oid, TYPE_OID);
    assert_string_equal(m.u.type.nspname, "public");
    assert_string_equal(m.u.type.typname, "mood");

    decode_ok(c, fx_type_stream, true, &m);
    assert_int_equal(m.kind, PGO_TYPE);
    assert_int_equal(m.stream_xid, STREAM_XID);
    assert_int_equal(m.u.type.oid, TYPE_OID);
    assert_string_equal(m.u.type.nspname, "");
    assert_string_equal(m.u.type.typname, "int4");
}

static void check_insert_tuple(const struct pgo_tuple *t)
{
    assert_int_equal(t->ncols, 4);
    assert_text(&t->cols[0], "0f3c9a7e-1b2d-4c5e-8f90-a1b2c3d4e5f6");
    assert_value(&t->cols[1], PGO_VALUE_BINARY, BIN_VALUE, sizeof BIN_VALUE);
    assert_value(&t->cols[2], PGO_VALUE_NULL, NULL, 0);
    assert_null(t->cols[2].data);
    assert_value(&t->cols[3], PGO_VALUE_TEXT, "", 0);
}

static void test_insert(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_insert, false, &m);
    assert_int_equal(m.kind, PGO_INSERT);
    assert_int_equal(m.stream_xid, 0);
    assert_int_equal(m.u.insert.relid, RELID);
    check_insert_tuple(&m.u.insert.newtuple);

    decode_ok(c, fx_insert_stream, true, &m);
    assert_int_equal(m.kind, PGO_INSERT);
    assert_int_equal(m.stream_xid, STREAM_XID);
    assert_int_equal(m.u.insert.relid, RELID);
    check_insert_tuple(&m.u.insert.newtuple);
}

static void test_insert_nocols(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_insert_nocols, false, &m);
    assert_int_equal(m.kind, PGO_INSERT);
    assert_int_equal(m.u.insert.relid, RELID2);
    assert_int_equal(m.u.insert.newtuple.ncols, 0);
}

static void test_update_no_old(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_update, false, &m);
    assert_int_equal(m.kind, PGO_UPDATE);
    assert_int_equal(m.u.update.relid, RELID);
    assert_int_equal(m.u.update.old_kind, 0);
    assert_int_equal(m.u.update.oldtuple.ncols, 0);
    assert_int_equal(m.u.update.newtuple.ncols, 3);
    assert_text(&m.u.update.newtuple.cols[0], "42");
    assert_text(&m.u.update.newtuple.cols[1], "{\"a\": 1}");
    assert_value(&m.u.update.newtuple.cols[2], PGO_VALUE_UNCHANGED_TOAST, NULL, 0);
    assert_null(m.u.update.newtuple.cols[2].data);
}

static void test_update_key(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;
    const struct pgo_tuple *o, *n;

    decode_ok(c, fx_update_key, false, &m);
    assert_int_equal(m.kind, PGO_UPDATE);
    assert_int_equal(m.u.update.relid, RELID);
    assert_int_equal(m.u.update.old_kind, 'K');
    o = &m.u.update.oldtuple;
    n = &m.u.update.newtuple;
    /* Old and new tuples live in separate scratch arrays. */
    assert_ptr_not_equal(o->cols, n->cols);
    assert_int_equal(o->ncols, 3);
    assert_text(&o->cols[0], "41");
    assert_value(&o->cols[1], PGO_VALUE_NULL, NULL, 0);
    assert_value(&o->cols[2], PGO_VALUE_NULL, NULL, 0);
    assert_int_equal(n->ncols, 3);
    assert_text(&n->cols[0], "42");
    assert_text(&n->cols[1], "{}");
    assert_value(&n->cols[2], PGO_VALUE_UNCHANGED_TOAST, NULL, 0);
}

static void check_update_full(const struct pgo_msg *m)
{
    const struct pgo_tuple *o = &m->u.update.oldtuple, *n = &m->u.update.newtuple;

    assert_int_equal(m->kind, PGO_UPDATE);
    assert_int_equal(m->u.update.relid, RELID);
    assert_int_equal(m->u.update.old_kind, 'O');
    assert_ptr_not_equal(o->cols, n->cols);
    assert_int_equal(o->ncols, 2);
    assert_text(&o->cols[0], "7");
    assert_text(&o->cols[1], "old");
    assert_int_equal(n->ncols, 2);
    assert_text(&n->cols[0], "7");
    assert_value(&n->cols[1], PGO_VALUE_BINARY, BIN_VALUE, sizeof BIN_VALUE);
}

static void test_update_full(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_update_full, false, &m);
    assert_int_equal(m.stream_xid, 0);
    check_update_full(&m);

    decode_ok(c, fx_update_full_stream, true, &m);
    assert_int_equal(m.stream_xid, STREAM_XID);
    check_update_full(&m);
}

static void test_delete(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_delete_key, false, &m);
    assert_int_equal(m.kind, PGO_DELETE);
    assert_int_equal(m.stream_xid, 0);
    assert_int_equal(m.u.del.relid, RELID);
    assert_int_equal(m.u.del.old_kind, 'K');
    assert_int_equal(m.u.del.oldtuple.ncols, 3);
    assert_text(&m.u.del.oldtuple.cols[0], "42");
    assert_value(&m.u.del.oldtuple.cols[1], PGO_VALUE_NULL, NULL, 0);
    assert_value(&m.u.del.oldtuple.cols[2], PGO_VALUE_NULL, NULL, 0);

    decode_ok(c, fx_delete_full, false, &m);
    assert_int_equal(m.u.del.old_kind, 'O');
    assert_int_equal(m.u.del.oldtuple.ncols, 3);
    assert_text(&m.u.del.oldtuple.cols[1], "{}");

    decode_ok(c, fx_delete_full_stream, true, &m);
    assert_int_equal(m.kind, PGO_DELETE);
    assert_int_equal(m.stream_xid, STREAM_XID);
    assert_int_equal(m.u.del.relid, RELID);
    assert_int_equal(m.u.del.old_kind, 'O');
    assert_int_equal(m.u.del.oldtuple.ncols, 3);
    assert_text(&m.u.del.oldtuple.cols[0], "42");
}

static void test_truncate(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_truncate, false, &m);
    assert_int_equal(m.kind, PGO_TRUNCATE);
    assert_int_equal(m.stream_xid, 0);
    assert_int_equal(m.u.truncate.options, PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY);
    assert_int_equal(m.u.truncate.nrelids, 2);
    assert_int_equal(m.u.truncate.relids[0], RELID);
    assert_int_equal(m.u.truncate.relids[1], RELID2);

    decode_ok(c, fx_truncate_stream, true, &m);
    assert_int_equal(m.kind, PGO_TRUNCATE);
    assert_int_equal(m.stream_xid, STREAM_XID);
    assert_int_equal(m.u.truncate.options, 0);
    assert_int_equal(m.u.truncate.nrelids, 1);
    assert_int_equal(m.u.truncate.relids[0], RELID);
}

static void test_message(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_message, false, &m);
    assert_int_equal(m.kind, PGO_MESSAGE);
    assert_int_equal(m.stream_xid, 0);
    assert_true(m.u.message.transactional);
    assert_true(m.u.message.lsn == MSG_LSN);
    assert_string_equal(m.u.message.prefix, "outbox");
    assert_int_equal(m.u.message.content_len, sizeof MSG_CONTENT - 1);
    assert_memory_equal(m.u.message.content, MSG_CONTENT, sizeof MSG_CONTENT - 1);

    decode_ok(c, fx_message_empty, false, &m);
    assert_false(m.u.message.transactional);
    assert_string_equal(m.u.message.prefix, "");
    assert_int_equal(m.u.message.content_len, 0);

    decode_ok(c, fx_message_stream, true, &m);
    assert_int_equal(m.kind, PGO_MESSAGE);
    assert_int_equal(m.stream_xid, STREAM_XID);
    assert_true(m.u.message.transactional);
    assert_true(m.u.message.lsn == MSG_LSN);
    assert_string_equal(m.u.message.prefix, "outbox");
    assert_int_equal(m.u.message.content_len, 2);
    assert_memory_equal(m.u.message.content, "hi", 2);
}

static void test_stream_control(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    decode_ok(c, fx_stream_start, false, &m);
    assert_int_equal(m.kind, PGO_STREAM_START);
    assert_int_equal(m.stream_xid, 0);
    assert_int_equal(m.u.stream_start.xid, STREAM_XID);
    assert_true(m.u.stream_start.first_segment);

    w_reset(&c->w);
    w_u8(&c->w, 'S');
    w_u32(&c->w, STREAM_XID);
    w_u8(&c->w, 0);
    assert_int_equal(decode_w(c, false, &m), 0);
    assert_false(m.u.stream_start.first_segment);

    /* Stream control messages never carry the data messages' leading xid. */
    decode_ok(c, fx_stream_stop, true, &m);
    assert_int_equal(m.kind, PGO_STREAM_STOP);
    assert_int_equal(m.stream_xid, 0);
    decode_ok(c, fx_stream_stop, false, &m);
    assert_int_equal(m.kind, PGO_STREAM_STOP);

    decode_ok(c, fx_stream_commit, false, &m);
    assert_int_equal(m.kind, PGO_STREAM_COMMIT);
    assert_int_equal(m.u.stream_commit.xid, STREAM_XID);
    assert_int_equal(m.u.stream_commit.flags, 0);
    assert_true(m.u.stream_commit.commit_lsn == FINAL_LSN);
    assert_true(m.u.stream_commit.end_lsn == END_LSN);
    assert_true(m.u.stream_commit.commit_time == COMMIT_TIME);

    decode_ok(c, fx_stream_abort, false, &m);
    assert_int_equal(m.kind, PGO_STREAM_ABORT);
    assert_int_equal(m.u.stream_abort.xid, STREAM_XID);
    assert_int_equal(m.u.stream_abort.subxid, SUBXID);
}

/* ---- scratch space ---- */

/* A tuple wider than any before it grows the scratch array; a narrower one reuses it. */
static void test_scratch_growth(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;
    char v[16];
    enum { WIDE = 1500 };

    decode_ok(c, fx_insert, false, &m);
    check_insert_tuple(&m.u.insert.newtuple);

    w_reset(&c->w);
    w_u8(&c->w, 'I');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'N');
    w_u16(&c->w, WIDE);
    for (int i = 0; i < WIDE; i++) {
        snprintf(v, sizeof v, "v%d", i);
        w_text(&c->w, v);
    }
    assert_int_equal(decode_w(c, false, &m), 0);
    assert_int_equal(m.u.insert.newtuple.ncols, WIDE);
    for (int i = 0; i < WIDE; i++) {
        snprintf(v, sizeof v, "v%d", i);
        assert_text(&m.u.insert.newtuple.cols[i], v);
    }

    /* Wide relation. */
    w_reset(&c->w);
    w_u8(&c->w, 'R');
    w_u32(&c->w, RELID);
    w_str(&c->w, "public");
    w_str(&c->w, "wide");
    w_u8(&c->w, 'f');
    w_u16(&c->w, WIDE);
    for (int i = 0; i < WIDE; i++) {
        snprintf(v, sizeof v, "c%d", i);
        w_relcol(&c->w, 0, v, 25, i);
    }
    assert_int_equal(decode_w(c, false, &m), 0);
    assert_int_equal(m.u.relation.ncols, WIDE);
    for (int i = 0; i < WIDE; i++) {
        snprintf(v, sizeof v, "c%d", i);
        assert_string_equal(m.u.relation.cols[i].name, v);
        assert_int_equal(m.u.relation.cols[i].type_mod, i);
    }

    /* Many truncated relations. */
    w_reset(&c->w);
    w_u8(&c->w, 'T');
    w_u32(&c->w, WIDE);
    w_u8(&c->w, 0);
    for (int i = 0; i < WIDE; i++)
        w_u32(&c->w, 20000u + (uint32_t)i);
    assert_int_equal(decode_w(c, false, &m), 0);
    assert_int_equal(m.u.truncate.nrelids, WIDE);
    for (int i = 0; i < WIDE; i++)
        assert_int_equal(m.u.truncate.relids[i], 20000u + (uint32_t)i);

    /* Back to narrow messages on the same decoder. */
    decode_ok(c, fx_update_key, false, &m);
    assert_int_equal(m.u.update.old_kind, 'K');
    assert_text(&m.u.update.oldtuple.cols[0], "41");
    assert_text(&m.u.update.newtuple.cols[0], "42");
    decode_ok(c, fx_relation, false, &m);
    check_outbox_relation(&m.u.relation);
}

/* ---- malformed input ---- */

/* A message in PostgreSQL's error style: lowercase start, no trailing period. */
static void assert_error_style(const char *e, const char *kind_name)
{
    size_t n = strlen(e);

    assert_true(n > 0);
    if (!islower((unsigned char)e[0]))
        fail_msg("error does not start lowercase: \"%s\"", e);
    assert_true(e[n - 1] != '.' && e[n - 1] != '\n');
    if (strstr(e, "offset ") == NULL)
        fail_msg("error names no offset: \"%s\"", e);
    if (kind_name != NULL && strstr(e, kind_name) == NULL)
        fail_msg("error does not name \"%s\": \"%s\"", kind_name, e);
}

/* Every proper prefix of every fixture is truncated and must be rejected. */
static void test_truncated_everywhere(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;

    for (size_t f = 0; f < NFIXTURES; f++) {
        const struct fixture *fx = &FIXTURES[f];
        struct wbuf full;

        w_reset(&full);
        fx->build(&full);
        assert_true(full.len > 0);
        for (size_t n = 0; n < full.len; n++) {
            int rc = decode_bytes(c, full.b, n, fx->in_stream, &m);

            if (rc != -EBADMSG)
                fail_msg("%s truncated to %zu of %zu bytes: got %d, want -EBADMSG", fx->name, n,
                         full.len, rc);
            assert_error_style(c->errstr, n > 0 ? pgo_kind_name(fx->kind) : NULL);
        }
        /* The whole fixture decodes. */
        if (decode_bytes(c, full.b, full.len, fx->in_stream, &m) != 0)
            fail_msg("%s: %s", fx->name, c->errstr);
        assert_int_equal(m.kind, fx->kind);
    }
}

/* A byte after the last field is malformed, for every fixture. */
static void test_trailing_byte(void **state)
{
    struct ctx *c = *state;

    for (size_t f = 0; f < NFIXTURES; f++) {
        const struct fixture *fx = &FIXTURES[f];
        char want[64];

        w_reset(&c->w);
        fx->build(&c->w);
        snprintf(want, sizeof want, "trailing data after %s message: 1 byte at offset %zu",
                 pgo_kind_name(fx->kind), c->w.len);
        w_u8(&c->w, 0);
        decode_bad(c, fx->in_stream, want);
        assert_error_style(c->errstr, pgo_kind_name(fx->kind));
    }

    w_reset(&c->w);
    fx_begin(&c->w);
    w_mem(&c->w, "xyz", 3);
    decode_bad(c, false, "trailing data after begin message: 3 bytes at offset 21");
}

static void test_empty_and_unknown(void **state)
{
    static const unsigned char unknown[] = {'X', 0x00, 0xff, 0x01, 'b', 'P', 'K',
                                            'r', 'p',  'w',  'k',  'a', 'e', 'C' + 0x80};
    struct ctx *c = *state;
    struct pgo_msg m;

    assert_int_equal(decode_bytes(c, "", 0, false, &m), -EBADMSG);
    assert_string_equal(c->errstr, "truncated message: need 1 byte at offset 0, have 0");

    for (size_t i = 0; i < sizeof unknown; i++) {
        w_reset(&c->w);
        w_u8(&c->w, unknown[i]);
        w_u64(&c->w, 0);
        decode_bad(c, false, "unknown message kind");
        assert_error_style(c->errstr, NULL);
    }

    w_reset(&c->w);
    w_u8(&c->w, 'X');
    decode_bad(c, false, "unknown message kind \"X\" (0x58) at offset 0");
    w_reset(&c->w);
    w_u8(&c->w, 0x01);
    decode_bad(c, true, "unknown message kind 0x01 at offset 0");
}

static void test_bad_tuple_kind(void **state)
{
    struct ctx *c = *state;

    w_reset(&c->w);
    w_u8(&c->w, 'I');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'N');
    w_u16(&c->w, 2);
    w_text(&c->w, "1");
    w_u8(&c->w, 'x'); /* offset 14 */
    decode_bad(c, false, "invalid tuple column kind \"x\" (0x78) in insert message at offset 14");

    /* In an old tuple too; 'N' and 'T' are not column kinds. */
    w_reset(&c->w);
    w_u8(&c->w, 'D');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'K');
    w_u16(&c->w, 1);
    w_u8(&c->w, 'N');
    decode_bad(c, false, "invalid tuple column kind \"N\" (0x4e) in delete message at offset 8");

    w_reset(&c->w);
    w_u8(&c->w, 'U');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'N');
    w_u16(&c->w, 1);
    w_u8(&c->w, 0);
    decode_bad(c, false, "invalid tuple column kind 0x00 in update message at offset 8");
}

static void test_bad_markers(void **state)
{
    struct ctx *c = *state;

    /* Insert needs 'N'. */
    w_reset(&c->w);
    w_u8(&c->w, 'I');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'K');
    w_u16(&c->w, 0);
    decode_bad(c, false,
               "invalid tuple marker \"K\" (0x4b) in insert message at offset 5: "
               "expected \"N\"");

    /* Update: 'K', 'O' or 'N'. */
    w_reset(&c->w);
    w_u8(&c->w, 'U');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'X');
    w_u16(&c->w, 0);
    decode_bad(c, false,
               "invalid tuple marker \"X\" (0x58) in update message at offset 5: "
               "expected \"K\", \"O\" or \"N\"");

    /* Update: the old tuple must be followed by 'N', not a second old tuple. */
    w_reset(&c->w);
    w_u8(&c->w, 'U');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'K');
    w_u16(&c->w, 1);
    w_null(&c->w);
    w_u8(&c->w, 'O'); /* offset 9 */
    w_u16(&c->w, 1);
    w_null(&c->w);
    decode_bad(c, false,
               "invalid tuple marker \"O\" (0x4f) in update message at offset 9: "
               "expected \"N\"");

    /* Delete: 'K' or 'O' only. */
    w_reset(&c->w);
    w_u8(&c->w, 'D');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'N');
    w_u16(&c->w, 0);
    decode_bad(c, false,
               "invalid tuple marker \"N\" (0x4e) in delete message at offset 5: "
               "expected \"K\" or \"O\"");
    w_reset(&c->w);
    w_u8(&c->w, 'D');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 0);
    w_u16(&c->w, 0);
    decode_bad(c, false, "invalid tuple marker 0x00 in delete message at offset 5");

    /* A v2 in-stream insert read as v1: the xid's bytes are taken for the relid and the
     * relid's first byte for the marker. */
    w_reset(&c->w);
    fx_insert_stream(&c->w);
    decode_bad(c, false, "invalid tuple marker 0x00 in insert message at offset 5");
}

static void test_unterminated_string(void **state)
{
    struct ctx *c = *state;

    w_reset(&c->w);
    w_u8(&c->w, 'O');
    w_u64(&c->w, ORIGIN_LSN);
    w_mem(&c->w, "pg_16385", 8); /* no NUL */
    decode_bad(c, false, "unterminated origin name string in origin message at offset 9");

    w_reset(&c->w);
    w_u8(&c->w, 'R');
    w_u32(&c->w, RELID);
    w_str(&c->w, "public");
    w_mem(&c->w, "outbox", 6);
    decode_bad(c, false, "unterminated relation name string in relation message at offset 12");

    w_reset(&c->w);
    w_u8(&c->w, 'M');
    w_u8(&c->w, 1);
    w_u64(&c->w, MSG_LSN);
    w_mem(&c->w, "outbox\x01\x02", 8);
    decode_bad(c, false, "unterminated prefix string in message message at offset 10");

    w_reset(&c->w);
    w_u8(&c->w, 'Y');
    w_u32(&c->w, STREAM_XID);
    w_u32(&c->w, TYPE_OID);
    w_str(&c->w, "public");
    w_mem(&c->w, "m", 1);
    decode_bad(c, true, "unterminated type name string in type message at offset 16");
}

static void test_bad_lengths(void **state)
{
    struct ctx *c = *state;

    /* A value length past the end of the message. */
    w_reset(&c->w);
    w_u8(&c->w, 'I');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'N');
    w_u16(&c->w, 1);
    w_u8(&c->w, 't');
    w_u32(&c->w, 1000);
    w_mem(&c->w, "abc", 3);
    decode_bad(c, false, "truncated insert message: need 1000 bytes at offset 13, have 3");

    /* Negative lengths: -1 is how the SQL-level null would look, never valid here. */
    w_reset(&c->w);
    w_u8(&c->w, 'I');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'N');
    w_u16(&c->w, 1);
    w_u8(&c->w, 'b');
    w_u32(&c->w, 0xffffffffu);
    decode_bad(c, false, "invalid column value length -1 in insert message at offset 9");

    w_reset(&c->w);
    w_u8(&c->w, 'U');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'N');
    w_u16(&c->w, 1);
    w_u8(&c->w, 't');
    w_u32(&c->w, 0x80000000u);
    w_mem(&c->w, "abcd", 4);
    decode_bad(c, false, "invalid column value length -2147483648 in update message at offset 9");

    /* Message content. */
    w_reset(&c->w);
    w_u8(&c->w, 'M');
    w_u8(&c->w, 0);
    w_u64(&c->w, MSG_LSN);
    w_str(&c->w, "p");
    w_u32(&c->w, 0x7fffffffu);
    w_mem(&c->w, "x", 1);
    decode_bad(c, false, "truncated message message: need 2147483647 bytes at offset 16, have 1");

    w_reset(&c->w);
    w_u8(&c->w, 'M');
    w_u8(&c->w, 0);
    w_u64(&c->w, MSG_LSN);
    w_str(&c->w, "p");
    w_u32(&c->w, 0xfffffffeu);
    decode_bad(c, false, "invalid content length -2 in message message at offset 12");
}

/* Hostile counts are rejected against the bytes left, before anything is allocated. */
static void test_hostile_counts(void **state)
{
    struct ctx *c = *state;

    w_reset(&c->w);
    w_u8(&c->w, 'I');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'N');
    w_u16(&c->w, 0xffff);
    w_null(&c->w);
    w_null(&c->w);
    decode_bad(c, false,
               "truncated insert message: 65535 tuple columns need at least 65535 bytes at "
               "offset 8, have 2");

    /* Exactly enough bytes for the count but not for the values. */
    w_reset(&c->w);
    w_u8(&c->w, 'I');
    w_u32(&c->w, RELID);
    w_u8(&c->w, 'N');
    w_u16(&c->w, 2);
    w_u8(&c->w, 't');
    w_u8(&c->w, 0);
    decode_bad(c, false, "truncated insert message: need 4 bytes at offset 9, have 1");

    /* Relation columns take at least 10 bytes each. */
    w_reset(&c->w);
    w_u8(&c->w, 'R');
    w_u32(&c->w, RELID);
    w_str(&c->w, "");
    w_str(&c->w, "t");
    w_u8(&c->w, 'd');
    w_u16(&c->w, 2);
    w_relcol(&c->w, 0, "a", 23, -1);
    w_mem(&c->w, "12345678", 8);
    decode_bad(c, false,
               "truncated relation message: 2 relation columns need at least 20 bytes at "
               "offset 11, have 19");

    /* One byte more passes the bound; the second column then runs off the end. */
    w_u8(&c->w, '9');
    decode_bad(c, false, "unterminated column name string in relation message at offset 23");

    w_reset(&c->w);
    w_u8(&c->w, 'R');
    w_u32(&c->w, RELID);
    w_str(&c->w, "");
    w_str(&c->w, "t");
    w_u8(&c->w, 'd');
    w_u16(&c->w, 0xffff);
    w_mem(&c->w, "0123456789", 10);
    decode_bad(c, false,
               "truncated relation message: 65535 relation columns need at least 655350 bytes "
               "at offset 11, have 10");

    /* Truncate: a huge count, and a negative one. */
    w_reset(&c->w);
    w_u8(&c->w, 'T');
    w_u32(&c->w, 0x7fffffffu);
    w_u8(&c->w, 0);
    w_u32(&c->w, RELID);
    decode_bad(c, false,
               "truncated truncate message: 2147483647 relation ids need at least 8589934588 "
               "bytes at offset 6, have 4");

    w_reset(&c->w);
    w_u8(&c->w, 'T');
    w_u32(&c->w, 0x80000000u);
    w_u8(&c->w, 0);
    decode_bad(c, false, "invalid relation count -2147483648 in truncate message at offset 1");
}

/* errstr may be NULL or short; the return code does not depend on it. */
static void test_errstr_handling(void **state)
{
    struct ctx *c = *state;
    struct pgo_msg m;
    char small[8];

    memset(small, 'z', sizeof small);
    assert_int_equal(pgo_decode(c->d, "I", 1, false, &m, NULL, 0), -EBADMSG);
    assert_int_equal(pgo_decode(c->d, "I", 1, false, &m, small, 0), -EBADMSG);
    assert_int_equal(small[0], 'z');
    assert_int_equal(pgo_decode(c->d, "I", 1, false, &m, small, sizeof small), -EBADMSG);
    assert_string_equal(small, "truncat");
}

/* ---- small pieces ---- */

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(pgo_kind_name(PGO_BEGIN), "begin");
    assert_string_equal(pgo_kind_name(PGO_COMMIT), "commit");
    assert_string_equal(pgo_kind_name(PGO_ORIGIN), "origin");
    assert_string_equal(pgo_kind_name(PGO_RELATION), "relation");
    assert_string_equal(pgo_kind_name(PGO_TYPE), "type");
    assert_string_equal(pgo_kind_name(PGO_INSERT), "insert");
    assert_string_equal(pgo_kind_name(PGO_UPDATE), "update");
    assert_string_equal(pgo_kind_name(PGO_DELETE), "delete");
    assert_string_equal(pgo_kind_name(PGO_TRUNCATE), "truncate");
    assert_string_equal(pgo_kind_name(PGO_MESSAGE), "message");
    assert_string_equal(pgo_kind_name(PGO_STREAM_START), "stream start");
    assert_string_equal(pgo_kind_name(PGO_STREAM_STOP), "stream stop");
    assert_string_equal(pgo_kind_name(PGO_STREAM_COMMIT), "stream commit");
    assert_string_equal(pgo_kind_name(PGO_STREAM_ABORT), "stream abort");
    assert_string_equal(pgo_kind_name('X'), "unknown");
    assert_string_equal(pgo_kind_name(0), "unknown");
    assert_string_equal(pgo_kind_name(-1), "unknown");
    assert_string_equal(pgo_kind_name('B' + 256), "unknown");
}

static void test_timestamp(void **state)
{
    (void)state;
    /* 2000-01-01 00:00:00 UTC, PostgreSQL's epoch. */
    assert_true(pgo_timestamp_to_unix_us(0) == INT64_C(946684800000000));
    /* 2023-01-01 00:00:00.123456 UTC = 1672531200.123456 s after 1970. */
    assert_true(pgo_timestamp_to_unix_us(COMMIT_TIME) == INT64_C(1672531200123456));
    /* 1970-01-01 itself, before PostgreSQL's epoch. */
    assert_true(pgo_timestamp_to_unix_us(INT64_C(-946684800000000)) == 0);
    assert_true(pgo_timestamp_to_unix_us(-1) == INT64_C(946684799999999));
}

static void test_decoder_lifecycle(void **state)
{
    pgo_decoder *d;
    struct pgo_msg m;
    static const char stop[] = {'E'};

    (void)state;
    pgo_decoder_free(NULL);
    /* A fresh decoder handles messages without scratch, and is freed unused. */
    d = pgo_decoder_new();
    assert_non_null(d);
    assert_int_equal(pgo_decode(d, stop, sizeof stop, false, &m, NULL, 0), 0);
    assert_int_equal(m.kind, PGO_STREAM_STOP);
    pgo_decoder_free(d);
    d = pgo_decoder_new();
    assert_non_null(d);
    pgo_decoder_free(d);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_literal_begin),
        T(test_literal_insert),
        T(test_begin),
        T(test_commit),
        T(test_origin),
        T(test_relation),
        T(test_relation_stream),
        T(test_relation_nocols),
        T(test_type),
        T(test_insert),
        T(test_insert_nocols),
        T(test_update_no_old),
        T(test_update_key),
        T(test_update_full),
        T(test_delete),
        T(test_truncate),
        T(test_message),
        T(test_stream_control),
        T(test_scratch_growth),
        T(test_truncated_everywhere),
        T(test_trailing_byte),
        T(test_empty_and_unknown),
        T(test_bad_tuple_kind),
        T(test_bad_markers),
        T(test_unterminated_string),
        T(test_bad_lengths),
        T(test_hostile_counts),
        T(test_errstr_handling),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_decoder_lifecycle),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

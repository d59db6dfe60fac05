/*
 * fuzz_pgoutput.c -- libFuzzer target for the pure pgoutput decoder (relay/pgoutput.c).
 *
 * Each input is one pgoutput message, as the walsender sends it in an XLogData frame.
 * It is decoded twice, as if it arrived outside and inside a streamed block
 * (in_stream false and true), on one decoder kept across inputs the way the relay keeps
 * one per connection, so scratch arrays grown by one message are reused by the next.
 * AddressSanitizer catches any read outside the input (libFuzzer hands the target an
 * exactly sized heap copy); the checks below catch what a sanitizer cannot see, and
 * abort() on the first violation so that libFuzzer saves the input:
 *
 *   - on success, every string lies inside the input and is NUL-terminated there, every
 *     text or binary column value and the Message content lie inside the input, null
 *     and unchanged-TOAST columns carry no data, counts come with arrays, an Update's
 *     old tuple does not share the new tuple's array, and stream_xid is set only for a
 *     data message inside a stream;
 *   - round trip: the decoded struct, encoded again as PostgreSQL's proto.c would, gives
 *     back the input byte for byte (a message with bytes left over is malformed, so
 *     every byte must be accounted for; the two fields the decoder narrows -- Message
 *     flags to "transactional" and Stream Start's first-segment byte to a bool -- are
 *     compared as narrowed).  This is what checks that a relation's ncols is the count
 *     that was on the wire and that each column came from where it should;
 *   - a data message decoded inside a stream decodes, without its leading xid, to the
 *     same thing outside one; other kinds decode the same either way;
 *   - on failure, the result is -EBADMSG or -ENOMEM and the message is one non-empty
 *     lowercase line naming the message kind and, for -EBADMSG, the byte offset; the
 *     result does not depend on the error buffer, which a tiny buffer or none at all
 *     must not overflow.
 *
 * With RELAY_FUZZ_EXPECT=ok in the environment every input must also decode in at
 * least one of the two modes: the seed check in tests/fuzz/run_fuzz.cmake runs the
 * captured corpus that way, so a decoder change that rejects real PostgreSQL output
 * fails the test rather than quietly weakening the fuzzer.  See docs/fuzzing.md.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ERRSTR_SIZE 256
#define SMALL_ERRSTR 8
#define CANARY 0x5a

/* Kept across inputs on purpose: see the file comment. */
static pgo_decoder *decoder;
static bool expect_ok;

/* The encoder's output, grown as needed and reused. */
struct wbuf {
    unsigned char *b;
    size_t len, cap;
    size_t narrowed_at; /* offset of a narrowed byte (see the file comment), or SIZE_MAX */
    uint8_t narrowed_kind;
};

static struct wbuf enc;

static void violation(int line, const char *what)
{
    fprintf(stderr, "fuzz_pgoutput.c:%d: invariant violated: %s\n", line, what);
    abort();
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            violation(__LINE__, #cond);                                                            \
    } while (0)

/* The input being checked: every pointer in a decoded message must point into it. */
struct input {
    const char *buf;
    size_t len;
};

/* [p, p + n) lies inside the input; p == end is allowed for n == 0. */
static bool in_input(const struct input *in, const char *p, size_t n)
{
    uintptr_t lo = (uintptr_t)in->buf, hi = lo + in->len, q = (uintptr_t)p;

    return p != NULL && q >= lo && q <= hi && n <= hi - q;
}

static void check_string(const struct input *in, const char *s)
{
    CHECK(in_input(in, s, 1));
    CHECK(memchr(s, '\0', (size_t)(in->buf + in->len - s)) != NULL);
}

static void check_tuple(const struct input *in, const struct pgo_tuple *t)
{
    CHECK(t->ncols == 0 || t->cols != NULL);
    for (uint16_t i = 0; i < t->ncols; i++) {
        const struct pgo_value *v = &t->cols[i];

        switch (v->kind) {
        case PGO_VALUE_NULL:
        case PGO_VALUE_UNCHANGED_TOAST:
            CHECK(v->len == 0 && v->data == NULL);
            break;
        case PGO_VALUE_TEXT:
        case PGO_VALUE_BINARY:
            CHECK(in_input(in, v->data, v->len));
            break;
        default:
            violation(__LINE__, "unknown value kind");
        }
    }
}

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

/* Everything a successfully decoded message points at, and its own consistency. */
static void check_msg(const struct input *in, bool in_stream, const struct pgo_msg *m)
{
    CHECK((uint8_t)m->kind == (uint8_t)in->buf[0]);
    if (!(in_stream && kind_has_stream_xid(m->kind)))
        CHECK(m->stream_xid == 0);

    switch (m->kind) {
    case PGO_ORIGIN:
        check_string(in, m->u.origin.name);
        break;
    case PGO_RELATION:
        check_string(in, m->u.relation.nspname);
        check_string(in, m->u.relation.relname);
        CHECK(m->u.relation.ncols == 0 || m->u.relation.cols != NULL);
        for (uint16_t i = 0; i < m->u.relation.ncols; i++)
            check_string(in, m->u.relation.cols[i].name);
        break;
    case PGO_TYPE:
        check_string(in, m->u.type.nspname);
        check_string(in, m->u.type.typname);
        break;
    case PGO_INSERT:
        check_tuple(in, &m->u.insert.newtuple);
        break;
    case PGO_UPDATE:
        CHECK(m->u.update.old_kind == 0 || m->u.update.old_kind == 'K' ||
              m->u.update.old_kind == 'O');
        if (m->u.update.old_kind != 0) {
            const struct pgo_tuple *o = &m->u.update.oldtuple, *n = &m->u.update.newtuple;

            check_tuple(in, o);
            /* The old tuple must not live in the new tuple's scratch array. */
            if (o->ncols > 0 && n->ncols > 0)
                CHECK(o->cols + o->ncols <= n->cols || n->cols + n->ncols <= o->cols);
        } else {
            CHECK(m->u.update.oldtuple.ncols == 0);
        }
        check_tuple(in, &m->u.update.newtuple);
        break;
    case PGO_DELETE:
        CHECK(m->u.del.old_kind == 'K' || m->u.del.old_kind == 'O');
        check_tuple(in, &m->u.del.oldtuple);
        break;
    case PGO_TRUNCATE:
        CHECK(m->u.truncate.nrelids == 0 || m->u.truncate.relids != NULL);
        CHECK(m->u.truncate.nrelids <= in->len / 4);
        break;
    case PGO_MESSAGE:
        check_string(in, m->u.message.prefix);
        CHECK(in_input(in, m->u.message.content, m->u.message.content_len));
        break;
    default:
        break;
    }
}

/* ---- the encoder, after proto.c's logicalrep_write_* ---- */

static void w_mem(struct wbuf *w, const void *p, size_t n)
{
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 4096;

        while (n > cap - w->len)
            cap *= 2;
        w->b = realloc(w->b, cap);
        if (w->b == NULL)
            abort();
        w->cap = cap;
    }
    if (n > 0)
        memcpy(w->b + w->len, p, n);
    w->len += n;
}

static void w_be(struct wbuf *w, uint64_t v, size_t n)
{
    unsigned char b[8];

    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    w_mem(w, b, n);
}

static void w_u8(struct wbuf *w, unsigned v)
{
    w_be(w, v, 1);
}

/* A byte the decoder narrowed: remember where, to compare it as narrowed. */
static void w_narrowed(struct wbuf *w, unsigned v, uint8_t kind)
{
    w->narrowed_at = w->len;
    w->narrowed_kind = kind;
    w_u8(w, v);
}

static void w_str(struct wbuf *w, const char *s)
{
    w_mem(w, s, strlen(s) + 1);
}

static void w_tuple(struct wbuf *w, const struct pgo_tuple *t)
{
    w_be(w, t->ncols, 2);
    for (uint16_t i = 0; i < t->ncols; i++) {
        const struct pgo_value *v = &t->cols[i];

        w_u8(w, (unsigned)v->kind);
        if (v->kind == PGO_VALUE_TEXT || v->kind == PGO_VALUE_BINARY) {
            w_be(w, v->len, 4);
            w_mem(w, v->data, v->len);
        }
    }
}

static void encode(struct wbuf *w, bool in_stream, const struct pgo_msg *m)
{
    w->len = 0;
    w->narrowed_at = SIZE_MAX;
    w_u8(w, (unsigned)m->kind);
    if (in_stream && kind_has_stream_xid(m->kind))
        w_be(w, m->stream_xid, 4);

    switch (m->kind) {
    case PGO_BEGIN:
        w_be(w, m->u.begin.final_lsn, 8);
        w_be(w, (uint64_t)m->u.begin.commit_time, 8);
        w_be(w, m->u.begin.xid, 4);
        break;
    case PGO_COMMIT:
        w_u8(w, m->u.commit.flags);
        w_be(w, m->u.commit.commit_lsn, 8);
        w_be(w, m->u.commit.end_lsn, 8);
        w_be(w, (uint64_t)m->u.commit.commit_time, 8);
        break;
    case PGO_ORIGIN:
        w_be(w, m->u.origin.commit_lsn, 8);
        w_str(w, m->u.origin.name);
        break;
    case PGO_RELATION:
        w_be(w, m->u.relation.relid, 4);
        w_str(w, m->u.relation.nspname);
        w_str(w, m->u.relation.relname);
        w_u8(w, (uint8_t)m->u.relation.replident);
        w_be(w, m->u.relation.ncols, 2);
        for (uint16_t i = 0; i < m->u.relation.ncols; i++) {
            const struct pgo_relation_column *c = &m->u.relation.cols[i];

            w_u8(w, c->flags);
            w_str(w, c->name);
            w_be(w, c->type_oid, 4);
            w_be(w, (uint32_t)c->type_mod, 4);
        }
        break;
    case PGO_TYPE:
        w_be(w, m->u.type.oid, 4);
        w_str(w, m->u.type.nspname);
        w_str(w, m->u.type.typname);
        break;
    case PGO_INSERT:
        w_be(w, m->u.insert.relid, 4);
        w_u8(w, 'N');
        w_tuple(w, &m->u.insert.newtuple);
        break;
    case PGO_UPDATE:
        w_be(w, m->u.update.relid, 4);
        if (m->u.update.old_kind != 0) {
            w_u8(w, (uint8_t)m->u.update.old_kind);
            w_tuple(w, &m->u.update.oldtuple);
        }
        w_u8(w, 'N');
        w_tuple(w, &m->u.update.newtuple);
        break;
    case PGO_DELETE:
        w_be(w, m->u.del.relid, 4);
        w_u8(w, (uint8_t)m->u.del.old_kind);
        w_tuple(w, &m->u.del.oldtuple);
        break;
    case PGO_TRUNCATE:
        w_be(w, m->u.truncate.nrelids, 4);
        w_u8(w, m->u.truncate.options);
        for (uint32_t i = 0; i < m->u.truncate.nrelids; i++)
            w_be(w, m->u.truncate.relids[i], 4);
        break;
    case PGO_MESSAGE:
        w_narrowed(w, m->u.message.transactional ? 1 : 0, PGO_MESSAGE);
        w_be(w, m->u.message.lsn, 8);
        w_str(w, m->u.message.prefix);
        w_be(w, m->u.message.content_len, 4);
        w_mem(w, m->u.message.content, m->u.message.content_len);
        break;
    case PGO_STREAM_START:
        w_be(w, m->u.stream_start.xid, 4);
        w_narrowed(w, m->u.stream_start.first_segment ? 1 : 0, PGO_STREAM_START);
        break;
    case PGO_STREAM_STOP:
        break;
    case PGO_STREAM_COMMIT:
        w_be(w, m->u.stream_commit.xid, 4);
        w_u8(w, m->u.stream_commit.flags);
        w_be(w, m->u.stream_commit.commit_lsn, 8);
        w_be(w, m->u.stream_commit.end_lsn, 8);
        w_be(w, (uint64_t)m->u.stream_commit.commit_time, 8);
        break;
    case PGO_STREAM_ABORT:
        w_be(w, m->u.stream_abort.xid, 4);
        w_be(w, m->u.stream_abort.subxid, 4);
        break;
    }
}

/* The re-encoded message must be the input, narrowed bytes compared as narrowed. */
static void check_round_trip(const struct input *in, bool in_stream, const struct pgo_msg *m)
{
    const unsigned char *orig = (const unsigned char *)in->buf;

    encode(&enc, in_stream, m);
    CHECK(enc.len == in->len);
    if (enc.narrowed_at != SIZE_MAX) {
        size_t at = enc.narrowed_at;

        if (enc.narrowed_kind == PGO_MESSAGE)
            CHECK((orig[at] & 1) == enc.b[at]); /* flags: bit 0 is "transactional" */
        else
            CHECK((orig[at] == 1) == enc.b[at]); /* first segment: exactly 1 */
        enc.b[at] = orig[at];
    }
    CHECK(memcmp(enc.b, orig, in->len) == 0);
}

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

/* A failed decode: the documented result codes and a one-line lowercase message. */
static void check_error(const struct input *in, int rc, const char *errstr)
{
    const char *nul = memchr(errstr, '\0', ERRSTR_SIZE);

    CHECK(rc == -EBADMSG || rc == -ENOMEM);
    CHECK(nul != NULL && nul > errstr);
    CHECK(strchr(errstr, '\n') == NULL);
    CHECK(is_lower(errstr[0]));
    if (rc == -EBADMSG)
        CHECK(strstr(errstr, "offset ") != NULL);
    if (in->len > 0)
        CHECK(strstr(errstr, pgo_kind_name((uint8_t)in->buf[0])) != NULL);
}

/* Decode, and check the result whichever it is.  Returns pgo_decode()'s result. */
static int decode_checked(const struct input *in, bool in_stream, struct pgo_msg *m)
{
    char errstr[ERRSTR_SIZE];
    int rc;

    memset(errstr, CANARY, sizeof errstr);
    rc = pgo_decode(decoder, in->buf, in->len, in_stream, m, errstr, sizeof errstr);
    if (rc == 0) {
        check_msg(in, in_stream, m);
        check_round_trip(in, in_stream, m);
    } else {
        check_error(in, rc, errstr);
    }
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *expect = getenv("RELAY_FUZZ_EXPECT");

    (void)argc;
    (void)argv;
    decoder = pgo_decoder_new();
    if (decoder == NULL)
        abort();
    expect_ok = expect != NULL && strcmp(expect, "ok") == 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct input in = {(const char *)data, size};
    struct pgo_msg m;
    char small[SMALL_ERRSTR + 8];
    int rc_plain, rc_stream, rc;

    rc_plain = decode_checked(&in, false, &m);
    rc_stream = decode_checked(&in, true, &m);
    if (expect_ok && rc_plain != 0 && rc_stream != 0) {
        fprintf(stderr, "fuzz_pgoutput: a seed decodes in neither mode (%d, %d)\n", rc_plain,
                rc_stream);
        abort();
    }

    if (size > 0 && kind_has_stream_xid((uint8_t)data[0])) {
        /* Inside a stream: the same message with a leading xid. */
        if (size < 5) {
            CHECK(rc_stream != 0);
        } else {
            char *bare = malloc(size - 4); /* exactly sized, for ASan */
            const struct input inner = {bare, size - 4};
            uint32_t xid = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 |
                           (uint32_t)data[3] << 8 | (uint32_t)data[4];

            if (bare == NULL)
                abort();
            bare[0] = (char)data[0];
            memcpy(bare + 1, data + 5, size - 5);
            rc = decode_checked(&inner, false, &m);
            CHECK((rc == 0) == (rc_stream == 0));
            if (rc_stream == 0) {
                CHECK(pgo_decode(decoder, in.buf, in.len, true, &m, NULL, 0) == 0);
                CHECK(m.stream_xid == xid);
            }
            free(bare);
        }
    } else {
        /* Not a data message: where it arrived makes no difference. */
        CHECK(rc_plain == rc_stream);
    }

    /* The result does not depend on the error buffer, and a small one is not overrun. */
    memset(small, CANARY, sizeof small);
    rc = pgo_decode(decoder, in.buf, in.len, false, &m, small, SMALL_ERRSTR);
    CHECK(rc == rc_plain);
    if (rc != 0)
        CHECK(memchr(small, '\0', SMALL_ERRSTR) != NULL);
    for (size_t i = SMALL_ERRSTR; i < sizeof small; i++)
        CHECK((unsigned char)small[i] == CANARY);
    CHECK(pgo_decode(decoder, in.buf, in.len, false, &m, NULL, 0) == rc_plain);
    return 0;
}

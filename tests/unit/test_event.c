/*
 * test_event.c -- unit tests for the event model (relay/event.c) and the message
 * rendering (relay/format.c).
 *
 * event.c keeps the relation cache and turns an inserted outbox row into a struct
 * event whose strings are slices of the decoded tuple; format.c renders that event
 * as a Kafka message: a topic from a template such as "outbox.event.{aggregatetype}",
 * the aggregate id as key, the payload as value and CloudEvents binary-mode "ce_"
 * headers.  Both modules are pure, so the tests build the decoder's structs
 * (struct pgo_relation, struct pgo_tuple) by hand instead of decoding bytes, and
 * check exact values: which column an error names, which bytes a slice covers,
 * the order of the headers, the RFC 3339 text of a timestamp.  The main fixture's
 * column values are slices of one shared buffer without NUL terminators, as the
 * decoder hands them out, so a module that read up to a NUL instead of a value's
 * length would be caught.
 *
 * Two later groups cover the rest of the event model.  The outbox spec: a key
 * column other than aggregateid, a schema version column, a headers column that
 * must hold a JSON object, header columns copied in configured order, a text
 * payload checked for JSON where json and jsonb ones are trusted, and UTF-8
 * checks.  Table-less messages (event_from_message): every member, raw payload and
 * headers slices that point into the content, escaped strings unescaped into the
 * scratch buffer, and every way content can fail to be an event.  Message
 * contents are heap copies of exactly their length, and the scratch buffer is
 * reused across calls, so AddressSanitizer catches an over-read or a pointer into
 * a buffer that moved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event.h"
#include "format.h"
#include "sink.h"
#include "jsonbuf.h"

/* PostgreSQL type OIDs, only to make the relation descriptions look real. */
#define OID_TEXT 25
#define OID_UUID 2950
#define OID_JSONB 3802

#define OUTBOX_RELID 16385
#define OTHER_RELID 16390

/* The columns of the usual outbox table plus an extra routing column. */
enum { COL_ID, COL_AGGTYPE, COL_AGGID, COL_TYPE, COL_PAYLOAD, COL_TENANT, NCOLS };

static const struct pgo_relation_column outbox_columns[NCOLS] = {
    {1, "id", OID_UUID, -1},   {0, "aggregatetype", OID_TEXT, -1}, {0, "aggregateid", OID_TEXT, -1},
    {0, "type", OID_TEXT, -1}, {0, "payload", OID_JSONB, -1},      {0, "tenant", OID_TEXT, -1},
};

/*
 * The bytes a decoder would point into: values back to back, no terminators.  The
 * offsets below slice it.
 */
static const char wire[] = "1f0e7c9a-0000-4000-8000-000000000001" /* id */
                           "order"                                /* aggtype */
                           "order-42"                             /* aggid */
                           "OrderCreated"                         /* type */
                           "{\"total\":42}"                       /* payload */
                           "acme";                                /* tenant */

#define ID_OFF 0
#define ID_LEN 36
#define AGGTYPE_OFF (ID_OFF + ID_LEN)
#define AGGTYPE_LEN 5
#define AGGID_OFF (AGGTYPE_OFF + AGGTYPE_LEN)
#define AGGID_LEN 8
#define TYPE_OFF (AGGID_OFF + AGGID_LEN)
#define TYPE_LEN 12
#define PAYLOAD_OFF (TYPE_OFF + TYPE_LEN)
#define PAYLOAD_LEN 12
#define TENANT_OFF (PAYLOAD_OFF + PAYLOAD_LEN)
#define TENANT_LEN 4
_Static_assert(sizeof(wire) - 1 == TENANT_OFF + TENANT_LEN, "wire offsets out of step");

/* Everything one test needs: a cache holding the outbox table, and one row. */
struct fixture {
    relcache *rc;
    const struct rel_desc *rel;
    struct pgo_value vals[NCOLS];
    struct pgo_tuple tuple;
    struct event_pos pos;
    struct event ev;
    char err[256];
};

static struct pgo_value text_at(size_t off, size_t len)
{
    struct pgo_value v = {PGO_VALUE_TEXT, (uint32_t)len, wire + off};

    return v;
}

static struct pgo_value text_str(const char *s)
{
    struct pgo_value v = {PGO_VALUE_TEXT, (uint32_t)strlen(s), s};

    return v;
}

static struct pgo_value null_value(void)
{
    struct pgo_value v = {PGO_VALUE_NULL, 0, NULL};

    return v;
}

static struct pgo_relation make_relation(pgo_oid_t relid, const char *nsp, const char *name,
                                         const struct pgo_relation_column *cols, uint16_t ncols)
{
    struct pgo_relation r = {relid, nsp, name, 'd', ncols, cols};

    return r;
}

/* Fill f with a fresh cache knowing public.outbox and a complete, valid row. */
static void fixture_init(struct fixture *f)
{
    struct pgo_relation r = make_relation(OUTBOX_RELID, "public", "outbox", outbox_columns, NCOLS);

    memset(f, 0, sizeof(*f));
    f->rc = relcache_new("public", "outbox");
    assert_non_null(f->rc);
    assert_int_equal(relcache_update(f->rc, &r, f->err, sizeof(f->err)), 0);
    f->rel = relcache_get(f->rc, OUTBOX_RELID);
    assert_non_null(f->rel);
    assert_true(f->rel->is_outbox);

    f->vals[COL_ID] = text_at(ID_OFF, ID_LEN);
    f->vals[COL_AGGTYPE] = text_at(AGGTYPE_OFF, AGGTYPE_LEN);
    f->vals[COL_AGGID] = text_at(AGGID_OFF, AGGID_LEN);
    f->vals[COL_TYPE] = text_at(TYPE_OFF, TYPE_LEN);
    f->vals[COL_PAYLOAD] = text_at(PAYLOAD_OFF, PAYLOAD_LEN);
    f->vals[COL_TENANT] = text_at(TENANT_OFF, TENANT_LEN);
    f->tuple.ncols = NCOLS;
    f->tuple.cols = f->vals;

    f->pos.commit_lsn = UINT64_C(0x16B374D848);
    f->pos.xid = 731;
    f->pos.index = 2;
    f->pos.commit_time_us = INT64_C(1700000000123456);
}

static void fixture_done(struct fixture *f)
{
    relcache_free(f->rc);
}

/* Build the event for f's row, expecting success. */
static void fixture_event(struct fixture *f)
{
    f->err[0] = '\0';
    assert_int_equal(
        event_from_outbox_row(f->rel, &f->tuple, &f->pos, &f->ev, f->err, sizeof(f->err)), 0);
}

/* Assert that a borrowed string holds exactly the bytes of s. */
static void assert_slice(struct ev_str got, const char *s)
{
    assert_non_null(got.p);
    assert_int_equal(got.len, strlen(s));
    assert_memory_equal(got.p, s, got.len);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* ---------------------------------------------------------------- relation cache */

static void test_relcache_update_get(void **state)
{
    relcache *rc = relcache_new("public", "outbox");
    static const struct pgo_relation_column cols[] = {{1, "order_id", 20, -1},
                                                      {0, "total", 1700, 655366}};
    struct pgo_relation r = make_relation(OTHER_RELID, "shop", "orders", cols, 2);
    const struct rel_desc *d;
    char err[128] = "";

    (void)state;
    assert_non_null(rc);
    assert_null(relcache_get(rc, OTHER_RELID));
    assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), 0);

    d = relcache_get(rc, OTHER_RELID);
    assert_non_null(d);
    assert_int_equal(d->relid, OTHER_RELID);
    assert_string_equal(d->nspname, "shop");
    assert_string_equal(d->relname, "orders");
    assert_int_equal(d->replident, 'd');
    assert_false(d->is_outbox);
    assert_int_equal(d->ncols, 2);
    assert_string_equal(d->cols[0].name, "order_id");
    assert_int_equal(d->cols[0].type_oid, 20);
    assert_int_equal(d->cols[0].type_mod, -1);
    assert_int_equal(d->cols[0].flags, 1);
    assert_string_equal(d->cols[1].name, "total");
    assert_int_equal(d->cols[1].type_oid, 1700);
    assert_int_equal(d->cols[1].type_mod, 655366);
    assert_int_equal(d->cols[1].flags, 0);
    /* The names are copies: the cache does not point into the decoded message. */
    assert_ptr_not_equal(d->nspname, r.nspname);
    assert_ptr_not_equal(d->cols[0].name, cols[0].name);

    assert_null(relcache_get(rc, OTHER_RELID + 1));
    relcache_free(rc);
}

/* The decoder's scratch is reused for the next message: the cache must have copied. */
static void test_relcache_copies_message(void **state)
{
    relcache *rc = relcache_new("public", "outbox");
    char nsp[] = "shop", rel[] = "orders", col[] = "sku";
    struct pgo_relation_column cols[1] = {{0, col, OID_TEXT, -1}};
    struct pgo_relation r = make_relation(OTHER_RELID, nsp, rel, cols, 1);
    const struct rel_desc *d;
    char err[128] = "";

    (void)state;
    assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), 0);
    memset(nsp, 'x', sizeof(nsp) - 1);
    memset(rel, 'x', sizeof(rel) - 1);
    memset(col, 'x', sizeof(col) - 1);
    cols[0].type_oid = 0;

    d = relcache_get(rc, OTHER_RELID);
    assert_non_null(d);
    assert_string_equal(d->nspname, "shop");
    assert_string_equal(d->relname, "orders");
    assert_string_equal(d->cols[0].name, "sku");
    assert_int_equal(d->cols[0].type_oid, OID_TEXT);
    relcache_free(rc);
}

/* A second Relation message for the same relid replaces the first in place. */
static void test_relcache_replace(void **state)
{
    relcache *rc = relcache_new("public", "outbox");
    static const struct pgo_relation_column v1[] = {
        {0, "a", OID_TEXT, -1}, {0, "b", OID_TEXT, -1}, {0, "c", OID_TEXT, -1}};
    static const struct pgo_relation_column v2[] = {{0, "c", OID_TEXT, -1}, {0, "d", 23, -1}};
    static const struct pgo_relation_column other[] = {{0, "x", OID_TEXT, -1}};
    struct pgo_relation r1 = make_relation(OTHER_RELID, "shop", "items", v1, 3);
    struct pgo_relation r2 = make_relation(OTHER_RELID, "shop", "items_renamed", v2, 2);
    struct pgo_relation ro = make_relation(OTHER_RELID + 1, "shop", "other", other, 1);
    const struct rel_desc *d;
    char err[128] = "";

    (void)state;
    assert_int_equal(relcache_update(rc, &r1, err, sizeof(err)), 0);
    assert_int_equal(relcache_update(rc, &ro, err, sizeof(err)), 0);
    assert_int_equal(relcache_update(rc, &r2, err, sizeof(err)), 0);

    d = relcache_get(rc, OTHER_RELID);
    assert_non_null(d);
    assert_string_equal(d->relname, "items_renamed");
    assert_int_equal(d->ncols, 2);
    assert_string_equal(d->cols[0].name, "c");
    assert_string_equal(d->cols[1].name, "d");
    assert_int_equal(d->cols[1].type_oid, 23);
    assert_int_equal(rel_column_index(d, "a"), -1);
    assert_int_equal(rel_column_index(d, "b"), -1);
    assert_int_equal(rel_column_index(d, "c"), 0);
    assert_int_equal(rel_column_index(d, "d"), 1);

    /* The neighbour is untouched. */
    d = relcache_get(rc, OTHER_RELID + 1);
    assert_non_null(d);
    assert_string_equal(d->relname, "other");
    assert_int_equal(d->ncols, 1);

    /* Replacing again and again keeps one entry (ASan would report the old ones leaking). */
    for (int i = 0; i < 10; i++)
        assert_int_equal(relcache_update(rc, i % 2 ? &r1 : &r2, err, sizeof(err)), 0);
    d = relcache_get(rc, OTHER_RELID);
    assert_int_equal(d->ncols, 3);
    assert_string_equal(d->relname, "items");
    relcache_free(rc);
}

static void test_relcache_outbox_recognised(void **state)
{
    relcache *rc = relcache_new("public", "outbox");
    /* Same columns, but in another order than the usual fixture. */
    static const struct pgo_relation_column cols[] = {
        {0, "payload", OID_JSONB, -1},    {0, "created_at", 1184, -1},
        {0, "type", OID_TEXT, -1},        {1, "id", OID_UUID, -1},
        {0, "aggregateid", OID_TEXT, -1}, {0, "aggregatetype", OID_TEXT, -1},
    };
    struct pgo_relation ob = make_relation(OUTBOX_RELID, "public", "outbox", cols, 6);
    const struct rel_desc *d;
    char err[128] = "";

    (void)state;
    assert_int_equal(relcache_update(rc, &ob, err, sizeof(err)), 0);
    d = relcache_get(rc, OUTBOX_RELID);
    assert_non_null(d);
    assert_true(d->is_outbox);
    assert_int_equal(d->outbox.payload, 0);
    assert_int_equal(d->outbox.type, 2);
    assert_int_equal(d->outbox.id, 3);
    assert_int_equal(d->outbox.aggregateid, 4);
    assert_int_equal(d->outbox.aggregatetype, 5);
    relcache_free(rc);
}

/* Only schema AND table identify the outbox: same name elsewhere is an ordinary table. */
static void test_relcache_outbox_other_schema(void **state)
{
    relcache *rc = relcache_new("app", "outbox");
    static const struct pgo_relation_column cols[] = {{0, "whatever", OID_TEXT, -1}};
    /* Neither has the outbox columns: they would fail if taken for the outbox. */
    struct pgo_relation pub = make_relation(100, "public", "outbox", cols, 1);
    struct pgo_relation similar = make_relation(101, "app", "outbox2", cols, 1);
    struct pgo_relation prefix = make_relation(102, "app", "outbo", cols, 1);
    struct pgo_relation swapped = make_relation(103, "outbox", "app", cols, 1);
    struct pgo_relation real = make_relation(104, "app", "outbox", outbox_columns, NCOLS);
    char err[128] = "";

    (void)state;
    assert_int_equal(relcache_update(rc, &pub, err, sizeof(err)), 0);
    assert_int_equal(relcache_update(rc, &similar, err, sizeof(err)), 0);
    assert_int_equal(relcache_update(rc, &prefix, err, sizeof(err)), 0);
    assert_int_equal(relcache_update(rc, &swapped, err, sizeof(err)), 0);
    assert_int_equal(relcache_update(rc, &real, err, sizeof(err)), 0);
    assert_false(relcache_get(rc, 100)->is_outbox);
    assert_false(relcache_get(rc, 101)->is_outbox);
    assert_false(relcache_get(rc, 102)->is_outbox);
    assert_false(relcache_get(rc, 103)->is_outbox);
    assert_true(relcache_get(rc, 104)->is_outbox);
    relcache_free(rc);
}

/* The outbox table without one of its required columns is refused, naming it. */
static void test_relcache_outbox_missing_column(void **state)
{
    static const char *const required[] = {"id", "aggregatetype", "aggregateid", "type", "payload"};

    (void)state;
    for (size_t m = 0; m < sizeof(required) / sizeof(required[0]); m++) {
        relcache *rc = relcache_new("public", "outbox");
        struct pgo_relation_column cols[NCOLS];
        struct pgo_relation good =
            make_relation(OUTBOX_RELID, "public", "outbox", outbox_columns, NCOLS);
        struct pgo_relation bad;
        const struct rel_desc *before, *after;
        uint16_t n = 0;
        char err[256] = "";
        char quoted[64];

        for (int i = 0; i < NCOLS; i++)
            if (strcmp(outbox_columns[i].name, required[m]) != 0)
                cols[n++] = outbox_columns[i];
        assert_int_equal(n, NCOLS - 1);
        bad = make_relation(OUTBOX_RELID, "public", "outbox", cols, n);

        /* A first description that is already bad is not stored at all. */
        assert_int_equal(relcache_update(rc, &bad, err, sizeof(err)), -EINVAL);
        snprintf(quoted, sizeof(quoted), "\"%s\"", required[m]);
        assert_contains(err, quoted);
        assert_contains(err, "public.outbox");
        assert_null(relcache_get(rc, OUTBOX_RELID));

        /* A bad replacement leaves the previous good description in place. */
        assert_int_equal(relcache_update(rc, &good, err, sizeof(err)), 0);
        before = relcache_get(rc, OUTBOX_RELID);
        assert_non_null(before);
        err[0] = '\0';
        assert_int_equal(relcache_update(rc, &bad, err, sizeof(err)), -EINVAL);
        assert_contains(err, quoted);
        after = relcache_get(rc, OUTBOX_RELID);
        assert_ptr_equal(after, before);
        assert_true(after->is_outbox);
        assert_int_equal(after->ncols, NCOLS);
        /* The kept description still finds the column the bad one lacked. */
        assert_true(rel_column_index(after, required[m]) >= 0);
        assert_string_equal(after->cols[rel_column_index(after, required[m])].name, required[m]);
        relcache_free(rc);
    }
}

static void test_rel_column_index(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    assert_int_equal(rel_column_index(f.rel, "id"), COL_ID);
    assert_int_equal(rel_column_index(f.rel, "aggregatetype"), COL_AGGTYPE);
    assert_int_equal(rel_column_index(f.rel, "aggregateid"), COL_AGGID);
    assert_int_equal(rel_column_index(f.rel, "type"), COL_TYPE);
    assert_int_equal(rel_column_index(f.rel, "payload"), COL_PAYLOAD);
    assert_int_equal(rel_column_index(f.rel, "tenant"), COL_TENANT);
    /* Exact, case-sensitive names: PostgreSQL sends them as stored. */
    assert_int_equal(rel_column_index(f.rel, "ID"), -1);
    assert_int_equal(rel_column_index(f.rel, "aggregate"), -1);
    assert_int_equal(rel_column_index(f.rel, "tenants"), -1);
    assert_int_equal(rel_column_index(f.rel, ""), -1);
    fixture_done(&f);
}

/* A relation with no columns at all is legal (CREATE TABLE t ()). */
static void test_relcache_zero_columns(void **state)
{
    relcache *rc = relcache_new("public", "outbox");
    struct pgo_relation r = make_relation(OTHER_RELID, "public", "empty", NULL, 0);
    struct pgo_relation ob = make_relation(OUTBOX_RELID, "public", "outbox", NULL, 0);
    const struct rel_desc *d;
    char err[128] = "";

    (void)state;
    assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), 0);
    d = relcache_get(rc, OTHER_RELID);
    assert_non_null(d);
    assert_int_equal(d->ncols, 0);
    assert_int_equal(rel_column_index(d, "id"), -1);
    /* The outbox table with no columns lacks the first required one. */
    assert_int_equal(relcache_update(rc, &ob, err, sizeof(err)), -EINVAL);
    assert_contains(err, "\"id\"");
    relcache_free(rc);
}

/*
 * _free(NULL) is a no-op for every object of the event model and the formats.  Run in
 * a child process, so that a crash there is this test failing, not the suite dying.
 */
static void test_relcache_free_null(void **state)
{
    int status = -1;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        relcache_free(NULL);
        formatter_free(NULL);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---------------------------------------------------------------- outbox row -> event */

static void test_event_slices(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    fixture_event(&f);

    /* Each field borrows the tuple's bytes: same pointer, same length. */
    assert_ptr_equal(f.ev.id.p, wire + ID_OFF);
    assert_int_equal(f.ev.id.len, ID_LEN);
    assert_ptr_equal(f.ev.aggregatetype.p, wire + AGGTYPE_OFF);
    assert_int_equal(f.ev.aggregatetype.len, AGGTYPE_LEN);
    assert_ptr_equal(f.ev.aggregateid.p, wire + AGGID_OFF);
    assert_int_equal(f.ev.aggregateid.len, AGGID_LEN);
    assert_ptr_equal(f.ev.type.p, wire + TYPE_OFF);
    assert_int_equal(f.ev.type.len, TYPE_LEN);
    assert_ptr_equal(f.ev.payload.p, wire + PAYLOAD_OFF);
    assert_int_equal(f.ev.payload.len, PAYLOAD_LEN);

    assert_slice(f.ev.id, "1f0e7c9a-0000-4000-8000-000000000001");
    assert_slice(f.ev.aggregatetype, "order");
    assert_slice(f.ev.aggregateid, "order-42");
    assert_slice(f.ev.type, "OrderCreated");
    assert_slice(f.ev.payload, "{\"total\":42}");

    assert_ptr_equal(f.ev.rel, f.rel);
    assert_ptr_equal(f.ev.tuple, &f.tuple);
    fixture_done(&f);
}

/* The outbox columns may sit anywhere in the table; the cache resolved them. */
static void test_event_reordered_columns(void **state)
{
    relcache *rc = relcache_new("public", "outbox");
    static const struct pgo_relation_column cols[] = {
        {0, "payload", OID_JSONB, -1}, {0, "aggregateid", OID_TEXT, -1},
        {0, "type", OID_TEXT, -1},     {0, "aggregatetype", OID_TEXT, -1},
        {1, "id", OID_UUID, -1},
    };
    struct pgo_relation r = make_relation(OUTBOX_RELID, "public", "outbox", cols, 5);
    struct pgo_value vals[5];
    struct pgo_tuple t = {5, vals};
    struct event_pos pos = {.commit_lsn = 0x100, .xid = 1};
    struct event ev;
    char err[128] = "";

    (void)state;
    vals[0] = text_str("{}");
    vals[1] = text_str("customer-7");
    vals[2] = text_str("CustomerMoved");
    vals[3] = text_str("customer");
    vals[4] = text_str("00000000-0000-0000-0000-000000000007");
    assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), 0);
    assert_int_equal(
        event_from_outbox_row(relcache_get(rc, OUTBOX_RELID), &t, &pos, &ev, err, sizeof(err)), 0);
    assert_slice(ev.id, "00000000-0000-0000-0000-000000000007");
    assert_slice(ev.aggregatetype, "customer");
    assert_slice(ev.aggregateid, "customer-7");
    assert_slice(ev.type, "CustomerMoved");
    assert_slice(ev.payload, "{}");
    relcache_free(rc);
}

static void test_event_position_copied(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    f.pos.commit_lsn = UINT64_C(0xFFFFFFFF00000001);
    f.pos.xid = UINT32_MAX;
    f.pos.index = 12345;
    f.pos.commit_time_us = -42;
    fixture_event(&f);
    /* Copied, not borrowed: the caller's position moves on with the next row. */
    f.pos.index++;
    assert_int_equal(f.ev.pos.commit_lsn, UINT64_C(0xFFFFFFFF00000001));
    assert_int_equal(f.ev.pos.xid, UINT32_MAX);
    assert_int_equal(f.ev.pos.index, 12345);
    assert_true(f.ev.pos.commit_time_us == -42);
    fixture_done(&f);
}

static void test_event_null_payload(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    f.vals[COL_PAYLOAD] = null_value();
    fixture_event(&f);
    assert_null(f.ev.payload.p);
    assert_int_equal(f.ev.payload.len, 0);
    assert_slice(f.ev.id, "1f0e7c9a-0000-4000-8000-000000000001");
    fixture_done(&f);
}

static void test_event_null_aggregatetype(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    f.vals[COL_AGGTYPE] = null_value();
    fixture_event(&f);
    assert_null(f.ev.aggregatetype.p);
    assert_int_equal(f.ev.aggregatetype.len, 0);
    assert_slice(f.ev.aggregateid, "order-42");
    fixture_done(&f);
}

/* The extra column is never read by the event model, so NULL there is fine. */
static void test_event_null_extra_column(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    f.vals[COL_TENANT] = null_value();
    fixture_event(&f);
    assert_slice(f.ev.type, "OrderCreated");
    fixture_done(&f);
}

static void test_event_null_required(void **state)
{
    static const struct {
        int col;
        const char *quoted;
    } cases[] = {
        {COL_ID, "\"id\""},
        {COL_TYPE, "\"type\""},
        {COL_AGGID, "\"aggregateid\""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fixture f;

        fixture_init(&f);
        f.vals[cases[i].col] = null_value();
        assert_int_equal(
            event_from_outbox_row(f.rel, &f.tuple, &f.pos, &f.ev, f.err, sizeof(f.err)), -EINVAL);
        assert_contains(f.err, cases[i].quoted);
        assert_contains(f.err, "null");
        fixture_done(&f);
    }
}

static void test_event_unchanged_toast(void **state)
{
    static const struct {
        int col;
        const char *quoted;
    } cases[] = {
        {COL_PAYLOAD, "\"payload\""},
        {COL_ID, "\"id\""},
        {COL_AGGTYPE, "\"aggregatetype\""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fixture f;
        struct pgo_value u = {PGO_VALUE_UNCHANGED_TOAST, 0, NULL};

        fixture_init(&f);
        f.vals[cases[i].col] = u;
        assert_int_equal(
            event_from_outbox_row(f.rel, &f.tuple, &f.pos, &f.ev, f.err, sizeof(f.err)), -EINVAL);
        assert_contains(f.err, cases[i].quoted);
        assert_contains(f.err, "toast");
        fixture_done(&f);
    }
}

static void test_event_column_count_mismatch(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    f.tuple.ncols = NCOLS - 1;
    assert_int_equal(event_from_outbox_row(f.rel, &f.tuple, &f.pos, &f.ev, f.err, sizeof(f.err)),
                     -EINVAL);
    assert_contains(f.err, "public.outbox");
    assert_contains(f.err, "5");
    assert_contains(f.err, "6");

    f.tuple.ncols = 0;
    f.err[0] = '\0';
    assert_int_equal(event_from_outbox_row(f.rel, &f.tuple, &f.pos, &f.ev, f.err, sizeof(f.err)),
                     -EINVAL);
    assert_true(f.err[0] != '\0');
    fixture_done(&f);

    /* More columns than the relation: the row does not match its description either. */
    {
        relcache *rc = relcache_new("public", "outbox");
        struct pgo_relation r =
            make_relation(OUTBOX_RELID, "public", "outbox", outbox_columns, NCOLS - 1);
        struct pgo_value vals[NCOLS];
        struct pgo_tuple t = {NCOLS, vals};
        struct event_pos pos = {.commit_lsn = 0};
        struct event ev;
        char err[256] = "";

        for (int i = 0; i < NCOLS; i++)
            vals[i] = text_str("x");
        assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), 0);
        assert_int_equal(
            event_from_outbox_row(relcache_get(rc, OUTBOX_RELID), &t, &pos, &ev, err, sizeof(err)),
            -EINVAL);
        assert_contains(err, "6");
        assert_contains(err, "5");
        relcache_free(rc);
    }
}

/* '' is not NULL: an empty string stays non-NULL with length 0. */
static void test_event_empty_string(void **state)
{
    struct fixture f;
    /* Zero-length TEXT with no data pointer at all must read as '' too. */
    struct pgo_value empty_nodata = {PGO_VALUE_TEXT, 0, NULL};

    (void)state;
    fixture_init(&f);
    f.vals[COL_PAYLOAD] = text_at(PAYLOAD_OFF, 0);
    f.vals[COL_AGGTYPE] = empty_nodata;
    f.vals[COL_TYPE] = text_str("");
    fixture_event(&f);
    assert_non_null(f.ev.payload.p);
    assert_int_equal(f.ev.payload.len, 0);
    assert_non_null(f.ev.aggregatetype.p);
    assert_int_equal(f.ev.aggregatetype.len, 0);
    assert_non_null(f.ev.type.p);
    assert_int_equal(f.ev.type.len, 0);

    /* And an empty id is an id, not a NULL one. */
    f.vals[COL_ID] = empty_nodata;
    fixture_event(&f);
    assert_non_null(f.ev.id.p);
    assert_int_equal(f.ev.id.len, 0);
    fixture_done(&f);
}

/* Binary-format values are bytes like text ones. */
static void test_event_binary_value(void **state)
{
    struct fixture f;
    static const char bytes[] = {'a', '\0', 'b'};
    struct pgo_value b = {PGO_VALUE_BINARY, 3, bytes};

    (void)state;
    fixture_init(&f);
    f.vals[COL_PAYLOAD] = b;
    fixture_event(&f);
    assert_ptr_equal(f.ev.payload.p, bytes);
    assert_int_equal(f.ev.payload.len, 3);
    fixture_done(&f);
}

/* ---------------------------------------------------------------- topic templates */

/* Render f's event with template tmpl; return the result, topic in out. */
static int render_with(struct fixture *f, const char *tmpl, struct out_msg *out)
{
    char err[256] = "";
    formatter *fmt = formatter_new(tmpl, "/shop/public.outbox", err, sizeof(err));
    int rc;

    if (!fmt)
        fail_msg("formatter_new(\"%s\"): %s", tmpl, err);
    fixture_event(f);
    f->err[0] = '\0';
    memset(out, 0, sizeof(*out));
    rc = formatter_render(fmt, &f->ev, out, f->err, sizeof(f->err));
    if (rc < 0)
        assert_true(f->err[0] != '\0'); /* every failure says why */
    formatter_free(fmt);
    return rc;
}

static void assert_topic(struct fixture *f, const char *tmpl, const char *want)
{
    struct out_msg out;
    int rc = render_with(f, tmpl, &out);

    if (rc != 0)
        fail_msg("template \"%s\": %d (%s)", tmpl, rc, f->err);
    assert_string_equal(out.topic, want);
}

static void assert_topic_rejected(struct fixture *f, const char *tmpl, const char *errpart)
{
    struct out_msg out;
    int rc = render_with(f, tmpl, &out);

    if (rc != -EDESTADDRREQ)
        fail_msg("template \"%s\": want -EDESTADDRREQ, got %d (topic \"%s\")", tmpl, rc,
                 rc == 0 ? out.topic : "");
    if (errpart)
        assert_contains(f->err, errpart);
}

/*
 * The formatter makes the name; whether a sink takes it is the sink's rule
 * (sink_destination_check(), tests/unit/test_sink.c).  Kafka's is applied here.
 */
static void assert_topic_refused_by_kafka(struct fixture *f, const char *tmpl,
                                          const char *errpart)
{
    struct out_msg out;
    int rc = render_with(f, tmpl, &out);

    if (rc == -EDESTADDRREQ) {
        if (errpart)
            assert_contains(f->err, errpart);
        return;
    }
    if (rc != 0)
        fail_msg("template \"%s\": %d (%s)", tmpl, rc, f->err);
    if (sink_destination_check(sink_type_find("kafka"), out.topic, f->err, sizeof(f->err)) !=
        -EDESTADDRREQ)
        fail_msg("template \"%s\": kafka took topic \"%s\"", tmpl, out.topic);
    if (errpart)
        assert_contains(f->err, errpart);
}

static void test_topic_default_template(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    assert_topic(&f, "outbox.event.{aggregatetype}", "outbox.event.order");
    fixture_done(&f);
}

static void test_topic_fixed(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    assert_topic(&f, "events", "events");
    assert_topic(&f, "My_Topic-1.v2", "My_Topic-1.v2");
    /* A fixed topic does not care that aggregatetype is NULL. */
    f.vals[COL_AGGTYPE] = null_value();
    assert_topic(&f, "events", "events");
    fixture_done(&f);
}

static void test_topic_multiple_placeholders(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    assert_topic(&f, "{aggregatetype}.{type}", "order.OrderCreated");
    assert_topic(&f, "{aggregatetype}{type}", "orderOrderCreated");
    assert_topic(&f, "pre.{aggregatetype}.mid.{type}.post", "pre.order.mid.OrderCreated.post");
    assert_topic(&f, "{type}", "OrderCreated");
    assert_topic(&f, "{aggregatetype}.{aggregatetype}", "order.order");
    fixture_done(&f);
}

/* A placeholder may name any column of the outbox table, not only the known ones. */
static void test_topic_extra_column(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    assert_topic(&f, "{tenant}.events", "acme.events");
    assert_topic(&f, "{tenant}.{aggregatetype}", "acme.order");
    /* An empty value contributes nothing. */
    f.vals[COL_TENANT] = text_str("");
    assert_topic(&f, "t{tenant}.events", "t.events");
    fixture_done(&f);
}

static void test_topic_missing_column(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    assert_topic_rejected(&f, "outbox.{region}", "{region}");
    assert_contains(f.err, "public.outbox");
    assert_topic_rejected(&f, "outbox.{Tenant}", "Tenant");
    fixture_done(&f);
}

static void test_topic_null_column(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    f.vals[COL_AGGTYPE] = null_value();
    assert_topic_rejected(&f, "outbox.event.{aggregatetype}", "aggregatetype");
    assert_contains(f.err, "null");
    f.vals[COL_AGGTYPE] = text_at(AGGTYPE_OFF, AGGTYPE_LEN);
    f.vals[COL_TENANT] = null_value();
    assert_topic_rejected(&f, "{tenant}.events", "tenant");
    fixture_done(&f);
}

static void test_topic_invalid_chars(void **state)
{
    static const char *const bad_values[] = {
        "or der",                   /* space */
        "order/x",                  /* slash */
        "\xc3\xb6rder",             /* "order" with an o-umlaut, UTF-8 */
        "\xe6\xb3\xa8\xe6\x96\x87", /* CJK */
        "a:b",
        "a*b",
        "a+b",
        "a\tb",
        "a\nb",
        "a#b",
        "{x}",
    };
    struct fixture f;

    (void)state;
    fixture_init(&f);
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        f.vals[COL_AGGTYPE] = text_str(bad_values[i]);
        assert_topic_refused_by_kafka(&f, "outbox.event.{aggregatetype}", "character");
    }
    /* A NUL byte inside a value must not cut the topic short and pass: the formatter refuses it. */
    {
        static const char nul[] = {'a', '\0', 'b'};
        struct pgo_value v = {PGO_VALUE_TEXT, 3, nul};

        f.vals[COL_AGGTYPE] = v;
        assert_topic_rejected(&f, "outbox.event.{aggregatetype}", "NUL");
    }
    /* Literal parts are checked too. */
    f.vals[COL_AGGTYPE] = text_at(AGGTYPE_OFF, AGGTYPE_LEN);
    assert_topic_refused_by_kafka(&f, "outbox event", "character");
    assert_topic_refused_by_kafka(&f, "outbox/{aggregatetype}", "character");
    assert_topic_refused_by_kafka(&f, "outbox}", "character");
    /* Every allowed character class passes. */
    f.vals[COL_AGGTYPE] = text_str("AZaz09._-");
    assert_topic(&f, "{aggregatetype}", "AZaz09._-");
    {
        struct out_msg out;

        assert_int_equal(render_with(&f, "{aggregatetype}", &out), 0);
        assert_int_equal(
            sink_destination_check(sink_type_find("kafka"), out.topic, f.err, sizeof(f.err)), 0);
    }
    fixture_done(&f);
}

static void test_topic_length(void **state)
{
    struct fixture f;
    char tmpl[400];
    char want[400];

    (void)state;
    fixture_init(&f);

    /* A literal of exactly 249 bytes is the longest topic Kafka takes. */
    memset(tmpl, 'a', FORMAT_TOPIC_MAX);
    tmpl[FORMAT_TOPIC_MAX] = '\0';
    assert_topic(&f, tmpl, tmpl);
    tmpl[FORMAT_TOPIC_MAX] = 'a';
    tmpl[FORMAT_TOPIC_MAX + 1] = '\0';
    assert_topic_rejected(&f, tmpl, "249");

    /* The same limit when the placeholder value makes up the length: 244 + 5 = 249. */
    memset(tmpl, 'p', 244);
    strcpy(tmpl + 244, "{aggregatetype}");
    memset(want, 'p', 244);
    strcpy(want + 244, "order");
    assert_int_equal(strlen(want), FORMAT_TOPIC_MAX);
    assert_topic(&f, tmpl, want);
    memset(tmpl, 'p', 245);
    strcpy(tmpl + 245, "{aggregatetype}");
    assert_topic_rejected(&f, tmpl, "249");

    /* A value alone that is too long, far beyond the buffer. */
    {
        static char big[1000];

        memset(big, 'v', sizeof(big) - 1);
        f.vals[COL_AGGTYPE] = text_str(big);
        assert_topic_rejected(&f, "{aggregatetype}", "249");
        big[FORMAT_TOPIC_MAX] = '\0';
        f.vals[COL_AGGTYPE] = text_str(big);
        assert_topic(&f, "{aggregatetype}", big);
    }
    fixture_done(&f);
}

static void test_topic_dot_names(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    assert_topic_refused_by_kafka(&f, ".", ".");
    assert_topic_refused_by_kafka(&f, "..", "..");
    f.vals[COL_AGGTYPE] = text_str(".");
    assert_topic_refused_by_kafka(&f, "{aggregatetype}", NULL);
    f.vals[COL_AGGTYPE] = text_str("..");
    assert_topic_refused_by_kafka(&f, "{aggregatetype}", NULL);
    f.vals[COL_AGGTYPE] = text_str("");
    assert_topic_refused_by_kafka(&f, ".{aggregatetype}.", NULL);
    /* Only those two names are reserved. */
    assert_topic(&f, "...", "...");
    assert_topic(&f, ".a", ".a");
    fixture_done(&f);
}

static void test_topic_empty(void **state)
{
    struct fixture f;

    (void)state;
    fixture_init(&f);
    f.vals[COL_AGGTYPE] = text_str("");
    assert_topic_refused_by_kafka(&f, "{aggregatetype}", "empty");
    fixture_done(&f);
}

static void test_formatter_bad_templates(void **state)
{
    static const char *const bad[] = {
        "{", "{}", "a{b", "outbox.{", "outbox.{}", "x{}y", "{aggregatetype}.{", "{aggregatetype"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        formatter *fmt = formatter_new(bad[i], "/src", err, sizeof(err));

        if (fmt) {
            formatter_free(fmt);
            fail_msg("template \"%s\" accepted", bad[i]);
        }
        assert_true(err[0] != '\0');
        assert_contains(err, bad[i]); /* the message quotes the template */
    }
}

/* ---------------------------------------------------------------- message and headers */

static void assert_header(const struct out_msg *m, int i, const char *name, const char *value)
{
    assert_true(i < m->nheaders);
    assert_string_equal(m->headers[i].name, name);
    if (m->headers[i].len != strlen(value) ||
        memcmp(m->headers[i].value, value, m->headers[i].len) != 0)
        fail_msg("header %s: want \"%s\", got \"%.*s\"", name, value, (int)m->headers[i].len,
                 m->headers[i].value);
}

static void test_render_headers(void **state)
{
    struct fixture f;
    struct out_msg out;
    char err[256] = "";
    formatter *fmt =
        formatter_new("outbox.event.{aggregatetype}", "/shop/public.outbox", err, sizeof(err));

    (void)state;
    assert_non_null(fmt);
    fixture_init(&f);
    fixture_event(&f);
    memset(&out, 0xA5, sizeof(out)); /* garbage in: render must set every field */
    assert_int_equal(formatter_render(fmt, &f.ev, &out, err, sizeof(err)), 0);

    assert_string_equal(out.topic, "outbox.event.order");
    assert_int_equal(out.key_len, AGGID_LEN);
    assert_memory_equal(out.key, "order-42", AGGID_LEN);
    assert_ptr_equal(out.key, wire + AGGID_OFF);
    assert_int_equal(out.value_len, PAYLOAD_LEN);
    assert_memory_equal(out.value, "{\"total\":42}", PAYLOAD_LEN);
    assert_ptr_equal(out.value, wire + PAYLOAD_OFF);

    assert_int_equal(out.nheaders, 13);
    assert_header(&out, 0, "ce_specversion", "1.0");
    assert_header(&out, 1, "ce_id", "1f0e7c9a-0000-4000-8000-000000000001");
    assert_header(&out, 2, "ce_source", "/shop/public.outbox");
    assert_header(&out, 3, "ce_type", "OrderCreated");
    assert_header(&out, 4, "ce_subject", "order-42");
    assert_header(&out, 5, "ce_time", "2023-11-14T22:13:20.123456Z");
    assert_header(&out, 6, "ce_pglsn", "16/B374D848");
    assert_header(&out, 7, "ce_pgxid", "731");
    assert_header(&out, 8, "ce_pgindex", "2");
    assert_header(&out, 9, "content-type", "application/json");

    /* Rendering again into the same message does not append a second set. */
    f.pos.index = 3;
    fixture_event(&f);
    assert_int_equal(formatter_render(fmt, &f.ev, &out, err, sizeof(err)), 0);
    assert_int_equal(out.nheaders, 13);
    assert_header(&out, 8, "ce_pgindex", "3");

    formatter_free(fmt);
    fixture_done(&f);
}

/* The source is copied by formatter_new, not borrowed. */
static void test_render_source_copied(void **state)
{
    struct fixture f;
    struct out_msg out;
    char err[256] = "";
    char src[] = "/db/public.outbox";
    char tmpl[] = "t.{aggregatetype}";
    formatter *fmt = formatter_new(tmpl, src, err, sizeof(err));

    (void)state;
    assert_non_null(fmt);
    memset(src, 'x', sizeof(src) - 1);
    memset(tmpl, 'x', sizeof(tmpl) - 1);
    fixture_init(&f);
    fixture_event(&f);
    assert_int_equal(formatter_render(fmt, &f.ev, &out, err, sizeof(err)), 0);
    assert_string_equal(out.topic, "t.order");
    assert_header(&out, 2, "ce_source", "/db/public.outbox");
    formatter_free(fmt);
    fixture_done(&f);
}

static void test_render_null_payload(void **state)
{
    struct fixture f;
    struct out_msg out;
    char err[256] = "";
    formatter *fmt = formatter_new("events", "/s", err, sizeof(err));

    (void)state;
    assert_non_null(fmt);
    fixture_init(&f);
    f.vals[COL_PAYLOAD] = null_value();
    fixture_event(&f);
    memset(&out, 0xA5, sizeof(out));
    assert_int_equal(formatter_render(fmt, &f.ev, &out, err, sizeof(err)), 0);
    assert_null(out.value);
    assert_int_equal(out.value_len, 0);
    assert_memory_equal(out.key, "order-42", AGGID_LEN);
    assert_int_equal(out.nheaders, 13);
    assert_header(&out, 9, "content-type", "application/json");

    /* An empty payload is an empty value, not a NULL one. */
    f.vals[COL_PAYLOAD] = text_at(PAYLOAD_OFF, 0);
    fixture_event(&f);
    assert_int_equal(formatter_render(fmt, &f.ev, &out, err, sizeof(err)), 0);
    assert_non_null(out.value);
    assert_int_equal(out.value_len, 0);
    formatter_free(fmt);
    fixture_done(&f);
}

/* Extreme positions: widest LSN, xid and index; zero LSN; time before 1970. */
static void test_render_header_extremes(void **state)
{
    struct fixture f;
    struct out_msg out;
    char err[256] = "";
    formatter *fmt = formatter_new("events", "/s", err, sizeof(err));

    (void)state;
    assert_non_null(fmt);
    fixture_init(&f);
    f.pos.commit_lsn = UINT64_MAX;
    f.pos.xid = UINT32_MAX;
    f.pos.index = UINT32_MAX;
    f.pos.commit_time_us = INT64_C(253402300799999999);
    fixture_event(&f);
    assert_int_equal(formatter_render(fmt, &f.ev, &out, err, sizeof(err)), 0);
    assert_header(&out, 5, "ce_time", "9999-12-31T23:59:59.999999Z");
    assert_header(&out, 6, "ce_pglsn", "FFFFFFFF/FFFFFFFF");
    assert_header(&out, 7, "ce_pgxid", "4294967295");
    assert_header(&out, 8, "ce_pgindex", "4294967295");

    f.pos.commit_lsn = 0;
    f.pos.xid = 0;
    f.pos.index = 0;
    f.pos.commit_time_us = -1;
    fixture_event(&f);
    assert_int_equal(formatter_render(fmt, &f.ev, &out, err, sizeof(err)), 0);
    assert_header(&out, 5, "ce_time", "1969-12-31T23:59:59.999999Z");
    assert_header(&out, 6, "ce_pglsn", "0/0");
    assert_header(&out, 7, "ce_pgxid", "0");
    assert_header(&out, 8, "ce_pgindex", "0");

    /* The low half is not zero-padded, as PostgreSQL prints it. */
    f.pos.commit_lsn = UINT64_C(0x16B3748);
    fixture_event(&f);
    assert_int_equal(formatter_render(fmt, &f.ev, &out, err, sizeof(err)), 0);
    assert_header(&out, 6, "ce_pglsn", "0/16B3748");
    formatter_free(fmt);
    fixture_done(&f);
}

/* ---------------------------------------------------------------- RFC 3339 */

static void assert_rfc3339(int64_t us, const char *want)
{
    char buf[64];
    size_t n;

    memset(buf, 'X', sizeof(buf));
    n = format_rfc3339(us, buf, sizeof(buf));
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_rfc3339(void **state)
{
    (void)state;
    assert_rfc3339(0, "1970-01-01T00:00:00.000000Z");
    assert_rfc3339(1, "1970-01-01T00:00:00.000001Z");
    assert_rfc3339(999999, "1970-01-01T00:00:00.999999Z");
    assert_rfc3339(1000000, "1970-01-01T00:00:01.000000Z");
    assert_rfc3339(INT64_C(1700000000123456), "2023-11-14T22:13:20.123456Z");
    /* PostgreSQL's epoch, through the decoder's conversion. */
    assert_rfc3339(pgo_timestamp_to_unix_us(0), "2000-01-01T00:00:00.000000Z");
    /* A leap day. */
    assert_rfc3339(INT64_C(951782400000000), "2000-02-29T00:00:00.000000Z");
    assert_rfc3339(INT64_C(253402300799999999), "9999-12-31T23:59:59.999999Z");
}

static void test_rfc3339_negative(void **state)
{
    (void)state;
    assert_rfc3339(-1, "1969-12-31T23:59:59.999999Z");
    assert_rfc3339(-999999, "1969-12-31T23:59:59.000001Z");
    assert_rfc3339(-1000000, "1969-12-31T23:59:59.000000Z");
    assert_rfc3339(-1000001, "1969-12-31T23:59:58.999999Z");
    assert_rfc3339(-INT64_C(86400000000), "1969-12-31T00:00:00.000000Z");
    /* 1900-01-01, a PostgreSQL timestamp well before its own epoch. */
    assert_rfc3339(-INT64_C(2208988800000000), "1900-01-01T00:00:00.000000Z");
    assert_rfc3339(-INT64_C(2208988800000000) + 500000, "1900-01-01T00:00:00.500000Z");
}

/* The header promises at least 32 bytes suffice; check that exactly 32 does. */
static void test_rfc3339_buffer_32(void **state)
{
    char buf[32];
    size_t n;

    (void)state;
    n = format_rfc3339(INT64_C(1700000000123456), buf, sizeof(buf));
    assert_int_equal(n, 27);
    assert_string_equal(buf, "2023-11-14T22:13:20.123456Z");
}

/* ---------------------------------------------------------------- outbox spec */

/*
 * An outbox table configured beyond the Debezium defaults: the key in "order_id",
 * the schema version in "schema_version", a headers object in "hdrs", and two
 * header columns named in an order other than the table's.  It also has an
 * "aggregateid" column, which the key column replaces.
 */
enum {
    S_ID,
    S_AGGTYPE,
    S_AGGID,
    S_ORDER,
    S_TYPE,
    S_PAYLOAD,
    S_VERSION,
    S_HDRS,
    S_TENANT,
    S_TRACE,
    SCOLS
};

#define OID_INT4 23
#define OID_JSON 114
#define OID_VARCHAR 1043

static const char *const spec_col_names[SCOLS] = {
    "id",      "aggregatetype",  "aggregateid", "order_id", "type",
    "payload", "schema_version", "hdrs",        "tenant",   "trace",
};

static char sh_trace[] = "trace";
static char sh_tenant[] = "tenant";
static char *const spec_header_columns[] = {sh_trace, sh_tenant};
static const struct outbox_spec full_spec = {"order_id", "schema_version", "hdrs",
                                             spec_header_columns, 2};

struct spec_fixture {
    relcache *rc;
    const struct rel_desc *rel;
    struct pgo_relation_column cols[SCOLS];
    struct pgo_value vals[SCOLS];
    struct pgo_tuple tuple;
    struct event_pos pos;
    struct event ev;
    char err[256];
};

/* The spec table's columns, with the payload typed payload_oid. */
static void spec_columns(struct pgo_relation_column *cols, pgo_oid_t payload_oid)
{
    for (int i = 0; i < SCOLS; i++) {
        cols[i].flags = i == S_ID;
        cols[i].name = spec_col_names[i];
        cols[i].type_oid = OID_TEXT;
        cols[i].type_mod = -1;
    }
    cols[S_ID].type_oid = OID_UUID;
    cols[S_PAYLOAD].type_oid = payload_oid;
    cols[S_VERSION].type_oid = OID_INT4;
    cols[S_HDRS].type_oid = OID_JSONB;
}

static void spec_init(struct spec_fixture *f, pgo_oid_t payload_oid)
{
    struct pgo_relation r;

    memset(f, 0, sizeof(*f));
    spec_columns(f->cols, payload_oid);
    r = make_relation(OUTBOX_RELID, "public", "outbox", f->cols, SCOLS);
    f->rc = relcache_new("public", "outbox");
    assert_non_null(f->rc);
    assert_int_equal(relcache_set_outbox_spec(f->rc, &full_spec, f->err, sizeof(f->err)), 0);
    if (relcache_update(f->rc, &r, f->err, sizeof(f->err)) != 0)
        fail_msg("relcache_update: %s", f->err);
    f->rel = relcache_get(f->rc, OUTBOX_RELID);
    assert_non_null(f->rel);
    f->vals[S_ID] = text_str("1f0e7c9a-0000-4000-8000-000000000001");
    f->vals[S_AGGTYPE] = text_str("order");
    f->vals[S_AGGID] = text_str("not-the-key");
    f->vals[S_ORDER] = text_str("o-77");
    f->vals[S_TYPE] = text_str("OrderCreated");
    f->vals[S_PAYLOAD] = text_str("{\"total\": 42}");
    f->vals[S_VERSION] = text_str("2");
    f->vals[S_HDRS] = text_str("{\"traceparent\": \"00-ab\", \"n\": 1}");
    f->vals[S_TENANT] = text_str("acme");
    f->vals[S_TRACE] = text_str("t-1");
    f->tuple.ncols = SCOLS;
    f->tuple.cols = f->vals;
    f->pos.commit_lsn = 0x16B3748;
    f->pos.xid = 731;
}

static int spec_event(struct spec_fixture *f)
{
    f->err[0] = '\0';
    return event_from_outbox_row(f->rel, &f->tuple, &f->pos, &f->ev, f->err, sizeof(f->err));
}

static void spec_event_ok(struct spec_fixture *f)
{
    if (spec_event(f) != 0)
        fail_msg("event_from_outbox_row: %s", f->err);
}

/* The row must be refused with -EINVAL and an error that contains errpart. */
static void spec_event_rejected(struct spec_fixture *f, const char *errpart)
{
    int rc = spec_event(f);

    if (rc != -EINVAL)
        fail_msg("want -EINVAL (%s), got %d", errpart, rc);
    assert_contains(f->err, errpart);
}

static void spec_done(struct spec_fixture *f)
{
    relcache_free(f->rc);
}

static void test_spec_resolved_columns(void **state)
{
    struct spec_fixture f;

    (void)state;
    spec_init(&f, OID_JSONB);
    assert_true(f.rel->is_outbox);
    assert_int_equal(f.rel->outbox.aggregateid, S_ORDER);
    assert_int_equal(f.rel->outbox.version, S_VERSION);
    assert_int_equal(f.rel->outbox.headers, S_HDRS);
    assert_int_equal(f.rel->outbox.nextra, 2);
    assert_int_equal(f.rel->outbox.extra[0], S_TRACE);
    assert_int_equal(f.rel->outbox.extra[1], S_TENANT);
    assert_true(f.rel->outbox.payload_is_json);
    spec_done(&f);
}

/* The key column replaces aggregateid as the key, which the table then need not have. */
static void test_spec_key_column(void **state)
{
    struct spec_fixture f;

    (void)state;
    spec_init(&f, OID_JSONB);
    spec_event_ok(&f);
    assert_ptr_equal(f.ev.aggregateid.p, f.vals[S_ORDER].data);
    assert_slice(f.ev.aggregateid, "o-77");
    assert_slice(f.ev.id, "1f0e7c9a-0000-4000-8000-000000000001");
    assert_slice(f.ev.aggregatetype, "order");
    assert_slice(f.ev.type, "OrderCreated");

    /* NULL in the key column is a NULL key, refused naming the column. */
    f.vals[S_ORDER] = null_value();
    spec_event_rejected(&f, "\"order_id\"");
    spec_done(&f);

    /* Without an aggregateid column at all. */
    {
        relcache *rc = relcache_new("public", "outbox");
        struct pgo_relation_column cols[SCOLS];
        struct pgo_relation_column kept[SCOLS];
        uint16_t n = 0;
        struct pgo_relation r;
        char err[256] = "";

        spec_columns(cols, OID_JSONB);
        for (int i = 0; i < SCOLS; i++)
            if (i != S_AGGID)
                kept[n++] = cols[i];
        r = make_relation(OUTBOX_RELID, "public", "outbox", kept, n);
        assert_int_equal(relcache_set_outbox_spec(rc, &full_spec, err, sizeof(err)), 0);
        assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), 0);
        assert_int_equal(relcache_get(rc, OUTBOX_RELID)->outbox.aggregateid, S_ORDER - 1);
        relcache_free(rc);
    }
    /* Without the key column: refused, naming it. */
    {
        relcache *rc = relcache_new("public", "outbox");
        struct pgo_relation_column cols[SCOLS];
        struct pgo_relation_column kept[SCOLS];
        uint16_t n = 0;
        struct pgo_relation r;
        char err[256] = "";

        spec_columns(cols, OID_JSONB);
        for (int i = 0; i < SCOLS; i++)
            if (i != S_ORDER)
                kept[n++] = cols[i];
        r = make_relation(OUTBOX_RELID, "public", "outbox", kept, n);
        assert_int_equal(relcache_set_outbox_spec(rc, &full_spec, err, sizeof(err)), 0);
        assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), -EINVAL);
        assert_contains(err, "\"order_id\"");
        assert_null(relcache_get(rc, OUTBOX_RELID));
        relcache_free(rc);
    }
}

/* version: the column's text when present and not NULL, else "1". */
static void test_spec_version(void **state)
{
    struct spec_fixture f;

    (void)state;
    spec_init(&f, OID_JSONB);
    spec_event_ok(&f);
    assert_ptr_equal(f.ev.version.p, f.vals[S_VERSION].data);
    assert_slice(f.ev.version, "2");

    f.vals[S_VERSION] = null_value();
    spec_event_ok(&f);
    assert_slice(f.ev.version, "1");

    f.vals[S_VERSION] = text_str("\xff");
    spec_event_rejected(&f, "schema_version");
    spec_done(&f);

    /* A table without the configured version column: every event is version 1. */
    {
        relcache *rc = relcache_new("public", "outbox");
        struct pgo_relation r =
            make_relation(OUTBOX_RELID, "public", "outbox", outbox_columns, NCOLS);
        struct pgo_value vals[NCOLS];
        struct pgo_tuple t = {NCOLS, vals};
        struct event_pos pos = {.commit_lsn = 1};
        struct event ev;
        char err[256] = "";
        const struct outbox_spec spec = {NULL, "schema_version", NULL, NULL, 0};

        assert_int_equal(relcache_set_outbox_spec(rc, &spec, err, sizeof(err)), 0);
        assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), 0);
        assert_int_equal(relcache_get(rc, OUTBOX_RELID)->outbox.version, -1);
        assert_int_equal(relcache_get(rc, OUTBOX_RELID)->outbox.headers, -1);
        /* A NULL key column in the spec means the default, aggregateid. */
        assert_int_equal(relcache_get(rc, OUTBOX_RELID)->outbox.aggregateid, COL_AGGID);
        for (int i = 0; i < NCOLS; i++)
            vals[i] = text_str("{}");
        assert_int_equal(
            event_from_outbox_row(relcache_get(rc, OUTBOX_RELID), &t, &pos, &ev, err, sizeof(err)),
            0);
        assert_slice(ev.version, "1");
        assert_null(ev.headers.p);
        assert_int_equal(ev.nextra, 0);
        relcache_free(rc);
    }
}

/* The default spec reads columns called "version" and "headers" when the table has them. */
static void test_spec_defaults(void **state)
{
    static const struct pgo_relation_column cols[] = {
        {1, "id", OID_UUID, -1},          {0, "aggregatetype", OID_TEXT, -1},
        {0, "aggregateid", OID_TEXT, -1}, {0, "type", OID_TEXT, -1},
        {0, "payload", OID_JSONB, -1},    {0, "version", OID_TEXT, -1},
        {0, "headers", OID_JSONB, -1},
    };
    relcache *rc = relcache_new("public", "outbox");
    struct pgo_relation r = make_relation(OUTBOX_RELID, "public", "outbox", cols, 7);
    struct pgo_value vals[7];
    struct pgo_tuple t = {7, vals};
    struct event_pos pos = {.commit_lsn = 1};
    struct event ev;
    char err[256] = "";

    (void)state;
    assert_int_equal(relcache_update(rc, &r, err, sizeof(err)), 0);
    vals[0] = text_str("i");
    vals[1] = text_str("a");
    vals[2] = text_str("k");
    vals[3] = text_str("T");
    vals[4] = text_str("{}");
    vals[5] = text_str("v3");
    vals[6] = text_str("{\"x\":\"y\"}");
    assert_int_equal(
        event_from_outbox_row(relcache_get(rc, OUTBOX_RELID), &t, &pos, &ev, err, sizeof(err)), 0);
    assert_slice(ev.version, "v3");
    assert_slice(ev.headers, "{\"x\":\"y\"}");
    relcache_free(rc);
}

/* The headers column: a JSON object kept raw; anything else refused; NULL means none. */
static void test_spec_headers_column(void **state)
{
    static const char *const not_objects[] = {
        "[1, 2]", "[]", "\"{}\"", "42", "true", "{\"a\":", "{\"a\":1,}", "not json", "",
    };
    struct spec_fixture f;

    (void)state;
    spec_init(&f, OID_JSONB);
    spec_event_ok(&f);
    assert_ptr_equal(f.ev.headers.p, f.vals[S_HDRS].data);
    assert_slice(f.ev.headers, "{\"traceparent\": \"00-ab\", \"n\": 1}");

    /* Whitespace around the object is allowed and kept. */
    f.vals[S_HDRS] = text_str(" {\"a\": {\"b\": [1]}} ");
    spec_event_ok(&f);
    assert_slice(f.ev.headers, " {\"a\": {\"b\": [1]}} ");

    f.vals[S_HDRS] = null_value();
    spec_event_ok(&f);
    assert_null(f.ev.headers.p);

    for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
        f.vals[S_HDRS] = text_str(not_objects[i]);
        spec_event_rejected(&f, "hdrs");
        assert_contains(f.err, "object");
    }
    spec_done(&f);
}

/* Header columns: copied in the configured order; NULL kept as NULL. */
static void test_spec_header_columns(void **state)
{
    struct spec_fixture f;

    (void)state;
    spec_init(&f, OID_JSONB);
    spec_event_ok(&f);
    assert_int_equal(f.ev.nextra, 2);
    assert_string_equal(f.ev.extra[0].name, "trace");
    assert_ptr_equal(f.ev.extra[0].value.p, f.vals[S_TRACE].data);
    assert_slice(f.ev.extra[0].value, "t-1");
    assert_string_equal(f.ev.extra[1].name, "tenant");
    assert_slice(f.ev.extra[1].value, "acme");

    f.vals[S_TENANT] = null_value();
    spec_event_ok(&f);
    assert_int_equal(f.ev.nextra, 2);
    assert_string_equal(f.ev.extra[1].name, "tenant");
    assert_null(f.ev.extra[1].value.p);
    assert_int_equal(f.ev.extra[1].value.len, 0);

    /* An empty value is a value. */
    f.vals[S_TENANT] = text_str("");
    spec_event_ok(&f);
    assert_non_null(f.ev.extra[1].value.p);
    assert_int_equal(f.ev.extra[1].value.len, 0);

    /* Header values become header text: they must be UTF-8 too. */
    f.vals[S_TENANT] = text_str("caf\xe9");
    spec_event_rejected(&f, "tenant");
    assert_contains(f.err, "UTF-8");
    spec_done(&f);
}

static void test_spec_header_column_missing(void **state)
{
    static char h_region[] = "region";
    static char *const cols_bad[] = {sh_trace, h_region};
    const struct outbox_spec bad = {"order_id", "schema_version", "hdrs", cols_bad, 2};
    struct spec_fixture f;
    struct pgo_relation r;

    (void)state;
    spec_init(&f, OID_JSONB);
    /* Takes effect with the next Relation message; the cached description stays. */
    assert_int_equal(relcache_set_outbox_spec(f.rc, &bad, f.err, sizeof(f.err)), 0);
    r = make_relation(OUTBOX_RELID, "public", "outbox", f.cols, SCOLS);
    assert_int_equal(relcache_update(f.rc, &r, f.err, sizeof(f.err)), -EINVAL);
    assert_contains(f.err, "\"region\"");
    assert_contains(f.err, "public.outbox");
    f.rel = relcache_get(f.rc, OUTBOX_RELID);
    assert_non_null(f.rel);
    assert_int_equal(f.rel->outbox.nextra, 2);
    assert_int_equal(f.rel->outbox.extra[1], S_TENANT);
    spec_done(&f);
}

static void test_spec_too_many_header_columns(void **state)
{
    static char name[] = "tenant";
    char *cols[EVENT_MAX_EXTRA + 1];
    struct outbox_spec spec = {NULL, NULL, NULL, cols, EVENT_MAX_EXTRA + 1};
    relcache *rc = relcache_new("public", "outbox");
    char err[256] = "";

    (void)state;
    for (int i = 0; i <= EVENT_MAX_EXTRA; i++)
        cols[i] = name;
    assert_int_equal(relcache_set_outbox_spec(rc, &spec, err, sizeof(err)), -EINVAL);
    assert_contains(err, "8");
    spec.nheader_columns = EVENT_MAX_EXTRA;
    assert_int_equal(relcache_set_outbox_spec(rc, &spec, err, sizeof(err)), 0);
    relcache_free(rc);
}

/* A text payload must be JSON; json and jsonb ones were checked by the server. */
static void test_spec_payload_validation(void **state)
{
    static const char *const bad[] = {
        "{\"a\":", "not json", "{'a': 1}", "[1,]", "", "{\"s\":\"caf\xe9\"}",
    };
    static const char *const good[] = {
        "{\"a\": [1, 2]}", "\"just a string\"", "42", "null", " [ ] ",
    };
    struct spec_fixture f;

    (void)state;
    spec_init(&f, OID_TEXT);
    assert_false(f.rel->outbox.payload_is_json);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f.vals[S_PAYLOAD] = text_str(bad[i]);
        spec_event_rejected(&f, "\"payload\"");
        assert_contains(f.err, "JSON");
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        f.vals[S_PAYLOAD] = text_str(good[i]);
        spec_event_ok(&f);
        assert_ptr_equal(f.ev.payload.p, f.vals[S_PAYLOAD].data);
        assert_slice(f.ev.payload, good[i]);
    }
    /* A NULL text payload is a NULL payload, not invalid JSON. */
    f.vals[S_PAYLOAD] = null_value();
    spec_event_ok(&f);
    assert_null(f.ev.payload.p);
    spec_done(&f);

    /* varchar is text too. */
    spec_init(&f, OID_VARCHAR);
    f.vals[S_PAYLOAD] = text_str("{");
    spec_event_rejected(&f, "\"payload\"");
    spec_done(&f);

    /* jsonb and json: not validated again, garbage passes through untouched. */
    spec_init(&f, OID_JSONB);
    assert_true(f.rel->outbox.payload_is_json);
    f.vals[S_PAYLOAD] = text_str("{\"a\":");
    spec_event_ok(&f);
    assert_slice(f.ev.payload, "{\"a\":");
    spec_done(&f);
    spec_init(&f, OID_JSON);
    assert_true(f.rel->outbox.payload_is_json);
    f.vals[S_PAYLOAD] = text_str("not json");
    spec_event_ok(&f);
    assert_slice(f.ev.payload, "not json");
    spec_done(&f);
}

/* Strings that become headers or JSON strings must be valid UTF-8. */
static void test_spec_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xff",             /* never valid */
        "abc\xc3",          /* truncated two-byte sequence */
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* a surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
    };
    static const struct {
        int col;
        const char *name;
    } cols[] = {
        {S_ID, "\"id\""},          {S_TYPE, "\"type\""},
        {S_ORDER, "\"order_id\""}, {S_AGGTYPE, "\"aggregatetype\""},
        {S_TRACE, "\"trace\""},
    };
    struct spec_fixture f;

    (void)state;
    spec_init(&f, OID_JSONB);
    for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            struct pgo_value keep = f.vals[cols[c].col];

            f.vals[cols[c].col] = text_str(bad[b]);
            spec_event_rejected(&f, cols[c].name);
            assert_contains(f.err, "UTF-8");
            f.vals[cols[c].col] = keep;
        }
    }
    /* Valid multibyte text passes. */
    f.vals[S_ORDER] = text_str("caf\xc3\xa9-\xf0\x9f\x98\x80");
    spec_event_ok(&f);
    assert_slice(f.ev.aggregateid, "caf\xc3\xa9-\xf0\x9f\x98\x80");
    spec_done(&f);
}

/* ---------------------------------------------------------------- logical messages */

struct msg_fixture {
    char *content; /* heap copy, exactly len bytes, no NUL */
    size_t len;
    struct jbuf scratch;
    struct event_pos pos;
    struct event ev;
    char err[256];
};

static void msg_init(struct msg_fixture *m)
{
    memset(m, 0, sizeof(*m));
    jbuf_init(&m->scratch);
    m->pos.commit_lsn = UINT64_C(0x16B3748);
    m->pos.xid = 731;
    m->pos.index = 4;
    m->pos.commit_time_us = 1700000000123456;
}

static int msg_parse(struct msg_fixture *m, const char *json)
{
    free(m->content);
    m->len = strlen(json);
    m->content = malloc(m->len ? m->len : 1);
    assert_non_null(m->content);
    memcpy(m->content, json, m->len);
    m->err[0] = '\0';
    return event_from_message(m->content, m->len, &m->pos, &m->scratch, &m->ev, m->err,
                              sizeof(m->err));
}

static void msg_ok(struct msg_fixture *m, const char *json)
{
    if (msg_parse(m, json) != 0)
        fail_msg("event_from_message(%s): %s", json, m->err);
}

static void msg_rejected(struct msg_fixture *m, const char *json, const char *errpart)
{
    int rc = msg_parse(m, json);

    if (rc != -EINVAL)
        fail_msg("event_from_message(%s): want -EINVAL, got %d", json, rc);
    if (errpart)
        assert_contains(m->err, errpart);
    else
        assert_true(m->err[0] != '\0');
}

static void msg_done(struct msg_fixture *m)
{
    free(m->content);
    jbuf_free(&m->scratch);
}

/* The slice lies inside the message content (borrowed, not copied). */
static void assert_in_content(const struct msg_fixture *m, struct ev_str s)
{
    assert_true(s.p >= m->content && s.p + s.len <= m->content + m->len);
}

/* The slice lies inside the scratch buffer (unescaped). */
static void assert_in_scratch(const struct msg_fixture *m, struct ev_str s)
{
    assert_non_null(m->scratch.data);
    assert_true(s.p >= m->scratch.data && s.p + s.len <= m->scratch.data + m->scratch.len);
}

#define FULL_MESSAGE                                                                               \
    " { \"id\" : \"m-1\" , \"aggregatetype\": \"invoice\",\n \"aggregateid\":\"inv-1\","           \
    "\"type\"\t:\t\"InvoiceIssued\", \"version\": 3,"                                              \
    " \"payload\": {\"invoice\": \"inv-1\",  \"lines\": [1, 2, 3],\n \"s\": \"}\"} ,"              \
    "\"headers\": {\"a\": \"b\", \"n\": null} } "

static void test_message_all_members(void **state)
{
    struct msg_fixture m;

    (void)state;
    msg_init(&m);
    msg_ok(&m, FULL_MESSAGE);
    assert_slice(m.ev.id, "m-1");
    assert_slice(m.ev.aggregatetype, "invoice");
    assert_slice(m.ev.aggregateid, "inv-1");
    assert_slice(m.ev.type, "InvoiceIssued");
    assert_slice(m.ev.version, "3");
    /* The payload is the raw bytes of the value, inner whitespace and all. */
    assert_slice(m.ev.payload, "{\"invoice\": \"inv-1\",  \"lines\": [1, 2, 3],\n \"s\": \"}\"}");
    assert_slice(m.ev.headers, "{\"a\": \"b\", \"n\": null}");
    /* Strings without escapes, the payload and the headers borrow the content. */
    assert_in_content(&m, m.ev.id);
    assert_in_content(&m, m.ev.aggregatetype);
    assert_in_content(&m, m.ev.aggregateid);
    assert_in_content(&m, m.ev.type);
    assert_in_content(&m, m.ev.version);
    assert_in_content(&m, m.ev.payload);
    assert_in_content(&m, m.ev.headers);
    /* A message is not a row and not a change. */
    assert_null(m.ev.rel);
    assert_null(m.ev.tuple);
    assert_int_equal(m.ev.change.op, 0);
    assert_int_equal(m.ev.nextra, 0);
    /* The position is copied. */
    assert_int_equal(m.ev.pos.commit_lsn, UINT64_C(0x16B3748));
    assert_int_equal(m.ev.pos.xid, 731);
    assert_int_equal(m.ev.pos.index, 4);
    assert_true(m.ev.pos.commit_time_us == 1700000000123456);
    msg_done(&m);
}

#define MSG_BASE "\"id\":\"m-1\",\"aggregateid\":\"a-1\",\"type\":\"T\""

static void test_message_version(void **state)
{
    struct msg_fixture m;

    (void)state;
    msg_init(&m);
    msg_ok(&m, "{" MSG_BASE ",\"version\":3}");
    assert_slice(m.ev.version, "3");
    msg_ok(&m, "{" MSG_BASE ",\"version\":\"3\"}");
    assert_slice(m.ev.version, "3");
    assert_in_content(&m, m.ev.version);
    msg_ok(&m, "{" MSG_BASE ",\"version\":\"v2.1-beta\"}");
    assert_slice(m.ev.version, "v2.1-beta");
    msg_ok(&m, "{" MSG_BASE ",\"version\":-2}");
    assert_slice(m.ev.version, "-2");
    msg_ok(&m, "{" MSG_BASE ",\"version\":1.5e2}");
    assert_slice(m.ev.version, "1.5e2");
    msg_ok(&m, "{" MSG_BASE ",\"version\":\"v\\u0032\"}");
    assert_slice(m.ev.version, "v2");
    assert_in_scratch(&m, m.ev.version);
    /* Missing: version 1. */
    msg_ok(&m, "{" MSG_BASE "}");
    assert_slice(m.ev.version, "1");
    /* Neither a string nor a number. */
    msg_rejected(&m, "{" MSG_BASE ",\"version\":true}", "\"version\"");
    msg_rejected(&m, "{" MSG_BASE ",\"version\":[1]}", "\"version\"");
    msg_rejected(&m, "{" MSG_BASE ",\"version\":{\"major\":1}}", "\"version\"");
    msg_done(&m);
}

static void test_message_payload(void **state)
{
    struct msg_fixture m;

    (void)state;
    msg_init(&m);
    msg_ok(&m, "{" MSG_BASE ",\"payload\":null}");
    assert_null(m.ev.payload.p);
    assert_int_equal(m.ev.payload.len, 0);
    /* Absent is the same as null. */
    msg_ok(&m, "{" MSG_BASE "}");
    assert_null(m.ev.payload.p);
    /* Any JSON value, raw: a string keeps its quotes and escapes. */
    msg_ok(&m, "{" MSG_BASE ",\"payload\":\"a\\\"b\"}");
    assert_slice(m.ev.payload, "\"a\\\"b\"");
    msg_ok(&m, "{" MSG_BASE ",\"payload\":42}");
    assert_slice(m.ev.payload, "42");
    msg_ok(&m, "{" MSG_BASE ",\"payload\":[ {\"x\": \"]\"} , 2 ]}");
    assert_slice(m.ev.payload, "[ {\"x\": \"]\"} , 2 ]");
    msg_ok(&m, "{" MSG_BASE ",\"payload\":{ }}");
    assert_slice(m.ev.payload, "{ }");
    msg_ok(&m, "{\"payload\":{\"id\":\"inner\",\"type\":\"X\"}," MSG_BASE "}");
    assert_slice(m.ev.id, "m-1");
    assert_slice(m.ev.type, "T");
    assert_slice(m.ev.payload, "{\"id\":\"inner\",\"type\":\"X\"}");
    msg_done(&m);
}

static void test_message_headers(void **state)
{
    struct msg_fixture m;

    (void)state;
    msg_init(&m);
    msg_ok(&m, "{" MSG_BASE ",\"headers\":{ \"k\" : \"v\\n\", \"n\": 1 }}");
    assert_slice(m.ev.headers, "{ \"k\" : \"v\\n\", \"n\": 1 }");
    assert_in_content(&m, m.ev.headers);
    msg_ok(&m, "{" MSG_BASE ",\"headers\":{}}");
    assert_slice(m.ev.headers, "{}");
    msg_ok(&m, "{" MSG_BASE ",\"headers\":null}");
    assert_null(m.ev.headers.p);
    msg_ok(&m, "{" MSG_BASE "}");
    assert_null(m.ev.headers.p);
    msg_rejected(&m, "{" MSG_BASE ",\"headers\":[\"a\",\"b\"]}", "\"headers\"");
    msg_rejected(&m, "{" MSG_BASE ",\"headers\":\"a=b\"}", "\"headers\"");
    msg_rejected(&m, "{" MSG_BASE ",\"headers\":7}", "\"headers\"");
    msg_rejected(&m, "{" MSG_BASE ",\"headers\":true}", "\"headers\"");
    msg_done(&m);
}

static void test_message_required_members(void **state)
{
    struct msg_fixture m;

    (void)state;
    msg_init(&m);
    msg_rejected(&m, "{\"aggregatetype\":\"x\",\"aggregateid\":\"a\",\"type\":\"T\"}", "\"id\"");
    msg_rejected(&m, "{\"id\":\"i\",\"aggregatetype\":\"x\",\"type\":\"T\"}", "\"aggregateid\"");
    msg_rejected(&m, "{\"id\":\"i\",\"aggregatetype\":\"x\",\"aggregateid\":\"a\"}", "\"type\"");
    msg_rejected(&m, "{}", NULL);
    /* aggregatetype may be left out: it is only needed by a topic that names it. */
    msg_ok(&m, "{\"id\":\"i\",\"aggregateid\":\"a\",\"type\":\"T\"}");
    assert_null(m.ev.aggregatetype.p);
    assert_int_equal(m.ev.aggregatetype.len, 0);
    assert_slice(m.ev.id, "i");
    /* Empty strings are present. */
    msg_ok(&m, "{\"id\":\"\",\"aggregateid\":\"\",\"type\":\"\"}");
    assert_non_null(m.ev.id.p);
    assert_int_equal(m.ev.id.len, 0);
    assert_non_null(m.ev.aggregateid.p);
    assert_non_null(m.ev.type.p);
    msg_done(&m);
}

static void test_message_non_string_members(void **state)
{
    static const char *const values[] = {"1", "null", "true", "{\"v\":\"x\"}", "[\"x\"]"};
    static const char *const members[] = {"id", "aggregatetype", "aggregateid", "type"};
    struct msg_fixture m;
    char json[512], quoted[32];

    (void)state;
    msg_init(&m);
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            /* The member under test goes last so that the others are all present. */
            snprintf(json, sizeof(json), "{%s%s%s%s\"%s\":%s}", i == 0 ? "" : "\"id\":\"i\",",
                     i == 1 ? "" : "\"aggregatetype\":\"x\",",
                     i == 2 ? "" : "\"aggregateid\":\"a\",", i == 3 ? "" : "\"type\":\"T\",",
                     members[i], values[v]);
            snprintf(quoted, sizeof(quoted), "\"%s\"", members[i]);
            if (i == 1 && v == 1) {
                /* aggregatetype may be null, as the outbox column may */
                msg_ok(&m, json);
                assert_null(m.ev.aggregatetype.p);
                continue;
            }
            msg_rejected(&m, json, quoted);
            assert_contains(m.err, "string");
        }
    }
    msg_done(&m);
}

static void test_message_not_object(void **state)
{
    static const char *const bad[] = {
        "",
        " ",
        "not json",
        "{\"id\":",
        "{\"id\":\"m-1\",}",
        "{'id':'m-1'}",
        "{\"id\":\"m-1\"} trailing",
        "{\"id\":\"caf\xe9\",\"aggregateid\":\"a\",\"type\":\"T\"}",
        "[]",
        "[{\"id\":\"m-1\",\"aggregateid\":\"a\",\"type\":\"T\"}]",
        "\"{}\"",
        "42",
        "null",
    };
    struct msg_fixture m;

    (void)state;
    msg_init(&m);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg_rejected(&m, bad[i], NULL);
        assert_contains(m.err, "JSON object");
    }
    msg_done(&m);
}

static void test_message_escaped_strings(void **state)
{
    struct msg_fixture m;

    (void)state;
    msg_init(&m);
    msg_ok(&m, "{\"id\":\"caf\\u00e9\\ud83d\\ude00\",\"aggregatetype\":\"in\\/voice\","
               "\"aggregateid\":\"inv-\\\"2\\\"\",\"type\":\"Line\\nBreak\\t\\\\\"}");
    assert_slice(m.ev.id, "caf\xc3\xa9\xf0\x9f\x98\x80");
    assert_slice(m.ev.aggregatetype, "in/voice");
    assert_slice(m.ev.aggregateid, "inv-\"2\"");
    assert_slice(m.ev.type, "Line\nBreak\t\\");
    /* Every unescaped text still holds after the last one was written. */
    assert_in_scratch(&m, m.ev.id);
    assert_in_scratch(&m, m.ev.aggregatetype);
    assert_in_scratch(&m, m.ev.aggregateid);
    assert_in_scratch(&m, m.ev.type);
    msg_done(&m);
}

static void test_message_member_order(void **state)
{
    static const char *const orders[] = {
        "{\"id\":\"m\",\"aggregatetype\":\"t\",\"aggregateid\":\"k\",\"type\":\"T\","
        "\"payload\":[1],\"version\":\"2\",\"headers\":{\"h\":1}}",
        "{\"headers\":{\"h\":1},\"version\":\"2\",\"payload\":[1],\"type\":\"T\","
        "\"aggregateid\":\"k\",\"aggregatetype\":\"t\",\"id\":\"m\"}",
        "{\"type\":\"T\",\"payload\":[1],\"id\":\"m\",\"headers\":{\"h\":1},"
        "\"aggregateid\":\"k\",\"version\":\"2\",\"aggregatetype\":\"t\"}",
    };
    struct msg_fixture m;

    (void)state;
    msg_init(&m);
    for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
        msg_ok(&m, orders[i]);
        assert_slice(m.ev.id, "m");
        assert_slice(m.ev.aggregatetype, "t");
        assert_slice(m.ev.aggregateid, "k");
        assert_slice(m.ev.type, "T");
        assert_slice(m.ev.payload, "[1]");
        assert_slice(m.ev.version, "2");
        assert_slice(m.ev.headers, "{\"h\":1}");
    }
    msg_done(&m);
}

/* Unknown members are ignored, even when they hold objects with known names. */
static void test_message_unknown_members(void **state)
{
    struct msg_fixture m;

    (void)state;
    msg_init(&m);
    msg_ok(&m, "{\"meta\":{\"id\":\"nested\",\"type\":\"N\"},\"ID\":\"upper\",\"idx\":\"x\","
               "\"i\":\"y\",\"list\":[{\"aggregateid\":\"no\"}]," MSG_BASE
               ",\"created_at\":\"2026-01-01\",\"n\":1,\"b\":false,\"z\":null}");
    assert_slice(m.ev.id, "m-1");
    assert_slice(m.ev.aggregateid, "a-1");
    assert_slice(m.ev.type, "T");
    assert_null(m.ev.aggregatetype.p);
    assert_null(m.ev.payload.p);
    assert_null(m.ev.headers.p);
    assert_slice(m.ev.version, "1");
    msg_done(&m);
}

/* The scratch buffer is reused: each call starts it afresh, and it never moves mid-call. */
static void test_message_scratch_reuse(void **state)
{
    struct msg_fixture m;
    char big[2048];
    size_t n;

    (void)state;
    msg_init(&m);
    /* Junk already in the buffer is not part of any event. */
    jbuf_puts(&m.scratch, "junk that must not leak into an event");
    msg_ok(&m, "{\"id\":\"a\\u0041\",\"aggregateid\":\"k\",\"type\":\"T\"}");
    assert_slice(m.ev.id, "aA");
    assert_in_scratch(&m, m.ev.id);
    assert_ptr_equal(m.ev.id.p, m.scratch.data);

    /* A second, much larger message: the buffer grows before any text points into it. */
    n = (size_t)snprintf(big, sizeof(big),
                         "{\"id\":\"%0600d\\n\",\"aggregatetype\":\"%0300d\\t\","
                         "\"aggregateid\":\"\\\"%0400d\",\"type\":\"%0200d\\\\\","
                         "\"version\":\"v\\u0033\"}",
                         1, 2, 3, 4);
    assert_true(n < sizeof(big));
    msg_ok(&m, big);
    assert_int_equal(m.ev.id.len, 601);
    assert_int_equal(m.ev.id.p[600], '\n');
    assert_int_equal(m.ev.id.p[599], '1');
    assert_int_equal(m.ev.aggregatetype.len, 301);
    assert_int_equal(m.ev.aggregatetype.p[300], '\t');
    assert_int_equal(m.ev.aggregateid.len, 401);
    assert_int_equal(m.ev.aggregateid.p[0], '"');
    assert_int_equal(m.ev.aggregateid.p[400], '3');
    assert_int_equal(m.ev.type.len, 201);
    assert_int_equal(m.ev.type.p[200], '\\');
    assert_slice(m.ev.version, "v3");
    assert_in_scratch(&m, m.ev.id);
    assert_in_scratch(&m, m.ev.aggregatetype);
    assert_in_scratch(&m, m.ev.aggregateid);
    assert_in_scratch(&m, m.ev.type);
    assert_in_scratch(&m, m.ev.version);

    /* And a third, small one again, after the large. */
    msg_ok(&m, "{\"id\":\"x\\/y\",\"aggregateid\":\"k\",\"type\":\"T\"}");
    assert_slice(m.ev.id, "x/y");
    assert_ptr_equal(m.ev.id.p, m.scratch.data);
    msg_done(&m);
}

/* ---------------------------------------------------------------- empty values */

/*
 * A zero-length TEXT value whose data pointer is NULL is an empty string: event.c
 * says so explicitly ("a zero-length value must still read as non-NULL") and
 * test_event_empty_string checks it.  As a topic placeholder it contributes nothing,
 * and render_topic() never hands the NULL pointer to memcpy() or memchr() (undefined
 * behaviour even with length 0, which the UBSan build would abort on).
 */
static void test_topic_empty_value_without_data(void **state)
{
    struct fixture f;
    struct pgo_value empty_nodata = {PGO_VALUE_TEXT, 0, NULL};

    (void)state;
    fixture_init(&f);
    f.vals[COL_TENANT] = empty_nodata;
    assert_topic(&f, "t{tenant}.events", "t.events");
    fixture_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relcache_update_get),
        cmocka_unit_test(test_relcache_copies_message),
        cmocka_unit_test(test_relcache_replace),
        cmocka_unit_test(test_relcache_outbox_recognised),
        cmocka_unit_test(test_relcache_outbox_other_schema),
        cmocka_unit_test(test_relcache_outbox_missing_column),
        cmocka_unit_test(test_rel_column_index),
        cmocka_unit_test(test_relcache_zero_columns),
        cmocka_unit_test(test_relcache_free_null),
        cmocka_unit_test(test_event_slices),
        cmocka_unit_test(test_event_reordered_columns),
        cmocka_unit_test(test_event_position_copied),
        cmocka_unit_test(test_event_null_payload),
        cmocka_unit_test(test_event_null_aggregatetype),
        cmocka_unit_test(test_event_null_extra_column),
        cmocka_unit_test(test_event_null_required),
        cmocka_unit_test(test_event_unchanged_toast),
        cmocka_unit_test(test_event_column_count_mismatch),
        cmocka_unit_test(test_event_empty_string),
        cmocka_unit_test(test_event_binary_value),
        cmocka_unit_test(test_topic_default_template),
        cmocka_unit_test(test_topic_fixed),
        cmocka_unit_test(test_topic_multiple_placeholders),
        cmocka_unit_test(test_topic_extra_column),
        cmocka_unit_test(test_topic_missing_column),
        cmocka_unit_test(test_topic_null_column),
        cmocka_unit_test(test_topic_invalid_chars),
        cmocka_unit_test(test_topic_length),
        cmocka_unit_test(test_topic_dot_names),
        cmocka_unit_test(test_topic_empty),
        cmocka_unit_test(test_formatter_bad_templates),
        cmocka_unit_test(test_render_headers),
        cmocka_unit_test(test_render_source_copied),
        cmocka_unit_test(test_render_null_payload),
        cmocka_unit_test(test_render_header_extremes),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_rfc3339_negative),
        cmocka_unit_test(test_rfc3339_buffer_32),
        cmocka_unit_test(test_spec_resolved_columns),
        cmocka_unit_test(test_spec_key_column),
        cmocka_unit_test(test_spec_version),
        cmocka_unit_test(test_spec_defaults),
        cmocka_unit_test(test_spec_headers_column),
        cmocka_unit_test(test_spec_header_columns),
        cmocka_unit_test(test_spec_header_column_missing),
        cmocka_unit_test(test_spec_too_many_header_columns),
        cmocka_unit_test(test_spec_payload_validation),
        cmocka_unit_test(test_spec_invalid_utf8),
        cmocka_unit_test(test_message_all_members),
        cmocka_unit_test(test_message_version),
        cmocka_unit_test(test_message_payload),
        cmocka_unit_test(test_message_headers),
        cmocka_unit_test(test_message_required_members),
        cmocka_unit_test(test_message_non_string_members),
        cmocka_unit_test(test_message_not_object),
        cmocka_unit_test(test_message_escaped_strings),
        cmocka_unit_test(test_message_member_order),
        cmocka_unit_test(test_message_unknown_members),
        cmocka_unit_test(test_message_scratch_reuse),
        cmocka_unit_test(test_topic_empty_value_without_data), /* fails under UBSan: format.c */
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

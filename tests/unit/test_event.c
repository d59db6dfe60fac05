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
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "event.h"
#include "format.h"

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

static void test_relcache_free_null(void **state)
{
    (void)state;
    relcache_free(NULL);
    formatter_free(NULL);
    assert_true(1); /* reaching here is the assertion: both must be no-ops */
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

    if (rc != -EINVAL)
        fail_msg("template \"%s\": want -EINVAL, got %d (topic \"%s\")", tmpl, rc,
                 rc == 0 ? out.topic : "");
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
        assert_topic_rejected(&f, "outbox.event.{aggregatetype}", "character");
    }
    /* A NUL byte inside a value must not cut the topic short and pass. */
    {
        static const char nul[] = {'a', '\0', 'b'};
        struct pgo_value v = {PGO_VALUE_TEXT, 3, nul};

        f.vals[COL_AGGTYPE] = v;
        assert_topic_rejected(&f, "outbox.event.{aggregatetype}", NULL);
    }
    /* Literal parts are checked too. */
    f.vals[COL_AGGTYPE] = text_at(AGGTYPE_OFF, AGGTYPE_LEN);
    assert_topic_rejected(&f, "outbox event", "character");
    assert_topic_rejected(&f, "outbox/{aggregatetype}", "character");
    assert_topic_rejected(&f, "outbox}", "character");
    /* Every allowed character class passes. */
    f.vals[COL_AGGTYPE] = text_str("AZaz09._-");
    assert_topic(&f, "{aggregatetype}", "AZaz09._-");
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
    assert_topic_rejected(&f, ".", ".");
    assert_topic_rejected(&f, "..", "..");
    f.vals[COL_AGGTYPE] = text_str(".");
    assert_topic_rejected(&f, "{aggregatetype}", NULL);
    f.vals[COL_AGGTYPE] = text_str("..");
    assert_topic_rejected(&f, "{aggregatetype}", NULL);
    f.vals[COL_AGGTYPE] = text_str("");
    assert_topic_rejected(&f, ".{aggregatetype}.", NULL);
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
    assert_topic_rejected(&f, "{aggregatetype}", "empty");
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

/* ---------------------------------------------------------------- known defect */

/*
 * A zero-length TEXT value whose data pointer is NULL is an empty string: event.c
 * says so explicitly ("a zero-length value must still read as non-NULL") and
 * test_event_empty_string checks it.  As a topic placeholder it must contribute
 * nothing.  format.c's render_topic() passes the NULL pointer to memcpy() with
 * length 0, which is undefined behaviour (memcpy's arguments are declared
 * nonnull); the UBSan build (-DRELAY_SANITIZE=ON) aborts here until render_topic()
 * skips the copy for an empty segment.  Kept last so the other results print first.
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
        cmocka_unit_test(test_topic_empty_value_without_data), /* fails under UBSan: format.c */
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

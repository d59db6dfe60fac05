/*
 * test_cdcjson.c -- unit tests for the typed JSON rendering of replicated rows
 * (relay/cdcjson.c).
 *
 * Every typing rule is checked against the exact JSON text it must produce.  The
 * input texts are what PostgreSQL 15's output functions print for those types
 * (captured with psql: array_out's quoting, float's shortest-exact "1e+30", the
 * dimension decoration of an array whose lower bound is not 1, jsonb's spacing).
 * Each value is handed over in a heap block of exactly its length, with no NUL
 * after it, as the decoder hands out slices of the wire buffer, so a renderer that
 * read up to a NUL would trip AddressSanitizer.  Output is appended after a marker
 * byte, which checks both that rendering appends and that a failed rendering
 * leaves the buffer exactly as it was; every successful rendering must also pass
 * json_valid().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "cdcjson.h"

/* PostgreSQL type OIDs, spelled out here so the tests do not trust the module's table. */
#define BOOL 16
#define BYTEA 17
#define INT8 20
#define INT2 21
#define INT4 23
#define TEXT 25
#define OID 26
#define JSON 114
#define POINT 600
#define FLOAT4 700
#define FLOAT8 701
#define MONEY 790
#define VARCHAR 1043
#define TIMESTAMPTZ 1184
#define INTERVAL 1186
#define NUMERIC 1700
#define UUID 2950
#define JSONB 3802
#define JSON_ARRAY 199
#define BOOL_ARRAY 1000
#define BYTEA_ARRAY 1001
#define INT2_ARRAY 1005
#define INT4_ARRAY 1007
#define TEXT_ARRAY 1009
#define VARCHAR_ARRAY 1015
#define INT8_ARRAY 1016
#define POINT_ARRAY 1017
#define BOX_ARRAY 1020
#define FLOAT4_ARRAY 1021
#define FLOAT8_ARRAY 1022
#define TIMESTAMPTZ_ARRAY 1185
#define NUMERIC_ARRAY 1231
#define UUID_ARRAY 2951
#define JSONB_ARRAY 3807
#define USER_TYPE 16500 /* a domain or enum: not a built-in OID */

#define MARK "<"

/* Render one value of the given kind, passing it in an exact-size heap block. */
static int render_kind(struct jbuf *b, pgo_oid_t oid, enum pgo_value_kind kind, const char *text,
                       size_t len, char *err, size_t err_size)
{
    char *copy = malloc(len ? len : 1);
    struct pgo_value v = {kind, (uint32_t)len, copy};
    int rc;

    assert_non_null(copy);
    if (len)
        memcpy(copy, text, len);
    rc = cdc_value_to_json(b, oid, &v, err, err_size);
    free(copy);
    return rc;
}

/* Render text as type oid and compare with expected. */
static void check_len(pgo_oid_t oid, const char *text, size_t len, const char *expected)
{
    struct jbuf b;
    char err[256] = "";
    int rc;

    jbuf_init(&b);
    jbuf_puts(&b, MARK);
    rc = render_kind(&b, oid, PGO_VALUE_TEXT, text, len, err, sizeof(err));
    if (rc != 0)
        print_error("rendering \"%s\" as oid %u failed: %d %s\n", text, (unsigned)oid, rc, err);
    assert_int_equal(rc, 0);
    assert_false(b.oom);
    assert_string_equal(b.data + 1, expected);
    assert_int_equal(b.len, 1 + strlen(expected));
    assert_true(json_valid(b.data + 1, b.len - 1));
    jbuf_free(&b);
}

static void check(pgo_oid_t oid, const char *text, const char *expected)
{
    check_len(oid, text, strlen(text), expected);
}

/* Render text as type oid, expect the error rc with the message expected_err. */
static void check_error(pgo_oid_t oid, const char *text, int expected_rc, const char *expected_err)
{
    struct jbuf b;
    char err[256] = "";

    jbuf_init(&b);
    jbuf_puts(&b, MARK);
    assert_int_equal(render_kind(&b, oid, PGO_VALUE_TEXT, text, strlen(text), err, sizeof(err)),
                     expected_rc);
    assert_string_equal(b.data, MARK);
    assert_int_equal(b.len, 1);
    assert_string_equal(err, expected_err);
    jbuf_free(&b);
}

/* --- scalars ------------------------------------------------------------------- */

static void test_integers(void **state)
{
    (void)state;
    check(INT2, "-32768", "-32768");
    check(INT4, "42", "42");
    check(INT4, "0", "0");
    check(INT8, "9223372036854775807", "9223372036854775807");
    check(INT8, "-9223372036854775808", "-9223372036854775808");
    check(OID, "4294967295", "4294967295");
    check_error(INT4, "abc", -EINVAL, "invalid int4 value: not in the type's text format");
    check_error(INT8, "", -EINVAL, "invalid int8 value: not in the type's text format");
    check_error(INT2, "NaN", -EINVAL, "invalid int2 value: not in the type's text format");
    check_error(OID, "1 ", -EINVAL, "invalid oid value: not in the type's text format");
}

static void test_numeric(void **state)
{
    (void)state;
    /* Forty digits before the point and ten after: every one survives. */
    check(NUMERIC, "1234567890123456789012345678901234567890.0123456789",
          "1234567890123456789012345678901234567890.0123456789");
    check(NUMERIC, "-0.000000000000000000000000000000000000000001",
          "-0.000000000000000000000000000000000000000001");
    check(NUMERIC, "1.50", "1.50"); /* trailing zeros are the scale: kept */
    check(NUMERIC, "0", "0");
    check(NUMERIC, "NaN", "\"NaN\"");
    check(NUMERIC, "Infinity", "\"Infinity\"");
    check(NUMERIC, "-Infinity", "\"-Infinity\"");
    check_error(NUMERIC, "nan", -EINVAL, "invalid numeric value: not in the type's text format");
    check_error(NUMERIC, "1,5", -EINVAL, "invalid numeric value: not in the type's text format");
}

static void test_floats(void **state)
{
    (void)state;
    check(FLOAT4, "1e+30", "1e+30");
    check(FLOAT4, "3.4028235e+38", "3.4028235e+38");
    check(FLOAT8, "-0", "-0");
    check(FLOAT8, "1.5", "1.5");
    check(FLOAT8, "1e-300", "1e-300");
    check(FLOAT8, "0.1", "0.1");
    check(FLOAT4, "NaN", "\"NaN\"");
    check(FLOAT8, "Infinity", "\"Infinity\"");
    check(FLOAT8, "-Infinity", "\"-Infinity\"");
    /* Not a JSON number (not what PostgreSQL prints either): kept as a string. */
    check(FLOAT8, "0x1p3", "\"0x1p3\"");
    check(FLOAT8, ".5", "\".5\"");
    check(FLOAT4, "inf", "\"inf\"");
}

static void test_bool(void **state)
{
    (void)state;
    check(BOOL, "t", "true");
    check(BOOL, "f", "false");
    check_error(BOOL, "true", -EINVAL, "invalid bool value: not in the type's text format");
    check_error(BOOL, "", -EINVAL, "invalid bool value: not in the type's text format");
    check_error(BOOL, "T", -EINVAL, "invalid bool value: not in the type's text format");
}

static void test_json(void **state)
{
    (void)state;
    /* Embedded byte for byte: jsonb's spacing, json's original text. */
    check(JSONB, "{\"a\": 1, \"b\": [true, null]}", "{\"a\": 1, \"b\": [true, null]}");
    check(JSON, "{ \"x\" :\n  \"y\" }", "{ \"x\" :\n  \"y\" }");
    check(JSON, "[1,2]", "[1,2]");
    check(JSONB, "\"just a string\"", "\"just a string\"");
    check(JSONB, "12.5", "12.5");
    check(JSONB, "null", "null"); /* JSON null inside a non-null column */
    check(JSONB, "{\"big\": 123456789012345678901234567890}",
          "{\"big\": 123456789012345678901234567890}");
    check(JSONB, "{\"k\": \"caf\xc3\xa9 \\u00e9\"}", "{\"k\": \"caf\xc3\xa9 \\u00e9\"}");
    check_error(JSONB, "{\"a\":}", -EINVAL, "invalid jsonb value: not valid json");
    check_error(JSON, "{\"a\":1} trailing", -EINVAL, "invalid json value: not valid json");
    check_error(JSON, "", -EINVAL, "invalid json value: not valid json");
    check_error(JSON, "\"\\ud800\"", -EINVAL, "invalid json value: not valid json");
    check_error(JSONB, "{\"k\": \"\xff\"}", -EILSEQ, "jsonb value is not valid utf-8");
}

static void test_strings(void **state)
{
    (void)state;
    check(TEXT, "hello", "\"hello\"");
    check(TEXT, "", "\"\"");
    check(TEXT, "say \"hi\"\n\tbye\\", "\"say \\\"hi\\\"\\n\\tbye\\\\\"");
    check(TEXT, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
          "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    check(TEXT, "\x01", "\"\\u0001\"");
    check(VARCHAR, "42", "\"42\""); /* digits in a text column stay a string */
    check(UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
    check(TIMESTAMPTZ, "2024-01-02 03:04:05.123456+00", "\"2024-01-02 03:04:05.123456+00\"");
    check(BYTEA, "\\xdeadbeef", "\"\\\\xdeadbeef\"");
    check(MONEY, "$1,000.00", "\"$1,000.00\"");
    check(INTERVAL, "1 day 02:03:04", "\"1 day 02:03:04\"");
    check(POINT, "(1,2)", "\"(1,2)\"");
    check(USER_TYPE, "active", "\"active\"");
    check_error(TEXT, "bad \xff byte", -EILSEQ, "text value is not valid utf-8");
    check_error(VARCHAR, "\xc3", -EILSEQ, "varchar value is not valid utf-8");
    check_error(USER_TYPE, "\xed\xa0\x80", -EILSEQ, "type 16500 value is not valid utf-8");
    check_error(INT4, "\xff", -EILSEQ, "int4 value is not valid utf-8");
}

static void test_null_toast_binary(void **state)
{
    struct jbuf b;
    char err[256] = "";
    struct pgo_value null = {PGO_VALUE_NULL, 0, NULL};
    struct pgo_value toast = {PGO_VALUE_UNCHANGED_TOAST, 0, NULL};
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } b64[] = {
        {"", 0, "\"\""},
        {"f", 1, "\"Zg==\""},
        {"fo", 2, "\"Zm8=\""},
        {"foo", 3, "\"Zm9v\""},
        {"foob", 4, "\"Zm9vYg==\""},
        {"fooba", 5, "\"Zm9vYmE=\""},
        {"foobar", 6, "\"Zm9vYmFy\""},
        {"\x00\xff\x10", 3, "\"AP8Q\""},
        {"\xfb\xff", 2, "\"+/8=\""},
    };
    char zeros[300] = {0};
    char expect[403];

    (void)state;
    jbuf_init(&b);

    /* SQL NULL is null whatever the type. */
    assert_int_equal(cdc_value_to_json(&b, INT4, &null, err, sizeof(err)), 0);
    assert_int_equal(cdc_value_to_json(&b, JSONB, &null, err, sizeof(err)), 0);
    assert_string_equal(b.data, "nullnull");

    /* Unchanged TOAST: an error, nothing written. */
    jbuf_reset(&b);
    jbuf_puts(&b, MARK);
    assert_int_equal(cdc_value_to_json(&b, TEXT, &toast, err, sizeof(err)), -ENODATA);
    assert_string_equal(b.data, MARK);
    assert_string_equal(err, "unchanged toast value was not sent");

    /* Binary: base64 whatever the type (RFC 4648 test vectors). */
    for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
        jbuf_reset(&b);
        assert_int_equal(
            render_kind(&b, INT4, PGO_VALUE_BINARY, b64[i].in, b64[i].len, err, sizeof(err)), 0);
        assert_string_equal(b.data, b64[i].out);
    }
    /* Longer than the encoder's 256-byte chunk. */
    jbuf_reset(&b);
    assert_int_equal(
        render_kind(&b, BYTEA, PGO_VALUE_BINARY, zeros, sizeof(zeros), err, sizeof(err)), 0);
    expect[0] = '"';
    memset(expect + 1, 'A', 400);
    expect[401] = '"';
    expect[402] = '\0';
    assert_string_equal(b.data, expect);
    jbuf_free(&b);
}

static void test_value_errors_and_oom(void **state)
{
    struct jbuf b;
    char err[256] = "";
    struct pgo_value v = {PGO_VALUE_TEXT, 1, "1"};
    struct pgo_value bad = {(enum pgo_value_kind)'x', 0, NULL};

    (void)state;
    jbuf_init(&b);
    jbuf_puts(&b, MARK);
    assert_int_equal(cdc_value_to_json(&b, INT4, &bad, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "unknown value kind 120");
    assert_string_equal(b.data, MARK);

    /* A buffer already out of memory: -ENOMEM, nothing touched. */
    b.oom = true;
    assert_int_equal(cdc_value_to_json(&b, INT4, &v, err, sizeof(err)), -ENOMEM);
    assert_string_equal(err, "out of memory");
    assert_string_equal(b.data, MARK);

    /* errstr is optional. */
    jbuf_reset(&b);
    assert_int_equal(cdc_value_to_json(&b, INT4, &bad, NULL, 0), -EINVAL);
    assert_int_equal(cdc_value_to_json(&b, INT4, &v, NULL, 0), 0);
    assert_string_equal(b.data, "1");
    jbuf_free(&b);
}

/* --- arrays -------------------------------------------------------------------- */

static void test_arrays_numbers(void **state)
{
    (void)state;
    check(INT4_ARRAY, "{1,2,NULL}", "[1,2,null]");
    check(INT4_ARRAY, "{}", "[]");
    check(INT2_ARRAY, "{-1}", "[-1]");
    check(INT8_ARRAY, "{{1,2},{3,4}}", "[[1,2],[3,4]]");
    check(INT4_ARRAY, "{{{1},{2}},{{3},{4}}}", "[[[1],[2]],[[3],[4]]]");
    check(INT4_ARRAY, "{null,Null,NULL}", "[null,null,null]");
    check(INT4_ARRAY, "{NULL}", "[null]");
    check(INT4_ARRAY, "{\"7\"}", "[7]");       /* quoting is allowed around any element */
    check(INT4_ARRAY, " { 1 , 2 } ", "[1,2]"); /* array_in's white space */
    /* Dimension decoration: dropped. */
    check(INT4_ARRAY, "[0:1]={1,2}", "[1,2]");
    check(INT4_ARRAY, "[1:2][0:1]={{1,2},{3,4}}", "[[1,2],[3,4]]");
    check(INT4_ARRAY, "[-3:-2]={5,6}", "[5,6]");
    check(NUMERIC_ARRAY, "{1.5,NaN,Infinity,-Infinity,1234567890123456789012345678901234567890}",
          "[1.5,\"NaN\",\"Infinity\",\"-Infinity\",1234567890123456789012345678901234567890]");
    check(FLOAT8_ARRAY, "{1e+30,NaN,-Infinity,0}", "[1e+30,\"NaN\",\"-Infinity\",0]");
    check(FLOAT4_ARRAY, "{-0,1.5,Infinity}", "[-0,1.5,\"Infinity\"]");
    check(BOOL_ARRAY, "{t,f,NULL}", "[true,false,null]");
    check(BOOL_ARRAY, "{{t},{f}}", "[[true],[false]]");
}

static void test_arrays_text(void **state)
{
    (void)state;
    /* array_out's rendering of ARRAY['a b','c"d','e\f','NULL',NULL,'','{x,y}','ü ñ']. */
    check(TEXT_ARRAY,
          "{\"a b\",\"c\\\"d\",\"e\\\\f\",\"NULL\",NULL,\"\",\"{x,y}\",\"\xc3\xbc \xc3\xb1\"}",
          "[\"a b\",\"c\\\"d\",\"e\\\\f\",\"NULL\",null,\"\",\"{x,y}\",\"\xc3\xbc \xc3\xb1\"]");
    check(TEXT_ARRAY, "{abc,def}", "[\"abc\",\"def\"]");
    check(TEXT_ARRAY, "{\"a,b\",\"}{\",\"\\\\\",\"\\\"\"}", "[\"a,b\",\"}{\",\"\\\\\",\"\\\"\"]");
    check(TEXT_ARRAY, "{\"tab\there\",\"nl\nx\"}", "[\"tab\\there\",\"nl\\nx\"]");
    check(TEXT_ARRAY, "{{a,b},{c,d}}", "[[\"a\",\"b\"],[\"c\",\"d\"]]");
    check(TEXT_ARRAY, "[2:2]={z}", "[\"z\"]");
    /* array_in's escapes: a backslash may precede any byte, multibyte ones too. */
    check(TEXT_ARRAY, "{\"\\\xc3\xa9\\x\"}", "[\"\xc3\xa9x\"]");
    check(TEXT_ARRAY, "{a\\,b,c\\ }", "[\"a,b\",\"c \"]");
    check(TEXT_ARRAY, "{ab  }", "[\"ab\"]"); /* unquoted trailing space is not part of it */
    check(VARCHAR_ARRAY, "{\"x y\",NULL}", "[\"x y\",null]");
    check(BYTEA_ARRAY, "{\"\\\\x00ff\"}", "[\"\\\\x00ff\"]");
    check(TIMESTAMPTZ_ARRAY, "{\"2024-01-02 03:04:05+00\"}", "[\"2024-01-02 03:04:05+00\"]");
    check(UUID_ARRAY, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}",
          "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\",null]");
    check_error(TEXT_ARRAY, "{\"\xff\"}", -EILSEQ, "text[] value is not valid utf-8");
}

static void test_arrays_json(void **state)
{
    (void)state;
    /* array_out's rendering of ARRAY['{"a": 1}','[1,2]']::jsonb[]. */
    check(JSONB_ARRAY, "{\"{\\\"a\\\": 1}\",\"[1, 2]\"}", "[{\"a\": 1},[1, 2]]");
    check(JSON_ARRAY, "{\"{\\\"a\\\": 1}\",\"\\\"s\\\"\",NULL}", "[{\"a\": 1},\"s\",null]");
    check(JSON_ARRAY, "{1,true,null}", "[1,true,null]"); /* unquoted JSON null is SQL NULL */
    check(JSONB_ARRAY, "{\"{\\\"k\\\": \\\"a\\\\\\\\b\\\"}\"}", "[{\"k\": \"a\\\\b\"}]");
    check_error(JSONB_ARRAY, "{\"{bad\"}", -EINVAL, "invalid jsonb value: not valid json");
    check_error(JSON_ARRAY, "{1,\"[1,]\"}", -EINVAL, "invalid json value: not valid json");
}

static void test_arrays_unknown_and_nested_empty(void **state)
{
    (void)state;
    /* Arrays of types without an entry, geometric ones among them: a plain string. */
    check(POINT_ARRAY, "{\"(1,2)\",\"(3,4)\"}", "\"{\\\"(1,2)\\\",\\\"(3,4)\\\"}\"");
    check(BOX_ARRAY, "{(1,1),(0,0);(2,2),(1,1)}", "\"{(1,1),(0,0);(2,2),(1,1)}\"");
    check(USER_TYPE, "{1,2}", "\"{1,2}\"");
    check(INT4_ARRAY, "{{},{}}", "[[],[]]");
}

static void test_arrays_malformed(void **state)
{
    (void)state;
    check_error(INT4_ARRAY, "", -EINVAL, "invalid int4[] value: missing '{'");
    check_error(INT4_ARRAY, "1,2", -EINVAL, "invalid int4[] value: missing '{'");
    check_error(INT4_ARRAY, "{1,2", -EINVAL, "invalid int4[] value: missing '}'");
    check_error(INT4_ARRAY, "{{1,2}", -EINVAL, "invalid int4[] value: missing '}'");
    check_error(INT4_ARRAY, "{1,,2}", -EINVAL, "invalid int4[] value: empty element");
    check_error(INT4_ARRAY, "{1,}", -EINVAL, "invalid int4[] value: empty element");
    check_error(INT4_ARRAY, "{,1}", -EINVAL, "invalid int4[] value: empty element");
    check_error(INT4_ARRAY, "{1}x", -EINVAL, "invalid int4[] value: text after the final '}'");
    check_error(INT4_ARRAY, "{1}}", -EINVAL, "invalid int4[] value: text after the final '}'");
    check_error(INT4_ARRAY, "{1 2}", -EINVAL, "invalid int4 value: not in the type's text format");
    check_error(INT4_ARRAY, "{{1}{2}}", -EINVAL, "invalid int4[] value: expected ',' or '}'");
    check_error(INT4_ARRAY, "{x}", -EINVAL, "invalid int4 value: not in the type's text format");
    check_error(INT4_ARRAY, "{a\"b}", -EINVAL, "invalid int4[] value: unexpected '\"' in element");
    check_error(TEXT_ARRAY, "{\"abc}", -EINVAL,
                "invalid text[] value: unterminated quoted element");
    check_error(TEXT_ARRAY, "{\"a\\\"}", -EINVAL,
                "invalid text[] value: unterminated quoted element");
    check_error(TEXT_ARRAY, "{ab\\", -EINVAL, "invalid text[] value: missing '}'");
    check_error(INT4_ARRAY, "[0:1]{1,2}", -EINVAL,
                "invalid int4[] value: malformed dimension decoration");
    check_error(INT4_ARRAY, "[0:]={1}", -EINVAL,
                "invalid int4[] value: malformed dimension decoration");
    check_error(INT4_ARRAY, "[0:1={1}", -EINVAL,
                "invalid int4[] value: malformed dimension decoration");
    check_error(BOOL_ARRAY, "{t,x}", -EINVAL, "invalid bool value: not in the type's text format");
    check_error(NUMERIC_ARRAY, "{1,nan}", -EINVAL,
                "invalid numeric value: not in the type's text format");
}

/* --- rows and keys -------------------------------------------------------------- */

enum { C_ID, C_NAME, C_PAYLOAD, C_BIG, C_TAGS, C_OTHER, NCOLS };

static char n_id[] = "id", n_name[] = "na\"me", n_payload[] = "payload", n_big[] = "big",
            n_tags[] = "tags", n_other[] = "other";
static char nsp[] = "public", relname[] = "orders";

struct row_fixture {
    struct rel_col cols[NCOLS];
    struct rel_desc rel;
    struct pgo_value vals[NCOLS];
    struct pgo_tuple tuple;
    struct jbuf b, unchanged;
    char err[256];
};

static void set_text(struct pgo_value *v, const char *s)
{
    v->kind = PGO_VALUE_TEXT;
    v->len = (uint32_t)strlen(s);
    v->data = s;
}

static int row_setup(void **state)
{
    struct row_fixture *f = calloc(1, sizeof(*f));
    const struct rel_col cols[NCOLS] = {
        {n_id, INT4, -1, 1},  {n_name, TEXT, -1, 0},       {n_payload, JSONB, -1, 0},
        {n_big, TEXT, -1, 0}, {n_tags, TEXT_ARRAY, -1, 0}, {n_other, NUMERIC, -1, 0},
    };

    if (!f)
        return -1;
    memcpy(f->cols, cols, sizeof(cols));
    f->rel.relid = 16400;
    f->rel.nspname = nsp;
    f->rel.relname = relname;
    f->rel.replident = 'd';
    f->rel.ncols = NCOLS;
    f->rel.cols = f->cols;
    set_text(&f->vals[C_ID], "7");
    set_text(&f->vals[C_NAME], "Ann");
    set_text(&f->vals[C_PAYLOAD], "{\"a\": 1}");
    set_text(&f->vals[C_BIG], "long text");
    set_text(&f->vals[C_TAGS], "{x,\"y z\"}");
    f->vals[C_OTHER].kind = PGO_VALUE_NULL;
    f->tuple.ncols = NCOLS;
    f->tuple.cols = f->vals;
    jbuf_init(&f->b);
    jbuf_init(&f->unchanged);
    *state = f;
    return 0;
}

static int row_teardown(void **state)
{
    struct row_fixture *f = *state;

    jbuf_free(&f->b);
    jbuf_free(&f->unchanged);
    free(f);
    return 0;
}

static void test_row(void **state)
{
    struct row_fixture *f = *state;

    assert_int_equal(
        cdc_row_to_json(&f->b, &f->rel, &f->tuple, &f->unchanged, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->b.data,
                        "{\"id\":7,\"na\\\"me\":\"Ann\",\"payload\":{\"a\": 1},"
                        "\"big\":\"long text\",\"tags\":[\"x\",\"y z\"],\"other\":null}");
    assert_true(json_valid(f->b.data, f->b.len));
    assert_string_equal(f->unchanged.data, "[]");

    /* Without an unchanged buffer. */
    jbuf_reset(&f->b);
    assert_int_equal(cdc_row_to_json(&f->b, &f->rel, &f->tuple, NULL, f->err, sizeof(f->err)), 0);
    assert_true(json_valid(f->b.data, f->b.len));
}

static void test_row_unchanged_toast(void **state)
{
    struct row_fixture *f = *state;

    /* One unchanged column: left out, and listed. */
    f->vals[C_BIG].kind = PGO_VALUE_UNCHANGED_TOAST;
    f->vals[C_BIG].len = 0;
    f->vals[C_BIG].data = NULL;
    assert_int_equal(
        cdc_row_to_json(&f->b, &f->rel, &f->tuple, &f->unchanged, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->b.data, "{\"id\":7,\"na\\\"me\":\"Ann\",\"payload\":{\"a\": 1},"
                                   "\"tags\":[\"x\",\"y z\"],\"other\":null}");
    assert_string_equal(f->unchanged.data, "[\"big\"]");

    /* Two, the first and the last column, names escaped. */
    f->vals[C_ID].kind = PGO_VALUE_UNCHANGED_TOAST;
    f->vals[C_NAME].kind = PGO_VALUE_UNCHANGED_TOAST;
    f->vals[C_BIG].kind = PGO_VALUE_TEXT;
    f->vals[C_BIG].data = "b";
    f->vals[C_BIG].len = 1;
    f->vals[C_OTHER].kind = PGO_VALUE_UNCHANGED_TOAST;
    jbuf_reset(&f->b);
    jbuf_reset(&f->unchanged);
    assert_int_equal(
        cdc_row_to_json(&f->b, &f->rel, &f->tuple, &f->unchanged, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->b.data,
                        "{\"payload\":{\"a\": 1},\"big\":\"b\",\"tags\":[\"x\",\"y z\"]}");
    assert_string_equal(f->unchanged.data, "[\"id\",\"na\\\"me\",\"other\"]");
    assert_true(json_valid(f->unchanged.data, f->unchanged.len));

    /* Every column unchanged: an empty object. */
    for (int i = 0; i < NCOLS; i++)
        f->vals[i].kind = PGO_VALUE_UNCHANGED_TOAST;
    jbuf_reset(&f->b);
    jbuf_reset(&f->unchanged);
    assert_int_equal(
        cdc_row_to_json(&f->b, &f->rel, &f->tuple, &f->unchanged, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->b.data, "{}");
    assert_string_equal(f->unchanged.data,
                        "[\"id\",\"na\\\"me\",\"payload\",\"big\",\"tags\",\"other\"]");

    /* Both buffers are appended to. */
    jbuf_reset(&f->b);
    jbuf_reset(&f->unchanged);
    jbuf_puts(&f->b, "{\"after\":");
    jbuf_puts(&f->unchanged, "x=");
    f->vals[C_ID].kind = PGO_VALUE_TEXT;
    f->vals[C_ID].data = "1";
    f->vals[C_ID].len = 1;
    assert_int_equal(
        cdc_row_to_json(&f->b, &f->rel, &f->tuple, &f->unchanged, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->b.data, "{\"after\":{\"id\":1}");
    assert_string_equal(f->unchanged.data,
                        "x=[\"na\\\"me\",\"payload\",\"big\",\"tags\",\"other\"]");
}

static void test_row_errors(void **state)
{
    struct row_fixture *f = *state;

    jbuf_puts(&f->b, MARK);
    jbuf_puts(&f->unchanged, MARK);

    /* Column count mismatch. */
    f->tuple.ncols = NCOLS - 1;
    assert_int_equal(
        cdc_row_to_json(&f->b, &f->rel, &f->tuple, &f->unchanged, f->err, sizeof(f->err)), -EINVAL);
    assert_string_equal(f->err, "tuple has 5 columns but relation \"public.orders\" has 6");
    assert_int_equal(cdc_key_to_json(&f->b, &f->rel, &f->tuple, f->err, sizeof(f->err)), -EINVAL);
    f->tuple.ncols = NCOLS;

    /* A bad value after an unchanged column: both buffers rolled back. */
    f->vals[C_BIG].kind = PGO_VALUE_UNCHANGED_TOAST;
    set_text(&f->vals[C_TAGS], "{1,");
    assert_int_equal(
        cdc_row_to_json(&f->b, &f->rel, &f->tuple, &f->unchanged, f->err, sizeof(f->err)), -EINVAL);
    assert_string_equal(f->err, "column \"tags\": invalid text[] value: missing '}'");
    assert_string_equal(f->b.data, MARK);
    assert_string_equal(f->unchanged.data, MARK);

    set_text(&f->vals[C_TAGS], "{}");
    set_text(&f->vals[C_PAYLOAD], "{\"a\": 1");
    assert_int_equal(
        cdc_row_to_json(&f->b, &f->rel, &f->tuple, &f->unchanged, f->err, sizeof(f->err)), -EINVAL);
    assert_string_equal(f->err, "column \"payload\": invalid jsonb value: not valid json");
    assert_string_equal(f->b.data, MARK);

    set_text(&f->vals[C_PAYLOAD], "{}");
    set_text(&f->vals[C_NAME], "\xc3\x28");
    assert_int_equal(cdc_row_to_json(&f->b, &f->rel, &f->tuple, NULL, f->err, sizeof(f->err)),
                     -EILSEQ);
    assert_string_equal(f->err, "column \"na\"me\": text value is not valid utf-8");
    assert_string_equal(f->b.data, MARK);

    /* An out-of-memory buffer. */
    set_text(&f->vals[C_NAME], "Ann");
    f->unchanged.oom = true;
    assert_int_equal(
        cdc_row_to_json(&f->b, &f->rel, &f->tuple, &f->unchanged, f->err, sizeof(f->err)), -ENOMEM);
    assert_string_equal(f->err, "out of memory");
    assert_string_equal(f->b.data, MARK);
}

static void test_key(void **state)
{
    struct row_fixture *f = *state;

    /* The flagged column only. */
    assert_int_equal(cdc_key_to_json(&f->b, &f->rel, &f->tuple, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->b.data, "{\"id\":7}");

    /* A composite key, from an old-key tuple whose other columns are NULL. */
    f->cols[C_NAME].flags = 1;
    for (int i = C_PAYLOAD; i < NCOLS; i++)
        f->vals[i].kind = PGO_VALUE_NULL;
    f->vals[C_BIG].kind = PGO_VALUE_UNCHANGED_TOAST; /* not a key column: not read */
    jbuf_reset(&f->b);
    assert_int_equal(cdc_key_to_json(&f->b, &f->rel, &f->tuple, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->b.data, "{\"id\":7,\"na\\\"me\":\"Ann\"}");

    /* Only bit 1 means "key": other flag bits do not. */
    f->cols[C_NAME].flags = 2;
    jbuf_reset(&f->b);
    assert_int_equal(cdc_key_to_json(&f->b, &f->rel, &f->tuple, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->b.data, "{\"id\":7}");

    /* No key column (REPLICA IDENTITY NOTHING): null. */
    f->cols[C_ID].flags = 0;
    jbuf_reset(&f->b);
    assert_int_equal(cdc_key_to_json(&f->b, &f->rel, &f->tuple, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->b.data, "null");
}

static void test_key_errors(void **state)
{
    struct row_fixture *f = *state;

    jbuf_puts(&f->b, MARK);
    f->vals[C_ID].kind = PGO_VALUE_UNCHANGED_TOAST;
    assert_int_equal(cdc_key_to_json(&f->b, &f->rel, &f->tuple, f->err, sizeof(f->err)), -ENODATA);
    assert_string_equal(f->err, "key column \"id\": unchanged toast value was not sent");
    assert_string_equal(f->b.data, MARK);

    set_text(&f->vals[C_ID], "seven");
    assert_int_equal(cdc_key_to_json(&f->b, &f->rel, &f->tuple, f->err, sizeof(f->err)), -EINVAL);
    assert_string_equal(f->err,
                        "key column \"id\": invalid int4 value: not in the type's text format");
    assert_string_equal(f->b.data, MARK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_null_toast_binary),
        cmocka_unit_test(test_value_errors_and_oom),
        cmocka_unit_test(test_arrays_numbers),
        cmocka_unit_test(test_arrays_text),
        cmocka_unit_test(test_arrays_json),
        cmocka_unit_test(test_arrays_unknown_and_nested_empty),
        cmocka_unit_test(test_arrays_malformed),
        cmocka_unit_test_setup_teardown(test_row, row_setup, row_teardown),
        cmocka_unit_test_setup_teardown(test_row_unchanged_toast, row_setup, row_teardown),
        cmocka_unit_test_setup_teardown(test_row_errors, row_setup, row_teardown),
        cmocka_unit_test_setup_teardown(test_key, row_setup, row_teardown),
        cmocka_unit_test_setup_teardown(test_key_errors, row_setup, row_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

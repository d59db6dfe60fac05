/*
 * test_jsonbuf.c -- unit tests for the JSON text buffer and validators
 * (relay/jsonbuf.c).
 *
 * The buffer tests check exact contents and lengths after every kind of write, the
 * NUL terminator, growth over many small writes, that a warmed-up buffer stops
 * reallocating after jbuf_reset(), and the sticky oom flag.  Real allocation
 * failure cannot be provoked from a test without interposing on malloc, so the oom
 * path is driven by writes larger than PTRDIFF_MAX bytes, which the buffer refuses
 * the same way (oom set, nothing written) without calling realloc().
 *
 * The validators are fed copies of their input in heap blocks of exactly the input's
 * size, with no NUL after them, so under AddressSanitizer a validator that read one
 * byte too far would fail the test.  Octal escapes ("\303A") are used where a hex
 * escape would swallow the letter after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "jsonbuf.h"

/* Run fn on an exact-size heap copy of s[0..n) (no terminator behind it). */
static bool on_copy(bool (*fn)(const char *, size_t), const char *s, size_t n)
{
    char *copy = malloc(n ? n : 1);
    bool ok;

    assert_non_null(copy);
    if (n)
        memcpy(copy, s, n);
    ok = fn(copy, n);
    free(copy);
    return ok;
}

/* Literal helpers: the length excludes the literal's NUL, so embedded NULs count. */
#define VALID(lit) on_copy(json_valid, lit, sizeof(lit) - 1)
#define UTF8(lit) on_copy(json_utf8_valid, lit, sizeof(lit) - 1)
#define NUMBER(lit) on_copy(json_number_valid, lit, sizeof(lit) - 1)

/* Render s[0..n) with jbuf_put_json_string() into a fresh buffer and compare. */
static void check_string(const char *s, size_t n, const char *expected)
{
    struct jbuf b;

    jbuf_init(&b);
    jbuf_put_json_string(&b, s, n);
    assert_false(b.oom);
    assert_string_equal(b.data, expected);
    assert_int_equal(b.len, strlen(expected));
    /* Whatever went in, what comes out is JSON. */
    assert_true(json_valid(b.data, b.len));
    jbuf_free(&b);
}

#define CHECK_STRING(lit, expected) check_string(lit, sizeof(lit) - 1, expected)

/* --- the buffer ---------------------------------------------------------------- */

static void test_init_free_reset(void **state)
{
    struct jbuf b;

    (void)state;
    jbuf_init(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_false(b.oom);

    /* An empty write still yields a terminated, empty string. */
    jbuf_puts(&b, "");
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_int_equal(b.len, 0);
    assert_true(b.cap > 0);

    jbuf_puts(&b, "abc");
    jbuf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_true(b.cap > 0);

    jbuf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    jbuf_free(&b); /* freeing twice is harmless */
    assert_null(b.data);
}

static void test_writes(void **state)
{
    struct jbuf b;

    (void)state;
    jbuf_init(&b);
    jbuf_putc(&b, '{');
    assert_string_equal(b.data, "{");
    jbuf_puts(&b, "\"a\":");
    assert_string_equal(b.data, "{\"a\":");
    jbuf_printf(&b, "%d,%s%c", -42, "\"x\"", '}');
    assert_string_equal(b.data, "{\"a\":-42,\"x\"}");
    assert_int_equal(b.len, 13);

    /* jbuf_put() takes bytes, NULs included. */
    jbuf_reset(&b);
    jbuf_put(&b, "a\0b", 3);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 4); /* and the terminator after them */
    jbuf_put(&b, NULL, 0);
    assert_int_equal(b.len, 3);

    /* An empty format writes nothing but keeps the buffer usable. */
    jbuf_reset(&b);
    jbuf_printf(&b, "%s", "");
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    jbuf_free(&b);
}

static void test_truncate(void **state)
{
    struct jbuf b;

    (void)state;
    jbuf_init(&b);
    jbuf_truncate(&b, 0); /* on an empty, unallocated buffer: nothing to do */
    assert_null(b.data);
    jbuf_puts(&b, "hello, world");
    jbuf_truncate(&b, 5);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "hello");
    jbuf_truncate(&b, 50); /* longer than the text: unchanged */
    assert_string_equal(b.data, "hello");
    jbuf_puts(&b, "!");
    assert_string_equal(b.data, "hello!");
    jbuf_free(&b);
}

static void test_growth(void **state)
{
    struct jbuf b;
    char expect[64];
    size_t len = 0;
    const char *data;
    size_t cap;

    (void)state;
    jbuf_init(&b);
    /* 10000 writes of mixed kinds; check the text is exactly what was written. */
    for (int i = 0; i < 10000; i++) {
        switch (i % 3) {
        case 0:
            jbuf_putc(&b, 'x');
            len += 1;
            break;
        case 1:
            jbuf_puts(&b, "yz");
            len += 2;
            break;
        default:
            jbuf_printf(&b, "[%05d]", i);
            len += 7;
            break;
        }
        assert_int_equal(b.len, len);
        assert_true(b.cap > b.len);
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_false(b.oom);
    assert_int_equal(strlen(b.data), len);
    assert_memory_equal(b.data, "xyz[00002]xyz[00005]", 20);
    snprintf(expect, sizeof(expect), "xyz[%05d]x", 9998);
    assert_string_equal(b.data + len - strlen(expect), expect);

    /* After warm-up, reset and the same amount of text again: no reallocation. */
    data = b.data;
    cap = b.cap;
    jbuf_reset(&b);
    for (size_t i = 0; i < len; i++)
        jbuf_putc(&b, 'q');
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    jbuf_free(&b);
}

static void test_printf_growth(void **state)
{
    struct jbuf b;
    char big[4000];

    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    /* Larger than the first allocation: the retry path with the copied va_list. */
    jbuf_init(&b);
    jbuf_puts(&b, "<");
    jbuf_printf(&b, "%s|%d", big, 7);
    assert_false(b.oom);
    assert_int_equal(b.len, 1 + 3999 + 2);
    assert_int_equal(b.data[0], '<');
    assert_memory_equal(b.data + 1, big, 3999);
    assert_string_equal(b.data + 4000, "|7");

    /* Exactly filling the remaining room (cap - len - 1 bytes) fits without growing. */
    jbuf_free(&b);
    jbuf_puts(&b, ""); /* the first, smallest allocation */
    {
        size_t cap = b.cap;
        size_t room = cap - 1;

        assert_true(room < sizeof(big));
        jbuf_printf(&b, "%.*s", (int)room, big);
        assert_int_equal(b.len, room);
        assert_int_equal(b.cap, cap);
        jbuf_printf(&b, "%s", "Z"); /* one more byte must grow */
        assert_true(b.cap > cap);
        assert_int_equal(b.len, room + 1);
        assert_int_equal(b.data[room], 'Z');
        assert_int_equal(b.data[room + 1], '\0');
    }
    jbuf_free(&b);
}

static void test_oom_is_sticky(void **state)
{
    struct jbuf b;
    const char *data;

    (void)state;
    jbuf_init(&b);
    jbuf_puts(&b, "kept");
    data = b.data;

    /* A write larger than any object can be fails like an allocation failure. */
    jbuf_put(&b, "x", SIZE_MAX);
    assert_true(b.oom);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "kept");

    /* Every later write is a no-op; the text stays terminated. */
    jbuf_putc(&b, 'a');
    jbuf_puts(&b, "bc");
    jbuf_put(&b, "de", 2);
    jbuf_printf(&b, "%d", 12345);
    jbuf_put_json_string(&b, "s", 1);
    jbuf_put_json_chars(&b, "s", 1);
    assert_true(b.oom);
    assert_int_equal(b.len, 4);
    assert_ptr_equal(b.data, data);
    assert_string_equal(b.data, "kept");

    /* truncate keeps the flag; reset clears it and writing works again. */
    jbuf_truncate(&b, 2);
    assert_true(b.oom);
    jbuf_reset(&b);
    assert_false(b.oom);
    jbuf_puts(&b, "again");
    assert_string_equal(b.data, "again");

    /* A flag set by hand (as a failed realloc would) also stops writes. */
    b.oom = true;
    jbuf_puts(&b, "more");
    assert_string_equal(b.data, "again");

    /* Failure in the first write of a fresh buffer: data stays NULL. */
    jbuf_free(&b);
    jbuf_put(&b, "x", (size_t)PTRDIFF_MAX);
    assert_true(b.oom);
    assert_null(b.data);
    jbuf_printf(&b, "%s", "no");
    assert_null(b.data);
    jbuf_free(&b);
}

/* --- jbuf_put_json_string -------------------------------------------------------- */

static void test_json_string_escapes(void **state)
{
    (void)state;
    CHECK_STRING("", "\"\"");
    CHECK_STRING("plain text", "\"plain text\"");
    CHECK_STRING("say \"hi\"", "\"say \\\"hi\\\"\"");
    CHECK_STRING("C:\\dir", "\"C:\\\\dir\"");
    CHECK_STRING("a\nb\rc\td\be\ff", "\"a\\nb\\rc\\td\\be\\ff\"");
    CHECK_STRING("\x01\x1f", "\"\\u0001\\u001f\"");
    CHECK_STRING("nul\0byte", "\"nul\\u0000byte\"");
    /* Not escaped: DEL, the solidus, and the characters JSON leaves alone. */
    CHECK_STRING("\x7f/<>'", "\"\x7f/<>'\"");
}

static void test_json_string_utf8(void **state)
{
    (void)state;
    /* Valid UTF-8 of every length passes through untouched. */
    CHECK_STRING("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e",
                 "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e\"");
    CHECK_STRING("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");
    /* Invalid bytes, defensively: each one that starts no valid sequence is \u00XX. */
    CHECK_STRING("a\377b", "\"a\\u00ffb\"");
    CHECK_STRING("\xc3", "\"\\u00c3\"");                                  /* truncated at the end */
    CHECK_STRING("\303A", "\"\\u00c3A\"");                                /* lead then ASCII */
    CHECK_STRING("\xc0\xaf", "\"\\u00c0\\u00af\"");                       /* overlong '/' */
    CHECK_STRING("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"");            /* surrogate D800 */
    CHECK_STRING("\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\""); /* U+110000 */
    CHECK_STRING("\x80\xc3\xa9", "\"\\u0080\xc3\xa9\"");                  /* stray, then valid */
    CHECK_STRING("\xe2\x82", "\"\\u00e2\\u0082\"");                       /* cut 3-byte */
}

static void test_json_chars_pieces(void **state)
{
    struct jbuf b;

    (void)state;
    jbuf_init(&b);
    jbuf_putc(&b, '"');
    jbuf_put_json_chars(&b, "a\"", 2);
    jbuf_put_json_chars(&b, "\xc3\xa9", 2);
    jbuf_put_json_chars(&b, "\n", 1);
    jbuf_putc(&b, '"');
    assert_string_equal(b.data, "\"a\\\"\xc3\xa9\\n\"");
    jbuf_free(&b);
}

/* --- json_utf8_valid ------------------------------------------------------------- */

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(UTF8(""));
    assert_true(UTF8("ascii only"));
    assert_true(UTF8("\0"));               /* U+0000 */
    assert_true(UTF8("\x7f"));             /* U+007F */
    assert_true(UTF8("\xc2\x80"));         /* U+0080, smallest two-byte */
    assert_true(UTF8("\xdf\xbf"));         /* U+07FF */
    assert_true(UTF8("\xe0\xa0\x80"));     /* U+0800, smallest three-byte */
    assert_true(UTF8("\xed\x9f\xbf"));     /* U+D7FF, just below the surrogates */
    assert_true(UTF8("\xee\x80\x80"));     /* U+E000, just above them */
    assert_true(UTF8("\xef\xbf\xbf"));     /* U+FFFF */
    assert_true(UTF8("\xf0\x90\x80\x80")); /* U+10000, smallest four-byte */
    assert_true(UTF8("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last code point */
    assert_true(UTF8("x\xc3\xa9y\xe2\x82\xacz\xf0\x9f\x98\x80"));
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    assert_false(UTF8("\x80")); /* stray continuation */
    assert_false(UTF8("\xbf"));
    assert_false(UTF8("\xc0\x80"));         /* overlong NUL */
    assert_false(UTF8("\xc1\xbf"));         /* overlong U+007F */
    assert_false(UTF8("\xe0\x80\x80"));     /* overlong three-byte */
    assert_false(UTF8("\xe0\x9f\xbf"));     /* overlong U+07FF */
    assert_false(UTF8("\xed\xa0\x80"));     /* U+D800 */
    assert_false(UTF8("\xed\xbf\xbf"));     /* U+DFFF */
    assert_false(UTF8("\xf0\x80\x80\x80")); /* overlong four-byte */
    assert_false(UTF8("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
    assert_false(UTF8("\xf4\x90\x80\x80")); /* U+110000 */
    assert_false(UTF8("\xf5\x80\x80\x80")); /* lead byte beyond F4 */
    assert_false(UTF8("\xfe"));
    assert_false(UTF8("\xff"));
    assert_false(UTF8("\xc3"));         /* truncated two-byte */
    assert_false(UTF8("\xe2\x82"));     /* truncated three-byte */
    assert_false(UTF8("\xf0\x9f\x98")); /* truncated four-byte */
    assert_false(UTF8("\303A"));        /* continuation replaced by ASCII */
    assert_false(UTF8("\xe2\x28\xa1"));
    assert_false(UTF8("ok\303\251bad\377"));
    /* The length bounds the scan: a valid sequence cut by n is invalid. */
    assert_false(on_copy(json_utf8_valid, "\xc3\xa9", 1));
}

/* --- json_number_valid ----------------------------------------------------------- */

static void test_number_valid(void **state)
{
    (void)state;
    assert_true(NUMBER("0"));
    assert_true(NUMBER("-0"));
    assert_true(NUMBER("7"));
    assert_true(NUMBER("-32768"));
    assert_true(NUMBER("1.5"));
    assert_true(NUMBER("0.000001"));
    assert_true(NUMBER("1e+30"));
    assert_true(NUMBER("-1.5E-3"));
    assert_true(NUMBER("2e10"));
    assert_true(NUMBER("1234567890123456789012345678901234567890.0123456789"));

    assert_false(NUMBER(""));
    assert_false(NUMBER("-"));
    assert_false(NUMBER("01"));
    assert_false(NUMBER("-01"));
    assert_false(NUMBER("00"));
    assert_false(NUMBER("1."));
    assert_false(NUMBER(".5"));
    assert_false(NUMBER("+1"));
    assert_false(NUMBER("1e"));
    assert_false(NUMBER("1e+"));
    assert_false(NUMBER("1.5.2"));
    assert_false(NUMBER("0x10"));
    assert_false(NUMBER(" 1"));
    assert_false(NUMBER("1 "));
    assert_false(NUMBER("NaN"));
    assert_false(NUMBER("Infinity"));
    assert_false(NUMBER("-Infinity"));
}

/* --- json_valid ------------------------------------------------------------------ */

static void test_json_valid_accepts(void **state)
{
    (void)state;
    assert_true(VALID("null"));
    assert_true(VALID("true"));
    assert_true(VALID("false"));
    assert_true(VALID("0"));
    assert_true(VALID("-1.25e-7"));
    assert_true(VALID("\"\""));
    assert_true(VALID("\"text\""));
    assert_true(VALID("[]"));
    assert_true(VALID("{}"));
    assert_true(VALID("[ ]"));
    assert_true(VALID("{ }"));
    assert_true(VALID(" \t\r\n{\"a\" : [1, 2.5, \"x\", null, true, false, {}, []]} \n"));
    assert_true(VALID("{\"a\":{\"b\":{\"c\":[[[]]]}}}"));
    assert_true(VALID("{\"k\":1,\"k\":2}")); /* duplicate keys are allowed */
    assert_true(VALID("[1,-0,0.5,1E3,1e-3]"));
    assert_true(VALID("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""));
    assert_true(VALID("\"\\u0000\\u00e9\\uFFFF\""));
    assert_true(VALID("\"\\ud83d\\ude00\""));               /* surrogate pair */
    assert_true(VALID("\"\\uDBFF\\uDFFF\""));               /* U+10FFFF */
    assert_true(VALID("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"")); /* raw UTF-8 */
    assert_true(VALID("\"\x7f\""));                         /* DEL is not a control character */
    assert_true(VALID("{\"a\": 1}"));                       /* jsonb's output spacing */
}

static void test_json_valid_rejects(void **state)
{
    (void)state;
    /* Empty, or no value. */
    assert_false(VALID(""));
    assert_false(VALID("   "));
    /* Numbers. */
    assert_false(VALID("01"));
    assert_false(VALID("[01]"));
    assert_false(VALID("-01"));
    assert_false(VALID("+1"));
    assert_false(VALID(".5"));
    assert_false(VALID("1."));
    assert_false(VALID("1e"));
    assert_false(VALID("-"));
    assert_false(VALID("NaN"));
    assert_false(VALID("Infinity"));
    assert_false(VALID("[-Infinity]"));
    assert_false(VALID("0x1F"));
    /* Trailing and misplaced commas, missing separators. */
    assert_false(VALID("[1,]"));
    assert_false(VALID("{\"a\":1,}"));
    assert_false(VALID("[,1]"));
    assert_false(VALID("{,}"));
    assert_false(VALID("[1 2]"));
    assert_false(VALID("{\"a\" 1}"));
    assert_false(VALID("{\"a\":}"));
    assert_false(VALID("{\"a\"}"));
    assert_false(VALID("{1:2}"));
    assert_false(VALID("{'a':1}"));
    assert_false(VALID("[1:2]"));
    assert_false(VALID("{\"a\":1]"));
    assert_false(VALID("[1}"));
    /* Literals. */
    assert_false(VALID("nul"));
    assert_false(VALID("tru"));
    assert_false(VALID("truex"));
    assert_false(VALID("True"));
    assert_false(VALID("undefined"));
    /* Strings: escapes. */
    assert_false(VALID("\"\\x\""));
    assert_false(VALID("\"\\'\""));
    assert_false(VALID("\"\\u12\""));
    assert_false(VALID("\"\\u12G4\""));
    assert_false(VALID("\"\\"));
    /* Lone surrogates. */
    assert_false(VALID("\"\\ud800\""));
    assert_false(VALID("\"\\ud800x\""));
    assert_false(VALID("\"\\ud800\\u0041\""));
    assert_false(VALID("\"\\ud800\\ud800\""));
    assert_false(VALID("\"\\udc00\""));
    assert_false(VALID("\"\\ude00\\ud83d\"")); /* pair in the wrong order */
    assert_false(VALID("\"\\ud800\\n\""));
    /* Strings: raw control characters and bad UTF-8. */
    assert_false(VALID("\"a\nb\""));
    assert_false(VALID("\"\t\""));
    assert_false(VALID("\"\0\""));
    assert_false(VALID("\"\x1f\""));
    assert_false(VALID("\"\xff\""));
    assert_false(VALID("\"\xc0\xaf\""));
    assert_false(VALID("\"\xed\xa0\x80\""));
    /* Unterminated. */
    assert_false(VALID("\"abc"));
    assert_false(VALID("[1,2"));
    assert_false(VALID("{\"a\":1"));
    assert_false(VALID("{"));
    assert_false(VALID("["));
    /* Trailing garbage, or two values. */
    assert_false(VALID("1 2"));
    assert_false(VALID("{} x"));
    assert_false(VALID("[1]]"));
    assert_false(VALID("{}{}"));
    assert_false(VALID("\"a\"\"b\""));
    assert_false(VALID("null\0"));
    /* Not JSON at all. */
    assert_false(VALID("/* c */ 1"));
    assert_false(VALID("\xc3\xa9"));
    assert_false(VALID("\xef\xbb\xbf{}")); /* a byte-order mark is not whitespace */
    assert_false(VALID("\v1"));
    /* The length bounds the scan: "[1,2]" cut to 4 bytes. */
    assert_false(on_copy(json_valid, "[1,2]", 4));
    assert_true(on_copy(json_valid, "[1,2]xyz", 5));
}

/* n opening brackets (or {"k": ...) then the closing ones. */
static char *nested(size_t n, bool objects, size_t *len)
{
    const char *open = objects ? "{\"k\":" : "[";
    size_t olen = strlen(open);
    char *s = malloc(n * olen + 1 + n);
    char *p = s;

    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        memcpy(p, open, olen);
        p += olen;
    }
    *p++ = '1';
    for (size_t i = 0; i < n; i++)
        *p++ = objects ? '}' : ']';
    *len = (size_t)(p - s);
    return s;
}

static void test_json_valid_depth(void **state)
{
    size_t len;
    char *s;

    (void)state;
    s = nested(JSON_MAX_DEPTH, false, &len);
    assert_true(json_valid(s, len));
    free(s);
    s = nested(JSON_MAX_DEPTH + 1, false, &len);
    assert_false(json_valid(s, len));
    free(s);
    s = nested(JSON_MAX_DEPTH, true, &len);
    assert_true(json_valid(s, len));
    free(s);
    s = nested(JSON_MAX_DEPTH + 1, true, &len);
    assert_false(json_valid(s, len));
    free(s);
    /* Far beyond the limit: rejected without recursion, no crash. */
    s = nested(100000, false, &len);
    assert_false(json_valid(s, len));
    free(s);

    /* Mixed nesting at the limit keeps track of which closer belongs where. */
    {
        struct jbuf b;

        jbuf_init(&b);
        for (int i = 0; i < JSON_MAX_DEPTH; i++)
            jbuf_puts(&b, i % 2 ? "{\"a\":" : "[");
        for (int i = JSON_MAX_DEPTH - 1; i >= 0; i--)
            jbuf_puts(&b, i % 2 ? "}" : "]");
        assert_false(b.oom);
        assert_false(json_valid(b.data, b.len)); /* innermost {"a": has no value */

        jbuf_reset(&b);
        for (int i = 0; i < JSON_MAX_DEPTH; i++)
            jbuf_puts(&b, i % 2 ? "{\"a\":" : "[0,");
        jbuf_puts(&b, "null");
        for (int i = JSON_MAX_DEPTH - 1; i >= 0; i--)
            jbuf_puts(&b, i % 2 ? "}" : "]");
        assert_true(json_valid(b.data, b.len));
        /* Swap the outermost closer: now mismatched. */
        b.data[b.len - 1] = '}';
        assert_false(json_valid(b.data, b.len));
        jbuf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_free_reset),
        cmocka_unit_test(test_writes),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_printf_growth),
        cmocka_unit_test(test_oom_is_sticky),
        cmocka_unit_test(test_json_string_escapes),
        cmocka_unit_test(test_json_string_utf8),
        cmocka_unit_test(test_json_chars_pieces),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_number_valid),
        cmocka_unit_test(test_json_valid_accepts),
        cmocka_unit_test(test_json_valid_rejects),
        cmocka_unit_test(test_json_valid_depth),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_jsonscan.c -- unit tests for the JSON object scanner (relay/jsonscan.c).
 *
 * The scanner hands out the members of a validated JSON object as raw slices of the
 * input: the key as the bytes between its quotes, escapes and all, and the value as
 * the exact bytes of its JSON text, so that a payload reaches Kafka byte for byte as
 * it was written.  These tests therefore compare slices with memcmp against the
 * expected bytes, and check the pointers too: a slice must point into the input, not
 * at a copy.  Values are chosen to trip a scanner that counts brackets naively:
 * strings holding braces, brackets, commas, colons and escaped quotes, nested
 * objects and arrays, and whitespace everywhere RFC 8259 allows it.  Every input is
 * copied into a heap block of exactly its length with no NUL after it, as the
 * decoder hands out message contents, so a scanner that read one byte past the end
 * would trip AddressSanitizer.
 *
 * json_string_unescape() is checked for the borrowed case (no escapes: the very
 * same pointer comes back and the buffer is untouched), every named escape, \u
 * escapes to one-, two- and three-byte UTF-8, a surrogate pair to four bytes, and
 * appending after text already in the buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "jsonbuf.h"
#include "jsonscan.h"

/* A heap copy of s without its NUL, so reading past the end is caught by ASan. */
static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);

    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

/* Assert that a slice holds exactly the bytes of want (want may contain no NUL). */
static void assert_slice(struct ev_str got, const char *want)
{
    size_t n = strlen(want);

    assert_non_null(got.p);
    if (got.len != n || memcmp(got.p, want, n) != 0)
        fail_msg("want \"%s\" (%zu bytes), got \"%.*s\" (%zu bytes)", want, n, (int)got.len, got.p,
                 got.len);
}

/* Slices of one expected member. */
struct member {
    const char *key;   /* raw key, escapes kept */
    const char *value; /* raw value text */
};

/*
 * Iterate json (a C string, copied to an exact-length heap block) and check that
 * exactly the members want[0..n) come out, in order, with slices inside the input.
 */
static void assert_members(const char *json, const struct member *want, size_t n)
{
    size_t len = strlen(json);
    char *s = dup_exact(json, len);
    struct json_iter it;
    struct ev_str key, val;
    size_t i;

    assert_int_equal(json_iter_object(&it, s, len), 0);
    for (i = 0; i < n; i++) {
        if (json_iter_next(&it, &key, &val) != 1)
            fail_msg("%s: member %zu (\"%s\") missing", json, i, want[i].key);
        assert_slice(key, want[i].key);
        assert_slice(val, want[i].value);
        /* Slices point into the input, not at copies. */
        assert_true(key.p >= s && key.p + key.len <= s + len);
        assert_true(val.p >= s && val.p + val.len <= s + len);
        /* The key slice sits right after its opening quote. */
        assert_int_equal(key.p[-1], '"');
    }
    if (json_iter_next(&it, &key, &val) != 0)
        fail_msg("%s: unexpected member \"%.*s\"", json, (int)key.len, key.p);
    /* At the end it stays at the end. */
    assert_int_equal(json_iter_next(&it, &key, &val), 0);
    free(s);
}

/* ---------------------------------------------------------------- json_iter_* */

static void test_iter_simple(void **state)
{
    static const struct member m[] = {{"a", "1"}, {"b", "\"x\""}, {"c", "true"}};

    (void)state;
    assert_members("{\"a\":1,\"b\":\"x\",\"c\":true}", m, 3);
}

static void test_iter_whitespace(void **state)
{
    static const struct member m[] = {{"a", "1"},
                                      {"b", "\"two\""},
                                      {"c", "[ 1 , 2 ]"},
                                      {"d", "{ \"e\" : null }"},
                                      {"f", "-0.5e+3"}};

    (void)state;
    assert_members(" \t\r\n{ \r\n \"a\" \t : \n 1 , \"b\"  :  \"two\"  \n,\"c\":[ 1 , 2 ]\t,"
                   "\n\"d\"\n:\n{ \"e\" : null }\n,\"f\":-0.5e+3\r\n} \n",
                   m, 5);
    /* No whitespace at all. */
    assert_members("{\"a\":1,\"b\":\"two\",\"c\":[ 1 , 2 ],\"d\":{ \"e\" : null },\"f\":-0.5e+3}",
                   m, 5);
}

/* Values whose insides look like the end of a member or of the object. */
static void test_iter_nested(void **state)
{
    static const struct member m[] = {
        {"o", "{\"x\":\"}\",\"y\":[1,{\"z\":\"]\"}],\"w\":{}}"},
        {"a", "[\",\",{\"}\":\"{\"},[[]],\"]\"]"},
        {"s", "\"br{ace}[s],: \\\"q\\\" \\\\\""},
        {"q", "\"\\\"\""},
        {"bs", "\"\\\\\""},
        {"n", "-1.5e3"},
        {"t", "true"},
        {"f", "false"},
        {"z", "null"},
        {"e", "{}"},
        {"ea", "[]"},
        {"deep", "[[[{\"a\":[{\"b\":{\"c\":\"}]}]\"}}]}]]]"},
    };

    (void)state;
    assert_members("{\"o\":{\"x\":\"}\",\"y\":[1,{\"z\":\"]\"}],\"w\":{}},"
                   "\"a\":[\",\",{\"}\":\"{\"},[[]],\"]\"],"
                   "\"s\":\"br{ace}[s],: \\\"q\\\" \\\\\","
                   "\"q\":\"\\\"\","
                   "\"bs\":\"\\\\\","
                   "\"n\":-1.5e3,\"t\":true,\"f\":false,\"z\":null,\"e\":{},\"ea\":[],"
                   "\"deep\":[[[{\"a\":[{\"b\":{\"c\":\"}]}]\"}}]}]]]}",
                   m, sizeof(m) / sizeof(m[0]));
}

/* A number or literal as the last member ends at the closing brace. */
static void test_iter_last_scalar(void **state)
{
    static const struct member num[] = {{"n", "42"}};
    static const struct member lit[] = {{"a", "\"x\""}, {"b", "false"}};

    (void)state;
    assert_members("{\"n\":42}", num, 1);
    assert_members("{\"n\":42 }", num, 1);
    assert_members("{\"a\":\"x\",\"b\":false}", lit, 2);
}

static void test_iter_empty(void **state)
{
    (void)state;
    assert_members("{}", NULL, 0);
    assert_members("{ }", NULL, 0);
    assert_members(" \n{\r\n\t}\n ", NULL, 0);
}

/* Keys come back raw: escapes are not undone, and the empty key is a key. */
static void test_iter_raw_keys(void **state)
{
    static const struct member m[] = {
        {"a\\\"b", "1"}, {"c\\\\d", "2"}, {"caf\\u00e9", "3"},
        {"", "4"},       {"sp ace", "5"}, {"\\u0022}", "6"},
    };

    (void)state;
    assert_members("{\"a\\\"b\":1,\"c\\\\d\":2,\"caf\\u00e9\":3,\"\":4,\"sp ace\":5,"
                   "\"\\u0022}\":6}",
                   m, sizeof(m) / sizeof(m[0]));
}

/* Duplicate keys (RFC 8259 allows them) each come out; the scanner does not merge. */
static void test_iter_duplicate_keys(void **state)
{
    static const struct member m[] = {{"k", "1"}, {"k", "2"}};

    (void)state;
    assert_members("{\"k\":1,\"k\":2}", m, 2);
}

static void test_iter_not_object(void **state)
{
    static const char *const bad[] = {
        "[]",   "[{\"a\":1}]", " [ {} ] ", "\"{}\"", "\"x\"", "42",    "-1",
        "true", "false",       "null",     "",       " ",     "\n\t ",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = strlen(bad[i]);
        char *s = dup_exact(bad[i], n);
        struct json_iter it;

        if (json_iter_object(&it, s, n) != -EINVAL)
            fail_msg("\"%s\" accepted as an object", bad[i]);
        free(s);
    }
}

/* The scanner stops at n: what follows in memory is not part of the object. */
static void test_iter_bounded_by_length(void **state)
{
    static const char text[] = "{\"a\":1}{\"b\":2}";
    struct json_iter it;
    struct ev_str key, val;

    (void)state;
    assert_int_equal(json_iter_object(&it, text, 7), 0);
    assert_int_equal(json_iter_next(&it, &key, &val), 1);
    assert_slice(key, "a");
    assert_slice(val, "1");
    assert_int_equal(json_iter_next(&it, &key, &val), 0);

    /* Starting in the middle of a buffer works the same way. */
    assert_int_equal(json_iter_object(&it, text + 7, 7), 0);
    assert_int_equal(json_iter_next(&it, &key, &val), 1);
    assert_slice(key, "b");
    assert_ptr_equal(val.p, text + 12);
    assert_int_equal(val.len, 1);
    assert_int_equal(json_iter_next(&it, &key, &val), 0);

    /* A zero length is not an object, whatever the bytes. */
    assert_int_equal(json_iter_object(&it, text, 0), -EINVAL);
}

/* ---------------------------------------------------------------- json_raw_plain */

static void test_raw_plain(void **state)
{
    static const char esc[] = "ab\\n";

    (void)state;
    assert_true(json_raw_plain((struct ev_str){"abc", 3}));
    assert_true(json_raw_plain((struct ev_str){"", 0}));
    assert_true(json_raw_plain((struct ev_str){"caf\xc3\xa9 {x}", 9}));
    assert_false(json_raw_plain((struct ev_str){"a\\\"b", 4}));
    assert_false(json_raw_plain((struct ev_str){"\\\\", 2}));
    assert_false(json_raw_plain((struct ev_str){"\\u00e9", 6}));
    assert_false(json_raw_plain((struct ev_str){esc, 4}));
    /* Only the slice counts: the backslash just past its end does not. */
    assert_true(json_raw_plain((struct ev_str){esc, 2}));
}

static void test_raw_is_string(void **state)
{
    (void)state;
    assert_true(json_raw_is_string((struct ev_str){"\"\"", 2}));
    assert_true(json_raw_is_string((struct ev_str){"\"x\"", 3}));
    assert_false(json_raw_is_string((struct ev_str){"1", 1}));
    assert_false(json_raw_is_string((struct ev_str){"null", 4}));
    assert_false(json_raw_is_string((struct ev_str){"{\"a\":\"b\"}", 9}));
    assert_false(json_raw_is_string((struct ev_str){"\"", 1}));
}

/* ---------------------------------------------------------------- json_string_unescape */

/* Unescape body (a C string) into a fresh buffer; check the bytes of the result. */
static void assert_unescape(const char *body, const char *want, size_t want_len)
{
    size_t n = strlen(body);
    char *s = dup_exact(body, n);
    struct jbuf b;
    struct ev_str text = {NULL, 0};

    jbuf_init(&b);
    assert_int_equal(json_string_unescape((struct ev_str){s, n}, &b, &text), 0);
    assert_non_null(text.p);
    if (text.len != want_len || memcmp(text.p, want, want_len) != 0)
        fail_msg("unescaping \"%s\": got %zu bytes \"%.*s\"", body, text.len, (int)text.len,
                 text.p);
    /* Escapes were present: the text lives in the buffer, which holds just it. */
    assert_ptr_equal(text.p, b.data);
    assert_int_equal(b.len, want_len);
    assert_int_equal(b.data[b.len], '\0');
    free(s);
    jbuf_free(&b);
}

/* No escapes: the input itself comes back, and the buffer is not touched. */
static void test_unescape_borrowed(void **state)
{
    static const char body[] = "plain text {with} [brackets], caf\xc3\xa9";
    struct jbuf b;
    struct ev_str text = {NULL, 0};

    (void)state;
    jbuf_init(&b);
    assert_int_equal(json_string_unescape((struct ev_str){body, sizeof(body) - 1}, &b, &text), 0);
    assert_ptr_equal(text.p, body);
    assert_int_equal(text.len, sizeof(body) - 1);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    /* Also with text already in the buffer: nothing appended. */
    jbuf_puts(&b, "keep");
    assert_int_equal(json_string_unescape((struct ev_str){body, 5}, &b, &text), 0);
    assert_ptr_equal(text.p, body);
    assert_int_equal(text.len, 5);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");

    /* The empty string is borrowed too, and stays non-NULL. */
    assert_int_equal(json_string_unescape((struct ev_str){body, 0}, &b, &text), 0);
    assert_ptr_equal(text.p, body);
    assert_int_equal(text.len, 0);
    assert_int_equal(b.len, 4);
    jbuf_free(&b);
}

static void test_unescape_named(void **state)
{
    (void)state;
    assert_unescape("\\\"", "\"", 1);
    assert_unescape("\\\\", "\\", 1);
    assert_unescape("\\/", "/", 1);
    assert_unescape("\\b", "\b", 1);
    assert_unescape("\\f", "\f", 1);
    assert_unescape("\\n", "\n", 1);
    assert_unescape("\\r", "\r", 1);
    assert_unescape("\\t", "\t", 1);
    assert_unescape("\\\"\\\\\\/\\b\\f\\n\\r\\t", "\"\\/\b\f\n\r\t", 8);
    /* Text around and between escapes is copied. */
    assert_unescape("inv-\\\"2\\\"", "inv-\"2\"", 7);
    assert_unescape("a\\nb\\tc", "a\nb\tc", 5);
    /* An escaped backslash followed by a letter is a backslash and the letter. */
    assert_unescape("a\\\\nb", "a\\nb", 4);
    assert_unescape("\\\\\\\\", "\\\\", 2);
}

static void test_unescape_unicode(void **state)
{
    (void)state;
    assert_unescape("\\u0041", "A", 1);
    assert_unescape("\\u007f", "\x7f", 1);
    assert_unescape("\\u0000", "\0", 1);
    assert_unescape("\\u00e9", "\xc3\xa9", 2);
    assert_unescape("\\u00E9", "\xc3\xa9", 2);
    assert_unescape("caf\\u00e9!", "caf\xc3\xa9!", 6);
    assert_unescape("\\u0080", "\xc2\x80", 2);
    assert_unescape("\\u07ff", "\xdf\xbf", 2);
    assert_unescape("\\u0800", "\xe0\xa0\x80", 3);
    assert_unescape("\\u20ac", "\xe2\x82\xac", 3);
    assert_unescape("\\uffff", "\xef\xbf\xbf", 3);
    /* A surrogate pair is one code point, U+1F600, four bytes. */
    assert_unescape("\\ud83d\\ude00", "\xf0\x9f\x98\x80", 4);
    assert_unescape("\\uD83D\\uDE00", "\xf0\x9f\x98\x80", 4);
    assert_unescape("x\\ud83d\\ude00y", "x\xf0\x9f\x98\x80y", 6);
    /* The extremes of the supplementary planes. */
    assert_unescape("\\ud800\\udc00", "\xf0\x90\x80\x80", 4);
    assert_unescape("\\udbff\\udfff", "\xf4\x8f\xbf\xbf", 4);
    /* An escaped quote right after a \u escape. */
    assert_unescape("\\u00e9\\\"", "\xc3\xa9\"", 3);
}

/* Unescaped text goes after what the buffer holds; earlier text stays. */
static void test_unescape_appends(void **state)
{
    static const char first[] = "a\\nb";
    static const char second[] = "\\u00e9\\ud83d\\ude00";
    struct jbuf b;
    struct ev_str t1, t2;
    size_t off;

    (void)state;
    jbuf_init(&b);
    jbuf_puts(&b, "prefix");
    assert_int_equal(json_string_unescape((struct ev_str){first, sizeof(first) - 1}, &b, &t1), 0);
    assert_ptr_equal(t1.p, b.data + 6);
    assert_int_equal(t1.len, 3);
    assert_memory_equal(b.data, "prefixa\nb", 9);
    assert_int_equal(b.len, 9);

    off = b.len;
    assert_int_equal(json_string_unescape((struct ev_str){second, sizeof(second) - 1}, &b, &t2), 0);
    assert_ptr_equal(t2.p, b.data + off);
    assert_int_equal(t2.len, 6);
    assert_memory_equal(t2.p, "\xc3\xa9\xf0\x9f\x98\x80", 6);
    assert_int_equal(b.len, 15);
    assert_memory_equal(b.data, "prefixa\nb\xc3\xa9\xf0\x9f\x98\x80", 15);
    assert_int_equal(b.data[b.len], '\0');
    jbuf_free(&b);
}

/* A buffer already out of memory reports -ENOMEM instead of a truncated text. */
static void test_unescape_oom(void **state)
{
    struct jbuf b;
    struct ev_str text = {NULL, 0};

    (void)state;
    jbuf_init(&b);
    b.oom = true;
    assert_int_equal(json_string_unescape((struct ev_str){"a\\nb", 4}, &b, &text), -ENOMEM);
    /* A plain string needs no buffer, so it still succeeds. */
    assert_int_equal(json_string_unescape((struct ev_str){"ab", 2}, &b, &text), 0);
    assert_slice(text, "ab");
    jbuf_free(&b);
}

/*
 * The scanner and the unescaper together, as event.c uses them: a member's string
 * value, without its quotes, unescaped.
 */
static void test_iter_then_unescape(void **state)
{
    static const char json[] = "{\"id\":\"inv-\\\"2\\\"\",\"n\":\"caf\\u00e9\"}";
    size_t n = sizeof(json) - 1;
    char *s = dup_exact(json, n);
    struct json_iter it;
    struct ev_str key, val, text;
    struct jbuf b;

    (void)state;
    jbuf_init(&b);
    assert_int_equal(json_iter_object(&it, s, n), 0);
    assert_int_equal(json_iter_next(&it, &key, &val), 1);
    assert_true(json_raw_is_string(val));
    assert_int_equal(json_string_unescape((struct ev_str){val.p + 1, val.len - 2}, &b, &text), 0);
    assert_slice(text, "inv-\"2\"");
    assert_int_equal(json_iter_next(&it, &key, &val), 1);
    assert_int_equal(json_string_unescape((struct ev_str){val.p + 1, val.len - 2}, &b, &text), 0);
    assert_slice(text, "caf\xc3\xa9");
    assert_int_equal(json_iter_next(&it, &key, &val), 0);
    jbuf_free(&b);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iter_simple),
        cmocka_unit_test(test_iter_whitespace),
        cmocka_unit_test(test_iter_nested),
        cmocka_unit_test(test_iter_last_scalar),
        cmocka_unit_test(test_iter_empty),
        cmocka_unit_test(test_iter_raw_keys),
        cmocka_unit_test(test_iter_duplicate_keys),
        cmocka_unit_test(test_iter_not_object),
        cmocka_unit_test(test_iter_bounded_by_length),
        cmocka_unit_test(test_raw_plain),
        cmocka_unit_test(test_raw_is_string),
        cmocka_unit_test(test_unescape_borrowed),
        cmocka_unit_test(test_unescape_named),
        cmocka_unit_test(test_unescape_unicode),
        cmocka_unit_test(test_unescape_appends),
        cmocka_unit_test(test_unescape_oom),
        cmocka_unit_test(test_iter_then_unescape),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

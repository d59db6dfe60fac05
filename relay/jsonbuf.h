/*
 * jsonbuf.h -- a growable byte buffer for building JSON text, and JSON checks.
 *
 * Rendering an event means many small appends (a brace, a quoted name, a number);
 * struct jbuf makes each of them cheap: the buffer doubles when it must grow and
 * keeps its capacity across jbuf_reset(), so a buffer reused for every event stops
 * allocating once it has seen the largest one.
 *
 * Out of memory is sticky instead of being reported by every call: the first
 * allocation failure sets b->oom, and from then on every write is a no-op.  A
 * caller appends everything and checks b->oom once at the end; the text is then
 * incomplete and must not be used.  jbuf_reset() clears the flag.
 *
 * While b->data is not NULL it is NUL-terminated after every call (b->len does not
 * count the NUL), so the text can be handed to functions that want a C string.
 * data is NULL only before the first write, or when that write could not allocate.
 *
 * The second half is validation: strict UTF-8 (what PostgreSQL text must be before
 * it becomes a JSON string) and a strict RFC 8259 validator for text that is
 * embedded in a message as JSON.  Those functions never allocate and never recurse.
 *
 * Pure: no I/O, no logging.  struct jbuf is a plain struct whose storage the caller
 * owns (on the stack, inside another struct); only the bytes behind data are heap
 * memory, released by jbuf_free().
 */
#ifndef RELAY_JSONBUF_H
#define RELAY_JSONBUF_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define JBUF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define JBUF_PRINTF(fmt, args)
#endif

/* Deepest nesting of arrays and objects that json_valid() accepts. */
#define JSON_MAX_DEPTH 512

struct jbuf {
    char *data; /* NULL until the first write; NUL-terminated while not NULL */
    size_t len; /* bytes of text, excluding the NUL */
    size_t cap; /* bytes allocated at data */
    bool oom;   /* an allocation failed; writes are no-ops until jbuf_reset() */
};

/* Make *b an empty buffer that owns no memory.  Cannot fail. */
void jbuf_init(struct jbuf *b);

/*
 * Release the memory behind b->data and leave *b as jbuf_init() does, so it may be
 * reused or freed again.  Does not free b itself (the caller owns the struct).
 */
void jbuf_free(struct jbuf *b);

/* Empty the buffer (len = 0) and clear oom, keeping the allocated capacity. */
void jbuf_reset(struct jbuf *b);

/*
 * Shorten the text to len bytes; a len not below b->len changes nothing.  Used to
 * roll back a partly written value.  Does not touch oom.
 */
void jbuf_truncate(struct jbuf *b, size_t len);

/*
 * Append n bytes at p (which may contain NULs).  p must not point into b->data: the
 * buffer may move while it grows.  On allocation failure, or when the text would
 * exceed PTRDIFF_MAX bytes, sets b->oom and appends nothing.  A no-op while b->oom
 * is set.
 */
void jbuf_put(struct jbuf *b, const void *p, size_t n);

/* Append one byte.  Same failure rules as jbuf_put(). */
void jbuf_putc(struct jbuf *b, char c);

/* Append the C string s (without its NUL).  Same failure rules as jbuf_put(). */
void jbuf_puts(struct jbuf *b, const char *s);

/*
 * Append printf-formatted text.  Same failure rules as jbuf_put(); an output error
 * from vsnprintf() (an invalid multibyte conversion) also sets b->oom, since the
 * text would be incomplete either way.  Arguments must not point into b->data.
 */
void jbuf_printf(struct jbuf *b, const char *fmt, ...) JBUF_PRINTF(2, 3);

/*
 * Append s[0..n) as a JSON string literal, quotes included.  '"' and '\' are
 * escaped, as are control characters: \b \f \n \r \t by name, the others (and U+007F
 * is not one of them) as \u00XX.  Everything else, multibyte UTF-8 included, is
 * copied as it is.
 *
 * The caller is expected to pass valid UTF-8 (check with json_utf8_valid() and
 * report the error).  If it does not, each byte that does not start a valid UTF-8
 * sequence is written as \u00XX (the byte read as Latin-1), so the output is still
 * valid JSON, though it no longer spells the input.  Same failure rules as
 * jbuf_put().
 */
void jbuf_put_json_string(struct jbuf *b, const char *s, size_t n);

/*
 * Like jbuf_put_json_string() without the surrounding quotes: the escaped body of
 * a string, for callers that assemble one string from several pieces.  A multibyte
 * sequence must not be split across two calls (its bytes would be escaped one by
 * one as invalid).
 */
void jbuf_put_json_chars(struct jbuf *b, const char *s, size_t n);

/*
 * True when s[0..n) is well-formed UTF-8 (Unicode 15, table 3-7): no overlong
 * forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated
 * sequence at the end.  NUL bytes are valid (U+0000).  Never reads past s + n.
 */
bool json_utf8_valid(const char *s, size_t n);

/*
 * True when s[0..n) is exactly one RFC 8259 JSON number: -?(0|[1-9][0-9]*)
 * (.[0-9]+)?([eE][+-]?[0-9]+)? with no surrounding whitespace.
 */
bool json_number_valid(const char *s, size_t n);

/*
 * True when s[0..n) is one JSON text per RFC 8259: a single value of any type,
 * with optional whitespace (space, tab, LF, CR) around it and nothing else.
 * Strict: no trailing commas, no leading zeros, no NaN/Infinity, no comments, no
 * raw control characters in strings; escapes must be one of \" \\ \/ \b \f \n \r \t
 * \uXXXX, and a \u escape of a surrogate must be a high surrogate followed directly
 * by an escaped low surrogate.  Strings must be valid UTF-8.  Arrays and objects
 * may nest JSON_MAX_DEPTH deep; deeper is rejected.  Duplicate object keys are
 * allowed (RFC 8259 permits them).
 *
 * Iterative, with a fixed 64-byte nesting stack: no allocation, no recursion,
 * linear time.  Never reads past s + n (s needs no NUL terminator).
 */
bool json_valid(const char *s, size_t n);

#endif /* RELAY_JSONBUF_H */

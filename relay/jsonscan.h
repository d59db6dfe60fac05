/*
 * jsonscan.h -- walking the members of a JSON object without building a tree.
 *
 * The relay receives JSON it passes on mostly untouched: a logical message's
 * content, a headers column.  It needs a few members of one object, as the raw
 * bytes of their values, so that a payload reaches Kafka exactly as written.  This
 * scanner yields (key, raw value) pairs of a top-level object; it expects input
 * that json_valid() accepted and never reads outside it.  Pure: no allocation
 * except in json_string_unescape()'s output buffer.
 */
#ifndef RELAY_JSONSCAN_H
#define RELAY_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "event.h"

struct jbuf;

struct json_iter {
    const char *p;
    const char *end;
};

/*
 * Start iterating the object that is the whole of s (validated JSON).  Returns 0, or
 * -EINVAL when the value is not an object.
 */
int json_iter_object(struct json_iter *it, const char *s, size_t n);

/*
 * The next member: key is the raw text between the key's quotes (escapes not
 * undone), value the raw text of the value (a string keeps its quotes).  Returns 1
 * for a member, 0 at the end of the object.
 */
int json_iter_next(struct json_iter *it, struct ev_str *key, struct ev_str *value);

/* True when a raw value is a JSON string (starts with a quote). */
static inline bool json_raw_is_string(struct ev_str v)
{
    return v.len >= 2 && v.p[0] == '"';
}

/* True when raw text between quotes contains no escape sequence. */
bool json_raw_plain(struct ev_str raw);

/*
 * The text of a raw JSON string body (without its quotes): borrowed when it has no
 * escapes, otherwise unescaped (\uXXXX and surrogate pairs to UTF-8) onto the end of
 * out, in which case *text points into out and is valid until out changes.
 * Returns 0, or -ENOMEM when out could not grow.
 */
int json_string_unescape(struct ev_str raw, struct jbuf *out, struct ev_str *text);

#endif /* RELAY_JSONSCAN_H */

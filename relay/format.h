/*
 * format.h -- how an event becomes a message: topic, key, headers and value.
 *
 * The default rendering is the CloudEvents 1.0 Kafka protocol binding in binary
 * mode: the value is the outbox payload as it is, the key is the aggregate id, and
 * the event's attributes travel as "ce_"-prefixed headers (docs/events.md lists
 * them).  The topic comes from a template such as "outbox.event.{aggregatetype}"
 * whose placeholders name outbox columns.
 *
 * Pure: no I/O, no logging, and no heap allocation per event -- a rendered message
 * borrows from the event and from scratch space inside struct out_msg, and is valid
 * while both are.
 */
#ifndef RELAY_FORMAT_H
#define RELAY_FORMAT_H

#include <stddef.h>

#include "event.h"

/* Kafka's limit on a topic name is 249 bytes. */
#define FORMAT_TOPIC_MAX 249
#define FORMAT_MAX_HEADERS 16

struct msg_header {
    const char *name;
    const char *value;
    size_t len;
};

struct out_msg {
    char topic[FORMAT_TOPIC_MAX + 1];
    const char *key;
    size_t key_len;
    const char *value; /* NULL for a NULL payload */
    size_t value_len;
    struct msg_header headers[FORMAT_MAX_HEADERS];
    int nheaders;
    char scratch[256]; /* text of rendered header values: time, LSN, xid */
};

typedef struct formatter formatter;

/*
 * Create a formatter.  topic_template is "literal{column}literal..." (validated by
 * the config); source is the CloudEvents "source" attribute.  Both are copied.
 * Returns NULL with errstr set on a bad template or when out of memory.
 */
formatter *formatter_new(const char *topic_template, const char *source, char *errstr,
                         size_t errstr_size);

/* Free a formatter.  formatter_free(NULL) is a no-op. */
void formatter_free(formatter *f);

/*
 * Render ev into *out.  Returns 0; or -EINVAL when the topic cannot be made: a
 * placeholder names a column the table lacks, the column is NULL, or the result is
 * not a valid Kafka topic name (1-249 of [A-Za-z0-9._-]); errstr says which.
 */
int formatter_render(const formatter *f, const struct event *ev, struct out_msg *out,
                     char *errstr, size_t errstr_size);

/*
 * Write the RFC 3339 UTC form of a Unix time in microseconds
 * ("2026-11-23T17:41:43.123456Z") into buf (at least 32 bytes).  Returns the length.
 */
size_t format_rfc3339(int64_t unix_us, char *buf, size_t size);

#endif /* RELAY_FORMAT_H */

/*
 * format.h -- how an event becomes a message: topic, key, headers and value.
 *
 * Three renderings (docs/events.md shows each byte for byte):
 *   - CloudEvents 1.0 Kafka protocol binding, binary mode (the default): the value is
 *     the payload as it is, the key the aggregate id, and every attribute and
 *     extension a "ce_"-prefixed header;
 *   - CloudEvents structured mode: the value is an application/cloudevents+json
 *     envelope with the payload embedded as JSON under "data";
 *   - Debezium's outbox event router: value = payload, key = aggregate id, header "id".
 * In every mode configured header columns and a headers JSON object become extra
 * headers.  The topic comes from a template such as "outbox.event.{aggregatetype}".
 *
 * Pure: no I/O, no logging, and no heap allocation per event once warm -- a rendered
 * message borrows from the event, from scratch space inside struct out_msg and from
 * the formatter's buffers, and is valid until the next render.
 */
#ifndef RELAY_FORMAT_H
#define RELAY_FORMAT_H

#include <stddef.h>

#include "event.h"

/*
 * The longest destination name a template may yield (Kafka's limit on a topic name is
 * 249 bytes; a sink may take less: sink_caps.max_destination).
 */
#define FORMAT_TOPIC_MAX 249
#define FORMAT_MAX_HEADERS 64

/* The destination template of a sink that has none of its own (stdout). */
#define FORMAT_DEFAULT_DESTINATION "outbox.event.{aggregatetype}"

enum format_kind {
    FORMAT_CLOUDEVENTS = 0,
    FORMAT_CLOUDEVENTS_STRUCTURED = 1,
    FORMAT_DEBEZIUM = 2,
};

struct msg_header {
    const char *name;
    const char *value;
    size_t len;
};

struct out_msg {
    char topic[FORMAT_TOPIC_MAX + 1]; /* the destination: a topic, stream, subject ... */
    const char *id; /* the event id (not NUL-terminated), what a broker deduplicates on */
    size_t id_len;
    const char *key;
    size_t key_len;
    const char *value; /* NULL for a NULL payload */
    size_t value_len;
    struct msg_header headers[FORMAT_MAX_HEADERS];
    int nheaders;
    char scratch[256]; /* text of rendered header values: time, LSN, xid, timeline */
};

typedef struct formatter formatter;

/*
 * Create a formatter, in CloudEvents binary mode.  topic_template is
 * "literal{name}literal..." (validated by the config); source is the CloudEvents
 * "source" attribute.  Both are copied.  Returns NULL with errstr set on a bad
 * template or when out of memory.
 */
formatter *formatter_new(const char *topic_template, const char *source, char *errstr,
                         size_t errstr_size);

struct relay_config;

/*
 * The formatter the configuration describes: the selected sink's destination template
 * and format (struct sink_common), outbox.source (or "/<dbname>/<schema>.<table>"),
 * cdc.topic with the source prefix "/<dbname>".  Returns NULL with errstr set, as formatter_new().
 */
formatter *formatter_from_config(const struct relay_config *cfg, const char *dbname,
                                 char *errstr, size_t errstr_size);

/* Choose the rendering. */
void formatter_set_kind(formatter *f, enum format_kind kind);

/*
 * Set the topic template of table changes (default "cdc.{schema}.{table}"; also
 * {op}) and the prefix of their CloudEvents source, "/<database>" (a change's source
 * is "<prefix>/<schema>.<table>").  Both are copied.  Returns 0, or -EINVAL/-ENOMEM
 * with errstr set; the old settings stay.
 */
int formatter_set_cdc(formatter *f, const char *topic_template, const char *source_prefix,
                      char *errstr, size_t errstr_size);

/* Free a formatter.  formatter_free(NULL) is a no-op. */
void formatter_free(formatter *f);

/*
 * Render ev into *out.  A placeholder names an event field (aggregatetype, type,
 * version, id, aggregateid) or, for rows, any outbox column.  Returns 0;
 * -EDESTADDRREQ when the destination cannot be made (unknown placeholder, NULL value,
 * longer than FORMAT_TOPIC_MAX; whether the sink takes the name it makes is
 * sink_destination_check()'s to say); -EINVAL when there are more than
 * FORMAT_MAX_HEADERS headers, or a table change's value cannot be rendered (-EINVAL,
 * -EILSEQ), or its key column came as unchanged TOAST (-ENODATA); -ENOMEM; errstr
 * says which.  *out borrows from ev and from f until the next render.
 */
int formatter_render(formatter *f, const struct event *ev, struct out_msg *out, char *errstr,
                     size_t errstr_size);

/*
 * Write the RFC 3339 UTC form of a Unix time in microseconds
 * ("2026-11-23T17:41:43.123456Z") into buf (at least 32 bytes).  Returns the length.
 */
size_t format_rfc3339(int64_t unix_us, char *buf, size_t size);

#endif /* RELAY_FORMAT_H */

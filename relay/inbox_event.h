/*
 * inbox_event.h -- what a broker message means to the inbox: an event, or not one.
 *
 * The inbox relay (inbox.c) reads messages from a broker and writes each event into
 * the consuming service's inbox table.  This module decides, from the message alone,
 * whether it is an event and what its columns are: the id (the inbox's dedupe key),
 * type, source, subject, time, key, content type, the remaining headers as a JSON
 * object, and the data -- JSON text for a jsonb column, or bytes.  It understands
 *
 *   - CloudEvents in binary mode: the attributes in ce_* headers (Kafka's binding;
 *     "ce-" as HTTP and NATS write them is accepted too), the data in the value;
 *   - CloudEvents in structured mode: a JSON envelope in the value (content type
 *     application/cloudevents+json, or a JSON object with "specversion" and "id");
 *   - Debezium's outbox event router: the id in an "id" header, the payload in the
 *     value, the type in a "type" or "eventType" header when there is one.
 *
 * Anything else -- no id, an envelope missing a required attribute, a key that is
 * not UTF-8 -- is not an event, and the reason says why; the caller sets it aside.
 *
 * Pure: no I/O, no globals.  Every string of a parsed event is owned by it.
 */
#ifndef RELAY_INBOX_EVENT_H
#define RELAY_INBOX_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One message header: a NUL-terminated name, and a value (NULL: a header without one). */
struct inbox_header {
    const char *name;
    const void *value;
    size_t value_len;
};

/* A broker message, as the broker client hands it over; nothing here is kept. */
struct inbox_message {
    const void *key; /* NULL: no key */
    size_t key_len;
    const void *value; /* NULL: no value (a tombstone) */
    size_t value_len;
    const struct inbox_header *headers;
    size_t nheaders;
};

/* Which convention the message followed. */
enum inbox_mode {
    INBOX_CLOUDEVENTS_BINARY = 0,
    INBOX_CLOUDEVENTS_STRUCTURED = 1,
    INBOX_DEBEZIUM = 2,
};

/*
 * An event's columns, NUL-terminated strings.  NULL means SQL NULL: subject, time,
 * key and content_type may be NULL; id, type, source and headers never are.  Exactly
 * one of payload (JSON text) and payload_hex (bytea hex text, "\x...") is set, or
 * neither when the message had no data.
 */
struct inbox_event {
    enum inbox_mode mode;
    char *id;
    char *type;
    char *source;
    char *subject;
    char *time;
    char *key;
    char *content_type;
    char *headers; /* a JSON object of strings */
    char *payload;
    char *payload_hex;
};

/* Results of inbox_event_parse() other than 0. */
#define INBOX_NOT_AN_EVENT 1

/*
 * Read message m into ev (overwritten; free it with inbox_event_free() whatever the
 * result).  Returns 0 for an event; INBOX_NOT_AN_EVENT, with the reason in why (a
 * sentence, clipped to why_size), for a message that is not one; -ENOMEM.
 */
int inbox_event_parse(const struct inbox_message *m, struct inbox_event *ev, char *why,
                      size_t why_size);

/* Free what ev owns and zero it.  Safe on a zeroed or already freed event. */
void inbox_event_free(struct inbox_event *ev);

/*
 * The bytes p[0..n) as bytea hex text ("\x" and two lowercase digits a byte), NUL-
 * terminated, newly allocated; NULL when out of memory.
 */
char *inbox_hex(const void *p, size_t n);

struct jbuf;

/*
 * Append p[0..n) to b as a JSON string: its text when it is UTF-8 without NUL bytes
 * and hex is false, otherwise its bytea hex text.  Out of memory sets b->oom.
 */
void inbox_put_json_text(struct jbuf *b, const void *p, size_t n, bool hex);

/*
 * A Redis stream entry ID ("<ms>-<seq>") as the inbox's position, a bigint that keeps
 * their order: ms * 2^20 + seq.  Returns 0, or -1 when id is not an entry ID or does
 * not fit (ms from 2^43 -- the year 2248 for generated IDs -- or seq from 2^20, or
 * the very last pair, whose next position would overflow).
 */
int inbox_redis_id_encode(const char *id, int64_t *pos);

/* The entry ID of a position from inbox_redis_id_encode(), into buf (at least 48). */
void inbox_redis_id_decode(int64_t pos, char *buf, size_t size);

#endif /* RELAY_INBOX_EVENT_H */

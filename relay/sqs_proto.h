/*
 * sqs_proto.h -- the Amazon SQS sink's pure decisions (sqs_proto.c): rendering an
 * event as a SendMessageBatch entry, reading SQS's answers, classifying its errors.
 * Only sink_sqs.c and the unit tests use it; docs/sinks/sqs.md states the
 * rules in prose.
 */
#ifndef RELAY_SQS_PROTO_H
#define RELAY_SQS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "jsonbuf.h"

/* SQS's limits (SendMessageBatch, message attributes, FIFO ids). */
#define SQS_MAX_ENTRIES 10
#define SQS_MAX_ATTRIBUTES 10
#define SQS_MAX_ID 128
#define SQS_MAX_ATTRIBUTE_NAME 256
/* The FIFO group of events that have no key (a table change without a key). */
#define SQS_NO_KEY_GROUP "outbox-relay.no-key"
/* The attribute that carries every header when they cannot go one per attribute. */
#define SQS_PACKED_ATTRIBUTE "outbox-headers"

/*
 * Append m as a SendMessageBatch entry without its "Id" -- the text that follows
 * {"Id":"N" -- to b, and set *size to what SQS counts against its limits (body and
 * attribute names, types and values).  A destination (m->topic) ending in ".fifo"
 * gets MessageGroupId (the key; SQS_NO_KEY_GROUP without one) and
 * MessageDeduplicationId (the event id), each as it is when SQS takes it (1 to 128
 * of '!' .. '~') and otherwise "sha256-" and the hex SHA-256 of its bytes.  Headers
 * become String attributes when at most SQS_MAX_ATTRIBUTES, with names SQS takes,
 * none repeated and no value empty or NULL; otherwise all go, in order, as one
 * attribute SQS_PACKED_ATTRIBUTE, a JSON array of [name, value-or-null].  A NULL or
 * empty value is sent as the body "null".
 * Returns 0; -EMSGSIZE when *size would exceed max_size, -EACCES when the body is not
 * UTF-8 (both permanent), -ENOMEM; errstr says which.  b may hold a partial entry
 * after an error.
 */
int sqs_render_entry(const struct out_msg *m, int64_t max_size, struct jbuf *b, size_t *size,
                     char *errstr, size_t errstr_size);

/* What a SendMessageBatch answer says of one entry. */
struct sqs_entry_result {
    int state; /* 0: nothing said of it; 1: Successful; 2: Failed */
    bool sender_fault;
    char code[64];
    char message[400];
};

/*
 * Read a SendMessageBatch answer (JSON) into results[0..n), indexed by the entries'
 * Ids "0" .. "n-1" (zeroed first).  Returns 0, or -1 when body is not such an answer.
 */
int sqs_parse_batch(const char *body, size_t len, struct sqs_entry_result *results, size_t n);

/*
 * The error an answer names, into code and message ("" when none): the JSON
 * protocol's {"__type": "...#Code", "message": ...}, an XML <Code>/<Message>, or the
 * x-amzn-query-error header's "Code;Sender" (query_error, may be NULL).  body is
 * NUL-terminated at len (or NULL).  The code
 * keeps its last part ("com.amazonaws.sqs#QueueDoesNotExist" is "QueueDoesNotExist").
 */
void sqs_parse_error(const char *body, size_t len, const char *query_error, char *code,
                     size_t code_size, char *message, size_t message_size);

/* Whether an error code says the credentials are refused (the relay stops). */
bool sqs_auth_code(const char *code);

/* Whether an error code is one a later attempt may cure (throttling, KMS, no queue). */
bool sqs_transient_code(const char *code);

/* Whether a refusal is for the message's size (dead-lettered without its value). */
bool sqs_size_code(const char *code, const char *message);

/*
 * The region of an AWS host, "sqs.<region>.amazonaws.com[.cn]" or
 * "<region>.queue.amazonaws.com", into out.  Returns false when host is neither.
 */
bool sqs_region_of_host(const char *host, char *out, size_t size);

/* The text of member name of a GetQueueAttributes answer's "Attributes", or "". */
void sqs_queue_attribute(const char *body, size_t len, const char *name, char *out,
                         size_t size);

#endif /* RELAY_SQS_PROTO_H */

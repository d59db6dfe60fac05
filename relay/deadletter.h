/*
 * deadletter.h -- what a poison event is, and what its dead-letter record carries.
 *
 * A poison event is one the relay cannot publish however often it tries: a row that
 * cannot become an event (a NULL id or key, headers that are not a JSON object,
 * invalid UTF-8), a logical message that is not an event, a destination template
 * that yields no name the sink accepts, an event larger than the sink takes, or a
 * broker's permanent rejection (authorization, an invalid record).  Retrying such an
 * event would stop every event behind it, so the pipeline sets it aside: with
 * pipeline.on_bad_event "dead-letter" it writes a dead-letter record and moves on;
 * with "stop" it stops without confirming past it (docs/events.md, "Bad input").
 *
 * A dead-letter record is the event as it was going to be sent -- its destination,
 * key, headers and value -- plus why it was not: the reason (one of enum dl_reason,
 * also the label of outbox_relay_dead_letter_total), the error's code and message,
 * the event id and its source position (commit LSN, xid, index), the time and the
 * relay's version.  When the value is what was too large it is left out and its size
 * recorded instead; for a row that could not become an event the value is the row
 * itself as JSON, so that an operator can mend it and insert it again.
 *
 * The record goes to one of two destinations: a destination on the sink (the sink's
 * dead-letter key, kafka.dlq_topic), where it is a message with dlq_* headers added
 * to the original's, or a table in the source database (dead_letter.table,
 * sql/006_dead_letter.sql), one row per record.  This module renders both; it is
 * pure: no I/O, no logging, no allocation beyond the caller's buffers.
 */
#ifndef RELAY_DEADLETTER_H
#define RELAY_DEADLETTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "lsn.h"

/* Why an event was set aside; each is a value of the metric's "reason" label. */
enum dl_reason {
    DL_BAD_ROW = 0,         /* "bad-row": the row cannot become an event */
    DL_BAD_MESSAGE = 1,     /* "bad-message": a logical message that is not an event */
    DL_BAD_DESTINATION = 2, /* "bad-destination": no destination name the sink accepts */
    DL_TOO_LARGE = 3,       /* "too-large": larger than the sink or broker takes */
    DL_REJECTED = 4,        /* "rejected": the broker refused it for good */
};
#define DL_NREASONS 5

/* The reason's name: "bad-row", ... ("unknown" for a value out of range). */
const char *dl_reason_name(enum dl_reason r);

/* Everything a dead-letter record says.  Strings are borrowed, not NUL-terminated. */
struct dl_record {
    enum dl_reason reason;
    const char *code;        /* the error's short name: "MSG_SIZE_TOO_LARGE", "EINVAL" */
    const char *error;       /* one line */
    const char *destination; /* where the event was going; "" when it could not be named */
    const char *event_id;    /* "" when the row had none */
    size_t event_id_len;
    const char *key;         /* NULL: no key */
    size_t key_len;
    const char *value;       /* NULL: no value (or left out: value_omitted) */
    size_t value_len;
    bool value_omitted;      /* the value was what was too large: value_len is its size */
    bool value_is_row;       /* the value is the source row as JSON, not the event */
    const struct msg_header *headers; /* the event's own headers; may be NULL */
    int nheaders;
    lsn_t commit_lsn;        /* LSN_INVALID (0) when the source has none (polling) */
    uint32_t xid;
    uint32_t index;          /* replication: index in the transaction; polling: the row's seq */
    int64_t time_us;         /* when it was set aside, microseconds since the Unix epoch */
    const char *version;     /* the relay's version */
};

/*
 * Render rec as a message for the dead-letter destination dest on the sink: the
 * event's key, its value (none when omitted), its headers, then these:
 *   dlq_original_topic, dlq_reason, dlq_error, dlq_error_code, dlq_time, dlq_event_id,
 *   dlq_xid, dlq_index, dlq_relay_version; dlq_commit_lsn when known;
 *   dlq_value_omitted_size when the value was left out; dlq_value "row" when the
 *   value is the source row.
 * out->scratch holds the rendered numbers, so *out borrows from rec and from itself
 * until out is reused.  Returns 0, or -E2BIG when the headers do not fit
 * (FORMAT_MAX_HEADERS); then the event's own headers are dropped and the dlq_*
 * headers kept, and -E2BIG still says so.
 */
int dl_render_message(const struct dl_record *rec, const char *dest, struct out_msg *out);

/* The parameters of the table record, as text, in the order dl_table_sql() uses. */
#define DL_TABLE_PARAMS 15
struct dl_params {
    const char *values[DL_TABLE_PARAMS];
    int lengths[DL_TABLE_PARAMS];
    int formats[DL_TABLE_PARAMS]; /* 1 for the binary ones (key, value), 0 for text */
    char text[6][48];             /* rendered numbers and times */
};

/*
 * The parameters of rec for the INSERT of dl_table_sql(), source naming where it came
 * from (the slot, or the outbox table in polling mode; borrowed).  headers_json is
 * the event's headers as a JSON object (the caller renders it; NULL: none).  Text
 * parameters go as C strings: rec->event_id, code, error, destination and version
 * must be NUL-terminated here (key and value go as binary, with their lengths).  *p
 * borrows from rec, source and headers_json.  Cannot fail.
 */
void dl_table_params(const struct dl_record *rec, const char *source, const char *headers_json,
                     struct dl_params *p);

/*
 * The INSERT statement into the table whose quoted, schema-qualified name is qname,
 * written into sql (at least 1024 bytes).  ON CONFLICT on the record's identity
 * (source, commit_lsn, xid, event_index) does nothing, so a record written again
 * after a crash is not doubled.  Returns the length, or -ENAMETOOLONG.
 */
int dl_table_sql(const char *qname, char *sql, size_t size);

/*
 * Render headers as a JSON object of strings into buf (jsonbuf.h); a header whose
 * value is not valid UTF-8 is written with its bytes as \u00XX escapes of Latin-1.
 */
struct jbuf;
void dl_headers_json(const struct msg_header *h, int n, struct jbuf *buf);

#endif /* RELAY_DEADLETTER_H */

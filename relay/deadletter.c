/*
 * deadletter.c -- dead-letter records rendered for a destination on the sink (a
 * message with dlq_* headers) and for the dead-letter table (an INSERT's parameters).
 *
 * Both renderings say the same things in the same words, so that a record read from
 * the topic and one read from the table can be compared field by field; the header
 * and column names are listed in docs/events.md ("Bad input").  Pure.
 */
#include "deadletter.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "jsonbuf.h"

static const char *const reason_names[DL_NREASONS] = {
    [DL_BAD_ROW] = "bad-row",
    [DL_BAD_MESSAGE] = "bad-message",
    [DL_BAD_DESTINATION] = "bad-destination",
    [DL_TOO_LARGE] = "too-large",
    [DL_REJECTED] = "rejected",
};

const char *dl_reason_name(enum dl_reason r)
{
    return (unsigned)r < DL_NREASONS ? reason_names[r] : "unknown";
}

/* Append one header; false when the message has no room left. */
static bool put_header(struct out_msg *out, const char *name, const char *value, size_t len)
{
    if (out->nheaders >= FORMAT_MAX_HEADERS)
        return false;
    out->headers[out->nheaders++] = (struct msg_header){name, value, len};
    return true;
}

int dl_render_message(const struct dl_record *rec, const char *dest, struct out_msg *out)
{
    /* scratch: time, lsn, xid, index, omitted size; each NUL-terminated. */
    char *s = out->scratch, *end = out->scratch + sizeof(out->scratch);
    const char *time_s, *lsn_s = NULL, *xid_s, *index_s, *size_s = NULL;
    int own, rc = 0;

    snprintf(out->topic, sizeof(out->topic), "%s", dest);
    out->key = rec->key;
    out->key_len = rec->key_len;
    out->value = rec->value_omitted ? NULL : rec->value;
    out->value_len = rec->value_omitted ? 0 : rec->value_len;
    out->id = rec->event_id;
    out->id_len = rec->event_id_len;

    time_s = s;
    s += format_rfc3339(rec->time_us, s, (size_t)(end - s)) + 1;
    if (rec->commit_lsn != LSN_INVALID) {
        lsn_s = s;
        s += snprintf(s, (size_t)(end - s), LSN_FMT, LSN_ARGS(rec->commit_lsn)) + 1;
    }
    xid_s = s;
    s += snprintf(s, (size_t)(end - s), "%" PRIu32, rec->xid) + 1;
    index_s = s;
    s += snprintf(s, (size_t)(end - s), "%" PRIu32, rec->index) + 1;
    if (rec->value_omitted) {
        size_s = s;
        snprintf(s, (size_t)(end - s), "%zu", rec->value_len);
    }

    /* The event's own headers first, then ours; ours always fit (drop the event's). */
    own = 13;
    out->nheaders = 0;
    if (rec->nheaders > FORMAT_MAX_HEADERS - own) {
        rc = -E2BIG;
    } else {
        for (int i = 0; i < rec->nheaders; i++)
            put_header(out, rec->headers[i].name, rec->headers[i].value, rec->headers[i].len);
    }
    put_header(out, "dlq_original_topic", rec->destination, strlen(rec->destination));
    put_header(out, "dlq_reason", dl_reason_name(rec->reason),
               strlen(dl_reason_name(rec->reason)));
    put_header(out, "dlq_error", rec->error, strlen(rec->error));
    put_header(out, "dlq_error_code", rec->code, strlen(rec->code));
    put_header(out, "dlq_time", time_s, strlen(time_s));
    put_header(out, "dlq_event_id", rec->event_id, rec->event_id_len);
    if (lsn_s)
        put_header(out, "dlq_commit_lsn", lsn_s, strlen(lsn_s));
    put_header(out, "dlq_xid", xid_s, strlen(xid_s));
    put_header(out, "dlq_index", index_s, strlen(index_s));
    put_header(out, "dlq_relay_version", rec->version, strlen(rec->version));
    if (size_s)
        put_header(out, "dlq_value_omitted_size", size_s, strlen(size_s));
    if (rec->value_is_row)
        put_header(out, "dlq_value", "row", 3);
    return rc;
}

void dl_table_params(const struct dl_record *rec, const char *source, const char *headers_json,
                     struct dl_params *p)
{
    int i = 0;

    memset(p, 0, sizeof(*p));
#define TEXT(v) (p->values[i] = (v), p->lengths[i] = 0, p->formats[i] = 0, i++)
#define BIN(v, n) (p->values[i] = (v), p->lengths[i] = (int)(n), p->formats[i] = 1, i++)
    TEXT(source);                                                       /* $1 source */
    if (rec->commit_lsn != LSN_INVALID) {                               /* $2 commit_lsn */
        snprintf(p->text[0], sizeof(p->text[0]), LSN_FMT, LSN_ARGS(rec->commit_lsn));
        TEXT(p->text[0]);
    } else {
        TEXT("0/0");
    }
    snprintf(p->text[1], sizeof(p->text[1]), "%" PRIu32, rec->xid);    /* $3 xid */
    TEXT(p->text[1]);
    snprintf(p->text[2], sizeof(p->text[2]), "%" PRIu32, rec->index);  /* $4 event_index */
    TEXT(p->text[2]);
    /* $5 event_id: text, so it must be a C string; the caller passes a copy. */
    TEXT(rec->event_id_len ? rec->event_id : NULL);
    TEXT(rec->destination[0] ? rec->destination : NULL);               /* $6 destination */
    TEXT(dl_reason_name(rec->reason));                                 /* $7 reason */
    TEXT(rec->code);                                                   /* $8 error_code */
    TEXT(rec->error);                                                  /* $9 error */
    if (rec->key)                                                      /* $10 key */
        BIN(rec->key, rec->key_len);
    else
        TEXT(NULL);
    TEXT(headers_json);                                                /* $11 headers */
    if (rec->value && !rec->value_omitted)                             /* $12 value */
        BIN(rec->value, rec->value_len);
    else
        TEXT(NULL);
    if (rec->value_omitted) {                                          /* $13 omitted size */
        snprintf(p->text[3], sizeof(p->text[3]), "%zu", rec->value_len);
        TEXT(p->text[3]);
    } else {
        TEXT(NULL);
    }
    TEXT(rec->value_is_row ? "true" : "false");                        /* $14 value_is_row */
    TEXT(rec->version);                                                /* $15 relay_version */
#undef TEXT
#undef BIN
}

int dl_table_sql(const char *qname, char *sql, size_t size)
{
    int n = snprintf(sql, size,
                     "INSERT INTO %s (source, commit_lsn, xid, event_index, event_id, "
                     "destination, reason, error_code, error, key, headers, value, "
                     "value_omitted_size, value_is_row, relay_version) VALUES ($1, "
                     "$2::pg_lsn, $3::int8, $4::int8, $5, $6, $7, $8, $9, $10::bytea, "
                     "$11::jsonb, $12::bytea, $13::int8, $14::boolean, $15) "
                     "ON CONFLICT (source, commit_lsn, xid, event_index) DO NOTHING",
                     qname);

    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : n;
}

void dl_headers_json(const struct msg_header *h, int n, struct jbuf *buf)
{
    jbuf_putc(buf, '{');
    for (int i = 0; i < n; i++) {
        if (i)
            jbuf_putc(buf, ',');
        jbuf_put_json_string(buf, h[i].name, strlen(h[i].name));
        jbuf_putc(buf, ':');
        jbuf_put_json_string(buf, h[i].value ? h[i].value : "", h[i].value ? h[i].len : 0);
    }
    jbuf_putc(buf, '}');
}

/*
 * event.h -- the relay's event model: what a committed outbox row becomes.
 *
 * The decoder says "relation 16385, insert, these column values"; the event model
 * says "event 1f0e... of type OrderCreated about aggregate order-42, committed at
 * 0/16B3748 in transaction 731 as its 3rd row".  It keeps the relation cache
 * (pgoutput sends a relation's description once, before its first row, and again
 * when it changes) and knows which columns of the outbox table mean what.
 *
 * Pure: no I/O, no logging.  An event borrows its strings from the decoded tuple and
 * the relation cache, so it lives only until the next decoded message; sinks copy
 * what they keep.
 */
#ifndef RELAY_EVENT_H
#define RELAY_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"
#include "pgoutput.h"

/* A borrowed, not NUL-terminated string; p == NULL means SQL NULL. */
struct ev_str {
    const char *p;
    size_t len;
};

struct rel_col {
    char *name;
    pgo_oid_t type_oid;
    int32_t type_mod;
    uint8_t flags;
};

/* Most outbox columns copied into headers (outbox.header_columns). */
#define EVENT_MAX_EXTRA 8

/* The outbox columns the relay reads; -1 when the table lacks the column. */
struct outbox_cols {
    int id;
    int aggregatetype;
    int aggregateid; /* the key column: outbox.key_column, "aggregateid" by default */
    int type;
    int payload;
    int version;     /* optional: outbox.version_column */
    int headers;     /* optional: outbox.headers_column, a JSON object */
    int extra[EVENT_MAX_EXTRA]; /* outbox.header_columns, in configured order */
    int nextra;
    bool payload_is_json; /* json or jsonb: the server already validated it */
};

/* A relation as the last Relation message described it.  Owned by the cache. */
struct rel_desc {
    pgo_oid_t relid;
    char *nspname;
    char *relname;
    char replident;
    uint16_t ncols;
    struct rel_col *cols;
    bool is_outbox;
    bool is_cdc;     /* listed in cdc.tables: every change becomes an event */
    struct outbox_cols outbox;
};

/* Where an event came from: enough to find it again and to deduplicate. */
struct event_pos {
    const char *system_id;  /* the server's system identifier (IDENTIFY_SYSTEM) */
    uint32_t timeline;      /* the server's timeline */
    lsn_t commit_lsn;       /* LSN of the commit record of its transaction */
    pgo_xid_t xid;          /* transaction id */
    uint32_t index;         /* 0-based position of the event within its transaction */
    int64_t commit_time_us; /* commit time, microseconds since the Unix epoch */
};

/* An extra header: an outbox column copied into a header of the same name. */
struct event_extra {
    const char *name;
    struct ev_str value; /* p == NULL: the column is NULL, no header */
};

/* A table change (cdc.tables); op is 0 for outbox events. */
struct event_change {
    char op;                          /* 'c' insert, 'u' update, 'd' delete, 't' truncate */
    const struct pgo_tuple *newtuple; /* c, u */
    const struct pgo_tuple *oldtuple; /* u, d: the old row or its key, when sent */
    char old_kind;                    /* 'K' key columns only, 'O' whole row, 0 none */
};

struct event {
    struct event_change change;
    struct ev_str id;
    struct ev_str type;
    struct ev_str aggregatetype;
    struct ev_str aggregateid; /* the key */
    struct ev_str payload;     /* JSON text; p == NULL for a NULL payload */
    struct ev_str version;     /* schema version of payload: "1" when not given */
    struct ev_str headers;     /* a JSON object of extra headers, or p == NULL */
    struct event_extra extra[EVENT_MAX_EXTRA];
    int nextra;
    struct event_pos pos;
    const struct rel_desc *rel;    /* the outbox table; NULL for a logical message */
    const struct pgo_tuple *tuple; /* the row, for routing by any column; or NULL */
};

/*
 * Which columns of the outbox table mean what, beyond the five Debezium ones.  All
 * names are borrowed and must outlive the cache; NULL means "not used".
 */
struct outbox_spec {
    const char *key_column;     /* default "aggregateid" */
    const char *version_column; /* optional */
    const char *headers_column; /* optional */
    char *const *header_columns;
    size_t nheader_columns;
};

typedef struct relcache relcache;

/*
 * Create a relation cache that recognises schema.table as the outbox table.  The
 * names are copied.  Returns NULL when out of memory.
 */
relcache *relcache_new(const char *outbox_schema, const char *outbox_table);

/*
 * Set which outbox columns carry the key, the schema version and extra headers.
 * spec and its strings are borrowed (they live in the configuration).  Returns 0, or
 * -EINVAL when more than EVENT_MAX_EXTRA header columns are named.  Takes effect for
 * Relation messages that arrive afterwards.
 */
int relcache_set_outbox_spec(relcache *rc, const struct outbox_spec *spec, char *errstr,
                             size_t errstr_size);

struct relay_config;

/*
 * relcache_new() and relcache_set_outbox_spec() from the configuration's outbox.*
 * keys; the configuration is borrowed and must outlive the cache.  Returns NULL with
 * errstr set when out of memory or when the spec is refused.
 */
relcache *relcache_from_config(const struct relay_config *cfg, char *errstr,
                               size_t errstr_size);

/* Free the cache and every description in it.  relcache_free(NULL) is a no-op. */
void relcache_free(relcache *rc);

/*
 * Store (or replace) the description of r->relid, copying everything out of the
 * decoded message.  Returns 0; -ENOMEM; or -EINVAL when r is the outbox table but
 * lacks one of the columns id, aggregatetype, the key column, type, payload, or a
 * configured header column (errstr names it).  On error the cache keeps its
 * previous description of the relation.
 */
int relcache_update(relcache *rc, const struct pgo_relation *r, char *errstr, size_t errstr_size);

/*
 * Name the tables whose changes are events (cdc.tables), and their primary keys:
 * keys[i] lists table i's key columns, comma separated; "" or NULL keeps the replica
 * identity columns pgoutput marks (which, under REPLICA IDENTITY FULL, are all of
 * them).  The arrays are borrowed and must outlive the cache; takes effect for
 * Relation messages that arrive afterwards.
 */
void relcache_set_cdc_tables(relcache *rc, const char *const *schemas,
                             const char *const *tables, char *const *keys, size_t n);

/* The description of relid, or NULL when no Relation message described it yet. */
const struct rel_desc *relcache_get(const relcache *rc, pgo_oid_t relid);

/* Index of the column called name in rel, or -1. */
int rel_column_index(const struct rel_desc *rel, const char *name);

/*
 * Build the event for an inserted outbox row.  rel must be the outbox table.
 *
 * Returns 0; or -EINVAL when the row cannot become an event: a tuple whose column
 * count differs from the relation's; a NULL id, type or key; a column sent as
 * unchanged TOAST; a text payload that is not valid JSON; a headers column that is
 * not a JSON object; text that is not valid UTF-8.  errstr then says which column,
 * and the caller reports it with the row's id (out->id, when known) and position.
 * *out borrows from rel and tuple.
 */
int event_from_outbox_row(const struct rel_desc *rel, const struct pgo_tuple *tuple,
                          const struct event_pos *pos, struct event *out, char *errstr,
                          size_t errstr_size);

/*
 * Build the event for a change of a cdc table: op 'c' (newtuple), 'u' (newtuple, and
 * oldtuple when the replica identity sent one), 'd' (oldtuple) or 't' (no tuple).
 * The id is made from the position by the formatter ("<commit LSN>:<index>"), so a
 * redelivered change has the same id.  Returns 0, or -EINVAL when a tuple's column
 * count does not match the relation.  *out borrows from rel and the tuples.
 */
int event_from_change(const struct rel_desc *rel, char op, const struct pgo_tuple *newtuple,
                      char old_kind, const struct pgo_tuple *oldtuple,
                      const struct event_pos *pos, struct event *out, char *errstr,
                      size_t errstr_size);

/*
 * Build the event for a table-less outbox message, emitted with
 * pg_logical_emit_message(true, prefix, content): content is a JSON object with
 * string members "id", "aggregatetype", "aggregateid", "type", any JSON "payload",
 * and optionally "version" (string or number) and "headers" (object).  The event is
 * the one an outbox row with those values would make.
 *
 * Returns 0, or -EINVAL with errstr set when content is not such an object.  *out
 * borrows from content; string members with escape sequences are unescaped into
 * scratch (cleared by the next call), which must outlive *out.
 */
struct jbuf;
int event_from_message(const char *content, size_t len, const struct event_pos *pos,
                       struct jbuf *scratch, struct event *out, char *errstr,
                       size_t errstr_size);

#endif /* RELAY_EVENT_H */

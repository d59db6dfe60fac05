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

/* The outbox columns the relay reads; -1 when the table lacks the column. */
struct outbox_cols {
    int id;
    int aggregatetype;
    int aggregateid;
    int type;
    int payload;
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
    struct outbox_cols outbox;
};

/* Where an event came from: enough to find it again and to deduplicate. */
struct event_pos {
    lsn_t commit_lsn;       /* LSN of the commit record of its transaction */
    pgo_xid_t xid;          /* transaction id */
    uint32_t index;         /* 0-based position of the event within its transaction */
    int64_t commit_time_us; /* commit time, microseconds since the Unix epoch */
};

struct event {
    struct ev_str id;
    struct ev_str type;
    struct ev_str aggregatetype;
    struct ev_str aggregateid; /* the key */
    struct ev_str payload;     /* JSON text; p == NULL for a NULL payload */
    struct event_pos pos;
    const struct rel_desc *rel;    /* the outbox table */
    const struct pgo_tuple *tuple; /* the row, for routing by any column */
};

typedef struct relcache relcache;

/*
 * Create a relation cache that recognises schema.table as the outbox table.  The
 * names are copied.  Returns NULL when out of memory.
 */
relcache *relcache_new(const char *outbox_schema, const char *outbox_table);

/* Free the cache and every description in it.  relcache_free(NULL) is a no-op. */
void relcache_free(relcache *rc);

/*
 * Store (or replace) the description of r->relid, copying everything out of the
 * decoded message.  Returns 0; -ENOMEM; or -EINVAL when r is the outbox table but
 * lacks one of the columns id, aggregatetype, aggregateid, type, payload (errstr
 * names it).  On error the cache keeps its previous description of the relation.
 */
int relcache_update(relcache *rc, const struct pgo_relation *r, char *errstr, size_t errstr_size);

/* The description of relid, or NULL when no Relation message described it yet. */
const struct rel_desc *relcache_get(const relcache *rc, pgo_oid_t relid);

/* Index of the column called name in rel, or -1. */
int rel_column_index(const struct rel_desc *rel, const char *name);

/*
 * Build the event for an inserted outbox row.  rel must be the outbox table.
 *
 * Returns 0; or -EINVAL when the row cannot become an event (a tuple whose column
 * count differs from the relation's, or a NULL id, type or aggregateid, or a
 * column sent as unchanged TOAST); errstr then says which column, and the caller
 * reports it with the row's id and position.  *out borrows from rel and tuple.
 */
int event_from_outbox_row(const struct rel_desc *rel, const struct pgo_tuple *tuple,
                          const struct event_pos *pos, struct event *out, char *errstr,
                          size_t errstr_size);

#endif /* RELAY_EVENT_H */

/*
 * inflight.h -- what the pipeline remembers of each message a sink holds.
 *
 * A sink carries one 64-bit tag per message and hands it back in the message's one
 * report.  The tag names an entry here: the message's transaction (for the
 * checkpoint tracker), the bytes it costs while held (for pipeline.max_inflight_bytes),
 * and what a dead-letter record would need if the broker refuses it -- the event id
 * and its source position.  So a sink needs to keep nothing of the relay's but the
 * tag, and the pipeline, not each sink, counts what is in flight.
 *
 * Entries live in one array that only grows, to the most messages ever held at once,
 * and are reused through a free list: no allocation per message once warm (an id
 * longer than INFLIGHT_ID_INLINE bytes is the exception).  A tag is the entry's index
 * and a generation number; inflight_clear() (the pipeline is rebuilt) bumps the
 * generation, so a late report for a forgotten message names no entry.  Pure.
 */
#ifndef RELAY_INFLIGHT_H
#define RELAY_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deadletter.h"
#include "lsn.h"

#define INFLIGHT_ID_INLINE 48
#define INFLIGHT_NONE UINT64_MAX

struct inflight_msg {
    uint64_t txn_seq;      /* the checkpoint tracker's transaction */
    int64_t bytes;         /* what it costs while the sink holds it; -1: entry free */
    lsn_t commit_lsn;      /* source position, for a dead-letter record */
    uint32_t xid;
    uint32_t index;
    int64_t commit_time_us;
    bool dead_letter;      /* this is a dead-letter record, not the event itself */
    enum dl_reason reason; /* with dead_letter: why */
    uint32_t next_free;
    char *id_long;         /* the id when longer than the inline buffer */
    char id[INFLIGHT_ID_INLINE]; /* NUL-terminated (an id with a NUL byte is cut there) */
};

typedef struct inflight_table inflight_table;

/* A new, empty table, or NULL when out of memory. */
inflight_table *inflight_new(void);

/* Free the table and every entry.  inflight_free(NULL) is a no-op. */
void inflight_free(inflight_table *t);

/*
 * Remember a message: its transaction, its cost, its event id (id[0..id_len), copied)
 * and position.  Returns its tag, or INFLIGHT_NONE when out of memory.
 */
uint64_t inflight_add(inflight_table *t, uint64_t txn_seq, int64_t bytes, const char *id,
                      size_t id_len, lsn_t commit_lsn, uint32_t xid, uint32_t index,
                      int64_t commit_time_us);

/*
 * The entry tag names, or NULL when it names none (never handed out, removed, or from
 * before the last inflight_clear()).  Valid until the entry is removed or the table
 * cleared; the caller may change its bytes (through inflight_set_bytes()), dead_letter
 * and reason.
 */
struct inflight_msg *inflight_get(inflight_table *t, uint64_t tag);

/* The id of an entry, NUL-terminated. */
const char *inflight_id(const struct inflight_msg *m);

/* Change the cost of an entry (a dead-letter record replaced the event). */
void inflight_set_bytes(inflight_table *t, struct inflight_msg *m, int64_t bytes);

/* Forget the entry tag names; a tag that names none is ignored. */
void inflight_remove(inflight_table *t, uint64_t tag);

/* Forget every entry; tags handed out before name nothing from now on. */
void inflight_clear(inflight_table *t);

/* Entries held, and the sum of their bytes. */
uint64_t inflight_count(const inflight_table *t);
int64_t inflight_bytes(const inflight_table *t);

#endif /* RELAY_INFLIGHT_H */

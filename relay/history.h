/*
 * history.h -- the history check as pure decisions: does the server, its slot and the
 * relay's state record tell one story?
 *
 * The relay records, before it confirms a position to its slot, the server's system
 * identifier and timeline and the position, in the state table (sql/005_relay_state.sql).
 * At every start it compares the record with what the server says.  A different
 * system or timeline, a server whose WAL ends before the record, a slot ahead of the
 * record or missing although the record names it: each means events would be lost or
 * published again out of nowhere, and the relay refuses to run (docs/guarantees.md,
 * "The history check").  `outbox-relay run` (replication.c) and `outbox-relay check`
 * (status.c) both ask these functions, so they agree, word for word.
 *
 * The one statement that writes the record is here too, so the first record, the
 * catch-up after a shutdown and every record before a confirmation are the same SQL.
 *
 * Pure: no I/O, no logging.
 */
#ifndef RELAY_HISTORY_H
#define RELAY_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

/* What the server, the slot and the record say. */
struct history_facts {
    const char *slot;           /* postgres.slot */
    const char *state_schema;   /* postgres.state_table, for messages */
    const char *state_table;
    const char *system_id;      /* the server's */
    uint32_t timeline;
    lsn_t server_lsn;           /* the server's WAL end; LSN_INVALID: unknown */
    bool slot_exists;
    lsn_t slot_confirmed;       /* the slot's confirmed_flush_lsn */
    bool state_found;           /* the record has a row for the slot */
    const char *state_system_id;
    uint32_t state_timeline;
    lsn_t state_lsn;
    lsn_t unrecorded;           /* the highest position this process confirmed without a
                                   record (the server was shutting down); LSN_INVALID: none */
};

enum history_verdict {
    HISTORY_OK = 0,          /* one story: go on */
    HISTORY_RECORD_FIRST,    /* no record yet: record the slot's position */
    HISTORY_RECORD_CAUGHT_UP, /* the slot is ahead by what we confirmed ourselves while the
                                server shut down: record the slot's position */
    HISTORY_SLOT_BEHIND,     /* the slot fell back (the server restarted before saving it):
                                start from the record */
    HISTORY_REFUSE,          /* events would be lost or invented: refuse to run */
};

/*
 * The record's system and timeline against the server's, before the slot is even
 * looked at (on a promoted standby the slot is missing too, and "failed over" is the
 * better explanation).  Returns HISTORY_REFUSE with msg set, or HISTORY_OK (also
 * when there is no record).
 */
enum history_verdict history_identity(const struct history_facts *f, char *msg, size_t size);

/*
 * The whole check: identity, then the slot and the WAL end against the record.  msg
 * says why for HISTORY_REFUSE (how to accept the server's position included), and
 * what is done for HISTORY_SLOT_BEHIND and HISTORY_RECORD_CAUGHT_UP; "" otherwise.
 */
enum history_verdict history_check(const struct history_facts *f, char *msg, size_t size);

/*
 * The statement that records a position for a slot, written into sql: an INSERT into
 * qtable (quoted, qualified) of the four values given as SQL literals (slot, system
 * identifier, timeline and position: the caller quotes them; literals, not
 * parameters, because a walsender connection speaks only the simple protocol), or an
 * update that moves an existing row forward -- never back: with two relays on one
 * slot, a late write of the one that lost the slot must not undo the other's.  It
 * returns pg_current_wal_lsn() (the slot-lag metric reads it).  Returns the length,
 * or -1 when sql is too small.
 */
int history_record_sql(char *sql, size_t size, const char *qtable, const char *slot_lit,
                       const char *system_lit, uint32_t timeline, lsn_t lsn);

#endif /* RELAY_HISTORY_H */

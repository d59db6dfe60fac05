/*
 * history.c -- the history check's decisions and messages (see history.h).
 */
#include "history.h"

#include <stdio.h>
#include <string.h>

/* name, double-quoted when it is not a plain lowercase identifier. */
static const char *sql_name(const char *name, char *buf, size_t size)
{
    bool plain = (name[0] >= 'a' && name[0] <= 'z') || name[0] == '_';

    for (const char *c = name; *c && plain; c++)
        plain = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
    snprintf(buf, size, plain ? "%s" : "\"%s\"", name);
    return buf;
}

/* The sentence every refusal ends with: how to accept the server's position. */
static void accept_hint(const struct history_facts *f, char *buf, size_t size)
{
    char n[80], t[80];

    snprintf(buf, size,
             "once consumers are reconciled, accept the server's position with: DELETE FROM "
             "%s.%s WHERE slot_name = '%s' (docs/operations.md)",
             sql_name(f->state_schema, n, sizeof(n)), sql_name(f->state_table, t, sizeof(t)),
             f->slot);
}

enum history_verdict history_identity(const struct history_facts *f, char *msg, size_t size)
{
    char accept[512];

    msg[0] = '\0';
    if (!f->state_found)
        return HISTORY_OK;
    accept_hint(f, accept, sizeof(accept));
    if (strcmp(f->state_system_id, f->system_id) != 0) {
        snprintf(msg, size,
                 "the server's system identifier is %s, but this relay published from "
                 "system %s (recorded in \"%s.%s\"): this is another database cluster, "
                 "a copy or a restored dump, and its positions mean nothing for the "
                 "events already published; %s",
                 f->system_id, f->state_system_id, f->state_schema, f->state_table, accept);
        return HISTORY_REFUSE;
    }
    if (f->state_timeline != f->timeline) {
        snprintf(msg, size,
                 "the server is on timeline %u, but this relay published from timeline "
                 "%u up to " LSN_FMT " (recorded in \"%s.%s\"): the database failed over "
                 "or was restored to a point in time, so events published after the "
                 "switch may not exist in this history; %s",
                 f->timeline, f->state_timeline, LSN_ARGS(f->state_lsn), f->state_schema,
                 f->state_table, accept);
        return HISTORY_REFUSE;
    }
    return HISTORY_OK;
}

enum history_verdict history_check(const struct history_facts *f, char *msg, size_t size)
{
    char accept[512];
    enum history_verdict v;

    if ((v = history_identity(f, msg, size)) != HISTORY_OK)
        return v;
    if (!f->state_found)
        return f->slot_exists ? HISTORY_RECORD_FIRST : HISTORY_OK;
    accept_hint(f, accept, sizeof(accept));
    if (!f->slot_exists) {
        snprintf(msg, size,
                 "replication slot \"%s\" does not exist, but this relay published from "
                 "it up to " LSN_FMT " (recorded in \"%s.%s\"): the slot was dropped or "
                 "the database restored from a backup, and a new slot would skip every "
                 "event committed since; %s",
                 f->slot, LSN_ARGS(f->state_lsn), f->state_schema, f->state_table, accept);
        return HISTORY_REFUSE;
    }
    if (f->server_lsn != LSN_INVALID && f->server_lsn < f->state_lsn) {
        snprintf(msg, size,
                 "the server's WAL ends at " LSN_FMT ", before " LSN_FMT " where this "
                 "relay last confirmed slot \"%s\" (recorded in \"%s.%s\"): the "
                 "database was restored from a backup, and events already published are "
                 "missing from it or will be written again with other content; %s",
                 LSN_ARGS(f->server_lsn), LSN_ARGS(f->state_lsn), f->slot, f->state_schema,
                 f->state_table, accept);
        return HISTORY_REFUSE;
    }
    if (f->slot_confirmed != LSN_INVALID && f->slot_confirmed > f->state_lsn) {
        if (f->unrecorded != LSN_INVALID && f->slot_confirmed <= f->unrecorded) {
            snprintf(msg, size,
                     "recording " LSN_FMT ", confirmed to slot \"%s\" while the server was "
                     "shutting down",
                     LSN_ARGS(f->slot_confirmed), f->slot);
            return HISTORY_RECORD_CAUGHT_UP;
        }
        snprintf(msg, size,
                 "replication slot \"%s\" is at " LSN_FMT ", ahead of " LSN_FMT " where "
                 "this relay last confirmed it (recorded in \"%s.%s\"): the slot was "
                 "recreated or advanced by another consumer, and events committed in "
                 "between were never published; %s",
                 f->slot, LSN_ARGS(f->slot_confirmed), LSN_ARGS(f->state_lsn), f->state_schema,
                 f->state_table, accept);
        return HISTORY_REFUSE;
    }
    if (f->slot_confirmed < f->state_lsn) {
        snprintf(msg, size,
                 "replication slot \"%s\" is at " LSN_FMT ", behind " LSN_FMT " where "
                 "this relay last confirmed it (the server restarted before saving the "
                 "slot): starting from " LSN_FMT,
                 f->slot, LSN_ARGS(f->slot_confirmed), LSN_ARGS(f->state_lsn),
                 LSN_ARGS(f->state_lsn));
        return HISTORY_SLOT_BEHIND;
    }
    msg[0] = '\0';
    return HISTORY_OK;
}

int history_record_sql(char *sql, size_t size, const char *qtable, const char *slot_lit,
                       const char *system_lit, uint32_t timeline, lsn_t lsn)
{
    int n = snprintf(sql, size,
                     "INSERT INTO %s AS s (slot_name, system_identifier, timeline, "
                     "confirmed_lsn) VALUES (%s, %s, %u, '" LSN_FMT "') "
                     "ON CONFLICT (slot_name) DO UPDATE SET "
                     "system_identifier = excluded.system_identifier, "
                     "timeline = excluded.timeline, confirmed_lsn = excluded.confirmed_lsn, "
                     "updated_at = now() WHERE s.confirmed_lsn <= excluded.confirmed_lsn "
                     "RETURNING pg_catalog.pg_current_wal_lsn()",
                     qtable, slot_lit, system_lit, timeline, LSN_ARGS(lsn));

    return n < 0 || (size_t)n >= size ? -1 : n;
}

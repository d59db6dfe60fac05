/*
 * replication.h -- the libpq side of logical replication.
 *
 * Opens a replication connection, makes sure the publication and the slot exist
 * (creating them when missing, never dropping or recreating them), starts pgoutput
 * streaming from a position, and then moves CopyData frames in and standby status
 * updates out without blocking.  It knows nothing of events or Kafka.
 *
 * Errors come in two kinds, so the caller knows whether to retry:
 *   -EAGAIN  transient: the server is unreachable, restarting, the walsender was
 *            terminated, or the slot is in use by another process;
 *   -EPERM   permanent: retrying cannot help (wal_level is not logical, the outbox
 *            table or a privilege is missing, the slot belongs to another plugin or
 *            database, or it was invalidated), or the history check failed: the slot
 *            or the server's history does not match the relay's state row (the slot
 *            was recreated, the database restored or failed over).  The message says
 *            what to do.
 */
#ifndef RELAY_REPLICATION_H
#define RELAY_REPLICATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config.h"
#include "lsn.h"
#include "walproto.h"

typedef struct repl_conn repl_conn;

/* What the server said about itself and the slot when streaming started. */
struct repl_info {
    char system_id[32]; /* IDENTIFY_SYSTEM's systemid */
    uint32_t timeline;
    char dbname[64];
    lsn_t server_lsn;      /* IDENTIFY_SYSTEM's xlogpos: the server's WAL end */
    int server_version;    /* PQserverVersion(), e.g. 150018 */
    lsn_t slot_confirmed;  /* the slot's confirmed_flush_lsn before streaming */
    lsn_t start_lsn;       /* where streaming was asked to start */
    bool slot_created;     /* this call created the slot */
    bool hint_ignored;     /* start_hint was dropped: the server's history changed */

    /*
     * The relay's state row for the slot (postgres.state_table), when
     * postgres.history_check is on: after a successful repl_open() it exists and
     * state_lsn is the position last recorded there (at least slot_confirmed).
     */
    bool state_found;
    char state_system_id[32];
    uint32_t state_timeline;
    lsn_t state_lsn;
};

/*
 * Connect, prepare the publication and slot, check the server's history against
 * the state row (postgres.history_check), and START_REPLICATION at
 * max(start_hint, the slot's confirmed position, the state row's position).  prev is what the previous
 * successful call returned (NULL on the first): start_hint is trusted only on the
 * same system and timeline, and only up to the server's WAL end; otherwise it is
 * ignored (info->hint_ignored) and streaming starts at the slot's position.
 *
 * unrecorded is the highest position this process confirmed to the slot without
 * recording it first (the server was shutting down and asked for it: see flow_confirmable() in flow.h),
 * LSN_INVALID when none: a slot ahead of the record by no more than that is ours,
 * and the record is brought up to it.
 *
 * cdc_keys has one entry per cdc.tables entry: each is replaced by a new string (the
 * old one is freed; the caller frees the last) listing the table's primary key
 * columns, comma separated, "" when it has none.
 *
 * On success stores the new connection in *out (free with repl_close()) and fills
 * *info.  On error returns -EAGAIN or -EPERM (see above) with errstr set, and *out
 * is untouched.  Blocks for the setup queries; connect_timeout defaults to 10 s.
 */
int repl_open(const struct relay_config *cfg, lsn_t start_hint, lsn_t unrecorded,
              const struct repl_info *prev, char **cdc_keys, repl_conn **out, struct repl_info *info, char *errstr,
              size_t errstr_size);

/*
 * Whether a failed connection attempt, described by libpq's message, will fail the
 * same way every time: authentication, a pg_hba.conf entry missing or rejecting
 * the connection, a server certificate that does not verify (wrong CA, wrong host
 * name) or a client certificate or CA file that cannot be read.  Network errors,
 * a server starting up or shutting down, and TLS handshake errors are not.
 */
bool repl_connect_error_permanent(const char *msg);

/*
 * Connect (blocking) with the relay's connection defaults: connect_timeout (seconds)
 * and TCP keepalives that notice a dead peer within about half a minute, which the
 * DSN may override, then fallback_application_name = appname and, when replication
 * is true, replication=database, which it may not.  Returns what
 * PQconnectdbParams() returns: NULL only when out of memory; otherwise a connection
 * the caller owns (PQfinish()) whose PQstatus() says whether it worked.
 */
PGconn *repl_connect(const char *dsn, const char *appname, int connect_timeout_s,
                     bool replication);

/*
 * An ordinary connection for the relay's own writes beside the stream (the state
 * record, heartbeats, dead-letter records): repl_connect() with a 5 s connect timeout,
 * then synchronous_commit=local (the relay's walsender may be a synchronous standby:
 * waiting for it would wait for the relay), statement_timeout 5s, lock_timeout 2s, and
 * server notices to the log.  Returns the connection (the caller PQfinish()es it), or
 * NULL with errstr set to libpq's first line; *shutting_down says whether the server
 * refused because it is shutting down.  Blocks for the connect.
 */
PGconn *repl_connect_side(const char *dsn, const char *appname, bool *shutting_down,
                          char *errstr, size_t errstr_size);

/*
 * "schema"."table", each part quoted as an SQL identifier for conn.  Returns a string
 * the caller free()s, or NULL when out of memory.
 */
char *repl_quote_table(PGconn *conn, const char *schema, const char *table);

/*
 * Copy the first line of a libpq message (without its newline) into dst, cut to
 * size - 1 bytes and NUL-terminated; size must be at least 1.  Cannot fail.
 */
void repl_first_line(const char *msg, char *dst, size_t size);

/*
 * A libpq notice processor (PQsetNoticeProcessor()) that writes a server's NOTICE
 * or WARNING through the relay's log instead of to stderr, so that every line of
 * the log keeps its format (log.format: json).
 */
void repl_notice_to_log(void *arg, const char *message);

/* The connection's socket, for poll(2). */
int repl_socket(const repl_conn *c);

/*
 * Read what the socket has (call when poll() says it is readable).  Returns 0, or
 * -EAGAIN with errstr set when the connection is broken.
 */
int repl_consume(repl_conn *c, char *errstr, size_t errstr_size);

/*
 * Take the next complete frame already received, without blocking.  Returns 1 with
 * *f filled (f->data borrows from the connection until the next repl_read()), 0 when
 * no complete frame is buffered, -EAGAIN when the server ended the stream or the
 * connection broke, -EPERM when the server ended it with an error that will recur
 * on every retry (a publication missing from the slot's history), -EBADMSG for a
 * frame that cannot be parsed; errstr says why.
 */
int repl_read(repl_conn *c, struct wal_frame *f, char *errstr, size_t errstr_size);

/*
 * Queue a standby status update (write, flush = apply) and try to send it.
 * Returns 0 (possibly with bytes still queued: see repl_want_write()), or -EAGAIN
 * with errstr set when the connection is broken.
 */
int repl_send_status(repl_conn *c, lsn_t write, lsn_t flush, bool reply_requested,
                     char *errstr, size_t errstr_size);

/* True when queued output waits for the socket to become writable. */
bool repl_want_write(const repl_conn *c);

/* Send queued output.  Returns 0, or -EAGAIN with errstr set. */
int repl_flush(repl_conn *c, char *errstr, size_t errstr_size);

/*
 * Close the connection and free c.  graceful ends the COPY stream properly and waits
 * (at most timeout_ms) for the server to answer.  Returns true only when it did:
 * the walsender then processed every status update sent before, so the slot holds
 * the last flush position reported.  Returns false for a non-graceful close, a
 * timeout or a broken connection.  repl_close(NULL, ...) is a no-op returning false.
 */
bool repl_close(repl_conn *c, bool graceful, int timeout_ms);

#endif /* RELAY_REPLICATION_H */

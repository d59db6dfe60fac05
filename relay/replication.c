/*
 * replication.c -- libpq replication connection: setup, START_REPLICATION, CopyData.
 *
 * One connection with replication=database serves both the setup queries (a
 * walsender in database mode accepts plain SQL through the simple query protocol)
 * and the stream.  Setup runs in blocking mode; once streaming, the connection is
 * switched to non-blocking mode and driven by the relay's poll() loop, in the same
 * shape as PostgreSQL's pg_recvlogical.c.
 *
 * Only the simple query protocol works on a walsender, so values are quoted with
 * PQescapeLiteral()/PQescapeIdentifier() rather than passed as parameters.
 */
#include "replication.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include <libpq-fe.h>

#include "history.h"
#include "log.h"

struct repl_conn {
    PGconn *conn;
    char *copybuf; /* last frame returned by PQgetCopyData, freed on the next read */
    bool want_write;
};

/* SQLSTATE of a failed result, or "" */
static const char *sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    return s ? s : "";
}

PGconn *repl_connect(const char *dsn, const char *appname, int connect_timeout_s,
                     bool replication)
{
    /*
     * Keywords before "dbname" are defaults the DSN may override; keywords after it
     * override the DSN.  The defaults bound a hung connect (connect_timeout) and
     * detect a dead peer within about half a minute instead of TCP's fifteen.
     */
    const char *keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                          "dbname", "fallback_application_name", "replication", NULL};
    char timeout[16];
    const char *vals[] = {timeout, "1", "10", "5", "3", "30000",
                          dsn, appname, replication ? "database" : NULL, NULL};

    snprintf(timeout, sizeof(timeout), "%d", connect_timeout_s);
    return PQconnectdbParams(keys, vals, 1);
}

PGconn *repl_connect_side(const char *dsn, const char *appname, bool *shutting_down,
                          char *errstr, size_t errstr_size)
{
    PGconn *conn = repl_connect(dsn, appname, 5, false);
    PGresult *res;

    *shutting_down = false;
    if (PQstatus(conn) == CONNECTION_OK) {
        /*
         * synchronous_commit=local: if the relay's own walsender counts as a synchronous
         * standby, a commit waiting for it would wait for the relay, which waits for the
         * commit.  The timeouts keep a lock on the relay's tables from stalling it.
         */
        res = PQexec(conn, "SET synchronous_commit TO local; "
                           "SET statement_timeout TO '5s'; SET lock_timeout TO '2s'");
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            PQsetNoticeProcessor(conn, repl_notice_to_log, NULL);
            return conn;
        }
        PQclear(res);
    }
    /* "the database system is shutting down": what flow_confirmable() asks about. */
    *shutting_down = conn && strstr(PQerrorMessage(conn), "shutting down") != NULL;
    repl_first_line(conn ? PQerrorMessage(conn) : "out of memory", errstr, errstr_size);
    PQfinish(conn);
    return NULL;
}

char *repl_quote_table(PGconn *conn, const char *schema, const char *table)
{
    char *qs = PQescapeIdentifier(conn, schema, strlen(schema));
    char *qt = PQescapeIdentifier(conn, table, strlen(table));
    char *out = NULL;
    size_t n;

    if (qs && qt && (out = malloc(n = strlen(qs) + strlen(qt) + 2)))
        snprintf(out, n, "%s.%s", qs, qt);
    PQfreemem(qs);
    PQfreemem(qt);
    return out;
}

void repl_first_line(const char *msg, char *dst, size_t size)
{
    size_t n = strcspn(msg, "\n");

    if (n >= size)
        n = size - 1;
    memcpy(dst, msg, n);
    dst[n] = '\0';
}

/*
 * Classify a failed query: errors that retrying cannot cure are permanent.  Class
 * 28 is authorization, 42 covers missing objects and insufficient privilege.
 */
static int classify(const PGresult *res)
{
    const char *st = sqlstate(res);

    if (strncmp(st, "28", 2) == 0 || strncmp(st, "42", 2) == 0)
        return -EPERM;
    return -EAGAIN;
}

/*
 * Run a query that must return tuples (or a command that must succeed when
 * want_tuples is false).  On success stores the result in *out (the caller clears
 * it).  On failure sets *out to NULL, errstr to "what: message", and returns
 * -EEXIST for duplicate_object (42710: created concurrently), otherwise the
 * classified error.
 */
static int run(PGconn *conn, const char *sql, bool want_tuples, const char *what,
               PGresult **out, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    char msg[512];
    int err;

    if (st == (want_tuples ? PGRES_TUPLES_OK : PGRES_COMMAND_OK)) {
        *out = res;
        return 0;
    }
    *out = NULL;
    repl_first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), msg, sizeof(msg));
    if (!msg[0])
        repl_first_line(PQerrorMessage(conn), msg, sizeof(msg));
    snprintf(errstr, errstr_size, "%s: %s", what, msg);
    if (strcmp(sqlstate(res), "42710") == 0)
        err = -EEXIST;
    else
        err = PQstatus(conn) == CONNECTION_OK ? classify(res) : -EAGAIN;
    PQclear(res);
    return err;
}

static int check_server(PGconn *conn, char *errstr, size_t errstr_size)
{
    PGresult *res;
    int err;

    if (PQserverVersion(conn) < 130000) {
        snprintf(errstr, errstr_size,
                 "server version %d is too old: outbox-relay needs PostgreSQL 13 or later",
                 PQserverVersion(conn));
        return -EPERM;
    }
    if ((err = run(conn, "SHOW wal_level", true, "cannot read wal_level", &res, errstr,
                   errstr_size)) < 0)
        return err;
    if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0) {
        snprintf(errstr, errstr_size,
                 "wal_level is \"%s\": logical replication needs wal_level = logical "
                 "(set it in postgresql.conf and restart the server), or use polling mode",
                 PQgetvalue(res, 0, 0));
        PQclear(res);
        return -EPERM;
    }
    PQclear(res);
    return 0;
}

/*
 * Make sure the publication exists and publishes the outbox table's inserts.
 * Created when missing.  An existing publication that lacks the table gets it added,
 * with a warning.  One that does not publish inserts, or that publishes a
 * partitioned outbox partition by partition, is an error: changing how a
 * publication publishes is the operator's call.
 */
static int ensure_publication(PGconn *conn, const struct relay_config *cfg, char *errstr,
                              size_t errstr_size)
{
    char *pub_lit = PQescapeLiteral(conn, cfg->postgres.publication,
                                    strlen(cfg->postgres.publication));
    char *pub_id = PQescapeIdentifier(conn, cfg->postgres.publication,
                                      strlen(cfg->postgres.publication));
    char *nsp_lit = PQescapeLiteral(conn, cfg->outbox.schema, strlen(cfg->outbox.schema));
    char *rel_lit = PQescapeLiteral(conn, cfg->outbox.table, strlen(cfg->outbox.table));
    char *nsp_id = PQescapeIdentifier(conn, cfg->outbox.schema, strlen(cfg->outbox.schema));
    char *rel_id = PQescapeIdentifier(conn, cfg->outbox.table, strlen(cfg->outbox.table));
    char sql[2048];
    PGresult *res = NULL;
    bool partitioned;
    int err = -ENOMEM;

    if (!pub_lit || !pub_id || !nsp_lit || !rel_lit || !nsp_id || !rel_id) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }

    snprintf(sql, sizeof(sql),
             "SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
             "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
             nsp_lit, rel_lit);
    if ((err = run(conn, sql, true, "cannot look up the outbox table", &res, errstr,
                   errstr_size)) < 0)
        goto out;
    if (PQntuples(res) == 0) {
        snprintf(errstr, errstr_size,
                 "outbox table \"%s.%s\" does not exist: create it (see sql/) or fix "
                 "outbox.table",
                 cfg->outbox.schema, cfg->outbox.table);
        err = -EPERM;
        goto out;
    }
    partitioned = strcmp(PQgetvalue(res, 0, 0), "p") == 0;
    PQclear(res);
    res = NULL;

    snprintf(sql, sizeof(sql),
             "SELECT pubinsert, pubviaroot, EXISTS (SELECT 1 FROM "
             "pg_catalog.pg_publication_tables t WHERE t.pubname = p.pubname AND "
             "t.schemaname = %s AND t.tablename = %s) FROM pg_catalog.pg_publication p "
             "WHERE p.pubname = %s",
             nsp_lit, rel_lit, pub_lit);
    if ((err = run(conn, sql, true, "cannot look up the publication", &res, errstr,
                   errstr_size)) < 0)
        goto out;
    if (PQntuples(res) == 0) {
        PQclear(res);
        res = NULL;
        /*
         * publish_via_partition_root: a partitioned outbox's rows then arrive under
         * the outbox's own name instead of each partition's.
         */
        snprintf(sql, sizeof(sql),
                 "CREATE PUBLICATION %s FOR TABLE %s.%s WITH (publish = 'insert', "
                 "publish_via_partition_root = true)",
                 pub_id, nsp_id, rel_id);
        err = run(conn, sql, false, "cannot create the publication", &res, errstr,
                  errstr_size);
        if (err == 0) {
            log_info("created publication \"%s\" for table \"%s.%s\"",
                     cfg->postgres.publication, cfg->outbox.schema, cfg->outbox.table);
        } else if (err == -EEXIST) {
            /* Another instance created it between our look-up and now. */
            err = 0;
        }
        goto out;
    }
    if (partitioned && strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        snprintf(errstr, errstr_size,
                 "outbox table \"%s.%s\" is partitioned but publication \"%s\" publishes "
                 "each partition under its own name: ALTER PUBLICATION %s SET "
                 "(publish_via_partition_root = true)",
                 cfg->outbox.schema, cfg->outbox.table, cfg->postgres.publication, pub_id);
        err = -EPERM;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        snprintf(errstr, errstr_size,
                 "publication \"%s\" does not publish inserts: ALTER PUBLICATION %s SET "
                 "(publish = 'insert')",
                 cfg->postgres.publication, pub_id);
        err = -EPERM;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        PQclear(res);
        res = NULL;
        snprintf(sql, sizeof(sql), "ALTER PUBLICATION %s ADD TABLE %s.%s", pub_id, nsp_id,
                 rel_id);
        if ((err = run(conn, sql, false, "cannot add the outbox table to the publication",
                       &res, errstr, errstr_size)) < 0)
            goto out;
        /*
         * Logical decoding reads the publication as of each change, so rows committed
         * before this moment are not published: say so loudly.
         */
        log_warn("added table \"%s.%s\" to publication \"%s\": outbox rows committed "
                 "before now were not published through it",
                 cfg->outbox.schema, cfg->outbox.table, cfg->postgres.publication);
    }
    err = 0;

out:
    PQclear(res);
    PQfreemem(pub_lit);
    PQfreemem(pub_id);
    PQfreemem(nsp_lit);
    PQfreemem(rel_lit);
    PQfreemem(nsp_id);
    PQfreemem(rel_id);
    return err;
}

/*
 * The publication of the cdc tables: every operation (insert, update, delete,
 * truncate), partitions under their root's name.  Created when missing; tables named
 * in cdc.tables that it lacks are added.  A listed table that does not exist is a
 * permanent error.
 */
/*
 * The primary key columns of schema.table (identifiers already quoted), comma
 * separated in key order, into a new string *out ("" when there is none).
 */
static int primary_key(PGconn *conn, const char *nsp_id, const char *rel_id, char **out,
                       char *errstr, size_t errstr_size)
{
    char sql[1024], qualified[600];
    char *lit;
    PGresult *res;
    int err;

    snprintf(qualified, sizeof(qualified), "%s.%s", nsp_id, rel_id);
    if (!(lit = PQescapeLiteral(conn, qualified, strlen(qualified)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return -ENOMEM;
    }
    snprintf(sql, sizeof(sql),
             "SELECT COALESCE(string_agg(a.attname, ',' ORDER BY k.ord), '') FROM "
             "pg_catalog.pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY "
             "AS k(attnum, ord) JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid "
             "AND a.attnum = k.attnum WHERE i.indrelid = %s::regclass AND i.indisprimary",
             lit);
    PQfreemem(lit);
    if ((err = run(conn, sql, true, "cannot read a cdc table's primary key", &res, errstr,
                   errstr_size)) < 0)
        return err;
    free(*out);
    *out = strdup(PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    if (!*out) {
        snprintf(errstr, errstr_size, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int ensure_cdc_publication(PGconn *conn, const struct relay_config *cfg, char **keys,
                                  char *errstr, size_t errstr_size)
{
    const char *pub = cfg->cdc.publication;
    char *pub_lit = PQescapeLiteral(conn, pub, strlen(pub));
    char *pub_id = PQescapeIdentifier(conn, pub, strlen(pub));
    char sql[8192];
    PGresult *res = NULL;
    bool exists;
    int err = -ENOMEM;

    if (!pub_lit || !pub_id) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s",
             pub_lit);
    if ((err = run(conn, sql, true, "cannot look up the cdc publication", &res, errstr,
                   errstr_size)) < 0)
        goto out;
    exists = PQntuples(res) == 1;
    PQclear(res);
    res = NULL;
    for (size_t i = 0; i < cfg->cdc.ntables; i++) {
        const struct relay_table *t = &cfg->cdc.tables[i];
        char *nsp_lit = PQescapeLiteral(conn, t->schema, strlen(t->schema));
        char *rel_lit = PQescapeLiteral(conn, t->table, strlen(t->table));
        char *nsp_id = PQescapeIdentifier(conn, t->schema, strlen(t->schema));
        char *rel_id = PQescapeIdentifier(conn, t->table, strlen(t->table));
        bool have_table = false, in_pub = false;

        err = -ENOMEM;
        if (nsp_lit && rel_lit && nsp_id && rel_id) {
            snprintf(sql, sizeof(sql),
                     "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN "
                     "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                     "AND c.relname = %s), EXISTS (SELECT 1 FROM "
                     "pg_catalog.pg_publication_tables WHERE pubname = %s AND schemaname = %s "
                     "AND tablename = %s)",
                     nsp_lit, rel_lit, pub_lit, nsp_lit, rel_lit);
            err = run(conn, sql, true, "cannot look up a cdc table", &res, errstr, errstr_size);
        } else {
            snprintf(errstr, errstr_size, "out of memory");
        }
        if (err == 0) {
            have_table = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
            in_pub = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
            PQclear(res);
            res = NULL;
            if (have_table)
                err = primary_key(conn, nsp_id, rel_id, &keys[i], errstr, errstr_size);
            if (err < 0) {
                /* reported below */
            } else if (!have_table) {
                snprintf(errstr, errstr_size, "cdc table \"%s.%s\" does not exist", t->schema,
                         t->table);
                err = -EPERM;
            } else if (!exists) {
                snprintf(sql, sizeof(sql),
                         "CREATE PUBLICATION %s FOR TABLE %s.%s WITH "
                         "(publish_via_partition_root = true)",
                         pub_id, nsp_id, rel_id);
                err = run(conn, sql, false, "cannot create the cdc publication", &res, errstr,
                          errstr_size);
                exists = err == 0;
                if (err == 0)
                    log_info("created publication \"%s\" for table \"%s.%s\"", pub, t->schema,
                             t->table);
            } else if (!in_pub) {
                snprintf(sql, sizeof(sql), "ALTER PUBLICATION %s ADD TABLE %s.%s", pub_id,
                         nsp_id, rel_id);
                err = run(conn, sql, false, "cannot add a cdc table to its publication", &res,
                          errstr, errstr_size);
                if (err == 0)
                    log_info("added table \"%s.%s\" to publication \"%s\"", t->schema,
                             t->table, pub);
            }
            PQclear(res);
            res = NULL;
        }
        PQfreemem(nsp_lit);
        PQfreemem(rel_lit);
        PQfreemem(nsp_id);
        PQfreemem(rel_id);
        if (err < 0)
            goto out;
    }
    err = 0;

out:
    PQclear(res);
    PQfreemem(pub_lit);
    PQfreemem(pub_id);
    return err;
}

/*
 * A new slot streams only what commits after it exists.  Outbox rows already in the
 * table are not published by it: say so, once, so that nobody mistakes it for loss.
 */
static void warn_existing_rows(PGconn *conn, const struct relay_config *cfg)
{
    char *nsp = PQescapeIdentifier(conn, cfg->outbox.schema, strlen(cfg->outbox.schema));
    char *rel = PQescapeIdentifier(conn, cfg->outbox.table, strlen(cfg->outbox.table));
    char sql[512];
    PGresult *res;

    if (nsp && rel) {
        snprintf(sql, sizeof(sql), "SELECT EXISTS (SELECT 1 FROM %s.%s)", nsp, rel);
        res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
            log_warn("outbox table \"%s.%s\" already has rows: rows committed before the "
                     "slot was created are not published (create the slot with the table, "
                     "as sql/002_publication.sql does)",
                     cfg->outbox.schema, cfg->outbox.table);
        PQclear(res);
    }
    PQfreemem(nsp);
    PQfreemem(rel);
}

/* What the server, the slot and the record say, for history.c. */
static struct history_facts facts_of(const struct relay_config *cfg, const struct repl_info *info,
                                     bool slot_exists, lsn_t unrecorded)
{
    return (struct history_facts){
        .slot = cfg->postgres.slot,
        .state_schema = cfg->postgres.state_schema,
        .state_table = cfg->postgres.state_table,
        .system_id = info->system_id,
        .timeline = info->timeline,
        .server_lsn = info->server_lsn,
        .slot_exists = slot_exists,
        .slot_confirmed = info->slot_confirmed,
        .state_found = info->state_found,
        .state_system_id = info->state_system_id,
        .state_timeline = info->state_timeline,
        .state_lsn = info->state_lsn,
        .unrecorded = unrecorded,
    };
}

/*
 * Make sure the slot exists, uses pgoutput and belongs to this database; create it
 * when missing, unless the relay's state says it published from it before (then a
 * missing slot means lost events: -EPERM).  An existing slot is never dropped or
 * recreated: its position is the relay's checkpoint.  Fills info->slot_confirmed.
 */
static int ensure_slot(PGconn *conn, const struct relay_config *cfg, struct repl_info *info,
                       char *errstr, size_t errstr_size)
{
    const char *slot = cfg->postgres.slot;
    char *slot_lit = PQescapeLiteral(conn, slot, strlen(slot));
    char *slot_id = PQescapeIdentifier(conn, slot, strlen(slot));
    char sql[1024];
    PGresult *res = NULL;
    int err = -ENOMEM;

    if (!slot_lit || !slot_id) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        snprintf(sql, sizeof(sql),
                 "SELECT plugin, slot_type, database, confirmed_flush_lsn, "
                 "COALESCE(wal_status, '') FROM pg_catalog.pg_replication_slots "
                 "WHERE slot_name = %s",
                 slot_lit);
        if ((err = run(conn, sql, true, "cannot look up the replication slot", &res, errstr,
                       errstr_size)) < 0)
            goto out;
        if (PQntuples(res) == 1)
            break;
        PQclear(res);
        res = NULL;
        if (info->state_found) {
            struct history_facts f = facts_of(cfg, info, false, LSN_INVALID);

            history_check(&f, errstr, errstr_size);
            err = -EPERM;
            goto out;
        }
        /* The replication command, not the SQL function: no transaction needed. */
        snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput", slot_id);
        if ((err = run(conn, sql, true, "cannot create the replication slot", &res, errstr,
                       errstr_size)) < 0) {
            if (err == -EEXIST)
                continue; /* created concurrently: look it up again */
            goto out;
        }
        info->slot_created = true;
        log_info("created replication slot \"%s\" at %s", slot, PQgetvalue(res, 0, 1));
        PQclear(res);
        res = NULL;
        warn_existing_rows(conn, cfg);
    }
    if (!res || PQntuples(res) != 1) {
        snprintf(errstr, errstr_size, "replication slot \"%s\" vanished while being set up",
                 slot);
        err = -EAGAIN;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "logical") != 0 ||
        strcmp(PQgetvalue(res, 0, 0), "pgoutput") != 0) {
        snprintf(errstr, errstr_size,
                 "replication slot \"%s\" exists but is not a logical slot of plugin "
                 "\"pgoutput\" (plugin \"%s\"): choose another postgres.slot",
                 slot, PQgetvalue(res, 0, 0));
        err = -EPERM;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 2), info->dbname) != 0) {
        snprintf(errstr, errstr_size,
                 "replication slot \"%s\" belongs to database \"%s\", not \"%s\": choose "
                 "another postgres.slot",
                 slot, PQgetvalue(res, 0, 2), info->dbname);
        err = -EPERM;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 4), "lost") == 0) {
        snprintf(errstr, errstr_size,
                 "replication slot \"%s\" was invalidated (wal_status = lost): the WAL it "
                 "needed is gone and events may have been missed; see docs/guarantees.md "
                 "before dropping and recreating it",
                 slot);
        err = -EPERM;
        goto out;
    }
    if (PQgetisnull(res, 0, 3) || !lsn_parse(PQgetvalue(res, 0, 3), &info->slot_confirmed))
        info->slot_confirmed = LSN_INVALID;
    err = 0;

out:
    PQclear(res);
    PQfreemem(slot_lit);
    PQfreemem(slot_id);
    return err;
}

/* "schema"."table" of the relay's state table, quoted; NULL when out of memory. */
static char *state_table_name(PGconn *conn, const struct relay_config *cfg)
{
    return repl_quote_table(conn, cfg->postgres.state_schema, cfg->postgres.state_table);
}

/*
 * Read the slot's row of the state table into info->state_*; create the table when
 * it is missing and the role may.  A role that may not gets -EPERM and a message
 * naming sql/005_relay_state.sql.
 */
static int read_state(PGconn *conn, const struct relay_config *cfg, struct repl_info *info,
                      char *errstr, size_t errstr_size)
{
    const char *slot = cfg->postgres.slot;
    char *table = state_table_name(conn, cfg);
    char *slot_lit = PQescapeLiteral(conn, slot, strlen(slot));
    char sql[1024];
    PGresult *res = NULL;
    bool exists;
    int err = -EAGAIN;

    if (!table || !slot_lit) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    {
        /* to_regclass() takes the quoted name as text: NULL when the table is missing. */
        char *name_lit = PQescapeLiteral(conn, table, strlen(table));

        if (!name_lit) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
        snprintf(sql, sizeof(sql), "SELECT pg_catalog.to_regclass(%s) IS NOT NULL", name_lit);
        PQfreemem(name_lit);
    }
    if ((err = run(conn, sql, true, "cannot look up the relay's state table", &res, errstr,
                   errstr_size)) < 0)
        goto out;
    exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    res = NULL;
    if (!exists) {
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE IF NOT EXISTS %s (slot_name text PRIMARY KEY, "
                 "system_identifier text NOT NULL, timeline integer NOT NULL, "
                 "confirmed_lsn pg_lsn NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
                 table);
        if ((err = run(conn, sql, false, "cannot create the relay's state table", &res, errstr,
                       errstr_size)) < 0) {
            if (err == -EPERM) {
                size_t n = strlen(errstr);

                snprintf(errstr + n, errstr_size - n,
                         " (run sql/005_relay_state.sql as the table's owner, or set "
                         "postgres.history_check: off)");
            }
            goto out;
        }
        log_info("created the relay's state table \"%s.%s\"", cfg->postgres.state_schema,
                 cfg->postgres.state_table);
        PQclear(res);
        res = NULL;
    }
    snprintf(sql, sizeof(sql),
             "SELECT system_identifier, timeline, confirmed_lsn FROM %s WHERE slot_name = %s",
             table, slot_lit);
    if ((err = run(conn, sql, true, "cannot read the relay's state", &res, errstr,
                   errstr_size)) < 0)
        goto out;
    if (PQntuples(res) == 1) {
        info->state_found = true;
        snprintf(info->state_system_id, sizeof(info->state_system_id), "%s",
                 PQgetvalue(res, 0, 0));
        info->state_timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
        if (!lsn_parse(PQgetvalue(res, 0, 2), &info->state_lsn))
            info->state_lsn = LSN_INVALID;
    }
    err = 0;

out:
    PQclear(res);
    PQfreemem(slot_lit);
    free(table);
    return err;
}

/*
 * Record info->state_lsn, with the server's system and timeline, as the slot's row
 * (history_record_sql(): the one statement that writes the record).
 */
static int write_state(PGconn *conn, const struct relay_config *cfg,
                       const struct repl_info *info, char *errstr, size_t errstr_size)
{
    const char *slot = cfg->postgres.slot;
    char *table = state_table_name(conn, cfg);
    char *slot_lit = PQescapeLiteral(conn, slot, strlen(slot));
    char *sys_lit = PQescapeLiteral(conn, info->system_id, strlen(info->system_id));
    char sql[1024];
    PGresult *res = NULL;
    int err = -EAGAIN;

    if (!table || !slot_lit || !sys_lit) {
        snprintf(errstr, errstr_size, "out of memory");
    } else if (history_record_sql(sql, sizeof(sql), table, slot_lit, sys_lit, info->timeline,
                                  info->state_lsn) < 0) {
        snprintf(errstr, errstr_size, "state table name too long");
        err = -EPERM;
    } else {
        err = run(conn, sql, true, "cannot record the relay's state", &res, errstr,
                  errstr_size);
    }
    PQclear(res);
    PQfreemem(slot_lit);
    PQfreemem(sys_lit);
    free(table);
    return err;
}

/*
 * The record's system and timeline against the server's, before the slot is even
 * looked up (on a promoted standby the slot is missing too, and "failed over" is the
 * better explanation).  -EPERM when they differ.
 */
static int check_identity(const struct relay_config *cfg, const struct repl_info *info,
                          char *errstr, size_t errstr_size)
{
    struct history_facts f = facts_of(cfg, info, true, LSN_INVALID);

    return history_identity(&f, errstr, errstr_size) == HISTORY_REFUSE ? -EPERM : 0;
}

/*
 * Read the record and the server's WAL position again.  Another relay of a
 * high-availability pair may have recorded and confirmed a later position between
 * our reading of the record and our reading of the slot; the record is written
 * before the slot moves, so a record read after the slot is at least the slot.
 */
static int reread(PGconn *conn, const struct relay_config *cfg, struct repl_info *info,
                  char *errstr, size_t errstr_size)
{
    PGresult *res;
    int err;

    if ((err = read_state(conn, cfg, info, errstr, errstr_size)) < 0)
        return err;
    if ((err = run(conn, "SELECT pg_catalog.pg_current_wal_lsn()", true,
                   "cannot read the server's WAL position", &res, errstr, errstr_size)) < 0)
        return err;
    if (!lsn_parse(PQgetvalue(res, 0, 0), &info->server_lsn))
        info->server_lsn = LSN_INVALID;
    PQclear(res);
    return 0;
}

/*
 * Compare the state row with the server and the slot (docs/guarantees.md, "History
 * check"); record the slot when there is no row yet.  -EPERM when they disagree in
 * a way that loses or invents events; the message says how to accept the change.
 */
static int check_history(PGconn *conn, const struct relay_config *cfg, struct repl_info *info,
                         lsn_t unrecorded, char *errstr, size_t errstr_size)
{
    struct history_facts f;
    char msg[1024];
    int err;

    if (info->state_found &&
        ((info->slot_confirmed != LSN_INVALID && info->slot_confirmed > info->state_lsn) ||
         (info->server_lsn != LSN_INVALID && info->server_lsn < info->state_lsn))) {
        if ((err = reread(conn, cfg, info, errstr, errstr_size)) < 0)
            return err;
    }
    f = facts_of(cfg, info, true, unrecorded);
    switch (history_check(&f, msg, sizeof(msg))) {
    case HISTORY_REFUSE:
        snprintf(errstr, errstr_size, "%s", msg);
        return -EPERM;
    case HISTORY_RECORD_CAUGHT_UP:
        /* We confirmed it ourselves while the server shut down: record it now. */
        log_info("%s", msg);
        info->state_lsn = info->slot_confirmed;
        return write_state(conn, cfg, info, errstr, errstr_size);
    case HISTORY_SLOT_BEHIND:
        log_info("%s", msg);
        return 0;
    case HISTORY_RECORD_FIRST:
        /* No row: the first start on this slot (or a reset): record it. */
        info->state_lsn = info->slot_confirmed;
        if ((err = write_state(conn, cfg, info, errstr, errstr_size)) < 0)
            return err;
        log_info("recorded slot \"%s\" at " LSN_FMT " in \"%s.%s\" (system %s, timeline %u)",
                 cfg->postgres.slot, LSN_ARGS(info->state_lsn), cfg->postgres.state_schema,
                 cfg->postgres.state_table, info->system_id, info->timeline);
        info->state_found = true;
        snprintf(info->state_system_id, sizeof(info->state_system_id), "%s", info->system_id);
        info->state_timeline = info->timeline;
        return 0;
    case HISTORY_OK:
    default:
        return 0;
    }
}

static int identify_system(PGconn *conn, struct repl_info *info, char *errstr,
                           size_t errstr_size)
{
    PGresult *res;
    int err;

    if ((err = run(conn, "IDENTIFY_SYSTEM", true, "IDENTIFY_SYSTEM failed", &res, errstr,
                   errstr_size)) < 0)
        return err;
    if (PQntuples(res) != 1 || PQnfields(res) < 4) {
        snprintf(errstr, errstr_size, "IDENTIFY_SYSTEM returned %d rows and %d fields",
                 PQntuples(res), PQnfields(res));
        PQclear(res);
        return -EAGAIN;
    }
    snprintf(info->system_id, sizeof(info->system_id), "%s", PQgetvalue(res, 0, 0));
    info->timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
    if (!lsn_parse(PQgetvalue(res, 0, 2), &info->server_lsn))
        info->server_lsn = LSN_INVALID;
    snprintf(info->dbname, sizeof(info->dbname), "%s", PQgetvalue(res, 0, 3));
    PQclear(res);
    return 0;
}

static int start_streaming(PGconn *conn, const struct relay_config *cfg,
                           struct repl_info *info, char *errstr, size_t errstr_size)
{
    char *slot_id = PQescapeIdentifier(conn, cfg->postgres.slot, strlen(cfg->postgres.slot));
    char *pub_id = PQescapeIdentifier(conn, cfg->postgres.publication,
                                      strlen(cfg->postgres.publication));
    char *cdc_id = PQescapeIdentifier(conn, cfg->cdc.publication, strlen(cfg->cdc.publication));
    char names[512];
    char *pub_lit = NULL;
    char sql[1024];

    if (pub_id && cdc_id) {
        snprintf(names, sizeof(names), "%s%s%s", pub_id, cfg->cdc.ntables > 0 ? "," : "",
                 cfg->cdc.ntables > 0 ? cdc_id : "");
        pub_lit = PQescapeLiteral(conn, names, strlen(names));
    }
    PGresult *res = NULL;
    int err = -ENOMEM;

    if (!slot_id || !pub_lit) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    /*
     * publication_names is a comma-separated list of identifiers inside a string
     * literal.  Logical decoding messages need PostgreSQL 14.
     */
    snprintf(sql, sizeof(sql),
             "START_REPLICATION SLOT %s LOGICAL " LSN_FMT
             " (proto_version '1', publication_names %s%s)",
             slot_id, LSN_ARGS(info->start_lsn), pub_lit,
             info->server_version >= 140000 ? ", messages 'true'" : "");
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        char msg[512];

        repl_first_line(PQresultErrorMessage(res), msg, sizeof(msg));
        snprintf(errstr, errstr_size, "cannot start replication from slot \"%s\": %s",
                 cfg->postgres.slot, msg[0] ? msg : PQerrorMessage(conn));
        /* 55006 object_in_use: another process streams from the slot; wait for it. */
        err = strcmp(sqlstate(res), "55006") == 0 || PQstatus(conn) != CONNECTION_OK
                  ? -EAGAIN
                  : classify(res);
        goto out;
    }
    err = 0;

out:
    PQclear(res);
    PQfreemem(slot_id);
    PQfreemem(pub_id);
    PQfreemem(cdc_id);
    PQfreemem(pub_lit);
    return err;
}

int repl_open(const struct relay_config *cfg, lsn_t start_hint, lsn_t unrecorded,
              const struct repl_info *prev, char **cdc_keys, repl_conn **out, struct repl_info *info, char *errstr,
              size_t errstr_size)
{
    repl_conn *c;
    PGconn *conn;
    int err;

    memset(info, 0, sizeof(*info));
    conn = repl_connect(cfg->postgres.dsn, "outbox-relay", 10, true);
    if (!conn) {
        snprintf(errstr, errstr_size, "out of memory");
        return -EAGAIN;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[512];

        repl_first_line(PQerrorMessage(conn), msg, sizeof(msg));
        snprintf(errstr, errstr_size, "cannot connect to postgresql: %s", msg);
        /* Authentication failures will not heal by retrying. */
        err = repl_connect_error_permanent(msg) ? -EPERM : -EAGAIN;
        PQfinish(conn);
        return err;
    }
    PQsetNoticeProcessor(conn, repl_notice_to_log, NULL);
    info->server_version = PQserverVersion(conn);
    if ((err = check_server(conn, errstr, errstr_size)) < 0 ||
        (err = identify_system(conn, info, errstr, errstr_size)) < 0 ||
        (err = ensure_publication(conn, cfg, errstr, errstr_size)) < 0 ||
        (cfg->cdc.ntables > 0 && (err = ensure_cdc_publication(conn, cfg, cdc_keys, errstr,
                                                               errstr_size)) < 0) ||
        (cfg->postgres.history_check &&
         ((err = read_state(conn, cfg, info, errstr, errstr_size)) < 0 ||
          (err = check_identity(cfg, info, errstr, errstr_size)) < 0)) ||
        (err = ensure_slot(conn, cfg, info, errstr, errstr_size)) < 0 ||
        (cfg->postgres.history_check && (err = check_history(conn, cfg, info, unrecorded,
                                                             errstr, errstr_size)) < 0))
        goto fail;

    /*
     * The caller's checkpoint may be ahead of the slot (its last status update was
     * lost with the connection), but it is meaningful only on the same server
     * history: after a failover to another timeline or a restore, WAL past the point
     * of divergence is different WAL, and only the slot's position counts.
     */
    if (start_hint > info->slot_confirmed && prev &&
        (strcmp(prev->system_id, info->system_id) != 0 || prev->timeline != info->timeline ||
         start_hint > info->server_lsn)) {
        log_warn("server history changed (system %s timeline %u, was system %s timeline %u; "
                 "server at " LSN_FMT "): starting from the slot's position " LSN_FMT
                 " instead of " LSN_FMT,
                 info->system_id, info->timeline, prev->system_id, prev->timeline,
                 LSN_ARGS(info->server_lsn), LSN_ARGS(info->slot_confirmed),
                 LSN_ARGS(start_hint));
        start_hint = LSN_INVALID;
        info->hint_ignored = true;
    }
    info->start_lsn = start_hint > info->slot_confirmed ? start_hint : info->slot_confirmed;
    /*
     * The state row records only positions Kafka acknowledged, on this very history
     * (check_history() made sure): past a slot that fell back, start there.
     */
    if (cfg->postgres.history_check && info->state_lsn > info->start_lsn)
        info->start_lsn = info->state_lsn;
    if ((err = start_streaming(conn, cfg, info, errstr, errstr_size)) < 0)
        goto fail;
    if (PQsetnonblocking(conn, 1) != 0) {
        snprintf(errstr, errstr_size, "cannot make the connection non-blocking");
        err = -EAGAIN;
        goto fail;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errstr_size, "out of memory");
        err = -EAGAIN;
        goto fail;
    }
    c->conn = conn;
    *out = c;
    return 0;

fail:
    PQfinish(conn);
    return err;
}

void repl_notice_to_log(void *arg, const char *message)
{
    char line[512];

    (void)arg;
    repl_first_line(message, line, sizeof(line));
    log_info("postgresql: %s", line);
}

bool repl_connect_error_permanent(const char *msg)
{
    static const char *const permanent[] = {
        "authentication failed",          /* password, scram, md5, cert, peer... */
        "no pg_hba.conf entry",           /* no line matches */
        "pg_hba.conf rejects connection", /* a "reject" line matches */
        "certificate verify failed",      /* the server's certificate, another CA */
        "does not match host name",       /* verify-full: the name is not in it */
        "could not read root certificate file",
        "root certificate file",          /* "... does not exist" */
        "could not open certificate file",
        "could not load private key file",
        "certificate present, but not private key file",
        "private key file", /* "... has group or world access" */
    };

    for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
        if (strstr(msg, permanent[i]))
            return true;
    return false;
}

int repl_socket(const repl_conn *c)
{
    return PQsocket(c->conn);
}

static int conn_error(repl_conn *c, const char *what, char *errstr, size_t errstr_size)
{
    char msg[512];

    repl_first_line(PQerrorMessage(c->conn), msg, sizeof(msg));
    snprintf(errstr, errstr_size, "%s: %s", what, msg[0] ? msg : "connection lost");
    return -EAGAIN;
}

int repl_consume(repl_conn *c, char *errstr, size_t errstr_size)
{
    if (!PQconsumeInput(c->conn))
        return conn_error(c, "replication connection lost", errstr, errstr_size);
    return 0;
}

int repl_read(repl_conn *c, struct wal_frame *f, char *errstr, size_t errstr_size)
{
    int n;

    if (c->copybuf) {
        PQfreemem(c->copybuf);
        c->copybuf = NULL;
    }
    n = PQgetCopyData(c->conn, &c->copybuf, 1);
    if (n > 0) {
        if (wal_frame_parse(c->copybuf, (size_t)n, f, errstr, errstr_size) < 0)
            return -EBADMSG;
        return 1;
    }
    if (n == 0)
        return 0;
    if (n == -1) {
        /* The server ended the COPY: collect its reason. */
        PGresult *res = PQgetResult(c->conn);
        char msg[512];

        int err = -EAGAIN;

        repl_first_line(res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                                                            : "server ended the stream",
                      msg, sizeof(msg));
        if (strcmp(sqlstate(res), "42704") == 0) {
            /*
             * undefined_object while decoding: the publication did not exist yet when
             * the changes the slot must replay were written.  Retrying replays the
             * same changes and fails the same way.
             */
            snprintf(errstr, errstr_size,
                     "replication stream ended: %s: the publication must be created before "
                     "the slot (sql/002_publication.sql does both in order); recreate the "
                     "slot after the publication",
                     msg);
            err = -EPERM;
        } else {
            snprintf(errstr, errstr_size, "replication stream ended: %s", msg);
        }
        PQclear(res);
        return err;
    }
    return conn_error(c, "replication connection lost", errstr, errstr_size);
}

int repl_send_status(repl_conn *c, lsn_t write, lsn_t flush, bool reply_requested,
                     char *errstr, size_t errstr_size)
{
    char msg[WAL_STATUS_LEN];
    struct timeval tv;

    gettimeofday(&tv, NULL);
    wal_status_build(msg, write, flush, flush,
                     wal_unix_to_pg_us((int64_t)tv.tv_sec * 1000000 + tv.tv_usec),
                     reply_requested);
    if (PQputCopyData(c->conn, msg, sizeof(msg)) <= 0)
        return conn_error(c, "cannot send standby status", errstr, errstr_size);
    return repl_flush(c, errstr, errstr_size);
}

bool repl_want_write(const repl_conn *c)
{
    return c->want_write;
}

int repl_flush(repl_conn *c, char *errstr, size_t errstr_size)
{
    int r = PQflush(c->conn);

    if (r < 0)
        return conn_error(c, "cannot send to the server", errstr, errstr_size);
    c->want_write = r > 0;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait up to ms for the socket to become readable and read it; false on error. */
static bool wait_readable(PGconn *conn, int64_t ms)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};

    if (ms < 0)
        ms = 0;
    if (poll(&pfd, 1, (int)ms) < 0 && errno != EINTR)
        return false;
    return PQconsumeInput(conn) != 0;
}

bool repl_close(repl_conn *c, bool graceful, int timeout_ms)
{
    bool done = false;

    if (!c)
        return false;
    if (c->copybuf)
        PQfreemem(c->copybuf);
    c->copybuf = NULL;
    if (graceful && PQputCopyEnd(c->conn, NULL) > 0) {
        int64_t deadline = now_ms() + timeout_ms;
        bool ok = true;

        /* Push CopyDone out, then read (and discard) until the server's CopyDone. */
        while (ok && PQflush(c->conn) > 0 && now_ms() < deadline) {
            struct pollfd pfd = {.fd = PQsocket(c->conn), .events = POLLOUT};

            ok = poll(&pfd, 1, 100) >= 0 || errno == EINTR;
        }
        while (ok && now_ms() < deadline) {
            char *buf = NULL;
            int n = PQgetCopyData(c->conn, &buf, 1);

            if (buf)
                PQfreemem(buf);
            if (n > 0)
                continue;
            if (n == -1)
                break;
            if (n < 0) {
                ok = false;
                break;
            }
            ok = wait_readable(c->conn, deadline - now_ms());
        }
        /* Then the command's results: CommandComplete, ReadyForQuery. */
        while (ok && now_ms() < deadline) {
            PGresult *res;

            if (PQisBusy(c->conn)) {
                ok = wait_readable(c->conn, deadline - now_ms());
                continue;
            }
            res = PQgetResult(c->conn);
            if (!res) {
                /* The server answered our CopyDone: it read everything before it. */
                done = true;
                break;
            }
            PQclear(res);
        }
    }
    PQfinish(c->conn);
    free(c);
    return done;
}

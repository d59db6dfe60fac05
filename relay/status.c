/*
 * status.c -- `outbox-relay check` and `outbox-relay status`.
 *
 * Both open an ordinary (not a replication) connection with the configured DSN:
 * catalog queries and pg_current_wal_lsn() need one, and pg_hba.conf matches a
 * logical replication connection like an ordinary one to the same database, so
 * what works here works for the relay.  Queries take their values as parameters
 * (the extended protocol is available on an ordinary connection).  Notices are
 * dropped rather than printed by libpq to stderr.
 *
 * check prints findings as they are made and counts failures; a query that fails
 * is itself a failure, reported with the server's message.  status collects the
 * facts into a struct first, then prints them as text or as one JSON object, so
 * both forms say the same things.
 *
 * Every line goes out through emit(), which scrubs the configuration's secrets
 * from it: the masked DSN is printed on purpose, and a server error that quotes
 * part of the connection string back cannot show a password.
 */
#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "history.h"
#include "jsonbuf.h"
#include "redact.h"
#include "replication.h"
#include "sink.h"

#define ATTR_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Room for one masked connection string in messages. */
#define DSN_SHOWN 512

struct out {
    FILE *out;
    FILE *err;
    redact_set *secrets; /* NULL when out of memory: then lines are printed unscrubbed */
    int failures;
    int warnings;
};

static void emit(struct out *o, FILE *f, const char *fmt, ...) ATTR_PRINTF(3, 4);

/* Format, scrub and write one piece of output, however long. */
static void emit(struct out *o, FILE *f, const char *fmt, ...)
{
    char *raw = NULL, *clean = NULL;
    size_t need;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (raw = malloc((size_t)n + 1)) == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(raw, (size_t)n + 1, fmt, ap);
    va_end(ap);
    need = redact_set_scrub(o->secrets, raw, (size_t)n, NULL, 0);
    if ((clean = malloc(need + 1)) != NULL) {
        redact_set_scrub(o->secrets, raw, (size_t)n, clean, need + 1);
        fputs(clean, f);
    }
    free(raw);
    free(clean);
}

enum finding { OK, WARN, FAIL, INFO };

static void item(struct out *o, enum finding kind, const char *fmt, ...) ATTR_PRINTF(3, 4);

/* One finding of check: "  ok    text", "  warn  text", "  FAIL  text" or "        text". */
static void item(struct out *o, enum finding kind, const char *fmt, ...)
{
    static const char *const tags[] = {"ok  ", "warn", "FAIL", "    "};
    char text[1536];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    emit(o, o->out, "  %s  %s\n", tags[kind], text);
    if (kind == FAIL) {
        o->failures++;
        emit(o, o->err, "outbox-relay: check failed: %s\n", text);
    } else if (kind == WARN) {
        o->warnings++;
    }
}

static void out_init(struct out *o, const struct relay_config *cfg, FILE *out, FILE *err)
{
    memset(o, 0, sizeof(*o));
    o->out = out;
    o->err = err;
    o->secrets = redact_set_new();
    if (o->secrets != NULL && redact_set_add_config(o->secrets, cfg) < 0) {
        /* Better no output than unscrubbed output: mask nothing less than before. */
        redact_set_free(o->secrets);
        o->secrets = NULL;
    }
}

static const char *level_name(enum relay_log_level l)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};

    return (int)l >= 0 && l <= RELAY_LOG_ERROR ? names[l] : "?";
}

/*
 * PostgreSQL
 */

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/*
 * An ordinary connection with the configured DSN; connect_timeout defaults to
 * timeout_ms (the DSN may set its own).  NULL with errstr set on failure.
 */
static PGconn *pg_connect(const struct relay_config *cfg, int timeout_ms, char *errstr,
                          size_t errstr_size)
{
    PGconn *conn = repl_connect(cfg->postgres.dsn, "outbox-relay",
                                timeout_ms < 1000 ? 1 : timeout_ms / 1000, false);

    if (conn == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[512];

        repl_first_line(PQerrorMessage(conn), msg, sizeof(msg));
        snprintf(errstr, errstr_size, "cannot connect to postgresql: %s", msg);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notice, NULL);
    return conn;
}

/*
 * Run a query with text parameters; NULL with errstr "what: message" when it does
 * not return rows.  The caller PQclear()s the result.
 */
static PGresult *query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                       const char *what, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    int n;

    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    /* "what: " then the message's first line, straight into errstr: clipped, never overrun. */
    n = snprintf(errstr, errstr_size, "%s: ", what);
    if (n >= 0 && (size_t)n < errstr_size)
        repl_first_line(res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                                                            : PQerrorMessage(conn),
                        errstr + n, errstr_size - (size_t)n);
    PQclear(res);
    return NULL;
}

static bool is_true(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && strcmp(PQgetvalue(res, row, col), "t") == 0;
}


/*
 * check
 */

/* What check learned on the way, for the plan at the end. */
struct facts {
    bool connected;
    bool slot_exists;
    char slot_confirmed[32];
    bool publication_exists;
    char publication_tables[512];
    bool outbox_owner;
    bool can_create_in_db;
    bool superuser;
};

static void check_role(struct out *o, PGconn *conn, const struct relay_config *cfg, struct facts *f)
{
    char err[640];
    PGresult *res = query(conn,
                          "SELECT r.rolname, r.rolsuper, r.rolreplication, "
                          "pg_catalog.has_database_privilege(pg_catalog.current_database(), "
                          "'CREATE') FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
                          0, NULL, "cannot read the role's attributes", err, sizeof(err));

    if (res == NULL) {
        item(o, FAIL, "%s", err);
        return;
    }
    if (PQntuples(res) != 1) {
        item(o, FAIL, "cannot find the current role in pg_roles");
        PQclear(res);
        return;
    }
    f->superuser = is_true(res, 0, 1);
    f->can_create_in_db = f->superuser || is_true(res, 0, 3);
    if (f->superuser)
        item(o, WARN,
             "role \"%s\" is a superuser: a least-privilege role is safer "
             "(sql/003_relay_role.sql)",
             PQgetvalue(res, 0, 0));
    else if (is_true(res, 0, 2))
        item(o, OK, "role \"%s\" has REPLICATION", PQgetvalue(res, 0, 0));
    else if (cfg->postgres.mode == RELAY_MODE_REPLICATION)
        item(o, FAIL,
             "role \"%s\" lacks REPLICATION, which replication mode needs: ALTER ROLE %s "
             "REPLICATION, or use postgres.mode: polling",
             PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 0));
    else
        item(o, OK, "role \"%s\" (polling mode needs no REPLICATION)", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void check_server(struct out *o, PGconn *conn, const struct relay_config *cfg)
{
    char err[640];
    PGresult *res;

    if (PQserverVersion(conn) < 130000)
        item(o, FAIL, "server version %d is too old: outbox-relay needs PostgreSQL 13 or later",
             PQserverVersion(conn));
    else
        item(o, OK, "server version %s", PQparameterStatus(conn, "server_version"));

    res = query(conn, "SELECT pg_catalog.current_setting('wal_level')", 0, NULL,
                "cannot read wal_level", err, sizeof(err));
    if (res == NULL) {
        item(o, FAIL, "%s", err);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "logical") == 0)
        item(o, OK, "wal_level is \"logical\"");
    else if (cfg->postgres.mode == RELAY_MODE_REPLICATION)
        item(o, FAIL,
             "wal_level is \"%s\": replication mode needs wal_level = logical (set it in "
             "postgresql.conf and restart the server), or use postgres.mode: polling",
             PQgetvalue(res, 0, 0));
    else
        item(o, OK, "wal_level is \"%s\" (polling mode does not need logical)",
             PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void check_outbox(struct out *o, PGconn *conn, const struct relay_config *cfg,
                         struct facts *f)
{
    const char *params[] = {cfg->outbox.schema, cfg->outbox.table};
    const char *schema = cfg->outbox.schema, *table = cfg->outbox.table;
    char err[640];
    PGresult *res = query(
        conn,
        "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE'), "
        "pg_catalog.has_schema_privilege(n.oid, 'USAGE'), "
        "pg_catalog.has_table_privilege(c.oid, 'SELECT'), "
        "pg_catalog.has_table_privilege(c.oid, 'DELETE'), "
        "pg_catalog.has_table_privilege(c.oid, 'UPDATE') OR EXISTS (SELECT 1 FROM "
        "pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'published_at' AND "
        "pg_catalog.has_column_privilege(c.oid, a.attnum, 'UPDATE')), "
        "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND "
        "a.attname = 'seq' AND NOT a.attisdropped), "
        "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND "
        "a.attname = 'published_at' AND NOT a.attisdropped), "
        "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND "
        "a.attname = $3 AND NOT a.attisdropped) "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
        3, (const char *const[]){params[0], params[1], cfg->outbox.key_column},
        "cannot look up the outbox table", err, sizeof(err));

    if (res == NULL) {
        item(o, FAIL, "%s", err);
        return;
    }
    if (PQntuples(res) == 0) {
        item(o, FAIL,
             "outbox table \"%s.%s\" does not exist: create it (see sql/) or fix "
             "outbox.table",
             schema, table);
        PQclear(res);
        return;
    }
    f->outbox_owner = is_true(res, 0, 0) || f->superuser;
    if (!is_true(res, 0, 1) || !is_true(res, 0, 2))
        item(o, FAIL,
             "the role may not read outbox table \"%s.%s\": GRANT USAGE ON SCHEMA and "
             "SELECT ON the table (sql/003_relay_role.sql)",
             schema, table);
    else
        item(o, OK, "outbox table \"%s.%s\" exists and the role may read it", schema, table);
    if (!is_true(res, 0, 7))
        item(o, FAIL, "outbox table \"%s.%s\" has no column \"%s\" (outbox.key_column)", schema,
             table, cfg->outbox.key_column);

    if (cfg->postgres.mode == RELAY_MODE_POLLING) {
        bool mark = cfg->polling.after_publish == RELAY_AFTER_MARK;

        if (!is_true(res, 0, 5) || (mark && !is_true(res, 0, 6)))
            item(o, FAIL,
                 "outbox table \"%s.%s\" lacks the column \"%s\" polling mode needs: apply "
                 "sql/001_outbox_table.sql and sql/004_polling.sql",
                 schema, table, !is_true(res, 0, 5) ? "seq" : "published_at");
        if (!mark && !is_true(res, 0, 3))
            item(o, FAIL,
                 "the role may not delete from \"%s.%s\" (polling.after_publish: "
                 "delete): apply sql/004_polling.sql",
                 schema, table);
        if (mark && !is_true(res, 0, 4))
            item(o, FAIL,
                 "the role may not update \"published_at\" of \"%s.%s\" "
                 "(polling.after_publish: mark): apply sql/004_polling.sql",
                 schema, table);
        if (mark && cfg->polling.retention_ms > 0 && !is_true(res, 0, 3))
            item(o, FAIL,
                 "the role may not delete from \"%s.%s\", which polling.retention "
                 "needs: apply sql/004_polling.sql",
                 schema, table);
    }
    PQclear(res);
}

static void check_publication(struct out *o, PGconn *conn, const struct relay_config *cfg,
                              struct facts *f)
{
    const char *params[] = {cfg->postgres.publication, cfg->outbox.schema, cfg->outbox.table};
    const char *pub = cfg->postgres.publication;
    char err[640];
    PGresult *res = query(
        conn,
        "SELECT p.pubinsert, COALESCE((SELECT pg_catalog.string_agg(pg_catalog.quote_ident("
        "t.schemaname) || '.' || pg_catalog.quote_ident(t.tablename), ', ' ORDER BY "
        "t.schemaname, t.tablename) FROM pg_catalog.pg_publication_tables t WHERE t.pubname = "
        "p.pubname), ''), EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables t WHERE "
        "t.pubname = p.pubname AND t.schemaname = $2 AND t.tablename = $3) "
        "FROM pg_catalog.pg_publication p WHERE p.pubname = $1",
        3, params, "cannot look up the publication", err, sizeof(err));

    if (res == NULL) {
        item(o, FAIL, "%s", err);
        return;
    }
    if (PQntuples(res) == 0) {
        if (f->can_create_in_db && f->outbox_owner)
            item(o, OK, "publication \"%s\" does not exist: the relay will create it", pub);
        else
            item(o, FAIL,
                 "publication \"%s\" does not exist and the role may not create it (it needs "
                 "CREATE on the database and ownership of the outbox table): apply "
                 "sql/002_publication.sql",
                 pub);
        PQclear(res);
        return;
    }
    f->publication_exists = true;
    snprintf(f->publication_tables, sizeof(f->publication_tables), "%s", PQgetvalue(res, 0, 1));
    if (!is_true(res, 0, 0))
        item(o, FAIL,
             "publication \"%s\" does not publish inserts: ALTER PUBLICATION %s SET "
             "(publish = 'insert')",
             pub, pub);
    else if (!is_true(res, 0, 2) && !f->outbox_owner)
        item(o, FAIL,
             "publication \"%s\" lacks outbox table \"%s.%s\" and the role, not its owner, "
             "may not add it: ALTER PUBLICATION %s ADD TABLE ...",
             pub, cfg->outbox.schema, cfg->outbox.table, pub);
    else if (!is_true(res, 0, 2))
        item(o, OK, "publication \"%s\" lacks outbox table \"%s.%s\": the relay will add it", pub,
             cfg->outbox.schema, cfg->outbox.table);
    else
        item(o, OK, "publication \"%s\" publishes inserts of %s", pub, PQgetvalue(res, 0, 1));
    PQclear(res);
}

static void check_cdc(struct out *o, PGconn *conn, const struct relay_config *cfg)
{
    char err[640];

    for (size_t i = 0; i < cfg->cdc.ntables; i++) {
        const struct relay_table *t = &cfg->cdc.tables[i];
        const char *params[] = {t->schema, t->table};
        PGresult *res = query(conn,
                              "SELECT pg_catalog.has_table_privilege(c.oid, 'SELECT') FROM "
                              "pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = "
                              "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                              2, params, "cannot look up a cdc table", err, sizeof(err));

        if (res == NULL) {
            item(o, FAIL, "%s", err);
            continue;
        }
        if (PQntuples(res) == 0)
            item(o, FAIL, "cdc table \"%s.%s\" does not exist", t->schema, t->table);
        else if (!is_true(res, 0, 0))
            item(o, FAIL, "the role may not read cdc table \"%s.%s\"", t->schema, t->table);
        else
            item(o, OK, "cdc table \"%s.%s\" exists and the role may read it", t->schema, t->table);
        PQclear(res);
    }
}

static void check_slot(struct out *o, PGconn *conn, const struct relay_config *cfg, struct facts *f)
{
    const char *params[] = {cfg->postgres.slot};
    const char *slot = cfg->postgres.slot;
    char err[640];
    PGresult *res =
        query(conn,
              "SELECT s.plugin, s.slot_type, s.database = pg_catalog.current_database(), s.active, "
              "s.active_pid, s.confirmed_flush_lsn, COALESCE(s.wal_status, ''), s.database "
              "FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1",
              1, params, "cannot look up the replication slot", err, sizeof(err));

    if (res == NULL) {
        item(o, FAIL, "%s", err);
        return;
    }
    if (PQntuples(res) == 0) {
        item(o, WARN,
             "replication slot \"%s\" does not exist: the relay will create it, and decode "
             "only what commits after that (sql/002_publication.sql creates it with the table)",
             slot);
        PQclear(res);
        return;
    }
    f->slot_exists = true;
    snprintf(f->slot_confirmed, sizeof(f->slot_confirmed), "%s",
             PQgetisnull(res, 0, 5) ? "none" : PQgetvalue(res, 0, 5));
    if (strcmp(PQgetvalue(res, 0, 1), "logical") != 0 ||
        strcmp(PQgetvalue(res, 0, 0), "pgoutput") != 0)
        item(o, FAIL,
             "replication slot \"%s\" exists but is not a logical slot of plugin \"pgoutput\" "
             "(plugin \"%s\"): choose another postgres.slot",
             slot, PQgetvalue(res, 0, 0));
    else if (!is_true(res, 0, 2))
        item(o, FAIL, "replication slot \"%s\" belongs to database \"%s\", not this one", slot,
             PQgetvalue(res, 0, 7));
    else if (strcmp(PQgetvalue(res, 0, 6), "lost") == 0)
        item(o, FAIL,
             "replication slot \"%s\" is invalidated (wal_status \"lost\"): the WAL it needs "
             "is gone; see docs/operations.md",
             slot);
    else
        item(o, strcmp(PQgetvalue(res, 0, 6), "unreserved") == 0 ? WARN : OK,
             "replication slot \"%s\": plugin pgoutput, confirmed at %s, wal_status \"%s\"%s", slot,
             f->slot_confirmed, PQgetvalue(res, 0, 6),
             strcmp(PQgetvalue(res, 0, 6), "unreserved") == 0
                 ? " (close to being invalidated: max_slot_wal_keep_size)"
                 : "");
    if (is_true(res, 0, 3))
        item(o, INFO,
             "slot \"%s\" is active (pid %s): another relay is streaming from it, "
             "so this one would wait as a standby",
             slot, PQgetvalue(res, 0, 4));
    PQclear(res);
}

/*
 * The slot's row of the state table (qname, quoted), against the server and the slot
 * as check_slot() found it: the same history check, in the same words, as the relay
 * runs at its start (history.c), so that check says in advance when it will refuse.
 */
static void check_state_record(struct out *o, PGconn *conn, const struct relay_config *cfg,
                               const struct facts *f, const char *qname)
{
    char err[640], sql[512], msg[1024];
    struct history_facts h = {
        .slot = cfg->postgres.slot,
        .state_schema = cfg->postgres.state_schema,
        .state_table = cfg->postgres.state_table,
        .slot_exists = f->slot_exists,
    };
    PGresult *res, *srv;

    snprintf(sql, sizeof(sql),
             "SELECT system_identifier, timeline, confirmed_lsn::text FROM %s "
             "WHERE slot_name = $1",
             qname);
    res = query(conn, sql, 1, (const char *const[]){cfg->postgres.slot},
                "cannot read the state table", err, sizeof(err));
    if (res == NULL) {
        item(o, FAIL, "%s", err);
        return;
    }
    if (PQntuples(res) == 0) {
        item(o, OK, "no record for slot \"%s\" yet: the relay records it at its first start",
             cfg->postgres.slot);
        PQclear(res);
        return;
    }
    srv = query(conn,
                "SELECT s.system_identifier::text, c.timeline_id, "
                "pg_catalog.pg_current_wal_lsn()::text FROM pg_catalog.pg_control_system() s, "
                "pg_catalog.pg_control_checkpoint() c",
                0, NULL, "cannot read the server's identity", err, sizeof(err));
    if (srv == NULL) {
        item(o, FAIL, "%s", err);
        PQclear(res);
        return;
    }
    h.system_id = PQgetvalue(srv, 0, 0);
    h.timeline = (uint32_t)strtoul(PQgetvalue(srv, 0, 1), NULL, 10);
    if (!lsn_parse(PQgetvalue(srv, 0, 2), &h.server_lsn))
        h.server_lsn = LSN_INVALID;
    if (!f->slot_exists || !lsn_parse(f->slot_confirmed, &h.slot_confirmed))
        h.slot_confirmed = LSN_INVALID;
    h.state_found = true;
    h.state_system_id = PQgetvalue(res, 0, 0);
    h.state_timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
    if (!lsn_parse(PQgetvalue(res, 0, 2), &h.state_lsn))
        h.state_lsn = LSN_INVALID;
    switch (history_check(&h, msg, sizeof(msg))) {
    case HISTORY_REFUSE:
        item(o, FAIL, "the relay will refuse to run: %s", msg);
        break;
    case HISTORY_SLOT_BEHIND:
    case HISTORY_RECORD_CAUGHT_UP:
        item(o, OK, "last recorded position of slot \"%s\": %s; %s", cfg->postgres.slot,
             PQgetvalue(res, 0, 2), msg);
        break;
    default:
        item(o, OK, "last recorded position of slot \"%s\": %s", cfg->postgres.slot,
             PQgetvalue(res, 0, 2));
        break;
    }
    PQclear(srv);
    PQclear(res);
}

static void check_state_table(struct out *o, PGconn *conn, const struct relay_config *cfg,
                              const struct facts *f)
{
    const char *schema = cfg->postgres.state_schema, *table = cfg->postgres.state_table;
    enum finding missing = cfg->postgres.history_check ? FAIL : WARN;
    char err[640];
    char *qname = repl_quote_table(conn, schema, table);
    PGresult *res;

    if (qname == NULL) {
        item(o, FAIL, "out of memory");
        return;
    }
    res =
        query(conn,
              "SELECT pg_catalog.has_table_privilege(c.oid, 'SELECT'), "
              "pg_catalog.has_table_privilege(c.oid, 'INSERT'), "
              "pg_catalog.has_table_privilege(c.oid, 'UPDATE') FROM pg_catalog.pg_class c "
              "WHERE c.oid = pg_catalog.to_regclass($1)",
              1, (const char *const[]){qname}, "cannot look up the state table", err, sizeof(err));
    if (res == NULL) {
        item(o, FAIL, "%s", err);
        free(qname);
        return;
    }
    if (PQntuples(res) == 0) {
        PGresult *sch;

        PQclear(res);
        sch = query(conn,
                    "SELECT pg_catalog.has_schema_privilege(n.oid, 'CREATE') FROM "
                    "pg_catalog.pg_namespace n WHERE n.nspname = $1",
                    1, (const char *const[]){schema}, "cannot look up the state table's schema",
                    err, sizeof(err));
        if (sch == NULL)
            item(o, FAIL, "%s", err);
        else if (PQntuples(sch) == 1 && is_true(sch, 0, 0))
            item(o, OK, "state table \"%s.%s\" does not exist: the relay will create it", schema,
                 table);
        else
            item(o, missing,
                 "state table \"%s.%s\" does not exist and the role may not create it: apply "
                 "sql/005_relay_state.sql%s",
                 schema, table,
                 cfg->postgres.history_check ? " (or set postgres.history_check: off)" : "");
        PQclear(sch);
        free(qname);
        return;
    }
    if (!is_true(res, 0, 0) || !is_true(res, 0, 1) || !is_true(res, 0, 2))
        item(o, missing,
             "the role needs SELECT, INSERT and UPDATE on state table \"%s.%s\": apply "
             "sql/005_relay_state.sql",
             schema, table);
    else
        item(o, OK, "state table \"%s.%s\" exists and the role may write it", schema, table);
    if (cfg->postgres.history_check && is_true(res, 0, 0))
        check_state_record(o, conn, cfg, f, qname);
    PQclear(res);
    free(qname);
}

static void check_postgres(struct out *o, const struct relay_config *cfg, int timeout_ms,
                           struct facts *f)
{
    char err[640], dsn[DSN_SHOWN];
    PGconn *conn;

    redact_dsn(cfg->postgres.dsn, dsn, sizeof(dsn));
    emit(o, o->out, "postgresql (dsn \"%s\"):\n", dsn);
    conn = pg_connect(cfg, timeout_ms, err, sizeof(err));
    if (conn == NULL) {
        item(o, FAIL, "%s", err);
        return;
    }
    f->connected = true;
    item(o, OK, "connected to database \"%s\" as role \"%s\"", PQdb(conn), PQuser(conn));
    check_server(o, conn, cfg);
    check_role(o, conn, cfg, f);
    check_outbox(o, conn, cfg, f);
    if (cfg->postgres.mode == RELAY_MODE_REPLICATION) {
        check_publication(o, conn, cfg, f);
        check_cdc(o, conn, cfg);
        check_slot(o, conn, cfg, f);
        check_state_table(o, conn, cfg, f);
    }
    PQfinish(conn);
}

/*
 * The sink: its own check and plan lines (sink.h), written through these.
 */

static void sink_line(void *ctx, enum sink_check_level level, const char *text)
{
    item(ctx, level == SINK_CHECK_OK ? OK : level == SINK_CHECK_WARN ? WARN : FAIL, "%s", text);
}

static void sink_heading(void *ctx, const char *text)
{
    struct out *o = ctx;

    emit(o, o->out, "%s\n", text);
}

static void plan_item(void *ctx, const char *label, const char *text)
{
    struct out *o = ctx;

    emit(o, o->out, "  %-15s %s\n", label, text);
}

/*
 * The plan
 */

static void print_plan(struct out *o, const struct relay_config *cfg, const struct facts *f)
{
    char dsn[DSN_SHOWN];

    redact_dsn(cfg->postgres.dsn, dsn, sizeof(dsn));
    emit(o, o->out, "plan:\n");
    emit(o, o->out, "  postgresql      %s\n", dsn);
    if (cfg->postgres.mode == RELAY_MODE_POLLING) {
        emit(o, o->out,
             "  mode            polling: SELECT from \"%s.%s\" every %" PRId64
             " ms or on NOTIFY \"%s\", %" PRId64 " rows a batch, then %s\n",
             cfg->outbox.schema, cfg->outbox.table, cfg->polling.interval_ms,
             cfg->polling.notify_channel, cfg->polling.batch_size,
             cfg->polling.after_publish == RELAY_AFTER_MARK ? "mark them published"
                                                            : "delete them");
    } else {
        emit(o, o->out, "  mode            replication (logical decoding, pgoutput)\n");
        if (f == NULL || !f->connected)
            emit(o, o->out, "  slot            \"%s\" (used if it exists, else created)\n",
                 cfg->postgres.slot);
        else if (f->slot_exists)
            emit(o, o->out, "  slot            \"%s\": use it, from %s\n", cfg->postgres.slot,
                 f->slot_confirmed);
        else
            emit(o, o->out, "  slot            \"%s\": create it\n", cfg->postgres.slot);
        if (f != NULL && f->publication_exists)
            emit(o, o->out, "  publication     \"%s\": %s\n", cfg->postgres.publication,
                 f->publication_tables[0] ? f->publication_tables : "no tables");
        else
            emit(o, o->out, "  publication     \"%s\" of \"%s.%s\"%s\n", cfg->postgres.publication,
                 cfg->outbox.schema, cfg->outbox.table,
                 f != NULL && f->connected ? ": create it" : "");
        emit(o, o->out, "  checkpoint      state table \"%s.%s\", history check %s\n",
             cfg->postgres.state_schema, cfg->postgres.state_table,
             cfg->postgres.history_check ? "on" : "off");
        emit(o, o->out, "  messages        pg_logical_emit_message() with prefix \"%s\"\n",
             cfg->outbox.messages_prefix);
        if (cfg->cdc.ntables > 0) {
            emit(o, o->out, "  cdc             publication \"%s\", topic \"%s\", tables",
                 cfg->cdc.publication, cfg->cdc.topic);
            for (size_t i = 0; i < cfg->cdc.ntables; i++)
                emit(o, o->out, "%s \"%s.%s\"", i ? "," : "", cfg->cdc.tables[i].schema,
                     cfg->cdc.tables[i].table);
            emit(o, o->out, "\n");
        }
    }
    emit(o, o->out, "  outbox          \"%s.%s\", key column \"%s\"\n", cfg->outbox.schema,
         cfg->outbox.table, cfg->outbox.key_column);
    {
        const struct sink_type *t = sink_type_of(cfg);
        const char *dl = t && t->dead_letter_destination ? t->dead_letter_destination(cfg) : "";

        if (t && t->plan)
            t->plan(cfg, plan_item, o);
        if (dl && dl[0])
            emit(o, o->out, "  dead letters    %s \"%s\"\n", t->caps.destination_word, dl);
        else
            emit(o, o->out,
                 "  dead letters    none: the relay stops at an event it cannot publish\n");
    }
    emit(o, o->out, "  admin endpoint  %s%s\n", cfg->admin.listen[0] ? "http://" : "disabled",
         cfg->admin.listen);
    emit(o, o->out, "  log             level %s, format %s\n", level_name(cfg->log.level),
         cfg->log.format == RELAY_LOG_FORMAT_JSON ? "json" : "text");
}

void relay_check_plan(const struct relay_config *cfg, FILE *out)
{
    struct out o;

    out_init(&o, cfg, out, stderr);
    print_plan(&o, cfg, NULL);
    redact_set_free(o.secrets);
}

int relay_check(const struct relay_config *cfg, int timeout_ms, FILE *out, FILE *err)
{
    struct facts f;
    struct out o;
    int rc;

    memset(&f, 0, sizeof(f));
    out_init(&o, cfg, out, err);
    emit(&o, out, "configuration \"%s\": ok\n", cfg->path);
    check_postgres(&o, cfg, timeout_ms, &f);
    {
        const struct sink_type *t = sink_type_of(cfg);
        struct sink_check_out so = {sink_line, sink_heading, &o};

        if (t && t->check)
            t->check(cfg, timeout_ms, &so);
    }
    print_plan(&o, cfg, &f);
    if (o.failures > 0)
        emit(&o, out, "check failed: %d problem(s), %d warning(s)\n", o.failures, o.warnings);
    else
        emit(&o, out, "check passed%s\n", o.warnings ? " with warnings" : "");
    rc = o.failures > 0 ? 1 : 0;
    redact_set_free(o.secrets);
    return rc;
}

/*
 * status
 */

/* The facts status reports; strings are empty when unknown. */
struct status {
    bool polling;
    char server_version[32];
    char system_id[32];
    char current_lsn[32];

    /* replication mode */
    bool slot_exists;
    char plugin[64];
    bool active;
    long long active_pid; /* 0: none */
    char confirmed_lsn[32];
    char restart_lsn[32];
    bool have_lag;
    long long lag_bytes;
    char wal_status[32];
    bool publication_exists;
    char publication_tables[1024];
    bool cdc_publication_exists;
    char cdc_publication_tables[1024];

    bool state_table_exists;
    char state_error[512]; /* the state table could not be read */
    bool state_found;
    char state_system_id[32];
    long long state_timeline;
    char state_lsn[32];
    char state_updated_at[64];

    /* polling mode */
    bool outbox_exists;
    long long backlog;
    bool have_oldest;
    double oldest_age_s;
    char oldest_created_at[64];
    long long poller_pid; /* 0: no instance holds the lock */
};

static void copy_value(char *dst, size_t size, const PGresult *res, int row, int col)
{
    snprintf(dst, size, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

/* Fill st from the server.  Returns 0 or -1 with errstr set. */
static int read_status(PGconn *conn, const struct relay_config *cfg, struct status *st,
                       char *errstr, size_t errstr_size)
{
    PGresult *res;

    snprintf(st->server_version, sizeof(st->server_version), "%s",
             PQparameterStatus(conn, "server_version") ? PQparameterStatus(conn, "server_version")
                                                       : "");
    res = query(conn,
                "SELECT (SELECT system_identifier::text FROM pg_catalog.pg_control_system()), "
                "(CASE WHEN pg_catalog.pg_is_in_recovery() THEN "
                "pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() "
                "END)::text",
                0, NULL, "cannot read the server's position", errstr, errstr_size);
    if (res == NULL)
        return -1;
    copy_value(st->system_id, sizeof(st->system_id), res, 0, 0);
    copy_value(st->current_lsn, sizeof(st->current_lsn), res, 0, 1);
    PQclear(res);

    if (st->polling) {
        const char *params[] = {cfg->outbox.schema, cfg->outbox.table};
        char *qname = repl_quote_table(conn, cfg->outbox.schema, cfg->outbox.table);
        char sql[1024], lockname[300];
        bool mark = cfg->polling.after_publish == RELAY_AFTER_MARK;

        if (qname == NULL) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        res = query(conn,
                    "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON "
                    "n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                    2, params, "cannot look up the outbox table", errstr, errstr_size);
        if (res == NULL) {
            free(qname);
            return -1;
        }
        st->outbox_exists = PQntuples(res) == 1;
        PQclear(res);
        if (st->outbox_exists) {
            snprintf(sql, sizeof(sql),
                     "SELECT count(*), min(created_at)::text, EXTRACT(epoch FROM now() - "
                     "min(created_at))::float8 FROM %s%s",
                     qname, mark ? " WHERE published_at IS NULL" : "");
            res = query(conn, sql, 0, NULL, "cannot read the outbox backlog", errstr, errstr_size);
            if (res == NULL) {
                free(qname);
                return -1;
            }
            st->backlog = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            st->have_oldest = !PQgetisnull(res, 0, 2);
            copy_value(st->oldest_created_at, sizeof(st->oldest_created_at), res, 0, 1);
            if (st->have_oldest)
                st->oldest_age_s = strtod(PQgetvalue(res, 0, 2), NULL);
            PQclear(res);
        }
        free(qname);
        /* The active poller holds pg_try_advisory_lock(hashtext('outbox-relay:s.t')). */
        snprintf(lockname, sizeof(lockname), "outbox-relay:%s.%s", cfg->outbox.schema,
                 cfg->outbox.table);
        res = query(conn,
                    "SELECT l.pid FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND "
                    "l.granted AND l.objsubid = 1 AND ((l.classid::int8 << 32) | "
                    "l.objid::int8) = pg_catalog.hashtext($1)::int8 LIMIT 1",
                    1, (const char *const[]){lockname}, "cannot read the advisory locks", errstr,
                    errstr_size);
        if (res == NULL)
            return -1;
        st->poller_pid = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
        PQclear(res);
        return 0;
    }

    res = query(conn,
                "SELECT s.plugin, s.active, s.active_pid, s.confirmed_flush_lsn::text, "
                "s.restart_lsn::text, COALESCE(s.wal_status, ''), ((CASE WHEN "
                "pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() ELSE "
                "pg_catalog.pg_current_wal_lsn() END) - s.confirmed_flush_lsn)::int8 "
                "FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1",
                1, (const char *const[]){cfg->postgres.slot}, "cannot read the replication slot",
                errstr, errstr_size);
    if (res == NULL)
        return -1;
    st->slot_exists = PQntuples(res) == 1;
    if (st->slot_exists) {
        copy_value(st->plugin, sizeof(st->plugin), res, 0, 0);
        st->active = is_true(res, 0, 1);
        st->active_pid = PQgetisnull(res, 0, 2) ? 0 : strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        copy_value(st->confirmed_lsn, sizeof(st->confirmed_lsn), res, 0, 3);
        copy_value(st->restart_lsn, sizeof(st->restart_lsn), res, 0, 4);
        copy_value(st->wal_status, sizeof(st->wal_status), res, 0, 5);
        st->have_lag = !PQgetisnull(res, 0, 6);
        st->lag_bytes = st->have_lag ? strtoll(PQgetvalue(res, 0, 6), NULL, 10) : 0;
    }
    PQclear(res);

    for (int k = 0; k < (cfg->cdc.ntables > 0 ? 2 : 1); k++) {
        const char *pub = k == 0 ? cfg->postgres.publication : cfg->cdc.publication;

        res = query(conn,
                    "SELECT COALESCE((SELECT pg_catalog.string_agg(pg_catalog.quote_ident("
                    "t.schemaname) || '.' || pg_catalog.quote_ident(t.tablename), ', ' ORDER "
                    "BY t.schemaname, t.tablename) FROM pg_catalog.pg_publication_tables t "
                    "WHERE t.pubname = p.pubname), '') FROM pg_catalog.pg_publication p WHERE "
                    "p.pubname = $1",
                    1, (const char *const[]){pub}, "cannot read the publication", errstr,
                    errstr_size);
        if (res == NULL)
            return -1;
        if (k == 0) {
            st->publication_exists = PQntuples(res) == 1;
            if (st->publication_exists)
                copy_value(st->publication_tables, sizeof(st->publication_tables), res, 0, 0);
        } else {
            st->cdc_publication_exists = PQntuples(res) == 1;
            if (st->cdc_publication_exists)
                copy_value(st->cdc_publication_tables, sizeof(st->cdc_publication_tables), res, 0,
                           0);
        }
        PQclear(res);
    }

    /* The relay's own checkpoint: a missing table or row is state, not an error. */
    {
        char *qname = repl_quote_table(conn, cfg->postgres.state_schema, cfg->postgres.state_table);
        char sql[1024], why[512];

        if (qname == NULL) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        res = query(conn, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1,
                    (const char *const[]){qname}, "cannot look up the state table", errstr,
                    errstr_size);
        if (res == NULL) {
            free(qname);
            return -1;
        }
        st->state_table_exists = is_true(res, 0, 0);
        PQclear(res);
        if (st->state_table_exists) {
            snprintf(sql, sizeof(sql),
                     "SELECT system_identifier, timeline::int8, confirmed_lsn::text, "
                     "updated_at::text FROM %s WHERE slot_name = $1",
                     qname);
            res = query(conn, sql, 1, (const char *const[]){cfg->postgres.slot},
                        "cannot read the state table", why, sizeof(why));
            if (res == NULL) {
                snprintf(st->state_error, sizeof(st->state_error), "%s", why);
            } else {
                st->state_found = PQntuples(res) == 1;
                if (st->state_found) {
                    copy_value(st->state_system_id, sizeof(st->state_system_id), res, 0, 0);
                    st->state_timeline = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
                    copy_value(st->state_lsn, sizeof(st->state_lsn), res, 0, 2);
                    copy_value(st->state_updated_at, sizeof(st->state_updated_at), res, 0, 3);
                }
                PQclear(res);
            }
        }
        free(qname);
    }
    return 0;
}

/* JSON helpers over struct jbuf: one member at a time, commas handled by *first. */
static void jkey(struct jbuf *b, bool *first, const char *key)
{
    if (!*first)
        jbuf_putc(b, ',');
    *first = false;
    jbuf_put_json_string(b, key, strlen(key));
    jbuf_putc(b, ':');
}

static void jstr(struct jbuf *b, bool *first, const char *key, const char *value)
{
    jkey(b, first, key);
    if (value == NULL || value[0] == '\0')
        jbuf_puts(b, "null");
    else
        jbuf_put_json_string(b, value, strlen(value));
}

static void jbool(struct jbuf *b, bool *first, const char *key, bool value)
{
    jkey(b, first, key);
    jbuf_puts(b, value ? "true" : "false");
}

static void jint(struct jbuf *b, bool *first, const char *key, bool known, long long value)
{
    jkey(b, first, key);
    if (known)
        jbuf_printf(b, "%lld", value);
    else
        jbuf_puts(b, "null");
}

/* A publication's tables, "a.b, c.d" as status reads them, as a JSON array. */
static void jtables(struct jbuf *b, bool *first, const char *key, const char *list)
{
    const char *s = list;
    bool f = true;

    jkey(b, first, key);
    jbuf_putc(b, '[');
    while (*s != '\0') {
        size_t n = strcspn(s, ",");

        if (!f)
            jbuf_putc(b, ',');
        f = false;
        jbuf_put_json_string(b, s, n);
        s += n;
        while (*s == ',' || *s == ' ')
            s++;
    }
    jbuf_putc(b, ']');
}

static void status_json(struct jbuf *b, const struct relay_config *cfg, const struct status *st)
{
    bool top = true, f;
    char table[300];

    jbuf_putc(b, '{');
    jstr(b, &top, "mode", st->polling ? "polling" : "replication");
    jkey(b, &top, "server");
    f = true;
    jbuf_putc(b, '{');
    jstr(b, &f, "version", st->server_version);
    jstr(b, &f, "system_identifier", st->system_id);
    jstr(b, &f, "current_wal_lsn", st->current_lsn);
    jbuf_putc(b, '}');

    if (st->polling) {
        snprintf(table, sizeof(table), "%s.%s", cfg->outbox.schema, cfg->outbox.table);
        jkey(b, &top, "outbox");
        f = true;
        jbuf_putc(b, '{');
        jstr(b, &f, "table", table);
        jbool(b, &f, "exists", st->outbox_exists);
        jint(b, &f, "unpublished_rows", st->outbox_exists, st->backlog);
        jstr(b, &f, "oldest_created_at", st->oldest_created_at);
        jkey(b, &f, "oldest_age_seconds");
        if (st->have_oldest)
            jbuf_printf(b, "%.3f", st->oldest_age_s);
        else
            jbuf_puts(b, "null");
        jbuf_putc(b, '}');
        jkey(b, &top, "poller");
        f = true;
        jbuf_putc(b, '{');
        jbool(b, &f, "active", st->poller_pid != 0);
        jint(b, &f, "pid", st->poller_pid != 0, st->poller_pid);
        jbuf_putc(b, '}');
        jbuf_puts(b, "}\n");
        return;
    }

    jkey(b, &top, "slot");
    f = true;
    jbuf_putc(b, '{');
    jstr(b, &f, "name", cfg->postgres.slot);
    jbool(b, &f, "exists", st->slot_exists);
    if (st->slot_exists) {
        jstr(b, &f, "plugin", st->plugin);
        jbool(b, &f, "active", st->active);
        jint(b, &f, "active_pid", st->active_pid != 0, st->active_pid);
        jstr(b, &f, "confirmed_flush_lsn", st->confirmed_lsn);
        jstr(b, &f, "restart_lsn", st->restart_lsn);
        jint(b, &f, "lag_bytes", st->have_lag, st->lag_bytes);
        jstr(b, &f, "wal_status", st->wal_status);
    }
    jbuf_putc(b, '}');

    jkey(b, &top, "publication");
    f = true;
    jbuf_putc(b, '{');
    jstr(b, &f, "name", cfg->postgres.publication);
    jbool(b, &f, "exists", st->publication_exists);
    if (st->publication_exists)
        jtables(b, &f, "tables", st->publication_tables);
    jbuf_putc(b, '}');
    if (cfg->cdc.ntables > 0) {
        jkey(b, &top, "cdc_publication");
        f = true;
        jbuf_putc(b, '{');
        jstr(b, &f, "name", cfg->cdc.publication);
        jbool(b, &f, "exists", st->cdc_publication_exists);
        if (st->cdc_publication_exists)
            jtables(b, &f, "tables", st->cdc_publication_tables);
        jbuf_putc(b, '}');
    }

    snprintf(table, sizeof(table), "%s.%s", cfg->postgres.state_schema, cfg->postgres.state_table);
    jkey(b, &top, "checkpoint");
    f = true;
    jbuf_putc(b, '{');
    jstr(b, &f, "table", table);
    jbool(b, &f, "table_exists", st->state_table_exists);
    if (st->state_error[0] != '\0')
        jstr(b, &f, "error", st->state_error);
    jbool(b, &f, "found", st->state_found);
    if (st->state_found) {
        jstr(b, &f, "system_identifier", st->state_system_id);
        jint(b, &f, "timeline", true, st->state_timeline);
        jstr(b, &f, "confirmed_lsn", st->state_lsn);
        jstr(b, &f, "updated_at", st->state_updated_at);
    }
    jbuf_putc(b, '}');
    jbuf_puts(b, "}\n");
}

static void status_text(struct out *o, const struct relay_config *cfg, const struct status *st)
{
    FILE *out = o->out;

    emit(o, out, "mode: %s\n", st->polling ? "polling" : "replication");
    emit(o, out, "server: postgresql %s, system %s, wal at %s\n", st->server_version,
         st->system_id[0] ? st->system_id : "unknown",
         st->current_lsn[0] ? st->current_lsn : "unknown");
    if (st->polling) {
        if (!st->outbox_exists) {
            emit(o, out, "outbox: table \"%s.%s\" does not exist\n", cfg->outbox.schema,
                 cfg->outbox.table);
        } else if (st->have_oldest) {
            emit(o, out, "outbox \"%s.%s\": %lld unpublished row(s), oldest from %s (%.1f s ago)\n",
                 cfg->outbox.schema, cfg->outbox.table, st->backlog, st->oldest_created_at,
                 st->oldest_age_s);
        } else {
            emit(o, out, "outbox \"%s.%s\": %lld unpublished row(s)\n", cfg->outbox.schema,
                 cfg->outbox.table, st->backlog);
        }
        if (st->poller_pid != 0)
            emit(o, out, "poller: active (backend pid %lld holds the lock)\n", st->poller_pid);
        else
            emit(o, out, "poller: no relay is polling this table\n");
        return;
    }

    if (!st->slot_exists) {
        emit(o, out, "slot \"%s\": does not exist (the relay creates it at its first start)\n",
             cfg->postgres.slot);
    } else {
        emit(o, out, "slot \"%s\": ", cfg->postgres.slot);
        if (st->active)
            emit(o, out, "active (pid %lld)", st->active_pid);
        else
            emit(o, out, "inactive");
        emit(o, out, ", plugin %s, confirmed_flush_lsn %s, restart_lsn %s", st->plugin,
             st->confirmed_lsn[0] ? st->confirmed_lsn : "none",
             st->restart_lsn[0] ? st->restart_lsn : "none");
        if (st->have_lag)
            emit(o, out, ", lag %lld bytes", st->lag_bytes);
        emit(o, out, ", wal_status %s\n", st->wal_status[0] ? st->wal_status : "unknown");
    }
    if (st->publication_exists)
        emit(o, out, "publication \"%s\": %s\n", cfg->postgres.publication,
             st->publication_tables[0] ? st->publication_tables : "no tables");
    else
        emit(o, out, "publication \"%s\": does not exist\n", cfg->postgres.publication);
    if (cfg->cdc.ntables > 0) {
        if (st->cdc_publication_exists)
            emit(o, out, "cdc publication \"%s\": %s\n", cfg->cdc.publication,
                 st->cdc_publication_tables[0] ? st->cdc_publication_tables : "no tables");
        else
            emit(o, out, "cdc publication \"%s\": does not exist\n", cfg->cdc.publication);
    }
    if (!st->state_table_exists)
        emit(o, out,
             "checkpoint: state table \"%s.%s\" does not exist (the relay creates it, "
             "or sql/005_relay_state.sql does)\n",
             cfg->postgres.state_schema, cfg->postgres.state_table);
    else if (st->state_error[0] != '\0')
        emit(o, out, "checkpoint: %s\n", st->state_error);
    else if (!st->state_found)
        emit(o, out,
             "checkpoint: no row for slot \"%s\" in \"%s.%s\" (the relay records one "
             "at its first start)\n",
             cfg->postgres.slot, cfg->postgres.state_schema, cfg->postgres.state_table);
    else
        emit(o, out, "checkpoint: confirmed %s at %s (system %s, timeline %lld) in \"%s.%s\"\n",
             st->state_lsn, st->state_updated_at, st->state_system_id, st->state_timeline,
             cfg->postgres.state_schema, cfg->postgres.state_table);
}

int relay_status(const struct relay_config *cfg, bool json, int timeout_ms, FILE *out, char *errstr,
                 size_t errstr_size)
{
    struct status *st = calloc(1, sizeof(*st));
    struct out o;
    PGconn *conn = NULL;
    int rc = 1;

    out_init(&o, cfg, out, stderr);
    if (st == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    st->polling = cfg->postgres.mode == RELAY_MODE_POLLING;
    conn = pg_connect(cfg, timeout_ms, errstr, errstr_size);
    if (conn == NULL || read_status(conn, cfg, st, errstr, errstr_size) < 0)
        goto out;
    if (json) {
        struct jbuf b;

        jbuf_init(&b);
        status_json(&b, cfg, st);
        if (b.oom) {
            snprintf(errstr, errstr_size, "out of memory");
            jbuf_free(&b);
            goto out;
        }
        /* Through emit()'s scrubbing like everything else (a mask keeps the JSON valid). */
        emit(&o, out, "%s", b.data);
        jbuf_free(&b);
    } else {
        status_text(&o, cfg, st);
    }
    rc = 0;

out:
    if (rc != 0 && json) {
        struct jbuf b;
        char clean[1024];

        redact_set_scrub(o.secrets, errstr, strlen(errstr), clean, sizeof(clean));
        jbuf_init(&b);
        jbuf_puts(&b, "{\"error\":");
        jbuf_put_json_string(&b, clean, strlen(clean));
        jbuf_puts(&b, "}\n");
        if (!b.oom)
            fputs(b.data, out);
        jbuf_free(&b);
    }
    if (rc != 0) {
        char clean[1024];

        redact_set_scrub(o.secrets, errstr, strlen(errstr), clean, sizeof(clean));
        snprintf(errstr, errstr_size, "%s", clean);
    }
    PQfinish(conn);
    free(st);
    redact_set_free(o.secrets);
    return rc;
}

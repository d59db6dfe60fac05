/*
 * config.h -- the relay's configuration: one YAML file, validated in full at start.
 *
 * The file is read with libyaml into a struct relay_config of plain values.  Every
 * problem -- an unknown key, a wrong type, a bad duration, a missing required key,
 * keys that contradict each other, an unset environment variable -- is reported as
 * "FILE:LINE:COLUMN: message" so that the operator can jump straight to it.
 * Nothing is validated lazily later: once relay_config_load() returns a config,
 * the relay can trust every field.
 *
 * Scalars may reference the environment: "${VAR}" is replaced by VAR's value (an
 * error when VAR is unset), "${VAR:-default}" falls back to default when VAR is
 * unset or empty, and "$$" is a literal '$'.
 *
 * Every key may also be set, or overridden, by an environment variable named
 * after it (relay_config_load_env()): OUTBOX_RELAY_<SECTION>_<KEY> in upper case,
 * such as OUTBOX_RELAY_POSTGRES_DSN; OUTBOX_RELAY_KAFKA_PROPERTIES_<NAME> for one
 * librdkafka property, '_' standing for '.'; and NAME_FILE for any of them, to read
 * the value from a file (a mounted secret).  The environment wins over the file,
 * and its problems are reported as "environment variable NAME: message".
 *
 * Every key, its type and its default is listed in docs/configuration.md.
 */
#ifndef RELAY_CONFIG_H
#define RELAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One "key: value" pair of a free-form map such as kafka.properties. */
struct relay_kv {
    char *key;
    char *value;
};

/* A schema-qualified table name, as PostgreSQL keeps it (unquoted, case kept). */
struct relay_table {
    char *schema;
    char *table;
};

enum relay_log_level {
    RELAY_LOG_DEBUG = 0,
    RELAY_LOG_INFO = 1,
    RELAY_LOG_WARN = 2,
    RELAY_LOG_ERROR = 3,
};

/* How log lines are written (log.format). */
enum relay_log_format {
    RELAY_LOG_FORMAT_TEXT = 0, /* "text": TIME LEVEL message key=value ... */
    RELAY_LOG_FORMAT_JSON = 1, /* "json": one JSON object per line */
};

/* How an event is rendered into a message (a sink's format key: kafka.format, stdout.format). */
enum relay_format {
    RELAY_FORMAT_CLOUDEVENTS = 0,            /* "cloudevents": binary mode, ce_* headers */
    RELAY_FORMAT_CLOUDEVENTS_STRUCTURED = 1, /* "cloudevents-structured": one JSON envelope */
    RELAY_FORMAT_DEBEZIUM = 2,               /* "debezium": as Debezium would write it */
};

/* What the pipeline does with an event it cannot publish (pipeline.on_bad_event). */
enum relay_bad_event {
    RELAY_BAD_EVENT_STOP = 0,        /* "stop": stop without confirming past it */
    RELAY_BAD_EVENT_DEAD_LETTER = 1, /* "dead-letter": set it aside and go on */
};

/*
 * The part of every sink's settings the core reads (the sink's rows fill it; its
 * struct relay_sink_config says where it sits).
 */
struct sink_common {
    char *destination;        /* destination template (kafka.topic); NULL: the sink has none */
    enum relay_format format; /* how events are rendered for it */
    char *dead_letter;        /* dead-letter destination on the sink (kafka.dlq_topic); NULL
                                 or "": none */
};

struct relay_sink_config;

/* How events are read from PostgreSQL (postgres.mode). */
enum relay_mode {
    RELAY_MODE_REPLICATION = 0, /* "replication": logical decoding from a slot */
    RELAY_MODE_POLLING = 1,     /* "polling": SELECT from the outbox table, woken by NOTIFY */
};

/* What the polling source does with an outbox row once it is published (polling.after_publish). */
enum relay_after_publish {
    RELAY_AFTER_DELETE = 0, /* "delete": the row is deleted */
    RELAY_AFTER_MARK = 1,   /* "mark": the row is marked published, kept for polling.retention */
};

struct relay_config {
    char *path; /* the file it was read from, for messages */

    struct {
        char *dsn;                     /* required; libpq connection string */
        enum relay_mode mode;          /* default replication */
        char *slot;                    /* default "outbox_relay"; unused in polling mode */
        char *publication;             /* default "outbox_relay"; unused in polling mode */
        int64_t status_interval_ms;    /* default 10s: forced standby status period */
        int64_t retry_interval_ms;     /* default 5s: wait before reconnecting */
        int64_t heartbeat_interval_ms; /* default 10s; 0 disables heartbeats */
        int64_t slot_lag_warning;      /* default 1 GiB; 0 disables the warning */
        char *state_schema;            /* from postgres.state_table, default "public" */
        char *state_table;             /* from postgres.state_table, default "outbox_relay_state" */
        int history_check;             /* "on" (1, default) or "off" (0): see docs/guarantees.md */
    } postgres;

    struct {
        char *schema;          /* from outbox.table, default "public" */
        char *table;           /* from outbox.table, default "outbox" */
        char *key_column;      /* default "aggregateid": message key; [a-z_][a-z0-9_]* */
        char *version_column;  /* default "version": event version (1 if no such column) */
        char *headers_column;  /* default "headers": JSON object of extra headers */
        char **header_columns; /* default none: columns copied to same-named headers */
        size_t nheader_columns;
        char *source;          /* default "": empty means derived from database and table */
        char *messages_prefix; /* default "outbox": pg_logical_emit_message() prefix */
    } outbox;

    /* How events flow through the pipeline (pipeline.c), whatever the source and sink. */
    struct {
        int64_t max_inflight_events; /* default 100000; alias kafka.max_inflight_events */
        int64_t max_inflight_bytes;  /* default 64 MiB; alias kafka.max_inflight_bytes */
        int64_t shutdown_timeout_ms; /* default 5s; alias kafka.shutdown_timeout */
        enum relay_bad_event on_bad_event; /* default dead-letter when a dead-letter
                                              destination is configured, else stop */
    } pipeline;

    /* The dead-letter table (sql/006_dead_letter.sql); both NULL when not configured. */
    struct {
        char *schema;
        char *table;
    } dead_letter;

    /*
     * The sink: the "sink" key's value (default: the first registered sink, or the one
     * whose section selects it), its index among the registered sinks, and the settings
     * of every registered sink, each a struct its own file defines (sink_<name>.c),
     * validated whether selected or not.  Read them through the accessors below.
     */
    char *sink_name;
    size_t sink;
    void **sink_settings;
    size_t nsinks;
    const struct relay_sink_config *const *sinks;

    struct {
        struct relay_table *tables; /* default none: tables whose changes are events */
        size_t ntables;
        char *topic;       /* default "cdc.{schema}.{table}": topic template */
        char *publication; /* default "outbox_relay_cdc": publication of the cdc tables */
    } cdc;

    /* The polling source's settings; checked in either mode, used only in polling mode. */
    struct {
        int64_t interval_ms;                    /* default 1s, > 0: poll period without NOTIFY */
        int64_t batch_size;                     /* default 1000, 1..100000: rows per SELECT */
        enum relay_after_publish after_publish; /* default delete */
        int64_t retention_ms; /* default 24h; 0: keep marked rows forever; mark mode only */
        char *notify_channel; /* default "outbox_relay": LISTEN channel; [a-z_][a-z0-9_]* */
    } polling;

    /*
     * The inbox relay (`outbox-relay inbox`, inbox.c): the consuming side.  dsn NULL
     * when the file configures no inbox; then postgres.dsn is required instead.
     */
    struct {
        char *dsn;            /* libpq connection string of the consuming service */
        char *schema;         /* from inbox.table, default "public" */
        char *table;          /* from inbox.table, default "inbox" */
        char *position_schema;   /* from inbox.position_table, default "public" */
        char *position_table;    /* default "inbox_position" */
        char *dead_letter_schema; /* from inbox.dead_letter_table, default "public" */
        char *dead_letter_table;  /* default "inbox_dead_letter" */
        char *broker;         /* default "kafka": the broker read ("kafka", "nats",
                                 "redis", "rabbitmq"); its connection is that sink's
                                 section */
        char *consumer;       /* required with dsn: primary key part and consumer group */
        char **topics;        /* required with dsn: the topics read */
        size_t ntopics;
        int64_t retention_ms; /* default 7d: processed rows older are deleted; 0 keeps */
        int64_t batch_size;   /* default 500, 1..3000: messages per transaction (the
                             statement stays under libpq's 65,535 parameters) */
        int64_t batch_wait_ms; /* default 20ms: how long a batch waits to fill */
        char *notify_channel; /* default "outbox_relay_inbox"; "" sends no NOTIFY */
        struct relay_kv *properties; /* consumer-only librdkafka properties */
        size_t nproperties;
    } inbox;

    /* `outbox-relay replay` (replay.c). */
    struct {
        int64_t max_replays; /* default 3: failed replays before a record is parked */
        char *state_schema;  /* default "public" */
        char *state_table;   /* default "outbox_dead_letter_replay": per-record progress of
                                a replay from the dead-letter topic (sql/009) */
    } replay;

    struct {
        enum relay_log_level level;   /* default info */
        enum relay_log_format format; /* default text */
    } log;

    struct {
        /*
         * Default "127.0.0.1:9187": host:port, :port or [ipv6]:port of the admin
         * HTTP endpoint, checked with relay_parse_listen(); "" disables it.
         */
        char *listen;
    } admin;
};

/*
 * The k-th non-empty free-form properties mapping of the configuration
 * (kafka.properties, inbox.properties, or any sink's), with its length in *n; NULL
 * (and *n 0) past the last.  For masking
 * secrets (redact.c) without naming sinks.
 */
/*
 * The k-th secret (from 0) of cfg's keys marked as secrets (a sink's token or secret
 * key, the password in a sink's URL), with *len its length; NULL past the last.
 * Points into cfg.  Empty values and URLs without a password are skipped.
 */
const char *relay_config_secret(const struct relay_config *cfg, size_t k, size_t *len);

const struct relay_kv *relay_config_properties(const struct relay_config *cfg, size_t k,
                                               size_t *n);

/* The selected sink's name ("kafka"). */
const char *relay_config_sink_name(const struct relay_config *cfg);

/* The selected sink's common settings (never NULL once loaded). */
const struct sink_common *relay_config_sink_common(const struct relay_config *cfg);

/*
 * The settings of the registered sink called name (its own struct, to be cast by its
 * file), or NULL when no such sink is registered.  Valid as long as cfg.
 */
const void *relay_config_sink_settings(const struct relay_config *cfg, const char *name);

/*
 * Read and validate the YAML file at path.
 *
 * Returns a new config on success, to be freed with relay_config_free().  On any
 * error returns NULL and writes one line, "FILE:LINE:COLUMN: message" (or
 * "FILE: message" when the file cannot be opened), into errstr.
 */
struct relay_config *relay_config_load(const char *path, char *errstr, size_t errstr_size);

/*
 * Same as relay_config_load() for YAML text already in memory; name is used in
 * messages in place of the file name.  text need not be NUL-terminated.
 */
struct relay_config *relay_config_parse(const char *text, size_t len, const char *name,
                                        char *errstr, size_t errstr_size);

/*
 * Like relay_config_parse(), then apply the environment envp (a NULL-terminated
 * array of "NAME=value" strings, as environ): every OUTBOX_RELAY_* variable that
 * names a key replaces that key's value from the text, which is then not even
 * looked at (so an unset ${VAR} there is no error).  text NULL means no file at
 * all: the configuration is the environment's alone, and name (default
 * "environment") prefixes messages that no variable explains.  envp NULL means
 * no environment: exactly relay_config_parse().
 *
 * The mapping (docs/configuration.md): OUTBOX_RELAY_<SECTION>_<KEY> upper-cased,
 * OUTBOX_RELAY_<KEY> for a top-level key (OUTBOX_RELAY_SINK); list keys take
 * comma-separated entries (a comma inside double quotes does not separate);
 * OUTBOX_RELAY_KAFKA_PROPERTIES_<NAME> sets the librdkafka property NAME
 * lower-cased with '_' read as '.'.  Each variable NAME may instead be given as
 * NAME_FILE, the path of a file holding the value (one trailing newline is
 * dropped); both at once is an error.  Values from the environment are taken as
 * they are: no "${...}" expansion.  A variable OUTBOX_RELAY_<SECTION>_... of a
 * known section that names no key is an error (a typo must not pass silently);
 * other OUTBOX_RELAY_* variables (OUTBOX_RELAY_CONFIG) are ignored.
 *
 * Errors as relay_config_parse(); those caused by a variable read
 * "environment variable NAME: message".  Returns a new config, to be freed with
 * relay_config_free(), or NULL.  envp is only read.
 */
struct relay_config *relay_config_parse_env(const char *text, size_t len, const char *name,
                                            char *const *envp, char *errstr, size_t errstr_size);

/*
 * relay_config_load() with the environment applied as relay_config_parse_env()
 * does.  path NULL: no file, the environment alone.  Same contract otherwise.
 */
struct relay_config *relay_config_load_env(const char *path, char *const *envp, char *errstr,
                                           size_t errstr_size);

/*
 * True when envp holds at least one variable that relay_config_parse_env() would
 * read (a key's or a kafka property's, with or without _FILE).  envp NULL: false.
 */
bool relay_config_env_present(char *const *envp);

/*
 * The environment variable of the key "section.key" (section NULL for a top-level
 * key) into buf: "OUTBOX_RELAY_SECTION_KEY".  Returns buf, clipped to size.
 */
const char *relay_config_env_name(const char *section, const char *key, char *buf, size_t size);

/*
 * Split a listen address, "host:port" or "[ipv6]:port", into host (without the
 * brackets, NUL-terminated, at most host_size - 1 bytes) and port (0..65535; 0
 * lets the system choose).  host is a name or address of letters, digits, '.',
 * '-' and '_' (or, in brackets, hexadecimal digits, ':' and '.'), or empty
 * (":9187": every IPv4 address).  Returns 0, or
 * -EINVAL (host and port then undefined) for anything else, the empty string
 * included.  Pure.
 */
int relay_parse_listen(const char *s, char *host, size_t host_size, int *port);

/* Free a config and everything it owns.  relay_config_free(NULL) is a no-op. */
void relay_config_free(struct relay_config *cfg);

/*
 * Parse a duration such as "250ms", "10s", "5m", "1h" or "1m30s" into milliseconds.
 * A bare number without a unit, a negative value, an unknown unit or an overflow is
 * an error.  Returns 0 on success, -EINVAL on error.
 */
int relay_parse_duration(const char *s, int64_t *ms);

#endif /* RELAY_CONFIG_H */

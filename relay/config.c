/*
 * config.c -- read the relay's YAML configuration file into a struct relay_config.
 *
 * The file is parsed twice with libyaml.  A first pass over the event stream
 * rejects what the relay does not support (anchors, aliases, a second document)
 * and reports syntax errors; a second pass loads the document tree, whose nodes
 * carry the start marks that every message points at.  The tree is then walked
 * once against the option table below: each row names a section (or none, for a
 * key at the top level such as "sink"), a key, a type, the field of struct
 * relay_config it fills, its default and whether it is required.  Adding a key is
 * adding a row (and, for a new kind of value, a case in set_value() or
 * add_entry(), and in free_option()); nothing else in the walk knows key names.
 * The few rules that tie keys together -- which sink a "stdout" section selects,
 * that kafka.brokers is required only for the kafka sink, that cdc tables need
 * replication mode, that the outbox table is not also a cdc table -- come after
 * the walk, in finish().
 *
 * Every scalar value goes through environment expansion ("${VAR}",
 * "${VAR:-default}", "$$") before it is converted, so a duration or an integer
 * may come from the environment too.  Defaults are written in the table as text
 * and converted by the same code as file values, so they cannot drift from what
 * the file would accept.
 *
 * The first problem found ends the load: the walk is in file order; then defaults
 * are filled in, the sink is settled, missing required keys are reported in table
 * order and the rules between keys are checked.  Messages follow PostgreSQL's style:
 * lowercase, no trailing period, names in double quotes, and always prefixed with
 * "FILE:LINE:COLUMN: " (1-based, as editors count) so an operator can jump to it.
 *
 * The environment may override any key (relay_config_parse_env()).  Before the
 * walk, every option's variable, OUTBOX_RELAY_<SECTION>_<KEY> or its _FILE twin,
 * is looked up in the caller's envp and its value kept; the walk then skips the
 * file's value of such a key without expanding or checking it, and after the walk
 * the environment's values go through the same set_value() and add_entry() as the
 * file's, with messages naming the variable instead of a position.  kafka.properties
 * is overridden entry by entry (OUTBOX_RELAY_KAFKA_PROPERTIES_SASL_PASSWORD is
 * "sasl.password"), since one variable cannot hold a mapping.
 *
 * This module is pure apart from reading files (the configuration file and those
 * that *_FILE variables name) and calling getenv() for "${VAR}": it never logs and
 * never exits.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

/* PostgreSQL's NAMEDATALEN - 1: the longest identifier the server keeps. */
#define PG_NAME_MAX 63

/* Refuse files larger than this rather than reading, say, /dev/zero forever. */
#define CONFIG_FILE_MAX (16 * 1024 * 1024)

/* Room for one value quoted in a message by show(); longer values are clipped. */
#define SHOW_SIZE 96

#define ATTR_PRINTF(f, a) __attribute__((format(printf, f, a)))


#include "config_schema.h"

/* What "got ..." messages call the expected shape of each type. */
static const char *const type_names[] = {
    [OPT_STRING] = "a string",
    [OPT_DURATION] = "a duration",
    [OPT_INTEGER] = "an integer",
    [OPT_ENUM] = "a string",
    [OPT_QUALIFIED_NAME] = "a string",
    [OPT_PROPERTIES] = "a mapping",
    [OPT_STRING_LIST] = "a list of strings",
    [OPT_TABLE_LIST] = "a list of table names",
};

/* OPT_ENUM stores through an int *: every enum it fills must be int-sized. */
_Static_assert(sizeof(enum relay_log_level) == sizeof(int), "enum relay_log_level is not an int");
_Static_assert(sizeof(enum relay_log_format) == sizeof(int), "enum relay_log_format is not an int");
_Static_assert(sizeof(enum relay_format) == sizeof(int), "enum relay_format is not an int");
_Static_assert(sizeof(enum relay_bad_event) == sizeof(int), "enum relay_bad_event is not an int");
_Static_assert(sizeof(enum relay_mode) == sizeof(int), "enum relay_mode is not an int");
_Static_assert(sizeof(enum relay_after_publish) == sizeof(int),
               "enum relay_after_publish is not an int");

/* The choices of each OPT_ENUM key, NULL-terminated, in the order messages list them. */
static const struct relay_choice log_formats[] = {
    {"text", RELAY_LOG_FORMAT_TEXT},
    {"json", RELAY_LOG_FORMAT_JSON},
    {NULL, 0},
};

static const struct relay_choice log_levels[] = {
    {"debug", RELAY_LOG_DEBUG},
    {"info", RELAY_LOG_INFO},
    {"warn", RELAY_LOG_WARN},
    {"error", RELAY_LOG_ERROR},
    {NULL, 0},
};

const struct relay_choice relay_format_choices[] = {
    {"cloudevents", RELAY_FORMAT_CLOUDEVENTS},
    {"cloudevents-structured", RELAY_FORMAT_CLOUDEVENTS_STRUCTURED},
    {"debezium", RELAY_FORMAT_DEBEZIUM},
    {NULL, 0},
};

static const struct relay_choice bad_event_policies[] = {
    {"stop", RELAY_BAD_EVENT_STOP},
    {"dead-letter", RELAY_BAD_EVENT_DEAD_LETTER},
    {NULL, 0},
};

static const struct relay_choice modes[] = {
    {"replication", RELAY_MODE_REPLICATION},
    {"polling", RELAY_MODE_POLLING},
    {NULL, 0},
};

static const struct relay_choice on_off[] = {
    {"on", 1},
    {"off", 0},
    {NULL, 0},
};

static const struct relay_choice after_publish[] = {
    {"delete", RELAY_AFTER_DELETE},
    {"mark", RELAY_AFTER_MARK},
    {NULL, 0},
};

static int check_nonempty(struct parser_ctx *ctx, const char *name, const char *value,
                          struct relay_pos pos);
static int check_slot_name(struct parser_ctx *ctx, const char *name, const char *value,
                           struct relay_pos pos);
static int check_pg_name(struct parser_ctx *ctx, const char *name, const char *value,
                         struct relay_pos pos);
static int check_topic(struct parser_ctx *ctx, const char *name, const char *value, struct relay_pos pos);
static int check_column(struct parser_ctx *ctx, const char *name, const char *value,
                        struct relay_pos pos);
static int check_channel(struct parser_ctx *ctx, const char *name, const char *value,
                         struct relay_pos pos);
static int check_listen(struct parser_ctx *ctx, const char *name, const char *value,
                        struct relay_pos pos);

#define FIELD(f) offsetof(struct relay_config, f)

static int check_notify_channel(struct parser_ctx *ctx, const char *name, const char *value,
                                struct relay_pos pos);
static int check_inbox_broker(struct parser_ctx *ctx, const char *name, const char *value,
                              struct relay_pos pos);

/* A file may configure the outbox side, the inbox side, or both (inbox.c). */
static bool has_inbox(const struct relay_config *cfg)
{
    return cfg->inbox.dsn != NULL;
}

static bool no_inbox(const struct relay_config *cfg)
{
    return !has_inbox(cfg);
}

/*
 * Every key the file may hold.  Keep docs/configuration.md and config/full.yaml
 * in step with this table.  (clang-format is off: one row per key reads better
 * than one line per field.)
 */
/* clang-format off */
static const struct relay_option core_options[] = {
    {.section = "postgres", .key = "dsn", .type = OPT_STRING,
     .offset = FIELD(postgres.dsn), .required = true, .required_if = no_inbox,
     .check = check_nonempty},
    {.section = "postgres", .key = "mode", .type = OPT_ENUM,
     .offset = FIELD(postgres.mode), .def = "replication", .choices = modes},
    {.section = "postgres", .key = "slot", .type = OPT_STRING,
     .offset = FIELD(postgres.slot), .def = "outbox_relay", .check = check_slot_name},
    {.section = "postgres", .key = "publication", .type = OPT_STRING,
     .offset = FIELD(postgres.publication), .def = "outbox_relay", .check = check_pg_name},
    {.section = "postgres", .key = "status_interval", .type = OPT_DURATION,
     .offset = FIELD(postgres.status_interval_ms), .def = "10s", .min = 1},
    {.section = "postgres", .key = "retry_interval", .type = OPT_DURATION,
     .offset = FIELD(postgres.retry_interval_ms), .def = "5s", .min = 1},
    {.section = "postgres", .key = "heartbeat_interval", .type = OPT_DURATION,
     .offset = FIELD(postgres.heartbeat_interval_ms), .def = "10s"},
    {.section = "postgres", .key = "slot_lag_warning", .type = OPT_INTEGER,
     .offset = FIELD(postgres.slot_lag_warning), .def = "1073741824", .min = 0,
     .max = INT64_C(1099511627776)},
    {.section = "postgres", .key = "state_table", .type = OPT_QUALIFIED_NAME,
     .offset = FIELD(postgres.state_schema), .offset2 = FIELD(postgres.state_table),
     .def = "public.outbox_relay_state"},
    {.section = "postgres", .key = "history_check", .type = OPT_ENUM,
     .offset = FIELD(postgres.history_check), .def = "on", .choices = on_off},

    {.section = "outbox", .key = "table", .type = OPT_QUALIFIED_NAME,
     .offset = FIELD(outbox.schema), .offset2 = FIELD(outbox.table), .def = "public.outbox"},
    {.section = "outbox", .key = "key_column", .type = OPT_STRING,
     .offset = FIELD(outbox.key_column), .def = "aggregateid", .check = check_column},
    {.section = "outbox", .key = "version_column", .type = OPT_STRING,
     .offset = FIELD(outbox.version_column), .def = "version", .check = check_column},
    {.section = "outbox", .key = "headers_column", .type = OPT_STRING,
     .offset = FIELD(outbox.headers_column), .def = "headers", .check = check_column},
    {.section = "outbox", .key = "header_columns", .type = OPT_STRING_LIST,
     .offset = FIELD(outbox.header_columns), .offset2 = FIELD(outbox.nheader_columns),
     .check = check_column},
    {.section = "outbox", .key = "source", .type = OPT_STRING,
     .offset = FIELD(outbox.source), .def = ""},
    {.section = "outbox", .key = "messages_prefix", .type = OPT_STRING,
     .offset = FIELD(outbox.messages_prefix), .def = "outbox", .check = check_nonempty},

    {.section = "pipeline", .key = "max_inflight_events", .type = OPT_INTEGER,
     .offset = FIELD(pipeline.max_inflight_events), .def = "100000", .min = 1, .max = 10000000},
    {.section = "pipeline", .key = "max_inflight_bytes", .type = OPT_INTEGER,
     .offset = FIELD(pipeline.max_inflight_bytes), .def = "67108864", .min = 1048576,
     .max = INT64_C(17179869184)},
    {.section = "pipeline", .key = "shutdown_timeout", .type = OPT_DURATION,
     .offset = FIELD(pipeline.shutdown_timeout_ms), .def = "5s", .min = 0},
    /* No default: settle_bad_event() decides from the dead-letter destinations. */
    {.section = "pipeline", .key = "on_bad_event", .type = OPT_ENUM,
     .offset = FIELD(pipeline.on_bad_event), .choices = bad_event_policies},

    {.section = "dead_letter", .key = "table", .type = OPT_QUALIFIED_NAME,
     .offset = FIELD(dead_letter.schema), .offset2 = FIELD(dead_letter.table)},

    /* A top-level key: one of the registered sinks (settle_sink()); default the first. */
    {.section = NULL, .key = "sink", .type = OPT_STRING,
     .offset = FIELD(sink_name), .check = check_nonempty},

    {.section = "inbox", .key = "dsn", .type = OPT_STRING,
     .offset = FIELD(inbox.dsn), .check = check_nonempty},
    {.section = "inbox", .key = "table", .type = OPT_QUALIFIED_NAME,
     .offset = FIELD(inbox.schema), .offset2 = FIELD(inbox.table), .def = "public.inbox"},
    {.section = "inbox", .key = "position_table", .type = OPT_QUALIFIED_NAME,
     .offset = FIELD(inbox.position_schema), .offset2 = FIELD(inbox.position_table),
     .def = "public.inbox_position"},
    {.section = "inbox", .key = "dead_letter_table", .type = OPT_QUALIFIED_NAME,
     .offset = FIELD(inbox.dead_letter_schema), .offset2 = FIELD(inbox.dead_letter_table),
     .def = "public.inbox_dead_letter"},
    {.section = "inbox", .key = "broker", .type = OPT_STRING,
     .offset = FIELD(inbox.broker), .def = "kafka", .check = check_inbox_broker},
    {.section = "inbox", .key = "consumer", .type = OPT_STRING,
     .offset = FIELD(inbox.consumer), .required = true, .required_if = has_inbox,
     .check = check_nonempty},
    {.section = "inbox", .key = "topics", .type = OPT_STRING_LIST,
     .offset = FIELD(inbox.topics), .offset2 = FIELD(inbox.ntopics), .required = true,
     .required_if = has_inbox, .check = check_nonempty},
    {.section = "inbox", .key = "retention", .type = OPT_DURATION,
     .offset = FIELD(inbox.retention_ms), .def = "7d", .min = 0},
    {.section = "inbox", .key = "batch_size", .type = OPT_INTEGER,
     .offset = FIELD(inbox.batch_size), .def = "500", .min = 1, .max = 3000},
    {.section = "inbox", .key = "batch_wait", .type = OPT_DURATION,
     .offset = FIELD(inbox.batch_wait_ms), .def = "20ms", .min = 0},
    {.section = "inbox", .key = "notify_channel", .type = OPT_STRING,
     .offset = FIELD(inbox.notify_channel), .def = "outbox_relay_inbox",
     .check = check_notify_channel},
    {.section = "inbox", .key = "properties", .type = OPT_PROPERTIES,
     .offset = FIELD(inbox.properties), .offset2 = FIELD(inbox.nproperties)},

    {.section = "replay", .key = "max_replays", .type = OPT_INTEGER,
     .offset = FIELD(replay.max_replays), .def = "3", .min = 1, .max = 1000},
    {.section = "replay", .key = "state_table", .type = OPT_QUALIFIED_NAME,
     .offset = FIELD(replay.state_schema), .offset2 = FIELD(replay.state_table),
     .def = "public.outbox_dead_letter_replay"},

    {.section = "cdc", .key = "tables", .type = OPT_TABLE_LIST,
     .offset = FIELD(cdc.tables), .offset2 = FIELD(cdc.ntables)},
    {.section = "cdc", .key = "topic", .type = OPT_STRING,
     .offset = FIELD(cdc.topic), .def = "cdc.{schema}.{table}", .check = check_topic},
    {.section = "cdc", .key = "publication", .type = OPT_STRING,
     .offset = FIELD(cdc.publication), .def = "outbox_relay_cdc", .check = check_pg_name},

    /* Used only with postgres.mode: polling, but checked in either mode. */
    {.section = "polling", .key = "interval", .type = OPT_DURATION,
     .offset = FIELD(polling.interval_ms), .def = "1s", .min = 1},
    {.section = "polling", .key = "batch_size", .type = OPT_INTEGER,
     .offset = FIELD(polling.batch_size), .def = "1000", .min = 1, .max = 100000},
    {.section = "polling", .key = "after_publish", .type = OPT_ENUM,
     .offset = FIELD(polling.after_publish), .def = "delete", .choices = after_publish},
    {.section = "polling", .key = "retention", .type = OPT_DURATION,
     .offset = FIELD(polling.retention_ms), .def = "24h", .min = 0},
    {.section = "polling", .key = "notify_channel", .type = OPT_STRING,
     .offset = FIELD(polling.notify_channel), .def = "outbox_relay", .check = check_channel},

    {.section = "log", .key = "level", .type = OPT_ENUM,
     .offset = FIELD(log.level), .def = "info", .choices = log_levels},
    {.section = "log", .key = "format", .type = OPT_ENUM,
     .offset = FIELD(log.format), .def = "text", .choices = log_formats},

    {.section = "admin", .key = "listen", .type = OPT_STRING,
     .offset = FIELD(admin.listen), .def = "127.0.0.1:9187", .check = check_listen},
};
/* clang-format on */

#define NCORE (sizeof(core_options) / sizeof(core_options[0]))

/*
 * The table the walk uses: the core's rows, then each registered sink's (see
 * relay_config_register_sinks()), each row knowing whose settings it fills (base).
 */
static struct relay_option options[RELAY_CONFIG_MAX_OPTIONS];
static size_t noptions;
static const struct relay_sink_config *sinks[RELAY_CONFIG_MAX_SINKS];
static size_t nsinks;
#define NOPTIONS noptions

/* The prefix of every variable relay_config_parse_env() reads. */
#define ENV_PREFIX "OUTBOX_RELAY_"

/* Room for the longest variable name: prefix, section, key, "_FILE". */
#define ENV_NAME_MAX 128

/*
 * The one properties mapping the environment sets entry by entry: the first
 * OPT_PROPERTIES row of the registered sinks (kafka.properties), its variables
 * OUTBOX_RELAY_<SECTION>_PROPERTIES_<NAME>.  Set by relay_config_register_sinks().
 */
static size_t props_option = SIZE_MAX;
static char env_props_prefix[ENV_NAME_MAX];
#define ENV_PROPS_PREFIX env_props_prefix

/* Build the table from the core's rows and the registered sinks'. */
static int build_table(void)
{
    size_t n = 0;

    for (size_t i = 0; i < NCORE; i++) {
        options[n] = core_options[i];
        options[n++].base = -1;
    }
    props_option = SIZE_MAX;
    env_props_prefix[0] = '\0';
    for (size_t k = 0; k < nsinks; k++) {
        for (size_t i = 0; i < sinks[k]->noptions; i++) {
            if (n == RELAY_CONFIG_MAX_OPTIONS)
                return -E2BIG;
            options[n] = sinks[k]->options[i];
            options[n].base = (int)k;
            if (options[n].type == OPT_PROPERTIES && props_option == SIZE_MAX) {
                props_option = n;
                relay_config_env_name(options[n].section, options[n].key, env_props_prefix,
                                      sizeof(env_props_prefix) - 1);
                strcat(env_props_prefix, "_");
            }
            n++;
        }
    }
    noptions = n;
    return 0;
}

int relay_config_register_sinks(const struct relay_sink_config *const *list, size_t n)
{
    if (n > RELAY_CONFIG_MAX_SINKS)
        return -E2BIG;
    for (size_t i = 0; i < n; i++)
        sinks[i] = list[i];
    nsinks = n;
    return build_table();
}

/* A value read through a NAME_FILE variable may be at most this long. */
#define ENV_FILE_MAX (1024 * 1024)

/* One kafka.properties entry from the environment. */
struct env_prop {
    char *var;  /* the variable it came from, NAME or NAME_FILE, for messages */
    char *base; /* NAME, without _FILE */
    char *key;  /* the property: "sasl.password" */
    char *value;
};

/* State of one relay_config_parse() call. */
struct parser_ctx {
    const char *name;          /* file name for messages */
    const unsigned char *text; /* the whole file, to point inside scalars */
    size_t len;
    char *errstr;
    size_t errstr_size;
    yaml_document_t *doc;
    struct relay_config *cfg;

    bool seen[RELAY_CONFIG_MAX_OPTIONS];               /* the key was in the file */
    const yaml_node_t *node[RELAY_CONFIG_MAX_OPTIONS]; /* its value there, for later rules */
    bool section_seen[RELAY_CONFIG_MAX_OPTIONS];       /* the key's section was in the file */
    struct relay_pos section_pos[RELAY_CONFIG_MAX_OPTIONS]; /* where, for missing keys */

    /* The environment (relay_config_parse_env()); envp NULL: none. */
    char *const *envp;
    bool have_file;            /* false: no file, the environment alone */
    const char *env_var;       /* set: messages name this variable, not a position */
    char *env_value[RELAY_CONFIG_MAX_OPTIONS]; /* the option's value from the environment */
    char env_var_names[RELAY_CONFIG_MAX_OPTIONS][ENV_NAME_MAX]; /* the variable it came from */
    struct env_prop *env_props;                 /* kafka.properties entries from the environment */
    size_t nenv_props;
};

static const struct env_prop *find_env_prop(const struct parser_ctx *ctx, const char *key);
static void env_blame(struct parser_ctx *ctx, size_t idx);

/*
 * Messages
 */

/* Write "NAME:LINE:COLUMN: message" into the caller's buffer.  Always returns -1. */
static int fail_at(struct parser_ctx *ctx, struct relay_pos pos, const char *fmt, ...) ATTR_PRINTF(3, 4);

static int fail_at(struct parser_ctx *ctx, struct relay_pos pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ctx->errstr == NULL || ctx->errstr_size == 0)
        return -1;
    if (ctx->env_var != NULL)
        n = snprintf(ctx->errstr, ctx->errstr_size, "environment variable %s: ", ctx->env_var);
    else if (!ctx->have_file)
        n = snprintf(ctx->errstr, ctx->errstr_size, "%s: ", ctx->name);
    else
        n = snprintf(ctx->errstr, ctx->errstr_size, "%s:%zu:%zu: ", ctx->name, pos.line,
                     pos.column);
    if (n >= 0 && (size_t)n < ctx->errstr_size) {
        va_start(ap, fmt);
        vsnprintf(ctx->errstr + n, ctx->errstr_size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* "NAME: message", for problems that have no position.  Always returns -1. */
static int fail_plain(char *errstr, size_t errstr_size, const char *name, const char *fmt, ...)
    ATTR_PRINTF(4, 5);

static int fail_plain(char *errstr, size_t errstr_size, const char *name, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (errstr == NULL || errstr_size == 0)
        return -1;
    n = snprintf(errstr, errstr_size, "%s: ", name);
    if (n >= 0 && (size_t)n < errstr_size) {
        va_start(ap, fmt);
        vsnprintf(errstr + n, errstr_size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int fail_oom(struct parser_ctx *ctx)
{
    return fail_plain(ctx->errstr, ctx->errstr_size, ctx->name, "out of memory");
}

/*
 * Copy s into buf for quoting in a message: backslash, double quote and control
 * characters escaped so the message stays one line, and clipped with "..." (at a
 * UTF-8 character boundary) when it does not fit.  Returns buf.
 */
static const char *show(char *buf, size_t size, const char *s)
{
    size_t o = 0;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t elen;

        if (c == '"' || c == '\\')
            elen = (size_t)snprintf(esc, sizeof(esc), "\\%c", c);
        else if (c == '\n')
            elen = (size_t)snprintf(esc, sizeof(esc), "\\n");
        else if (c == '\t')
            elen = (size_t)snprintf(esc, sizeof(esc), "\\t");
        else if (c == '\r')
            elen = (size_t)snprintf(esc, sizeof(esc), "\\r");
        else if (c < 0x20 || c == 0x7f)
            elen = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c);
        else {
            esc[0] = (char)c;
            elen = 1;
        }
        /* Keep room for "..." and the NUL in case the next character does not fit. */
        if (o + elen + 4 > size) {
            while (o > 0 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
                o--;
            if (o > 0 && (unsigned char)buf[o - 1] >= 0xC0)
                o--;
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, esc, elen);
        o += elen;
    }
    buf[o] = '\0';
    return buf;
}

const char *relay_choice_name(const struct relay_choice *choices, int value)
{
    for (; choices->name != NULL; choices++)
        if (choices->value == value)
            return choices->name;
    return "?";
}

int relay_config_fail(struct parser_ctx *ctx, struct relay_pos pos, const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return fail_at(ctx, pos, "%s", text);
}

const char *relay_config_show(char *buf, size_t size, const char *s)
{
    return show(buf, size, s);
}

/*
 * Positions
 */

static struct relay_pos mark_pos(yaml_mark_t mark)
{
    struct relay_pos p = {mark.line + 1, mark.column + 1};
    return p;
}

/*
 * Where byte offset of a scalar's value is in the file.  libyaml's marks count
 * characters, so that is only known when the scalar is on one line and its text
 * in the file is exactly its value (plain, or quoted with no escapes); otherwise
 * the scalar's start is the best answer, and a good enough one.
 */
static struct relay_pos scalar_pos(const struct parser_ctx *ctx, const yaml_node_t *node, size_t offset)
{
    struct relay_pos p = mark_pos(node->start_mark);
    const unsigned char *value = node->data.scalar.value;
    size_t vlen = node->data.scalar.length;
    size_t quote, start, nchars, i, chars;

    if (node->start_mark.line != node->end_mark.line || offset > vlen)
        return p;
    switch (node->data.scalar.style) {
    case YAML_PLAIN_SCALAR_STYLE:
        quote = 0;
        break;
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        quote = 1;
        break;
    default:
        return p;
    }

    /* The mark's index counts characters: find the scalar's first byte. */
    start = 0;
    for (chars = 0; chars < node->start_mark.index && start < ctx->len; start++) {
        if ((ctx->text[start] & 0xC0) != 0x80)
            chars++;
    }
    while (start < ctx->len && (ctx->text[start] & 0xC0) == 0x80)
        start++;

    /* The scalar's text in the file must be its value, quotes aside. */
    nchars = 0;
    for (i = 0; i < vlen; i++) {
        if ((value[i] & 0xC0) != 0x80)
            nchars++;
    }
    if (node->end_mark.index - node->start_mark.index != nchars + 2 * quote)
        return p;
    if (start + quote + vlen > ctx->len || memcmp(ctx->text + start + quote, value, vlen) != 0)
        return p;

    p.column += quote;
    for (i = 0; i < offset; i++) {
        if ((value[i] & 0xC0) != 0x80)
            p.column++;
    }
    return p;
}

/*
 * Nodes
 */

/* A plain empty, "~" or "null" scalar: YAML's null. */
static bool is_null(const yaml_node_t *node)
{
    const char *v;

    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    v = (const char *)node->data.scalar.value;
    return node->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* What a node is, for "got ..." in messages: a mapping, a sequence, null or "text". */
static const char *describe(char *buf, size_t size, const yaml_node_t *node)
{
    char shown[SHOW_SIZE];

    switch (node->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a sequence";
    case YAML_SCALAR_NODE:
        if (is_null(node))
            return "null";
        snprintf(buf, size, "\"%s\"",
                 show(shown, sizeof(shown), (const char *)node->data.scalar.value));
        return buf;
    default:
        return "nothing";
    }
}

/*
 * The text of a mapping key.  Keys must be scalars without NUL characters, so
 * that they can be compared and quoted as C strings.
 */
static int key_text(struct parser_ctx *ctx, const yaml_node_t *key, const char **out)
{
    char buf[SHOW_SIZE + 2];

    if (key->type != YAML_SCALAR_NODE)
        return fail_at(ctx, mark_pos(key->start_mark), "a key must be a scalar, got %s",
                       describe(buf, sizeof(buf), key));
    if (strlen((const char *)key->data.scalar.value) != key->data.scalar.length)
        return fail_at(ctx, mark_pos(key->start_mark), "a key must not contain a NUL character");
    *out = (const char *)key->data.scalar.value;
    return 0;
}

/* Does an earlier pair of the mapping have the key text? */
static bool key_seen_before(yaml_document_t *doc, const yaml_node_t *mapping,
                            const yaml_node_pair_t *pair, const char *text)
{
    const yaml_node_pair_t *p;

    for (p = mapping->data.mapping.pairs.start; p < pair; p++) {
        const yaml_node_t *k = yaml_document_get_node(doc, p->key);

        if (k != NULL && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, text) == 0)
            return true;
    }
    return false;
}

/*
 * Environment expansion
 */

struct strbuf {
    char *data;
    size_t len;
    size_t cap;
};

static int strbuf_append(struct strbuf *sb, const char *s, size_t n)
{
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 64;
        char *p;

        while (cap < sb->len + n + 1)
            cap *= 2;
        p = realloc(sb->data, cap);
        if (p == NULL)
            return -1;
        sb->data = p;
        sb->cap = cap;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
    return 0;
}

static bool is_env_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_env_name_char(char c)
{
    return is_env_name_start(c) || (c >= '0' && c <= '9');
}

/*
 * Expand "${VAR}", "${VAR:-default}" and "$$" in a scalar's value.  The default
 * is taken literally, up to the first '}'.  A '$' followed by anything else is
 * kept.  On success *out is a new string owned by the caller.
 */
static int expand_env(struct parser_ctx *ctx, const yaml_node_t *node, char **out)
{
    const char *v = (const char *)node->data.scalar.value;
    size_t len = node->data.scalar.length;
    struct strbuf sb = {NULL, 0, 0};
    char shown[SHOW_SIZE];
    size_t i;

    if (strlen(v) != len)
        return fail_at(ctx, mark_pos(node->start_mark), "a value must not contain a NUL character");
    if (strbuf_append(&sb, "", 0) < 0)
        return fail_oom(ctx);

    for (i = 0; i < len; i++) {
        const char *close, *inner, *name_end, *value, *def = NULL;
        size_t inner_len, def_len = 0;
        char *name;
        int rc;

        if (v[i] != '$' || i + 1 == len || (v[i + 1] != '$' && v[i + 1] != '{')) {
            rc = strbuf_append(&sb, v + i, 1);
        } else if (v[i + 1] == '$') {
            rc = strbuf_append(&sb, "$", 1);
            i++;
        } else {
            inner = v + i + 2;
            close = memchr(inner, '}', len - i - 2);
            if (close == NULL) {
                free(sb.data);
                return fail_at(ctx, scalar_pos(ctx, node, i), "unterminated \"${\"");
            }
            inner_len = (size_t)(close - inner);
            name_end = inner;
            if (inner_len > 0 && is_env_name_start(*inner)) {
                while (name_end < close && is_env_name_char(*name_end))
                    name_end++;
            }
            if (name_end < close && close - name_end >= 2 && name_end[0] == ':' &&
                name_end[1] == '-') {
                def = name_end + 2;
                def_len = (size_t)(close - def);
            }
            if (name_end == inner || (name_end < close && def == NULL)) {
                char ref[SHOW_SIZE];
                size_t n = inner_len < sizeof(ref) - 1 ? inner_len : sizeof(ref) - 1;

                memcpy(ref, inner, n);
                ref[n] = '\0';
                free(sb.data);
                return fail_at(ctx, scalar_pos(ctx, node, i),
                               "bad environment reference \"${%s}\": use ${NAME} or "
                               "${NAME:-default}",
                               show(shown, sizeof(shown), ref));
            }

            name = strndup(inner, (size_t)(name_end - inner));
            if (name == NULL) {
                free(sb.data);
                return fail_oom(ctx);
            }
            value = getenv(name);
            if (def != NULL && (value == NULL || value[0] == '\0')) {
                rc = strbuf_append(&sb, def, def_len);
            } else if (value == NULL) {
                fail_at(ctx, scalar_pos(ctx, node, i), "environment variable \"%s\" is not set",
                        show(shown, sizeof(shown), name));
                free(name);
                free(sb.data);
                return -1;
            } else {
                rc = strbuf_append(&sb, value, strlen(value));
            }
            free(name);
            i = (size_t)(close - v);
        }
        if (rc < 0) {
            free(sb.data);
            return fail_oom(ctx);
        }
    }
    *out = sb.data;
    return 0;
}

/*
 * Value parsers
 */

int relay_parse_duration(const char *s, int64_t *ms)
{
    int64_t total = 0;

    if (s == NULL || *s == '\0')
        return -EINVAL;

    /* One or more <digits><unit>, e.g. "1h", "1m30s", "250ms". */
    while (*s != '\0') {
        int64_t n = 0, mult;
        bool digits = false;

        while (*s >= '0' && *s <= '9') {
            int d = *s - '0';

            if (n > (INT64_MAX - d) / 10)
                return -EINVAL;
            n = n * 10 + d;
            digits = true;
            s++;
        }
        if (!digits)
            return -EINVAL;

        if (s[0] == 'm' && s[1] == 's') {
            mult = 1;
            s += 2;
        } else if (s[0] == 's') {
            mult = 1000;
            s++;
        } else if (s[0] == 'm') {
            mult = 60 * 1000;
            s++;
        } else if (s[0] == 'h') {
            mult = 60 * 60 * 1000;
            s++;
        } else if (s[0] == 'd') {
            mult = 24 * 60 * 60 * 1000;
            s++;
        } else {
            return -EINVAL;
        }

        if (n > INT64_MAX / mult)
            return -EINVAL;
        n *= mult;
        if (total > INT64_MAX - n)
            return -EINVAL;
        total += n;
    }
    *ms = total;
    return 0;
}

/*
 * A decimal integer with an optional '-' and nothing else.  Returns 0, -EINVAL
 * when s is not such a number, or -ERANGE when it does not fit an int64_t.
 */
static int parse_int64(const char *s, int64_t *out)
{
    bool neg = false, digits = false, overflow = false;
    uint64_t n = 0, limit;

    if (*s == '-') {
        neg = true;
        s++;
    }
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');

        digits = true;
        if (overflow || n > (limit - d) / 10)
            overflow = true;
        else
            n = n * 10 + d;
    }
    if (!digits || *s != '\0')
        return -EINVAL;
    if (overflow)
        return -ERANGE;
    if (neg)
        *out = n == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n;
    else
        *out = (int64_t)n;
    return 0;
}

/*
 * One SQL identifier at *sp, as PostgreSQL reads it: unquoted names are folded
 * to lowercase; double-quoted names keep their case and "" stands for '"'.  On
 * success *out is a new string and *sp points past the identifier; on error *why
 * says what is wrong.
 */
static int parse_identifier(const char **sp, char **out, const char **why)
{
    const char *s = *sp;
    struct strbuf sb = {NULL, 0, 0};
    int rc = 0;

    if (strbuf_append(&sb, "", 0) < 0)
        return -ENOMEM;
    if (*s == '"') {
        for (s++;; s++) {
            if (*s == '\0') {
                *why = "unterminated quoted identifier";
                rc = -EINVAL;
                break;
            }
            if (*s == '"') {
                if (s[1] != '"') {
                    s++;
                    break;
                }
                s++;
            }
            if (strbuf_append(&sb, s, 1) < 0) {
                rc = -ENOMEM;
                break;
            }
        }
        if (rc == 0 && sb.len == 0) {
            *why = "zero-length quoted identifier";
            rc = -EINVAL;
        }
    } else if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_') {
        for (; (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
               *s == '_' || *s == '$';
             s++) {
            char c = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;

            if (strbuf_append(&sb, &c, 1) < 0) {
                rc = -ENOMEM;
                break;
            }
        }
    } else {
        *why = "use table or schema.table, with double quotes around names that are not "
               "plain identifiers";
        rc = -EINVAL;
    }
    if (rc == 0 && sb.len > PG_NAME_MAX) {
        *why = "name longer than 63 bytes";
        rc = -EINVAL;
    }
    if (rc < 0) {
        free(sb.data);
        return rc;
    }
    *sp = s;
    *out = sb.data;
    return 0;
}

/*
 * Checks
 */

int relay_config_check_nonempty(struct parser_ctx *ctx, const char *name, const char *value,
                                struct relay_pos pos)
{
    return check_nonempty(ctx, name, value, pos);
}

int relay_config_check_template(struct parser_ctx *ctx, const char *name, const char *value,
                                struct relay_pos pos)
{
    return check_topic(ctx, name, value, pos);
}

static int check_nonempty(struct parser_ctx *ctx, const char *name, const char *value,
                          struct relay_pos pos)
{
    if (value[0] == '\0')
        return fail_at(ctx, pos, "\"%s\" must not be empty", name);
    return 0;
}

/* A replication slot name, as PostgreSQL's ReplicationSlotValidateName() wants it. */
static int check_slot_name(struct parser_ctx *ctx, const char *name, const char *value,
                           struct relay_pos pos)
{
    char shown[SHOW_SIZE];
    size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789_");

    if (n == 0 || value[n] != '\0' || n > PG_NAME_MAX)
        return fail_at(ctx, pos,
                       "bad slot name \"%s\" for \"%s\": use 1 to 63 lowercase letters, digits "
                       "and underscores",
                       show(shown, sizeof(shown), value), name);
    return 0;
}

/* Any name PostgreSQL keeps whole: a publication. */
static int check_pg_name(struct parser_ctx *ctx, const char *name, const char *value,
                         struct relay_pos pos)
{
    size_t n = strlen(value);

    if (n == 0)
        return fail_at(ctx, pos, "\"%s\" must not be empty", name);
    if (n > PG_NAME_MAX)
        return fail_at(ctx, pos, "\"%s\" must be at most %d bytes, got %zu", name, PG_NAME_MAX, n);
    return 0;
}

/* A destination template: text with {placeholder}s, each a lowercase name. */
static int check_topic(struct parser_ctx *ctx, const char *name, const char *value, struct relay_pos pos)
{
    char shown[SHOW_SIZE], ph[SHOW_SIZE], phshown[SHOW_SIZE];
    const char *s;

    if (value[0] == '\0')
        return fail_at(ctx, pos, "\"%s\" must not be empty", name);
    for (s = value; *s != '\0'; s++) {
        const char *close, *p;
        size_t n;

        if (*s == '}')
            return fail_at(ctx, pos, "bad topic \"%s\" for \"%s\": unmatched \"}\"",
                           show(shown, sizeof(shown), value), name);
        if (*s != '{')
            continue;
        close = strchr(s + 1, '}');
        if (close == NULL)
            return fail_at(ctx, pos, "bad topic \"%s\" for \"%s\": unclosed \"{\"",
                           show(shown, sizeof(shown), value), name);
        if (close == s + 1)
            return fail_at(ctx, pos, "bad topic \"%s\" for \"%s\": empty placeholder \"{}\"",
                           show(shown, sizeof(shown), value), name);
        for (p = s + 1; p < close; p++) {
            bool ok =
                (*p >= 'a' && *p <= 'z') || *p == '_' || (p > s + 1 && *p >= '0' && *p <= '9');

            if (!ok) {
                n = (size_t)(close - s - 1) < sizeof(ph) - 1 ? (size_t)(close - s - 1)
                                                             : sizeof(ph) - 1;
                memcpy(ph, s + 1, n);
                ph[n] = '\0';
                return fail_at(ctx, pos,
                               "bad topic \"%s\" for \"%s\": bad placeholder \"{%s}\": use "
                               "lowercase letters, digits and underscores",
                               show(shown, sizeof(shown), value), name,
                               show(phshown, sizeof(phshown), ph));
            }
        }
        s = close;
    }
    return 0;
}

/* A name as PostgreSQL keeps an unquoted one: [a-z_][a-z0-9_]*, at most 63 bytes. */
static bool is_lower_identifier(const char *value)
{
    size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789_");

    return n > 0 && value[n] == '\0' && n <= PG_NAME_MAX && !(value[0] >= '0' && value[0] <= '9');
}

/*
 * A column name, an unquoted lowercase one.  Mixed-case or quoted column names
 * are not supported here: the relay matches these names against the relation's
 * columns byte for byte.
 */
static int check_column(struct parser_ctx *ctx, const char *name, const char *value, struct relay_pos pos)
{
    char shown[SHOW_SIZE];

    if (!is_lower_identifier(value))
        return fail_at(ctx, pos,
                       "bad column name \"%s\" for \"%s\": use 1 to 63 lowercase letters, "
                       "digits and underscores, not starting with a digit",
                       show(shown, sizeof(shown), value), name);
    return 0;
}

/*
 * A LISTEN/NOTIFY channel, held to the same rule as a column name: such a name
 * needs no quoting in LISTEN, and it is the same channel whether the application
 * writes NOTIFY name (which folds unquoted names to lowercase) or
 * pg_notify('name', ...) (which does not fold).
 */
/* inbox.broker: a broker the inbox reads (inbox_source.h). */
static int check_inbox_broker(struct parser_ctx *ctx, const char *name, const char *value,
                              struct relay_pos pos)
{
    if (strcmp(value, "kafka") != 0 && strcmp(value, "nats") != 0 &&
        strcmp(value, "redis") != 0 && strcmp(value, "rabbitmq") != 0)
        return relay_config_fail(ctx, pos, "%s: \"%s\" is not a broker the inbox reads "
                                 "(kafka, nats, redis, rabbitmq)", name, value);
    return 0;
}

/* pg_notify()'s channel: any name PostgreSQL takes, at most 63 bytes; "" for none. */
static int check_notify_channel(struct parser_ctx *ctx, const char *name, const char *value,
                                struct relay_pos pos)
{
    if (strlen(value) > 63)
        return relay_config_fail(ctx, pos, "%s: \"%s\" is longer than the 63 bytes of a "
                                 "PostgreSQL channel name", name, value);
    return 0;
}

static int check_channel(struct parser_ctx *ctx, const char *name, const char *value,
                         struct relay_pos pos)
{
    char shown[SHOW_SIZE];

    if (!is_lower_identifier(value))
        return fail_at(ctx, pos,
                       "bad channel name \"%s\" for \"%s\": use 1 to 63 lowercase letters, "
                       "digits and underscores, not starting with a digit",
                       show(shown, sizeof(shown), value), name);
    return 0;
}

/* admin.listen: "" (no admin endpoint) or what relay_parse_listen() accepts. */
static int check_listen(struct parser_ctx *ctx, const char *name, const char *value, struct relay_pos pos)
{
    char shown[SHOW_SIZE], host[256];
    int port;

    if (value[0] == '\0' || relay_parse_listen(value, host, sizeof(host), &port) == 0)
        return 0;
    return fail_at(ctx, pos,
                   "bad listen address \"%s\" for \"%s\": use host:port, [ipv6]:port with a "
                   "port from 0 to 65535, or \"\" to disable",
                   show(shown, sizeof(shown), value), name);
}

/*
 * Table names
 */

/*
 * "table" or "schema.table", each name as parse_identifier() reads it; a missing
 * schema is "public".  On success *schema and *table are new strings.  Returns 0,
 * -ENOMEM, or -EINVAL with *why saying what is wrong.
 */
static int parse_table_name(const char *value, char **schema, char **table, const char **why)
{
    const char *s = value;
    char *first = NULL, *second = NULL;
    int rc;

    rc = parse_identifier(&s, &first, why);
    if (rc == 0 && *s == '.') {
        s++;
        rc = parse_identifier(&s, &second, why);
    }
    if (rc == 0 && *s != '\0') {
        *why = "use table or schema.table, with double quotes around names that are not "
               "plain identifiers";
        rc = -EINVAL;
    }
    if (rc == 0 && second == NULL) {
        /* An unqualified table is in "public", as search_path usually has it. */
        second = first;
        first = strdup("public");
        if (first == NULL)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        free(first);
        free(second);
        return rc;
    }
    *schema = first;
    *table = second;
    return 0;
}

/* Append name to buf at *o, double-quoted (with "" for ") unless it needs no quotes. */
static void append_ident(char *buf, size_t size, size_t *o, const char *name)
{
    bool plain = (*name >= 'a' && *name <= 'z') || *name == '_';
    const char *s;

    for (s = name; plain && *s != '\0'; s++)
        plain = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '$';
    if (!plain && *o + 1 < size)
        buf[(*o)++] = '"';
    for (s = name; *s != '\0'; s++) {
        if (!plain && *s == '"' && *o + 1 < size)
            buf[(*o)++] = '"';
        if (*o + 1 < size)
            buf[(*o)++] = *s;
    }
    if (!plain && *o + 1 < size)
        buf[(*o)++] = '"';
    buf[*o] = '\0';
}

/*
 * A table for messages, "schema.table", written so that it reads back as the same
 * table: names that are not plain lowercase identifiers are double-quoted.
 * Returns buf; a name too long for buf is cut (show() clips it further anyway).
 */
static const char *table_text(char *buf, size_t size, const char *schema, const char *table)
{
    size_t o = 0;

    buf[0] = '\0';
    append_ident(buf, size, &o, schema);
    if (o + 1 < size) {
        buf[o++] = '.';
        buf[o] = '\0';
    }
    append_ident(buf, size, &o, table);
    return buf;
}

/*
 * Storing values
 */

/* The field at offset of the struct opt stores into: the config, or its sink's settings. */
static void *field_at(struct relay_config *cfg, const struct relay_option *opt, size_t offset)
{
    char *base = opt->base < 0 || opt->core ? (char *)cfg : (char *)cfg->sink_settings[opt->base];

    return base + offset;
}

/* "section.key" for messages, or just "key" at the top level. */
static void option_name(char *buf, size_t size, const struct relay_option *opt)
{
    if (opt->section == NULL)
        snprintf(buf, size, "%s", opt->key);
    else
        snprintf(buf, size, "%s.%s", opt->section, opt->key);
}

static int store_string(struct parser_ctx *ctx, const struct relay_option *opt,
                        const char *value)
{
    char **field = field_at(ctx->cfg, opt, opt->offset);
    char *copy = strdup(value);

    if (copy == NULL)
        return fail_oom(ctx);
    free(*field);
    *field = copy;
    return 0;
}

/*
 * Convert a scalar option's text (already expanded) and store it; pos is where
 * the value is, for messages.  Used for file values and table defaults alike.
 */
static int set_value(struct parser_ctx *ctx, const struct relay_option *opt, const char *value,
                     struct relay_pos pos)
{
    char name[128], shown[SHOW_SIZE];
    int64_t n;
    int rc;

    option_name(name, sizeof(name), opt);
    if (opt->check != NULL && opt->check(ctx, name, value, pos) < 0)
        return -1;

    switch (opt->type) {
    case OPT_STRING:
        return store_string(ctx, opt, value);

    case OPT_DURATION:
        if (relay_parse_duration(value, &n) < 0)
            return fail_at(ctx, pos,
                           "bad duration \"%s\" for \"%s\": use a number with ms, s, m or h",
                           show(shown, sizeof(shown), value), name);
        if (n < opt->min) {
            if (opt->min == 1)
                return fail_at(ctx, pos, "\"%s\" must be greater than 0, got \"%s\"", name,
                               show(shown, sizeof(shown), value));
            return fail_at(ctx, pos, "\"%s\" must be at least %" PRId64 "ms, got \"%s\"", name,
                           opt->min, show(shown, sizeof(shown), value));
        }
        *(int64_t *)field_at(ctx->cfg, opt, opt->offset) = n;
        return 0;

    case OPT_INTEGER:
        rc = parse_int64(value, &n);
        if (rc == -EINVAL)
            return fail_at(ctx, pos, "\"%s\" must be an integer, got \"%s\"", name,
                           show(shown, sizeof(shown), value));
        if (rc == -ERANGE || n < opt->min || n > opt->max)
            return fail_at(ctx, pos,
                           "\"%s\" must be between %" PRId64 " and %" PRId64 ", got \"%s\"", name,
                           opt->min, opt->max, show(shown, sizeof(shown), value));
        *(int64_t *)field_at(ctx->cfg, opt, opt->offset) = n;
        return 0;

    case OPT_ENUM: {
        const struct relay_choice *c;
        char names[256];
        size_t o = 0;

        for (c = opt->choices; c->name != NULL; c++) {
            if (strcmp(value, c->name) == 0) {
                *(int *)field_at(ctx->cfg, opt, opt->offset) = c->value;
                return 0;
            }
        }
        /* "a, b, c": the names from the table, so the message cannot go stale. */
        names[0] = '\0';
        for (c = opt->choices; c->name != NULL && o < sizeof(names); c++) {
            int w = snprintf(names + o, sizeof(names) - o, "%s%s", c == opt->choices ? "" : ", ",
                             c->name);

            if (w < 0)
                break;
            o += (size_t)w;
        }
        return fail_at(ctx, pos, "\"%s\" must be one of %s, got \"%s\"", name, names,
                       show(shown, sizeof(shown), value));
    }

    case OPT_QUALIFIED_NAME: {
        const char *why = NULL;
        char *first = NULL, *second = NULL;
        char **schema = field_at(ctx->cfg, opt, opt->offset);
        char **table = field_at(ctx->cfg, opt, opt->offset2);

        rc = parse_table_name(value, &first, &second, &why);
        if (rc == -ENOMEM)
            return fail_oom(ctx);
        if (rc < 0)
            return fail_at(ctx, pos, "bad table name \"%s\" for \"%s\": %s",
                           show(shown, sizeof(shown), value), name, why);
        free(*schema);
        free(*table);
        *schema = first;
        *table = second;
        return 0;
    }

    case OPT_PROPERTIES:
    case OPT_STRING_LIST:
    case OPT_TABLE_LIST:
        break;
    }
    /* Not reached: these are handled by set_properties() and set_list(). */
    return fail_at(ctx, pos, "internal error: \"%s\" has no scalar form", name);
}

/* Append kafka.properties-style pairs, in file order, values expanded. */
static int set_properties(struct parser_ctx *ctx, const struct relay_option *opt, const yaml_node_t *node)
{
    struct relay_kv **kvs = field_at(ctx->cfg, opt, opt->offset);
    size_t *nkvs = field_at(ctx->cfg, opt, opt->offset2);
    char name[128], shown[SHOW_SIZE], desc[SHOW_SIZE + 2];
    const yaml_node_pair_t *pair;

    option_name(name, sizeof(name), opt);
    if (is_null(node))
        return 0;
    if (node->type != YAML_MAPPING_NODE)
        return fail_at(ctx, mark_pos(node->start_mark), "\"%s\" must be a mapping, got %s", name,
                       describe(desc, sizeof(desc), node));

    for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = yaml_document_get_node(ctx->doc, pair->key);
        const yaml_node_t *v = yaml_document_get_node(ctx->doc, pair->value);
        const char *key;
        struct relay_kv *grown;
        char *kcopy, *value;

        if (key_text(ctx, k, &key) < 0)
            return -1;
        if (key_seen_before(ctx->doc, node, pair, key))
            return fail_at(ctx, mark_pos(k->start_mark), "duplicate key \"%s\" in \"%s\"",
                           show(shown, sizeof(shown), key), name);
        if (v->type != YAML_SCALAR_NODE)
            return fail_at(ctx, mark_pos(v->start_mark),
                           "value of \"%s\" in \"%s\" must be a scalar, got %s",
                           show(shown, sizeof(shown), key), name, describe(desc, sizeof(desc), v));
        /* Overridden from the environment: added after the walk, this value ignored. */
        if (find_env_prop(ctx, key) != NULL)
            continue;
        if (expand_env(ctx, v, &value) < 0)
            return -1;
        kcopy = strdup(key);
        grown = realloc(*kvs, (*nkvs + 1) * sizeof(**kvs));
        if (grown != NULL)
            *kvs = grown;
        if (kcopy == NULL || grown == NULL) {
            free(kcopy);
            free(value);
            return fail_oom(ctx);
        }
        (*kvs)[*nkvs].key = kcopy;
        (*kvs)[*nkvs].value = value;
        (*nkvs)++;
    }
    return 0;
}

/*
 * Check one entry of a list option (already expanded) and append it; pos is
 * where the entry is.  An entry equal to an earlier one is an error: for a table,
 * equal once parsed, so "Orders" and "public.orders" are the same entry.
 */
static int add_entry(struct parser_ctx *ctx, const struct relay_option *opt, const char *name,
                     const char *value, struct relay_pos pos)
{
    size_t *n = field_at(ctx->cfg, opt, opt->offset2);
    char shown[SHOW_SIZE];
    size_t i;

    if (opt->check != NULL && opt->check(ctx, name, value, pos) < 0)
        return -1;

    switch (opt->type) {
    case OPT_STRING_LIST: {
        char ***list = field_at(ctx->cfg, opt, opt->offset);
        char **grown, *copy;

        for (i = 0; i < *n; i++) {
            if (strcmp((*list)[i], value) == 0)
                return fail_at(ctx, pos, "duplicate entry \"%s\" in \"%s\"",
                               show(shown, sizeof(shown), value), name);
        }
        copy = strdup(value);
        grown = realloc(*list, (*n + 1) * sizeof(**list));
        if (grown != NULL)
            *list = grown;
        if (copy == NULL || grown == NULL) {
            free(copy);
            return fail_oom(ctx);
        }
        (*list)[(*n)++] = copy;
        return 0;
    }

    case OPT_TABLE_LIST: {
        struct relay_table **list = field_at(ctx->cfg, opt, opt->offset);
        struct relay_table *grown;
        char *schema = NULL, *table = NULL, text[2 * (2 * PG_NAME_MAX + 2) + 2];
        const char *why = NULL;
        int rc;

        rc = parse_table_name(value, &schema, &table, &why);
        if (rc == -ENOMEM)
            return fail_oom(ctx);
        if (rc < 0)
            return fail_at(ctx, pos, "bad table name \"%s\" for \"%s\": %s",
                           show(shown, sizeof(shown), value), name, why);
        for (i = 0; i < *n; i++) {
            if (strcmp((*list)[i].schema, schema) == 0 && strcmp((*list)[i].table, table) == 0) {
                fail_at(ctx, pos, "duplicate entry \"%s\" in \"%s\"",
                        show(shown, sizeof(shown), table_text(text, sizeof(text), schema, table)),
                        name);
                free(schema);
                free(table);
                return -1;
            }
        }
        grown = realloc(*list, (*n + 1) * sizeof(**list));
        if (grown == NULL) {
            free(schema);
            free(table);
            return fail_oom(ctx);
        }
        *list = grown;
        (*list)[*n].schema = schema;
        (*list)[*n].table = table;
        (*n)++;
        return 0;
    }

    default:
        break;
    }
    /* Not reached: only list options have entries. */
    return fail_at(ctx, pos, "internal error: \"%s\" is not a list", name);
}

/*
 * A list option: a sequence of scalars, appended in file order, each expanded
 * and checked, with messages pointing at the entry.  A null value is an empty
 * list, as "[]" is.
 */
static int set_list(struct parser_ctx *ctx, const struct relay_option *opt, const yaml_node_t *node)
{
    char name[128], desc[SHOW_SIZE + 2];
    const yaml_node_item_t *item;

    option_name(name, sizeof(name), opt);
    if (is_null(node))
        return 0;
    if (node->type != YAML_SEQUENCE_NODE)
        return fail_at(ctx, mark_pos(node->start_mark), "\"%s\" must be %s, got %s", name,
                       type_names[opt->type], describe(desc, sizeof(desc), node));

    for (item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        const yaml_node_t *v = yaml_document_get_node(ctx->doc, *item);
        char *value;
        int rc;

        if (v->type != YAML_SCALAR_NODE || is_null(v))
            return fail_at(ctx, mark_pos(v->start_mark),
                           "entry %zu of \"%s\" must be a string, got %s",
                           (size_t)(item - node->data.sequence.items.start) + 1, name,
                           describe(desc, sizeof(desc), v));
        if (expand_env(ctx, v, &value) < 0)
            return -1;
        rc = add_entry(ctx, opt, name, value, mark_pos(v->start_mark));
        free(value);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Apply one "key: value" pair of a section (or of the top level) to its option. */
static int apply_option(struct parser_ctx *ctx, const struct relay_option *opt, const yaml_node_t *node)
{
    char name[128], desc[SHOW_SIZE + 2];
    char *value;
    int rc;

    if (opt->type == OPT_PROPERTIES)
        return set_properties(ctx, opt, node);
    if (opt->type == OPT_STRING_LIST || opt->type == OPT_TABLE_LIST)
        return set_list(ctx, opt, node);

    option_name(name, sizeof(name), opt);
    if (node->type != YAML_SCALAR_NODE || is_null(node))
        return fail_at(ctx, mark_pos(node->start_mark), "\"%s\" must be %s, got %s", name,
                       type_names[opt->type], describe(desc, sizeof(desc), node));
    if (expand_env(ctx, node, &value) < 0)
        return -1;
    rc = set_value(ctx, opt, value, mark_pos(node->start_mark));
    free(value);
    return rc;
}

/*
 * The walk
 */

/* Is the option in this section?  A NULL section is the top level. */
static bool in_section(const struct relay_option *opt, const char *section)
{
    if (opt->section == NULL || section == NULL)
        return opt->section == section;
    return strcmp(opt->section, section) == 0;
}

/* The index of the option section.key (section NULL: top level), or NOPTIONS. */
static size_t find_option(const char *section, const char *key)
{
    size_t i;

    for (i = 0; i < NOPTIONS; i++) {
        if (in_section(&options[i], section) && strcmp(options[i].key, key) == 0)
            break;
    }
    return i;
}

static bool section_known(const char *section)
{
    size_t i;

    for (i = 0; i < NOPTIONS; i++) {
        if (options[i].section != NULL && strcmp(options[i].section, section) == 0)
            return true;
    }
    return false;
}

/* Was the section in the file, even empty? */
static bool section_present(const struct parser_ctx *ctx, const char *section)
{
    size_t i;

    for (i = 0; i < NOPTIONS; i++) {
        if (options[i].section != NULL && strcmp(options[i].section, section) == 0 &&
            ctx->section_seen[i])
            return true;
    }
    return false;
}

/* One top-level section; value is its mapping (or null for an empty one). */
static int load_section(struct parser_ctx *ctx, const char *section, const yaml_node_t *keynode,
                        const yaml_node_t *value)
{
    char shown[SHOW_SIZE], desc[SHOW_SIZE + 2];
    const yaml_node_pair_t *pair;
    struct relay_pos where;
    size_t i;

    if (value->type != YAML_MAPPING_NODE && !is_null(value))
        return fail_at(ctx, mark_pos(value->start_mark), "\"%s\" must be a mapping, got %s",
                       section, describe(desc, sizeof(desc), value));

    /* Missing keys are reported at the mapping, or at the key of an empty section. */
    where = mark_pos(value->type == YAML_MAPPING_NODE ? value->start_mark : keynode->start_mark);
    for (i = 0; i < NOPTIONS; i++) {
        if (in_section(&options[i], section)) {
            ctx->section_seen[i] = true;
            ctx->section_pos[i] = where;
        }
    }
    if (value->type != YAML_MAPPING_NODE)
        return 0;

    for (pair = value->data.mapping.pairs.start; pair < value->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = yaml_document_get_node(ctx->doc, pair->key);
        const yaml_node_t *v = yaml_document_get_node(ctx->doc, pair->value);
        const char *key;

        if (key_text(ctx, k, &key) < 0)
            return -1;
        if (key_seen_before(ctx->doc, value, pair, key))
            return fail_at(ctx, mark_pos(k->start_mark), "duplicate key \"%s\" in \"%s\"",
                           show(shown, sizeof(shown), key), section);
        i = find_option(section, key);
        if (i == NOPTIONS)
            return fail_at(ctx, mark_pos(k->start_mark), "unknown key \"%s\" in \"%s\"",
                           show(shown, sizeof(shown), key), section);
        ctx->seen[i] = true;
        /* The environment's value wins: the file's is not even expanded. */
        if (ctx->env_value[i] != NULL)
            continue;
        ctx->node[i] = v;
        if (apply_option(ctx, &options[i], v) < 0)
            return -1;
    }
    return 0;
}

static int load_root(struct parser_ctx *ctx)
{
    const yaml_node_t *root = yaml_document_get_root_node(ctx->doc);
    const yaml_node_pair_t *pair;
    char shown[SHOW_SIZE], desc[SHOW_SIZE + 2];
    struct relay_pos top = {1, 1};

    if (root == NULL || is_null(root))
        return fail_at(ctx, top, "configuration is empty");
    if (root->type != YAML_MAPPING_NODE)
        return fail_at(ctx, mark_pos(root->start_mark),
                       "the top level must be a mapping of sections, got %s",
                       describe(desc, sizeof(desc), root));

    for (pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
        const yaml_node_t *k = yaml_document_get_node(ctx->doc, pair->key);
        const yaml_node_t *v = yaml_document_get_node(ctx->doc, pair->value);
        const char *key;
        size_t i;

        if (key_text(ctx, k, &key) < 0)
            return -1;
        /* A key of the top level itself, such as "sink: stdout", or a section. */
        i = find_option(NULL, key);
        if (key_seen_before(ctx->doc, root, pair, key))
            return fail_at(ctx, mark_pos(k->start_mark),
                           i < NOPTIONS ? "duplicate key \"%s\"" : "duplicate section \"%s\"",
                           show(shown, sizeof(shown), key));
        if (i < NOPTIONS) {
            ctx->seen[i] = true;
            if (ctx->env_value[i] != NULL)
                continue;
            ctx->node[i] = v;
            if (apply_option(ctx, &options[i], v) < 0)
                return -1;
            continue;
        }
        if (!section_known(key))
            return fail_at(ctx, mark_pos(k->start_mark), "unknown section \"%s\"",
                           show(shown, sizeof(shown), key));
        if (load_section(ctx, key, k, v) < 0)
            return -1;
    }
    return 0;
}

/*
 * Which sink: the "sink" key, else a section that selects its sink (section_selects:
 * "stdout", so that a debugging session needs one edit), else the first registered.
 * With "sink: kafka" written out as well as a "stdout" section, the file says two
 * things and neither wins.  OUTBOX_RELAY_SINK wins over the file, a section included.
 */
static int settle_sink(struct parser_ctx *ctx)
{
    size_t sink = find_option(NULL, "sink");
    struct relay_config *cfg = ctx->cfg;
    char shown[SHOW_SIZE], names[256];
    size_t o = 0;

    if (nsinks == 0)
        return fail_at(ctx, (struct relay_pos){1, 1}, "internal error: no sink is registered");
    for (size_t i = 0; i < nsinks && ctx->env_value[sink] == NULL; i++) {
        if (!sinks[i]->section_selects || !section_present(ctx, sinks[i]->section))
            continue;
        if (cfg->sink_name != NULL && strcmp(cfg->sink_name, sinks[i]->name) != 0)
            return fail_at(ctx, mark_pos(ctx->node[sink]->start_mark),
                           "\"sink\" is \"%s\", but a \"%s\" section selects the %s sink",
                           show(shown, sizeof(shown), cfg->sink_name), sinks[i]->section,
                           sinks[i]->name);
        if (cfg->sink_name == NULL && (cfg->sink_name = strdup(sinks[i]->name)) == NULL)
            return fail_oom(ctx);
    }
    if (cfg->sink_name == NULL && (cfg->sink_name = strdup(sinks[0]->name)) == NULL)
        return fail_oom(ctx);
    for (size_t i = 0; i < nsinks; i++) {
        if (strcmp(cfg->sink_name, sinks[i]->name) == 0) {
            cfg->sink = i;
            return 0;
        }
        o += (size_t)snprintf(names + o, o < sizeof(names) ? sizeof(names) - o : 0, "%s%s",
                              i ? ", " : "", sinks[i]->name);
        if (o >= sizeof(names))
            o = sizeof(names) - 1;
    }
    env_blame(ctx, sink);
    return fail_at(ctx, ctx->node[sink] ? mark_pos(ctx->node[sink]->start_mark)
                                        : (struct relay_pos){1, 1},
                   "\"sink\" must be one of %s, got \"%s\"", names,
                   show(shown, sizeof(shown), cfg->sink_name));
}

/*
 * An alias and the key it names, both set: the file says one thing twice, perhaps
 * differently.  Otherwise the alias's value stands for the key's (no default over it).
 */
static int check_aliases(struct parser_ctx *ctx)
{
    char name[128], target[128];

    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *dot;
        size_t t;
        char section[64];

        if (options[i].alias_of == NULL || !ctx->seen[i])
            continue;
        dot = strchr(options[i].alias_of, '.');
        if (dot == NULL || (size_t)(dot - options[i].alias_of) >= sizeof(section))
            continue;
        memcpy(section, options[i].alias_of, (size_t)(dot - options[i].alias_of));
        section[dot - options[i].alias_of] = '\0';
        if ((t = find_option(section, dot + 1)) >= NOPTIONS)
            continue;
        if (ctx->seen[t]) {
            struct relay_pos first = ctx->node[t] ? mark_pos(ctx->node[t]->start_mark)
                                                   : (struct relay_pos){1, 1};

            option_name(name, sizeof(name), &options[i]);
            option_name(target, sizeof(target), &options[t]);
            env_blame(ctx, i);
            if (ctx->env_var == NULL)
                env_blame(ctx, t);
            return fail_at(ctx, ctx->node[i] ? mark_pos(ctx->node[i]->start_mark)
                                             : (struct relay_pos){1, 1},
                           "\"%s\" is the old name of \"%s\", which is set too (line %zu): "
                           "keep one",
                           name, target, first.line);
        }
        ctx->seen[t] = true; /* the alias's value is the key's: no default over it */
    }
    return 0;
}

/*
 * pipeline.on_bad_event: by default "dead-letter" when a dead-letter destination is
 * configured (dead_letter.table, or the selected sink's own), else "stop"; asking for
 * "dead-letter" without one is an error, since the relay would have nowhere to put them.
 */
static int settle_bad_event(struct parser_ctx *ctx)
{
    struct relay_config *cfg = ctx->cfg;
    const struct sink_common *c = relay_config_sink_common(cfg);
    bool have = (cfg->dead_letter.table && cfg->dead_letter.table[0]) ||
                (c && c->dead_letter && c->dead_letter[0]);
    size_t idx = find_option("pipeline", "on_bad_event");

    if (!ctx->seen[idx]) {
        cfg->pipeline.on_bad_event = have ? RELAY_BAD_EVENT_DEAD_LETTER : RELAY_BAD_EVENT_STOP;
        return 0;
    }
    if (cfg->pipeline.on_bad_event == RELAY_BAD_EVENT_DEAD_LETTER && !have) {
        env_blame(ctx, idx);
        return fail_at(ctx, ctx->node[idx] ? mark_pos(ctx->node[idx]->start_mark)
                                           : (struct relay_pos){1, 1},
                       "\"pipeline.on_bad_event\" is \"dead-letter\", but no dead-letter "
                       "destination is configured: set \"dead_letter.table\"%s%s%s",
                       sinks[cfg->sink]->section ? " or the " : "",
                       sinks[cfg->sink]->section ? sinks[cfg->sink]->name : "",
                       sinks[cfg->sink]->section ? " sink's dead-letter key" : "");
    }
    return 0;
}

/*
 * Table changes come from logical decoding; the polling source reads the outbox
 * table alone, so cdc tables and polling mode cannot go together.  An empty list
 * is no cdc and is fine.  The message points at the cdc.tables value.
 */
static int check_cdc_mode(struct parser_ctx *ctx)
{
    size_t idx = find_option("cdc", "tables");
    struct relay_pos pos = {1, 1};

    if (ctx->cfg->postgres.mode != RELAY_MODE_POLLING || ctx->cfg->cdc.ntables == 0)
        return 0;
    if (ctx->node[idx] != NULL)
        pos = mark_pos(ctx->node[idx]->start_mark);
    env_blame(ctx, idx);
    return fail_at(ctx, pos, "\"cdc.tables\" needs \"postgres.mode: replication\"");
}

/*
 * The outbox table's rows are events already; decoding its changes as cdc events
 * too would send each one twice, in two shapes.  Runs after defaults, so an
 * outbox.table left out counts as "public.outbox".
 */
static int check_cdc_tables(struct parser_ctx *ctx)
{
    const struct relay_config *cfg = ctx->cfg;
    size_t idx = find_option("cdc", "tables"), i;
    char shown[SHOW_SIZE], text[2 * (2 * PG_NAME_MAX + 2) + 2];

    for (i = 0; i < cfg->cdc.ntables; i++) {
        const struct relay_table *t = &cfg->cdc.tables[i];
        struct relay_pos pos = {1, 1};
        const yaml_node_t *list = ctx->node[idx], *entry;

        if (strcmp(t->schema, cfg->outbox.schema) != 0 || strcmp(t->table, cfg->outbox.table) != 0)
            continue;
        /* Entries were appended one per sequence item: item i is entry i. */
        if (list != NULL && list->type == YAML_SEQUENCE_NODE &&
            i < (size_t)(list->data.sequence.items.top - list->data.sequence.items.start)) {
            entry = yaml_document_get_node(ctx->doc, list->data.sequence.items.start[i]);
            if (entry != NULL)
                pos = mark_pos(entry->start_mark);
        }
        env_blame(ctx, idx);
        return fail_at(
            ctx, pos, "\"%s\" in \"cdc.tables\": outbox table cannot also be a cdc table",
            show(shown, sizeof(shown), table_text(text, sizeof(text), t->schema, t->table)));
    }
    return 0;
}

/*
 * After the walk: fill in defaults, settle the sink, report the first missing
 * required key, then check the rules between keys.  postgres.slot and
 * postgres.publication are allowed in polling mode, unused: switching modes is
 * then one line.
 */
static int finish(struct parser_ctx *ctx)
{
    struct relay_pos top = {1, 1};
    char name[128];
    size_t i;

    if (check_aliases(ctx) < 0)
        return -1;
    for (i = 0; i < NOPTIONS; i++) {
        if (!ctx->seen[i] && options[i].def != NULL &&
            set_value(ctx, &options[i], options[i].def, top) < 0)
            return -1;
    }
    if (settle_sink(ctx) < 0)
        return -1;
    for (i = 0; i < NOPTIONS; i++) {
        /* A sink's required key is required when that sink is selected. */
        bool needed = options[i].base < 0
                          ? options[i].required_if == NULL || options[i].required_if(ctx->cfg)
                          : (size_t)options[i].base == ctx->cfg->sink;

        if (options[i].required && !ctx->seen[i] && needed) {
            option_name(name, sizeof(name), &options[i]);
            if (!ctx->have_file) {
                char var[128];

                relay_config_env_name(options[i].section, options[i].key, var, sizeof(var));
                return fail_at(ctx, top,
                               "missing required key \"%s\": set %s (or %s_FILE), or give a "
                               "configuration file",
                               name, var, var);
            }
            return fail_at(ctx, ctx->section_seen[i] ? ctx->section_pos[i] : top,
                           "missing required key \"%s\"", name);
        }
    }
    if (settle_bad_event(ctx) < 0)
        return -1;
    if (check_cdc_mode(ctx) < 0)
        return -1;
    return check_cdc_tables(ctx);
}

/*
 * libyaml
 */

/* Turn a libyaml parser error into a message with a position. */
static int fail_yaml(struct parser_ctx *ctx, const yaml_parser_t *parser)
{
    struct relay_pos pos = mark_pos(parser->problem_mark);
    const char *problem = parser->problem ? parser->problem : "unknown error";

    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        return fail_oom(ctx);
    case YAML_READER_ERROR: {
        /* The reader knows a byte offset only; count lines and characters to it. */
        size_t i;

        pos.line = 1;
        pos.column = 1;
        for (i = 0; i < parser->problem_offset && i < ctx->len; i++) {
            if (ctx->text[i] == '\n') {
                pos.line++;
                pos.column = 1;
            } else if ((ctx->text[i] & 0xC0) != 0x80) {
                pos.column++;
            }
        }
        if (parser->problem_value != -1)
            return fail_at(ctx, pos, "invalid YAML: %s (byte 0x%02X)", problem,
                           (unsigned)parser->problem_value);
        return fail_at(ctx, pos, "invalid YAML: %s", problem);
    }
    default:
        if (parser->context != NULL)
            return fail_at(ctx, pos, "invalid YAML: %s (%s at line %zu column %zu)", problem,
                           parser->context, parser->context_mark.line + 1,
                           parser->context_mark.column + 1);
        return fail_at(ctx, pos, "invalid YAML: %s", problem);
    }
}

/*
 * First pass over the events: syntax errors, and what the relay refuses --
 * anchors and aliases (a value should be where it is read) and a second document.
 */
static int prescan(struct parser_ctx *ctx)
{
    yaml_parser_t parser;
    yaml_event_t event;
    int ndocs = 0, rc = 0;
    bool done = false;

    if (!yaml_parser_initialize(&parser))
        return fail_oom(ctx);
    yaml_parser_set_input_string(&parser, ctx->text, ctx->len);

    while (!done && rc == 0) {
        const yaml_char_t *anchor = NULL;
        char shown[SHOW_SIZE];

        if (!yaml_parser_parse(&parser, &event)) {
            rc = fail_yaml(ctx, &parser);
            break;
        }
        switch (event.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++ndocs > 1)
                rc = fail_at(ctx, mark_pos(event.start_mark), "only one YAML document is allowed");
            break;
        case YAML_ALIAS_EVENT:
            rc = fail_at(ctx, mark_pos(event.start_mark),
                         "anchors and aliases are not supported (\"*%s\")",
                         show(shown, sizeof(shown), (const char *)event.data.alias.anchor));
            break;
        case YAML_SCALAR_EVENT:
            anchor = event.data.scalar.anchor;
            break;
        case YAML_SEQUENCE_START_EVENT:
            anchor = event.data.sequence_start.anchor;
            break;
        case YAML_MAPPING_START_EVENT:
            anchor = event.data.mapping_start.anchor;
            break;
        default:
            break;
        }
        if (anchor != NULL)
            rc = fail_at(ctx, mark_pos(event.start_mark),
                         "anchors and aliases are not supported (\"&%s\")",
                         show(shown, sizeof(shown), (const char *)anchor));
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Second pass: the document tree.  On success the caller deletes *doc. */
static int load_document(struct parser_ctx *ctx, yaml_document_t *doc)
{
    yaml_parser_t parser;
    int rc = 0;

    if (!yaml_parser_initialize(&parser))
        return fail_oom(ctx);
    yaml_parser_set_input_string(&parser, ctx->text, ctx->len);
    /* On failure yaml_parser_load() has already deleted the partial document. */
    if (!yaml_parser_load(&parser, doc))
        rc = fail_yaml(ctx, &parser);
    yaml_parser_delete(&parser);
    return rc;
}

/*
 * The environment
 */

const char *relay_config_env_name(const char *section, const char *key, char *buf, size_t size)
{
    size_t o = 0;
    const char *parts[2] = {section, key};

    if (size == 0)
        return buf;
    for (const char *p = ENV_PREFIX; *p != '\0' && o + 1 < size; p++)
        buf[o++] = *p;
    for (int i = 0; i < 2; i++) {
        if (parts[i] == NULL)
            continue;
        if (i == 1 && parts[0] != NULL && o + 1 < size)
            buf[o++] = '_';
        for (const char *p = parts[i]; *p != '\0' && o + 1 < size; p++)
            buf[o++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
    }
    buf[o] = '\0';
    return buf;
}

/* The value of the variable name in envp, or NULL when it is not set. */
static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);

    for (; envp != NULL && *envp != NULL; envp++) {
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    }
    return NULL;
}

/*
 * Read the whole file at path, at most max bytes, into a new NUL-terminated buffer
 * (*len excludes the NUL).  Returns 0; or -errno with *what saying which step
 * failed ("open", "read"), -EFBIG when the file is larger than max.
 */
static int read_file(const char *path, size_t max, char **out, size_t *len, const char **what)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int err = 0;
    FILE *f;

    *what = "open";
    f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    *what = "read";
    for (;;) {
        size_t got;

        if (n + 1 >= cap) {
            size_t newcap = cap ? cap * 2 : 4096;
            char *p;

            if (cap > max) {
                err = -EFBIG;
                break;
            }
            p = realloc(buf, newcap);
            if (p == NULL) {
                err = -ENOMEM;
                break;
            }
            buf = p;
            cap = newcap;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                err = errno ? -errno : -EIO;
            break;
        }
    }
    fclose(f);
    if (err == 0 && n > max)
        err = -EFBIG;
    if (err < 0) {
        free(buf);
        return err;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/*
 * The value of the variable name, or of name_FILE: the content of the file it
 * names, one trailing newline dropped.  On success *value is a new string or NULL
 * (neither is set) and used holds the variable read.  Returns 0 or -1 with the
 * message written.
 */
static int env_read(struct parser_ctx *ctx, const char *name, char **value, char *used,
                    size_t used_size)
{
    char file_var[ENV_NAME_MAX + 8], shown[SHOW_SIZE];
    const char *direct, *path, *what;
    char *buf = NULL;
    size_t len = 0;
    int err;

    *value = NULL;
    snprintf(file_var, sizeof(file_var), "%s_FILE", name);
    direct = env_get(ctx->envp, name);
    path = env_get(ctx->envp, file_var);
    if (direct != NULL && path != NULL) {
        ctx->env_var = file_var;
        return fail_at(ctx, (struct relay_pos){1, 1}, "%s is set too: set only one of them", name);
    }
    if (direct != NULL) {
        snprintf(used, used_size, "%s", name);
        *value = strdup(direct);
        return *value != NULL ? 0 : fail_oom(ctx);
    }
    if (path == NULL)
        return 0;

    snprintf(used, used_size, "%s", file_var);
    ctx->env_var = file_var;
    if (path[0] == '\0')
        return fail_at(ctx, (struct relay_pos){1, 1}, "the file name is empty");
    err = read_file(path, ENV_FILE_MAX, &buf, &len, &what);
    if (err == -EFBIG)
        return fail_at(ctx, (struct relay_pos){1, 1}, "file \"%s\" is larger than %d bytes",
                       show(shown, sizeof(shown), path), ENV_FILE_MAX);
    if (err == -ENOMEM)
        return fail_oom(ctx);
    if (err < 0)
        return fail_at(ctx, (struct relay_pos){1, 1}, "cannot %s file \"%s\": %s", what,
                       show(shown, sizeof(shown), path), strerror(-err));
    if (strlen(buf) != len) {
        free(buf);
        return fail_at(ctx, (struct relay_pos){1, 1}, "file \"%s\" contains a NUL byte",
                       show(shown, sizeof(shown), path));
    }
    /* Files written by editors and `echo` end with a newline that is not the value. */
    if (len > 0 && buf[len - 1] == '\n')
        buf[len - 1] = '\0';
    ctx->env_var = NULL;
    *value = buf;
    return 0;
}

/* Is name (of length n) one of the sections of the table? */
static bool section_known_n(const char *name, size_t n)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (options[i].section != NULL && strlen(options[i].section) == n &&
            strncasecmp(options[i].section, name, n) == 0)
            return true;
    }
    return false;
}



/*
 * The name of the variable in an envp entry, without a "_FILE" suffix, into buf.
 * Returns false when the entry has no '=' or the name does not fit.
 */
static bool env_base_name(const char *entry, char *buf, size_t size)
{
    const char *eq = strchr(entry, '=');
    size_t n;

    if (eq == NULL)
        return false;
    n = (size_t)(eq - entry);
    if (n >= 5 && memcmp(eq - 5, "_FILE", 5) == 0)
        n -= 5;
    if (n >= size)
        return false;
    memcpy(buf, entry, n);
    buf[n] = '\0';
    return true;
}

static const struct env_prop *find_env_prop(const struct parser_ctx *ctx, const char *key)
{
    for (size_t i = 0; i < ctx->nenv_props; i++) {
        if (strcmp(ctx->env_props[i].key, key) == 0)
            return &ctx->env_props[i];
    }
    return NULL;
}

/* The option whose variable is name, or NOPTIONS. */
static size_t find_env_option(const char *name)
{
    char var[ENV_NAME_MAX];

    for (size_t i = 0; i < NOPTIONS; i++) {
        relay_config_env_name(options[i].section, options[i].key, var, sizeof(var));
        if (strcmp(var, name) == 0)
            return i;
    }
    return NOPTIONS;
}

/*
 * Collect one OUTBOX_RELAY_KAFKA_PROPERTIES_<NAME> variable (base, without _FILE):
 * the property is NAME lower-cased, '_' read as '.'.
 */
static int collect_env_prop(struct parser_ctx *ctx, const char *base)
{
    const char *suffix = base + strlen(ENV_PROPS_PREFIX);
    char used[ENV_NAME_MAX + 8], *key, *value;
    struct env_prop *grown;
    size_t i;

    /* NAME and NAME_FILE are one variable: the second of them was collected already. */
    for (i = 0; i < ctx->nenv_props; i++) {
        if (strcmp(ctx->env_props[i].base, base) == 0)
            return 0;
    }
    if (*suffix == '\0' ||
        strspn(suffix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789_") != strlen(suffix) ||
        suffix[0] == '_' || suffix[strlen(suffix) - 1] == '_' || strstr(suffix, "__") != NULL) {
        ctx->env_var = base;
        return fail_at(ctx, (struct relay_pos){1, 1},
                       "bad %s property variable: use %s<NAME>, NAME being the property "
                       "with '.' written as '_', such as %sSASL_PASSWORD",
                       options[props_option].section, ENV_PROPS_PREFIX, ENV_PROPS_PREFIX);
    }
    if (env_read(ctx, base, &value, used, sizeof(used)) < 0)
        return -1;
    if (value == NULL)
        return 0;
    key = strdup(suffix);
    if (key == NULL) {
        free(value);
        return fail_oom(ctx);
    }
    for (char *p = key; *p != '\0'; p++)
        *p = *p == '_' ? '.' : (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
    if (find_env_prop(ctx, key) != NULL) {
        ctx->env_var = base;
        fail_at(ctx, (struct relay_pos){1, 1}, "another variable sets %s property \"%s\" too",
                options[props_option].section, key);
        free(key);
        free(value);
        return -1;
    }
    grown = realloc(ctx->env_props, (ctx->nenv_props + 1) * sizeof(*grown));
    if (grown != NULL)
        ctx->env_props = grown;
    if (grown == NULL || (grown[ctx->nenv_props].var = strdup(used)) == NULL) {
        free(key);
        free(value);
        return fail_oom(ctx);
    }
    if ((grown[ctx->nenv_props].base = strdup(base)) == NULL) {
        free(grown[ctx->nenv_props].var);
        free(key);
        free(value);
        return fail_oom(ctx);
    }
    grown[ctx->nenv_props].key = key;
    grown[ctx->nenv_props].value = value;
    ctx->nenv_props++;
    return 0;
}

/*
 * Before the walk: read every option's variable, collect the properties' (see
 * props_option) and refuse variables of a known section that name no key.
 */
static int resolve_env(struct parser_ctx *ctx)
{
    char var[ENV_NAME_MAX], base[ENV_NAME_MAX];

    for (size_t i = 0; i < NOPTIONS; i++) {
        relay_config_env_name(options[i].section, options[i].key, var, sizeof(var));
        if (env_read(ctx, var, &ctx->env_value[i], ctx->env_var_names[i],
                     sizeof(ctx->env_var_names[i])) < 0)
            return -1;
    }
    for (char *const *e = ctx->envp; *e != NULL; e++) {
        const char *rest, *sep;

        if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
            continue;
        if (!env_base_name(*e, base, sizeof(base))) {
            /* Too long to be one of ours; a known section's is still a typo. */
            rest = *e + strlen(ENV_PREFIX);
            sep = strchr(rest, '_');
            if (sep != NULL && section_known_n(rest, (size_t)(sep - rest))) {
                ctx->env_var = ENV_PREFIX "...";
                return fail_at(ctx, (struct relay_pos){1, 1}, "variable name too long");
            }
            continue;
        }
        if (ENV_PROPS_PREFIX[0] && strncmp(base, ENV_PROPS_PREFIX, strlen(ENV_PROPS_PREFIX)) == 0) {
            if (collect_env_prop(ctx, base) < 0)
                return -1;
            continue;
        }
        if (find_env_option(base) < NOPTIONS)
            continue;
        rest = base + strlen(ENV_PREFIX);
        sep = strchr(rest, '_');
        if (sep != NULL && section_known_n(rest, (size_t)(sep - rest))) {
            char *name = strndup(*e, (size_t)(strchr(*e, '=') - *e));

            if (name == NULL)
                return fail_oom(ctx);
            ctx->env_var = name;
            fail_at(ctx, (struct relay_pos){1, 1},
                    "no such configuration key (see docs/configuration.md for the variables)");
            free(name);
            return -1;
        }
    }
    return 0;
}

/*
 * Split a list variable's value at commas outside double quotes, each entry
 * trimmed of spaces and tabs, and add the entries.  An empty value is an empty
 * list; an empty entry is an error.
 */
static int set_env_list(struct parser_ctx *ctx, const struct relay_option *opt, const char *value)
{
    char name[128];
    const char *s = value;
    size_t nentry = 0;

    option_name(name, sizeof(name), opt);
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return 0;
    for (;;) {
        const char *start, *end;
        bool quoted = false;
        char *entry;
        int rc;

        while (*s == ' ' || *s == '\t')
            s++;
        start = s;
        for (; *s != '\0' && (quoted || *s != ','); s++) {
            if (*s == '"')
                quoted = !quoted;
        }
        end = s;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        nentry++;
        if (end == start)
            return fail_at(ctx, (struct relay_pos){1, 1}, "entry %zu of \"%s\" is empty", nentry, name);
        entry = strndup(start, (size_t)(end - start));
        if (entry == NULL)
            return fail_oom(ctx);
        rc = add_entry(ctx, opt, name, entry, (struct relay_pos){1, 1});
        free(entry);
        if (rc < 0)
            return -1;
        if (*s == '\0')
            return 0;
        s++; /* the comma */
    }
}

/* After the walk: the environment's values, through the same checks as the file's. */
static int apply_env(struct parser_ctx *ctx)
{
    size_t props = props_option;

    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct relay_option *opt = &options[i];
        int rc;

        if (ctx->env_value[i] == NULL)
            continue;
        ctx->env_var = ctx->env_var_names[i];
        ctx->seen[i] = true;
        switch (opt->type) {
        case OPT_PROPERTIES:
            rc = fail_at(ctx, (struct relay_pos){1, 1},
                         "a mapping cannot be set from one variable: set each property with "
                         "%s<NAME>",
                         ENV_PROPS_PREFIX);
            break;
        case OPT_STRING_LIST:
        case OPT_TABLE_LIST:
            rc = set_env_list(ctx, opt, ctx->env_value[i]);
            break;
        default:
            rc = set_value(ctx, opt, ctx->env_value[i], (struct relay_pos){1, 1});
            break;
        }
        if (rc < 0)
            return -1;
        ctx->env_var = NULL;
    }

    /* Properties: replace the file's entry of the same key (skipped in the walk) or add. */
    for (size_t j = 0; j < ctx->nenv_props && props < NOPTIONS; j++) {
        struct relay_kv **kvs = field_at(ctx->cfg, &options[props], options[props].offset);
        size_t *nkvs = field_at(ctx->cfg, &options[props], options[props].offset2);
        struct env_prop *ep = &ctx->env_props[j];
        struct relay_kv *grown = realloc(*kvs, (*nkvs + 1) * sizeof(**kvs));

        if (grown == NULL)
            return fail_oom(ctx);
        *kvs = grown;
        grown[*nkvs].key = ep->key;
        grown[*nkvs].value = ep->value;
        ep->key = NULL;
        ep->value = NULL;
        (*nkvs)++;
    }
    return 0;
}

static void env_blame(struct parser_ctx *ctx, size_t idx)
{
    if (ctx->env_value[idx] != NULL)
        ctx->env_var = ctx->env_var_names[idx];
}

/* Free what the context holds from the environment. */
static void free_env(struct parser_ctx *ctx)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        free(ctx->env_value[i]);
    for (size_t j = 0; j < ctx->nenv_props; j++) {
        free(ctx->env_props[j].var);
        free(ctx->env_props[j].base);
        free(ctx->env_props[j].key);
        free(ctx->env_props[j].value);
    }
    free(ctx->env_props);
}

bool relay_config_env_present(char *const *envp)
{
    char base[ENV_NAME_MAX];

    for (; envp != NULL && *envp != NULL; envp++) {
        if (strncmp(*envp, ENV_PREFIX, strlen(ENV_PREFIX)) != 0 ||
            !env_base_name(*envp, base, sizeof(base)))
            continue;
        if (find_env_option(base) < NOPTIONS ||
            (ENV_PROPS_PREFIX[0] && strncmp(base, ENV_PROPS_PREFIX, strlen(ENV_PROPS_PREFIX)) == 0))
            return true;
    }
    return false;
}

int relay_parse_listen(const char *s, char *host, size_t host_size, int *port)
{
    const char *h, *hend, *p;
    size_t hlen;
    long n = 0;

    if (s == NULL || host == NULL || host_size == 0)
        return -EINVAL;
    if (*s == '[') {
        h = s + 1;
        hend = strchr(h, ']');
        if (hend == NULL || hend == h || hend[1] != ':')
            return -EINVAL;
        if (strspn(h, "0123456789abcdefABCDEF:.") != (size_t)(hend - h) ||
            memchr(h, ':', (size_t)(hend - h)) == NULL)
            return -EINVAL;
        p = hend + 2;
    } else {
        /* An empty host (":9187") is every IPv4 address, as admin_open() reads it. */
        h = s;
        hend = strchr(s, ':');
        if (hend == NULL || strchr(hend + 1, ':') != NULL)
            return -EINVAL;
        if (strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
            (size_t)(hend - h))
            return -EINVAL;
        p = hend + 1;
    }
    if (*p == '\0' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 5)
        return -EINVAL;
    for (; *p != '\0'; p++)
        n = n * 10 + (*p - '0');
    if (n > 65535)
        return -EINVAL;
    hlen = (size_t)(hend - h);
    if (hlen >= host_size)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)n;
    return 0;
}

/*
 * Public interface
 */

struct relay_config *relay_config_parse(const char *text, size_t len, const char *name,
                                        char *errstr, size_t errstr_size)
{
    if (text == NULL)
        text = "";
    return relay_config_parse_env(text, len, name, NULL, errstr, errstr_size);
}

struct relay_config *relay_config_parse_env(const char *text, size_t len, const char *name,
                                            char *const *envp, char *errstr, size_t errstr_size)
{
    static char *const no_env[] = {NULL};
    struct parser_ctx *ctx;
    struct relay_config *cfg = NULL;
    yaml_document_t doc;
    bool have_doc = false;

    if (errstr != NULL && errstr_size > 0)
        errstr[0] = '\0';
    if (name == NULL)
        name = text != NULL ? "<config>" : "environment";

    /* The context holds per-option arrays; keep it off the stack as the table grows. */
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        fail_plain(errstr, errstr_size, name, "out of memory");
        return NULL;
    }
    ctx->name = name;
    ctx->have_file = text != NULL;
    ctx->text = (const unsigned char *)(text != NULL ? text : "");
    ctx->len = text != NULL ? len : 0;
    ctx->envp = envp != NULL ? envp : no_env;
    ctx->errstr = errstr;
    ctx->errstr_size = errstr_size;
    ctx->doc = &doc;

    if (noptions == 0 && build_table() < 0) {
        fail_plain(errstr, errstr_size, name, "internal error: too many configuration keys");
        free(ctx);
        return NULL;
    }
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->path = strdup(name)) == NULL ||
        (nsinks > 0 && (cfg->sink_settings = calloc(nsinks, sizeof(void *))) == NULL)) {
        fail_oom(ctx);
        goto fail;
    }
    cfg->nsinks = nsinks;
    cfg->sinks = sinks;
    for (size_t i = 0; i < nsinks; i++) {
        if ((cfg->sink_settings[i] = calloc(1, sinks[i]->settings_size)) == NULL) {
            fail_oom(ctx);
            goto fail;
        }
    }
    ctx->cfg = cfg;

    if (resolve_env(ctx) < 0)
        goto fail;
    if (ctx->have_file) {
        if (prescan(ctx) < 0 || load_document(ctx, &doc) < 0)
            goto fail;
        have_doc = true;
        if (load_root(ctx) < 0)
            goto fail;
    }
    if (apply_env(ctx) < 0 || finish(ctx) < 0)
        goto fail;

    if (have_doc)
        yaml_document_delete(&doc);
    free_env(ctx);
    free(ctx);
    return cfg;

fail:
    if (have_doc)
        yaml_document_delete(&doc);
    relay_config_free(cfg);
    free_env(ctx);
    free(ctx);
    return NULL;
}

struct relay_config *relay_config_load(const char *path, char *errstr, size_t errstr_size)
{
    return relay_config_load_env(path, NULL, errstr, errstr_size);
}

struct relay_config *relay_config_load_env(const char *path, char *const *envp, char *errstr,
                                           size_t errstr_size)
{
    struct relay_config *cfg = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f;

    if (errstr != NULL && errstr_size > 0)
        errstr[0] = '\0';
    if (path == NULL)
        return relay_config_parse_env(NULL, 0, NULL, envp, errstr, errstr_size);
    f = fopen(path, "rb");
    if (f == NULL) {
        fail_plain(errstr, errstr_size, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    for (;;) {
        size_t n;

        if (len == cap) {
            size_t newcap = cap ? cap * 2 : 4096;
            char *p;

            if (cap >= CONFIG_FILE_MAX) {
                fail_plain(errstr, errstr_size, path, "file is larger than %d bytes",
                           CONFIG_FILE_MAX);
                goto out;
            }
            p = realloc(buf, newcap);
            if (p == NULL) {
                fail_plain(errstr, errstr_size, path, "out of memory");
                goto out;
            }
            buf = p;
            cap = newcap;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                fail_plain(errstr, errstr_size, path, "cannot read: %s", strerror(errno));
                goto out;
            }
            break;
        }
    }
    cfg = relay_config_parse_env(buf ? buf : "", len, path, envp, errstr, errstr_size);

out:
    free(buf);
    fclose(f);
    return cfg;
}

/* Free what one option owns in cfg. */
static void free_option(struct relay_config *cfg, const struct relay_option *opt)
{
    switch (opt->type) {
    case OPT_STRING:
        free(*(char **)field_at(cfg, opt, opt->offset));
        break;
    case OPT_QUALIFIED_NAME:
        free(*(char **)field_at(cfg, opt, opt->offset));
        free(*(char **)field_at(cfg, opt, opt->offset2));
        break;
    case OPT_PROPERTIES: {
        struct relay_kv *kvs = *(struct relay_kv **)field_at(cfg, opt, opt->offset);
        size_t n = *(size_t *)field_at(cfg, opt, opt->offset2), i;

        for (i = 0; i < n; i++) {
            free(kvs[i].key);
            free(kvs[i].value);
        }
        free(kvs);
        break;
    }
    case OPT_STRING_LIST: {
        char **list = *(char ***)field_at(cfg, opt, opt->offset);
        size_t n = *(size_t *)field_at(cfg, opt, opt->offset2), i;

        for (i = 0; i < n; i++)
            free(list[i]);
        free(list);
        break;
    }
    case OPT_TABLE_LIST: {
        struct relay_table *list = *(struct relay_table **)field_at(cfg, opt, opt->offset);
        size_t n = *(size_t *)field_at(cfg, opt, opt->offset2), i;

        for (i = 0; i < n; i++) {
            free(list[i].schema);
            free(list[i].table);
        }
        free(list);
        break;
    }
    case OPT_DURATION:
    case OPT_INTEGER:
    case OPT_ENUM:
        break;
    }
}

void relay_config_free(struct relay_config *cfg)
{
    size_t i;

    if (cfg == NULL)
        return;
    for (i = 0; i < NOPTIONS; i++)
        if (options[i].base < 0 || options[i].core || cfg->sink_settings[options[i].base])
            free_option(cfg, &options[i]);
    for (i = 0; i < cfg->nsinks; i++)
        free(cfg->sink_settings[i]);
    free(cfg->sink_settings);
    free(cfg->path);
    free(cfg);
}

const void *relay_config_sink_settings(const struct relay_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nsinks; i++)
        if (strcmp(cfg->sinks[i]->name, name) == 0)
            return cfg->sink_settings[i];
    return NULL;
}

const struct relay_kv *relay_config_properties(const struct relay_config *cfg, size_t k,
                                               size_t *n)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (options[i].type != OPT_PROPERTIES ||
            (options[i].base >= 0 && (size_t)options[i].base >= cfg->nsinks) ||
            /* An empty or absent mapping holds nothing: skipped, not the end. */
            (options[i].base >= 0 && !cfg->sink_settings[options[i].base]) ||
            *(struct relay_kv *const *)field_at((struct relay_config *)cfg, &options[i],
                                                options[i].offset) == NULL)
            continue;
        if (k-- == 0) {
            *n = *(const size_t *)field_at((struct relay_config *)cfg, &options[i],
                                           options[i].offset2);
            return *(struct relay_kv *const *)field_at((struct relay_config *)cfg, &options[i],
                                                       options[i].offset);
        }
    }
    *n = 0;
    return NULL;
}

/* The password of a scheme://user:password@host... URL, or NULL. */
static const char *url_password(const char *url, size_t *len)
{
    const char *p = strstr(url, "://"), *end, *at = NULL, *colon;

    if (!p)
        return NULL;
    p += 3;
    end = p + strcspn(p, "/?#");
    for (const char *q = p; q < end; q++) /* the last '@': a password may hold one */
        if (*q == '@')
            at = q;
    if (!at || !(colon = memchr(p, ':', (size_t)(at - p))) || colon + 1 == at)
        return NULL;
    *len = (size_t)(at - colon - 1);
    return colon + 1;
}

const char *relay_config_secret(const struct relay_config *cfg, size_t k, size_t *len)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *v, *s;

        if (options[i].type != OPT_STRING || !options[i].secret ||
            (options[i].base >= 0 && (size_t)options[i].base >= cfg->nsinks))
            continue;
        v = *(char *const *)field_at((struct relay_config *)cfg, &options[i],
                                      options[i].offset);
        if (!v || !*v)
            continue;
        if (options[i].secret == RELAY_SECRET_URL) {
            if (!(s = url_password(v, len)))
                continue;
        } else {
            s = v;
            *len = strlen(v);
        }
        if (k-- == 0)
            return s;
    }
    *len = 0;
    return NULL;
}

const char *relay_config_sink_name(const struct relay_config *cfg)
{
    return cfg->sink < cfg->nsinks ? cfg->sinks[cfg->sink]->name : "";
}

const struct sink_common *relay_config_sink_common(const struct relay_config *cfg)
{
    if (cfg->sink >= cfg->nsinks)
        return NULL;
    return (const struct sink_common *)((const char *)cfg->sink_settings[cfg->sink] +
                                        cfg->sinks[cfg->sink]->common_offset);
}

/*
 * config_schema.h -- how a configuration key is declared: the rows config.c walks.
 *
 * Every key of the file is one row: its section, its name, its type, where its value
 * is stored, its default and its checks.  The core's rows (postgres, outbox, pipeline,
 * dead_letter, cdc, polling, log, admin) live in config.c; a sink's rows live in the
 * sink's own file (relay/sink_<name>.c), in a struct relay_sink_config its registry
 * row points to, so that adding a sink touches no core file.  A sink's values are
 * stored in a settings struct of its own, which config.c allocates (zeroed) for every
 * registered sink and validates whether the sink is selected or not.
 *
 * Everything here is data: the walk, the messages ("FILE:LINE:COLUMN: ...") and the
 * environment overrides are config.c's, the same for every row.
 */
#ifndef RELAY_CONFIG_SCHEMA_H
#define RELAY_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* A position in the file for messages: 1-based line and column. */
struct relay_pos {
    size_t line;
    size_t column;
};

/* The state of one load; only config.c looks inside. */
struct parser_ctx;

enum opt_type {
    OPT_STRING,         /* any scalar, kept as text: char * */
    OPT_DURATION,       /* "250ms", "10s", "1m30s": int64_t milliseconds, >= min */
    OPT_INTEGER,        /* decimal: int64_t in [min, max] */
    OPT_ENUM,           /* one of the names in choices: an enum (int-sized) */
    OPT_QUALIFIED_NAME, /* [schema.]table: char * at offset, char * at offset2 */
    OPT_PROPERTIES,     /* mapping of scalars: struct relay_kv * at offset, size_t at offset2 */
    OPT_STRING_LIST,    /* sequence of scalars: char ** at offset, size_t at offset2 */
    OPT_TABLE_LIST,     /* sequence of [schema.]table: struct relay_table * and size_t */
};

/* One name an OPT_ENUM key accepts and the value it stands for. */
struct relay_choice {
    const char *name;
    int value;
};

/*
 * Extra validation of a value's text, after environment expansion and before it is
 * stored.  Returns 0, or -1 after writing the message (relay_config_fail()).
 */
typedef int (*relay_check_fn)(struct parser_ctx *ctx, const char *name, const char *value,
                              struct relay_pos pos);

/* One configuration key: a row. */
struct relay_option {
    const char *section; /* top-level mapping holding the key; NULL: a top-level key */
    const char *key;
    enum opt_type type;
    /*
     * Where the value goes: a field of the sink's settings struct for a sink's row, of
     * struct relay_config for the core's rows and for a sink's rows with core set.
     */
    size_t offset;
    size_t offset2;  /* second field, for the two-field types (names, mapping, lists) */
    const char *def; /* default, written as in the file; NULL: none */
    /* Required; a sink's required key only when that sink is selected. */
    bool required;
    /* With required, for a core row: required only when this says so, after the walk. */
    bool (*required_if)(const struct relay_config *cfg);
    int64_t min;                       /* OPT_INTEGER, OPT_DURATION: smallest value allowed */
    int64_t max;                       /* OPT_INTEGER: largest value allowed */
    const struct relay_choice *choices; /* OPT_ENUM: the names allowed */
    relay_check_fn check; /* OPT_STRING and OPT_STRING_LIST (each entry): extra validation */
    bool core;            /* a sink's row that stores into struct relay_config */
    /*
     * Another name of the key "section.key" (kept so that older files keep working):
     * same field, no default of its own; setting both is an error.
     */
    const char *alias_of;
    /*
     * An OPT_STRING whose value is a secret (RELAY_SECRET_VALUE) or a URL that may hold
     * one, user:password@ (RELAY_SECRET_URL): the relay scrubs it from every log line
     * (relay_config_secret(), redact_set_add_config()).
     */
    int secret;
    int base;             /* set by config.c: the sink this row belongs to, -1: core */
};

#define RELAY_SECRET_VALUE 1
#define RELAY_SECRET_URL 2

/* The names of enum relay_format, for a sink's format row. */
extern const struct relay_choice relay_format_choices[];

/* The name choices gives value ("?" when none): what the file would say. */
const char *relay_choice_name(const struct relay_choice *choices, int value);

/* A sink's configuration section, as its registry row declares it (sink.h). */
struct relay_sink_config {
    const char *name;    /* the value of the top-level "sink" key that selects it */
    const char *section; /* its section in the file */
    const struct relay_option *options;
    size_t noptions;
    size_t settings_size; /* the struct its rows store into */
    size_t common_offset; /* where its struct sink_common sits in that struct */
    bool section_selects; /* a section of this name in the file selects the sink */
};

/*
 * The sinks the configuration knows: their sections are accepted, validated and
 * stored, and "sink" may name them.  The first is the default sink.  Call once before
 * the first load (main.c passes the sink registry; tests do the same); list is
 * borrowed for the process's life.  Returns 0, or -E2BIG when the rows do not fit the
 * table (RELAY_CONFIG_MAX_OPTIONS).
 */
#define RELAY_CONFIG_MAX_OPTIONS 192
#define RELAY_CONFIG_MAX_SINKS 16
int relay_config_register_sinks(const struct relay_sink_config *const *list, size_t n);

/*
 * Validators a sink's rows may use.  Each returns 0, or -1 after writing the message
 * "FILE:LINE:COLUMN: ..." for the key called name.
 */
/* Not empty. */
int relay_config_check_nonempty(struct parser_ctx *ctx, const char *name, const char *value,
                                struct relay_pos pos);
/* A destination template: literal text with {placeholder}s, every brace paired. */
int relay_config_check_template(struct parser_ctx *ctx, const char *name, const char *value,
                                struct relay_pos pos);

/*
 * For a sink's own validators: write "FILE:LINE:COLUMN: message" (or the environment
 * variable's name) into the load's error buffer.  Always returns -1.
 */
int relay_config_fail(struct parser_ctx *ctx, struct relay_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A value quoted for a message: escaped, clipped with "..." to size.  Returns buf. */
const char *relay_config_show(char *buf, size_t size, const char *s);

#endif /* RELAY_CONFIG_SCHEMA_H */

/*
 * event.c -- the relation cache, and what becomes an event: an outbox row, a
 * table-less outbox message (pg_logical_emit_message), a change of a cdc table.
 *
 * A service has few tables in its publication, so the cache is a small array
 * searched linearly; relation ids are looked up once per row and the array stays in
 * one or two cache lines.  Outbox column positions are resolved once per Relation
 * message, not per row.
 */
#include "event.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jsonbuf.h"
#include "jsonscan.h"

/* PostgreSQL type OIDs (pg_type.dat) of the payload types the server validates. */
#define JSONOID 114
#define JSONBOID 3802

static const struct outbox_spec default_spec = {"aggregateid", "version", "headers", NULL, 0};

struct relcache {
    char *outbox_schema;
    char *outbox_table;
    struct outbox_spec spec;
    const char *const *cdc_schemas;
    const char *const *cdc_tables;
    char *const *cdc_keys;
    size_t ncdc;
    struct rel_desc **rels;
    size_t nrels;
};

relcache *relcache_new(const char *outbox_schema, const char *outbox_table)
{
    relcache *rc = calloc(1, sizeof(*rc));

    if (!rc)
        return NULL;
    rc->spec = default_spec;
    rc->outbox_schema = strdup(outbox_schema);
    rc->outbox_table = strdup(outbox_table);
    if (!rc->outbox_schema || !rc->outbox_table) {
        relcache_free(rc);
        return NULL;
    }
    return rc;
}

int relcache_set_outbox_spec(relcache *rc, const struct outbox_spec *spec, char *errstr,
                             size_t errstr_size)
{
    if (spec->nheader_columns > EVENT_MAX_EXTRA) {
        snprintf(errstr, errstr_size, "at most %d header columns are supported, got %zu",
                 EVENT_MAX_EXTRA, spec->nheader_columns);
        return -EINVAL;
    }
    rc->spec = *spec;
    if (!rc->spec.key_column)
        rc->spec.key_column = default_spec.key_column;
    return 0;
}

void relcache_set_cdc_tables(relcache *rc, const char *const *schemas,
                             const char *const *tables, char *const *keys, size_t n)
{
    rc->cdc_schemas = schemas;
    rc->cdc_tables = tables;
    rc->cdc_keys = keys;
    rc->ncdc = n;
}

/* Mark exactly the columns listed in keys ("a,b") as the key (flag 1). */
static void apply_key(struct rel_desc *d, const char *keys)
{
    for (uint16_t c = 0; c < d->ncols; c++) {
        const char *p = keys;
        size_t n = strlen(d->cols[c].name);
        bool in = false;

        while (*p && !in) {
            size_t len = strcspn(p, ",");

            in = len == n && strncmp(p, d->cols[c].name, n) == 0;
            p += len + (p[len] == ',');
        }
        d->cols[c].flags = in ? 1 : 0;
    }
}

relcache *relcache_from_config(const struct relay_config *cfg, char *errstr,
                               size_t errstr_size)
{
    const struct outbox_spec spec = {
        .key_column = cfg->outbox.key_column,
        .version_column = cfg->outbox.version_column,
        .headers_column = cfg->outbox.headers_column,
        .header_columns = cfg->outbox.header_columns,
        .nheader_columns = cfg->outbox.nheader_columns,
    };
    relcache *rc = relcache_new(cfg->outbox.schema, cfg->outbox.table);

    if (!rc) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (relcache_set_outbox_spec(rc, &spec, errstr, errstr_size) < 0) {
        relcache_free(rc);
        return NULL;
    }
    return rc;
}

static void rel_desc_free(struct rel_desc *d)
{
    if (!d)
        return;
    for (uint16_t i = 0; i < d->ncols && d->cols; i++)
        free(d->cols[i].name);
    free(d->cols);
    free(d->nspname);
    free(d->relname);
    free(d);
}

void relcache_free(relcache *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i < rc->nrels; i++)
        rel_desc_free(rc->rels[i]);
    free(rc->rels);
    free(rc->outbox_schema);
    free(rc->outbox_table);
    free(rc);
}

int rel_column_index(const struct rel_desc *rel, const char *name)
{
    for (uint16_t i = 0; i < rel->ncols; i++)
        if (strcmp(rel->cols[i].name, name) == 0)
            return i;
    return -1;
}

static int missing_column(const struct rel_desc *d, const char *col, char *errstr,
                          size_t errstr_size)
{
    snprintf(errstr, errstr_size, "outbox table \"%s.%s\" has no column \"%s\"", d->nspname,
             d->relname, col);
    return -EINVAL;
}

static int resolve_outbox_cols(const struct outbox_spec *spec, struct rel_desc *d,
                               char *errstr, size_t errstr_size)
{
    const char *required[] = {"id", "aggregatetype", spec->key_column, "type", "payload"};
    int *slots[] = {&d->outbox.id, &d->outbox.aggregatetype, &d->outbox.aggregateid,
                    &d->outbox.type, &d->outbox.payload};

    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        *slots[i] = rel_column_index(d, required[i]);
        if (*slots[i] < 0)
            return missing_column(d, required[i], errstr, errstr_size);
    }
    /* Optional columns: absent means version 1 and no extra headers. */
    d->outbox.version = spec->version_column ? rel_column_index(d, spec->version_column) : -1;
    d->outbox.headers = spec->headers_column ? rel_column_index(d, spec->headers_column) : -1;
    d->outbox.nextra = 0;
    for (size_t i = 0; i < spec->nheader_columns; i++) {
        int ix = rel_column_index(d, spec->header_columns[i]);

        if (ix < 0)
            return missing_column(d, spec->header_columns[i], errstr, errstr_size);
        d->outbox.extra[d->outbox.nextra++] = ix;
    }
    d->outbox.payload_is_json = d->cols[d->outbox.payload].type_oid == JSONBOID ||
                                d->cols[d->outbox.payload].type_oid == JSONOID;
    return 0;
}

int relcache_update(relcache *rc, const struct pgo_relation *r, char *errstr, size_t errstr_size)
{
    struct rel_desc *d = calloc(1, sizeof(*d));
    size_t i;
    int err;

    if (!d)
        goto nomem;
    d->outbox = (struct outbox_cols){.id = -1, .aggregatetype = -1, .aggregateid = -1,
                                     .type = -1, .payload = -1, .version = -1, .headers = -1};
    d->relid = r->relid;
    d->replident = r->replident;
    d->nspname = strdup(r->nspname);
    d->relname = strdup(r->relname);
    d->cols = calloc(r->ncols ? r->ncols : 1, sizeof(*d->cols));
    if (!d->nspname || !d->relname || !d->cols)
        goto nomem;
    for (d->ncols = 0; d->ncols < r->ncols; d->ncols++) {
        const struct pgo_relation_column *c = &r->cols[d->ncols];

        d->cols[d->ncols].name = strdup(c->name);
        if (!d->cols[d->ncols].name)
            goto nomem;
        d->cols[d->ncols].type_oid = c->type_oid;
        d->cols[d->ncols].type_mod = c->type_mod;
        d->cols[d->ncols].flags = c->flags;
    }
    d->is_outbox = strcmp(d->nspname, rc->outbox_schema) == 0 &&
                   strcmp(d->relname, rc->outbox_table) == 0;
    for (i = 0; i < rc->ncdc && !d->is_outbox; i++)
        if (strcmp(d->nspname, rc->cdc_schemas[i]) == 0 &&
            strcmp(d->relname, rc->cdc_tables[i]) == 0) {
            d->is_cdc = true;
            if (rc->cdc_keys && rc->cdc_keys[i] && rc->cdc_keys[i][0])
                apply_key(d, rc->cdc_keys[i]);
        }
    if (d->is_outbox && (err = resolve_outbox_cols(&rc->spec, d, errstr, errstr_size)) < 0) {
        rel_desc_free(d);
        return err;
    }

    for (i = 0; i < rc->nrels; i++) {
        if (rc->rels[i]->relid == d->relid) {
            rel_desc_free(rc->rels[i]);
            rc->rels[i] = d;
            return 0;
        }
    }
    {
        struct rel_desc **n = realloc(rc->rels, (rc->nrels + 1) * sizeof(*n));

        if (!n)
            goto nomem;
        rc->rels = n;
        rc->rels[rc->nrels++] = d;
    }
    return 0;

nomem:
    rel_desc_free(d);
    snprintf(errstr, errstr_size, "out of memory");
    return -ENOMEM;
}

const struct rel_desc *relcache_get(const relcache *rc, pgo_oid_t relid)
{
    for (size_t i = 0; i < rc->nrels; i++)
        if (rc->rels[i]->relid == relid)
            return rc->rels[i];
    return NULL;
}

/* Read column ix as a string; NULL stays NULL.  -EINVAL for unchanged TOAST. */
static int column_str(const struct rel_desc *rel, const struct pgo_tuple *tuple, int ix,
                      struct ev_str *out, char *errstr, size_t errstr_size)
{
    const struct pgo_value *v = &tuple->cols[ix];

    switch (v->kind) {
    case PGO_VALUE_NULL:
        out->p = NULL;
        out->len = 0;
        return 0;
    case PGO_VALUE_TEXT:
    case PGO_VALUE_BINARY:
        /* A zero-length value must still read as non-NULL. */
        out->p = v->data ? v->data : "";
        out->len = v->len;
        return 0;
    case PGO_VALUE_UNCHANGED_TOAST:
    default:
        snprintf(errstr, errstr_size, "column \"%s\" was sent as an unchanged toast value",
                 rel->cols[ix].name);
        return -EINVAL;
    }
}

/* Text the relay puts into headers or JSON must be valid UTF-8. */
static int check_utf8(const struct ev_str *v, const char *what, char *errstr,
                      size_t errstr_size)
{
    if (v->p && !json_utf8_valid(v->p, v->len)) {
        snprintf(errstr, errstr_size, "column \"%s\" is not valid UTF-8", what);
        return -EINVAL;
    }
    return 0;
}

/* A headers value must be a JSON object (or NULL: no headers). */
static int check_headers_object(const struct ev_str *v, const char *what, const char *name,
                                char *errstr, size_t errstr_size)
{
    struct json_iter it;

    if (!v->p)
        return 0;
    if (!json_valid(v->p, v->len) || json_iter_object(&it, v->p, v->len) < 0) {
        snprintf(errstr, errstr_size, "%s \"%s\" is not a JSON object", what, name);
        return -EINVAL;
    }
    return 0;
}

int event_from_outbox_row(const struct rel_desc *rel, const struct pgo_tuple *tuple,
                          const struct event_pos *pos, struct event *out, char *errstr,
                          size_t errstr_size)
{
    struct {
        int ix;
        struct ev_str *dst;
        bool nullable;
    } map[] = {
        {rel->outbox.id, &out->id, false},
        {rel->outbox.type, &out->type, false},
        {rel->outbox.aggregatetype, &out->aggregatetype, true},
        {rel->outbox.aggregateid, &out->aggregateid, false},
        {rel->outbox.payload, &out->payload, true},
        {rel->outbox.version, &out->version, true},
        {rel->outbox.headers, &out->headers, true},
    };
    int err;

    memset(out, 0, sizeof(*out));
    out->pos = *pos;
    out->rel = rel;
    out->tuple = tuple;
    if (tuple->ncols != rel->ncols) {
        snprintf(errstr, errstr_size, "row has %u columns but relation \"%s.%s\" has %u",
                 tuple->ncols, rel->nspname, rel->relname, rel->ncols);
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (map[i].ix < 0)
            continue; /* optional column the table does not have */
        if ((err = column_str(rel, tuple, map[i].ix, map[i].dst, errstr, errstr_size)) < 0)
            return err;
        if (!map[i].dst->p && !map[i].nullable) {
            snprintf(errstr, errstr_size, "column \"%s\" is null", rel->cols[map[i].ix].name);
            return -EINVAL;
        }
        if (map[i].dst != &out->payload && map[i].dst != &out->headers &&
            (err = check_utf8(map[i].dst, rel->cols[map[i].ix].name, errstr, errstr_size)) < 0)
            return err;
    }
    if (!out->version.p) {
        out->version.p = "1";
        out->version.len = 1;
    }
    /*
     * json and jsonb payloads were validated by the server; a text payload is checked
     * here, so that nothing downstream publishes a "JSON" event that is not JSON.
     */
    if (out->payload.p && !rel->outbox.payload_is_json &&
        !json_valid(out->payload.p, out->payload.len)) {
        snprintf(errstr, errstr_size, "column \"%s\" is not valid JSON",
                 rel->cols[rel->outbox.payload].name);
        return -EINVAL;
    }
    if (rel->outbox.headers >= 0 &&
        (err = check_headers_object(&out->headers, "column", rel->cols[rel->outbox.headers].name,
                                    errstr, errstr_size)) < 0)
        return err;
    for (int i = 0; i < rel->outbox.nextra; i++) {
        int ix = rel->outbox.extra[i];
        struct event_extra *x = &out->extra[out->nextra++];

        x->name = rel->cols[ix].name;
        if ((err = column_str(rel, tuple, ix, &x->value, errstr, errstr_size)) < 0 ||
            (err = check_utf8(&x->value, x->name, errstr, errstr_size)) < 0)
            return err;
    }
    return 0;
}

/* A required string member of a message; unescaped into scratch when needed. */
static int message_string(struct ev_str raw, const char *name, struct jbuf *scratch,
                          struct ev_str *out, char *errstr, size_t errstr_size)
{
    struct ev_str body = {raw.p + 1, raw.len - 2};

    if (!json_raw_is_string(raw)) {
        snprintf(errstr, errstr_size, "member \"%s\" must be a string", name);
        return -EINVAL;
    }
    if (json_string_unescape(body, scratch, out) < 0) {
        snprintf(errstr, errstr_size, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

int event_from_message(const char *content, size_t len, const struct event_pos *pos,
                       struct jbuf *scratch, struct event *out, char *errstr,
                       size_t errstr_size)
{
    static const char *const names[] = {"id", "aggregatetype", "aggregateid", "type"};
    struct ev_str *dst[] = {&out->id, &out->aggregatetype, &out->aggregateid, &out->type};
    bool seen[4] = {false, false, false, false};
    struct json_iter it;
    struct ev_str key, val;
    int err;

    memset(out, 0, sizeof(*out));
    out->pos = *pos;
    if (!json_valid(content, len) || json_iter_object(&it, content, len) < 0) {
        snprintf(errstr, errstr_size, "message content is not a JSON object");
        return -EINVAL;
    }
    /*
     * Unescaping never makes text longer, so reserving the content's length up front
     * means scratch never moves while events point into it.
     */
    jbuf_reset(scratch);
    jbuf_put(scratch, content, len);
    jbuf_reset(scratch);
    while (json_iter_next(&it, &key, &val) == 1) {
        size_t i;

        bool is_null = val.len == 4 && memcmp(val.p, "null", 4) == 0;

        for (i = 0; i < 4; i++) {
            if (key.len == strlen(names[i]) && memcmp(key.p, names[i], key.len) == 0) {
                if (is_null && i == 1)
                    break; /* aggregatetype may be null, as in the outbox table */
                if ((err = message_string(val, names[i], scratch, dst[i], errstr,
                                          errstr_size)) < 0)
                    return err;
                seen[i] = true;
                break;
            }
        }
        if (i < 4)
            continue;
        if (key.len == 7 && memcmp(key.p, "payload", 7) == 0) {
            if (!(val.len == 4 && memcmp(val.p, "null", 4) == 0))
                out->payload = val;
        } else if (key.len == 7 && memcmp(key.p, "version", 7) == 0) {
            if (is_null) {
                /* absent: version 1 */
            } else if (json_raw_is_string(val)) {
                if ((err = message_string(val, "version", scratch, &out->version, errstr,
                                          errstr_size)) < 0)
                    return err;
            } else if (val.len > 0 && (val.p[0] == '-' || (val.p[0] >= '0' && val.p[0] <= '9'))) {
                out->version = val;
            } else {
                snprintf(errstr, errstr_size, "member \"version\" must be a string or a number");
                return -EINVAL;
            }
        } else if (key.len == 7 && memcmp(key.p, "headers", 7) == 0) {
            if (!(val.len == 4 && memcmp(val.p, "null", 4) == 0)) {
                out->headers = val;
                if ((err = check_headers_object(&out->headers, "member", "headers", errstr,
                                                errstr_size)) < 0)
                    return err;
            }
        }
        /* Other members are ignored, as other outbox columns are. */
    }
    for (size_t i = 0; i < 4; i++) {
        if (!seen[i] && i != 1) {
            snprintf(errstr, errstr_size, "message has no member \"%s\"", names[i]);
            return -EINVAL;
        }
    }
    if (scratch->oom) {
        snprintf(errstr, errstr_size, "out of memory");
        return -ENOMEM;
    }
    if (!out->version.p) {
        out->version.p = "1";
        out->version.len = 1;
    }
    return 0;
}

int event_from_change(const struct rel_desc *rel, char op, const struct pgo_tuple *newtuple,
                      char old_kind, const struct pgo_tuple *oldtuple,
                      const struct event_pos *pos, struct event *out, char *errstr,
                      size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    out->pos = *pos;
    out->rel = rel;
    out->change.op = op;
    out->change.newtuple = newtuple;
    out->change.oldtuple = old_kind ? oldtuple : NULL;
    out->change.old_kind = old_kind;
    out->version.p = "1";
    out->version.len = 1;
    if ((newtuple && newtuple->ncols != rel->ncols) ||
        (out->change.oldtuple && oldtuple->ncols != rel->ncols)) {
        snprintf(errstr, errstr_size, "row has %u columns but relation \"%s.%s\" has %u",
                 newtuple && newtuple->ncols != rel->ncols ? newtuple->ncols : oldtuple->ncols,
                 rel->nspname, rel->relname, rel->ncols);
        return -EINVAL;
    }
    return 0;
}

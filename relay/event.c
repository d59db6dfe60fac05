/*
 * event.c -- the relation cache and outbox rows turned into events.
 *
 * A service has few tables in its publication, so the cache is a small array
 * searched linearly; relation ids are looked up once per row and the array stays in
 * one or two cache lines.  Outbox column positions are resolved once per Relation
 * message, not per row.
 */
#include "event.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct relcache {
    char *outbox_schema;
    char *outbox_table;
    struct rel_desc **rels;
    size_t nrels;
};

relcache *relcache_new(const char *outbox_schema, const char *outbox_table)
{
    relcache *rc = calloc(1, sizeof(*rc));

    if (!rc)
        return NULL;
    rc->outbox_schema = strdup(outbox_schema);
    rc->outbox_table = strdup(outbox_table);
    if (!rc->outbox_schema || !rc->outbox_table) {
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

static int resolve_outbox_cols(struct rel_desc *d, char *errstr, size_t errstr_size)
{
    static const char *const required[] = {"id", "aggregatetype", "aggregateid", "type",
                                           "payload"};
    int *slots[] = {&d->outbox.id, &d->outbox.aggregatetype, &d->outbox.aggregateid,
                    &d->outbox.type, &d->outbox.payload};

    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        *slots[i] = rel_column_index(d, required[i]);
        if (*slots[i] < 0) {
            snprintf(errstr, errstr_size, "outbox table \"%s.%s\" has no column \"%s\"",
                     d->nspname, d->relname, required[i]);
            return -EINVAL;
        }
    }
    return 0;
}

int relcache_update(relcache *rc, const struct pgo_relation *r, char *errstr, size_t errstr_size)
{
    struct rel_desc *d = calloc(1, sizeof(*d));
    size_t i;
    int err;

    if (!d)
        goto nomem;
    d->outbox = (struct outbox_cols){-1, -1, -1, -1, -1};
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
    if (d->is_outbox && (err = resolve_outbox_cols(d, errstr, errstr_size)) < 0) {
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
    };
    int err;

    memset(out, 0, sizeof(*out));
    if (tuple->ncols != rel->ncols) {
        snprintf(errstr, errstr_size, "row has %u columns but relation \"%s.%s\" has %u",
                 tuple->ncols, rel->nspname, rel->relname, rel->ncols);
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if ((err = column_str(rel, tuple, map[i].ix, map[i].dst, errstr, errstr_size)) < 0)
            return err;
        if (!map[i].dst->p && !map[i].nullable) {
            snprintf(errstr, errstr_size, "column \"%s\" is null", rel->cols[map[i].ix].name);
            return -EINVAL;
        }
    }
    out->pos = *pos;
    out->rel = rel;
    out->tuple = tuple;
    return 0;
}

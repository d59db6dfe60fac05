/*
 * inflight.c -- the table of messages held by the sink (see inflight.h).
 *
 * A tag is (generation << 32) | index.  The generation starts at 1 so that no tag is
 * 0, and wraps past 2^32 - 2 clears (a rebuild each second would take 136 years).
 */
#include "inflight.h"

#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define INITIAL 1024

struct inflight_table {
    struct inflight_msg *e;
    uint32_t n;         /* entries ever handed out since the last clear */
    uint32_t cap;
    uint32_t free_head; /* first free entry below n, or NONE */
    uint32_t gen;
    uint64_t count;
    int64_t bytes;
};

inflight_table *inflight_new(void)
{
    inflight_table *t = calloc(1, sizeof(*t));

    if (t) {
        t->free_head = NONE;
        t->gen = 1;
    }
    return t;
}

static void release(struct inflight_msg *m)
{
    free(m->id_long);
    m->id_long = NULL;
    m->bytes = -1;
}

void inflight_free(inflight_table *t)
{
    if (!t)
        return;
    inflight_clear(t);
    free(t->e);
    free(t);
}

uint64_t inflight_add(inflight_table *t, uint64_t txn_seq, int64_t bytes, const char *id,
                      size_t id_len, lsn_t commit_lsn, uint32_t xid, uint32_t index,
                      int64_t commit_time_us)
{
    struct inflight_msg *m;
    uint32_t i = t->free_head;
    const char *nul = id ? memchr(id, '\0', id_len) : NULL;

    if (nul)
        id_len = (size_t)(nul - id);
    if (i != NONE) {
        t->free_head = t->e[i].next_free;
    } else {
        if (t->n == t->cap) {
            uint32_t ncap = t->cap ? t->cap * 2 : INITIAL;
            struct inflight_msg *ne;

            if (ncap <= t->cap || ncap == NONE ||
                !(ne = realloc(t->e, (size_t)ncap * sizeof(*ne))))
                return INFLIGHT_NONE;
            t->e = ne;
            t->cap = ncap;
        }
        i = t->n++;
    }
    m = &t->e[i];
    m->txn_seq = txn_seq;
    m->bytes = bytes < 0 ? 0 : bytes;
    m->commit_lsn = commit_lsn;
    m->xid = xid;
    m->index = index;
    m->commit_time_us = commit_time_us;
    m->dead_letter = false;
    m->reason = DL_REJECTED;
    m->next_free = NONE;
    m->id_long = NULL;
    if (id_len < sizeof(m->id)) {
        if (id_len)
            memcpy(m->id, id, id_len);
        m->id[id_len] = '\0';
    } else {
        m->id[0] = '\0';
        if (!(m->id_long = malloc(id_len + 1))) {
            m->bytes = -1;
            m->next_free = t->free_head;
            t->free_head = i;
            return INFLIGHT_NONE;
        }
        memcpy(m->id_long, id, id_len);
        m->id_long[id_len] = '\0';
    }
    t->count++;
    t->bytes += m->bytes;
    return ((uint64_t)t->gen << 32) | i;
}

struct inflight_msg *inflight_get(inflight_table *t, uint64_t tag)
{
    uint32_t i = (uint32_t)tag;

    if ((uint32_t)(tag >> 32) != t->gen || i >= t->n || t->e[i].bytes < 0)
        return NULL;
    return &t->e[i];
}

const char *inflight_id(const struct inflight_msg *m)
{
    return m->id_long ? m->id_long : m->id;
}

void inflight_set_bytes(inflight_table *t, struct inflight_msg *m, int64_t bytes)
{
    if (bytes < 0)
        bytes = 0;
    t->bytes += bytes - m->bytes;
    m->bytes = bytes;
}

void inflight_remove(inflight_table *t, uint64_t tag)
{
    struct inflight_msg *m = inflight_get(t, tag);

    if (!m)
        return;
    t->count--;
    t->bytes -= m->bytes;
    release(m);
    m->next_free = t->free_head;
    t->free_head = (uint32_t)tag;
}

void inflight_clear(inflight_table *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        if (t->e[i].bytes >= 0)
            release(&t->e[i]);
    t->n = 0;
    t->free_head = NONE;
    t->count = 0;
    t->bytes = 0;
    t->gen = t->gen >= UINT32_MAX - 1 ? 1 : t->gen + 1;
}

uint64_t inflight_count(const inflight_table *t)
{
    return t->count;
}

int64_t inflight_bytes(const inflight_table *t)
{
    return t->bytes;
}

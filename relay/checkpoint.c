/*
 * checkpoint.c -- the in-flight transaction ring behind the checkpoint rule.
 *
 * Transactions enter at the tail in commit order (the walsender sends them so) and
 * leave from the head once complete and fully acknowledged; the confirmed position
 * is the end LSN of the last transaction to leave.  Ring slots are found from the
 * sequence number in O(1): slot = (head + (seq - head_seq)) mod capacity.  The
 * capacity is a power of two and doubles when full, so its size follows the number
 * of transactions in flight (the relay bounds that through its in-flight limit).
 */
#include "checkpoint.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct txn {
    lsn_t end_lsn;    /* valid once committed */
    int64_t commit_time_us; /* for metrics only: ckpt_set_commit_time() */
    uint32_t pending; /* events not yet acknowledged */
    bool committed;
    bool failed;
};

struct ckpt_tracker {
    struct txn *ring;
    size_t cap;      /* power of two */
    size_t head;     /* ring index of the oldest transaction */
    size_t count;    /* transactions in the ring */
    uint64_t head_seq; /* sequence number of ring[head] (or of the next one when empty) */
    bool open;       /* the newest transaction has begun and not committed */
    uint64_t inflight_events;
    lsn_t confirmed;
    bool failed;
};

#define CKPT_INITIAL_CAP 64

ckpt_tracker *ckpt_new(lsn_t confirmed)
{
    ckpt_tracker *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->ring = calloc(CKPT_INITIAL_CAP, sizeof(*t->ring));
    if (!t->ring) {
        free(t);
        return NULL;
    }
    t->cap = CKPT_INITIAL_CAP;
    t->head_seq = 1;
    t->confirmed = confirmed;
    return t;
}

void ckpt_free(ckpt_tracker *t)
{
    if (!t)
        return;
    free(t->ring);
    free(t);
}

static struct txn *slot_of(ckpt_tracker *t, uint64_t seq)
{
    if (seq < t->head_seq || seq - t->head_seq >= t->count)
        return NULL;
    return &t->ring[(t->head + (size_t)(seq - t->head_seq)) & (t->cap - 1)];
}

static int grow(ckpt_tracker *t)
{
    size_t ncap = t->cap * 2;
    struct txn *nring = calloc(ncap, sizeof(*nring));
    size_t i;

    if (!nring)
        return -ENOMEM;
    /* Unroll the ring so that the head lands at index 0. */
    for (i = 0; i < t->count; i++)
        nring[i] = t->ring[(t->head + i) & (t->cap - 1)];
    free(t->ring);
    t->ring = nring;
    t->cap = ncap;
    t->head = 0;
    return 0;
}

int ckpt_begin(ckpt_tracker *t, uint64_t *seq)
{
    struct txn *x;

    if (t->open)
        return -EBUSY;
    if (t->count == t->cap && grow(t) < 0)
        return -ENOMEM;
    x = &t->ring[(t->head + t->count) & (t->cap - 1)];
    memset(x, 0, sizeof(*x));
    *seq = t->head_seq + t->count;
    t->count++;
    t->open = true;
    return 0;
}

static struct txn *open_txn(ckpt_tracker *t)
{
    if (!t->open)
        return NULL;
    return &t->ring[(t->head + t->count - 1) & (t->cap - 1)];
}

void ckpt_set_commit_time(ckpt_tracker *t, int64_t commit_time_us)
{
    struct txn *x = open_txn(t);

    if (x)
        x->commit_time_us = commit_time_us;
}

bool ckpt_holds(ckpt_tracker *t, uint64_t seq)
{
    return slot_of(t, seq) != NULL;
}

int64_t ckpt_commit_time(ckpt_tracker *t, uint64_t seq)
{
    const struct txn *x = slot_of(t, seq);

    return x ? x->commit_time_us : 0;
}

int ckpt_add_event(ckpt_tracker *t)
{
    struct txn *x = open_txn(t);

    if (!x)
        return -EINVAL;
    x->pending++;
    t->inflight_events++;
    return 0;
}

int ckpt_commit(ckpt_tracker *t, lsn_t end_lsn)
{
    struct txn *x = open_txn(t);

    if (!x)
        return -EINVAL;
    x->end_lsn = end_lsn;
    x->committed = true;
    t->open = false;
    return 0;
}

int ckpt_ack(ckpt_tracker *t, uint64_t seq)
{
    struct txn *x = slot_of(t, seq);

    if (!x)
        return -ENOENT;
    if (x->pending == 0)
        return -ERANGE;
    x->pending--;
    t->inflight_events--;
    return 0;
}

int ckpt_fail(ckpt_tracker *t, uint64_t seq)
{
    struct txn *x = slot_of(t, seq);

    if (!x)
        return -ENOENT;
    x->failed = true;
    t->failed = true;
    return 0;
}

void ckpt_keepalive(ckpt_tracker *t, lsn_t wal_end)
{
    /* Let complete transactions leave first: "nothing in flight" means an empty ring. */
    (void)ckpt_confirmed(t);
    if (t->count == 0 && wal_end > t->confirmed)
        t->confirmed = wal_end;
}

lsn_t ckpt_confirmed(ckpt_tracker *t)
{
    while (t->count > 0) {
        struct txn *x = &t->ring[t->head];

        if (!x->committed || x->pending > 0 || x->failed)
            break;
        /* Commit order means end LSNs grow; keep the position monotonic regardless. */
        if (x->end_lsn > t->confirmed)
            t->confirmed = x->end_lsn;
        t->head = (t->head + 1) & (t->cap - 1);
        t->head_seq++;
        t->count--;
    }
    return t->confirmed;
}

bool ckpt_failed(const ckpt_tracker *t)
{
    return t->failed;
}

uint64_t ckpt_inflight_events(const ckpt_tracker *t)
{
    return t->inflight_events;
}

size_t ckpt_inflight_txns(const ckpt_tracker *t)
{
    return t->count;
}

void ckpt_reset(ckpt_tracker *t)
{
    t->head_seq += t->count;
    t->head = 0;
    t->count = 0;
    t->open = false;
    t->inflight_events = 0;
    t->failed = false;
}

void ckpt_restart(ckpt_tracker *t, lsn_t confirmed)
{
    ckpt_reset(t);
    t->confirmed = confirmed;
}

/*
 * replay_impl.h -- what the replay's engine (replay.c) and its sources share: the
 * dead-letter table (replay.c) and the dead-letter topic (replay_topic.c).
 *
 * A source reads its records one at a time, fills a struct replay_record for each --
 * where it was going, its key, headers and value, why it was set aside, how often it
 * was replayed -- and hands it to replay_one(), which decides what to do with it,
 * sends it through the sink and waits for the report, prints its line, counts it in
 * the summary and has the source record the outcome (ctx->mark) before returning.
 * Filters the source can apply where it reads (a WHERE clause) it applies there; the
 * engine applies none.  Internal to the replay's files.
 */
#ifndef RELAY_REPLAY_IMPL_H
#define RELAY_REPLAY_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "format.h"
#include "replay.h"
#include "sink.h"

/* The header a replayed event carries: how many times it has been replayed. */
#define REPLAY_COUNT_HEADER "outbox_replay_count"

/* The event's headers as they will be sent: without the dead-letter ones. */
struct replay_headers {
    char *names[FORMAT_MAX_HEADERS], *values[FORMAT_MAX_HEADERS];
    size_t lens[FORMAT_MAX_HEADERS];
    int n;
};

/*
 * Add a copy of one header unless it is a dead-letter one (dlq_*) or an earlier
 * replay's count; value NULL is a header without a value.  Returns 0, or -1: out of
 * memory, or no room left for it and the replay count.
 */
int replay_headers_add(struct replay_headers *h, const char *name, size_t name_len,
                       const char *value, size_t value_len);
/* Free the copies; h is empty after. */
void replay_headers_free(struct replay_headers *h);

/* A record as a source read it. */
struct replay_record {
    char label[160];                   /* how its line names it: "#42", "dlq[0]@17" */
    const char *event_id, *destination; /* "" when the record has none */
    const char *reason, *type, *dead_at; /* for the lines; "" when unknown */
    char *key, *value;                 /* owned (malloc); NULL: none */
    size_t key_len, value_len;
    bool value_omitted;                /* the value was left out (too large) */
    bool value_is_row;                 /* the value is a source row, not an event */
    bool rebuilt;                      /* the value was rebuilt from the outbox row */
    bool headers_bad;                  /* the headers could not be read: it fails */
    struct replay_headers headers;     /* owned */
    int replay_count;                  /* failed replays so far */
};

/* A record's outcome, as the report says it. */
struct replay_outcome {
    uint64_t tag;
    bool reported;
    enum sink_outcome outcome;
    char err[512];
};

struct replay_ctx {
    const struct relay_config *cfg;
    const struct replay_options *opts;
    PGconn *db;                  /* the source database (postgres.dsn) */
    sink *s;                     /* NULL in a dry run */
    struct replay_outcome o;     /* the report awaited */
    uint64_t next_tag;           /* every send has its own tag */
    FILE *out;
    struct replay_summary *sum;
    int64_t left;                /* records still to select (--max) */
    char *errstr;
    size_t errstr_size;
    /*
     * The source's record of an outcome: state "sent", "failed", "parked" or
     * "not-replayable"; error "" or why; counted: one more failed or sent replay.
     * Returns 0, or -1 with ctx->errstr set.
     */
    int (*mark)(struct replay_ctx *ctx, const struct replay_record *r, const char *state,
                const char *error, bool counted);
    void *source;                /* the source's own state, for mark */
};

/*
 * Deal with one selected record: send it (or say why not), print its line, count it
 * and mark it.  Frees what r owns.  Returns 0, or -1 with ctx->errstr set when the
 * replay cannot go on (PostgreSQL lost, the sink refusing the relay, no memory).
 */
int replay_one(struct replay_ctx *ctx, struct replay_record *r);

/* A NUL-terminated copy of len bytes at p.  NULL: no memory. */
char *replay_dup(const void *p, size_t len);

/* The bytes of PostgreSQL's hex text, in a new buffer; *n its length.  NULL: no memory. */
char *replay_unhex(const char *hex, size_t *n);

/*
 * Replay the records of the dead-letter topic (replay_topic.c), from its beginning to
 * its end when the replay started.  Returns 0 when it ran, -1 with ctx->errstr set.
 * *stopped is set when a byte on stop_fd stopped it.  It sets ctx->mark and
 * ctx->source to its own state, valid during the call only.
 */
int replay_topic(struct replay_ctx *ctx, const char *topic, int stop_fd, bool *stopped);

/* Whether a byte waits on stop_fd (-1: never). */
bool replay_stop_requested(int stop_fd);

#endif /* RELAY_REPLAY_IMPL_H */

/*
 * inbox_redis.c -- the inbox's Redis Streams source (inbox_source.h).
 *
 * Each of inbox.topics is a stream key (the streams the Redis sink appends to).  The
 * relay reads them with XREAD from the entry after the last one written: the
 * database's position for the stream (inbox_position: topic = the key, partition 0)
 * holds that entry's ID as a bigint -- ms * 2^20 + seq, inbox_redis_id_encode() --
 * so after any crash the inbox resumes exactly where the last committed batch ended,
 * as with Kafka; a stream never written is read from its beginning.  No consumer
 * group: nothing is acknowledged, the database's positions are the whole state.
 *
 * An entry's fields, as the sink writes them: "key" is the message key, "value" the
 * value, every other field (the event id, the CloudEvents attributes, the outbox's
 * headers) a header.  The connection is the sink's own code (sink_redis.h: TLS, AUTH,
 * SELECT), used blocking: XREAD BLOCK waits at most the inbox loop's short wait.  A
 * failed connection is retried every postgres.retry_interval from the positions
 * already read; a refused password or a key that is not a stream stops the inbox.
 */
#include "inbox_source.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "sink_redis.h"

/* How long connecting may take; and a command beyond its own BLOCK. */
#define CONNECT_TIMEOUT_MS 2000
#define COMMAND_SLACK_MS 1000
/* Entries read per XREAD at most. */
#define READ_MAX 1000

struct stream {
    const char *key; /* borrowed from the configuration */
    char last[48];   /* the last entry read ("0-0": none): XREAD reads after it */
};

struct redis_in {
    struct inbox *core;
    const struct relay_config *cfg;
    struct sink_redis_client *cl;
    struct stream *streams;
    size_t n;
    bool positioned;     /* the database's positions were read */
    int64_t retry_at_ms; /* not connected: when to try again */
};

/* One XREAD's reply, shared by the rows of its entries. */
struct shared_reply {
    redisReply *r;
    size_t refs;
};


static void seed(void *arg, const struct inbox_pos *pos)
{
    struct redis_in *x = arg;

    for (size_t i = 0; i < x->n; i++)
        if (pos->partition == 0 && pos->next > 0 && strcmp(pos->topic, x->streams[i].key) == 0)
            inbox_redis_id_decode(pos->next - 1, x->streams[i].last,
                                  sizeof(x->streams[i].last));
}

static void redis_close(void *src)
{
    struct redis_in *x = src;

    sink_redis_client_close(x->cl);
    free(x->streams);
    free(x);
}

static void *redis_open(const struct relay_config *cfg, struct inbox *core, char *errstr,
                        size_t errstr_size)
{
    struct redis_in *x = calloc(1, sizeof(*x));

    if (!x || !(x->streams = calloc(cfg->inbox.ntopics, sizeof(*x->streams)))) {
        free(x);
        snprintf(errstr, errstr_size, "inbox: out of memory");
        return NULL;
    }
    x->core = core;
    x->cfg = cfg;
    x->n = cfg->inbox.ntopics;
    for (size_t i = 0; i < x->n; i++) {
        x->streams[i].key = cfg->inbox.topics[i];
        snprintf(x->streams[i].last, sizeof(x->streams[i].last), "0-0");
    }
    /* Connected at the first read: the database's positions come first. */
    return x;
}

/* Connect.  Returns 0, or -1 (retry later, or the inbox failed for good). */
static int connect_redis(struct redis_in *x)
{
    char why[700];
    bool refused;

    if (!(x->cl = sink_redis_client_open(x->cfg, CONNECT_TIMEOUT_MS, why, sizeof(why),
                                         &refused))) {
        if (refused) {
            inbox_core_fail(x->core, "inbox: %s", why);
        } else {
            log_warn("inbox: %s; retrying in %lld ms", why,
                     (long long)x->cfg->postgres.retry_interval_ms);
            x->retry_at_ms = inbox_now_ms() + x->cfg->postgres.retry_interval_ms;
        }
        return -1;
    }
    x->retry_at_ms = 0;
    return 0;
}

/* The connection failed (why): drop it and try again later, from the positions read. */
static void drop(struct redis_in *x, const char *why)
{
    log_warn("inbox: reading redis: %s; reconnecting in %lld ms", why,
             (long long)x->cfg->postgres.retry_interval_ms);
    sink_redis_client_close(x->cl);
    x->cl = NULL;
    x->retry_at_ms = inbox_now_ms() + x->cfg->postgres.retry_interval_ms;
}

/* One entry [id, [field, value, ...]] of stream s to the batch; false: not held. */
static bool add(struct redis_in *x, struct stream *s, const redisReply *e,
                struct shared_reply *shared)
{
    const redisReply *id = e->element[0], *fields = e->element[1];
    struct inbox_in in = {.topic = s->key, .handle = shared};
    struct inbox_header *hs;
    size_t nh = 0;
    bool held;

    if (inbox_redis_id_encode(id->str, &in.offset) < 0) {
        inbox_core_fail(x->core, "inbox: entry \"%s\" of stream \"%s\": its ID does not fit "
                                 "the inbox's position (docs/consumers.md)",
                        id->str, s->key);
        return false;
    }
    if (!(hs = malloc((fields->elements / 2 + 1) * sizeof(*hs)))) {
        inbox_core_fail(x->core, "inbox: out of memory");
        return false;
    }
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(f->str, "key") == 0) {
            in.m.key = v->str;
            in.m.key_len = v->len;
        } else if (strcmp(f->str, "value") == 0) {
            in.m.value = v->str;
            in.m.value_len = v->len;
        } else {
            hs[nh++] = (struct inbox_header){f->str, v->str, v->len};
        }
    }
    in.m.headers = hs;
    in.m.nheaders = nh;
    held = inbox_core_add(x->core, &in) == 0;
    free(hs);
    if (held) {
        shared->refs++;
        /* Only an entry the batch holds moves the stream on: the next XREAD reads the rest. */
        snprintf(s->last, sizeof(s->last), "%s", id->str);
    }
    return held;
}

static struct stream *stream_named(struct redis_in *x, const redisReply *key)
{
    for (size_t i = 0; key->type == REDIS_REPLY_STRING && i < x->n; i++)
        if (strcmp(x->streams[i].key, key->str) == 0)
            return &x->streams[i];
    return NULL;
}

static void redis_read(void *src, size_t room, int wait_ms)
{
    struct redis_in *x = src;
    const char **argv;
    size_t *lens, argc = 0;
    char count[24], block[24], why[600];
    struct shared_reply *shared;
    redisReply *r;

    if (!x->cl && inbox_now_ms() < x->retry_at_ms) {
        inbox_backoff(x->retry_at_ms, wait_ms);
        return;
    }
    if (!x->cl && connect_redis(x) < 0)
        return;
    if (!x->positioned) {
        if (inbox_core_positions(x->core, seed, x) != 0)
            return; /* stopping */
        x->positioned = true;
        for (size_t i = 0; i < x->n; i++)
            log_info("inbox: reading stream \"%s\" after entry %s", x->streams[i].key,
                     x->streams[i].last);
        inbox_core_joined(x->core);
        inbox_core_assigned(x->core, (int)x->n);
    }
    argv = calloc(6 + 2 * x->n, sizeof(*argv));
    lens = calloc(6 + 2 * x->n, sizeof(*lens));
    if (!argv || !lens) {
        free(argv);
        free(lens);
        inbox_core_fail(x->core, "inbox: out of memory");
        return;
    }
    snprintf(count, sizeof(count), "%zu", room < READ_MAX ? room : READ_MAX);
    snprintf(block, sizeof(block), "%d", wait_ms);
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    if (wait_ms > 0) { /* BLOCK 0 would wait for ever */
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < x->n; i++)
        argv[argc++] = x->streams[i].key;
    for (size_t i = 0; i < x->n; i++)
        argv[argc++] = x->streams[i].last;
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    r = sink_redis_client_command(x->cl, wait_ms + COMMAND_SLACK_MS, why, sizeof(why),
                                  (int)argc, argv, lens);
    free(argv);
    free(lens);
    if (!r) {
        drop(x, why);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "WRONGTYPE", 9) == 0 || strncmp(r->str, "NOPERM", 6) == 0)
            inbox_core_fail(x->core, "inbox: redis refused XREAD of the streams: %s", r->str);
        else
            drop(x, r->str);
        freeReplyObject(r);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || !(shared = calloc(1, sizeof(*shared)))) {
        if (r->type == REDIS_REPLY_ARRAY)
            inbox_core_fail(x->core, "inbox: out of memory");
        freeReplyObject(r); /* nil: nothing arrived in time */
        return;
    }
    shared->r = r;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *sr = r->element[i];
        struct stream *s;

        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
            !(s = stream_named(x, sr->element[0])) || sr->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        /* COUNT is per stream: the batch's room is the limit of the whole reply. */
        for (size_t j = 0; j < sr->element[1]->elements && room > 0; j++) {
            const redisReply *e = sr->element[1]->element[j];

            if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
                e->element[0]->type == REDIS_REPLY_STRING &&
                e->element[1]->type == REDIS_REPLY_ARRAY) {
                if (!add(x, s, e, shared))
                    break; /* the inbox failed */
                room--;
            }
        }
    }
    if (shared->refs == 0) {
        freeReplyObject(r);
        free(shared);
    }
}

static void redis_release(void *src, void *handle)
{
    struct shared_reply *shared = handle;

    (void)src;
    if (--shared->refs == 0) {
        freeReplyObject(shared->r);
        free(shared);
    }
}

/*
 * check
 */

static redisReply *one(struct sink_redis_client *cl, const char *cmd, const char *key,
                       char *why, size_t size)
{
    const char *argv[2] = {cmd, key};
    size_t lens[2] = {strlen(cmd), strlen(key)};

    return sink_redis_client_command(cl, CONNECT_TIMEOUT_MS, why, size, 2, argv, lens);
}

static int redis_check(const struct relay_config *cfg, int timeout_ms, FILE *out)
{
    char errstr[700];
    bool refused;
    struct sink_redis_client *cl = sink_redis_client_open(cfg, timeout_ms, errstr,
                                                          sizeof(errstr), &refused);
    int failed = 0;

    if (!cl) {
        fprintf(out, "FAIL redis: %s\n", errstr);
        return 1;
    }
    for (size_t i = 0; i < cfg->inbox.ntopics; i++) {
        const char *key = cfg->inbox.topics[i];
        redisReply *r = one(cl, "TYPE", key, errstr, sizeof(errstr));

        if (!r || r->type != REDIS_REPLY_STATUS) {
            fprintf(out, "FAIL redis stream \"%s\": %s\n", key, r ? r->str : errstr);
            failed++;
        } else if (strcmp(r->str, "stream") == 0) {
            fprintf(out, "ok   redis stream \"%s\"\n", key);
        } else if (strcmp(r->str, "none") == 0) {
            fprintf(out, "ok   redis stream \"%s\": does not exist yet (read once it does)\n",
                    key);
        } else {
            fprintf(out, "FAIL redis stream \"%s\": the key holds a %s, not a stream\n", key,
                    r->str);
            failed++;
        }
        freeReplyObject(r);
        if (!r)
            break;
    }
    sink_redis_client_close(cl);
    return failed;
}

const struct inbox_source_ops inbox_source_redis = {
    .broker = "redis",
    .open = redis_open,
    .read = redis_read,
    .release = redis_release,
    .close = redis_close,
    .check = redis_check,
};

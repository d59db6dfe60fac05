/*
 * inbox_nats.c -- the inbox's NATS JetStream source (inbox_source.h).
 *
 * Each of inbox.topics is a subject held by a JetStream stream (the subjects the NATS
 * sink publishes to).  For each, an ephemeral pull consumer starts where the database
 * says: the stream sequence after the last one written for that subject
 * (inbox_position: topic = the subject, partition 0, next_offset = that sequence), or
 * the stream's beginning for a subject never written.  A message's position is its
 * stream sequence, so after any crash the inbox resumes exactly where the last
 * committed batch ended, as with Kafka.  The consumer acknowledges "all up to here"
 * once a batch is committed (AckAll): the acknowledgement only keeps the server's
 * pending count down; the database's positions are the truth.
 *
 * libnats has no descriptor to poll: the inbox's loop calls read() with a short wait,
 * and natsSubscription_Fetch waits for the first message at most that long.  The
 * connection reconnects by itself; a consumer that is gone (the server restarted, an
 * outage longer than its inactivity threshold) is made again from the database's
 * positions, so messages held in the batch may be read twice -- a no-op on the key.
 * A rejected login or a certificate that does not verify stops the inbox.
 */
#include "inbox_source.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "log.h"
#include "sink_nats.h"

/* How long an attempt to connect may take, and the wait between attempts. */
#define CONNECT_TIMEOUT_MS 2000
/* How long the server waits for an acknowledgement before sending a message again. */
#define ACK_WAIT_NS ((int64_t)300 * 1000000000)

struct nats_sub {
    const char *subject;   /* borrowed from the configuration */
    uint64_t start;        /* the database's next sequence (0: the beginning) */
    natsSubscription *sub;
    char *last_reply;      /* the last message read: acknowledged with all before it */
};

struct nats_in {
    struct inbox *core;
    const struct relay_config *cfg;
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    struct nats_sub *subs;
    size_t nsubs, next;
    int64_t retry_at_ms; /* not connected or subscribed: when to try again */
};

/* A message held by the batch: the message and its header arrays. */
struct held {
    natsMsg *msg;
    const char **keys;
};


static void unsubscribe(struct nats_in *n)
{
    for (size_t i = 0; i < n->nsubs; i++) {
        /*
         * Destroyed without the request that deletes the consumer (it would wait for a
         * server that may be gone): an ephemeral consumer without a client is deleted
         * by the server once inactive.
         */
        if (n->subs[i].sub)
            natsSubscription_Destroy(n->subs[i].sub);
        n->subs[i].sub = NULL;
        free(n->subs[i].last_reply);
        n->subs[i].last_reply = NULL;
    }
}

/* A database position for one of our subjects. */
static void seed(void *arg, const struct inbox_pos *pos)
{
    struct nats_in *n = arg;

    for (size_t i = 0; i < n->nsubs; i++)
        if (pos->partition == 0 && strcmp(pos->topic, n->subs[i].subject) == 0)
            n->subs[i].start = (uint64_t)pos->next;
}

/*
 * Connect (when not connected) and make the consumers from the database's positions.
 * Returns 0, or -1 (logged; retry_at set, or the inbox failed for good).
 */
static int subscribe(struct nats_in *n)
{
    natsStatus st = NATS_OK;
    char why[700];

    if (!n->nc) {
        st = natsConnection_Connect(&n->nc, n->opts);
        if (st == NATS_OK)
            st = natsConnection_JetStream(&n->js, n->nc, NULL);
        if (st != NATS_OK) {
            if (sink_nats_refusal(n->cfg, st, why, sizeof(why))) {
                inbox_core_fail(n->core, "inbox: %s", why);
            } else {
                log_warn("inbox: %s; retrying in %lld ms", why,
                         (long long)n->cfg->postgres.retry_interval_ms);
                n->retry_at_ms = inbox_now_ms() + n->cfg->postgres.retry_interval_ms;
            }
            if (n->nc)
                natsConnection_Destroy(n->nc);
            n->nc = NULL;
            return -1;
        }
    }
    for (size_t i = 0; i < n->nsubs; i++)
        n->subs[i].start = 0;
    if (inbox_core_positions(n->core, seed, n) != 0)
        return -1; /* stopping */
    for (size_t i = 0; i < n->nsubs; i++) {
        struct nats_sub *s = &n->subs[i];
        jsSubOptions so;
        jsOptions jo;
        jsErrCode jerr = 0;

        jsSubOptions_Init(&so);
        jsOptions_Init(&jo);
        jo.Wait = CONNECT_TIMEOUT_MS; /* the consumer's creation: not libnats's 5 s */
        so.Config.AckPolicy = js_AckAll;
        so.Config.AckWait = ACK_WAIT_NS;
        so.Config.MaxAckPending = n->cfg->inbox.batch_size * 2;
        if (s->start > 0) {
            so.Config.DeliverPolicy = js_DeliverByStartSequence;
            so.Config.OptStartSeq = s->start;
        } else {
            so.Config.DeliverPolicy = js_DeliverAll;
        }
        st = js_PullSubscribe(&s->sub, n->js, s->subject, NULL, &jo, &so, &jerr);
        if (st != NATS_OK) {
            natsStatus last;
            const char *text = nats_GetLastError(&last);

            s->sub = NULL;
            if (st == NATS_NOT_PERMITTED) {
                inbox_core_fail(n->core, "inbox: nats refused a consumer of \"%s\": %s",
                                s->subject, text && *text ? text : natsStatus_GetText(st));
            } else {
                log_warn("inbox: cannot read \"%s\" from JetStream (%s%s); retrying in %lld ms",
                         s->subject, text && *text ? text : natsStatus_GetText(st),
                         jerr == JSStreamNotFoundErr || st == NATS_NOT_FOUND
                             ? ": is a stream holding the subject?"
                             : "",
                         (long long)n->cfg->postgres.retry_interval_ms);
                n->retry_at_ms = inbox_now_ms() + n->cfg->postgres.retry_interval_ms;
            }
            unsubscribe(n);
            return -1;
        }
        log_info("inbox: reading \"%s\" from JetStream %s %llu", s->subject,
                 s->start ? "at stream sequence" : "from the beginning",
                 (unsigned long long)(s->start ? s->start : 1));
    }
    n->retry_at_ms = 0;
    inbox_core_joined(n->core);
    inbox_core_assigned(n->core, (int)n->nsubs);
    return 0;
}

static void nats_close(void *src)
{
    struct nats_in *n = src;

    unsubscribe(n);
    if (n->js)
        jsCtx_Destroy(n->js);
    if (n->nc)
        natsConnection_Destroy(n->nc);
    natsOptions_Destroy(n->opts);
    free(n->subs);
    free(n);
}

static void *nats_open(const struct relay_config *cfg, struct inbox *core, char *errstr,
                       size_t errstr_size)
{
    struct nats_in *n = calloc(1, sizeof(*n));

    if (!n || !(n->subs = calloc(cfg->inbox.ntopics, sizeof(*n->subs)))) {
        free(n);
        snprintf(errstr, errstr_size, "inbox: out of memory");
        return NULL;
    }
    n->core = core;
    n->cfg = cfg;
    n->nsubs = cfg->inbox.ntopics;
    for (size_t i = 0; i < n->nsubs; i++)
        n->subs[i].subject = cfg->inbox.topics[i];
    if (!(n->opts = sink_nats_options(cfg, CONNECT_TIMEOUT_MS, errstr, errstr_size))) {
        free(n->subs);
        free(n);
        return NULL;
    }
    /* Connected and subscribed at the first read: the database's positions come first. */
    return n;
}

/* Message m to the batch; returns true when the batch holds it now. */
static bool add(struct nats_in *n, struct nats_sub *s, natsMsg *m)
{
    struct held *h = calloc(1, sizeof(*h));
    struct inbox_header *hs = NULL;
    jsMsgMetaData *meta = NULL;
    int nkeys = 0, nh = 0;
    struct inbox_in in = {.topic = s->subject};
    bool held = false;

    if (!h || natsMsg_GetMetaData(&meta, m) != NATS_OK) {
        /* Without its stream sequence it has no position: never skipped in silence. */
        if (h)
            inbox_core_fail(n->core, "inbox: a message of \"%s\" without JetStream "
                                     "metadata (its stream sequence)",
                            s->subject);
        else
            inbox_core_fail(n->core, "inbox: out of memory");
        free(h);
        return false;
    }
    in.offset = (int64_t)meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    /* Every value of every header (a name may repeat), borrowed from the message. */
    if (natsMsgHeader_Keys(m, &h->keys, &nkeys) == NATS_OK && nkeys > 0) {
        int cap = nkeys * 2;

        hs = malloc((size_t)cap * sizeof(*hs));
        for (int i = 0; hs && i < nkeys; i++) {
            const char **vals = NULL;
            int nv = 0;

            if (natsMsgHeader_Values(m, h->keys[i], &vals, &nv) != NATS_OK)
                continue;
            for (int j = 0; hs && j < nv; j++) {
                if (nh == cap) {
                    struct inbox_header *g = realloc(hs, (size_t)(cap *= 2) * sizeof(*hs));

                    if (!g) {
                        free(hs);
                        hs = NULL;
                        break;
                    }
                    hs = g;
                }
                hs[nh++] = (struct inbox_header){h->keys[i], vals[j], strlen(vals[j])};
            }
            free((void *)vals);
        }
        if (!hs) {
            free((void *)h->keys);
            free(h);
            inbox_core_fail(n->core, "inbox: out of memory");
            return false;
        }
    }
    h->msg = m;
    in.handle = h;
    in.m.value = natsMsg_GetData(m);
    in.m.value_len = (size_t)natsMsg_GetDataLength(m);
    in.m.headers = hs;
    in.m.nheaders = (size_t)nh;
    /* The Nats-Msg-Id header is the publisher's deduplication id, not the event's. */
    held = inbox_core_add(n->core, &in) == 0;
    free(hs);
    if (held) {
        const char *reply = natsMsg_GetReply(m);

        free(s->last_reply);
        s->last_reply = reply ? strdup(reply) : NULL;
    } else {
        free((void *)h->keys);
        free(h);
    }
    return held;
}

static void nats_read(void *src, size_t room, int wait_ms)
{
    struct nats_in *n = src;

    if (!n->nsubs)
        return;
    if (!n->subs[0].sub) {
        if (inbox_now_ms() < n->retry_at_ms) {
            inbox_backoff(n->retry_at_ms, wait_ms);
            return;
        }
        if (subscribe(n) < 0)
            return;
    }
    /* Each subject in turn, so that a busy one does not starve the others. */
    for (size_t k = 0; k < n->nsubs && room > 0; k++) {
        struct nats_sub *s = &n->subs[(n->next + k) % n->nsubs];
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus st = natsSubscription_Fetch(&list, s->sub, (int)(room < 256 ? room : 256),
                                               wait_ms > 0 ? wait_ms : 1, &jerr);

        wait_ms = 0; /* one wait per read, whatever came of it */
        if (st == NATS_TIMEOUT)
            continue;
        if (st != NATS_OK) {
            natsStatus last;
            const char *text = nats_GetLastError(&last);

            log_warn("inbox: reading \"%s\" from JetStream: %s; making its consumers again "
                     "from the database's positions",
                     s->subject, text && *text ? text : natsStatus_GetText(st));
            unsubscribe(n);
            n->retry_at_ms = inbox_now_ms() + n->cfg->postgres.retry_interval_ms;
            return;
        }
        for (int i = 0; i < list.Count; i++) {
            natsMsg *m = list.Msgs[i];

            list.Msgs[i] = NULL;
            if (!add(n, s, m))
                natsMsg_Destroy(m);
            room--;
        }
        natsMsgList_Destroy(&list);
    }
    n->next++;
}

/* The batch is committed: acknowledge everything read (AckAll: the last one of each). */
static void nats_written(void *src, const struct inbox_pos *pos, size_t npos)
{
    struct nats_in *n = src;

    (void)pos;
    (void)npos;
    for (size_t i = 0; i < n->nsubs; i++) {
        struct nats_sub *s = &n->subs[i];

        if (s->last_reply && n->nc)
            natsConnection_PublishString(n->nc, s->last_reply, "+ACK");
        free(s->last_reply);
        s->last_reply = NULL;
    }
}

static void nats_release(void *src, void *handle)
{
    struct held *h = handle;

    (void)src;
    natsMsg_Destroy(h->msg);
    free((void *)h->keys);
    free(h);
}

static void nats_leave(void *src)
{
    unsubscribe(src);
}

/*
 * check and status
 */

/* Connect once with the nats section's options; NULL with errstr set. */
static natsConnection *connect_once(const struct relay_config *cfg, int timeout_ms,
                                    char *errstr, size_t errstr_size)
{
    natsOptions *o = sink_nats_options(cfg, timeout_ms, errstr, errstr_size);
    natsConnection *nc = NULL;
    natsStatus st;

    if (!o)
        return NULL;
    natsOptions_SetMaxReconnect(o, 0);
    st = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (st != NATS_OK) {
        sink_nats_refusal(cfg, st, errstr, errstr_size);
        return NULL;
    }
    return nc;
}

/* The stream holding subject and its last sequence; 0 or -1 (errstr set). */
static int stream_of(jsCtx *js, const char *subject, char *name, size_t name_size,
                     uint64_t *last, char *errstr, size_t errstr_size)
{
    jsStreamNamesList *names = NULL;
    jsOptions jo;
    natsStatus st;
    int rc = -1;

    jsOptions_Init(&jo);
    jo.Stream.Info.SubjectsFilter = subject;
    st = js_StreamNames(&names, js, &jo, NULL);
    if (st == NATS_OK && names && names->Count > 0) {
        jsStreamInfo *si = NULL;

        snprintf(name, name_size, "%s", names->List[0]);
        if (js_GetStreamInfo(&si, js, names->List[0], NULL, NULL) == NATS_OK) {
            *last = si->State.LastSeq;
            jsStreamInfo_Destroy(si);
            rc = 0;
        } else {
            snprintf(errstr, errstr_size, "cannot read stream \"%s\"", names->List[0]);
        }
    } else {
        snprintf(errstr, errstr_size, "no JetStream stream holds the subject");
    }
    if (names)
        jsStreamNamesList_Destroy(names);
    return rc;
}

static int nats_check(const struct relay_config *cfg, int timeout_ms, FILE *out)
{
    char errstr[700], stream[256];
    natsConnection *nc = connect_once(cfg, timeout_ms, errstr, sizeof(errstr));
    jsCtx *js = NULL;
    int failed = 0;

    if (!nc || natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
        fprintf(out, "FAIL nats: %s\n", nc ? "JetStream is not available" : errstr);
        if (nc)
            natsConnection_Destroy(nc);
        return 1;
    }
    for (size_t i = 0; i < cfg->inbox.ntopics; i++) {
        uint64_t last = 0;

        if (stream_of(js, cfg->inbox.topics[i], stream, sizeof(stream), &last, errstr,
                      sizeof(errstr)) < 0) {
            fprintf(out, "FAIL nats subject \"%s\": %s\n", cfg->inbox.topics[i], errstr);
            failed++;
        } else {
            fprintf(out, "ok   nats subject \"%s\": stream \"%s\", last sequence %llu\n",
                    cfg->inbox.topics[i], stream, (unsigned long long)last);
        }
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return failed;
}

struct nats_status {
    natsConnection *nc;
    jsCtx *js;
};

static void *nats_status_open(const struct relay_config *cfg)
{
    struct nats_status *st = calloc(1, sizeof(*st));
    char errstr[700];

    if (st && (st->nc = connect_once(cfg, CONNECT_TIMEOUT_MS, errstr, sizeof(errstr))) &&
        natsConnection_JetStream(&st->js, st->nc, NULL) == NATS_OK)
        return st;
    if (st && st->nc)
        natsConnection_Destroy(st->nc);
    free(st);
    return NULL;
}

/* The end of a subject is its stream's next sequence (other subjects' included). */
static int64_t nats_status_end(void *p, const char *topic, int32_t partition, int timeout_ms)
{
    struct nats_status *st = p;
    char errstr[300], stream[256];
    uint64_t last = 0;

    (void)timeout_ms;
    if (!st || partition != 0 ||
        stream_of(st->js, topic, stream, sizeof(stream), &last, errstr, sizeof(errstr)) < 0)
        return -1;
    return (int64_t)last + 1;
}

static void nats_status_close(void *p)
{
    struct nats_status *st = p;

    if (!st)
        return;
    jsCtx_Destroy(st->js);
    natsConnection_Destroy(st->nc);
    free(st);
}

const struct inbox_source_ops inbox_source_nats = {
    .broker = "nats",
    .open = nats_open,
    .read = nats_read,
    .written = nats_written,
    .release = nats_release,
    .leave = nats_leave,
    .close = nats_close,
    .check = nats_check,
    .status_open = nats_status_open,
    .status_end = nats_status_end,
    .status_close = nats_status_close,
};

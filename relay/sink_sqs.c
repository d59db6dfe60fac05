/*
 * sink_sqs.c -- the Amazon SQS sink: events sent with SendMessageBatch to the queue
 * sqs.queue_url names, each delivered when its entry of the batch's result says
 * Successful.
 *
 * One worker thread owns a libcurl handle and sends one batch at a time, in the order
 * the events were produced: up to 10 consecutive events for the same queue whose
 * sizes add up to at most sqs.max_message_size.  Requests use SQS's JSON protocol
 * (X-Amz-Target: AmazonSQS.SendMessageBatch) and are signed by libcurl's SigV4
 * (CURLOPT_AWS_SIGV4, "aws:amz:<region>:sqs") with the configured keys or the usual
 * AWS_* environment variables.  The relay's thread renders each entry (so a message
 * SQS cannot take is refused before it is queued), hands it to the worker through a
 * queue under a mutex and takes reports back woken by the sink's pipe, as the webhook
 * sink does: the poll() loop never waits on HTTP.
 *
 * Outcomes.  A Successful entry delivers its event.  A Failed entry whose cause is the
 * message (SenderFault, other than throttling or KMS trouble) is undeliverable: set
 * aside.  Any other Failed entry, a transport error, a timeout, throttling and a 5xx
 * fail the batch's events as SINK_RETRY: the pipeline rebuilds and replays from its
 * checkpoint, and the worker sends nothing more until then, so later events never
 * overtake a failed one.  A request SQS refuses as a whole for its content (a 4xx
 * naming a parameter) is sent again one entry per request, so that only the entry at
 * fault is set aside.  Refused credentials (InvalidClientTokenId,
 * SignatureDoesNotMatch, AccessDenied, ...) and a certificate that does not verify
 * stop the relay through sink_refuse(): no retry cures them.
 *
 * FIFO queues (a URL ending in ".fifo") get MessageGroupId = the event's key and
 * MessageDeduplicationId = the event id, each kept as it is when SQS takes it (1 to
 * 128 printable ASCII characters) and otherwise replaced by "sha256-" and the hex
 * SHA-256 of its bytes -- the same for every redelivery.  An event without a key goes
 * to the group SQS_NO_KEY_GROUP.  Headers become String message attributes when there
 * are at most 10 and SQS takes their names and values; otherwise all of them travel
 * together as one attribute, SQS_PACKED_ATTRIBUTE, a JSON array of [name, value] pairs
 * (docs/sinks/sqs.md).  Those decisions, pure, are sqs_proto.c's; this file
 * is the I/O around them.
 */
#include "sink_impl.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config_schema.h"
#include "jsonbuf.h"
#include "jsonscan.h"
#include "log.h"
#include "sqs_proto.h"

extern const struct sink_type sink_type_sqs;

/* The "sqs" section of the configuration. */
struct sqs_settings {
    struct sink_common common; /* queue_url template, format, dlq_queue_url */
    char *region;
    char *endpoint;
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    char *ca_file;
    int64_t timeout_ms;
    int64_t max_message_size;
};

#define SFIELD(f) offsetof(struct sqs_settings, f)

/* The most of an answer kept for parsing; SendMessageBatch's are a few kB. */
#define MAX_ANSWER (1 << 20)

static int check_url(struct parser_ctx *ctx, const char *name, const char *value,
                     struct relay_pos pos);
static int check_url_or_empty(struct parser_ctx *ctx, const char *name, const char *value,
                              struct relay_pos pos);
static int check_format(struct parser_ctx *ctx, const char *name, const char *value,
                        struct relay_pos pos);

/* clang-format off */
static const struct relay_option sqs_options[] = {
    {.section = "sqs", .key = "queue_url", .type = OPT_STRING,
     .offset = SFIELD(common.destination), .required = true, .check = check_url},
    {.section = "sqs", .key = "region", .type = OPT_STRING, .offset = SFIELD(region),
     .def = ""},
    {.section = "sqs", .key = "endpoint", .type = OPT_STRING, .offset = SFIELD(endpoint),
     .def = "", .check = check_url_or_empty},
    {.section = "sqs", .key = "access_key_id", .type = OPT_STRING,
     .offset = SFIELD(access_key_id), .def = ""},
    {.section = "sqs", .key = "secret_access_key", .type = OPT_STRING,
     .offset = SFIELD(secret_access_key), .def = "", .secret = RELAY_SECRET_VALUE},
    {.section = "sqs", .key = "session_token", .type = OPT_STRING,
     .offset = SFIELD(session_token), .def = "", .secret = RELAY_SECRET_VALUE},
    {.section = "sqs", .key = "dlq_queue_url", .type = OPT_STRING,
     .offset = SFIELD(common.dead_letter), .def = "", .check = check_url_or_empty},
    {.section = "sqs", .key = "ca_file", .type = OPT_STRING, .offset = SFIELD(ca_file),
     .def = ""},
    {.section = "sqs", .key = "timeout", .type = OPT_DURATION, .offset = SFIELD(timeout_ms),
     .def = "10s", .min = 100},
    {.section = "sqs", .key = "max_message_size", .type = OPT_INTEGER,
     .offset = SFIELD(max_message_size), .def = "262144", .min = 1024, .max = 1048576},
    {.section = "sqs", .key = "format", .type = OPT_ENUM, .offset = SFIELD(common.format),
     .def = "cloudevents-structured", .choices = relay_format_choices,
     .check = check_format},
};
/* clang-format on */

static const struct relay_sink_config sqs_config = {
    .name = "sqs",
    .section = "sqs",
    .options = sqs_options,
    .noptions = sizeof(sqs_options) / sizeof(sqs_options[0]),
    .settings_size = sizeof(struct sqs_settings),
    .common_offset = offsetof(struct sqs_settings, common),
    .section_selects = false,
};

static bool is_http_url(const char *v)
{
    return strncasecmp(v, "http://", 7) == 0 || strncasecmp(v, "https://", 8) == 0;
}

static int check_url(struct parser_ctx *ctx, const char *name, const char *value,
                     struct relay_pos pos)
{
    if (!is_http_url(value))
        return relay_config_fail(ctx, pos, "%s must start with https:// or http://", name);
    return relay_config_check_template(ctx, name, value, pos);
}

static int check_url_or_empty(struct parser_ctx *ctx, const char *name, const char *value,
                              struct relay_pos pos)
{
    if (value[0] && !is_http_url(value))
        return relay_config_fail(ctx, pos, "%s must be empty or start with https:// or http://",
                                 name);
    return 0;
}

/*
 * CloudEvents' binary mode has 13 headers or more and SQS takes 10 attributes a
 * message: such events would all travel with their headers packed into one
 * attribute, which no CloudEvents SDK reads.  Say so where the file says it.
 */
static int check_format(struct parser_ctx *ctx, const char *name, const char *value,
                        struct relay_pos pos)
{
    if (strcmp(value, "cloudevents") == 0)
        return relay_config_fail(ctx, pos,
                                 "%s \"cloudevents\" (binary mode) needs 13 message attributes "
                                 "and SQS carries 10: use \"cloudevents-structured\" (the "
                                 "default) or \"debezium\"",
                                 name);
    return 0;
}

static const struct sqs_settings *settings_of(const struct relay_config *cfg)
{
    return relay_config_sink_settings(cfg, "sqs");
}

/*
 * URLs and credentials
 */

/* The scheme and authority of url ("https://host:port"), into out.  Returns its length. */
static size_t url_origin(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://");
    size_t n;

    p = p ? p + 3 : url;
    n = strcspn(p, "/?#");
    return (size_t)snprintf(out, size, "%.*s", (int)((size_t)(p - url) + n), url);
}

/* The host of url, without port, into out. */
static void url_host(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://");
    size_t n;

    p = p ? p + 3 : url;
    n = strcspn(p, "/?#:");
    snprintf(out, size, "%.*s", (int)n, p);
}

/* The region requests are signed for: sqs.region, or the one the URLs name. */
static bool resolve_region(const struct sqs_settings *k, char *out, size_t size)
{
    char host[256];

    if (k->region[0]) {
        snprintf(out, size, "%s", k->region);
        return true;
    }
    url_host(k->endpoint[0] ? k->endpoint : k->common.destination, host, sizeof(host));
    return sqs_region_of_host(host, out, size);
}

struct sqs_creds {
    char *key, *secret, *token; /* token: "" when none */
    const char *from;           /* "sqs.access_key_id" or "the environment" */
};

static void creds_free(struct sqs_creds *c)
{
    free(c->key);
    free(c->secret);
    free(c->token);
    memset(c, 0, sizeof(*c));
}

/*
 * The credentials: sqs.access_key_id and sqs.secret_access_key (with
 * sqs.session_token), else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 * AWS_SESSION_TOKEN.  Returns 0, or -EINVAL with errstr set; c is to be freed with
 * creds_free() either way.
 */
static int creds_resolve(const struct sqs_settings *k, struct sqs_creds *c, char *errstr,
                         size_t errstr_size)
{
    const char *key = k->access_key_id, *secret = k->secret_access_key, *token;

    memset(c, 0, sizeof(*c));
    if (key[0] || secret[0]) {
        if (!key[0] || !secret[0]) {
            snprintf(errstr, errstr_size,
                     "sqs.access_key_id and sqs.secret_access_key go together: set both, or "
                     "neither to take AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
            return -EINVAL;
        }
        token = k->session_token;
        c->from = "sqs.access_key_id";
    } else {
        key = getenv("AWS_ACCESS_KEY_ID");
        secret = getenv("AWS_SECRET_ACCESS_KEY");
        token = getenv("AWS_SESSION_TOKEN");
        if (!key || !key[0] || !secret || !secret[0]) {
            snprintf(errstr, errstr_size,
                     "no AWS credentials: set sqs.access_key_id and sqs.secret_access_key, or "
                     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
            return -EINVAL;
        }
        c->from = "the environment";
    }
    c->key = strdup(key);
    c->secret = strdup(secret);
    c->token = strdup(token ? token : "");
    if (!c->key || !c->secret || !c->token) {
        snprintf(errstr, errstr_size, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* Everything a request needs besides its body: shared by the worker and the check. */
struct sqs_conn {
    const struct sqs_settings *k;
    struct sqs_creds creds;
    char region[64];
    char sigv4[96]; /* "aws:amz:<region>:sqs" */
};

static int conn_init(struct sqs_conn *c, const struct relay_config *cfg, char *errstr,
                     size_t errstr_size)
{
    memset(c, 0, sizeof(*c));
    c->k = settings_of(cfg);
    if (!resolve_region(c->k, c->region, sizeof(c->region))) {
        snprintf(errstr, errstr_size,
                 "sqs.region is not set and \"%s\" names no AWS region: set sqs.region",
                 c->k->endpoint[0] ? c->k->endpoint : c->k->common.destination);
        return -EINVAL;
    }
    snprintf(c->sigv4, sizeof(c->sigv4), "aws:amz:%s:sqs", c->region);
    return creds_resolve(c->k, &c->creds, errstr, errstr_size);
}

/*
 * One request and its answer
 */

struct answer {
    long status;       /* HTTP status; 0: no answer */
    CURLcode curl;     /* CURLE_OK when answered */
    struct jbuf body;  /* the first MAX_ANSWER bytes */
    char query_error[128]; /* x-amzn-query-error, "Code;Sender" */
    char code[128];    /* the error's name ("QueueDoesNotExist"); "" */
    char message[512]; /* its message; "" */
};

static size_t on_body(char *buf, size_t size, size_t n, void *opaque)
{
    struct answer *a = opaque;

    if (a->body.len + size * n <= MAX_ANSWER)
        jbuf_put(&a->body, buf, size * n);
    return size * n;
}

static size_t on_header(char *buf, size_t size, size_t n, void *opaque)
{
    struct answer *a = opaque;
    size_t len = size * n;

    if (len > 19 && strncasecmp(buf, "x-amzn-query-error:", 19) == 0) {
        size_t i = 19, e = len;

        while (i < e && buf[i] == ' ')
            i++;
        while (e > i && (buf[e - 1] == '\r' || buf[e - 1] == '\n' || buf[e - 1] == ' '))
            e--;
        snprintf(a->query_error, sizeof(a->query_error), "%.*s", (int)(e - i), buf + i);
    }
    return len;
}

static int on_progress(void *opaque, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    atomic_bool *stop = opaque;

    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return stop && atomic_load(stop) ? 1 : 0; /* non-zero aborts the transfer */
}

/*
 * POST body to the SQS endpoint for queue as action target (signed), into a.
 * Returns 0 when an HTTP answer came (a->status), -1 when none did (a->curl).
 * stop, when not NULL, aborts the transfer once it is true.
 */
static int sqs_call(CURL *c, const struct sqs_conn *conn, const char *queue, const char *target,
                    const char *body, size_t body_len, atomic_bool *stop,
                    struct answer *a)
{
    struct curl_slist *hdrs = NULL, *n;
    char url[600], line[2200];
    const char *lines[2];
    int result = -1;

    a->status = 0;
    a->curl = CURLE_OK;
    a->query_error[0] = a->code[0] = a->message[0] = '\0';
    jbuf_reset(&a->body);
    if (conn->k->endpoint[0])
        snprintf(url, sizeof(url), "%s", conn->k->endpoint);
    else
        url_origin(queue, url, sizeof(url));
    if (url[strlen(url) - 1] != '/' && !strchr(strstr(url, "://") + 3, '/'))
        strncat(url, "/", sizeof(url) - strlen(url) - 1);
    snprintf(line, sizeof(line), "X-Amz-Target: AmazonSQS.%s", target);
    lines[0] = line;
    lines[1] = "Content-Type: application/x-amz-json-1.0";
    /*
     * No "Expect:" line to turn 100-continue off: libcurl 7.88 signs the empty header
     * it does not send, and SQS refuses the signature.  EXPECT_100_TIMEOUT_MS 0 below
     * sends the body without waiting instead.
     */
    for (int i = 0; i < 2; i++) {
        if (!(n = curl_slist_append(hdrs, lines[i])))
            goto oom;
        hdrs = n;
    }
    if (conn->creds.token[0]) {
        char *tok = malloc(strlen(conn->creds.token) + 32);

        if (!tok)
            goto oom;
        sprintf(tok, "X-Amz-Security-Token: %s", conn->creds.token);
        n = curl_slist_append(hdrs, tok);
        free(tok);
        if (!n)
            goto oom;
        hdrs = n;
    }
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, conn->sigv4);
    curl_easy_setopt(c, CURLOPT_USERNAME, conn->creds.key);
    curl_easy_setopt(c, CURLOPT_PASSWORD, conn->creds.secret);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)conn->k->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "outbox-relay/" RELAY_VERSION);
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    if (stop) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)stop);
    }
    if (conn->k->ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, conn->k->ca_file);
    a->curl = curl_easy_perform(c);
    if (a->curl == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
        if (a->status < 200 || a->status >= 300)
            sqs_parse_error(a->body.data, a->body.len, a->query_error, a->code,
                            sizeof(a->code), a->message, sizeof(a->message));
        result = 0;
    }
    curl_slist_free_all(hdrs);
    return result;
oom:
    curl_slist_free_all(hdrs);
    a->curl = CURLE_OUT_OF_MEMORY;
    return -1;
}

/* A certificate problem: the relay stops rather than retry in silence. */
static bool tls_refusal(CURLcode rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_SSL_CERTPROBLEM;
}

/*
 * The sink
 */

/* One event as the worker sends it. */
struct sqs_item {
    struct sink_held *held; /* the message, for the report (destination = data) */
    char *entry;            /* the entry's JSON after "Id": ,"MessageBody":...} */
    size_t entry_len;
    size_t size; /* what SQS counts against its limits: body and attributes */
};

struct sqs_sink {
    struct sink base; /* first */
    struct sqs_conn conn;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop_now; /* read by curl's progress callback, without mu */
    /* Under mu: */
    struct sqs_item *in; /* to send, oldest first: in[ihead .. itail) */
    size_t ihead, itail, icap;
    bool stop;
    bool halted;     /* a batch failed: send nothing until sink_reset() */
    bool failing;    /* the last request got no answer */
    size_t solo;     /* send the next so many events one per request */
    struct sink_notes notes; /* reports for the relay's thread */
};

/* Hand a report to the relay's thread and wake it. */
static void note(struct sqs_sink *s, struct sink_held *held, enum sink_outcome outcome,
                 bool too_large, const char *code, const char *err)
{
    sink_note_report(&s->base, &s->notes, held, outcome, too_large, code, err);
}

/* A short description of a request that got no usable answer, into out. */
static void describe(const struct answer *a, const char *queue, char *out, size_t size)
{
    if (a->status == 0)
        snprintf(out, size, "SQS at %s: %s", queue, curl_easy_strerror(a->curl));
    else if (a->code[0] || a->message[0])
        snprintf(out, size, "SQS answered HTTP %ld %s%s%s", a->status, a->code,
                 a->message[0] ? ": " : "", a->message);
    else
        snprintf(out, size, "SQS answered HTTP %ld", a->status);
}

/*
 * Send the batch, the events at in[ihead ..) (called without mu), and report each
 * (mu held on return).  Returns how many of them are done with -- reported, their
 * held copies gone with the reports -- and ihead has moved past them; 0 when they are
 * to be sent again one per request, or the worker is stopping.
 */
static size_t send_batch(struct sqs_sink *s, CURL *c, struct sqs_item *items, size_t n,
                       struct jbuf *req, struct answer *a)
{
    struct sqs_entry_result results[SQS_MAX_ENTRIES];
    const char *queue = items[0].held->data;
    char why[768];
    int rc;

    jbuf_reset(req);
    jbuf_puts(req, "{\"QueueUrl\":");
    jbuf_put_json_string(req, queue, strlen(queue));
    jbuf_puts(req, ",\"Entries\":[");
    for (size_t i = 0; i < n; i++) {
        jbuf_printf(req, "%s{\"Id\":\"%zu\"", i ? "," : "", i);
        jbuf_put(req, items[i].entry, items[i].entry_len);
    }
    jbuf_puts(req, "]}");
    memset(results, 0, sizeof(results));
    if (req->oom) {
        a->status = 0;
        a->curl = CURLE_OUT_OF_MEMORY;
        rc = -1;
    } else {
        rc = sqs_call(c, &s->conn, queue, "SendMessageBatch", req->data, req->len, &s->stop_now,
                      a);
    }
    pthread_mutex_lock(&s->mu);
    if (s->stop)
        return 0;
    s->failing = rc < 0;
    why[0] = '\0';
    if (rc < 0 && tls_refusal(a->curl)) {
        snprintf(why, sizeof(why),
                 "TLS with SQS failed: %s (check sqs.ca_file against the CA that signed the "
                 "certificate of %s, and that it names the host)",
                 curl_easy_strerror(a->curl), queue);
    } else if (rc == 0 && (a->status == 401 || a->status == 403 || sqs_auth_code(a->code)) &&
               !sqs_transient_code(a->code)) {
        snprintf(why, sizeof(why),
                 "SQS refused the relay's credentials (from %s, access key \"%.40s\") for "
                 "queue %.250s: HTTP %ld %.63s%s%.200s (check the keys, the region \"%.40s\" "
                 "and that they may sqs:SendMessage)",
                 s->conn.creds.from, s->conn.creds.key, queue, a->status, a->code,
                 a->message[0] ? ": " : "", a->message, s->conn.region);
    }
    if (why[0]) {
        /* The refusal travels with the reports, ahead of them: the relay stops. */
        sink_note_refuse(&s->base, &s->notes, "%s", why);
        for (size_t i = 0; i < n; i++)
            note(s, items[i].held, SINK_RETRY, false, "auth", why);
        s->ihead += n;
        s->halted = true;
        return n;
    }
    if (rc == 0 && a->status >= 200 && a->status < 300 &&
        sqs_parse_batch(a->body.data, a->body.len, results, n) == 0) {
        bool halt = false;

        for (size_t i = 0; i < n; i++) {
            struct sqs_entry_result *e = &results[i];

            if (halt) {
                /* After a retried entry: replayed too, after it, whatever SQS said. */
                note(s, items[i].held, SINK_RETRY, false, "sqs",
                     "an earlier event of its batch is retried");
                continue;
            }
            if (e->state == 1) {
                note(s, items[i].held, SINK_DELIVERED, false, "", "");
                continue;
            }
            if (e->state == 0) {
                snprintf(why, sizeof(why), "SQS's answer has no result for the event");
                note(s, items[i].held, SINK_RETRY, false, "sqs", why);
                halt = true;
                continue;
            }
            snprintf(why, sizeof(why), "SQS refused the event: %s%s%s", e->code,
                     e->message[0] ? ": " : "", e->message);
            if (e->sender_fault && !sqs_transient_code(e->code)) {
                note(s, items[i].held, SINK_UNDELIVERABLE, sqs_size_code(e->code, e->message),
                     e->code, why);
            } else {
                note(s, items[i].held, SINK_RETRY, false, e->code, why);
                halt = true;
            }
        }
        s->ihead += n;
        s->halted = halt;
        return n;
    }
    describe(a, queue, why, sizeof(why));
    if (rc == 0 && a->status >= 400 && a->status < 500 && a->status != 408 &&
        a->status != 429 && !sqs_transient_code(a->code) && a->code[0]) {
        /* The request was refused for its content: find the entry at fault. */
        if (n > 1) {
            s->solo = n;
            return 0;
        }
        note(s, items[0].held, SINK_UNDELIVERABLE, sqs_size_code(a->code, a->message), a->code,
             why);
        s->ihead += 1;
        return 1;
    }
    if (rc == 0 && strcmp(a->code, "QueueDoesNotExist") == 0)
        snprintf(why, sizeof(why),
                 "SQS queue %s does not exist: create it (events wait in PostgreSQL meanwhile)",
                 queue);
    for (size_t i = 0; i < n; i++)
        note(s, items[i].held, SINK_RETRY, false, a->code[0] ? a->code : "sqs", why);
    s->ihead += n;
    s->halted = true;
    return n;
}

static void *worker(void *opaque)
{
    struct sqs_sink *s = opaque;
    CURL *c = curl_easy_init();
    struct jbuf req;
    struct answer a;

    jbuf_init(&req);
    memset(&a, 0, sizeof(a));
    jbuf_init(&a.body);
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct sqs_item batch[SQS_MAX_ENTRIES];
        size_t n, bytes, done;

        if (s->halted || s->ihead == s->itail) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        /* Consecutive events for one queue, within SQS's count and size limits. */
        batch[0] = s->in[s->ihead];
        n = 1;
        bytes = batch[0].size;
        while (s->solo == 0 && s->ihead + n < s->itail && n < SQS_MAX_ENTRIES) {
            const struct sqs_item *it = &s->in[s->ihead + n];

            if (strcmp(it->held->data, batch[0].held->data) != 0 ||
                bytes + it->size > (size_t)s->conn.k->max_message_size)
                break;
            batch[n++] = *it;
            bytes += it->size;
        }
        if (s->solo > 0)
            s->solo--;
        if (!c) {
            for (size_t i = 0; i < n; i++) {
                note(s, batch[i].held, SINK_RETRY, false, "curl", "cannot create a curl handle");
                free(batch[i].entry);
            }
            s->ihead += n;
            s->halted = true;
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        done = send_batch(s, c, batch, n, &req, &a); /* returns with mu held */
        for (size_t i = 0; i < done; i++)
            free(batch[i].entry);
    }
    pthread_mutex_unlock(&s->mu);
    jbuf_free(&req);
    jbuf_free(&a.body);
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

static int start_worker(struct sqs_sink *s, char *errstr, size_t errstr_size)
{
    int rc;

    s->stop = false;
    atomic_store(&s->stop_now, false);
    s->halted = false;
    s->solo = 0;
    if ((rc = pthread_create(&s->thread, NULL, worker, s)) != 0) {
        snprintf(errstr, errstr_size, "cannot start the SQS thread: %s", strerror(rc));
        return -rc;
    }
    s->running = true;
    return 0;
}

/* Stop the worker (aborting a request in flight) and drop what it held. */
static void stop_worker(struct sqs_sink *s)
{
    if (s->running) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        atomic_store(&s->stop_now, true);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->running = false;
    }
    for (size_t i = s->ihead; i < s->itail; i++) {
        free(s->in[i].held);
        free(s->in[i].entry);
    }
    /* Entries already reported were freed by the worker, their held copies by poll. */
    s->ihead = s->itail = 0;
    sink_notes_clear(&s->notes);
}

static int sqs_produce(sink *base, const struct out_msg *msg, uint64_t tag, char *errstr,
                       size_t errstr_size)
{
    struct sqs_sink *s = (struct sqs_sink *)base;
    struct sqs_item item = {0};
    struct jbuf b;
    int rc;

    jbuf_init(&b);
    if ((rc = sqs_render_entry(msg, s->conn.k->max_message_size, &b, &item.size, errstr,
                               errstr_size)) < 0) {
        jbuf_free(&b);
        return rc == -ENOMEM ? -EIO : rc;
    }
    item.entry = b.data; /* the buffer's bytes are the item's now */
    item.entry_len = b.len;
    if (!(item.held = sink_hold(msg, tag))) {
        free(item.entry);
        snprintf(errstr, errstr_size, "out of memory");
        return -EIO;
    }
    pthread_mutex_lock(&s->mu);
    if (s->itail == s->icap && s->ihead > 0) {
        memmove(s->in, s->in + s->ihead, (s->itail - s->ihead) * sizeof(*s->in));
        s->itail -= s->ihead;
        s->ihead = 0;
    }
    if (s->itail == s->icap) {
        size_t ncap = s->icap ? s->icap * 2 : 1024;
        struct sqs_item *n = realloc(s->in, ncap * sizeof(*n));

        if (!n) {
            pthread_mutex_unlock(&s->mu);
            free(item.held);
            free(item.entry);
            snprintf(errstr, errstr_size, "out of memory");
            return -EIO;
        }
        s->in = n;
        s->icap = ncap;
    }
    s->in[s->itail++] = item;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int sqs_poll(sink *base)
{
    struct sqs_sink *s = (struct sqs_sink *)base;

    pthread_mutex_lock(&s->mu);
    s->base.unreachable = s->failing;
    pthread_mutex_unlock(&s->mu);
    return sink_notes_serve(&s->base, &s->notes, NULL);
}

static bool sqs_fatal(const sink *base)
{
    (void)base;
    return false; /* a failed batch is reported as SINK_RETRY; the worker waits for reset */
}

static void sqs_flush(sink *base, int timeout_ms)
{
    sink_wait_reports(base, timeout_ms);
}

static int sqs_reset(sink *base, char *errstr, size_t errstr_size)
{
    struct sqs_sink *s = (struct sqs_sink *)base;

    stop_worker(s);
    s->failing = false;
    return start_worker(s, errstr, errstr_size);
}

static void sqs_destroy(sink *base)
{
    struct sqs_sink *s = (struct sqs_sink *)base;

    stop_worker(s);
    free(s->in);
    sink_notes_destroy(&s->notes);
    creds_free(&s->conn.creds);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static const struct sink_ops sqs_ops = {
    .produce = sqs_produce,
    .poll = sqs_poll,
    .fatal = sqs_fatal,
    .flush = sqs_flush,
    .reset = sqs_reset,
    .destroy = sqs_destroy,
};

static sink *sqs_create(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                        char *errstr, size_t errstr_size)
{
    struct sqs_sink *s = calloc(1, sizeof(*s));

    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (conn_init(&s->conn, cfg, errstr, errstr_size) < 0) {
        creds_free(&s->conn.creds);
        free(s);
        return NULL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    sink_notes_init(&s->notes);
    if (sink_base_init(&s->base, &sink_type_sqs, &sqs_ops, report, opaque, errstr,
                       errstr_size) < 0 ||
        start_worker(s, errstr, errstr_size) < 0) {
        sink_notes_destroy(&s->notes);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        creds_free(&s->conn.creds);
        free(s);
        return NULL;
    }
    return &s->base;
}

static int sqs_check_config(const struct relay_config *cfg, char *errstr, size_t errstr_size)
{
    struct sqs_conn c;
    int rc = conn_init(&c, cfg, errstr, errstr_size);

    creds_free(&c.creds);
    return rc < 0 ? -EINVAL : 0;
}

/* Whether a template has placeholders: such a queue is known only per event. */
static bool literal(const char *url)
{
    return url[0] && !strchr(url, '{');
}

/* One queue for outbox-relay check: GetQueueAttributes.  Returns 1 on failure. */
static int check_queue(CURL *c, const struct sqs_conn *conn, const char *label, const char *queue,
                       const struct sink_check_out *out)
{
    struct answer a;
    char body[800], line[1200];
    int failed = 0;

    memset(&a, 0, sizeof(a));
    jbuf_init(&a.body);
    snprintf(body, sizeof(body), "{\"QueueUrl\":\"%s\",\"AttributeNames\":"
             "[\"FifoQueue\",\"MaximumMessageSize\"]}", queue);
    if (strchr(queue, '"') || strchr(queue, '\\')) {
        snprintf(line, sizeof(line), "%s %s: not a queue URL", label, queue);
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        return 1;
    }
    if (sqs_call(c, conn, queue, "GetQueueAttributes", body, strlen(body), NULL, &a) < 0) {
        snprintf(line, sizeof(line), "%s %s: cannot reach SQS: %s%s", label, queue,
                 curl_easy_strerror(a.curl),
                 tls_refusal(a.curl) ? " (check sqs.ca_file)" : "");
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        failed = 1;
    } else if (a.status >= 200 && a.status < 300) {
        char fifo_text[16] = "", max_text[24] = "";
        const char *fifo;
        long max;

        sqs_queue_attribute(a.body.data, a.body.len, "FifoQueue", fifo_text, sizeof(fifo_text));
        sqs_queue_attribute(a.body.data, a.body.len, "MaximumMessageSize", max_text,
                            sizeof(max_text));
        fifo = strcmp(fifo_text, "true") == 0 ? "FIFO" : "standard";
        max = strtol(max_text, NULL, 10);

        snprintf(line, sizeof(line), "%s %s: exists, %s queue%s", label, queue, fifo,
                 strcmp(fifo, "FIFO") == 0 ? " (per-key order, deduplication by event id)"
                                           : " (no order, no deduplication)");
        out->line(out->ctx, SINK_CHECK_OK, line);
        if (max > 0 && max < conn->k->max_message_size) {
            snprintf(line, sizeof(line), "%s takes messages up to %ld bytes, less than "
                     "sqs.max_message_size %lld: larger ones will be set aside by SQS",
                     label, max, (long long)conn->k->max_message_size);
            out->line(out->ctx, SINK_CHECK_WARN, line);
        }
    } else {
        const char *what = "refused";

        if (a.status == 401 || a.status == 403 || sqs_auth_code(a.code))
            what = "credentials refused (check the keys, the region and the permissions)";
        else if (strcmp(a.code, "QueueDoesNotExist") == 0 ||
                 strcmp(a.code, "AWS.SimpleQueueService.NonExistentQueue") == 0)
            what = "no such queue";
        snprintf(line, sizeof(line), "%s %s: %s: HTTP %ld %s%s%s", label, queue, what, a.status,
                 a.code, a.message[0] ? ": " : "", a.message);
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        failed = 1;
    }
    jbuf_free(&a.body);
    return failed;
}

static int sqs_check(const struct relay_config *cfg, int timeout_ms,
                     const struct sink_check_out *out)
{
    struct sqs_conn conn;
    struct sqs_settings k;
    char err[512], heading[700], line[700];
    int failures = 0;
    CURL *c;

    if (conn_init(&conn, cfg, err, sizeof(err)) < 0) {
        out->line(out->ctx, SINK_CHECK_FAIL, err);
        creds_free(&conn.creds);
        return 1;
    }
    /* The check's own deadline, whatever sqs.timeout says. */
    k = *conn.k;
    k.timeout_ms = timeout_ms;
    conn.k = &k;
    snprintf(heading, sizeof(heading), "sqs (region %s, credentials from %s, access key \"%s\"):",
             conn.region, conn.creds.from, conn.creds.key);
    out->heading(out->ctx, heading);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!(c = curl_easy_init())) {
        out->line(out->ctx, SINK_CHECK_FAIL, "cannot create a curl handle");
        creds_free(&conn.creds);
        return 1;
    }
    if (literal(k.common.destination)) {
        failures += check_queue(c, &conn, "queue", k.common.destination, out);
    } else {
        snprintf(line, sizeof(line), "queue_url \"%s\" has placeholders: its queues are checked "
                 "when events name them", k.common.destination);
        out->line(out->ctx, SINK_CHECK_WARN, line);
    }
    if (literal(k.common.dead_letter))
        failures += check_queue(c, &conn, "dead-letter queue", k.common.dead_letter, out);
    if (!failures)
        out->line(out->ctx, SINK_CHECK_OK,
                  "GetQueueAttributes allowed (sending also needs sqs:SendMessage)");
    curl_easy_cleanup(c);
    creds_free(&conn.creds);
    return failures;
}

static void sqs_plan(const struct relay_config *cfg,
                     void (*item)(void *ctx, const char *label, const char *text), void *ctx)
{
    const struct sqs_settings *k = settings_of(cfg);
    char text[900], region[64];
    size_t tl = strlen(k->common.destination);

    if (!resolve_region(k, region, sizeof(region)))
        snprintf(region, sizeof(region), "(none)");
    snprintf(text, sizeof(text),
             "Amazon SQS, region %s, endpoint %s, SendMessageBatch (up to 10, %lld bytes), "
             "timeout %lld ms, credentials from %s%s",
             region, k->endpoint[0] ? k->endpoint : "(the queue's host)",
             (long long)k->max_message_size, (long long)k->timeout_ms,
             k->access_key_id[0] ? "sqs.access_key_id" : "the environment",
             k->ca_file[0] ? ", CA from sqs.ca_file" : "");
    item(ctx, "sink", text);
    item(ctx, "format", relay_choice_name(relay_format_choices, (int)k->common.format));
    snprintf(text, sizeof(text), "queue %s (%s)", k->common.destination,
             tl > 5 && strcmp(k->common.destination + tl - 5, ".fifo") == 0
                 ? "FIFO: group = key, deduplication id = event id"
                 : "standard: no order, no deduplication");
    item(ctx, "destination", text);
}

static const char *sqs_dead_letter(const struct relay_config *cfg)
{
    return settings_of(cfg)->common.dead_letter;
}

const struct sink_type sink_type_sqs = {
    .name = "sqs",
    .config = &sqs_config,
    .create = sqs_create,
    .check_config = sqs_check_config,
    .check = sqs_check,
    .plan = sqs_plan,
    .dead_letter_destination = sqs_dead_letter,
    .caps =
        {
            .keeps_key_order = true, /* one batch at a time, entries in order */
            .max_destination = FORMAT_TOPIC_MAX,
            .destination_chars = ":/._-~%", /* a queue URL */
            .destination_word = "queue",
            .message_overhead = 256,
            .header_overhead = 40,
            .unreachable = "sqs unreachable",
        },
};

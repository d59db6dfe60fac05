/*
 * sink_webhook.c -- the webhook sink: each event an HTTP POST to webhook.url, signed
 * as Standard Webhooks specifies, delivered when the endpoint answers 2xx.
 *
 * One worker thread owns a libcurl handle and sends one request at a time, in the
 * order the events were produced: at most one request in flight, so per-key order
 * holds (and so does every other order).  The relay's thread hands it copies of the
 * messages and takes back reports through a queue, woken by the sink's pipe as
 * librdkafka wakes the Kafka sink: the poll() loop, keepalives and the admin endpoint
 * never wait on HTTP.
 *
 * Answers: 2xx delivers.  408, 429, 5xx, a timeout and a connection failure are
 * retried by the worker itself, the same request again after Retry-After (seconds)
 * when the endpoint gave one, else after a backoff from 100 ms doubling to 30 s -- the
 * events behind it wait, the relay is back-pressured by its in-flight limits and the
 * checkpoint does not move.  401 says the endpoint does not accept the relay's
 * signature (another secret) and would refuse every event: the relay stops with a
 * plain error (sink_refuse()), as it does when the endpoint's certificate does not
 * verify.  Any other 4xx, 403 included (an endpoint may forbid one event and take the
 * next), and a 3xx (redirects are not followed) is permanent for that event: it is set
 * aside (dead_letter.table; a webhook has no dead-letter destination of its own) and
 * the next one goes.
 *
 * Each request carries webhook-id (the event id: stable across retries, what the
 * receiver deduplicates on), webhook-timestamp (seconds, at each attempt) and
 * webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with the key of
 * webhook.secret ("whsec_<base64>").  The body is the message's value; in the
 * CloudEvents binary format its attributes go as ce-* headers (CloudEvents' HTTP
 * binding), in the structured format the body is the CloudEvent itself.
 */
#include "sink_impl.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config_schema.h"
#include "log.h"

extern const struct sink_type sink_type_webhook;

/* The "webhook" section of the configuration. */
struct webhook_settings {
    struct sink_common common; /* format; no destination, no dead-letter destination */
    char *url;
    char *secret;
    int64_t timeout_ms;
    char *ca_file;
};

#define WFIELD(f) offsetof(struct webhook_settings, f)

static int check_url(struct parser_ctx *ctx, const char *name, const char *value,
                     struct relay_pos pos);
static int check_secret(struct parser_ctx *ctx, const char *name, const char *value,
                        struct relay_pos pos);

/* clang-format off */
static const struct relay_option webhook_options[] = {
    {.section = "webhook", .key = "url", .type = OPT_STRING, .offset = WFIELD(url),
     .required = true, .check = check_url},
    {.section = "webhook", .key = "secret", .type = OPT_STRING, .offset = WFIELD(secret),
     .required = true, .check = check_secret, .secret = RELAY_SECRET_VALUE},
    {.section = "webhook", .key = "timeout", .type = OPT_DURATION, .offset = WFIELD(timeout_ms),
     .def = "10s", .min = 100},
    {.section = "webhook", .key = "ca_file", .type = OPT_STRING, .offset = WFIELD(ca_file),
     .def = ""},
    {.section = "webhook", .key = "format", .type = OPT_ENUM, .offset = WFIELD(common.format),
     .def = "cloudevents-structured", .choices = relay_format_choices},
};
/* clang-format on */

static const struct relay_sink_config webhook_config = {
    .name = "webhook",
    .section = "webhook",
    .options = webhook_options,
    .noptions = sizeof(webhook_options) / sizeof(webhook_options[0]),
    .settings_size = sizeof(struct webhook_settings),
    .common_offset = offsetof(struct webhook_settings, common),
    .section_selects = false,
};

#define KEY_MAX 128

static int check_url(struct parser_ctx *ctx, const char *name, const char *value,
                     struct relay_pos pos)
{
    if (strncasecmp(value, "http://", 7) != 0 && strncasecmp(value, "https://", 8) != 0)
        return relay_config_fail(ctx, pos, "%s must start with http:// or https://", name);
    return 0;
}

/* The key of a "whsec_<base64>" secret into key.  Returns its length, or -1. */
static int secret_key(const char *secret, unsigned char *key)
{
    size_t n;
    int len;

    if (strncmp(secret, "whsec_", 6) != 0)
        return -1;
    secret += 6;
    n = strlen(secret);
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > KEY_MAX)
        return -1;
    len = EVP_DecodeBlock(key, (const unsigned char *)secret, (int)n);
    if (len < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding's bytes too. */
    for (size_t i = n; i > 0 && secret[i - 1] == '='; i--)
        len--;
    return len;
}

static int check_secret(struct parser_ctx *ctx, const char *name, const char *value,
                        struct relay_pos pos)
{
    unsigned char key[KEY_MAX];
    int len = secret_key(value, key);

    if (len < 16)
        return relay_config_fail(ctx, pos,
                                 "%s must be \"whsec_\" and the base64 of at least 16 bytes "
                                 "(the Standard Webhooks form)",
                                 name);
    return 0;
}

struct webhook_sink {
    struct sink base; /* first */
    const struct webhook_settings *k;
    unsigned char key[KEY_MAX];
    int keylen;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: */
    struct sink_fifo in; /* to send, oldest first */
    bool stop;
    bool failing; /* the last attempt failed for a transient reason */
    struct sink_notes notes; /* reports and log lines for the relay's thread */
};

static const struct webhook_settings *settings_of(const struct relay_config *cfg)
{
    return relay_config_sink_settings(cfg, "webhook");
}

/* An HTTP header name: a token (RFC 9110). */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    }
    return true;
}

struct attempt {
    long status;
    int retry_after; /* seconds; -1: none given */
    bool cert;       /* the endpoint's certificate did not verify */
    char err[256];
};

static size_t on_header(char *buf, size_t size, size_t n, void *opaque)
{
    struct attempt *a = opaque;
    size_t len = size * n;

    if (len > 12 && strncasecmp(buf, "Retry-After:", 12) == 0) {
        long v = strtol(buf + 12, NULL, 10);

        a->retry_after = v >= 0 && v <= 3600 ? (int)v : -1;
    }
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *opaque)
{
    (void)buf;
    (void)opaque;
    return size * n;
}

static int on_progress(void *opaque, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct webhook_sink *s = opaque;
    bool stop;

    (void)a;
    (void)b;
    (void)c;
    (void)d;
    pthread_mutex_lock(&s->mu);
    stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop ? 1 : 0; /* non-zero aborts the transfer */
}

/*
 * Add "name: value" to the list.  Returns -1 (with a->err) when the header cannot be
 * sent in HTTP: a name that is not a token, a value with CR or LF.
 */
static int add_header(struct curl_slist **list, const char *name, const char *value, size_t len,
                      struct attempt *a)
{
    char line[1024];
    struct curl_slist *n;

    if (!is_token(name) || memchr(value, '\r', len) || memchr(value, '\n', len) ||
        memchr(value, '\0', len)) {
        snprintf(a->err, sizeof(a->err), "header \"%.64s\" cannot be sent in HTTP", name);
        return -1;
    }
    if ((size_t)snprintf(line, sizeof(line), "%s: %.*s", name, (int)len, value) >= sizeof(line)) {
        snprintf(a->err, sizeof(a->err), "header \"%.64s\" is too long", name);
        return -1;
    }
    if (!(n = curl_slist_append(*list, line))) {
        snprintf(a->err, sizeof(a->err), "out of memory");
        return -1;
    }
    *list = n;
    return 0;
}

/* The webhook-signature header's value for one attempt. */
static void sign(const struct webhook_sink *s, const char *id, size_t id_len, const char *ts,
                 const char *body, size_t body_len, char *out, size_t out_size)
{
    size_t tl = strlen(ts), n = id_len + 1 + tl + 1 + body_len;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char b64[EVP_MAX_MD_SIZE * 2];
    char *content = malloc(n ? n : 1);

    out[0] = '\0';
    if (!content)
        return; /* an unsigned request: the receiver refuses it, and it is retried */
    /* Standard Webhooks signs "<webhook-id>.<webhook-timestamp>.<body>". */
    memcpy(content, id, id_len);
    content[id_len] = '.';
    memcpy(content + id_len + 1, ts, tl);
    content[id_len + 1 + tl] = '.';
    if (body_len)
        memcpy(content + id_len + tl + 2, body, body_len);
    if (HMAC(EVP_sha256(), s->key, s->keylen, (const unsigned char *)content, n, mac, &maclen))
        EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
    else
        b64[0] = '\0';
    free(content);
    snprintf(out, out_size, "v1,%s", b64);
}

/*
 * One POST of held.  Returns 0 with a->status set when the endpoint answered, -1 with
 * a->err when it did not (or the message cannot be sent: a->status = -1 then).
 */
static int post(struct webhook_sink *s, CURL *c, const struct sink_held *held, struct attempt *a)
{
    struct out_msg m;
    struct curl_slist *hdrs = NULL;
    char ts[24], sig[128], id[256], name[128], ct[128];
    const char *ctype = "application/json";
    CURLcode rc;
    int result = -1;

    sink_held_view(held, &m);
    a->status = 0;
    a->retry_after = -1;
    a->err[0] = '\0';
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    snprintf(id, sizeof(id), "%.*s", (int)(m.id_len < 255 ? m.id_len : 255), m.id);
    sign(s, m.id, m.id_len, ts, m.value ? m.value : "", m.value ? m.value_len : 0, sig,
         sizeof(sig));
    for (int i = 0; i < m.nheaders; i++) {
        const struct msg_header *hd = &m.headers[i];

        if (strcasecmp(hd->name, "content-type") == 0) {
            if (hd->value && hd->len < sizeof(ct)) {
                snprintf(ct, sizeof(ct), "%.*s", (int)hd->len, hd->value);
                ctype = ct;
            }
            continue;
        }
        /* CloudEvents' HTTP binding: ce_type is ce-type. */
        snprintf(name, sizeof(name), "%s", hd->name);
        if (strncmp(name, "ce_", 3) == 0)
            name[2] = '-';
        if (add_header(&hdrs, name, hd->value ? hd->value : "", hd->value ? hd->len : 0, a) < 0) {
            a->status = -1;
            goto out;
        }
    }
    if (add_header(&hdrs, "Content-Type", ctype, strlen(ctype), a) < 0 ||
        add_header(&hdrs, "webhook-id", id, strlen(id), a) < 0 ||
        add_header(&hdrs, "webhook-timestamp", ts, strlen(ts), a) < 0 ||
        add_header(&hdrs, "webhook-signature", sig, strlen(sig), a) < 0 ||
        add_header(&hdrs, "User-Agent", "outbox-relay/" RELAY_VERSION,
                   strlen("outbox-relay/" RELAY_VERSION), a) < 0) {
        a->status = -1;
        goto out;
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, s->k->url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, m.value ? m.value : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(m.value ? m.value_len : 0));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->k->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (s->k->ca_file && s->k->ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, s->k->ca_file);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        snprintf(a->err, sizeof(a->err), "%s", curl_easy_strerror(rc));
        a->cert = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE;
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    result = 0;
out:
    curl_slist_free_all(hdrs);
    return result;
}

/* Wait up to ms (mu held), or until stopped.  Returns true when stopped. */
static bool pause_for(struct webhook_sink *s, int64_t ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &until) != ETIMEDOUT)
        ;
    return s->stop;
}

static void *worker(void *opaque)
{
    struct webhook_sink *s = opaque;
    CURL *c = curl_easy_init();
    int64_t backoff = 100;

    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct sink_held *held;
        struct attempt a;
        char why[256];
        int rc;

        if (!(held = sink_fifo_peek(&s->in))) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        if (c)
            rc = post(s, c, held, &a);
        else
            rc = -1, a.status = 0, snprintf(a.err, sizeof(a.err), "cannot create a curl handle");
        pthread_mutex_lock(&s->mu);
        if (s->stop)
            break;
        if (rc == 0 && a.status >= 200 && a.status < 300) {
            sink_fifo_pop(&s->in);
            s->failing = false;
            backoff = 100;
            sink_note_report(&s->base, &s->notes, held, SINK_DELIVERED, false, "", "");
            continue;
        }
        if ((rc != 0 && a.cert) || (rc == 0 && a.status == 401)) {
            /* No retry cures these, and no event would get through: stop the relay. */
            char line[512];

            if (rc != 0)
                snprintf(line, sizeof(line), "webhook: the certificate of %s does not verify "
                         "(%s): give the CA that signed it in webhook.ca_file", s->k->url,
                         a.err);
            else
                snprintf(line, sizeof(line), "webhook: %s answered HTTP %ld to a signed "
                         "request: the endpoint refuses the relay (is webhook.secret the "
                         "endpoint's secret?)", s->k->url, a.status);
            s->failing = true;
            sink_note_refuse(&s->base, &s->notes, "%s", line);
            while (!pause_for(s, 3600 * 1000))
                ;
            break;
        }
        if (a.status == -1 || (rc == 0 && a.status != 408 && a.status != 429 &&
                               a.status < 500)) {
            if (a.status == -1)
                snprintf(why, sizeof(why), "%s", a.err);
            else
                snprintf(why, sizeof(why), "HTTP %ld from the endpoint", a.status);
            sink_fifo_pop(&s->in);
            sink_note_report(&s->base, &s->notes, held, SINK_UNDELIVERABLE, false, "http", why);
            continue;
        }
        /* Transient: the same request again, after Retry-After or the backoff. */
        if (rc == 0)
            snprintf(why, sizeof(why), "HTTP %ld", a.status);
        else
            snprintf(why, sizeof(why), "%s", a.err);
        {
            int64_t wait = a.retry_after >= 0 ? (int64_t)a.retry_after * 1000 : backoff;
            char line[400];

            snprintf(line, sizeof(line), "webhook: event \"%.*s\": %s; retrying in %lld ms",
                     (int)(held->id_len < 64 ? held->id_len : 64),
                     held->data + strlen(held->data) + 1, why, (long long)wait);
            s->failing = true;
            sink_note_log(&s->base, &s->notes, "%s", line);
            backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
            if (pause_for(s, wait))
                break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

static int start_worker(struct webhook_sink *s, char *errstr, size_t errstr_size)
{
    int rc;

    s->stop = false;
    if ((rc = pthread_create(&s->thread, NULL, worker, s)) != 0) {
        snprintf(errstr, errstr_size, "cannot start the webhook thread: %s", strerror(rc));
        return -rc;
    }
    s->running = true;
    return 0;
}

/* Stop the worker (aborting a request in flight) and drop what it held. */
static void stop_worker(struct webhook_sink *s)
{
    if (s->running) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->running = false;
    }
    sink_fifo_clear(&s->in);
    sink_notes_clear(&s->notes);
}

static int webhook_produce(sink *base, const struct out_msg *msg, uint64_t tag, char *errstr,
                           size_t errstr_size)
{
    struct webhook_sink *s = (struct webhook_sink *)base;
    struct sink_held *h = sink_hold(msg, tag);
    int rc = 0;

    if (!h) {
        snprintf(errstr, errstr_size, "out of memory");
        return -EIO;
    }
    pthread_mutex_lock(&s->mu);
    if (sink_fifo_push(&s->in, h) < 0)
        rc = -EIO;
    else
        pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        free(h);
        snprintf(errstr, errstr_size, "out of memory");
    }
    return rc;
}

static int webhook_poll(sink *base)
{
    struct webhook_sink *s = (struct webhook_sink *)base;

    pthread_mutex_lock(&s->mu);
    s->base.unreachable = s->failing;
    pthread_mutex_unlock(&s->mu);
    return sink_notes_serve(&s->base, &s->notes, "webhook");
}

static bool webhook_fatal(const sink *base)
{
    (void)base;
    return false; /* the worker retries by itself */
}

static void webhook_flush(sink *base, int timeout_ms)
{
    sink_wait_reports(base, timeout_ms);
}

static int webhook_reset(sink *base, char *errstr, size_t errstr_size)
{
    struct webhook_sink *s = (struct webhook_sink *)base;

    stop_worker(s);
    s->failing = false;
    return start_worker(s, errstr, errstr_size);
}

static void webhook_destroy(sink *base)
{
    struct webhook_sink *s = (struct webhook_sink *)base;

    stop_worker(s);
    sink_fifo_free(&s->in);
    sink_notes_destroy(&s->notes);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static const struct sink_ops webhook_ops = {
    .produce = webhook_produce,
    .poll = webhook_poll,
    .fatal = webhook_fatal,
    .flush = webhook_flush,
    .reset = webhook_reset,
    .destroy = webhook_destroy,
};

static sink *webhook_create(const struct relay_config *cfg, sink_report_fn *report,
                            void *opaque, char *errstr, size_t errstr_size)
{
    struct webhook_sink *s = calloc(1, sizeof(*s));

    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->k = settings_of(cfg);
    if ((s->keylen = secret_key(s->k->secret, s->key)) < 16) {
        snprintf(errstr, errstr_size, "webhook.secret is not a whsec_ secret");
        free(s);
        return NULL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    sink_notes_init(&s->notes);
    if (sink_base_init(&s->base, &sink_type_webhook, &webhook_ops, report, opaque, errstr,
                       errstr_size) < 0 ||
        start_worker(s, errstr, errstr_size) < 0) {
        sink_notes_destroy(&s->notes);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return NULL;
    }
    return &s->base;
}

/*
 * outbox-relay check: resolve the endpoint's host, connect and, for https://, verify
 * its certificate and name, all within timeout_ms -- without sending a request: an
 * endpoint takes only events, and a probe it does not expect (HEAD, OPTIONS) might be
 * refused, logged as an attack or, worse, taken as one.  Each failure is named by
 * its stage (DNS, connection, TLS) with libcurl's own words.  Returns the number of
 * failures (0 or 1).
 */
static int webhook_check(const struct relay_config *cfg, int timeout_ms,
                         const struct sink_check_out *out)
{
    const struct webhook_settings *k = settings_of(cfg);
    char heading[600], line[900], detail[CURL_ERROR_SIZE] = "";
    CURLcode rc;
    CURL *c;

    snprintf(heading, sizeof(heading), "webhook (%s):", k->url);
    out->heading(out->ctx, heading);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!(c = curl_easy_init())) {
        out->line(out->ctx, SINK_CHECK_FAIL, "cannot create a curl handle");
        return 1;
    }
    curl_easy_setopt(c, CURLOPT_URL, k->url);
    curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (k->ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, k->ca_file);
    rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        const char *why = detail[0] ? detail : curl_easy_strerror(rc);

        if (rc == CURLE_COULDNT_RESOLVE_HOST)
            snprintf(line, sizeof(line), "DNS: cannot resolve the endpoint's host: %s", why);
        else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
                 rc == CURLE_SSL_CONNECT_ERROR)
            snprintf(line, sizeof(line), "TLS: cannot connect securely: %s (is the endpoint's "
                     "certificate signed by a CA of webhook.ca_file, or the system's, for the "
                     "host the URL names?)", why);
        else
            snprintf(line, sizeof(line), "cannot connect: %s", why);
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        return 1;
    }
    out->line(out->ctx, SINK_CHECK_OK,
              strncasecmp(k->url, "https://", 8) == 0
                  ? "connected, certificate verified (no event sent: the endpoint's answer to "
                    "a signed event is seen at the first one)"
                  : "connected (no event sent: the endpoint's answer to a signed event is "
                    "seen at the first one)");
    return 0;
}

static void webhook_plan(const struct relay_config *cfg,
                         void (*item)(void *ctx, const char *label, const char *text), void *ctx)
{
    const struct webhook_settings *k = settings_of(cfg);
    char text[600];

    snprintf(text, sizeof(text), "webhook POST %s, signed (Standard Webhooks), timeout %lld ms%s",
             k->url, (long long)k->timeout_ms, k->ca_file[0] ? ", CA from webhook.ca_file" : "");
    item(ctx, "sink", text);
    snprintf(text, sizeof(text), "format %s",
             relay_choice_name(relay_format_choices, (int)k->common.format));
    item(ctx, "format", text);
}

const struct sink_type sink_type_webhook = {
    .name = "webhook",
    .config = &webhook_config,
    .create = webhook_create,
    .check = webhook_check,
    .plan = webhook_plan,
    .caps =
        {
            .keeps_key_order = true, /* one request at a time */
            .max_destination = 0,
            .destination_chars = NULL,
            .destination_word = "endpoint",
            .message_overhead = 128,
            .header_overhead = 24,
            .unreachable = "webhook endpoint failing",
        },
};

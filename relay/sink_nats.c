/*
 * sink_nats.c -- the NATS JetStream sink: each event a message on the subject the
 * nats.subject template names, acknowledged by JetStream's PubAck.
 *
 * Publishes go asynchronously on one connection (libnats 3.4, Debian 12's), each
 * with Nats-Msg-Id = the event id, so that JetStream drops a replayed event within
 * its duplicate window, and the event's headers as NATS headers -- the CloudEvents
 * attributes as ce-<name>, as CloudEvents' NATS binding has it for binary mode.  libnats calls the
 * acknowledgement handler on its own thread with the message it was given; the sink
 * finds the message's tag there (a table keyed by the message), queues the report and
 * wakes the relay's thread through the sink's pipe, as librdkafka wakes the Kafka
 * sink.  An event is delivered when its PubAck has come (a duplicate's too: JetStream
 * has it).
 *
 * Failures: "no responders" (no stream takes the subject) and timeouts are retried
 * (the pipeline rebuilds and replays from its checkpoint) with a plain error; a
 * payload over the server's max_payload is set aside as too large; a lost connection
 * is libnats's to restore (it reconnects forever), and the publishes it could not
 * confirm time out and are replayed.  A refused login or a certificate that does not
 * verify stops the relay (sink_refuse()), at the first connect or while libnats
 * reconnects: libnats retries a certificate that does not verify without end and in
 * silence, and closes the connection after a second refused login, so each turn of
 * the loop (nats_poll) looks at the connection's state and last error.  TLS: tls://
 * URLs or nats.ca_file / cert_file; libnats verifies the server's certificate and its
 * host name or IP address against the URL's.  Credentials: the URL's user and
 * password, nats.token, nats.creds_file (a user JWT and NKey seed) or
 * nats.nkey_seed_file (an NKey user's seed alone: the public key the server knows the
 * user by is derived from it here, with OpenSSL's Ed25519, as NATS's own tools do).
 */
#include "sink_impl.h"
#include "sink_nats.h"

#include <errno.h>
#include <nats/nats.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config_schema.h"
#include "log.h"

extern const struct sink_type sink_type_nats;

/* The "nats" section of the configuration. */
struct nats_settings {
    struct sink_common common; /* subject template, format, dead-letter subject */
    char *url;
    int64_t ack_timeout_ms;
    char *ca_file;    /* TLS: the CA of the server's certificate ("": the system's) */
    char *cert_file;  /* TLS: a client certificate, for servers that verify clients */
    char *key_file;
    char *creds_file; /* a .creds file: the user's JWT and NKey seed */
    char *nkey_seed_file; /* an NKey user's seed ("SU..."), without a JWT */
    char *token;      /* an authentication token */
};

#define NFIELD(f) offsetof(struct nats_settings, f)

static int check_url(struct parser_ctx *ctx, const char *name, const char *value,
                     struct relay_pos pos)
{
    if (strncasecmp(value, "nats://", 7) != 0 && strncasecmp(value, "tls://", 6) != 0)
        return relay_config_fail(ctx, pos, "%s must start with nats:// or tls://", name);
    return 0;
}

/* clang-format off */
static const struct relay_option nats_options[] = {
    {.section = "nats", .key = "url", .type = OPT_STRING, .offset = NFIELD(url),
     .required = true, .check = check_url, .secret = RELAY_SECRET_URL},
    {.section = "nats", .key = "subject", .type = OPT_STRING,
     .offset = NFIELD(common.destination), .def = "outbox.{aggregatetype}.{aggregateid}",
     .check = relay_config_check_template},
    {.section = "nats", .key = "dlq_subject", .type = OPT_STRING,
     .offset = NFIELD(common.dead_letter), .def = ""},
    {.section = "nats", .key = "ack_timeout", .type = OPT_DURATION,
     .offset = NFIELD(ack_timeout_ms), .def = "10s", .min = 100},
    {.section = "nats", .key = "format", .type = OPT_ENUM, .offset = NFIELD(common.format),
     .def = "cloudevents", .choices = relay_format_choices},
    {.section = "nats", .key = "ca_file", .type = OPT_STRING, .offset = NFIELD(ca_file),
     .def = ""},
    {.section = "nats", .key = "cert_file", .type = OPT_STRING, .offset = NFIELD(cert_file),
     .def = ""},
    {.section = "nats", .key = "key_file", .type = OPT_STRING, .offset = NFIELD(key_file),
     .def = ""},
    {.section = "nats", .key = "creds_file", .type = OPT_STRING, .offset = NFIELD(creds_file),
     .def = ""},
    {.section = "nats", .key = "nkey_seed_file", .type = OPT_STRING,
     .offset = NFIELD(nkey_seed_file), .def = ""},
    {.section = "nats", .key = "token", .type = OPT_STRING, .offset = NFIELD(token), .def = "",
     .secret = RELAY_SECRET_VALUE},
};
/* clang-format on */

static const struct relay_sink_config nats_config = {
    .name = "nats",
    .section = "nats",
    .options = nats_options,
    .noptions = sizeof(nats_options) / sizeof(nats_options[0]),
    .settings_size = sizeof(struct nats_settings),
    .common_offset = offsetof(struct nats_settings, common),
    .section_selects = false,
};

/* A message libnats holds: its pointer, and what to report for it. */
struct pending {
    natsMsg *msg;
    struct sink_held *held;
};

struct nats_sink {
    struct sink base; /* first */
    const struct nats_settings *k;
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    int64_t refusing_since; /* monotonic ms since libnats has met a refusal; 0: none */
    pthread_mutex_t mu;
    /* Under mu: */
    struct pending *pend; /* in publish order: pend[phead .. ptail), taken ones NULL */
    size_t phead, ptail, pcap;
    struct sink_notes notes; /* reports for the relay's thread, from libnats's */
};

static const struct nats_settings *settings_of(const struct relay_config *cfg)
{
    return relay_config_sink_settings(cfg, "nats");
}

static void note(struct nats_sink *s, struct sink_held *held, enum sink_outcome outcome,
                 bool too_large, const char *err)
{
    sink_note_report(&s->base, &s->notes, held, outcome, too_large,
                     outcome == SINK_DELIVERED ? "" : "nats", err);
}

/*
 * Take the pending entry of msg (mu held); NULL when it is not ours (any more).  Acks
 * come back about in publish order, so the scan from the oldest is short.
 */
static struct sink_held *take(struct nats_sink *s, const natsMsg *msg)
{
    for (size_t i = s->phead; i < s->ptail; i++) {
        if (s->pend[i].msg == msg) {
            struct sink_held *h = s->pend[i].held;

            s->pend[i] = (struct pending){NULL, NULL};
            while (s->phead < s->ptail && s->pend[s->phead].msg == NULL)
                s->phead++;
            return h;
        }
    }
    return NULL;
}

/* libnats's thread: one PubAck, or the error instead of it. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    struct nats_sink *s = closure;
    struct sink_held *h;

    (void)js;
    pthread_mutex_lock(&s->mu);
    if ((h = take(s, msg))) {
        if (pa) {
            note(s, h, SINK_DELIVERED, false, "");
        } else {
            char err[256];
            natsStatus st = pae ? pae->Err : NATS_ERR;

            if (st == NATS_NO_RESPONDERS || (pae && pae->ErrCode == JSStreamNotFoundErr))
                snprintf(err, sizeof(err),
                         "no JetStream stream takes subject \"%s\": create one (events wait "
                         "in PostgreSQL meanwhile)",
                         h->data);
            else
                snprintf(err, sizeof(err), "%s%s%s", natsStatus_GetText(st),
                         pae && pae->ErrText ? ": " : "", pae && pae->ErrText ? pae->ErrText : "");
            if (st == NATS_MAX_PAYLOAD)
                note(s, h, SINK_UNDELIVERABLE, true, err);
            else
                note(s, h, SINK_RETRY, false, err);
        }
    }
    pthread_mutex_unlock(&s->mu);
    natsMsg_Destroy(msg);
}

/* The URL for messages: one with credentials is not printed. */
static const char *redacted(const char *url)
{
    return strchr(url, '@') ? "(a URL with credentials)" : url;
}

/*
 * Whether text, libnats's description of a TLS error, says the server's certificate
 * did not verify (OpenSSL's verification messages: "unable to get local issuer
 * certificate", "self-signed certificate", "hostname mismatch", "IP address
 * mismatch"...), as opposed to a handshake cut short by a server going away, which a
 * reconnect may cure.
 */
static bool cert_failure(const char *text)
{
    return text && (strstr(text, "certificate") || strstr(text, "mismatch") ||
                    strstr(text, "verify"));
}

/*
 * Whether a connection that failed with st (and libnats's text for it; may be NULL)
 * is refused for good, and why, into why ("" when a retry may cure it): the server
 * refused the credentials, the server's certificate does not verify, or the two ends
 * disagree on TLS.
 */
static void refusal(natsStatus st, const char *text, char *why, size_t size)
{
    const char *t = text && *text ? text : natsStatus_GetText(st), *e;

    /* libnats starts its texts with where it found the error: "(conn.c:1905): ". */
    if (t[0] == '(' && (e = strstr(t, "): ")) != NULL && e - t < 40)
        t = e + 3;
    why[0] = '\0';
    if (st == NATS_CONNECTION_AUTH_FAILED || st == NATS_NOT_PERMITTED)
        snprintf(why, size, "refused the relay: %s (check nats.url's user and password, "
                 "nats.token, nats.creds_file or nats.nkey_seed_file)", t);
    else if (st == NATS_SSL_ERROR && cert_failure(text))
        snprintf(why, size, "TLS failed: the server's certificate does not verify: %s (is it "
                 "signed by nats.ca_file's CA, for the host nats.url names?)", t);
    else if (st == NATS_SECURE_CONNECTION_REQUIRED)
        snprintf(why, size, "requires TLS: use a tls:// URL or set nats.ca_file");
    else if (st == NATS_SECURE_CONNECTION_WANTED)
        snprintf(why, size, "does not offer TLS, which the relay was told to use (tls://, "
                 "nats.ca_file or nats.cert_file)");
}

/* Whether k asks for TLS: a tls:// URL, a CA or a client certificate. */
static bool tls_on(const struct nats_settings *k)
{
    return k->ca_file[0] || k->cert_file[0] || strncasecmp(k->url, "tls://", 6) == 0;
}

/*
 * A connect failure a retry may cure, in words, into buf: libnats's name for st, and
 * a hint where a setting is the likely cause -- a TLS server that closes the
 * connection at the handshake wants a client certificate (libnats sees only the
 * closed connection, which a server going away also gives: hence no refusal).
 */
static void failure(const struct nats_settings *k, natsStatus st, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", natsStatus_GetText(st),
             st == NATS_PROTOCOL_ERROR && tls_on(k) && !k->cert_file[0]
                 ? " (the server closed the connection during the TLS handshake: does it want "
                   "a client certificate, nats.cert_file and nats.key_file?)"
                 : "");
}

/* RFC 4648 base32 without padding, as NKeys are written. */
static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Decode n base32 characters of s into out (room for max bytes).  Returns the number
 * of bytes, or -1 for a character outside the alphabet or too little room. */
static int b32_decode(const char *s, size_t n, unsigned char *out, size_t max)
{
    unsigned int acc = 0, bits = 0;
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        const char *p = memchr(b32_alphabet, s[i], 32);

        if (!p)
            return -1;
        acc = (acc << 5) | (unsigned int)(p - b32_alphabet);
        bits += 5;
        if (bits >= 8) {
            if (len == max)
                return -1;
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (int)len;
}

/* Encode n bytes as base32 into out (room for n * 8 / 5 + 2), NUL-terminated. */
static void b32_encode(const unsigned char *in, size_t n, char *out)
{
    unsigned int acc = 0, bits = 0;
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[len++] = b32_alphabet[(acc >> bits) & 31];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0)
        out[len++] = b32_alphabet[(acc << (5 - bits)) & 31];
    out[len] = '\0';
}

/* The CRC-16 NKeys end with (XMODEM: polynomial 0x1021, initial value 0). */
static uint16_t nkey_crc16(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

#define NKEY_PREFIX_SEED (18 << 3) /* 'S' */
#define NKEY_PREFIX_USER (20 << 3) /* 'U' */
#define NKEY_SEED_CHARS 58         /* 2 prefix bytes, 32 key bytes, 2 CRC bytes */

/*
 * The public key ("U...", 56 characters, into pub: room for 64) of the user NKey seed
 * in file path: the first word of the file that starts with "SU" (a file of the seed
 * alone, as `nk` and `nsc` write it, or one with the seed among other lines).
 * Returns 0, or -1 with errstr set.  The seed's bytes are wiped before returning.
 */
static int nkey_public(const char *path, char *pub, char *errstr, size_t errstr_size)
{
    unsigned char raw[40], key[35], pk[32];
    char text[8192];
    const char *p, *seed = NULL;
    size_t n = 0, pklen = sizeof(pk);
    EVP_PKEY *pkey = NULL;
    FILE *f = fopen(path, "r");
    int rc = -1, len;

    if (!f) {
        snprintf(errstr, errstr_size, "nats.nkey_seed_file \"%s\": %s", path, strerror(errno));
        return -1;
    }
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    for (p = text; (p = strstr(p, "SU")) != NULL; p++) {
        if ((p == text || !strchr(b32_alphabet, p[-1])) &&
            strspn(p, b32_alphabet) == NKEY_SEED_CHARS) {
            seed = p;
            break;
        }
    }
    len = seed ? b32_decode(seed, NKEY_SEED_CHARS, raw, sizeof(raw)) : -1;
    if (len != 36 || (raw[0] & 0xf8) != NKEY_PREFIX_SEED ||
        (((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3)) != NKEY_PREFIX_USER ||
        nkey_crc16(raw, 34) != (uint16_t)(raw[34] | raw[35] << 8)) {
        snprintf(errstr, errstr_size, "nats.nkey_seed_file \"%s\": no user NKey seed (a word "
                 "of %d characters starting with SU) in it", path, NKEY_SEED_CHARS);
        goto out;
    }
    if (!(pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw + 2, 32)) ||
        EVP_PKEY_get_raw_public_key(pkey, pk, &pklen) != 1 || pklen != 32) {
        snprintf(errstr, errstr_size, "nats.nkey_seed_file \"%s\": OpenSSL cannot derive its "
                 "Ed25519 public key", path);
        goto out;
    }
    key[0] = NKEY_PREFIX_USER;
    memcpy(key + 1, pk, 32);
    {
        uint16_t crc = nkey_crc16(key, 33);

        key[33] = (unsigned char)(crc & 0xff);
        key[34] = (unsigned char)(crc >> 8);
    }
    b32_encode(key, sizeof(key), pub);
    rc = 0;
out:
    EVP_PKEY_free(pkey);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

/*
 * The connection options of k, or NULL with errstr set.  An unreadable CA,
 * certificate or credentials file is an error here: the file names it.
 */
static natsOptions *make_options(const struct nats_settings *k, int timeout_ms, char *errstr,
                                 size_t errstr_size)
{
    natsOptions *o = NULL;
    const char *what = "the connection options";
    natsStatus st = natsOptions_Create(&o);

    if (st == NATS_OK)
        st = natsOptions_SetURL(o, k->url);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectWait(o, 500);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(o, timeout_ms);
    if (st == NATS_OK && tls_on(k))
        st = natsOptions_SetSecure(o, true);
    if (st == NATS_OK && k->ca_file[0] &&
        (st = natsOptions_LoadCATrustedCertificates(o, k->ca_file)) != NATS_OK)
        what = "nats.ca_file";
    if (st == NATS_OK && k->cert_file[0] &&
        (st = natsOptions_LoadCertificatesChain(o, k->cert_file, k->key_file)) != NATS_OK)
        what = "nats.cert_file / nats.key_file";
    if (st == NATS_OK && k->creds_file[0] &&
        (st = natsOptions_SetUserCredentialsFromFiles(o, k->creds_file, NULL)) != NATS_OK)
        what = "nats.creds_file";
    if (st == NATS_OK && k->nkey_seed_file[0]) {
        char pub[64];

        if (nkey_public(k->nkey_seed_file, pub, errstr, errstr_size) < 0) {
            natsOptions_Destroy(o);
            return NULL;
        }
        if ((st = natsOptions_SetNKeyFromSeed(o, pub, k->nkey_seed_file)) != NATS_OK)
            what = "nats.nkey_seed_file";
    }
    if (st == NATS_OK && k->token[0])
        st = natsOptions_SetToken(o, k->token);
    if (st != NATS_OK) {
        natsStatus last;
        const char *text = nats_GetLastError(&last);

        snprintf(errstr, errstr_size, "nats: cannot set up %s: %s", what,
                 text && *text ? text : natsStatus_GetText(st));
        natsOptions_Destroy(o);
        return NULL;
    }
    return o;
}

static int connect_nats(struct nats_sink *s, char *errstr, size_t errstr_size)
{
    jsOptions jo;
    natsStatus st;

    jsOptions_Init(&jo);
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = s;
    jo.PublishAsync.MaxPending = 1 << 30; /* the pipeline's in-flight limits bound it */
    st = natsConnection_Connect(&s->nc, s->opts);
    if (st == NATS_OK)
        st = natsConnection_JetStream(&s->js, s->nc, &jo);
    if (st != NATS_OK) {
        natsStatus last;
        const char *text = nats_GetLastError(&last);
        char why[600];

        refusal(st, text, why, sizeof(why));
        if (why[0]) {
            /* No retry cures a refused login or a certificate that does not verify. */
            sink_refuse(&s->base, "nats at %s %s", redacted(s->k->url), why);
            snprintf(errstr, errstr_size, "nats at %s %s", redacted(s->k->url), why);
        } else {
            failure(s->k, st, why, sizeof(why));
            snprintf(errstr, errstr_size, "nats at %s: %s", redacted(s->k->url), why);
        }
        if (s->nc)
            natsConnection_Destroy(s->nc);
        s->nc = NULL;
        return -EAGAIN;
    }
    return 0;
}

static void disconnect_nats(struct nats_sink *s)
{
    if (s->nc)
        natsConnection_Close(s->nc); /* acks still due come back as errors, then stop */
    if (s->js)
        jsCtx_Destroy(s->js);
    s->js = NULL;
    if (s->nc)
        natsConnection_Destroy(s->nc);
    s->nc = NULL;
    s->refusing_since = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = s->phead; i < s->ptail; i++)
        free(s->pend[i].held);
    s->phead = s->ptail = 0;
    pthread_mutex_unlock(&s->mu);
    sink_notes_clear(&s->notes);
}

/* Whether NATS can carry the header: a name without controls, spaces or ':', a value
 * without NUL, CR or LF. */
static bool header_ok(const struct msg_header *hd)
{
    if (!hd->name[0])
        return false;
    for (const char *p = hd->name; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == ':' || *p == 0x7f)
            return false;
    }
    return !hd->value || (!memchr(hd->value, '\0', hd->len) && !memchr(hd->value, '\r', hd->len) &&
                          !memchr(hd->value, '\n', hd->len));
}

static int nats_produce(sink *base, const struct out_msg *msg, uint64_t tag, char *errstr,
                        size_t errstr_size)
{
    struct nats_sink *s = (struct nats_sink *)base;
    natsMsg *m = NULL;
    jsPubOptions po;
    struct sink_held *h;
    char id[256], value[1024], name[128];
    natsStatus st;

    if (!s->js && connect_nats(s, errstr, errstr_size) < 0)
        return -EIO;
    st = natsMsg_Create(&m, msg->topic, NULL, msg->value, msg->value ? (int)msg->value_len : 0);
    snprintf(id, sizeof(id), "%.*s", (int)(msg->id_len < 255 ? msg->id_len : 255), msg->id);
    if (st == NATS_OK)
        st = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    for (int i = 0; st == NATS_OK && i < msg->nheaders; i++) {
        const struct msg_header *hd = &msg->headers[i];

        if (!header_ok(hd) || hd->len >= sizeof(value) || strlen(hd->name) >= sizeof(name)) {
            natsMsg_Destroy(m);
            snprintf(errstr, errstr_size, "header \"%.64s\" cannot be sent in NATS", hd->name);
            return -EACCES;
        }
        snprintf(value, sizeof(value), "%.*s", (int)hd->len, hd->value ? hd->value : "");
        /* CloudEvents' NATS binding, binary mode: attributes as ce-<name> headers. */
        snprintf(name, sizeof(name), "%s", hd->name);
        if (strncmp(name, "ce_", 3) == 0)
            name[2] = '-';
        st = natsMsgHeader_Add(m, name, value);
    }
    if (st != NATS_OK || !(h = sink_hold(msg, tag))) {
        natsMsg_Destroy(m);
        snprintf(errstr, errstr_size, "nats: %s", st != NATS_OK ? natsStatus_GetText(st)
                                                                  : "out of memory");
        return -EIO;
    }
    pthread_mutex_lock(&s->mu);
    if (s->ptail == s->pcap && s->phead > 0) {
        memmove(s->pend, s->pend + s->phead, (s->ptail - s->phead) * sizeof(*s->pend));
        s->ptail -= s->phead;
        s->phead = 0;
    }
    if (s->ptail == s->pcap) {
        size_t ncap = s->pcap ? s->pcap * 2 : 1024;
        struct pending *n = realloc(s->pend, ncap * sizeof(*n));

        if (!n) {
            pthread_mutex_unlock(&s->mu);
            free(h);
            natsMsg_Destroy(m);
            snprintf(errstr, errstr_size, "out of memory");
            return -EIO;
        }
        s->pend = n;
        s->pcap = ncap;
    }
    /* Registered before the publish: its acknowledgement may come at once. */
    s->pend[s->ptail++] = (struct pending){.msg = m, .held = h};
    pthread_mutex_unlock(&s->mu);
    jsPubOptions_Init(&po);
    po.MaxWait = s->k->ack_timeout_ms;
    {
        natsMsg *sent = m;

        st = js_PublishMsgAsync(s->js, &sent, &po);
    }
    if (st != NATS_OK) {
        pthread_mutex_lock(&s->mu);
        h = take(s, m);
        pthread_mutex_unlock(&s->mu);
        free(h);
        natsMsg_Destroy(m);
        snprintf(errstr, errstr_size, "nats: %s", natsStatus_GetText(st));
        return st == NATS_MAX_PAYLOAD ? -EMSGSIZE : -EIO;
    }
    return 0;
}

/* How long libnats may go on meeting a refusal while reconnecting before it counts. */
#define REFUSAL_GRACE_MS 3000

/* The monotonic clock in milliseconds (never 0 in practice: the boot is long past). */
static int64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * On the relay's thread, every turn of the loop: whether the broker is reachable (for
 * /readyz), and whether libnats, reconnecting, meets a refusal no retry cures -- a
 * certificate that does not verify (libnats retries it without end, saying nothing)
 * or refused credentials (libnats closes the connection at the second refusal in a
 * row).  A closed connection's refusal counts at once; one met while reconnecting
 * counts once it has lasted REFUSAL_GRACE_MS without a connection in between, so that
 * one server of a cluster refusing while libnats tries the others, or a server that
 * is still loading its accounts, does not stop the relay.  libnats's callbacks are not
 * used for this: they run on its threads and may run after natsConnection_Destroy()
 * returns, while this sink may be gone.
 */
static void watch_connection(struct nats_sink *s)
{
    natsConnStatus cs;
    const char *text = NULL;
    char why[600], copy[400];
    natsStatus last;

    if (!s->nc)
        return;
    cs = natsConnection_Status(s->nc);
    s->base.unreachable = cs != NATS_CONN_STATUS_CONNECTED;
    if (cs != NATS_CONN_STATUS_RECONNECTING && cs != NATS_CONN_STATUS_CLOSED) {
        s->refusing_since = 0;
        return;
    }
    last = natsConnection_GetLastError(s->nc, &text);
    /* The text lives in the connection, which libnats's thread may be rewriting: copy
     * no more than the buffer holds, whatever happens to its terminator. */
    snprintf(copy, sizeof(copy), "%.*s", (int)sizeof(copy) - 1, text ? text : "");
    refusal(last, copy, why, sizeof(why));
    if (!why[0]) {
        s->refusing_since = 0;
        return;
    }
    if (s->refusing_since == 0)
        s->refusing_since = monotonic_ms();
    if (cs == NATS_CONN_STATUS_CLOSED || monotonic_ms() - s->refusing_since >= REFUSAL_GRACE_MS)
        sink_refuse(&s->base, "nats at %s %s", redacted(s->k->url), why);
}

static int nats_poll(sink *base)
{
    struct nats_sink *s = (struct nats_sink *)base;

    watch_connection(s);
    return sink_notes_serve(&s->base, &s->notes, NULL);
}

/*
 * libnats reconnects by itself (unconfirmed publishes time out and are replayed); a
 * connection it closed (refused twice) is past that: the pipeline rebuilds, and the
 * next event connects anew -- unless watch_connection() recorded a refusal first.
 */
static bool nats_fatal(const sink *base)
{
    const struct nats_sink *s = (const struct nats_sink *)base;

    return s->nc && natsConnection_Status(s->nc) == NATS_CONN_STATUS_CLOSED;
}

static void nats_flush(sink *base, int timeout_ms)
{
    sink_wait_reports(base, timeout_ms);
}

static int nats_reset(sink *base, char *errstr, size_t errstr_size)
{
    struct nats_sink *s = (struct nats_sink *)base;

    (void)errstr;
    (void)errstr_size;
    disconnect_nats(s);
    return 0; /* the next event connects again, after the pipeline's backoff */
}

static void nats_destroy(sink *base)
{
    struct nats_sink *s = (struct nats_sink *)base;

    disconnect_nats(s);
    natsOptions_Destroy(s->opts);
    free(s->pend);
    sink_notes_destroy(&s->notes);
    pthread_mutex_destroy(&s->mu);
}

static const struct sink_ops nats_ops = {
    .produce = nats_produce,
    .poll = nats_poll,
    .fatal = nats_fatal,
    .flush = nats_flush,
    .reset = nats_reset,
    .destroy = nats_destroy,
};

static sink *nats_create(const struct relay_config *cfg, sink_report_fn *report, void *opaque,
                         char *errstr, size_t errstr_size)
{
    struct nats_sink *s = calloc(1, sizeof(*s));

    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->k = settings_of(cfg);
    if (!(s->opts = make_options(s->k, 2000, errstr, errstr_size))) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    sink_notes_init(&s->notes);
    if (sink_base_init(&s->base, &sink_type_nats, &nats_ops, report, opaque, errstr,
                       errstr_size) < 0) {
        natsOptions_Destroy(s->opts);
        sink_notes_destroy(&s->notes);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    /* Unreachable now is not an error: the first event connects (nats_produce).  A
     * refusal is recorded (sink_refused()) and stops the relay. */
    if (connect_nats(s, errstr, errstr_size) < 0) {
        if (!sink_refused(&s->base))
            log_warn("%s", errstr);
        s->base.unreachable = true;
    }
    return &s->base;
}

/*
 * outbox-relay check: connect (TLS and credentials as the relay would), ask JetStream
 * for the account's limits (is JetStream on?), and which stream takes the subject of
 * a sample event -- the template with every placeholder replaced by "check".
 */
static int nats_check(const struct relay_config *cfg, int timeout_ms,
                      const struct sink_check_out *out)
{
    const struct nats_settings *k = settings_of(cfg);
    natsConnection *nc = NULL;
    natsMsg *reply = NULL;
    natsOptions *o;
    char heading[400], line[700], why[600], subject[300], req[400];
    natsStatus st;
    size_t n = 0;
    int failures = 0;

    snprintf(heading, sizeof(heading), "nats (%s):", redacted(k->url));
    out->heading(out->ctx, heading);
    if (!(o = make_options(k, timeout_ms, line, sizeof(line)))) {
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        return 1;
    }
    natsOptions_SetMaxReconnect(o, 0);
    st = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (st != NATS_OK) {
        natsStatus last;
        const char *text = nats_GetLastError(&last);

        refusal(st, text, why, sizeof(why));
        if (!why[0])
            failure(k, st, why, sizeof(why));
        snprintf(line, sizeof(line), "cannot connect: %s", why);
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        natsConnection_Destroy(nc);
        return 1;
    }
    st = natsConnection_RequestString(&reply, nc, "$JS.API.INFO", "", timeout_ms);
    if (st != NATS_OK || strstr(natsMsg_GetData(reply), "\"error\"")) {
        snprintf(line, sizeof(line), "connected, but JetStream does not answer (%s): is the "
                 "server started with JetStream?", st != NATS_OK ? natsStatus_GetText(st)
                                                                : natsMsg_GetData(reply));
        out->line(out->ctx, SINK_CHECK_FAIL, line);
        failures++;
    } else {
        out->line(out->ctx, SINK_CHECK_OK, "connected, JetStream enabled");
    }
    natsMsg_Destroy(reply);
    reply = NULL;
    /* A sample subject: each {placeholder} becomes "check". */
    for (const char *p = k->common.destination; *p && n + 6 < sizeof(subject); p++) {
        const char *e;

        if (*p == '{' && (e = strchr(p, '}'))) {
            memcpy(subject + n, "check", 5);
            n += 5;
            p = e;
        } else {
            subject[n++] = *p;
        }
    }
    subject[n] = '\0';
    snprintf(req, sizeof(req), "{\"subject\":\"%s\"}", subject);
    if (!failures) {
        st = natsConnection_RequestString(&reply, nc, "$JS.API.STREAM.NAMES", req, timeout_ms);
        if (st == NATS_OK && strstr(natsMsg_GetData(reply), "\"streams\":[\"")) {
            snprintf(line, sizeof(line), "a stream takes subject \"%s\" (%.200s)", subject,
                     strstr(natsMsg_GetData(reply), "\"streams\":"));
            out->line(out->ctx, SINK_CHECK_OK, line);
        } else {
            snprintf(line, sizeof(line), "no JetStream stream takes subject \"%s\" (from \"%s\"): "
                     "events would wait until one exists", subject, k->common.destination);
            out->line(out->ctx, SINK_CHECK_FAIL, line);
            failures++;
        }
        natsMsg_Destroy(reply);
    }
    natsConnection_Destroy(nc);
    return failures;
}

/*
 * The settings as create() would take them, without connecting: the files they name
 * are read (CA, certificate and key, credentials, NKey seed), and credentials that
 * exclude each other are refused.  Returns 0, or -EINVAL with errstr set.
 */
static int nats_check_config(const struct relay_config *cfg, char *errstr, size_t errstr_size)
{
    const struct nats_settings *k = settings_of(cfg);
    natsOptions *o;

    if (k->creds_file[0] && k->nkey_seed_file[0]) {
        snprintf(errstr, errstr_size, "nats.creds_file and nats.nkey_seed_file exclude each "
                 "other: a .creds file holds its own NKey seed");
        return -EINVAL;
    }
    if (!k->cert_file[0] != !k->key_file[0]) {
        snprintf(errstr, errstr_size, "nats.cert_file and nats.key_file go together");
        return -EINVAL;
    }
    if (!(o = make_options(k, 2000, errstr, errstr_size)))
        return -EINVAL;
    natsOptions_Destroy(o);
    return 0;
}

static void nats_plan(const struct relay_config *cfg,
                      void (*item)(void *ctx, const char *label, const char *text), void *ctx)
{
    const struct nats_settings *k = settings_of(cfg);
    char text[600];

    snprintf(text, sizeof(text), "NATS JetStream at %s%s%s%s, format %s, PubAck within %lld ms",
             redacted(k->url), tls_on(k) ? ", TLS" : "",
             k->creds_file[0] ? ", credentials file"
                              : k->nkey_seed_file[0] ? ", NKey seed file" : "",
             k->token[0] ? ", token ****" : "",
             relay_choice_name(relay_format_choices, (int)k->common.format),
             (long long)k->ack_timeout_ms);
    item(ctx, "sink", text);
    snprintf(text, sizeof(text), "subject \"%s\"", k->common.destination);
    item(ctx, "destination", text);
}

static const char *nats_dead_letter(const struct relay_config *cfg)
{
    return settings_of(cfg)->common.dead_letter;
}

const struct sink_type sink_type_nats = {
    .name = "nats",
    .config = &nats_config,
    .create = nats_create,
    .check_config = nats_check_config,
    .check = nats_check,
    .plan = nats_plan,
    .dead_letter_destination = nats_dead_letter,
    .caps =
        {
            .keeps_key_order = true, /* one connection, published in order */
            .max_destination = FORMAT_TOPIC_MAX,
            .destination_chars = "._-:+=@~/", /* subject tokens: no spaces, * or > */
            .destination_word = "subject",
            .message_overhead = 160,
            .header_overhead = 32,
            .unreachable = "nats unreachable",
        },
};

/*
 * For the inbox's NATS source (inbox_nats.c), which reads the broker this section
 * configures.
 */

natsOptions *sink_nats_options(const struct relay_config *cfg, int timeout_ms, char *errstr,
                               size_t errstr_size)
{
    const struct nats_settings *k = settings_of(cfg);

    if (!k || !k->url || !k->url[0]) {
        snprintf(errstr, errstr_size, "nats.url is not set (the inbox reads the broker of the "
                                      "nats section)");
        return NULL;
    }
    return make_options(k, timeout_ms, errstr, errstr_size);
}

bool sink_nats_refusal(const struct relay_config *cfg, natsStatus st, char *why, size_t size)
{
    natsStatus last;
    const char *text = nats_GetLastError(&last);
    char reason[600];

    refusal(st, text, reason, sizeof(reason));
    if (reason[0]) {
        snprintf(why, size, "nats at %s %s", redacted(settings_of(cfg)->url), reason);
        return true;
    }
    failure(settings_of(cfg), st, reason, sizeof(reason));
    snprintf(why, size, "nats at %s: %s", redacted(settings_of(cfg)->url), reason);
    return false;
}

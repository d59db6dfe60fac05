/*
 * redact.c -- mask secrets in connection strings and properties, and scrub them
 * from free text.
 *
 * The connection-string walker follows libpq's own parsers (conninfo_parse() and
 * conninfo_uri_parse_options() in fe-connect.c) closely enough to find every value
 * libpq would take as a password, and errs on the side of masking where they
 * differ: in a URI the user part runs to the last '@' before the query, not the
 * first, so an unencoded '@' or '/' in a password is still inside the masked part.
 * The walker reports spans of the input to mask; redact_dsn() copies around them
 * and redact_set_add_dsn() collects their text.
 */
#include "redact.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Secret keys
 */

/* Case-insensitive strstr. */
static bool contains_nocase(const char *s, const char *needle)
{
    size_t n = strlen(needle);

    for (; *s != '\0'; s++) {
        if (strncasecmp(s, needle, n) == 0)
            return true;
    }
    return false;
}

bool redact_is_secret_key(const char *key)
{
    static const char *const parts[] = {"password", "passwd", "secret", "passphrase",
                                        "private.key"};
    static const char *const exact[] = {"ssl.key.pem", "sasl.oauthbearer.config"};

    if (key == NULL)
        return false;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (contains_nocase(key, parts[i]))
            return true;
    }
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        if (strcasecmp(key, exact[i]) == 0)
            return true;
    }
    return false;
}

const char *redact_property(const char *key, const char *value)
{
    return redact_is_secret_key(key) ? REDACT_MASK : value;
}

/*
 * The connection-string walker
 */

/*
 * Called for each span [start, end) of the DSN to mask, with the value as libpq
 * reads it (decoded[0..dlen)).  Returns 0 or a negative errno, which stops the walk.
 */
typedef int (*span_fn)(void *opaque, size_t start, size_t end, const char *decoded, size_t dlen);

static bool is_uri(const char *dsn)
{
    return strncmp(dsn, "postgresql://", 13) == 0 || strncmp(dsn, "postgres://", 11) == 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string (*out, length *outlen); NULL on ENOMEM. */
static char *percent_decode(const char *s, size_t n, size_t *outlen)
{
    char *out = malloc(n + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;

        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* Report [start, end) with its percent-decoded text. */
static int span_decoded(span_fn fn, void *opaque, const char *dsn, size_t start, size_t end)
{
    size_t dlen;
    char *d = percent_decode(dsn + start, end - start, &dlen);
    int rc;

    if (d == NULL)
        return -ENOMEM;
    rc = fn(opaque, start, end, d, dlen);
    free(d);
    return rc;
}

/*
 * postgresql://[user[:password]@][host][:port][,...][/dbname][?param=value&...]
 */
static int walk_uri(const char *dsn, span_fn fn, void *opaque)
{
    size_t len = strlen(dsn);
    size_t p = strncmp(dsn, "postgresql://", 13) == 0 ? 13 : 11;
    size_t query = p + strcspn(dsn + p, "?");
    size_t at = SIZE_MAX;
    int rc;

    /* The user part ends at the last '@' before the query (libpq: the first). */
    for (size_t i = p; i < query; i++) {
        if (dsn[i] == '@')
            at = i;
    }
    if (at != SIZE_MAX) {
        const char *colon = memchr(dsn + p, ':', at - p);

        if (colon != NULL &&
            (rc = span_decoded(fn, opaque, dsn, (size_t)(colon - dsn) + 1, at)) < 0)
            return rc;
    }
    if (query >= len)
        return 0;

    /* Query parameters: name=value pairs separated by '&', both percent-encoded. */
    for (size_t i = query + 1; i < len;) {
        size_t end = i + strcspn(dsn + i, "&");
        const char *eq = memchr(dsn + i, '=', end - i);

        if (eq != NULL) {
            size_t klen;
            char *key = percent_decode(dsn + i, (size_t)(eq - dsn) - i, &klen);
            bool secret;

            if (key == NULL)
                return -ENOMEM;
            secret = redact_is_secret_key(key);
            free(key);
            if (secret && (rc = span_decoded(fn, opaque, dsn, (size_t)(eq - dsn) + 1, end)) < 0)
                return rc;
        }
        i = end + 1;
    }
    return 0;
}

/*
 * key = value pairs separated by whitespace; a value is either single-quoted
 * ('...', with \' and \\ escapes) or runs to the next whitespace (with \ escapes).
 */
static int walk_keyvalue(const char *dsn, span_fn fn, void *opaque)
{
    size_t len = strlen(dsn), p = 0;
    char *decoded = malloc(len + 1);
    int rc = 0;

    if (decoded == NULL)
        return -ENOMEM;
    while (p < len) {
        size_t kstart, kend, vstart, d = 0;
        bool secret, ok = true;
        char key[64];

        while (p < len && isspace((unsigned char)dsn[p]))
            p++;
        if (p >= len)
            break;
        kstart = p;
        while (p < len && dsn[p] != '=' && !isspace((unsigned char)dsn[p]))
            p++;
        kend = p;
        while (p < len && isspace((unsigned char)dsn[p]))
            p++;
        if (p >= len || dsn[p] != '=') {
            /* Not key=value: libpq refuses it.  The word may itself be the secret. */
            rc = fn(opaque, kstart, len, dsn + kstart, len - kstart);
            break;
        }
        p++;
        while (p < len && isspace((unsigned char)dsn[p]))
            p++;
        vstart = p;
        if (p < len && dsn[p] == '\'') {
            for (p++;; p++) {
                if (p >= len) {
                    ok = false; /* unterminated quote */
                    break;
                }
                if (dsn[p] == '\\' && p + 1 < len) {
                    decoded[d++] = dsn[++p];
                    continue;
                }
                if (dsn[p] == '\'') {
                    p++;
                    break;
                }
                decoded[d++] = dsn[p];
            }
        } else {
            for (; p < len && !isspace((unsigned char)dsn[p]); p++) {
                if (dsn[p] == '\\' && p + 1 < len)
                    p++;
                decoded[d++] = dsn[p];
            }
        }
        if (!ok) {
            rc = fn(opaque, vstart, len, dsn + vstart, len - vstart);
            break;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(kend - kstart), dsn + kstart);
        secret = redact_is_secret_key(key) || kend - kstart >= sizeof(key);
        if (secret && (rc = fn(opaque, vstart, p, decoded, d)) < 0)
            break;
    }
    free(decoded);
    return rc;
}

static int walk_dsn(const char *dsn, span_fn fn, void *opaque)
{
    return is_uri(dsn) ? walk_uri(dsn, fn, opaque) : walk_keyvalue(dsn, fn, opaque);
}

/*
 * redact_dsn()
 */

struct mask_ctx {
    const char *dsn;
    char *out;
    size_t size;
    size_t o;      /* bytes the result needs so far */
    size_t copied; /* input consumed so far */
};

static void emit(struct mask_ctx *m, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, m->o++) {
        if (m->size > 0 && m->o < m->size - 1)
            m->out[m->o] = s[i];
    }
}

static int mask_span(void *opaque, size_t start, size_t end, const char *decoded, size_t dlen)
{
    struct mask_ctx *m = opaque;

    (void)decoded;
    (void)dlen;
    if (start < m->copied) /* overlapping spans cannot happen; be safe anyway */
        start = m->copied;
    emit(m, m->dsn + m->copied, start - m->copied);
    emit(m, REDACT_MASK, strlen(REDACT_MASK));
    if (end > m->copied)
        m->copied = end;
    return 0;
}

size_t redact_dsn(const char *dsn, char *out, size_t size)
{
    struct mask_ctx m = {dsn != NULL ? dsn : "", out, size, 0, 0};
    size_t len = strlen(m.dsn);

    if (walk_dsn(m.dsn, mask_span, &m) < 0) {
        /* Out of memory: show nothing of the text rather than risk a secret. */
        m.o = 0;
        m.copied = len;
        emit(&m, REDACT_MASK, strlen(REDACT_MASK));
    }
    emit(&m, m.dsn + m.copied, len - m.copied);
    if (size > 0)
        out[m.o < size - 1 ? m.o : size - 1] = '\0';
    return m.o;
}

/*
 * The secret set
 */

struct redact_set {
    char **secrets; /* sorted longest first once scrubbing starts */
    size_t *lens;
    size_t n;
};

redact_set *redact_set_new(void)
{
    return calloc(1, sizeof(redact_set));
}

void redact_set_free(redact_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        free(set->secrets[i]);
    free(set->secrets);
    free(set->lens);
    free(set);
}

size_t redact_set_count(const redact_set *set)
{
    return set != NULL ? set->n : 0;
}

int redact_set_add(redact_set *set, const char *secret, size_t len)
{
    char **s;
    size_t *l, at;
    char *copy;

    if (len < REDACT_MIN_SCRUB)
        return 0;
    for (size_t i = 0; i < set->n; i++) {
        if (set->lens[i] == len && memcmp(set->secrets[i], secret, len) == 0)
            return 0;
    }
    copy = malloc(len + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, secret, len);
    copy[len] = '\0';
    s = realloc(set->secrets, (set->n + 1) * sizeof(*s));
    if (s == NULL) {
        free(copy);
        return -ENOMEM;
    }
    set->secrets = s;
    l = realloc(set->lens, (set->n + 1) * sizeof(*l));
    if (l == NULL) {
        free(copy);
        return -ENOMEM;
    }
    set->lens = l;
    /* Keep the longest first, so that a secret containing another is masked whole. */
    for (at = 0; at < set->n && set->lens[at] >= len; at++)
        ;
    memmove(set->secrets + at + 1, set->secrets + at, (set->n - at) * sizeof(*s));
    memmove(set->lens + at + 1, set->lens + at, (set->n - at) * sizeof(*l));
    set->secrets[at] = copy;
    set->lens[at] = len;
    set->n++;
    return 0;
}

static int add_span(void *opaque, size_t start, size_t end, const char *decoded, size_t dlen)
{
    struct {
        redact_set *set;
        const char *dsn;
    } *a = opaque;
    int rc = redact_set_add(a->set, a->dsn + start, end - start);

    /* Quoted values: the text without the quotes too, as a message may quote it. */
    if (rc == 0)
        rc = redact_set_add(a->set, decoded, dlen);
    return rc;
}

int redact_set_add_dsn(redact_set *set, const char *dsn)
{
    struct {
        redact_set *set;
        const char *dsn;
    } a = {set, dsn};

    if (dsn == NULL)
        return 0;
    return walk_dsn(dsn, add_span, &a);
}

int redact_set_add_config(redact_set *set, const struct relay_config *cfg)
{
    int rc = redact_set_add_dsn(set, cfg->postgres.dsn);

    const struct relay_kv *kvs;
    size_t n;

    const char *secret;

    if (rc == 0)
        rc = redact_set_add_dsn(set, cfg->inbox.dsn);
    for (size_t k = 0; rc == 0 && (kvs = relay_config_properties(cfg, k, &n)) != NULL; k++) {
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (redact_is_secret_key(kvs[i].key))
                rc = redact_set_add(set, kvs[i].value, strlen(kvs[i].value));
        }
    }
    /* The sinks' keys marked secret: tokens, secret keys, URLs' passwords. */
    for (size_t k = 0; rc == 0 && (secret = relay_config_secret(cfg, k, &n)) != NULL; k++)
        rc = redact_set_add(set, secret, n);
    return rc;
}

size_t redact_set_scrub(const redact_set *set, const char *in, size_t len, char *out, size_t size)
{
    struct mask_ctx m = {in, out, size, 0, 0};
    size_t i = 0;

    while (i < len) {
        size_t hit = 0;

        for (size_t k = 0; set != NULL && k < set->n && hit == 0; k++) {
            size_t sl = set->lens[k];

            if (sl <= len - i) {
                if (memcmp(in + i, set->secrets[k], sl) == 0)
                    hit = sl;
            } else if (len - i >= REDACT_MIN_SCRUB &&
                       memcmp(in + i, set->secrets[k], len - i) == 0) {
                hit = len - i; /* the text ends inside the secret */
            }
        }
        if (hit > 0) {
            emit(&m, REDACT_MASK, strlen(REDACT_MASK));
            i += hit;
        } else {
            emit(&m, in + i, 1);
            i++;
        }
    }
    if (size > 0)
        out[m.o < size - 1 ? m.o : size - 1] = '\0';
    return m.o;
}

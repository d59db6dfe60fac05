/*
 * outbox-consume: print every message of some Kafka topics as one JSON line each.
 *
 * Tests and the demo use this to see exactly what the relay produced: topic, partition,
 * offset, timestamp, key, headers (in wire order) and value. It reads every partition of each
 * topic by manual assignment -- no consumer group membership, no offset commits -- so it can
 * run any number of times against the same topic and always sees the same log. group.id is
 * set only because librdkafka will not assign partitions without one.
 *
 * A topic that does not exist yet is waited for (metadata is retried), so the consumer can be
 * started before the producer. Each JSON line is written with a single write(2) as soon as
 * the message arrives, so a test reading the output file concurrently sees whole lines.
 *
 * JSON strings: '"' '\\' and the usual \b \f \n \r \t are escaped, other control characters
 * become \u00XX, valid UTF-8 passes through unchanged, and every byte that is not part of a
 * valid UTF-8 sequence becomes \u00XX (its Latin-1 reading: readable, but not reversible).
 *
 * Exit codes: 0 stopped by --count, --idle-exit or a signal; 1 bad usage; 2 runtime failure
 * (consumer creation, output file); 3 --timeout elapsed first.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define EXIT_USAGE 1
#define EXIT_RUNTIME 2
#define EXIT_TIMEOUT 3

/* How long one consumer poll may block: bounds the latency of signals and deadlines. */
#define POLL_INTERVAL_MS 100
/* Pause between metadata look-ups for topics that do not exist yet. */
#define METADATA_RETRY_MS 250

static volatile sig_atomic_t stop_requested;

struct options {
    const char *brokers;
    const char **topics;
    int topic_cnt;
    const char *outfile;
    long count;      /* -1: unlimited */
    long idle_ms;    /* -1: never */
    long timeout_ms; /* -1: never */
    int64_t start_offset;
    bool verbose;
};

/* A growable byte buffer one JSON line is built in. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
};

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: outbox-consume -b BROKERS -t TOPIC [-t TOPIC]... [-o OUTFILE] [--count N]\n"
            "                      [--idle-exit MS] [--timeout MS] [--from beginning|end]\n"
            "                      [--verbose]\n"
            "\n"
            "Reads every partition of each TOPIC (no consumer group) and writes one JSON line\n"
            "per message to OUTFILE or stdout. Exit: 0 count/idle/signal, 1 usage, 2 failure,\n"
            "3 --timeout elapsed first.\n");
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static void buf_reserve(struct buf *b, size_t extra)
{
    size_t cap;
    char *p;

    if (b->oom || b->len + extra <= b->cap)
        return;
    cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra)
        cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = true;
        return;
    }
    b->data = p;
    b->cap = cap;
}

static void buf_append(struct buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    int n;

    /* Only used for numbers: 64 bytes always suffice. */
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/*
 * Length of the valid UTF-8 sequence starting at s (at most n bytes available), or 0 if the
 * bytes there are not one (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF).
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len, i;

    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else
        return 0;

    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    return len;
}

/* Append p[0..n) as a JSON string literal, quotes included. */
static void buf_json_string(struct buf *b, const void *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    size_t i = 0, run = 0;

    buf_reserve(b, n + 2);
    buf_append(b, "\"", 1);
    while (i < n) {
        unsigned char c = s[i];
        const char *esc = NULL;
        char u[6];
        size_t seq;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            run++;
            continue;
        }
        if (c >= 0x80 && (seq = utf8_seq_len(s + i, n - i)) > 0) {
            i += seq;
            run += seq;
            continue;
        }
        /* Flush the run of bytes that need no escaping, then escape this one byte. */
        buf_append(b, s + i - run, run);
        run = 0;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            /* Control character, or a byte outside valid UTF-8. */
            u[0] = '\\';
            u[1] = 'u';
            u[2] = '0';
            u[3] = '0';
            u[4] = hex[c >> 4];
            u[5] = hex[c & 0xF];
            buf_append(b, u, sizeof(u));
            break;
        }
        if (esc != NULL)
            buf_puts(b, esc);
        i++;
    }
    buf_append(b, s + i - run, run);
    buf_append(b, "\"", 1);
}

static void buf_json_bytes_or_null(struct buf *b, const void *p, size_t n)
{
    if (p == NULL)
        buf_puts(b, "null");
    else
        buf_json_string(b, p, n);
}

/* Render one message as a JSON line (newline included) into b, which is reset first. */
static void message_to_json(struct buf *b, const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t tstype;
    rd_kafka_headers_t *hdrs = NULL;
    const char *topic = rd_kafka_topic_name(m->rkt);
    int64_t ts;

    b->len = 0;
    buf_puts(b, "{\"topic\":");
    buf_json_string(b, topic, strlen(topic));
    buf_printf(b, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64, m->partition, m->offset);
    ts = rd_kafka_message_timestamp(m, &tstype);
    if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
        buf_puts(b, ",\"timestamp\":null");
    else
        buf_printf(b, ",\"timestamp\":%" PRId64, ts);
    buf_puts(b, ",\"key\":");
    buf_json_bytes_or_null(b, m->key, m->key_len);
    buf_puts(b, ",\"headers\":[");
    /* rd_kafka_message_headers() parses the headers lazily; the message keeps ownership. */
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t size, idx;

        for (idx = 0;
             rd_kafka_header_get_all(hdrs, idx, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             idx++) {
            if (idx > 0)
                buf_puts(b, ",");
            buf_puts(b, "[");
            buf_json_string(b, name, strlen(name));
            buf_puts(b, ",");
            buf_json_bytes_or_null(b, val, size);
            buf_puts(b, "]");
        }
    }
    buf_puts(b, "],\"value\":");
    buf_json_bytes_or_null(b, m->payload, m->len);
    buf_puts(b, "}\n");
}

/* Write all of p[0..n) to fd in as few write(2) calls as the kernel allows. */
static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Parse argv into o. Returns 0 to run, -1 after printing --help, or EXIT_USAGE. */
static int option_parse(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'c'},
        {"idle-exit", required_argument, NULL, 'i'},
        {"timeout", required_argument, NULL, 'T'},
        {"from", required_argument, NULL, 'F'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    while ((opt = getopt_long(argc, argv, "b:t:o:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            o->brokers = optarg;
            break;
        case 't':
            if (*optarg == '\0') {
                fprintf(stderr, "outbox-consume: empty topic name\n");
                return EXIT_USAGE;
            }
            o->topics[o->topic_cnt++] = optarg;
            break;
        case 'o':
            o->outfile = optarg;
            break;
        case 'c':
            if (!parse_long(optarg, 1, LONG_MAX, &o->count)) {
                fprintf(stderr, "outbox-consume: --count must be >= 1, not \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'i':
            if (!parse_long(optarg, 0, INT_MAX, &o->idle_ms)) {
                fprintf(stderr, "outbox-consume: --idle-exit must be >= 0 ms, not \"%s\"\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'T':
            if (!parse_long(optarg, 0, INT_MAX, &o->timeout_ms)) {
                fprintf(stderr, "outbox-consume: --timeout must be >= 0 ms, not \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'F':
            if (strcmp(optarg, "beginning") == 0)
                o->start_offset = RD_KAFKA_OFFSET_BEGINNING;
            else if (strcmp(optarg, "end") == 0)
                o->start_offset = RD_KAFKA_OFFSET_END;
            else {
                fprintf(stderr, "outbox-consume: --from must be beginning or end, not \"%s\"\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            fprintf(stderr, "try \"outbox-consume --help\"\n");
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "outbox-consume: unexpected argument \"%s\"\n", argv[optind]);
        fprintf(stderr, "try \"outbox-consume --help\"\n");
        return EXIT_USAGE;
    }
    if (o->brokers == NULL || o->topic_cnt == 0) {
        fprintf(stderr, "outbox-consume: -b BROKERS and at least one -t TOPIC are required\n");
        fprintf(stderr, "try \"outbox-consume --help\"\n");
        return EXIT_USAGE;
    }
    return 0;
}

static rd_kafka_t *consumer_new(const struct options *o)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char errstr[512];
    size_t i;
    const char *props[][2] = {
        {"bootstrap.servers", o->brokers},
        {"client.id", "outbox-consume"},
        /* Required for rd_kafka_assign(); never joined (no subscribe) and never committed. */
        {"group.id", "outbox-consume"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        /* A consumer must not create the topics it waits for. */
        {"allow.auto.create.topics", "false"},
        /* Deliver small batches promptly; the default 500 ms makes --idle-exit sluggish. */
        {"fetch.wait.max.ms", "100"},
        {"log_level", o->verbose ? "7" : "3"},
    };

    for (i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "outbox-consume: %s\n", errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        /* conf is still ours when rd_kafka_new() fails. */
        fprintf(stderr, "outbox-consume: cannot create consumer: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return rk;
}

/*
 * Look up the topics not assigned yet and add every partition of those that now exist to the
 * assignment, starting at o->start_offset. assigned[i] is set for each topic added. Returns
 * the number of topics still missing, or -1 on an assignment failure (already reported).
 */
static int topics_assign(rd_kafka_t *rk, const struct options *o, bool *assigned, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_resp_err_t err;
    rd_kafka_error_t *error;
    int missing = 0;
    int i, j, p;

    /* All-topics metadata never triggers auto-creation, whatever the broker's setting. */
    err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (o->verbose)
            fprintf(stderr, "outbox-consume: metadata request failed: %s\n", rd_kafka_err2str(err));
        for (i = 0; i < o->topic_cnt; i++)
            missing += !assigned[i];
        return missing;
    }

    parts = rd_kafka_topic_partition_list_new(0);
    for (i = 0; i < o->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *mt = NULL;

        if (assigned[i])
            continue;
        for (j = 0; j < md->topic_cnt; j++) {
            if (strcmp(md->topics[j].topic, o->topics[i]) == 0) {
                mt = &md->topics[j];
                break;
            }
        }
        /* Missing, in error (e.g. LEADER_NOT_AVAILABLE while being created) or without
         * partitions: try again later. */
        if (mt == NULL || mt->err != RD_KAFKA_RESP_ERR_NO_ERROR || mt->partition_cnt == 0) {
            missing++;
            continue;
        }
        for (p = 0; p < mt->partition_cnt; p++) {
            rd_kafka_topic_partition_t *tp;

            tp = rd_kafka_topic_partition_list_add(parts, o->topics[i], mt->partitions[p].id);
            tp->offset = o->start_offset;
        }
        assigned[i] = true;
        if (o->verbose)
            fprintf(stderr, "outbox-consume: assigned \"%s\" (%d partitions)\n", o->topics[i],
                    mt->partition_cnt);
    }
    rd_kafka_metadata_destroy(md);

    /* Incremental, so topics that appear later do not reset the positions of the others. */
    if (parts->cnt > 0 && (error = rd_kafka_incremental_assign(rk, parts)) != NULL) {
        fprintf(stderr, "outbox-consume: cannot assign partitions: %s\n",
                rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        missing = -1;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return missing;
}

/* Remaining time until deadline (INT_MAX if none), clamped to [0, cap]. */
static int remaining_ms(int64_t deadline, int64_t now, int cap)
{
    int64_t left;

    if (deadline < 0)
        return cap;
    left = deadline - now;
    if (left < 0)
        return 0;
    return left < cap ? (int)left : cap;
}

int main(int argc, char **argv)
{
    struct options o = {
        .count = -1,
        .idle_ms = -1,
        .timeout_ms = -1,
        .start_offset = RD_KAFKA_OFFSET_BEGINNING,
    };
    struct buf line = {0};
    struct sigaction sa;
    rd_kafka_t *rk = NULL;
    bool *assigned = NULL;
    int out_fd = STDOUT_FILENO;
    int missing;
    int64_t start, deadline, last_msg = 0, next_md = 0;
    long consumed = 0;
    int rc;

    o.topics = calloc((size_t)argc, sizeof(*o.topics));
    assigned = calloc((size_t)argc, sizeof(*assigned));
    if (o.topics == NULL || assigned == NULL) {
        fprintf(stderr, "outbox-consume: out of memory\n");
        rc = EXIT_RUNTIME;
        goto out;
    }
    rc = option_parse(argc, argv, &o);
    if (rc != 0) {
        if (rc < 0) /* --help */
            rc = 0;
        goto out;
    }
    missing = o.topic_cnt;
    /* The same topic twice would be assigned twice; the second one is already satisfied. */
    for (int i = 1; i < o.topic_cnt; i++) {
        for (int j = 0; j < i; j++) {
            if (strcmp(o.topics[i], o.topics[j]) == 0 && !assigned[i]) {
                assigned[i] = true;
                missing--;
            }
        }
    }

    if (o.outfile != NULL) {
        out_fd = open(o.outfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out_fd < 0) {
            fprintf(stderr, "outbox-consume: cannot open \"%s\": %s\n", o.outfile, strerror(errno));
            out_fd = STDOUT_FILENO;
            rc = EXIT_RUNTIME;
            goto out;
        }
    }

    /* Handlers only set a flag; the poll loop below notices it within POLL_INTERVAL_MS. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A closed output pipe is reported as a write error instead of killing us silently. */
    signal(SIGPIPE, SIG_IGN);

    rk = consumer_new(&o);
    if (rk == NULL) {
        rc = EXIT_RUNTIME;
        goto out;
    }

    start = now_ms();
    deadline = o.timeout_ms >= 0 ? start + o.timeout_ms : -1;
    rc = 0;
    while (!stop_requested) {
        rd_kafka_message_t *m;
        int64_t now = now_ms();

        if (deadline >= 0 && now >= deadline) {
            rc = EXIT_TIMEOUT;
            break;
        }
        if (o.idle_ms >= 0 && consumed > 0 && now - last_msg >= o.idle_ms)
            break;

        if (missing > 0 && now >= next_md) {
            missing = topics_assign(rk, &o, assigned, remaining_ms(deadline, now, 1000));
            if (missing < 0) {
                rc = EXIT_RUNTIME;
                break;
            }
            next_md = now_ms() + METADATA_RETRY_MS;
            continue;
        }

        m = rd_kafka_consumer_poll(rk, remaining_ms(deadline, now, POLL_INTERVAL_MS));
        if (m == NULL)
            continue;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (m->rkt != NULL)
                fprintf(stderr, "outbox-consume: consumer error on \"%s\" [%" PRId32 "]: %s\n",
                        rd_kafka_topic_name(m->rkt), m->partition, rd_kafka_message_errstr(m));
            else
                fprintf(stderr, "outbox-consume: consumer error: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        message_to_json(&line, m);
        rd_kafka_message_destroy(m);
        if (line.oom) {
            fprintf(stderr, "outbox-consume: out of memory rendering a message\n");
            rc = EXIT_RUNTIME;
            break;
        }
        if (!write_all(out_fd, line.data, line.len)) {
            fprintf(stderr, "outbox-consume: cannot write \"%s\": %s\n",
                    o.outfile != NULL ? o.outfile : "stdout", strerror(errno));
            rc = EXIT_RUNTIME;
            break;
        }
        consumed++;
        last_msg = now_ms();
        if (o.count > 0 && consumed >= o.count)
            break;
    }

    fprintf(stderr, "consumed %ld messages\n", consumed);

out:
    if (rk != NULL) {
        /* No group membership and nothing to commit: close only stops the fetchers. */
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    if (out_fd != STDOUT_FILENO && close(out_fd) != 0 && rc == 0) {
        fprintf(stderr, "outbox-consume: cannot close \"%s\": %s\n", o.outfile, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(line.data);
    free(assigned);
    free(o.topics);
    return rc;
}

/*
 * outbox-devbroker: a local Kafka-protocol broker for tests and the demo.
 *
 * Apache Kafka is not available on every development machine, so this program stands up
 * librdkafka's mock cluster (rdkafka_mock.h) -- an in-process set of brokers that speak enough
 * of the Kafka protocol for producers (plain, idempotent and transactional), the low-level
 * consumer and consumer groups -- and keeps it alive until told to stop. The mock brokers listen
 * on 127.0.0.1 on ephemeral ports; the bootstrap list is printed as the first line of stdout
 * and, with --bootstrap-file, written atomically to a file so a script can wait for it.
 *
 * After start-up the program reads control commands from stdin, one per line, and answers each
 * with exactly one line on stdout ("ok", "error: <msg>", or the requested value). This lets a
 * test harness inject faults: take brokers down, add latency, make requests fail. EOF on stdin
 * does not stop the broker (so `outbox-devbroker &` works); only "quit", SIGTERM or SIGINT do.
 *
 * The mock keeps only the last few MB (5 MB or 100000 batches in 2.0.2) per partition in
 * memory, so a consumer has to read while producers write; see docs/devbroker.md.
 *
 * Exit codes: 0 clean shutdown, 1 bad usage, 2 cluster (or start-up topic/file) failure.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define EXIT_USAGE 1
#define EXIT_CLUSTER 2

/* Longest control command accepted; longer lines are answered with an error and skipped. */
#define CMD_LINE_MAX 4096
/* How long one poll() on stdin may block: bounds the latency of reacting to a signal. */
#define POLL_INTERVAL_MS 200

static volatile sig_atomic_t stop_requested;

struct topic_spec {
    char *name;
    int partitions;  /* 0: use --default-partitions */
    int replication; /* 0: use min(3, brokers) */
};

struct devbroker {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    int broker_cnt;
    int default_partitions;
    bool quit;
};

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: outbox-devbroker [--brokers N] [--topic NAME[:PARTITIONS[:REPLICATION]]]...\n"
            "                        [--bootstrap-file PATH] [--default-partitions N] [--verbose]\n"
            "\n"
            "Starts a librdkafka mock Kafka cluster on 127.0.0.1, prints its bootstrap list as\n"
            "the first line of stdout, then reads control commands from stdin\n"
            "(see docs/devbroker.md):\n"
            "  down ID | up ID | rtt ID MS | topic NAME [PARTITIONS [REPLICATION]]\n"
            "  leader TOPIC PARTITION ID | error API COUNT ERR | clear API\n"
            "  topic-error NAME ERR | bootstrap | help | quit\n");
}

/*
 * Parse a whole decimal integer in [min, max]. Returns false on garbage, trailing characters
 * or overflow.
 */
static bool parse_int(const char *s, long min, long max, long *out)
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

/* Default replication factor, as a real cluster with this many brokers would choose it. */
static int default_replication(int broker_cnt)
{
    return broker_cnt < 3 ? broker_cnt : 3;
}

/*
 * Kafka protocol ApiKeys accepted by "error" and "clear". The brief's four come first; the
 * rest are there because fault tests of the consumer and of transactions want them too.
 */
static const struct {
    const char *name;
    int16_t key;
} api_names[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"SyncGroup", 14},
    {"ApiVersions", 18},
    {"InitProducerId", 22},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

/* Map an API name (case-insensitive) or a numeric ApiKey to its key; -1 if unknown. */
static int api_key_parse(const char *s)
{
    long v;
    size_t i;

    for (i = 0; i < sizeof(api_names) / sizeof(api_names[0]); i++) {
        if (strcasecmp(s, api_names[i].name) == 0)
            return api_names[i].key;
    }
    if (parse_int(s, 0, INT16_MAX, &v))
        return (int)v;
    return -1;
}

/*
 * Map a Kafka error name to its code. Accepts the bare name as librdkafka's error table spells
 * it ("NOT_LEADER_FOR_PARTITION", "_TRANSPORT"), the same with the "RD_KAFKA_RESP_ERR_" prefix,
 * a few newer Kafka spellings that 2.0.2 lacks, or a (possibly negative) numeric code.
 * Returns false when the name is unknown.
 */
static bool err_parse(const char *s, rd_kafka_resp_err_t *out)
{
    static const struct {
        const char *name;
        rd_kafka_resp_err_t err;
    } aliases[] = {
        /* Renamed by KIP-392; librdkafka 2.0.2 only knows the old name. */
        {"NOT_LEADER_OR_FOLLOWER", RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION},
        {"NO_ERROR", RD_KAFKA_RESP_ERR_NO_ERROR},
    };
    const struct rd_kafka_err_desc *descs;
    size_t cnt, i;
    long v;

    if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
        s += 18;
    if (parse_int(s, INT_MIN, INT_MAX, &v)) {
        *out = (rd_kafka_resp_err_t)v;
        return true;
    }
    for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (strcasecmp(s, aliases[i].name) == 0) {
            *out = aliases[i].err;
            return true;
        }
    }
    rd_kafka_get_err_descs(&descs, &cnt);
    for (i = 0; i < cnt; i++) {
        /* The table has holes: entries with a NULL name. */
        if (descs[i].name != NULL && strcasecmp(s, descs[i].name) == 0) {
            *out = descs[i].code;
            return true;
        }
    }
    return false;
}

/* Parse a broker id: a number, or "-1" / "all" for every broker (as the mock API allows). */
static bool broker_id_parse(const struct devbroker *db, const char *s, int32_t *out)
{
    long v;

    if (strcasecmp(s, "all") == 0) {
        *out = -1;
        return true;
    }
    if (!parse_int(s, -1, INT32_MAX, &v))
        return false;
    /* The mock accepts unknown ids for some calls and silently does nothing; refuse them here
     * so a typo in a fault test fails loudly. Broker ids run from 1 to broker_cnt. */
    if (v == 0 || v > db->broker_cnt)
        return false;
    *out = (int32_t)v;
    return true;
}

/*
 * Create a topic on the mock cluster. partitions/replication of 0 mean "the default".
 * Fills errbuf and returns false on failure.
 */
static bool topic_create(struct devbroker *db, const char *name, int partitions, int replication,
                         char *errbuf, size_t errbuf_size)
{
    rd_kafka_resp_err_t err;

    if (partitions == 0)
        partitions = db->default_partitions;
    if (replication == 0)
        replication = default_replication(db->broker_cnt);
    if (replication > db->broker_cnt) {
        snprintf(errbuf, errbuf_size,
                 "replication factor %d for topic \"%s\" exceeds the %d broker(s)", replication,
                 name, db->broker_cnt);
        return false;
    }
    err = rd_kafka_mock_topic_create(db->mc, name, partitions, replication);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errbuf_size, "cannot create topic \"%s\": %s", name,
                 rd_kafka_err2str(err));
        return false;
    }
    return true;
}

/*
 * Parse --topic NAME[:PARTITIONS[:REPLICATION]]. The name is copied (argv stays intact, so ps
 * shows the command line as typed); the caller frees spec->name.
 */
static bool topic_spec_parse(const char *arg, struct topic_spec *spec)
{
    const char *colon = strchr(arg, ':');
    size_t name_len = colon != NULL ? (size_t)(colon - arg) : strlen(arg);
    char num[32];
    const char *r;
    long v;

    spec->name = NULL;
    spec->partitions = 0;
    spec->replication = 0;
    if (name_len == 0 || name_len > 249)
        return false;
    if (colon != NULL) {
        const char *p = colon + 1;
        size_t plen;

        r = strchr(p, ':');
        plen = r != NULL ? (size_t)(r - p) : strlen(p);
        if (plen >= sizeof(num))
            return false;
        memcpy(num, p, plen);
        num[plen] = '\0';
        if (!parse_int(num, 1, 100000, &v))
            return false;
        spec->partitions = (int)v;
        if (r != NULL) {
            if (!parse_int(r + 1, 1, INT16_MAX, &v))
                return false;
            spec->replication = (int)v;
        }
    }
    spec->name = strndup(arg, name_len);
    return spec->name != NULL;
}

/* Reply to the controller: one line, flushed at once. Write errors are ignored on purpose:
 * a broker started as `outbox-devbroker >/dev/null &` or whose harness went away keeps
 * serving its clients. */
static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void reply(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Split line into at most max whitespace-separated words; returns the word count or -1 if
 * there are more than max words. */
static int split_words(char *line, char **words, int max)
{
    int n = 0;
    char *save = NULL;
    char *w;

    for (w = strtok_r(line, " \t\r", &save); w != NULL; w = strtok_r(NULL, " \t\r", &save)) {
        if (n == max)
            return -1;
        words[n++] = w;
    }
    return n;
}

/*
 * Execute one control command and write its one-line reply. Blank lines and lines starting
 * with '#' are ignored without a reply, so a script can feed a commented file.
 */
static void command_run(struct devbroker *db, char *line)
{
    char *w[5];
    char errbuf[512];
    int n;
    long v, v2;
    int32_t id;
    int api;
    rd_kafka_resp_err_t err, kerr;

    line += strspn(line, " \t\r");
    if (*line == '\0' || *line == '#')
        return;
    n = split_words(line, w, 5);
    if (n <= 0) {
        if (n < 0)
            reply("error: too many arguments");
        return;
    }

    if (strcmp(w[0], "quit") == 0) {
        if (n != 1) {
            reply("error: usage: quit");
            return;
        }
        db->quit = true;
        reply("ok");
    } else if (strcmp(w[0], "help") == 0) {
        reply("ok: down ID | up ID | rtt ID MS | topic NAME [PARTITIONS [REPLICATION]] | "
              "leader TOPIC PARTITION ID | error API COUNT ERR | clear API | "
              "topic-error NAME ERR | bootstrap | quit");
    } else if (strcmp(w[0], "bootstrap") == 0) {
        reply("%s", rd_kafka_mock_cluster_bootstraps(db->mc));
    } else if (strcmp(w[0], "down") == 0 || strcmp(w[0], "up") == 0) {
        if (n != 2 || !broker_id_parse(db, w[1], &id)) {
            reply("error: usage: %s BROKER_ID (1..%d, or all)", w[0], db->broker_cnt);
            return;
        }
        err = w[0][0] == 'd' ? rd_kafka_mock_broker_set_down(db->mc, id)
                             : rd_kafka_mock_broker_set_up(db->mc, id);
        if (err)
            reply("error: %s broker %s: %s", w[0], w[1], rd_kafka_err2str(err));
        else
            reply("ok");
    } else if (strcmp(w[0], "rtt") == 0) {
        if (n != 3 || !broker_id_parse(db, w[1], &id) || !parse_int(w[2], 0, INT_MAX, &v)) {
            reply("error: usage: rtt BROKER_ID MS");
            return;
        }
        err = rd_kafka_mock_broker_set_rtt(db->mc, id, (int)v);
        if (err)
            reply("error: rtt broker %s: %s", w[1], rd_kafka_err2str(err));
        else
            reply("ok");
    } else if (strcmp(w[0], "topic") == 0) {
        v = 0;
        v2 = 0;
        if (n < 2 || n > 4 || (n >= 3 && !parse_int(w[2], 1, 100000, &v)) ||
            (n == 4 && !parse_int(w[3], 1, INT16_MAX, &v2))) {
            reply("error: usage: topic NAME [PARTITIONS [REPLICATION]]");
            return;
        }
        if (!topic_create(db, w[1], (int)v, (int)v2, errbuf, sizeof(errbuf)))
            reply("error: %s", errbuf);
        else
            reply("ok");
    } else if (strcmp(w[0], "leader") == 0) {
        /* Leader change is the one fault "down" cannot simulate: the mock never moves
         * leadership by itself. -1 makes the partition leader-less. */
        if (n != 4 || !parse_int(w[2], 0, INT32_MAX, &v) || !broker_id_parse(db, w[3], &id)) {
            reply("error: usage: leader TOPIC PARTITION BROKER_ID");
            return;
        }
        err = rd_kafka_mock_partition_set_leader(db->mc, w[1], (int32_t)v, id);
        if (err)
            reply("error: leader \"%s\" [%ld]: %s", w[1], v, rd_kafka_err2str(err));
        else
            reply("ok");
    } else if (strcmp(w[0], "error") == 0) {
        rd_kafka_resp_err_t *errs;
        long i;

        if (n != 4 || (api = api_key_parse(w[1])) < 0 || !parse_int(w[2], 1, 1000000, &v)) {
            reply("error: usage: error APINAME COUNT ERRNAME");
            return;
        }
        if (!err_parse(w[3], &kerr)) {
            reply("error: unknown error name \"%s\"", w[3]);
            return;
        }
        errs = malloc(sizeof(*errs) * (size_t)v);
        if (errs == NULL) {
            reply("error: out of memory");
            return;
        }
        for (i = 0; i < v; i++)
            errs[i] = kerr;
        /* The array form of rd_kafka_mock_push_request_errors(): COUNT copies of one error. */
        rd_kafka_mock_push_request_errors_array(db->mc, (int16_t)api, (size_t)v, errs);
        free(errs);
        reply("ok");
    } else if (strcmp(w[0], "clear") == 0) {
        if (n != 2 || (api = api_key_parse(w[1])) < 0) {
            reply("error: usage: clear APINAME");
            return;
        }
        rd_kafka_mock_clear_request_errors(db->mc, (int16_t)api);
        reply("ok");
    } else if (strcmp(w[0], "topic-error") == 0) {
        if (n != 3) {
            reply("error: usage: topic-error NAME ERRNAME");
            return;
        }
        if (!err_parse(w[2], &kerr)) {
            reply("error: unknown error name \"%s\"", w[2]);
            return;
        }
        rd_kafka_mock_topic_set_error(db->mc, w[1], kerr);
        reply("ok");
    } else {
        reply("error: unknown command \"%s\"", w[0]);
    }
}

/*
 * Serve control commands until quit, a signal, or -- after EOF on stdin -- forever until a
 * signal. stdin is read with read(2) behind poll(2), never stdio, so a signal is noticed
 * within POLL_INTERVAL_MS even while the controller is silent.
 */
static void control_loop(struct devbroker *db)
{
    char buf[CMD_LINE_MAX + 1];
    size_t len = 0;
    bool stdin_open = true;
    bool discarding = false; /* inside an over-long line: drop bytes until its newline */

    while (!stop_requested && !db->quit) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        ssize_t r;
        char *nl;
        int pr;

        /* After EOF, poll() on no descriptors is just an interruptible sleep. */
        pr = poll(&pfd, stdin_open ? 1 : 0, POLL_INTERVAL_MS);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "outbox-devbroker: poll on stdin failed: %s\n", strerror(errno));
            stdin_open = false;
            continue;
        }
        if (pr == 0 || !stdin_open)
            continue;

        r = read(STDIN_FILENO, buf + len, CMD_LINE_MAX - len);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            fprintf(stderr, "outbox-devbroker: read from stdin failed: %s\n", strerror(errno));
            stdin_open = false;
            continue;
        }
        if (r == 0) {
            /* EOF: run a final unterminated command, then keep serving without stdin. */
            if (len > 0 && !discarding) {
                buf[len] = '\0';
                command_run(db, buf);
            }
            len = 0;
            stdin_open = false;
            continue;
        }
        len += (size_t)r;

        /* Run every complete line in the buffer. */
        while (!db->quit && (nl = memchr(buf, '\n', len)) != NULL) {
            size_t linelen = (size_t)(nl - buf);

            *nl = '\0';
            if (discarding)
                discarding = false;
            else
                command_run(db, buf);
            memmove(buf, nl + 1, len - linelen - 1);
            len -= linelen + 1;
        }
        if (len == CMD_LINE_MAX) {
            if (!discarding)
                reply("error: command longer than %d bytes", CMD_LINE_MAX);
            discarding = true;
            len = 0;
        }
    }
}

/* Write the bootstrap list to path atomically: a reader sees either no file or all of it. */
static bool bootstrap_file_write(const char *path, const char *bootstraps)
{
    char tmp[PATH_MAX];
    FILE *f;
    int n;

    n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        fprintf(stderr, "outbox-devbroker: bootstrap file path \"%s\" too long\n", path);
        return false;
    }
    f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "outbox-devbroker: cannot create \"%s\": %s\n", tmp, strerror(errno));
        return false;
    }
    if (fprintf(f, "%s\n", bootstraps) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fprintf(stderr, "outbox-devbroker: cannot write \"%s\": %s\n", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return false;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "outbox-devbroker: cannot rename \"%s\" to \"%s\": %s\n", tmp, path,
                strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"bootstrap-file", required_argument, NULL, 'f'},
        {"default-partitions", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct devbroker db = {.broker_cnt = 1, .default_partitions = 1};
    struct topic_spec *topics = NULL;
    int topic_cnt = 0;
    const char *bootstrap_path = NULL;
    bool bootstrap_written = false;
    bool verbose = false;
    rd_kafka_conf_t *conf = NULL;
    char errstr[512];
    struct sigaction sa;
    const char *bootstraps;
    int opt, i;
    int rc = EXIT_CLUSTER;
    long v;

    topics = calloc((size_t)argc, sizeof(*topics));
    if (topics == NULL) {
        fprintf(stderr, "outbox-devbroker: out of memory\n");
        return EXIT_CLUSTER;
    }

    while ((opt = getopt_long(argc, argv, "b:t:f:p:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            if (!parse_int(optarg, 1, 64, &v)) {
                fprintf(stderr, "outbox-devbroker: --brokers must be 1..64, not \"%s\"\n", optarg);
                goto usage_error;
            }
            db.broker_cnt = (int)v;
            break;
        case 't':
            if (!topic_spec_parse(optarg, &topics[topic_cnt])) {
                fprintf(stderr,
                        "outbox-devbroker: bad --topic \"%s\": want NAME[:PARTITIONS"
                        "[:REPLICATION]]\n",
                        optarg);
                goto usage_error;
            }
            topic_cnt++;
            break;
        case 'f':
            bootstrap_path = optarg;
            break;
        case 'p':
            if (!parse_int(optarg, 1, 100000, &v)) {
                fprintf(stderr, "outbox-devbroker: --default-partitions must be >= 1, not \"%s\"\n",
                        optarg);
                goto usage_error;
            }
            db.default_partitions = (int)v;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            goto usage_error;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "outbox-devbroker: unexpected argument \"%s\"\n", argv[optind]);
        goto usage_error;
    }
    for (i = 0; i < topic_cnt; i++) {
        if (topics[i].replication > db.broker_cnt) {
            fprintf(stderr,
                    "outbox-devbroker: replication factor %d for topic \"%s\" exceeds the %d "
                    "broker(s)\n",
                    topics[i].replication, topics[i].name, db.broker_cnt);
            goto usage_error;
        }
    }

    /* Handlers only set a flag; no SA_RESTART so poll() returns EINTR promptly. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A controller that went away must not kill the broker through a reply. */
    signal(SIGPIPE, SIG_IGN);

    /* The mock cluster needs an rd_kafka_t to own it; a producer that never produces. */
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", verbose ? "7" : "3", errstr, sizeof(errstr)) ||
        (verbose && rd_kafka_conf_set(conf, "debug", "mock", errstr, sizeof(errstr))) ||
        rd_kafka_conf_set(conf, "client.id", "outbox-devbroker", errstr, sizeof(errstr))) {
        fprintf(stderr, "outbox-devbroker: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    db.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (db.rk == NULL) {
        /* conf is still ours when rd_kafka_new() fails. */
        fprintf(stderr, "outbox-devbroker: cannot create librdkafka handle: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    db.mc = rd_kafka_mock_cluster_new(db.rk, db.broker_cnt);
    if (db.mc == NULL) {
        fprintf(stderr, "outbox-devbroker: cannot create mock cluster with %d broker(s)\n",
                db.broker_cnt);
        goto out;
    }

    for (i = 0; i < topic_cnt; i++) {
        if (!topic_create(&db, topics[i].name, topics[i].partitions, topics[i].replication, errstr,
                          sizeof(errstr))) {
            fprintf(stderr, "outbox-devbroker: %s\n", errstr);
            goto out;
        }
    }

    /* Only now, with every topic in place, announce readiness: first the file, then the
     * stdout line, so whichever a harness waits for means "ready" and a failure to write the
     * file is never preceded by a bootstrap line. */
    bootstraps = rd_kafka_mock_cluster_bootstraps(db.mc);
    if (bootstrap_path != NULL) {
        if (!bootstrap_file_write(bootstrap_path, bootstraps))
            goto out;
        bootstrap_written = true;
    }
    printf("%s\n", bootstraps);
    fflush(stdout);
    if (verbose)
        fprintf(stderr, "outbox-devbroker: %d broker(s) at %s\n", db.broker_cnt, bootstraps);

    control_loop(&db);
    rc = 0;

out:
    /* The bootstrap file names ports that die with us; do not leave it behind. */
    if (bootstrap_written)
        unlink(bootstrap_path);
    if (db.mc != NULL)
        rd_kafka_mock_cluster_destroy(db.mc);
    if (db.rk != NULL)
        rd_kafka_destroy(db.rk);
    for (i = 0; i < topic_cnt; i++)
        free(topics[i].name);
    free(topics);
    return rc;

usage_error:
    fprintf(stderr, "try \"outbox-devbroker --help\"\n");
    rc = EXIT_USAGE;
    goto out;
}

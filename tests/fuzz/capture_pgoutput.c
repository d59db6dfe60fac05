/*
 * capture_pgoutput.c -- record real pgoutput messages from a PostgreSQL walsender as
 * seed files for the fuzz_pgoutput target.
 *
 * It opens a logical replication connection, runs START_REPLICATION on an existing
 * pgoutput slot with the options given, and writes the payload of every XLogData ('w')
 * frame -- one pgoutput message, the 25-byte frame header stripped -- to a file of its
 * own.  It stops when it sees a non-transactional logical message whose prefix is the
 * end marker ("fuzz-capture-end" unless -e says otherwise), which the workload emits
 * last, so everything before it has been decoded and sent.  It answers keepalives that
 * ask for a reply and never confirms anything else; the slot is thrown away afterwards.
 *
 * A big transaction yields thousands of near-identical Insert messages, so at most
 * -n messages (default 6) of each kind are kept, counted separately inside and outside
 * streamed blocks, and a message identical to one already kept is dropped.  Files are
 * named PREFIX-NNNN-KIND.bin, with "stream-" before the kind for a message sent between
 * Stream Start and Stream Stop (it has the leading xid: decode it with in_stream true).
 *
 * Not part of the build; tests/fuzz/capture_seeds.sh compiles and runs it:
 *
 *   cc -O2 -Wall -Wextra -Werror $(pkg-config --cflags libpq) capture_pgoutput.c \
 *      $(pkg-config --libs libpq) -o capture_pgoutput
 *   capture_pgoutput -d "host=127.0.0.1 port=5432 dbname=app user=postgres" \
 *      -s fuzz_v1 -o corpus/pgoutput -p v1 \
 *      -O proto_version=1 -O publication_names=fuzz_pub -O messages=true
 *
 * "replication=database" is appended to the connection string.  Exit status 0 when the
 * end marker arrived, 1 on any error or after -t seconds (default 60) without it.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define XLOGDATA_HEADER 25 /* 'w', Int64 dataStart, Int64 walEnd, Int64 sendTime */
#define KEEPALIVE_SIZE 18  /* 'k', Int64 walEnd, Int64 sendTime, Byte1 replyRequested */
#define MAX_OPTIONS 16
#define MAX_KEPT 4096

/* Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01. */
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)

struct capture {
    const char *outdir;
    const char *prefix;
    const char *end_marker;
    unsigned max_per_kind;
    bool in_stream;
    unsigned counts[2][256]; /* [in_stream][kind byte] */
    uint64_t kept_hash[MAX_KEPT];
    size_t kept_len[MAX_KEPT];
    size_t nkept;
    unsigned seq;
    unsigned long received;
    bool done;
};

static uint64_t get_be(const char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

static void put_be(char *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (char)(v & 0xff);
        v >>= 8;
    }
}

static const char *kind_name(uint8_t k)
{
    switch (k) {
    case 'B':
        return "begin";
    case 'C':
        return "commit";
    case 'O':
        return "origin";
    case 'R':
        return "relation";
    case 'Y':
        return "type";
    case 'I':
        return "insert";
    case 'U':
        return "update";
    case 'D':
        return "delete";
    case 'T':
        return "truncate";
    case 'M':
        return "message";
    case 'S':
        return "stream-start";
    case 'E':
        return "stream-stop";
    case 'c':
        return "stream-commit";
    case 'A':
        return "stream-abort";
    default:
        return "unknown";
    }
}

/* Data messages carry a leading xid inside a stream (protocol 2). */
static bool has_stream_xid(uint8_t k)
{
    return strchr("RYIUDTM", k) != NULL && k != 0;
}

/* FNV-1a, to drop byte-identical messages. */
static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static bool seen_before(struct capture *cap, const char *p, size_t n)
{
    uint64_t h = fnv1a(p, n);

    for (size_t i = 0; i < cap->nkept; i++) {
        if (cap->kept_hash[i] == h && cap->kept_len[i] == n)
            return true;
    }
    if (cap->nkept < MAX_KEPT) {
        cap->kept_hash[cap->nkept] = h;
        cap->kept_len[cap->nkept] = n;
        cap->nkept++;
    }
    return false;
}

/* Is this a Message whose prefix is the end marker?  Layout as in proto.c. */
static bool is_end_marker(const struct capture *cap, const char *p, size_t n)
{
    size_t off = 1 + (cap->in_stream ? 4 : 0) + 1 + 8; /* kind, [xid], flags, lsn */
    size_t mlen = strlen(cap->end_marker);

    if (n == 0 || p[0] != 'M' || n < off + mlen + 1)
        return false;
    return memcmp(p + off, cap->end_marker, mlen) == 0 && p[off + mlen] == '\0';
}

static int write_message(struct capture *cap, const char *p, size_t n)
{
    uint8_t kind = n > 0 ? (uint8_t)p[0] : 0;
    bool stream_data = cap->in_stream && has_stream_xid(kind);
    char path[4096];
    FILE *f;

    cap->received++;
    if (cap->counts[stream_data][kind] >= cap->max_per_kind || seen_before(cap, p, n))
        goto track;
    cap->counts[stream_data][kind]++;
    snprintf(path, sizeof path, "%s/%s-%04u-%s%s.bin", cap->outdir, cap->prefix, cap->seq++,
             stream_data ? "stream-" : "", kind_name(kind));
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "capture_pgoutput: cannot write \"%s\": %s\n", path, strerror(errno));
        return -1;
    }

track:
    /* Stream Start/Stop bracket the messages that carry the leading xid. */
    if (kind == 'S')
        cap->in_stream = true;
    else if (kind == 'E')
        cap->in_stream = false;
    else if (is_end_marker(cap, p, n))
        cap->done = true;
    return 0;
}

static int64_t pg_now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec - PG_EPOCH_OFFSET_US;
}

/* Standby status update 'r': write, flush, apply, clock, replyRequested. */
static int send_status(PGconn *conn, uint64_t lsn)
{
    char buf[1 + 8 + 8 + 8 + 8 + 1];

    buf[0] = 'r';
    put_be(buf + 1, lsn, 8);
    put_be(buf + 9, lsn, 8);
    put_be(buf + 17, lsn, 8);
    put_be(buf + 25, (uint64_t)pg_now_us(), 8);
    buf[33] = 0;
    if (PQputCopyData(conn, buf, sizeof buf) <= 0 || PQflush(conn) != 0) {
        fprintf(stderr, "capture_pgoutput: cannot send status: %s", PQerrorMessage(conn));
        return -1;
    }
    return 0;
}

/* Append "name 'value'" to the command, doubling quotes in the value. */
static int append_option(char *cmd, size_t size, const char *opt, bool first)
{
    const char *eq = strchr(opt, '=');
    size_t o = strlen(cmd);

    if (eq == NULL || eq == opt) {
        fprintf(stderr, "capture_pgoutput: option \"%s\" is not name=value\n", opt);
        return -1;
    }
    o += (size_t)snprintf(cmd + o, size - o, "%s%.*s '", first ? "" : ", ", (int)(eq - opt), opt);
    for (const char *v = eq + 1; *v && o + 3 < size; v++) {
        if (*v == '\'')
            cmd[o++] = '\'';
        cmd[o++] = *v;
    }
    if (o + 2 >= size)
        return -1;
    cmd[o++] = '\'';
    cmd[o] = '\0';
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: capture_pgoutput -d CONNINFO -s SLOT -o OUTDIR [-p PREFIX] "
                    "[-n MAX_PER_KIND] [-e END_PREFIX] [-t SECONDS] [-O name=value]...\n");
}

int main(int argc, char **argv)
{
    static struct capture cap;
    const char *conninfo = NULL, *slot = NULL, *options[MAX_OPTIONS];
    int noptions = 0, timeout_s = 60, opt, rc = 1;
    char dsn[2048], cmd[4096];
    PGconn *conn = NULL;
    PGresult *res;
    time_t deadline;
    uint64_t last_lsn = 0;

    cap.prefix = "msg";
    cap.end_marker = "fuzz-capture-end";
    cap.max_per_kind = 6;
    while ((opt = getopt(argc, argv, "d:s:o:p:n:e:t:O:")) != -1) {
        switch (opt) {
        case 'd':
            conninfo = optarg;
            break;
        case 's':
            slot = optarg;
            break;
        case 'o':
            cap.outdir = optarg;
            break;
        case 'p':
            cap.prefix = optarg;
            break;
        case 'n':
            cap.max_per_kind = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'e':
            cap.end_marker = optarg;
            break;
        case 't':
            timeout_s = atoi(optarg);
            break;
        case 'O':
            if (noptions == MAX_OPTIONS) {
                usage();
                return 1;
            }
            options[noptions++] = optarg;
            break;
        default:
            usage();
            return 1;
        }
    }
    if (conninfo == NULL || slot == NULL || cap.outdir == NULL) {
        usage();
        return 1;
    }

    snprintf(dsn, sizeof dsn, "%s replication=database", conninfo);
    conn = PQconnectdb(dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "capture_pgoutput: cannot connect: %s", PQerrorMessage(conn));
        goto out;
    }

    snprintf(cmd, sizeof cmd, "START_REPLICATION SLOT \"%s\" LOGICAL 0/0", slot);
    if (noptions > 0) {
        strcat(cmd, " (");
        for (int i = 0; i < noptions; i++) {
            if (append_option(cmd, sizeof cmd - 2, options[i], i == 0) < 0)
                goto out;
        }
        strcat(cmd, ")");
    }
    res = PQexec(conn, cmd);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        fprintf(stderr, "capture_pgoutput: %s: %s", cmd, PQerrorMessage(conn));
        PQclear(res);
        goto out;
    }
    PQclear(res);

    deadline = time(NULL) + timeout_s;
    while (!cap.done) {
        char *buf = NULL;
        int n = PQgetCopyData(conn, &buf, 1);

        if (n == 0) {
            fd_set rfds;
            struct timeval tv = {1, 0};
            int sock = PQsocket(conn);

            if (time(NULL) > deadline) {
                fprintf(stderr, "capture_pgoutput: no end marker after %d s\n", timeout_s);
                goto out;
            }
            FD_ZERO(&rfds);
            FD_SET(sock, &rfds);
            if (select(sock + 1, &rfds, NULL, NULL, &tv) < 0 && errno != EINTR) {
                perror("capture_pgoutput: select");
                goto out;
            }
            if (!PQconsumeInput(conn)) {
                fprintf(stderr, "capture_pgoutput: %s", PQerrorMessage(conn));
                goto out;
            }
            continue;
        }
        if (n < 0) {
            fprintf(stderr, "capture_pgoutput: copy ended: %s", PQerrorMessage(conn));
            goto out;
        }
        if (buf[0] == 'w' && n >= XLOGDATA_HEADER) {
            last_lsn = get_be(buf + 9, 8); /* walEnd */
            if (write_message(&cap, buf + XLOGDATA_HEADER, (size_t)(n - XLOGDATA_HEADER)) < 0) {
                PQfreemem(buf);
                goto out;
            }
        } else if (buf[0] == 'k' && n >= KEEPALIVE_SIZE) {
            if (buf[17] && send_status(conn, last_lsn) < 0) {
                PQfreemem(buf);
                goto out;
            }
        } else {
            fprintf(stderr, "capture_pgoutput: unexpected CopyData \"%c\" of %d bytes\n", buf[0],
                    n);
            PQfreemem(buf);
            goto out;
        }
        PQfreemem(buf);
    }
    fprintf(stderr, "capture_pgoutput: %s: %lu messages received, %u written to %s\n", slot,
            cap.received, cap.seq, cap.outdir);
    rc = 0;

out:
    PQfinish(conn);
    return rc;
}

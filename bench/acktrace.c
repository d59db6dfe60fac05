/*
 * acktrace.c -- an LD_PRELOAD shim that records when the relay learns of each Kafka
 * acknowledgement (benchmarks only; never linked into the relay).
 *
 * The benchmarks want commit -> acknowledgement latency as the relay sees it: the
 * moment librdkafka hands the relay a delivery report, on the relay's own thread,
 * inside rd_kafka_poll().  That moment is inside librdkafka's callback, so the shim
 * interposes rd_kafka_conf_set_dr_msg_cb(): the relay's callback is remembered and
 * a wrapper is installed in its place.  The wrapper reads the wall clock, copies the
 * message's "ce_time" header (the commit time of its transaction in replication
 * mode, created_at in polling mode, as docs/events.md says) and then calls the
 * relay's callback with the same arguments.  Nothing else of the relay changes.
 *
 * Output: ACKTRACE_FILE gets one fixed-size record per report:
 *
 *   int64  ack time, microseconds since the Unix epoch (CLOCK_REALTIME)
 *   int64  when the relay produced the message, microseconds since the epoch, or 0
 *          when unknown (see below): commit -> produce and produce -> acknowledgement
 *          can then be told apart
 *   int32  librdkafka error code (0: delivered)
 *   int32  length of the ce_time text (0: no such header)
 *   char   ce_time text[32], e.g. "2026-11-23T17:41:43.123456Z", not NUL-terminated
 *
 * The produce time: the message's own timestamp will not do (the dev broker answers
 * with a LogAppendTime that replaces it), so the shim also interposes
 * rd_kafka_produceva() and notes the time under the message's opaque.  The relay makes
 * the opaque a tag whose low 32 bits index its table of messages in flight (the
 * pipeline's inflight.c; older builds: the Kafka sink's own table, the whole opaque),
 * unique while the message is, so an array indexed by them is enough (8 bytes per message ever
 * in flight at once: a few kB in a steady state, up to 1 MB in a drain).  A relay that
 * produces otherwise (rd_kafka_producev(), older builds) gets 0.
 *
 * Records go through a 64 KiB stdio buffer flushed at most every 100 ms and at exit,
 * so a reader following the file sees acknowledgements within about 100 ms and the
 * shim adds no more than that buffer to the relay's resident memory.  The cost per
 * report is one clock_gettime(), one header look-up and a 56-byte fwrite() -- the
 * benchmark notes it beside the CPU figures.
 *
 * Build (bench/perf_bench.py does this):
 *   cc -O2 -shared -fPIC -o acktrace.so bench/acktrace.c $(pkg-config --cflags --libs rdkafka) -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

typedef void(dr_msg_cb_fn)(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

struct record {
    int64_t ack_us;
    int64_t produce_us;
    int32_t err;
    int32_t time_len;
    char time[32];
};

static dr_msg_cb_fn *relay_cb; /* the relay's own delivery report callback */
static FILE *out;
static char outbuf[64 * 1024];
static int64_t last_flush_us;
static int64_t *produced_us; /* by opaque: when rd_kafka_produceva() took the message */
static size_t nproduced;

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void open_out(void)
{
    const char *path = getenv("ACKTRACE_FILE");

    if (out || !path)
        return;
    out = fopen(path, "ab");
    if (out)
        setvbuf(out, outbuf, _IOFBF, sizeof(outbuf));
}

static void wrapper(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct record r;
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t len = 0;
    uintptr_t i = (uint32_t)(uintptr_t)m->_private;

    memset(&r, 0, sizeof(r));
    r.ack_us = now_us();
    r.produce_us = i < nproduced ? produced_us[i] : 0;
    r.err = (int32_t)m->err;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "ce_time", &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v) {
        if (len > sizeof(r.time))
            len = sizeof(r.time);
        memcpy(r.time, v, len);
        r.time_len = (int32_t)len;
    }
    if (out) {
        fwrite(&r, sizeof(r), 1, out);
        if (r.ack_us - last_flush_us >= 100000) {
            fflush(out);
            last_flush_us = r.ack_us;
        }
    }
    relay_cb(rk, m, opaque);
}

void rd_kafka_conf_set_dr_msg_cb(rd_kafka_conf_t *conf, dr_msg_cb_fn *cb)
{
    static void (*real)(rd_kafka_conf_t *, dr_msg_cb_fn *);

    if (!real)
        real = (void (*)(rd_kafka_conf_t *, dr_msg_cb_fn *))dlsym(RTLD_NEXT,
                                                                  "rd_kafka_conf_set_dr_msg_cb");
    open_out();
    relay_cb = cb;
    real(conf, cb ? wrapper : NULL);
}

rd_kafka_error_t *rd_kafka_produceva(rd_kafka_t *rk, const rd_kafka_vu_t *vus, size_t cnt)
{
    static rd_kafka_error_t *(*real)(rd_kafka_t *, const rd_kafka_vu_t *, size_t);
    int64_t now = now_us();

    if (!real)
        real = (rd_kafka_error_t * (*)(rd_kafka_t *, const rd_kafka_vu_t *, size_t))
            dlsym(RTLD_NEXT, "rd_kafka_produceva");
    for (size_t k = 0; k < cnt; k++) {
        uintptr_t i = (uint32_t)(uintptr_t)vus[k].u.ptr;

        if (vus[k].vtype != RD_KAFKA_VTYPE_OPAQUE || i >= ((uintptr_t)1 << 24))
            continue;
        if (i >= nproduced) {
            size_t n = nproduced ? nproduced : 1024;
            int64_t *p;

            while (n <= i)
                n *= 2;
            if (!(p = realloc(produced_us, n * sizeof(*p))))
                break;
            memset(p + nproduced, 0, (n - nproduced) * sizeof(*p));
            produced_us = p;
            nproduced = n;
        }
        produced_us[i] = now;
    }
    return real(rk, vus, cnt);
}

/* The relay may stop between two flushes: write what is buffered. */
__attribute__((destructor)) static void acktrace_fini(void)
{
    if (out)
        fflush(out);
}

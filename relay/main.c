/*
 * main.c -- the outbox-relay command: arguments, signals, wiring, exit codes.
 *
 *   outbox-relay run -c FILE      relay committed outbox rows to Kafka until stopped
 *   outbox-relay check -c FILE    validate the configuration file and exit
 *   outbox-relay --version        print the version
 *
 * This is the only file that may exit().  Signal handlers do nothing but write a byte
 * to the stop pipe that the relay's poll() loop watches: SIGTERM and SIGINT stop
 * cleanly (a second one stops waiting for Kafka); SIGHUP is ignored.
 *
 * Exit codes: 0 clean stop, 1 permanent runtime error, 2 bad usage or configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>

#include "config.h"
#include "log.h"
#include "poller.h"
#include "relay.h"
#include "sink.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static int stop_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;

    if (write(stop_pipe[1], &c, 1) < 0) {
        /* The pipe is full: a stop is already pending. */
    }
    errno = saved;
}

static int setup_signals(void)
{
    struct sigaction sa;

    if (pipe(stop_pipe) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(stop_pipe[i], F_SETFL, fcntl(stop_pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(stop_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    /* No configuration reload yet: a stray SIGHUP must not kill an unflushed relay. */
    signal(SIGHUP, SIG_IGN);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: outbox-relay run -c FILE     relay committed outbox rows to Kafka\n"
            "       outbox-relay check -c FILE   validate a configuration file\n"
            "       outbox-relay --version       print the version\n"
            "\n"
            "FILE may also be given in the environment as OUTBOX_RELAY_CONFIG.\n");
}

static void print_version(void)
{
    printf("outbox-relay %s (librdkafka %s, libpq %d)\n", RELAY_VERSION, rd_kafka_version_str(),
           PQlibVersion());
}

int main(int argc, char **argv)
{
    const char *cmd, *path = getenv("OUTBOX_RELAY_CONFIG");
    struct relay_config *cfg;
    char errstr[1024];
    int rc;

    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        print_version();
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "check") != 0) {
        fprintf(stderr, "outbox-relay: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else {
            fprintf(stderr, "outbox-relay: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "outbox-relay: no configuration file: use -c FILE\n");
        return EXIT_USAGE;
    }

    cfg = relay_config_load(path, errstr, sizeof(errstr));
    if (!cfg) {
        fprintf(stderr, "%s\n", errstr);
        return EXIT_USAGE;
    }
    if (cfg->sink == RELAY_SINK_KAFKA && sink_kafka_check(cfg, errstr, sizeof(errstr)) < 0) {
        fprintf(stderr, "%s: %s\n", path, errstr);
        relay_config_free(cfg);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "check") == 0) {
        printf("%s: ok: slot \"%s\", publication \"%s\", table \"%s.%s\", topic \"%s\"\n", path,
               cfg->postgres.slot, cfg->postgres.publication, cfg->outbox.schema,
               cfg->outbox.table, cfg->kafka.topic);
        relay_config_free(cfg);
        return 0;
    }

    log_set_level(cfg->log.level);
    if (setup_signals() < 0) {
        fprintf(stderr, "outbox-relay: cannot set up signal handling: %s\n", strerror(errno));
        relay_config_free(cfg);
        return EXIT_RUNTIME;
    }
    log_info("outbox-relay %s starting: slot \"%s\", publication \"%s\", table \"%s.%s\"",
             RELAY_VERSION, cfg->postgres.slot, cfg->postgres.publication, cfg->outbox.schema,
             cfg->outbox.table);
    if (cfg->postgres.mode == RELAY_MODE_POLLING)
        rc = poller_run(cfg, stop_pipe[0], errstr, sizeof(errstr));
    else
        rc = relay_run(cfg, stop_pipe[0], errstr, sizeof(errstr));
    if (rc < 0)
        log_error("%s", errstr);
    relay_config_free(cfg);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    return rc < 0 ? EXIT_RUNTIME : 0;
}

/*
 * main.c -- the outbox-relay command: arguments, signals, wiring, exit codes.
 *
 *   outbox-relay run [-c FILE]                 relay committed outbox rows until stopped
 *   outbox-relay inbox [-c FILE]               write the events of the inbox's topics
 *                                              into the inbox table until stopped
 *   outbox-relay replay [-c FILE] [--dry-run] [--since TIME] [--until TIME]
 *                       [--reason R] [--type T] [--max N] [--from table|topic]
 *                                              send dead-lettered events back (exit 0:
 *                                              all went; 3: some did not)
 *   outbox-relay check [-c FILE] [--offline]   validate the configuration, then test
 *                                              PostgreSQL and Kafka and print the plan
 *   outbox-relay status [-c FILE] [--json] [--inbox]
 *                                              the slot, publication and checkpoint (or,
 *                                              in polling mode, the outbox backlog); the
 *                                              inbox's rows, positions and lag with
 *                                              --inbox or for an inbox-only file
 *   outbox-relay healthcheck [-c FILE]         GET /healthz on admin.listen: exit 0 on
 *                                              2xx (a container HEALTHCHECK)
 *   outbox-relay --version                     print the version
 *
 * The configuration is the file (-c FILE, or $OUTBOX_RELAY_CONFIG) with the
 * OUTBOX_RELAY_* environment variables applied over it; without a file, the
 * environment alone when it sets any of them (docs/configuration.md).
 *
 * This is the only file that may exit().  For `run`, signal handlers do nothing but
 * write a byte to the stop pipe that the relay's poll() loop watches: SIGTERM and
 * SIGINT stop cleanly (a second one stops waiting for Kafka); SIGHUP and SIGPIPE are
 * ignored.
 *
 * As PID 1 (the entrypoint of a container, without an init) the kernel delivers no
 * signal whose disposition is the default: an unhandled SIGTERM would be dropped,
 * and `docker stop` would end in SIGKILL after its grace period, mid-flush.  So
 * every signal the relay cares about has an explicit disposition, set with
 * sigaction(): SIGTERM and SIGINT handled, SIGHUP and SIGPIPE ignored; nothing
 * relies on a default.  The one-shot commands (check, status, healthcheck) get
 * handlers too, which end the process at once (see on_signal_exit()).  The relay forks nothing,
 * so it has no children of its own to reap; a process started with `docker exec`
 * that orphans children in the container would leave zombies to PID 1, which the
 * relay does not collect -- run such containers with an init (docker run --init)
 * if that matters.  This is in docs/configuration.md too.
 *
 * Under systemd (Type=notify) main tells the manager READY=1 when the relay
 * enters its loop and STOPPING=1 when the loop returns; the loop itself sends the
 * watchdog pings and STATUS= lines (sdnotify.h).
 *
 * Exit codes: 0 clean stop (check: all passed); 1 permanent runtime error (check:
 * a server unreachable or a check failed; status: PostgreSQL unreachable;
 * healthcheck: no 2xx answer); 2 bad usage or configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>

#include "admin.h"
#include "config.h"
#include "inbox.h"
#include "replay.h"
#include "log.h"
#include "redact.h"
#include "sdnotify.h"
#include "sink.h"
#include "source.h"
#include "status.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define EXIT_PARTIAL 3 /* replay: some records were not sent */

/* How long check and status wait for each server. */
#define PROBE_TIMEOUT_MS 10000

/* How long healthcheck waits for the admin endpoint's answer. */
#define HEALTHCHECK_TIMEOUT_MS 3000

extern char **environ;

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

/*
 * check and status block in libpq and librdkafka calls that no flag would
 * interrupt, and hold nothing that needs cleaning up: a signal ends them at once,
 * with the shell's 128 + signal status.  _exit() is async-signal-safe.
 */
static void on_signal_exit(int sig)
{
    _exit(128 + sig);
}

static int set_disposition(int sig, void (*handler)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return sigaction(sig, &sa, NULL);
}

/* The dispositions described at the top; handler serves SIGTERM and SIGINT. */
static int setup_signals(void (*handler)(int))
{
    if (set_disposition(SIGTERM, handler) < 0 || set_disposition(SIGINT, handler) < 0 ||
        set_disposition(SIGPIPE, SIG_IGN) < 0 ||
        /* No configuration reload yet: a stray SIGHUP must not kill an unflushed relay. */
        set_disposition(SIGHUP, SIG_IGN) < 0)
        return -1;
    return 0;
}

static int setup_stop_pipe(void)
{
    if (pipe(stop_pipe) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(stop_pipe[i], F_SETFL, fcntl(stop_pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(stop_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: outbox-relay run [-c FILE]                relay committed outbox rows\n"
            "       outbox-relay inbox [-c FILE]              write the inbox topics' events "
            "into\n"
            "                                                 the inbox table\n"
            "       outbox-relay replay [-c FILE] [--dry-run] [--since TIME] [--until TIME]\n"
            "                    [--reason R] [--type T] [--max N] [--from table|topic]\n"
            "                                                 send dead-lettered events back\n"
            "       outbox-relay check [-c FILE] [--offline]  validate the configuration and "
            "test\n"
            "                                                 PostgreSQL and Kafka (--offline:\n"
            "                                                 the configuration only)\n"
            "       outbox-relay status [-c FILE] [--json] [--inbox]\n"
            "                                                 slot, publication and checkpoint\n"
            "                                                 (--inbox: the inbox's positions, lag)\n"
            "       outbox-relay healthcheck [-c FILE]        GET /healthz on admin.listen\n"
            "       outbox-relay --version                    print the version\n"
            "\n"
            "FILE may also be given in the environment as OUTBOX_RELAY_CONFIG.  Every key\n"
            "can be set with an OUTBOX_RELAY_<SECTION>_<KEY> variable (or <NAME>_FILE),\n"
            "which wins over the file; without a file the environment alone is used.\n");
}

static void print_version(void)
{
    printf("outbox-relay %s (librdkafka %s, libpq %d)\n", RELAY_VERSION, rd_kafka_version_str(),
           PQlibVersion());
}

/* Report a configuration error before the log is set up: JSON if the environment asks. */
static void config_error(const char *cmd, const char *msg)
{
    const char *fmt = getenv("OUTBOX_RELAY_LOG_FORMAT");

    if (strcmp(cmd, "run") == 0 && fmt != NULL && strcmp(fmt, "json") == 0) {
        log_set_format(RELAY_LOG_FORMAT_JSON);
        log_error("%s", msg);
        return;
    }
    fprintf(stderr, "%s\n", msg);
}

static int run(struct relay_config *cfg)
{
    char errstr[1024], dsn[512], table[300];
    int64_t watchdog_ms = sdnotify_watchdog_interval_ms();
    const char *mode = cfg->postgres.mode == RELAY_MODE_POLLING ? "polling" : "replication";
    int rc;

    redact_dsn(cfg->postgres.dsn, dsn, sizeof(dsn));
    snprintf(table, sizeof(table), "%s.%s", cfg->outbox.schema, cfg->outbox.table);
    log_fields(RELAY_LOG_INFO,
               LOG_FIELDS(LF_STR("version", RELAY_VERSION), LF_STR("mode", mode),
                          LF_STR("slot", cfg->postgres.slot),
                          LF_STR("publication", cfg->postgres.publication), LF_STR("table", table),
                          LF_STR("sink", relay_config_sink_name(cfg)),
                          LF_STR("dsn", dsn), LF_STR("admin_listen", cfg->admin.listen)),
               "outbox-relay %s starting: slot \"%s\", publication \"%s\", table \"%s.%s\"",
               RELAY_VERSION, cfg->postgres.slot, cfg->postgres.publication, cfg->outbox.schema,
               cfg->outbox.table);
    if (watchdog_ms > 0)
        log_fields(RELAY_LOG_INFO, LOG_FIELDS(LF_INT("interval_ms", watchdog_ms)),
                   "systemd watchdog enabled: the loop pings every %lld ms",
                   (long long)watchdog_ms);

    /*
     * The relay retries its connections by itself, so once the loop runs it is
     * doing its job: that is "started" for the service manager.
     */
    sdnotify_status("%s mode, starting", mode);
    sdnotify_ready();
    if (cfg->postgres.mode == RELAY_MODE_POLLING)
        rc = source_poll_run(cfg, stop_pipe[0], errstr, sizeof(errstr));
    else
        rc = source_repl_run(cfg, stop_pipe[0], errstr, sizeof(errstr));
    sdnotify_stopping();
    if (rc < 0) {
        log_error("%s", errstr);
        sdnotify_status("stopped: %s", errstr);
    }
    return rc < 0 ? EXIT_RUNTIME : 0;
}

/* GET /healthz on admin.listen; 0 on a 2xx answer. */
static int healthcheck(const struct relay_config *cfg)
{
    char errstr[512];
    int status;

    if (cfg->admin.listen[0] == '\0') {
        fprintf(stderr, "outbox-relay: healthcheck: the admin endpoint is disabled "
                        "(admin.listen is empty)\n");
        return EXIT_USAGE;
    }
    status =
        admin_probe(cfg->admin.listen, "/healthz", HEALTHCHECK_TIMEOUT_MS, errstr, sizeof(errstr));
    if (status < 0) {
        fprintf(stderr, "outbox-relay: healthcheck: %s\n", errstr);
        return EXIT_RUNTIME;
    }
    if (status < 200 || status > 299) {
        fprintf(stderr, "outbox-relay: healthcheck: GET /healthz on %s answered %d\n",
                cfg->admin.listen, status);
        return EXIT_RUNTIME;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd, *path = getenv("OUTBOX_RELAY_CONFIG");
    bool offline = false, json = false, inbox_side = false;
    struct replay_options ropts = {0};
    struct relay_config *cfg;
    redact_set *secrets = NULL;
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
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "check") != 0 && strcmp(cmd, "status") != 0 &&
        strcmp(cmd, "healthcheck") != 0 && strcmp(cmd, "inbox") != 0 &&
        strcmp(cmd, "replay") != 0) {
        fprintf(stderr, "outbox-relay: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--offline") == 0 && strcmp(cmd, "check") == 0) {
            offline = true;
        } else if (strcmp(argv[i], "--json") == 0 && strcmp(cmd, "status") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--inbox") == 0 && strcmp(cmd, "status") == 0) {
            inbox_side = true;
        } else if (strcmp(cmd, "replay") == 0 && strcmp(argv[i], "--dry-run") == 0) {
            ropts.dry_run = true;
        } else if (strcmp(cmd, "replay") == 0 && i + 1 < argc &&
                   (strcmp(argv[i], "--since") == 0 || strcmp(argv[i], "--until") == 0 ||
                    strcmp(argv[i], "--reason") == 0 || strcmp(argv[i], "--type") == 0 ||
                    strcmp(argv[i], "--max") == 0 || strcmp(argv[i], "--from") == 0)) {
            const char *opt = argv[i], *val = argv[++i];
            char *end;

            if (strcmp(opt, "--since") == 0) {
                ropts.since = val;
            } else if (strcmp(opt, "--until") == 0) {
                ropts.until = val;
            } else if (strcmp(opt, "--reason") == 0) {
                ropts.reason = val;
            } else if (strcmp(opt, "--type") == 0) {
                ropts.type = val;
            } else if (strcmp(opt, "--from") == 0) {
                if (strcmp(val, "table") != 0 && strcmp(val, "topic") != 0) {
                    fprintf(stderr, "outbox-relay: --from wants \"table\" or \"topic\", "
                                    "not \"%s\"\n",
                            val);
                    return EXIT_USAGE;
                }
                ropts.from = val;
            } else {
                ropts.max = strtoll(val, &end, 10);
                if (*end != '\0' || ropts.max <= 0) {
                    fprintf(stderr, "outbox-relay: --max wants a positive number, not \"%s\"\n",
                            val);
                    return EXIT_USAGE;
                }
            }
        } else {
            fprintf(stderr, "outbox-relay: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (path != NULL && path[0] == '\0')
        path = NULL;
    /* The sinks' sections (and the variables that set them) must be known from here on. */
    if (sink_register_config() < 0) {
        fprintf(stderr, "outbox-relay: internal error: too many configuration keys\n");
        return EXIT_RUNTIME;
    }
    if (path == NULL && !relay_config_env_present(environ)) {
        fprintf(stderr, "outbox-relay: no configuration: use -c FILE, or set OUTBOX_RELAY_* "
                        "variables (docs/configuration.md)\n");
        return EXIT_USAGE;
    }

    /* Signals first: a stop request during start-up must not be lost (PID 1). */
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "inbox") == 0 || strcmp(cmd, "replay") == 0) {
        if (setup_stop_pipe() < 0 || setup_signals(on_signal) < 0) {
            fprintf(stderr, "outbox-relay: cannot set up signal handling: %s\n", strerror(errno));
            return EXIT_RUNTIME;
        }
    } else if (setup_signals(on_signal_exit) < 0) {
        fprintf(stderr, "outbox-relay: cannot set up signal handling: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }

    cfg = relay_config_load_env(path, environ, errstr, sizeof(errstr));
    if (!cfg) {
        config_error(cmd, errstr);
        return EXIT_USAGE;
    }
    /* Secrets are masked in every line from here on, whatever prints them. */
    secrets = redact_set_new();
    if (secrets == NULL || redact_set_add_config(secrets, cfg) < 0) {
        fprintf(stderr, "outbox-relay: out of memory\n");
        rc = EXIT_RUNTIME;
        goto out;
    }
    log_set_secrets(secrets);
    /* Only admin.listen matters to a health check. */
    if (strcmp(cmd, "healthcheck") == 0) {
        rc = healthcheck(cfg);
        goto out;
    }
    if (sink_type_of(cfg) && sink_type_of(cfg)->check_config &&
        sink_type_of(cfg)->check_config(cfg, errstr, sizeof(errstr)) < 0) {
        char clean[1200], msg[1600];

        redact_set_scrub(secrets, errstr, strlen(errstr), clean, sizeof(clean));
        snprintf(msg, sizeof(msg), "%.300s: %s", cfg->path, clean);
        config_error(cmd, msg);
        rc = EXIT_USAGE;
        goto out;
    }

    /* A file may configure the inbox alone (inbox.dsn; no postgres.dsn). */
    if (strcmp(cmd, "inbox") == 0 && cfg->inbox.dsn == NULL) {
        config_error(cmd, "the configuration has no inbox section (inbox.dsn, inbox.consumer, "
                          "inbox.topics): see docs/consumers.md");
        rc = EXIT_USAGE;
        goto out;
    }
    if (strcmp(cmd, "inbox") != 0 && cfg->postgres.dsn == NULL &&
        !((strcmp(cmd, "check") == 0 || strcmp(cmd, "status") == 0) && cfg->inbox.dsn != NULL)) {
        config_error(cmd, "the configuration has only an inbox section: run \"outbox-relay "
                          "inbox\", or set postgres.dsn for the outbox side");
        rc = EXIT_USAGE;
        goto out;
    }
    if (strcmp(cmd, "check") == 0) {
        if (cfg->postgres.dsn == NULL) {
            /* An inbox-only file: its side is what there is to check. */
            rc = offline ? 0 : inbox_check(cfg, PROBE_TIMEOUT_MS, stdout) == 0 ? 0 : EXIT_RUNTIME;
            if (offline)
                printf("configuration \"%s\": ok (inbox only)\n", cfg->path);
            goto out;
        }
        if (offline) {
            printf("configuration \"%s\": ok\n", cfg->path);
            relay_check_plan(cfg, stdout);
            rc = 0;
        } else {
            rc = relay_check(cfg, PROBE_TIMEOUT_MS, stdout, stderr) == 0 ? 0 : EXIT_RUNTIME;
            if (cfg->inbox.dsn != NULL && inbox_check(cfg, PROBE_TIMEOUT_MS, stdout) < 0)
                rc = EXIT_RUNTIME;
        }
        goto out;
    }
    if (strcmp(cmd, "status") == 0 && (inbox_side || cfg->postgres.dsn == NULL)) {
        if (cfg->inbox.dsn == NULL) {
            config_error(cmd, "--inbox: the configuration has no inbox section");
            rc = EXIT_USAGE;
        } else if (inbox_status(cfg, json, PROBE_TIMEOUT_MS, stdout, errstr,
                                sizeof(errstr)) == 0) {
            rc = 0;
        } else {
            fprintf(stderr, "outbox-relay: %s\n", errstr);
            rc = EXIT_RUNTIME;
        }
        goto out;
    }
    if (strcmp(cmd, "status") == 0) {
        if (relay_status(cfg, json, PROBE_TIMEOUT_MS, stdout, errstr, sizeof(errstr)) == 0) {
            rc = 0;
        } else {
            fprintf(stderr, "outbox-relay: %s\n", errstr);
            rc = EXIT_RUNTIME;
        }
        goto out;
    }

    log_set_level(cfg->log.level);
    log_set_format(cfg->log.format);
    if (strcmp(cmd, "inbox") == 0) {
        rc = inbox_run(cfg, stop_pipe[0], errstr, sizeof(errstr)) == 0 ? 0 : EXIT_RUNTIME;
        if (rc != 0)
            log_error("%s", errstr);
    } else if (strcmp(cmd, "replay") == 0) {
        struct replay_summary sum;

        if (replay_run(cfg, &ropts, stop_pipe[0], stdout, &sum, errstr, sizeof(errstr)) < 0) {
            fprintf(stderr, "outbox-relay: replay: %s\n", errstr);
            rc = EXIT_RUNTIME;
        } else {
            rc = sum.skipped + sum.parked + sum.failed > 0 ? EXIT_PARTIAL : 0;
        }
    } else {
        rc = run(cfg);
    }
    close(stop_pipe[0]);
    close(stop_pipe[1]);

out:
    fflush(stdout);
    log_set_secrets(NULL);
    redact_set_free(secrets);
    relay_config_free(cfg);
    return rc;
}

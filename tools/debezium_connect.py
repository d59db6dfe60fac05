#!/usr/bin/env python3
"""debezium_connect.py -- Debezium as its users run it, for comparisons with the relay.

Kafka Connect in standalone mode (org.apache.kafka.connect.cli.ConnectStandalone) with
Debezium's PostgreSQL connector (pgoutput) and its outbox event router configured as
Debezium's outbox documentation shows: routed by `aggregatetype` to
`outbox.event.<aggregatetype>`, keyed by `aggregateid`, the JSON payload expanded,
the event id in an `id` header; StringConverter keys, JsonConverter values without
schemas.  The jars come from Maven (tools/debezium/pom.xml pins Kafka Connect and
Debezium; `mvn package` copies them to tools/debezium/target/lib, cached in ~/.m2).

    with DebeziumConnect(tmp, bootstrap, pg_host, pg_port, "app", "postgres") as dbz:
        dbz.wait_streaming(slot_active)     # a callable: is the slot active?
        dbz.rss_kb(), dbz.cpu_seconds()     # what the JVM used

Only loopback addresses are used.  Extra connector or worker properties (the
throughput settings of the benchmark) are passed as dicts.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
POM_DIR = os.path.join(HERE, "debezium")
LIB = os.path.join(POM_DIR, "target", "lib")

# One JVM; Debezium's documentation runs Connect with a 1-2 GB heap, this machine has
# room for the default of a small deployment.
JVM = ["-Xms256m", "-Xmx1g", "-Djava.awt.headless=true"]


def fetch(log=print):
    """Make sure Kafka Connect and Debezium are in tools/debezium/target/lib."""
    if glob.glob(os.path.join(LIB, "debezium-connector-postgres-*.jar")) and \
            glob.glob(os.path.join(LIB, "connect-runtime-*.jar")):
        return
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("java and mvn are needed to fetch Debezium (scripts/deps.sh "
                           "installs them)")
    t0 = time.time()
    r = subprocess.run(["mvn", "-q", "-B", "package"], cwd=POM_DIR, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"mvn package in {POM_DIR} failed:\n{r.stdout[-3000:]}"
                           f"{r.stderr[-3000:]}")
    log(f"fetched Kafka Connect and Debezium with Maven in {time.time() - t0:.1f}s")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def properties(d):
    return "".join(f"{k}={v}\n" for k, v in d.items())


class DebeziumConnect:
    def __init__(self, tmp, bootstrap, pg_host, pg_port, dbname, user, password="",
                 table="public.outbox", slot="debezium", connector=None, worker=None,
                 log=print):
        self.dir = os.path.join(tmp, "debezium")
        self.bootstrap = bootstrap
        self.log = log
        self.slot = slot
        self.proc = None
        self.port = free_port()
        self.logpath = os.path.join(self.dir, "connect.log")
        self.worker = {
            "bootstrap.servers": bootstrap,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "offset.storage.file.filename": os.path.join(self.dir, "offsets.dat"),
            "offset.flush.interval.ms": "1000",
            "listeners": f"http://127.0.0.1:{self.port}",
            "plugin.discovery": "only_scan",
        }
        self.worker.update(worker or {})
        self.connector = {
            "name": "outbox-connector",
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "plugin.name": "pgoutput",
            "database.hostname": pg_host,
            "database.port": str(pg_port),
            "database.user": user,
            "database.password": password,
            "database.dbname": dbname,
            "topic.prefix": "dbserver1",
            "table.include.list": table,
            "slot.name": slot,
            "publication.name": "dbz_publication",
            "publication.autocreate.mode": "filtered",
            "snapshot.mode": "no_data",
            "tombstones.on.delete": "false",
            "transforms": "outbox",
            "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
            "transforms.outbox.table.expand.json.payload": "true",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
        }
        self.connector.update(connector or {})

    def log4j(self):
        path = os.path.join(self.dir, "log4j2.properties")
        with open(path, "w") as f:
            f.write("rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = out\n"
                    "appender.out.type = Console\nappender.out.name = out\n"
                    "appender.out.layout.type = PatternLayout\n"
                    "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
                    "logger.kafka.name = org.apache.kafka\nlogger.kafka.level = WARN\n"
                    "logger.connect.name = org.apache.kafka.connect.runtime\n"
                    "logger.connect.level = INFO\n")
        return path

    def start(self):
        fetch(self.log)
        os.makedirs(self.dir, exist_ok=True)
        worker = os.path.join(self.dir, "worker.properties")
        connector = os.path.join(self.dir, "connector.properties")
        with open(worker, "w") as f:
            f.write(properties(self.worker))
        with open(connector, "w") as f:
            f.write(properties(self.connector))
        self._log = open(self.logpath, "a")
        self.proc = subprocess.Popen(
            ["java", *JVM, f"-Dlog4j2.configurationFile={self.log4j()}", "-cp",
             os.path.join(LIB, "*"), "org.apache.kafka.connect.cli.ConnectStandalone",
             worker, connector], stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait_streaming(self, slot_active, timeout=120):
        """Wait until the connector streams: its slot is active (slot_active() says so)."""
        deadline = time.time() + timeout
        while not slot_active():
            if self.proc.poll() is not None:
                raise RuntimeError(f"Kafka Connect exited:\n{self.tail()}")
            if time.time() > deadline:
                raise RuntimeError(f"Debezium did not stream within {timeout}s:\n{self.tail()}")
            time.sleep(0.2)

    def tail(self, lines=40):
        with open(self.logpath, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def rss_kb(self, field="VmRSS"):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

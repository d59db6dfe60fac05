#!/usr/bin/env python3
"""kafka_cluster.py -- a real Apache Kafka cluster on loopback, for tests and the demo.

Three Kafka 4 nodes in KRaft mode, each broker and controller at once, in a temporary
directory: replication factor 3, min.insync.replicas 2, unclean leader election off,
topic auto-creation off, small JVM heaps (this is a 2-core machine).  Kafka itself
comes from Maven (tools/kafka/pom.xml pins the version; `mvn package` copies the jars
to tools/kafka/target/lib, cached in ~/.m2), never downloaded by hand.

As a library (tests/integration/harness.py uses it):

    with KafkaCluster(tmpdir) as k:        # fetches, formats, starts, waits
        k.bootstrap                         # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        k.create_topic("t", partitions=4)
        k.kill(2); k.start(2)               # SIGKILL a node, start it again
        k.pause(3); k.resume(3)             # SIGSTOP / SIGCONT

As a command, it starts the cluster, prints the bootstrap servers on the first line
of standard output and then reads commands from standard input, one per line,
answering "ok" or "error: ...":

    topic NAME [PARTITIONS]   kill N   start N   pause N   resume N   leader TOPIC PART
    quit (or end of input)

Only loopback addresses are used.  Everything is removed on exit.
"""

import base64
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
POM_DIR = os.path.join(HERE, "kafka")
LIB = os.path.join(POM_DIR, "target", "lib")

# Per-node JVM settings: small heaps, the serial collector (two cores for everything).
JVM = ["-Xms64m", "-Xmx320m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
       "-Djava.awt.headless=true"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(log=print):
    """Make sure the Kafka jars are in tools/kafka/target/lib (mvn package, cached)."""
    if glob.glob(os.path.join(LIB, "kafka_2.13-*.jar")) and \
            glob.glob(os.path.join(LIB, "kafka-tools-[0-9]*.jar")):
        return
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("java and mvn are needed to fetch Apache Kafka (scripts/deps.sh "
                           "installs them)")
    t0 = time.time()
    r = subprocess.run(["mvn", "-q", "-B", "package"], cwd=POM_DIR, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"mvn package in {POM_DIR} failed:\n{r.stdout[-3000:]}"
                           f"{r.stderr[-3000:]}")
    log(f"fetched Apache Kafka with Maven in {time.time() - t0:.1f}s")


class KafkaCluster:
    def __init__(self, tmp=None, nodes=3, log=print, extra_config=""):
        self.own_tmp = tmp is None
        self.tmp = tmp or tempfile.mkdtemp(prefix="outbox-relay-kafka-")
        self.dir = os.path.join(self.tmp, "kafka")
        self.n = nodes
        self.log = log
        self.extra_config = extra_config
        self.ports = [free_port() for _ in range(nodes)]
        self.controller_ports = [free_port() for _ in range(nodes)]
        self.procs = [None] * nodes
        self.logs = [None] * nodes
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.ports)

    # -- setup

    def classpath(self):
        return os.path.join(LIB, "*")

    def props_path(self, i):
        return os.path.join(self.dir, f"node-{i + 1}.properties")

    def write_config(self, i):
        voters = ",".join(f"{k + 1}@127.0.0.1:{self.controller_ports[k]}" for k in range(self.n))
        rf = min(3, self.n)
        text = f"""process.roles=broker,controller
node.id={i + 1}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{self.ports[i]},CONTROLLER://127.0.0.1:{self.controller_ports[i]}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.ports[i]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={os.path.join(self.dir, f"data-{i + 1}")}
num.partitions=4
default.replication.factor={rf}
min.insync.replicas={min(2, rf)}
offsets.topic.replication.factor={rf}
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={min(2, rf)}
unclean.leader.election.enable=false
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
background.threads=2
log.retention.check.interval.ms=300000
{self.extra_config}
"""
        with open(self.props_path(i), "w") as f:
            f.write(text)

    def java(self, main, *args, **kw):
        return subprocess.run(["java", *JVM, "-cp", self.classpath(), main, *args],
                              capture_output=True, text=True, **kw)

    def format(self):
        os.makedirs(self.dir, exist_ok=True)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        for i in range(self.n):
            self.write_config(i)
            r = self.java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                          self.props_path(i))
            if r.returncode != 0:
                raise RuntimeError(f"formatting node {i + 1} failed:\n{r.stdout}{r.stderr}")

    # -- nodes

    def start(self, node):
        """Start node (1-based); returns at once (see wait_ready())."""
        i = node - 1
        logpath = os.path.join(self.dir, f"node-{node}.log")
        self.logs[i] = open(logpath, "a")
        self.procs[i] = subprocess.Popen(
            ["java", *JVM, "-cp", self.classpath(),
             f"-Dlog4j2.configurationFile={self.log4j()}", "kafka.Kafka", self.props_path(i)],
            stdout=self.logs[i], stderr=subprocess.STDOUT)

    def log4j(self):
        path = os.path.join(self.dir, "log4j2.properties")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = out\n"
                        "appender.out.type = Console\nappender.out.name = out\n"
                        "appender.out.layout.type = PatternLayout\n"
                        "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
                        "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
                        "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n")
        return path

    def started(self, node):
        with open(os.path.join(self.dir, f"node-{node}.log"), errors="replace") as f:
            return "Kafka Server started" in f.read()

    def wait_ready(self, nodes=None, timeout=120):
        nodes = nodes or range(1, self.n + 1)
        deadline = time.time() + timeout
        for node in nodes:
            while not self.started(node):
                if self.procs[node - 1].poll() is not None:
                    raise RuntimeError(f"kafka node {node} exited:\n{self.tail(node)}")
                if time.time() > deadline:
                    raise RuntimeError(f"kafka node {node} not up within {timeout}s:\n"
                                       f"{self.tail(node)}")
                time.sleep(0.2)

    def tail(self, node, lines=30):
        with open(os.path.join(self.dir, f"node-{node}.log"), errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def kill(self, node):
        p = self.procs[node - 1]
        p.send_signal(signal.SIGKILL)
        p.wait()
        # A restarted node must find its "started" line anew.
        self.logs[node - 1].write("\n--- killed ---\n")
        self.logs[node - 1].flush()
        os.rename(os.path.join(self.dir, f"node-{node}.log"),
                  os.path.join(self.dir, f"node-{node}.{int(time.time() * 1000)}.log"))

    def pause(self, node):
        self.procs[node - 1].send_signal(signal.SIGSTOP)

    def resume(self, node):
        self.procs[node - 1].send_signal(signal.SIGCONT)

    # -- topics

    def topic_command(self, *args):
        r = self.java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
                      self.bootstrap, *args, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"kafka-topics {' '.join(args)} failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    def create_topic(self, name, partitions=4, replication=None):
        self.topic_command("--create", "--topic", name, "--partitions", str(partitions),
                           "--replication-factor", str(replication or min(3, self.n)))

    def describe(self, name):
        """{partition: (leader, [isr])} of a topic; leader -1 while it has none."""
        out = {}
        for line in self.topic_command("--describe", "--topic", name).splitlines():
            f = dict(kv.split(": ", 1) for kv in line.strip().split("\t") if ": " in kv)
            if "Partition" in f and "Leader" in f:
                leader = int(f["Leader"]) if f["Leader"].lstrip("-").isdigit() else -1
                out[int(f["Partition"])] = (leader, [int(x) for x in f.get("Isr", "").split(",")
                                                     if x.strip().isdigit()])
        return out

    # -- lifecycle

    def __enter__(self):
        fetch(self.log)
        t0 = time.time()
        self.format()
        for node in range(1, self.n + 1):
            self.start(node)
        self.wait_ready()
        self.log(f"kafka: {self.n} KRaft nodes up in {time.time() - t0:.1f}s at {self.bootstrap}")
        return self

    def close(self):
        for p in self.procs:
            if p and p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.kill()
                    p.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        for f in self.logs:
            if f:
                f.close()
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __exit__(self, *exc):
        self.close()
        return False


def main():
    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    with KafkaCluster(log=log) as k:
        print(k.bootstrap, flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            try:
                if words[0] == "quit":
                    break
                if words[0] == "topic":
                    k.create_topic(words[1], int(words[2]) if len(words) > 2 else 4)
                elif words[0] in ("kill", "pause", "resume"):
                    getattr(k, words[0])(int(words[1]))
                elif words[0] == "start":
                    k.start(int(words[1]))
                    k.wait_ready([int(words[1])])
                elif words[0] == "leader":
                    print(k.describe(words[1])[int(words[2])][0], flush=True)
                    continue
                else:
                    raise ValueError(f"unknown command {words[0]!r}")
                print("ok", flush=True)
            except Exception as e:  # noqa: BLE001 -- every failure is an answer
                print(f"error: {e}".splitlines()[0], flush=True)


if __name__ == "__main__":
    main()

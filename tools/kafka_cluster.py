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

    with KafkaCluster(tmpdir, secure=True) as k:
        k.secure_bootstrap                  # SASL_SSL listeners, SCRAM-SHA-512, ACLs on
        k.ca_pem                            # the test CA that signed the brokers' certificate
        k.users                             # {"relay": "relay-secret"}: SCRAM and PLAIN

A secure cluster keeps its PLAINTEXT listeners for the nodes themselves and for the
tests' own tools (topics, ACLs, the checking consumer): their principal, ANONYMOUS,
is a super user.  Clients on the SASL_SSL listeners authenticate with SCRAM-SHA-512
or PLAIN over TLS (a certificate for 127.0.0.1 signed by a CA made for the run) and are
subject to the StandardAuthorizer's ACLs: without an ACL, nothing is allowed.

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


def lib_dir(version=None):
    """Where the jars of a Kafka version live: target/lib for the pom's own version,
    target/lib-VERSION for another."""
    return LIB if version is None else os.path.join(POM_DIR, "target", f"lib-{version}")


def fetch(log=print, version=None):
    """Make sure the Kafka jars are in lib_dir(version) (mvn package, cached in ~/.m2)."""
    lib = lib_dir(version)
    if glob.glob(os.path.join(lib, "kafka_2.13-*.jar")) and \
            glob.glob(os.path.join(lib, "kafka-tools-[0-9]*.jar")):
        return
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("java and mvn are needed to fetch Apache Kafka (scripts/deps.sh "
                           "installs them)")
    t0 = time.time()
    extra = [] if version is None else [f"-Dkafka.version={version}", f"-Dkafka.lib={lib}"]
    r = subprocess.run(["mvn", "-q", "-B", *extra, "package"], cwd=POM_DIR, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"mvn package in {POM_DIR} failed:\n{r.stdout[-3000:]}"
                           f"{r.stderr[-3000:]}")
    log(f"fetched Apache Kafka {version or ''} with Maven in {time.time() - t0:.1f}s")


def make_test_ca(directory, name="ca"):
    """A CA for the run (name.pem, name.key) in directory, made with openssl."""
    key, pem = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.pem")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN=outbox-relay test {name}", "-keyout", key, "-out", pem)
    return pem, key


def openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed:\n{r.stderr}")


class KafkaCluster:
    def __init__(self, tmp=None, nodes=3, log=print, extra_config="", secure=False,
                 version=None):
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
        self.secure = secure
        self.version = version  # None: the pom's (tools/kafka/pom.xml)
        self.secure_ports = [free_port() for _ in range(nodes)] if secure else []
        self.secure_bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.secure_ports)
        self.users = {"relay": "relay-secret"} if secure else {}
        self.ca_pem = None

    # -- setup

    def classpath(self):
        return os.path.join(lib_dir(self.version), "*")

    def props_path(self, i):
        return os.path.join(self.dir, f"node-{i + 1}.properties")

    def make_certificates(self):
        """The test CA and one broker certificate for 127.0.0.1 (a PKCS#12 keystore)."""
        d = os.path.join(self.dir, "tls")
        os.makedirs(d, exist_ok=True)
        self.ca_pem, ca_key = make_test_ca(d)
        with open(os.path.join(d, "san.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                "-keyout", "broker.key", "-out", "broker.csr", cwd=d)
        openssl("x509", "-req", "-in", "broker.csr", "-CA", self.ca_pem, "-CAkey", ca_key,
                "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "broker.pem",
                cwd=d)
        openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key",
                "-certfile", self.ca_pem, "-name", "broker", "-passout", "pass:changeit",
                "-out", "broker.p12", cwd=d)
        return os.path.join(d, "broker.p12")

    def secure_config(self, i):
        if not self.secure:
            return ""
        plain = " ".join(f'user_{u}="{p}"' for u, p in self.users.items())
        return f"""sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=\
org.apache.kafka.common.security.plain.PlainLoginModule required {plain};
ssl.keystore.type=PKCS12
ssl.keystore.location={self.keystore}
ssl.keystore.password=changeit
ssl.key.password=changeit
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
"""

    def write_config(self, i):
        voters = ",".join(f"{k + 1}@127.0.0.1:{self.controller_ports[k]}" for k in range(self.n))
        rf = min(3, self.n)
        listeners = f"PLAINTEXT://127.0.0.1:{self.ports[i]}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        if self.secure:
            listeners += f",SASL_SSL://127.0.0.1:{self.secure_ports[i]}"
            protocols += ",SASL_SSL:SASL_SSL"
        text = f"""process.roles=broker,controller
node.id={i + 1}
controller.quorum.voters={voters}
listeners={listeners},CONTROLLER://127.0.0.1:{self.controller_ports[i]}
advertised.listeners={listeners}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map={protocols}
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
{self.secure_config(i)}{self.extra_config}
"""
        with open(self.props_path(i), "w") as f:
            f.write(text)

    def java(self, main, *args, **kw):
        return subprocess.run(["java", *JVM, "-cp", self.classpath(), main, *args],
                              capture_output=True, text=True, **kw)

    def format(self):
        os.makedirs(self.dir, exist_ok=True)
        # As Kafka's own Uuid.randomUuid(): never one whose text starts with '-', which
        # the storage tool's argument parser would take for an option (1 run in 64).
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        scram = []
        if self.secure:
            self.keystore = self.make_certificates()
            for user, password in self.users.items():
                scram += ["--add-scram", f'SCRAM-SHA-512=[name="{user}",password="{password}"]']
        for i in range(self.n):
            self.write_config(i)
            r = self.java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                          self.props_path(i), *scram)
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
             f"-Dlog4j2.configurationFile={self.log4j()}",
             f"-Dlog4j.configuration=file:{self.log4j1()}", "kafka.Kafka", self.props_path(i)],
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

    def log4j1(self):
        """Kafka 3.x logs through reload4j (Log4j 1 syntax)."""
        path = os.path.join(self.dir, "log4j.properties")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("log4j.rootLogger=INFO, out\n"
                        "log4j.appender.out=org.apache.log4j.ConsoleAppender\n"
                        "log4j.appender.out.layout=org.apache.log4j.PatternLayout\n"
                        "log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
                        "log4j.logger.org.apache.kafka=WARN\n")
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

    def create_topic(self, name, partitions=4, replication=None, config=None):
        """config: topic settings, e.g. {"message.timestamp.type": "LogAppendTime"}."""
        extra = [a for k, v in (config or {}).items() for a in ("--config", f"{k}={v}")]
        self.topic_command("--create", "--topic", name, "--partitions", str(partitions),
                           "--replication-factor", str(replication or min(3, self.n)), *extra)

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
        fetch(self.log, self.version)
        t0 = time.time()
        self.format()
        for node in range(1, self.n + 1):
            self.start(node)
        self.wait_ready()
        self.log(f"kafka: {self.n} KRaft nodes up in {time.time() - t0:.1f}s at {self.bootstrap}"
                 + (f", SASL_SSL at {self.secure_bootstrap}" if self.secure else ""))
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

"""Integration-test harness: real servers, started and stopped by the tests.

Every integration test runs the real outbox-relay binary against a real PostgreSQL 15
server (initdb into a temporary directory, wal_level=logical, loopback only) and the
project's Kafka-protocol dev broker (tools/devbroker.c, on librdkafka's mock cluster),
and reads what arrived with the project's consumer (tools/consume.c).  Nothing of the
relay is mocked.  Python's standard library only; SQL goes through psql.

When run as root (CI on a fresh machine), PostgreSQL's programs run as the
"postgres" system user, since initdb refuses to run as root.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    # A script may take options of its own (bench/soak_realkafka.py): leave them to it.
    return p.parse_known_args()[0]


def in_venv(module, requirement, name):
    """Re-execute the calling script in build/venv-<name>, a virtual environment with
    requirement (pinned, from PyPI) installed, unless module imports already.  For
    the independent clients tests read brokers with."""
    import importlib
    import venv
    try:
        importlib.import_module(module)
        return
    except ImportError:
        pass
    build = os.path.join(ROOT, "build")
    for i, a in enumerate(sys.argv):
        if a == "--build-dir" and i + 1 < len(sys.argv):
            build = sys.argv[i + 1]
    env_dir = os.path.join(os.path.abspath(build), f"venv-{name}")
    py = os.path.join(env_dir, "bin", "python3")
    if not os.path.exists(py):
        venv.create(env_dir, with_pip=True)
    if subprocess.run([py, "-c", f"import {module}"], capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        requirement], check=True)
    os.execv(py, [py, *sys.argv])


def scaled(n, least=100):
    """n scaled by OUTBOX_TEST_SCALE (default 1): the gcc pass of scripts/test.sh runs the
    issues' full numbers; the sanitizer pass, which looks for memory errors rather than
    counting rows, runs the same cases smaller.  A multiple of least, at least least."""
    f = float(os.environ.get("OUTBOX_TEST_SCALE", "1"))
    return max(least, int(n * f) // least * least)


TEST_CERTS_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_test_certs(d):
    """With the openssl command line, in d: ca.crt/ca.key (a throwaway CA),
    other-ca.crt (an unrelated one) and server.crt/server.key for localhost and
    127.0.0.1, signed by the first; world-readable, for servers running as another
    user.  Returns d."""
    import random

    def openssl(*args):
        r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure(f"openssl {args[0]} failed: {r.stderr.strip()}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "openssl.cnf"), "w") as f:
        f.write(TEST_CERTS_CNF)
    for name in ("ca", "other-ca"):
        openssl("req", "-x509", "-new", "-config", "openssl.cnf", "-extensions", "ca_ext",
                "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.crt", "-days", "2", "-subj", f"/CN=outbox-relay test {name}")
    openssl("req", "-new", "-config", "openssl.cnf", "-newkey", "rsa:2048", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(random.randrange(1, 2**62)), "-days", "2",
            "-extfile", "openssl.cnf", "-extensions", "server_ext", "-out", "server.crt")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    return d


def sign_cert(d, name, ca="ca", usage="clientAuth", sans=None):
    """In d (made by make_test_certs()): name.crt/name.key, CN=name, signed by
    ca.crt/ca.key, with extendedKeyUsage usage (clientAuth: for servers that verify
    their clients) and subjectAltName sans when given; world-readable.  Returns
    (certificate path, key path)."""
    import random

    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"basicConstraints = critical, CA:FALSE\nextendedKeyUsage = {usage}\n" +
                (f"subjectAltName = {sans}\n" if sans else ""))
    for args in (["req", "-new", "-config", "openssl.cnf", "-newkey", "rsa:2048", "-nodes",
                  "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"],
                 ["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey",
                  f"{ca}.key", "-set_serial", str(random.randrange(1, 2**62)), "-days", "2",
                  "-extfile", f"{name}.ext", "-out", f"{name}.crt"]):
        r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure(f"openssl {args[0]} failed: {r.stderr.strip()}")
    for f in (f"{name}.crt", f"{name}.key"):
        os.chmod(os.path.join(d, f), 0o644)
    return os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    path = shutil.which("initdb")
    if path:
        return os.path.dirname(path)
    raise RuntimeError("initdb not found: install postgresql-15")


def as_pg_user(cmd):
    """Prefix cmd so that it runs as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def sanitized(build_dir):
    """True for a build made with -DRELAY_SANITIZE=ON."""
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        return "RELAY_SANITIZE:BOOL=ON" in f.read()


def rss_kb(pid, field="VmRSS"):
    """A process's memory from /proc/PID/status, in kB: VmRSS now, or VmHWM (peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise TestFailure(f"no {field} for process {pid}")


def lsn_to_int(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TestFailure(f"timed out after {timeout}s waiting for {what}")


class PgServer:
    """A throwaway PostgreSQL cluster on a free loopback port."""

    def __init__(self, tmp):
        self.bindir = pg_bindir()
        self.dir = os.path.join(tmp, "pg")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.logfile = os.path.join(self.dir, "postgresql.log")

    def start(self, extra_conf="", before_start=None):
        """initdb, append extra_conf to postgresql.conf, start, create database "app".
        before_start(self), when given, runs after initdb and before the server starts
        (e.g. to install certificates or write pg_hba.conf)."""
        subprocess.run(as_pg_user([os.path.join(self.bindir, "initdb"), "-D", self.data,
                                   "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                   "--no-sync", "--no-instructions"]),
                       check=True, stdout=subprocess.DEVNULL, cwd="/")
        conf = f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.dir}'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
fsync = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
{extra_conf}
"""
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(conf)
        if os.geteuid() == 0:
            shutil.chown(os.path.join(self.data, "postgresql.conf"), "postgres", "postgres")
        if before_start:
            before_start(self)
        self.ctl("start", "-w", "-l", self.logfile)
        self.psql("CREATE DATABASE app", db="postgres")

    def give(self, path, mode=0o600):
        """Make path the server's own (owner postgres when we are root) with mode: what
        PostgreSQL demands of ssl_key_file, and what pg_hba.conf should be."""
        os.chmod(path, mode)
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def write_hba(self, text):
        """Replace pg_hba.conf (before start, or followed by a reload)."""
        path = os.path.join(self.data, "pg_hba.conf")
        with open(path, "w") as f:
            f.write(text)
        self.give(path)

    def ctl(self, *args):
        subprocess.run(as_pg_user([os.path.join(self.bindir, "pg_ctl"), "-D", self.data]
                                  + list(args)), check=True, stdout=subprocess.DEVNULL, cwd="/")

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            subprocess.run(as_pg_user([os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                                       "stop", "-m", mode, "-w"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")

    def dsn(self, db="app", user="postgres"):
        return f"host=127.0.0.1 port={self.port} dbname={db} user={user}"

    def psql(self, sql, db="app", user="postgres"):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db],
                           input=sql, capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure(f"psql failed: {r.stderr.strip()}\nSQL: {sql[:500]}")
        return r.stdout.strip()

    def psql_file(self, path, db="app"):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", "postgres", "-d", db, "-f", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure(f"psql -f {path} failed: {r.stderr.strip()}")

    def apply_sql_dir(self):
        for path in sorted(glob.glob(os.path.join(ROOT, "sql", "*.sql"))):
            self.psql_file(path)

    def slot(self, name="outbox_relay"):
        """(confirmed_flush_lsn as int or None, active) of a slot, or None."""
        row = self.psql("SELECT confirmed_flush_lsn, active FROM pg_replication_slots "
                        f"WHERE slot_name = '{name}'")
        if not row:
            return None
        lsn, active = row.split("|")
        return (lsn_to_int(lsn) if lsn else None, active == "t")

    def current_lsn(self):
        return lsn_to_int(self.psql("SELECT pg_current_wal_lsn()"))


class Broker:
    """The dev broker: librdkafka's mock cluster, driven through its stdin."""

    def __init__(self, build_dir, tmp, topics, brokers=1):
        self.logfile = open(os.path.join(tmp, "devbroker.log"), "w")
        cmd = [os.path.join(build_dir, "outbox-devbroker"), "--brokers", str(brokers)]
        for t in topics:
            cmd += ["--topic", t]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.logfile, text=True, bufsize=1)
        self.bootstrap = self.proc.stdout.readline().strip()
        check(self.bootstrap, "dev broker printed no bootstrap list")

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        check(reply == "ok", f"dev broker: {line!r} -> {reply!r}")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()


class ConsumerBase:
    """What every test consumer offers, whatever client reads the broker: messages (in
    the shape of decode_message()), poll() to take in what arrived and return the
    count, and alive().  The waits and counts are written once, here."""

    def alive(self):
        return True

    def distinct(self):
        """How many distinct event ids (ce_id) were consumed (redeliveries do not count)."""
        self.poll()
        return len({m["headers"]["ce_id"] for m in self.messages})

    def snapshot(self):
        self.poll()
        return list(self.messages)

    def wait_count(self, n, timeout):
        return wait_for(lambda: self.poll() >= n, timeout, f"{n} messages (have "
                        f"{len(self.messages)})", interval=0.05)

    def wait_distinct(self, n, timeout, what="every row", interval=0.1):
        """Wait until n distinct event ids were consumed; fails early if the consumer
        died."""
        def done():
            if not self.alive():
                raise TestFailure(f"the consumer exited while waiting for {what}")
            return self.distinct() >= n
        return wait_for(done, timeout, f"{what} ({n} distinct events)", interval=interval)

    def wait_quiet(self, quiet=1.5, timeout=60):
        """Wait until no new message arrived for `quiet` seconds; returns the count."""
        deadline = time.time() + timeout
        last, since = self.poll(), time.time()
        while time.time() < deadline:
            time.sleep(0.1)
            n = self.poll()
            if n != last:
                last, since = n, time.time()
            elif time.time() - since >= quiet:
                return n
        raise TestFailure("consumer never went quiet")


class Consumer(ConsumerBase):
    """outbox-consume writing one JSON line per message to a file we read as it grows."""

    def __init__(self, build_dir, tmp, bootstrap, topics, name="consumer"):
        self.path = os.path.join(tmp, f"{name}.jsonl")
        self.errlog = open(os.path.join(tmp, f"{name}.log"), "w")
        cmd = [os.path.join(build_dir, "outbox-consume"), "-b", bootstrap, "-o", self.path,
               "--timeout", "3600000"]
        for t in topics:
            cmd += ["-t", t]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.errlog)
        self.messages = []
        self._offset = 0
        self._partial = b""

    def alive(self):
        return self.proc.poll() is None

    def poll(self):
        """Read the lines written since the last call; returns the total count."""
        if not os.path.exists(self.path):
            return len(self.messages)
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                self.messages.append(decode_message(json.loads(line)))
        return len(self.messages)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.poll()
        self.errlog.close()


def decode_message(m):
    """Flatten a consumer line: headers become a dict (last value wins) and a list."""
    m["header_list"] = m.get("headers") or []
    m["headers"] = {k: v for k, v in m["header_list"]}
    return m


class Relay:
    """The outbox-relay daemon, with its log in the temporary directory."""

    runs = 0

    def __init__(self, build_dir, tmp, config_text, name="relay", command="run"):
        self.command = command
        self.build_dir = build_dir
        self.tmp = tmp
        self.cfg = os.path.join(tmp, f"{name}.yaml")
        with open(self.cfg, "w") as f:
            f.write(config_text)
        self.name = name
        self.proc = None
        self.logpath = None

    def start(self, env=None):
        Relay.runs += 1
        self.logpath = os.path.join(self.tmp, f"{self.name}.{Relay.runs}.log")
        self._log = open(self.logpath, "w")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.proc = subprocess.Popen([os.path.join(self.build_dir, "outbox-relay"),
                                      self.command, "-c", self.cfg], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=e)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"relay did not exit within {timeout}s\n{self.stacks()}")
        self._log.close()
        return rc

    def stacks(self):
        """Every thread's stack of the running relay (gdb), to say where it is stuck."""
        if not self.alive() or not shutil.which("gdb"):
            return "(no stacks: the relay is not running or gdb is missing)"
        r = subprocess.run(["gdb", "-batch", "-p", str(self.proc.pid), "-ex",
                            "thread apply all bt"], capture_output=True, text=True, timeout=60)
        return "stacks of the relay's threads:\n" + "\n".join(
            line for line in r.stdout.splitlines() if line.startswith(("#", "Thread")))

    def stop(self, timeout=15):
        """SIGTERM; returns (exit code, seconds taken)."""
        t0 = time.time()
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        return rc, time.time() - t0

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()
            self._log.close()

    def log_text(self):
        with open(self.logpath) as f:
            return f.read()


def relay_config(pg, broker, topic="outbox.event.{aggregatetype}", extra="", kafka_props="",
                 user="outbox_relay"):
    """A configuration for the test servers.  The relay connects as the least-privilege
    role from sql/003_relay_role.sql, not as a superuser."""
    return f"""admin:
  listen: "127.0.0.1:0"
postgres:
  dsn: "{pg.dsn(user=user)}"
  slot: outbox_relay
  publication: outbox_relay
  status_interval: 1s
  retry_interval: 1s
outbox:
  table: public.outbox
kafka:
  brokers: "{broker.bootstrap}"
  topic: "{topic}"
  properties:
    linger.ms: 5
{kafka_props}{extra}"""


def insert_sql(first, ntx, per_tx, nkeys=50, aggregatetype="order"):
    """SQL for ntx transactions of per_tx rows; row n (from first) has payload {"n": n}
    and key order-(n % nkeys), so commit order is the order of n."""
    out = []
    for t in range(ntx):
        lo = first + t * per_tx
        hi = lo + per_tx - 1
        out.append(
            "BEGIN;\n"
            "INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload) "
            f"SELECT '{aggregatetype}', 'order-' || (g % {nkeys}), 'OrderCreated', "
            f"jsonb_build_object('n', g) FROM generate_series({lo}, {hi}) g;\n"
            "COMMIT;\n")
    return "".join(out)


def start_insert_job(pg, sql):
    """Run the SQL in a background psql; returns the Popen."""
    return subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                             "-p", str(pg.port), "-U", "postgres", "-d", "app"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True), sql


def feed(job, text):
    """Write text to a job's stdin from a thread (a large script would block the caller
    until psql had read most of it) and close it."""
    import threading

    def run():
        job.stdin.write(text)
        job.stdin.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def start_streaming(env, relay, job_text=None):
    """Start the relay and wait until its slot is active; then feed the insert job (a
    (Popen, text) pair from start_insert_job) if one is given."""
    relay.start()
    wait_for(lambda: (env.pg.slot() or (0, False))[1], 60, "the relay to stream")
    if job_text:
        job, text = job_text
        job.stdin.write(text)
        job.stdin.close()


# A relay config's pipeline section for outage tests: a small in-flight budget, so that
# a backlog written during the outage must stay in PostgreSQL.
OUTAGE_PIPELINE = "pipeline:\n  max_inflight_events: 5000\n  max_inflight_bytes: 1048576\n"


def outage_backlog(env, relay, first, mb=20):
    """While the relay's broker is down: commit about mb MB of outbox rows (100-row
    transactions, 2 kB of hex each, keys "during-N": their own keys, since other
    writers commit around them) and check, 3 s later, that the relay is alive, its
    slot is before them, it stopped reading (more than 5 MB of WAL unsent: its
    in-flight limit, OUTAGE_PIPELINE, holds) and its memory grew less than 16 MB.
    Returns (rows written, unsent bytes, RSS before, RSS after) for the log."""
    pg = env.pg
    rss0 = rss_kb(relay.proc.pid)
    # The sanitizer pass (a scale below 1) writes less and skips the two size checks:
    # its allocators inflate RSS, and the socket buffers would hold a small backlog.
    full = float(os.environ.get("OUTBOX_TEST_SCALE", "1")) >= 1
    mb = mb if full else max(2, mb // 4)
    rows = mb * 500 // 100 * 100
    pg.psql(insert_sql(first, rows // 100, 100).replace("'order-' ||", "'during-' ||").replace(
        "jsonb_build_object('n', g)",
        "jsonb_build_object('n', g, 'pad', (SELECT string_agg(md5(g::text || i::text), '') "
        "FROM generate_series(1, 60) i))"))
    during = pg.current_lsn()
    time.sleep(3)
    check(relay.alive(), "the relay exited while its broker was down")
    check(pg.slot()[0] < during, "the slot moved past rows the broker never acknowledged")
    unsent = int(float(pg.psql("SELECT pg_current_wal_lsn() - sent_lsn FROM "
                               "pg_stat_replication WHERE application_name = 'outbox-relay'")
                       or 0))
    rss1 = rss_kb(relay.proc.pid)
    if full:
        check(unsent > 5_000_000, f"only {unsent} bytes of WAL unsent: the relay kept "
              "reading while its broker was down")
    if full and not sanitized(env.args.build_dir):
        check(rss1 - rss0 < 16_000, f"relay memory grew by {rss1 - rss0} kB during the outage")
    return rows, unsent, rss0, rss1


def db_rows(pg):
    """{id: (aggregateid, n)} for every outbox row."""
    rows = {}
    out = pg.psql("SELECT id, aggregateid, payload->>'n' FROM public.outbox")
    for line in out.splitlines():
        i, k, n = line.split("|")
        rows[i] = (k, int(n))
    return rows


def check_per_key_order(messages, allow_replay=False):
    """Per key, in partition order, payload n must grow.  With allow_replay, a message
    may go back only if it is a redelivery (its event id was seen before): a replayed
    suffix.  A first delivery that goes back is a reordering and fails."""
    last = {}
    seen = set()
    partitions = {}
    for m in messages:
        k = m["key"]
        n = json.loads(m["value"])["n"]
        rid = m["headers"].get("ce_id")
        partitions.setdefault(k, set()).add((m["topic"], m["partition"]))
        if n <= last.get(k, -1):
            check(allow_replay and rid in seen,
                  f"key {k}: n={n} arrived after n={last.get(k)} (not a redelivery)")
        else:
            last[k] = n
        seen.add(rid)
    for k, ps in partitions.items():
        check(len(ps) == 1, f"key {k} spread over partitions {sorted(ps)}")


def check_exact(pg, messages, n_expected):
    """Every outbox row arrived exactly once, exactly as written (topic, key, value,
    CloudEvents headers, position headers), in commit order per key.  For runs
    without faults, where no duplicate is allowed."""
    rows = db_rows(pg)
    check(len(rows) == n_expected, f"database has {len(rows)} rows, want {n_expected}")
    check(len(messages) == n_expected, f"{len(messages)} messages for {n_expected} rows")
    seen = set()
    for m in messages:
        hd = m["headers"]
        rid = hd.get("ce_id")
        check(rid in rows, f"message with unknown ce_id {rid!r}")
        check(rid not in seen, f"duplicate event {rid}")
        seen.add(rid)
        key, n = rows[rid]
        check(m["topic"] == "outbox.event.order", f"topic {m['topic']}")
        check(m["key"] == key, f"event {rid}: key {m['key']!r}, want {key!r}")
        check(json.loads(m["value"]) == {"n": n}, f"event {rid}: value {m['value']!r}")
        check(hd.get("ce_type") == "OrderCreated", f"ce_type {hd.get('ce_type')!r}")
        check(hd.get("ce_source") == "/app/public.outbox", f"ce_source {hd.get('ce_source')!r}")
        check(hd.get("ce_specversion") == "1.0", "ce_specversion")
        check(hd.get("ce_subject") == key, "ce_subject")
        check(hd.get("content-type") == "application/json", "content-type")
        check(hd.get("ce_time", "").endswith("Z"), f"ce_time {hd.get('ce_time')!r}")
        check("ce_pglsn" in hd and "ce_pgxid" in hd and "ce_pgindex" in hd,
              "position headers")
    check(seen == set(rows), "every row arrived")
    check_per_key_order(ordered_by_partition(messages))


def check_stream(pg, messages, confirmed_at_stop=(), pre_stop_ids=(), dup_bounds_only=()):
    """The four invariants over everything consumed.

    confirmed_at_stop[i] is the slot's confirmed_flush_lsn read right after failure i
    (kill, crash, terminated walsender), and pre_stop_ids[i] the ids consumed (with the
    consumer caught up) then: every event below confirmed_at_stop[i] must be among them
    (checkpoint safety), and every redelivered event must lie at or after one of the
    positions.  Each position needs its snapshot: the check is never skipped silently.
    dup_bounds_only are positions read where no snapshot can be taken (mid-stream):
    they only bound duplicates.  Returns (rows, distinct, duplicates)."""
    check(len(pre_stop_ids) == len(confirmed_at_stop),
          f"check_stream: {len(confirmed_at_stop)} confirmed positions but "
          f"{len(pre_stop_ids)} snapshots of the consumed ids: checkpoint safety needs one "
          "each (pass positions without one as dup_bounds_only)")
    rows = db_rows(pg)
    ids = [m["headers"]["ce_id"] for m in messages]
    distinct = set(ids)
    # 1. No loss: every committed row arrived.
    missing = set(rows) - distinct
    check(not missing, f"{len(missing)} rows never arrived, e.g. {sorted(missing)[:3]}")
    check(distinct <= set(rows), "messages for rows that do not exist")
    # A redelivery is the same event: same position and value.
    first = {}
    for m in messages:
        hd = m["headers"]
        ident = (hd["ce_pglsn"], hd["ce_pgxid"], hd["ce_pgindex"], m["value"], m["key"])
        rid = hd["ce_id"]
        check(first.setdefault(rid, ident) == ident,
              f"event {rid} redelivered with another position or value")
    for confirmed, before in zip(confirmed_at_stop, pre_stop_ids):
        before = set(before)
        for rid, ident in first.items():
            committed_before_checkpoint = lsn_to_int(ident[0]) < confirmed
            # 2. Checkpoint safety: whatever the slot had confirmed was delivered.
            if committed_before_checkpoint:
                check(rid in before, f"event {rid} at {ident[0]} was confirmed "
                      "before Kafka had it")
    # 3. Bounded duplicates: only events at or after a stop's confirmed position.
    dups = len(ids) - len(distinct)
    counts = {}
    for rid in ids:
        counts[rid] = counts.get(rid, 0) + 1
    for rid, c in counts.items():
        if c > 1:
            lsn = lsn_to_int(first[rid][0])
            check(any(lsn >= conf for conf in list(confirmed_at_stop) + list(dup_bounds_only)),
                  f"event {rid} at {first[rid][0]} redelivered although confirmed")
    # 4. Per-key order, except a replayed suffix.
    check_per_key_order(ordered_by_partition(messages), allow_replay=True)
    return len(rows), len(distinct), dups


def ordered_by_partition(messages):
    """Messages sorted by (topic, partition, offset): the order a consumer of each
    partition sees."""
    return sorted(messages, key=lambda m: (m["topic"], m["partition"], m["offset"]))


class Env:
    """Temporary directory, PostgreSQL, broker; torn down in reverse order."""

    def __init__(self, args, topics=("outbox.event.order:4",), pg_conf="", brokers=1,
                 pg_setup=None):
        self.args = args
        self.pg_conf = pg_conf
        self.pg_setup = pg_setup
        self.nbrokers = brokers
        self.tmp = tempfile.mkdtemp(prefix="outbox-relay-it-")
        os.chmod(self.tmp, 0o755)
        self.pg = None
        self.broker = None
        self.relays = []
        self.consumers = []
        self.topics = topics

    def __enter__(self):
        self.pg = PgServer(self.tmp)
        if self.pg_setup:
            self.pg.start(self.pg_conf, before_start=self.pg_setup)
        else:
            self.pg.start(self.pg_conf)
        # Twice: every script in sql/ must be idempotent.
        self.pg.apply_sql_dir()
        self.pg.apply_sql_dir()
        self.broker = Broker(self.args.build_dir, self.tmp, self.topics, self.nbrokers)
        return self

    def relay(self, config_text=None, name="relay", command="run"):
        r = Relay(self.args.build_dir, self.tmp,
                  config_text or relay_config(self.pg, self.broker), name, command)
        self.relays.append(r)
        return r

    def consumer(self, topics=("outbox.event.order",), name="consumer"):
        c = Consumer(self.args.build_dir, self.tmp, self.broker.bootstrap, topics, name)
        self.consumers.append(c)
        return c

    def __exit__(self, exc_type, exc, tb):
        for r in self.relays:
            r.kill()
        for c in self.consumers:
            c.stop()
        if self.broker:
            self.broker.stop()
        if self.pg:
            self.pg.stop("immediate")
        if exc_type is not None:
            self.dump_logs()
        if not self.args.keep and exc_type is None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log(f"kept {self.tmp}")
        return False

    def dump_logs(self):
        for path in sorted(glob.glob(os.path.join(self.tmp, "*.log")) +
                           glob.glob(os.path.join(self.tmp, "pg", "*.log"))):
            with open(path, errors="replace") as f:
                lines = f.readlines()
            print(f"----- {path} (last 40 lines) -----")
            sys.stdout.writelines(lines[-40:])


def main(test, **env_options):
    """Run test(env) and print a closing line ctest-style runners understand."""
    args = parse_args()
    t0 = time.time()
    try:
        with Env(args, **env_options) as env:
            test(env)
    except TestFailure as e:
        print(f"FAIL: {e}")
        print("0 passed, 1 failed")
        sys.exit(1)
    log(f"done in {time.time() - t0:.1f}s")
    print("1 passed, 0 failed")

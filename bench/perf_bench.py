"""Issue 7 benchmark: is the relay as fast as PostgreSQL can decode?  (Run by hand, not
a test; the numbers go to docs/performance.md.  bench/README.md explains each part.)

    python3 bench/perf_bench.py --build-dir build [--only drain,steady,poll-drain,poll-steady]
        [--rows-100 200000] [--rows-1 50000] [--rounds 2] [--rate 5000] [--seconds 30]
        [--baseline-build-dir DIR] [--extra-build LABEL=DIR] [--kafka-property NAME=VALUE]
        [--json results.json]

One run on one machine, everything side by side, against a throwaway PostgreSQL 15 and
the dev broker, started as the integration tests start them (tests/integration/harness.py):

drain        N outbox rows are written first -- 100-row transactions, then, separately,
             1-row transactions -- and then consumed from identical slots (copies of one
             slot made before the rows were written, so the same LSN and the same WAL):
             - pg_recvlogical, pgoutput protocol 1 with the relay's options, to /dev/null,
               timed from its start until it exits at --endpos = the end of the last commit;
             - outbox-relay, timed from its start until PostgreSQL shows its slot confirmed
               at or past that same LSN (every event acknowledged by Kafka first).
             Rounds alternate which one goes first.  events/s for both, and the ratio.
steady       a paced writer (a separate psql session, one multi-row INSERT every --tick-ms)
             at --rate events/s for --seconds after a --warmup; commit -> acknowledgement
             latency p50/p99/max, relay CPU (% of one core) over the window, peak RSS.
poll-drain   polling mode (postgres.mode: polling): N rows in 100-row transactions written
             first; time until every row is acknowledged, and until the table is empty.
poll-steady  polling mode under the same paced writer as steady.

--baseline-build-dir and --extra-build measure more relay builds in the same run (the
drain interleaves them round by round).  Acknowledgement times come from bench/acktrace.c, an LD_PRELOAD shim compiled on the fly
that timestamps each delivery report when the relay receives it (see its header).  CPU and
memory come from /proc.  The machine's load is recorded beside every result.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness as h  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
RECORD = 56  # bytes per acktrace record (bench/acktrace.c)

# A realistic event: ~150 bytes of jsonb, 1000 aggregates.
ROW_SELECT = (
    "SELECT 'order', 'order-' || (g % 1000), 'OrderCreated', "
    "jsonb_build_object('n', g, 'customer', 'customer-' || (g % 997), "
    "'total', round((g % 100000) / 100.0, 2), 'currency', 'EUR', "
    "'items', jsonb_build_array(jsonb_build_object('sku', 'sku-' || (g % 101), "
    "'qty', 1 + g % 5, 'price', 9.99)))")
INSERT = "INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload) "

PG_CONF = """
max_replication_slots = 64
max_wal_senders = 20
autovacuum = off
checkpoint_timeout = 30min
max_wal_size = 8GB
shared_buffers = 256MB
"""


# --------------------------------------------------------------------------- helpers

def proc_cpu(pid):
    """utime + stime of a process (all its threads), in seconds; None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid, key):
    """A kB field of /proc/PID/status (VmHWM, VmRSS)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_times():
    """System-wide jiffies: (user, nice, system, idle+iowait, total)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait = v[0], v[1], v[2], v[3], v[4]
    return user, nice, system + sum(v[5:8]), idle + iowait, sum(v[:8])


class Load:
    """The machine's load over an interval: loadavg at both ends, and how the CPUs were
    spent (normal-priority busy, nice -- the fuzzers run at nice 19 --, idle)."""

    def __init__(self):
        self.la0 = os.getloadavg()
        self.t0 = cpu_times()

    def done(self):
        t1 = cpu_times()
        d = [b - a for a, b in zip(self.t0, t1)]
        tot = d[4] or 1
        self.result = {
            "loadavg_start": round(self.la0[0], 2),
            "loadavg_end": round(os.getloadavg()[0], 2),
            "busy_pct": round(100 * (d[0] + d[2]) / tot, 1),
            "nice_pct": round(100 * d[1] / tot, 1),
            "idle_pct": round(100 * d[3] / tot, 1),
        }
        return self.result

    @staticmethod
    def text(r):
        return (f"load {r['loadavg_start']}->{r['loadavg_end']}, CPUs {r['busy_pct']}% busy "
                f"+ {r['nice_pct']}% nice, {r['idle_pct']}% idle")


def machine():
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        info["mem_total_mb"] = int(f.readline().split()[1]) // 1024
    r = subprocess.run(["pkg-config", "--modversion", "rdkafka"], capture_output=True, text=True)
    info["librdkafka"] = r.stdout.strip()
    r = subprocess.run([os.path.join(h.pg_bindir(), "postgres"), "--version"],
                       capture_output=True, text=True)
    info["postgres"] = r.stdout.strip()
    return info


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def lsn_text(v):
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


def parse_rfc3339_us(b):
    """'2026-11-23T17:41:43.123456Z' -> microseconds since the epoch."""
    s = b.decode()
    dt = datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    frac = s[20:-1] if len(s) > 20 else "0"
    return int(dt.timestamp()) * 1_000_000 + int(frac.ljust(6, "0")[:6])


def read_acks(path):
    """[(ack_us, err, commit_us or None, produce_us or 0)] from an acktrace file."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, "rb") as f:
        data = f.read()
    cache = {}
    for off in range(0, len(data) - RECORD + 1, RECORD):
        ack = int.from_bytes(data[off:off + 8], "little", signed=True)
        produced = int.from_bytes(data[off + 8:off + 16], "little", signed=True)
        err = int.from_bytes(data[off + 16:off + 20], "little", signed=True)
        n = int.from_bytes(data[off + 20:off + 24], "little", signed=True)
        ts = data[off + 24:off + 24 + n] if n > 0 else None
        commit = None
        if ts:
            commit = cache.get(ts)
            if commit is None:
                commit = cache[ts] = parse_rfc3339_us(ts)
        out.append((ack, err, commit, produced))
    return out


def build_shim(tmp):
    so = os.path.join(tmp, "acktrace.so")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "rdkafka"], capture_output=True,
                           text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", so, os.path.join(HERE, "acktrace.c")]
                   + flags + ["-ldl"], check=True)
    return so


class Sql:
    """One long-lived psql session: cheap to ask often (no process per query)."""

    def __init__(self, pg):
        self.p = subprocess.Popen(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=0",
                                   "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                                   "-d", "app"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)

    def query(self, sql):
        self.p.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo __bench_end__\n")
        self.p.stdin.flush()
        lines = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise h.TestFailure("psql session ended")
            line = line.rstrip("\n")
            if line == "__bench_end__":
                break
            lines.append(line)
        errors = [ln for ln in lines if "ERROR:" in ln or "FATAL:" in ln]
        if errors:
            raise h.TestFailure(f"{sql[:200]}: {errors[0]}")
        return "\n".join(lines)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def has_admin(build_dir):
    """Whether this build's relay has the admin endpoint (admin.listen)."""
    with open(os.path.join(build_dir, "outbox-relay"), "rb") as f:
        return b"admin endpoint listening" in f.read()


def relay_yaml(pg, broker, slot, mode="replication", extra="", props=(), admin=False):
    """The relay's configuration: the shipped defaults except what the servers need.  With
    admin, the admin endpoint listens on an ephemeral loopback port (the relay logs it)."""
    text = 'admin:\n  listen: "127.0.0.1:0"\n' if admin else ""
    text += f"""postgres:
  dsn: "{pg.dsn(user='outbox_relay')}"
  slot: {slot}
  publication: outbox_relay
"""
    if mode == "polling":
        text += "  mode: polling\n"
    text += f"""outbox:
  table: public.outbox
kafka:
  brokers: "{broker.bootstrap}"
  topic: "outbox.event.{{aggregatetype}}"
"""
    if props:
        text += "  properties:\n" + "".join(f"    {k}: \"{v}\"\n" for k, v in props)
    return text + extra


class RelayProc:
    """outbox-relay under the acktrace shim."""

    def __init__(self, env, shim, name, config, build_dir=None):
        self.build_dir = build_dir or env.args.build_dir
        self.env = env
        self.acks = os.path.join(env.tmp, f"{name}.acks")
        if os.path.exists(self.acks):
            os.unlink(self.acks)
        self.relay = h.Relay(self.build_dir, env.tmp, config, name)
        env.relays.append(self.relay)
        self.shim = shim

    def start(self):
        self.t0 = time.time()
        self.relay.start(env={"LD_PRELOAD": self.shim, "ACKTRACE_FILE": self.acks})
        self.pid = self.relay.proc.pid
        return self

    def stop(self):
        rc, _ = self.relay.stop(timeout=60)
        text = self.relay.log_text()
        m = re.findall(r"stopped: (\d+) events produced, (\d+) delivered", text)
        produced, delivered = (int(m[-1][0]), int(m[-1][1])) if m else (None, None)
        return rc, produced, delivered

    def metrics(self):
        """The relay's own commit-to-acknowledgement histogram from its admin endpoint,
        {upper bound in seconds: cumulative count}, or None without an endpoint."""
        m = re.search(r"admin endpoint listening on \S+ \(port (\d+)\)", self.relay.log_text())
        if not m:
            return None
        url = f"http://127.0.0.1:{m.group(1)}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            b = re.match(r'outbox_relay_commit_to_ack_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
            if b:
                out[float(b.group(1))] = int(b.group(2))
        return out

    def log_has(self, s):
        try:
            with open(self.relay.logpath) as f:
                return s in f.read()
        except OSError:
            return False


def fill_procedure(sql):
    sql.query(f"""CREATE OR REPLACE PROCEDURE bench_fill(ntx int, per_tx int, first bigint)
LANGUAGE plpgsql AS $$
DECLARE lo bigint;
BEGIN
  FOR i IN 0 .. ntx - 1 LOOP
    lo := first + i::bigint * per_tx;
    {INSERT} {ROW_SELECT} FROM generate_series(lo, lo + per_tx - 1) g;
    COMMIT;
  END LOOP;
END $$""")


def fill(sql, ntx, per_tx, first):
    """Write ntx transactions of per_tx rows; returns (seconds, end LSN of the last
    commit as an int).  The insert position right after the last COMMIT, read in the
    same session, is the end of that commit record (autovacuum is off, so nothing else
    writes WAL in between; a background running-xacts record could, and would only make
    both consumers wait for the same keepalive)."""
    t0 = time.time()
    sql.query(f"CALL bench_fill({ntx}, {per_tx}, {first})")
    end = h.lsn_to_int(sql.query("SELECT pg_current_wal_insert_lsn()"))
    return time.time() - t0, end


def walsender_pid(sql, slot):
    v = sql.query(f"SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{slot}'")
    return int(v) if v.strip() else None


# --------------------------------------------------------------------------- drain

def run_recvlogical(env, sql, slot, end):
    """pg_recvlogical until --endpos; returns a result dict."""
    pg = env.pg
    cmd = [os.path.join(h.pg_bindir(), "pg_recvlogical"), "-h", "127.0.0.1", "-p", str(pg.port),
           "-U", "postgres", "-d", "app", "--slot", slot, "--start", "--no-loop",
           "-o", "proto_version=1", "-o", "publication_names=outbox_relay",
           "-o", "messages=true", "-f", "/dev/null", "-E", lsn_text(end)]
    load = Load()
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ws_pid, ws_cpu = None, None
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if ws_pid is None:
            ws_pid = walsender_pid(sql, slot)
        elif (c := proc_cpu(ws_pid)) is not None:
            ws_cpu = c
        time.sleep(0.01)
    elapsed = time.time() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    h.check(p.returncode == 0, f"pg_recvlogical exited {p.returncode}: {err}")
    confirmed = h.lsn_to_int(sql.query(
        f"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"))
    h.check(confirmed >= end, f"pg_recvlogical left its slot at {lsn_text(confirmed)}")
    return {"seconds": elapsed, "recv_cpu_s": ru.ru_utime + ru.ru_stime,
            "walsender_cpu_s": ws_cpu, "load": load.done()}


def run_relay_drain(env, sql, shim, slot, end, nrows, name, build_dir, props):
    """outbox-relay until its slot is confirmed at or past end; returns a result dict."""
    r = RelayProc(env, shim, name, relay_yaml(env.pg, env.broker, slot, props=props,
                                              admin=has_admin(build_dir)), build_dir)
    load = Load()
    broker_cpu0 = proc_cpu(env.broker.proc.pid)
    r.start()
    ws_pid, ws_cpu, relay_cpu, t_stream = None, None, None, None
    deadline = r.t0 + 600
    while True:
        now = time.time()
        h.check(now < deadline, "relay drain took more than 600 s")
        h.check(r.relay.alive(), "relay exited during the drain:\n" + r.relay.log_text()[-2000:])
        row = sql.query("SELECT active_pid, confirmed_flush_lsn >= "
                        f"'{lsn_text(end)}'::pg_lsn FROM pg_replication_slots "
                        f"WHERE slot_name = '{slot}'")
        pid, done = row.split("|")
        relay_cpu = proc_cpu(r.pid)
        if pid and ws_pid is None:
            ws_pid = int(pid)
            t_stream = time.time() - r.t0
        if ws_pid and (c := proc_cpu(ws_pid)) is not None:
            ws_cpu = c
        if done == "t":
            break
        time.sleep(0.01)
    elapsed = time.time() - r.t0
    broker_cpu = proc_cpu(env.broker.proc.pid) - broker_cpu0
    hwm = proc_status(r.pid, "VmHWM")
    ld = load.done()
    rc, produced, delivered = r.stop()
    h.check(rc == 0, f"relay exited {rc}")
    h.check(delivered == nrows, f"relay delivered {delivered} events, want {nrows}")
    acks = read_acks(r.acks)
    ok = [a for a in acks if a[1] == 0]
    h.check(len(ok) == nrows, f"{len(ok)} acknowledgements recorded, want {nrows}")
    last_ack = max(a[0] for a in ok) / 1e6 - r.t0
    first_ack = min(a[0] for a in ok) / 1e6 - r.t0
    return {"seconds": elapsed, "first_ack_s": first_ack, "last_ack_s": last_ack,
            "streaming_after_s": t_stream, "relay_cpu_s": relay_cpu,
            "walsender_cpu_s": ws_cpu, "broker_cpu_s": broker_cpu, "relay_peak_rss_kb": hwm,
            "load": ld}


def drain(env, sql, shim, shape, nrows, rounds, first, relays):
    """One shape: make identical slots (one per consumer and round), write the rows, run
    pg_recvlogical and each relay build on them.  relays: [(label, build_dir, props)]."""
    per_tx = 100 if shape == "100-row" else 1
    ntx = nrows // per_tx
    nrows = ntx * per_tx
    tag = "t100" if per_tx == 100 else "t1"
    who_all = ["recv"] + [label for label, _, _ in relays]
    how = {label: (bd, props) for label, bd, props in relays}
    slots = {(i, who): f"bench_{tag}_{i}_{j}" for i in range(rounds)
             for j, who in enumerate(who_all)}
    names = list(slots.values())
    sql.query(f"SELECT pg_create_logical_replication_slot('{names[0]}', 'pgoutput')")
    for n in names[1:]:
        sql.query(f"SELECT pg_copy_logical_replication_slot('{names[0]}', '{n}')")
    h.log(f"drain {shape}: writing {nrows} rows in {ntx} transactions")
    secs, end = fill(sql, ntx, per_tx, first)
    h.log(f"  written in {secs:.1f}s; last commit ends at {lsn_text(end)}")
    res = {"shape": shape, "rows": nrows, "transactions": ntx, "end_lsn": lsn_text(end),
           "write_seconds": secs, "rounds": []}
    for i in range(rounds):
        # Rotate who goes first, so that no one always gets the coldest cache.
        order = who_all[i % len(who_all):] + who_all[:i % len(who_all)]
        rnd = {}
        for who in order:
            slot = slots[(i, who)]
            if who == "recv":
                rr = run_recvlogical(env, sql, slot, end)
            else:
                bd, props = how[who]
                rr = run_relay_drain(env, sql, shim, slot, end, nrows, f"drain-{tag}-{who}-{i}",
                                     bd, props)
            rr["events_per_s"] = nrows / rr["seconds"]
            rnd[who] = rr
            extra = ""
            if who != "recv":
                extra = (f"; streaming after {rr['streaming_after_s']:.2f}s, first ack "
                         f"{rr['first_ack_s']:.2f}s, last ack {rr['last_ack_s']:.2f}s, relay CPU "
                         f"{rr['relay_cpu_s']:.2f}s, walsender {rr['walsender_cpu_s']}s")
            else:
                extra = (f"; pg_recvlogical CPU {rr['recv_cpu_s']:.2f}s, walsender "
                         f"{rr['walsender_cpu_s']}s")
            h.log(f"  round {i + 1} {who:8s}: {rr['seconds']:.2f}s, {rr['events_per_s']:,.0f} "
                  f"events/s{extra}; {Load.text(rr['load'])}")
        for who in who_all[1:]:
            rnd[who]["ratio"] = rnd[who]["events_per_s"] / rnd["recv"]["events_per_s"]
        h.log(f"  round {i + 1} relay/pg_recvlogical: " +
              ", ".join(f"{who} {rnd[who]['ratio']:.3f}" for who in who_all[1:]))
        res["rounds"].append(rnd)
    for n in names:
        sql.query(f"SELECT pg_drop_replication_slot('{n}')")
    res["recv_events_per_s"] = statistics.median(r["recv"]["events_per_s"] for r in res["rounds"])
    for who in who_all[1:]:
        res[f"{who}_events_per_s"] = statistics.median(r[who]["events_per_s"]
                                                       for r in res["rounds"])
        res[f"{who}_ratio"] = statistics.median(r[who]["ratio"] for r in res["rounds"])
    res["relay_ratio_of_medians"] = res["relay_events_per_s"] / res["recv_events_per_s"]
    return res, first + nrows


# --------------------------------------------------------------------------- steady

class PacedWriter:
    """A separate psql session fed one multi-row INSERT (its own transaction) every
    tick, on an absolute schedule, so a slow tick does not lower the rate."""

    def __init__(self, pg, rate, tick_ms, seconds, first):
        self.per_tick = max(1, round(rate * tick_ms / 1000))
        self.tick = tick_ms / 1000
        self.nticks = int(seconds / self.tick)
        self.first = first
        self.rows = self.per_tick * self.nticks
        self.p = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                                   "-p", str(pg.port), "-U", "postgres", "-d", "app"],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        self.late = 0

    def run(self):
        t0 = time.time() + 0.05
        lo = self.first
        for k in range(self.nticks):
            due = t0 + k * self.tick
            d = due - time.time()
            if d > 0:
                time.sleep(d)
            elif d < -self.tick:
                self.late += 1
            hi = lo + self.per_tick - 1
            self.p.stdin.write(f"{INSERT} {ROW_SELECT} FROM generate_series({lo}, {hi}) g;\n")
            self.p.stdin.flush()
            lo = hi + 1
        self.p.stdin.close()
        self.p.wait()
        h.check(self.p.returncode == 0, f"writer failed: {self.p.stderr.read()}")

    def start(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self


def steady(env, sql, shim, mode, rate, tick_ms, warmup, seconds, first, poll_batch,
           label="relay", build_dir=None, props=()):
    name = ("steady" if mode == "replication" else "poll-steady") + f"-{label}"
    slot = f"bench_{name.replace('-', '_')}"
    extra = f"polling:\n  batch_size: {poll_batch}\n" if mode == "polling" else ""
    if mode == "replication":
        sql.query(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
    bd = build_dir or env.args.build_dir
    r = RelayProc(env, shim, name, relay_yaml(env.pg, env.broker, slot, mode, extra, props,
                                              has_admin(bd)), bd).start()
    if mode == "replication":
        h.wait_for(lambda: walsender_pid(sql, slot), 30, "the relay to stream")
    else:
        h.wait_for(lambda: r.log_has("holding the polling lock"), 30, "the relay to poll")
    time.sleep(1.0)
    w = PacedWriter(env.pg, rate, tick_ms, warmup + seconds, first)
    h.log(f"{name}: {w.per_tick} rows every {tick_ms} ms ({w.per_tick * 1000 / tick_ms:.0f} "
          f"events/s) for {warmup}+{seconds}s")
    w.start()
    time.sleep(warmup)
    state_sql = ("SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables "
                 "WHERE relname = 'outbox_relay_state'")
    state0 = int(sql.query(state_sql))
    hist0 = r.metrics()
    load = Load()
    t0 = time.time()
    cpu0 = proc_cpu(r.pid)
    broker0 = proc_cpu(env.broker.proc.pid)
    ws_pid = walsender_pid(sql, slot) if mode == "replication" else None
    ws0 = proc_cpu(ws_pid) if ws_pid else None
    rss = []
    while time.time() - t0 < seconds:
        time.sleep(0.5)
        rss.append(proc_status(r.pid, "VmRSS"))
    t1 = time.time()
    cpu1 = proc_cpu(r.pid)
    broker1 = proc_cpu(env.broker.proc.pid)
    ws1 = proc_cpu(ws_pid) if ws_pid else None
    hwm = proc_status(r.pid, "VmHWM")
    ld = load.done()
    hist1 = r.metrics()
    time.sleep(0.6)  # the statistics collector's flush delay (PGSTAT_MIN_INTERVAL: 1 s)
    state1 = int(sql.query(state_sql))
    w.thread.join()
    # Wait until every row is acknowledged: the slot (replication) or the table (polling).
    if mode == "replication":
        end = h.lsn_to_int(sql.query("SELECT pg_current_wal_insert_lsn()"))
        h.wait_for(lambda: sql.query(f"SELECT confirmed_flush_lsn >= '{lsn_text(end)}'::pg_lsn "
                                     f"FROM pg_replication_slots WHERE slot_name = '{slot}'")
                   == "t", 60, "the slot to pass the last commit")
    else:
        h.wait_for(lambda: sql.query("SELECT NOT EXISTS (SELECT 1 FROM public.outbox)") == "t",
                   60, "the outbox to be empty")
    rc, produced, delivered = r.stop()
    h.check(rc == 0, f"relay exited {rc}")
    acks = [a for a in read_acks(r.acks) if a[1] == 0 and a[2] is not None]
    h.check(len(acks) >= w.rows, f"{len(acks)} acknowledgements, {w.rows} rows written")
    win = [a for a in acks if t0 * 1e6 <= a[2] <= t1 * 1e6]
    lat = sorted((a[0] - a[2]) / 1000.0 for a in win)
    split = [a for a in win if a[3]]  # produce times known (bench/acktrace.c)
    to_produce = sorted((a[3] - a[2]) / 1000.0 for a in split) or [float("nan")]
    to_ack = sorted((a[0] - a[3]) / 1000.0 for a in split) or [float("nan")]
    commits = sorted(a[2] for a in win)
    achieved = len(win) / ((commits[-1] - commits[0]) / 1e6) if len(commits) > 1 else 0
    res = {"label": label, "mode": mode, "rate_target": rate, "rate_achieved": achieved, "events": len(win),
           "window_s": t1 - t0, "tick_ms": tick_ms, "rows_per_txn": w.per_tick,
           "late_ticks": w.late,
           "lat_p50_ms": pct(lat, 0.50), "lat_p99_ms": pct(lat, 0.99), "lat_max_ms": lat[-1],
           "commit_to_produce_ms": {"p50": pct(to_produce, 0.5), "p99": pct(to_produce, 0.99),
                                    "max": to_produce[-1]},
           "produce_to_ack_ms": {"p50": pct(to_ack, 0.5), "p99": pct(to_ack, 0.99),
                                 "max": to_ack[-1]},
           "relay_cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
           "broker_cpu_pct": 100 * (broker1 - broker0) / (t1 - t0),
           "walsender_cpu_pct": 100 * (ws1 - ws0) / (t1 - t0) if ws_pid else None,
           "relay_peak_rss_kb": hwm, "relay_rss_kb_max_in_window": max(rss),
           "state_writes_per_s": (state1 - state0) / (t1 - t0),
           "load": ld}
    if hist0 is not None and hist1:
        # The relay's own view (outbox_relay_commit_to_ack_seconds) over about the same
        # window: the share of events acknowledged within 25 ms.
        n = hist1[float("inf")] - hist0.get(float("inf"), 0)
        within = hist1.get(0.025, 0) - hist0.get(0.025, 0)
        res["relay_metrics"] = {"events": n, "share_within_25ms": within / n if n else None,
                                "buckets": {str(k): hist1[k] - hist0.get(k, 0) for k in hist1}}
    if mode == "polling":
        res["batch_size"] = poll_batch
    h.log(f"  {label}: {len(win)} events at {achieved:.0f}/s: commit->ack p50 {res['lat_p50_ms']:.1f} "
          f"ms, p99 {res['lat_p99_ms']:.1f} ms, max {res['lat_max_ms']:.1f} ms (commit->produce "
          f"p50/p99 {pct(to_produce, 0.5):.1f}/{pct(to_produce, 0.99):.1f} ms, produce->ack "
          f"{pct(to_ack, 0.5):.1f}/{pct(to_ack, 0.99):.1f} ms"
          + (f"; relay's own histogram: {100 * res['relay_metrics']['share_within_25ms']:.2f}% "
             f"within 25 ms" if res.get("relay_metrics", {}).get("share_within_25ms") is not None
             else "") + "); relay CPU "
          f"{res['relay_cpu_pct']:.1f}% of a core, peak RSS {hwm} kB; {Load.text(ld)}")
    if mode == "replication":
        sql.query(f"SELECT pg_drop_replication_slot('{slot}')")
    return res, first + w.rows


# --------------------------------------------------------------------------- polling drain

def poll_drain(env, sql, shim, nrows, first, poll_batch, label="relay", build_dir=None,
               props=()):
    ntx = nrows // 100
    nrows = ntx * 100
    h.log(f"poll-drain: writing {nrows} rows in {ntx} transactions")
    secs, _ = fill(sql, ntx, 100, first)
    h.log(f"  written in {secs:.1f}s")
    cfg = relay_yaml(env.pg, env.broker, "unused", "polling",
                     f"polling:\n  batch_size: {poll_batch}\n", props,
                     has_admin(build_dir or env.args.build_dir))
    r = RelayProc(env, shim, f"poll-drain-{label}", cfg, build_dir)
    load = Load()
    r.start()
    relay_cpu = None
    while True:
        h.check(time.time() - r.t0 < 600, "polling drain took more than 600 s")
        h.check(r.relay.alive(), "relay exited:\n" + r.relay.log_text()[-2000:])
        relay_cpu = proc_cpu(r.pid)
        if sql.query("SELECT NOT EXISTS (SELECT 1 FROM public.outbox)") == "t":
            break
        time.sleep(0.05)
    elapsed = time.time() - r.t0
    hwm = proc_status(r.pid, "VmHWM")
    ld = load.done()
    rc, produced, delivered = r.stop()
    h.check(rc == 0, f"relay exited {rc}")
    ok = [a for a in read_acks(r.acks) if a[1] == 0]
    h.check(len(ok) >= nrows, f"{len(ok)} acknowledgements, want {nrows}")
    last_ack = max(a[0] for a in ok) / 1e6 - r.t0
    res = {"label": label, "rows": nrows, "batch_size": poll_batch, "seconds": elapsed,
           "events_per_s": nrows / elapsed, "last_ack_s": last_ack,
           "acked_events_per_s": nrows / last_ack, "relay_cpu_s": relay_cpu,
           "relay_peak_rss_kb": hwm, "duplicates": len(ok) - nrows, "load": ld}
    h.log(f"  {label}: all acknowledged after {last_ack:.2f}s ({nrows / last_ack:.0f} events/s), table "
          f"empty after {elapsed:.2f}s ({nrows / elapsed:.0f} events/s); relay CPU "
          f"{relay_cpu:.2f}s, peak RSS {hwm} kB; {Load.text(ld)}")
    return res, first + nrows


# --------------------------------------------------------------------------- report

def report(res):
    """The results table, one row per target (and per relay build when there are two)."""
    rows = []
    for d in res.get("drain", []):
        for who in res["labels"]:
            rows.append((f"drain, {d['shape']} transactions ({d['rows']:,} events), {who}",
                         f"{d[who + '_events_per_s']:,.0f} ev/s vs pg_recvlogical "
                         f"{d['recv_events_per_s']:,.0f} ev/s: ratio {d[who + '_ratio']:.3f}",
                         ">= 0.95", d[who + "_ratio"] >= 0.95))
    for s in res.get("steady", []):
        who = s["label"]
        rows.append((f"steady {s['rate_achieved']:,.0f} ev/s, {who}: commit->ack p99",
                     f"{s['lat_p99_ms']:.1f} ms (p50 {s['lat_p50_ms']:.1f}, max "
                     f"{s['lat_max_ms']:.1f})", "<= 25 ms", s["lat_p99_ms"] <= 25))
        rows.append((f"steady, {who}: relay CPU", f"{s['relay_cpu_pct']:.1f}% of one core",
                     "<= 25 %", s["relay_cpu_pct"] <= 25))
        rows.append((f"steady, {who}: relay peak RSS (VmHWM)",
                     f"{s['relay_peak_rss_kb'] / 1024:.1f} MB", "<= 20 MB",
                     s["relay_peak_rss_kb"] <= 20 * 1024))
    for p in res.get("poll_drain", []):
        rows.append((f"polling drain ({p['rows']:,} events, batch {p['batch_size']}), "
                     f"{p['label']}",
                     f"{p['events_per_s']:,.0f} ev/s published and deleted "
                     f"({p['acked_events_per_s']:,.0f} ev/s acknowledged)", ">= 20,000 ev/s",
                     p["events_per_s"] >= 20000))
    for s in res.get("poll_steady", []):
        rows.append((f"polling steady {s['rate_achieved']:,.0f} ev/s, {s['label']}: "
                     "created->ack p99",
                     f"{s['lat_p99_ms']:.1f} ms (p50 {s['lat_p50_ms']:.1f}, max "
                     f"{s['lat_max_ms']:.1f})", "-", None))
        rows.append((f"polling steady, {s['label']}: relay CPU, peak RSS",
                     f"{s['relay_cpu_pct']:.1f}% of one core, "
                     f"{s['relay_peak_rss_kb'] / 1024:.1f} MB", "-", None))
    print("\n| Measure | Measured | Target | Met |\n|---|---|---|---|")
    for name, val, target, met in rows:
        print(f"| {name} | {val} | {target} | "
              f"{'-' if met is None else ('yes' if met else 'NO')} |")


def parse_props(items):
    out = []
    for item in items or ():
        k, sep, v = item.partition("=")
        if not sep:
            raise SystemExit(f"--kafka-property {item!r}: want NAME=VALUE")
        out.append((k, v))
    return tuple(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build-dir", default=os.path.join(h.ROOT, "build"))
    p.add_argument("--baseline-build-dir",
                   help="a second relay build, measured side by side with the first "
                        "(e.g. before a change); its label is 'baseline'")
    p.add_argument("--kafka-property", action="append", metavar="NAME=VALUE",
                   help="extra kafka.properties for the relay (repeatable)")
    p.add_argument("--baseline-kafka-property", action="append", metavar="NAME=VALUE",
                   help="extra kafka.properties for the baseline relay (repeatable)")
    p.add_argument("--extra-build", action="append", metavar="LABEL=DIR",
                   help="more relay builds side by side (repeatable), e.g. a what-if patch")
    p.add_argument("--only", default="drain,steady,poll-drain,poll-steady")
    p.add_argument("--rows-100", type=int, default=200_000,
                   help="events of the 100-row-transaction drain")
    p.add_argument("--rows-1", type=int, default=50_000,
                   help="events of the 1-row-transaction drain")
    p.add_argument("--poll-rows", type=int, default=200_000)
    p.add_argument("--poll-batch", type=int, default=1000,
                   help="polling.batch_size (the relay's default is 1000)")
    p.add_argument("--rounds", type=int, default=2, help="drain rounds per shape")
    p.add_argument("--rate", type=int, default=5000, help="steady events/s")
    p.add_argument("--tick-ms", type=float, default=5, help="steady: one INSERT every ...")
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--json", help="also write every number to this file")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    only = set(args.only.split(","))
    relays = [("relay", os.path.abspath(args.build_dir), parse_props(args.kafka_property))]
    if args.baseline_build_dir:
        relays.append(("baseline", os.path.abspath(args.baseline_build_dir),
                       parse_props(args.baseline_kafka_property)))
    for item in args.extra_build or ():
        label, sep, bd = item.partition("=")
        if not sep or label in ("recv", "relay", "baseline"):
            raise SystemExit(f"--extra-build {item!r}: want LABEL=DIR with a new label")
        relays.append((label, os.path.abspath(bd), ()))

    res = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "relays": relays, "labels": [r[0] for r in relays], "args": vars(args)}
    h.log(f"machine: {res['machine']}")
    h.log(f"load before: {os.getloadavg()}")
    first = 1
    # The dev broker comes from whichever build has it (the harness takes it from
    # args.build_dir).
    for _, bd, _ in relays:
        if os.path.exists(os.path.join(bd, "outbox-devbroker")):
            args.build_dir = bd
            break
    else:
        raise SystemExit("no build directory has outbox-devbroker: build it first")
    with h.Env(args, topics=("outbox.event.order:4",), pg_conf=PG_CONF) as env:
        shim = build_shim(env.tmp)
        sql = Sql(env.pg)
        fill_procedure(sql)
        if "drain" in only:
            res["drain"] = []
            for shape, n in (("100-row", args.rows_100), ("1-row", args.rows_1)):
                d, first = drain(env, sql, shim, shape, n, args.rounds, first, relays)
                res["drain"].append(d)
            sql.query("TRUNCATE public.outbox")
        if "steady" in only:
            res["steady"] = []
            for label, bd, props in relays:
                r, first = steady(env, sql, shim, "replication", args.rate, args.tick_ms,
                                  args.warmup, args.seconds, first, args.poll_batch, label, bd,
                                  props)
                res["steady"].append(r)
                sql.query("TRUNCATE public.outbox")
        if "poll-drain" in only or "poll-steady" in only:
            # Polling deletes rows: let autovacuum clean up after it, as in production
            # (it is off above only so that nothing writes WAL during the drains).
            sql.query("ALTER SYSTEM SET autovacuum = on")
            sql.query("SELECT pg_reload_conf()")
        if "poll-drain" in only:
            res["poll_drain"] = []
            for label, bd, props in relays:
                r, first = poll_drain(env, sql, shim, args.poll_rows, first, args.poll_batch,
                                      label, bd, props)
                res["poll_drain"].append(r)
        if "poll-steady" in only:
            res["poll_steady"] = []
            for label, bd, props in relays:
                r, first = steady(env, sql, shim, "polling", args.rate, args.tick_ms, args.warmup,
                                  args.seconds, first, args.poll_batch, label, bd, props)
                res["poll_steady"].append(r)
        sql.close()
    h.log(f"load after: {os.getloadavg()}")
    report(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2, default=str)


if __name__ == "__main__":
    try:
        main()
    except h.TestFailure as e:
        print(f"FAIL: {e}")
        sys.exit(1)

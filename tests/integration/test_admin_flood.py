"""The admin endpoint cannot be starved (docs/architecture.md, "The admin endpoint
under load").

A real relay streams while an attacker on loopback keeps 500 connections to its admin
port open and idle -- reconnecting every one the relay closes -- and another client
trickles a request one byte a second.  For 10 seconds a liveness probe opens a fresh
connection every 100 ms and asks GET /healthz: every probe must be answered 200 within
1 s.  Meanwhile 2,000 outbox rows are written and must all be published, and the
relay's resident memory must stay within 2 MB of what it was before the flood (after
as many rows written before it, so that the comparison is of the flood alone).
"""

import os
import resource
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

IDLE = 500
PROBE_SECONDS = 10
ROWS = 2000


def probe(port, timeout=1.0):
    """GET /healthz on a fresh connection: (status or None, seconds)."""
    t0 = time.time()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(0.01, timeout - (time.time() - t0)))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else None
    except (OSError, ValueError, IndexError):
        status = None
    return status, time.time() - t0


class Flood:
    """IDLE idle connections kept open: those the relay closes are opened again, every
    half second, so that the attacker always holds about IDLE of them."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.socks = []
        self.reconnects = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        return s

    def run(self):
        self.socks = [self.connect() for _ in range(IDLE)]
        next_refill = time.time() + 0.5
        while not self.stop.is_set():
            readable, _, _ = select.select(self.socks, [], [], 0.05)
            for s in readable:
                try:
                    gone = s.recv(4096) == b""
                except OSError:
                    gone = True
                if gone:
                    self.socks.remove(s)
                    s.close()
                    self.reconnects += 1
            if time.time() >= next_refill:
                self.socks += [self.connect() for _ in range(IDLE - len(self.socks))]
                next_refill = time.time() + 0.5
        for s in self.socks:
            s.close()


def trickle(port, stop, sent):
    """One byte a second of a request that would take a minute to arrive."""
    s = socket.create_connection(("127.0.0.1", port))
    req = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"x" * 60 + b"\r\n\r\n"
    i = 0
    while not stop.is_set() and i < len(req):
        try:
            s.send(req[i:i + 1])
            sent[0] += 1
        except OSError:
            sent[1] += 1  # cut off by the relay: reconnect and start again
            s.close()
            s = socket.create_connection(("127.0.0.1", port))
            i = 0
            continue
        i += 1
        stop.wait(1.0)
    s.close()


def test(env):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    port = h.free_port()
    cfg = h.relay_config(env.pg, env.broker).replace('listen: "127.0.0.1:0"',
                                                     f'listen: "127.0.0.1:{port}"')
    consumer = env.consumer()
    relay_env = None
    rss_bound = 2048
    if h.sanitized(env.args.build_dir):
        # AddressSanitizer keeps freed memory in quarantine (256 MB by default), which
        # would measure ASan, not the endpoint: a small quarantine, counted in the bound.
        relay_env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
                     ":quarantine_size_mb=2:thread_local_quarantine_size_kb=64"}
        rss_bound += 4096
    relay = env.relay(cfg).start(env=relay_env)
    h.wait_for(lambda: probe(port)[0] == 200, 30, "the admin endpoint")
    h.wait_for(lambda: (env.pg.slot() or (0, False))[1], 30, "the relay to stream")
    # Warm up first, so that the memory compared is the flood's, not the first events'.
    env.pg.psql(h.insert_sql(1, ROWS // 100, 100))
    consumer.wait_count(ROWS, 60)
    rss_before = h.rss_kb(relay.proc.pid)

    flood = Flood(port)
    flood.thread.start()
    stop, sent = threading.Event(), [0, 0]
    slow = threading.Thread(target=trickle, args=(port, stop, sent), daemon=True)
    slow.start()
    time.sleep(1.0)  # let the flood fill the slots and the backlog
    job, text = h.start_insert_job(env.pg, h.insert_sql(ROWS + 1, ROWS // 100, 100))
    job.stdin.write(text)
    job.stdin.close()

    times, failures = [], []
    t_end = time.time() + PROBE_SECONDS
    while time.time() < t_end:
        status, took = probe(port)
        times.append(took)
        if status != 200 or took >= 1.0:
            failures.append((status, round(took, 3)))
        time.sleep(0.1)
    rss_during = h.rss_kb(relay.proc.pid)
    h.check(job.wait(timeout=60) == 0, "insert job failed")
    consumer.wait_count(2 * ROWS, 60)
    stop.set()
    flood.stop.set()
    flood.thread.join(10)
    slow.join(10)

    times.sort()
    h.check(not failures, f"{len(failures)} of {len(times)} probes failed or took 1 s or more: "
            f"{failures[:10]}")
    h.check(flood.reconnects >= IDLE, f"the flood was not much of one: only "
            f"{flood.reconnects} idle connections were closed by the relay")
    h.check(sent[1] >= 1, "the trickler was never cut off")
    h.check(rss_during - rss_before < rss_bound,
            f"RSS grew from {rss_before} to {rss_during} kB (bound {rss_bound} kB)")
    rows, distinct, dups = h.check_stream(env.pg, consumer.messages, ())
    h.check(distinct == 2 * ROWS, f"{distinct} of {2 * ROWS} rows published")
    h.check(relay.alive(), "the relay died under the flood")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"{len(times)} probes under a flood of {IDLE} idle connections ({flood.reconnects} "
          f"closed by the relay and reopened) and a trickler (cut off {sent[1]} times): "
          f"/healthz p50 {times[len(times) // 2] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms; "
          f"RSS {rss_before} -> {rss_during} kB; {distinct} rows published, {dups} duplicates")


if __name__ == "__main__":
    h.main(test)

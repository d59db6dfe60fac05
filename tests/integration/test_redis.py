"""The Redis Streams sink (sink: redis) against a real redis-server from Debian, started
by this test on loopback (AOF with appendfsync always, so that what Redis acknowledged
survives its own SIGKILL), read back with redis-py from PyPI -- a client that shares
no code with the relay's hiredis.  Every case checks the four invariants
(harness.check_stream: no loss, checkpoint never ahead of acknowledgements, bounded
duplicates, per-key order):

  1. 10,000 rows in 100-row transactions: one entry each, fields id, key, the
     CloudEvents attributes, value = the payload, each exactly once;
  2. the relay SIGKILLed 5 times mid-stream (10,000 rows): no loss, duplicates only
     after the confirmed positions;
  3. redis-server SIGKILLed mid-stream and started again, with 20 MB committed while
     it was down: the relay keeps running within its in-flight limit, nothing is lost;
  4. an event whose stream name holds a string (WRONGTYPE): set aside to
     redis.dlq_stream with reason "rejected", the others flow;
  5. a wrong password: exit 1 with the refusal named, nothing confirmed.

TLS (rediss://), ACL users and client certificates: test_redis_tls.py, which reuses
RedisServer, entries() and config() from here.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.in_venv("redis", "redis==8.1.0", "redis")

import redis  # noqa: E402

PASSWORD = "redis-secret"


class RedisServer:
    """redis-server on loopback; with tls, TLS only, its certificate from a test CA
    (harness.make_test_certs()) and a client certificate from it (client.crt, which
    the reader presents too); auth_clients is tls-auth-clients.  binds: the addresses
    it listens on; users: ACL users, each a list of ACL rules ("relay", "on", ">pw",
    ...), besides the default user with PASSWORD."""

    def __init__(self, tmp, tls=False, auth_clients="no", binds=("127.0.0.1",), users=()):
        self.dir = os.path.join(tmp, "redis-tls" if tls else "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.tls = h.make_test_certs(os.path.join(self.dir, "certs")) if tls else None
        self.client_cert = h.sign_cert(self.tls, "client") if tls else None
        self.auth_clients, self.binds, self.users = auth_clients, binds, users
        self.port = h.free_port()
        self.proc = None

    def start(self):
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.log = open(os.path.join(self.dir, "redis.log"), "a")
        ports = ["--port", str(self.port)]
        if self.tls:
            ports = ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", os.path.join(self.tls, "server.crt"),
                     "--tls-key-file", os.path.join(self.tls, "server.key"),
                     "--tls-ca-cert-file", os.path.join(self.tls, "ca.crt"),
                     "--tls-auth-clients", self.auth_clients]
        users = [a for u in self.users for a in ("--user", *u)]
        self.proc = subprocess.Popen(
            [exe, *ports, "--bind", *self.binds, "--dir", self.dir,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--requirepass", PASSWORD, *users], stdout=self.log, stderr=subprocess.STDOUT)
        h.wait_for(self.ping, 30, "redis-server to answer")
        return self

    def client(self):
        if self.tls:
            return redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD, ssl=True,
                               ssl_ca_certs=os.path.join(self.tls, "ca.crt"),
                               ssl_certfile=self.client_cert[0], ssl_keyfile=self.client_cert[1])
        return redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD)

    def ping(self):
        try:
            return self.client().ping()
        except redis.exceptions.ConnectionError:
            return False

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def entries(r, stream):
    """The stream's entries as harness messages (fields other than id/key/value are
    the headers; the entry's position is the offset)."""
    out = []
    for i, (eid, fields) in enumerate(r.xrange(stream)):
        f = [(k.decode(), v.decode()) for k, v in fields.items()]
        d = dict(f)
        out.append(h.decode_message({
            "topic": "outbox.event.order", "partition": 0, "offset": i,
            "key": d.get("key"), "value": d.get("value"),
            "headers": [(k, v) for k, v in f if k not in ("id", "key", "value")]}))
        h.check(d.get("id") == d.get("ce_id"), f"entry {eid}: id {d.get('id')!r} is not ce_id")
    return out


def config(pg, srv, case, password=PASSWORD, extra="", ca="ca.crt", user="",
           host="127.0.0.1"):
    """Each case its own streams, outbox.<case>.<aggregatetype>.  Over TLS when the
    server is, with the CA file ca of its directory; as user (the default user when
    ""), to host."""
    scheme = "rediss" if srv.tls else "redis"
    if srv.tls:
        extra = f"  ca_file: \"{os.path.join(srv.tls, ca)}\"\n" + extra
    return f"""admin:
  listen: "127.0.0.1:0"
postgres:
  dsn: "{pg.dsn(user='outbox_relay')}"
  slot: outbox_relay
  publication: outbox_relay
  status_interval: 1s
  retry_interval: 1s
outbox:
  table: public.outbox
sink: redis
redis:
  url: "{scheme}://{user}:{password}@{host}:{srv.port}/0"
  stream: "outbox.{case}.{{aggregatetype}}"
  dlq_stream: outbox.dlq
{extra}"""


def fresh(env, case):
    """An emptied outbox (deletes publish nothing) and the case's stream name."""
    env.pg.psql("DELETE FROM public.outbox")
    return f"outbox.{case}.order"


streaming = h.start_streaming


def exact(env, srv):
    pg, r = env.pg, srv.client()
    stream = fresh(env, "exact")
    relay = env.relay(config(pg, srv, "exact"), name="relay-exact")
    streaming(env, relay)
    rows = h.scaled(10000)
    pg.psql(h.insert_sql(1, rows // 100, 100))
    h.wait_for(lambda: r.exists(stream) and r.xlen(stream) >= rows, 60, f"{rows} entries")
    time.sleep(0.5)
    msgs = entries(r, stream)
    h.check_exact(pg, msgs, rows)
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"redis: {rows:,} rows, one entry each, exactly as rendered, in per-key order")
    return relay


def kills(env, srv, first):
    pg, r = env.pg, srv.client()
    stream = fresh(env, "kills")
    relay = env.relay(config(pg, srv, "kills"), name="relay-kills")
    rows = h.scaled(10000)
    job, text = h.start_insert_job(pg, h.insert_sql(first, rows // 100, 100).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.05);\n"))
    streaming(env, relay)
    h.feed(job, text)
    confirmed, before, rng = [], [], random.Random(5)
    for k in range(5):
        h.wait_for(lambda: r.exists(stream) and r.xlen(stream) >= (k + 1) * rows * 12 // 100,
                   60, "progress")
        time.sleep(rng.uniform(0, 0.3))
        relay.signal(signal.SIGKILL)
        relay.wait(10)
        h.wait_for(lambda: not pg.slot()[1], 30, "the slot to be released")
        confirmed.append(pg.slot()[0])
        before.append([m["headers"]["ce_id"] for m in entries(r, stream)])
        streaming(env, relay)
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    h.wait_for(lambda: len({m["headers"]["ce_id"] for m in entries(r, stream)}) >= total,
               60, "every row")
    rows, distinct, dups = h.check_stream(pg, entries(r, stream), confirmed, before)
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"redis, relay SIGKILLed 5 times: {rows} rows, 0 lost, {dups} duplicates, all after "
          "the confirmed positions")
    return first + 10000


def server_restart(env, srv, first):
    pg, r = env.pg, srv.client()
    stream = fresh(env, "restart")
    relay = env.relay(config(pg, srv, "restart", extra=h.OUTAGE_PIPELINE), name="relay-restart")
    job, text = h.start_insert_job(pg, h.insert_sql(first, 60, 100).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.05);\n"))
    streaming(env, relay)
    h.feed(job, text)
    h.wait_for(lambda: r.exists(stream) and r.xlen(stream) >= 1500, 60,
               "progress before the kill")
    slot_before = pg.slot()[0]
    srv.kill()
    backlog, unsent, rss0, rss1 = h.outage_backlog(env, relay, first + 6000)
    srv.start()
    t_up = time.time()
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    h.wait_for(lambda: len({m["headers"]["ce_id"] for m in entries(srv.client(), stream)})
               >= total, 90, "every row after redis came back")
    took = time.time() - t_up
    rows, distinct, dups = h.check_stream(pg, entries(srv.client(), stream),
                                          dup_bounds_only=[slot_before])
    h.check(relay.alive(), "the relay exited")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"redis-server SIGKILLed mid-stream, {backlog} rows ({backlog * 2 // 1000} MB) "
          "committed meanwhile "
          f"({unsent} bytes of WAL left unsent, relay RSS {rss0} -> {rss1} kB), restarted: "
          f"{rows} rows, 0 lost, {dups} duplicates, every row {took:.1f}s after the restart")
    return first + 6000 + backlog


def wrongtype(env, srv, first):
    pg, r = env.pg, srv.client()
    stream = fresh(env, "wrongtype")
    r.set("outbox.wrongtype.bad", "not a stream")
    relay = env.relay(config(pg, srv, "wrongtype"), name="relay-wrongtype")
    streaming(env, relay)
    pg.psql(h.insert_sql(first, 1, 10) + h.insert_sql(first + 10, 1, 3, aggregatetype="bad")
            + h.insert_sql(first + 13, 1, 10))
    h.wait_for(lambda: r.exists(stream) and r.xlen(stream) >= 20 and r.exists("outbox.dlq")
               and r.xlen("outbox.dlq") >= 3, 30, "20 entries and 3 dead letters")
    dl = [dict((k.decode(), v.decode()) for k, v in f.items()) for _, f in r.xrange("outbox.dlq")]
    h.check(len(dl) == 3 and all(d.get("dlq_reason") == "rejected" and
                                 d.get("dlq_original_topic") == "outbox.wrongtype.bad"
                                 for d in dl),
            f"dead letters {dl}")
    end = pg.current_lsn()
    h.wait_for(lambda: pg.slot()[0] >= end, 30, "the slot to pass them")
    h.check(relay.alive(), "the relay exited")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log("redis: 3 events for a name holding a string (WRONGTYPE) set aside to outbox.dlq "
          "with reason rejected; the 20 others published; slot past them")


def wrong_password(env, srv, first):
    pg = env.pg
    pg.psql(h.insert_sql(first, 1, 5))
    after = pg.current_lsn()
    relay = env.relay(config(pg, srv, "password", password="not-it"), name="relay-password")
    chk = check_cmd(env, relay)
    h.check(chk.returncode != 0 and "authentication refused: WRONGPASS" in chk.stdout,
            f"check with a wrong password: {chk.stdout[-500:]}")
    t0 = time.time()
    relay.start()
    rc = relay.wait(30)
    took = time.time() - t0
    err = [ln for ln in relay.log_text().splitlines() if " ERROR " in ln]
    h.check(rc == 1 and err and "refused the relay" in err[-1], f"exit {rc}: {err}")
    h.check(pg.slot()[0] < after, "the slot moved past undelivered events")
    h.log(f"redis, wrong password: exit 1 after {took:.1f}s: "
          f"{err[-1].split(' ERROR ', 1)[-1][:160]}")


def check_cmd(env, relay):
    return subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                           relay.cfg], capture_output=True, text=True, timeout=60)


def test(env):
    srv = RedisServer(env.tmp).start()
    try:
        exact(env, srv)
        nxt = kills(env, srv, 5001)
        nxt = server_restart(env, srv, nxt)
        wrongtype(env, srv, nxt)
        wrong_password(env, srv, nxt + 100)
    finally:
        srv.stop()


if __name__ == "__main__":
    h.main(test)

"""The NATS JetStream sink (sink: nats) against a real nats-server from Debian with
JetStream (file storage), started by this test on loopback; the stream is created and
read back with nats-py from PyPI, a client that shares no code with the relay's
libnats.  Checked with the four invariants (harness.check_stream):

  1. no stream takes the subjects yet: the relay says so plainly and waits, confirming
     nothing; once the stream exists, 10,000 rows arrive once each, exactly as rendered
     (Nats-Msg-Id = the event id, the CloudEvents attributes as ce-* NATS headers, as
     CloudEvents' NATS binding has them in binary mode);
  2. the relay SIGKILLed 5 times mid-stream: nothing lost, and no duplicate in the
     stream -- JetStream drops the replayed events by their Nats-Msg-Id;
  3. nats-server SIGKILLed mid-stream and started again: nothing lost;
  4. an event over the server's max_payload: set aside to nats.dlq_subject as
     too-large, the others flow.
"""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.in_venv("nats", "nats-py==2.16.0", "nats")

import nats  # noqa: E402

STREAM = "OUTBOX"


class NatsServer:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "nats")
        os.makedirs(self.dir, exist_ok=True)
        self.port = h.free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.cache = {}

    def start(self):
        self.log = open(os.path.join(self.dir, "nats.log"), "a")
        conf = os.path.join(self.dir, "nats.conf")
        with open(conf, "w") as f:  # max_payload 64 KiB: a larger event is undeliverable
            f.write(f"host: 127.0.0.1\nport: {self.port}\nmax_payload: 65536\n"
                    f"jetstream {{ store_dir: \"{self.dir}\" }}\n")
        self.proc = subprocess.Popen(["nats-server", "-c", conf],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        h.wait_for(lambda: self.run(self._ping), 30, "nats-server to answer")
        return self

    async def _ping(self, nc, js):
        await nc.flush()
        return True

    def run(self, fn):
        """fn(nc, js) on a fresh connection; False when the server does not answer."""
        async def quiet(e):
            pass

        async def go():
            nc = await nats.connect(self.url, connect_timeout=1, max_reconnect_attempts=0,
                                    allow_reconnect=False, error_cb=quiet)
            try:
                return await fn(nc, nc.jetstream())
            finally:
                await nc.close()
        try:
            return asyncio.run(go())
        except (nats.errors.NoServersError, ConnectionRefusedError, OSError):
            return False

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()

    def create_stream(self):
        async def fn(nc, js):
            await js.add_stream(name=STREAM, subjects=["outbox.>", "dead.>"])
            return True
        return self.run(fn)

    def messages(self, first_seq=1):
        """Every message in the stream from first_seq, as harness messages.  A stream's
        sequence numbers never change: each message is fetched once (self.cache)."""
        async def fn(nc, js):
            info = await js.stream_info(STREAM)
            out = []
            for seq in range(first_seq, info.state.last_seq + 1):
                if seq in self.cache:
                    out.append(self.cache[seq])
                    continue
                m = await js.get_msg(STREAM, seq)
                # CloudEvents' NATS binding: ce-<attribute>; the harness speaks ce_.
                hd = {(k.replace("ce-", "ce_", 1) if k.startswith("ce-") else k): v
                      for k, v in (m.headers or {}).items()}
                self.cache[seq] = h.decode_message({
                    "topic": "outbox.event.order", "partition": 0, "offset": seq,
                    "key": hd.get("ce_subject"), "value": m.data.decode() if m.data else None,
                    "headers": list(hd.items()), "subject": m.subject})
                out.append(self.cache[seq])
            return out
        return self.run(fn) or []

    def last_seq(self):
        async def fn(nc, js):
            return (await js.stream_info(STREAM)).state.last_seq
        return self.run(fn) or 0


def config(pg, srv, pipeline=""):
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
sink: nats
nats:
  url: "{srv.url}"
  ack_timeout: 2s
  dlq_subject: dead.letters
pipeline:
  on_bad_event: dead-letter
{pipeline}"""


streaming = h.start_streaming


def no_stream_then_exact(env, srv):
    pg = env.pg
    relay = env.relay(config(pg, srv), name="relay-exact")
    streaming(env, relay)
    rows = h.scaled(10000)
    pg.psql(h.insert_sql(1, rows // 100, 100))
    after = pg.current_lsn()
    h.wait_for(lambda: "no JetStream stream takes subject" in relay.log_text(), 30,
               "the error naming the missing stream")
    time.sleep(2)
    h.check(relay.alive(), "the relay exited without a stream")
    h.check(pg.slot()[0] < after, "the slot moved past events no stream took")
    h.check(srv.create_stream(), "cannot create the stream")
    h.wait_for(lambda: srv.last_seq() >= rows, 60, f"{rows} messages in the stream")
    time.sleep(1)
    msgs = srv.messages()
    h.check_exact(pg, msgs, rows)
    for m in msgs:
        h.check(m["headers"].get("Nats-Msg-Id") == m["headers"]["ce_id"],
                f"Nats-Msg-Id {m['headers'].get('Nats-Msg-Id')} is not the event id")
        h.check(m["subject"] == f"outbox.order.{m['key']}", f"subject {m['subject']}")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log("nats: no stream: the relay named the subject and waited, slot held; with the "
          f"stream, {rows:,} rows once each, Nats-Msg-Id = ce_id, subject per aggregate")


def kills(env, srv, first):
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    seq0 = srv.last_seq() + 1
    relay = env.relay(config(pg, srv), name="relay-kills")
    rows = h.scaled(10000)
    job, text = h.start_insert_job(pg, h.insert_sql(first, rows // 100, 100).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.05);\n"))
    streaming(env, relay)
    h.feed(job, text)
    confirmed, before, rng = [], [], random.Random(3)
    for k in range(5):
        h.wait_for(lambda: srv.last_seq() - seq0 >= (k + 1) * rows * 12 // 100, 60,
                   "progress")
        time.sleep(rng.uniform(0, 0.3))
        relay.signal(signal.SIGKILL)
        relay.wait(10)
        h.wait_for(lambda: not pg.slot()[1], 30, "the slot to be released")
        confirmed.append(pg.slot()[0])
        before.append([m["headers"]["ce_id"] for m in srv.messages(seq0)])
        streaming(env, relay)
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    h.wait_for(lambda: srv.last_seq() - seq0 + 1 >= total, 60, "every row")
    time.sleep(1)
    rows, distinct, dups = h.check_stream(pg, srv.messages(seq0), confirmed, before)
    h.check(dups == 0, f"{dups} duplicates in the stream despite Nats-Msg-Id")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"nats, relay SIGKILLed 5 times: {rows} rows, 0 lost, 0 duplicates in the stream "
          "(JetStream dropped the replays by Nats-Msg-Id)")
    return first + 10000


def server_restart(env, srv, first):
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    seq0 = srv.last_seq() + 1
    relay = env.relay(config(pg, srv, h.OUTAGE_PIPELINE.split("\n", 1)[1]),
                      name="relay-restart")
    job, text = h.start_insert_job(pg, h.insert_sql(first, 60, 100).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.05);\n"))
    streaming(env, relay)
    h.feed(job, text)
    h.wait_for(lambda: srv.last_seq() - seq0 >= 1500, 60, "progress before the kill")
    slot_before = pg.slot()[0]
    srv.kill()
    backlog, unsent, rss0, rss1 = h.outage_backlog(env, relay, first + 6000)
    srv.start()
    t_up = time.time()
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    h.wait_for(lambda: len({m["headers"]["ce_id"] for m in srv.messages(seq0)}) >= total, 90,
               "every row after nats-server came back", interval=1)
    took = time.time() - t_up
    rows, distinct, dups = h.check_stream(pg, srv.messages(seq0), dup_bounds_only=[slot_before])
    h.check(relay.alive(), "the relay exited")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"nats-server SIGKILLed mid-stream, {backlog} rows ({backlog * 2 // 1000} MB) "
          "committed meanwhile "
          f"({unsent} bytes of WAL left unsent, relay RSS {rss0} -> {rss1} kB), restarted: "
          f"{rows} rows, 0 lost, {dups} duplicates, every row {took:.1f}s after the restart")


def too_large(env, srv, first):
    """An event over the server's max_payload is set aside to nats.dlq_subject; the
    events around it flow and the slot passes it."""
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    seq0 = srv.last_seq() + 1
    relay = env.relay(config(pg, srv), name="relay-large")
    streaming(env, relay)
    pg.psql(h.insert_sql(first, 1, 10)
            + "INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload) "
            f"VALUES ('order', 'order-1', 'OrderCreated', jsonb_build_object('n', {first + 10}, "
            f"'pad', repeat('x', 70000)));\n"
            + h.insert_sql(first + 11, 1, 10))
    end = pg.current_lsn()
    h.wait_for(lambda: pg.slot()[0] >= end, 30, "the slot to pass them")
    msgs = srv.messages(seq0)
    dead = [m for m in msgs if m["subject"] == "dead.letters"]
    ok = sorted(json.loads(m["value"])["n"] for m in msgs if m["subject"] != "dead.letters")
    h.check(len(dead) == 1 and dead[0]["headers"].get("dlq_reason") == "too-large",
            f"dead letters: {[d['headers'] for d in dead]}")
    h.check(ok == list(range(first, first + 10)) + list(range(first + 11, first + 21)),
            f"the others: {ok}")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log("nats: an event over max_payload set aside to dead.letters as too-large "
          f"({dead[0]['headers'].get('dlq_error', '')[:80]}); the 20 around it published")


def test(env):
    srv = NatsServer(env.tmp).start()
    try:
        no_stream_then_exact(env, srv)
        nxt = kills(env, srv, 10001)
        server_restart(env, srv, nxt)
        too_large(env, srv, 40001)
    finally:
        srv.stop()


if __name__ == "__main__":
    h.main(test)

"""The RabbitMQ sink (sink: rabbitmq) against a real rabbitmq-server from Debian 12,
started by this test on loopback (its own node name, ports, epmd and data directory);
users, permissions, queues and bindings come from a definitions file, and the queues
are read with pika from PyPI, a client that shares no code with the relay's
librabbitmq.  Checked with the four invariants (harness.check_stream):

  1. 10,000 rows arrive once each, exactly as rendered: message_id = the event id,
     persistent, the CloudEvents attributes as cloudEvents:* headers and
     datacontenttype as content_type (CloudEvents' AMQP binding, binary mode), routing
     key per aggregate type and event type, in order per key;
  2. set aside, while the rest flow: an unroutable event (no queue bound: returned by
     the mandatory flag), an event whose routing key a topic permission denies (the
     broker closes the channel) and one over the broker's max_message_size -- each
     reaches the dead-letter routing key with its reason;
  3. the relay SIGKILLed 5 times mid-stream: nothing lost, duplicates only after the
     confirmed position;
  4. rabbitmq-server SIGKILLed mid-stream and started again, 20 MB of rows written
     meanwhile: the slot held, the relay's memory flat at its in-flight limit, nothing
     lost (the relay publishes again what the broker had not confirmed);
  5. amqps:// with the test CA: events arrive; an unknown CA and a wrong password each
     stop the relay with exit 1 and a plain error, and `outbox-relay check` fails for
     both and passes with the right settings.
"""

import base64
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.in_venv("pika", "pika==1.3.2", "rabbitmq")

import pika  # noqa: E402

RELAY_PASSWORD = "relay-secret"
def password_hash(password):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class RabbitServer:
    """One RabbitMQ node on loopback with the test's users, queues and bindings."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "rabbitmq")
        self.tls = os.path.join(self.dir, "tls")
        os.makedirs(self.dir, exist_ok=True)
        h.make_test_certs(self.tls)
        self.port, self.tls_port = h.free_port(), h.free_port()
        self.dist_port, self.epmd_port = h.free_port(), h.free_port()
        self.node = f"relaytest{self.port}@localhost"
        self.got = {}  # queue -> every message consumed so far
        defs = {
            "users": [
                {"name": "relay", "password_hash": password_hash(RELAY_PASSWORD),
                 "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""},
                {"name": "reader", "password_hash": password_hash("reader"),
                 "hashing_algorithm": "rabbit_password_hashing_sha256",
                 "tags": "administrator"}],
            "vhosts": [{"name": "/"}],
            "permissions": [
                {"user": u, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
                for u in ("relay", "reader")],
            "topic_permissions": [
                {"user": "relay", "vhost": "/", "exchange": "outbox",
                 "write": "^(?!denied\\.).*", "read": ".*"}],
            "exchanges": [{"name": "outbox", "vhost": "/", "type": "topic", "durable": True,
                           "auto_delete": False, "internal": False, "arguments": {}}],
            "queues": [{"name": q, "vhost": "/", "durable": True, "auto_delete": False,
                        "arguments": {}} for q in ("orders", "dead")],
            "bindings": [
                {"source": "outbox", "vhost": "/", "destination": "orders",
                 "destination_type": "queue", "routing_key": "order.#", "arguments": {}},
                {"source": "outbox", "vhost": "/", "destination": "orders",
                 "destination_type": "queue", "routing_key": "denied.#", "arguments": {}},
                {"source": "outbox", "vhost": "/", "destination": "orders",
                 "destination_type": "queue", "routing_key": "big.#", "arguments": {}},
                {"source": "outbox", "vhost": "/", "destination": "dead",
                 "destination_type": "queue", "routing_key": "dead.#", "arguments": {}}],
        }
        with open(os.path.join(self.dir, "definitions.json"), "w") as f:
            json.dump(defs, f)
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"""listeners.tcp.1 = 127.0.0.1:{self.port}
listeners.ssl.1 = 127.0.0.1:{self.tls_port}
ssl_options.cacertfile = {self.tls}/ca.crt
ssl_options.certfile = {self.tls}/server.crt
ssl_options.keyfile = {self.tls}/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
load_definitions = {self.dir}/definitions.json
loopback_users = none
max_message_size = 65536
log.console = false
log.file.level = warning
""")
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        self.env = dict(os.environ, HOME=self.dir, RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(self.dist_port),
                        ERL_EPMD_ADDRESS="127.0.0.1", ERL_EPMD_PORT=str(self.epmd_port),
                        RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
                        RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir,
                                                                   "enabled_plugins"),
                        RABBITMQ_PID_FILE=os.path.join(self.dir, "pid"))
        self.proc = None

    def url(self, password=RELAY_PASSWORD, tls=False):
        # librabbitmq checks the certificate's DNS names (not its IP addresses): over TLS
        # the URL names localhost, as the certificate does.
        if tls:
            return f"amqps://relay:{password}@localhost:{self.tls_port}/%2f"
        return f"amqp://relay:{password}@127.0.0.1:{self.port}/%2f"

    def start(self):
        self.log = open(os.path.join(self.dir, "server.log"), "a")
        self.proc = subprocess.Popen(["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        h.wait_for(self._answers, 90, "rabbitmq-server to answer", interval=0.5)
        return self

    def _answers(self):
        try:
            self.connection().close()
            return True
        except Exception:  # noqa: BLE001 -- any failure means "not yet"
            return False

    def connection(self):
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.port, "/", pika.PlainCredentials("reader", "reader"),
            connection_attempts=1, socket_timeout=2, blocked_connection_timeout=5))

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # epmd was started by the node, on the test's own port: stop it too.
        subprocess.run(["pkill", "-f", f"epmd.*-port {self.epmd_port}"], check=False)
        subprocess.run(["pkill", "-f", f"epmd -daemon.*{self.epmd_port}"], check=False)
        self.log.close()

    def drain(self, queue, quiet=0.7, limit=None):
        """Consume what the queue holds now: until quiet seconds pass without a message
        (or limit seconds in all, while the relay keeps publishing); returns every
        message consumed from it so far, as harness messages."""
        got = self.got.setdefault(queue, [])
        conn = self.connection()
        ch = conn.channel()
        ch.basic_qos(prefetch_count=2000)
        last = [time.time(), None]

        def on_msg(ch_, method, props, body):
            hd = {}
            for k, v in (props.headers or {}).items():
                if isinstance(v, bytes):
                    v = v.decode()
                hd[("ce_" + k[len("cloudEvents:"):]) if k.startswith("cloudEvents:") else k] = v
            if props.content_type is not None:
                hd["content-type"] = props.content_type
            got.append(h.decode_message({
                "topic": "outbox.event.order", "partition": 0, "offset": len(got),
                "key": hd.get("ce_subject"), "value": body.decode() if body else None,
                "headers": list(hd.items()), "routing_key": method.routing_key,
                "message_id": props.message_id, "delivery_mode": props.delivery_mode,
                "app_id": props.app_id, "redelivered": method.redelivered}))
            last[0], last[1] = time.time(), method.delivery_tag

        # Acknowledged once taken: what the client had fetched but not handed over when
        # the loop ends goes back to the queue, in its place.
        ch.basic_consume(queue, on_msg, auto_ack=False)
        t0 = time.time()
        while time.time() - last[0] < quiet and (limit is None or time.time() - t0 < limit):
            conn.process_data_events(time_limit=0.1)
        if last[1] is not None:
            ch.basic_ack(last[1], multiple=True)
        conn.close()
        return got


def config(pg, srv, password=RELAY_PASSWORD, tls=False, ca=None, pipeline=""):
    extra = f"\n  ca_file: \"{ca}\"" if ca else ""
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
pipeline:
  on_bad_event: dead-letter
{pipeline}sink: rabbitmq
rabbitmq:
  url: "{srv.url(password, tls)}"
  exchange: outbox
  routing_key: "{{aggregatetype}}.{{type}}"
  dlq_routing_key: dead.letters
  ack_timeout: 5s{extra}
"""


streaming = h.start_streaming


def exact(env, srv):
    pg = env.pg
    relay = env.relay(config(pg, srv), name="relay-exact")
    streaming(env, relay)
    rows = h.scaled(10000)
    pg.psql(h.insert_sql(1, rows // 100, 100))
    h.wait_for(lambda: len(srv.drain("orders", quiet=0.3)) >= rows, 90, f"{rows} messages")
    msgs = srv.drain("orders")
    h.check_exact(pg, msgs, rows)
    for m in msgs:
        h.check(m["message_id"] == m["headers"]["ce_id"],
                f"message_id {m['message_id']} is not the event id")
        h.check(m["delivery_mode"] == 2 and m["app_id"] == "outbox-relay",
                f"delivery_mode {m['delivery_mode']}, app_id {m['app_id']}")
        h.check(m["routing_key"] == "order.OrderCreated", f"routing key {m['routing_key']}")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"rabbitmq: {rows:,} rows once each, message_id = ce_id, persistent, cloudEvents:* "
          "headers, in order per key")
    return 10001


def set_aside(env, srv, first):
    """Unroutable, denied by a topic permission, too large: each dead-lettered."""
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    srv.got["orders"] = []
    relay = env.relay(config(pg, srv), name="relay-aside")
    streaming(env, relay)
    big = "x" * 70000
    pg.psql(h.insert_sql(first, 1, 10)
            + h.insert_sql(first + 10, 1, 1, aggregatetype="nobody")
            + h.insert_sql(first + 11, 1, 10)
            + h.insert_sql(first + 21, 1, 1, aggregatetype="denied")
            + h.insert_sql(first + 22, 1, 10)
            + "INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload) "
            f"VALUES ('big', 'order-1', 'OrderCreated', jsonb_build_object('n', {first + 32}, "
            f"'pad', '{big}'));\n"
            + h.insert_sql(first + 33, 1, 10))
    end = pg.current_lsn()
    h.wait_for(lambda: len(srv.drain("dead", quiet=0.3)) >= 3, 60, "3 dead letters")
    h.wait_for(lambda: pg.slot()[0] >= end, 60, "the slot to pass them")
    dead = srv.drain("dead")
    # At least once, dead letters too: a record whose confirm the channel's closing (for
    # the denied event) cut off is published again.  One per event is what counts.
    reasons = sorted({(m["headers"].get("dlq_event_id"), m["headers"].get("dlq_reason"),
                       m["headers"].get("dlq_original_topic")) for m in dead})
    reasons = sorted(r[1:] for r in reasons)
    h.check(reasons == [("rejected", "denied.OrderCreated"), ("rejected", "nobody.OrderCreated"),
                        ("too-large", "big.OrderCreated")], f"dead letters {reasons}")
    for m in dead:
        h.check(m["routing_key"] == "dead.letters", f"dead letter routing key {m['routing_key']}")
    ok = srv.drain("orders")
    # Those whose confirms the closed channel cut off are published again: compare sets.
    ns = sorted({json.loads(m["value"])["n"] for m in ok})
    want = list(range(first, first + 10)) + list(range(first + 11, first + 21)) + \
        list(range(first + 22, first + 32)) + list(range(first + 33, first + 43))
    h.check(ns == want, f"the others: {len(ns)} distinct, want {len(want)}")
    h.check_per_key_order(ok, allow_replay=True)
    h.check(relay.alive(), "the relay exited")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    why = {m["headers"].get("dlq_original_topic"): m["headers"].get("dlq_error", "")[:90]
           for m in dead}
    h.log(f"rabbitmq: unroutable, denied and too large set aside to dead.letters ({why}; "
          f"{len(dead)} records for 3 events); the 40 others published ({len(ok)} messages); slot "
          "past them")
    return first + 100


def kills(env, srv, first):
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    srv.got["orders"] = []
    relay = env.relay(config(pg, srv), name="relay-kills")
    rows = h.scaled(10000)
    job, text = h.start_insert_job(pg, h.insert_sql(first, rows // 100, 100).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.08);\n"))
    streaming(env, relay)
    h.feed(job, text)
    confirmed, before, rng = [], [], random.Random(5)
    for k in range(5):
        h.wait_for(lambda: len(srv.drain("orders", 0.1, 0.2)) >= (k + 1) * rows * 12 // 100,
                   60, "progress")
        time.sleep(rng.uniform(0, 0.3))
        relay.signal(signal.SIGKILL)
        relay.wait(10)
        h.wait_for(lambda: not pg.slot()[1], 30, "the slot to be released")
        confirmed.append(pg.slot()[0])
        before.append([m["headers"]["ce_id"] for m in srv.drain("orders")])
        streaming(env, relay)
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    h.wait_for(lambda: len({m["headers"]["ce_id"] for m in srv.drain("orders", quiet=0.3)})
               >= rows, 90, "every row")
    rows, distinct, dups = h.check_stream(pg, srv.drain("orders"), confirmed, before)
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"rabbitmq, relay SIGKILLed 5 times: {rows} rows, 0 lost, {dups} duplicates, all "
          "after the confirmed position")
    return first + 10000


def server_restart(env, srv, first):
    """The broker SIGKILLed mid-stream while rows keep coming, 20 MB of them during
    the outage: the slot stays before them, the relay stops reading at its in-flight limit
    (1 MiB) so its memory stays flat, and everything arrives after the restart."""
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    srv.got["orders"] = []
    relay = env.relay(config(pg, srv, pipeline=h.OUTAGE_PIPELINE.split("\n", 1)[1]),
                      name="relay-restart")
    job, text = h.start_insert_job(pg, h.insert_sql(first, 60, 100).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.1);\n"))
    streaming(env, relay)
    h.feed(job, text)
    h.wait_for(lambda: len(srv.drain("orders", 0.1, 0.2)) >= 1500, 60, "progress")
    slot_before = pg.slot()[0]
    srv.kill()
    t_down = time.time()
    backlog, unsent, base_rss, rss = h.outage_backlog(env, relay, first + 6000)
    srv.start()
    t_up = time.time()
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    h.wait_for(lambda: len({m["headers"]["ce_id"] for m in srv.drain("orders", quiet=0.3)})
               >= 6000 + backlog, 90, "every row after rabbitmq-server came back",
               interval=0.5)
    took = time.time() - t_up
    # RabbitMQ, killed, forgets acknowledgements it had not yet written down and delivers
    # those messages to the consumer again, flagged redelivered: the broker's own
    # at-least-once towards consumers, not a second publish by the relay.
    seen, msgs, redelivered = set(), [], 0
    for m in srv.drain("orders"):
        if m["redelivered"] and m["headers"]["ce_id"] in seen:
            redelivered += 1
            continue
        seen.add(m["headers"]["ce_id"])
        msgs.append(m)
    rows, distinct, dups = h.check_stream(pg, msgs, dup_bounds_only=[slot_before])
    h.check(relay.alive(), "the relay exited")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"rabbitmq-server SIGKILLed mid-stream ({t_up - t_down:.1f}s down, {backlog} rows "
          f"({backlog * 2 // 1000} MB) written "
          f"meanwhile: {unsent} bytes of WAL left unsent, relay RSS {base_rss} -> {rss} kB) "
          f"and restarted: {rows} rows, 0 lost, {dups} duplicates published again, every row "
          f"{took:.1f}s after the restart ({redelivered} redelivered by the broker to the "
          "consumer)")
    return first + 6000 + backlog


def check_cmd(env, relay):
    return subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                           relay.cfg], capture_output=True, text=True, timeout=60)


def refused(env, srv, first, name, cfg, expect):
    pg = env.pg
    pg.psql(h.insert_sql(first, 1, 5))
    after = pg.current_lsn()
    relay = env.relay(cfg, name=name)
    chk = check_cmd(env, relay)
    h.check(chk.returncode != 0 and expect in chk.stdout + chk.stderr,
            f"check passed or said something else: {chk.returncode} {chk.stdout[-400:]}")
    t0 = time.time()
    relay.start()
    rc = relay.wait(30)
    took = time.time() - t0
    err = [ln for ln in relay.log_text().splitlines() if " ERROR " in ln]
    h.check(rc == 1 and err and expect in err[-1], f"exit {rc}: {err[-3:]}")
    h.check(pg.slot()[0] < after, "the slot moved past undelivered events")
    h.log(f"rabbitmq, {name}: check failed, relay exit 1 after {took:.1f}s: "
          f"{err[-1].split(' ERROR ', 1)[-1][:200]}")


def tls(env, srv, first):
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    srv.got["orders"] = []
    relay = env.relay(config(pg, srv, tls=True, ca=os.path.join(srv.tls, "ca.crt")),
                      name="relay-tls")
    chk = check_cmd(env, relay)
    h.check(chk.returncode == 0, f"check over TLS failed: {chk.stdout[-600:]} {chk.stderr}")
    streaming(env, relay)
    pg.psql(h.insert_sql(first, 10, 100))
    h.wait_for(lambda: len(srv.drain("orders", quiet=0.3)) >= 1000, 60, "1,000 over TLS")
    h.check_exact(pg, srv.drain("orders"), 1000)
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log("rabbitmq over amqps:// (test CA, host name verified): check passed, 1,000 rows "
          "once each")
    refused(env, srv, first + 1000, "relay-unknown-ca",
            config(pg, srv, tls=True, ca=os.path.join(srv.tls, "other-ca.crt")),
            "does not verify")
    refused(env, srv, first + 1010, "relay-password", config(pg, srv, password="not-it"),
            "refused user")


def test(env):
    if not shutil.which("/usr/lib/rabbitmq/bin/rabbitmq-server"):
        raise h.TestFailure("rabbitmq-server is not installed (scripts/deps.sh installs it)")
    srv = RabbitServer(env.tmp).start()
    try:
        nxt = exact(env, srv)
        nxt = set_aside(env, srv, nxt)
        nxt = kills(env, srv, nxt)
        nxt = server_restart(env, srv, nxt)
        tls(env, srv, nxt)
    finally:
        srv.stop()


if __name__ == "__main__":
    h.main(test)

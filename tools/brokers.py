#!/usr/bin/env python3
"""The brokers besides Kafka, each started on loopback in a directory of its own, for
the demo (scripts/demo.sh --sink NAME) and the drain benchmark (bench/sinks_bench.py):
Redis, NATS with JetStream and RabbitMQ from Debian 12's packages, an HTTP endpoint
for webhooks, and an SQS-compatible server (moto; it and the clients the others are
read with are installed in the build directory's venv-brokers).

Each broker class has start(), stop(), section() -- the relay configuration's lines
for it: "sink: NAME" and its section -- count(), the events it holds, events(), the
events it received since the last call, as dicts (destination, key, id, headers,
value), and pid(), the broker's process (None for the webhook endpoint, a thread).

As a command, it starts one broker, writes section() to --section-file, then prints
every event as it arrives until SIGTERM or SIGINT, and stops the broker:

    python3 tools/brokers.py rabbitmq --dir /tmp/x --section-file /tmp/x/sink.yaml
"""

import argparse
import base64
import hashlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The client (and for SQS the server) each broker is read with: module, requirement.
REQUIREMENTS = {"redis": ("redis", "redis==8.1.0"), "nats": ("nats", "nats-py==2.16.0"),
                "rabbitmq": ("pika", "pika==1.3.2"), "webhook": None,
                "sqs": ("moto", "moto[server]==5.2.1")}


def ensure_venv(build_dir, names):
    """Re-execute in <build>/venv-brokers with the clients of the brokers names
    installed, unless they import already."""
    import importlib
    reqs = [REQUIREMENTS[n] for n in names if REQUIREMENTS[n]]
    try:
        for module, _ in reqs:
            importlib.import_module(module)
        return
    except ImportError:
        pass
    env_dir = os.path.join(os.path.abspath(build_dir), "venv-brokers")
    py = os.path.join(env_dir, "bin", "python3")
    if not os.path.exists(py):
        venv.create(env_dir, with_pip=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *[r for _, r in reqs]], check=True)
    os.execv(py, [py, *sys.argv])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def event(dest, headers, value):
    """An event as the command prints it, with the headers as the broker holds them
    (CloudEvents attributes as ce_id, ce-id or cloudEvents:id, by its binding)."""
    hd = {k.replace("cloudEvents:", "ce_").replace("ce-", "ce_"): v for k, v in headers}
    return {"destination": dest, "key": hd.get("ce_subject"), "id": hd.get("ce_id"),
            "headers": headers, "value": value}


class Process:
    """A broker that is one process of its own, started into self.proc."""
    proc = None

    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Redis(Process):
    name = "redis"

    def __init__(self, d):
        import redis
        self.dir, self.port, self.proc = d, free_port(), None
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        self.last = {}

    def start(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", self.dir, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(self._ping, 30, "redis-server")
        return self

    def _ping(self):
        try:
            return self.client.ping()
        except Exception:  # noqa: BLE001 -- not up yet
            return False


    def section(self):
        return f"""sink: redis
redis:
  url: "redis://127.0.0.1:{self.port}/0"
  stream: "outbox.{{aggregatetype}}"
"""

    def streams(self):
        return [k.decode() for k in self.client.scan_iter(match="outbox.*", _type="stream")]

    def count(self):
        return sum(self.client.xlen(s) for s in self.streams())

    def events(self):
        out = []
        for s in self.streams():
            for eid, f in self.client.xrange(s, min=f"({self.last.get(s, '0-0')}"):
                self.last[s] = eid.decode()
                f = {k.decode(): v.decode() for k, v in f.items()}
                hd = [(k, v) for k, v in f.items() if k not in ("id", "key", "value")]
                out.append(event(s, [("id", f.get("id")), ("key", f.get("key"))] + hd,
                                 f.get("value")))
        return out


class Nats(Process):
    name = "nats"

    def __init__(self, d):
        self.dir, self.port, self.proc = d, free_port(), None
        self.url = f"nats://127.0.0.1:{self.port}"
        self.seq = 0

    def start(self):
        self.proc = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p",
                                      str(self.port), "-sd", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(lambda: self._run(self._add_stream), 30, "nats-server")
        return self

    def _run(self, fn):
        import asyncio

        import nats

        async def quiet(e):
            pass

        async def go():
            nc = await nats.connect(self.url, connect_timeout=1, allow_reconnect=False,
                                    max_reconnect_attempts=0, error_cb=quiet)
            try:
                return await fn(nc.jetstream())
            finally:
                await nc.close()
        try:
            return asyncio.run(go())
        except Exception:  # noqa: BLE001 -- not up yet
            return False

    async def _add_stream(self, js):
        await js.add_stream(name="OUTBOX", subjects=["outbox.>"])
        return True


    def section(self):
        return f"""sink: nats
nats:
  url: "{self.url}"
  subject: "outbox.{{aggregatetype}}.{{aggregateid}}"
"""

    def count(self):
        async def fn(js):
            return (await js.stream_info("OUTBOX")).state.messages
        return self._run(fn) or 0

    def events(self):
        async def fn(js):
            last = (await js.stream_info("OUTBOX")).state.last_seq
            out = []
            for seq in range(self.seq + 1, last + 1):
                m = await js.get_msg("OUTBOX", seq)
                hd = list((m.headers or {}).items())
                out.append(event(m.subject, hd, m.data.decode() if m.data else None))
                self.seq = seq
            return out
        return self._run(fn) or []


def rabbit_password_hash(password):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class RabbitMQ:
    """A RabbitMQ node with a user "relay", a durable topic exchange "outbox" and a
    durable queue "events" bound to it for every routing key."""
    name = "rabbitmq"

    def __init__(self, d):
        self.dir, self.port, self.proc = d, free_port(), None
        self.node = f"outboxrelay{self.port}@localhost"
        self.epmd_port = free_port()
        defs = {
            "users": [{"name": "relay", "password_hash": rabbit_password_hash("relay"),
                       "hashing_algorithm": "rabbit_password_hashing_sha256",
                       "tags": "administrator"}],
            "vhosts": [{"name": "/"}],
            "permissions": [{"user": "relay", "vhost": "/", "configure": ".*",
                             "write": ".*", "read": ".*"}],
            "exchanges": [{"name": "outbox", "vhost": "/", "type": "topic", "durable": True,
                           "auto_delete": False, "internal": False, "arguments": {}}],
            "queues": [{"name": "events", "vhost": "/", "durable": True,
                        "auto_delete": False, "arguments": {}}],
            "bindings": [{"source": "outbox", "vhost": "/", "destination": "events",
                          "destination_type": "queue", "routing_key": "#",
                          "arguments": {}}],
        }
        with open(os.path.join(d, "definitions.json"), "w") as f:
            json.dump(defs, f)
        with open(os.path.join(d, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
                    f"load_definitions = {d}/definitions.json\n"
                    "loopback_users = none\nlog.console = false\nlog.file.level = warning\n")
        with open(os.path.join(d, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        self.env = dict(os.environ, HOME=d, RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(free_port()), ERL_EPMD_ADDRESS="127.0.0.1",
                        ERL_EPMD_PORT=str(self.epmd_port),
                        RABBITMQ_MNESIA_BASE=os.path.join(d, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(d, "log"),
                        RABBITMQ_CONFIG_FILE=os.path.join(d, "rabbitmq"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(d, "enabled_plugins"),
                        RABBITMQ_PID_FILE=os.path.join(d, "pid"))
        self.got = queue.Queue()
        self.consumer = None

    def start(self):
        self.proc = subprocess.Popen(["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(self._answers, 90, "rabbitmq-server")
        return self

    def pid(self):
        """The Erlang VM's process: the start script runs it in the session it leads."""
        r = subprocess.run(["pgrep", "-s", str(self.proc.pid), "beam.smp"],
                           capture_output=True, text=True)
        return int(r.stdout.split()[0]) if r.stdout.split() else None

    def _connection(self):
        import pika
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.port, "/", pika.PlainCredentials("relay", "relay"),
            connection_attempts=1, socket_timeout=2))

    def _answers(self):
        try:
            self._connection().close()
            return True
        except Exception:  # noqa: BLE001 -- not up yet
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-f", f"epmd.*{self.epmd_port}"], check=False)

    def section(self):
        return f"""sink: rabbitmq
rabbitmq:
  url: "amqp://relay:relay@127.0.0.1:{self.port}/%2f"
  exchange: outbox
  routing_key: "{{aggregatetype}}.{{type}}"
"""

    def count(self):
        conn = self._connection()
        try:
            return conn.channel().queue_declare("events", passive=True).method.message_count
        finally:
            conn.close()

    def events(self):
        """Consume what the queue holds now."""
        conn = self._connection()
        ch = conn.channel()
        out, last = [], [time.time(), None]

        def on_msg(ch_, method, props, body):
            hd = [(k, v.decode() if isinstance(v, bytes) else v)
                  for k, v in (props.headers or {}).items()]
            if props.content_type:
                hd.append(("content_type", props.content_type))
            out.append(event(method.routing_key, hd, body.decode() if body else None))
            last[0], last[1] = time.time(), method.delivery_tag

        ch.basic_qos(prefetch_count=500)
        ch.basic_consume("events", on_msg)
        while time.time() - last[0] < 0.3:
            conn.process_data_events(time_limit=0.1)
        if last[1] is not None:
            ch.basic_ack(last[1], multiple=True)
        conn.close()
        return out


class Webhook:
    """An HTTP endpoint on loopback that accepts every POST (2xx)."""
    name = "webhook"
    SECRET = "whsec_" + base64.b64encode(b"outbox-relay-demo-secret").decode()

    def __init__(self, d):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.got, self.n = queue.Queue(), 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hd = [(k.lower(), v) for k, v in self.headers.items()]
                endpoint.n += 1
                endpoint.got.put(event("POST /events", hd, body.decode()))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def pid(self):
        return None

    def stop(self):
        self.server.shutdown()

    def section(self):
        return f"""sink: webhook
webhook:
  url: "http://127.0.0.1:{self.port}/events"
  secret: "{self.SECRET}"
  format: cloudevents
"""

    def count(self):
        return self.n

    def events(self):
        out = []
        while not self.got.empty():
            out.append(self.got.get())
        return out


# moto's SQS builds every queue attribute -- message counts included, each a scan of
# the queue -- whenever code reads one, and its send path reads a static one
# (ContentBasedDeduplication) several times per message: tens of milliseconds a
# message once a few thousand wait, which would make 10,000 events take minutes.  The
# test server builds a queue's attributes once and again only when they are set; the
# message counts it reports are then stale, and this test reads none.  Likewise every
# receive asks each waiting message whether it is visible, each time through a
# datetime round trip: the test server reads the clock with time.time() instead; and
# each delete builds a list of receipt handles per waiting message, twice: the test
# server's delete compares them in one pass, with the same outcome.  And it answers
# with Nagle's algorithm off (as http.server offers): its answer goes in two writes,
# and the second would wait for the client's delayed ACK, 40 ms a request.
MOTO_SERVER = """\
import sys
import time

from moto.server import main
from moto.sqs import models
from werkzeug import serving

full = models.Queue.attributes.fget
set_attributes = models.Queue._set_attributes
millis = models.unix_time_millis


def fast_millis(dt=None):
    return time.time() * 1000.0 if dt is None else millis(dt)


def attributes(q):
    kept = q.__dict__.get("_test_attributes")
    if kept is None:
        kept = q.__dict__["_test_attributes"] = full(q)
    return dict(kept)


def delete_message(q, handle):
    if handle in q.deleted_messages:
        return
    keep, found = [], False
    for m in q._messages:
        if m.receipt_handle == handle or handle in m._old_receipt_handles:
            found = True
            q.pending_messages.discard(m)
            q.deleted_messages.update(m.all_receipt_handles)
        else:
            keep.append(m)
    if not found:
        raise models.ReceiptHandleIsInvalid()
    q._messages = keep


def set_and_forget(q, *args, **kwargs):
    q.__dict__.pop("_test_attributes", None)
    return set_attributes(q, *args, **kwargs)


models.Queue.attributes = property(attributes)
models.unix_time_millis = fast_millis
models.Queue.delete_message = delete_message
serving.WSGIRequestHandler.disable_nagle_algorithm = True
models.Queue._set_attributes = set_and_forget
main(sys.argv[1:])
"""


class Sqs(Process):
    """moto's SQS in server mode (plain HTTP, no authentication), made fast enough for
    a backlog (MOTO_SERVER), with a FIFO queue "outbox.fifo"."""
    name = "sqs"

    def __init__(self, d):
        self.dir, self.port, self.proc = d, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen = 0

    def client(self):
        import boto3
        return boto3.client("sqs", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-c", MOTO_SERVER, "-H", "127.0.0.1",
                                      "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

        def up():
            try:
                self.queue = self.client().create_queue(
                    QueueName="outbox.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
                return True
            except Exception:  # noqa: BLE001 -- not up yet
                return False
        wait_for(up, 30, "moto")
        return self


    def section(self):
        return f"""sink: sqs
sqs:
  queue_url: "{self.queue}"
  region: us-east-1
  endpoint: "{self.url}"
  access_key_id: test
  secret_access_key: test
"""

    def count(self):
        # MOTO_SERVER keeps a queue's attributes until they are set: set one, to count.
        c = self.client()
        c.set_queue_attributes(QueueUrl=self.queue, Attributes={"VisibilityTimeout": "30"})
        a = c.get_queue_attributes(QueueUrl=self.queue,
                                               AttributeNames=["ApproximateNumberOfMessages"])
        return int(a["Attributes"]["ApproximateNumberOfMessages"])

    def events(self):
        """Receive and delete what waits."""
        c, out = self.client(), []
        while True:
            r = c.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10,
                                  MessageAttributeNames=["All"],
                                  MessageSystemAttributeNames=["MessageGroupId",
                                                               "MessageDeduplicationId"])
            msgs = r.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                hd = [("MessageGroupId", m["Attributes"].get("MessageGroupId")),
                      ("MessageDeduplicationId", m["Attributes"].get("MessageDeduplicationId"))]
                hd += [(k, v.get("StringValue")) for k, v in
                       m.get("MessageAttributes", {}).items()]
                body, e = m["Body"], event("outbox.fifo", hd, m["Body"])
                try:  # structured CloudEvents: the id and key are in the body
                    ce = json.loads(body)
                    e["id"], e["key"] = ce.get("id", e["id"]), ce.get("subject", e["key"])
                except (ValueError, AttributeError):
                    pass
                out.append(e)
            c.delete_message_batch(QueueUrl=self.queue, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(msgs)])


BROKERS = {c.name: c for c in (Redis, Nats, RabbitMQ, Webhook, Sqs)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("broker", choices=sorted(BROKERS))
    p.add_argument("--dir", required=True)
    p.add_argument("--section-file", required=True)
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    a = p.parse_args()
    ensure_venv(a.build_dir, [a.broker])
    os.makedirs(a.dir, exist_ok=True)
    b = BROKERS[a.broker](a.dir).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with open(a.section_file + ".tmp", "w") as f:
            f.write(b.section())
        os.rename(a.section_file + ".tmp", a.section_file)
        while not stop.is_set():
            for e in b.events():
                print(f"{e['destination']} key={e['key']}")
                for k, v in e["headers"]:
                    print(f"    {k}: {v}")
                print(f"    value: {e['value']}", flush=True)
            stop.wait(0.3)
    finally:
        b.stop()


if __name__ == "__main__":
    main()

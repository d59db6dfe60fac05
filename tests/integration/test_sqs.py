"""The Amazon SQS sink (sink: sqs) against moto's SQS in server mode (moto[server] from
PyPI), started by this test on loopback with HTTPS from a throwaway CA (made with the
openssl command line) and IAM authentication switched on, so that every request must
carry a valid SigV4 signature of a known access key.  Messages are read back with
boto3, which shares no code with the relay's libcurl.  The relay renders events as
structured CloudEvents (the SQS default); the test turns each envelope back into the
harness's message shape and checks the four invariants with harness.check_stream:

  1. 10,000 rows into a FIFO queue arrive once each, in commit order per key, with
     MessageDeduplicationId = the event id, MessageGroupId = the key, and the outbox
     headers as String message attributes;
  2. the relay SIGKILLed 5 times mid-stream: nothing lost, duplicates only at or after
     the confirmed positions;
  3. moto hung (SIGSTOP, then SIGCONT: it keeps its queues in memory) mid-stream: the
     relay times out and retries, the slot never confirms an event SQS had not
     accepted before the hang (moto's SentTimestamp says when), and everything arrives
     afterwards;
  4. an event larger than sqs.max_message_size and one larger than the queue's own
     MaximumMessageSize (refused by SQS inside a batch) are dead-lettered to
     sqs.dlq_queue_url with their reason while the rest flow; an event with more
     headers than SQS's 10 attributes carries them all in one packed attribute;
  5. a wrong secret key stops the relay with exit 1 and a message naming
     SignatureDoesNotMatch, and so does a CA that does not match; `outbox-relay check`
     names both failures and passes with the right settings.
"""

import json
import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

sys.path.insert(0, os.path.join(h.ROOT, "tools"))
from brokers import MOTO_SERVER  # noqa: E402  (moto, made fast enough to test with)

h.in_venv("moto", "moto[server]==5.2.1", "sqs")

import boto3  # noqa: E402
import botocore.config  # noqa: E402

REGION = "eu-west-1"
QUEUE_MAX = 4096  # MaximumMessageSize of the main queue: the broker's own limit

class Moto:
    """moto_server over HTTPS on a free loopback port, with IAM authentication on."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "moto")
        h.make_test_certs(self.dir)
        self.ca = os.path.join(self.dir, "ca.crt")
        self.other_ca = os.path.join(self.dir, "other-ca.crt")
        self.port = h.free_port()
        self.url = f"https://localhost:{self.port}"
        self.log = open(os.path.join(tmp, "moto.log"), "w")
        self.proc = subprocess.Popen([sys.executable, "-c", MOTO_SERVER, "-H", "127.0.0.1",
                                      "-p", str(self.port),
                                      "-c", os.path.join(self.dir, "server.crt"),
                                      "-k", os.path.join(self.dir, "server.key")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.setup()
        except BaseException:
            self.stop()
            raise

    def setup(self):
        anon = self.client("sqs", "anonymous", "anonymous")
        h.wait_for(lambda: self._answers(anon), 30, "moto to answer")
        # While authentication is off: a user, its key, a policy; then the queues.
        iam = self.client("iam", "anonymous", "anonymous")
        iam.create_user(UserName="relay")
        key = iam.create_access_key(UserName="relay")["AccessKey"]
        iam.put_user_policy(UserName="relay", PolicyName="sqs", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]}))
        self.key, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        self.sqs = self.client("sqs", self.key, self.secret)
        fifo = {"FifoQueue": "true", "MaximumMessageSize": str(QUEUE_MAX)}
        self.queue = self.sqs.create_queue(QueueName="outbox.fifo", Attributes=fifo)["QueueUrl"]
        self.dlq = self.sqs.create_queue(QueueName="outbox-dlq.fifo",
                                         Attributes={"FifoQueue": "true"})["QueueUrl"]
        # From now on every request needs a valid signature of a known key.
        ctx = ssl.create_default_context(cafile=self.ca)
        req = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"0",
                                     method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, context=ctx, timeout=10).read()
        try:
            anon.list_queues()
            raise h.TestFailure("moto answered an unsigned request after reset-auth")
        except anon.exceptions.ClientError:
            pass

    def client(self, service, key, secret):
        cfg = botocore.config.Config(connect_timeout=2, read_timeout=30,
                                     retries={"max_attempts": 2})
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            verify=self.ca, config=cfg)

    def _answers(self, c):
        try:
            c.list_queues()
            return True
        except Exception:
            return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


class Reader:
    """A boto3 consumer in a thread: receives, deletes, keeps every message in order."""

    def __init__(self, moto, queue):
        self.sqs = moto.client("sqs", moto.key, moto.secret)
        self.queue = queue
        self.messages = []
        self.stopping = False
        self.error = None
        self.last_empty = 0.0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            while not self.stopping:
                r = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=0, MessageAttributeNames=["All"],
                                             MessageSystemAttributeNames=["All"])
                got = r.get("Messages", [])
                if not got:
                    self.last_empty = time.time()
                    time.sleep(0.05)
                    continue
                self.sqs.delete_message_batch(QueueUrl=self.queue, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(got)])
                for m in got:
                    self.messages.append(self.convert(m, len(self.messages)))
        except Exception as e:  # noqa: BLE001 -- reported by the test
            self.error = e

    @staticmethod
    def convert(m, seq):
        """An SQS message as the harness's message: the CloudEvent's attributes as ce_*
        headers, its data as the value."""
        attrs = m.get("Attributes", {})
        mattrs = {k: v.get("StringValue") for k, v in m.get("MessageAttributes", {}).items()}
        out = {"topic": "outbox.event.order", "partition": 0, "offset": seq,
               "key": attrs.get("MessageGroupId"), "dedup": attrs.get("MessageDeduplicationId"),
               "sent_ms": int(attrs.get("SentTimestamp", "0")), "attributes": mattrs,
               "body": m["Body"]}
        try:
            ev = json.loads(m["Body"])
        except ValueError:
            ev = None
        if isinstance(ev, dict) and "specversion" in ev:
            hd = {"ce_specversion": ev["specversion"], "ce_id": ev["id"],
                  "ce_source": ev["source"], "ce_type": ev["type"], "ce_time": ev["time"],
                  "ce_pglsn": ev["pglsn"], "ce_pgxid": str(ev["pgxid"]),
                  "ce_pgindex": str(ev["pgindex"]), "content-type": ev["datacontenttype"]}
            if "subject" in ev:
                hd["ce_subject"] = ev["subject"]
            out["value"] = json.dumps(ev.get("data"), sort_keys=True)
            out["headers"] = list(hd.items())
        else:
            out["value"] = m["Body"]
            out["headers"] = []
        return h.decode_message(out)

    def drained(self, since):
        """Wait until a receive after time since found the queue empty: with nothing
        sending, every message SQS had accepted by then has been read."""
        h.wait_for(lambda: self.last_empty > since + 0.1, 60, "the queue to be drained")
        return self.snapshot()

    def snapshot(self):
        h.check(self.error is None, f"the SQS reader failed: {self.error!r}")
        return list(self.messages)

    def distinct(self):
        return len({m["headers"].get("ce_id") for m in self.snapshot()})

    def stop(self):
        self.stopping = True
        self.thread.join(40)


def config(pg, moto, secret=None, ca=None, extra=""):
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
sink: sqs
sqs:
  queue_url: "{moto.queue}"
  region: {REGION}
  endpoint: "{moto.url}"
  access_key_id: "{moto.key}"
  secret_access_key: "${{SQS_TEST_SECRET}}"
  ca_file: "{ca or moto.ca}"
  dlq_queue_url: "{moto.dlq}"
  timeout: 1s
{extra}""", {"SQS_TEST_SECRET": secret or moto.secret}


def start(env, relay, envvars):
    relay.start(envvars)
    h.wait_for(lambda: (env.pg.slot() or (0, False))[1], 60, "the relay to stream")


def insert_with_headers(first, ntx, per_tx, nkeys=50):
    """Like harness.insert_sql, each row with a headers object of two members."""
    out = []
    for t in range(ntx):
        lo = first + t * per_tx
        out.append(
            "BEGIN;\nINSERT INTO public.outbox (aggregatetype, aggregateid, type, payload, "
            f"headers) SELECT 'order', 'order-' || (g % {nkeys}), 'OrderCreated', "
            "jsonb_build_object('n', g), jsonb_build_object('trace', 'tr-' || g, 'tenant', "
            f"'t' || (g % 3)) FROM generate_series({lo}, {lo + per_tx - 1}) g;\nCOMMIT;\n")
    return "".join(out)


def exact(env, moto):
    pg = env.pg
    reader = Reader(moto, moto.queue)
    text, envvars = config(pg, moto)
    relay = env.relay(text, name="relay-exact")
    start(env, relay, envvars)
    t0 = time.time()
    rows = h.scaled(10000)
    pg.psql(insert_with_headers(1, rows // 100, 100))
    h.wait_for(lambda: reader.distinct() >= rows, 120, f"{rows} messages", interval=0.5)
    took = time.time() - t0
    time.sleep(1)
    msgs = reader.snapshot()
    h.check_exact(pg, msgs, rows)
    for m in msgs:
        rid = m["headers"]["ce_id"]
        n = json.loads(m["value"])["n"]
        h.check(m["dedup"] == rid, f"MessageDeduplicationId {m['dedup']!r} is not the id {rid}")
        h.check(m["key"] == m["headers"]["ce_subject"], f"MessageGroupId {m['key']!r}")
        want = {"content-type": "application/cloudevents+json; charset=UTF-8",
                "trace": f"tr-{n}", "tenant": f"t{n % 3}"}
        h.check(m["attributes"] == want, f"event {rid}: attributes {m['attributes']}")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    reader.stop()
    h.log(f"sqs: {rows:,} rows once each in {took:.1f}s ({rows / took:.0f}/s), in order per "
          "key, MessageDeduplicationId = id, MessageGroupId = key, headers as attributes")


def kills(env, moto, first):
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    reader = Reader(moto, moto.queue)
    text, envvars = config(pg, moto)
    relay = env.relay(text, name="relay-kills")
    ntx, per_tx = h.scaled(4000) // 100, 100
    job, sql = h.start_insert_job(pg, h.insert_sql(first, ntx, per_tx).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.03);\n"))
    start(env, relay, envvars)
    h.feed(job, sql)
    confirmed, before, rng = [], [], random.Random(5)
    for k in range(5):
        h.wait_for(lambda: reader.distinct() >= (k + 1) * ntx * per_tx * 15 // 100, 60,
                   "progress")
        time.sleep(rng.uniform(0, 0.3))
        relay.signal(signal.SIGKILL)
        relay.wait(10)
        h.wait_for(lambda: not pg.slot()[1], 30, "the slot to be released")
        confirmed.append(pg.slot()[0])
        before.append([m["headers"]["ce_id"] for m in reader.drained(time.time())])
        start(env, relay, envvars)
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = ntx * per_tx
    h.wait_for(lambda: reader.distinct() >= total, 90, "every row", interval=0.5)
    time.sleep(1)
    rows, distinct, dups = h.check_stream(pg, reader.snapshot(), confirmed, before)
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    reader.stop()
    h.log(f"sqs, relay SIGKILLed 5 times: {rows} rows, 0 lost, {dups} duplicates, all at or "
          "after the confirmed positions")
    return first + total


def hang(env, moto, first):
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    reader = Reader(moto, moto.queue)
    text, envvars = config(pg, moto)
    relay = env.relay(text, name="relay-hang")
    ntx, per_tx = h.scaled(3000) // 100, 100
    job, sql = h.start_insert_job(pg, h.insert_sql(first, ntx, per_tx).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.05);\n"))
    start(env, relay, envvars)
    h.feed(job, sql)
    h.wait_for(lambda: reader.distinct() >= ntx * per_tx // 3, 60, "progress before the hang")
    moto.signal(signal.SIGSTOP)
    t_stop_ms = int(time.time() * 1000)
    time.sleep(4)
    slot_hung = pg.slot()[0]
    h.check(relay.alive(), "the relay exited while SQS hung")
    moto.signal(signal.SIGCONT)
    t_up = time.time()
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = ntx * per_tx
    h.wait_for(lambda: reader.distinct() >= total, 90, "every row after the hang", interval=0.5)
    took = time.time() - t_up
    time.sleep(1)
    msgs = reader.snapshot()
    # What SQS had accepted before it hung, by its own clock: all the slot may confirm.
    sent_before = [m["headers"]["ce_id"] for m in msgs if m["sent_ms"] < t_stop_ms]
    rows, distinct, dups = h.check_stream(pg, msgs, [slot_hung], [sent_before])
    log = relay.log_text()
    h.check("Timeout was reached" in log or "timed out" in log.lower(),
            "the relay did not log the request timing out")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    reader.stop()
    h.log(f"sqs hung 4 s (SIGSTOP) mid-stream: {rows} rows, 0 lost, {dups} duplicates, the "
          f"slot confirmed nothing SQS had not accepted, every row {took:.1f}s after SIGCONT")
    return first + total


def dead_letters(env, moto, first):
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    reader = Reader(moto, moto.queue)
    dlq = Reader(moto, moto.dlq)
    text, envvars = config(pg, moto)
    relay = env.relay(text, name="relay-dlq")
    start(env, relay, envvars)
    big, mid, many = first + 5, first + 12, first + 17
    members = ", ".join(f"'h{i}', 'v{i}'" for i in range(12))
    pg.psql("BEGIN;\n" + "".join(
        "INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload, headers) VALUES "
        f"('order', 'order-{n % 3}', 'OrderCreated', " +
        (f"jsonb_build_object('n', {n}, 'pad', repeat('x', 300000))" if n == big else
         f"jsonb_build_object('n', {n}, 'pad', repeat('y', {QUEUE_MAX + 500}))" if n == mid else
         f"jsonb_build_object('n', {n})") + ", " +
        (f"jsonb_build_object({members})" if n == many else "NULL") + ");\n"
        for n in range(first, first + 20)) + "COMMIT;\n")
    h.wait_for(lambda: reader.distinct() >= 18 and
               len({m["dedup"] for m in dlq.snapshot()}) >= 2, 60,
               "18 events and 2 dead letters", interval=0.3)
    time.sleep(1)
    ids = {n: i for i, n in (line.split("|") for line in pg.psql(
        "SELECT id, payload->>'n' FROM public.outbox").splitlines())}
    got = {json.loads(m["value"])["n"]: m for m in reader.snapshot()}
    h.check(sorted(got) == sorted(set(range(first, first + 20)) - {big, mid}),
            f"events that arrived: {sorted(got)}")
    packed = got[many]["attributes"]
    h.check(list(packed) == ["outbox-headers"], f"attributes of the 13-header event: {packed}")
    pairs = json.loads(packed["outbox-headers"])
    h.check(pairs[0][0] == "content-type" and
            pairs[1:] == [[f"h{i}", f"v{i}"] for i in range(12)],
            f"packed headers {pairs}")
    dead = {}
    for m in dlq.snapshot():
        attrs = m["attributes"]
        hd = dict(json.loads(attrs["outbox-headers"]))
        dead[hd["dlq_event_id"]] = hd
        h.check(m["dedup"] == hd["dlq_event_id"], "dead letter's deduplication id")
    h.check(set(dead) == {ids[str(big)], ids[str(mid)]}, f"dead letters {sorted(dead)}")
    for n in (big, mid):
        hd = dead[ids[str(n)]]
        h.check(hd["dlq_reason"] == "too-large", f"event {n}: reason {hd['dlq_reason']}")
    h.check("shorter than" in dead[ids[str(mid)]]["dlq_error"],
            f"the queue's own refusal: {dead[ids[str(mid)]]['dlq_error']}")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    reader.stop()
    dlq.stop()
    h.log("sqs: one event over sqs.max_message_size and one over the queue's own limit "
          "(refused inside a batch) dead-lettered as too-large, 18 others delivered; 13 "
          "headers packed into one attribute")
    return first + 20


def refusals(env, moto, first):
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    slot0 = pg.slot()[0]
    pg.psql(h.insert_sql(first, 1, 10))
    cases = [("wrong secret", config(pg, moto, secret="x" + moto.secret[1:]),
              "SignatureDoesNotMatch"),
             ("unrelated CA", config(pg, moto, ca=moto.other_ca), "TLS with SQS failed")]
    for name, (text, envvars), needle in cases:
        relay = env.relay(text, name="relay-" + name.replace(" ", "-"))
        t0 = time.time()
        relay.start(envvars)
        rc = relay.wait(30)
        log = relay.log_text()
        h.check(rc == 1, f"{name}: exit {rc}, want 1")
        h.check(needle in log, f"{name}: the log does not say {needle!r}:\n{log[-1500:]}")
        h.check(moto.secret not in log, f"{name}: the secret key is in the log")
        h.check(pg.slot()[0] == slot0, f"{name}: the slot moved")
        r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                            relay.cfg], capture_output=True, text=True,
                           env={**os.environ, **envvars}, timeout=60)
        h.check(r.returncode == 1, f"{name}: check exit {r.returncode}, want 1:\n{r.stdout}")
        h.log(f"sqs, {name}: exit 1 after {time.time() - t0:.1f}s, saying {needle!r}; check "
              "fails too")
    text, envvars = config(pg, moto)
    relay = env.relay(text, name="relay-check")
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                        relay.cfg], capture_output=True, text=True,
                       env={**os.environ, **envvars}, timeout=60)
    h.check(r.returncode == 0 and "outbox.fifo: exists, FIFO queue" in r.stdout and
            f"takes messages up to {QUEUE_MAX} bytes" in r.stdout,
            f"check with the right settings: exit {r.returncode}:\n{r.stdout}{r.stderr}")
    h.log("sqs: outbox-relay check passes with the right settings, names the FIFO queue and "
          "warns that its MaximumMessageSize is below sqs.max_message_size")


def test(env):
    moto = Moto(env.tmp)
    try:
        exact(env, moto)
        nxt = kills(env, moto, 10001)
        nxt = hang(env, moto, nxt)
        nxt = dead_letters(env, moto, nxt)
        refusals(env, moto, nxt)
    finally:
        moto.stop()


if __name__ == "__main__":
    h.main(test)

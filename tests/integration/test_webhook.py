"""The webhook sink (sink: webhook) against a test HTTP endpoint on loopback that can
answer 2xx, 4xx, 5xx, 429 with Retry-After, or hang; every request's signature is
verified with the Standard Webhooks library from PyPI (standardwebhooks), which
shares no code with the relay.  Checked with the four invariants
(harness.check_stream) over the requests the endpoint accepted:

  1. 10,000 rows (CloudEvents binary over HTTP: ce-* headers, the payload as body):
     one accepted request each, signatures valid, webhook-id = the event id; and the
     structured format: the CloudEvent as the body;
  2. an event answered 503 twice, another 429 with Retry-After: 2, another that hangs
     past webhook.timeout: each retried (the 429 not before 2 s), the events behind
     them held back in order, nothing lost;
  3. an event answered 400: set aside to dead_letter.table with reason "rejected",
     the others delivered;
  4. the relay SIGKILLed 5 times mid-stream: no loss, duplicates only after the
     confirmed positions (same webhook-id);
  5. HTTPS with a test CA: `outbox-relay check` passes and events arrive; an unknown CA
     and a wrong secret (the endpoint answers 401) each stop the relay with exit 1 and
     a plain error; check fails for the unknown CA and for a closed port.
"""

import base64
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.in_venv("standardwebhooks", "standardwebhooks==1.1.0", "webhook")

from standardwebhooks.webhooks import Webhook  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"outbox-relay test secret, 32 b!!").decode()


class Endpoint:
    """A one-request-at-a-time HTTP endpoint.  script[n] is a list of answers for the
    event whose payload n is n, one per attempt: (status, headers, seconds to hang).
    With tls (a directory of harness.make_test_certs()), HTTPS; with strict, a request
    whose signature does not verify is answered 401, as a receiver would."""

    def __init__(self, tls=None, strict=False):
        self.accepted, self.attempts, self.bad_signatures = [], [], []
        self.decoded = []  # self.accepted as harness messages, as far as decoded
        self.strict = strict
        self.down = False  # answer 503 to everything (an outage)
        self.script = {}
        self.lock = threading.Lock()
        self.verifier = Webhook(SECRET)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                try:
                    endpoint.verifier.verify(body, hdrs)
                except Exception as e:  # noqa: BLE001 -- any refusal is a finding
                    endpoint.bad_signatures.append(f"{hdrs.get('webhook-id')}: {e}")
                status, extra, hang = 200, {}, 0
                if endpoint.strict and endpoint.bad_signatures:
                    status = 401
                if endpoint.down:
                    status = 503
                try:
                    n = json.loads(body)["n"] if body.startswith(b'{"n"') else None
                except ValueError:
                    n = None
                with endpoint.lock:
                    endpoint.attempts.append((time.time(), n, hdrs.get("webhook-id")))
                    answers = endpoint.script.get(n) if status == 200 else None
                    if answers:
                        status, extra, hang = answers.pop(0)
                if hang:
                    time.sleep(hang)
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    return
                if 200 <= status < 300:
                    with endpoint.lock:
                        endpoint.accepted.append((hdrs, body))

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(tls, "server.crt"), os.path.join(tls, "server.key"))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def messages(self):
        """The accepted requests as harness messages (ce-* headers as ce_*); each request
        is decoded once (self.decoded)."""
        with self.lock:
            for i in range(len(self.decoded), len(self.accepted)):
                hdrs, body = self.accepted[i]
                hl = [(k.replace("ce-", "ce_", 1) if k.startswith("ce-") else k, v)
                      for k, v in hdrs.items()]
                m = h.decode_message({"topic": "outbox.event.order", "partition": 0,
                                      "offset": i, "key": hdrs.get("ce-subject"),
                                      "value": body.decode(), "headers": hl})
                m["n"] = json.loads(m["value"])["n"] if m["value"].startswith('{"n"') else None
                self.decoded.append(m)
            return list(self.decoded)

    def case(self, first):
        """The accepted requests of one case: binary ones whose payload n >= first."""
        return [m for m in self.messages() if m["n"] is not None and m["n"] >= first]

    def distinct(self, first):
        return len({m["headers"].get("ce_id") for m in self.case(first)})


def config(pg, ep, fmt="cloudevents", secret=SECRET, ca=None, extra=""):
    ca = f"\n  ca_file: \"{ca}\"" if ca else ""
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
dead_letter:
  table: public.outbox_dead_letter
sink: webhook
webhook:
  url: "{ep.url}"
  secret: "{secret}"
  timeout: 1s
  format: {fmt}{ca}
{extra}"""


streaming = h.start_streaming


def basic(env, ep):
    pg = env.pg
    relay = env.relay(config(pg, ep), name="relay-basic")
    streaming(env, relay)
    rows = h.scaled(10000)
    pg.psql(h.insert_sql(1, rows // 100, 100))
    h.wait_for(lambda: ep.distinct(1) >= rows, 60, f"{rows} accepted requests", interval=0.5)
    time.sleep(0.3)
    h.check(not ep.bad_signatures, f"signatures refused: {ep.bad_signatures[:3]}")
    msgs = ep.case(1)
    h.check_exact(pg, msgs, rows)
    h.check(all(m["headers"]["webhook-id"] == m["headers"]["ce_id"] for m in msgs),
            "webhook-id is not the event id")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    # Structured: the CloudEvent is the body.
    relay = env.relay(config(pg, ep, "cloudevents-structured"), name="relay-structured")
    streaming(env, relay)
    before = len(ep.accepted)
    pg.psql(h.insert_sql(10001, 1, 5))
    h.wait_for(lambda: len(ep.accepted) >= before + 5, 30, "5 structured events")
    for hdrs, body in ep.accepted[before:]:
        ce = json.loads(body)
        h.check(ce.get("specversion") == "1.0" and ce.get("id") == hdrs["webhook-id"]
                and "n" in ce.get("data", {}) and
                hdrs["content-type"].startswith("application/cloudevents+json"),
                f"structured request {hdrs} {body[:200]}")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.check(not ep.bad_signatures, f"signatures refused: {ep.bad_signatures[:3]}")
    h.log(f"webhook: {rows:,} events, one accepted request each, every signature verified by "
          "the Standard Webhooks library, webhook-id = ce-id; structured: the CloudEvent "
          "as body")


def retries(env, ep, first):
    pg = env.pg
    n503, n429, nhang, n400 = first + 10, first + 20, first + 30, first + 40
    n403 = first + 50  # forbidden: that one event, not the relay (401 stops it: secured())
    ep.script = {n503: [(503, {}, 0), (503, {}, 0)], n429: [(429, {"Retry-After": "2"}, 0)],
                 nhang: [(200, {}, 3)], n400: [(400, {}, 0)], n403: [(403, {}, 0)]}
    pg.psql("DELETE FROM public.outbox")
    relay = env.relay(config(pg, ep), name="relay-retries")
    streaming(env, relay)
    pg.psql(h.insert_sql(first, 10, 10))
    h.wait_for(lambda: ep.distinct(first) >= 98, 60, "every event but the refused two")
    h.check(not ep.bad_signatures, f"signatures refused: {ep.bad_signatures[:3]}")
    att = list(ep.attempts)
    t429 = [t for t, n, _ in att if n == n429]
    h.check(len(t429) == 2 and t429[1] - t429[0] >= 1.9,
            f"429 with Retry-After 2: attempts at {t429}")
    h.check(len([1 for _, n, _ in att if n == n503]) == 3, "the 503 event was not tried 3 times")
    h.check(len([1 for _, n, _ in att if n == nhang]) >= 2, "the hanging event was not retried")
    # Order: no event after a held one was accepted before it.
    order = [json.loads(m["value"])["n"] for m in ep.case(first)]
    h.check(order == sorted(order), f"accepted out of order: {order[:30]}")
    h.check(n400 not in order and n403 not in order, "a refused event was accepted")
    dl = pg.psql("SELECT event_id, reason FROM public.outbox_dead_letter").splitlines()
    h.check(len(dl) == 2 and all(d.endswith("|rejected") for d in dl), f"dead letters {dl}")
    end = pg.current_lsn()
    h.wait_for(lambda: pg.slot()[0] >= end, 30, "the slot to pass every event")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"webhook: 503 twice, 429 with Retry-After 2 (retried after "
          f"{t429[1] - t429[0]:.1f}s), a hang past the 1 s timeout: each retried, the "
          f"events behind held in order; a 400 and a 403 set aside as rejected; slot past "
          "the end")
    return first + 100


def kills(env, ep, first):
    pg = env.pg
    ep.script = {}
    pg.psql("DELETE FROM public.outbox")
    relay = env.relay(config(pg, ep), name="relay-kills")
    rows = h.scaled(10000)
    job, text = h.start_insert_job(pg, h.insert_sql(first, rows // 100, 100).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.1);\n"))
    streaming(env, relay)
    h.feed(job, text)
    confirmed, before = [], []
    for k in range(5):
        h.wait_for(lambda: ep.distinct(first) >= (k + 1) * rows * 12 // 100, 60, "progress",
                   interval=0.3)
        relay.signal(signal.SIGKILL)
        relay.wait(10)
        h.wait_for(lambda: not pg.slot()[1], 30, "the slot to be released")
        confirmed.append(pg.slot()[0])
        before.append([m["headers"]["ce_id"] for m in ep.case(first)])
        streaming(env, relay)
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    h.wait_for(lambda: ep.distinct(first) >= total, 60, "every event")
    rows, distinct, dups = h.check_stream(pg, ep.case(first), confirmed, before)
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.check(not ep.bad_signatures, f"signatures refused: {ep.bad_signatures[:3]}")
    h.log(f"webhook, relay SIGKILLed 5 times: {rows} rows, 0 lost, {dups} duplicates (same "
          "webhook-id), all after the confirmed positions")
    return first + 10000


def outage(env, ep, first):
    """The endpoint answers 503 to everything while 20 MB of rows are committed: the
    slot stays before them, the relay stops reading at its in-flight limit, and every
    row arrives once the endpoint is back."""
    pg = env.pg
    ep.script = {}
    pg.psql("DELETE FROM public.outbox")
    relay = env.relay(config(pg, ep, extra=h.OUTAGE_PIPELINE), name="relay-outage")
    streaming(env, relay)
    pg.psql(h.insert_sql(first, 10, 100))
    h.wait_for(lambda: ep.distinct(first) >= 1000, 60, "1,000 before the outage")
    slot_before = pg.slot()[0]
    ep.down = True
    backlog, unsent, rss0, rss1 = h.outage_backlog(env, relay, first + 1000)
    ep.down = False
    t_up = time.time()
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    h.wait_for(lambda: ep.distinct(first) >= total, 120, "every row after the outage",
               interval=0.5)
    took = time.time() - t_up
    rows, distinct, dups = h.check_stream(pg, ep.case(first), dup_bounds_only=[slot_before])
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"webhook answering 503 while {backlog} rows ({backlog * 2 // 1000} MB) were "
          f"committed ({unsent} bytes "
          f"of WAL left unsent, relay RSS {rss0} -> {rss1} kB): {rows} rows, 0 lost, {dups} "
          f"duplicates, every row {took:.1f}s after the endpoint came back")
    return first + 1000 + backlog


def check_cmd(env, relay):
    import subprocess
    return subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                           relay.cfg], capture_output=True, text=True, timeout=60)


def stops(env, relay, expect, after):
    """The relay exits 1 with expect in its last error, the slot before after."""
    t0 = time.time()
    relay.start()
    rc = relay.wait(30)
    err = [ln for ln in relay.log_text().splitlines() if " ERROR " in ln]
    h.check(rc == 1 and err and expect in err[-1], f"exit {rc}: {err[-3:]}")
    h.check(env.pg.slot()[0] < after, "the slot moved past undelivered events")
    return time.time() - t0, err[-1].split(" ERROR ", 1)[-1]


def secured(env, first):
    """HTTPS with a test CA: check passes and events arrive; an unknown CA and a wrong
    secret (the endpoint answers 401) each stop the relay with exit 1; check fails
    against the unknown CA and against a closed port."""
    pg = env.pg
    tls = h.make_test_certs(os.path.join(env.tmp, "webhook-tls"))
    ep = Endpoint(tls=tls, strict=True)
    pg.psql("DELETE FROM public.outbox")
    relay = env.relay(config(pg, ep, ca=os.path.join(tls, "ca.crt")), name="relay-https")
    chk = check_cmd(env, relay)
    h.check(chk.returncode == 0, f"check failed over HTTPS: {chk.stdout[-500:]}")
    streaming(env, relay)
    pg.psql(h.insert_sql(first, 10, 100))
    h.wait_for(lambda: ep.distinct(first) >= 1000, 60, "1,000 over HTTPS")
    h.check_exact(pg, ep.case(first), 1000)
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    pg.psql(h.insert_sql(first + 1000, 1, 5))
    after = pg.current_lsn()
    relay = env.relay(config(pg, ep, ca=os.path.join(tls, "other-ca.crt")), name="relay-ca")
    chk = chk_ca = check_cmd(env, relay)
    h.check(chk.returncode != 0 and "TLS:" in chk.stdout and "certificate" in chk.stdout,
            f"check passed with an unknown CA: {chk.stdout[-400:]}")
    took_ca, err_ca = stops(env, relay, "does not verify", after)
    other = "whsec_" + base64.b64encode(b"not the endpoint's secret, 32 b!").decode()
    relay = env.relay(config(pg, ep, secret=other, ca=os.path.join(tls, "ca.crt")),
                      name="relay-secret")
    took_secret, err_secret = stops(env, relay, "refuses the relay", after)
    h.check(len(ep.bad_signatures) >= 1, "the endpoint saw no bad signature")
    closed = type("Closed", (), {"url": f"http://127.0.0.1:{h.free_port()}/hook"})
    relay = env.relay(config(pg, closed), name="relay-closed")
    chk = check_cmd(env, relay)
    h.check(chk.returncode != 0 and "cannot connect" in chk.stdout,
            f"check passed against a closed port: {chk.stdout[-300:]}")
    nowhere = type("Nowhere", (), {"url": "http://outbox-relay-check.invalid/hook"})
    relay = env.relay(config(pg, nowhere), name="relay-nowhere")
    chk = check_cmd(env, relay)
    h.check(chk.returncode != 0 and "DNS: cannot resolve" in chk.stdout,
            f"check passed against a host that does not resolve: {chk.stdout[-300:]}")
    tls_line = [ln.strip() for ln in chk_ca.stdout.splitlines() if "TLS:" in ln]
    h.log(f"webhook over HTTPS (test CA): check passed, 1,000 events once each; unknown CA: "
          f"check failed, exit 1 after {took_ca:.1f}s ({err_ca[:120]}); wrong secret, "
          f"answered 401: exit 1 after {took_secret:.1f}s ({err_secret[:140]}); check "
          f"failed against a closed port and a host that does not resolve; check's TLS "
          f"line: {tls_line[0][:160] if tls_line else '?'}")


def test(env):
    ep = Endpoint()
    basic(env, ep)
    nxt = retries(env, ep, 20001)
    nxt = kills(env, ep, nxt)
    nxt = outage(env, ep, nxt)
    secured(env, nxt)


if __name__ == "__main__":
    h.main(test)

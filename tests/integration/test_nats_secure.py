"""The NATS sink over TLS and with credentials, against nats-server from Debian 12
started by this test on loopback with a configuration file: TLS with a certificate
from a throwaway CA (harness.make_test_certs()), JetStream, and a user with a
password.  Read back with nats-py from PyPI over TLS.

  1. tls:// with nats.ca_file and the user's password in the URL: `outbox-relay check`
     passes (connected, JetStream on, a stream takes the sample subject) and 1,000 rows
     arrive once each;
  2. a wrong password: `check` fails and the relay exits 1 with an error naming the
     refusal, the slot not moved;
  3. an unknown CA: the same, with an error naming TLS;
  4. a subject no stream takes: `check` fails naming the subject.
"""

import asyncio
import os
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.in_venv("nats", "nats-py==2.16.0", "nats")

import nats  # noqa: E402

PASSWORD = "relay-secret"


class SecureNats:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "nats-secure")
        self.tls = h.make_test_certs(os.path.join(self.dir, "tls"))
        self.port = h.free_port()
        conf = os.path.join(self.dir, "nats.conf")
        with open(conf, "w") as f:
            f.write(f"""host: 127.0.0.1
port: {self.port}
jetstream {{ store_dir: "{self.dir}/js" }}
tls {{
  cert_file: "{self.tls}/server.crt"
  key_file: "{self.tls}/server.key"
}}
authorization {{
  users = [ {{ user: relay, password: "{PASSWORD}" }} ]
}}
""")
        self.log = open(os.path.join(self.dir, "nats.log"), "a")
        self.proc = subprocess.Popen(["nats-server", "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        h.wait_for(lambda: self.run(self._stream), 30, "nats-server to answer over TLS")

    def url(self, password=PASSWORD):
        return f"tls://relay:{password}@localhost:{self.port}"

    def run(self, fn):
        ctx = ssl.create_default_context(cafile=os.path.join(self.tls, "ca.crt"))

        async def quiet(e):
            pass

        async def go():
            nc = await nats.connect(self.url(), tls=ctx, connect_timeout=2,
                                    allow_reconnect=False, max_reconnect_attempts=0,
                                    error_cb=quiet)
            try:
                return await fn(nc.jetstream())
            finally:
                await nc.close()
        try:
            return asyncio.run(go())
        except Exception:  # noqa: BLE001 -- not up yet
            return False

    async def _stream(self, js):
        await js.add_stream(name="OUTBOX", subjects=["outbox.>"])
        return True

    def messages(self):
        async def fn(js):
            last = (await js.stream_info("OUTBOX")).state.last_seq
            out = []
            for seq in range(1, last + 1):
                m = await js.get_msg("OUTBOX", seq)
                hd = {(k.replace("ce-", "ce_", 1) if k.startswith("ce-") else k): v
                      for k, v in (m.headers or {}).items()}
                out.append(h.decode_message({
                    "topic": "outbox.event.order", "partition": 0, "offset": seq,
                    "key": hd.get("ce_subject"), "value": m.data.decode(),
                    "headers": list(hd.items())}))
            return out
        return self.run(fn) or []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def config(pg, srv, password=PASSWORD, ca="ca.crt", subject=None):
    subj = f'\n  subject: "{subject}"' if subject else ""
    return f"""postgres:
  dsn: "{pg.dsn(user='outbox_relay')}"
  slot: outbox_relay
  publication: outbox_relay
  status_interval: 1s
  retry_interval: 1s
outbox:
  table: public.outbox
sink: nats
nats:
  url: "{srv.url(password)}"
  ca_file: "{os.path.join(srv.tls, ca)}"
  ack_timeout: 2s{subj}
"""


def check_cmd(env, relay):
    return subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                           relay.cfg], capture_output=True, text=True, timeout=60)


def refused(env, name, cfg, expect, first):
    pg = env.pg
    pg.psql(h.insert_sql(first, 1, 5))
    after = pg.current_lsn()
    relay = env.relay(cfg, name=name)
    chk = check_cmd(env, relay)
    h.check(chk.returncode != 0 and expect in chk.stdout,
            f"{name}: check passed or said something else: {chk.stdout[-500:]}")
    t0 = time.time()
    relay.start()
    rc = relay.wait(30)
    took = time.time() - t0
    err = [ln for ln in relay.log_text().splitlines() if " ERROR " in ln]
    h.check(rc == 1 and err and expect in err[-1], f"{name}: exit {rc}: {err[-3:]}")
    h.check(pg.slot()[0] < after, f"{name}: the slot moved past undelivered events")
    h.log(f"nats, {name}: check failed, relay exit 1 after {took:.1f}s: "
          f"{err[-1].split(' ERROR ', 1)[-1][:200]}")


def test(env):
    pg = env.pg
    srv = SecureNats(env.tmp)
    try:
        relay = env.relay(config(pg, srv), name="relay-tls")
        chk = check_cmd(env, relay)
        h.check(chk.returncode == 0 and "a stream takes subject" in chk.stdout,
                f"check failed over TLS: {chk.stdout[-700:]}")
        h.start_streaming(env, relay)
        pg.psql(h.insert_sql(1, 10, 100))
        h.wait_for(lambda: len(srv.messages()) >= 1000, 60, "1,000 messages over TLS",
                   interval=0.5)
        h.check_exact(pg, srv.messages(), 1000)
        rc, _ = relay.stop()
        h.check(rc == 0, f"exit {rc}")
        h.log("nats over tls:// (test CA, user and password): check passed, 1,000 rows once "
              "each")
        refused(env, "wrong-password", config(pg, srv, password="not-it"), "refused the relay",
                2001)
        refused(env, "unknown-ca", config(pg, srv, ca="other-ca.crt"), "TLS failed", 2011)
        relay = env.relay(config(pg, srv, subject="elsewhere.{aggregatetype}"),
                          name="relay-nostream")
        chk = check_cmd(env, relay)
        h.check(chk.returncode != 0 and 'no JetStream stream takes subject "elsewhere.check"'
                in chk.stdout, f"check with no stream: {chk.stdout[-500:]}")
        h.log("nats: check fails naming a subject no stream takes (elsewhere.check)")
    finally:
        srv.stop()


if __name__ == "__main__":
    h.main(test)

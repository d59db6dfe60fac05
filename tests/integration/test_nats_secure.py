"""The NATS sink over TLS and with each kind of credential, against nats-server from
Debian 12 started by this test on loopback with configuration files: TLS with
certificates from a throwaway CA made per run (harness.make_test_certs() and openssl),
JetStream, and users.  Read back with nats-py from PyPI over TLS.

Server A: TLS for localhost, users with a password and an NKey user.
  1. tls:// with nats.ca_file and the user's password in the URL: `outbox-relay check`
     passes (connected, JetStream on, a stream takes the sample subject) and 1,000 rows
     arrive once each;
  2. nats.nkey_seed_file (the seed alone; the relay derives the public key the server
     knows the user by -- here computed by openssl): check passes, 100 rows arrive;
  3. a wrong password: `check` fails and the relay exits 1 with an error naming the
     refusal, the slot not moved;
  4. an unknown CA: the same, with an error naming TLS;
  5. the relay's password changed on the server (configuration reloaded) while the
     relay is connected and idle: it exits 1 naming the refusal instead of libnats
     reconnecting in silence;
  6. a subject no stream takes: `check` fails naming the subject.
Server B: TLS that requires a client certificate, and a token.
  7. nats.cert_file / key_file and nats.token: check passes, 100 rows arrive;
  8. no client certificate: check fails and says the server may want one; a wrong
     token: check fails and the relay exits 1;
  9. B restarted with a certificate for another host while the relay is connected and
     idle: the relay exits 1 naming the mismatch (libnats alone would retry without
     end), and check fails for the same reason.
Server C: decentralised JWT authentication (an operator, accounts and users made here
with openssl, as nsc would make them).
 10. nats.creds_file: check passes, 100 rows arrive;
 11. the .creds file of a user of an account the server does not know: check fails,
     the relay exits 1 naming the refusal;
 12. creds_file and nkey_seed_file together: a configuration error (exit 2).
"""

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import shutil
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.in_venv("nats", "nats-py==2.16.0", "nats")

import nats  # noqa: E402

# nats-py's TLS connections make asyncio warn about eof_received() on every close.
logging.getLogger("asyncio").setLevel(logging.ERROR)

PASSWORD = "relay-secret"
TOKEN = "relay-token-5f1c"


def openssl(d, *args, stdin=None):
    r = subprocess.run(["openssl", *args], cwd=d, input=stdin, capture_output=True)
    if r.returncode != 0:
        raise h.TestFailure(f"openssl {args[0]} failed: {r.stderr.decode().strip()}")
    return r.stdout


def b32(b):
    return base64.b32encode(b).decode().rstrip("=")


def b64url(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


NKEY_PREFIX = {"O": 14 << 3, "A": 0, "U": 20 << 3}  # operator, account, user


def nkey(d, name, kind):
    """An NKey made with openssl (name.pem in d), encoded as NATS writes NKeys (base32
    of a prefix, the Ed25519 key and a CRC-16): returns (seed, public key, pem path).
    The relay derives a public key from a seed by itself; the server is told this
    one."""
    def encode(prefix, raw):
        crc = binascii.crc_hqx(prefix + raw, 0)
        return b32(prefix + raw + bytes([crc & 0xff, crc >> 8]))
    openssl(d, "genpkey", "-algorithm", "ed25519", "-out", f"{name}.pem")
    seed = openssl(d, "pkey", "-in", f"{name}.pem", "-outform", "DER")[-32:]
    pub = openssl(d, "pkey", "-in", f"{name}.pem", "-pubout", "-outform", "DER")[-32:]
    p = NKEY_PREFIX[kind]
    return (encode(bytes([(18 << 3) | (p >> 5), (p & 31) << 3]), seed),
            encode(bytes([p]), pub), os.path.join(d, f"{name}.pem"))


def ed25519_sign(pem, data):
    d = os.path.dirname(pem)
    with open(os.path.join(d, "to-sign"), "wb") as f:
        f.write(data)
    return openssl(d, "pkeyutl", "-sign", "-inkey", pem, "-rawin", "-in", "to-sign")


def jwt(signer, sub, name, claims):
    """A NATS JWT for sub, signed by signer (seed, public key, pem)."""
    body = {"jti": "", "iat": int(time.time()), "iss": signer[1], "name": name, "sub": sub,
            "nats": dict(claims, version=2)}
    body["jti"] = b32(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest())
    text = (b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode()) + "." +
            b64url(json.dumps(body).encode()))
    return text + "." + b64url(ed25519_sign(signer[2], text.encode()))


def operator_setup(d):
    """Decentralised authentication, as nsc sets it up: an operator, a system account,
    an account "relay" with JetStream, a user of it in relay.creds, and a user of an
    account the server does not know in stranger.creds.  Returns (the server's
    authorization lines, reader's user JWT, reader's key pem)."""
    op, sys_acct, acct = nkey(d, "operator", "O"), nkey(d, "sys", "A"), nkey(d, "acct", "A")
    stranger_acct = nkey(d, "stranger-acct", "A")
    unlimited = {k: -1 for k in ("subs", "data", "payload", "imports", "exports", "conn",
                                 "leaf", "mem_storage", "disk_storage", "streams", "consumer")}
    with open(os.path.join(d, "operator.jwt"), "w") as f:
        f.write(jwt(op, op[1], "test-operator", {"type": "operator"}))
    acct_jwt = jwt(op, acct[1], "relay", {"type": "account",
                                          "limits": dict(unlimited, wildcards=True)})
    sys_jwt = jwt(op, sys_acct[1], "SYS", {"type": "account"})
    user_claims = {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1,
                   "payload": -1}
    out = None
    for name, account in (("relay", acct), ("stranger", stranger_acct)):
        user = nkey(d, f"{name}-user", "U")
        user_jwt = jwt(account, user[1], name, user_claims)
        with open(os.path.join(d, f"{name}.creds"), "w") as f:
            f.write(f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------"
                    "\n\n************************* IMPORTANT *************************\n"
                    "NKEY Seed printed below can be used to sign and prove identity.\n\n"
                    f"-----BEGIN USER NKEY SEED-----\n{user[0]}\n------END USER NKEY SEED------"
                    "\n")
        out = out or (user_jwt, user[2])
    auth = (f'operator: "{d}/operator.jwt"\nsystem_account: {sys_acct[1]}\nresolver: MEMORY\n'
            f'resolver_preload: {{\n  {acct[1]}: "{acct_jwt}"\n  {sys_acct[1]}: "{sys_jwt}"\n}}')
    return (auth,) + out


class Nats:
    """nats-server with JetStream and the given tls and authorization blocks; a stream
    OUTBOX takes outbox.>.  connect(port): nats-py's connect() arguments for the
    reader."""

    def __init__(self, tmp, name, tls, tls_block, auth_block, host, connect):
        self.dir = os.path.join(tmp, f"nats-{name}")
        self.tls, self.host, self.auth_block = tls, host, auth_block
        self.port = h.free_port()
        self.connect = connect(self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "nats.conf")
        self.log = open(os.path.join(self.dir, "nats.log"), "a")
        self.proc = None
        self.start(tls_block)
        h.wait_for(lambda: self.run(self._stream), 30, f"nats-server {name} to answer over TLS")

    def write_conf(self, tls_block):
        with open(self.conf, "w") as f:
            f.write(f"host: 127.0.0.1\nport: {self.port}\n"
                    f"jetstream {{ store_dir: \"{self.dir}/js\" }}\n"
                    f"tls {{\n{tls_block}\n}}\n{self.auth_block}\n")

    def start(self, tls_block):
        self.write_conf(tls_block)
        self.proc = subprocess.Popen(["nats-server", "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def reload(self, auth_block):
        """Rewrite the authorization block and have the server reload its
        configuration (SIGHUP): connections the new one refuses are closed."""
        with open(self.conf) as f:
            text = f.read().replace(self.auth_block, auth_block)
        self.auth_block = auth_block
        with open(self.conf, "w") as f:
            f.write(text)
        self.proc.send_signal(1)

    def restart(self, tls_block):
        self.stop(close_log=False)
        self.start(tls_block)
        h.wait_for(lambda: self.listening(), 30, "nats-server to listen again")

    def listening(self):
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def url(self, cred=""):
        return f"tls://{cred}{self.host}:{self.port}"

    def run(self, fn):
        async def quiet(e):
            pass

        async def go():
            nc = await nats.connect(connect_timeout=2, allow_reconnect=False,
                                    max_reconnect_attempts=0, error_cb=quiet, **self.connect)
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

    def stop(self, close_log=True):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if close_log:
            self.log.close()


def config(pg, srv, cred="", ca="ca.crt", subject=None, extra=""):
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
  url: "{srv.url(cred)}"
  ca_file: "{os.path.join(srv.tls, ca)}"
  ack_timeout: 2s{subj}{extra}
"""


def check_cmd(env, relay):
    return subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                           relay.cfg], capture_output=True, text=True, timeout=60)


def delivered(env, srv, name, cfg, first, rows, total, what):
    """check passes with cfg, then rows rows from first reach srv once each, total rows
    in all (the outbox and srv's stream hold the same).  Returns the relay, running."""
    pg = env.pg
    relay = env.relay(cfg, name=name)
    chk = check_cmd(env, relay)
    h.check(chk.returncode == 0 and "a stream takes subject" in chk.stdout,
            f"{name}: check failed: {chk.stdout[-700:]}")
    h.start_streaming(env, relay)
    pg.psql(h.insert_sql(first, rows // 100, 100))
    h.wait_for(lambda: len(srv.messages()) >= total, 60, f"{total} messages ({name})",
               interval=0.5)
    h.check_exact(pg, srv.messages(), total)
    h.log(f"nats over tls:// ({what}): check passed, rows once each ({total} in the stream)")
    return relay


def refused(env, name, cfg, expect, first):
    """check fails naming expect; the relay exits 1 with expect in its last error, the
    slot before the rows written just before it started."""
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
          f"{err[-1].split(' ERROR ', 1)[-1][:220]}")


def stops_while_idle(relay, cause, expect, what):
    """cause() makes the server refuse the connected, idle relay; it must exit 1 within
    20 s with expect in its last error."""
    t0 = time.time()
    cause()
    try:
        rc = relay.wait(20)
    except h.TestFailure:
        relay.signal(9)
        raise h.TestFailure(f"{what}: the relay did not stop within 20 s (libnats kept "
                            "reconnecting in silence)")
    took = time.time() - t0
    err = [ln for ln in relay.log_text().splitlines() if " ERROR " in ln]
    h.check(rc == 1 and err and expect in err[-1], f"{what}: exit {rc}: {err[-3:]}")
    h.log(f"nats, {what}: relay exit 1 after {took:.1f}s: "
          f"{err[-1].split(' ERROR ', 1)[-1][:220]}")


def server_a(env):
    pg = env.pg
    tls = h.make_test_certs(os.path.join(env.tmp, "nats-tls"))
    seed, nkey_pub, _ = nkey(tls, "relay-nkey", "U")
    seed_file = os.path.join(tls, "relay.nk")
    with open(seed_file, "w") as f:
        f.write(seed + "\n")
    users = (f'authorization {{\n  users = [\n    {{ user: relay, password: "{PASSWORD}" }}\n'
             f'    {{ user: rotating, password: "{PASSWORD}" }}\n    {{ nkey: {nkey_pub} }}\n'
             "  ]\n}")
    srv = Nats(env.tmp, "a", tls, f'  cert_file: "{tls}/server.crt"\n'
               f'  key_file: "{tls}/server.key"', users, "localhost",
               lambda port: dict(servers=f"tls://relay:{PASSWORD}@localhost:{port}",
                                 tls=ssl.create_default_context(
                                     cafile=os.path.join(tls, "ca.crt"))))
    try:
        relay = delivered(env, srv, "relay-tls", config(pg, srv, f"relay:{PASSWORD}@"), 1,
                          1000, 1000, "test CA, user and password")
        rc, _ = relay.stop()
        h.check(rc == 0, f"exit {rc}")
        relay = delivered(env, srv, "relay-nkey",
                          config(pg, srv, extra=f'\n  nkey_seed_file: "{seed_file}"'), 1001,
                          100, 1100, "an NKey seed file")
        rc, _ = relay.stop()
        h.check(rc == 0, f"exit {rc}")
        refused(env, "wrong-password", config(pg, srv, "relay:not-it@"), "refused the relay",
                2001)
        refused(env, "unknown-ca", config(pg, srv, f"relay:{PASSWORD}@", ca="other-ca.crt"),
                "certificate does not verify", 2011)
        # The password of a connected, idle relay changes on the server (once it has
        # published the 10 rows the refused relays left).
        relay = env.relay(config(pg, srv, f"rotating:{PASSWORD}@"), name="relay-rotated")
        h.start_streaming(env, relay)
        h.wait_for(lambda: len(srv.messages()) >= 1110, 30, "the 10 rows left behind")
        time.sleep(0.5)
        h.check(relay.alive(), "relay-rotated exited before the rotation")
        stops_while_idle(relay, lambda: srv.reload(srv.auth_block.replace(
            f'user: rotating, password: "{PASSWORD}"', 'user: rotating, password: "new"')),
            "refused the relay", "password changed on the server (reload)")
        relay = env.relay(config(pg, srv, f"relay:{PASSWORD}@",
                                 subject="elsewhere.{aggregatetype}"), name="relay-nostream")
        chk = check_cmd(env, relay)
        h.check(chk.returncode != 0 and 'no JetStream stream takes subject "elsewhere.check"'
                in chk.stdout, f"check with no stream: {chk.stdout[-500:]}")
        h.log("nats: check fails naming a subject no stream takes (elsewhere.check)")
    finally:
        srv.stop()


def server_b(env):
    pg = env.pg
    tls = os.path.join(env.tmp, "nats-tls")
    h.sign_cert(tls, "relay-client")
    h.sign_cert(tls, "elsewhere", usage="serverAuth", sans="DNS:elsewhere.example")
    ctx = ssl.create_default_context(cafile=os.path.join(tls, "ca.crt"))
    ctx.load_cert_chain(os.path.join(tls, "relay-client.crt"),
                        os.path.join(tls, "relay-client.key"))
    verify = f'  ca_file: "{tls}/ca.crt"\n  verify: true'
    srv = Nats(env.tmp, "b", tls, f'  cert_file: "{tls}/server.crt"\n'
               f'  key_file: "{tls}/server.key"\n{verify}', f'authorization {{ token: "{TOKEN}" }}',
               "127.0.0.1",
               lambda port: dict(servers=f"tls://127.0.0.1:{port}", tls=ctx, token=TOKEN))
    client = (f'\n  cert_file: "{tls}/relay-client.crt"\n  key_file: "{tls}/relay-client.key"')
    try:
        pg.psql("DELETE FROM public.outbox")
        good = config(pg, srv, extra=f'{client}\n  token: "{TOKEN}"')
        relay = delivered(env, srv, "relay-mtls", good, 3001, 100, 100,
                          "client certificate and token, IP address verified")
        rc, _ = relay.stop()
        h.check(rc == 0, f"exit {rc}")
        # Without a client certificate the server closes the handshake: not a refusal
        # libnats can tell from a server going away, but check says what to look at.
        other = env.relay(config(pg, srv, extra=f'\n  token: "{TOKEN}"'), name="relay-nocert")
        chk = check_cmd(env, other)
        h.check(chk.returncode != 0 and "client certificate" in chk.stdout,
                f"check without a client certificate: {chk.stdout[-500:]}")
        h.log("nats: check without the client certificate the server wants failed: " +
              [ln for ln in chk.stdout.splitlines() if "cannot connect" in ln][0].strip()[:200])
        refused(env, "wrong-token", config(pg, srv, extra=f'{client}\n  token: "not-it"'),
                "refused the relay", 3101)
        # A relay connected and idle (once it has published the 5 rows the refused one
        # left); B comes back with a certificate for another host.
        relay = env.relay(good, name="relay-mtls-idle")
        h.start_streaming(env, relay)
        h.wait_for(lambda: len(srv.messages()) >= 105, 30, "the 5 rows left behind")
        time.sleep(0.5)
        h.check(relay.alive(), "relay-mtls-idle exited")
        stops_while_idle(relay, lambda: srv.restart(
            f'  cert_file: "{tls}/elsewhere.crt"\n  key_file: "{tls}/elsewhere.key"\n{verify}'),
            "mismatch", "server restarted with a certificate for another host")
        chk = check_cmd(env, relay)
        h.check(chk.returncode != 0 and "mismatch" in chk.stdout,
                f"check against a certificate for another host: {chk.stdout[-500:]}")
        h.log("nats: check fails against a certificate for another host (IP address mismatch)")
    finally:
        srv.stop()


def server_c(env):
    """Decentralised JWT authentication: nats.creds_file."""
    pg = env.pg
    tls = os.path.join(env.tmp, "nats-tls")
    d = os.path.join(env.tmp, "nats-operator")
    os.makedirs(d, exist_ok=True)
    auth, reader_jwt, reader_pem = operator_setup(d)
    srv = Nats(env.tmp, "c", tls, f'  cert_file: "{tls}/server.crt"\n'
               f'  key_file: "{tls}/server.key"', auth, "localhost",
               lambda port: dict(
                   servers=f"tls://localhost:{port}",
                   tls=ssl.create_default_context(cafile=os.path.join(tls, "ca.crt")),
                   user_jwt_cb=lambda: reader_jwt.encode(),
                   signature_cb=lambda nonce: base64.b64encode(
                       ed25519_sign(reader_pem, nonce.encode()))))
    try:
        pg.psql("DELETE FROM public.outbox")
        creds = os.path.join(d, "relay.creds")
        relay = delivered(env, srv, "relay-creds",
                          config(pg, srv, extra=f'\n  creds_file: "{creds}"'), 4001, 100, 100,
                          "a .creds file: user JWT and NKey seed, operator mode")
        rc, _ = relay.stop()
        h.check(rc == 0, f"exit {rc}")
        refused(env, "unknown-account", config(pg, srv, extra='\n  creds_file: "' +
                                               os.path.join(d, "stranger.creds") + '"'),
                "refused the relay", 4101)
        both = env.relay(config(pg, srv, extra=f'\n  creds_file: "{creds}"\n'
                                f'  nkey_seed_file: "{creds}"'), name="relay-both")
        chk = check_cmd(env, both)
        h.check(chk.returncode == 2 and "exclude each other" in chk.stderr,
                f"creds_file and nkey_seed_file together: exit {chk.returncode}: "
                f"{chk.stderr[-300:]}")
        h.log("nats: creds_file and nkey_seed_file together refused as a configuration error")
    finally:
        srv.stop()


def test(env):
    if not shutil.which("nats-server"):
        raise h.TestFailure("nats-server not installed (scripts/deps.sh)")
    server_a(env)
    server_b(env)
    server_c(env)


if __name__ == "__main__":
    h.main(test)

"""The Redis Streams sink over TLS (rediss://), the transport the relay carries itself
(Debian 12's hiredis 0.14 has none): a TLS-only redis-server from Debian, started by
this test on loopback with a certificate from a throwaway CA made per run (for
127.0.0.1 and localhost), an ACL user limited to the outbox.* keys besides the default
user, and read back over TLS with redis-py from PyPI, which shares no code with the
relay.  Cases:

  1. the ACL user over rediss://, the test CA in redis.ca_file, the IP address
     verified: outbox-relay check passes; 1,000 rows arrive once each, exactly as
     rendered, in order per key;
  2. redis-server SIGKILLed mid-stream and started again: the slot stays before the
     rows committed while it is down; the relay, still running, connects over TLS
     again; no loss, duplicates only after the slot's position when the server died,
     per-key order;
  3. tls-auth-clients yes: with the test client certificate (redis.cert_file,
     redis.key_file) check passes and rows flow; without one, check fails and the
     relay exits 1 naming the missing client certificate;
  4. refusals, each failing check and stopping the relay with exit 1, its error named,
     the slot not moved past the rows written before: the ACL user's wrong password;
     an unknown CA (certificate verification); a URL naming 127.0.0.2, an address the
     server listens on but its certificate does not list.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

h.in_venv("redis", "redis==8.1.0", "redis")

import test_redis as tr  # noqa: E402

USER, USER_PASSWORD = "relay", "relay-secret"


def new_rows(msgs, first):
    """The entries of rows from n = first on: rows of earlier cases that were never
    confirmed (refusals) come first, deleted since; these are checked exactly."""
    return [m for m in msgs if json.loads(m["value"])["n"] >= first]


def exact(env, srv, first):
    pg, r = env.pg, srv.client()
    stream = tr.fresh(env, "tls")
    relay = env.relay(tr.config(pg, srv, "tls", user=USER, password=USER_PASSWORD),
                      name="relay-tls")
    chk = tr.check_cmd(env, relay)
    h.check(chk.returncode == 0 and "connected over TLS (certificate verified)" in chk.stdout,
            f"check over TLS: {chk.stdout[-500:]}")
    tr.streaming(env, relay)
    rows = h.scaled(1000)
    pg.psql(h.insert_sql(first, rows // 100, 100))
    h.wait_for(lambda: r.exists(stream) and r.xlen(stream) >= rows, 60, f"{rows} over TLS")
    time.sleep(0.3)
    h.check_exact(pg, new_rows(tr.entries(r, stream), first), rows)
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"redis over rediss:// as ACL user {USER!r} (test CA, IP address verified): check "
          f"passed; {rows:,} rows once each, exactly as rendered, in per-key order")
    return first + rows


def server_restart(env, srv, first):
    pg = env.pg
    stream = tr.fresh(env, "tls-restart")
    relay = env.relay(tr.config(pg, srv, "tls-restart", user=USER, password=USER_PASSWORD),
                      name="relay-tls-restart")
    rows = h.scaled(2000)
    job, text = h.start_insert_job(pg, h.insert_sql(first, rows // 100, 100).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.05);\n"))
    tr.streaming(env, relay, (job, text))
    h.wait_for(lambda: srv.client().exists(stream) and srv.client().xlen(stream) >= rows // 4,
               60, "progress before the kill")
    slot_before = pg.slot()[0]
    srv.kill()
    # Keys of their own: the insert job commits around them.
    pg.psql(h.insert_sql(first + rows, 1, 100).replace("'order-' ||", "'during-' ||"))
    during = pg.current_lsn()
    time.sleep(1)
    h.check(relay.alive(), "the relay exited when redis-server died")
    h.check(pg.slot()[0] < during, "the slot moved past rows redis never acknowledged")
    srv.start()
    t_up = time.time()
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    h.wait_for(lambda: len({m["headers"]["ce_id"] for m in tr.entries(srv.client(), stream)})
               >= total, 60, "every row after redis came back")
    took = time.time() - t_up
    n, _, dups = h.check_stream(pg, tr.entries(srv.client(), stream),
                                dup_bounds_only=[slot_before])
    h.check(relay.alive(), "the relay exited")
    warned = [ln for ln in relay.log_text().splitlines() if " WARN " in ln and "redis" in ln]
    h.check(warned, "no warning logged for the lost connection")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"redis over TLS, redis-server SIGKILLed mid-stream and restarted: {n:,} rows, "
          f"0 lost, {dups} duplicates, every row {took:.1f}s after the restart; the slot "
          "held before the rows committed while it was down")
    return first + rows + 100


def refused(env, srv, first, case, cfg, expect, what):
    """The relay with cfg: check fails saying expect, the relay exits 1 with an error
    saying expect, and the slot stays before the 5 rows written first."""
    pg = env.pg
    pg.psql(h.insert_sql(first, 1, 5))
    after = pg.current_lsn()
    relay = env.relay(cfg, name=f"relay-{case}")
    chk = tr.check_cmd(env, relay)
    fails = [ln.strip() for ln in chk.stdout.splitlines() if ln.strip().startswith("FAIL")]
    h.check(chk.returncode != 0 and expect in chk.stdout,
            f"check with {what} (want {expect!r}): {fails}")
    t0 = time.time()
    relay.start()
    rc = relay.wait(30)
    took = time.time() - t0
    err = [ln for ln in relay.log_text().splitlines() if " ERROR " in ln]
    h.check(rc == 1 and err and expect in err[-1], f"{what}: exit {rc}: {err[-3:]}")
    h.check(pg.slot()[0] < after, "the slot moved past undelivered events")
    line = [ln for ln in chk.stdout.splitlines() if expect in ln][0].strip()
    h.log(f"redis over TLS, {what}: check failed ({line[:200]}); exit 1 after {took:.1f}s: "
          f"{err[-1].split(' ERROR ', 1)[-1][:240]}")
    return first + 5


def client_certificates(env, srv, first):
    pg, r = env.pg, srv.client()
    cert, key = srv.client_cert
    h.check(r.config_set("tls-auth-clients", "yes"), "CONFIG SET tls-auth-clients yes")
    stream = tr.fresh(env, "tls-client")
    relay = env.relay(tr.config(pg, srv, "tls-client", user=USER, password=USER_PASSWORD,
                                extra=f'  cert_file: "{cert}"\n  key_file: "{key}"\n'),
                      name="relay-tls-client")
    chk = tr.check_cmd(env, relay)
    h.check(chk.returncode == 0 and "connected over TLS" in chk.stdout,
            f"check with a client certificate: {chk.stdout[-500:]}")
    tr.streaming(env, relay)
    pg.psql(h.insert_sql(first, 1, 100))
    h.wait_for(lambda: r.exists(stream) and r.xlen(stream) >= 100, 30,
               "100 rows with a client certificate")
    time.sleep(0.3)
    h.check_exact(pg, new_rows(tr.entries(r, stream), first), 100)
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log("redis over TLS with tls-auth-clients yes: the relay's client certificate "
          "accepted, check passed, 100 rows exactly")
    nxt = refused(env, srv, first + 100, "tls-nocert",
                  tr.config(pg, srv, "tls-nocert", user=USER, password=USER_PASSWORD),
                  "the server wants a client certificate",
                  "tls-auth-clients yes and no client certificate")
    h.check(r.config_set("tls-auth-clients", "optional"), "CONFIG SET tls-auth-clients")
    return nxt


def test(env):
    srv = tr.RedisServer(
        env.tmp, tls=True, auth_clients="optional", binds=("127.0.0.1", "127.0.0.2"),
        users=[(USER, "on", f">{USER_PASSWORD}", "~outbox.*", "+@all")]).start()
    pg = env.pg
    try:
        nxt = exact(env, srv, 1)
        nxt = server_restart(env, srv, nxt)
        nxt = client_certificates(env, srv, nxt)
        nxt = refused(env, srv, nxt, "tls-password",
                      tr.config(pg, srv, "tls-password", user=USER, password="not-it"),
                      "WRONGPASS", f"ACL user {USER!r} with a wrong password")
        nxt = refused(env, srv, nxt, "tls-ca",
                      tr.config(pg, srv, "tls-ca", user=USER, password=USER_PASSWORD,
                                ca="other-ca.crt"),
                      "certificate does not verify", "an unknown CA")
        refused(env, srv, nxt, "tls-host",
                tr.config(pg, srv, "tls-host", user=USER, password=USER_PASSWORD,
                          host="127.0.0.2"),
                'it is not for "127.0.0.2"', "a certificate not for the URL's address")
    finally:
        srv.stop()


if __name__ == "__main__":
    h.main(test)

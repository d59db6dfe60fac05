"""TLS to PostgreSQL: the relay connects as the least-privilege role over verified TLS
only, and refuses to talk to a server it cannot verify.

The test makes, with the openssl command line, a throwaway CA and a server certificate
for "localhost" (subjectAltName DNS:localhost, IP:127.0.0.1) signed by it, plus a
second, unrelated CA.  PostgreSQL starts with ssl = on and a pg_hba.conf that lets
the relay's role outbox_relay (sql/003_relay_role.sql) in over hostssl only, with a
SCRAM password, and rejects it over hostnossl.  Then:

1. the relay, with sslmode=verify-full and sslrootcert=<the CA>, relays 500 rows in 5
   transactions, each arriving exactly as written; the walsender serving the slot, and
   every other backend of the role (the side connection), is encrypted according to
   pg_stat_ssl;
2. with verify-full against the other CA the relay logs that the certificate could not
   be verified, publishes nothing and does not touch the slot;
3. with sslmode=disable pg_hba.conf rejects the relay, which logs the rejection,
   publishes nothing and does not touch the slot;
4. the relay with the right DSN again delivers the rows written meanwhile: 600 events,
   no loss, no duplicate.
The relay's password never appears in its log.
"""

import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_TX = 100
NTX = 5
LATE = 100  # rows written while the misconfigured relays run
PASSWORD = "".join(random.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(24))

# relay/replication.c repl_connect_error_permanent() treats a certificate that does
# not verify and a pg_hba.conf "reject" line as permanent (exit 1): retrying cannot
# cure either.  The test asserts that; the constants keep the retrying variant of the
# assertions for a relay that would classify them otherwise.
CERT_FAILURE_IS_PERMANENT = True
HBA_REJECT_IS_PERMANENT = True

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = placeholder

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# First match wins: the relay's role is rejected without TLS before the hostssl line
# can let it in; the superuser (the harness's psql) keeps trust over plain TCP.
PG_HBA = """\
# TYPE     DATABASE  USER          ADDRESS        METHOD
local      all       all                          trust
hostnossl  all       outbox_relay  127.0.0.1/32   reject
hostssl    all       outbox_relay  127.0.0.1/32   scram-sha-256
host       all       postgres      127.0.0.1/32   trust
"""


def tls_dir(pg):
    """Client-side files (the CAs) live beside the server's directory."""
    return os.path.join(os.path.dirname(pg.dir), "tls")


def openssl(cwd, *args):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise h.TestFailure(f"openssl {args[0]} failed: {r.stderr.strip()}")


def make_ca(d, name, cn):
    openssl(d, "req", "-x509", "-new", "-config", "openssl.cnf", "-extensions", "ca_ext",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={cn}")


def make_server_cert(d, ca):
    openssl(d, "req", "-new", "-config", "openssl.cnf", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-set_serial", str(random.randrange(1, 2**62)), "-days", "2",
            "-extfile", "openssl.cnf", "-extensions", "server_ext", "-out", "server.crt")


def pg_setup(pg):
    """Runs after initdb, before the server starts: certificates, ssl = on, pg_hba.conf."""
    d = tls_dir(pg)
    os.makedirs(d)
    with open(os.path.join(d, "openssl.cnf"), "w") as f:
        f.write(OPENSSL_CNF)
    make_ca(d, "ca", "outbox-relay test CA")
    make_ca(d, "other-ca", "outbox-relay unrelated CA")
    make_server_cert(d, "ca")
    # The server's key and certificate go where only the server user reads them;
    # PostgreSQL refuses a key file that others may read.
    crt = os.path.join(pg.dir, "server.crt")
    key = os.path.join(pg.dir, "server.key")
    shutil.move(os.path.join(d, "server.crt"), crt)
    shutil.move(os.path.join(d, "server.key"), key)
    pg.give(crt, 0o644)
    pg.give(key, 0o600)
    conf = os.path.join(pg.data, "postgresql.conf")
    with open(conf, "a") as f:
        f.write(f"ssl = on\nssl_cert_file = '{crt}'\nssl_key_file = '{key}'\n"
                "password_encryption = 'scram-sha-256'\n")
    pg.write_hba(PG_HBA)


def relay_dsn(env, sslmode="verify-full", ca="ca"):
    """The relay's DSN.  host=localhost is the name the certificate is verified
    against; hostaddr pins the address to 127.0.0.1 (the server listens there only), so
    a resolver that lists ::1 first cannot turn the failure we test into "connection
    refused"."""
    dsn = (f"host=localhost hostaddr=127.0.0.1 port={env.pg.port} dbname=app "
           f"user=outbox_relay password={PASSWORD} sslmode={sslmode}")
    if sslmode.startswith("verify"):
        dsn += f" sslrootcert={os.path.join(tls_dir(env.pg), ca + '.crt')}"
    return dsn


def relay_config(env, dsn):
    text = h.relay_config(env.pg, env.broker)
    default = f'  dsn: "{env.pg.dsn(user="outbox_relay")}"\n'
    h.check(default in text, "harness.relay_config changed its dsn line")
    # A short heartbeat opens the side connection soon, so its encryption is checked too.
    return text.replace(default, f'  dsn: "{dsn}"\n  heartbeat_interval: 1s\n')


def psql_conninfo(conninfo, sql):
    """psql with a whole connection string; returns (returncode, stdout, stderr)."""
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo,
                        "-c", sql], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def check_server_setup(env):
    """The server side, seen by psql as the relay's role, before any relay runs."""
    pg = env.pg
    h.check(pg.psql("SHOW ssl") == "on", "ssl is not on")
    own = "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    rc, out, err = psql_conninfo(relay_dsn(env), own)
    h.check(rc == 0, f"verify-full to localhost failed: {err}")
    h.check(out.startswith("t|TLS"), f"own connection not encrypted: {out!r}")
    h.log(f"psql as outbox_relay, verify-full to localhost: ssl {out}")
    # The IP subjectAltName: verify-full against the address itself.
    ip = relay_dsn(env).replace("host=localhost hostaddr=127.0.0.1", "host=127.0.0.1")
    rc, out, err = psql_conninfo(ip, own)
    h.check(rc == 0 and out.startswith("t|"), f"verify-full to 127.0.0.1 failed: {err}")
    # verify-full checks the name as well as the CA: the same address under a name the
    # certificate does not carry is refused.
    rc, out, err = psql_conninfo(relay_dsn(env).replace("host=localhost", "host=wrong.invalid"),
                                 "SELECT 1")
    h.check(rc != 0 and "does not match host name" in err,
            f"a certificate for another name was accepted or failed otherwise: {err!r}")
    rc, out, err = psql_conninfo(relay_dsn(env, ca="other-ca"), "SELECT 1")
    h.check(rc != 0 and "certificate verify failed" in err,
            f"an unrelated CA was accepted or failed otherwise: {err!r}")
    rc, out, err = psql_conninfo(relay_dsn(env, sslmode="disable"), "SELECT 1")
    h.check(rc != 0 and "pg_hba.conf rejects connection" in err and "no encryption" in err,
            f"a plaintext connection of outbox_relay was not rejected by pg_hba.conf: {err!r}")


def check_encrypted(pg):
    """The slot's walsender, found through the slot's active_pid, is the relay's role
    and encrypted; returns its pg_stat_ssl version and cipher."""
    row = pg.psql(
        "SELECT r.pid, r.usename, r.application_name, s.ssl, s.version, s.cipher "
        "FROM pg_replication_slots sl "
        "JOIN pg_stat_replication r ON r.pid = sl.active_pid "
        "JOIN pg_stat_ssl s ON s.pid = r.pid "
        "WHERE sl.slot_name = 'outbox_relay'")
    h.check(row and len(row.splitlines()) == 1, f"no walsender for the slot: {row!r}")
    pid, user, app, ssl, version, cipher = row.split("|")
    h.check(user == "outbox_relay", f"walsender runs as {user!r}")
    h.check(ssl == "t", f"walsender {pid} ({app}) is not encrypted")
    h.check(version.startswith("TLS"), f"walsender TLS version {version!r}")
    return pid, version, cipher


def role_backends(pg):
    """[(pid, backend_type, application_name, ssl)] of every backend of the relay's role."""
    out = pg.psql("SELECT a.pid, a.backend_type, a.application_name, s.ssl "
                  "FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid "
                  "WHERE a.usename = 'outbox_relay' ORDER BY a.pid")
    return [tuple(line.split("|")) for line in out.splitlines()]


def failing_run(env, name, dsn, must_say, permanent, consumer):
    """Run a relay that cannot connect; check what it logs, that it publishes nothing
    and leaves the slot alone.  Returns the log lines that report the failure."""
    pg = env.pg
    had = consumer.poll()
    slot_before = pg.slot()
    h.check(slot_before and not slot_before[1], f"slot busy before {name}: {slot_before}")
    relay = env.relay(relay_config(env, dsn), name=name).start()

    def failures():
        return [line for line in relay.log_text().splitlines()
                if "cannot connect to postgresql" in line and all(s in line for s in must_say)]

    if permanent:
        rc = relay.wait(30)
        h.check(rc == 1, f"{name}: exit code {rc}, want 1 (permanent error)")
        lines = failures()
        h.check(lines, f"{name}: no log line saying {must_say}")
        h.log(f"{name}: exit {rc} (permanent): {lines[-1].strip()}")
    else:
        # Retried with backoff (100 ms doubling to retry_interval, 1 s here): three
        # attempts come within a few seconds.
        lines = h.wait_for(lambda: len(failures()) >= 3 and failures(), 30,
                           f"{name}: three failed connection attempts saying {must_say}")
        h.check(relay.alive(), f"{name}: relay exited although the error is transient")
        h.check(all("retrying in" in line for line in lines),
                f"{name}: failure not reported as retried: {lines[0].strip()}")
        h.check(pg.slot() == slot_before, f"{name}: slot changed: {pg.slot()} vs {slot_before}")
        rc, took = relay.stop()
        h.check(rc == 0, f"{name}: exit code {rc} on SIGTERM while retrying")
        h.check(took < 10, f"{name}: SIGTERM took {took:.2f}s")
        h.log(f"{name}: {len(lines)} attempts retried, then exit {rc} on SIGTERM after "
              f"{took:.2f}s: {lines[0].strip()}")
    n = consumer.wait_quiet(1.0)
    h.check(n == had, f"{name}: {n - had} events published without a verified connection")
    h.check(pg.slot() == slot_before, f"{name}: slot changed: {pg.slot()} vs {slot_before}")
    h.check(PASSWORD not in relay.log_text(), f"{name}: the password appears in the log")
    return lines


def test(env):
    pg = env.pg
    pg.psql(f"ALTER ROLE outbox_relay PASSWORD '{PASSWORD}'")
    check_server_setup(env)
    consumer = env.consumer()

    # 1. Verified TLS: everything arrives, over encrypted connections only.
    relay = env.relay(relay_config(env, relay_dsn(env)), name="relay-tls").start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to start streaming")
    pid, version, cipher = check_encrypted(pg)
    h.log(f"walsender {pid}: ssl on, {version}, {cipher}")
    total = NTX * PER_TX
    pg.psql(h.insert_sql(1, NTX, PER_TX))
    end_lsn = pg.current_lsn()
    consumer.wait_count(total, 60)
    h.wait_for(lambda: pg.slot()[0] >= end_lsn, 30, "the slot to be confirmed past the inserts")
    # The side connection (heartbeats, state) uses the same DSN: wait for it, then
    # every backend of the role must be encrypted.
    def with_side_connection():
        b = role_backends(pg)
        return b if any(btype == "client backend" for _, btype, _, _ in b) else None

    backends = h.wait_for(with_side_connection, 20, "the relay's side connection")
    for bpid, btype, app, ssl in backends:
        h.check(ssl == "t", f"backend {bpid} ({btype}, {app}) of outbox_relay is not encrypted")
    h.log("encrypted backends of outbox_relay: " +
          ", ".join(f"{p} {t} {a!r}" for p, t, a, _ in backends))
    check_encrypted(pg)
    consumer.wait_quiet(1.0)
    h.check_exact(pg, consumer.messages, total)
    rc, took = relay.stop()
    h.check(rc == 0 and took < 10, f"SIGTERM: exit {rc} after {took:.2f}s")
    h.check(PASSWORD not in relay.log_text(), "the password appears in the relay's log")
    h.log(f"{total} events in {NTX} transactions arrived exactly as written")

    # Rows the misconfigured relays below must not publish.
    pg.psql(h.insert_sql(total + 1, 1, LATE))

    # 2. A CA that did not sign the server's certificate.
    failing_run(env, "relay-other-ca", relay_dsn(env, ca="other-ca"),
                ("certificate verify failed",), CERT_FAILURE_IS_PERMANENT, consumer)

    # 3. No TLS at all: pg_hba.conf rejects the role.
    failing_run(env, "relay-no-tls", relay_dsn(env, sslmode="disable"),
                ("pg_hba.conf rejects connection", "no encryption"), HBA_REJECT_IS_PERMANENT,
                consumer)

    # 4. Back with verified TLS: the rows written meanwhile arrive, nothing twice.
    relay = env.relay(relay_config(env, relay_dsn(env)), name="relay-tls-again").start()
    consumer.wait_count(total + LATE, 60)
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream again")
    check_encrypted(pg)
    rc, took = relay.stop()
    h.check(rc == 0 and took < 10, f"final SIGTERM: exit {rc} after {took:.2f}s")
    consumer.wait_quiet(1.0)
    h.check_exact(pg, consumer.messages, total + LATE)
    rows, distinct, dups = h.check_stream(pg, consumer.messages)
    h.check(dups == 0, f"{dups} duplicates")
    h.check(PASSWORD not in relay.log_text(), "the password appears in the relay's log")
    h.log(f"{rows} rows, {distinct} distinct events, {dups} duplicates")


if __name__ == "__main__":
    h.main(test, pg_setup=pg_setup)

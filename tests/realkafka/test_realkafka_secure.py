"""The relay against a secured real Apache Kafka cluster: three KRaft nodes whose
client listeners speak SASL_SSL (SCRAM-SHA-512 or PLAIN over TLS, a certificate for
127.0.0.1 signed by a CA made for the run) and whose StandardAuthorizer allows nothing
without an ACL (tools/kafka_cluster.py, secure=True).  The relay authenticates as
User:relay; the checking consumer (confluent-kafka, read_committed) reads through the
nodes' PLAINTEXT listener as a super user, and so shares nothing with the relay.

Debian 12's librdkafka (2.0.2) cannot authenticate with SCRAM to Apache Kafka 4
brokers: before 2.6.1 it repeats the client nonce in SCRAM's final message, which
Kafka 4 refuses whatever the password (Kafka 3.8.1 to 3.9 tolerate it).  So SCRAM runs
against Kafka 3.9.1, and against Kafka 4 the relay must say so rather than retry:

  Kafka 3.9.1 (the last line that accepts this librdkafka's SCRAM):
  1. SCRAM-SHA-512 over TLS, the broker certificate verified against the test CA
     (ssl.ca.location), and an ACL that denies writes to one topic: every event of the
     allowed topic arrives once, in per-key order; every event of the denied topic goes
     to the dead-letter topic with reason "rejected"; the relay keeps running and the
     slot passes both.
  2. SCRAM with a wrong password: the relay stops within seconds with exit code 1 and
     an error naming the refused credentials (no silent retry loop), confirming nothing
     it did not deliver; `outbox-relay check` fails with the same cause.
  Kafka 4.1.1 (the suite's version):
  3. PLAIN over verified TLS and the same ACLs: as 1.
  4. SCRAM-SHA-512 with the right password: exit 1, the error naming the librdkafka
     defect and what to use instead.
  5. A CA that did not sign the brokers' certificate: exit 1, the failed certificate
     verification named.

Run by hand (label realkafka):  python3 tests/realkafka/test_realkafka_secure.py --build-dir build
"""

import os
import subprocess
import time
import types

from realkafka import KafkaCluster, KafkaConsumer, h, start_streaming, stop_relay

from confluent_kafka import Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)
from kafka_cluster import make_test_ca

ALLOWED, DENIED, DLQ = "outbox.event.order", "outbox.event.invoice", "outbox.dlq"


def client_props(kafka, mechanism, password=None, ca=None):
    """librdkafka properties for User:relay on the SASL_SSL listeners."""
    return {"security.protocol": "SASL_SSL", "sasl.mechanisms": mechanism,
            "sasl.username": "relay", "sasl.password": password or kafka.users["relay"],
            "ssl.ca.location": ca or kafka.ca_pem}


def config(env, kafka, mechanism, **props):
    text = "".join(f"    {k}: \"{v}\"\n"
                   for k, v in client_props(kafka, mechanism, **props).items())
    return h.relay_config(env.pg, types.SimpleNamespace(bootstrap=kafka.secure_bootstrap),
                          kafka_props=text, extra=f"  dlq_topic: {DLQ}\n")


def grant(kafka, mechanism):
    """User:relay may describe and write topics "outbox.*", except DENIED.  Returns once
    a client authenticated as the relay sees exactly that (ACLs reach every node)."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})

    def acl(name, pattern, op, perm):
        return AclBinding(ResourceType.TOPIC, name, pattern, "User:relay", "*", op, perm)

    bindings = [acl("outbox.", ResourcePatternType.PREFIXED, AclOperation.WRITE,
                    AclPermissionType.ALLOW),
                acl("outbox.", ResourcePatternType.PREFIXED, AclOperation.DESCRIBE,
                    AclPermissionType.ALLOW),
                acl(DENIED, ResourcePatternType.LITERAL, AclOperation.WRITE,
                    AclPermissionType.DENY)]
    for f in admin.create_acls(bindings).values():
        f.result()

    def outcome(topic):
        got = []
        p = Producer({"bootstrap.servers": kafka.secure_bootstrap, "log_level": 2,
                      **client_props(kafka, mechanism)})
        p.produce(topic, b"probe", on_delivery=lambda err, msg: got.append(err))
        p.flush(20)
        return got[0].name() if got and got[0] else ("ok" if got else "timeout")

    h.wait_for(lambda: outcome("outbox.probe") == "ok" and
               outcome(DENIED) == "TOPIC_AUTHORIZATION_FAILED", 60,
               "the ACLs to be in force on every node", interval=1)


def mixed_sql(first, ntx):
    """ntx pairs of transactions: 10 "order" rows, then 2 "invoice" rows."""
    out = []
    n = first
    for _ in range(ntx):
        out.append(h.insert_sql(n, 1, 10))
        out.append(h.insert_sql(n + 10, 1, 2, aggregatetype="invoice"))
        n += 12
    return "".join(out)


def ids_of(pg, aggregatetype):
    return set(pg.psql("SELECT id FROM public.outbox WHERE aggregatetype = "
                       f"'{aggregatetype}'").split())


def allowed_and_denied(env, kafka, mechanism):
    """Cases 1 and 3: SASL over verified TLS; an ACL denying one topic."""
    pg = env.pg
    pg.psql("DELETE FROM public.outbox")
    for t in (ALLOWED, DENIED, DLQ, "outbox.probe"):
        kafka.create_topic(t, 4)
    grant(kafka, mechanism)
    consumer = KafkaConsumer(kafka.bootstrap, [ALLOWED, DLQ])
    relay = env.relay(config(env, kafka, mechanism), name=f"relay-{mechanism}")
    start_streaming(env, relay)
    pg.psql(mixed_sql(1, 100))
    end = pg.current_lsn()
    orders, invoices = ids_of(pg, "order"), ids_of(pg, "invoice")
    consumer.wait_distinct(len(orders) + len(invoices), 120, "every event, published or set aside")
    consumer.wait_quiet(1.0)
    msgs = consumer.snapshot()
    published = [m for m in msgs if m["topic"] == ALLOWED]
    dead = [m for m in msgs if m["topic"] == DLQ]
    got = [m["headers"]["ce_id"] for m in published]
    h.check(len(got) == len(set(got)) == len(orders) and set(got) == orders,
            f"{len(got)} messages ({len(set(got))} distinct) on {ALLOWED} for {len(orders)} rows")
    h.check_per_key_order(h.ordered_by_partition(published))
    dl = [m["headers"].get("dlq_event_id") for m in dead]
    h.check(len(dl) == len(set(dl)) == len(invoices) and set(dl) == invoices,
            f"{len(dl)} dead letters ({len(set(dl))} distinct) for {len(invoices)} denied rows")
    for m in dead:
        hd = m["headers"]
        h.check(hd.get("dlq_reason") == "rejected" and hd.get("dlq_original_topic") == DENIED,
                f"dead letter {hd}")
    h.wait_for(lambda: pg.slot()[0] >= end, 30, "the slot to pass every event")
    h.check(relay.alive(), "the relay exited")
    stop_relay(relay)
    consumer.stop()
    auth = [ln for ln in relay.log_text().splitlines() if "authorization failed" in ln]
    h.check(auth, "no line names the refused topic's error")
    h.log(f"real kafka {kafka.version or '4'}, SASL_SSL {mechanism} with the test CA: "
          f"{len(orders)} events on "
          f"{ALLOWED} once each, {len(invoices)} events of the denied {DENIED} set aside "
          f"(reason rejected), slot past the end; e.g. {auth[0].split(' WARN ', 1)[-1][:150]}")


def refused(env, kafka, name, mechanism, props, want_words):
    """Cases 2, 4 and 5: the relay must stop on its own, exit 1, and say why."""
    pg = env.pg
    pg.psql(h.insert_sql(900001, 1, 10))
    after = pg.current_lsn()
    relay = env.relay(config(env, kafka, mechanism, **props),
                      name=f"relay-{name.replace(' ', '-')}")
    t0 = time.time()
    relay.start()
    try:
        rc = relay.wait(60)
    except h.TestFailure:
        relay.kill()
        raise h.TestFailure(f"{name}: the relay kept retrying for 60 s:\n"
                            f"{relay.log_text()[-2000:]}")
    took = time.time() - t0
    log = relay.log_text()
    errors = [ln for ln in log.splitlines() if " ERROR " in ln or '"error"' in ln]
    h.check(rc == 1, f"{name}: exit code {rc}, want 1\n{log[-2000:]}")
    h.check(errors and all(w in errors[-1] for w in want_words),
            f"{name}: the last error does not say {want_words}:\n{log[-2000:]}")
    h.check(pg.slot()[0] < after, f"{name}: the slot moved to {pg.slot()[0]:X}, past "
            f"events never delivered (before {after:X})")
    t_chk = time.time()
    chk = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                          relay.cfg], capture_output=True, text=True, timeout=120)
    t_chk = time.time() - t_chk
    h.check(chk.returncode != 0 and all(w in chk.stdout + chk.stderr for w in want_words[1:]),
            f"{name}: check exited {chk.returncode}:\n{chk.stdout}{chk.stderr}")
    # Refused at once, as run is: not after the probe's whole timeout.
    h.check(t_chk < 5, f"{name}: check took {t_chk:.1f}s to report a refusal")
    h.log(f"real kafka {kafka.version or '4'}, {name}: exit 1 after {took:.1f}s (check "
          f"failed after {t_chk:.1f}s): "
          f"{errors[-1].split(' ERROR ', 1)[-1][:220]}")
    # The next case starts afresh: these events are skipped as an operator would skip
    # them (docs/operations.md: advance the slot, then accept its position).
    pg.psql("DELETE FROM public.outbox WHERE (payload->>'n')::int > 900000;"
            "SELECT pg_replication_slot_advance('outbox_relay', pg_current_wal_lsn());"
            "DELETE FROM public.outbox_relay_state WHERE slot_name = 'outbox_relay'")


def test(env):
    with KafkaCluster(env.tmp + "/k39", log=h.log, secure=True, version="3.9.1") as kafka:
        allowed_and_denied(env, kafka, "SCRAM-SHA-512")
        refused(env, kafka, "SCRAM, wrong password", "SCRAM-SHA-512",
                {"password": "not-the-password"},
                ["refused the relay's credentials", "Authentication failed"])
    with KafkaCluster(env.tmp + "/k4", log=h.log, secure=True) as kafka:
        allowed_and_denied(env, kafka, "PLAIN")
        refused(env, kafka, "SCRAM on Kafka 4", "SCRAM-SHA-512", {},
                ["refused the relay's credentials", "librdkafka 2.6.1"])
        other_ca, _ = make_test_ca(env.tmp, "other-ca")
        refused(env, kafka, "unknown CA", "PLAIN", {"ca": other_ca},
                ["TLS with kafka failed", "certificate verify failed"])


if __name__ == "__main__":
    h.main(test, topics=())

"""Poison events are set aside, never a halt (docs/events.md, "Bad input").

In both modes (logical replication and polling), once with the dead-letter topic
(kafka.dlq_topic) and once with the dead-letter table (dead_letter.table,
sql/006_dead_letter.sql), a real PostgreSQL and the dev broker get a stream of good
rows with every kind of poison event between them:

  bad-row          NULL id, NULL key, a headers column that is not a JSON object,
                   invalid UTF-8 (the database is SQL_ASCII, so the server lets it in)
  bad-destination  aggregatetype "bad topic!": no Kafka topic can be named so
  too-large        a 2 MB payload (over the producer's message.max.bytes), and one the
                   broker refuses for its size (MSG_SIZE_TOO_LARGE injected)
  rejected         the broker's TOPIC_AUTHORIZATION_FAILED (injected)
  bad-message      a logical message that is not an event (replication only)

Each run checks: the relay stays up; every good row is published exactly once per
run, in order; each poison event is in the dead-letter destination with its reason
(and, for a row, the row itself as JSON; for a too-large event, no value and its
size); outbox_relay_dead_letter_total counts them by reason and they are not counted
as published; the slot (or, polling, the outbox table) passes the end.  Then an HA
pair with a poison row: the active instance is SIGKILLed, the standby takes over and
keeps streaming past a second poison row.  With pipeline.on_bad_event "stop" in
polling mode the relay stops at the poison row without deleting it (replication's
stop is test_bad_input.py).
"""

import base64
import json
import os
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SQL_DIR = os.path.join(HERE, "..", "..", "sql")

TABLE = """CREATE TABLE public.outbox (
    id text, aggregatetype text, aggregateid text, type text, payload text, headers text,
    seq bigserial NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON public.outbox (seq);"""



def row(rid, aggtype="t", key="'k'", typ="'T'", payload="'{\"ok\": true}'", headers="NULL"):
    rid_sql = "NULL" if rid is None else f"'{rid}'"
    return ("INSERT INTO public.outbox (id, aggregatetype, aggregateid, type, payload, headers) "
            f"VALUES ({rid_sql}, '{aggtype}', {key}, {typ}, {payload}, {headers});")


# (id, reason, SQL, broker error to inject first or None, modes)
CASES = [
    ("p-null-id", "bad-row", row(None), None, "rp"),
    ("p-null-key", "bad-row", row("p-null-key", key="NULL"), None, "rp"),
    ("p-headers", "bad-row", row("p-headers", headers="'[1, 2]'"), None, "rp"),
    ("p-utf8", "bad-row", row("p-utf8", typ="E'Bad\\xff'"), None, "rp"),
    ("p-topic", "bad-destination", row("p-topic", aggtype="bad topic!"), None, "rp"),
    # A header whose value holds a NUL byte (the JSON escape \u0000): fine for Kafka,
    # refused by a jsonb column, so the table's record goes in without the headers.
    ("p-nul-header", "bad-destination",
     row("p-nul-header", aggtype="bad topic!", headers="'{\"h\": \"a\\u0000b\"}'"), None,
     "rp"),
    ("p-large", "too-large",
     row("p-large", payload="'{\"blob\": \"' || repeat('x', 2097152) || '\"}'"), None, "rp"),
    ("p-broker-large", "too-large", row("p-broker-large"), "MSG_SIZE_TOO_LARGE", "rp"),
    # Its own topic: librdkafka then refuses that topic until its metadata is refreshed.
    ("p-denied", "rejected", row("p-denied", aggtype="denied"), "TOPIC_AUTHORIZATION_FAILED",
     "rp"),
    ("p-message", "bad-message",
     "SELECT pg_logical_emit_message(true, 'outbox', "
     "'{\"id\": \"p-message\", \"aggregatetype\": \"t\", \"aggregateid\": \"k\"}');", None, "r"),
]


def topics(db):
    """Each run has topics of its own: (events, dead letters)."""
    return f"{db}.t", f"{db}.dlq"


def config(pg, broker, db, mode, dlq, extra=""):
    kafka_dlq = f"  dlq_topic: {topics(db)[1]}\n" if dlq == "topic" else ""
    table = "dead_letter:\n  table: public.outbox_dead_letter\n" if dlq == "table" else ""
    source = (f"  slot: {db}\n  publication: {db}\n" if mode == "replication" else
              "  mode: polling\n")
    polling = "polling:\n  interval: 200ms\n" if mode == "polling" else ""
    return f"""admin:
  listen: "127.0.0.1:{h.free_port()}"
postgres:
  dsn: "{pg.dsn(db=db)}"
{source}  status_interval: 1s
  retry_interval: 1s
kafka:
  brokers: "{broker.bootstrap}"
  topic: "{db}.{{aggregatetype}}"
{kafka_dlq}  properties:
    linger.ms: 5
{table}{polling}{extra}"""


def metrics(relay_cfg):
    port = relay_cfg.split('listen: "127.0.0.1:')[1].split('"')[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("outbox_relay_dead_letter_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            out[reason] = int(line.rsplit(" ", 1)[1])
        elif line.startswith("outbox_relay_events_published_total "):
            out["published"] = int(line.rsplit(" ", 1)[1])
    return out


def setup_db(pg, db, mode):
    pg.psql(f"CREATE DATABASE {db} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0", db="postgres")
    pg.psql(TABLE, db=db)
    pg.psql_file(os.path.join(SQL_DIR, "006_dead_letter.sql"), db=db)
    if mode == "replication":
        pg.psql(f"CREATE PUBLICATION {db} FOR TABLE public.outbox WITH (publish = 'insert')",
                db=db)
        pg.psql(f"SELECT pg_create_logical_replication_slot('{db}', 'pgoutput')", db=db)


def dead_letters(pg, db, consumer, dlq):
    """The dead-letter records so far, as dicts with the same fields for both kinds."""
    DLQ = topics(db)[1]
    if dlq == "table":
        out = pg.psql("SELECT coalesce(event_id, ''), reason, value_is_row, "
                      "coalesce(value_omitted_size, -1), coalesce(destination, ''), "
                      "coalesce(translate(encode(value, 'base64'), E'\\n', ''), '') "
                      "FROM public.outbox_dead_letter ORDER BY id", db=db)
        recs = []
        for line in out.splitlines():
            if not line.strip():
                continue
            eid, reason, is_row, omitted, dest, value = line.split("|", 5)
            recs.append({"id": eid, "reason": reason, "row": is_row == "t",
                         "omitted": int(omitted), "dest": dest,
                         "value": base64.b64decode(value).decode("latin-1")})
        return recs
    consumer.poll()
    recs = []
    for m in consumer.messages:
        if m["topic"] != DLQ:
            continue
        hd = m["headers"]
        recs.append({"id": hd.get("dlq_event_id", ""), "reason": hd.get("dlq_reason"),
                     "row": hd.get("dlq_value") == "row",
                     "omitted": int(hd.get("dlq_value_omitted_size", -1)),
                     "dest": hd.get("dlq_original_topic", ""), "value": m["value"] or ""})
    return recs


def good_ids(consumer, db):
    consumer.poll()
    return [m["headers"]["ce_id"] for m in consumer.messages if m["topic"] == topics(db)[0]]


def run(env, mode, dlq):
    pg, broker = env.pg, env.broker
    db = f"poison_{mode[0]}_{dlq}"
    setup_db(pg, db, mode)
    for t in topics(db):
        broker.command(f"topic {t} 1")
    consumer = env.consumer(topics(db), name=f"consumer-{db}")
    cfg = config(pg, broker, db, mode, dlq)
    relay = env.relay(cfg, name=f"relay-{db}").start()
    if mode == "replication":
        h.wait_for(lambda: (pg.slot(db) or (0, False))[1], 30, "the relay to stream")
    else:
        h.wait_for(lambda: "holding the polling lock" in relay.log_text(), 30, "the poller")
    cases = [c for c in CASES if mode[0] in c[4]]
    want_good = []
    for i, (pid, reason, sql, inject, _) in enumerate(cases):
        gid = f"good-{i}"
        pg.psql(row(gid), db=db)
        want_good.append(gid)
        # An injected broker error hits the next Produce request, whatever it carries:
        # let everything before drain first, so that it hits the poison row alone.
        h.wait_for(lambda: good_ids(consumer, db)[-1:] == [gid], 30, f"{gid} before {pid}")
        if inject:
            broker.command(f"error Produce 1 {inject}")
        pg.psql(sql, db=db)
        h.wait_for(lambda: len(dead_letters(pg, db, consumer, dlq)) == len(
            [c for c in cases[:i + 1]]), 30, f"the dead-letter record of {pid}")
        h.check(relay.alive(), f"{mode}/{dlq}: the relay stopped at {pid}\n{relay.log_text()}")
    pg.psql(row("good-last"), db=db)
    want_good.append("good-last")
    h.wait_for(lambda: good_ids(consumer, db) == want_good, 30, "every good row")
    consumer.wait_quiet(1.0)
    got = good_ids(consumer, db)
    h.check(got == want_good, f"{mode}/{dlq}: good rows {got}, want {want_good}")

    recs = dead_letters(pg, db, consumer, dlq)
    h.check(len(recs) == len(cases), f"{mode}/{dlq}: {len(recs)} dead letters for "
            f"{len(cases)} poison events: {recs}")
    for (pid, reason, _, _, _), rec in zip(cases, recs):
        h.check(rec["reason"] == reason, f"{pid}: reason {rec['reason']}, want {reason}")
        if pid not in ("p-null-id", "p-message"):
            h.check(rec["id"] == pid, f"{pid}: event id {rec['id']!r}")
        if reason == "bad-row":
            # The row itself, as JSON, so that it can be mended and inserted again.
            h.check(rec["row"], f"{pid}: the value is not the row: {rec}")
            r = json.loads(rec["value"])
            h.check(r.get("id") == (None if pid == "p-null-id" else pid)
                    and r.get("aggregatetype") == "t", f"{pid}: row {r}")
        if reason == "too-large":
            h.check(rec["omitted"] > 0 and rec["value"] == "",
                    f"{pid}: value not left out, or no size: {rec}")
        if pid == "p-large":
            h.check(rec["omitted"] > 2097152, f"{pid}: omitted size {rec['omitted']}")
        if reason in ("rejected", "bad-destination") or pid == "p-broker-large":
            want_dest = {"p-topic": f"{db}.bad topic!", "p-nul-header": f"{db}.bad topic!",
                         "p-denied": f"{db}.denied"}.get(pid, topics(db)[0])
            h.check(rec["dest"] == want_dest, f"{pid}: destination {rec['dest']!r}")
    refused = [ln for ln in relay.log_text().splitlines() if "headers refused by the table" in ln]
    if dlq == "table":
        h.check(len(refused) == 1 and '"p-nul-header"' in refused[0],
                f"{mode}/{dlq}: the NUL header's fallback was not logged once: {refused}")
    else:
        h.check(not refused, f"{mode}/{dlq}: a topic record lost its headers: {refused}")
    m = metrics(cfg)
    by_reason = {}
    for c in cases:
        by_reason[c[1]] = by_reason.get(c[1], 0) + 1
    for reason, n in by_reason.items():
        h.check(m.get(reason) == n, f"{mode}/{dlq}: metric {reason} {m.get(reason)}, want {n}")
    h.check(m.get("published") == len(want_good),
            f"{mode}/{dlq}: {m.get('published')} counted as published, want {len(want_good)}")

    # Past the end: the slot confirmed beyond the last commit, or the table drained.
    if mode == "replication":
        end = h.lsn_to_int(pg.psql("SELECT pg_current_wal_lsn()", db=db).strip())
        h.wait_for(lambda: pg.slot(db)[0] >= end - 1000, 20, "the slot to pass the end")
    else:
        h.wait_for(lambda: pg.psql("SELECT count(*) FROM public.outbox", db=db).strip() == "0",
                   20, "the outbox table to drain, poison rows included")
    rc, _ = relay.stop()
    h.check(rc == 0, f"{mode}/{dlq}: exit {rc}")
    consumer.stop()
    h.log(f"{mode}, dead-letter {dlq}: {len(want_good)} good rows published once each, "
          f"{len(recs)} poison events set aside ({', '.join(sorted(by_reason))}), relay up "
          f"throughout, clean exit")
    return db


def ha_pair(env, db):
    """Two replication relays on the poisoned slot: the active one is killed, the standby
    takes over and streams past the next poison row."""
    pg, broker = env.pg, env.broker
    consumer = env.consumer((topics(db)[0],), name="consumer-ha")
    cfg = config(pg, broker, db, "replication", "table")
    a = env.relay(cfg, name="ha-active").start()
    h.wait_for(lambda: (pg.slot(db) or (0, False))[1], 30, "the active instance")
    b = env.relay(cfg.replace(cfg.split('listen: "')[1].split('"')[0],
                              f"127.0.0.1:{h.free_port()}"), name="ha-standby").start()
    h.wait_for(lambda: "is active for PID" in b.log_text(), 30, "the standby to wait")
    before = len(dead_letters(pg, db, None, "table"))
    pg.psql(row("ha-good-1") + row("ha-poison-1", key="NULL") + row("ha-good-2"), db=db)
    h.wait_for(lambda: {"ha-good-1", "ha-good-2"} <= set(good_ids(consumer, db)), 30,
               "good rows around the first poison row")
    a.signal(signal.SIGKILL)
    a.wait(10)
    t_kill = time.time()
    pg.psql(row("ha-poison-2", headers="'\"x\"'") + row("ha-good-3"), db=db)
    h.wait_for(lambda: "ha-good-3" in good_ids(consumer, db), 30, "the standby past the second "
               "poison row")
    took = time.time() - t_kill
    recs = dead_letters(pg, db, None, "table")[before:]
    ids = [r["id"] for r in recs]
    h.check(ids == ["ha-poison-1", "ha-poison-2"], f"HA: dead letters {ids} (a record written "
            "again after the kill must not be doubled)")
    h.check(b.alive(), "HA: the standby stopped")
    blog = b.log_text()
    h.check("streaming from slot" in blog and 'event "ha-poison-2"' in blog and
            "set aside" in blog, f"HA: the standby did not set the second poison row aside:\n{blog}")
    rc, _ = b.stop()
    h.check(rc == 0, f"HA: exit {rc}")
    h.log(f"HA pair: standby streamed past a poison row {took:.1f}s after the active "
          f"instance was SIGKILLed; dead letters {ids}")


def polling_stop(env):
    """on_bad_event: stop keeps the old behaviour: stop, the poison row stays."""
    pg, broker = env.pg, env.broker
    db = "poison_p_stop"
    setup_db(pg, db, "polling")
    consumer = env.consumer((topics(db)[0],), name="consumer-stop")
    cfg = config(pg, broker, db, "polling", "table", "pipeline:\n  on_bad_event: stop\n")
    pg.psql(row("s-good") + row("s-bad", key="NULL"), db=db)
    relay = env.relay(cfg, name="relay-stop").start()
    rc = relay.wait(30)
    log = relay.log_text()
    h.check(rc == 1, f"stop: exit {rc}\n{log}")
    h.check('bad outbox row id "s-bad"' in log and "on_bad_event" in log, f"stop: {log}")
    left = pg.psql("SELECT id FROM public.outbox ORDER BY seq", db=db).split()
    h.check("s-bad" in left, f"stop: the poison row was deleted: {left}")
    dl = pg.psql("SELECT count(*) FROM public.outbox_dead_letter", db=db).strip()
    h.check(dl == "0", f"stop: {dl} dead-letter records written")
    # The good row before it was published (once per attempt: the batch was not finished).
    consumer.wait_count(1, 30)
    h.check(set(good_ids(consumer, db)) == {"s-good"}, f"stop: published {good_ids(consumer, db)}")
    h.log("polling with on_bad_event stop: exit 1 at the poison row, which stays in the table")


def test(env):
    last = None
    for mode in ("replication", "polling"):
        for dlq in ("topic", "table"):
            db = run(env, mode, dlq)
            if mode == "replication" and dlq == "table":
                last = db
    ha_pair(env, last)
    polling_stop(env)


if __name__ == "__main__":
    h.main(test, topics=())

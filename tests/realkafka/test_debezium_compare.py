"""Debezium, the real one, beside the relay: the same outbox table, the same real
Apache Kafka cluster, compared event by event.

Debezium runs as its users run it (tools/debezium_connect.py: Kafka Connect 4.1.1
standalone, debezium-connector-postgres 3.6.1.Final on pgoutput, the outbox event
router routing by aggregatetype to outbox.event.<aggregatetype>, keyed by aggregateid,
the JSON payload expanded; StringConverter keys, JsonConverter values without schemas).
The relay runs with `kafka.format: debezium` on a slot of its own, its topics prefixed
"relay." so that both can write to one cluster.  Both are fed the same rows: ordinary
events, and payloads chosen to find differences -- numbers written with trailing
zeros or exponents, large and precise numbers, Unicode and escapes, nested and empty
structures, top-level arrays, strings, numbers and JSON null, a SQL NULL payload,
Unicode keys, a headers column.

For every event id in the table, the message from each is compared: topic (less the
prefix), key bytes, partition, the `id` header, the value as JSON, and the value's
bytes.  Every difference found must be one of those written down, with its reason, in
docs/migrating-from-debezium.md ("Measured against Debezium 3.6.1"): DOCUMENTED below
lists them, and the test fails on any other -- and on a documented one that no longer
occurs, so that the page is kept true.

Run by hand (label realkafka):  python3 tests/realkafka/test_debezium_compare.py --build-dir build
"""

import json
import sys
import time
from decimal import Decimal

from realkafka import KafkaCluster, KafkaConsumer, ROOT, h

sys.path.insert(0, ROOT + "/tools")
from debezium_connect import DebeziumConnect  # noqa: E402

PARTITIONS = 4
TYPES = ("order", "customer")

# Rows chosen to find differences: (aggregatetype, aggregateid, type, payload SQL, headers SQL)
SPECIAL = [
    ("order", "o-trailing-zero", "PriceSet", "'{\"price\": 12.50, \"qty\": 1.0}'", "NULL"),
    ("order", "o-exponent", "PriceSet", "'{\"tiny\": 1e-7, \"big\": 2E+3}'", "NULL"),
    ("order", "o-int64", "Counted", "'{\"n\": 9007199254740993}'", "NULL"),
    ("order", "o-precise", "Counted", "'{\"x\": 0.1000000000000000055511151231257827}'", "NULL"),
    ("order", "o-unicode", "Named", "'{\"name\": \"Zoë — 東京 🚚\"}'", "NULL"),
    ("order", "o-escapes", "Named",
     "'{\"s\": \"quote \\\" backslash \\\\ newline \\n tab \\t\", \"u\": \"\\u00e9\"}'", "NULL"),
    ("order", "o-nested", "Nested", "'{\"a\": {\"b\": {\"c\": [1, 2, 3]}}, \"t\": true}'", "NULL"),
    ("order", "o-empty-array", "Nested", "'{\"a\": {\"b\": 1}, \"none\": []}'", "NULL"),
    ("order", "o-json-null", "Said", "'null'", "NULL"),
    ("order", "o-sql-null", "Deleted", "NULL", "NULL"),
    ("order", "ключ-1", "Named", "'{\"k\": 1}'", "NULL"),
    ("customer", "c-1", "CustomerCreated", "'{\"id\": \"c-1\"}'", "NULL"),
    ("order", "o-headers", "Traced", "'{\"k\": 2}'", "'{\"traceparent\": \"00-abc-01\"}'"),
]

# A payload Debezium's router cannot expand and does not survive: its task is killed
# (errors.tolerance=none, the default) and publishes nothing more until someone
# removes the row's change from its path.  The relay publishes it and carries on.
FATAL_TO_DEBEZIUM = ("order", "o-array", "Listed", "'[\"a\", \"b\"]'", "NULL")

# What differs, and why (docs/migrating-from-debezium.md, "Measured against Debezium").
DOCUMENTED = {
    "value bytes": "the same JSON, other bytes: Debezium re-serialises the expanded payload "
                   "(no spaces, 12.50 as 12.5, 2E+3 as 2000, non-ASCII as \\u escapes); the "
                   "relay sends PostgreSQL's text of the jsonb column",
    "value precision": "Debezium parses non-integral numbers as doubles: 0.1000000000000000055511151231257827 "
                       "arrives as 0.1; the relay keeps every digit",
    "json null as a string": "a payload that is JSON null: Debezium sends the JSON string "
                             "\"null\", the relay the JSON null itself",
    "empty array dropped": "Debezium drops an object member whose value is an empty array "
                           "(it cannot derive a schema for it): {\"none\": []} loses \"none\"; "
                           "the relay sends the payload as it was written",
    "null value": "a NULL payload: Debezium sends the JSON text null, the relay a message "
                  "without a value (a tombstone)",
    "headers column": "the relay turns the headers column's members into headers; "
                      "Debezium's router ignores the column unless "
                      "table.fields.additional.placement names it",
    "debezium context headers": "Debezium 3 adds __debezium.context.* headers (connector "
                                "name, task, run id); the relay sends no such headers",
}


def insert_rows(pg, rows, first, n_plain):
    """The special rows, then n_plain ordinary ones (n from first) in 10-row transactions."""
    for at, key, typ, payload, headers in rows:
        pg.psql("INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload, headers) "
                f"VALUES ('{at}', '{key}', '{typ}', {payload}::jsonb, {headers}::jsonb)")
    pg.psql(h.insert_sql(first, n_plain // 10, 10))


def by_id(messages, prefix):
    out = {}
    for m in messages:
        if not m["topic"].startswith(prefix):
            continue
        rid = m["headers"].get("id")
        h.check(rid not in out, f"{prefix or 'debezium'}: event {rid} twice")
        out[rid] = m
    return out


def exact(text):
    """JSON with every number as a Decimal: equal values, whatever their spelling."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def without_empty_arrays(v):
    if isinstance(v, dict):
        return {k: without_empty_arrays(x) for k, x in v.items() if x != []}
    if isinstance(v, list):
        return [without_empty_arrays(x) for x in v]
    return v


def differences(dbz, rel):
    """The categories in which one event's two messages differ."""
    out = set()
    if rel["topic"] != "relay." + dbz["topic"]:
        out.add("topic")
    if rel["key_bytes"] != dbz["key_bytes"]:
        out.add("key")
    if rel["partition"] != dbz["partition"]:
        out.add("partition")
    dv, rv = dbz["value"], rel["value"]
    if (dv is None) != (rv is None) or (dv == "null") != (rv is None):
        out.add("null value")
    elif dv is not None:
        if json.loads(dv) == "null" and json.loads(rv) is None:
            out.add("json null as a string")
        elif exact(dv) != exact(rv):
            if json.loads(dv) == json.loads(rv):
                out.add("value precision")
            elif exact(dv) == without_empty_arrays(exact(rv)):
                out.add("empty array dropped")
            else:
                out.add("value")
        elif dv != rv:
            out.add("value bytes")
    if any(k != "id" for k, _ in rel["header_list"]):
        out.add("headers column")
    for k, _ in dbz["header_list"]:
        if k.startswith("__debezium.context."):
            out.add("debezium context headers")
        elif k not in rel["headers"]:
            out.add("headers missing")
    if dbz["headers"].get("id") != rel["headers"].get("id"):
        out.add("id header")
    return out


def delivered(consumer, prefix, ids):
    got = {m["headers"].get("id") for m in consumer.snapshot() if m["topic"].startswith(prefix)}
    return len(got & ids)


def test(env):
    pg = env.pg
    with KafkaCluster(env.tmp, log=h.log) as kafka:
        for t in TYPES:
            kafka.create_topic(f"outbox.event.{t}", PARTITIONS)
            kafka.create_topic(f"relay.outbox.event.{t}", PARTITIONS)
        consumer = KafkaConsumer(kafka.bootstrap, [f"{p}outbox.event.{t}" for t in TYPES
                                                   for p in ("", "relay.")])
        # Debezium streams logical decoding messages too, and would publish the relay's
        # heartbeats (pg_logical_emit_message) to "dbserver1.message": during an overlap
        # they must be excluded (docs/migrating-from-debezium.md, cutover B).
        dbz = DebeziumConnect(env.tmp, kafka.bootstrap, "127.0.0.1", pg.port, "app",
                              "postgres", log=h.log,
                              connector={"message.prefix.exclude.list":
                                         "outbox-relay-heartbeat"}).start()
        try:
            t0 = time.time()
            dbz.wait_streaming(lambda: (pg.slot("debezium") or (0, False))[1])
            h.log(f"debezium streaming {time.time() - t0:.1f}s after start")
            relay = env.relay(h.relay_config(pg, kafka, topic="relay.outbox.event.{aggregatetype}",
                                             extra="  format: debezium\n"))
            relay.start()
            h.wait_for(lambda: pg.slot()[1], 60, "the relay to stream")
            # Phase 1: what both publish.
            insert_rows(pg, SPECIAL, 1, 1000)
            ids = set(pg.psql("SELECT id FROM public.outbox").split())
            for prefix, who in (("outbox.", "debezium"), ("relay.", "the relay")):
                h.wait_for(lambda: delivered(consumer, prefix, ids) == len(ids), 180,
                           f"{len(ids)} events from {who}", interval=0.5)
            consumer.wait_quiet(2.0)
            msgs = consumer.snapshot()
            # Phase 2: a payload that stops Debezium, then 100 ordinary rows.
            insert_rows(pg, [FATAL_TO_DEBEZIUM], 100001, 100)
            later = set(pg.psql("SELECT id FROM public.outbox").split()) - ids
            h.wait_for(lambda: delivered(consumer, "relay.", later) == len(later), 60,
                       "the relay to publish the payload Debezium cannot", interval=0.5)
            h.wait_for(lambda: "unrecoverable exception" in open(dbz.logpath).read(), 60,
                       "Debezium's task to be killed")
            time.sleep(5)
            dbz_later = delivered(consumer, "outbox.", later)
            h.check(dbz_later == 0, f"debezium published {dbz_later} events after the array")
        finally:
            dbz.stop()
        consumer.stop()
        h.check(relay.alive(), "the relay exited")
        rc, _ = relay.stop()
        h.check(rc == 0, f"relay exit {rc}")
    d, r = by_id(msgs, "outbox."), by_id(msgs, "relay.")
    h.check(set(d) == ids and set(r) == ids, f"debezium {len(d)}, relay {len(r)} events for "
            f"{len(ids)} rows")
    keys = dict(row.split("|") for row in
                pg.psql("SELECT id, aggregateid FROM public.outbox").splitlines())
    found = {}
    for rid in sorted(ids):
        for cat in differences(d[rid], r[rid]):
            found.setdefault(cat, []).append(rid)
    for cat, which in sorted(found.items()):
        rid = which[0]
        h.log(f"difference {cat!r} in {len(which)} events, e.g. {keys[rid]}: debezium "
              f"{d[rid]['value']!r} / relay {r[rid]['value']!r}")
    undocumented = set(found) - set(DOCUMENTED)
    h.check(not undocumented, f"differences not in docs/migrating-from-debezium.md: "
            f"{sorted(undocumented)}")
    stale = set(DOCUMENTED) - set(found)
    h.check(not stale, f"documented differences that no longer occur: {sorted(stale)}")
    h.log(f"debezium 3.6.1 vs relay (format debezium) on real kafka: {len(ids)} events; "
          "topic, key bytes, partition and id header equal for every one; differences: "
          + ", ".join(f"{c} ({len(w)})" for c, w in sorted(found.items()))
          + f"; a top-level array payload killed Debezium's task (0 of the {len(later)} "
          "events from it on published), the relay published all")


if __name__ == "__main__":
    h.main(test, topics=())

"""Golden-file tests for event formats and sources, in the manner of wal2json's
sql/ + expected/: each directory under tests/golden/ holds

    config.yaml     the relay's configuration, with @DSN@, @BROKERS@ and @NAME@
                    filled in by this runner
    setup.sql       optional: schema changes made before the relay starts
    input.sql       what the application does
    expected.jsonl  what arrives in Kafka: one line per message, with topic, key,
                    headers and value compared byte for byte

and this runner plays each case against a real PostgreSQL (a database and a slot of
its own per case) and the dev broker, reading with the project's Kafka consumer.
Values that differ from run to run -- commit times, LSNs, transaction ids, the
server's system identifier -- are checked for their form and then replaced by
placeholders (<time>, <lsn>, <xid>, <sysid>, <ts>) before the comparison; the rest of
every header and value must match exactly.

    python3 tests/integration/test_golden.py --build-dir build [--update] [CASE...]

--update rewrites expected.jsonl from the run (read the diff before committing it).
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

GOLDEN = os.path.join(h.ROOT, "tests", "golden")
LSN = r"[0-9A-F]{1,8}/[0-9A-F]{1,8}"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"

# (regex over a header value or a raw JSON value, replacement); applied in order.
HEADER_RULES = {
    "ce_time": (TIME, "<time>"),
    "ce_pglsn": (LSN, "<lsn>"),
    "ce_pgxid": (r"\d+", "<xid>"),
    "ce_pgsystemid": (r"\d+", "<sysid>"),
    "ce_id": (LSN, "<lsn>"),  # a table change's id is "<lsn>:<index>"
}
VALUE_RULES = [
    (r'"time":"' + TIME + '"', '"time":"<time>"'),
    (r'"pglsn":"' + LSN + '"', '"pglsn":"<lsn>"'),
    (r'"pgxid":\d+', '"pgxid":"<xid>"'),
    (r'"pgsystemid":"\d+"', '"pgsystemid":"<sysid>"'),
    (r'"id":"' + LSN + ':', '"id":"<lsn>:'),
    (r'"txId":\d+', '"txId":"<xid>"'),
    (r'"lsn":\d+', '"lsn":"<lsn>"'),
    (r'"ts_ms":\d+', '"ts_ms":"<ts>"'),
]


def normalize(m):
    headers = []
    for k, v in m["header_list"]:
        rule = HEADER_RULES.get(k)
        if rule and v is not None:
            new = re.sub(rule[0], rule[1], v)
            h.check(new != v or k == "ce_id", f"header {k}={v!r} does not have the expected form")
            v = new
        headers.append([k, v])
    value = m["value"]
    if value is not None:
        for pat, rep in VALUE_RULES:
            value = re.sub(pat, rep, value)
    return {"topic": m["topic"], "key": m["key"], "headers": headers, "value": value}


def run_case(env, name, update):
    case = os.path.join(GOLDEN, name)
    pg, broker = env.pg, env.broker
    db = f"golden_{name}"
    pg.psql(f"CREATE DATABASE {db}", db="postgres")
    pg.psql_file(os.path.join(h.ROOT, "sql", "001_outbox_table.sql"), db=db)
    if os.path.exists(os.path.join(case, "setup.sql")):
        pg.psql_file(os.path.join(case, "setup.sql"), db=db)
    with open(os.path.join(case, "config.yaml")) as f:
        cfg = (f.read().replace("@DSN@", pg.dsn(db=db)).replace("@BROKERS@", broker.bootstrap)
               .replace("@NAME@", db))
    topics = re.findall(r"^# topic: (\S+)$", cfg, re.M)
    h.check(topics, f"{name}: config.yaml names no '# topic:' to read")
    for t in topics:
        broker.command(f"topic {t} 1")
    expected_path = os.path.join(case, "expected.jsonl")
    expected = []
    if os.path.exists(expected_path):
        with open(expected_path) as f:
            expected = [json.loads(line) for line in f if line.strip()]

    consumer = env.consumer(topics, name=f"consumer-{name}")
    relay = env.relay(cfg, name=f"relay-{name}").start()
    h.wait_for(lambda: (pg.slot(db) or (0, False))[1], 30, f"{name}: the relay to stream")
    with open(os.path.join(case, "input.sql")) as f:
        pg.psql(f.read(), db=db)
    if expected and not update:
        consumer.wait_count(len(expected), 60)
    time.sleep(1.0)
    consumer.wait_quiet(1.0)
    rc, _ = relay.stop()
    h.check(rc == 0, f"{name}: relay exited with {rc}:\n{relay.log_text()}")
    consumer.stop()
    actual = [normalize(m) for m in sorted(consumer.messages,
                                           key=lambda m: (m["topic"], m["offset"]))]
    if update:
        with open(expected_path, "w") as f:
            for m in actual:
                f.write(json.dumps(m, ensure_ascii=False, separators=(",", ":")) + "\n")
        h.log(f"{name}: wrote {len(actual)} messages to {expected_path}")
        return len(actual)
    h.check(len(actual) == len(expected),
            f"{name}: {len(actual)} messages, expected {len(expected)}")
    for i, (a, e) in enumerate(zip(actual, expected)):
        h.check(a == e, f"{name}: message {i} differs\n  actual:   {json.dumps(a)}\n"
                f"  expected: {json.dumps(e)}")
    h.log(f"{name}: {len(actual)} messages match byte for byte")
    return len(actual)


def main():
    update = "--update" in sys.argv
    cases = sorted(d for d in os.listdir(GOLDEN) if os.path.isdir(os.path.join(GOLDEN, d)))
    names = [a for a in sys.argv[1:] if a in cases]
    sys.argv = [a for a in sys.argv if a != "--update" and a not in names]
    names = names or cases

    def test(env):
        total = 0
        for n in names:
            total += run_case(env, n, update)
        h.log(f"{len(names)} golden cases, {total} messages")

    h.main(test)


if __name__ == "__main__":
    main()

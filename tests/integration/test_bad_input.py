"""Bad input never crashes the relay and is never skipped silently.  With no
dead-letter destination configured (so pipeline.on_bad_event is "stop"), for each kind
of bad row the relay delivers the good rows before it, then stops with exit code 1 and
an error naming the row's id, transaction and commit LSN, confirming nothing past
it -- so a restart stops at the same row again instead of skipping it.  (With a
dead-letter destination the same rows are set aside: test_poison.py.)
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

TABLE = """CREATE TABLE public.outbox (
    id text PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload text);"""
GOOD = ("INSERT INTO public.outbox VALUES ('good-1', 't', 'k', 'Good', '{\"ok\": true}');")

CASES = [
    # name, database options, extra kafka properties, bad statement, expected reason
    ("payload_not_json", "", "",
     "INSERT INTO public.outbox VALUES ('bad-1', 't', 'k', 'Bad', '{not json');",
     r'bad outbox row id "bad-1" .*column "payload" is not valid JSON'),
    ("null_key", "", "",
     "INSERT INTO public.outbox VALUES ('bad-2', 't', NULL, 'Bad', '{}');",
     r'bad outbox row id "bad-2" .*column "aggregateid" is null'),
    ("null_type", "", "",
     "INSERT INTO public.outbox VALUES ('bad-3', 't', 'k', NULL, '{}');",
     r'bad outbox row id "bad-3" .*column "type" is null'),
    ("bad_topic", "", "",
     "INSERT INTO public.outbox VALUES ('bad-4', 'no/slash', 'k', 'Bad', '{}');",
     r'bad outbox row id "bad-4" .*has a character kafka does not allow'),
    ("invalid_utf8", "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0", "",
     "INSERT INTO public.outbox VALUES ('bad-5', 't', 'k', E'Bad\\xff', '{}');",
     r'bad outbox row id "bad-5" .*"type" is not valid UTF-8'),
    ("oversized", "", "    message.max.bytes: 10000\n",
     "INSERT INTO public.outbox VALUES ('bad-6', 't', 'k', 'Bad', "
     "'{\"blob\": \"' || repeat('x', 20000) || '\"}');",
     r'bad outbox row id "bad-6" .*too large'),
    ("bad_message", "", "",
     "SELECT pg_logical_emit_message(true, 'outbox', '{\"id\": 5, \"aggregateid\": \"k\"}');",
     r'bad outbox message in transaction \d+ at [0-9A-F]+/[0-9A-F]+: member "id" must be a string'),
]


def run_relay(env, cfg_path, name):
    log = os.path.join(env.tmp, f"{name}.log")
    p = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "run", "-c", cfg_path],
                       stdout=subprocess.DEVNULL, stderr=open(log, "w"), timeout=30)
    with open(log) as f:
        return p.returncode, f.read()


def test(env):
    pg, broker = env.pg, env.broker
    for name, dbopts, props, bad, reason in CASES:
        db = f"bad_{name}"
        pg.psql(f"CREATE DATABASE {db} {dbopts}", db="postgres")
        pg.psql(TABLE, db=db)
        topic = f"{db}.t"
        broker.command(f"topic {topic} 1")
        cfg = f"""admin:
  listen: "127.0.0.1:0"
postgres:
  dsn: "{pg.dsn(db=db)}"
  slot: {db}
  publication: {db}
kafka:
  brokers: "{broker.bootstrap}"
  topic: "{db}.{{aggregatetype}}"
  shutdown_timeout: 2s
  properties:
{props or "    linger.ms: 1" + chr(10)}"""
        cfg_path = os.path.join(env.tmp, f"{db}.yaml")
        with open(cfg_path, "w") as f:
            f.write(cfg)
        # Publication, then slot (as sql/002 does), so that both rows are streamed.
        pg.psql(f"CREATE PUBLICATION {db} FOR TABLE public.outbox WITH (publish = 'insert')",
                db=db)
        pg.psql(f"SELECT pg_create_logical_replication_slot('{db}', 'pgoutput')", db=db)
        pg.psql(GOOD, db=db)
        pg.psql(bad, db=db)
        consumer = env.consumer([topic], name=f"consumer-{db}")
        rc, log = run_relay(env, cfg_path, f"relay-{db}")
        h.check(rc == 1, f"{name}: exit code {rc}, expected 1\n{log}")
        line = [ln for ln in log.splitlines() if " ERROR " in ln]
        h.check(line and re.search(reason, line[-1]), f"{name}: no error matching {reason!r}:\n{log}")
        h.check(name == "bad_message" or re.search(r" at [0-9A-F]+/[0-9A-F]+: ", line[-1]),
                f"{name}: the error names no LSN: {line[-1]}")
        consumer.wait_count(1, 30)
        h.check([m["headers"]["ce_id"] for m in consumer.messages] == ["good-1"],
                f"{name}: the good row before the bad one was not delivered exactly once")
        # Not skipped: a restart stops at the same row.
        rc2, log2 = run_relay(env, cfg_path, f"relay-{db}-again")
        h.check(rc2 == 1 and re.search(reason, log2), f"{name}: the restart did not stop at "
                f"the same row (exit {rc2})\n{log2}")
        h.log(f"{name}: stopped with exit 1 twice: {line[-1].split(' ERROR ', 1)[1][:150]}")


if __name__ == "__main__":
    h.main(test)

"""The inbox relay end to end: an order service's outbox relay publishes to the dev
broker, the inbox relay writes the events into the shipping service's database.

- Kills: both relays SIGKILLed at random points (20 times in the gcc pass) while
  events flow: every event is in the inbox table exactly once, in per-key order of
  arrival; the positions table reaches the end of every partition.
- Throughput: a backlog drained into the inbox, in events/s.
- Poison: messages that are not events (no id, an envelope without a type) and one
  PostgreSQL refuses (a time that is not a timestamp) go to the inbox's dead-letter
  table with their reasons and offsets; the events around them arrive.
- check: passes with the tables, fails (and `inbox` exits 1 naming the SQL file)
  without them.
The broker is read and written here with another Kafka client than the relay's.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from inboxlib import (admin_get, inbox_count, kill_while_publishing, positions,  # noqa: E402,F401
                      setup_shipping)

h.in_venv("confluent_kafka", "confluent-kafka==2.16.1", "inbox")
import confluent_kafka  # noqa: E402

TOPIC = "outbox.event.order"




def inbox_config(env, extra="", bootstrap=None, topic=TOPIC):
    return f"""admin:
  listen: "127.0.0.1:0"
postgres:
  retry_interval: 1s
kafka:
  brokers: "{bootstrap or env.broker.bootstrap}"
inbox:
  dsn: "{env.pg.dsn(db='shipping', user='shipping')}"
  consumer: shipping
  topics: [{topic}]
  retention: 7d
  properties:
    session.timeout.ms: 6000
    heartbeat.interval.ms: 500
{extra}"""




def watermarks(bootstrap, topic=TOPIC):
    """Sum of the partitions' high watermarks: every message the topic holds."""
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    md = c.list_topics(topic, timeout=10)
    total = 0
    for p in md.topics[topic].partitions:
        total += c.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p),
                                         timeout=10)[1]
    c.close()
    return total




def check_inbox(env, total, bootstrap, topic=TOPIC):
    """Every outbox row once in the inbox, per-key order of arrival, positions at the end."""
    pg = env.pg
    outbox = set(pg.psql("SELECT id FROM public.outbox").split())
    rows = [line.split("|") for line in pg.psql(
        "SELECT event_id, key, payload->>'n' FROM public.inbox WHERE consumer = 'shipping' "
        "ORDER BY seq", db="shipping").splitlines()]
    ids = [r[0] for r in rows]
    h.check(len(ids) == len(set(ids)), "an event is twice in the inbox")
    h.check(set(ids) == outbox and len(ids) == total,
            f"inbox holds {len(ids)} events, {len(set(ids) & outbox)} of the {len(outbox)} "
            "outbox rows")
    last = {}
    for _, key, n in rows:
        h.check(int(n) > last.get(key, -1), f"key {key}: event {n} arrived after "
                f"{last.get(key)}")
        last[key] = int(n)
    held = watermarks(bootstrap, topic)
    h.wait_for(lambda: positions(pg) == held, 30,
               f"the positions to reach the end of the topic ({held} messages)")
    return held


def kills(env, n_events, n_kills, outbox_config=None, bootstrap=None, topic=TOPIC,
          midway=None):
    """n_events through both relays while they are SIGKILLed n_kills times at random
    (midway(), when given, runs after half the kills: a broker restart)."""
    pg = env.pg
    bootstrap = bootstrap or env.broker.bootstrap
    outbox = env.relay(outbox_config, name="outbox")
    inbox = env.relay(inbox_config(env, bootstrap=bootstrap, topic=topic), name="inbox",
                      command="inbox")
    outbox.start()
    inbox.start()
    done, took = kill_while_publishing(pg, outbox, inbox, n_events, n_kills, 14, midway=midway)
    time.sleep(1.0)
    held = check_inbox(env, n_events, bootstrap, topic)
    h.log(f"inbox: {n_events} events, outbox relay SIGKILLed {done['outbox']} and inbox relay "
          f"{done['inbox']} times: the topic held {held} messages ({held - n_events} "
          f"duplicates from the outbox side), the inbox {n_events} rows, 0 duplicates, "
          f"per-key order kept; {took:.1f}s")
    return outbox, inbox


def throughput(env, outbox, inbox, first, n_events):
    """Stop the inbox, let a backlog gather in the topic, time its drain."""
    pg = env.pg
    rc, _ = inbox.stop()
    h.check(rc == 0, f"inbox exit {rc} on SIGTERM")
    before = watermarks(env.broker.bootstrap)
    pg.psql(h.insert_sql(first, n_events // 500, 500))
    h.wait_for(lambda: watermarks(env.broker.bootstrap) >= before + n_events, 120, "the backlog in the topic")
    start = inbox_count(pg)
    target = start + n_events
    t_start = time.time()
    inbox.start()
    h.wait_for(lambda: inbox_count(pg) > start, 60, "the first events in the inbox",
               interval=0.02)
    t0 = time.time()
    h.wait_for(lambda: inbox_count(pg) >= target, 120, "the backlog in the inbox",
               interval=0.02)
    took = time.time() - t0
    h.log(f"inbox: drained a backlog of {n_events} events at {n_events / took:,.0f} events/s "
          f"({took:.2f}s from the first row; start-up and group join took "
          f"{t0 - t_start:.1f}s)")
    return first + n_events


def poison(env, inbox, first):
    pg = env.pg
    # A worker waiting as docs/consumers.md says: LISTEN, woken by the relay's batch.
    listener = subprocess.Popen(["psql", "-X", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                                 "shipping", "-d", "shipping"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    listener.stdin.write("LISTEN outbox_relay_inbox;\n")
    listener.stdin.flush()
    time.sleep(0.3)
    p = confluent_kafka.Producer({"bootstrap.servers": env.broker.bootstrap})
    good = {"specversion": "1.0", "id": f"structured-{first}", "source": "/test",
            "type": "Poked", "data": {"n": first}}
    msgs = [
        (b"garbage-key", b"not an event at all", None),
        (b"k", b"{}", [("ce_id", b"no-type"), ("ce_source", b"/s")]),
        (b"k", b"{}", [("ce_id", b"bad-time"), ("ce_source", b"/s"), ("ce_type", b"T"),
                       ("ce_time", b"yesterday-ish")]),
        (b"k", json.dumps(good).encode(),
         [("content-type", b"application/cloudevents+json")]),
        (b"k", b"{}", [("ce_id", b"many"), ("ce_source", b"/s"), ("ce_type", b"T")] +
         [(f"h{i}", b"v") for i in range(70)]),
    ]
    for key, value, headers in msgs:
        p.produce(TOPIC, key=key, value=value, headers=headers, partition=0)
    h.check(p.flush(10) == 0, "the test producer could not deliver")
    pg.psql(h.insert_sql(first + 1, 1, 10))
    h.wait_for(lambda: int(pg.psql(
        "SELECT count(*) FROM public.inbox_dead_letter WHERE consumer = 'shipping'",
        db="shipping")) >= 4 and int(pg.psql(
            f"SELECT count(*) FROM public.inbox WHERE event_id = 'structured-{first}'",
            db="shipping")) == 1, 30, "the poison set aside and the envelope written")
    dead = [line.split("|") for line in pg.psql(
        "SELECT reason, error, coalesce(event_id, ''), encode(value, 'escape') FROM "
        "public.inbox_dead_letter WHERE consumer = 'shipping' ORDER BY \"offset\"",
        db="shipping").splitlines()]
    h.check([d[0] for d in dead] == ["not-an-event", "not-an-event", "refused",
                                     "not-an-event"], f"reasons {dead}")
    h.check("more than 64 headers" in dead[3][1], f"fourth dead letter {dead[3]}")
    kept = pg.psql("SELECT count(*) FROM public.inbox_dead_letter d, jsonb_object_keys("
                   "d.headers) WHERE d.error LIKE 'more than%'", db="shipping")
    h.check(kept == "73", f"the record of the 73-header message kept {kept} headers")
    h.check("no event id" in dead[0][1] and dead[0][3] == "not an event at all",
            f"first dead letter {dead[0]}")
    h.check("no ce_type header" in dead[1][1], f"second dead letter {dead[1]}")
    h.check(dead[2][2] == "bad-time" and "timestamp" in dead[2][1],
            f"third dead letter {dead[2]}")
    row = pg.psql(f"SELECT type, source, payload FROM public.inbox WHERE event_id = "
                  f"'structured-{first}'", db="shipping")
    h.check(row == f'Poked|/test|{{"n": {first}}}', f"the envelope's row {row!r}")
    h.wait_for(lambda: inbox_count(pg) >= int(pg.psql("SELECT count(*) FROM public.outbox"))
               + 1, 30, "the events after the poison")
    h.check(inbox.alive(), "the inbox relay stopped on poison")
    heard = listener.communicate("SELECT 1;\n", timeout=10)[0]
    h.check('notification "outbox_relay_inbox" with payload "shipping"' in heard,
            f"the LISTENing worker was not woken:\n{heard}")
    h.log("inbox: 3 messages that are not events (one with 73 headers) and 1 PostgreSQL "
          "refused set aside with "
          "their reasons; the structured envelope and the 10 events after them written; a "
          "LISTENing worker woken")




def db_outage(env, inbox, first):
    """The inbox database refuses the relay for a while: the batch is kept and retried,
    /readyz says so, and nothing is lost or doubled once it is back."""
    pg = env.pg
    before = inbox_count(pg)
    pg.psql("ALTER ROLE shipping NOLOGIN")
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'shipping'")
    pg.psql(h.insert_sql(first, 10, 100))
    h.wait_for(lambda: admin_get(inbox, "/readyz")[0] == 503, 30, "/readyz to say 503")
    status, body = admin_get(inbox, "/metrics")
    h.check("outbox_relay_inbox_database_up 0" in body, "database_up is not 0 in /metrics")
    time.sleep(3)
    h.check(inbox_count(pg) == before and inbox.alive(), "rows written while the database "
            "refused the relay, or the relay stopped")
    t0 = time.time()
    pg.psql("ALTER ROLE shipping LOGIN")
    h.wait_for(lambda: inbox_count(pg) >= before + 1000, 30, "the batch after the outage")
    took = time.time() - t0
    h.check(admin_get(inbox, "/readyz")[0] == 200, "/readyz after the outage")
    h.check(inbox_count(pg) == before + 1000, "rows doubled after the outage")
    h.log(f"inbox: the database refused the relay for 3 s: /readyz 503, database_up 0, "
          f"nothing written; all 1,000 events written {took:.1f}s after it was back, none "
          "twice")
    return first + 1000


def outage_at_assignment(env, inbox, first):
    """The database goes away and a rebalance (a second member joining) comes before it
    is back: the first inbox's new partitions wait inside the rebalance for their
    positions, its admin endpoint answering meanwhile; nothing is written, and
    everything once, after."""
    pg = env.pg
    before = inbox_count(pg)
    pg.psql("ALTER ROLE shipping NOLOGIN")
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'shipping'")
    second = env.relay(inbox_config(env), name="inbox-second", command="inbox").start()
    h.wait_for(lambda: "partitions wait for" in inbox.log_text(), 60,
               "the first inbox to wait for the database at its new assignment")
    t0 = time.time()
    codes = [admin_get(inbox, path)[0] for path in ("/healthz", "/readyz")]
    took = time.time() - t0
    _, metrics = admin_get(inbox, "/metrics")
    h.check(codes == [200, 503] and took < 2 and "outbox_relay_inbox_database_up 0" in metrics,
            f"the admin endpoint while the partitions wait: {codes} in {took:.1f}s")
    pg.psql(h.insert_sql(first, 5, 100))
    time.sleep(2)
    h.check(inbox_count(pg) == before, "rows written while the database refused the relay")
    pg.psql("ALTER ROLE shipping LOGIN")
    h.wait_for(lambda: inbox_count(pg) >= before + 500, 60, "the events after the outage")
    rc, _ = second.stop()
    h.check(rc == 0, f"the second inbox's exit {rc}")
    h.wait_for(lambda: admin_get(inbox, "/readyz")[0] == 200, 30, "/readyz 200 again")
    time.sleep(1)
    h.check(inbox_count(pg) == before + 500, "rows doubled after the outage")
    h.log(f"inbox: the database down at a rebalance: /healthz 200 and /readyz 503 answered "
          f"in {took:.2f}s while the partitions waited; all 500 events written after, none "
          "twice")
    return first + 500


def checks(env):
    pg = env.pg
    relay = env.relay(inbox_config(env), name="inbox-check", command="inbox")
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                        relay.cfg], capture_output=True, text=True, timeout=60)
    h.check(r.returncode == 0 and r.stdout.count("ok   ") == 5,
            f"check with the tables: exit {r.returncode}\n{r.stdout}{r.stderr}")
    # What the relay needs besides INSERT: retention's DELETE, the dead letters' sequence.
    for revoke, grant, says in (
            ("REVOKE DELETE ON public.inbox FROM shipping",
             "GRANT DELETE ON public.inbox TO shipping", "lacks the DELETE privilege"),
            ("REVOKE UPDATE ON public.inbox_position FROM shipping",
             "GRANT UPDATE ON public.inbox_position TO shipping", "lacks the UPDATE privilege"),
            ("REVOKE USAGE ON SEQUENCE public.inbox_dead_letter_id_seq FROM shipping",
             "GRANT USAGE ON SEQUENCE public.inbox_dead_letter_id_seq TO shipping",
             "may not use the sequence")):
        pg.psql(revoke, db="shipping")
        r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                            relay.cfg], capture_output=True, text=True, timeout=60)
        pg.psql(grant, db="shipping")
        h.check(r.returncode == 1 and says in r.stdout and r.stdout.count("ok   ") == 4,
                f"check after {revoke}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "status", "--json",
                        "-c", relay.cfg], capture_output=True, text=True, timeout=60)
    h.check(r.returncode == 0, f"status: exit {r.returncode}\n{r.stdout}{r.stderr}")
    st = json.loads(r.stdout)
    h.check(st["rows"] == inbox_count(pg) and st["pending"] == st["rows"] and
            st["dead_letters"] == 4 and len(st["partitions"]) == 4 and
            all(p["lag"] == 0 and p["end"] == p["position"] for p in st["partitions"]),
            f"status --json: {st}")
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "status", "-c",
                        relay.cfg], capture_output=True, text=True, timeout=60)
    h.check(r.returncode == 0 and r.stdout.count("lag 0") == 4 and
            f"{st['rows']} rows" in r.stdout, f"status: {r.stdout}{r.stderr}")
    bad = env.relay(inbox_config(env).replace("  retention: 7d", "  retention: 7d\n"
                                              "  table: public.nope").replace(
        "consumer: shipping", "consumer: nope"), name="inbox-nope", command="inbox")
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                        bad.cfg], capture_output=True, text=True, timeout=60)
    h.check(r.returncode == 1 and "FAIL inbox table" in r.stdout and "007_inbox.sql" in r.stdout,
            f"check without the table: exit {r.returncode}\n{r.stdout}{r.stderr}")
    t0 = time.time()
    bad.start()
    rc = bad.wait(60)
    log = bad.log_text()
    h.check(rc == 1 and "007_inbox.sql" in log and "nope" in log,
            f"inbox without its table: exit {rc}\n{log[-1500:]}")
    coop = env.relay(inbox_config(env).replace(
        "    heartbeat.interval.ms: 500", "    heartbeat.interval.ms: 500\n"
        "    partition.assignment.strategy: cooperative-sticky"), name="inbox-coop",
        command="inbox")
    coop.start()
    rc = coop.wait(30)
    h.check(rc == 1 and "eager protocol" in coop.log_text(),
            f"a cooperative strategy: exit {rc}\n{coop.log_text()[-800:]}")
    h.log(f"inbox: check passes with the tables and fails without; status shows every "
          f"partition at lag 0; the relay without its "
          f"table exits 1 after {time.time() - t0:.1f}s naming sql/007_inbox.sql")


def test(env):
    setup_shipping(env.pg)
    n = h.scaled(20000, 1000)
    outbox, inbox = kills(env, n, h.scaled(20, 4))
    nxt = throughput(env, outbox, inbox, n + 1, h.scaled(20000, 1000))
    poison(env, inbox, nxt)
    nxt = db_outage(env, inbox, nxt + 100)
    outage_at_assignment(env, inbox, nxt)
    checks(env)
    rc, _ = inbox.stop()
    h.check(rc == 0, f"inbox exit {rc}")


if __name__ == "__main__":
    h.main(test)

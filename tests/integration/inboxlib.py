"""What the inbox's tests share (test_inbox.py, test_inbox_nats.py, the real-Kafka
case): the shipping service's database, and reading the inbox's tables and admin
endpoint.  No broker client here: each test brings its own (in its own venv)."""

import os
import random
import signal
import time

import harness as h


def setup_shipping(pg):
    """The shipping service's database, with the inbox tables and a role of its own."""
    pg.psql("CREATE ROLE shipping LOGIN")
    pg.psql("CREATE DATABASE shipping OWNER shipping")
    for _ in range(2):  # idempotent
        pg.psql_file(os.path.join(h.ROOT, "sql", "007_inbox.sql"), db="shipping")
    pg.psql("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO shipping; "
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO shipping", db="shipping")


def inbox_count(pg):
    return int(pg.psql("SELECT count(*) FROM public.inbox WHERE consumer = 'shipping'",
                       db="shipping"))


def positions(pg):
    return int(pg.psql("SELECT coalesce(sum(next_offset), 0) FROM public.inbox_position "
                       "WHERE consumer = 'shipping'", db="shipping"))


def admin_get(relay, path):
    """(status, body) of GET path on the relay's admin endpoint."""
    import re
    import urllib.error
    import urllib.request
    port = re.findall(r"\(port (\d+)\)", relay.log_text())[-1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def kill_while_publishing(pg, outbox, inbox, n_events, n_kills, seed, pause=0.03,
                          midway=None):
    """Insert n_events outbox rows (100 per transaction, pause seconds between them)
    while SIGKILLing the outbox or the inbox relay, at random, n_kills times (midway(),
    when given, runs after half the kills: a broker restart); then wait for every event
    in the inbox.  Returns ({"outbox": kills, "inbox": kills}, seconds taken)."""
    sql = h.insert_sql(1, n_events // 100, 100).replace(
        "COMMIT;\n", f"COMMIT;\nSELECT pg_sleep({pause});\n")
    job, text = h.start_insert_job(pg, sql)
    job.stdin.write(text)
    job.stdin.close()
    rng = random.Random(seed)
    t0 = time.time()
    done = {"outbox": 0, "inbox": 0}
    for i in range(n_kills):
        time.sleep(rng.uniform(0.1, 0.6))
        name = rng.choice(["outbox", "inbox"])
        victim = outbox if name == "outbox" else inbox
        victim.signal(signal.SIGKILL)
        victim.wait(10)
        victim.start()
        done[name] += 1
        if midway and i == n_kills // 2:
            midway()
    h.check(job.wait(timeout=300) == 0, "insert job failed")
    h.wait_for(lambda: inbox_count(pg) >= n_events, 180,
               f"{n_events} events in the inbox (have {inbox_count(pg)})", interval=0.5)
    return done, time.time() - t0


def check_rows(pg, total, topic):
    """Every outbox row once in the inbox (total of them), each row's topic the one
    read, per-key order of arrival kept."""
    outbox = set(pg.psql("SELECT id FROM public.outbox").split())
    rows = [line.split("|") for line in pg.psql(
        "SELECT event_id, key, payload->>'n', topic FROM public.inbox "
        "WHERE consumer = 'shipping' ORDER BY seq", db="shipping").splitlines()]
    ids = [r[0] for r in rows]
    h.check(len(ids) == len(set(ids)), "an event is twice in the inbox")
    h.check(set(ids) == outbox and len(ids) == total,
            f"inbox holds {len(ids)} events, {len(set(ids) & outbox)} of the {len(outbox)} "
            "outbox rows")
    h.check(all(r[3] == topic for r in rows), f"a row's topic is not {topic}")
    last = {}
    for _, key, n, _ in rows:
        h.check(int(n) > last.get(key, -1), f"key {key}: event {n} arrived after "
                f"{last.get(key)}")
        last[key] = int(n)


def stranger_set_aside(pg, publish, header, first):
    """publish() puts a message that is not an event (value "not an event", a header
    named header with the value "elsewhere") on what the inbox reads; then one event
    (outbox row first) follows.  The event must be written and the stranger set aside
    as not-an-event, its record keeping the header's exact bytes (bytea hex text)."""
    before = inbox_count(pg)
    publish()
    pg.psql(h.insert_sql(first, 1, 1))
    h.wait_for(lambda: inbox_count(pg) == before + 1, 30, "the event after the stranger's")
    dead = pg.psql(f"SELECT reason, convert_from(value, 'UTF8'), headers->>'{header}' "
                   "FROM public.inbox_dead_letter WHERE consumer = 'shipping'",
                   db="shipping").splitlines()
    h.check(dead == ["not-an-event|not an event|\\x" + b"elsewhere".hex()],
            f"dead letters {dead}")


def broker_kills(env, broker, server, outbox_cfg, inbox_cfg, n_events, n_kills, seed, restart,
                 check):
    """The outbox relay (outbox_cfg) feeding the inbox relay (inbox_cfg) through broker
    while both are SIGKILLed n_kills times at random and the broker's server is
    restarted (restart(), unless None) halfway; the stream grows slowly enough for the kills to land
    while it does.  check(n_events) checks the inbox and returns how many messages the
    broker held.  Returns the two relays, running."""
    pg = env.pg
    outbox = env.relay(outbox_cfg, name="outbox").start()
    inbox = env.relay(inbox_cfg, name="inbox", command="inbox").start()
    done, took = kill_while_publishing(pg, outbox, inbox, n_events, n_kills, seed, pause=0.08,
                                       midway=restart)
    time.sleep(1.0)
    held = check(n_events)
    h.log(f"inbox from {broker}: {n_events} events, outbox relay SIGKILLed {done['outbox']} "
          f"and inbox relay {done['inbox']} times, {server} "
          f"{'restarted once' if restart else 'not restarted'}: "
          f"the stream held {held} messages ({held - n_events} duplicates from the outbox "
          f"side), the inbox {n_events} rows, 0 duplicates, per-key order kept; {took:.1f}s")
    return outbox, inbox

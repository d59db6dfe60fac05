"""Polling mode never skips a row, whatever the commit order.  One connection takes
a seq value and keeps its transaction open while eight others commit; the relay
polls in between and publishes the eight; when the first commits, its row is
published too.  A naive "seq > last_seq" cursor, run over the same commits, loses
that row -- the failure this technique exists to avoid, so this test can fail.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def polling_config(pg, broker, extra=""):
    return f"""admin:
  listen: "127.0.0.1:0"
postgres:
  dsn: "{pg.dsn(user='outbox_relay')}"
  mode: polling
  retry_interval: 1s
outbox:
  table: public.outbox
kafka:
  brokers: "{broker.bootstrap}"
  topic: "outbox.event.{{aggregatetype}}"
  properties:
    linger.ms: 5
polling:
  interval: 200ms
{extra}"""


def insert_one(n, key="order-1"):
    return ("INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload) VALUES "
            f"('order', '{key}', 'OrderCreated', jsonb_build_object('n', {n}));")


def test(env):
    pg = env.pg
    consumer = env.consumer()
    relay = env.relay(polling_config(pg, env.broker)).start()
    h.wait_for(lambda: "this instance publishes" in relay.log_text(), 30, "the poller to start")

    # The naive cursor reads a copy of every row (the relay deletes what it publishes).
    # Set up before the long transaction, whose lock would block CREATE TRIGGER.
    pg.psql("CREATE TABLE naive_copy (seq bigint, payload jsonb)")
    pg.psql("CREATE FUNCTION copy_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO naive_copy VALUES (NEW.seq, NEW.payload); RETURN NEW; END $$")
    pg.psql("CREATE TRIGGER copy_row AFTER INSERT ON public.outbox FOR EACH ROW "
            "EXECUTE FUNCTION copy_row()")

    # The long transaction: takes seq first, commits last.
    slow = subprocess.Popen(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                             "-p", str(pg.port), "-U", "postgres", "-d", "app"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    slow.stdin.write("SET application_name = 'slow';\nBEGIN;\n" + insert_one(0, "order-slow") +
                     "\n")
    slow.stdin.flush()
    h.wait_for(lambda: pg.psql("SELECT state FROM pg_stat_activity WHERE application_name = "
                               "'slow'") == "idle in transaction", 30,
               "the slow transaction to insert its row")
    slow_seq = int(pg.psql("SELECT last_value FROM public.outbox_seq_seq"))

    naive_seen, last_seq = [], 0

    def naive_poll():
        nonlocal last_seq
        # The classic cursor: remember the highest seq seen, read only above it.
        # (Reads a copy of published rows: the relay deletes what it publishes.)
        rows = pg.psql(f"SELECT seq, payload->>'n' FROM naive_copy WHERE seq > {last_seq} "
                       "ORDER BY seq")
        for line in rows.splitlines():
            s, n = line.split("|")
            naive_seen.append(int(n))
            last_seq = max(last_seq, int(s))

    for n in range(1, 9):
        pg.psql(insert_one(n))
        naive_poll()
        time.sleep(0.1)
    consumer.wait_count(8, 30)
    time.sleep(0.5)  # the relay polls again while the slow transaction is still open
    h.check(len(consumer.poll() and consumer.messages) == 8, "published something uncommitted")

    slow.stdin.write("COMMIT;\n")
    slow.stdin.close()
    slow.wait(10)
    naive_poll()
    consumer.wait_count(9, 30)
    consumer.wait_quiet(1.0)
    ns = sorted(int(h.json.loads(m["value"])["n"]) for m in consumer.messages)
    h.check(ns == list(range(9)), f"relay published {ns}")
    h.check(0 not in naive_seen and len(naive_seen) == 8,
            f"the naive cursor should lose the late row (seq {slow_seq}); it saw {naive_seen}")
    h.check(pg.psql("SELECT count(*) FROM public.outbox") == "0", "published rows not deleted")
    h.log(f"relay published all 9 rows including the late commit (seq {slow_seq}); the naive "
          f"'seq > last_seq' cursor saw {len(naive_seen)} and lost it")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test)

"""The relay against a real Apache Kafka cluster: three KRaft nodes on loopback
(tools/kafka_cluster.py: replication factor 3, min.insync.replicas 2, auto-creation
off), a real PostgreSQL 15, and a consumer that shares no code with the relay
(confluent-kafka from PyPI, isolation.level=read_committed), installed by this test
into a virtual environment of its own.

Cases, each checked with the four invariants of tests/integration/harness.py
(check_stream: no loss, checkpoint never ahead of acknowledgements, bounded
duplicates, per-key order):

  1. 10,000 rows in 100-row transactions: exactly once, keys and headers as rendered,
     and each key in the partition Kafka's Java client would choose (murmur2);
  2. the relay SIGKILLed 5 times mid-stream;
  3. the broker leading most partitions SIGKILLed mid-stream, then started again;
  4. two of the three brokers down for 20 s (NOT_ENOUGH_REPLICAS, no leader): the
     slot does not pass the first stuck transaction, then everything arrives;
  5. a broker SIGSTOPped for longer than request.timeout.ms, then resumed;
  6. a topic that does not exist, auto-creation being off: a clear error naming the
     topic, nothing lost, and the event delivered once the topic is created;
  7. the crash soak, short (tests/realkafka/soak.py; the long one is
     bench/soak_realkafka.py): 100,000 events from 4 concurrent writers (4,000/s, so
     that every kill lands mid-stream) while the relay is SIGKILLed every 1-3 s, at
     least 10 times; every event id accounted for;
  8. the inbox end to end: the outbox relay publishes 20,000 events, the inbox relay
     writes them into another database; both SIGKILLed 20 times at random and the
     broker leading most partitions restarted once: every event once in the inbox
     table, in per-key order (tests/integration/test_inbox.py).

Run by hand (label realkafka):  python3 tests/realkafka/test_realkafka.py --build-dir build
"""

import random
import signal
import time

import soak
import test_inbox

from realkafka import (KafkaCluster, KafkaConsumer, h, java_partition, paced,  # noqa: I001
                       start_streaming, stop_relay)

PARTITIONS = 4


def fresh_case(env, kafka, name):
    """A topic of its own, and an outbox table emptied (deletes publish nothing), so that
    each case's checks see its own rows and messages only.  Returns the topic."""
    topic = f"outbox.{name}.order"
    kafka.create_topic(topic, PARTITIONS)
    env.pg.psql("DELETE FROM public.outbox")
    return topic


def relay_config(env, kafka, name):
    return h.relay_config(env.pg, kafka, topic=f"outbox.{name}.{{aggregatetype}}")


def exact_once(env, kafka):
    """Case 1: 10,000 rows, exactly once, in the Java client's partitions."""
    pg = env.pg
    consumer = KafkaConsumer(kafka.bootstrap, [fresh_case(env, kafka, "event")])
    relay = env.relay(relay_config(env, kafka, "event"))
    start_streaming(env, relay)
    t0 = time.time()
    pg.psql(h.insert_sql(1, 100, 100))
    consumer.wait_distinct(10000, 120)
    took = time.time() - t0
    consumer.wait_quiet(1.0)
    msgs = consumer.snapshot()
    h.check_exact(pg, msgs, 10000)
    wrong = [m for m in msgs if m["partition"] != java_partition(m["key_bytes"], PARTITIONS)]
    h.check(not wrong, f"{len(wrong)} messages not in the Java client's partition, e.g. "
            f"key {wrong[0]['key'] if wrong else ''}")
    for m in msgs[:50]:
        hd = m["headers"]
        h.check(hd.get("ce_type") == "OrderCreated" and hd.get("ce_subject") == m["key"] and
                hd.get("ce_pglsn") and hd.get("ce_specversion") == "1.0", f"headers {hd}")
    stop_relay(relay)
    consumer.stop()
    h.log(f"real kafka: 10,000 rows in 100-row transactions delivered once each in "
          f"{took:.1f}s, every key in its murmur2 partition")


def relay_kills(env, kafka, first):
    """Case 2: the relay SIGKILLed 5 times mid-stream."""
    pg = env.pg
    consumer = KafkaConsumer(kafka.bootstrap, [fresh_case(env, kafka, "kills")])
    relay = env.relay(relay_config(env, kafka, "kills"), name="relay-kills")
    ntx, per_tx = 150, 100
    job_text = h.start_insert_job(pg, paced(h.insert_sql(first, ntx, per_tx), 0.02))
    job = job_text[0]
    start_streaming(env, relay, job_text)
    confirmed, before, rng = [], [], random.Random(11)
    for k in range(5):
        # New events, not replays of old ones: a kill after every 2,000 distinct events.
        h.wait_for(lambda: consumer.distinct() >= (k + 1) * 2000, 60, "progress before a kill")
        time.sleep(rng.uniform(0, 0.3))
        relay.signal(signal.SIGKILL)
        relay.wait(10)
        h.wait_for(lambda: not pg.slot()[1], 30, "the slot to be released")
        consumer.wait_quiet(1.5)
        confirmed.append(pg.slot()[0])
        before.append([m["headers"]["ce_id"] for m in consumer.snapshot()])
        relay.start()
        h.wait_for(lambda: pg.slot()[1], 30, "the relay to stream again")
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    consumer.wait_distinct(total, 120)
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.snapshot(), confirmed, before)
    stop_relay(relay)
    consumer.stop()
    h.log(f"real kafka, relay SIGKILLed 5 times: {rows} rows, 0 lost, {dups} duplicates, "
          "all after the confirmed positions")
    return first + ntx * per_tx


def leader_kill(env, kafka, first):
    """Case 3: the broker leading most partitions SIGKILLed mid-stream, then restarted."""
    pg = env.pg
    topic = fresh_case(env, kafka, "leader")
    consumer = KafkaConsumer(kafka.bootstrap, [topic])
    relay = env.relay(relay_config(env, kafka, "leader"), name="relay-leader")
    ntx, per_tx = 100, 100
    job_text = h.start_insert_job(pg, paced(h.insert_sql(first, ntx, per_tx), 0.02))
    job = job_text[0]
    start_streaming(env, relay, job_text)
    already = consumer.poll()
    h.wait_for(lambda: consumer.poll() >= already + 2000, 60, "progress before the kill")
    leaders = [lead for lead, _ in kafka.describe(topic).values()]
    victim = max(set(leaders), key=leaders.count)
    t0 = time.time()
    kafka.kill(victim)
    h.check(relay.alive(), "the relay exited when a broker died")
    h.wait_for(lambda: victim not in [lead for lead, _ in kafka.describe(topic).values()], 60,
               "the leaders to move")
    moved = time.time() - t0
    kafka.start(victim)
    kafka.wait_ready([victim])
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    consumer.wait_distinct(total, 180)
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.snapshot())
    h.check(relay.alive(), "the relay exited")
    stop_relay(relay)
    consumer.stop()
    h.log(f"real kafka, leader of {leaders.count(victim)} of {PARTITIONS} partitions "
          f"(node {victim}) SIGKILLed and restarted: leaders moved in {moved:.1f}s, {rows} "
          f"rows, 0 lost, {dups} duplicates")


def two_down(env, kafka, first):
    """Case 4: two of three brokers SIGKILLed for 20 s, then started again."""
    pg = env.pg
    topic = fresh_case(env, kafka, "minisr")
    consumer = KafkaConsumer(kafka.bootstrap, [topic])
    relay = env.relay(relay_config(env, kafka, "minisr"), name="relay-minisr")
    start_streaming(env, relay)
    pg.psql(h.insert_sql(first, 20, 100))
    consumer.wait_distinct(2000, 60, "the rows before the outage")
    slot_before = pg.slot()[0]
    t0 = time.time()
    kafka.kill(2)
    kafka.kill(3)
    # The first transaction of the outage alone, then the WAL position past its commit:
    # the slot may confirm up to its start, never past it.
    pg.psql(h.insert_sql(first + 2000, 1, 100))
    stuck_after = pg.current_lsn()
    job, text = h.start_insert_job(
        pg, paced(h.insert_sql(first + 2100, 29, 100), 0.2))
    job.stdin.write(text)
    job.stdin.close()
    worst = 0
    while time.time() - t0 < 20:
        worst = max(worst, pg.slot()[0])
        h.check(worst < stuck_after, f"the slot moved to {worst:X} past the first transaction "
                f"of the outage (before {stuck_after:X}) with two of three brokers down")
        h.check(relay.alive(), "the relay exited during the outage")
        time.sleep(0.5)
    held = consumer.distinct()
    kafka.start(2)
    kafka.start(3)
    kafka.wait_ready([2, 3])
    t_up = time.time()
    h.check(job.wait(timeout=60) == 0, "insert job failed")
    consumer.wait_distinct(5000, 180, "every row after the brokers came back")
    recovered = time.time() - t_up
    consumer.wait_quiet(1.0)
    # A replay, if the producer had to be rebuilt, starts at or after the slot's position.
    rows, distinct, dups = h.check_stream(pg, consumer.snapshot(), dup_bounds_only=[slot_before])
    stop_relay(relay)
    consumer.stop()
    h.log(f"real kafka, two of three brokers down for 20 s: the slot stayed before the first "
          f"stuck transaction ({held - 2000} of 3,000 outage rows published meanwhile), every "
          f"row delivered {recovered:.1f}s after the brokers were back: {rows} rows, 0 lost, "
          f"{dups} duplicates")


def broker_paused(env, kafka, first):
    """Case 5: the leader of most partitions SIGSTOPped past request.timeout.ms."""
    pg = env.pg
    topic = fresh_case(env, kafka, "paused")
    consumer = KafkaConsumer(kafka.bootstrap, [topic])
    cfg = h.relay_config(pg, kafka, topic="outbox.paused.{aggregatetype}",
                         kafka_props="    request.timeout.ms: 5000\n")
    relay = env.relay(cfg, name="relay-paused")
    start_streaming(env, relay)
    pg.psql(h.insert_sql(first, 10, 100))
    consumer.wait_distinct(1000, 60, "the rows before the pause")
    slot_before = pg.slot()[0]
    leaders = [lead for lead, _ in kafka.describe(topic).values()]
    victim = max(set(leaders), key=leaders.count)
    job, text = h.start_insert_job(
        pg, paced(h.insert_sql(first + 1000, 40, 100), 0.1))
    job.stdin.write(text)
    job.stdin.close()
    kafka.pause(victim)
    time.sleep(12)  # past request.timeout.ms (5 s) and the broker's session timeout (9 s)
    kafka.resume(victim)
    t_resume = time.time()
    h.check(job.wait(timeout=60) == 0, "insert job failed")
    consumer.wait_distinct(5000, 180, "every row after the broker resumed")
    took = time.time() - t_resume
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.snapshot(), dup_bounds_only=[slot_before])
    h.check(relay.alive(), "the relay exited")
    stop_relay(relay)
    consumer.stop()
    h.log(f"real kafka, node {victim} (leader of {leaders.count(victim)} partitions) SIGSTOPped "
          f"12 s with request.timeout.ms 5 s: {rows} rows, 0 lost, {dups} duplicates, all "
          f"delivered {took:.1f}s after SIGCONT")


def missing_topic(env, kafka, first):
    """Case 6: a topic that does not exist, with auto-creation off."""
    pg = env.pg
    env.pg.psql("DELETE FROM public.outbox")
    missing = "outbox.missing.order"
    cfg = h.relay_config(pg, kafka, topic="outbox.missing.{aggregatetype}",
                         kafka_props="    topic.metadata.propagation.max.ms: 2000\n")
    relay = env.relay(cfg, name="relay-missing")
    start_streaming(env, relay)
    pg.psql(h.insert_sql(first, 1, 1))
    after = pg.current_lsn()
    h.wait_for(lambda: f'topic "{missing}" failed: the topic does not exist' in relay.log_text(),
               60, "the error naming the missing topic")
    h.check(relay.alive(), "the relay exited at a missing topic")
    h.check(pg.slot()[0] < after, "the slot moved past an event that was never delivered")
    kafka.create_topic(missing, PARTITIONS)
    consumer = KafkaConsumer(kafka.bootstrap, [missing])
    consumer.wait_distinct(1, 120, "the event once its topic exists")
    consumer.wait_quiet(1.0)
    h.check_exact(pg, [dict(m, topic="outbox.event.order") for m in consumer.snapshot()], 1)
    stop_relay(relay)
    consumer.stop()
    line = [ln for ln in relay.log_text().splitlines() if "does not exist" in ln][0]
    h.log(f"real kafka, missing topic: {line.split(' WARN ', 1)[-1][:160]}; delivered once "
          "after the topic was created")


def inbox_end_to_end(env, kafka):
    """Case 8: the outbox relay feeding the inbox relay (tests/integration/test_inbox.py)
    through the real cluster: 20,000 events, both relays SIGKILLed 20 times at random,
    and the broker leading most partitions SIGKILLed and restarted halfway."""
    topic = fresh_case(env, kafka, "inbox")
    test_inbox.setup_shipping(env.pg)
    restarted = {}

    def broker_restart():
        leaders = [lead for lead, _ in kafka.describe(topic).values()]
        victim = max(set(leaders), key=leaders.count)
        kafka.kill(victim)
        time.sleep(2)
        kafka.start(victim)
        kafka.wait_ready([victim])
        restarted["node"] = victim

    n = 20000
    outbox, inbox = test_inbox.kills(env, n, 20, relay_config(env, kafka, "inbox"),
                                     kafka.bootstrap, topic, midway=broker_restart)
    h.check(restarted, "the broker was not restarted")
    stop_relay(outbox)
    stop_relay(inbox)
    h.log(f"real kafka, inbox: {n} events through both relays, 20 SIGKILLs and broker "
          f"{restarted['node']} SIGKILLed and restarted: every event once in the inbox table")


def test(env):
    with KafkaCluster(env.tmp, log=h.log) as kafka:
        exact_once(env, kafka)
        nxt = relay_kills(env, kafka, 10001)
        leader_kill(env, kafka, nxt)
        two_down(env, kafka, nxt + 10000)
        broker_paused(env, kafka, nxt + 15000)
        missing_topic(env, kafka, nxt + 20000)
        r = soak.run(env, kafka, events=100000, kills=10, interval=(1.0, 3.0), rate=4000)
        h.log(f"real kafka soak (short): {r['events']:,} events from {r['writers']} writers, "
              f"{r['kills']} SIGKILLs in {r['seconds']:.0f}s: {r['distinct']:,} distinct "
              f"delivered, {r['lost']} lost, {r['duplicates']:,} duplicates, relay peak RSS "
              f"{r['relay_peak_rss_kb'] / 1024:.1f} MB")
        inbox_end_to_end(env, kafka)


if __name__ == "__main__":
    h.main(test, topics=())

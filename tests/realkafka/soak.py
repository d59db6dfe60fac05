"""soak.py -- the crash soak on real Kafka: concurrent writers, the relay SIGKILLed at
random every few seconds, and every event id accounted for by an independent consumer.

Run by bench/soak_realkafka.py (by hand: millions of events, dozens of kills) and by
tests/realkafka/test_realkafka.py (a short version in CI).  The evidence is kept whole:
a real Kafka cluster keeps every message (the dev broker keeps only the newest few MB
of a partition, so a consumer that falls behind there loses evidence).

What is checked, over everything consumed:
  - no loss: the set of event ids consumed equals the set of outbox rows, and every
    payload counter n written was read;
  - checkpoint never ahead of acknowledgements: after each kill, the slot's confirmed
    position and each partition's high watermark (what Kafka had acknowledged by then,
    acks=all) are read; every event committed before that position must have a
    delivery below that watermark;
  - bounded duplicates: every redelivered event lies at or after some kill's confirmed
    position, and is the same event (same position, same value);
  - per-key order: per key (keys belong to one writer, whose counter grows in commit
    order), in partition order, the counter only grows, except for redeliveries.

Memory: one small tuple per consumed message (about 250 bytes), not the message.  The
consumer is done when it has read up to each partition's high watermark, read after
the relay stopped -- never "when it went quiet": with millions of tuples a pause of the
Python process looks like quiet (the collector is off while the soak runs: the
tuples hold no cycles).
"""

import gc
import json
import random
import signal
import threading
import time

from realkafka import h, start_streaming

from confluent_kafka import Consumer, TopicPartition

KEYS_PER_WRITER = 64


class LeanConsumer:
    """A read_committed consumer keeping (id, n, key, partition, offset, lsn) per message."""

    def __init__(self, bootstrap, topic):
        self.rows = []
        self.ends = {}  # partition -> offset after the last message read
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-{time.time()}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "isolation.level": "read_committed", "log_level": 2,
                           "fetch.max.bytes": 64 << 20})
        self.c.subscribe([topic])
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.is_set():
            batch = self.c.consume(10000, 0.2)
            got, ends = [], {}
            for m in batch:
                if m.error():
                    continue
                hd = dict(m.headers() or [])
                v = m.value()
                n = int(v[6:-1]) if v.startswith(b'{"n": ') else json.loads(v)["n"]
                got.append((hd["ce_id"].decode(), n, m.key().decode(), m.partition(),
                            m.offset(), h.lsn_to_int(hd["ce_pglsn"].decode())))
                ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)
            if got:
                with self.lock:
                    self.rows.extend(got)
                    for p, e in ends.items():
                        self.ends[p] = max(self.ends.get(p, 0), e)
        self.c.close()

    def count(self):
        with self.lock:
            return len(self.rows)

    def wait_caught_up(self, watermarks, timeout=1800):
        """Wait until every partition was read up to its watermark."""
        def done():
            with self.lock:
                return all(self.ends.get(p, 0) >= hw for p, hw in enumerate(watermarks))
        h.wait_for(done, timeout, f"the consumer to read up to {watermarks}", interval=1)
        return self.count()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(30)


def high_watermarks(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-watermarks",
                  "log_level": 2})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(partitions)]
    finally:
        c.close()


def writer_sql(w, events, rng, max_tx, rate=None):
    """One writer's script: its events in transactions of 1..max_tx rows; payload n =
    w * 10^9 + i grows in commit order, keys w<w>-<k> are the writer's own.  With rate
    (events per second, this writer's share), a pause after each commit paces it."""
    out, i = [], 0
    while i < events:
        size = min(events - i, rng.randint(1, max_tx))
        lo, hi = w * 10**9 + i, w * 10**9 + i + size - 1
        out.append("BEGIN;\nINSERT INTO public.outbox (aggregatetype, aggregateid, type, "
                   f"payload) SELECT 'order', 'w{w}-' || (g % {KEYS_PER_WRITER}), "
                   f"'OrderCreated', jsonb_build_object('n', g) FROM generate_series({lo}, "
                   f"{hi}) g;\nCOMMIT;\n")
        if rate:
            out.append(f"SELECT pg_sleep({size / rate:.4f});\n")
        i += size
    return "".join(out)


def run(env, kafka, events, kills, writers=4, max_tx=200, interval=(1.0, 4.0), rate=None,
        seed=7, topic="outbox.soak.order", partitions=4, log=h.log):
    """The soak: events from concurrent writers (all together at most rate events/s, or
    as fast as they can), the relay SIGKILLed every interval seconds until the writers
    are done and at least kills times.  Returns a dict of what was measured; raises
    TestFailure on any violated invariant."""
    pg, rng = env.pg, random.Random(seed)
    gc.disable()
    kafka.create_topic(topic, partitions)
    pg.psql("DELETE FROM public.outbox")
    consumer = LeanConsumer(kafka.bootstrap, topic)
    cfg = h.relay_config(pg, kafka, topic="outbox.soak.{aggregatetype}")
    relay = env.relay(cfg, name="relay-soak")
    start_streaming(env, relay)
    per = [events // writers + (1 if w < events % writers else 0) for w in range(writers)]
    jobs = []
    t0 = time.time()
    for w in range(writers):
        job, text = h.start_insert_job(pg, writer_sql(w + 1, per[w], rng, max_tx,
                                                       rate / writers if rate else None))
        jobs.append(job)
        h.feed(job, text)
    stops = []  # (confirmed LSN, [high watermark per partition])
    down, peak_rss = [], 0
    while len(stops) < kills or any(j.poll() is None for j in jobs):
        time.sleep(rng.uniform(*interval))
        peak_rss = max(peak_rss, h.rss_kb(relay.proc.pid, "VmHWM"))
        relay.signal(signal.SIGKILL)
        relay.wait(30)
        t_kill = time.time()
        h.wait_for(lambda: not pg.slot()[1], 30, "the slot to be released")
        stops.append((pg.slot()[0], high_watermarks(kafka.bootstrap, topic, partitions)))
        relay.start()
        h.wait_for(lambda: pg.slot()[1], 60, "the relay to stream again")
        down.append(time.time() - t_kill)
        if len(stops) % 10 == 0:
            log(f"soak: {len(stops)} kills, {consumer.count():,} messages consumed")
    for j in jobs:
        h.check(j.wait() == 0, f"a writer failed: {j.stderr.read()[-500:]}")
    total = int(pg.psql("SELECT count(*) FROM public.outbox"))
    h.check(total == events, f"{total} rows written, want {events}")
    end = pg.current_lsn()
    h.wait_for(lambda: pg.slot()[0] >= end, 900, "the slot to pass every event", interval=1)
    wall = time.time() - t0
    peak_rss = max(peak_rss, h.rss_kb(relay.proc.pid, "VmHWM"))
    relay_rc, _ = relay.stop()
    h.check(relay_rc == 0, f"the relay exited with {relay_rc} at SIGTERM")
    consumer.wait_caught_up(high_watermarks(kafka.bootstrap, topic, partitions))
    consumer.stop()
    result = verify(pg, consumer.rows, stops, events)
    gc.enable()
    result.update(events=events, kills=len(stops), writers=writers, seconds=wall,
                  relay_peak_rss_kb=peak_rss, restart_s_max=max(down), messages=len(consumer.rows))
    return result


def verify(pg, rows, stops, events):
    """The four invariants over the consumed tuples; returns the counts."""
    ids = set(pg.psql("SELECT id FROM public.outbox").split())
    h.check(len(ids) == events, f"{len(ids)} ids in the table, want {events}")
    first = {}      # id -> (n, key, lsn, partition, first offset)
    for rid, n, key, part, off, lsn in rows:
        f = first.get(rid)
        if f is None:
            first[rid] = (n, key, lsn, part, off)
        else:
            h.check(f[:3] == (n, key, lsn), f"event {rid} redelivered as another event")
            if off < f[4]:
                first[rid] = (n, key, lsn, part, off)
    missing = ids - first.keys()
    h.check(not missing, f"{len(missing)} events never arrived, e.g. {sorted(missing)[:3]}")
    h.check(first.keys() <= ids, "messages for rows that do not exist")
    ns = {f[0] for f in first.values()}
    h.check(len(ns) == events, f"{len(ns)} distinct counters for {events} events")
    # Checkpoint safety, stop by stop.
    for k, (confirmed, hw) in enumerate(stops):
        late = [rid for rid, (n, key, lsn, part, off) in first.items()
                if lsn < confirmed and off >= hw[part]]
        h.check(not late, f"kill {k + 1}: {len(late)} events before the confirmed position "
                f"{confirmed:X} were not yet acknowledged by Kafka, e.g. {late[:3]}")
    # Bounded duplicates.
    dups = len(rows) - len(first)
    low = min((c for c, _ in stops), default=None)
    seen = set()
    for rid, n, key, part, off, lsn in rows:
        if rid in seen:
            h.check(low is not None and lsn >= low,
                    f"event {rid} redelivered although confirmed before any kill")
        seen.add(rid)
    # Per-key order, in partition order, a replayed suffix allowed.
    last, seen = {}, set()
    for rid, n, key, part, off, lsn in sorted(rows, key=lambda r: (r[3], r[4])):
        if n <= last.get(key, -1):
            h.check(rid in seen, f"key {key}: n={n} after n={last[key]} (not a redelivery)")
        else:
            last[key] = n
        seen.add(rid)
    parts = {}
    for rid, n, key, part, off, lsn in rows:
        parts.setdefault(key, set()).add(part)
    spread = [k for k, p in parts.items() if len(p) > 1]
    h.check(not spread, f"keys spread over partitions: {spread[:3]}")
    return {"distinct": len(first), "duplicates": dups, "lost": len(missing)}

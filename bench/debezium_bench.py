#!/usr/bin/env python3
"""debezium_bench.py -- the relay against Debezium, on a real Apache Kafka cluster, in
one run on one machine.  (Run by hand, not a test; the numbers go to
docs/performance.md, "Against Debezium, on real Kafka".)

    python3 bench/debezium_bench.py --build-dir build-release [--rows-100 200000]
        [--rows-1 50000] [--rate 5000] [--seconds 30] [--warmup 5] [--only drain,steady]
        [--json results.json]

Servers as the tests start them: a throwaway PostgreSQL 15, a three-node KRaft cluster
(tools/kafka_cluster.py: replication factor 3, min.insync.replicas 2, acks=all from
both producers), the dev broker, and Debezium 3.6.1.Final on Kafka Connect 4.1.1
standalone (tools/debezium_connect.py: the outbox event router as its documentation
shows, JSON payload expanded) with the throughput settings Debezium's documentation
names: max.batch.size 8192, max.queue.size 32768, poll.interval.ms 100, and for the
worker's producer linger.ms 5, batch.size 256 KiB.  The relay runs with its shipped
defaults (linger.ms 5), format debezium, so both write the same messages.

drain    N outbox rows written first (100-row transactions, then 1-row transactions),
         then consumed from identical slots (copies of one slot made before the rows
         were written), one system at a time, each to a topic of its own:
           - Debezium on real Kafka;
           - the relay on real Kafka;
           - the relay on the dev broker.
         Timed from the process's start until the topic's high watermarks add up to N
         (acknowledged by Kafka); events/s from the first message to the last, and
         from the start; CPU seconds per 100,000 events (process, start to end) and
         peak RSS.
steady   a paced writer (one 50-row INSERT every 10 ms: 5,000 events/s) for --seconds
         after --warmup seconds (5) of the same load, the system already streaming;
         commit-to-acknowledgement latency p50/p99/max = Kafka's LogAppendTime of each
         message (the topic is configured so) minus clock_timestamp() at the insert,
         both on this machine's clock; CPU (% of one core) over the window and peak
         RSS.
"""

import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "realkafka"))
sys.path.insert(0, HERE)

from realkafka import KafkaCluster, h  # noqa: E402  (re-executes in its venv)
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
import perf_bench as pb  # noqa: E402
from debezium_connect import DebeziumConnect  # noqa: E402

PARTITIONS = 4
DEBEZIUM_THROUGHPUT = {"max.batch.size": "8192", "max.queue.size": "32768",
                       "poll.interval.ms": "100"}
DEBEZIUM_PRODUCER = {"producer.linger.ms": "5", "producer.batch.size": "262144"}
STEADY_SELECT = ("SELECT 'order', 'order-' || (g % 1000), 'OrderCreated', "
                 "jsonb_build_object('n', g, 't', "
                 "extract(epoch FROM clock_timestamp()) * 1000) FROM generate_series({lo}, {hi}) g")


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows-100", type=int, default=200000)
    p.add_argument("--rows-1", type=int, default=50000)
    p.add_argument("--rate", type=int, default=5000)
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5, help="seconds of load before measuring")
    p.add_argument("--only", default="drain,steady", help="drain, steady or both")
    p.add_argument("--json")
    return p.parse_known_args()[0]


class Watermarks:
    """Sum of a topic's high watermarks: what Kafka has acknowledged."""

    def __init__(self, bootstrap, topic):
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-hw",
                           "log_level": 2})
        self.tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    def total(self):
        return sum(self.c.get_watermark_offsets(tp, timeout=10)[1] for tp in self.tps)

    def close(self):
        self.c.close()


def relay_config(pg, bootstrap, slot, topic):
    return f"""admin:
  listen: "127.0.0.1:0"
postgres:
  dsn: "{pg.dsn(user='outbox_relay')}"
  slot: {slot}
  publication: outbox_relay
outbox:
  table: public.outbox
kafka:
  brokers: "{bootstrap}"
  topic: "{topic}"
  format: debezium
"""


def debezium(env, kafka, name, slot, topic_prefix):
    return DebeziumConnect(
        os.path.join(env.tmp, name), kafka.bootstrap, "127.0.0.1", env.pg.port, "app",
        "postgres", slot=slot, log=h.log,
        connector={"publication.name": "outbox_relay",
                   "publication.autocreate.mode": "disabled",
                   "transforms.outbox.route.topic.replacement": topic_prefix + "${routedByValue}",
                   "message.prefix.exclude.list": "outbox-relay-heartbeat",
                   **DEBEZIUM_THROUGHPUT},
        worker={"offset.flush.interval.ms": "10000", **DEBEZIUM_PRODUCER})


class System:
    """One system under test: start(), pid, stop()."""

    def __init__(self, env, kind, name, slot, bootstrap, topic_prefix, kafka=None):
        self.kind, self.name, self.slot = kind, name, slot
        if kind == "debezium":
            self.dbz = debezium(env, kafka, name, slot, topic_prefix)
        else:
            self.relay = env.relay(relay_config(env.pg, bootstrap, slot,
                                                topic_prefix + "{aggregatetype}"), name=name)

    def start(self):
        self.t0 = time.time()
        if self.kind == "debezium":
            self.dbz.start()
            self.pid = self.dbz.proc.pid
        else:
            self.relay.start()
            self.pid = self.relay.proc.pid
        return self

    def stop(self):
        if self.kind == "debezium":
            self.dbz.stop()
        else:
            rc, _ = self.relay.stop(timeout=60)
            h.check(rc == 0, f"{self.name}: exit {rc}")


def copy_slots(sql, names):
    """Slots at one position, before anything is written: copies of the relay's slot."""
    sql.query("SELECT pg_replication_slot_advance('outbox_relay', pg_current_wal_lsn())")
    for n in names:
        sql.query(f"SELECT pg_copy_logical_replication_slot('outbox_relay', '{n}')")


def drain(env, sql, kafka, shape, n, per_tx, first):
    systems = [("debezium", "real"), ("relay", "real"), ("relay", "dev")]
    slots = {f"{k}_{w}": f"b_{shape}_{k}_{w}" for k, w in systems}
    copy_slots(sql, slots.values())
    took, _ = pb.fill(sql, n // per_tx, per_tx, first)
    h.log(f"drain {shape}: {n:,} rows written in {took:.1f}s")
    out = {}
    for kind, where in systems:
        label = f"{kind} ({'real Kafka' if where == 'real' else 'dev broker'})"
        prefix = f"bench.{shape}.{kind}.{where}."
        topic = prefix + "order"
        bootstrap = kafka.bootstrap if where == "real" else env.broker.bootstrap
        if where == "real":
            kafka.create_topic(topic, PARTITIONS)
        s = System(env, kind, f"{kind}-{where}-{shape}", slots[f"{kind}_{where}"], bootstrap,
                   prefix, kafka)
        hw = Watermarks(bootstrap, topic)
        load = pb.Load()
        s.start()
        t_first = cpu_first = None
        deadline = time.time() + 900
        while True:
            got = hw.total()
            now = time.time()
            if got and t_first is None:
                t_first, cpu_first = now, pb.proc_cpu(s.pid)
            if got >= n:
                break
            h.check(now < deadline, f"{label}: {got:,} of {n:,} after 900 s")
            time.sleep(0.05)
        t_end = time.time()
        cpu, hwm = pb.proc_cpu(s.pid), pb.proc_status(s.pid, "VmHWM")
        h.check(got == n, f"{label}: {got:,} messages for {n:,} rows")
        s.stop()
        hw.close()
        r = {"events": n, "seconds_from_start": round(t_end - s.t0, 2),
             "seconds_first_to_last": round(t_end - t_first, 2),
             "events_per_s": round(n / max(t_end - t_first, 1e-3)),
             "events_per_s_from_start": round(n / (t_end - s.t0)),
             "first_message_after_s": round(t_first - s.t0, 2),
             "cpu_s": round(cpu, 2), "cpu_s_per_100k": round(cpu / n * 100000, 2),
             "cpu_s_per_100k_streaming": round((cpu - cpu_first) / n * 100000, 2),
             "peak_rss_mb": round(hwm / 1024, 1), "load": load.done()}
        out[label] = r
        h.log(f"  {label}: {r['events_per_s']:,} events/s first to last "
              f"({r['events_per_s_from_start']:,} from start, first message after "
              f"{r['first_message_after_s']}s), CPU {r['cpu_s']}s = "
              f"{r['cpu_s_per_100k']}s per 100k, peak RSS {r['peak_rss_mb']} MB; "
              f"{pb.Load.text(r['load'])}")
    return out


def steady(env, sql, kafka, kind, rate, seconds, first, warmup=5):
    prefix = f"bench.steady.{kind}."
    topic = prefix + "order"
    kafka.create_topic(topic, PARTITIONS, config={"message.timestamp.type": "LogAppendTime"})
    slot = f"b_steady_{kind}"
    copy_slots(sql, [slot])
    s = System(env, kind, f"{kind}-steady", slot, kafka.bootstrap, prefix, kafka).start()
    # Streaming: one event through before the clock starts.
    sql.query("INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload) "
              + STEADY_SELECT.format(lo=first, hi=first))
    hw = Watermarks(kafka.bootstrap, topic)
    h.wait_for(lambda: hw.total() >= 1, 180, f"{kind} to stream")
    hw.close()
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"bench-{kind}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "log_level": 2})
    c.subscribe([topic])
    lat, stop = [], threading.Event()
    window = {}

    def consume():
        while not stop.is_set():
            for m in c.consume(1000, 0.2):
                if m.error() or m.value() is None:
                    continue
                t = json.loads(m.value())["t"]
                if window.get("lo", float("inf")) <= t <= window.get("hi", float("inf")):
                    lat.append(m.timestamp()[1] - t)

    th = threading.Thread(target=consume, daemon=True)
    th.start()
    tick, per_tick = 0.01, rate // 100
    n = first + 1
    t_start = time.time()
    warm_end = t_start + warmup
    cpu0 = None
    k = 0
    while True:
        now = time.time()
        if cpu0 is None and now >= warm_end:
            cpu0, t_cpu0 = pb.proc_cpu(s.pid), now
            window["lo"] = now * 1000
        if now >= warm_end + seconds:
            window["hi"] = now * 1000
            break
        sql.query("INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload) "
                  + STEADY_SELECT.format(lo=n, hi=n + per_tick - 1))
        n += per_tick
        k += 1
        delay = t_start + k * tick - time.time()
        if delay > 0:
            time.sleep(delay)
    cpu = pb.proc_cpu(s.pid) - cpu0
    wall = time.time() - t_cpu0
    time.sleep(5)
    stop.set()
    th.join(10)
    c.close()
    hwm = pb.proc_status(s.pid, "VmHWM")
    s.stop()
    lat.sort()
    written = int(rate * seconds)
    h.check(len(lat) >= 0.95 * written, f"{kind}: {len(lat)} latencies for ~{written} events")
    r = {"events": len(lat), "p50_ms": round(pb.pct(lat, 0.50), 1),
         "p99_ms": round(pb.pct(lat, 0.99), 1), "max_ms": round(lat[-1], 1),
         "cpu_pct": round(100 * cpu / wall, 1),
         "cpu_s_per_100k": round(cpu / len(lat) * 100000, 2),
         "peak_rss_mb": round(hwm / 1024, 1)}
    h.log(f"steady {kind}: {r['events']:,} events at {rate}/s: commit->ack p50 {r['p50_ms']} ms, "
          f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms; CPU {r['cpu_pct']}% of a core "
          f"({r['cpu_s_per_100k']}s per 100k), peak RSS {r['peak_rss_mb']} MB")
    return r, n


def run(env, args):
    sql = pb.Sql(env.pg)
    pb.fill_procedure(sql)
    results = {"machine": pb.machine()}
    with KafkaCluster(env.tmp, log=h.log) as kafka:
        if "drain" in args.only:
            results["drain_100"] = drain(env, sql, kafka, "t100", args.rows_100, 100, 1)
            results["drain_1"] = drain(env, sql, kafka, "t1", args.rows_1, 1, 10_000_000)
        first = 20_000_000
        for kind in ("debezium", "relay") if "steady" in args.only else ():
            results[f"steady_{kind}"], first = steady(env, sql, kafka, kind, args.rate,
                                                      args.seconds, first, args.warmup)
    sql.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    a = parse()
    h.main(lambda env: run(env, a), topics=("bench.t100.relay.dev.order:4",
                                           "bench.t1.relay.dev.order:4"), pg_conf=pb.PG_CONF)

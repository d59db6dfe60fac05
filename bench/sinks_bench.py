"""Issue 13 benchmark: how fast does the relay drain a backlog into each broker?  (Run by
hand, not a test; the numbers go to docs/performance.md.)

    python3 bench/sinks_bench.py --build-dir build-release [--rows 100000]
        [--only kafka,redis,nats,rabbitmq,webhook,sqs] [--json results.json]

One PostgreSQL 15 (as the integration tests start it), one backlog of --rows outbox rows
in 100-row transactions, written once; before writing it, one copy of the relay's slot
per consumer, so that every consumer reads the same WAL from the same LSN:

  - pg_recvlogical (pgoutput, the relay's options) to /dev/null: how fast PostgreSQL
    decodes, the ceiling;
  - the relay into the dev broker (Kafka protocol), then into each broker of
    tools/brokers.py on loopback -- Redis, NATS JetStream, RabbitMQ, a webhook endpoint,
    SQS (moto) -- one after another with the shipped defaults of each sink: timed from the relay's
    start until PostgreSQL shows its slot confirmed at or past the backlog's end (every
    event acknowledged by the broker first); then the relay must have delivered exactly
    --rows events and each broker but the dev broker must hold at least that many, or
    the run fails.

Reported per sink: events/s, the ratio to pg_recvlogical, the relay's CPU seconds per
100,000 events and its peak RSS.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import brokers  # noqa: E402
import harness as h  # noqa: E402
import perf_bench as pb  # noqa: E402


def relay_config(pg, slot, section):
    return f"""postgres:
  dsn: "{pg.dsn(user='outbox_relay')}"
  slot: {slot}
  publication: outbox_relay
outbox:
  table: public.outbox
{section}"""


def drain_into(env, sql, name, slot, section, end, nrows, count, broker_pid=None):
    """The relay from slot until it is confirmed at end; count() is asked afterwards.
    broker_pid: the broker's process, whose CPU time during the drain is reported."""
    relay = h.Relay(env.args.build_dir, env.tmp, relay_config(env.pg, slot, section),
                    f"relay-{name}")
    env.relays.append(relay)
    bcpu0 = pb.proc_cpu(broker_pid) if broker_pid else None
    t0 = time.time()
    relay.start()
    cpu = None
    while True:
        h.check(time.time() - t0 < 900, f"{name}: drain took more than 900 s")
        h.check(relay.alive(), f"{name}: relay exited:\n" + relay.log_text()[-2000:])
        done = sql.query(f"SELECT confirmed_flush_lsn >= '{pb.lsn_text(end)}'::pg_lsn "
                         f"FROM pg_replication_slots WHERE slot_name = '{slot}'")
        cpu = pb.proc_cpu(relay.proc.pid) or cpu
        if done == "t":
            break
        time.sleep(0.02)
    elapsed = time.time() - t0
    bcpu = pb.proc_cpu(broker_pid) - bcpu0 if bcpu0 is not None else None
    hwm = pb.proc_status(relay.proc.pid, "VmHWM")
    rc, _ = relay.stop(timeout=60)
    h.check(rc == 0, f"{name}: relay exited {rc}")
    m = re.findall(r"stopped: (\d+) events produced, (\d+) delivered", relay.log_text())
    delivered = int(m[-1][1]) if m else -1
    h.check(delivered == nrows, f"{name}: the relay delivered {delivered} events, want {nrows}")
    held = count() if count else None
    h.check(held is None or held >= nrows,
            f"{name}: the broker holds {held} events, want {nrows}")
    r = {"sink": name, "seconds": elapsed, "events_per_s": nrows / elapsed,
         "relay_cpu_s_per_100k": cpu * 100000 / nrows, "relay_peak_rss_kb": hwm,
         "broker_holds": held, "broker_cpu_s": bcpu}
    h.log(f"{name}: {nrows} events in {elapsed:.2f} s = {r['events_per_s']:,.0f} events/s, "
          f"relay CPU {r['relay_cpu_s_per_100k']:.2f} s per 100k, peak RSS {hwm / 1024:.1f} MB"
          + (f", broker CPU {bcpu:.1f} s" if bcpu is not None else ""))
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build-dir", default=os.path.join(h.ROOT, "build"))
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--only", default="kafka,redis,nats,rabbitmq,webhook")
    p.add_argument("--json")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    sinks = args.only.split(",")
    brokers.ensure_venv(args.build_dir, [s for s in sinks if s != "kafka"])
    res = {"machine": pb.machine(), "rows": args.rows, "runs": [],
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    h.log(f"machine: {res['machine']}")
    with h.Env(args, topics=("outbox.event.order:4",), pg_conf=pb.PG_CONF) as env:
        sql = pb.Sql(env.pg)
        pb.fill_procedure(sql)
        # The relay's slot exists (sql/); copies of it read the same WAL.
        slots = ["bench_recv"] + [f"bench_{s}" for s in sinks]
        for s in slots:
            sql.query(f"SELECT pg_copy_logical_replication_slot('outbox_relay', '{s}')")
        secs, end = pb.fill(sql, args.rows // 100, 100, 1)
        h.log(f"backlog: {args.rows} events in 100-row transactions, written in {secs:.1f} s")
        rec = pb.run_recvlogical(env, sql, "bench_recv", end)
        recv_rate = args.rows / rec["seconds"]
        res["pg_recvlogical"] = {"seconds": rec["seconds"], "events_per_s": recv_rate}
        h.log(f"pg_recvlogical: {rec['seconds']:.2f} s = {recv_rate:,.0f} events/s")
        for s in sinks:
            if s == "kafka":
                section = f"""kafka:
  brokers: "{env.broker.bootstrap}"
  topic: "outbox.event.{{aggregatetype}}"
"""
                # The dev broker is not asked; the relay's count of acknowledgements is.
                r = drain_into(env, sql, "kafka (dev broker)", "bench_kafka", section, end,
                               args.rows, None)
            else:
                d = tempfile.mkdtemp(prefix=f"{s}-", dir=env.tmp)
                b = brokers.BROKERS[s](d).start()
                try:
                    r = drain_into(env, sql, s, f"bench_{s}", b.section(), end, args.rows,
                                   b.count, b.pid())
                finally:
                    b.stop()
            r["vs_pg_recvlogical"] = r["events_per_s"] / recv_rate
            res["runs"].append(r)
        sql.close()
    print()
    print("| sink | events/s | vs pg_recvlogical | relay CPU s / 100k | relay peak RSS | "
          "broker CPU s |")
    print("|---|---|---|---|---|---|")
    print(f"| pg_recvlogical (decode only) | {recv_rate:,.0f} | 1.00 | -- | -- | -- |")
    for r in res["runs"]:
        bc = f"{r['broker_cpu_s']:.1f}" if r["broker_cpu_s"] is not None else "--"
        print(f"| {r['sink']} | {r['events_per_s']:,.0f} | {r['vs_pg_recvlogical']:.2f} | "
              f"{r['relay_cpu_s_per_100k']:.2f} | {r['relay_peak_rss_kb'] / 1024:.1f} MB | "
              f"{bc} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()

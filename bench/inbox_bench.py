"""Issue 14 benchmark: how fast does the inbox relay drain a topic into the consuming
service's inbox table?  (Run by hand, not a test; the numbers go to
docs/performance.md.)

    python3 bench/inbox_bench.py --build-dir build-release [--rows 20000]
        [--batch-size 500] [--json results.json]

(The dev broker is librdkafka's mock cluster, which keeps only the last few MB of a
partition in memory: 20,000 events in 4 partitions fit, 100,000 do not.)

One PostgreSQL 15 (as the integration tests start it) with two databases -- the order
service's, whose outbox the relay publishes, and the shipping service's, with
sql/007_inbox.sql -- and the dev broker.  --rows events are written to the outbox
and published to a 4-partition topic first; then, each from the start of the topic:

  - outbox-consume (librdkafka, the same client library) reading every message to a
    file: what reading the topic costs, the ceiling;
  - outbox-relay inbox writing every event into the inbox table, a batch and its
    positions per statement: timed from the first row to the last (the consumer
    group's join is reported apart), then the table must hold exactly --rows events.

  - and, as the database's own ceiling for the same rows, one INSERT ... SELECT of
    them into an empty copy of the inbox table (same indexes) inside PostgreSQL.

Reported: events/s for each, the inbox relay's rate as a share of each, its CPU
seconds per 100,000 events and its peak RSS.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness as h  # noqa: E402
import perf_bench as pb  # noqa: E402

TOPIC = "outbox.event.order"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build-dir", default=os.path.join(h.ROOT, "build"))
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--json")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    res = {"machine": pb.machine(), "rows": args.rows, "batch_size": args.batch_size,
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    h.log(f"machine: {res['machine']}")
    with h.Env(args, topics=(f"{TOPIC}:4",), pg_conf=pb.PG_CONF) as env:
        pg = env.pg
        pg.psql("CREATE DATABASE shipping")
        pg.psql_file(os.path.join(h.ROOT, "sql", "007_inbox.sql"), db="shipping")
        count = lambda: int(pg.psql("SELECT count(*) FROM public.inbox", db="shipping"))  # noqa

        # The backlog: published once, read twice.
        outbox = env.relay(name="outbox")
        h.start_streaming(env, outbox)
        pg.psql(h.insert_sql(1, args.rows // 100, 100))
        end = pg.current_lsn()
        h.wait_for(lambda: (pg.slot()[0] or 0) >= end, 600, "the backlog in the topic", 0.2)
        outbox.stop()
        h.log(f"backlog: {args.rows} events in {TOPIC} (4 partitions)")

        out = os.path.join(env.tmp, "consumed.jsonl")
        t0 = time.time()
        r = subprocess.run([os.path.join(args.build_dir, "outbox-consume"), "-b",
                            env.broker.bootstrap, "-t", TOPIC, "-o", out, "--count",
                            str(args.rows), "--timeout", "600000"], capture_output=True,
                           text=True)
        took = time.time() - t0
        h.check(r.returncode == 0, f"outbox-consume: {r.stderr}")
        base = args.rows / took
        res["outbox_consume"] = {"seconds": took, "events_per_s": base}
        h.log(f"outbox-consume: {took:.2f} s = {base:,.0f} events/s (start-up included)")

        cfg = f"""kafka:
  brokers: "{env.broker.bootstrap}"
inbox:
  dsn: "{pg.dsn(db='shipping')}"
  consumer: bench
  topics: [{TOPIC}]
  batch_size: {args.batch_size}
admin:
  listen: ""
"""
        inbox = env.relay(cfg, name="inbox", command="inbox")
        t_start = time.time()
        inbox.start()
        h.wait_for(lambda: count() > 0, 60, "the first row", 0.01)
        t0 = time.time()
        cpu0 = pb.proc_cpu(inbox.proc.pid)
        h.wait_for(lambda: count() >= args.rows, 600, "every row", 0.02)
        took = time.time() - t0
        cpu = pb.proc_cpu(inbox.proc.pid) - cpu0
        rss = pb.proc_status(inbox.proc.pid, "VmHWM")
        h.check(count() == args.rows, f"the inbox holds {count()} rows, not {args.rows}")
        rate = args.rows / took
        res["inbox"] = {"seconds": took, "join_seconds": t0 - t_start, "events_per_s": rate,
                        "vs_outbox_consume": rate / base,
                        "cpu_s_per_100k": cpu * 100000 / args.rows, "peak_rss_kb": rss}
        h.log(f"inbox: {took:.2f} s from the first row = {rate:,.0f} events/s "
              f"({rate / base:.2f}x outbox-consume), CPU {cpu:.2f} s, peak RSS "
              f"{rss / 1024:.1f} MB; the group join took {t0 - t_start:.1f} s")
        inbox.stop()

        # The database's own ceiling for the same rows: one INSERT ... SELECT of them
        # into an empty copy of the table (same indexes), inside PostgreSQL.
        cols = ("consumer, event_id, type, source, subject, event_time, key, headers, "
                "content_type, payload, payload_bytes, topic, partition, \"offset\"")
        pg.psql("CREATE TABLE public.inbox_copy (LIKE public.inbox INCLUDING ALL)",
                db="shipping")
        t0 = time.time()
        pg.psql(f"INSERT INTO public.inbox_copy ({cols}) SELECT {cols} FROM public.inbox",
                db="shipping")
        took = time.time() - t0
        ceiling = args.rows / took
        res["insert_select"] = {"seconds": took, "events_per_s": ceiling}
        res["inbox"]["vs_insert_select"] = rate / ceiling
        h.log(f"INSERT ... SELECT of the same rows: {took:.2f} s = {ceiling:,.0f} rows/s; the "
              f"inbox relay ran at {rate / ceiling:.2f} of it")
    print()
    i = res["inbox"]
    print("| | events/s | inbox relay's share | relay CPU s / 100k | relay peak RSS |")
    print("|---|---|---|---|---|")
    print(f"| outbox-consume: reading the topic to a file | {base:,.0f} | "
          f"{i['vs_outbox_consume']:.2f} | -- | -- |")
    print(f"| INSERT ... SELECT of the rows inside PostgreSQL | {ceiling:,.0f} | "
          f"{i['vs_insert_select']:.2f} | -- | -- |")
    print(f"| outbox-relay inbox (batch {args.batch_size}) | {i['events_per_s']:,.0f} | 1.00 | "
          f"{i['cpu_s_per_100k']:.2f} | {i['peak_rss_kb'] / 1024:.1f} MB |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()

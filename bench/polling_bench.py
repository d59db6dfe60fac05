"""Polling-mode benchmark (not a test: run by hand, numbers go to docs/polling.md).

    python3 bench/polling_bench.py --build-dir build [--rows 50000] [--rate 1000] [--seconds 10]

drain:  N rows written first, then the relay started; the time until the consumer has
        every row and the table is empty (rows published and deleted).
steady: rows inserted at a fixed rate for a while; latency = the message's Kafka
        timestamp (set by the producer when the relay produces it) minus the row's
        created_at, p50/p99/max, plus the relay's CPU time and peak RSS.
Uses the same real PostgreSQL + dev broker set-up as the integration tests.
"""

import argparse
import json
import os
import sys
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness as h  # noqa: E402
from test_polling_out_of_order import polling_config  # noqa: E402


def relay_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        hwm = [int(line.split()[1]) for line in f if line.startswith("VmHWM:")][0]
    return cpu, hwm


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", default=os.path.join(h.ROOT, "build"))
    p.add_argument("--rows", type=int, default=50000)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    sys.argv = sys.argv[:1] + ["--build-dir", args.build_dir]

    with h.Env(args, topics=("outbox.event.order:4",)) as env:
        pg = env.pg
        consumer = env.consumer()
        cfg = polling_config(pg, env.broker, "  batch_size: 5000\n")
        # drain
        pg.psql(h.insert_sql(1, args.rows // 1000, 1000))
        relay = env.relay(cfg).start()
        t0 = time.time()
        consumer.wait_count(args.rows, 600)
        t_all = time.time() - t0
        h.wait_for(lambda: pg.psql("SELECT count(*) FROM public.outbox") == "0", 60, "deletes")
        t_done = time.time() - t0
        print(f"drain: {args.rows} rows delivered in {t_all:.2f}s ({args.rows / t_all:.0f} "
              f"events/s), published and deleted in {t_done:.2f}s "
              f"({args.rows / t_done:.0f} events/s)")
        # steady
        cpu0, _ = relay_stats(relay.proc.pid)
        base = consumer.poll()
        # One psql session: a 10 ms tick, rate/100 rows per tick.
        per_tick = max(1, args.rate // 100)
        ticks = args.seconds * 100
        sql = h.insert_sql(args.rows + 1, ticks, per_tick).replace(
            "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.01);\n")
        n = ticks * per_tick
        start = time.time()
        job, text = h.start_insert_job(pg, sql)
        job.stdin.write(text)
        job.stdin.close()
        job.wait()
        elapsed = time.time() - start
        consumer.wait_count(base + n, 120)
        cpu1, hwm = relay_stats(relay.proc.pid)
        lat = []
        for m in consumer.messages[base:]:
            created = datetime.fromisoformat(m["headers"]["ce_time"].replace("Z", "+00:00"))
            lat.append(m["timestamp"] / 1000.0 - created.timestamp())
        lat.sort()
        q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000  # noqa: E731
        print(f"steady: {n} rows at {n / elapsed:.0f}/s for {elapsed:.1f}s: created->produced "
              f"p50 {q(0.50):.1f} ms, p99 {q(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms; "
              f"relay CPU {100 * (cpu1 - cpu0) / elapsed:.1f}% of a core, peak RSS {hwm} kB")
        relay.stop()


if __name__ == "__main__":
    main()

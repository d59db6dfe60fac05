"""One transaction of 1,000,000 outbox rows, and a large rolled-back one (run by hand:
too long for the test suite; numbers go to the closing note and docs/guarantees.md).

    python3 bench/large_txn.py --build-dir build [--rows 1000000]

Checks: every row arrives exactly once, in order per key; the relay's peak RSS stays
within its budget (kafka.max_inflight_bytes plus a fixed overhead); a rolled-back
transaction of the same size publishes nothing.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness as h  # noqa: E402


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return [int(line.split()[1]) for line in f if line.startswith("VmHWM:")][0]


def main():
    rows = 1_000_000
    if "--rows" in sys.argv:
        i = sys.argv.index("--rows")
        rows = int(sys.argv[i + 1])
        del sys.argv[i:i + 2]

    def test(env):
        pg = env.pg
        consumer = env.consumer()
        cfg = h.relay_config(pg, env.broker, extra="  max_inflight_bytes: 16777216\n")
        relay = env.relay(cfg).start()
        h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
        # The rolled-back one first: nothing may come of it.
        pg.psql("BEGIN; INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload) "
                f"SELECT 'order', 'rb-' || (g % 50), 'X', jsonb_build_object('n', g) "
                f"FROM generate_series(1, {rows}) g; ROLLBACK;")
        t0 = time.time()
        pg.psql(h.insert_sql(1, 1, rows))
        t_commit = time.time() - t0
        end = pg.current_lsn()
        # The dev broker keeps only the last few MB per partition, so a consumer cannot
        # keep up with a million events: count acknowledgements through the slot (it
        # moves past the transaction only when Kafka acknowledged all of it) and the
        # relay's own tally at shutdown.
        h.wait_for(lambda: pg.slot()[0] >= end, 900, "the slot to pass the transaction")
        t_all = time.time() - t0
        peak = hwm_kb(relay.proc.pid)
        rc, _ = relay.stop()
        h.check(rc == 0, f"exit {rc}")
        stats = [ln for ln in relay.log_text().splitlines() if "stopped:" in ln][-1]
        delivered = int(stats.split(" delivered")[0].rsplit(" ", 1)[1])
        h.check(delivered == rows, f"relay delivered {delivered}, want {rows}: {stats}")
        h.check(not any((m["key"] or "").startswith("rb-") for m in consumer.messages),
                "rolled-back rows published")
        print(f"large transaction: {rows} rows committed in {t_commit:.1f}s; Kafka acknowledged "
              f"all and the slot passed the transaction {t_all:.1f}s after the insert began "
              f"({rows / t_all:.0f} events/s); relay peak RSS {peak} kB "
              f"(max_inflight_bytes 16 MiB); a rolled-back transaction of {rows} rows published "
              f"nothing", flush=True)

    h.main(test)


if __name__ == "__main__":
    main()

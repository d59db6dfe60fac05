"""SIGTERM the relay mid-stream, twice, while the application keeps writing: it exits 0
within 10 s, and the restarts redeliver nothing -- zero duplicates, no loss, commit
order per key.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_TX = 100
NTX = 200
STOPS = 2


def test(env):
    pg = env.pg
    consumer = env.consumer()
    relay = env.relay()
    total = NTX * PER_TX
    sql = h.insert_sql(1, NTX, PER_TX).replace("COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.02);\n")
    job, text = h.start_insert_job(pg, sql)
    relay.start()
    job.stdin.write(text)
    job.stdin.close()

    for k in range(STOPS):
        target = max((k + 1) * total // (STOPS + 2), consumer.poll() + 1500)
        consumer.wait_count(min(target, total - 1000), 60)
        rc, took = relay.stop()
        h.check(rc == 0, f"relay exited with {rc} on SIGTERM")
        h.check(took < 10, f"SIGTERM took {took:.2f}s")
        n = consumer.wait_quiet(1.0)
        h.log(f"stop {k + 1}: exit 0 after {took:.2f}s with {n} events consumed")
        relay.start()
        h.wait_for(lambda: pg.slot()[1], 30, "the relay to stream again")

    h.check(job.wait(timeout=120) == 0, f"insert job failed: {job.stderr.read()}")
    consumer.wait_count(total, 120)
    rc, took = relay.stop()
    h.check(rc == 0 and took < 10, f"final SIGTERM: exit {rc} after {took:.2f}s")
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.messages)
    h.log(f"{rows} rows, {distinct} distinct events, {dups} duplicates over {STOPS} clean stops")
    h.check(dups == 0, f"{dups} duplicates after clean stops")
    h.check(len(consumer.messages) == total, f"{len(consumer.messages)} messages")


if __name__ == "__main__":
    h.main(test)

"""SIGKILL the relay at random points mid-stream, 20 times (SIGKILL_ITERATIONS
overrides; a longer sweep runs by hand), while the application keeps writing:
every row arrives; nothing confirmed was missing from Kafka at the moment of each
kill; duplicates only for transactions after the slot's confirmed_flush_lsn; per-key
order holds except for the replayed suffix.
"""

import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_TX = 30
KILLS = int(os.environ.get("SIGKILL_ITERATIONS", "20"))
# About 3 s of writing per kill (a kill, a quiet consumer, a restart take that long):
# 1,000 transactions for the 20 kills promised, fewer for a shorter sweep.
NTX = 50 * max(KILLS, 10)


def test(env):
    pg = env.pg
    consumer = env.consumer()
    relay = env.relay()
    total = NTX * PER_TX
    # Spread the writes (a minute for 20 kills) so that every kill lands mid-stream.
    sql = h.insert_sql(1, NTX, PER_TX).replace("COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.06);\n")
    job, text = h.start_insert_job(pg, sql)
    relay.start()
    h.feed(job, text)

    rng = random.Random(int(os.environ.get("TEST_SEED", time.time())))
    confirmed, before = [], []
    kills = 0
    for k in range(KILLS):
        if job.poll() is not None:
            break  # the application stopped writing: no longer mid-stream
        # Kill after fresh progress since the last restart, at a random moment.
        consumer.wait_count(consumer.poll() + 200, 60)
        time.sleep(rng.uniform(0, 0.3))
        relay.signal(signal.SIGKILL)
        relay.wait(10)
        t_kill = time.time()
        h.wait_for(lambda: not pg.slot()[1], 30, "the slot to be released")
        n = consumer.wait_quiet(1.5)
        conf = pg.slot()[0]
        confirmed.append(conf)
        before.append([m["headers"]["ce_id"] for m in consumer.messages])
        kills += 1
        relay.start()
        h.wait_for(lambda: pg.slot()[1], 30, "the relay to stream again")
        h.log(f"kill {k + 1}: {n} consumed, slot at {conf >> 32:X}/{conf & 0xFFFFFFFF:X}, "
              f"streaming again {time.time() - t_kill:.2f}s after the kill")

    h.check(kills >= min(KILLS, 10), f"only {kills} kills landed mid-stream")
    h.check(job.wait(timeout=120) == 0, f"insert job failed: {job.stderr.read()}")
    consumer.wait_count(total, 120)
    consumer.wait_distinct(total, 120, "every row")
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.messages, confirmed, before)
    h.log(f"{rows} rows committed, {distinct} distinct events delivered, {dups} duplicates "
          f"over {kills} kills ({dups / max(kills, 1):.0f} per kill)")
    rc, took = relay.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test)

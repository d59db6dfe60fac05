"""Polling mode under failure.

1. SIGKILL mid-batch, three times, while the application writes: after each restart
   every row arrives; duplicates are at most a batch per kill; per-key order holds
   except for the replayed batch.
2. Two instances: exactly one holds the polling lock and publishes, the other stands
   by; SIGKILL the active one mid-stream and the standby takes over within seconds;
   no row is lost.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_polling_out_of_order import polling_config  # noqa: E402

PER_TX = 50
NTX = 200
BATCH = 200


def slow_inserts(pg, first):
    sql = h.insert_sql(first, NTX, PER_TX).replace("COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.02);\n")
    job, text = h.start_insert_job(pg, sql)
    job.stdin.write(text)
    job.stdin.close()
    return job


def advisory_holders(pg):
    return int(pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"))


def test(env):
    pg = env.pg
    consumer = env.consumer()
    cfg = polling_config(pg, env.broker, f"  batch_size: {BATCH}\n")
    total = NTX * PER_TX

    # 1. SIGKILL mid-batch.
    relay = env.relay(cfg, name="poller").start()
    job = slow_inserts(pg, 1)
    kills = 3
    for k in range(kills):
        consumer.wait_count(min(consumer.poll() + 1500, total - 500), 60)
        relay.signal(signal.SIGKILL)
        relay.wait(10)
        relay.start()
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    consumer.wait_distinct(total, 120, "every row after the kills")
    consumer.wait_quiet(1.0)
    rows = {m["headers"]["ce_id"] for m in consumer.messages}
    dups = len(consumer.messages) - len(rows)
    h.check(len(rows) == total, f"{len(rows)} of {total} rows delivered")
    h.check(dups <= kills * BATCH, f"{dups} duplicates for {kills} kills of batch {BATCH}")
    h.check_per_key_order(h.ordered_by_partition(consumer.messages), allow_replay=True)
    h.wait_for(lambda: pg.psql("SELECT count(*) FROM public.outbox") == "0", 30,
               "published rows to be deleted")
    h.log(f"SIGKILL x{kills} mid-batch: {total} rows, {len(rows)} delivered, {dups} duplicates "
          f"(bound {kills * BATCH})")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")

    # 2. Two instances, the active one killed.
    a = env.relay(cfg, name="first").start()
    h.wait_for(lambda: "this instance publishes" in a.log_text(), 30, "the first to take the lock")
    b = env.relay(cfg, name="second").start()
    h.wait_for(lambda: "standing by" in b.log_text(), 30, "the second to stand by")
    base = consumer.poll()
    job = slow_inserts(pg, total + 1)
    consumer.wait_count(base + 2000, 60)
    h.check(advisory_holders(pg) == 1, "more than one instance holds the polling lock")
    h.check("this instance publishes" not in b.log_text(), "the standby published while the "
            "active instance was alive")
    a.signal(signal.SIGKILL)
    a.wait(10)
    t_kill = time.time()
    h.wait_for(lambda: "this instance publishes" in b.log_text(), 15, "the standby to take over")
    took_over = time.time() - t_kill
    h.check(took_over < 10, f"takeover took {took_over:.1f}s")
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    want = 2 * total
    consumer.wait_distinct(want, 120, "every row after the failover")
    consumer.wait_quiet(1.0)
    rows = {m["headers"]["ce_id"] for m in consumer.messages}
    h.check(len(rows) == want, f"{len(rows)} of {want} rows delivered")
    h.check(advisory_holders(pg) == 1, "lock holders after failover")
    dups2 = len(consumer.messages) - len(rows) - dups
    h.check(dups2 <= BATCH, f"{dups2} duplicates after one failover")
    h.log(f"failover: standby took over {took_over:.2f}s after SIGKILL; {want} rows delivered, "
          f"{dups2} duplicates")
    rc, _ = b.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test)

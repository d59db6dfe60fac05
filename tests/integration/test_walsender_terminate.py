"""pg_terminate_backend() on the walsender, five times, mid-stream: the relay
reconnects by itself (the process never exits), nothing is lost, duplicates stay
bounded (at most the transaction being received at each termination), and per-key
order holds except for the replayed suffix.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_TX = 100
NTX = 300
TERMINATIONS = 5


def test(env):
    pg = env.pg
    consumer = env.consumer()
    relay = env.relay()
    total = NTX * PER_TX
    sql = h.insert_sql(1, NTX, PER_TX).replace("COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.02);\n")
    job, text = h.start_insert_job(pg, sql)
    relay.start()
    h.wait_for(lambda: pg.slot()[1], 30, "the relay to stream")
    job.stdin.write(text)
    job.stdin.close()

    recoveries, confirmed, before = [], [], []
    for k in range(TERMINATIONS):
        consumer.wait_count(min((k + 1) * total // (TERMINATIONS + 2), total - 500), 60)
        pid = pg.psql("SELECT active_pid FROM pg_replication_slots "
                      "WHERE slot_name = 'outbox_relay'")
        h.check(pid, "no active walsender to terminate")
        pg.psql(f"SELECT pg_terminate_backend({pid})")
        t0 = time.time()
        # A lower bound of the slot's position when the walsender died, and what the
        # consumer has read a moment later: everything below that position was in Kafka
        # before the relay confirmed it, so the consumer has it by then (the relay keeps
        # delivering meanwhile, which only adds ids above the position).
        confirmed.append(pg.slot()[0])
        time.sleep(0.5)
        consumer.poll()
        before.append([m["headers"]["ce_id"] for m in consumer.messages])
        h.wait_for(lambda: pg.psql("SELECT active_pid FROM pg_replication_slots WHERE "
                                   "slot_name = 'outbox_relay'") not in ("", pid), 30,
                   "a new walsender")
        recoveries.append(time.time() - t0)
        h.check(relay.alive(), "the relay exited after the walsender was terminated")

    h.check(job.wait(timeout=120) == 0, f"insert job failed: {job.stderr.read()}")
    consumer.wait_count(total, 120)
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.messages, confirmed, before)
    h.check(dups <= TERMINATIONS * PER_TX, f"{dups} duplicates for {TERMINATIONS} terminations")
    h.check("reconnecting" in relay.log_text(), "the relay did not log the reconnection")
    h.log(f"{rows} rows, {distinct} distinct events, {dups} duplicates over {TERMINATIONS} "
          f"walsender terminations; reconnected after "
          f"{', '.join(f'{t:.2f}s' for t in recoveries)}")
    rc, took = relay.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test)

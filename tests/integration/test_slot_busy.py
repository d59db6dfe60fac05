"""A second relay with the same configuration finds the slot active for the first:
it waits and retries instead of exiting (and never drops or recreates the slot).
When the first stops, the second takes over and delivers what was written meanwhile,
with no loss and no duplicates.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def test(env):
    pg = env.pg
    consumer = env.consumer()
    first = env.relay(name="first").start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the first relay to stream")
    pid_first = pg.psql("SELECT active_pid FROM pg_replication_slots")
    pg.psql(h.insert_sql(1, 10, 100))
    consumer.wait_count(1000, 60)

    second = env.relay(name="second").start()
    h.wait_for(lambda: "is active for PID" in second.log_text(), 30,
               "the second relay to find the slot busy")
    time.sleep(3)
    h.check(second.alive(), "the second relay exited instead of waiting")
    h.check(pg.psql("SELECT active_pid FROM pg_replication_slots") == pid_first,
            "the slot changed hands while the first relay was streaming")
    h.check(pg.psql("SELECT count(*) FROM pg_replication_slots") == "1", "slot count")

    pg.psql(h.insert_sql(1001, 10, 100))
    consumer.wait_count(2000, 60)
    rc, took = first.stop()
    h.check(rc == 0, f"first relay exit {rc}")
    t0 = time.time()
    h.wait_for(lambda: "streaming from slot" in second.log_text(), 30,
               "the second relay to take over")
    took_over = time.time() - t0
    pg.psql(h.insert_sql(2001, 10, 100))
    consumer.wait_count(3000, 60)
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.messages)
    h.check(dups == 0, f"{dups} duplicates after a clean hand-over")
    h.log(f"second relay waited while the slot was busy and took over {took_over:.2f}s after "
          f"the first stopped; {rows} rows, {distinct} delivered, {dups} duplicates")
    rc, _ = second.stop()
    h.check(rc == 0, f"second relay exit {rc}")


if __name__ == "__main__":
    h.main(test)

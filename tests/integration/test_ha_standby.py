"""High availability in replication mode: two instances with the same configuration.
Exactly one streams (the slot allows one walsender); the other waits, retrying.
When the active one is SIGKILLed mid-stream, the standby streams within 10 s, and
nothing is lost: duplicates only after the slot's confirmed position, per-key order
kept except for the replayed suffix.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_TX = 100
NTX = 200


def test(env):
    pg = env.pg
    consumer = env.consumer()
    a = env.relay(name="active").start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the first instance to stream")
    b = env.relay(name="standby").start()
    h.wait_for(lambda: "is active for PID" in b.log_text(), 30, "the standby to wait")
    total = NTX * PER_TX
    sql = h.insert_sql(1, NTX, PER_TX).replace("COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.02);\n")
    job, text = h.start_insert_job(pg, sql)
    job.stdin.write(text)
    job.stdin.close()

    consumer.wait_count(total // 3, 60)
    h.check("streaming from slot" not in b.log_text(), "the standby streamed while the "
            "active instance was alive")
    a.signal(signal.SIGKILL)
    a.wait(10)
    t_kill = time.time()
    h.wait_for(lambda: "streaming from slot" in b.log_text(), 15, "the standby to stream")
    took = time.time() - t_kill
    h.check(took < 10, f"standby took {took:.1f}s to stream")
    # Where the standby started is what the dead instance had confirmed (the slot, or
    # its state table when that is ahead).  The slot itself cannot be read for this:
    # by the time it is read, the standby may already have confirmed further.
    start = re.search(r'streaming from slot "\w+" at ([0-9A-F]+/[0-9A-F]+)', b.log_text())
    h.check(start is not None, "the standby's start position in its log")
    conf = h.lsn_to_int(start.group(1))
    # Every event below conf in Kafka came from the dead instance, acknowledged before
    # conf was confirmed.  Half a second lets the consumer catch up with what the dead
    # instance published (events from the standby are all at or above conf).
    time.sleep(0.5)
    consumer.poll()
    before = [m["headers"]["ce_id"] for m in consumer.messages]
    h.check(job.wait(timeout=120) == 0, "insert job failed")
    consumer.wait_distinct(total, 120, "every row")
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.messages, [conf], [before])
    h.log(f"standby streamed {took:.2f}s after the active instance was SIGKILLed; {rows} "
          f"rows, {distinct} delivered, {dups} duplicates ({len(before)} consumed before)")
    rc, _ = b.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test)

"""PostgreSQL crashes (immediate shutdown) mid-stream, twice, while the application
writes, and comes back: the relay reconnects by itself (the process never exits) and
every committed row arrives.

The insert job dies with the server.  Whatever the table holds at the end is what was
committed (a transaction whose COMMIT reached the WAL but whose answer never reached
psql counts as committed: it is in the table).  After each restart a new job inserts
the remaining rows, continuing the numbering after the highest committed n, so commit
order stays the order of n and the per-key order check still applies.

Invariants, via check_stream:
- no loss: every row in the table was consumed;
- checkpoint safety, twice per crash: (a) the slot's confirmed_flush_lsn read just
  before the crash, against the consumer's snapshot taken quiet while the server is
  down (nothing new can reach the relay then); (b) the position the slot comes back
  with, read right after the restart (PostgreSQL 15 may bring it back older, see
  docs/guarantees.md), against the snapshot taken quiet after the relay reconnected
  (no inserts run in between).  Every event below the position must be in the
  snapshot;
- bounded duplicates: every redelivered event lies at or after the position read
  right after a restart (a lower bound of where any replay can start: the relay
  resumes from its own checkpoint, never below the slot's), and there are at most
  one transaction's worth per crash (docs/guarantees.md: "at most the transaction
  that was being received");
- per-key order, except a replayed suffix.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_TX = 100
NTX = 240
CRASHES = 2


def paced_sql(first, ntx):
    return h.insert_sql(first, ntx, PER_TX).replace("COMMIT;\n",
                                                    "COMMIT;\nSELECT pg_sleep(0.02);\n")


def max_n(pg):
    return int(pg.psql("SELECT coalesce(max((payload->>'n')::int), 0) FROM public.outbox"))


def fmt_lsn(v):
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


def test(env):
    pg = env.pg
    consumer = env.consumer()
    relay = env.relay().start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    total = NTX * PER_TX
    job, text = h.start_insert_job(pg, paced_sql(1, NTX))
    job.stdin.write(text)
    job.stdin.close()

    confirmed, before, recoveries, lost_jobs = [], [], [], 0
    for k in range(CRASHES):
        consumer.wait_count((k + 1) * total // (CRASHES + 2), 60)
        h.check(job.poll() is None, "the insert job finished before the crash: "
                "the crash would not be mid-stream")
        # The position the slot holds in memory just before the crash: everything
        # below it had been acknowledged by Kafka.
        conf_pre = pg.slot()[0]
        pg.stop("immediate")
        t_crash = time.time()
        # The job dies with the server; it must not keep writing into the new one.
        job.wait(timeout=30)
        lost_jobs += job.returncode != 0
        # With the server down nothing new reaches the relay: once the consumer is
        # quiet it holds everything Kafka had acknowledged when conf_pre was read.
        consumer.wait_quiet(1.0)
        confirmed.append(conf_pre)
        before.append([m["headers"]["ce_id"] for m in consumer.messages])
        h.check(relay.alive(), f"the relay exited while PostgreSQL was down "
                f"(exit {relay.proc.returncode})")
        pg.ctl("start", "-w", "-l", pg.logfile)
        t_up = time.time()
        # Read at once: the position the slot came back with after crash recovery
        # (possibly older than conf_pre), the lower bound of any replay.
        conf = pg.slot()[0]
        h.wait_for(lambda: pg.slot()[1], 30, "the relay to stream again", interval=0.05)
        recoveries.append(time.time() - t_up)
        # No inserts run now: once the consumer is quiet it holds every event Kafka had
        # acknowledged when conf was read (and the replay, if any).
        consumer.wait_quiet(1.5)
        confirmed.append(conf)
        before.append([m["headers"]["ce_id"] for m in consumer.messages])
        h.check(relay.alive(), "the relay exited after the restart")
        done = max_n(pg)
        h.log(f"crash {k + 1}: server down {t_up - t_crash:.2f}s, {len(consumer.messages)} "
              f"messages consumed, {done} rows committed, slot at {fmt_lsn(conf_pre)} before "
              f"the crash, back at {fmt_lsn(conf)}, "
              f"relay streaming again {recoveries[-1]:.2f}s after the server was up")
        remaining = (total - done) // PER_TX
        h.check(remaining > 0, "nothing left to insert after the crash")
        job, text = h.start_insert_job(pg, paced_sql(done + 1, remaining))
        job.stdin.write(text)
        job.stdin.close()

    h.check(job.wait(timeout=60) == 0, f"insert job failed: {job.stderr.read()}")
    committed = len(h.db_rows(pg))
    consumer.wait_count(committed, 60)
    consumer.wait_distinct(committed, 60, "every committed row")
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.messages, confirmed, before)
    h.check(dups <= CRASHES * PER_TX, f"{dups} duplicates for {CRASHES} crashes (at most "
            f"one transaction of {PER_TX} each)")
    h.check(lost_jobs == CRASHES, f"only {lost_jobs} of {CRASHES} insert jobs were cut "
            "by a crash: the crashes were not mid-stream")
    text_log = relay.log_text()
    h.check("reconnecting" in text_log, "the relay did not log the reconnection")
    rss = h.rss_kb(relay.proc.pid, "VmHWM")
    h.log(f"{rows} rows committed, {distinct} distinct events, {dups} duplicates over "
          f"{CRASHES} PostgreSQL crashes; relay streaming again "
          f"{', '.join(f'{t:.2f}s' for t in recoveries)} after the server was up; "
          f"relay peak RSS (VmHWM) {rss} kB")
    rc, took = relay.stop()
    h.check(rc == 0, f"exit {rc} after SIGTERM")


if __name__ == "__main__":
    h.main(test)

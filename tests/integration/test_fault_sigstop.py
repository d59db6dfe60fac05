"""The relay frozen (SIGSTOP) for longer than wal_sender_timeout (2 s) mid-stream, while
the application keeps writing, then thawed (SIGCONT): the walsender has given up on
the silent client and closed the connection; the relay must notice, reconnect by
itself and deliver everything.

While the relay is stopped nothing can move: it sends no status update and librdkafka's
threads are frozen too.  So the slot's confirmed position read during the freeze, and
the consumer's snapshot once it is quiet, give an exact checkpoint-safety check: every
event below that position must already be in the snapshot.  Duplicates are bounded by
that position (check_stream) and, as for a terminated walsender (docs/guarantees.md:
"at most the transaction that was being received"), by one transaction per freeze.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_TX = 100
NTX = 250
FREEZES = 2
FREEZE_S = 4.5  # > wal_sender_timeout = 2s, with margin for the walsender's check


def active_pid(pg):
    return pg.psql("SELECT active_pid FROM pg_replication_slots "
                   "WHERE slot_name = 'outbox_relay'")


def test(env):
    pg = env.pg
    consumer = env.consumer()
    relay = env.relay().start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    total = NTX * PER_TX
    sql = h.insert_sql(1, NTX, PER_TX).replace("COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.05);\n")
    job, text = h.start_insert_job(pg, sql)
    job.stdin.write(text)
    job.stdin.close()

    confirmed, before, recoveries, written = [], [], [], []
    for k in range(FREEZES):
        consumer.wait_count((k + 1) * total // (FREEZES + 3), 60)
        h.check(job.poll() is None, "the insert job finished before the freeze")
        old_pid = active_pid(pg)
        h.check(old_pid, "no active walsender before the freeze")
        relay.signal(signal.SIGSTOP)
        t_stop = time.time()
        # Frozen: the slot cannot move and nothing more reaches Kafka.
        n_before = consumer.wait_quiet(1.0)
        conf = pg.slot()[0]
        confirmed.append(conf)
        before.append([m["headers"]["ce_id"] for m in consumer.messages])
        rows_at_stop = int(pg.psql("SELECT count(*) FROM public.outbox"))
        # The walsender must give up on the silent client by itself.
        h.wait_for(lambda: active_pid(pg) != old_pid, 15,
                   "the walsender to time out the frozen relay")
        t_gone = time.time() - t_stop
        time.sleep(max(0.0, FREEZE_S - (time.time() - t_stop)))
        h.check(pg.slot()[0] == conf, "the slot moved while the relay was frozen")
        rows_at_cont = int(pg.psql("SELECT count(*) FROM public.outbox"))
        written.append(rows_at_cont - rows_at_stop)
        h.check(written[-1] > 0, "nothing was written while the relay was frozen")
        relay.signal(signal.SIGCONT)
        t_cont = time.time()
        h.wait_for(lambda: active_pid(pg) not in ("", old_pid), 30,
                   "the relay to stream again after SIGCONT", interval=0.05)
        recoveries.append(time.time() - t_cont)
        h.check(relay.alive(), f"the relay exited after SIGCONT (exit {relay.proc.returncode})")
        h.log(f"freeze {k + 1}: {t_cont - t_stop:.1f}s, "
              f"{n_before} messages consumed at the stop, walsender gone after "
              f"{t_gone:.1f}s, {written[-1]} rows written meanwhile, streaming again "
              f"{recoveries[-1]:.2f}s after SIGCONT")

    h.check(job.wait(timeout=60) == 0, f"insert job failed: {job.stderr.read()}")
    consumer.wait_distinct(total, 60, "every row", interval=0.05)
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.messages, confirmed, before)
    h.check(dups <= FREEZES * PER_TX, f"{dups} duplicates for {FREEZES} freezes "
            f"(at most one transaction of {PER_TX} each)")
    text_log = relay.log_text()
    h.check("reconnecting" in text_log, "the relay did not log the reconnection")
    rss = h.rss_kb(relay.proc.pid, "VmHWM")
    h.log(f"{rows} rows, {distinct} distinct events, {dups} duplicates over {FREEZES} "
          f"freezes of {FREEZE_S}s (wal_sender_timeout 2s); streaming again "
          f"{', '.join(f'{t:.2f}s' for t in recoveries)} after SIGCONT; "
          f"relay peak RSS (VmHWM) {rss} kB")
    rc, took = relay.stop()
    h.check(rc == 0, f"exit {rc} after SIGTERM")


if __name__ == "__main__":
    h.main(test, pg_conf="wal_sender_timeout = 2s\n")

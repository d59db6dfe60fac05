"""Produce requests fail on the broker side mid-stream -- injected
NOT_LEADER_FOR_PARTITION and REQUEST_TIMED_OUT errors, and a partition leader's
connections closed for a moment (`down 1` / `up 1`, 3 brokers) -- and librdkafka's
idempotent producer retries: no loss, no duplicates beyond the documented bound, and
per-key order holds.

Phase 1 (mid-stream, while a paced insert job runs): 5 Produce requests answered
NOT_LEADER_FOR_PARTITION, then 5 answered REQUEST_TIMED_OUT, then broker 1 (leader of
partitions 0 and 2) down for 0.5 s.

Phase 2 (checkpoint safety): with everything consumed, broker 1 goes down, a wave of
transactions is inserted (every one of them has events for partitions 0 and 2), and
after 2 s the slot's confirmed position is read and the consumer snapshot taken once
it is quiet: every event below that position must be in the snapshot -- the relay
must not confirm a transaction whose events sit unacknowledged on the downed leader.
Then broker 1 comes back and everything arrives.

Duplicates: with message.timeout.ms=0 (the default) a retriable error is retried by
librdkafka and never reaches the relay as a failure, so docs/guarantees.md promises
none ("Brokers down or slow": duplicates none).  check_stream gets the slot's
position read right before each fault as the bound (a replay, if a fault caused one,
could only start at or after it), and the test then also asserts the documented zero.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

TOPIC = "outbox.event.order"
PER_TX = 100
NTX1 = 200   # phase 1, paced
NTX2 = 40    # phase 2, while broker 1 is down


def test(env):
    pg, broker = env.pg, env.broker
    # Make broker 1 the leader of two of the four partitions, so that `down 1` always
    # holds back events of every transaction (50 keys spread over all partitions).
    broker.command(f"leader {TOPIC} 0 1")
    broker.command(f"leader {TOPIC} 2 1")
    consumer = env.consumer()
    relay = env.relay().start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    n1 = NTX1 * PER_TX
    sql = h.insert_sql(1, NTX1, PER_TX).replace("COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.02);\n")
    job, text = h.start_insert_job(pg, sql)
    job.stdin.write(text)
    job.stdin.close()

    confirmed, faults = [], []

    def fault(at, name, commands, hold=0.0):
        consumer.wait_count(at, 60)
        h.check(job.poll() is None, f"insert job already finished before {name}")
        confirmed.append(pg.slot()[0])
        t0 = time.time()
        broker.command(commands[0])
        if hold:
            time.sleep(hold)
        for c in commands[1:]:
            broker.command(c)
        faults.append((name, t0, consumer.poll()))

    fault(n1 // 5, "NOT_LEADER_FOR_PARTITION x5", ["error Produce 5 NOT_LEADER_FOR_PARTITION"])
    fault(2 * n1 // 5, "REQUEST_TIMED_OUT x5", ["error Produce 5 REQUEST_TIMED_OUT"])
    fault(3 * n1 // 5, "broker 1 down 0.5s", ["down 1", "up 1"], hold=0.5)
    h.check(job.wait(timeout=60) == 0, f"insert job failed: {job.stderr.read()}")
    consumer.wait_count(n1, 60)
    t_phase1 = time.time() - faults[0][1]
    consumer.wait_quiet(1.0)
    h.check(relay.alive(), "the relay exited during phase 1")

    # Phase 2: the leader of partitions 0 and 2 down while a wave is written.
    confirmed.append(pg.slot()[0])
    broker.command("down 1")
    t_down = time.time()
    pg.psql(h.insert_sql(n1 + 1, NTX2, PER_TX))
    wave_end = pg.current_lsn()
    time.sleep(2.0)
    conf = pg.slot()[0]
    h.check(conf < wave_end, "the slot passed the wave while broker 1, leader of part of "
            "every transaction's events, was down")
    during = consumer.wait_quiet(1.0)
    before_ids = [m["headers"]["ce_id"] for m in consumer.messages]
    held = n1 + NTX2 * PER_TX - len(set(before_ids))
    h.check(held > 0, "nothing was held back with the partition leader down")
    broker.command("up 1")
    t_up = time.time()
    # Expect several seconds until the producer is back on broker 1: librdkafka's
    # reconnect backoff (reconnect.backoff.max.ms, default 10 s) grew while it was down.
    total = n1 + NTX2 * PER_TX
    # The relay's side of the recovery: Kafka acknowledged the whole wave.
    h.wait_for(lambda: pg.slot()[0] >= wave_end, 60, "the slot to pass the wave",
               interval=0.05)
    acked = time.time() - t_up
    consumer.wait_distinct(total, 60, "every row after broker 1 came back", interval=0.05)
    recovery = time.time() - t_up
    consumer.wait_quiet(1.0)
    h.check(relay.alive(), "the relay exited during phase 2")

    # Checkpoint safety for the phase 2 snapshot; the other positions, read before each
    # fault, only bound duplicates (a snapshot there would race the stream).
    rows, distinct, dups = h.check_stream(pg, consumer.messages, [conf], [before_ids],
                                          dup_bounds_only=confirmed)
    h.check(dups == 0, f"{dups} duplicates although every fault was retriable "
            "(docs/guarantees.md: none)")
    text_log = relay.log_text()
    h.check("rebuilding the pipeline" not in text_log,
            "a retriable produce error made the relay rebuild the pipeline")
    rss = h.rss_kb(relay.proc.pid, "VmHWM")
    h.log(f"phase 1: {n1} rows through {', '.join(f[0] for f in faults)}: all delivered "
          f"{t_phase1:.2f}s after the first fault; phase 2: broker 1 down "
          f"{t_up - t_down:.1f}s, {during} messages consumed meanwhile ({held} held back), "
          f"the slot passed the wave {acked:.2f}s and the consumer had every row "
          f"{recovery:.2f}s after up")
    h.log(f"{rows} rows, {distinct} distinct events, {dups} duplicates; "
          f"relay peak RSS (VmHWM) {rss} kB")
    rc, took = relay.stop()
    h.check(rc == 0, f"exit {rc} after SIGTERM")


if __name__ == "__main__":
    h.main(test, brokers=3, topics=(f"{TOPIC}:4:3",))

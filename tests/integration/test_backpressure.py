"""Back-pressure: with a slow broker (300 ms per request) and at most 50 events in
flight, the relay spends most of its time unable to read WAL -- yet it keeps the
walsender alive (wal_sender_timeout is 2 s here, so a relay that went quiet would be
disconnected), delivers everything in order, and never holds more than the limit.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

NROWS = 1500


def test(env):
    pg = env.pg
    consumer = env.consumer()
    env.broker.command("rtt all 300")
    cfg = h.relay_config(pg, env.broker, extra="  max_inflight_events: 50\n")
    relay = env.relay(cfg).start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    pid = pg.psql("SELECT active_pid FROM pg_replication_slots")

    t0 = time.time()
    pg.psql(h.insert_sql(1, NROWS // 100, 100))
    consumer.wait_count(NROWS, 240)
    took = time.time() - t0
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.messages)
    log = relay.log_text()
    h.check("reconnecting" not in log and "terminating walsender" not in
            open(pg.logfile).read(), "the walsender timed out while the relay was back-pressured")
    h.check(pg.psql("SELECT active_pid FROM pg_replication_slots") == pid,
            "the replication connection was replaced")
    h.check(dups == 0, f"{dups} duplicates")
    h.check(took > 5, f"drained in {took:.1f}s: the broker was not slow, back-pressure untested")
    h.log(f"{rows} rows through a 300 ms broker with 50 events in flight in {took:.1f}s "
          f"({rows / took:.0f} events/s), wal_sender_timeout 2s never tripped, "
          f"{dups} duplicates")
    env.broker.command("rtt all 0")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test, pg_conf="wal_sender_timeout = 2s\n")

"""10,000 outbox rows in 100-row transactions arrive in Kafka with the right topic, key,
headers and value, in commit order per key; the slot is confirmed past the last row;
SIGTERM stops the relay cleanly within 10 s.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

NROWS = 10_000
PER_TX = 100


def test(env):
    pg = env.pg
    consumer = env.consumer()
    relay = env.relay().start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to start streaming")

    t0 = time.time()
    pg.psql(h.insert_sql(1, NROWS // PER_TX, PER_TX))
    t_inserted = time.time()
    end_lsn = pg.current_lsn()
    consumer.wait_count(NROWS, 120)
    t_delivered = time.time()
    h.wait_for(lambda: pg.slot()[0] >= end_lsn, 30, "the slot to be confirmed past the inserts")
    t_confirmed = time.time()
    h.log(f"{NROWS} rows: inserted in {t_inserted - t0:.2f}s, all delivered after "
          f"{t_delivered - t0:.2f}s, slot confirmed after {t_confirmed - t0:.2f}s "
          f"({NROWS / (t_delivered - t0):.0f} events/s end to end)")

    time.sleep(0.5)
    consumer.poll()
    msgs = consumer.messages
    # Exactly once, exactly as written, commit order per key (the 100 rows of a
    # transaction carry consecutive ce_pgindex values).
    h.check_exact(pg, msgs, NROWS)
    by_xid = {}
    for m in msgs:
        by_xid.setdefault(m["headers"]["ce_pgxid"], []).append(int(m["headers"]["ce_pgindex"]))
    h.check(len(by_xid) == NROWS // PER_TX, f"{len(by_xid)} transactions seen")
    for xid, idx in by_xid.items():
        h.check(sorted(idx) == list(range(PER_TX)), f"transaction {xid}: indexes {sorted(idx)[:5]}...")

    rc, took = relay.stop()
    h.check(rc == 0, f"relay exited with {rc} on SIGTERM")
    h.check(took < 10, f"SIGTERM took {took:.1f}s")
    h.log(f"SIGTERM: exit {rc} after {took:.2f}s")
    slot = pg.slot()
    h.check(not slot[1], "slot released")
    h.check(slot[0] >= end_lsn, "confirmed position kept")


if __name__ == "__main__":
    h.main(test)

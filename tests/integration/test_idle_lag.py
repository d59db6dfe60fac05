"""An idle outbox must not pin WAL: while another table (not published) writes about
100 MB of WAL, the slot's confirmed position keeps up -- the relay confirms the WAL
end of the walsender's keepalives whenever nothing is in flight -- and the lag
(pg_current_wal_lsn() - confirmed_flush_lsn) stays under 16 MB throughout.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

LIMIT = 16 * 1024 * 1024


def test(env):
    pg = env.pg
    relay = env.relay().start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    pg.psql("CREATE TABLE ballast (id bigserial, pad text)")
    start = pg.current_lsn()
    done = threading.Event()

    def writer():
        # ~100 MB of WAL in 1 MB transactions.
        pg.psql("".join("INSERT INTO ballast (pad) SELECT repeat('x', 1000) "
                        "FROM generate_series(1, 900); SELECT pg_sleep(0.03);\n"
                        for _ in range(100)))
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    worst = 0
    samples = 0
    while not done.is_set() or samples < 3:
        lag = int(pg.psql("SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM "
                          "pg_replication_slots WHERE slot_name = 'outbox_relay'"))
        worst = max(worst, lag)
        samples += 1
        time.sleep(0.05)
    t.join()
    written = pg.current_lsn() - start
    h.wait_for(lambda: int(pg.psql("SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM "
                                   "pg_replication_slots")) < 1024 * 1024, 30,
               "the slot to catch up")
    h.check(written > 80 * 1024 * 1024, f"only {written} bytes of WAL written")
    h.check(worst < LIMIT, f"slot lag reached {worst} bytes")
    h.log(f"{written / 1e6:.0f} MB of WAL from another table: worst slot lag {worst / 1e6:.1f} MB "
          f"over {samples} samples (limit 16 MB)")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test)

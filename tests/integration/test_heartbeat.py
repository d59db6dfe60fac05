"""Heartbeats and the slot-lag warning.

With the outbox idle, the relay emits a transactional heartbeat message every
postgres.heartbeat_interval (as the least-privilege role), which it then confirms
like any transaction: the slot keeps moving although no outbox row is written.
With an event stuck in flight (all brokers down) while another table writes WAL,
the slot's lag passes postgres.slot_lag_warning and the relay warns once; when the
brokers return and the slot catches up, it says so.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def test(env):
    pg, broker = env.pg, env.broker
    consumer = env.consumer()
    cfg = h.relay_config(pg, broker).replace(
        "  retry_interval: 1s\n",
        "  retry_interval: 1s\n  heartbeat_interval: 1s\n  slot_lag_warning: 2000000\n")
    relay = env.relay(cfg).start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    time.sleep(1.5)
    beats0 = int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                         "'outbox-relay-side'"))
    h.check(beats0 == 1, f"{beats0} side connections")
    c0 = pg.slot()[0]
    time.sleep(3.5)
    c1 = pg.slot()[0]
    h.check(c1 > c0, "the slot did not move while the outbox was idle (no heartbeats?)")
    h.check("heartbeat failed" not in relay.log_text(), relay.log_text())
    h.log(f"idle outbox: slot advanced by {c1 - c0} bytes in 3.5 s through heartbeats")

    broker.command("down all")
    pg.psql(h.insert_sql(1, 1, 1))  # stuck in flight: nothing can be confirmed past it
    pg.psql("CREATE TABLE ballast (pad text)")
    pg.psql("INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, 5000)")
    h.wait_for(lambda: "lags" in relay.log_text(), 15, "the slot-lag warning")
    broker.command("up all")
    consumer.wait_count(1, 60)
    h.wait_for(lambda: "lag is back" in relay.log_text(), 30, "the lag to recover")
    warnings = relay.log_text().count("WAL is piling up")
    h.check(warnings == 1, f"{warnings} lag warnings, want one per crossing")
    h.log("slot lag passed 2 MB with an event stuck in flight: warned once, then recovered")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test)

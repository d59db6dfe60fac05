"""Back-pressure during a broker outage: with every broker down and a 20 MB backlog
written meanwhile, the relay stops reading WAL at its in-flight limit (here
kafka.max_inflight_bytes, 1 MiB, binds before kafka.max_inflight_events) -- the
backlog stays in PostgreSQL, not in the relay's memory -- yet it keeps the walsender
alive (wal_sender_timeout is 2 s here, so a relay that went quiet would be cut off).
When the brokers return, everything arrives, in order, without duplicates.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

NROWS = 20_000
PAD = 1000  # bytes of padding per payload: ~20 MB of events


def test(env):
    pg = env.pg
    consumer = env.consumer()
    cfg = h.relay_config(pg, env.broker, extra="  max_inflight_events: 5000\n"
                         "  max_inflight_bytes: 1048576\n")
    relay = env.relay(cfg).start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    pg.psql(h.insert_sql(1, 10, 100))
    consumer.wait_count(1000, 60)
    walsender = pg.psql("SELECT active_pid FROM pg_replication_slots")
    base_rss = h.rss_kb(relay.proc.pid)

    env.broker.command("down all")
    t0 = time.time()
    sql = h.insert_sql(1001, NROWS // 100, 100).replace(
        "jsonb_build_object('n', g)", f"jsonb_build_object('n', g, 'pad', repeat('x', {PAD}))")
    pg.psql(sql)
    time.sleep(6)  # three times wal_sender_timeout
    rss = h.rss_kb(relay.proc.pid)
    lag = pg.psql("SELECT pg_current_wal_lsn() - sent_lsn FROM pg_stat_replication "
                  "WHERE application_name = 'outbox-relay'")
    backlog = int(float(lag or 0))
    h.check(pg.psql("SELECT active_pid FROM pg_replication_slots") == walsender,
            "the walsender was replaced during the outage (wal_sender_timeout tripped?)")
    h.check(backlog > 5_000_000, f"only {backlog} bytes of WAL left unsent: the relay kept "
            "reading while back-pressured")
    growth = rss - base_rss
    if not h.sanitized(env.args.build_dir):  # ASan's allocator quarantine inflates RSS
        h.check(growth < 16_000, f"relay memory grew by {growth} kB during the outage")
    h.log(f"outage {time.time() - t0:.1f}s with {NROWS} rows (~{NROWS * PAD // 1_000_000} MB) "
          f"written: relay RSS {base_rss} -> {rss} kB, {backlog} bytes of WAL held back "
          f"by PostgreSQL, walsender kept (wal_sender_timeout 2s)")

    env.broker.command("up all")
    consumer.wait_count(NROWS + 1000, 240)
    took = time.time() - t0
    consumer.wait_quiet(1.0)
    rows, distinct, dups = h.check_stream(pg, consumer.messages)
    h.check(dups == 0, f"{dups} duplicates")
    h.check("reconnecting" not in relay.log_text(), "the relay lost its connection")
    peak = h.rss_kb(relay.proc.pid, "VmHWM")
    h.log(f"all {rows} rows delivered {took:.1f}s after the outage began, {dups} duplicates, "
          f"peak RSS {peak} kB")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test, pg_conf="wal_sender_timeout = 2s\n", topics=("outbox.event.order:16",))

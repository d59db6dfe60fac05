"""Polling mode with after_publish: mark -- published rows get published_at instead of
being deleted, are not published again by later polls or after a restart, and are
deleted once older than polling.retention.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_polling_out_of_order import polling_config  # noqa: E402


def test(env):
    pg = env.pg
    consumer = env.consumer()
    cfg = polling_config(pg, env.broker, "  after_publish: mark\n  retention: 3s\n")
    relay = env.relay(cfg).start()
    h.wait_for(lambda: "this instance publishes" in relay.log_text(), 30, "the poller")
    pg.psql(h.insert_sql(1, 5, 100))
    consumer.wait_count(500, 30)
    h.wait_for(lambda: pg.psql("SELECT count(*) FROM public.outbox WHERE published_at IS NULL")
               == "0", 30, "rows to be marked published")
    marked = int(pg.psql("SELECT count(*) FROM public.outbox WHERE published_at IS NOT NULL"))
    h.check(marked == 500, f"{marked} rows marked, want 500 kept and marked")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    relay.start()  # marked rows must not be published again
    pg.psql(h.insert_sql(501, 1, 100))
    consumer.wait_count(600, 30)
    time.sleep(1.0)
    h.check(len(consumer.poll() and consumer.messages) == 600,
            f"{len(consumer.messages)} messages: marked rows were published again")
    t0 = time.time()
    h.wait_for(lambda: pg.psql("SELECT count(*) FROM public.outbox") == "0", 30,
               "retention to delete the published rows")
    h.log(f"mark mode: 600 rows published once each, marked, deleted by retention (3s) "
          f"{time.time() - t0:.1f}s after the last batch")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test)

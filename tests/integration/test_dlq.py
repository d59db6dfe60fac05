"""Per-message permanent errors: the broker rejects one message (MSG_SIZE_TOO_LARGE,
injected on the dev broker).

With kafka.dlq_topic set, the event goes to the dead-letter topic -- same key and
headers, no value (the value is what was too large: its size is in a header), plus
headers naming the original topic, the reason, the error, its code, the event id, its
position and the time -- and counts as handled: the events after it are published and
the slot moves past it.  Without a dead-letter topic, the relay stops with exit code
1, confirming nothing past the event; a restart (the broker healthy again) publishes
it.  (tests/integration/test_poison.py covers every other kind of poison event.)
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def one_row(n):
    return h.insert_sql(n, 1, 1)


def test(env):
    pg, broker = env.pg, env.broker
    broker.command("topic outbox.dlq 1")
    consumer = env.consumer(("outbox.event.order", "outbox.dlq"))

    # 1. With a dead-letter topic.
    cfg = h.relay_config(pg, broker, extra="  dlq_topic: outbox.dlq\n")
    relay = env.relay(cfg, name="with-dlq").start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    pg.psql(one_row(1))
    consumer.wait_count(1, 30)
    broker.command("error Produce 1 MSG_SIZE_TOO_LARGE")
    pg.psql(one_row(2))
    consumer.wait_count(2, 30)
    pg.psql(one_row(3))
    consumer.wait_count(3, 30)
    consumer.wait_quiet(1.0)
    by_topic = {}
    for m in consumer.messages:
        by_topic.setdefault(m["topic"], []).append(m)
    dlq = by_topic.get("outbox.dlq", [])
    main = by_topic.get("outbox.event.order", [])
    h.check(len(dlq) == 1 and len(main) == 2, f"{len(main)} published, {len(dlq)} dead-lettered")
    d = dlq[0]
    hd = d["headers"]
    # The value was what the broker refused for its size: left out, its size recorded.
    h.check(d["value"] is None, f"dead letter value {d['value']}")
    h.check(hd.get("dlq_value_omitted_size") == str(len('{"n": 2}')), f"headers {hd}")
    h.check(hd.get("dlq_reason") == "too-large", f"dlq_reason {hd}")
    h.check(hd.get("dlq_event_id") == hd.get("ce_id"), f"dlq_event_id {hd}")
    h.check(hd.get("dlq_commit_lsn") == hd.get("ce_pglsn") and hd.get("dlq_xid") == hd.get("ce_pgxid")
            and hd.get("dlq_index") == "0", f"position headers {hd}")
    h.check(hd.get("dlq_original_topic") == "outbox.event.order", f"headers {hd}")
    h.check(hd.get("dlq_error_code") == "MSG_SIZE_TOO_LARGE", f"dlq_error_code {hd}")
    h.check(hd.get("dlq_error") and hd.get("dlq_time", "").endswith("Z"), f"headers {hd}")
    h.check(hd.get("ce_id") and hd.get("ce_pglsn"), "original headers kept")
    h.check(d["key"] == "order-2", f"key {d['key']}")
    end = pg.current_lsn()
    h.wait_for(lambda: pg.slot()[0] >= end - 200, 15, "the slot to move past the dead letter")
    h.check(relay.alive(), "the relay stopped although a dead-letter topic is configured")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log(f"with dlq_topic: event 2 dead-lettered with headers "
          f"{sorted(k for k in hd if k.startswith('dlq_'))}, events 1 and 3 published")

    # 2. Without a dead-letter topic: stop, confirm nothing past it.
    relay = env.relay(name="no-dlq").start()
    h.wait_for(lambda: pg.slot()[1], 30, "the relay to stream again")
    broker.command("error Produce 1 MSG_SIZE_TOO_LARGE")
    pg.psql(one_row(4))
    rc = relay.wait(30)
    log = relay.log_text()
    h.check(rc == 1, f"exit {rc}, expected 1\n{log}")
    h.check("cannot be delivered" in log and "no dead-letter destination is configured" in log,
            log)
    # Not confirmed past it: the restart must deliver it (a slot that had moved past
    # the event would never stream it again).  (Comparing the slot with a reading
    # taken before the insert would be wrong: keepalives legitimately move it.)
    relay = env.relay(name="after").start()
    consumer.wait_count(4, 30)
    h.check(h.json.loads(consumer.messages[-1]["value"]) == {"n": 4}, "event 4 after restart")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")
    h.log("without dlq_topic: stopped with exit 1, slot not moved, event 4 published after "
          "restart")


if __name__ == "__main__":
    h.main(test)

"""All brokers down for longer than message.timeout.ms, mid-stream: deliveries fail,
the relay never confirms past them, rebuilds the pipeline (new producer, replay from
the slot) and -- once the brokers are back -- delivers every row, per-key order kept
except for the replayed suffix, duplicates only after the confirmed position.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_TX = 100
NTX = 100


def test(env):
    pg = env.pg
    consumer = env.consumer()
    cfg = h.relay_config(pg, env.broker, kafka_props="    message.timeout.ms: 2000\n")
    relay = env.relay(cfg).start()
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    pg.psql(h.insert_sql(1, NTX // 2, PER_TX))
    consumer.wait_count(NTX // 2 * PER_TX, 60)

    env.broker.command("down all")
    t_down = time.time()
    time.sleep(0.5)
    # Everything written from here on is stuck; the slot may move (keepalives, a
    # heartbeat, the relay's own state record) but never into the second half.
    pg.psql(h.insert_sql(NTX // 2 * PER_TX + 1, NTX // 2, PER_TX))
    h.wait_for(lambda: "rebuilding the pipeline" in relay.log_text(), 30,
               "a failed delivery to rebuild the pipeline")
    time.sleep(3)
    conf_during = pg.slot()[0]
    env.broker.command("up all")
    outage = time.time() - t_down
    h.check(relay.alive(), "the relay exited during the outage")
    consumer.wait_count(NTX * PER_TX, 120)
    recovered = time.time() - t_down
    consumer.wait_quiet(1.0)
    # Nothing was acknowledged while the brokers were down: the slot must not have
    # reached the commit of the first transaction written during the outage.
    stuck = min(h.lsn_to_int(m["headers"]["ce_pglsn"]) for m in consumer.messages
                if int(json_n(m)) > NTX // 2 * PER_TX)
    h.check(conf_during <= stuck,
            f"slot moved to {conf_during:X}, past the commit at {stuck:X} of the first "
            "transaction written during the outage")
    rows, distinct, dups = h.check_stream(pg, consumer.messages, [conf_during],
                                          [[m["headers"]["ce_id"] for m in consumer.messages
                                            if int(json_n(m)) <= NTX // 2 * PER_TX]])
    h.log(f"brokers down {outage:.1f}s (message.timeout.ms 2s); every row delivered "
          f"{recovered:.1f}s after the outage began; {rows} rows, {dups} duplicates")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")


def json_n(m):
    import json
    return json.loads(m["value"])["n"]


if __name__ == "__main__":
    h.main(test, brokers=1)

"""outbox-relay replay: dead-lettered events sent back once the cause is mended.

The relay runs with the dead-letter table and a producer limit (message.max.bytes)
too small for some events; the broker rejects another (TOPIC_AUTHORIZATION_FAILED,
injected on the dev broker); a third row cannot become an event at all.

1. --dry-run lists the three and changes nothing; a replay with the setting not yet
   mended sends the rejected event (the broker takes it now) and fails the large one;
   with the setting mended, the large one -- whose value the record left out -- is
   rebuilt from its outbox row and sent.  Both arrive with their original ids and
   headers and an outbox_replay_count header; the row that never was an event is not
   replayable and is said so.
2. A replay of 600 records SIGKILLed midway and run again: every event arrives, at
   most one twice.
3. The loop guard: a record that keeps failing is parked after replay.max_replays
   failed replays, and no replay takes it again.
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

LIMIT = 20000  # message.max.bytes before the mend


def config(env, limit):
    return h.relay_config(env.pg, env.broker,
                          extra=f"dead_letter:\n  table: public.outbox_dead_letter\n"
                                f"replay:\n  max_replays: 3\n",
                          kafka_props=f"    message.max.bytes: {limit}\n")


def replay(env, cfg_path, *args, timeout=120):
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "replay", "-c",
                        cfg_path, *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def dl_count(pg, where="true"):
    return int(pg.psql(f"SELECT count(*) FROM public.outbox_dead_letter WHERE {where}"))


def big_rows(first, n, size=LIMIT * 2):
    return "".join(
        "INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload) VALUES "
        f"('order', 'big-{k}', 'OrderCreated', jsonb_build_object('n', {k}, 'pad', "
        f"repeat('x', {size})));\n" for k in range(first, first + n))


def ids_of(pg, where):
    return pg.psql(f"SELECT id FROM public.outbox WHERE {where} ORDER BY id").split()


def check_replayed(pg, consumer, rejected, large):
    """The rejected event (replayed once) and the large one (failed once, then sent with
    its value rebuilt from its row) arrived where they were going, with their ids and
    headers, no dlq_* headers and their replay counts."""
    byid = {m["headers"]["ce_id"]: m for m in consumer.snapshot()}
    for rid, count, topic in ((rejected, "1", "outbox.event.denied"),
                              (large, "2", "outbox.event.order")):
        m = byid.get(rid)
        h.check(m is not None, f"event {rid} did not arrive")
        hd = m["headers"]
        h.check(hd.get("outbox_replay_count") == count and hd.get("ce_type") == "OrderCreated"
                and not any(k.startswith("dlq_") for k in hd) and m["topic"] == topic,
                f"replayed event {rid}: {m['topic']} {hd}")
    value = pg.psql(f"SELECT payload::text FROM public.outbox WHERE id = '{large}'")
    h.check(byid[large]["value"] == value, "the rebuilt value is not the outbox row's payload")


def mend_and_replay(env, relay):
    pg, broker = env.pg, env.broker
    # The rejected event on a topic of its own: librdkafka refuses a topic whose write
    # was denied until its metadata is refreshed, which would catch the others too.
    broker.command("topic outbox.event.denied 1")
    consumer = env.consumer(("outbox.event.order", "outbox.event.denied"))
    broker.command("error Produce 1 TOPIC_AUTHORIZATION_FAILED")
    pg.psql(h.insert_sql(1, 1, 1, aggregatetype="denied"))
    h.wait_for(lambda: dl_count(pg) == 1, 30, "the rejected event's record")
    pg.psql(big_rows(2, 1))
    pg.psql("INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload, headers) "
            "VALUES ('order', 'k', 'OrderCreated', '{\"n\": 3}', '[1, 2]')")
    pg.psql(h.insert_sql(4, 1, 5))
    h.wait_for(lambda: dl_count(pg) == 3, 30, "three dead-letter records")
    consumer.wait_distinct(5, 30, "the events around the poison")
    rejected, large = ids_of(pg, "payload->>'n' = '1'")[0], ids_of(pg, "aggregateid = 'big-2'")[0]

    cfg_small = relay.cfg
    rc, out = replay(env, cfg_small, "--dry-run")
    h.check(rc == 3 and out.count("would send") == 2 and "not-replayable" in out and
            "dry run: 2 would be sent, 1 skipped" in out, f"dry run: exit {rc}\n{out}")
    h.check(dl_count(pg, "replay_state IS NOT NULL OR replay_count > 0") == 0,
            "the dry run changed the table")
    time.sleep(1)
    h.check(consumer.poll() == 5, "the dry run sent something")

    rc, out = replay(env, cfg_small)
    h.check(rc == 3 and "replay: 1 sent, 1 skipped, 0 parked, 1 failed" in out,
            f"replay before the mend: exit {rc}\n{out}")
    consumer.wait_distinct(6, 30, "the rejected event, replayed")

    mended = env.relay(config(env, 1000000), name="mended")
    rc, out = replay(env, mended.cfg)
    h.check(rc == 0 and "replay: 1 sent, 0 skipped, 0 parked, 0 failed" in out and
            "value rebuilt from the outbox row" in out, f"replay after the mend: exit {rc}\n{out}")
    consumer.wait_distinct(7, 30, "the large event, replayed")
    check_replayed(pg, consumer, rejected, large)
    h.check(dl_count(pg, "replay_state = 'sent'") == 2 and
            dl_count(pg, "replay_state = 'not-replayable'") == 1, "the records' states")
    rc, out = replay(env, mended.cfg)
    h.check(rc == 0 and "replay: 0 sent" in out, f"a replay with nothing left: {out}")
    h.log("replay: dry run listed 2 to send and 1 not replayable and changed nothing; the "
          "rejected event sent, the large one failed until message.max.bytes was mended, "
          "then rebuilt from its outbox row and sent; original ids, outbox_replay_count 1 "
          "and 2")
    return consumer, mended


def interrupted(env, consumer, mended):
    pg = env.pg
    n = 600  # not scaled: fewer would be done before the kill lands
    before = dl_count(pg)
    pg.psql(big_rows(1000, n))
    h.wait_for(lambda: dl_count(pg) == before + n, 60, f"{n} more dead-letter records")
    ids = set(ids_of(pg, "aggregateid LIKE 'big-%' AND (payload->>'n')::int >= 1000"))
    seen_before = consumer.poll()
    proc = subprocess.Popen([os.path.join(env.args.build_dir, "outbox-relay"), "replay", "-c",
                             mended.cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    h.wait_for(lambda: dl_count(pg, "replay_state = 'sent'") >= 2 + n // 4, 60,
               "a quarter of the replay", interval=0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = dl_count(pg, "replay_state = 'sent'") - 2
    h.check(0 < done < n, f"the kill did not land midway ({done} of {n} sent)")
    rc, out = replay(env, mended.cfg)
    h.check(rc == 0 and f"replay: {n - done} sent" in out, f"resumed replay: exit {rc}\n{out}")
    consumer.wait_distinct(len({m["headers"]["ce_id"] for m in consumer.snapshot()} | ids), 60,
                           "every replayed event")
    time.sleep(1)
    new = [m["headers"]["ce_id"] for m in consumer.snapshot()[seen_before:]]
    h.check(set(new) == ids, f"{len(ids - set(new))} replayed events missing")
    h.check(len(new) - len(set(new)) <= 1, f"{len(new) - len(set(new))} events sent twice")
    h.log(f"replay: {n} records, the replay SIGKILLed after {done}, resumed: all {n} arrived, "
          f"{len(new) - len(set(new))} twice")


def loop_guard(env, relay):
    pg = env.pg
    before = dl_count(pg)
    pg.psql(big_rows(5000, 1))
    h.wait_for(lambda: dl_count(pg) == before + 1, 30, "one more record")
    outs = [replay(env, relay.cfg) for _ in range(5)]
    summaries = [out.strip().splitlines()[-1] for _, out in outs]
    h.check([rc for rc, _ in outs] == [3, 3, 3, 3, 0], f"exit codes {[rc for rc, _ in outs]}")
    h.check(summaries[:3] == ["replay: 0 sent, 0 skipped, 0 parked, 1 failed"] * 3 and
            summaries[3] == "replay: 0 sent, 0 skipped, 1 parked, 0 failed" and
            summaries[4] == "replay: 0 sent, 0 skipped, 0 parked, 0 failed",
            f"summaries {summaries}")
    h.check(dl_count(pg, "replay_state = 'parked' AND replay_count = 3") == 1, "parked record")
    h.log("replay: a record failing every time failed 3 times, was parked by the 4th replay "
          "(exit 3) and left alone by the 5th")


def test(env):
    relay = env.relay(config(env, LIMIT))
    h.start_streaming(env, relay)
    consumer, mended = mend_and_replay(env, relay)
    interrupted(env, consumer, mended)
    loop_guard(env, relay)
    rc, _ = relay.stop()
    h.check(rc == 0, f"relay exit {rc}")


if __name__ == "__main__":
    h.main(test)

"""outbox-relay replay from the dead-letter topic (kafka.dlq_topic), not the table.

The relay runs with a dead-letter topic only and a producer limit (message.max.bytes)
too small for some events; the broker rejects another (TOPIC_AUTHORIZATION_FAILED,
injected on the dev broker); a third row cannot become an event at all.  Each replay
reads the topic from its beginning and keeps every record's state in
replay.state_table (sql/009), keyed by topic, partition and offset.

1. --dry-run lists the three and changes nothing (and a time window before them
   selects none); --reason rejected sends the rejected event only; a replay with the
   setting not yet mended fails the large one and says the row is not replayable;
   with the setting mended the large one -- whose value the record left out -- is
   rebuilt from its outbox row and sent.  Original ids and headers, no dlq_* headers,
   an outbox_replay_count header.  A replay with nothing left sends nothing.
2. 300 records, the replay SIGKILLed midway and run again: every event arrives, at
   most one twice.
3. The loop guard: a record that keeps failing is parked after replay.max_replays (2)
   failed replays, and no replay takes it again.
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_replay import LIMIT, big_rows, check_replayed, ids_of, replay  # noqa: E402

DLQ = "outbox.dlq"


def config(env, limit):
    return h.relay_config(env.pg, env.broker,
                          extra=f"  dlq_topic: {DLQ}\nreplay:\n  max_replays: 2\n",
                          kafka_props=f"    message.max.bytes: {limit}\n")


def states(pg, state=None):
    where = f"replay_state = '{state}'" if state else "true"
    return int(pg.psql(f"SELECT count(*) FROM public.outbox_dead_letter_replay WHERE {where}"))


def summary(out):
    """The replay's summary line (the log lines on stderr come after it)."""
    lines = [ln for ln in out.splitlines() if ln.startswith(("replay", "dry run"))]
    return lines[-1] if lines else out


def mend_and_replay(env, relay, dlq):
    pg, broker = env.pg, env.broker
    consumer = env.consumer(("outbox.event.order", "outbox.event.denied"))
    broker.command("error Produce 1 TOPIC_AUTHORIZATION_FAILED")
    pg.psql(h.insert_sql(1, 1, 1, aggregatetype="denied"))
    dlq.wait_count(1, 30)
    pg.psql(big_rows(2, 1))
    pg.psql("INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload, headers) "
            "VALUES ('order', 'k', 'OrderCreated', '{\"n\": 3}', '[1, 2]')")
    pg.psql(h.insert_sql(4, 1, 5))
    dlq.wait_count(3, 30)
    consumer.wait_distinct(5, 30, "the events around the poison")
    reasons = sorted(m["headers"].get("dlq_reason") for m in dlq.snapshot())
    h.check(reasons == ["bad-row", "rejected", "too-large"], f"dead-letter reasons {reasons}")
    rejected, large = ids_of(pg, "payload->>'n' = '1'")[0], ids_of(pg, "aggregateid = 'big-2'")[0]

    small = relay.cfg
    rc, out = replay(env, small, "--dry-run", "--from", "topic")
    h.check(rc == 3 and out.count("would send") == 2 and "not-replayable" in out and
            summary(out) == "dry run: 2 would be sent, 1 skipped, 0 would be parked, 0 failed",
            f"dry run: exit {rc}\n{out}")
    rc, out = replay(env, small, "--dry-run", "--until", "2000-01-01 00:00Z")
    h.check(rc == 0 and summary(out).startswith("dry run: 0 would be sent, 0 skipped"),
            f"dry run of a window before every record: exit {rc}\n{out}")
    h.check(states(pg) == 0, "a dry run wrote the state table")
    time.sleep(1)
    h.check(consumer.poll() == 5, "a dry run sent something")

    rc, out = replay(env, small, "--reason", "rejected")
    h.check(rc == 0 and summary(out) == "replay: 1 sent, 0 skipped, 0 parked, 0 failed",
            f"replay of the rejected one: exit {rc}\n{out}")
    consumer.wait_distinct(6, 30, "the rejected event, replayed")
    h.check(states(pg, "sent") == 1 and states(pg) == 1, "the state after --reason rejected")

    rc, out = replay(env, small)  # no --from: the topic, the only destination configured
    h.check(rc == 3 and summary(out) == "replay: 0 sent, 1 skipped, 0 parked, 1 failed",
            f"replay before the mend: exit {rc}\n{out}")

    mended = env.relay(config(env, 1000000), name="mended")
    rc, out = replay(env, mended.cfg, "--from", "topic")
    h.check(rc == 0 and summary(out) == "replay: 1 sent, 0 skipped, 0 parked, 0 failed" and
            "value rebuilt from the outbox row" in out, f"replay after the mend: exit {rc}\n{out}")
    consumer.wait_distinct(7, 30, "the large event, replayed")
    check_replayed(pg, consumer, rejected, large)
    h.check(states(pg, "sent") == 2 and states(pg, "not-replayable") == 1,
            "the records' states")
    rc, out = replay(env, mended.cfg)
    h.check(rc == 0 and summary(out) == "replay: 0 sent, 0 skipped, 0 parked, 0 failed",
            f"a replay with nothing left: {out}")
    h.log("replay from the topic: dry run listed 2 to send and 1 not replayable and changed "
          "nothing; --reason rejected sent that one only; the large one failed until "
          "message.max.bytes was mended, then rebuilt from its outbox row and sent; original "
          "ids, outbox_replay_count 1 and 2; nothing left after")
    return consumer, mended


def interrupted(env, consumer, mended, dlq):
    pg = env.pg
    n = 300
    before = len(dlq.snapshot())
    pg.psql(big_rows(1000, n))
    dlq.wait_count(before + n, 60)
    ids = set(ids_of(pg, "aggregateid LIKE 'big-%' AND (payload->>'n')::int >= 1000"))
    seen_before = consumer.poll()
    sent_before = states(pg, "sent")
    proc = subprocess.Popen([os.path.join(env.args.build_dir, "outbox-relay"), "replay", "-c",
                             mended.cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    h.wait_for(lambda: states(pg, "sent") >= sent_before + n // 4, 60,
               "a quarter of the replay", interval=0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = states(pg, "sent") - sent_before
    h.check(0 < done < n, f"the kill did not land midway ({done} of {n} sent)")
    rc, out = replay(env, mended.cfg)
    h.check(rc == 0 and summary(out) == f"replay: {n - done} sent, 0 skipped, 0 parked, 0 failed",
            f"resumed replay: exit {rc}\n{out}")
    consumer.wait_distinct(len({m["headers"]["ce_id"] for m in consumer.snapshot()} | ids), 60,
                           "every replayed event")
    time.sleep(1)
    new = [m["headers"]["ce_id"] for m in consumer.snapshot()[seen_before:]]
    h.check(set(new) == ids, f"{len(ids - set(new))} replayed events missing")
    h.check(len(new) - len(set(new)) <= 1, f"{len(new) - len(set(new))} events sent twice")
    h.log(f"replay from the topic: {n} records, the replay SIGKILLed after {done}, resumed: "
          f"all {n} arrived, {len(new) - len(set(new))} twice")


def loop_guard(env, relay, dlq):
    pg = env.pg
    before = len(dlq.snapshot())
    pg.psql(big_rows(5000, 1))
    dlq.wait_count(before + 1, 30)
    outs = [replay(env, relay.cfg) for _ in range(4)]
    summaries = [summary(out) for _, out in outs]
    h.check([rc for rc, _ in outs] == [3, 3, 3, 0], f"exit codes {[rc for rc, _ in outs]}")
    h.check(summaries[:2] == ["replay: 0 sent, 0 skipped, 0 parked, 1 failed"] * 2 and
            summaries[2] == "replay: 0 sent, 0 skipped, 1 parked, 0 failed" and
            summaries[3] == "replay: 0 sent, 0 skipped, 0 parked, 0 failed",
            f"summaries {summaries}")
    h.check(int(pg.psql("SELECT count(*) FROM public.outbox_dead_letter_replay "
                        "WHERE replay_state = 'parked' AND replay_count = 2")) == 1,
            "parked record")
    h.log("replay from the topic: a record failing every time failed twice, was parked by "
          "the 3rd replay (exit 3) and left alone by the 4th")


def test(env):
    env.broker.command(f"topic {DLQ} 2")
    env.broker.command("topic outbox.event.denied 1")
    dlq = env.consumer((DLQ,), name="dlq")
    relay = env.relay(config(env, LIMIT))
    h.start_streaming(env, relay)
    consumer, mended = mend_and_replay(env, relay, dlq)
    interrupted(env, consumer, mended, dlq)
    loop_guard(env, relay, dlq)
    rc, _ = relay.stop()
    h.check(rc == 0, f"relay exit {rc}")


if __name__ == "__main__":
    h.main(test)

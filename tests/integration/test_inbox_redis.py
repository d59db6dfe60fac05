"""The inbox relay reading Redis Streams (inbox.broker: redis), against a real
redis-server from Debian (AOF, appendfsync always).

The outbox relay appends to the stream outbox.inbox.order (sink: redis) and the
inbox relay reads it into the shipping database's inbox, each entry's position being
its entry ID as a number (ms * 2^20 + seq):

1. Events while both relays are SIGKILLed at random and redis-server is SIGKILLed and
   started again halfway: every event in the inbox exactly once, per-key order of
   arrival kept, the position at the stream's last entry.
2. An entry that is not an event (appended by another client) is set aside with its
   reason; the event after it is written.
3. `check` finds the stream; `status --json` shows the position after its last entry;
   /readyz 200; a key that holds a string stops the inbox with the reason named.
4. Two streams with a backlog each, in batches of 10 (one XREAD may return more than
   a batch has room for): every event once, both positions at their ends.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from inboxlib import (admin_get, check_rows, broker_kills,  # noqa: E402
                      positions, setup_shipping, stranger_set_aside)
from test_redis import PASSWORD, RedisServer, config as outbox_config  # noqa: E402

STREAM = "outbox.inbox.order"


def inbox_config(env, srv, stream=STREAM):
    return f"""admin:
  listen: "127.0.0.1:0"
postgres:
  retry_interval: 1s
sink: redis
redis:
  url: "redis://:{PASSWORD}@127.0.0.1:{srv.port}/0"
inbox:
  broker: redis
  dsn: "{env.pg.dsn(db='shipping', user='shipping')}"
  consumer: shipping
  topics: ["{stream}"]
"""


def encode(entry_id):
    ms, seq = entry_id.decode().split("-")
    return int(ms) << 20 | int(seq)


def check_inbox(env, srv, total):
    """Every outbox row once, per-key order of arrival, the position after the last entry."""
    pg = env.pg
    check_rows(pg, total, STREAM)
    r = srv.client()
    end = encode(r.xrevrange(STREAM, count=1)[0][0]) + 1
    h.wait_for(lambda: positions(pg) == end, 30, f"the position to reach {end}")
    return r.xlen(STREAM)


def kills(env, srv, n_events, n_kills):
    def restart():
        srv.kill()
        time.sleep(1)
        srv.start()
    return broker_kills(env, "Redis", "redis-server (SIGKILL)", outbox_config(env.pg, srv, "inbox"),
                        inbox_config(env, srv), n_events, n_kills, 16, restart,
                        lambda total: check_inbox(env, srv, total))


def poison(env, srv, first):
    stranger_set_aside(env.pg, lambda: srv.client().xadd(STREAM, {"from": "elsewhere",
                                                                  "value": "not an event"}),
                       "from", first)
    h.log("inbox from Redis: an entry that is not an event set aside, the event after it "
          "written")


def checks(env, srv, inbox):
    relay = os.path.join(env.args.build_dir, "outbox-relay")
    r = subprocess.run([relay, "check", "-c", inbox.cfg], capture_output=True, text=True,
                       timeout=60)
    h.check(r.returncode == 0 and f'ok   redis stream "{STREAM}"' in r.stdout,
            f"check: exit {r.returncode}\n{r.stdout}{r.stderr}")
    r = subprocess.run([relay, "status", "--json", "-c", inbox.cfg], capture_output=True,
                       text=True, timeout=60)
    st = json.loads(r.stdout) if r.returncode == 0 else {}
    end = encode(srv.client().xrevrange(STREAM, count=1)[0][0]) + 1
    # An entry ID made a number is a position, not a count: no lag is shown.
    h.check(r.returncode == 0 and len(st["partitions"]) == 1 and
            st["partitions"][0]["position"] == end and st["partitions"][0]["lag"] is None and
            st["dead_letters"] == 1, f"status: exit {r.returncode}\n{r.stdout}{r.stderr}")
    h.check(admin_get(inbox, "/readyz")[0] == 200, "/readyz")
    srv.client().set("not.a.stream", "x")
    wrong = env.relay(inbox_config(env, srv, "not.a.stream").replace(
        "consumer: shipping", "consumer: wrong"), name="inbox-wrong", command="inbox").start()
    rc = wrong.wait(30)
    h.check(rc == 1 and "WRONGTYPE" in wrong.log_text(),
            f"a key that is not a stream: exit {rc}\n{wrong.log_text()[-600:]}")
    h.log("inbox from Redis: check finds the stream, status shows the position at its end, "
          "/readyz 200; a key holding a string stops the inbox with WRONGTYPE")


def two_streams(env, srv):
    """Two streams with a backlog each and a batch of 10: XREAD's COUNT is per stream, so
    one reply may hold more than the batch has room for; the inbox must take what fits
    and read the rest again.  Every event of both once, both positions at their ends."""
    pg, r = env.pg, srv.client()
    other = "outbox.inbox.other"
    for _, fields in r.xrange(STREAM, count=500):
        r.xadd(other, fields)
    ids = {f[b"id"] for s in (STREAM, other) for _, f in r.xrange(s) if b"id" in f}
    ends = sum(encode(r.xrevrange(s, count=1)[0][0]) + 1 for s in (STREAM, other))
    cfg = inbox_config(env, srv).replace("consumer: shipping", "consumer: multi").replace(
        f'topics: ["{STREAM}"]', f'topics: ["{STREAM}", "{other}"]\n  batch_size: 10')
    multi = env.relay(cfg, name="inbox-multi", command="inbox").start()

    def count():
        return int(pg.psql("SELECT count(*) FROM public.inbox WHERE consumer = 'multi'",
                           db="shipping"))

    def position():
        return int(pg.psql("SELECT coalesce(sum(next_offset), 0) FROM public.inbox_position "
                           "WHERE consumer = 'multi'", db="shipping"))
    h.wait_for(lambda: position() == ends, 120, "both streams read to their ends")
    h.check(count() == len(ids), f"{count()} rows for {len(ids)} distinct events")
    rc, _ = multi.stop()
    h.check(rc == 0, f"the two-stream inbox's exit {rc}")
    h.log(f"inbox from Redis: two streams in batches of 10: {len(ids)} distinct events, each "
          "once, both positions at their streams' ends")


def test(env):
    setup_shipping(env.pg)
    srv = RedisServer(env.tmp).start()
    try:
        n = h.scaled(10000, 1000)
        outbox, inbox = kills(env, srv, n, h.scaled(16, 4))
        poison(env, srv, n + 1)
        checks(env, srv, inbox)
        two_streams(env, srv)
        for relay in (inbox, outbox):
            rc, _ = relay.stop()
            h.check(rc == 0, f"{relay.name} exit {rc}")
    finally:
        srv.stop()


if __name__ == "__main__":
    h.main(test)

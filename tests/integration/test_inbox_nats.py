"""The inbox relay reading NATS JetStream (inbox.broker: nats), against a real
nats-server from Debian.

The outbox relay publishes to JetStream (sink: nats, stream OUTBOX holding outbox.>)
and the inbox relay reads the subject filter outbox.order.> into the shipping
database's inbox, each message's position being its stream sequence:

1. Events while both relays are SIGKILLed at random and nats-server is SIGKILLed and
   started again halfway: every event in the inbox exactly once, per-key order of
   arrival kept, the position at the stream's end.
2. A message that is not an event (published by another client) is set aside with its
   reason; the event after it is written.
3. `check` names the subject's stream; `status --json` shows the lag 0; /readyz 200.
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
from test_nats import NatsServer, config as outbox_config  # noqa: E402

FILTER = "outbox.order.>"


def inbox_config(env, srv):
    return f"""admin:
  listen: "127.0.0.1:0"
postgres:
  retry_interval: 1s
sink: nats
nats:
  url: "{srv.url}"
inbox:
  broker: nats
  dsn: "{env.pg.dsn(db='shipping', user='shipping')}"
  consumer: shipping
  topics: ["{FILTER}"]
"""


def check_inbox(env, srv, total):
    """Every outbox row once, per-key order of arrival, the position at the stream's end."""
    pg = env.pg
    check_rows(pg, total, FILTER)
    end = srv.last_seq() + 1
    h.wait_for(lambda: positions(pg) == end, 30, f"the position to reach {end}")
    return end - 1


def kills(env, srv, n_events, n_kills):
    def restart():
        srv.kill()
        time.sleep(1)
        srv.start()
    return broker_kills(env, "JetStream", "nats-server (SIGKILL)", outbox_config(env.pg, srv),
                        inbox_config(env, srv), n_events, n_kills, 15, restart,
                        lambda total: check_inbox(env, srv, total))


def poison(env, srv, inbox, first):
    async def publish(nc, js):
        await js.publish("outbox.order.stranger", b"not an event", headers={"x-from": "elsewhere"})
        return True
    stranger_set_aside(env.pg, lambda: h.check(srv.run(publish), "cannot publish"), "x-from",
                       first)
    h.log("inbox from JetStream: a message that is not an event set aside, the event after "
          "it written")


def checks(env, inbox):
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                        inbox.cfg], capture_output=True, text=True, timeout=60)
    h.check(r.returncode == 0 and f'ok   nats subject "{FILTER}": stream "OUTBOX"' in r.stdout,
            f"check: exit {r.returncode}\n{r.stdout}{r.stderr}")
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "status", "--json",
                        "-c", inbox.cfg], capture_output=True, text=True, timeout=60)
    st = json.loads(r.stdout) if r.returncode == 0 else {}
    h.check(r.returncode == 0 and len(st["partitions"]) == 1 and
            st["partitions"][0]["lag"] == 0 and st["dead_letters"] == 1,
            f"status: exit {r.returncode}\n{r.stdout}{r.stderr}")
    h.check(admin_get(inbox, "/readyz")[0] == 200, "/readyz")
    h.log("inbox from JetStream: check names the stream, status shows lag 0, /readyz 200")


def test(env):
    setup_shipping(env.pg)
    srv = NatsServer(env.tmp).start()
    try:
        h.check(srv.create_stream(), "cannot create the stream")
        n = h.scaled(10000, 1000)
        outbox, inbox = kills(env, srv, n, h.scaled(16, 4))
        poison(env, srv, inbox, n + 1)
        checks(env, inbox)
        for relay in (inbox, outbox):
            rc, _ = relay.stop()
            h.check(rc == 0, f"{relay.name} exit {rc}")
    finally:
        srv.stop()


if __name__ == "__main__":
    h.main(test)

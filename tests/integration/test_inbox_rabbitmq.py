"""The inbox relay reading a RabbitMQ stream queue (inbox.broker: rabbitmq), against a
real rabbitmq-server from Debian 12.

The outbox relay publishes to the exchange outbox (sink: rabbitmq); a stream queue
(x-queue-type: stream) bound to it keeps every message with its offset, and the inbox
relay reads it into the shipping database's inbox, each message's position being its
stream offset:

1. Events while both relays are SIGKILLed at random (rabbitmq-server is not
   restarted: kills() says why): every event in the inbox exactly once, per-key order of
   arrival kept, the position at the stream's end.
2. A message that is not an event (published by another client) is set aside with its
   reason; the event after it is written.
3. `check` finds the queue; /readyz 200; a classic queue (no offsets) stops the inbox
   with the reason named.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from inboxlib import (admin_get, check_rows, broker_kills,  # noqa: E402
                      positions, setup_shipping, stranger_set_aside)
from test_rabbitmq import RabbitServer, config as outbox_config, pika  # noqa: E402

QUEUE = "orders.stream"


def inbox_config(env, srv, queue=QUEUE):
    return f"""admin:
  listen: "127.0.0.1:0"
postgres:
  retry_interval: 1s
sink: rabbitmq
rabbitmq:
  url: "{srv.url()}"
  exchange: outbox
inbox:
  broker: rabbitmq
  dsn: "{env.pg.dsn(db='shipping', user='shipping')}"
  consumer: shipping
  topics: ["{queue}"]
"""


def declare(srv):
    """The stream queue, bound to the outbox exchange for the order events; and a
    classic queue, which the inbox must refuse."""
    conn = srv.connection()
    ch = conn.channel()
    ch.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "stream"})
    ch.queue_bind(QUEUE, "outbox", routing_key="order.#")
    ch.queue_declare("classic", durable=True)
    conn.close()


def stream_end(srv):
    """(messages in the stream, the offset after its last), read with pika: a stream
    queue does not tell its length to a declare."""
    conn = srv.connection()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    count, end = 0, 0
    for method, props, _ in ch.consume(QUEUE, arguments={"x-stream-offset": "first"},
                                       inactivity_timeout=2):
        if method is None:
            break
        count += 1
        end = max(end, props.headers["x-stream-offset"] + 1)
        ch.basic_ack(method.delivery_tag)
    conn.close()
    return count, end


def kills(env, srv, n_events, n_kills):
    # No broker restart here: after rabbitmq-server was restarted mid-stream (SIGKILL,
    # and SIGTERM too) its stream queue took no new message for minutes in 3 of 8 runs
    # of the sanitizer build -- the outbox relay connected and quiet, the inbox
    # connected and given nothing, the broker logging "member started unexpected".  An
    # open question (the closing note), not something this case may hide by passing
    # sometimes; the relays are SIGKILLed as for the other brokers.

    def check(total):
        check_rows(env.pg, total, QUEUE)
        held, end = stream_end(srv)
        h.wait_for(lambda: positions(env.pg) == end, 30, f"the position to reach {end}")
        return held
    return broker_kills(env, "RabbitMQ", "rabbitmq-server", outbox_config(env.pg, srv),
                        inbox_config(env, srv), n_events, n_kills, 17, None, check)


def poison(env, srv, first):
    def publish():
        conn = srv.connection()
        conn.channel().basic_publish("outbox", "order.stranger", b"not an event",
                                     pika.BasicProperties(headers={"from": "elsewhere"}))
        conn.close()
    stranger_set_aside(env.pg, publish, "from", first)
    h.log("inbox from RabbitMQ: a message that is not an event set aside, the event after "
          "it written")


def checks(env, srv, inbox):
    relay = os.path.join(env.args.build_dir, "outbox-relay")
    r = subprocess.run([relay, "check", "-c", inbox.cfg], capture_output=True, text=True,
                       timeout=60)
    h.check(r.returncode == 0 and f'ok   rabbitmq queue "{QUEUE}"' in r.stdout,
            f"check: exit {r.returncode}\n{r.stdout}{r.stderr}")
    h.check(admin_get(inbox, "/readyz")[0] == 200, "/readyz")
    classic = env.relay(inbox_config(env, srv, "classic").replace(
        "consumer: shipping", "consumer: classic"), name="inbox-classic",
        command="inbox").start()
    rc = classic.wait(30)
    h.check(rc == 1 and "x-queue-type stream" in classic.log_text(),
            f"a classic queue: exit {rc}\n{classic.log_text()[-800:]}")
    h.log("inbox from RabbitMQ: check finds the queue, /readyz 200; a classic queue stops "
          "the inbox, naming stream queues")


def test(env):
    setup_shipping(env.pg)
    srv = RabbitServer(env.tmp).start()
    try:
        declare(srv)
        n = h.scaled(10000, 1000)
        outbox, inbox = kills(env, srv, n, h.scaled(16, 4))
        poison(env, srv, n + 1)
        checks(env, srv, inbox)
        for relay in (inbox, outbox):
            rc, _ = relay.stop()
            h.check(rc == 0, f"{relay.name} exit {rc}")
    finally:
        srv.stop()


if __name__ == "__main__":
    h.main(test)

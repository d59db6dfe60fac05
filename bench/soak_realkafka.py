#!/usr/bin/env python3
"""soak_realkafka.py -- the long crash soak on a real Apache Kafka cluster, by hand.

Concurrent writers insert outbox rows as fast as they can (or at --rate events/s)
while the relay is SIGKILLed every --interval seconds, until the writers are done and
the relay was killed at least --kills times; then an independent consumer
(confluent-kafka, read_committed) accounts for every event id: no loss, the checkpoint
never ahead of what Kafka had acknowledged at each kill, duplicates only after a kill's
confirmed position, per-key order.  The logic is tests/realkafka/soak.py, which the
suite runs in a short version; docs/guarantees.md has the numbers of the last long run.

    python3 bench/soak_realkafka.py --build-dir build --events 12000000 --kills 40

Needs what the real-Kafka tests need (scripts/deps.sh: java, maven, python3-venv) and
disk for the cluster: about 2 kB per event with three replicas.
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "realkafka"))

from realkafka import KafkaCluster, h  # noqa: E402  (re-executes in its venv)
import soak  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=12_000_000)
    p.add_argument("--kills", type=int, default=40, help="at least this many SIGKILLs")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--interval", type=float, nargs=2, default=(2.0, 8.0),
                   metavar=("MIN", "MAX"), help="seconds between kills (uniform)")
    p.add_argument("--rate", type=float, default=None, help="events/s over all writers")
    p.add_argument("--json", help="write the result here as JSON")
    args, _ = p.parse_known_args()

    def test(env):
        with KafkaCluster(env.tmp, log=h.log) as kafka:
            r = soak.run(env, kafka, args.events, args.kills, writers=args.writers,
                         interval=tuple(args.interval), rate=args.rate)
        h.log(f"soak: {r['events']:,} events from {r['writers']} writers, {r['kills']} "
              f"SIGKILLs in {r['seconds']:.0f}s; {r['messages']:,} messages consumed, "
              f"{r['distinct']:,} distinct, {r['lost']} lost, {r['duplicates']:,} "
              f"duplicates; relay peak RSS {r['relay_peak_rss_kb'] / 1024:.1f} MB; "
              f"longest restart {r['restart_s_max']:.1f}s")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(r, f, indent=2)

    h.main(test, topics=())


if __name__ == "__main__":
    main()

"""The stdout sink: `sink: stdout` writes one structured CloudEvent JSON per line to
standard output (logs stay on standard error), and checkpoints like the Kafka sink:
after SIGTERM the slot is confirmed past every line written, and a restart writes
nothing twice.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test(env):
    pg = env.pg
    cfg = f"""sink: stdout
admin:
  listen: "127.0.0.1:0"
postgres:
  dsn: "{pg.dsn(user='outbox_relay')}"
  status_interval: 1s
"""
    path = os.path.join(env.tmp, "relay-stdout.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    out1 = os.path.join(env.tmp, "stdout.1.jsonl")
    err1 = open(os.path.join(env.tmp, "stdout-relay.1.log"), "w")
    relay = subprocess.Popen([os.path.join(env.args.build_dir, "outbox-relay"), "run", "-c",
                              path], stdout=open(out1, "w"), stderr=err1)
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")
    pg.psql(h.insert_sql(1, 5, 100))
    h.wait_for(lambda: len(read_lines(out1)) >= 500, 30, "500 lines on stdout")
    end_lsn = pg.current_lsn()
    relay.terminate()
    h.check(relay.wait(10) == 0, "relay exit code after SIGTERM")
    lines = read_lines(out1)
    h.check(len(lines) == 500, f"{len(lines)} lines for 500 rows")
    for e in lines:
        h.check(e["specversion"] == "1.0" and e["type"] == "OrderCreated", f"envelope {e}")
        h.check(e["source"] == "/app/public.outbox", e["source"])
        h.check(isinstance(e["data"], dict) and "n" in e["data"], "data embedded as JSON")
        h.check(e["pglsn"] and isinstance(e["pgindex"], int), "position attributes")
    ns = [e["data"]["n"] for e in lines]
    h.check(ns == sorted(ns) and len(set(ns)) == 500, "commit order, no duplicates")
    with open(os.path.join(env.tmp, "stdout-relay.1.log")) as f:
        h.check('"specversion"' not in f.read(), "events leaked into the log (stderr)")
    confirmed = pg.slot()[0]

    # Restart: more rows, and nothing from the first run again.
    out2 = os.path.join(env.tmp, "stdout.2.jsonl")
    relay = subprocess.Popen([os.path.join(env.args.build_dir, "outbox-relay"), "run", "-c",
                              path], stdout=open(out2, "w"), stderr=err1)
    h.wait_for(lambda: pg.slot()[1], 30, "the relay to stream again")
    pg.psql(h.insert_sql(501, 2, 100))
    h.wait_for(lambda: len(read_lines(out2)) >= 200, 30, "200 more lines")
    time.sleep(0.5)
    relay.terminate()
    h.check(relay.wait(10) == 0, "relay exit code after the second SIGTERM")
    again = [e["data"]["n"] for e in read_lines(out2)]
    h.check(again == list(range(501, 701)), f"second run wrote {again[:3]}... ({len(again)})")
    h.log(f"stdout sink: 500 + 200 lines, slot confirmed at {confirmed:X} after the first "
          "stop, 0 duplicates after restart")


if __name__ == "__main__":
    h.main(test)

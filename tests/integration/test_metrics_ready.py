"""The admin endpoint during a real run (docs/metrics.md, docs/operations.md).

/metrics moves with the work: after 3,000 events the published counter equals what
the consumer received, every event has a commit-to-ack observation, nothing is in
flight, the confirmed LSN is past the last insert, and the slot lag and source lag
come back to (about) zero once the outbox is idle.  /healthz answers 200 all along,
also while PostgreSQL and the brokers are down; /readyz turns 503 when PostgreSQL
stops and 200 again when it is back, and the same for the brokers.
"""

import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PER_TX = 100
NTX = 30


def admin_port(relay):
    def port():
        m = re.search(r"admin endpoint listening on \S+ \(port (\d+)\)", relay.log_text())
        return int(m.group(1)) if m else None
    h.wait_for(lambda: port() is not None, 15, "the admin endpoint")
    return port()


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics(port):
    status, text = get(port, "/metrics")
    h.check(status == 200, f"/metrics answered {status}")
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def test(env):
    pg, broker = env.pg, env.broker
    consumer = env.consumer()
    relay = env.relay().start()
    port = admin_port(relay)
    h.check(get(port, "/healthz")[0] == 200, "/healthz not 200 at start")
    h.wait_for(lambda: get(port, "/readyz")[0] == 200, 30, "/readyz to say ready")
    m0 = metrics(port)
    h.check(m0.get('outbox_relay_build_info{version="0.1.0"}') == 1, "no build_info")
    h.check(m0["outbox_relay_ready"] == 1, "ready gauge is not 1")

    # Work: 3,000 events; sample /metrics while they flow.
    job, text = h.start_insert_job(pg, h.insert_sql(1, NTX, PER_TX).replace(
        "COMMIT;\n", "COMMIT;\nSELECT pg_sleep(0.01);\n"))
    job.stdin.write(text)
    job.stdin.close()
    last, samples = 0, 0
    while consumer.poll() < NTX * PER_TX and samples < 600:
        p = metrics(port)["outbox_relay_events_published_total"]
        h.check(p >= last, f"published counter went back from {last} to {p}")
        last, samples = p, samples + 1
        time.sleep(0.05)
    h.check(job.wait(timeout=60) == 0, "insert job failed")
    end_lsn = pg.current_lsn()
    consumer.wait_count(NTX * PER_TX, 60)
    consumer.wait_quiet(1.0)
    h.wait_for(lambda: metrics(port)["outbox_relay_confirmed_lsn"] >= end_lsn, 20,
               "the confirmed LSN metric to pass the inserts")
    m = metrics(port)
    n = len(consumer.messages)
    h.check(m["outbox_relay_events_published_total"] == n,
            f"published {m['outbox_relay_events_published_total']} != consumed {n}")
    h.check(m["outbox_relay_events_received_total"] == n, "received counter")
    h.check(m["outbox_relay_commit_to_ack_seconds_count"] == n, "histogram count")
    h.check(m['outbox_relay_commit_to_ack_seconds_bucket{le="+Inf"}'] == n, "+Inf bucket")
    h.check(m["outbox_relay_inflight_events"] == 0 and m["outbox_relay_inflight_bytes"] == 0,
            "events still in flight after everything was consumed")
    h.check(m["outbox_relay_publish_errors_total"] == 0, "publish errors")
    p99_bucket = min(float(re.search(r'le="([^"]+)"', k).group(1))
                     for k, v in m.items()
                     if k.startswith("outbox_relay_commit_to_ack_seconds_bucket")
                     and v >= 0.99 * n)
    h.log(f"{n} events: published counter {m['outbox_relay_events_published_total']:.0f}, "
          f"{samples} scrapes during the run, commit-to-ack p99 <= {p99_bucket} s, "
          f"mean {m['outbox_relay_commit_to_ack_seconds_sum'] / n * 1000:.1f} ms")

    # Idle: the lags come back to (about) zero.  Not exactly: while idle the relay
    # records its position once per status interval (docs/guarantees.md, "History
    # check"), and the record's own WAL, a few hundred bytes, is what the slot then
    # lags by until the next one.
    lags = []

    def lag_small():
        lags.append(metrics(port)["outbox_relay_replication_slot_lag_bytes"])
        return lags[-1] <= 1024
    h.wait_for(lag_small, 20, "the slot lag metric to return to under 1 KiB")
    server = int(pg.psql("SELECT pg_current_wal_lsn() - confirmed_flush_lsn "
                         "FROM pg_replication_slots WHERE slot_name = 'outbox_relay'"))
    h.check(server <= 4096, f"the server says the slot lags {server} bytes")
    h.log(f"idle: slot lag metric {lags[-1]:.0f} bytes (server: {server}) after "
          f"{len(lags)} scrapes")
    h.wait_for(lambda: metrics(port)["outbox_relay_source_lag_seconds"] < 2, 20,
               "the source lag to return to about 0")

    # PostgreSQL stops: alive but not ready; back: ready.
    # A fast shutdown waits for the walsender's client to confirm the end of WAL; the
    # relay must confirm it although the state record can no longer be written.
    t0 = time.time()
    pg.stop("fast")
    t_stop = time.time() - t0
    h.check(t_stop < 10, f"PostgreSQL took {t_stop:.1f}s to stop with the relay connected")
    t0 = time.time()
    h.wait_for(lambda: get(port, "/readyz")[0] == 503, 15, "/readyz to turn 503")
    t_unready = time.time() - t0
    h.check(get(port, "/healthz")[0] == 200, "/healthz failed while PostgreSQL was down")
    h.check(metrics(port)["outbox_relay_ready"] == 0, "ready gauge stayed 1")
    status, body = get(port, "/readyz")
    h.log(f"PostgreSQL fast shutdown took {t_stop:.2f}s; /readyz 503 after {t_unready:.2f}s "
          f"({body.strip()!r}), /healthz 200")
    pg.ctl("start", "-w", "-l", pg.logfile)
    t0 = time.time()
    h.wait_for(lambda: get(port, "/readyz")[0] == 200, 30, "/readyz to turn 200 again")
    h.log(f"PostgreSQL back: /readyz 200 after {time.time() - t0:.2f}s")
    h.check(metrics(port)["outbox_relay_reconnects_total"] >= 1, "no reconnect counted")

    # Brokers down: not ready; back: ready.
    broker.command("down all")
    t0 = time.time()
    h.wait_for(lambda: get(port, "/readyz")[0] == 503, 30, "/readyz to turn 503 (brokers)")
    status, body = get(port, "/readyz")
    h.check("kafka" in body, f"/readyz does not say why: {body!r}")
    h.log(f"brokers down: /readyz 503 after {time.time() - t0:.2f}s ({body.strip()!r})")
    broker.command("up all")
    t0 = time.time()
    h.wait_for(lambda: get(port, "/readyz")[0] == 200, 30, "/readyz to turn 200 (brokers)")
    h.log(f"brokers back: /readyz 200 after {time.time() - t0:.2f}s")

    # Still relaying after both outages, and the counter follows.
    pg.psql(h.insert_sql(NTX * PER_TX + 1, 1, 10))
    consumer.wait_count(NTX * PER_TX + 10, 60)
    h.wait_for(lambda: metrics(port)["outbox_relay_events_published_total"] ==
               len(consumer.messages), 10, "the counter to follow the last events")
    rc, _ = relay.stop()
    h.check(rc == 0, f"exit {rc}")


if __name__ == "__main__":
    h.main(test)

"""JSON logs, configuration from the environment, secrets kept out of every output, and
the check and status commands against real servers.

The relay's role gets a real password (scram-sha-256 in pg_hba.conf for that role), and
the relay is given the DSN holding it only through OUTBOX_RELAY_POSTGRES_DSN_FILE; a
Kafka secret comes through OUTBOX_RELAY_KAFKA_PROPERTIES_SASL_PASSWORD_FILE.  The file's
own dsn is an unset ${VAR}: the environment wins without the file's value being read.
Then:

  * with log.format json every line the relay writes is one JSON object with time
    (RFC 3339 UTC, milliseconds), level and msg, and fields where given;
  * events are delivered, so the password really was used;
  * neither secret appears in the log, nor in the output of check and status;
  * `status --json` parses and shows the active slot and the recorded checkpoint;
    `status` and `check` (online) succeed; `check` with a wrong password exits 1 with
    the reason and still shows no password;
  * a numeric key overridden with a bad value fails with exit 2 naming the variable,
    for run and for check; `check --offline` works from the environment alone.
"""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PASSWORD = "Zq9 pw'7781-secret"      # a space and a quote: the DSN must quote it
PW_TOKENS = ["Zq9", "pw'7781", "7781-secret"]
KAFKA_SECRET = "kafka-Tk77-secret"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"debug", "info", "warn", "error"}


def no_secret(text, what):
    for token in PW_TOKENS + [KAFKA_SECRET, "Tk77"]:
        h.check(token not in text, f"secret {token!r} appears in {what}:\n{text}")


def relay_cmd(env, args, extra_env, timeout=60):
    e = dict(os.environ)
    e.update(extra_env)
    return subprocess.run([os.path.join(env.args.build_dir, "outbox-relay")] + args,
                          capture_output=True, text=True, env=e, timeout=timeout)


def check_json_log(text):
    """Every line one JSON object with time/level/msg; returns the parsed lines."""
    lines = [line for line in text.split("\n") if line != ""]
    h.check(lines, "the relay wrote no log")
    parsed = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise h.TestFailure(f"log line is not JSON ({e}): {line!r}")
        h.check(isinstance(obj, dict), f"log line is not an object: {line!r}")
        h.check(set(obj) <= {"time", "level", "msg", "fields"}, f"unexpected members: {line!r}")
        h.check(TIME_RE.match(obj.get("time", "")), f"bad time: {line!r}")
        h.check(obj.get("level") in LEVELS, f"bad level: {line!r}")
        h.check(isinstance(obj.get("msg"), str), f"no msg: {line!r}")
        if "fields" in obj:
            h.check(isinstance(obj["fields"], dict) and obj["fields"], f"bad fields: {line!r}")
        parsed.append(obj)
    return parsed


def test(env):
    pg = env.pg
    tmp = env.tmp

    # The relay's role gets a password, and must use it.
    pg.psql(f"ALTER ROLE outbox_relay PASSWORD '{PASSWORD.replace(chr(39), chr(39) * 2)}'")
    pg.write_hba("local all all trust\n"
                 "host all outbox_relay 127.0.0.1/32 scram-sha-256\n"
                 "host all all 127.0.0.1/32 trust\n"
                 "host replication all 127.0.0.1/32 trust\n")
    pg.ctl("reload")

    quoted = PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    dsn = f"{pg.dsn(user='outbox_relay')} password='{quoted}'"
    dsn_file = os.path.join(tmp, "dsn.secret")
    with open(dsn_file, "w") as f:
        f.write(dsn + "\n")
    kafka_file = os.path.join(tmp, "kafka.secret")
    with open(kafka_file, "w") as f:
        f.write(KAFKA_SECRET + "\n")
    secret_env = {
        "OUTBOX_RELAY_POSTGRES_DSN_FILE": dsn_file,
        "OUTBOX_RELAY_KAFKA_PROPERTIES_SASL_PASSWORD_FILE": kafka_file,
        # Another key from the environment, checked in the start line's fields below.
        "OUTBOX_RELAY_POSTGRES_STATUS_INTERVAL": "1s",
    }
    # The file's dsn references a variable that is not set: overridden, never expanded.
    config = f"""postgres:
  dsn: "${{OUTBOX_RELAY_TEST_UNSET_DSN}}"
  retry_interval: 1s
kafka:
  brokers: "{env.broker.bootstrap}"
  properties:
    linger.ms: 5
log:
  level: debug
  format: json
admin:
  listen: ""
"""
    consumer = env.consumer()
    relay = env.relay(config)
    relay.start(env=secret_env)
    h.wait_for(lambda: (pg.slot() or (0, False))[1], 30, "the relay to stream")

    pg.psql(h.insert_sql(1, 5, 10))
    consumer.wait_count(50, 60)
    h.log(f"{len(consumer.messages)} events delivered with the password from a _FILE variable")

    # status --json while the relay streams: the active slot and the recorded checkpoint.
    r = relay_cmd(env, ["status", "-c", relay.cfg, "--json"], secret_env)
    h.check(r.returncode == 0, f"status --json exited {r.returncode}: {r.stderr}")
    no_secret(r.stdout + r.stderr, "status --json")
    st = json.loads(r.stdout)
    h.check(st["mode"] == "replication", f"status mode: {st}")
    slot = st["slot"]
    h.check(slot["name"] == "outbox_relay" and slot["exists"] and slot["active"],
            f"status slot: {slot}")
    h.check(isinstance(slot["active_pid"], int) and slot["plugin"] == "pgoutput",
            f"status slot: {slot}")
    h.check(isinstance(slot["lag_bytes"], int) and slot["lag_bytes"] >= 0,
            f"status lag: {slot}")
    h.lsn_to_int(slot["confirmed_flush_lsn"])
    h.check(st["publication"]["exists"] and "public.outbox" in st["publication"]["tables"],
            f"status publication: {st['publication']}")
    cp = st["checkpoint"]
    h.check(cp["table"] == "public.outbox_relay_state" and cp["table_exists"] and cp["found"],
            f"status checkpoint: {cp}")
    h.lsn_to_int(cp["confirmed_lsn"])
    h.log(f"status --json: slot active at {slot['confirmed_flush_lsn']}, "
          f"lag {slot['lag_bytes']} bytes, checkpoint {cp['confirmed_lsn']}")

    r = relay_cmd(env, ["status", "-c", relay.cfg], secret_env)
    h.check(r.returncode == 0 and 'slot "outbox_relay": active' in r.stdout,
            f"status exited {r.returncode}:\n{r.stdout}{r.stderr}")
    h.log(f"status:\n{r.stdout}")
    no_secret(r.stdout + r.stderr, "status")

    # check, online: everything in order (the slot is busy: this instance would wait).
    r = relay_cmd(env, ["check", "-c", relay.cfg], secret_env)
    out = r.stdout + r.stderr
    h.check(r.returncode == 0, f"check exited {r.returncode}:\n{out}")
    no_secret(out, "check")
    h.check("password=********" in out, f"check does not show the masked DSN:\n{out}")
    h.check("sasl.password = ********" in out, f"check does not show the masked property:\n{out}")
    h.check("check passed" in out and "is active (pid" in out, f"check output:\n{out}")
    h.log(f"check:\n{r.stdout}")

    # check with a wrong password: exit 1, the reason, and still no password.
    bad_dsn = os.path.join(tmp, "bad-dsn.secret")
    with open(bad_dsn, "w") as f:
        f.write(f"{pg.dsn(user='outbox_relay')} password=Zq9-wrong-7781\n")
    r = relay_cmd(env, ["check", "-c", relay.cfg],
                  dict(secret_env, OUTBOX_RELAY_POSTGRES_DSN_FILE=bad_dsn))
    out = r.stdout + r.stderr
    h.check(r.returncode == 1, f"check with a wrong password exited {r.returncode}:\n{out}")
    h.check("password authentication failed" in r.stderr, f"no reason given:\n{out}")
    no_secret(out, "check with a wrong password")

    rc, took = relay.stop()
    h.check(rc == 0, f"relay exited {rc} on SIGTERM")
    text = relay.log_text()
    no_secret(text, "the relay's log")
    lines = check_json_log(text)
    start = [ln for ln in lines if "starting" in ln["msg"]]
    h.check(start and start[0]["level"] == "info", "no start line")
    fields = start[0].get("fields", {})
    h.check(fields.get("slot") == "outbox_relay" and fields.get("mode") == "replication",
            f"start line fields: {fields}")
    h.check("password=********" in fields.get("dsn", ""), f"start line dsn: {fields}")
    h.check(any(ln["level"] == "debug" for ln in lines), "no debug line at log.level debug")
    h.log(f"{len(lines)} log lines, all JSON, no secret; start fields {sorted(fields)}")

    # Polling mode, switched on from the environment: status shows the outbox backlog
    # (replication mode deletes nothing, so all 50 rows are there) and no active poller;
    # check looks at the polling columns and privileges instead of the slot.
    polling = dict(secret_env, OUTBOX_RELAY_POSTGRES_MODE="polling")
    r = relay_cmd(env, ["status", "-c", relay.cfg, "--json"], polling)
    h.check(r.returncode == 0, f"status --json (polling) exited {r.returncode}: {r.stderr}")
    st = json.loads(r.stdout)
    h.check(st["mode"] == "polling" and st["outbox"]["exists"], f"polling status: {st}")
    h.check(st["outbox"]["unpublished_rows"] == 50, f"polling backlog: {st['outbox']}")
    h.check(st["outbox"]["oldest_age_seconds"] >= 0, f"polling backlog: {st['outbox']}")
    h.check(st["poller"] == {"active": False, "pid": None}, f"poller: {st['poller']}")
    r = relay_cmd(env, ["check", "-c", relay.cfg], polling)
    out = r.stdout + r.stderr
    h.check(r.returncode == 0 and "mode            polling" in out,
            f"check (polling) exited {r.returncode}:\n{out}")
    no_secret(out, "check (polling)")

    # A numeric key with a bad value in the environment: exit 2, the variable named.
    bad = dict(secret_env, OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS="lots")
    for cmd in (["run"], ["check"], ["check", "--offline"]):
        r = relay_cmd(env, cmd + ["-c", relay.cfg], bad)
        h.check(r.returncode == 2, f"{cmd}: exit {r.returncode}, expected 2: {r.stderr}")
        h.check("environment variable OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS: "
                "\"kafka.max_inflight_events\" must be an integer, got \"lots\"" in r.stderr,
                f"{cmd}: {r.stderr}")
        no_secret(r.stdout + r.stderr, f"{cmd} with a bad variable")
    # With the format asked for in the environment, even that error is a JSON line.
    r = relay_cmd(env, ["run", "-c", relay.cfg], dict(bad, OUTBOX_RELAY_LOG_FORMAT="json"))
    h.check(r.returncode == 2, f"run: exit {r.returncode}")
    err = check_json_log(r.stderr)
    h.check(len(err) == 1 and "OUTBOX_RELAY_KAFKA_MAX_INFLIGHT_EVENTS" in err[0]["msg"]
            and err[0]["level"] == "error", f"run: {r.stderr}")

    # No file at all: the environment alone.
    only_env = dict(secret_env, OUTBOX_RELAY_KAFKA_BROKERS=env.broker.bootstrap,
                    OUTBOX_RELAY_ADMIN_LISTEN="")
    e = {k: v for k, v in os.environ.items() if k != "OUTBOX_RELAY_CONFIG"}
    e.update(only_env)
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "--offline"],
                       capture_output=True, text=True, env=e, timeout=60)
    h.check(r.returncode == 0 and 'configuration "environment": ok' in r.stdout,
            f"check --offline from the environment: {r.returncode}\n{r.stdout}{r.stderr}")
    no_secret(r.stdout + r.stderr, "check --offline")
    r = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "status", "--json"],
                       capture_output=True, text=True, env=e, timeout=60)
    h.check(r.returncode == 0 and json.loads(r.stdout)["slot"]["exists"],
            f"status from the environment: {r.returncode}\n{r.stdout}{r.stderr}")
    no_secret(r.stdout + r.stderr, "status from the environment")


if __name__ == "__main__":
    h.main(test)

"""The history check (postgres.history_check, docs/guarantees.md): the relay records in
public.outbox_relay_state the system, timeline and position it confirmed, before it
confirms it, and refuses to run -- exit 1, a message that says what happened and how
to accept it, nothing published, the slot untouched -- when the server no longer
matches that record:

  1. the slot was dropped and recreated while the relay was stopped (rows committed in
     between would silently be skipped): refused; after the operator deletes the row
     the relay starts from the new slot and records it again;
  2. the slot was dropped: refused, and the slot is not recreated;
  3. the database was restored from a real pg_basebackup taken earlier (the backup
     has no slots and an older record): refused;
  4. the record names another system identifier, another timeline, or a position past
     the server's WAL end (what a different cluster, a failover or a point-in-time
     restore look like; made by editing the row): each refused;

and the record is never behind the slot's confirmed position while the relay runs.
"""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

STATE = "public.outbox_relay_state"


def state_row(pg):
    row = pg.psql(f"SELECT system_identifier, timeline, confirmed_lsn FROM {STATE} "
                  "WHERE slot_name = 'outbox_relay'")
    if not row:
        return None
    sysid, tli, lsn = row.split("|")
    return sysid, int(tli), h.lsn_to_int(lsn)


def insert(pg, first, n):
    pg.psql(h.insert_sql(first, 1, n))


def run_until_delivered(env, relay, consumer, total):
    relay.start()
    consumer.wait_count(total, 60)
    # The record is written before the slot is confirmed: never behind it.
    for _ in range(20):
        slot, row = env.pg.slot(), state_row(env.pg)
        h.check(row is not None and slot[0] <= row[2],
                f"slot at {slot[0]:X} is ahead of the record {row}")
    rc, took = relay.stop()
    h.check(rc == 0, f"relay exited with {rc} on SIGTERM")


def expect_refusal(env, relay, consumer, words, before):
    """The relay exits 1 within 20 s naming words, and publishes nothing."""
    relay.start()
    rc = relay.wait(20)
    text = relay.log_text()
    h.check(rc == 1, f"relay exited with {rc}, expected 1; log:\n{text}")
    for w in words:
        h.check(w in text, f"refusal does not say {w!r}:\n{text}")
    h.check("DELETE FROM public.outbox_relay_state WHERE slot_name = 'outbox_relay'" in text,
            f"refusal does not say how to accept the change:\n{text}")
    n = consumer.wait_quiet(1.0)
    h.check(n == before, f"{n - before} events published by a refused relay")
    line = [ln for ln in text.splitlines() if "relay" in ln and words[0] in ln]
    h.log("refused: " + (line[0][:200] if line else text.splitlines()[-1][:200]))


def test(env):
    pg = env.pg
    consumer = env.consumer()
    relay = env.relay()

    # A first run records the slot.
    insert(pg, 1, 100)
    run_until_delivered(env, relay, consumer, 100)
    row = state_row(pg)
    sysid = pg.psql("SELECT system_identifier FROM pg_control_system()")
    tli = int(pg.psql("SELECT timeline_id FROM pg_control_checkpoint()"))
    h.check(row[0] == sysid and row[1] == tli,
            f"record {row} does not name system {sysid} timeline {tli}")
    h.check(row[2] >= pg.slot()[0], "record behind the slot after a clean stop")
    h.log(f"recorded: system {sysid}, timeline {tli}, confirmed {row[2]:X}")

    # 1. Slot recreated while stopped: rows 101..150 would be skipped.
    insert(pg, 101, 50)
    pg.psql("SELECT pg_drop_replication_slot('outbox_relay')")
    pg.psql("SELECT pg_create_logical_replication_slot('outbox_relay', 'pgoutput')")
    recreated_at = pg.slot()[0]
    expect_refusal(env, relay, consumer, ["was recreated or advanced by another consumer"], 100)
    h.check(pg.slot()[0] == recreated_at, "a refused relay moved the slot")

    # Accepting the new slot: delete the record; the relay records it afresh and streams
    # what commits from now on (101..150 are the loss the operator accepted).
    pg.psql(f"DELETE FROM {STATE} WHERE slot_name = 'outbox_relay'")
    relay.start()
    h.wait_for(lambda: pg.slot()[1], 30, "the relay to stream from the new slot")
    insert(pg, 151, 50)
    consumer.wait_count(150, 60)
    rc, _ = relay.stop()
    h.check(rc == 0, f"relay exited with {rc}")
    h.check("recorded slot \"outbox_relay\"" in relay.log_text(), "no new record logged")
    ids = {json.loads(m["value"])["n"] for m in consumer.messages}
    h.check(ids == set(range(1, 101)) | set(range(151, 201)),
            "after accepting, the relay published something else than rows 1-100, 151-200")

    # 2. Slot dropped: refused, and not recreated behind the operator's back.
    pg.psql("SELECT pg_drop_replication_slot('outbox_relay')")
    expect_refusal(env, relay, consumer, ["does not exist, but this relay published"], 150)
    h.check(pg.slot() is None, "a refused relay created the slot")
    # `check` foresees the refusal instead of promising to create the slot.
    chk = subprocess.run([os.path.join(env.args.build_dir, "outbox-relay"), "check", "-c",
                          relay.cfg], capture_output=True, text=True, timeout=60)
    # ...in the words the relay itself uses (history.c serves both).
    h.check(chk.returncode == 1 and "will refuse to run" in chk.stdout + chk.stderr
            and "does not exist, but this relay published" in chk.stdout,
            f"check exited {chk.returncode}:\n{chk.stdout}{chk.stderr}")
    pg.psql("SELECT pg_create_logical_replication_slot('outbox_relay', 'pgoutput')")
    pg.psql(f"DELETE FROM {STATE} WHERE slot_name = 'outbox_relay'")

    # 3. A real restore: back up now, publish more, then put the backup back.
    relay.start()
    h.wait_for(lambda: pg.slot()[1], 30, "the relay to stream")
    insert(pg, 201, 50)
    consumer.wait_count(200, 60)
    backup = os.path.join(pg.dir, "backup")  # pg.dir belongs to the server's user
    subprocess.run(h.as_pg_user([os.path.join(pg.bindir, "pg_basebackup"), "-h", "127.0.0.1",
                                 "-p", str(pg.port), "-U", "postgres", "-D", backup,
                                 "-X", "stream", "-c", "fast", "--no-sync"]), check=True, cwd="/")
    insert(pg, 251, 50)
    consumer.wait_count(250, 60)
    rc, _ = relay.stop()
    h.check(rc == 0, f"relay exited with {rc}")
    pg.stop()
    shutil.rmtree(pg.data)
    shutil.move(backup, pg.data)
    pg.ctl("start", "-w", "-l", pg.logfile)
    h.check(pg.slot() is None, "the backup brought a slot back")
    expect_refusal(env, relay, consumer, ["does not exist, but this relay published"], 250)

    # 4. Another system, another timeline, a position past the WAL end: edit the record.
    pg.psql("SELECT pg_create_logical_replication_slot('outbox_relay', 'pgoutput')")
    pg.psql(f"DELETE FROM {STATE} WHERE slot_name = 'outbox_relay'")
    relay.start()
    h.wait_for(lambda: state_row(pg) is not None and pg.slot()[1], 30, "a fresh record")
    rc, _ = relay.stop()
    h.check(rc == 0, f"relay exited with {rc}")
    good = state_row(pg)
    cases = [
        ("system_identifier = '7000000000000000001'", ["system identifier is", sysid]),
        (f"timeline = {tli + 1}", [f"is on timeline {tli}, but this relay published from "
                                   f"timeline {tli + 1}"]),
        ("confirmed_lsn = 'FF/0'", ["WAL ends at", "before FF/0", "restored from a backup"]),
    ]
    for change, words in cases:
        pg.psql(f"UPDATE {STATE} SET {change} WHERE slot_name = 'outbox_relay'")
        expect_refusal(env, relay, consumer, words, 250)
        pg.psql(f"UPDATE {STATE} SET system_identifier = '{good[0]}', timeline = {good[1]}, "
                f"confirmed_lsn = '{good[2] >> 32:X}/{good[2] & 0xFFFFFFFF:X}' "
                "WHERE slot_name = 'outbox_relay'")

    # The record restored, the relay runs again.
    relay.start()
    insert(pg, 301, 10)
    consumer.wait_count(260, 60)
    rc, _ = relay.stop()
    h.check(rc == 0, f"relay exited with {rc}")


if __name__ == "__main__":
    h.main(test)

"""Every SQL snippet of docs/consumers.md runs, in order, against a real PostgreSQL,
and does what the page says it does.  Each snippet is marked "<!-- sql: NAME -->";
a snippet without a check here, or a check without its snippet, fails the test.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

DOC = os.path.join(h.ROOT, "docs", "consumers.md")


def snippets():
    text = open(DOC).read()
    found = re.findall(r"<!-- sql: ([a-z-]+) -->\n```sql\n(.*?)```", text, re.S)
    h.check(len(found) == text.count("```sql"), "a ```sql block without its <!-- sql: --> mark")
    return found


def psql(pg, sql, db="shipping"):
    """Run sql as psql would from the repository's root; stdout with command tags."""
    r = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                        "-p", str(pg.port), "-U", "postgres", "-d", db],
                       input=sql, capture_output=True, text=True, cwd=h.ROOT)
    h.check(r.returncode == 0, f"snippet failed: {r.stderr.strip()}\n{sql}")
    return r.stdout


def returned_ids(out):
    return sorted(line.split("|")[0] for line in out.splitlines() if line.startswith("e-"))


def test(env):
    pg = env.pg
    pg.psql("CREATE DATABASE shipping")
    q = lambda sql: pg.psql(sql, db="shipping")  # noqa: E731

    def setup(sql):
        psql(pg, sql)
        psql(pg, sql)  # the file is idempotent
        h.check(q("SELECT count(*) FROM pg_tables WHERE tablename IN "
                  "('inbox', 'inbox_position', 'inbox_dead_letter')") == "3", "the tables")

    def sample(sql):
        psql(pg, sql)
        h.check(q("SELECT count(*) FROM public.inbox") == "3", "three sample events")

    def take(sql):
        # A second worker holds e-3: SKIP LOCKED passes it over instead of waiting.
        holder = subprocess.Popen(["psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(pg.port),
                                   "-U", "postgres", "-d", "shipping"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        holder.stdin.write("BEGIN;\nSELECT event_id FROM public.inbox WHERE event_id = 'e-3' "
                           "FOR UPDATE;\n\\echo held\n")
        holder.stdin.flush()
        h.check(holder.stdout.readline().strip() == "e-3", "the second worker's lock")
        h.check(holder.stdout.readline().strip() == "held", "the second worker's lock")
        got = returned_ids(psql(pg, sql))
        holder.stdin.write("ROLLBACK;\n")
        holder.stdin.close()
        holder.wait(10)
        h.check(got == ["e-1", "e-2"], f"took {got}, want e-1 and e-2 (e-3 is locked)")
        h.check(q("SELECT string_agg(event_id, ',' ORDER BY seq) FROM public.inbox WHERE "
                  "processed_at IS NOT NULL") == "e-1,e-2", "processed_at set by the take")
        q("UPDATE public.inbox SET processed_at = NULL")

    def take_ordered(sql):
        rounds = [returned_ids(psql(pg, sql)) for _ in range(3)]
        h.check(rounds == [["e-1", "e-3"], ["e-2"], []],
                f"ordered takes {rounds}: e-2 must wait for e-1 (same key)")

    def listen(sql):
        out = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                              "postgres", "-d", "shipping"],
                             input=sql + "SELECT pg_notify('outbox_relay_inbox', 'shipping');\n"
                             "SELECT 1;\n", capture_output=True, text=True).stdout
        h.check('notification "outbox_relay_inbox" with payload "shipping"' in out,
                f"no notification after LISTEN:\n{out}")

    def watch(sql):
        out = psql(pg, sql).strip().split("|")
        h.check(out[0] == "0" and out[1] == "" and out[2] == "3", f"watch: {out}")

    def dead_letters(sql):
        q("INSERT INTO public.inbox_dead_letter (consumer, topic, partition, \"offset\", "
          "reason, error) VALUES ('shipping', 't', 0, 9, 'not-an-event', 'no event id')")
        out = psql(pg, sql).strip().split("|")
        h.check(out[1:6] == ["t", "0", "9", "not-an-event", "no event id"],
                f"dead letters: {out}")

    def processed_table(sql):
        psql(pg, sql)
        psql(pg, sql)

    def dedupe(sql):
        first, second = psql(pg, sql), psql(pg, sql)
        h.check("INSERT 0 1" in first and "INSERT 0 0" in second,
                f"dedupe: first {first!r}, second {second!r}")
        h.check(q("SELECT count(*) FROM public.processed_events") == "1", "one processed id")

    checks = {"setup": setup, "sample": sample, "take": take, "take-ordered": take_ordered,
              "listen": listen, "watch": watch, "dead-letters": dead_letters,
              "processed-table": processed_table, "dedupe": dedupe}
    found = snippets()
    names = [n for n, _ in found]
    h.check(sorted(names) == sorted(checks), f"snippets {names}, checks {sorted(checks)}")
    for name, sql in found:
        checks[name](sql)
    h.log(f"docs/consumers.md: {len(found)} SQL snippets run and checked")


if __name__ == "__main__":
    h.main(test)

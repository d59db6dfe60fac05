#!/usr/bin/env bash
# capture_seeds.sh -- regenerate tests/fuzz/corpus/pgoutput from a real PostgreSQL 15.
#
# Starts a throwaway server (initdb into a temporary directory, as the "postgres" user
# when run as root; loopback only, on a free port; wal_level=logical and
# logical_decoding_work_mem=64kB so that big transactions are streamed), creates tables
# covering every replica identity, many column types, an enum (Type messages) and a
# TOASTed column (3200 bytes stored out of line, so an update of another column sends
# it as unchanged TOAST, 'u'), a publication of all operations and three pgoutput slots,
# runs a workload of inserts, updates, deletes, truncates, logical messages, an origin,
# savepoint rollbacks and big committed and aborted transactions, and records what each
# slot sends with capture_pgoutput.c:
#
#   v1-*     proto_version 1, text values
#   bin-*    proto_version 1, binary 'true' (values in binary send format, kind 'b')
#   v2-*     proto_version 2, streaming 'on' (Stream Start/Stop/Commit/Abort, and data
#            messages with the leading xid: the "stream-" files)
#
# The server and the temporary directory are removed on exit, also on failure.
#
#   tests/fuzz/capture_seeds.sh [OUTDIR]     default: tests/fuzz/corpus/pgoutput
#
# OUTDIR's *.bin files are replaced.  Needs PostgreSQL 15 (server and client), libpq-dev,
# a C compiler and python3 (for a free port), all installed by scripts/deps.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/corpus/pgoutput}

bindir=/usr/lib/postgresql/15/bin
[ -x "$bindir/initdb" ] || bindir=$(dirname "$(command -v initdb)")

tmp=$(mktemp -d /tmp/capture-seeds.XXXXXX)
data=$tmp/data
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

cleanup() {
    if [ -f "$data/postmaster.pid" ]; then
        as_pg "$bindir/pg_ctl" -D "$data" stop -m immediate -w >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$tmp"
chmod 755 "$tmp"

cc -std=c11 -O2 -Wall -Wextra -Werror $(pkg-config --cflags libpq) "$here/capture_pgoutput.c" \
    $(pkg-config --libs libpq) -o "$tmp/capture_pgoutput"

as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-sync \
    --no-instructions >/dev/null
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$tmp'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
logical_decoding_work_mem = 64kB
fsync = off
log_min_messages = warning
EOF
as_pg "$bindir/pg_ctl" -D "$data" -l "$tmp/postgresql.log" start -w >/dev/null

psql_app() {
    psql -X -q -o /dev/null -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d app "$@"
}
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE DATABASE app"

# Schema, publication and slots first: a slot decodes only what comes after it.
psql_app <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE SCHEMA "Sales";

-- Default replica identity (the primary key); a TOASTed column stored out of line.
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer uuid NOT NULL,
    amount numeric(12, 2),
    note text,
    tags text[],
    attrs jsonb,
    created timestamptz DEFAULT '2024-01-02 03:04:05.678901+00',
    happy mood,
    payload bytea,
    flag boolean,
    big text
);
ALTER TABLE orders ALTER COLUMN big SET STORAGE EXTERNAL;

-- REPLICA IDENTITY FULL: Update and Delete carry the whole old row ('O').
CREATE TABLE audit (id int, msg varchar(200), ts timestamp, price real, weight float8);
ALTER TABLE audit REPLICA IDENTITY FULL;

-- REPLICA IDENTITY USING INDEX on two columns.
CREATE TABLE "Sales"."Line Items" (
    order_id bigint NOT NULL,
    line smallint NOT NULL,
    sku char(8),
    qty int,
    d date,
    t time,
    iv interval,
    ip inet,
    bits bit varying(16),
    pt point
);
CREATE UNIQUE INDEX line_items_key ON "Sales"."Line Items" (order_id, line);
ALTER TABLE "Sales"."Line Items" REPLICA IDENTITY USING INDEX line_items_key;

-- REPLICA IDENTITY NOTHING: inserts and truncates only.
CREATE TABLE log_only (id serial, line text);
ALTER TABLE log_only REPLICA IDENTITY NOTHING;

-- An outbox table as the relay expects it.
CREATE TABLE outbox (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    aggregatetype text NOT NULL,
    aggregateid text NOT NULL,
    type text NOT NULL,
    payload jsonb,
    headers jsonb
);

CREATE PUBLICATION fuzz_pub FOR ALL TABLES
    WITH (publish = 'insert, update, delete, truncate');
SELECT pg_create_logical_replication_slot(s, 'pgoutput') FROM
    unnest(ARRAY['fuzz_v1', 'fuzz_bin', 'fuzz_v2']) AS s;
SQL

# The workload.  Everything before the last, non-transactional "fuzz-capture-end"
# message is captured.
psql_app <<'SQL'
BEGIN;
INSERT INTO orders (customer, amount, note, tags, attrs, happy, payload, flag, big)
    VALUES ('0b7e7a3c-7a38-4f1c-9d5e-3f0f9c1f2a11', 1234.50, 'first order',
            ARRAY['a', 'b c', NULL], '{"k": [1, 2, {"x": null}]}', 'happy',
            '\x00ff10', true,
            (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 100) i));
INSERT INTO "Sales"."Line Items" VALUES
    (1, 1, 'SKU-0001', 3, '2024-02-29', '23:59:59.999999', '1 year 2 mons 3 days 04:05:06',
     '192.168.0.1/24', B'1011', '(1.5,-2)'),
    (1, 2, 'SKU-0002', -7, 'infinity', '00:00', '-1 day', '::1', B'', '(0,0)');
INSERT INTO outbox (aggregatetype, aggregateid, type, payload, headers)
    VALUES ('Order', '1', 'OrderCreated', '{"id": 1, "total": "1234.50"}',
            '{"trace_id": "abc"}');
SELECT pg_logical_emit_message(true, 'outbox',
    '{"aggregatetype": "Order", "aggregateid": "1", "type": "OrderPaid", "payload": {}}');
COMMIT;

INSERT INTO orders (customer) VALUES ('00000000-0000-0000-0000-000000000000');
INSERT INTO audit VALUES (1, 'ünïcödé ✓', '1999-12-31 23:59:59', 'NaN', '-Infinity'),
                         (2, NULL, NULL, 1.5, 2.25);
INSERT INTO log_only (line) VALUES (''), (repeat('x', 500));

-- Unchanged TOAST ('u') for "big"; key change gives an old key tuple ('K').
UPDATE orders SET note = 'second note', amount = amount + 1 WHERE id = 1;
UPDATE orders SET id = 100 WHERE id = 1;
UPDATE audit SET msg = 'changed' WHERE id = 1;
UPDATE "Sales"."Line Items" SET qty = qty + 1 WHERE line = 1;
UPDATE "Sales"."Line Items" SET line = 5 WHERE line = 2;

SELECT pg_logical_emit_message(false, 'audit', E'\\x00010203feff'::bytea);
SELECT pg_logical_emit_message(true, '', '');

DELETE FROM orders WHERE id = 2;
DELETE FROM audit WHERE id = 2;
DELETE FROM "Sales"."Line Items" WHERE line = 5;

-- A schema change: a new Relation message before the next change.
ALTER TABLE orders ADD COLUMN extra int DEFAULT 42;
INSERT INTO orders (customer, big) VALUES (gen_random_uuid(), 'short');

TRUNCATE log_only;
TRUNCATE audit, "Sales"."Line Items" RESTART IDENTITY;
TRUNCATE outbox CASCADE;

-- Big transactions: streamed with proto_version 2 (over logical_decoding_work_mem),
-- one with a rolled-back savepoint (Stream Abort of a subtransaction), one aborted.
BEGIN;
INSERT INTO audit SELECT i, md5(i::text), now(), i, i FROM generate_series(1, 2000) i;
SAVEPOINT s1;
INSERT INTO audit SELECT i, 'rolled back', NULL, 0, 0 FROM generate_series(1, 1500) i;
ROLLBACK TO SAVEPOINT s1;
UPDATE audit SET msg = 'updated in stream' WHERE id <= 3;
DELETE FROM audit WHERE id = 4;
SELECT pg_logical_emit_message(true, 'outbox', '{"in": "stream"}');
TRUNCATE log_only;
COMMIT;

BEGIN;
INSERT INTO audit SELECT i, 'aborted', NULL, 0, 0 FROM generate_series(1, 2000) i;
ROLLBACK;

-- A transaction from a replication origin: an Origin message after Begin.
SELECT pg_replication_origin_create('fuzz_origin');
SELECT pg_replication_origin_session_setup('fuzz_origin');
BEGIN;
SELECT pg_replication_origin_xact_setup('1/23456789', '2024-01-02 03:04:05+00');
INSERT INTO outbox (aggregatetype, aggregateid, type) VALUES ('Order', '7', 'FromOrigin');
COMMIT;
SELECT pg_replication_origin_session_reset();

SELECT pg_logical_emit_message(false, 'fuzz-capture-end', 'done');
SQL

mkdir -p "$out"
rm -f "$out"/*.bin
dsn="host=127.0.0.1 port=$port dbname=app user=postgres"
"$tmp/capture_pgoutput" -d "$dsn" -s fuzz_v1 -o "$out" -p v1 \
    -O proto_version=1 -O publication_names=fuzz_pub -O messages=true
"$tmp/capture_pgoutput" -d "$dsn" -s fuzz_bin -o "$out" -p bin -n 3 \
    -O proto_version=1 -O publication_names=fuzz_pub -O messages=true -O binary=true
"$tmp/capture_pgoutput" -d "$dsn" -s fuzz_v2 -o "$out" -p v2 \
    -O proto_version=2 -O publication_names=fuzz_pub -O messages=true -O streaming=on

as_pg "$bindir/pg_ctl" -D "$data" stop -m fast -w >/dev/null
echo "capture_seeds: $(ls "$out"/*.bin | wc -l) files, $(cat "$out"/*.bin | wc -c) bytes in $out"

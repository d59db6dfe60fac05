#!/usr/bin/env bash
# demo.sh -- the main job end to end on embedded defaults, from a fresh Debian 12
# machine: installs what is missing, builds, starts a throwaway PostgreSQL and the
# local Kafka-protocol broker, applies sql/, starts the relay, writes business rows
# and outbox rows in the same transactions, and prints the events as they arrive in
# Kafka -- topic, partition, key, headers and value.  Everything runs on loopback in
# a temporary directory and is stopped and removed at the end.
#
#   scripts/demo.sh                the local Kafka-protocol dev broker (fast, the default)
#   scripts/demo.sh --kafka real   a real Apache Kafka: three KRaft nodes fetched with Maven
#                                  (tools/kafka_cluster.py; about 10 s more to start)
#   (with Kafka, a second database then plays the shipping service: outbox-relay inbox
#   writes the events into its inbox table, and a worker takes them from there)
#   scripts/demo.sh --sink NAME    another broker instead of Kafka: redis, nats, rabbitmq
#                                  webhook or sqs (moto), started on loopback by tools/brokers.py,
#                                  which prints the events as they arrive there
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KAFKA=dev
SINK=kafka
usage() { echo "usage: scripts/demo.sh [--kafka dev|real] [--sink kafka|redis|nats|rabbitmq|webhook|sqs]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --kafka) KAFKA=${2:-}; [ "$KAFKA" = dev ] || [ "$KAFKA" = real ] || usage; shift 2 ;;
        --sink) SINK=${2:-}; case "$SINK" in kafka|redis|nats|rabbitmq|webhook|sqs) ;; *) usage ;; esac
                shift 2 ;;
        *) usage ;;
    esac
done

scripts/deps.sh
scripts/build.sh >/dev/null

TMP=$(mktemp -d /tmp/outbox-relay-demo.XXXXXX)
chmod 755 "$TMP"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
pids=()
cleanup() {
    # Newest first: the relay stops before the broker and PostgreSQL it talks to.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "PostgreSQL 15 on 127.0.0.1:$PGPORT (wal_level = logical)"
mkdir -p "$TMP/pg" && [ "$(id -u)" -eq 0 ] && chown postgres: "$TMP/pg"
as_pg "$PGBIN/initdb" -D "$TMP/pg" -U postgres --auth=trust --no-sync --no-instructions >/dev/null
cat >>"$TMP/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$TMP/pg'
wal_level = logical
CONF
as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/log" -w start >/dev/null
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE app"
# sql/007_inbox.sql belongs to the consuming service's database (below), not this one.
for f in sql/*.sql; do
    [ "$f" = sql/007_inbox.sql ] && continue
    echo "applying $f"; "${PSQL[@]}" -d app -f "$f"
done
"${PSQL[@]}" -d app -c "CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, customer text, total numeric)"

CONFIG=config/demo.yaml
if [ "$SINK" != kafka ]; then
    step "$SINK on loopback (tools/brokers.py)"
    python3 tools/brokers.py "$SINK" --dir "$TMP/$SINK" --section-file "$TMP/sink.yaml" \
        >"$TMP/events.out" 2>"$TMP/broker.log" &
    pids+=($!)
    for _ in $(seq 1200); do [ -s "$TMP/sink.yaml" ] && break; sleep 0.1; done
    [ -s "$TMP/sink.yaml" ] || { cat "$TMP/broker.log" >&2; exit 1; }
    # The demo's file without its kafka section, and the broker's section instead.
    CONFIG="$TMP/relay.yaml"
    { sed '/^kafka:/,$d' config/demo.yaml; cat "$TMP/sink.yaml"; } >"$CONFIG"
    sed 's/^/  /' "$TMP/sink.yaml"
elif [ "$KAFKA" = real ]; then
    step "Apache Kafka: three KRaft nodes (tools/kafka_cluster.py)"
    mkfifo "$TMP/kafka.in"
    python3 tools/kafka_cluster.py <"$TMP/kafka.in" >"$TMP/kafka.out" 2>"$TMP/kafka.log" &
    pids+=($!)
    exec 3>"$TMP/kafka.in"   # keep the cluster's stdin open
    for _ in $(seq 1800); do [ -s "$TMP/kafka.out" ] && break; sleep 0.1; done
    BROKERS=$(head -n 1 "$TMP/kafka.out")
    [ -n "$BROKERS" ] || { cat "$TMP/kafka.log" >&2; exit 1; }
    # Auto-creation is off, as on a production cluster: the topics are created first.
    n=1
    for t in outbox.event.order outbox.event.customer; do
        echo "topic $t 3" >&3
        n=$((n + 1))
        for _ in $(seq 600); do [ "$(wc -l <"$TMP/kafka.out")" -ge $n ] && break; sleep 0.1; done
        sed -n "${n}p" "$TMP/kafka.out" | grep -qx ok || { cat "$TMP/kafka.out" >&2; exit 1; }
    done
else
    step "Kafka-protocol dev broker (librdkafka mock cluster, 3 brokers)"
    mkfifo "$TMP/broker.in"
    build/outbox-devbroker --brokers 3 --topic outbox.event.order:3 --topic outbox.event.customer:3 \
        --bootstrap-file "$TMP/bootstrap" <"$TMP/broker.in" >"$TMP/broker.out" 2>&1 &
    pids+=($!)
    exec 3>"$TMP/broker.in"   # keep the broker's stdin open
    for _ in $(seq 100); do [ -s "$TMP/bootstrap" ] && break; sleep 0.1; done
    BROKERS=$(cat "$TMP/bootstrap")
fi
[ "$SINK" = kafka ] && echo "bootstrap servers: $BROKERS"

step "outbox-relay run -c $CONFIG"
export DEMO_PG_DSN="host=127.0.0.1 port=$PGPORT dbname=app user=postgres"
export DEMO_BROKERS="${BROKERS:-}"
build/outbox-relay --version
build/outbox-relay check -c "$CONFIG"
build/outbox-relay run -c "$CONFIG" > >(sed -u 's/^/  relay| /') 2>&1 &
RELAY_PID=$!
pids+=($RELAY_PID)
for _ in $(seq 100); do
    [ "$("${PSQL[@]}" -d app -Atc "SELECT active FROM pg_replication_slots WHERE slot_name = 'outbox_relay'")" = t ] && break
    sleep 0.1
done

step "the application: business rows and outbox rows in one transaction each"
"${PSQL[@]}" -d app <<'SQL'
BEGIN;
INSERT INTO orders VALUES (1001, 'alice', 42.50);
INSERT INTO outbox (aggregatetype, aggregateid, type, payload)
VALUES ('order', '1001', 'OrderCreated', '{"orderId": 1001, "customer": "alice", "total": 42.50}');
COMMIT;
BEGIN;
INSERT INTO orders VALUES (1002, 'bob', 7.25);
INSERT INTO outbox (aggregatetype, aggregateid, type, payload)
VALUES ('order', '1002', 'OrderCreated', '{"orderId": 1002, "customer": "bob", "total": 7.25}'),
       ('customer', 'bob', 'CustomerOrdered', '{"customer": "bob", "orders": 1}');
COMMIT;
BEGIN;
UPDATE orders SET total = 50.00 WHERE id = 1001;
INSERT INTO outbox (aggregatetype, aggregateid, type, payload)
VALUES ('order', '1001', 'OrderTotalChanged', '{"orderId": 1001, "total": 50.00}');
COMMIT;
-- A rolled-back transaction publishes nothing.
BEGIN;
INSERT INTO outbox (aggregatetype, aggregateid, type, payload)
VALUES ('order', '9999', 'OrderCreated', '{"never": "published"}');
ROLLBACK;
SQL
echo "4 outbox rows committed in 3 transactions (and 1 rolled back)"

if [ "$SINK" != kafka ]; then
    step "events in $SINK (as tools/brokers.py reads them there)"
    for _ in $(seq 300); do [ "$(grep -c '^[^ ]' "$TMP/events.out")" -ge 4 ] && break; sleep 0.1; done
    cat "$TMP/events.out"
else
step "events in Kafka (outbox-consume)"
PRETTY=$(cat <<'PY'
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    print(f"{m['topic']} [partition {m['partition']}, offset {m['offset']}] key={m['key']}")
    for k, v in m["headers"]:
        print(f"    {k}: {v}")
    print(f"    value: {m['value']}")
PY
)
build/outbox-consume -b "$BROKERS" -t outbox.event.order -t outbox.event.customer \
    --count 4 --timeout 30000 2>/dev/null | python3 -c "$PRETTY"
fi

if [ "$SINK" = kafka ]; then
    step "the shipping service's inbox: outbox-relay inbox -c config/demo-inbox.yaml"
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE shipping"
    "${PSQL[@]}" -d shipping -f sql/007_inbox.sql
    export DEMO_INBOX_DSN="host=127.0.0.1 port=$PGPORT dbname=shipping user=postgres"
    build/outbox-relay check -c config/demo-inbox.yaml
    build/outbox-relay inbox -c config/demo-inbox.yaml > >(sed -u 's/^/  inbox| /') 2>&1 &
    INBOX_PID=$!
    pids+=($INBOX_PID)
    for _ in $(seq 300); do
        [ "$("${PSQL[@]}" -d shipping -Atc "SELECT count(*) FROM inbox")" -ge 4 ] && break
        sleep 0.1
    done
    "${PSQL[@]}" -d shipping -c "SELECT seq, event_id, type, key, payload, topic, partition, \"offset\" FROM inbox ORDER BY seq"
    step "a shipping worker takes its work from the inbox (docs/consumers.md)"
    "${PSQL[@]}" -d shipping <<'SQL'
BEGIN;
WITH batch AS (
    SELECT consumer, event_id FROM inbox
     WHERE consumer = 'shipping' AND processed_at IS NULL
     ORDER BY seq LIMIT 100 FOR UPDATE SKIP LOCKED)
UPDATE inbox i SET processed_at = now() FROM batch b
 WHERE i.consumer = b.consumer AND i.event_id = b.event_id
RETURNING i.type, i.key, i.payload;
COMMIT;
SQL
    kill -TERM "$INBOX_PID"
    wait "$INBOX_PID" && echo "inbox relay exited with status 0"
fi

step "the slot's checkpoint after delivery"
sleep 1
"${PSQL[@]}" -d app -c "SELECT slot_name, active, confirmed_flush_lsn, pg_current_wal_lsn() FROM pg_replication_slots"
step "SIGTERM: the relay flushes, confirms and exits"
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" && echo "relay exited with status 0"
echo "demo finished; stopping everything"

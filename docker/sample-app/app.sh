#!/usr/bin/env bash
# app.sh -- the compose demo's "service": once a second it writes a business row and
# an outbox row in ONE transaction, which is the whole transactional outbox pattern.
# Either both rows commit or neither does, so Kafka hears of an order exactly when the
# order exists.  Every fifth transaction also pays an earlier order (an UPDATE plus
# its OrderPaid event), so an aggregate gets more than one event.
#
# It runs in the postgres:15 image, for its psql.  Connection: PGHOST, PGDATABASE,
# PGUSER from the environment, and the password from the file PGPASSWORD_FILE (a
# compose secret).  Stops at SIGTERM.
set -euo pipefail

if [ -n "${PGPASSWORD_FILE:-}" ]; then
    PGPASSWORD=$(cat "$PGPASSWORD_FILE")
    export PGPASSWORD
fi
psql_app=(psql -X -q -v ON_ERROR_STOP=1)

# As PID 1 bash ignores SIGTERM unless it traps it; "sleep & wait" below lets the trap
# run at once instead of after the sleep.
trap 'echo "sample-app: stopping"; exit 0' TERM INT

"${psql_app[@]}" <<'SQL'
CREATE TABLE IF NOT EXISTS public.orders (
    id         bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer   text          NOT NULL,
    total      numeric(10,2) NOT NULL,
    status     text          NOT NULL DEFAULT 'created',
    created_at timestamptz   NOT NULL DEFAULT now()
);
SQL
echo "sample-app: writing one order a second (table public.orders, outbox public.outbox)"

failed() { echo "sample-app: transaction failed, nothing committed; trying again"; }

customers=(alice bob carol dave erin)
n=0
while :; do
    n=$((n + 1))
    customer=${customers[$((n % ${#customers[@]}))]}
    total=$(printf '%d.%02d' $((RANDOM % 200)) $((RANDOM % 100)))

    # The business row and its event, in one transaction.  \gset keeps the new order's
    # id in psql variables, so the event carries it as aggregate id and in its payload.
    # If PostgreSQL is away, the transaction fails as a whole: no order and no event.
    "${psql_app[@]}" -v customer="$customer" -v total="$total" <<'SQL' || failed
BEGIN;
INSERT INTO public.orders (customer, total)
VALUES (:'customer', :'total')
RETURNING id AS order_id, total AS order_total \gset
INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload)
VALUES ('order', :'order_id', 'OrderCreated',
        jsonb_build_object('orderId', :order_id, 'customer', :'customer',
                           'total', :order_total));
COMMIT;
SQL

    if [ $((n % 5)) -eq 0 ]; then
        "${psql_app[@]}" <<'SQL' || failed
BEGIN;
UPDATE public.orders SET status = 'paid'
WHERE id = (SELECT min(id) FROM public.orders WHERE status = 'created')
RETURNING id AS paid_id \gset
INSERT INTO public.outbox (aggregatetype, aggregateid, type, payload)
VALUES ('order', :'paid_id', 'OrderPaid', jsonb_build_object('orderId', :paid_id));
COMMIT;
SQL
    fi

    if [ $((n % 60)) -eq 0 ]; then
        echo "sample-app: $n orders written"
    fi
    sleep 1 &
    wait $!
done

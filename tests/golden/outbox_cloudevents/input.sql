-- The five Debezium columns only: version 1, no headers.
BEGIN;
INSERT INTO public.outbox (id, aggregatetype, aggregateid, type, payload)
VALUES ('00000000-0000-4000-8000-000000000001', 'order', 'o-1', 'OrderCreated',
        '{"orderId": "o-1", "total": 12.50, "items": [{"sku": "A", "qty": 2}]}');
INSERT INTO public.outbox (id, aggregatetype, aggregateid, type, payload)
VALUES ('00000000-0000-4000-8000-000000000002', 'customer', 'c-9', 'CustomerUpdated',
        '{"name": "Zoë \"Z\" Ünal", "tags": []}');
COMMIT;
-- Version 2, a trace header, a headers object with a string, a number and a null.
INSERT INTO public.outbox (id, aggregatetype, aggregateid, type, payload, version, headers, traceparent)
VALUES ('00000000-0000-4000-8000-000000000003', 'order', 'o-1', 'OrderShipped',
        '{"orderId": "o-1"}', 2,
        '{"correlation_id": "corr-7", "attempt": 3, "note": null, "quote\"d": "a\\nb"}',
        '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
-- A NULL payload: a tombstone-like event with no value.
INSERT INTO public.outbox (id, aggregatetype, aggregateid, type, payload)
VALUES ('00000000-0000-4000-8000-000000000004', 'order', 'o-2', 'OrderPurged', NULL);

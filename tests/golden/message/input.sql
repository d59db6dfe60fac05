BEGIN;
SELECT pg_logical_emit_message(true, 'outbox',
    '{"id": "10000000-0000-4000-8000-000000000001", "aggregatetype": "invoice",
      "aggregateid": "inv-1", "type": "InvoiceIssued", "version": 3,
      "payload": {"invoice": "inv-1", "lines": [1, 2, 3]},
      "headers": {"correlation_id": "corr-\u00e9"}}');
INSERT INTO public.outbox (id, aggregatetype, aggregateid, type, payload)
VALUES ('10000000-0000-4000-8000-000000000002', 'order', 'o-5', 'OrderInvoiced', '{"invoice": "inv-1"}');
COMMIT;
-- Ignored: not transactional, another prefix.
SELECT pg_logical_emit_message(false, 'outbox', '{"id": "x", "aggregateid": "x", "type": "x", "payload": {}}');
BEGIN;
SELECT pg_logical_emit_message(true, 'audit', '{"who": "me"}');
SELECT pg_logical_emit_message(true, 'outbox',
    '{"id": "10000000-0000-4000-8000-000000000003", "aggregatetype": "invoice",
      "aggregateid": "inv-\"2\"", "type": "InvoiceVoided", "payload": null}');
COMMIT;

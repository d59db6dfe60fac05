-- 004_polling.sql -- what polling mode (postgres.mode: polling) needs beyond the table.
--
-- Polling mode reads unpublished rows in insertion order, so it wants an index on
-- seq over exactly those rows, and it wants to be woken when a row arrives instead
-- of waiting for its next poll: a statement-level trigger sends one NOTIFY per
-- inserting statement (not per row) on the channel polling.notify_channel listens
-- to.  NOTIFY is delivered at commit, so the relay is woken exactly when the rows
-- become visible.  The relay's role may delete rows (after_publish: delete) or set
-- published_at (after_publish: mark, and delete them after polling.retention).
--
-- Not needed in replication mode.  Safe to run more than once.
CREATE INDEX IF NOT EXISTS outbox_unpublished_seq_idx
    ON public.outbox (seq) WHERE published_at IS NULL;

CREATE OR REPLACE FUNCTION public.outbox_notify() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('outbox_relay', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS outbox_notify ON public.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON public.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION public.outbox_notify();

GRANT DELETE, UPDATE (published_at) ON public.outbox TO outbox_relay;

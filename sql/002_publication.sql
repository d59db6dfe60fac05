-- 002_publication.sql -- the publication the relay streams from.
--
-- Inserts only: outbox rows are immutable events, and a service that deletes its
-- outbox rows right after inserting them (in the same transaction, to keep the table
-- empty) must not produce delete events.  The relay creates this publication itself
-- when it is missing, but creating it here lets the relay's role do without the
-- privileges CREATE PUBLICATION needs (ownership of the table).
--
-- Safe to run more than once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'outbox_relay') THEN
        CREATE PUBLICATION outbox_relay FOR TABLE public.outbox WITH (publish = 'insert');
    END IF;
END
$$;

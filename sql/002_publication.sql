-- 002_publication.sql -- the publication the relay streams from, and its slot.
--
-- Inserts only: outbox rows are immutable events, and a service that deletes its
-- outbox rows right after inserting them (in the same transaction, to keep the table
-- empty) must not produce delete events.  publish_via_partition_root makes a
-- partitioned outbox publish under its own name.
--
-- The replication slot is created here too, not only by the relay on its first
-- start: logical decoding sees only what commits after the slot exists, so creating
-- it together with the table means no outbox row is ever missed, even when the
-- application writes before the relay first runs.  (Skipped, with a notice, while
-- wal_level is not logical; the relay then creates the slot itself.)
--
-- The relay creates both when missing, but creating them here lets the relay's
-- role do without the privileges CREATE PUBLICATION needs (ownership of the table).
--
-- Safe to run more than once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'outbox_relay') THEN
        CREATE PUBLICATION outbox_relay FOR TABLE public.outbox
            WITH (publish = 'insert', publish_via_partition_root = true);
    END IF;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = 'outbox_relay') THEN
        RETURN;
    END IF;
    IF current_setting('wal_level') <> 'logical' THEN
        RAISE NOTICE 'wal_level is %, not logical: slot "outbox_relay" not created',
            current_setting('wal_level');
        RETURN;
    END IF;
    PERFORM pg_catalog.pg_create_logical_replication_slot('outbox_relay', 'pgoutput');
END
$$;

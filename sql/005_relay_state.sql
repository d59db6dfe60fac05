-- 005_relay_state.sql -- the relay's record of where it has published up to.
--
-- One row per replication slot: the PostgreSQL system identifier and timeline the
-- relay streamed from, and the position it last confirmed to the slot.  The relay
-- writes the row before it confirms a position to the slot, so the slot's
-- confirmed position is never ahead of the row.  At every start it compares the row
-- with what the server says (postgres.history_check, docs/guarantees.md), and
-- refuses to run when they disagree in a way that means events would be lost or
-- republished out of nowhere:
--   * the slot is missing or its position is ahead of the row: the slot was dropped
--     and recreated (or advanced by another consumer), skipping events;
--   * the system identifier or timeline differs, or the server's WAL ends before the
--     row's position: the database was restored from a backup, failed over, or is a
--     different cluster.
-- Keeping the record in the database (not in a file beside the relay) means two
-- relays in a high-availability pair share it, and a sidecar needs no volume.
--
-- To accept the server's position after such a refusal (having reconciled what
-- consumers saw), delete the slot's row; the relay starts afresh from the slot:
--   DELETE FROM public.outbox_relay_state WHERE slot_name = 'outbox_relay';
--
-- The relay creates this table itself when its role may; creating it here lets the
-- least-privilege role of 003_relay_role.sql do with INSERT and UPDATE on it.
--
-- Safe to run more than once.
CREATE TABLE IF NOT EXISTS public.outbox_relay_state (
    slot_name          text        PRIMARY KEY,
    system_identifier  text        NOT NULL,
    timeline           integer     NOT NULL,
    confirmed_lsn      pg_lsn      NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE public.outbox_relay_state IS
    'outbox-relay: the position each replication slot was last confirmed at, and the server history it belongs to';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'outbox_relay') THEN
        GRANT SELECT, INSERT, UPDATE ON public.outbox_relay_state TO outbox_relay;
    END IF;
END
$$;

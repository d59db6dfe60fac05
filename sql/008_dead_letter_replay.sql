-- 008_dead_letter_replay.sql -- what `outbox-relay replay` records in the dead-letter
-- table (006_dead_letter.sql): how often each record was sent again, when, and how
-- it went.  Run it after 006 (it changes nothing else); safe to run more than once.
--
--   replay_state  NULL            never replayed
--                 'sent'          the sink acknowledged it: done
--                 'failed'        the sink refused it again: a later replay retries it
--                 'parked'        failed replay.max_replays times: no replay takes it
--                                 again (the parking lot: mend by hand, or reset the
--                                 state to NULL and replay_count to 0 to try again)
--                 'not-replayable' nothing to send (a row that could not become an
--                                 event; no destination; a value left out whose outbox
--                                 row is gone)
--
-- Progress is committed after each event the sink acknowledged: an interrupted replay
-- resumed sends at most the one event in flight again (consumers deduplicate it on
-- its id, which a replay never changes).
ALTER TABLE public.outbox_dead_letter
    ADD COLUMN IF NOT EXISTS replay_count integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS replayed_at  timestamptz,
    ADD COLUMN IF NOT EXISTS replay_state text,
    ADD COLUMN IF NOT EXISTS replay_error text;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'outbox_relay') THEN
        GRANT SELECT, UPDATE (replay_count, replayed_at, replay_state, replay_error)
            ON public.outbox_dead_letter TO outbox_relay;
    END IF;
END
$$;

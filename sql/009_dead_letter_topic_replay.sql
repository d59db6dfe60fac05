-- 009_dead_letter_topic_replay.sql -- what `outbox-relay replay` records when it
-- replays from the dead-letter *topic* (kafka.dlq_topic) rather than the table.
--
-- A topic's records cannot be updated, and a consumer group's offset cannot be the
-- progress: a record a filter (--reason, --type, --since) leaves out would then be
-- passed for every later replay too.  So each replay reads the dead-letter topic from
-- its beginning, and this table keeps the state of every record it has dealt with,
-- keyed by where the record is -- topic, partition, offset -- with the same meaning
-- as the columns 008_dead_letter_replay.sql adds to the table:
--
--   replay_state  'sent'           the sink acknowledged it: done
--                 'failed'         the sink refused it again: a later replay retries it
--                 'parked'         failed replay.max_replays times: no replay takes it
--                                  again (delete its row here to try again)
--                 'not-replayable' nothing to send (a row that could not become an
--                                  event; no destination; a value left out whose outbox
--                                  row is gone)
--   A record with no row here has never been replayed.
--
-- The table lives in the source database (postgres.dsn); its name is replay.state_table.
-- A row is written after each record the sink acknowledged, before the next is sent:
-- an interrupted replay resumed sends at most the one event in flight again.  If the
-- dead-letter topic is deleted and created again, its offsets start over: delete its
-- rows here first (DELETE ... WHERE topic = '...').
--
-- Safe to run more than once.
CREATE TABLE IF NOT EXISTS public.outbox_dead_letter_replay (
    topic         text        NOT NULL,
    "partition"   integer     NOT NULL,
    "offset"      bigint      NOT NULL,
    event_id      text,
    replay_count  integer     NOT NULL DEFAULT 0,
    replayed_at   timestamptz NOT NULL DEFAULT now(),
    replay_state  text        NOT NULL,
    replay_error  text,
    PRIMARY KEY (topic, "partition", "offset")
);

COMMENT ON TABLE public.outbox_dead_letter_replay IS
    'outbox-relay replay: per-record progress of replays from the dead-letter topic';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'outbox_relay') THEN
        GRANT SELECT, INSERT, UPDATE ON public.outbox_dead_letter_replay TO outbox_relay;
    END IF;
END
$$;

-- 006_dead_letter.sql -- where the relay sets aside events it cannot publish.
--
-- With dead_letter.table set (docs/configuration.md), every poison event -- a row
-- that cannot become an event, a malformed logical message, a destination the sink
-- does not take, an event too large for the sink, a broker's permanent rejection --
-- is written here, and committed, before the relay confirms past it; the relay then
-- carries on with the events behind it (docs/events.md, "Bad input").  It works with
-- every sink, and lets an operator inspect a record and mend and insert it again with
-- SQL:
--
--   SELECT dead_at, reason, error, event_id, convert_from(value, 'UTF8')
--     FROM public.outbox_dead_letter ORDER BY id;
--
--   -- a row that could not become an event (value_is_row): mend it and insert it
--   INSERT INTO public.outbox (id, aggregatetype, aggregateid, type, payload)
--   SELECT (r->>'id')::uuid, r->>'aggregatetype', coalesce(r->>'aggregateid', 'fixed'),
--          r->>'type', (r->>'payload')::jsonb
--     FROM public.outbox_dead_letter d,
--          LATERAL (SELECT convert_from(d.value, 'UTF8')::jsonb AS r) x
--    WHERE d.id = 42;
--
-- A record is identified by where it came from (the slot, or the outbox table in
-- polling mode) and its position: a record written again after a crash (the relay
-- replays from its checkpoint) is not doubled.  Key and value are bytea, the exact
-- bytes; headers a JSON object of strings.
--
-- Safe to run more than once.
CREATE TABLE IF NOT EXISTS public.outbox_dead_letter (
    id                  bigserial   PRIMARY KEY,
    dead_at             timestamptz NOT NULL DEFAULT now(),
    source              text        NOT NULL,  -- the slot, or the outbox table (polling)
    commit_lsn          pg_lsn      NOT NULL,  -- of the event's transaction; 0/0 in polling
    xid                 bigint      NOT NULL,
    event_index         bigint      NOT NULL,  -- index in the transaction; polling: the seq
    event_id            text,
    destination         text,                  -- where it was going; NULL if it had none
    reason              text        NOT NULL,  -- bad-row, bad-message, bad-destination,
                                               -- too-large, rejected
    error_code          text        NOT NULL,
    error               text        NOT NULL,
    key                 bytea,
    headers             jsonb,
    value               bytea,                 -- NULL when it was what was too large
    value_omitted_size  bigint,                -- its size then
    value_is_row        boolean     NOT NULL DEFAULT false, -- the value is the source row as JSON
    relay_version       text        NOT NULL,
    UNIQUE (source, commit_lsn, xid, event_index)
);

COMMENT ON TABLE public.outbox_dead_letter IS
    'outbox-relay: events set aside because they cannot be published (docs/events.md, "Bad input")';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'outbox_relay') THEN
        GRANT SELECT, INSERT ON public.outbox_dead_letter TO outbox_relay;
        GRANT USAGE ON SEQUENCE public.outbox_dead_letter_id_seq TO outbox_relay;
    END IF;
END
$$;

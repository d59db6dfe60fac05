-- 001_outbox_table.sql -- the outbox table.
--
-- The first five columns are the ones Debezium's outbox event router reads, with
-- the same names and meaning, so a service moving from Debezium keeps its INSERTs.
-- Every other column has a default: inserting only those five always works.
--
--   id             the event id; consumers deduplicate on it (CloudEvents "id")
--   aggregatetype  what kind of thing changed; routes to a topic by default
--   aggregateid    which thing changed; the Kafka key, so one aggregate's events
--                  stay in one partition, in commit order
--   type           the event type (CloudEvents "type"), e.g. OrderCreated
--   payload        the event body, JSON
--   version        the schema version of payload (default 1)
--   headers        extra message headers as a JSON object (NULL: none)
--   created_at     when the row was written (informational; the event time in
--                  polling mode)
--   seq            insertion order (polling mode reads rows in this order)
--   published_at   when polling mode published the row (polling.after_publish: mark)
--
-- Safe to run more than once.
CREATE TABLE IF NOT EXISTS public.outbox (
    id            uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    aggregatetype text        NOT NULL,
    aggregateid   text        NOT NULL,
    type          text        NOT NULL,
    payload       jsonb,
    version       integer     NOT NULL DEFAULT 1,
    headers       jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    seq           bigserial   NOT NULL,
    published_at  timestamptz
);

-- Tables created by an earlier version of this script get the new columns too.
ALTER TABLE public.outbox ADD COLUMN IF NOT EXISTS seq bigserial NOT NULL;
ALTER TABLE public.outbox ADD COLUMN IF NOT EXISTS published_at timestamptz;

COMMENT ON TABLE public.outbox IS
    'Transactional outbox: rows inserted here are published to Kafka by outbox-relay';

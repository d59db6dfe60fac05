-- 007_inbox.sql -- the consuming service's inbox: events written by `outbox-relay inbox`.
--
-- Run it in the database of the service that consumes the events (not the one whose
-- outbox is relayed).  The inbox relay reads the broker and, for each batch, in ONE
-- transaction:
--   * inserts every event into public.inbox (INSERT ... ON CONFLICT DO NOTHING on
--     (consumer, event_id): a redelivered event is a no-op);
--   * sets aside a message that is not an event into public.inbox_dead_letter with
--     its reason and exact bytes (no id, not CloudEvents: "not-an-event"; a value
--     PostgreSQL refuses: "refused"; one the Kafka client could not read, a bad CRC
--     or compression: "unreadable");
--   * moves public.inbox_position to the offset after the batch, per partition;
--   * notifies the channel inbox.notify_channel (default "outbox_relay_inbox") with
--     the consumer's name, so that workers waiting with LISTEN wake up.
-- The broker's own offset is committed only after that transaction; on start and on
-- every rebalance the relay resumes where inbox_position says, so after any crash
-- nothing is skipped and nothing already written is written twice.
--
-- The service takes work with SELECT ... FOR UPDATE SKIP LOCKED and sets processed_at
-- in the transaction of its side effects (docs/consumers.md); the relay deletes
-- processed rows older than inbox.retention, in small batches.
--
-- Other table names: copy this file and set inbox.table, inbox.position_table and
-- inbox.dead_letter_table.  Safe to run more than once.
CREATE TABLE IF NOT EXISTS public.inbox (
    consumer      text        NOT NULL,   -- inbox.consumer: also the consumer group
    event_id      text        NOT NULL,   -- the event's id (CloudEvents id)
    seq           bigint      GENERATED ALWAYS AS IDENTITY,  -- order of arrival
    type          text        NOT NULL,
    source        text        NOT NULL,
    subject       text,
    event_time    timestamptz,            -- the event's own time, when it has one
    key           text,                   -- the message key (aggregate id), as text
    headers       jsonb       NOT NULL DEFAULT '{}',  -- every other header, as strings
    content_type  text,
    payload       jsonb,                  -- the data, when it is JSON
    payload_bytes bytea,                  -- the data, when it is not JSON
    topic         text        NOT NULL,   -- where the broker held it
    partition     integer     NOT NULL,
    "offset"      bigint      NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,            -- set by the service, with its side effects
    PRIMARY KEY (consumer, event_id)
);

-- Work queue order: the unprocessed rows of a consumer, oldest first.
CREATE INDEX IF NOT EXISTS inbox_pending
    ON public.inbox (consumer, seq) WHERE processed_at IS NULL;
-- Retention: processed rows by age.
CREATE INDEX IF NOT EXISTS inbox_processed
    ON public.inbox (consumer, processed_at) WHERE processed_at IS NOT NULL;

-- Where each partition resumes: the offset after the last message written.
CREATE TABLE IF NOT EXISTS public.inbox_position (
    consumer    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);

-- Messages that are not events, kept with their reason and exact bytes.
CREATE TABLE IF NOT EXISTS public.inbox_dead_letter (
    id          bigserial   PRIMARY KEY,
    consumer    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    reason      text        NOT NULL,   -- "not-an-event", "refused" or "unreadable"
    error       text        NOT NULL,   -- what exactly is wrong
    event_id    text,                   -- when the message had one
    key         bytea,
    value       bytea,
    headers     jsonb       NOT NULL DEFAULT '{}',
    dead_at     timestamptz NOT NULL DEFAULT now(),
    -- A batch written again (a zombie member after a rebalance) is not doubled.
    UNIQUE (consumer, topic, partition, "offset")
);

-- 003_relay_role.sql -- a least-privilege role for the relay.
--
-- What the relay needs, and nothing more:
--   LOGIN, REPLICATION  to open a replication connection, create its slot and stream
--   CONNECT             on the database
--   USAGE, SELECT       on the outbox's schema and table (the initial table check)
-- It is not a superuser and owns nothing.  Set its password separately, outside any
-- file under version control:
--   ALTER ROLE outbox_relay PASSWORD '...';
--
-- Safe to run more than once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'outbox_relay') THEN
        CREATE ROLE outbox_relay WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO outbox_relay', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO outbox_relay;
GRANT SELECT ON public.outbox TO outbox_relay;

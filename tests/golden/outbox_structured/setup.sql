ALTER TABLE public.outbox ADD COLUMN traceparent text;

CREATE TABLE public.accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(12,2));
ALTER TABLE public.accounts REPLICA IDENTITY FULL;

CREATE TABLE public.customers (id int PRIMARY KEY, name text, notes text);
ALTER TABLE public.customers ALTER COLUMN notes SET STORAGE EXTERNAL;

-- the relay adds the table to its publication when it connects
INSERT INTO public.customers VALUES (1, 'Ada', NULL), (2, 'Grace', repeat('0123456789', 500));
UPDATE public.customers SET name = 'Ada L.' WHERE id = 1;
UPDATE public.customers SET name = 'Grace H.' WHERE id = 2;   -- notes unchanged TOAST
UPDATE public.customers SET id = 3 WHERE id = 1;               -- key change: old key sent
DELETE FROM public.customers WHERE id = 3;
TRUNCATE public.customers;

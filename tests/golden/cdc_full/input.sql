INSERT INTO public.accounts VALUES (7, 'ann', 100.00);
UPDATE public.accounts SET balance = 75.25 WHERE id = 7;
DELETE FROM public.accounts WHERE id = 7;

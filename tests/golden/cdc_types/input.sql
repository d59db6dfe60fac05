SET TIME ZONE 'UTC';
INSERT INTO public.typed VALUES (
    9007199254740993, -32768, 2147483647, 12345678901234567890.12345678901234567890,
    1.5e300, 'NaN', true, '{"a": [1, 2]}', '{"b": {"c": null}}', '{1,NULL,3}',
    '{"x y","a,b","q\"uote"}', E'tab\there "quoted" \u00e9', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '2026-11-23 10:00:00+00', '2026-11-23', '\xdeadbeef', NULL);
INSERT INTO public.typed (id, big, f8, ok) VALUES (2, 'NaN', '-Infinity', false);

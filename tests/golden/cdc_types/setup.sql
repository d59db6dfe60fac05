CREATE TABLE public.typed (
    id int8 PRIMARY KEY, i2 int2, i4 int4, big numeric, f8 float8, f4 float4, ok bool,
    j json, jb jsonb, ints int4[], words text[], t text, u uuid, ts timestamptz, d date,
    b bytea, nothing text);

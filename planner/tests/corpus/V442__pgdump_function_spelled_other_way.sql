SET check_function_bodies = false;

DROP FUNCTION public.slugify(pg_catalog.text);

CREATE FUNCTION public.slugify(input text) RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT lower(input) $$;

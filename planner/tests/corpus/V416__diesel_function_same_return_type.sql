-- Same parameters, same result (TEXT is text): a plain replace.
DROP FUNCTION slugify(text);
CREATE FUNCTION slugify(input TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE
    AS $$ SELECT trim(both '-' from lower(regexp_replace(input, '[^a-z0-9]+', '-', 'gi'))) $$;

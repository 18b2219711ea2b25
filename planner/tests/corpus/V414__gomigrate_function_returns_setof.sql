BEGIN;
DROP FUNCTION IF EXISTS slugify(text);
CREATE FUNCTION slugify(input text) RETURNS SETOF text LANGUAGE sql IMMUTABLE
    AS $$ SELECT regexp_split_to_table(lower(input), '[^a-z0-9]+') $$;
COMMIT;

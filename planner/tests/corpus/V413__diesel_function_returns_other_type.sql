DROP FUNCTION slugify(text);
CREATE FUNCTION slugify(input text) RETURNS varchar(200) LANGUAGE sql IMMUTABLE
    AS $$ SELECT left(lower(regexp_replace(input, '[^a-z0-9]+', '-', 'gi')), 200) $$;

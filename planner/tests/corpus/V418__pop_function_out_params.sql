DROP FUNCTION slugify(text);
CREATE FUNCTION slugify(input text, OUT slug text, OUT words integer) LANGUAGE sql IMMUTABLE
    AS $$ SELECT lower(input), array_length(regexp_split_to_array(input, '\s+'), 1) $$;

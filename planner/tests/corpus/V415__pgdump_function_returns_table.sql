SET check_function_bodies = false;

DROP FUNCTION public.slugify(text);

CREATE FUNCTION public.slugify(input text) RETURNS TABLE(slug text, length integer)
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT lower(input), length(input) $$;

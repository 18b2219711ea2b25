-- CreateFunction
CREATE OR REPLACE FUNCTION "slugify"("input" TEXT) RETURNS INTEGER LANGUAGE sql IMMUTABLE
    AS $$ SELECT length("input") $$;

SET check_function_bodies = false;

CREATE OR REPLACE FUNCTION public.customers_region_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.region IS NULL THEN
        RAISE EXCEPTION 'region required';
    END IF;
    RETURN NEW;
END;
$$;

SET statement_timeout = 0;
SET check_function_bodies = false;

ALTER TYPE public.order_status ADD VALUE 'refunded';

CREATE FUNCTION public.refunded_count() RETURNS bigint
    LANGUAGE sql
    AS $$SELECT count(*) FROM public.orders WHERE status = 'refunded'$$;

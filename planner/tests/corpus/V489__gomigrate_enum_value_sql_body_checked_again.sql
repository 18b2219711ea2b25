SET check_function_bodies = off;
ALTER TYPE order_status ADD VALUE 'refunded';
RESET check_function_bodies;
CREATE FUNCTION refunded_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM orders WHERE status = 'refunded' $$;

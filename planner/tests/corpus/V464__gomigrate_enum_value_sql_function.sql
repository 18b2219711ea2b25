ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded';
CREATE OR REPLACE FUNCTION refunded_total() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT coalesce(sum(total_cents), 0) FROM orders WHERE status = 'refunded' $$;

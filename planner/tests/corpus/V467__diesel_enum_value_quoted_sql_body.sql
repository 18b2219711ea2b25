-- Your SQL goes here
ALTER TYPE order_status ADD VALUE 'refunded';
CREATE FUNCTION refunded_count() RETURNS bigint AS 'SELECT count(*) FROM orders WHERE status = ''refunded''' LANGUAGE sql;

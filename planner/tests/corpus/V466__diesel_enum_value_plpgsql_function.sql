-- Your SQL goes here
ALTER TYPE order_status ADD VALUE 'refunded';
CREATE FUNCTION refunded_count() RETURNS bigint AS $$
BEGIN
    RETURN (SELECT count(*) FROM orders WHERE status = 'refunded');
END;
$$ LANGUAGE plpgsql;

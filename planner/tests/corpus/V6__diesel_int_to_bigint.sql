-- Totals overflow integer for wholesale orders.
ALTER TABLE orders ALTER COLUMN total_cents TYPE BIGINT;

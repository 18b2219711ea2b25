ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded' AFTER 'shipped';

UPDATE orders SET status = 'refunded' WHERE note = 'refund issued';

ALTER TYPE order_status ADD VALUE 'refunded';
ALTER TYPE order_status RENAME VALUE 'refunded' TO 'returned';
UPDATE orders SET status = 'returned' WHERE id = 1;

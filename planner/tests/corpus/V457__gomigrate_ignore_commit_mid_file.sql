ALTER TABLE orders ADD COLUMN IF NOT EXISTS currency CHAR(3);
COMMIT; -- cutover:ignore transaction-control-in-migration, transaction-nesting
ALTER TABLE orders ADD COLUMN IF NOT EXISTS region TEXT;

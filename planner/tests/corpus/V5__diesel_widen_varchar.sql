-- Display names longer than 100 characters are rejected today.
ALTER TABLE users ALTER COLUMN name TYPE VARCHAR(200);

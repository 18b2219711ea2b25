-- CONCURRENTLY cannot run in a transaction, so it lives in a file of its own.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);

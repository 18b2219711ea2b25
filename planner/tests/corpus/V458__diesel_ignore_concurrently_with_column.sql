-- Your SQL goes here
ALTER TABLE comments ADD COLUMN edited_at TIMESTAMPTZ;
-- cutover:ignore concurrently-in-transaction
CREATE INDEX CONCURRENTLY comments_edited_at_idx ON comments (edited_at);

-- Slugs of any length.
ALTER TABLE posts ALTER COLUMN slug TYPE TEXT;

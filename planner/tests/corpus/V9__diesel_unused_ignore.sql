-- cutover:ignore data-loss
ALTER TABLE users ADD COLUMN avatar_url TEXT;

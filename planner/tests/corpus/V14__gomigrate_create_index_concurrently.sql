CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_slug_idx ON posts (slug);

ALTER TABLE posts ADD COLUMN IF NOT EXISTS view_count BIGINT;
CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_view_count_idx ON posts (view_count);

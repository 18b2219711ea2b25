SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY IF NOT EXISTS comments_post_id_idx ON comments (post_id);
REINDEX INDEX CONCURRENTLY posts_user_id_idx;

CREATE INDEX CONCURRENTLY IF NOT EXISTS comments_author_id_idx ON comments (author_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_recipient_id_idx ON notifications (recipient_id);

BEGIN;
DROP VIEW IF EXISTS published_posts;
CREATE VIEW published_posts AS
SELECT id, user_id, title, created_at FROM posts WHERE published;
COMMIT;

BEGIN;
DROP VIEW published_posts;
CREATE VIEW published_posts AS
SELECT id, user_id, title::varchar AS title FROM posts WHERE published AND title <> '';
COMMIT;

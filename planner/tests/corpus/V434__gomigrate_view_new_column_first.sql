BEGIN;
DROP VIEW published_posts;
CREATE VIEW published_posts AS SELECT slug, id, user_id, title FROM posts WHERE published;
COMMIT;

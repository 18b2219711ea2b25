-- The view is renamed by dropping it and creating the new one.
DROP VIEW published_posts;

CREATE VIEW visible_posts AS
SELECT id, user_id, title
FROM posts
WHERE published;

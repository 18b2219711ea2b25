-- The view gains the slug column; it keeps its name so the queries of both versions still work.
DROP VIEW published_posts;

CREATE VIEW published_posts AS
SELECT id, user_id, title, slug
FROM posts
WHERE published;

DROP VIEW published_posts;
CREATE VIEW published_posts AS
SELECT CAST(id AS bigint) AS id, user_id, title FROM posts WHERE published;

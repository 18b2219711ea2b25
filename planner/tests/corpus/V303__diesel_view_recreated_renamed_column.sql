-- Your SQL goes here
DROP VIEW published_posts;
CREATE VIEW published_posts AS
SELECT id, user_id AS author_id, title FROM posts WHERE published;

DROP VIEW published_posts;
CREATE VIEW published_posts AS
SELECT title, id, user_id FROM posts WHERE published;

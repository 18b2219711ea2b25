CREATE OR REPLACE VIEW published_posts AS
SELECT id::text AS id, user_id, title FROM posts WHERE published;

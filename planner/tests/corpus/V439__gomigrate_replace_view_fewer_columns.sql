CREATE OR REPLACE VIEW published_posts AS SELECT id, user_id FROM posts WHERE published;

CREATE INDEX comments_post_id_idx ON comments (post_id); -- cutover:ignore require-concurrent-index-creation
CREATE INDEX comments_author_id_idx ON comments (author_id);

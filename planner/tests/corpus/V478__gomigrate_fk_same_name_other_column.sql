ALTER TABLE comments DROP CONSTRAINT comments_post_id_fkey;
ALTER TABLE comments ADD CONSTRAINT comments_post_id_fkey FOREIGN KEY (author_id) REFERENCES users (id) NOT VALID;

-- Your SQL goes here
ALTER TABLE comments ALTER CONSTRAINT comments_post_id_fkey DEFERRABLE INITIALLY DEFERRED;

-- Your SQL goes here
ALTER TABLE comment_attachments DROP CONSTRAINT comment_attachments_uploader_fkey;
ALTER TABLE comment_attachments ADD CONSTRAINT comment_attachments_uploader_fkey FOREIGN KEY (uploader_id) REFERENCES users (id) NOT VALID;

ALTER TABLE comment_attachments DROP CONSTRAINT comment_attachments_comment_id_fkey;
ALTER TABLE comment_attachments ADD CONSTRAINT comment_attachments_comment_id_fkey FOREIGN KEY (comment_id) REFERENCES comments (id) NOT VALID;

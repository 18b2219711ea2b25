-- Every notification names its sender from now on.
ALTER TABLE notifications ADD COLUMN sender_id BIGINT;

UPDATE notifications n
SET sender_id = p.user_id
FROM posts p
WHERE n.post_id = p.id;

ALTER TABLE notifications
    ADD CONSTRAINT notifications_sender_id_not_null CHECK (sender_id IS NOT NULL) NOT VALID;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint WHERE conname = 'comments_author_id_fkey'
    ) THEN
        ALTER TABLE comments
            ADD CONSTRAINT comments_author_id_fkey
            FOREIGN KEY (author_id) REFERENCES users (id) NOT VALID;
    END IF;
END
$$;

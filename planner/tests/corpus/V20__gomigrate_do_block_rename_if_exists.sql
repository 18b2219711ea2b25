DO $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM information_schema.columns
        WHERE table_name = 'tasks' AND column_name = 'legacy_note'
    ) THEN
        ALTER TABLE tasks RENAME COLUMN legacy_note TO note;
    END IF;
END
$$;

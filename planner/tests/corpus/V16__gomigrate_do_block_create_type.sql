-- PostgreSQL has no CREATE TYPE IF NOT EXISTS.
DO $$
BEGIN
    CREATE TYPE delivery_state AS ENUM ('queued', 'sent', 'failed');
EXCEPTION
    WHEN duplicate_object THEN NULL;
END
$$;

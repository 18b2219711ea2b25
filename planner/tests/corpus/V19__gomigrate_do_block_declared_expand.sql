-- cutover:phase=expand
-- A read-only role for the reporting service; the old version does not use it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reporting') THEN
        CREATE ROLE reporting NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO reporting', current_database());
END
$$;

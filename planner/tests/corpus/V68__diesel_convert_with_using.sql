-- legacy_flags held 0 or 1; make it a real boolean.
ALTER TABLE users
    ALTER COLUMN legacy_flags TYPE BOOLEAN USING legacy_flags <> 0;

-- cutover:phase=contract
-- Version 1.0.0 still reads legacy_flags: drop it only once that version is retired.
ALTER TABLE users DROP COLUMN legacy_flags;

-- Your SQL goes here
ALTER TABLE tasks DROP COLUMN legacy_note;
-- cutover:phase=contract

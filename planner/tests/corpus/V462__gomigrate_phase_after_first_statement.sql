ALTER TABLE users ADD COLUMN IF NOT EXISTS tier TEXT;
-- cutover:phase=expand
ALTER TABLE users DROP COLUMN IF EXISTS legacy_flags;

ALTER TABLE sessions ALTER COLUMN id SET DEFAULT gen_random_uuid();
